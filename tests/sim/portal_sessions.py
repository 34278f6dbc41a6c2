"""The simulated portal's dialogs, past sessions and limit windows (imported by portal.py; stdlib only).

Shapes follow the REST docs: `imopenlines.dialog.get` answers the chat with `entity_data_1` naming its current
session; `crm.activity.list` (scope crm) lists the CRM activities Open Lines leaves per session; a limit window
answers QUERY_LIMIT_EXCEEDED (503) or OPERATION_TIME_LIMIT (429, with `time.operating_reset_at`).
"""

from __future__ import annotations

import time
from typing import Any


def limit_window(state: Any, method: str, sub_call: bool = False) -> tuple[int, dict[str, Any]] | None:
    """The answer of an open limit window for this call, if any (caller holds the lock)."""
    now = time.time()
    state.windows = [w for w in state.windows if w["until"] > now]
    for w in state.windows:
        if w["method"] not in ("*", method):
            continue
        if w["kind"] == "operation_limit":
            if method == "batch":  # the outer batch does not count toward `operating`; its sub-calls do
                continue
            timing = {"start": now, "finish": now, "operating_reset_at": int(w["until"]) + 1, "operating": 600}
            return 429, {
                "error": "OPERATION_TIME_LIMIT",
                "error_description": "Method is blocked due to operation time limit.",
                "time": timing,
            }
        if not sub_call:
            return 503, {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
    return None


def chat_entity_data_1(state: Any, chat: int) -> str:
    current = state.current_session.get(chat, 0)
    return f"Y|LEAD|1|N|N|{current}|1773223732|0|0|0"


def dialog_get(state: Any, p: dict[str, Any]) -> tuple[int, Any]:
    """`imopenlines.dialog.get` by CHAT_ID, DIALOG_ID (chatN), SESSION_ID or USER_CODE: the chat with its current
    session in `entity_data_1`; ACCESS_ERROR (400) for a chat the portal does not have."""
    chat = int(p.get("CHAT_ID") or 0)
    if not chat and str(p.get("DIALOG_ID") or "").startswith("chat"):
        chat = int(str(p["DIALOG_ID"])[4:] or 0)
    if not chat and p.get("SESSION_ID"):
        chat = int(state.history.get(int(p["SESSION_ID"]), {}).get("chat_id", 0))
    if not chat and p.get("USER_CODE"):  # connector|line|chat|user, the chat's entity_id
        chat = next((int(h["chat_id"]) for h in state.history.values() if h["entity_id"] == p["USER_CODE"]), 0)
    sessions = [h for h in state.history.values() if h["chat_id"] == chat]
    if not chat or not sessions:
        return 400, {"error": "ACCESS_ERROR", "error_description": "You do not have access to the specified dialog"}
    entity = sessions[0]["entity_id"]
    last = max((int(m) for h in sessions for m in h["messages"]), default=0)
    return 200, {
        "id": chat,
        "name": f"Guest #{chat}",
        "owner": 7,
        "type": "lines",
        "message_count": sum(len(h["messages"]) for h in sessions),
        "last_message_id": last,
        "last_id": last,
        "entity_type": "LINES",
        "entity_id": entity,
        "entity_data_1": chat_entity_data_1(state, chat),
        "entity_data_2": "LEAD|1|COMPANY|0|CONTACT|0|DEAL|0",
        "entity_data_3": "N",
        "date_create": "2026-03-13T16:50:15+01:00",
        "message_type": "L",
        "entity_link": {"type": "LINES", "url": "", "id": entity},
        "manager_list": [7],
        "dialog_id": f"chat{chat}",
    }


def activity_list(state: Any, p: dict[str, Any]) -> tuple[int, Any]:
    """`crm.activity.list` (scope crm) over the Open Lines session activities: filter by PROVIDER_ID, >ID and
    >=START_TIME, ID ascending, pages of 50 (`start` = -1 turns the count off, as for large exports)."""
    if "crm" not in state.scope.split(","):
        return 401, {"error": "insufficient_scope", "error_description": "The request requires higher privileges."}
    flt = p.get("filter") or {}
    after = int(flt.get(">ID") or 0)
    since = str(flt.get(">=START_TIME") or "")
    provider = flt.get("PROVIDER_ID")
    rows = [
        a
        for a in state.activities
        if int(a["ID"]) > after and (not provider or a["PROVIDER_ID"] == provider) and a["START_TIME"] >= since
    ]
    start = int(p.get("start") or 0)
    page = rows[max(0, start) : max(0, start) + 50]
    return 200, page  # the `next`/`total` fields are left out: callers page by >ID


def add_sessions(state: Any, body: dict[str, Any]) -> None:
    """Many finished sessions at once (a portal with months of history), each with its CRM activity."""
    count, first_sid = int(body["count"]), int(body.get("first_session", 1000))
    first_chat, per = int(body.get("first_chat", 50000)), int(body.get("messages", 3))
    start, step = float(body.get("start", 1767225600)), float(body.get("step", 3600))
    next_msg = int(body.get("first_message", 10_000_000))
    for i in range(count):
        sid, chat = first_sid + i, first_chat + i // 2  # two sessions per chat: the earlier one closed
        ts = start + i * step
        iso = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts))
        users = {"5001": {"id": "5001", "name": "Guest", "bot": False, "connector": True}}
        users["7"] = {"id": "7", "name": "Operator Olga", "bot": False, "connector": False}
        messages = {}
        for j in range(per):
            mid = next_msg + i * per + j
            author = "5001" if j % 2 == 0 else "7"
            messages[str(mid)] = {
                "id": str(mid),
                "chatid": str(chat),
                "senderid": author,
                "recipientid": f"chat{chat}",
                "date": iso,
                "text": f"message {j} of session {sid}",
                "textlegacy": f"message {j} of session {sid}",
                "params": {},
            }
        state.history[sid] = {
            "chat_id": chat,
            "entity_id": f"telegrambot|1|ext{chat}|5001",
            "messages": messages,
            "users": users,
            "files": {},
        }
        state.current_session[chat] = sid
        state.activities.append(
            {
                "ID": str(len(state.activities) + 1),
                "OWNER_TYPE_ID": "1",
                "OWNER_ID": "1",
                "PROVIDER_ID": "IMOPENLINES_SESSION",
                "PROVIDER_TYPE_ID": "IMOPENLINES_SESSION",
                "ASSOCIATED_ENTITY_ID": str(sid),
                "SUBJECT": f"Open Lines session {sid}",
                "START_TIME": iso,
            }
        )
