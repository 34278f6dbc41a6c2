"""The Chatbots 2.0 bot: registration, its record, and its botToken.

Two ways to authenticate: the local app's OAuth tokens (auth.json, from the install event as in v1), or an
inbound webhook (B24BOT_WEBHOOK_URL) plus a botToken we generate and keep in a 0600 file. The second needs
no install event and so no inbound connection at all. The record (bot id, mode, lines) lives in the settings
table; the token never does (backups and exports of the database must not carry it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..bitrix import events as ev
from ..bitrix import v2
from ..bitrix.errors import BitrixError
from ..store import reads, writes
from .context import Context
from .welcome import InstallFailed, configure_lines

log = logging.getLogger(__name__)

RECORD_KEY = "v2.bot"


class NotRegistered(Exception):
    """B24BOT_BOT_API=v2 but no v2 bot is registered yet: run `b24bot register`."""


def auth_kind(ctx: Context) -> str:
    return "webhook" if ctx.settings.webhook_url else "oauth"


def read_token(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""


def ensure_token(path: Path) -> str:
    """The botToken, made once: O_EXCL so two processes never make two, mode 0600 from the first byte."""
    token = read_token(path)
    if token:
        return token
    token = v2.new_bot_token()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_token(path)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return token


def api(ctx: Context) -> v2.BotApi:
    token = read_token(ctx.settings.bot_token_path) if auth_kind(ctx) == "webhook" else ""
    return v2.BotApi(ctx.client.call, token)


def load(ctx: Context) -> dict[str, Any] | None:
    raw = reads.get_setting(ctx.db.read(), RECORD_KEY, "")
    try:
        record = json.loads(raw) if raw else None
    except ValueError:
        return None
    return record if isinstance(record, dict) and record.get("bot_id") else None


def our_bot_id(ctx: Context) -> int | None:
    """The bot whose messages are ours in a session's history: the imbot.v2 bot in v2 mode (an install in v2 mode
    records no v1 bot, and a webhook has no install at all), else the v1 bot of the install."""
    record = load(ctx) if ctx.settings.bot_api == "v2" else ctx.tokens.load()
    return int(record["bot_id"]) if record and record.get("bot_id") else None


def require(ctx: Context) -> dict[str, Any]:
    record = load(ctx)
    if record is None:
        raise NotRegistered("no imbot.v2 bot is registered: run `b24bot register`")
    return record


def webhook_url(handler_url: str) -> str:
    """Where the portal posts v2 events in webhook mode: POST /v2/events under the public handler URL."""
    return handler_url.rstrip("/") + "/v2/events" if handler_url else ""


def health(ctx: Context) -> dict[str, Any]:
    """What /healthz and `b24bot status` show of the v2 bot: never the botToken."""
    record = load(ctx) or {}
    return {
        "bot_id": record.get("bot_id"),
        "event_mode": ctx.settings.event_mode,
        "auth": auth_kind(ctx),
        "lines": record.get("lines"),
        "offset": ev.int_or_none(reads.get_setting(ctx.db.read(), OFFSET_KEY, "")),
    }


def portal_auth(ctx: Context) -> ev.EventAuth:
    """Who events come from, for the stored payload: the webhook's host, else the installed portal."""
    if ctx.settings.webhook_url:
        domain, member = urlsplit(ctx.settings.webhook_url).netloc.lower(), ""
    else:
        installed = ctx.tokens.load() or {}
        domain, member = str(installed.get("domain", "")), str(installed.get("member_id", ""))
    return ev.EventAuth(domain, member, "", "", "", "", "", None, None, "", "")


def register(ctx: Context, oauth_call: v2.Call | None = None, domain: str = "") -> dict[str, Any]:
    """imbot.v2.Bot.register (idempotent per code on the portal) and the welcome-bot setup of the lines.
    `oauth_call`, `domain`: the OAuth install's calls and portal, before its tokens are saved (with webhook auth,
    the call is unused)."""
    s = ctx.settings
    token = ensure_token(s.bot_token_path) if auth_kind(ctx) == "webhook" else ""
    call = oauth_call if oauth_call is not None and not token else ctx.client.call
    bot = v2.BotApi(call, token)
    if s.event_mode == "webhook" and not s.handler_url:
        raise InstallFailed("B24BOT_EVENT_MODE=webhook needs B24BOT_HANDLER_URL for the bot's webhookUrl")
    try:
        bot_id = bot.register(s.v2_bot_code, s.bot_name, s.event_mode, webhook_url(s.handler_url))
    except BitrixError as exc:
        hint = (
            " (a v1 bot or another app holds this code: set another B24BOT_V2_BOT_CODE)"
            if exc.code == "BOT_CODE_ALREADY_TAKEN"
            else ""
        )
        raise InstallFailed(f"imbot.v2.Bot.register failed: {exc}{hint}") from exc
    lines = configure_lines(call, s.lines, s.line_ids, bot_id, s.welcome_bot_time)
    previous = load(ctx) or {}
    record = {
        "bot_id": bot_id,
        "code": s.v2_bot_code,
        "event_mode": s.event_mode,
        "auth": auth_kind(ctx),
        "lines": lines,
        "registered_at": int(time.time()),
    }
    domain = domain or portal_auth(ctx).domain
    with ctx.db.write() as conn:
        writes.set_setting(conn, RECORD_KEY, json.dumps(record))
        if previous.get("bot_id") != bot_id:
            # A new bot starts a new event queue: an old offset would acknowledge its events unread.
            writes.delete_settings(conn, OFFSET_KEY)
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        writes.log_portal(conn, now, "v2_register", "", domain, f"bot {bot_id} ({record['auth']}), lines {lines}")
    log.info(
        "imbot.v2 bot %s registered (%s, %s auth); welcome bot of lines %s",
        bot_id,
        s.event_mode,
        record["auth"],
        lines or "none",
    )
    return record


def bot_deleted(ctx: Context, bot_id: int) -> None:
    """ONIMBOTV2DELETE: the record goes (events stop anyway), every dialog stays."""
    with ctx.db.write() as conn:
        current = reads.get_setting(conn, RECORD_KEY, "")
        with contextlib.suppress(ValueError):
            if json.loads(current or "{}").get("bot_id") == bot_id:
                writes.delete_settings(conn, RECORD_KEY, OFFSET_KEY)
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        writes.log_portal(conn, now, "bot_deleted", "", portal_auth(ctx).domain, f"v2 bot {bot_id}")
    log.warning("imbot.v2 bot %s was deleted in the portal; run `b24bot register` to register it again", bot_id)


OFFSET_KEY = "v2.offset"  # the pump's Event.get offset; written only together with the events it acknowledges
