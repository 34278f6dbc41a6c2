"""An Open Lines event parsed once, at the edge: the typed value ingest stores, whichever bot API it came by.

`from_v1()` reads a v1 event call (PHP-form params, parsed by `events.parse`); `v2.to_lines()` reads a
Chatbots 2.0 event. Both raise BadEvent (or OutOfRange) for what cannot be stored, before any write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .events import (
    JOIN,
    Event,
    EventAuth,
    LinesChat,
    SessionData,
    author_role,
    chat_id_of,
    int_or_none,
    is_lines,
    message_id_of,
    redact,
)


@dataclass(frozen=True)
class Attachment:
    id: int
    name: str
    size: int | None
    type: str
    url: str


@dataclass(frozen=True)
class Dialog:
    """The Open Lines chat an event belongs to, with its session as the chat's entity data tells it."""

    chat_id: int
    dialog_id: str
    title: str | None
    entity: LinesChat
    session: SessionData
    entity_data_2: str

    @classmethod
    def of(cls, chat_id: int, dialog_id: str, title: Any, entity_id: str, data_1: str, data_2: str) -> Dialog:
        return cls(
            chat_id=chat_id,
            dialog_id=dialog_id or f"chat{chat_id}",
            title=str(title) if title else None,
            entity=LinesChat.parse(entity_id),
            session=SessionData.parse(data_1),
            entity_data_2=data_2,
        )


@dataclass(frozen=True)
class LinesEvent:
    """A join, or a message added, edited or deleted, in an Open Lines chat: everything ingest stores,
    and the event itself with its secrets masked (`raw`, what the events table keeps)."""

    name: str  # events.JOIN, MESSAGE_ADD, MESSAGE_UPDATE or MESSAGE_DELETE: the v1 names, for v2 events too
    ts: int | None
    at: str  # `ts` as ISO 8601 UTC, else the time it was parsed
    dialog: Dialog
    raw: dict[str, Any]
    bot_id: int | None = None  # a join: the bot that joined
    message_id: int = 0  # a message event: never 0
    author_id: int | None = None
    author_name: str | None = None
    role: str = "system"  # client, operator, bot or system
    text: str = ""
    files: tuple[Attachment, ...] = ()


def raw_of(name: str, ts: int | None, auth: EventAuth, data: dict[str, Any], bot_key: str) -> dict[str, Any]:
    """What the events table keeps of an event: no auth tokens, and no bot block (its token set is half
    of every event and useless once masked)."""
    return {
        "event": name,
        "ts": ts,
        "data": redact({k: v for k, v in data.items() if k != bot_key}),
        "auth": {"domain": auth.domain, "member_id": auth.member_id},
    }


def files_of(params: dict[str, Any]) -> tuple[Attachment, ...]:
    """`FILES` of a message event, when the portal sends them (not documented for bot events; history has them)."""
    raw = params.get("FILES")
    if not isinstance(raw, dict):
        return ()
    return tuple(
        Attachment(
            id=int(item["id"]),
            name=str(item.get("name", "")),
            size=int_or_none(item.get("size"), "FILES size"),
            type=str(item.get("type", "")),
            url=str(item.get("urlDownload") or item.get("urldownload") or ""),
        )
        for item in raw.values()
        if isinstance(item, dict) and int_or_none(item.get("id"), "FILES id")
    )


def from_v1(event: Event, bot_id: int | None) -> LinesEvent | None:
    """A v1 join or message event; None when its chat is not an Open Lines chat. `bot_id` (ours) tells
    the bot's own messages from an operator's when the portal does not flag them."""
    p = event.params
    if not is_lines(p):
        return None
    dialog = Dialog.of(
        chat_id_of(p),
        str(p.get("DIALOG_ID") or ""),
        p.get("CHAT_TITLE"),
        str(p.get("CHAT_ENTITY_ID", "")),
        str(p.get("CHAT_ENTITY_DATA_1", "")),
        str(p.get("CHAT_ENTITY_DATA_2", "")),
    )
    raw = raw_of(event.name, event.ts, event.auth, event.data, "BOT")
    at = event.time_iso
    if event.name == JOIN:
        return LinesEvent(event.name, event.ts, at, dialog, raw, bot_id=int_or_none(p.get("BOT_ID")))
    user = event.user
    return LinesEvent(
        event.name,
        event.ts,
        at,
        dialog,
        raw,
        message_id=message_id_of(p),
        author_id=int_or_none(p.get("AUTHOR_ID")) or int_or_none(p.get("FROM_USER_ID")),
        author_name=str(user.get("NAME") or "").strip() or None,
        role=author_role(p, user, bot_id),
        text=str(p.get("MESSAGE", "")),
        files=files_of(p),
    )
