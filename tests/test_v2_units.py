"""Chatbots 2.0 pieces on their own: v2 events parsed into the ingest value, nested writes, and the v2 settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import portal_v2
import pytest

from b24bot import config
from b24bot.bitrix import events as ev
from b24bot.bitrix import v2
from b24bot.store import Database, StorageError, reads, writes

AUTH = ev.EventAuth("portal.example", "m1", "", "", "", "", "", None, None, "", "")
BOT = {
    "id": 456,
    "code": "support_bot",
    "type": "openline",
    "isHidden": False,
    "isSupportOpenline": True,
    "isReactionsEnabled": True,
    "backgroundId": None,
    "language": "en",
    "eventMode": "fetch",
}


def as_webhook(v: Any) -> Any:
    """Webhook mode sends every scalar as a string (http_build_query): "1"/"0" for booleans, "" for null."""
    if isinstance(v, dict):
        return {k: as_webhook(x) for k, x in v.items()}
    if isinstance(v, bool):
        return "1" if v else "0"
    return "" if v is None else str(v)


@pytest.mark.parametrize("typed", [True, False], ids=["fetch JSON", "webhook strings"])
def test_v2_events_parse_into_the_value_ingest_stores(typed: bool) -> None:
    def item(step: dict[str, Any]) -> dict[str, Any]:
        etype, data = portal_v2.build(BOT, step)
        return {
            "eventId": 7,
            "type": etype,
            "date": "2026-03-11T10:00:00+03:00",
            "data": data if typed else as_webhook(data),
        }

    join = v2.to_lines(item({"kind": "join", "chat_id": 42, "session_id": 343}), AUTH, 456)
    assert join is not None and join.name == ev.JOIN
    assert (join.dialog.chat_id, join.bot_id, join.dialog.entity.line_id) == (42, 456, "1")
    step = {"kind": "add", "chat_id": 42, "message_id": 9, "text": "hi", "session_id": 343, "ts": 1773212400}
    msg = v2.to_lines(item(step), AUTH, 456)
    assert msg is not None and msg.name == ev.MESSAGE_ADD and (msg.message_id, msg.text) == (9, "hi")
    assert (msg.role, msg.author_name, msg.dialog.session.session_id) == ("client", "Guest", 343)
    assert msg.at == "2026-03-11T07:00:00+00:00" and msg.raw["data"]["V2_EVENT_ID"] == 7
    assert "bot" not in msg.raw["data"]  # the bot's token set is never kept
    op = v2.to_lines(item({"kind": "add", "chat_id": 42, "message_id": 10, "client": False}), AUTH, 456)
    assert op is not None and (op.role, op.author_id) == ("operator", 7)
    own = v2.to_lines(
        item({"kind": "add", "chat_id": 42, "message_id": 11, "client": False, "author_id": 456}), AUTH, 456
    )
    assert own is not None and own.role == "bot"
    gone = v2.to_lines(item({"kind": "delete", "chat_id": 42, "message_id": 10}), AUTH, 456)
    assert gone is not None and gone.name == ev.MESSAGE_DELETE and gone.message_id == 10
    assert v2.to_lines(item({"kind": "other", "chat_id": 42}), AUTH, 456) is None  # reactions are not ours to keep
    with pytest.raises(ev.BadEvent):
        v2.to_lines({"eventId": 8, "type": "ONIMBOTV2MESSAGEADD", "data": {"message": {"id": 1}}}, AUTH, 456)


def test_a_nested_write_that_fails_rolls_back_alone(tmp_path: Path) -> None:
    db = Database(tmp_path / "d.db")
    with db.write() as conn:
        writes.set_setting(conn, "outer", "1")
        with pytest.raises(ev.BadEvent), db.write() as inner:
            writes.set_setting(inner, "inner", "1")
            raise ev.BadEvent("this part only")
        with db.write() as inner:
            writes.set_setting(inner, "kept", "1")
    conn = db.read()
    assert [reads.get_setting(conn, k) for k in ("outer", "inner", "kept")] == ["1", "", "1"]
    with pytest.raises(StorageError), db.write() as conn:  # and a failing outer write drops its nested parts
        with db.write() as inner:
            writes.set_setting(inner, "nested", "1")
        conn.execute("INSERT INTO no_such_table VALUES (1)")
    assert reads.get_setting(db.read(), "nested") == ""


def test_v2_settings_are_checked_and_secrets_never_echoed() -> None:
    s = config.load({"B24BOT_BOT_API": "v3", "B24BOT_PUMP_LIMIT": "5000"})
    assert s.bot_api == "v1" and s.pump_limit == 1000
    assert any("B24BOT_BOT_API='v3'" in p for p in s.problems) and any("1000" in p for p in s.problems)
    hook = "https://portal.example/rest/1/s3cr3tvalue/"
    assert config.load({"B24BOT_WEBHOOK_URL": hook}).webhook_url == ""  # v1 has no use for it
    s = config.load({"B24BOT_BOT_API": "v2", "B24BOT_WEBHOOK_URL": hook, "B24BOT_EVENT_MODE": "webhook"})
    assert s.webhook_url == hook and any("use B24BOT_EVENT_MODE=fetch" in p for p in s.problems)
    s = config.load({"B24BOT_BOT_API": "v2", "B24BOT_WEBHOOK_URL": "https://portal.example/s3cr3tvalue"})
    assert s.webhook_url == "" and not any("s3cr3tvalue" in p for p in s.problems)
    s = config.load({"B24BOT_BOT_API": "v2", "B24BOT_DATA_DIR": "/srv/x"})
    assert (s.event_mode, s.pump_idle_s, s.pump_busy_s) == ("fetch", 5.0, 2.0)
    assert s.bot_token_path == Path("/srv/x/bot-token") and s.v2_bot_code == "python_interceptor_bot_v2"
    assert config.load({"B24BOT_BOT_CODE": "shop"}).v2_bot_code == "shop_v2"
    assert config.load({"B24BOT_BOT_CODE": "shop", "B24BOT_V2_BOT_CODE": "shop2"}).v2_bot_code == "shop2"


def test_what_v2_fetch_with_a_webhook_does_not_need_is_not_a_problem() -> None:
    hook = "https://portal.example/rest/1/s3cr3tvalue/"
    v1 = config.load({"B24BOT_API_TOKEN": "t"}).problems
    assert len(v1) == 3  # client id, client secret, handler URL
    assert config.load({"B24BOT_API_TOKEN": "t", "B24BOT_BOT_API": "v2", "B24BOT_WEBHOOK_URL": hook}).problems == ()
    oauth = config.load({"B24BOT_API_TOKEN": "t", "B24BOT_BOT_API": "v2"}).problems
    assert len(oauth) == 2 and all("CLIENT" in p for p in oauth)  # OAuth still needs the app's credentials
