"""POST /v2/events: Chatbots 2.0 events in webhook mode (B24BOT_EVENT_MODE=webhook), the bot's `webhookUrl`.

The portal posts them form-encoded like v1 events (`data[bot][id]=...`, every scalar a string). They are
verified by the top-level `auth[application_token]` of the OAuth install, as the docs say, and then take the
same path as the pump's events: `bitrix.v2.to_lines` -> `jobs.ingest`. The bot's own token set (`data[bot][auth]`)
is never stored.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from flask import Blueprint, jsonify, request

from .. import metrics
from ..bitrix import events as ev
from ..bitrix import v2
from ..jobs import ingest, v2bot
from .state import services

log = logging.getLogger(__name__)
bp = Blueprint("events_v2", __name__)


def _error(status: int, message: str) -> Any:
    return jsonify(error=message), status


@bp.post("/v2/events")
def handle() -> Any:
    svc = services()
    ctx = svc.ctx
    if ctx.settings.bot_api != "v2" or ctx.settings.event_mode != "webhook":
        return _error(404, "Chatbots 2.0 webhook events are not enabled (B24BOT_BOT_API=v2, B24BOT_EVENT_MODE)")
    if (request.mimetype or "") not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return _error(400, "expected a form-encoded Bitrix24 event")
    try:
        body = ev.unflatten(request.form.items(multi=True))
    except ev.BadEvent as exc:
        return _error(400, str(exc))
    name, auth, data = str(body.get("event", "")).upper(), body.get("auth"), body.get("data")
    if not name.startswith("ONIMBOTV2") or not isinstance(auth, dict) or not isinstance(data, dict):
        return _error(400, "not a Chatbots 2.0 event call (event, auth, data)")
    installed = ctx.tokens.load()
    given = str(auth.get("application_token", ""))
    if installed is None or not hmac.compare_digest(str(installed.get("application_token", "")), given):
        log.warning("%s rejected: auth[application_token] does not match the installed app", name)
        return _error(401, "auth[application_token] does not match the installed app")
    record = v2bot.load(ctx)
    if record is None:
        return _error(409, "no imbot.v2 bot is registered: run `b24bot register`")
    item = {"eventId": None, "type": name, "date": None, "data": data}
    try:
        if name == v2.BOT_DELETE:
            v2bot.bot_deleted(ctx, int(record["bot_id"]))
            return jsonify(status="ok")
        # A join has no message date: the envelope's `ts` is its time.
        event = v2.to_lines(item, v2bot.portal_auth(ctx), int(record["bot_id"]), ev.int_or_none(body.get("ts")))
        if event is None:
            return jsonify(status="ok")
        outcome, handoff = ingest.record(ctx, event)
        if handoff is not None:
            svc.start()
            svc.worker.kick()
    except ev.BadEvent as exc:
        return _error(400, str(exc))
    metrics.event(event.name, outcome)
    log.info("%s %s", name, outcome)
    return jsonify(status="ok")
