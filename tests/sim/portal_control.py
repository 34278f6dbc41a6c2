"""The simulated portal's control endpoints under /_sim/ (POST, JSON): what tests switch on and feed it.

Each entry of CONTROLS changes the state (the caller holds the lock and saves it afterwards); `v2/...` goes to
portal_v2. See portal.py's docstring for the bodies each one takes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import portal_v2
from portal_sessions import add_sessions
from portal_state import Fault, State, new_tokens


def add_faults(state: State, body: Any) -> None:
    for f in body if isinstance(body, list) else [body]:
        state.faults.append(
            Fault(f.get("method", "*"), f["kind"], f.get("count"), int(f.get("every", 1)), float(f.get("delay", 30)))
        )


def _message_file(state: State, h: dict[str, Any], chat: int, f: dict[str, Any]) -> dict[str, Any]:
    """Store a message's file on the portal; the message's params point at it."""
    state.files[int(f["id"])] = f["content"].encode()
    h["files"][str(f["id"])] = {
        "id": int(f["id"]),
        "chatid": chat,
        "type": "file",
        "name": f["name"],
        "size": len(f["content"].encode()),
        "urldownload": f"{state.base_url}/files/{f['id']}",
    }
    return {"fileId": [int(f["id"])]}


def add_history(state: State, body: dict[str, Any]) -> None:
    """Messages as the portal stores them, whether or not any event announced them."""
    sid, chat = int(body["session_id"]), int(body["chat_id"])
    h = state.history.setdefault(
        sid, {"chat_id": chat, "entity_id": body.get("entity_id", ""), "messages": {}, "users": {}, "files": {}}
    )
    if body.get("current", True):
        state.current_session[chat] = sid
    for m in body.get("messages", []):
        author = int(m["author_id"])
        h["users"][str(author)] = {
            "id": str(author),
            "name": m.get("name", f"User {author}"),
            "bot": bool(m.get("bot")),
            "connector": bool(m.get("connector")),
        }
        params = _message_file(state, h, chat, m["file"]) if m.get("file") else {}
        h["messages"][str(m["id"])] = {
            "id": str(m["id"]),
            "chatid": str(chat),
            "senderid": str(author),
            "recipientid": f"chat{chat}",
            "date": m.get("date", "2026-03-11T13:12:46+01:00"),
            "text": m["text"],
            "textlegacy": m["text"],
            "params": params,
        }


def _expire(state: State, body: Any) -> None:
    state.expires = int(time.time()) - 1


def _rate_limit(state: State, body: Any) -> None:
    state.bucket = (float(body["rate"]), float(body["burst"])) if body else None
    state.level, state.level_t = 0.0, time.time()


def _down(state: State, body: Any) -> None:
    state.down_until = time.time() + float(body.get("seconds", 0))


def _limit_window(state: State, body: Any) -> None:
    state.windows.append(
        {
            "until": time.time() + float(body["seconds"]),
            "kind": body.get("kind", "query_limit"),
            "method": body.get("method", "*"),
        }
    )


def _scope(state: State, body: Any) -> None:
    state.scope = str(body["scope"])


CONTROLS: dict[str, Callable[[State, Any], None]] = {
    "faults": add_faults,
    "history": add_history,
    "clear_faults": lambda state, body: state.faults.clear(),
    "reinstall": lambda state, body: new_tokens(state),  # the admin pressed Reinstall: same portal, new tokens
    "expire": _expire,
    "reset": lambda state, body: state.reset(),
    "rate_limit": _rate_limit,
    "down": _down,
    "limit_window": _limit_window,
    "scope": _scope,
    "sessions": add_sessions,
}


def control(state: State, what: str, body: Any) -> bool:
    """Apply one control call; False when there is no such control (caller holds the lock)."""
    if what.startswith("v2/") and portal_v2.control(state, what[3:], body):
        return True
    action = CONTROLS.get(what)
    if action is None:
        return False
    action(state, body)
    return True
