"""`b24bot register | pump | doctor`: the Chatbots 2.0 (imbot.v2) commands."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any


def add_commands(sub: Any) -> None:
    re = sub.add_parser("register", help="register the imbot.v2 bot and make it the welcome bot of B24BOT_LINES")
    pu = sub.add_parser("pump", help="poll imbot.v2.Event.get in the foreground (the service runs it itself)")
    pu.add_argument("--once", action="store_true", help="fetch until the portal has no more events, then exit")
    do = sub.add_parser("doctor", help="check the Chatbots 2.0 setup on the portal; say what could not be checked")
    do.add_argument("--json", action="store_true")
    for p in (re, pu, do):
        p.set_defaults(func=run)


def status(settings: Any) -> dict[str, Any]:
    from .jobs import v2bot
    from .jobs.context import Context

    return v2bot.health(Context.build(settings))


def _pump(ctx: Any, once: bool) -> int:
    from .jobs.handoff import HandoffWorker
    from .jobs.pump import Pump

    lease = ctx.settings.rest_timeout * 4 + 10
    worker = HandoffWorker(ctx.db, ctx.client, ctx.settings.retry_max, lease)
    pump = Pump(ctx, on_joined=worker.kick)
    if not pump.lock.acquire():
        holder = pump.lock.path.read_text().strip()
        print(f"another event pump (pid {holder}) holds {pump.lock.path}", file=sys.stderr)
        return 1
    if once:
        from .bitrix.errors import BitrixError
        from .jobs.v2bot import NotRegistered

        try:
            print(json.dumps({"events": pump.drain()}))
        except (BitrixError, NotRegistered) as exc:
            print(f"event pump: {exc}", file=sys.stderr)
            return 1
        return 0
    worker.start()
    signal.signal(signal.SIGTERM, lambda *_: pump.stop())
    pump.run()
    return 0


def _changed(before: dict[str, Any] | None, after: dict[str, Any]) -> bool:
    """Whether `register` changed anything (bot, code, mode, auth, lines): the role's changed_when."""
    same = ("bot_id", "code", "event_mode", "auth", "lines")
    return before is None or any(before.get(k) != after.get(k) for k in same)


def run(args: argparse.Namespace, settings: Any) -> int:
    from . import logs
    from .jobs import doctor, v2bot
    from .jobs.context import Context
    from .jobs.welcome import InstallFailed

    if settings.bot_api != "v2":
        print("B24BOT_BOT_API is not v2: nothing to do", file=sys.stderr)
        return 2
    logs.configure(settings)
    ctx = Context.build(settings)
    if args.command == "register":
        before = v2bot.load(ctx)
        try:
            record = v2bot.register(ctx)
        except InstallFailed as exc:
            print(f"registration failed: {exc}", file=sys.stderr)
            return 1
        print(json.dumps({**record, "changed": _changed(before, record)}))
        return 0
    if args.command == "pump":
        return _pump(ctx, args.once)
    checks = doctor.run(ctx)
    if args.json:
        print(json.dumps([c.__dict__ for c in checks], indent=2))
    else:
        for c in checks:
            print(f"[{c.status}] {c.name}: {c.detail}")
    return 1 if any(c.status == doctor.FAIL for c in checks) else 0
