"""Drive one Open Lines dialog end to end through a running b24bot (usually via nginx) and a simulated portal.

Install -> client joins -> hand-off reaches the portal -> client and operator messages -> read back via /api/.
Stdlib only (copied into test containers). Exit 0 on success; otherwise prints what went wrong and exits 1.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import forms


class Failed(Exception):
    pass


def http(
    method: str,
    url: str,
    host: str | None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    if host:
        req.add_header("Host", host)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise Failed(what)


class Driver:
    """The app behind its handler URL (Host header for nginx's server_name), its API, and the simulated portal."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.handler, self.host, self.portal_url = args.handler_url, args.host_header, args.portal
        self.api = args.api_base or self.handler + "api/"
        self.bearer = {"Authorization": f"Bearer {args.api_token}"}
        self.deadline = time.time() + args.timeout

    def post_event(self, pairs: list[tuple[str, str]]) -> tuple[int, bytes]:
        status, _, body = http("POST", self.handler, self.host, forms.encode(pairs), FORM)
        return status, body

    def portal_get(self, path: str) -> Any:
        return json.loads(http("GET", self.portal_url + path, None)[2])

    def api_get(self, path: str) -> Any:
        status, _, body = http("GET", self.api + path, self.host, headers=self.bearer)
        expect(status == 200, f"GET {self.api + path} answered {status}: {body[:200]!r}")
        return json.loads(body)

    def install(self) -> tuple[int, forms.Portal]:
        status, _, body = http("GET", self.handler, self.host)
        expect(status == 200 and b"running" in body, f"GET {self.handler} answered {status}: {body[:200]!r}")
        auth = self.portal_get("/_sim/install")
        status, body = self.post_event(forms.install(auth))
        expect(status == 200, f"install answered {status}: {body[:300]!r}")
        return int(json.loads(body)["bot_id"]), forms.Portal.from_install(auth)

    def wait_handoff(self, chat_id: int, timeout: float) -> None:
        while True:
            calls = [
                c
                for c in self.portal_get("/_sim/calls")
                if c["method"].startswith("imopenlines.bot.session.") and int(c["params"].get("CHAT_ID", 0)) == chat_id
            ]
            if any(c.get("answer") == "ok" for c in calls):
                return
            expect(time.time() < self.deadline, f"no hand-off of chat {chat_id} reached the portal within {timeout}s")
            time.sleep(0.2)


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def play(d: Driver, portal: forms.Portal, bot_id: int, chat_id: int, timeout: float) -> str:
    """A client joins and is handed off, then a client and an operator message, a repeat and a forgery: the text
    the client sent."""
    rnd = random.Random()
    client_id, operator_id, session_id = rnd.randint(1000, 9999), 7, rnd.randint(100, 99_999)
    mid = rnd.randint(1_000_000, 9_000_000)
    entity = forms.lines_entity("telegrambot", 1, str(rnd.randint(10**8, 10**9)), client_id)
    status, body = d.post_event(forms.join(portal, bot_id, chat_id, entity))
    expect(status == 200, f"join answered {status}: {body[:200]!r}")
    d.deadline = time.time() + timeout  # the hand-off and the stored dialog, counted from the join
    d.wait_handoff(chat_id, timeout)
    msgs = [
        (mid, "Здравствуйте! Where is my order #42?", client_id, "Guest", True),
        (mid + 1, "Hello, let me check that for you.", operator_id, "Operator Olga", False),
    ]
    for message_id, text, author, name, is_client in msgs:
        pairs = forms.message(portal, bot_id, chat_id, message_id, text, author, name, is_client, entity, session_id)
        status, body = d.post_event(pairs)
        expect(status == 200, f"message {message_id} answered {status}: {body[:200]!r}")
    status, _ = d.post_event(
        forms.message(portal, bot_id, chat_id, mid, msgs[0][1], client_id, "Guest", True, entity, session_id)
    )
    expect(status == 200, "a repeated event must still be answered 200")
    forged = forms.Portal(
        portal.domain, portal.member_id, "forged-token", portal.client_endpoint, portal.server_endpoint
    )
    status, _ = d.post_event(forms.message(forged, bot_id, chat_id, mid + 2, "forged", client_id, "X", True, entity))
    expect(status == 401, f"a forged event must be refused with 401, got {status}")
    return msgs[0][1]


def run(args: argparse.Namespace) -> dict[str, Any]:
    d = Driver(args)
    bot_id, portal = d.install()
    chat_id = args.chat_id or random.Random().randint(10_000, 9_999_999)
    client_text = play(d, portal, bot_id, chat_id, args.timeout)
    # The portal answers the hand-off a moment before the app records the answer: poll, do not race.
    while (dialog := d.api_get(f"dialogs/{chat_id}"))["transferred_at"] is None and time.time() < d.deadline:
        time.sleep(0.1)
    messages = d.api_get(f"dialogs/{chat_id}/messages")["items"]
    expect(dialog["message_count"] == 2, f"expected 2 stored messages, dialog says {dialog['message_count']}")
    expect([m["author_role"] for m in messages] == ["client", "operator"], f"roles wrong: {messages}")
    expect(messages[0]["text"] == client_text, "client text not stored verbatim")
    expect(dialog["transferred_at"] is not None, f"dialog not marked as handed off within {args.timeout}s")
    status, _, _ = http("GET", d.api + "dialogs", d.host)
    expect(status == 401, f"/api without the token must be 401, got {status}")
    return {"handler_url": d.handler, "bot_id": bot_id, "dialog": dialog, "messages": messages}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--handler-url", default="http://127.0.0.1/python_bot/")
    ap.add_argument("--host-header", default=None, help="Host header for nginx's server_name (e.g. the bot's domain)")
    ap.add_argument("--api-base", default=None, help="default: <handler-url>api/")
    ap.add_argument("--portal", default="http://127.0.0.1:9100")
    ap.add_argument("--api-token", required=True)
    ap.add_argument("--chat-id", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=20.0)
    return report(run, ap.parse_args(argv))


def report(story: Any, args: argparse.Namespace) -> int:
    """Run a driver's story: its summary as JSON on stdout and E2E OK, or E2E FAILED and exit 1."""
    try:
        summary = story(args)
    except Failed as exc:
        print(f"E2E FAILED: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    print("E2E OK", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
