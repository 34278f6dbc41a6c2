"""The simulated portal's Chatbots 2.0 side (`imbot.v2.*`), as documented in b24-rest-docs'
`api-reference/chat-bots/chat-bots-v2/` and its spec files `_assets/simulator/spec/methods/imbot.v2.*.json`.

- `imbot.v2.Bot.register`: `fields.code`/`fields.properties.name` required, `type` and `eventMode` checked,
  `botToken` at most 40 characters and required with webhook auth; idempotent per code for the same owner,
  BOT_CODE_ALREADY_TAKEN for another owner or a v1 bot with that code (one registry for both).
- `imbot.v2.Bot.get`, `imbot.v2.Event.get`: the owner only (the app, or the webhook with the bot's botToken);
  `offset` acknowledges every event with a lower id; unacknowledged events are delivered again; `limit` 1..1000;
  answer `{events: [{eventId, type, date, data}], nextOffset, hasMore}`; data objects are typed JSON.

Control (JSON, under /_sim/v2/): POST events (a list of dialog steps, see `build`), POST audit {"db": path}
(on every acknowledgement, check that the app's database already holds the acknowledged events),
POST skew {"next_offset_plus": N} (nextOffset past the last returned event), GET state.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timezone
from typing import Any

BOT_TYPES = ("bot", "network", "openline", "supervisor", "personal")
TOKEN_MAX = 40
KEPT = ("ONIMBOTV2JOINCHAT", "ONIMBOTV2MESSAGEADD", "ONIMBOTV2MESSAGEUPDATE", "ONIMBOTV2MESSAGEDELETE")


class V2:
    def __init__(self) -> None:
        self.bots: dict[int, dict[str, Any]] = {}
        self.queue: dict[int, list[dict[str, Any]]] = {}  # bot id -> unacknowledged events, by id
        self.acked: dict[int, int] = {}
        self.next_event = 1001
        self.deliveries: list[dict[str, Any]] = []  # per Event.get: offset sent, ids returned
        self.skew = 0  # added to nextOffset: a portal that answers past the events it returned (not documented)
        self.audit_db = ""
        self.audits = 0
        self.violations: list[str] = []
        self.lock = threading.Lock()

    def saved(self) -> dict[str, Any]:
        """What a restarted portal keeps: its bots (the event queue lives in memory here)."""
        return {"bots": {str(k): v for k, v in self.bots.items()}}

    def restore(self, data: dict[str, Any]) -> None:
        for key, bot in (data.get("bots") or {}).items():
            self.bots[int(key)] = bot
            self.queue.setdefault(int(key), [])
            self.acked.setdefault(int(key), 0)

    def state(self) -> dict[str, Any]:
        return {
            "bots": {str(k): {x: y for x, y in v.items() if x != "botToken"} for k, v in self.bots.items()},
            "bot_tokens": {str(k): v.get("botToken", "") for k, v in self.bots.items()},
            "acked": {str(k): v for k, v in self.acked.items()},
            "queued": {str(k): len(v) for k, v in self.queue.items()},
            "next_event": self.next_event,
            "deliveries": self.deliveries,
            "audits": self.audits,
            "violations": self.violations,
        }


def _err(code: str, desc: str, status: int = 400) -> tuple[int, Any]:
    return status, {"error": code, "error_description": desc}


def _bot_view(bot: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "code", "type", "isHidden", "isSupportOpenline", "isReactionsEnabled", "backgroundId", "language")
    view = {k: bot[k] for k in keys}
    view.update(moduleId="rest", eventMode=bot["eventMode"], countMessage=0, countCommand=0, countChat=0, countUser=0)
    return view


def _owner_check(v2: V2, p: dict[str, Any], caller: str) -> tuple[dict[str, Any] | None, tuple[int, Any] | None]:
    if caller == "webhook" and not p.get("botToken"):
        return None, _err("BOT_TOKEN_NOT_SPECIFIED", "Bot token is not specified")
    bot_id = int(p.get("botId") or 0)
    if not bot_id:
        return None, _err("BOT_ID_REQUIRED", "Bot ID is required")
    bot = v2.bots.get(bot_id)
    if bot is None:
        return None, _err("BOT_NOT_FOUND", "Bot not found")
    owner = "webhook" if caller == "webhook" else "app"
    if bot["owner"] != owner or (owner == "webhook" and bot["botToken"] != p.get("botToken")):
        return None, _err("BOT_OWNERSHIP_ERROR", "Bot is registered by another application", 403)
    return bot, None


def register(state: Any, p: dict[str, Any], caller: str) -> tuple[int, Any]:
    v2: V2 = state.v2
    f = p.get("fields")
    if not isinstance(f, dict):
        return _err("INVALID_ARGUMENTS", "fields is required")
    if not f.get("code"):
        return _err("BOT_CODE_REQUIRED", "Bot code is required")
    props = f.get("properties")
    if not isinstance(props, dict) or not props.get("name"):
        return _err("BOT_PROPERTIES_REQUIRED", "Bot properties are required")
    token = str(f.get("botToken") or "")
    if caller == "webhook" and not token:
        return _err("BOT_TOKEN_NOT_SPECIFIED", "Bot token is not specified")
    if len(token) > TOKEN_MAX:
        return _err("BOT_TOKEN_INVALID_LENGTH", "Bot token is too long")
    kind = f.get("type", "bot")
    if kind not in BOT_TYPES:
        return _err("BOT_INVALID_TYPE", "Invalid bot type")
    mode = f.get("eventMode", "fetch")
    if mode not in ("fetch", "webhook"):
        return _err("BOT_INVALID_EVENT_MODE", "Invalid event mode")
    if mode == "webhook" and not f.get("webhookUrl"):
        return _err("BOT_WEBHOOK_URL_REQUIRED", "Webhook URL is required")
    owner = "webhook" if caller == "webhook" else "app"
    code = str(f["code"])
    if code in state.bots:  # a v1 bot: one registry for both APIs
        return _err("BOT_CODE_ALREADY_TAKEN", "Bot code is already taken")
    bot = next((b for b in v2.bots.values() if b["code"] == code), None)
    if bot is not None and bot["owner"] != owner:
        return _err("BOT_CODE_ALREADY_TAKEN", "Bot code is already taken")
    if bot is None:  # idempotent: the same code from the same owner returns the existing bot unchanged
        bot_id = state.next_bot
        state.next_bot += 1
        bot = {
            "id": bot_id,
            "code": code,
            "type": kind,
            "isHidden": bool(f.get("isHidden", False)),
            "isSupportOpenline": f.get("isSupportOpenline") in (True, "Y", "true"),
            "isReactionsEnabled": f.get("isReactionsEnabled", True) in (True, "Y", "true"),
            "backgroundId": None,
            "language": "en",
            "eventMode": mode,
            "owner": owner,
            "botToken": token,
            "webhookUrl": str(f.get("webhookUrl") or ""),
            "name": str(props["name"]),
        }
        v2.bots[bot_id] = bot
        v2.queue[bot_id] = []
        v2.acked[bot_id] = 0
    user = {"id": bot["id"], "active": True, "name": bot["name"], "bot": True, "connector": False, "type": "bot"}
    return 200, {"bot": _bot_view(bot), "users": [user]}


def event_get(state: Any, p: dict[str, Any], caller: str) -> tuple[int, Any]:
    v2: V2 = state.v2
    bot, error = _owner_check(v2, p, caller)
    if error:
        return error
    assert bot is not None
    bot_id = bot["id"]
    limit = max(1, min(1000, int(p.get("limit") or 100)))
    if p.get("offset") is not None:
        offset = int(p["offset"])
        if offset > v2.acked[bot_id]:
            _audit(v2, bot_id, v2.acked[bot_id], offset)
            v2.acked[bot_id] = offset
            v2.queue[bot_id] = [e for e in v2.queue[bot_id] if e["eventId"] >= offset]
    pending = v2.queue[bot_id]
    out = pending[:limit]
    v2.deliveries.append({"offset": p.get("offset"), "ids": [e["eventId"] for e in out]})
    next_offset = out[-1]["eventId"] + 1 + v2.skew if out else v2.acked[bot_id]
    return 200, {"events": out, "nextOffset": next_offset, "hasMore": len(pending) > limit}


def bot_get(state: Any, p: dict[str, Any], caller: str) -> tuple[int, Any]:
    bot, error = _owner_check(state.v2, p, caller)
    if error:
        return error
    assert bot is not None
    return 200, {"bot": _bot_view(bot), "users": [{"id": bot["id"], "name": bot["name"], "bot": True}]}


METHODS = {"imbot.v2.Bot.register": register, "imbot.v2.Event.get": event_get, "imbot.v2.Bot.get": bot_get}


def call(state: Any, method: str, p: dict[str, Any], caller: str) -> tuple[int, Any]:
    handler = METHODS.get(method)
    if handler is None:
        return _err("ERROR_METHOD_NOT_FOUND", f"Method not found: {method}")
    return handler(state, p, caller)


def _audit(v2: V2, bot_id: int, start: int, end: int) -> None:
    """The app just acknowledged ids in [start, end): each kept event must already be in its database."""
    if not v2.audit_db:
        return
    due = [e["eventId"] for e in v2.queue[bot_id] if start <= e["eventId"] < end and e["type"] in KEPT]
    conn = sqlite3.connect(f"file:{v2.audit_db}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(
            "SELECT json_extract(payload, '$.data.V2_EVENT_ID') FROM events"
            " WHERE json_extract(payload, '$.data.V2_EVENT_ID') BETWEEN ? AND ?",
            (start, end - 1),
        ).fetchall()
    finally:
        conn.close()
    stored = {int(r[0]) for r in rows if r[0] is not None}
    v2.audits += 1
    missing = [i for i in due if i not in stored]
    if missing:
        v2.violations.append(f"offset {end} acknowledged unstored events {missing[:10]}")


# ---- events as the portal would produce them (docs: imbot.v2/events/events.md, entities.md) ----------------


def _date(ts: float | None) -> str:
    when = datetime.fromtimestamp(ts, timezone.utc) if ts else datetime.now(timezone.utc)
    return when.isoformat(timespec="seconds")


def _chat(chat_id: int, line: int, client: int, session_id: int | None) -> dict[str, Any]:
    sid = session_id or 0
    return {
        "id": chat_id,
        "dialogId": f"chat{chat_id}",
        "type": "lines",
        "name": f"Guest {client} - Line {line}",
        "entityType": "LINES",
        "entityId": f"telegrambot|{line}|ext{chat_id}|{client}",
        "entityData1": f"Y|LEAD|{1000 + sid}|N|N|{sid}|1773223732|{line}|0|0",
        "entityData2": f"LEAD|{1000 + sid}|COMPANY|0|CONTACT|0|DEAL|0",
        "owner": 0,
        "avatar": "",
        "color": "#ab7761",
    }


def _user(user_id: int, client: bool, name: str) -> dict[str, Any]:
    return {
        "id": user_id,
        "active": True,
        "name": name,
        "firstName": name.split()[0],
        "lastName": "",
        "bot": False,
        "connector": client,
        "externalAuthId": "imconnector" if client else "default",
        "type": "extranet" if client else "employee",
        "idle": False,
        "lastActivityDate": False,
    }


def build(bot: dict[str, Any], step: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """One dialog step -> (type, data). step: kind join|add|update|delete|bot_delete|other, chat_id, message_id,
    text, client (bool), author_id, session_id, line, ts."""
    kind = step["kind"]
    bot_obj = _bot_view(bot)
    if kind == "bot_delete":
        return "ONIMBOTV2DELETE", {"bot": bot_obj}
    chat_id, line, session = int(step["chat_id"]), int(step.get("line", 1)), step.get("session_id", 300)
    client_id = int(step.get("client_user", 5001))
    chat = _chat(chat_id, line, client_id, session)
    client = bool(step.get("client", True))
    author = int(step.get("author_id") or (client_id if client else 7))
    user = _user(author, client, "Guest" if client else "Operator Olga")
    if kind == "join":
        return "ONIMBOTV2JOINCHAT", {"bot": bot_obj, "dialogId": chat["dialogId"], "chat": chat, "user": user}
    if kind == "other":
        return "ONIMBOTV2REACTIONCHANGE", {"bot": bot_obj, "chat": chat, "user": user, "reaction": "like"}
    if kind == "delete":
        return "ONIMBOTV2MESSAGEDELETE", {
            "bot": bot_obj,
            "messageId": int(step["message_id"]),
            "chat": chat,
            "user": user,
        }
    message = {
        "id": int(step["message_id"]),
        "chatId": chat_id,
        "authorId": author,
        "date": _date(step.get("ts")),
        "text": step.get("text", ""),
        "isSystem": bool(step.get("system", False)),
        "uuid": "",
        "forward": None,
        "params": {},
        "viewedByOthers": False,
    }
    name = "ONIMBOTV2MESSAGEADD" if kind == "add" else "ONIMBOTV2MESSAGEUPDATE"
    return name, {"bot": bot_obj, "message": message, "chat": chat, "user": user, "language": "en"}


def control(state: Any, what: str, body: Any) -> bool:
    """POST /_sim/v2/<what>; False when unknown."""
    v2: V2 = state.v2
    if what == "events":
        steps = body if isinstance(body, list) else [body]
        for step in steps:
            bot_id = int(step.get("bot_id") or max(v2.bots))
            raw = step.get("raw")  # an event exactly as given: for malformed-input tests
            etype, data = (raw["type"], raw["data"]) if raw else build(v2.bots[bot_id], step)
            v2.queue[bot_id].append(
                {"eventId": v2.next_event, "type": etype, "date": _date(step.get("ts")), "data": data}
            )
            v2.next_event += 1
        return True
    if what == "skew":
        v2.skew = int(body.get("next_offset_plus", 0))
        return True
    if what == "audit":
        v2.audit_db = str(body.get("db", ""))
        return True
    return False
