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
This file is the HTTP plumbing and the command line; the parts: portal_state.py (identity, tokens, OAuth),
portal_control.py (/_sim/ controls), portal_rest.py (the gate every REST call passes), portal_methods.py (the
REST methods by family), portal_sessions.py (dialogs, past sessions, limit windows).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from portal_control import control
from portal_rest import rest
from portal_state import State, oauth


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 plumbing: route a request to its part, send the JSON (or bytes) it answers."""

    protocol_version = "HTTP/1.1"
    state: State  # set per portal by make_handler

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

    def _sim_state(self) -> dict[str, Any]:
        state = self.state
        return {
            "refreshes": state.refreshes,
            "failed_refreshes": state.failed_refreshes,
            "bots": state.bots,
            "lines": {str(k): v for k, v in state.lines.items()},
            "limit_hits": state.limit_hits,
            "access_token_expires": state.expires,
        }

    def _file(self, path: str, q: dict[str, str]) -> None:
        """A message file's download URL: valid with the current access token only."""
        state = self.state
        with state.lock:
            valid = q.get("auth") == state.access_token and time.time() <= state.expires
            content = state.files.get(int(path.rsplit("/", 1)[1] or 0))
        if not valid:
            self._send(401, {"error": "expired_token" if q.get("auth") else "NO_AUTH_FOUND"})
        elif content is None:
            self._send(404, {"error": "FILE_NOT_FOUND"})
        else:
            self._send(200, content, "application/octet-stream")

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        views = {
            "/_sim/calls": lambda: self.state.calls,
            "/_sim/state": self._sim_state,
            "/_sim/v2/state": lambda: self.state.v2.state(),
            "/_sim/install": lambda: self.state.install_auth(),
        }
        if url.path == "/oauth/token/":
            self._oauth(dict(parse_qsl(url.query)))
        elif url.path in views:
            with self.state.lock:
                self._send(200, views[url.path]())
        elif url.path.startswith("/files/"):
            self._file(url.path, dict(parse_qsl(url.query)))
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

    def _control(self, what: str, body: Any) -> None:
        with self.state.lock:
            if not control(self.state, what, body):
                self._send(404, {"error": "NOT_FOUND"})
                return
            self.state.save()
        self._send(200, {"status": "ok"})

    def _oauth(self, q: dict[str, str]) -> None:
        with self.state.lock:
            self._send(*oauth(self.state, q))

    def _rest(self, method: str, params: dict[str, Any], hook: str | None) -> None:
        (status, body, ctype), hang = rest(self.state, method, params, hook)
        if hang:  # a hang fault: answer late, outside the lock
            time.sleep(hang)
        self._send(status, body if status != 200 else {"result": body, "time": {"start": time.time()}}, ctype)


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    """A handler class bound to one portal's state."""
    return type("PortalHandler", (Handler,), {"state": state})


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
