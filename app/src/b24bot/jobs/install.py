"""ONAPPINSTALL / ONAPPUNINSTALL / ONIMBOTDELETE: who we are installed in, and our bot there."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from ..bitrix.errors import BitrixError
from ..bitrix.events import BadEvent, Event
from ..bitrix.rest import raw_call
from ..store import writes
from .context import Context

log = logging.getLogger(__name__)


class InstallRefused(Exception):
    """The install call did not prove it comes from our app in the expected portal (HTTP 403)."""


class InstallFailed(Exception):
    """The portal would not let us finish the install (HTTP 502); nothing was saved, a reinstall retries."""


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def install(ctx: Context, event: Event) -> dict[str, Any]:
    a, s = event.auth, ctx.settings
    missing = [k for k in ("access_token", "refresh_token", "domain", "client_endpoint") if not getattr(a, k)]
    if missing:
        raise BadEvent("ONAPPINSTALL without auth[" + "], auth[".join(missing) + "]")
    if s.portal_domain and a.domain != s.portal_domain:
        raise InstallRefused(f"portal {a.domain} is not the configured B24BOT_PORTAL_DOMAIN {s.portal_domain}")
    endpoint = urlsplit(a.client_endpoint)
    if endpoint.scheme not in ("http", "https") or endpoint.netloc.lower() != a.domain:
        raise InstallRefused(f"auth[client_endpoint] host {endpoint.netloc!r} is not the portal {a.domain!r}")
    endpoint_url = a.client_endpoint if a.client_endpoint.endswith("/") else a.client_endpoint + "/"

    def call(method: str, params: dict[str, Any]) -> Any:
        return raw_call(ctx.session, endpoint_url, a.access_token, method, params, s.rest_timeout)

    if s.client_id:
        try:
            info = call("app.info", {})
        except BitrixError as exc:
            raise InstallRefused(f"the install token did not prove itself: app.info failed ({exc.code})") from exc
        code = str(info.get("CODE", "")) if isinstance(info, dict) else ""
        if code != s.client_id:
            raise InstallRefused("the install token belongs to another application (app.info CODE mismatch)")
    else:
        log.warning("B24BOT_CLIENT_ID is not set: accepting an install without proving the token")
    if not s.handler_url:
        raise InstallFailed("B24BOT_HANDLER_URL is not set, so the bot cannot be registered")

    try:
        bot_id = int(
            call(
                "imbot.register",
                {
                    "CODE": s.bot_code,
                    "TYPE": "O",
                    "OPENLINE": "Y",
                    "EVENT_HANDLER": s.handler_url,
                    "PROPERTIES": {"NAME": s.bot_name, "WORK_POSITION": "Transfers you to an operator"},
                },
            )
        )
    except (BitrixError, TypeError, ValueError) as exc:
        raise InstallFailed(f"imbot.register failed: {exc}") from exc
    try:
        call("event.bind", {"event": "ONAPPUNINSTALL", "handler": s.handler_url})
    except BitrixError as exc:
        # Bound already by an earlier install: the portal says so with an error we can live with.
        if "ALREADY" not in exc.code.upper() and "already" not in exc.description.lower():
            raise InstallFailed(f"event.bind ONAPPUNINSTALL failed: {exc}") from exc
    lines = configure_lines(call, s.lines, s.line_ids, bot_id, s.welcome_bot_time)

    now = int(time.time())
    record = {
        "domain": a.domain,
        "member_id": a.member_id,
        "application_token": a.application_token,
        "client_endpoint": endpoint_url,
        "server_endpoint": a.server_endpoint,
        "access_token": a.access_token,
        "refresh_token": a.refresh_token,
        "expires": a.expires or now + (a.expires_in or 3600),
        "scope": a.scope,
        "user_id": a.user_id,
        "bot_id": bot_id,
        "bot_code": s.bot_code,
        "lines": lines,
        "installed_at": now,
    }
    ctx.tokens.save(record)
    with ctx.db.write() as conn:
        writes.log_portal(conn, _now_iso(), "install", a.member_id, a.domain, f"bot {bot_id}, lines {lines}")
    log.info("installed in %s: bot %s, welcome bot of lines %s", a.domain, bot_id, lines or "none (by hand)")
    return {"bot_id": bot_id, "lines": lines}


def configure_lines(call: Any, mode: str, ids: list[int], bot_id: int, welcome_time: int) -> list[int]:
    """Make the bot the welcome bot of each line; all five fields in one call (the portal drops partial ones)."""
    if not mode:
        return []
    if mode == "all":
        try:
            found = call("imopenlines.config.list.get", {})
        except BitrixError as exc:
            raise InstallFailed(f"imopenlines.config.list.get failed: {exc}") from exc
        ids = sorted(int(line["ID"]) for line in (found or []) if isinstance(line, dict) and "ID" in line)
    for line_id in ids:
        try:
            call(
                "imopenlines.config.update",
                {
                    "CONFIG_ID": line_id,
                    "PARAMS": {
                        "WELCOME_BOT_ENABLE": "Y",
                        "WELCOME_BOT_JOIN": "always",
                        "WELCOME_BOT_ID": bot_id,
                        "WELCOME_BOT_TIME": welcome_time,
                        # close: the bot stays after the hand-off and keeps receiving client and operator messages.
                        "WELCOME_BOT_LEFT": "close",
                    },
                },
            )
        except BitrixError as exc:
            raise InstallFailed(f"imopenlines.config.update for line {line_id} failed: {exc}") from exc
    return ids


def uninstall(ctx: Context, event: Event) -> None:
    """Tokens go (the portal revoked them anyway); every dialog stays."""
    ctx.tokens.delete()
    with ctx.db.write() as conn:
        writes.log_portal(conn, _now_iso(), "uninstall", event.auth.member_id, event.auth.domain, "tokens dropped")
    log.warning("uninstalled from %s: tokens dropped, dialogs kept", event.auth.domain)


def bot_deleted(ctx: Context, event: Event) -> None:
    bot_id = str(event.data.get("BOT_ID", ""))

    def mark(data: dict[str, Any]) -> None:
        if str(data.get("bot_id")) == bot_id:
            data["bot_id"] = None
            data["bot_deleted_at"] = int(time.time())

    ctx.tokens.update(mark)
    with ctx.db.write() as conn:
        writes.log_portal(conn, _now_iso(), "bot_deleted", event.auth.member_id, event.auth.domain, f"bot {bot_id}")
    log.warning("bot %s was deleted in the portal; reinstall the app to register it again", bot_id)
