"""Drive one Open Lines dialog end to end through a b24bot in Chatbots 2.0 fetch mode: nothing is posted to the
app; the simulated portal queues v2 events and the app's event pump fetches them.

Expects the instance registered (`b24bot register`, inbound webhook at the simulated portal). Checks: the v2 bot
is an openline bot and the welcome bot of line 1, join -> hand-off reaches the portal, client and operator
messages and an edit are stored (read back via /api/), every event is acknowledged. Stdlib only (copied into
test containers). Exit 0 on success; otherwise prints what went wrong and exits 1.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e import expect, http, report


def run(args: argparse.Namespace) -> dict[str, Any]:
    bearer = {"Authorization": f"Bearer {args.api_token}"}

    def portal(path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data else {}
        status, _, raw = http("POST" if data else "GET", args.portal + path, None, data, headers)
        expect(status == 200, f"portal {path} answered {status}")
        return json.loads(raw)

    def api_get(path: str) -> Any:
        status, _, body = http("GET", args.api_base + path, args.host_header, headers=bearer)
        expect(status == 200, f"GET {args.api_base + path} answered {status}: {body[:200]!r}")
        return json.loads(body)

    def wait(what: str, check: Any) -> Any:
        deadline = time.time() + args.timeout
        while not (value := check()):
            expect(time.time() < deadline, f"{what} not within {args.timeout}s")
            time.sleep(0.3)
        return value

    bots = portal("/_sim/v2/state")["bots"]
    expect(len(bots) == 1, f"expected one registered v2 bot, the portal has {len(bots)}: run `b24bot register`")
    (bot,) = bots.values()
    expect(bot["type"] == "openline" and bot["isSupportOpenline"] and bot["eventMode"] == "fetch", f"bot: {bot}")
    line = portal("/_sim/state")["lines"]["1"]
    expect(line.get("WELCOME_BOT_ID") == bot["id"], f"line 1's welcome bot is {line.get('WELCOME_BOT_ID')}")

    rnd = random.Random()
    chat = args.chat_id or rnd.randint(10_000, 9_999_999)
    session, mid = rnd.randint(100, 99_999), rnd.randint(1_000_000, 9_000_000)
    common = {"chat_id": chat, "session_id": session}
    steps = [
        {"kind": "join", **common},
        {"kind": "add", "message_id": mid, "text": "Здравствуйте! Where is my order?", **common},
        {"kind": "add", "message_id": mid + 1, "text": "Let me check.", "client": False, **common},
        {"kind": "update", "message_id": mid, "text": "Where is my order #42?", **common},
    ]
    portal("/_sim/v2/events", steps)

    def handed_off() -> bool:
        calls = portal("/_sim/calls")
        return any(
            c["method"].startswith("imopenlines.bot.session.")
            and int(c["params"].get("CHAT_ID", 0)) == chat
            and c.get("answer") == "ok"
            for c in calls
        )

    wait(f"a hand-off of chat {chat} through the poller", handed_off)
    wait(
        "every event acknowledged",
        lambda: (st := portal("/_sim/v2/state"))["acked"].get(str(bot["id"])) == st["next_event"],
    )
    dialog = wait("the dialog marked as handed off", lambda: (d := api_get(f"dialogs/{chat}"))["transferred_at"] and d)
    messages = api_get(f"dialogs/{chat}/messages")["items"]
    expect([m["author_role"] for m in messages] == ["client", "operator"], f"roles wrong: {messages}")
    expect(messages[0]["text"] == "Where is my order #42?" and messages[0]["edited"], "the edit was not stored")
    return {"bot_id": bot["id"], "dialog": dialog, "messages": messages}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--api-base", default="http://127.0.0.1/python_bot/api/")
    ap.add_argument("--host-header", default=None)
    ap.add_argument("--portal", default="http://127.0.0.1:9100")
    ap.add_argument("--api-token", required=True)
    ap.add_argument("--chat-id", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=30.0)
    return report(run, ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
