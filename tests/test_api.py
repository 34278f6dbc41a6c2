"""The local API: bearer token, pagination, the seed system's filters, admin endpoints."""

from __future__ import annotations

import pytest

from b24bot import config
from conftest import App, PortalSim, wait_for


def test_api_requires_the_bearer_token(installed: App) -> None:
    assert installed.api("dialogs", token=None).status_code == 401
    assert installed.api("dialogs", token="wrong").status_code == 401
    assert installed.api("admin/status", token=None).status_code == 401
    assert installed.api("dialogs").status_code == 200


def test_api_disabled_without_a_token(app: App) -> None:
    app.env_extra = {"B24BOT_API_TOKEN": ""}
    app.restart()
    resp = app.api("dialogs", token="")
    assert resp.status_code == 503 and "B24BOT_API_TOKEN" in resp.json()["error"]
    assert "B24BOT_API_TOKEN is not set" in app.http.get(app.url).text
    assert any("B24BOT_API_TOKEN" in p for p in app.http.get(app.url + "healthz").json()["problems"])


def test_dialog_pages_walk_every_dialog_once(installed: App) -> None:
    for chat in range(1, 24):
        installed.message(chat, 1000 + chat, f"m{chat}")
    seen, cursor = [], None
    while True:
        page = installed.api("dialogs", params={"limit": 5, **({"cursor": cursor} if cursor else {})}).json()
        seen += [d["chat_id"] for d in page["items"]]
        assert all(isinstance(d["chat_id"], int) and d["message_count"] == 1 for d in page["items"])
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == list(range(23, 0, -1))


def test_message_pages(installed: App) -> None:
    for mid in range(1, 8):
        installed.message(5, mid, f"text {mid}", client=mid % 2 == 1)
    first = installed.api("dialogs/5/messages", params={"limit": 4}).json()
    second = installed.api("dialogs/5/messages", params={"limit": 4, "cursor": first["next"]}).json()
    assert [m["message_id"] for m in first["items"] + second["items"]] == list(range(1, 8))
    assert second["next"] is None
    assert first["items"][0]["created_at"].endswith("+00:00")


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 501},
        {"limit": "x"},
        {"date": "2026-13-01"},
        {"start_time": "25:00"},
        {"since": "yesterday"},
        {"tz_offset": "99"},
    ],
)
def test_bad_query_parameters_are_400(installed: App, params: dict) -> None:
    resp = installed.api("dialogs", params=params)
    assert resp.status_code == 400 and "error" in resp.json()


def test_unknown_dialog_is_404(installed: App) -> None:
    assert installed.api("dialogs/424242").status_code == 404
    assert installed.api("dialogs/424242/messages").status_code == 404


def test_seed_filters_date_and_working_hours(installed: App) -> None:
    # 2026-03-10 06:30 UTC = 09:30 at UTC+3 (inside 09:00-18:00); 2026-03-10 20:00 UTC = 23:00 at UTC+3 (outside)
    assert installed.join(61, ts=1773124200).status_code == 200
    assert installed.join(62, ts=1773172800).status_code == 200
    assert installed.join(63, ts=1773000000).status_code == 200  # 2026-03-08, another day
    q = {"date": "2026-03-10", "tz_offset": 3}
    assert [d["chat_id"] for d in installed.api("dialogs", params=q).json()["items"]] == [62, 61]
    q.update(start_time="09:00", end_time="18:00")
    assert [d["chat_id"] for d in installed.api("dialogs", params=q).json()["items"]] == [61]
    since = installed.api("dialogs", params={"since": "2030-01-01T00:00:00Z"}).json()["items"]
    assert since == []


def test_users_and_admin_endpoints(installed: App, portal: PortalSim) -> None:
    installed.message(70, 700, "hi", client=True)
    installed.message(70, 701, "hello", client=False)
    users = installed.api("users").json()["items"]
    assert {(u["user_id"], u["role"]) for u in users} == {(5001, "client"), (7, "operator")}
    status = installed.api("admin/status").json()
    assert status["installed"] is True and status["messages"] == 2 and status["recording"] is True
    assert installed.api("admin/loglevel", method="POST", json={"level": "loud"}).status_code == 400
    assert installed.api("admin/loglevel", method="POST", json={"level": "DEBUG"}).json()["level"] == "DEBUG"
    lines = installed.api("admin/logs", params={"lines": 3}).json()["lines"]
    assert len(lines) == 3
    assert installed.auth_json()["access_token"] not in " ".join(installed.api("admin/logs").json()["lines"])


def test_healthz_reports_install_state_and_queue(installed: App) -> None:
    body = installed.http.get(installed.url + "healthz").json()
    assert body["installed"] is True and body["db_ok"] is True and body["bot_id"] == installed.bot_id
    assert body["token_expires_at"] and body["pending_handoffs"] == 0


def test_healthz_is_503_when_the_database_is_unusable(app: App) -> None:
    app.stop()
    for f in app.data_dir.glob("dialogs.db*"):
        f.unlink()
    (app.data_dir / "dialogs.db").write_bytes(b"this is not an SQLite database" * 100)
    app.start()
    assert app.http.get(app.url + "healthz").status_code == 503
    assert app.http.get(app.url).status_code == 200


def test_config_defaults_match_the_contract() -> None:
    s = config.load({})
    assert (s.bot_code, s.bot_name, str(s.transfer)) == ("python_interceptor_bot", "Python Interceptor Bot", "operator")


def test_cli_status_reads_the_same_instance(installed: App) -> None:
    import json
    import subprocess
    import sys

    installed.message(80, 800, "x")
    out = subprocess.run(
        [sys.executable, "-m", "b24bot", "status", "--json"],
        env=installed.env,
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(out.stdout)
    assert info["installed"] is True and info["bot_id"] == installed.bot_id
    assert info["messages"] == 1 and info["dialogs"] == 1 and info["db_ok"] is True


def test_metrics_on_localhost_only(app: App, portal: PortalSim) -> None:
    assert app.http.get(app.url + "metrics").status_code == 404  # off by default
    app.env_extra = {"B24BOT_METRICS": "true"}
    app.restart()
    app.install()
    app.join(90)
    wait_for(lambda: app.api("dialogs/90").json()["transferred_at"], what="hand-off")
    portal.post("faults", {"method": "imopenlines.bot.session.operator", "kind": "5xx", "count": 1})
    app.join(91)
    wait_for(lambda: app.api("dialogs/91").json()["transferred_at"], what="hand-off")
    text = app.http.get(app.url + "metrics").text
    assert 'b24bot_events_total{event="ONIMBOTJOINCHAT",outcome="joined"} 2.0' in text
    assert "b24bot_handoff_seconds_count 2.0" in text
    assert 'b24bot_handoff_failures_total{code="INTERNAL_SERVER_ERROR"} 1.0' in text
    assert "b24bot_handoff_queue_depth 0.0" in text and "b24bot_installed 1.0" in text
    proxied = app.http.get(app.url + "metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status_code == 403
