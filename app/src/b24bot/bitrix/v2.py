"""Chatbots 2.0 (`imbot.v2.*`): the calls we make, an inbound-webhook client, and v2 events in v1's shape.

v2 methods take JSON with camelCase keys. Events come from `imbot.v2.Event.get` as typed JSON (`bot`, `chat`,
`message`, `user` objects); `to_v1()` maps the ones we keep onto the parsed `Event` the v1 ingest path reads,
so storage, hand-off, sync, search and export have one implementation.
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


# ---- v2 events -> the v1 ingest path's input ---------------------------------------------------------------


def _epoch(date: Any) -> int | None:
    try:
        return int(datetime.fromisoformat(str(date).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def _yn(value: Any) -> str:
    return "Y" if value is True or str(value).lower() in ("1", "y", "true") else "N"


def _chat_params(chat: dict[str, Any]) -> dict[str, Any]:
    return {
        "CHAT_ID": chat.get("id"),
        "DIALOG_ID": chat.get("dialogId") or "",
        "CHAT_TITLE": chat.get("name") or "",
        "CHAT_ENTITY_TYPE": chat.get("entityType") or "",
        "CHAT_ENTITY_ID": chat.get("entityId") or "",
        "CHAT_ENTITY_DATA_1": chat.get("entityData1") or "",
        "CHAT_ENTITY_DATA_2": chat.get("entityData2") or "",
    }


def _user(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "ID": user.get("id"),
        "NAME": user.get("name") or "",
        "IS_CONNECTOR": _yn(user.get("connector")),
        "IS_BOT": _yn(user.get("bot")),
    }


def to_v1(item: dict[str, Any], auth: ev.EventAuth) -> ev.Event | None:
    """One `Event.get` item as the v1 `Event` ingest reads; None for types we do not keep. Raises BadEvent."""
    kind = str(item.get("type", "")).upper()
    name = _V1_NAME.get(kind)
    if name is None:
        return None
    data = item.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("chat"), dict):
        raise ev.BadEvent(f"{kind} event {item.get('eventId')} has no chat object")
    chat = data["chat"]
    user = data.get("user") if isinstance(data.get("user"), dict) else {}
    bot = data.get("bot") if isinstance(data.get("bot"), dict) else {}
    params = _chat_params(chat)
    message = data.get("message") if isinstance(data.get("message"), dict) else {}
    if kind == JOIN:
        params["BOT_ID"] = bot.get("id")
        params["DIALOG_ID"] = data.get("dialogId") or params["DIALOG_ID"]
    elif kind == MESSAGE_DELETE:
        params.update(MESSAGE_ID=data.get("messageId"), AUTHOR_ID=user.get("id"), MESSAGE="")
    else:
        if not message:
            raise ev.BadEvent(f"{kind} event {item.get('eventId')} has no message object")
        params.update(
            MESSAGE_ID=message.get("id"),
            AUTHOR_ID=message.get("authorId"),
            MESSAGE=message.get("text") or "",
            SYSTEM=_yn(message.get("isSystem")),
        )
    params = {k: ("" if v is None else v) for k, v in params.items()}
    ts = _epoch(message.get("date")) if message.get("date") else _epoch(item.get("date"))
    # V2_EVENT_ID travels into the stored (redacted) payload: which portal event a row came from.
    v1_data = {"PARAMS": params, "USER": _user(user), "V2_EVENT_ID": item.get("eventId")}
    return ev.Event(name=name, ts=ts, auth=auth, data=v1_data)
