"""Chatbots 2.0 in fetch mode: registration without an install event, the whole dialog story through the event
pump, the OAuth switch of an existing v1 install, a fresh OAuth install in v2 mode, malformed events, and
`b24bot doctor`."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
from pathlib import Path

import requests
import v2kit
from test_archive import CLIENT, OPERATOR, history
from v2kit import BOT_CODE, bot_id, cli, send, v2_env, v2_state, wait_drained

from conftest import API_TOKEN, WEBHOOK, App, PortalSim, free_port, wait_for

OPERATOR_CALL = "imopenlines.bot.session.operator"
v2app = v2kit.v2app  # the fixture


def test_register_needs_no_install_and_keeps_the_bot_token_private(v2app: App, portal: PortalSim) -> None:
    st = v2_state(portal)
    (bot,) = st["bots"].values()
    kind = (bot["code"], bot["type"], bot["isSupportOpenline"], bot["eventMode"])
    assert kind == (BOT_CODE, "openline", True, "fetch")
    assert bot["owner"] == "webhook"
    token_file = v2app.data_dir / "bot-token"
    token = token_file.read_text().strip()
    assert token == st["bot_tokens"][str(bot["id"])] and 0 < len(token) <= 40
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    line = portal.get("state")["lines"]["1"]
    assert (line["WELCOME_BOT_ID"], line["WELCOME_BOT_ENABLE"], line["WELCOME_BOT_LEFT"]) == (bot["id"], "Y", "close")
    assert v2app.auth_json() is None  # no install event, so no inbound connection was ever needed
    health = requests.get(v2app.url + "healthz", timeout=5).json()["v2"]
    assert (health["bot_id"], health["auth"], health["event_mode"], health["lines"]) == (
        bot["id"],
        "webhook",
        "fetch",
        [1],
    )
    assert token not in requests.get(v2app.url + "healthz", timeout=5).text
    assert token not in (v2app.data_dir / "bot.log").read_text()  # the secret is never logged
    again = cli(v2app, "register")  # idempotent on the portal: the same bot, the same token
    assert again.returncode == 0 and json.loads(again.stdout)["bot_id"] == bot["id"]
    assert json.loads(again.stdout)["changed"] is False  # the role's changed_when reads this
    assert v2_state(portal)["bot_tokens"] == st["bot_tokens"]


def test_whole_dialog_story_in_fetch_mode(v2app: App, portal: PortalSim) -> None:
    send(portal, {"kind": "join", "chat_id": 42, "session_id": 343})
    (call,) = wait_for(lambda: portal.handoffs(42), what="hand-off call")
    assert call["method"] == OPERATOR_CALL and call["params"] == {"CHAT_ID": 42}
    dialog = wait_for(lambda: (d := v2app.api("dialogs/42").json())["transferred_at"] and d, what="transferred")
    assert (dialog["connector"], dialog["line_id"], dialog["external_chat_id"]) == ("telegrambot", "1", "ext42")
    send(
        portal,
        {"kind": "add", "chat_id": 42, "message_id": 1001, "text": "Нужна помощь", "session_id": 343},
        {"kind": "add", "chat_id": 42, "message_id": 1002, "text": "One moment", "client": False, "session_id": 343},
        {"kind": "update", "chat_id": 42, "message_id": 1001, "text": "Нужна помощь с заказом", "session_id": 343},
        {"kind": "delete", "chat_id": 42, "message_id": 1002, "client": False, "session_id": 343},
        {"kind": "other", "chat_id": 42},  # a reaction: not ours to keep, acknowledged all the same
    )
    wait_drained(v2app, portal)
    items = v2app.api("dialogs/42/messages").json()["items"]
    assert [(m["message_id"], m["author_role"], m["author_id"], m["session_id"]) for m in items] == [
        (1001, "client", 5001, 343),
        (1002, "operator", 7, 343),
    ]
    assert (items[0]["text"], items[0]["edited"], items[0]["deleted"]) == ("Нужна помощь с заказом", True, False)
    assert (items[1]["text"], items[1]["deleted"]) == ("One moment", True)
    participants = {(p["user_id"], p["role"]) for p in v2app.api("dialogs/42").json()["participants"]}
    assert participants == {(bot_id(portal), "bot"), (5001, "client"), (7, "operator")}
    # sync fills in what no event announced, through the same webhook auth
    history(
        portal,
        42,
        343,
        [
            {"id": 1001, "text": "Нужна помощь с заказом", "date": "2026-03-11T10:00:00+03:00", **CLIENT},
            {"id": 1003, "text": "Спасибо!", "date": "2026-03-11T10:06:00+03:00", **CLIENT},
            {"id": 1004, "text": "Рады помочь", "date": "2026-03-11T10:07:00+03:00", **OPERATOR},
            # the v2 bot's own message, not flagged as a bot by the portal: known by the registered bot's id
            {"id": 1005, "text": "Оцените нас", "date": "2026-03-11T10:08:00+03:00", "author_id": bot_id(portal)},
        ],
    )
    report = json.loads(cli(v2app, "sync", "--session", "343").stdout)
    assert report["errors"] == [] and report["new_messages"] == 3
    synced = v2app.api("dialogs/42/messages").json()["items"]
    assert [(m["message_id"], m["author_role"]) for m in synced] == [
        (1001, "client"),
        (1002, "operator"),
        (1003, "client"),
        (1004, "operator"),
        (1005, "bot"),
    ]
    assert v2app.api("search", params={"q": "заказом"}).json()["items"][0]["message_id"] == 1001
    assert len(portal.handoffs(42)) == 1 and v2app.count("messages") == 5
    assert all("auth" not in c["params"] for c in portal.calls())  # webhook auth: no OAuth token anywhere


def test_a_malformed_event_is_kept_and_does_not_block_the_queue(v2app: App, portal: PortalSim) -> None:
    send(
        portal,
        {"raw": {"type": "ONIMBOTV2MESSAGEADD", "data": {"message": {"id": 5}}}},  # no chat object
        {"kind": "add", "chat_id": 9, "message_id": 90, "text": "after the bad one"},
    )
    wait_drained(v2app, portal)
    assert v2app.api("dialogs/9/messages").json()["items"][0]["text"] == "after the bad one"
    with v2app.db() as db:
        (row,) = db.execute("SELECT event, payload FROM events WHERE event LIKE '%rejected'").fetchall()
    assert row[0] == "ONIMBOTV2MESSAGEADD rejected" and json.loads(row[1])["data"]["message"]["id"] == 5


def test_switch_an_existing_v1_oauth_install_to_v2(tmp_path: Path, portal: PortalSim) -> None:
    app = App(tmp_path, portal, free_port())
    app.start()
    try:
        assert app.install().status_code == 200  # today's v1 install (OAuth tokens in auth.json)
        app.join(1)
        wait_for(lambda: portal.handoffs(1), what="v1 hand-off")
        app.stop()
        app.env_extra = v2_env(portal, webhook=False)  # OAuth: the installed app's tokens, no botToken
        del app.env_extra["B24BOT_V2_BOT_CODE"]  # the default: the v1 code + "_v2", so no clash with the v1 bot
        done = cli(app, "register")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["changed"] is True  # a first v2 registration
        app.start()
        (bot,) = v2_state(portal)["bots"].values()
        assert bot["code"] == "python_interceptor_bot_v2"
        assert bot["owner"] == "app" and v2_state(portal)["bot_tokens"][str(bot["id"])] == ""
        assert portal.get("state")["lines"]["1"]["WELCOME_BOT_ID"] == bot["id"]
        send(portal, {"kind": "join", "chat_id": 2}, {"kind": "add", "chat_id": 2, "message_id": 20, "text": "v2"})
        wait_for(lambda: portal.handoffs(2), what="v2 hand-off")
        wait_drained(app, portal)
        assert [d["chat_id"] for d in app.api("dialogs").json()["items"]] in ([2, 1], [1, 2])
        assert all(c["params"].get("botToken") is None for c in portal.calls("imbot.v2.Event.get"))
    finally:
        app.stop()


def test_a_fresh_oauth_install_in_v2_mode_registers_the_v2_bot_only(tmp_path: Path, portal: PortalSim) -> None:
    app = App(tmp_path, portal, free_port())
    app.env_extra = v2_env(portal, webhook=False)  # OAuth: the install event brings the tokens
    app.start()
    try:
        resp = app.install()
        assert resp.status_code == 200, resp.text
        assert portal.get("state")["bots"] == {} and not portal.calls("imbot.register")  # no v1 bot at all
        (bot,) = v2_state(portal)["bots"].values()
        assert (bot["code"], bot["owner"], bot["eventMode"], bot["type"]) == (BOT_CODE, "app", "fetch", "openline")
        assert resp.json() == {"status": "ok", "bot_id": bot["id"], "lines": [1], "bot_api": "v2"}
        line = portal.get("state")["lines"]["1"]
        assert (line["WELCOME_BOT_ID"], line["WELCOME_BOT_ENABLE"], line["WELCOME_BOT_LEFT"]) == (
            bot["id"],
            "Y",
            "close",
        )
        auth = app.auth_json()
        assert auth is not None and auth["bot_id"] is None and auth["refresh_token"]  # tokens kept, no v1 bot
        with app.db() as db:  # the portal's name in the log, though its tokens were saved only after the bot
            logged = db.execute("SELECT domain FROM portal_log WHERE event = 'v2_register'").fetchall()
        assert [row["domain"] for row in logged] == [auth["domain"]] and auth["domain"]
        assert requests.get(app.url + "healthz", timeout=5).json()["v2"]["bot_id"] == bot["id"]
        # Nothing else typed: the pump runs on the install's tokens and a dialog is stored and handed off.
        send(portal, {"kind": "join", "chat_id": 8}, {"kind": "add", "chat_id": 8, "message_id": 80, "text": "hi"})
        wait_for(lambda: portal.handoffs(8), what="hand-off")
        wait_drained(app, portal)
        assert app.api("dialogs/8/messages").json()["items"][0]["text"] == "hi"
    finally:
        app.stop()


def test_register_reports_a_code_held_by_the_v1_bot(tmp_path: Path, portal: PortalSim) -> None:
    app = App(tmp_path, portal, free_port())
    app.start()
    try:
        assert app.install().status_code == 200
    finally:
        app.stop()
    app.env_extra = v2_env(portal, webhook=False, B24BOT_V2_BOT_CODE="python_interceptor_bot")
    done = cli(app, "register")
    assert done.returncode == 1 and "BOT_CODE_ALREADY_TAKEN" in done.stderr and "B24BOT_V2_BOT_CODE" in done.stderr


def test_a_wrong_webhook_secret_is_refused_and_never_echoed(tmp_path: Path, portal: PortalSim) -> None:
    app = App(tmp_path, portal, free_port())
    user, _ = WEBHOOK.split("/")
    app.env_extra = v2_env(portal, B24BOT_WEBHOOK_URL=f"{portal.url}/rest/{user}/wrongsecret42/")
    done = cli(app, "register")
    assert done.returncode == 1 and "INVALID_CREDENTIALS" in done.stderr and "wrongsecret42" not in done.stderr
    app.env_extra = v2_env(portal, B24BOT_WEBHOOK_URL="ftp://nope/secretvalue77")
    status = cli(app, "status")
    assert "B24BOT_WEBHOOK_URL is not an inbound webhook URL" in status.stdout and "secretvalue77" not in status.stdout


def test_doctor_checks_what_it_can_and_says_what_it_could_not(v2app: App, portal: PortalSim) -> None:
    first = cli(v2app, "doctor", "--json")
    checks = {c["name"]: c["status"] for c in json.loads(first.stdout)}
    assert first.returncode == 0
    assert checks["bot registered"] == checks["welcome bot of the lines"] == checks["event pump"] == "ok"
    assert checks["botToken"] == "ok" and checks["events arrive via Event.get"] == "not checked"
    send(
        portal,
        {"kind": "join", "chat_id": 5},
        {"kind": "add", "chat_id": 5, "message_id": 51, "text": "hi", "client": False},
    )
    wait_for(lambda: v2app.api("dialogs/5").json().get("transferred_at"), what="hand-off")
    wait_drained(v2app, portal)
    after = {c["name"]: c["status"] for c in json.loads(cli(v2app, "doctor", "--json").stdout)}
    assert after["events arrive via Event.get"] == after["hand-off of a v2 bot's chat"] == "ok"
    assert after["operators' messages reach the bot"] == "ok"
    # someone points line 1 at another bot: doctor says so and fails
    requests.post(
        f"{portal.url}/rest/{WEBHOOK}/imopenlines.config.update",
        json={"CONFIG_ID": 1, "PARAMS": {"WELCOME_BOT_ENABLE": "Y", "WELCOME_BOT_ID": 999}},
        timeout=5,
    ).raise_for_status()
    broken = cli(v2app, "doctor")
    assert broken.returncode == 1 and "[FAIL] welcome bot of the lines: line 1: welcome bot is '999'" in broken.stdout


def test_the_running_service_picks_up_a_later_registration(tmp_path: Path, portal: PortalSim) -> None:
    """The role may start the service before `b24bot register`: the pump waits, then starts on its own."""
    app = App(tmp_path, portal, free_port())
    app.env_extra = v2_env(portal)
    app.start()
    try:
        assert requests.get(app.url + "healthz", timeout=5).json()["v2"]["bot_id"] is None
        assert cli(app, "register").returncode == 0
        send(portal, {"kind": "join", "chat_id": 3}, {"kind": "add", "chat_id": 3, "message_id": 30, "text": "hi"})
        wait_drained(app, portal)
        wait_for(lambda: portal.handoffs(3), what="hand-off")
        assert app.count("messages") == 1
        log = (app.data_dir / "bot.log").read_text()
        assert log.count("no imbot.v2 bot is registered") == 1  # warned once, not every poll
    finally:
        app.stop()


def test_the_stdlib_e2e_driver_plays_a_dialog_through_the_poller(v2app: App, portal: PortalSim) -> None:
    """tests/sim/e2e_v2.py is what a Molecule platform without a public URL runs; it must keep working."""
    driver = Path(__file__).resolve().parent / "sim" / "e2e_v2.py"
    argv = ["--api-base", v2app.url + "api/", "--portal", portal.url, "--api-token", API_TOKEN, "--chat-id", "4242"]
    done = subprocess.run([sys.executable, str(driver), *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["dialog"]["chat_id"] == 4242
    portal.stop()  # a restarted portal keeps its v2 bot, as a real one does
    portal.start()
    assert v2_state(portal)["bots"][str(bot_id(portal))]["code"] == BOT_CODE


def test_bot_deleted_in_the_portal_stops_the_pump_and_keeps_the_dialogs(v2app: App, portal: PortalSim) -> None:
    send(portal, {"kind": "add", "chat_id": 6, "message_id": 60, "text": "kept"}, {"kind": "bot_delete"})
    wait_for(lambda: requests.get(v2app.url + "healthz", timeout=5).json()["v2"]["bot_id"] is None, what="bot gone")
    assert v2app.api("dialogs/6/messages").json()["items"][0]["text"] == "kept"
    with v2app.db() as db:
        assert (
            db.execute("SELECT detail FROM portal_log WHERE event = 'bot_deleted'").fetchone()[0].startswith("v2 bot")
        )
    polls = len(portal.calls("imbot.v2.Event.get"))
    time.sleep(1.0)  # five idle intervals: no bot, so no polling
    assert len(portal.calls("imbot.v2.Event.get")) == polls


def test_pump_once_without_a_registration_says_what_to_do(tmp_path: Path, portal: PortalSim) -> None:
    app = App(tmp_path, portal, free_port())
    app.env_extra = v2_env(portal)
    done = cli(app, "pump", "--once")
    assert done.returncode == 1 and "run `b24bot register`" in done.stderr and "Traceback" not in done.stderr


def test_a_backup_keeps_the_bot_token_with_the_database(v2app: App, tmp_path: Path) -> None:
    """A host rebuilt from a backup must talk to the bot it registered: a fresh botToken would not match it."""
    done = cli(v2app, "backup", str(tmp_path / "bk"))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    copy = Path(result["bot_token"])
    assert copy == tmp_path / "bk" / "bot-token" and result["auth"] is None  # webhook auth: no auth.json
    assert copy.read_text() == (v2app.data_dir / "bot-token").read_text()
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
