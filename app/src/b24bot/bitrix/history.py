"""`imopenlines.session.history.get` answers as plain records (the portal's camelCase shapes stay in here)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

# An operator who answers from a phone through the connector appears as the client, with this header.
_OUTGOING_RE = re.compile(r"^\s*=+\s*(Исходящее сообщение|Outgoing message)\b", re.IGNORECASE)


@dataclass(frozen=True)
class HistoryFile:
    file_id: int
    name: str
    size: int | None
    kind: str
    url: str


@dataclass(frozen=True)
class HistoryMessage:
    message_id: int
    chat_id: int
    author_id: int
    author_role: str  # client | operator | bot | system
    author_name: str | None
    text: str
    created_at: str  # ISO 8601 UTC
    via_connector: bool
    file_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class SessionHistory:
    session_id: int
    chat_id: int
    entity_id: str
    entity_data_1: str
    entity_data_2: str
    owner_id: int | None
    messages: list[HistoryMessage]
    files: dict[int, HistoryFile]


def _flag(value: Any) -> bool:
    return value is True or str(value).upper() in ("Y", "TRUE", "1")


def _iso(raw: str) -> str:
    try:
        return datetime.fromisoformat(raw).astimezone(timezone.utc).isoformat(timespec="seconds")
    except (TypeError, ValueError):
        return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _int(raw: Any, default: int = 0) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return default


def is_outgoing_via_connector(text: str) -> bool:
    return bool(_OUTGOING_RE.match(text or ""))


def parse(result: dict[str, Any], bot_id: int | None = None) -> SessionHistory:
    """One session's history; `bot_id` (ours) marks the bot's messages when the portal does not flag them."""
    chat_id = _int(result.get("chatId"))
    users = result.get("users") or {}
    chats = result.get("chat") or {}
    chat = chats.get(str(chat_id)) or (next(iter(chats.values())) if isinstance(chats, dict) and chats else {})
    raw_messages = result.get("message") or {}
    if isinstance(raw_messages, list):
        raw_messages = {str(m.get("id")): m for m in raw_messages if isinstance(m, dict)}
    messages = [_message(raw, users, chat_id, bot_id) for raw in raw_messages.values() if isinstance(raw, dict)]
    return SessionHistory(
        session_id=_int(result.get("sessionId")),
        chat_id=chat_id,
        entity_id=str(chat.get("entityId") or ""),
        entity_data_1=str(chat.get("entityData1") or ""),
        entity_data_2=str(chat.get("entityData2") or ""),
        owner_id=_int(chat.get("owner")) or None,
        messages=sorted(messages, key=lambda m: m.message_id),
        files=_files(result.get("files") or {}),
    )


def _role(sender: int, user: dict[str, Any], text: str, bot_id: int | None) -> tuple[str, bool]:
    """(author role, via connector): an operator answering through the connector shows up as the client."""
    if sender == 0:
        return "system", False
    if _flag(user.get("bot")) or (bot_id is not None and sender == bot_id):
        return "bot", False
    if _flag(user.get("connector")):
        return ("operator", True) if is_outgoing_via_connector(text) else ("client", False)
    return "operator", False


def _message(raw: dict[str, Any], users: dict[str, Any], chat_id: int, bot_id: int | None) -> HistoryMessage:
    sender = _int(raw.get("senderid"))
    user = users.get(str(sender)) or {}
    text = str(raw.get("text") or "")
    role, via_connector = _role(sender, user, text, bot_id)
    params = raw.get("params") or {}
    file_ids = [_int(f) for f in (params.get("fileId") or []) if _int(f)] if isinstance(params, dict) else []
    return HistoryMessage(
        message_id=_int(raw.get("id")),
        chat_id=_int(raw.get("chatid"), chat_id),
        author_id=sender,
        author_role=role,
        author_name=str(user.get("name")) if user.get("name") else None,
        text=text,
        created_at=_iso(str(raw.get("date") or "")),
        via_connector=via_connector,
        file_ids=file_ids,
    )


def _files(raw_files: dict[str, Any]) -> dict[int, HistoryFile]:
    return {
        _int(raw["id"]): HistoryFile(
            file_id=_int(raw["id"]),
            name=str(raw.get("name") or ""),
            size=_int(raw.get("size")) or None,
            kind=str(raw.get("type") or ""),
            url=str(raw.get("urldownload") or raw.get("urlDownload") or ""),
        )
        for raw in raw_files.values()
        if isinstance(raw, dict) and _int(raw.get("id"))
    }
