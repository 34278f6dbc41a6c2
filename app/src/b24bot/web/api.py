"""The local read API, behind `Authorization: Bearer <B24BOT_API_TOKEN>`."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request, stream_with_context

from ..jobs import export
from ..store import archive, reads
from .auth import require_token
from .state import services

bp = Blueprint("api", __name__, url_prefix="/api")
MAX_LIMIT = 500
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class BadRequest(ValueError):
    pass


bp.before_request(require_token)


@bp.errorhandler(BadRequest)
def bad_request(exc: BadRequest) -> Any:
    return jsonify(error=str(exc)), 400


def _int_arg(name: str, default: int | None = None, lo: int = 0, hi: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an integer") from exc
    if value < lo or (hi is not None and value > hi):
        raise BadRequest(f"{name} must be between {lo} and {hi}")
    return value


def _dialog_filter() -> reads.DialogFilter:
    args = request.args
    since = args.get("since") or None
    if since:
        try:
            parsed = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError as exc:
            raise BadRequest("since must be an ISO 8601 time") from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        since = parsed.astimezone(timezone.utc).isoformat(timespec="seconds")
    try:
        tz_hours = float(args.get("tz_offset") or 0)
    except ValueError as exc:
        raise BadRequest("tz_offset must be a number of hours") from exc
    if not -14 <= tz_hours <= 14:
        raise BadRequest("tz_offset must be between -14 and 14")
    day_start = day_end = None
    if args.get("date"):
        try:
            day = date.fromisoformat(args["date"])
        except ValueError as exc:
            raise BadRequest("date must be YYYY-MM-DD") from exc
        local_midnight = datetime(day.year, day.month, day.day, tzinfo=timezone(timedelta(hours=tz_hours)))
        start = local_midnight.astimezone(timezone.utc)
        day_start = start.isoformat(timespec="seconds")
        day_end = (start + timedelta(days=1)).isoformat(timespec="seconds")
    for key in ("start_time", "end_time"):
        if args.get(key) and not _HHMM.match(args[key]):
            raise BadRequest(f"{key} must be HH:MM")
    return reads.DialogFilter(
        since=since,
        day_start=day_start,
        day_end=day_end,
        tz_hours=tz_hours,
        start_time=args.get("start_time") or None,
        end_time=args.get("end_time") or None,
        line_id=args.get("line_id") or None,
    )


@bp.get("/dialogs")
def dialogs() -> Any:
    limit = _int_arg("limit", 100, 1, MAX_LIMIT) or 100
    cursor = _int_arg("cursor", None, 1)
    items, nxt = reads.list_dialogs(services().ctx.db.read(), limit, cursor, _dialog_filter())
    return jsonify(items=items, next=str(nxt) if nxt else None)


@bp.get("/dialogs/<int:chat_id>")
def dialog(chat_id: int) -> Any:
    found = reads.get_dialog(services().ctx.db.read(), chat_id)
    if found is None:
        abort(404)
    return jsonify(found)


@bp.get("/dialogs/<int:chat_id>/messages")
def messages(chat_id: int) -> Any:
    conn = services().ctx.db.read()
    if reads.get_dialog(conn, chat_id) is None:
        abort(404)
    limit = _int_arg("limit", 100, 1, MAX_LIMIT) or 100
    cursor = _int_arg("cursor", None, 0)
    items, nxt = reads.list_messages(conn, chat_id, limit, cursor)
    return jsonify(items=items, next=str(nxt) if nxt else None)


@bp.get("/users")
def users() -> Any:
    return jsonify(items=reads.list_users(services().ctx.db.read()))


@bp.app_errorhandler(404)
def not_found(_exc: Any) -> Any:
    return jsonify(error="not found"), 404


@bp.get("/search")
def search() -> Any:
    q = (request.args.get("q") or "").strip()
    if not q:
        raise BadRequest("q is required")
    limit = _int_arg("limit", 50, 1, MAX_LIMIT) or 50
    cursor = _int_arg("cursor", None, 1)
    chat = _int_arg("chat_id", None, 1)
    items, nxt = archive.search(services().ctx.db.read(), q, limit, cursor, chat)
    return jsonify(items=items, next=str(nxt) if nxt else None)


@bp.get("/export")
def export_messages() -> Any:
    fmt = request.args.get("format", "jsonl")
    if fmt not in export.FORMATS:
        raise BadRequest("format must be jsonl or csv")
    args = request.args
    bounds = {}
    for key in ("from", "to"):
        if args.get(key):
            try:
                parsed = datetime.fromisoformat(args[key].replace("Z", "+00:00"))
            except ValueError as exc:
                raise BadRequest(f"{key} must be an ISO 8601 time") from exc
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            bounds[key] = parsed.astimezone(timezone.utc).isoformat(timespec="seconds")
    f = archive.ExportFilter(
        start=bounds.get("from"),
        end=bounds.get("to"),
        line_id=args.get("line_id") or None,
        operator_id=_int_arg("operator_id", None, 1),
        chat_id=_int_arg("chat_id", None, 1),
    )
    ctx = services().ctx
    mimetype = "application/x-ndjson" if fmt == "jsonl" else "text/csv"
    name = f"b24bot-export.{fmt}"
    return Response(
        stream_with_context(export.stream(ctx, fmt, f)),
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
