"""GET / and GET /healthz: is it running, is it installed, what is missing."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Response, jsonify

from ..store import queue as q
from .app import services

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


@bp.get("/healthz")
def healthz() -> Any:
    svc = services()
    auth = _installed()
    body: dict[str, Any] = {
        "status": "ok",
        "installed": auth is not None,
        "portal": auth.get("domain") if auth else None,
        "bot_id": auth.get("bot_id") if auth else None,
        "token_expires_at": (
            datetime.fromtimestamp(int(auth["expires"]), timezone.utc).isoformat(timespec="seconds")
            if auth and auth.get("expires")
            else None
        ),
        "pending_handoffs": None,
        "db_ok": False,
        "problems": list(svc.ctx.settings.problems),
    }
    try:
        body["pending_handoffs"] = q.pending_count(svc.ctx.db.read())
        body["db_ok"] = True
    except Exception as exc:  # any DB failure means "unhealthy", StorageError or not
        body["status"] = "db unusable"
        body["problems"].append(f"database: {exc}")
        return jsonify(body), 503
    return jsonify(body)
