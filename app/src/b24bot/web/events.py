"""POST / : the Bitrix24 handler URL (install and every event)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify, request

from .. import metrics
from ..bitrix import events as ev
from ..bitrix import lines
from ..bitrix.errors import BitrixError
from ..jobs import ingest, install, welcome
from ..logs import clip
from .state import services

log = logging.getLogger(__name__)
bp = Blueprint("events", __name__)

OK = {"status": "ok"}
LINES_EVENTS = frozenset({ev.JOIN, ev.MESSAGE_ADD, ev.MESSAGE_UPDATE, ev.MESSAGE_DELETE})


def _error(status: int, message: str) -> Any:
    return jsonify(error=message), status


def _install(ctx: Any, event: ev.Event) -> Any:
    where = clip(event.auth.domain, 100)
    try:
        result = install.install(ctx, event)
    except ev.BadEvent as exc:
        return _error(400, str(exc))
    except install.InstallRefused as exc:
        log.warning("install refused from %s: %s", where, exc)
        return _error(403, f"install refused: {exc}")
    except welcome.InstallFailed as exc:
        log.error("install from %s failed: %s", where, exc)
        return _error(502, f"install failed: {exc}")
    return jsonify(status="ok", **result)


@bp.post("/")
def handle() -> Any:
    svc = services()
    ctype = request.mimetype or ""
    if ctype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return _error(400, "expected a form-encoded Bitrix24 event")
    try:
        event = ev.parse(request.form.items(multi=True))
    except ev.BadEvent as exc:  # everything quoted from the request is clipped and escaped (clip)
        log.info("rejected body: %s", exc)
        metrics.event("unparsed", "out_of_range" if isinstance(exc, ev.OutOfRange) else "rejected")
        return _error(400, str(exc))
    ctx = svc.ctx

    if event.name == ev.INSTALL:
        return _install(ctx, event)

    try:
        installed = ingest.verify(ctx, event)
    except ingest.Unverified as exc:
        log.warning("%s rejected: %s", event.name, exc)
        return _error(401, str(exc))

    try:
        if event.name in LINES_EVENTS:
            bot_id = ev.int_or_none(installed.get("bot_id"))
            lines_event = lines.from_v1(event, bot_id)
            outcome, handoff = ingest.record(ctx, lines_event)
            chat_id = lines_event.dialog.chat_id if lines_event else None
            if handoff is not None:
                svc.start()  # a no-op unless this process has none running (after gunicorn's fork)
                svc.worker.kick()
        elif event.name == ev.UNINSTALL:
            install.uninstall(ctx, event)
            outcome, chat_id = "uninstalled", None
        elif event.name == ev.BOT_DELETE:
            install.bot_deleted(ctx, event)
            outcome, chat_id = "bot deleted", None
        else:
            log.info("%s ignored: not an event this app handles", event.name)
            return jsonify(OK)
    except ev.BadEvent as exc:  # from the installed portal, yet unusable: Bitrix24 never resends it, so say so
        log.warning("%s refused: %s", event.name, exc)
        metrics.event(event.name, "refused")
        return _error(400, str(exc))
    except BitrixError as exc:  # bookkeeping on auth.json (bot deleted, uninstall) failed
        log.error("%s: %s", event.name, exc)
        return _error(500, str(exc))
    log.info("%s chat=%s %s", event.name, chat_id, outcome)
    metrics.event(event.name, outcome)
    return jsonify(OK)
