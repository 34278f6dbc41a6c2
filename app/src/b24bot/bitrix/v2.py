"""Chatbots 2.0 (`imbot.v2.*`): the calls we make, an inbound-webhook client, and v2 events in v1's shape.

v2 methods take JSON with camelCase keys. Events come from `imbot.v2.Event.get` as typed JSON (`bot`, `chat`,
`message`, `user` objects); `to_lines()` parses the ones we keep into the same `lines.LinesEvent` a v1 event
call becomes, so storage, hand-off, sync, search and export have one implementation.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from . import events as ev
from . import lines
from .errors import RATE_LIMIT_CODES, BitrixError
from .ratelimit import LeakyBucket
from .rest import RestClient, post_json, result_of

log = logging.getLogger(__name__)

JOIN = "ONIMBOTV2JOINCHAT"
MESSAGE_ADD = "ONIMBOTV2MESSAGEADD"
MESSAGE_UPDATE = "ONIMBOTV2MESSAGEUPDATE"
MESSAGE_DELETE = "ONIMBOTV2MESSAGEDELETE"
BOT_DELETE = "ONIMBOTV2DELETE"
_V1_NAME = {
    JOIN: ev.JOIN,
    MESSAGE_ADD: ev.MESSAGE_ADD,
    MESSAGE_UPDATE: ev.MESSAGE_UPDATE,
    MESSAGE_DELETE: ev.MESSAGE_DELETE,
}
BOT_TOKEN_MAX = 40  # longer tokens are refused with BOT_TOKEN_INVALID_LENGTH
EVENT_LIMIT_MAX = 1000

Call = Callable[[str, dict[str, Any]], Any]


def new_bot_token() -> str:
    """32 URL-safe characters: well under the 40 the portal accepts."""
    return secrets.token_urlsafe(24)


# ---- inbound webhook auth ----------------------------------------------------------------------------------


class WebhookClient(RestClient):
    """Calls through an inbound webhook (`https://portal/rest/<user>/<secret>/`): no OAuth tokens, no install.

    The URL is the credential: it is never logged, and no redirect is followed (it could carry the secret
    to another host). Rate-limit answers are retried like RestClient's; `batch()` is inherited.
    """

    def __init__(
        self,
        url: str,
        limiter: LeakyBucket | None = None,
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        super().__init__(tokens=None, limiter=limiter, timeout=timeout, session=session)  # type: ignore[arg-type]
        self.url = url if url.endswith("/") else url + "/"

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        attempt = 0
        while True:
            if self.limiter is not None:
                self.limiter.acquire()
            try:
                return self._post(method, params or {})
            except BitrixError as exc:
                if exc.code in RATE_LIMIT_CODES and attempt < len(self.backoff):
                    if self.limiter is not None:
                        self.limiter.penalize()
                    time.sleep(self.backoff[attempt])
                    attempt += 1
                    continue
                raise

    def _post(self, method: str, params: dict[str, Any]) -> Any:
        return result_of(post_json(self.session, self.url + method, params, self.timeout, method), method)


# ---- the v2 methods we use ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventBatch:
    events: list[dict[str, Any]]
    next_offset: int | None
    has_more: bool


class BotApi:
    """imbot.v2 calls for one bot. `bot_token` only with webhook auth (OAuth binds the bot to the app)."""

    def __init__(self, call: Call, bot_token: str = "") -> None:
        self._call = call
        self.bot_token = bot_token

    def _params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, "botToken": self.bot_token} if self.bot_token else params

    def register(self, code: str, name: str, event_mode: str = "fetch", webhook_url: str = "") -> int:
        fields: dict[str, Any] = {
            "code": code,
            "type": "openline",
            "isSupportOpenline": True,
            "eventMode": event_mode,
            "properties": {"name": name, "workPosition": "Transfers you to an operator"},
        }
        if event_mode == "webhook":
            fields["webhookUrl"] = webhook_url
        if self.bot_token:
            fields["botToken"] = self.bot_token
        result = self._call("imbot.v2.Bot.register", {"fields": fields})
        try:
            return int(result["bot"]["id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BitrixError("BAD_RESPONSE", "imbot.v2.Bot.register: no bot.id in the answer") from exc

    def get(self, bot_id: int) -> dict[str, Any]:
        result = self._call("imbot.v2.Bot.get", self._params({"botId": bot_id}))
        bot = result.get("bot") if isinstance(result, dict) else None
        if not isinstance(bot, dict):
            raise BitrixError("BAD_RESPONSE", "imbot.v2.Bot.get: no bot in the answer")
        return bot

    def events(self, bot_id: int, offset: int | None, limit: int) -> EventBatch:
        """One `imbot.v2.Event.get`. Passing `offset` acknowledges every event with a lower id."""
        params: dict[str, Any] = {"botId": bot_id, "limit": max(1, min(EVENT_LIMIT_MAX, limit))}
        if offset is not None:
            params["offset"] = offset
        result = self._call("imbot.v2.Event.get", self._params(params))
        if not isinstance(result, dict) or not isinstance(result.get("events"), list):
            raise BitrixError("BAD_RESPONSE", "imbot.v2.Event.get: no events list in the answer")
        items = [e for e in result["events"] if isinstance(e, dict) and ev.int_or_none(e.get("eventId"))]
        return EventBatch(items, ev.int_or_none(result.get("nextOffset")), bool(result.get("hasMore")))


# ---- v2 events -> the typed value ingest stores ------------------------------------------------------------


def _epoch(date: Any) -> int | None:
    try:
        return int(datetime.fromisoformat(str(date).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def _yes(value: Any) -> bool:
    """A v2 boolean: JSON true in fetch mode, "1" (or "Y"/"true") in webhook mode's form strings."""
    return value is True or str(value).lower() in ("1", "y", "true")


def _dict(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _dialog(chat: dict[str, Any], dialog_id: Any) -> lines.Dialog:
    chat_id = ev.int_or_none(chat.get("id"), "chat.id")
    if not chat_id:
        raise ev.BadEvent("event has no chat.id")
    return lines.Dialog.of(
        chat_id,
        str(dialog_id or chat.get("dialogId") or ""),
        chat.get("name"),
        str(chat.get("entityId") or ""),
        str(chat.get("entityData1") or ""),
        str(chat.get("entityData2") or ""),
    )


def to_lines(item: dict[str, Any], auth: ev.EventAuth, bot_id: int, ts: int | None = None) -> lines.LinesEvent | None:
    """One `Event.get` item (or webhook call); None for types we do not keep and chats not of Open Lines.
    `ts` stands in when the event carries no date (a webhook join). Raises BadEvent."""
    kind = str(item.get("type", "")).upper()
    name = _V1_NAME.get(kind)
    if name is None:
        return None
    data = item.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("chat"), dict):
        raise ev.BadEvent(f"{kind} event {item.get('eventId')} has no chat object")
    chat, user, message = data["chat"], _dict(data, "user"), _dict(data, "message")
    if str(chat.get("entityType") or "").upper() != "LINES":
        return None
    if kind not in (JOIN, MESSAGE_DELETE) and not message:
        raise ev.BadEvent(f"{kind} event {item.get('eventId')} has no message object")
    ts = (_epoch(message["date"]) if message.get("date") else _epoch(item.get("date"))) or ts
    dialog = _dialog(chat, data.get("dialogId") if kind == JOIN else None)
    # V2_EVENT_ID travels into the stored (redacted) payload: which portal event a row came from.
    raw = lines.raw_of(name, ts, auth, {**data, "V2_EVENT_ID": item.get("eventId")}, "bot")
    at = ev.iso(ts)
    if kind == JOIN:
        return lines.LinesEvent(name, ts, at, dialog, raw, bot_id=ev.int_or_none(_dict(data, "bot").get("id")))
    if kind == MESSAGE_DELETE:
        mid, author, system = data.get("messageId"), user.get("id"), False
    else:
        mid, author, system = message.get("id"), message.get("authorId"), _yes(message.get("isSystem"))
    message_id = ev.int_or_none(mid, "messageId")
    if not message_id:
        raise ev.BadEvent(f"{kind} event {item.get('eventId')} has no message id")
    author_id = ev.int_or_none(author, "authorId")
    return lines.LinesEvent(
        name,
        ts,
        at,
        dialog,
        raw,
        message_id=message_id,
        author_id=author_id,
        author_name=str(user.get("name") or "").strip() or None,
        role=ev.role_of(system, author_id or 0, _yes(user.get("connector")), _yes(user.get("bot")), bot_id),
        text=str(message.get("text") or ""),
    )
