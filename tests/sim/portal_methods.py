"""The REST methods the simulated portal answers, one small function per method, grouped by family.

Each method takes the state and the call's params and answers (HTTP status, result or error body); the caller
holds the lock. `call` dispatches by name, including the sub-calls of `batch`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import portal_v2  # the imbot.v2 side (Chatbots 2.0)
from portal_sessions import activity_list, dialog_get, limit_window
from portal_state import State

Answer = tuple[int, Any]

# ---- app and bots ------------------------------------------------------------------------------------------


def app_info(state: State, p: dict[str, Any]) -> Answer:
    return 200, {"ID": 7, "CODE": state.client_id, "VERSION": 1, "STATUS": "L", "INSTALLED": True}


def imbot_register(state: State, p: dict[str, Any]) -> Answer:
    code = p["CODE"]
    if not p.get("EVENT_HANDLER") and not p.get("EVENT_MESSAGE_ADD"):
        return 400, {"error": "EVENT_MESSAGE_ADD_ERROR", "error_description": "Handler isn't specified"}
    if code not in state.bots:
        state.bots[code] = state.next_bot
        state.next_bot += 1
    return 200, state.bots[code]


def event_bind(state: State, p: dict[str, Any]) -> Answer:
    return 200, True


# ---- Open Lines settings -----------------------------------------------------------------------------------

LINE_NOT_FOUND = 400, {"error": "CONFIG_NOT_FOUND", "error_description": "Open line not found"}


def config_list_get(state: State, p: dict[str, Any]) -> Answer:
    return 200, [{"ID": str(i), "LINE_NAME": f"Line {i}"} for i in sorted(state.lines)]


def config_get(state: State, p: dict[str, Any]) -> Answer:
    line = int(p["CONFIG_ID"])
    if line not in state.lines:
        return LINE_NOT_FOUND
    got = {k: str(v) for k, v in state.lines[line].items()}
    return 200, {"ID": str(line), "ACTIVE": "Y", "LINE_NAME": f"Line {line}", **got}


def config_update(state: State, p: dict[str, Any]) -> Answer:
    line = int(p["CONFIG_ID"])
    if line not in state.lines:
        return LINE_NOT_FOUND
    state.lines[line] = dict(p["PARAMS"])
    return 200, True


# ---- Open Lines sessions -----------------------------------------------------------------------------------


def session_operator(state: State, p: dict[str, Any]) -> Answer:
    """imopenlines.bot.session.operator/.transfer: the dialog leaves bot mode, once (then WRONG_CHAT)."""
    chat = int(p.get("CHAT_ID") or 0)
    if not chat:
        return 400, {"error": "CHAT_ID_EMPTY", "error_description": "Chat ID can't be empty"}
    if state.in_bot_mode.get(chat) is False:
        return 400, {"error": "WRONG_CHAT", "error_description": "Operator is not a bot"}
    state.in_bot_mode[chat] = False
    return 200, True


def session_history_get(state: State, p: dict[str, Any]) -> Answer:
    sid = int(p.get("SESSION_ID") or 0)
    if sid not in state.history:
        return 400, {"error": "INVALID_SESSION_ID", "error_description": "Session not found"}
    h = state.history[sid]
    chat = h["chat_id"]
    current = state.current_session.get(chat, sid)
    return 200, {
        "chatId": chat,
        "canJoin": "Y",
        "sessionId": sid,
        "userId": f"chat{chat}",
        "message": h["messages"],
        "users": h["users"],
        "files": h["files"],
        "usersMessage": {f"chat{chat}": sorted(h["messages"])},
        "chat": {
            str(chat): {
                "id": str(chat),
                "entityType": "LINES",
                "entityId": h["entity_id"],
                "entityData1": f"Y|LEAD|1|N|N|{current}|1773223732|0|0|0",
                "entityData2": "LEAD|1|COMPANY|0|CONTACT|0|DEAL|0",
                "owner": "7",
                "type": "lines",
            }
        },
    }


# ---- batch -------------------------------------------------------------------------------------------------


def unflatten_query(query: str) -> dict[str, Any]:
    """`a[b]=1&c=2` -> {"a": {"b": "1"}, "c": "2"} (batch sub-calls are query strings)."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        parts = key.replace("]", "").split("[")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def batch(state: State, p: dict[str, Any], caller: str) -> Answer:
    results: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    timing: dict[str, Any] = {}
    for key, sub in (p.get("cmd") or {}).items():
        name, _, query = sub.partition("?")
        blocked = limit_window(state, name, sub_call=True)
        if blocked is not None:
            errors[key] = {k: v for k, v in blocked[1].items() if k != "time"}
            timing[key] = blocked[1]["time"]
            continue
        status, result = call(state, name, unflatten_query(query), caller)
        if status == 200:
            results[key] = result
        else:
            errors[key] = result
    return 200, {
        "result": results,
        "result_error": errors,
        "result_total": {},
        "result_next": {},
        "result_time": timing,
    }


METHODS: dict[str, Callable[[State, dict[str, Any]], Answer]] = {
    "app.info": app_info,
    "imbot.register": imbot_register,
    "event.bind": event_bind,
    "imopenlines.config.list.get": config_list_get,
    "imopenlines.config.get": config_get,
    "imopenlines.config.update": config_update,
    "imopenlines.bot.session.operator": session_operator,
    "imopenlines.bot.session.transfer": session_operator,
    "imopenlines.session.history.get": session_history_get,
    "imopenlines.dialog.get": dialog_get,
    "crm.activity.list": activity_list,
}


def call(state: State, method: str, p: dict[str, Any], caller: str) -> Answer:
    """One REST method by name; `caller` is "app" (OAuth) or "webhook" (the v2 side checks bot ownership)."""
    if method.startswith("imbot.v2."):
        return portal_v2.call(state, method, p, caller)
    if method == "batch":
        return batch(state, p, caller)
    fn = METHODS.get(method)
    if fn is None:
        return 400, {"error": "ERROR_METHOD_NOT_FOUND", "error_description": f"Method not found: {method}"}
    return fn(state, p)
