"""Events: verified, recorded once, in one transaction; anything else refused with nothing stored."""

from __future__ import annotations

import pytest

import forms
from conftest import App, PortalSim, wait_for


def test_join_stores_the_dialog_and_hands_it_off(installed: App, portal: PortalSim) -> None:
    assert installed.join(1777, line=3, client=599).status_code == 200
    with installed.db() as db:
        row = dict(db.execute("SELECT * FROM dialogs WHERE chat_id = 1777").fetchone())
    assert row["dialog_id"] == "chat1777"
    assert (row["connector"], row["line_id"], row["external_chat_id"], row["client_user_id"]) == (
        "telegrambot",
        "3",
        "ext1777",
        "599",
    )
    (call,) = wait_for(lambda: portal.handoffs(1777), what="hand-off call")
    assert call["method"] == "imopenlines.bot.session.operator" and call["params"] == {"CHAT_ID": 1777}
    dialog = wait_for(lambda: (d := installed.api("dialogs/1777").json())["transferred_at"] and d, what="transferred")
    assert dialog["participants"] == [
        {"user_id": installed.bot_id, "name": None, "role": "bot", "first_seen_at": dialog["first_seen_at"]}
    ]


def test_client_and_operator_messages_with_session(installed: App) -> None:
    installed.join(42)
    assert installed.message(42, 1001, "Нужна помощь с заказом", client=True, session_id=343).status_code == 200
    assert installed.message(42, 1002, "Sure, one moment", client=False, session_id=343).status_code == 200
    items = installed.api("dialogs/42/messages").json()["items"]
    assert [(m["message_id"], m["author_role"], m["author_id"], m["session_id"], m["text"]) for m in items] == [
        (1001, "client", 5001, 343, "Нужна помощь с заказом"),
        (1002, "operator", 7, 343, "Sure, one moment"),
    ]
    dialog = installed.api("dialogs/42").json()
    assert dialog["message_count"] == 2
    assert [(s["session_id"], s["crm_entity_type"], s["crm_entity_id"]) for s in dialog["sessions"]] == [
        (343, "LEAD", "1343")
    ]
    assert sorted((p["user_id"], p["role"], p["name"]) for p in dialog["participants"] if p["role"] != "bot") == [
        (7, "operator", "Operator Olga"),
        (5001, "client", "Guest"),
    ]


def test_repeated_events_store_nothing_twice(installed: App, portal: PortalSim) -> None:
    for _ in range(3):
        assert installed.join(7, ts=1_800_000_000).status_code == 200
        assert installed.message(7, 70, "once").status_code == 200
    assert installed.count("messages") == 1
    assert installed.count("events") == 2
    assert installed.api("dialogs/7").json()["message_count"] == 1
    wait_for(lambda: installed.api("dialogs/7").json()["transferred_at"], what="hand-off")
    assert len(portal.handoffs(7)) == 1


def test_message_without_a_join_still_creates_the_dialog(installed: App) -> None:
    assert installed.message(900, 9000, "the app was down when the bot joined").status_code == 200
    assert installed.api("dialogs/900").json()["connector"] == "telegrambot"


def test_edits_and_deletes_keep_the_original(installed: App) -> None:
    installed.join(8)
    installed.message(8, 80, "first version")
    assert installed.message(8, 80, "second version", kind="edit").status_code == 200
    assert installed.message(8, 80, "Message from 02/26/2026 has been deleted", kind="delete").status_code == 200
    (msg,) = installed.api("dialogs/8/messages").json()["items"]
    assert (msg["text"], msg["edited"], msg["deleted"]) == ("second version", True, True)
    with installed.db() as db:
        assert db.execute("SELECT original_text FROM messages WHERE message_id = 80").fetchone()[0] == "first version"
        history = db.execute("SELECT kind, text FROM message_edits WHERE message_id = 80 ORDER BY id").fetchall()
    assert [tuple(h) for h in history] == [("edit", "second version"), ("delete", None)]
    installed.message(8, 80, "second version", kind="edit")  # the same edit again changes nothing
    assert installed.count("message_edits") == 2


def test_forged_events_are_refused_and_store_nothing(installed: App) -> None:
    p = installed.portal_ids
    assert p is not None
    forged_token = forms.Portal(p.domain, p.member_id, "0" * 32, p.client_endpoint, p.server_endpoint)
    forged_member = forms.Portal(p.domain, "f" * 32, p.application_token, p.client_endpoint, p.server_endpoint)
    before = installed.count("events")
    for forged in (forged_token, forged_member):
        assert installed.message(9, 90, "spoof", portal=forged).status_code == 401
    assert installed.count("events") == before and installed.count("messages") == 0


def test_events_before_install_are_refused(app: App, portal: PortalSim) -> None:
    auth = portal.get("install")
    p = forms.Portal.from_install(auth)
    resp = app.post(forms.message(p, 100, 1, 1, "x", 5, "G", True, "livechat|1|1|5", 3))
    assert resp.status_code == 401


@pytest.mark.parametrize(
    "body, ctype",
    [
        (b"", "application/x-www-form-urlencoded"),
        (b"hello=world", "application/x-www-form-urlencoded"),
        (b'{"event": "ONIMBOTMESSAGEADD"}', "application/json"),
        (b"event=ONIMBOTMESSAGEADD&data[PARAMS][MESSAGE]=x", "application/x-www-form-urlencoded"),
    ],
)
def test_malformed_bodies_are_400_and_store_nothing(installed: App, body: bytes, ctype: str) -> None:
    before = installed.count("events")
    resp = installed.http.post(installed.url, data=body, headers={"Content-Type": ctype}, timeout=10)
    assert resp.status_code == 400 and "error" in resp.json()
    assert installed.count("events") == before


def test_lines_event_missing_its_ids_is_400(installed: App) -> None:
    p = installed.portal_ids
    assert p is not None and installed.bot_id
    pairs = [
        kv
        for kv in forms.message(p, installed.bot_id, 5, 50, "x", 5001, "G", True, "livechat|1|1|5001", 3)
        if not kv[0].startswith(("data[PARAMS][MESSAGE_ID]", "data[PARAMS][ID]"))
    ]
    assert installed.post(pairs).status_code == 400
    assert installed.count("messages") == 0 and installed.count("events") == 0


def test_non_lines_chats_and_unknown_events_are_ignored(installed: App) -> None:
    p = installed.portal_ids
    assert p is not None
    pairs = forms.message(p, installed.bot_id or 0, 11, 110, "private chat", 27, "Svetlana", False, "x|1|1|1", 1)
    pairs = [(k, "THREAD" if k == "data[PARAMS][CHAT_ENTITY_TYPE]" else v) for k, v in pairs]
    assert installed.post(pairs).status_code == 200
    odd = [(k, "ONSOMETHINGNEW" if k == "event" else v) for k, v in pairs]
    assert installed.post(odd).json() == {"status": "ok"}
    assert installed.count("messages") == 0
    assert "ONSOMETHINGNEW ignored" in (installed.data_dir / "bot.log").read_text()


def test_uninstall_drops_tokens_keeps_dialogs(installed: App) -> None:
    installed.join(12)
    installed.message(12, 120, "keep me")
    assert installed.portal_ids is not None
    assert installed.post(forms.uninstall(installed.portal_ids)).status_code == 200
    assert installed.auth_json() is None
    assert installed.count("messages") == 1
    assert installed.message(12, 121, "after uninstall").status_code == 401
    assert installed.http.get(installed.url + "healthz").json()["installed"] is False


def test_bot_delete_is_recorded(installed: App) -> None:
    assert installed.portal_ids is not None and installed.bot_id
    resp = installed.post(forms.bot_delete(installed.portal_ids, installed.bot_id, "python_interceptor_bot"))
    assert resp.status_code == 200
    auth = installed.auth_json()
    assert auth is not None and auth["bot_id"] is None and auth["bot_deleted_at"]


def test_paused_recording_still_hands_off(installed: App, portal: PortalSim) -> None:
    assert installed.api("admin/disable", method="POST").json()["recording"] is False
    installed.join(13)
    installed.message(13, 130, "not recorded while paused")
    wait_for(lambda: portal.handoffs(13), what="hand-off while paused")
    assert installed.count("messages") == 0
    installed.api("admin/enable", method="POST")
    installed.message(13, 131, "recorded again")
    assert installed.count("messages") == 1


def test_logs_carry_no_secrets_or_texts(installed: App) -> None:
    installed.join(14)
    installed.message(14, 140, "very private text")
    log = (installed.data_dir / "bot.log").read_text()
    auth = installed.auth_json()
    assert auth is not None
    for secret in (
        auth["access_token"],
        auth["refresh_token"],
        auth["application_token"],
        "very private text",
        "test-client-secret",
        "api-token-0123",
    ):
        assert secret not in log
    assert "ONIMBOTMESSAGEADD chat=14 stored" in log
    with installed.db() as db:
        payloads = " ".join(r[0] for r in db.execute("SELECT payload FROM events"))
    assert auth["application_token"] not in payloads and "very private text" in payloads
