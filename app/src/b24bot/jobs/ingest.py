"""Verify an event and record it: one SQLite transaction per event, committed before any outbound call."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import datetime, timezone
from typing import Any

from ..bitrix import events as ev
from ..store import reads, writes
from .context import Context

log = logging.getLogger(__name__)

RECORDING_KEY = "recording"  # "off" pauses recording; hand-offs go on so no client waits on a paused bot


class Unverified(Exception):
    """The event's application_token / member_id do not match the installed portal (HTTP 401)."""


def verify(ctx: Context, event: ev.Event) -> dict[str, Any]:
    installed = ctx.tokens.load()
    if installed is None:
        raise Unverified("the app is not installed; events cannot be verified")
    token_ok = hmac.compare_digest(
        str(installed.get("application_token", "")).encode(), event.auth.application_token.encode()
    )
    member_ok = hmac.compare_digest(str(installed.get("member_id", "")).encode(), event.auth.member_id.encode())
    if not (token_ok and member_ok):
        raise Unverified("auth[application_token] or auth[member_id] does not match the installed portal")
    return installed


def _payload(event: ev.Event) -> str:
    return json.dumps(
        {
            "event": event.name,
            "ts": event.ts,
            # The bot's token set (data[BOT]) is useless once masked and is half of every event: not kept.
            "data": ev.redact({k: v for k, v in event.data.items() if k != "BOT"}),
            "auth": {"domain": event.auth.domain, "member_id": event.auth.member_id},
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _dialog(params: dict[str, Any], chat_id: int, seen_at: str) -> writes.DialogRow:
    entity = ev.LinesChat.parse(str(params.get("CHAT_ENTITY_ID", "")))
    return writes.DialogRow(
        chat_id=chat_id,
        dialog_id=str(params.get("DIALOG_ID") or f"chat{chat_id}"),
        connector=entity.connector,
        line_id=entity.line_id,
        external_chat_id=entity.external_chat_id,
        client_user_id=entity.client_user_id,
        title=str(params["CHAT_TITLE"]) if params.get("CHAT_TITLE") else None,
        seen_at=seen_at,
    )


def recording(ctx: Context) -> bool:
    return reads.get_setting(ctx.db.read(), RECORDING_KEY, "on") != "off"


def record_join(ctx: Context, event: ev.Event) -> tuple[str, int | None]:
    """Store the new dialog and queue its hand-off. Returns (outcome, chat_id to hand off or None)."""
    params = event.params
    if not ev.is_lines(params):
        return "ignored: not an Open Lines chat", None
    chat_id = ev.chat_id_of(params)
    dialog = _dialog(params, chat_id, event.time_iso)
    bot_id = ev.int_or_none(params.get("BOT_ID"))
    # Everything is prepared before the write lock is taken: that lock is what every worker queues on.
    received, payload = _now_iso(), _payload(event)
    with ctx.db.write() as conn:
        if not writes.record_event(conn, received, event.name, chat_id, f"join:{chat_id}:{event.ts}", payload):
            return "duplicate", None
        if reads.get_setting(conn, RECORDING_KEY, "on") != "off":
            writes.upsert_dialog(conn, dialog)
            if bot_id:
                writes.upsert_participant(conn, chat_id, bot_id, None, "bot", event.time_iso)
        writes.enqueue_handoff(conn, chat_id, str(ctx.settings.transfer), time.time())
    return "joined", chat_id


def record_message(ctx: Context, event: ev.Event, bot_id: int | None) -> str:
    params, user = event.params, event.user
    if not ev.is_lines(params):
        return "ignored: not an Open Lines chat"
    chat_id = ev.chat_id_of(params)
    message_id = ev.message_id_of(params)
    dialog = _dialog(params, chat_id, event.time_iso)
    session = ev.SessionData.parse(str(params.get("CHAT_ENTITY_DATA_1", "")))
    role = ev.author_role(params, user, bot_id)
    author_id = ev.int_or_none(params.get("AUTHOR_ID")) or ev.int_or_none(params.get("FROM_USER_ID"))
    text = str(params.get("MESSAGE", ""))
    message = writes.MessageRow(
        message_id=message_id,
        chat_id=chat_id,
        session_id=session.session_id,
        author_id=author_id,
        author_role=role,
        text=text,
        created_at=event.time_iso,
    )
    if event.name == ev.MESSAGE_ADD:
        key = f"add:{message_id}"
    elif event.name == ev.MESSAGE_UPDATE:
        key = f"edit:{message_id}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    else:
        key = f"delete:{message_id}"
    files = ev.files_of(params)  # read (and refused when out of range) before the write lock
    received, payload = _now_iso(), _payload(event)
    with ctx.db.write() as conn:
        if reads.get_setting(conn, RECORDING_KEY, "on") == "off":
            return "paused"
        if not writes.record_event(conn, received, event.name, chat_id, key, payload):
            return "duplicate"
        writes.upsert_dialog(conn, dialog)
        if session.session_id:
            started = (
                datetime.fromtimestamp(session.started_at, timezone.utc).isoformat(timespec="seconds")
                if session.started_at
                else None
            )
            writes.upsert_session(
                conn,
                session.session_id,
                chat_id,
                dialog.line_id,
                dialog.connector,
                session.crm_entity_type,
                session.crm_entity_id,
                str(params.get("CHAT_ENTITY_DATA_2", "")),
                started,
                event.time_iso,
            )
            writes.touch_session(conn, session.session_id, event.time_iso, author_id if role == "operator" else None)
            for closed in writes.close_older_sessions(conn, chat_id, session.session_id, event.time_iso):
                # Give the portal a moment to settle the closed session before reading its history.
                writes.schedule_job(conn, "sync", str(closed), time.time() + ctx.settings.sync_after_close)
        if author_id and role != "system":
            name = str(user.get("NAME") or "").strip() or None
            writes.upsert_participant(conn, chat_id, author_id, name, role, event.time_iso)
        for f in files:
            writes.upsert_attachment(
                conn, f["id"], message_id, chat_id, f["name"], f["size"], f["type"], f["url"], event.time_iso
            )
        if event.name == ev.MESSAGE_ADD:
            writes.insert_message(conn, message)
        elif event.name == ev.MESSAGE_UPDATE:
            writes.edit_message(conn, message)
        else:
            writes.delete_message(conn, message)
    return "stored"
