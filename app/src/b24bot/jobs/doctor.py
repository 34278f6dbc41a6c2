"""`b24bot doctor`: what can be checked on a real portal about the Chatbots 2.0 setup, and what could not.

The docs do not say whether a v2 `openline` bot can be an Open Line's welcome bot, whether
`imopenlines.bot.session.operator` accepts its chats, or whether it sees operators' messages (a `bot`-like
type gets only messages addressed to it). So each of these is checked against what actually happened here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..bitrix import v2
from ..bitrix.errors import BitrixError
from ..store import v2reads
from . import v2bot
from .context import Context
from .pump import PumpLock, stored_offset

OK, FAIL, UNKNOWN = "ok", "FAIL", "not checked"


@dataclass(frozen=True)
class Check:
    status: str
    name: str
    detail: str


def _bot(ctx: Context, record: dict[str, Any]) -> Check:
    try:
        bot = v2bot.api(ctx).get(int(record["bot_id"]))
    except BitrixError as exc:
        return Check(FAIL, "bot registered", f"imbot.v2.Bot.get {record['bot_id']}: {exc.code}")
    wrong = [
        f"{k}={bot.get(k)!r}"
        for k, want in (("type", "openline"), ("isSupportOpenline", True), ("eventMode", ctx.settings.event_mode))
        if bot.get(k) != want
    ]
    if wrong:
        return Check(FAIL, "bot registered", f"bot {bot.get('id')} has " + ", ".join(wrong))
    return Check(OK, "bot registered", f"bot {bot.get('id')} ({bot.get('code')}), openline, {bot.get('eventMode')}")


def _lines(ctx: Context, record: dict[str, Any]) -> Check:
    lines = record.get("lines") or []
    if not lines:
        return Check(UNKNOWN, "welcome bot of the lines", "B24BOT_LINES is empty: lines are set up by hand")
    bad = []
    for line in lines:
        try:
            cfg = ctx.client.call("imopenlines.config.get", {"CONFIG_ID": line})
        except BitrixError as exc:
            bad.append(f"line {line}: {exc.code}")
            continue
        if str(cfg.get("WELCOME_BOT_ID")) != str(record["bot_id"]) or cfg.get("WELCOME_BOT_ENABLE") != "Y":
            bad.append(f"line {line}: welcome bot is {cfg.get('WELCOME_BOT_ID')!r} ({cfg.get('WELCOME_BOT_ENABLE')})")
    if bad:
        return Check(FAIL, "welcome bot of the lines", "; ".join(bad))
    return Check(OK, "welcome bot of the lines", f"bot {record['bot_id']} on lines {lines}")


def _pump(ctx: Context) -> Check:
    if ctx.settings.event_mode != "fetch":
        return Check(UNKNOWN, "event pump", "webhook event mode: no pump")
    lock = PumpLock(ctx.settings.data_dir / "pump.lock")
    if lock.acquire():
        lock.release()
        return Check(FAIL, "event pump", "no process holds pump.lock: is the service running?")
    holder = lock.path.read_text().strip()
    return Check(OK, "event pump", f"running (pid {holder}), offset {stored_offset(ctx)}")


def _events(ctx: Context, record: dict[str, Any]) -> list[Check]:
    conn = ctx.db.read()
    since_ts = int(record.get("registered_at", 0))
    since = datetime.fromtimestamp(since_ts, timezone.utc).isoformat(timespec="seconds")
    count, last = v2reads.v2_events_since(conn, since)
    if not count:
        hint = "none yet: write to a configured Open Line once, then run doctor again"
        return [Check(UNKNOWN, "events arrive via Event.get", hint)]
    out = [Check(OK, "events arrive via Event.get", f"{count} since registration, last at {last}")]
    done, failing = v2reads.handoffs_since(conn, since_ts)
    if done.get("transferred"):
        out.append(Check(OK, "hand-off of a v2 bot's chat", f"{done['transferred']} transferred"))
    elif failing:
        out.append(Check(FAIL, "hand-off of a v2 bot's chat", f"failing: {json.dumps(failing)}"))
    else:
        out.append(Check(UNKNOWN, "hand-off of a v2 bot's chat", "no dialog has joined since registration"))
    ops = v2reads.operator_messages_since(conn, since)
    detail = f"{ops} stored" if ops else "none yet (the docs do not say an openline bot sees them)"
    out.append(Check(OK if ops else UNKNOWN, "operators' messages reach the bot", detail))
    return out


def run(ctx: Context) -> list[Check]:
    s = ctx.settings
    if s.bot_api != "v2":
        return [Check(UNKNOWN, "Chatbots 2.0", "B24BOT_BOT_API is v1: nothing to check")]
    checks = [token_ok(ctx)] if s.webhook_url else [Check(OK, "auth", "OAuth (local app install)")]
    record = v2bot.load(ctx)
    if record is None:
        return [*checks, Check(FAIL, "bot registered", "no v2 bot recorded: run `b24bot register`")]
    checks += [_bot(ctx, record), _lines(ctx, record), _pump(ctx), *_events(ctx, record)]
    return checks


def token_ok(ctx: Context) -> Check:
    """The botToken file: present, private, short enough (webhook auth only)."""
    path = ctx.settings.bot_token_path
    token = v2bot.read_token(path)
    if not token:
        return Check(FAIL, "botToken", f"{path} is missing")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077 or len(token) > v2.BOT_TOKEN_MAX:
        return Check(FAIL, "botToken", f"{path}: mode {mode:o}, {len(token)} characters")
    return Check(OK, "botToken", f"{path}: mode {mode:o}, {len(token)} characters")
