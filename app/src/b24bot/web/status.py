"""GET / and GET /healthz: is it running, is it installed, what is missing."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from .. import metrics
from ..bitrix.tokens import installation
from ..jobs import v2bot
from ..store import queue as q
from ..store import reads
from .state import services

bp = Blueprint("status", __name__)


def _installed() -> dict[str, Any] | None:
    return services().ctx.tokens.load()


@bp.get("/")
def index() -> Response:
    svc = services()
    auth = _installed()
    lines = ["b24bot is running."]
    if auth:
        lines.append(f"Installed in {auth.get('domain')} (bot id {auth.get('bot_id')}).")
    else:
        lines.append("Not installed in a Bitrix24 portal yet: use this URL as the app's handler and install path.")
    for problem in svc.ctx.settings.problems:
        lines.append(f"Configuration: {problem}")
    return Response("\n".join(lines) + "\n", mimetype="text/plain")


@bp.get("/metrics")
def prometheus() -> Any:
    """Only for a scraper on this host: nginx adds X-Forwarded-For, so proxied requests never see metrics."""
    if not metrics.enabled():
        return jsonify(error="metrics are off (B24BOT_METRICS)"), 404
    if request.remote_addr not in ("127.0.0.1", "::1") or request.headers.get("X-Forwarded-For"):
        return jsonify(error="metrics are served on localhost only"), 403
    db = services().ctx.db.read()

    def gauges() -> dict[str, tuple[str, float]]:
        return {
            "b24bot_handoff_queue_depth": ("Hand-offs waiting or being retried", q.pending_count(db)),
            "b24bot_installed": ("1 when installed in a portal", 1.0 if _installed() else 0.0),
        }

    body, ctype = metrics.render(gauges)
    return Response(body, headers={"Content-Type": ctype})


@bp.get("/healthz")
def healthz() -> Any:
    svc = services()
    auth = _installed()
    body: dict[str, Any] = {
        "status": "ok",
        **installation(auth),
        "pending_handoffs": None,
        "db_ok": False,
        "problems": list(svc.ctx.settings.problems),
    }
    try:
        conn = svc.ctx.db.read()
        body["pending_handoffs"] = q.pending_count(conn)
        body.update(reads.sync_state(conn))  # three settings rows the last sync wrote: no scan here
        body["db_ok"] = True
        if svc.ctx.settings.bot_api == "v2":
            body["v2"] = v2bot.health(svc.ctx)
    except Exception as exc:  # any DB failure means "unhealthy", StorageError or not
        body["status"] = "db unusable"
        body["problems"].append(f"database: {exc}")
        return jsonify(body), 503
    return jsonify(body)
