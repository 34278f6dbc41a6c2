"""ONAPPINSTALL / ONAPPUNINSTALL / ONIMBOTDELETE: who we are installed in, and our bot there."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any

from ..bitrix.errors import AuthFailed, BitrixError
from ..bitrix.events import BadEvent, Event, EventAuth
from ..bitrix.rest import raw_call
from ..bitrix.tokens import exchange, expiry
from ..bitrix.trust import allows_http, oauth_token_url, portal_endpoint, portal_host, same_origin
from ..config import Settings
from ..logs import clip
from ..store import reads, writes
from . import v2bot
from .context import Context
from .welcome import InstallFailed, configure_lines

log = logging.getLogger(__name__)


class InstallRefused(Exception):
    """The install call did not prove it comes from our app in the expected portal (HTTP 403)."""


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


PIN_MEMBER_KEY = "portal_member_id"  # settings rows: they outlive auth.json, which ONAPPUNINSTALL deletes
PIN_ENDPOINT_KEY = "portal_client_endpoint"
_NEVER_PINNED = "\x00"  # no row at all, as opposed to '' written by reset-install
PINNED = "this app is pinned to another Bitrix24 portal; an admin must run `b24bot reset-install` on the host first"


def pinned(ctx: Context) -> tuple[str, str]:
    """(member_id, client_endpoint) of the portal the first verified install came from; ('', '') when none."""
    conn = ctx.db.read()
    return _pinned_member(ctx, conn), reads.get_setting(conn, PIN_ENDPOINT_KEY)


def _pinned_member(ctx: Context, conn: Any) -> str:
    """The pin ('' after a reset); on an instance installed before pinning existed, the portal in its auth.json."""
    member = reads.get_setting(conn, PIN_MEMBER_KEY, _NEVER_PINNED)
    if member == _NEVER_PINNED:
        installed = ctx.tokens.load()
        member = str(installed.get("member_id") or "") if installed else ""
    return member


def reset_pin(ctx: Context) -> tuple[str, str]:
    """Forget the pinned portal (CLI `b24bot reset-install`): the next verified install pins again."""
    with ctx.db.write() as conn:
        old = _pinned_member(ctx, conn), reads.get_setting(conn, PIN_ENDPOINT_KEY)
        writes.set_setting(conn, PIN_MEMBER_KEY, "")  # unpinned on purpose: auth.json no longer counts as a pin
        writes.set_setting(conn, PIN_ENDPOINT_KEY, "")
        writes.log_portal(conn, _now_iso(), "reset-install", old[0], portal_host(old[1]) if old[1] else "", "unpinned")
    return old


def _precheck(ctx: Context, a: EventAuth) -> None:
    """Everything that can be refused without contacting anyone."""
    s = ctx.settings
    missing = [k for k in ("access_token", "refresh_token", "domain", "client_endpoint") if not getattr(a, k)]
    if missing:
        raise BadEvent("ONAPPINSTALL without auth[" + "], auth[".join(missing) + "]")
    if not s.client_id or not s.client_secret:
        raise InstallRefused(
            "B24BOT_CLIENT_ID and B24BOT_CLIENT_SECRET are not set on this host, so the install cannot be proved"
            " through Bitrix24's OAuth server; set them, restart b24bot and press Reinstall"
        )
    if not s.handler_url and s.bot_api != "v2":  # v2 fetch mode needs none; v2 webhook mode checks its own
        raise InstallFailed("B24BOT_HANDLER_URL is not set, so the bot cannot be registered")
    if s.portal_domain and a.domain != s.portal_domain:
        raise InstallRefused(f"portal {clip(a.domain, 100)} is not B24BOT_PORTAL_DOMAIN {s.portal_domain}")
    if portal_host(a.client_endpoint) != a.domain:
        raise InstallRefused("auth[client_endpoint] host is not the portal auth[domain]")
    member, _ = pinned(ctx)
    if member and member != a.member_id:
        raise InstallRefused(PINNED)


def prove(ctx: Context, a: EventAuth) -> tuple[str, dict[str, Any]]:
    """Exchange the install's refresh token at Bitrix24's OAuth server (only Bitrix24 can mint one for our client
    id). Returns the portal endpoint that server names and its answer, whose fresh token pair replaces the spent one."""
    s = ctx.settings
    url = oauth_token_url(a.server_endpoint, s.oauth_url)
    try:
        body = exchange(ctx.session, url, s.client_id, s.client_secret, a.refresh_token, s.rest_timeout)
    except AuthFailed as exc:
        raise InstallRefused(f"Bitrix24's OAuth server did not accept the install's token ({exc.code})") from exc
    except BitrixError as exc:
        if exc.status is not None and 400 <= exc.status < 500:
            raise InstallRefused(f"Bitrix24's OAuth server refused the install's refresh token ({exc.code})") from exc
        raise InstallFailed(f"Bitrix24's OAuth server could not be asked ({exc.code}); press Reinstall later") from exc
    if str(body.get("member_id") or "") != a.member_id:
        raise InstallRefused("the OAuth server's answer is for another portal (member_id differs)")
    try:
        endpoint = portal_endpoint(str(body.get("client_endpoint") or ""), allows_http(s.oauth_url))
    except BitrixError as exc:
        raise InstallRefused(f"the OAuth server names no usable portal: {exc.description}") from exc
    if not same_origin(endpoint, a.client_endpoint):
        raise InstallRefused("auth[client_endpoint] is not the portal the OAuth server names")
    if s.portal_domain and portal_host(endpoint) != s.portal_domain:
        raise InstallRefused(f"the OAuth server's portal is not the configured B24BOT_PORTAL_DOMAIN {s.portal_domain}")
    return endpoint, body


def install(ctx: Context, event: Event) -> dict[str, Any]:
    """Prove the install, register our bot (the imbot.v2 bot when B24BOT_BOT_API=v2, else the v1 bot) as the
    welcome bot of the lines, then pin the portal and keep its tokens."""
    a, s = event.auth, ctx.settings
    _precheck(ctx, a)
    endpoint, proof = prove(ctx, a)
    access_token, allow_http = str(proof["access_token"]), allows_http(s.oauth_url)

    def call(method: str, params: dict[str, Any]) -> Any:
        return raw_call(ctx.session, endpoint, access_token, method, params, s.rest_timeout, allow_http)

    domain = portal_host(endpoint)
    if s.bot_api == "v2":
        if s.handler_url:  # else nothing could receive ONAPPUNINSTALL
            _bind_uninstall(call, s.handler_url)
        registered = v2bot.register(ctx, call, domain)  # its record and lines are in the database from here on
        bot_id, lines, v1_bot = int(registered["bot_id"]), list(registered["lines"]), None
    else:
        bot_id = _register_v1(call, s)
        _bind_uninstall(call, s.handler_url)
        lines = configure_lines(call, s.lines, s.line_ids, bot_id, s.welcome_bot_time)
        v1_bot = bot_id
    _pin(ctx, a, endpoint, f"{s.bot_api} bot {bot_id}, lines {lines}")
    ctx.tokens.save(_record(a, endpoint, proof, v1_bot, s.bot_code if v1_bot else "", lines))
    log.info(
        "installed in %s: %s bot %s, welcome bot of lines %s", domain, s.bot_api, bot_id, lines or "none (by hand)"
    )
    return {"bot_id": bot_id, "lines": lines, "bot_api": s.bot_api}


def _register_v1(call: Any, s: Settings) -> int:
    try:
        return int(
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


def _bind_uninstall(call: Any, handler_url: str) -> None:
    try:
        call("event.bind", {"event": "ONAPPUNINSTALL", "handler": handler_url})
    except BitrixError as exc:
        # Bound already by an earlier install: the portal says so with an error we can live with.
        if "ALREADY" not in exc.code.upper() and "already" not in exc.description.lower():
            raise InstallFailed(f"event.bind ONAPPUNINSTALL failed: {exc}") from exc


def _pin(ctx: Context, a: EventAuth, endpoint: str, what: str) -> None:
    """Check-and-pin in one transaction: two racing installs cannot both pin."""
    with ctx.db.write() as conn:
        member = _pinned_member(ctx, conn)
        if member and member != a.member_id:
            raise InstallRefused(PINNED)
        writes.set_setting(conn, PIN_MEMBER_KEY, a.member_id)
        writes.set_setting(conn, PIN_ENDPOINT_KEY, endpoint)
        writes.log_portal(conn, _now_iso(), "install", a.member_id, portal_host(endpoint), what)


def _record(
    a: EventAuth, endpoint: str, proof: dict[str, Any], bot_id: int | None, bot_code: str, lines: list[int]
) -> dict[str, Any]:
    """auth.json: the portal, its fresh token pair (the install's own was spent proving it) and the v1 bot."""
    now = int(time.time())
    return {
        "domain": portal_host(endpoint),
        "member_id": a.member_id,
        "application_token": a.application_token,
        "client_endpoint": endpoint,
        "server_endpoint": str(proof.get("server_endpoint") or a.server_endpoint),
        "access_token": str(proof["access_token"]),
        "refresh_token": str(proof["refresh_token"]),
        "expires": expiry(proof, now),
        "scope": str(proof.get("scope") or a.scope),
        "user_id": a.user_id,
        "bot_id": bot_id,
        "bot_code": bot_code,
        "lines": lines,
        "installed_at": now,
    }


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
