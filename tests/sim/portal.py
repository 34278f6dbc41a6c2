"""A simulated Bitrix24 portal on a real socket: OAuth token endpoint, the REST methods b24bot calls, faults.

Stdlib only, so it also runs inside the test containers. It follows the documented protocol: JSON or form REST
calls with `auth`, `{"result": ...}` / `{"error", "error_description"}` answers with Bitrix24's HTTP statuses,
single-use refresh tokens, `WRONG_CHAT` once a dialog has left bot mode, `QUERY_LIMIT_EXCEEDED` over the
leaky bucket (2 req/s, burst 50) when enabled.

Control endpoints (JSON) under /_sim/: GET calls, GET state, GET install (auth block for an ONAPPINSTALL),
POST history (portal-side messages of a session), POST reinstall,
POST faults ({"method": M or "*", "kind": K, "count": N, "every": E, "delay": S}),
POST expire, POST reset (another portal: new member_id and tokens),
POST rate_limit ({"rate": 2, "burst": 50} or {}), POST down ({"seconds": S}),
POST limit_window ({"seconds": S, "kind": "query_limit" | "operation_limit", "method": M or "*"}: every call
(of M; batch sub-calls too for operation_limit) is refused for S seconds; operation_limit answers HTTP 429
OPERATION_TIME_LIMIT with `time.operating_reset_at` = the window's end), POST scope ({"scope": "a,b"}),
POST sessions ({"count": N, "first_session": S, "first_chat": C, "messages": M, "start": unix, "step": s}:
N past sessions at once, each with an IMOPENLINES_SESSION CRM activity).
Fault kinds: 5xx, hang, expired_token, query_limit, wrong_chat, down.
Chatbots 2.0 (imbot.v2.*, inbound-webhook auth at /rest/<user>/<secret>/): portal_v2.py, controls under /_sim/v2/.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import portal_v2  # the imbot.v2 side (Chatbots 2.0) and inbound-webhook auth
from portal_sessions import activity_list, add_sessions, dialog_get, limit_window

ACCESS_TTL = 3600


class Fault:
    def __init__(self, method: str, kind: str, count: int | None, every: int, delay: float) -> None:
        self.method, self.kind, self.count, self.every, self.delay = method, kind, count, every, delay
        self.seen = 0

    def fires(self, method: str) -> bool:
        if self.method not in ("*", method) or self.count == 0:
            return False
        self.seen += 1
        if self.seen % self.every:
            return False
        if self.count is not None:
            self.count -= 1
        return True


class State:
    PERSISTED = ("member_id", "application_token", "access_token", "refresh_token", "expires", "bots", "next_bot")

    def __init__(self, client_id: str, client_secret: str, domain: str, base_url: str, path: str = "") -> None:
        self.lock = threading.Lock()
        self.client_id, self.client_secret = client_id, client_secret
        self.domain, self.base_url = domain, base_url
        self.path = path
        self.reset()
        # The same portal after a restart even without --state (Molecule restarts it between its seed and its
        # load): the app pins an installed portal's member_id. POST /_sim/reset still makes another portal.
        self.member_id = hashlib.sha256(f"{domain}|{client_id}".encode()).hexdigest()[:32]
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                saved = json.load(fh)
            for key in self.PERSISTED:
                setattr(self, key, saved[key])
            self.old_access = set(saved["old_access"])
            self.in_bot_mode = {int(k): v for k, v in saved["in_bot_mode"].items()}
            self.v2.restore(saved.get("v2") or {})

    def save(self) -> None:
        """A restarted portal is the same portal: same tokens, bots and dialogs (a real outage loses nothing)."""
        if not self.path:
            return
        data = {key: getattr(self, key) for key in self.PERSISTED}
        data["old_access"] = sorted(self.old_access)
        data["in_bot_mode"] = self.in_bot_mode
        data["v2"] = self.v2.saved()
        with open(self.path + ".tmp", "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(self.path + ".tmp", self.path)

    def reset(self) -> None:
        self.member_id = secrets.token_hex(16)
        self.application_token = secrets.token_hex(16)
        self.access_token = secrets.token_hex(24)
        self.refresh_token = secrets.token_hex(24)
        self.expires = int(time.time()) + ACCESS_TTL
        self.old_access: set[str] = set()
        self.calls: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.refreshes = 0
        self.failed_refreshes = 0
        self.bots: dict[str, int] = {}
        self.in_bot_mode: dict[int, bool] = {}
        self.lines = {1: {}, 2: {}}
        self.bucket = None  # (rate, burst) when the portal's rate limit is enforced
        self.level, self.level_t = 0.0, time.time()
        self.limit_hits = 0
        self.down_until = 0.0
        self.next_bot = 100
        self.history: dict[int, dict[str, Any]] = {}  # session id -> chat, entity, messages, users, files
        self.current_session: dict[int, int] = {}  # chat id -> its open session
        self.files: dict[int, bytes] = {}
        self.v2 = portal_v2.V2()
        self.webhook = getattr(self, "webhook", "")  # "<user id>/<secret>" of an inbound webhook, or ""
        self.scope = "imbot,imopenlines,user"  # what REST calls are checked against (POST /_sim/scope)
        self.windows: list[dict[str, Any]] = []  # limit windows: until, kind, method
        self.activities: list[dict[str, Any]] = []  # CRM activities of Open Lines sessions, ID ascending

    def install_auth(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "member_id": self.member_id,
            "application_token": self.application_token,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_in": str(ACCESS_TTL),
            "expires": str(self.expires),
            "scope": "imbot,imopenlines,user",
            "status": "L",
            "user_id": "1",
            "client_endpoint": f"{self.base_url}/rest/",
            "server_endpoint": f"{self.base_url}/rest/",
        }


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any, ctype: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not raw:
                return {}
            if (self.headers.get("Content-Type") or "").startswith("application/json"):
                return json.loads(raw)
            return dict(parse_qsl(raw.decode()))

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/oauth/token/":
                self._oauth(dict(parse_qsl(url.query)))
            elif url.path == "/_sim/calls":
                with state.lock:
                    self._send(200, state.calls)
            elif url.path == "/_sim/state":
                with state.lock:
                    self._send(
                        200,
                        {
                            "refreshes": state.refreshes,
                            "failed_refreshes": state.failed_refreshes,
                            "bots": state.bots,
                            "lines": {str(k): v for k, v in state.lines.items()},
                            "limit_hits": state.limit_hits,
                            "access_token_expires": state.expires,
                        },
                    )
            elif url.path.startswith("/files/"):
                q = dict(parse_qsl(url.query))
                with state.lock:
                    valid = q.get("auth") == state.access_token and time.time() <= state.expires
                    content = state.files.get(int(url.path.rsplit("/", 1)[1] or 0))
                if not valid:
                    self._send(401, {"error": "expired_token" if q.get("auth") else "NO_AUTH_FOUND"})
                elif content is None:
                    self._send(404, {"error": "FILE_NOT_FOUND"})
                else:
                    self._send(200, content, "application/octet-stream")
            elif url.path == "/_sim/v2/state":
                with state.lock:
                    self._send(200, state.v2.state())
            elif url.path == "/_sim/install":
                with state.lock:
                    self._send(200, state.install_auth())
            else:
                self._send(404, {"error": "NOT_FOUND"})

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            try:
                body = self._body()
            except ValueError:
                self._send(400, {"error": "INVALID_REQUEST", "error_description": "bad body"})
                return
            if url.path.startswith("/rest/"):
                path = url.path[len("/rest/") :].removesuffix(".json")
                hook, _, method = path.rpartition("/")  # /rest/<user>/<secret>/<method>: an inbound webhook
                self._rest(method, body, hook or None)
            elif url.path == "/oauth/token/":
                self._oauth({**dict(parse_qsl(url.query)), **body})
            elif url.path.startswith("/_sim/"):
                self._control(url.path[len("/_sim/") :], body)
            else:
                self._send(404, {"error": "NOT_FOUND"})

        # ---- control -----------------------------------------------------------------------------------

        def _control(self, what: str, body: dict[str, Any]) -> None:
            with state.lock:
                if what == "faults":
                    for f in body if isinstance(body, list) else [body]:
                        state.faults.append(
                            Fault(
                                f.get("method", "*"),
                                f["kind"],
                                f.get("count"),
                                int(f.get("every", 1)),
                                float(f.get("delay", 30)),
                            )
                        )
                elif what == "history":
                    self._add_history(body)
                elif what == "clear_faults":
                    state.faults.clear()
                elif what == "reinstall":  # the admin pressed Reinstall: a new token pair, same portal
                    state.old_access.add(state.access_token)
                    state.access_token = secrets.token_hex(24)
                    state.refresh_token = secrets.token_hex(24)
                    state.expires = int(time.time()) + ACCESS_TTL
                elif what == "expire":
                    state.expires = int(time.time()) - 1
                elif what == "reset":
                    state.reset()
                elif what == "rate_limit":
                    state.bucket = (float(body["rate"]), float(body["burst"])) if body else None
                    state.level, state.level_t = 0.0, time.time()
                elif what == "down":
                    state.down_until = time.time() + float(body.get("seconds", 0))
                elif what.startswith("v2/") and portal_v2.control(state, what[3:], body):
                    pass
                elif what == "limit_window":
                    state.windows.append(
                        {
                            "until": time.time() + float(body["seconds"]),
                            "kind": body.get("kind", "query_limit"),
                            "method": body.get("method", "*"),
                        }
                    )
                elif what == "scope":
                    state.scope = str(body["scope"])
                elif what == "sessions":
                    add_sessions(state, body)
                else:
                    self._send(404, {"error": "NOT_FOUND"})
                    return
                state.save()
            self._send(200, {"status": "ok"})

        def _add_history(self, body: dict[str, Any]) -> None:
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
                params: dict[str, Any] = {}
                if m.get("file"):
                    f = m["file"]
                    state.files[int(f["id"])] = f["content"].encode()
                    params["fileId"] = [int(f["id"])]
                    h["files"][str(f["id"])] = {
                        "id": int(f["id"]),
                        "chatid": chat,
                        "type": "file",
                        "name": f["name"],
                        "size": len(f["content"].encode()),
                        "urldownload": f"{state.base_url}/files/{f['id']}",
                    }
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

        # ---- OAuth -------------------------------------------------------------------------------------

        def _oauth(self, q: dict[str, str]) -> None:
            with state.lock:
                if q.get("grant_type") != "refresh_token":
                    self._send(400, {"error": "invalid_request", "error_description": "grant_type"})
                    return
                if q.get("client_id") != state.client_id or q.get("client_secret") != state.client_secret:
                    self._send(401, {"error": "invalid_client", "error_description": "Invalid client"})
                    return
                if q.get("refresh_token") != state.refresh_token:
                    state.failed_refreshes += 1
                    self._send(400, {"error": "invalid_grant", "error_description": "Invalid grant"})
                    return
                state.old_access.add(state.access_token)
                state.access_token = secrets.token_hex(24)
                state.refresh_token = secrets.token_hex(24)  # single use: the old one is dead now
                state.expires = int(time.time()) + ACCESS_TTL
                state.refreshes += 1
                state.save()
                self._send(
                    200,
                    {
                        "access_token": state.access_token,
                        "client_endpoint": f"{state.base_url}/rest/",
                        "domain": "oauth.simulated",
                        "expires": state.expires,
                        "expires_in": ACCESS_TTL,
                        "member_id": state.member_id,
                        "refresh_token": state.refresh_token,
                        "scope": "imbot,imopenlines,user",
                        "server_endpoint": f"{state.base_url}/rest/",
                        "status": "L",
                        "user_id": 1,
                    },
                )

        # ---- REST --------------------------------------------------------------------------------------

        def _rest(self, method: str, params: dict[str, Any], hook: str | None = None) -> None:
            token = params.pop("auth", "") if hook is None else None
            self.caller = "app" if hook is None else "webhook"
            with state.lock:
                call = {"method": method, "params": params, "t": time.time()}
                state.calls.append(call)
                if time.time() < state.down_until:
                    call["answer"] = "down"
                    self._send(503, b"<html>503 Service Temporarily Unavailable</html>", "text/html")
                    return
                window = limit_window(state, method)
                if window is not None:
                    status, err = window
                    call["answer"] = err["error"]
                    if status == 503:
                        state.limit_hits += 1
                    self._send(status, err)
                    return
                fault = next((f for f in state.faults if f.fires(method)), None)
                if state.bucket and fault is None:
                    rate, burst = state.bucket
                    now = time.time()
                    state.level = max(0.0, state.level - (now - state.level_t) * rate)
                    state.level_t = now
                    if state.level + 1 > burst:
                        state.limit_hits += 1
                        call["answer"] = "QUERY_LIMIT_EXCEEDED"
                        self._send(503, {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"})
                        return
                    state.level += 1
                if hook is not None and (not state.webhook or hook != state.webhook):
                    call["answer"] = "INVALID_CREDENTIALS"
                    self._send(
                        401, {"error": "INVALID_CREDENTIALS", "error_description": "Invalid request credentials"}
                    )
                    return
                if hook is None and (
                    token in state.old_access or (token == state.access_token and time.time() > state.expires)
                ):
                    call["answer"] = "expired_token"
                    self._send(
                        401, {"error": "expired_token", "error_description": "The access token provided has expired."}
                    )
                    return
                if hook is None and token != state.access_token:
                    call["answer"] = "invalid_token"
                    self._send(
                        401, {"error": "invalid_token", "error_description": "Unable to get application by token"}
                    )
                    return
                if fault is not None and fault.kind != "hang":
                    status, err = {
                        "5xx": (500, "INTERNAL_SERVER_ERROR"),
                        "expired_token": (401, "expired_token"),
                        "query_limit": (503, "QUERY_LIMIT_EXCEEDED"),
                        "wrong_chat": (400, "WRONG_CHAT"),
                        "down": (503, None),
                    }[fault.kind]
                    call["answer"] = f"fault:{fault.kind}"
                    if fault.kind == "expired_token":
                        state.expires = int(time.time()) - 1
                    if err is None:
                        self._send(status, b"<html>503</html>", "text/html")
                    else:
                        self._send(status, {"error": err, "error_description": f"simulated {fault.kind}"})
                    return
                try:
                    status, result = self._method(method, params)
                except (KeyError, ValueError, TypeError) as exc:
                    status, result = 400, {"error": "INVALID_ARGUMENTS", "error_description": str(exc)}
                call["answer"] = result.get("error", "ok") if isinstance(result, dict) else "ok"
                if method.startswith(("imbot.register", "imbot.v2.Bot.", "imopenlines.bot.session.")) and status == 200:
                    state.save()
            if fault is not None:  # hang: answer late, outside the lock
                time.sleep(fault.delay)
            self._send(status, result if status != 200 else {"result": result, "time": {"start": time.time()}})

        def _method(self, method: str, p: dict[str, Any]) -> tuple[int, Any]:
            if method.startswith("imbot.v2."):
                return portal_v2.call(state, method, p, self.caller)
            if method == "app.info":
                return 200, {"ID": 7, "CODE": state.client_id, "VERSION": 1, "STATUS": "L", "INSTALLED": True}
            if method == "imbot.register":
                code = p["CODE"]
                if not p.get("EVENT_HANDLER") and not p.get("EVENT_MESSAGE_ADD"):
                    return 400, {"error": "EVENT_MESSAGE_ADD_ERROR", "error_description": "Handler isn't specified"}
                if code not in state.bots:
                    state.bots[code] = state.next_bot
                    state.next_bot += 1
                return 200, state.bots[code]
            if method == "event.bind":
                return 200, True
            if method == "imopenlines.config.list.get":
                return 200, [{"ID": str(i), "LINE_NAME": f"Line {i}"} for i in sorted(state.lines)]
            if method == "imopenlines.config.get":
                line = int(p["CONFIG_ID"])
                if line not in state.lines:
                    return 400, {"error": "CONFIG_NOT_FOUND", "error_description": "Open line not found"}
                got = {k: str(v) for k, v in state.lines[line].items()}
                return 200, {"ID": str(line), "ACTIVE": "Y", "LINE_NAME": f"Line {line}", **got}
            if method == "imopenlines.config.update":
                line = int(p["CONFIG_ID"])
                if line not in state.lines:
                    return 400, {"error": "CONFIG_NOT_FOUND", "error_description": "Open line not found"}
                state.lines[line] = dict(p["PARAMS"])
                return 200, True
            if method in ("imopenlines.bot.session.operator", "imopenlines.bot.session.transfer"):
                chat = int(p.get("CHAT_ID") or 0)
                if not chat:
                    return 400, {"error": "CHAT_ID_EMPTY", "error_description": "Chat ID can't be empty"}
                if state.in_bot_mode.get(chat) is False:
                    return 400, {"error": "WRONG_CHAT", "error_description": "Operator is not a bot"}
                state.in_bot_mode[chat] = False
                return 200, True
            if method == "imopenlines.session.history.get":
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
            if method == "imopenlines.dialog.get":
                return dialog_get(state, p)
            if method == "crm.activity.list":
                return activity_list(state, p)
            if method == "batch":
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
                    status, result = self._method(name, unflatten_query(query))
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
            return 400, {"error": "ERROR_METHOD_NOT_FOUND", "error_description": f"Method not found: {method}"}

    return Handler


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


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--client-id", default="local.test.1")
    ap.add_argument("--client-secret", default="test-client-secret")
    ap.add_argument("--state", default="", help="file that keeps the portal's identity across restarts")
    ap.add_argument("--webhook", default="", help="<user id>/<secret> of an inbound webhook the portal accepts")
    args = ap.parse_args(argv)
    base = f"http://{args.host}:{args.port}"
    state = State(args.client_id, args.client_secret, f"{args.host}:{args.port}", base, args.state)
    state.webhook = args.webhook
    server = Server((args.host, args.port), make_handler(state))
    print(f"simulated portal on http://{args.host}:{args.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
