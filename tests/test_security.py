"""The trust boundary, tried as an attacker would: each finding of the security review as an attack that now fails."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests
from attacker import Listener

import forms
from b24bot.bitrix.errors import BitrixError
from b24bot.bitrix.rest import open_download, raw_call
from conftest import API_TOKEN, CLIENT_ID, App, PortalSim, wait_for


@pytest.fixture
def attacker() -> Iterator[Listener]:
    # Answers app.info with our client id, the way the attacker's host in the report did.
    lst = Listener(200, {"result": {"ID": 1, "CODE": CLIENT_ID}})
    yield lst
    lst.close()


def forged_install(app: App, attacker: Listener, **extra: str) -> requests.Response:
    """The report's forged ONAPPINSTALL: every address points at the attacker, the tokens are made up."""
    host = f"127.0.0.1:{attacker.port}"
    auth = {
        **app.portal.get("install"),
        "domain": host,
        "client_endpoint": f"{attacker.url}/rest/",
        "server_endpoint": f"{attacker.url}/rest/",
        "access_token": "attacker-access",
        "refresh_token": "attacker-refresh",
        "member_id": "a" * 32,
        "expires": "1",
        **extra,
    }
    return app.post(forms.install(auth))


def log_text(app: App) -> str:
    return (app.data_dir / "bot.log").read_text(encoding="utf-8", errors="replace")


# ---- 1 + 2: install takeover and SSRF before verification ----------------------------------------------------


def test_forged_install_after_the_real_one_is_refused_and_never_reaches_the_attacker(
    app: App, portal: PortalSim, attacker: Listener
) -> None:
    app.env_extra = {"B24BOT_PORTAL_DOMAIN": ""}  # the role's default: no domain pin configured
    app.restart()
    assert app.install().status_code == 200
    before = (app.data_dir / "auth.json").read_bytes()
    for extra in ({}, {"member_id": app.portal_ids.member_id}, {"client_endpoint": f"{attacker.url}/rest/#"}):
        resp = forged_install(app, attacker, **extra)
        assert resp.status_code == 403, resp.text
    assert (app.data_dir / "auth.json").read_bytes() == before
    assert attacker.connections == 0  # not app.info, not the OAuth refresh, not anything
    app.join(41)  # the real portal is still the installed one
    assert app.message(41, 4101, "still here").status_code == 200
    wait_for(lambda: app.api("dialogs/41").json()["transferred_at"], what="hand-off to the real portal")


def test_install_with_client_credentials_unset_is_refused_without_any_call(
    app: App, portal: PortalSim, attacker: Listener
) -> None:
    app.env_extra = {"B24BOT_CLIENT_ID": "", "B24BOT_PORTAL_DOMAIN": ""}
    app.restart()
    for resp in (forged_install(app, attacker), app.install()):
        assert resp.status_code == 403
        assert "B24BOT_CLIENT_ID and B24BOT_CLIENT_SECRET are not set" in resp.json()["error"]
    assert app.auth_json() is None
    assert attacker.connections == 0
    assert portal.calls() == [] and portal.get("state")["refreshes"] == 0


def test_without_an_oauth_url_only_bitrix24_oauth_hosts_are_asked(app: App, attacker: Listener) -> None:
    """Production settings (no B24BOT_OAUTH_URL): the secret may go to Bitrix24's OAuth servers only. An HTTPS proxy
    that refuses everything stands in for the internet and tells which host the app tried."""
    proxy = Listener(403, {"error": "no"})
    proxy_url = f"http://127.0.0.1:{proxy.port}"
    app.env_extra = {
        "B24BOT_OAUTH_URL": "",
        "B24BOT_PORTAL_DOMAIN": "",
        **{k: proxy_url for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")},
        **{k: "" for k in ("NO_PROXY", "no_proxy")},
    }
    try:
        app.restart()
        assert forged_install(app, attacker).status_code == 502  # OAuth server unreachable: nothing saved
        tech = forged_install(app, attacker, server_endpoint="https://oauth.bitrix24.tech/rest/")
        assert tech.status_code == 502
        assert attacker.connections == 0
        assert proxy.requests == [
            "CONNECT oauth.bitrix.info:443",
            "CONNECT oauth.bitrix24.tech:443",
        ]
        assert app.auth_json() is None
    finally:
        proxy.close()


def test_the_refresh_token_of_another_portal_proves_nothing(app: App, portal: PortalSim) -> None:
    """A genuine token pair of portal A sent with portal B's identity: the OAuth answer names A, so it is refused."""
    auth = portal.get("install")
    resp = app.post(forms.install({**auth, "member_id": "b" * 32}))
    assert resp.status_code == 403 and "member_id" in resp.json()["error"]
    assert app.auth_json() is None and portal.calls("imbot.register") == []


def test_token_refresh_never_follows_a_forged_server_endpoint(installed: App, attacker: Listener) -> None:
    """auth.json naming another OAuth host (an older version took it from a request): the refresh still goes to
    Bitrix24's OAuth server. Production settings; a refusing HTTPS proxy shows which host was tried."""
    proxy = Listener(403, {"error": "no"})
    path = installed.data_dir / "auth.json"
    data = json.loads(path.read_text())
    data["server_endpoint"] = f"{attacker.url}/rest/"
    data["installed_at"] = int(time.time()) - 8 * 86400  # due for the weekly renewal
    path.write_text(json.dumps(data))
    env = {
        **installed.env,
        "B24BOT_OAUTH_URL": "",
        **{k: f"http://127.0.0.1:{proxy.port}" for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")},
        **{k: "" for k in ("NO_PROXY", "no_proxy")},
    }
    try:
        subprocess.run([sys.executable, "-m", "b24bot", "sync"], env=env, capture_output=True, timeout=60)
        assert proxy.requests == ["CONNECT oauth.bitrix.info:443"]
        assert attacker.connections == 0
    finally:
        proxy.close()


# ---- pinning ---------------------------------------------------------------------------------------------------


def test_the_first_portal_is_pinned_until_reset_install(installed: App, portal: PortalSim) -> None:
    first = installed.portal_ids
    assert installed.post(forms.uninstall(first)).status_code == 200  # auth.json is gone now
    assert installed.auth_json() is None
    assert installed.install().status_code == 200  # the same portal may come back
    portal.post("reset")  # another portal (new member_id), with a genuine install
    resp = installed.install()
    assert resp.status_code == 403 and "b24bot reset-install" in resp.json()["error"]
    assert installed.auth_json()["member_id"] == first.member_id
    assert portal.get("state")["refreshes"] == 0  # refused before its tokens were even spent
    run = subprocess.run(
        [sys.executable, "-m", "b24bot", "reset-install"], env=installed.env, capture_output=True, text=True
    )
    assert run.returncode == 0 and json.loads(run.stdout)["unpinned_member_id"] == first.member_id
    assert installed.install().status_code == 200
    assert installed.auth_json()["member_id"] == portal.get("install")["member_id"] != first.member_id


def test_the_pin_survives_an_uninstall(installed: App, portal: PortalSim) -> None:
    assert installed.post(forms.uninstall(installed.portal_ids)).status_code == 200
    assert installed.auth_json() is None
    portal.post("reset")
    resp = installed.install()
    assert resp.status_code == 403 and "reset-install" in resp.json()["error"]
    assert installed.auth_json() is None


def test_an_instance_installed_before_pinning_is_pinned_to_its_portal(installed: App, portal: PortalSim) -> None:
    with installed.db() as conn:  # as an older version left it: auth.json, no pin
        conn.execute("DELETE FROM settings WHERE key LIKE 'portal_%'")
    portal.post("reset")
    resp = installed.install()
    assert resp.status_code == 403 and "reset-install" in resp.json()["error"]


def test_reinstall_from_the_same_portal_keeps_working(installed: App, portal: PortalSim) -> None:
    installed.join(43)
    for _ in range(2):
        portal.post("reinstall")
        assert installed.install().status_code == 200
    assert installed.auth_json()["access_token"] == portal.get("install")["access_token"]
    assert installed.message(43, 4301, "after two reinstalls").status_code == 200


# ---- 2 + 5: outbound calls only to the pinned portal (real sockets, in-process client) ------------------------


@pytest.fixture
def redirector(attacker: Listener) -> Iterator[Listener]:
    lst = Listener(302, {}, location=f"{attacker.url}/rest/app.info")
    yield lst
    lst.close()


def test_rest_client_refuses_a_redirect_to_another_host(redirector: Listener, attacker: Listener) -> None:
    with pytest.raises(BitrixError) as err:
        raw_call(requests.Session(), f"{redirector.url}/rest/", "tok", "app.info", {}, 2, allow_http=True)
    assert err.value.code == "REDIRECT_REFUSED"
    assert redirector.connections == 1 and attacker.connections == 0


def test_rest_client_reposts_a_redirect_on_the_same_host() -> None:
    relative = Listener(307, {"result": True}, location="/rest/moved/")
    try:
        with pytest.raises(BitrixError) as err:  # re-posted once to the same host, which answers 307 again
            raw_call(requests.Session(), f"{relative.url}/rest/", "tok", "event.bind", {}, 2, True)
        assert err.value.code == "BAD_RESPONSE"
        assert relative.requests == ["POST /rest/event.bind", "POST /rest/moved/"]
    finally:
        relative.close()


def test_rest_client_requires_https_unless_http_was_configured(attacker: Listener) -> None:
    with pytest.raises(BitrixError) as err:
        raw_call(requests.Session(), f"{attacker.url}/rest/", "tok", "app.info", {}, 2)
    assert err.value.code == "UNTRUSTED_ENDPOINT" and attacker.connections == 0


def test_download_only_from_the_portal_host_and_never_through_a_redirect(
    redirector: Listener, attacker: Listener
) -> None:
    session = requests.Session()
    portal_endpoint = f"{redirector.url}/rest/"
    with pytest.raises(BitrixError) as err:
        open_download(session, f"{attacker.url}/file.bin", portal_endpoint, "secret-token", 2, True)
    assert err.value.code == "FOREIGN_HOST"
    with pytest.raises(BitrixError) as err:
        open_download(session, f"{redirector.url}/disk/1", portal_endpoint, "secret-token", 2, True)
    assert err.value.code == "REDIRECT_REFUSED"
    assert attacker.connections == 0 and redirector.connections == 1


def test_sync_download_of_a_foreign_url_never_sends_the_token(installed: App, attacker: Listener) -> None:
    pairs = forms.message(
        installed.portal_ids,
        installed.bot_id,
        44,
        4401,
        "see file",
        5001,
        "Guest",
        True,
        forms.lines_entity("telegrambot", 1, "ext44", 5001),
        300,
    )
    pairs += [
        ("data[PARAMS][FILES][77][id]", "77"),
        ("data[PARAMS][FILES][77][name]", "x.pdf"),
        ("data[PARAMS][FILES][77][urlDownload]", f"{attacker.url}/disk/downloadFile/77/"),
    ]
    assert installed.post(pairs).status_code == 200
    run = subprocess.run(
        [sys.executable, "-m", "b24bot", "sync", "--download"], env=installed.env, capture_output=True, text=True
    )
    report = json.loads(run.stdout)
    assert "file 77: FOREIGN_HOST" in report["errors"] and report["downloaded"] == 0
    assert attacker.connections == 0


# ---- 3: CSV formula injection; a failing export is a broken download ------------------------------------------

DANGEROUS = ['=HYPERLINK("http://x","y")', "+1", "-2", "@SUM(1)", "\tx", "\rx"]


def test_csv_cells_cannot_become_formulas_and_jsonl_keeps_the_text(installed: App) -> None:
    installed.join(45)
    texts = [*DANGEROUS, "plain", "a=b"]
    for i, text in enumerate(texts):
        assert installed.message(45, 4500 + i, text).status_code == 200
    resp = installed.api("export", params={"format": "csv", "chat_id": 45})
    rows = list(csv.DictReader(io.StringIO(resp.content.decode("utf-8-sig"), newline="")))
    got = [r["text"] for r in rows]
    assert got == ["'" + t for t in DANGEROUS] + ["plain", "a=b"]
    jsonl = installed.api("export", params={"format": "jsonl", "chat_id": 45}).text.splitlines()
    assert [json.loads(line)["text"] for line in jsonl] == texts


def _fill(app: App, n: int, bad_at: int) -> None:
    """n stored messages straight in SQLite, one of them unreadable (not UTF-8) deep in the export."""
    with sqlite3.connect(app.data_dir / "dialogs.db") as conn:
        conn.execute(
            "INSERT INTO messages (message_id, chat_id, author_role, text, created_at)"
            " WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " SELECT i, 46, 'client', 'row ' || i, '2026-01-01T00:00:00+00:00' FROM n",
            (n,),
        )
        conn.execute("UPDATE messages SET text = CAST(X'FF41' AS TEXT) WHERE message_id = ?", (bad_at,))


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_an_export_failing_midway_is_a_broken_download(installed: App, fmt: str) -> None:
    _fill(installed, 1500, bad_at=1400)
    received = b""
    resp = installed.api("export", params={"format": fmt}, stream=True)
    assert resp.status_code == 200
    with pytest.raises(requests.exceptions.ChunkedEncodingError):  # never a clean end of a short file
        for chunk in resp.iter_content(4096):
            received += chunk
    assert b"row 1000" in received and b"row 1500" not in received
    assert "export aborted" in log_text(installed)


def test_cli_export_failing_midway_leaves_no_file(installed: App) -> None:
    _fill(installed, 1500, bad_at=1400)
    out = installed.data_dir / "export.csv"
    run = subprocess.run(
        [sys.executable, "-m", "b24bot", "export", "--format", "csv", "--out", str(out)],
        env=installed.env,
        capture_output=True,
    )
    assert run.returncode != 0
    assert not out.exists() and not (installed.data_dir / "export.csv.part").exists()


def test_export_filter_out_of_range_is_400_before_any_byte(installed: App) -> None:
    resp = installed.api("export", params={"format": "csv", "chat_id": "99999999999999999999"})
    assert resp.status_code == 400 and "chat_id" in resp.json()["error"]


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


def test_a_refused_install_pins_nothing(app: App, attacker: Listener) -> None:
    """A refused install writes neither auth.json nor the pin: the real portal can still install first."""
    app.env_extra = {"B24BOT_PORTAL_DOMAIN": ""}
    app.restart()
    assert forged_install(app, attacker).status_code == 403
    assert app.install().status_code == 200
