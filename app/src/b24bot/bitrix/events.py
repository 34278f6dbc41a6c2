"""Parse Bitrix24 event calls: PHP-style form keys (`data[PARAMS][CHAT_ID]`) into typed, validated objects."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

INSTALL = "ONAPPINSTALL"
UNINSTALL = "ONAPPUNINSTALL"
JOIN = "ONIMBOTJOINCHAT"
MESSAGE_ADD = "ONIMBOTMESSAGEADD"
MESSAGE_UPDATE = "ONIMBOTMESSAGEUPDATE"
MESSAGE_DELETE = "ONIMBOTMESSAGEDELETE"
BOT_DELETE = "ONIMBOTDELETE"
KNOWN = frozenset({INSTALL, UNINSTALL, JOIN, MESSAGE_ADD, MESSAGE_UPDATE, MESSAGE_DELETE, BOT_DELETE})

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
# Secrets that arrive inside events; stripped before anything is stored or logged.
SECRET_KEYS = frozenset({"access_token", "refresh_token", "application_token", "client_secret"})


class BadEvent(ValueError):
    """The body is not a Bitrix24 event call (HTTP 400)."""


def unflatten(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """`a[b][c]=v` -> {"a": {"b": {"c": "v"}}}. Numeric keys stay dict keys: in Bitrix24 they are ids."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        m = _KEY_RE.match(key)
        if not m:
            raise BadEvent(f"unparsable form key {key!r}")
        parts = [m.group(1), *re.findall(r"\[([^\[\]]*)\]", m.group(2))]
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise BadEvent(f"form key {key!r} conflicts with a scalar")
            node = child
        if isinstance(node.get(parts[-1]), dict):
            raise BadEvent(f"form key {key!r} conflicts with a nested key")
        node[parts[-1]] = value
    return root


def redact(obj: Any) -> Any:
    """A copy of a parsed payload with every token masked (the event's auth block, the bot's token set)."""
    if isinstance(obj, dict):
        return {k: ("***" if k in SECRET_KEYS and isinstance(v, str) and v else redact(v)) for k, v in obj.items()}
    return obj


@dataclass(frozen=True)
class EventAuth:
    domain: str
    member_id: str
    application_token: str
    client_endpoint: str
    server_endpoint: str
    access_token: str
    refresh_token: str
    expires: int | None
    expires_in: int | None
    scope: str
    user_id: str


@dataclass(frozen=True)
class Event:
    name: str
    ts: int | None
    auth: EventAuth
    data: dict[str, Any]

    @property
    def params(self) -> dict[str, Any]:
        p = self.data.get("PARAMS")
        return p if isinstance(p, dict) else {}

    @property
    def user(self) -> dict[str, Any]:
        u = self.data.get("USER")
        return u if isinstance(u, dict) else {}

    @property
    def time_iso(self) -> str:
        """The event's own time (`ts`), else now; ISO 8601 UTC."""
        when = datetime.fromtimestamp(self.ts, timezone.utc) if self.ts else datetime.now(timezone.utc)
        return when.isoformat(timespec="seconds")


def int_or_none(raw: Any) -> int | None:
    if raw in (None, ""):
        return None
    try:
        return int(str(raw))
    except ValueError:
        return None


def parse(pairs: Iterable[tuple[str, str]]) -> Event:
    """Validate the envelope every Bitrix24 call has; event-specific fields are checked by their readers."""
    body = unflatten(pairs)
    name = body.get("event")
    if not isinstance(name, str) or not name.strip():
        raise BadEvent("missing 'event': not a Bitrix24 event call")
    auth = body.get("auth")
    if not isinstance(auth, dict):
        raise BadEvent("missing 'auth' block")
    data = body.get("data", {})
    if not isinstance(data, dict):
        raise BadEvent("'data' must be a nested object")
    get = lambda k: str(auth.get(k, "") or "")  # noqa: E731
    if not get("application_token") or not get("member_id"):
        raise BadEvent("auth[application_token] and auth[member_id] are required")
    return Event(
        name=name.strip().upper(),
        ts=int_or_none(body.get("ts")),
        auth=EventAuth(
            domain=get("domain").lower(),
            member_id=get("member_id"),
            application_token=get("application_token"),
            client_endpoint=get("client_endpoint"),
            server_endpoint=get("server_endpoint"),
            access_token=get("access_token"),
            refresh_token=get("refresh_token"),
            expires=int_or_none(auth.get("expires")),
            expires_in=int_or_none(auth.get("expires_in")),
            scope=get("scope"),
            user_id=get("user_id"),
        ),
        data=data,
    )


# ---- Open Lines identifiers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinesChat:
    """`CHAT_ENTITY_ID` of an Open Lines chat: connector|line|external chat|client user."""

    connector: str
    line_id: str
    external_chat_id: str
    client_user_id: str

    @classmethod
    def parse(cls, entity_id: str) -> LinesChat:
        parts = entity_id.split("|")
        if len(parts) < 4 or not parts[0]:
            raise BadEvent(f"CHAT_ENTITY_ID {entity_id!r} is not connector|line|chat|user")
        return cls(parts[0], parts[1], parts[2], "|".join(parts[3:]))


@dataclass(frozen=True)
class SessionData:
    """`CHAT_ENTITY_DATA_1`: CRM|type|id|PAUSE|WAIT|SESSION_ID|DATE_CREATE|LINE_ID|..."""

    session_id: int | None
    started_at: int | None
    crm_entity_type: str
    crm_entity_id: str

    @classmethod
    def parse(cls, raw: str) -> SessionData:
        parts = (raw or "").split("|")
        pick = lambda i: parts[i] if len(parts) > i else ""  # noqa: E731
        sid = int_or_none(pick(5))
        return cls(sid if sid else None, int_or_none(pick(6)), pick(1), pick(2))


def is_lines(params: dict[str, Any]) -> bool:
    return str(params.get("CHAT_ENTITY_TYPE", "")).upper() == "LINES"


def chat_id_of(params: dict[str, Any]) -> int:
    """CHAT_ID, else TO_CHAT_ID, else DIALOG_ID `chatNNN`."""
    for key in ("CHAT_ID", "TO_CHAT_ID"):
        cid = int_or_none(params.get(key))
        if cid:
            return cid
    dialog = str(params.get("DIALOG_ID", ""))
    if dialog.startswith("chat") and dialog[4:].isdigit():
        return int(dialog[4:])
    raise BadEvent("event has no CHAT_ID")


def message_id_of(params: dict[str, Any]) -> int:
    mid = int_or_none(params.get("MESSAGE_ID")) or int_or_none(params.get("ID"))
    if not mid:
        raise BadEvent("event has no MESSAGE_ID")
    return mid


def author_role(params: dict[str, Any], user: dict[str, Any], bot_id: int | None) -> str:
    """client (connector user), bot, system or operator."""
    if str(params.get("SYSTEM", "N")).upper() == "Y":
        return "system"
    author = int_or_none(params.get("AUTHOR_ID")) or int_or_none(params.get("FROM_USER_ID")) or 0
    if author == 0:
        return "system"
    if str(user.get("IS_CONNECTOR", "N")).upper() == "Y":
        return "client"
    if str(user.get("IS_BOT", "N")).upper() == "Y" or (bot_id is not None and author == bot_id):
        return "bot"
    return "operator"


def files_of(params: dict[str, Any]) -> list[dict[str, Any]]:
    """`FILES` of a message event, when the portal sends them (not documented for bot events; history has them)."""
    raw = params.get("FILES")
    out = []
    if isinstance(raw, dict):
        for item in raw.values():
            if isinstance(item, dict) and int_or_none(item.get("id")):
                out.append(
                    {
                        "id": int(item["id"]),
                        "name": str(item.get("name", "")),
                        "size": int_or_none(item.get("size")),
                        "type": str(item.get("type", "")),
                        "url": str(item.get("urlDownload") or item.get("urldownload") or ""),
                    }
                )
    return out
