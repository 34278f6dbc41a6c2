"""The gate every REST call of the simulated portal passes: outage, limit windows, the leaky bucket,
credentials (OAuth token or inbound webhook), fault switches; then the method itself (portal_methods).
"""

from __future__ import annotations

import time
from typing import Any

import portal_methods
from portal_sessions import limit_window
from portal_state import Fault, State

Reply = tuple[int, Any, str]  # HTTP status, body (JSON value or bytes), content type
Refusal = tuple[str, Reply]  # what the call log records as the answer, and the reply
JSON = "application/json"
HTML = "text/html"
# What each fault kind answers: HTTP status and error code (None: a proxy's HTML page, no JSON).
FAULT_ANSWERS = {
    "5xx": (500, "INTERNAL_SERVER_ERROR"),
    "expired_token": (401, "expired_token"),
    "query_limit": (503, "QUERY_LIMIT_EXCEEDED"),
    "wrong_chat": (400, "WRONG_CHAT"),
    "down": (503, None),
}
# Calls that change what a restarted portal must remember.
SAVED_AFTER = ("imbot.register", "imbot.v2.Bot.", "imopenlines.bot.session.")


def _error(status: int, error: str, description: str) -> Refusal:
    return error, (status, {"error": error, "error_description": description}, JSON)


def _outage(state: State, method: str) -> Refusal | None:
    """The portal is down, or a limit window is open for this method."""
    if time.time() < state.down_until:
        return "down", (503, b"<html>503 Service Temporarily Unavailable</html>", HTML)
    window = limit_window(state, method)
    if window is None:
        return None
    status, err = window
    if status == 503:
        state.limit_hits += 1
    return err["error"], (status, err, JSON)


def _over_bucket(state: State) -> Refusal | None:
    """The leaky bucket (rate per second, burst) when the portal's rate limit is on."""
    if not state.bucket:
        return None
    rate, burst = state.bucket
    now = time.time()
    state.level = max(0.0, state.level - (now - state.level_t) * rate)
    state.level_t = now
    if state.level + 1 > burst:
        state.limit_hits += 1
        return _error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
    state.level += 1
    return None


def _credentials(state: State, token: str | None, hook: str | None) -> Refusal | None:
    if hook is not None:
        if not state.webhook or hook != state.webhook:
            return _error(401, "INVALID_CREDENTIALS", "Invalid request credentials")
        return None
    if token in state.old_access or (token == state.access_token and time.time() > state.expires):
        return _error(401, "expired_token", "The access token provided has expired.")
    if token != state.access_token:
        return _error(401, "invalid_token", "Unable to get application by token")
    return None


def _fault(state: State, fault: Fault) -> Refusal:
    status, err = FAULT_ANSWERS[fault.kind]
    if fault.kind == "expired_token":
        state.expires = int(time.time()) - 1
    if err is None:
        return f"fault:{fault.kind}", (status, b"<html>503</html>", HTML)
    return f"fault:{fault.kind}", (status, {"error": err, "error_description": f"simulated {fault.kind}"}, JSON)


def _refusal(state: State, method: str, token: str | None, hook: str | None) -> tuple[Refusal | None, Fault | None]:
    """Why this call is refused, if it is, and the fault that fired for it (checked in the portal's order)."""
    refused = _outage(state, method)
    if refused is not None:
        return refused, None
    fault = next((f for f in state.faults if f.fires(method)), None)
    refused = (_over_bucket(state) if fault is None else None) or _credentials(state, token, hook)
    if refused is None and fault is not None and fault.kind != "hang":
        refused = _fault(state, fault)
    return refused, fault


def rest(state: State, method: str, params: dict[str, Any], hook: str | None) -> tuple[Reply, float]:
    """One REST call: the reply (a 200's body is the bare result) and how long to hang before sending it."""
    token = params.pop("auth", "") if hook is None else None
    with state.lock:
        call: dict[str, Any] = {"method": method, "params": params, "t": time.time()}
        state.calls.append(call)
        refused, fault = _refusal(state, method, token, hook)
        if refused is not None:
            call["answer"], reply = refused
            return reply, 0.0
        try:
            status, result = portal_methods.call(state, method, params, "app" if hook is None else "webhook")
        except (KeyError, ValueError, TypeError) as exc:
            status, result = 400, {"error": "INVALID_ARGUMENTS", "error_description": str(exc)}
        call["answer"] = result.get("error", "ok") if isinstance(result, dict) else "ok"
        if method.startswith(SAVED_AFTER) and status == 200:
            state.save()
    return (status, result, JSON), fault.delay if fault is not None else 0.0
