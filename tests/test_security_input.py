"""The trust boundary, tried as an attacker would: bounded, escaped logging and no 5xx from any input."""

from __future__ import annotations

import json

import pytest

import forms
from conftest import API_TOKEN, App, PortalSim, log_text

# ---- 4: bounded, escaped logging of unauthenticated input ------------------------------------------------------


def test_huge_event_names_and_keys_are_cut_in_logs_and_answers(installed: App) -> None:
    size_before = (installed.data_dir / "bot.log").stat().st_size
    for size in (1_900_000, 400_000):
        big = "X" * size
        for pairs in ([("event", big), ("auth[member_id]", "m")], [(f"data[{big}", "1"), ("event", "ONIMBOTJOINCHAT")]):
            resp = installed.post(pairs)
            assert 400 <= resp.status_code < 500 and len(resp.content) < 1000
    assert (installed.data_dir / "bot.log").stat().st_size - size_before < 4000


def test_newlines_in_request_fields_cannot_forge_log_lines(installed: App) -> None:
    forged = "ONIMBOTJOINCHAT\n2026-01-01 00:00:00,000 WARNING [1] b24bot: admin token rotated"
    assert installed.post([("event", forged), ("auth[member_id]", "m"), ("auth[application_token]", "t")]).status_code
    evil = "evil.example\r\n2026-01-01 00:00:00,000 ERROR [1] b24bot: forged"
    installed.install(domain=evil, client_endpoint="https://evil.example/rest/")
    lines = installed.api("admin/logs", params={"lines": 50}).json()["lines"]
    assert not any(line.startswith("2026-01-01 00:00:00,000") for line in lines)
    assert any("\\n2026-01-01" in line or "\\r\\n2026-01-01" in line for line in lines)


# ---- 6: no 500 from input --------------------------------------------------------------------------------------

BIG = "99999999999999999999"


@pytest.mark.parametrize(
    "path, params",
    [
        ("dialogs", {"cursor": BIG}),
        (f"dialogs/{BIG}", {}),
        (f"dialogs/{BIG}/messages", {}),
        ("dialogs/1/messages", {"cursor": BIG}),
        ("dialogs", {"since": "9999-12-31T23:59:59-05:00"}),
        ("dialogs", {"since": "9999-12-31T23:59:59-05:00", "cursor": "5"}),
        ("dialogs", {"date": "0001-01-01", "tz_offset": "5"}),
        ("dialogs", {"date": "9999-12-31", "tz_offset": "-5"}),
        ("search", {"q": "x", "cursor": BIG}),
        ("search", {"q": "x", "chat_id": BIG}),
        ("export", {"format": "csv", "from": "9999-12-31T23:59:59-05:00"}),
        ("export", {"format": "csv", "operator_id": BIG}),
    ],
)
def test_out_of_range_queries_are_4xx(installed: App, path: str, params: dict[str, str]) -> None:
    resp = installed.api(path, params=params)
    assert 400 <= resp.status_code < 500, (path, params, resp.status_code, resp.text[:200])


@pytest.mark.parametrize("body", ["[1]", '"INFO"', "null", "{"])
def test_loglevel_with_a_non_object_body_is_400(installed: App, body: str) -> None:
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}
    resp = installed.http.post(installed.url + "api/admin/loglevel", data=body, headers=headers, timeout=10)
    assert resp.status_code == 400


def _message(app: App, chat_id: int, mid: int, **params: str) -> list[tuple[str, str]]:
    entity = forms.lines_entity("telegrambot", 1, f"ext{chat_id}", 5001)
    pairs = forms.message(app.portal_ids, app.bot_id, chat_id, mid, "hi", 5001, "Guest", True, entity, 300)
    keys = {f"data[PARAMS][{k}]" for k in params}
    return [(k, v) for k, v in pairs if k not in keys] + [(f"data[PARAMS][{k}]", v) for k, v in params.items()]


def totals(app: App) -> tuple[int, ...]:
    tables = ("events", "messages", "dialogs", "sessions", "participants", "attachments", "handoffs")
    return tuple(app.count(t) for t in tables)


def test_out_of_range_event_ids_are_refused_explicitly_and_counted(app: App, portal: PortalSim) -> None:
    app.env_extra = {"B24BOT_METRICS": "true", "B24BOT_METRICS_DIR": str(app.data_dir / "metrics")}
    app.restart()
    assert app.install().status_code == 200
    before = totals(app)
    huge = str(2**63)
    bodies = [
        _message(app, 47, 4701, CHAT_ID=huge, TO_CHAT_ID=huge),
        _message(app, 47, 4702, MESSAGE_ID=huge),
        _message(app, 47, 4703, AUTHOR_ID=huge, FROM_USER_ID=huge),
        [*_message(app, 47, 4704), ("data[PARAMS][FILES][1][id]", huge)],
        [(k, v if k != "ts" else "99999999999999") for k, v in _message(app, 47, 4705)],
    ]
    for pairs in bodies:
        resp = app.post(pairs)
        assert resp.status_code == 400 and "out of range" in resp.json()["error"], resp.text
    assert totals(app) == before  # nothing half-written
    metrics = app.http.get(app.url + "metrics").text
    assert 'b24bot_events_total{event="ONIMBOTMESSAGEADD",outcome="refused"} 4.0' in metrics
    assert 'b24bot_events_total{event="unparsed",outcome="out_of_range"} 1.0' in metrics  # the ts, before auth
    assert "ONIMBOTMESSAGEADD refused: CHAT_ID is out of range" in log_text(app)
    # A session start time beyond the calendar is only informative: the message is kept without it.
    ok = _message(app, 47, 4706, CHAT_ENTITY_DATA_1=f"Y|LEAD|1|N|N|300|{huge}|0|0|0")
    assert app.post(ok).status_code == 200


def test_deeply_nested_event_is_400(installed: App) -> None:
    key = "data" + "[x]" * 500
    resp = installed.post([("event", "ONIMBOTMESSAGEADD"), (key, "1"), *forms.flatten({"auth": {"member_id": "m"}})])
    assert resp.status_code == 400 and "deeper" in resp.json()["error"]


def test_healthz_survives_any_stored_expiry(app: App, portal: PortalSim) -> None:
    assert app.install(expires="99999999999999", expires_in="99999999999999").status_code == 200
    assert app.http.get(app.url + "healthz").status_code == 200
    path = app.data_dir / "auth.json"
    for expires in (99999999999999, -(10**15), "soon"):
        data = json.loads(path.read_text())
        data["expires"] = expires
        path.write_text(json.dumps(data))
        resp = app.http.get(app.url + "healthz")
        assert resp.status_code == 200 and resp.json()["token_expires_at"] is None
    assert app.http.get(app.url).status_code == 200
