"""Verify an event and record its parsed value: one SQLite transaction per event, committed before any outbound call."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sqlite3
import time
from datetime import datetime, timezone
from typing import Any

from ..bitrix import events as ev
from ..bitrix.lines import Dialog, LinesEvent
from ..store import reads, writes
from .context import Context

log = logging.getLogger(__name__)

IGNORED = "ignored: not an Open Lines chat"
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


def _payload(event: LinesEvent) -> str:
    return json.dumps(event.raw, ensure_ascii=False, separators=(",", ":"))


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _dialog(d: Dialog, seen_at: str) -> writes.DialogRow:
    return writes.DialogRow(
        chat_id=d.chat_id,
        dialog_id=d.dialog_id,
        connector=d.entity.connector,
        line_id=d.entity.line_id,
        external_chat_id=d.entity.external_chat_id,
        client_user_id=d.entity.client_user_id,
        title=d.title,
        seen_at=seen_at,
    )


def recording(ctx: Context) -> bool:
    return reads.get_setting(ctx.db.read(), RECORDING_KEY, "on") != "off"


def record(ctx: Context, event: LinesEvent | None) -> tuple[str, int | None]:
    """Store one parsed Open Lines event (None: the chat is not an Open Lines chat).
    Returns (outcome, chat_id to hand off or None)."""
    if event is None:
        return IGNORED, None
    if event.name == ev.JOIN:
        return record_join(ctx, event)
    return record_message(ctx, event), None


def record_join(ctx: Context, event: LinesEvent) -> tuple[str, int | None]:
    """Store the new dialog and queue its hand-off. Returns (outcome, chat_id to hand off or None)."""
    chat_id = event.dialog.chat_id
    dialog = _dialog(event.dialog, event.at)
    # Everything is prepared before the write lock is taken: that lock is what every worker queues on.
    received, payload = _now_iso(), _payload(event)
    with ctx.db.write() as conn:
        if not writes.record_event(conn, received, event.name, chat_id, f"join:{chat_id}:{event.ts}", payload):
            return "duplicate", None
        if reads.get_setting(conn, RECORDING_KEY, "on") != "off":
            writes.upsert_dialog(conn, dialog)
            if event.bot_id:
                writes.upsert_participant(conn, chat_id, event.bot_id, None, "bot", event.at)
        writes.enqueue_handoff(conn, chat_id, str(ctx.settings.transfer), time.time())
    return "joined", chat_id


def _dedup_key(event: LinesEvent) -> str:
    if event.name == ev.MESSAGE_ADD:
        return f"add:{event.message_id}"
    if event.name == ev.MESSAGE_UPDATE:
        return f"edit:{event.message_id}:{hashlib.sha256(event.text.encode()).hexdigest()[:16]}"
    return f"delete:{event.message_id}"


def _message(event: LinesEvent) -> writes.MessageRow:
    return writes.MessageRow(
        message_id=event.message_id,
        chat_id=event.dialog.chat_id,
        session_id=event.dialog.session.session_id,
        author_id=event.author_id,
        author_role=event.role,
        text=event.text,
        created_at=event.at,
    )


def record_message(ctx: Context, event: LinesEvent) -> str:
    """Store a message added, edited or deleted, with its dialog, session, author and files."""
    chat_id = event.dialog.chat_id
    dialog, message = _dialog(event.dialog, event.at), _message(event)
    key, received, payload = _dedup_key(event), _now_iso(), _payload(event)
    with ctx.db.write() as conn:
        if reads.get_setting(conn, RECORDING_KEY, "on") == "off":
            return "paused"
        if not writes.record_event(conn, received, event.name, chat_id, key, payload):
            return "duplicate"
        writes.upsert_dialog(conn, dialog)
        if event.dialog.session.session_id:
            _session(ctx, conn, event, dialog, event.dialog.session.session_id)
        if event.author_id and event.role != "system":
            writes.upsert_participant(conn, chat_id, event.author_id, event.author_name, event.role, event.at)
        for f in event.files:
            writes.upsert_attachment(conn, f.id, event.message_id, chat_id, f.name, f.size, f.type, f.url, event.at)
        if event.name == ev.MESSAGE_ADD:
            writes.insert_message(conn, message)
        elif event.name == ev.MESSAGE_UPDATE:
            writes.edit_message(conn, message)
        else:
            writes.delete_message(conn, message)
    return "stored"


def _session(ctx: Context, conn: sqlite3.Connection, event: LinesEvent, dialog: writes.DialogRow, sid: int) -> None:
    """The message's session: recorded, touched, and the chat's older sessions closed (each synced later)."""
    session, chat_id = event.dialog.session, event.dialog.chat_id
    started = ev.iso(session.started_at) if session.started_at else None
    writes.upsert_session(
        conn,
        sid,
        chat_id,
        dialog.line_id,
        dialog.connector,
        session.crm_entity_type,
        session.crm_entity_id,
        event.dialog.entity_data_2,
        started,
        event.at,
    )
    writes.touch_session(conn, sid, event.at, event.author_id if event.role == "operator" else None)
    for closed in writes.close_older_sessions(conn, chat_id, sid, event.at):
        # Give the portal a moment to settle the closed session before reading its history.
        writes.schedule_job(conn, "sync", str(closed), time.time() + ctx.settings.sync_after_close)
