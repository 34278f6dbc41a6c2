"""Write load for the backup test: e2e dialogs one after another, each recorded once every event was acknowledged.

Runs inside the test container next to tests/sim (unpacked to /opt/b24bot-sim by e2e.yml). Every completed dialog
(install, join, hand-off, two messages answered 200 and read back) appends {"chat_id", "done"} to the log, with
`done` from time.time(), so the test can tell which dialogs were complete before the backup began. Stops when the
stop file appears or after --max-seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, "/opt/b24bot-sim")
import e2e


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--handler-url", default="http://127.0.0.1/python_bot/")
    ap.add_argument("--host-header", required=True)
    ap.add_argument("--api-token", required=True)
    ap.add_argument("--first-chat", type=int, default=700000)
    ap.add_argument("--log", default="/root/ops-load.jsonl")
    ap.add_argument("--stop-file", default="/root/ops-load.stop")
    ap.add_argument("--max-seconds", type=float, default=120)
    args = ap.parse_args()
    deadline = time.time() + args.max_seconds
    chat = args.first_chat
    failures = 0
    with open(args.log, "a", encoding="utf-8") as log:
        while time.time() < deadline and not os.path.exists(args.stop_file):
            run = argparse.Namespace(
                handler_url=args.handler_url,
                host_header=args.host_header,
                api_base=None,
                portal="http://127.0.0.1:9100",
                api_token=args.api_token,
                chat_id=chat,
                timeout=20.0,
            )
            try:
                e2e.run(run)
            except Exception as exc:  # a failed round is reported, the load goes on
                failures += 1
                print(f"chat {chat}: {exc}", file=sys.stderr, flush=True)
            else:
                log.write(json.dumps({"chat_id": chat, "done": time.time()}) + "\n")
                log.flush()
                os.fsync(log.fileno())
            chat += 1
    print(f"load stopped after chat {chat - 1}, {failures} failed rounds", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
