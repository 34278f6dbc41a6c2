"""/api/admin: status, pause/resume recording, log level, recent log lines. Same bearer token as /api."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from .. import __version__, logs
from ..config import LOG_LEVELS
from ..jobs.ingest import RECORDING_KEY
from ..store import reads, writes
from .auth import require_token
from .state import LOG_LEVEL_KEY, services

bp = Blueprint("admin", __name__, url_prefix="/api/admin")
bp.before_request(require_token)


@bp.get("/status")
def status() -> Any:
    ctx = services().ctx
    conn = ctx.db.read()
    auth = ctx.tokens.load()
    return jsonify(
        version=__version__,
        installed=auth is not None,
        portal=auth.get("domain") if auth else None,
        bot_id=auth.get("bot_id") if auth else None,
        token_expires=auth.get("expires") if auth else None,
        recording=reads.get_setting(conn, RECORDING_KEY, "on") != "off",
        transfer=str(ctx.settings.transfer),
        log_level=reads.get_setting(conn, LOG_LEVEL_KEY, ctx.settings.log_level),
        problems=list(ctx.settings.problems),
        **reads.stats(conn),
    )


def _set_recording(on: bool) -> Any:
    with services().ctx.db.write() as conn:
        writes.set_setting(conn, RECORDING_KEY, "on" if on else "off")
    return jsonify(status="ok", recording=on)


@bp.post("/disable")
def disable() -> Any:
    return _set_recording(False)


@bp.post("/enable")
def enable() -> Any:
    return _set_recording(True)


@bp.post("/loglevel")
def loglevel() -> Any:
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}  # `[1]` or `"x"` is valid JSON, not a request
    level = str(body.get("level") or request.values.get("level") or "").upper()
    if level not in LOG_LEVELS:
        return jsonify(error=f"level must be one of {', '.join(LOG_LEVELS)}"), 400
    with services().ctx.db.write() as conn:
        writes.set_setting(conn, LOG_LEVEL_KEY, level)
    logs.set_level(level)
    return jsonify(status="ok", level=level)


@bp.get("/logs")
def recent_logs() -> Any:
    try:
        lines = max(1, min(int(request.args.get("lines", "100")), 5000))
    except ValueError:
        return jsonify(error="lines must be an integer"), 400
    path = services().ctx.settings.log_file
    if not path:
        return jsonify(error="B24BOT_LOG_FILE is not set: logs go to stderr (journalctl -u b24bot)"), 404
    return jsonify(lines=logs.tail(path, lines))
