"""Parse Bitrix24 event calls: PHP-style form keys (`data[PARAMS][CHAT_ID]`) into typed, validated objects."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..logs import clip

INSTALL = "ONAPPINSTALL"
UNINSTALL = "ONAPPUNINSTALL"
JOIN = "ONIMBOTJOINCHAT"
MESSAGE_ADD = "ONIMBOTMESSAGEADD"
MESSAGE_UPDATE = "ONIMBOTMESSAGEUPDATE"
MESSAGE_DELETE = "ONIMBOTMESSAGEDELETE"
BOT_DELETE = "ONIMBOTDELETE"
KNOWN = frozenset({INSTALL, UNINSTALL, JOIN, MESSAGE_ADD, MESSAGE_UPDATE, MESSAGE_DELETE, BOT_DELETE})

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")  # Bitrix24 event names: ONIMBOTMESSAGEADD and the like
MAX_DEPTH = 16  # Bitrix24 events nest 5 levels deep (data[PARAMS][FILES][id][name]); 500 levels is an attack
INT64_MAX = 2**63 - 1  # what SQLite stores as an integer
MAX_TS = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime can show
# Secrets that arrive inside events; stripped before anything is stored or logged.
SECRET_KEYS = frozenset({"access_token", "refresh_token", "application_token", "client_secret"})


class BadEvent(ValueError):
    """The body is not a Bitrix24 event call (HTTP 400)."""


class OutOfRange(BadEvent):
    """An id or a time beyond what can be stored: refused explicitly (HTTP 400) and counted, never a 500."""


def unflatten(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """`a[b][c]=v` -> {"a": {"b": {"c": "v"}}}. Numeric keys stay dict keys: in Bitrix24 they are ids."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        m = _KEY_RE.match(key)
        if not m:
            raise BadEvent(f"unparsable form key {clip(repr(key), 100)}")
        parts = [m.group(1), *re.findall(r"\[([^\[\]]*)\]", m.group(2))]
        if len(parts) > MAX_DEPTH:
            raise BadEvent(f"form key nests deeper than {MAX_DEPTH} levels")
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise BadEvent(f"form key {clip(repr(key), 100)} conflicts with a scalar")
            node = child
        if isinstance(node.get(parts[-1]), dict):
            raise BadEvent(f"form key {clip(repr(key), 100)} conflicts with a nested key")
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


def iso(ts: int | None) -> str:
    """An event time as ISO 8601 UTC; now when the event has none."""
    when = datetime.fromtimestamp(ts, timezone.utc) if ts else datetime.now(timezone.utc)
    return when.isoformat(timespec="seconds")


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
        return iso(self.ts)


def int_or_none(raw: Any, what: str = "a number") -> int | None:
    """An integer field; None when absent or not a number, OutOfRange when SQLite could not store it."""
    if raw in (None, ""):
        return None
    try:
        value = int(str(raw))
    except ValueError:
        return None
    if not -INT64_MAX <= value <= INT64_MAX:
        raise OutOfRange(f"{what} is out of range")
    return value


def _lenient(raw: Any, hi: int = INT64_MAX) -> int | None:
    """For fields we can do without: out of range reads as absent."""
    try:
        value = int_or_none(raw)
    except OutOfRange:
        return None
    return value if value is None or 0 <= value <= hi else None


def parse(pairs: Iterable[tuple[str, str]]) -> Event:
    """Validate the envelope every Bitrix24 call has; event-specific fields are checked by their readers."""
    body = unflatten(pairs)
    name = body.get("event")
    if not isinstance(name, str) or not name.strip():
        raise BadEvent("missing 'event': not a Bitrix24 event call")
    name = name.strip().upper()
    if not _NAME_RE.match(name):
        raise BadEvent(f"'event' {clip(repr(name), 80)} is not a Bitrix24 event name")
    auth = body.get("auth")
    if not isinstance(auth, dict):
        raise BadEvent("missing 'auth' block")
    data = body.get("data", {})
    if not isinstance(data, dict):
        raise BadEvent("'data' must be a nested object")
    get = lambda k: str(auth.get(k, "") or "")  # noqa: E731
    if not get("application_token") or not get("member_id"):
        raise BadEvent("auth[application_token] and auth[member_id] are required")
    ts = int_or_none(body.get("ts"), "ts")
    if ts is not None and not 0 <= ts <= MAX_TS:
        raise OutOfRange("ts is out of range")
    return Event(
        name=name,
        ts=ts,
        auth=EventAuth(
            domain=get("domain").lower(),
            member_id=get("member_id"),
            application_token=get("application_token"),
            client_endpoint=get("client_endpoint"),
            server_endpoint=get("server_endpoint"),
            access_token=get("access_token"),
            refresh_token=get("refresh_token"),
            expires=_lenient(auth.get("expires")),
            expires_in=_lenient(auth.get("expires_in")),
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
            raise BadEvent(f"CHAT_ENTITY_ID {clip(repr(entity_id), 100)} is not connector|line|chat|user")
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
        sid = _lenient(pick(5))
        return cls(sid if sid else None, _lenient(pick(6), MAX_TS), pick(1), pick(2))


def is_lines(params: dict[str, Any]) -> bool:
    return str(params.get("CHAT_ENTITY_TYPE", "")).upper() == "LINES"


def chat_id_of(params: dict[str, Any]) -> int:
    """CHAT_ID, else TO_CHAT_ID, else DIALOG_ID `chatNNN`."""
    for key in ("CHAT_ID", "TO_CHAT_ID"):
        cid = int_or_none(params.get(key), key)
        if cid:
            return cid
    dialog = str(params.get("DIALOG_ID", ""))
    if dialog.startswith("chat") and dialog[4:].isdigit():
        return int_or_none(dialog[4:], "DIALOG_ID") or 0
    raise BadEvent("event has no CHAT_ID")


def message_id_of(params: dict[str, Any]) -> int:
    mid = int_or_none(params.get("MESSAGE_ID"), "MESSAGE_ID") or int_or_none(params.get("ID"), "ID")
    if not mid:
        raise BadEvent("event has no MESSAGE_ID")
    return mid


def author_role(params: dict[str, Any], user: dict[str, Any], bot_id: int | None) -> str:
    """The role of a v1 message's author, from its PARAMS and USER."""
    yes = lambda v: str(v).upper() == "Y"  # noqa: E731
    author = int_or_none(params.get("AUTHOR_ID"), "AUTHOR_ID") or int_or_none(params.get("FROM_USER_ID"), "FROM") or 0
    return role_of(
        yes(params.get("SYSTEM", "N")), author, yes(user.get("IS_CONNECTOR", "N")), yes(user.get("IS_BOT", "N")), bot_id
    )


def role_of(system: bool, author: int, connector: bool, is_bot: bool, bot_id: int | None) -> str:
    """client (connector user), bot, system or operator: one rule for both bot APIs."""
    if system or author == 0:
        return "system"
    if connector:
        return "client"
    if is_bot or (bot_id is not None and author == bot_id):
        return "bot"
    return "operator"
