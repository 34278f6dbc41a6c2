"""The local read API, behind `Authorization: Bearer <B24BOT_API_TOKEN>`."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request, stream_with_context

from ..jobs import export
from ..logs import clip
from ..store import archive, reads
from .auth import require_token
from .state import services

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api")
MAX_LIMIT = 500
INT64_MAX = 2**63 - 1  # ids beyond this cannot be in SQLite: a 400/404, never an overflow
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class BadRequest(ValueError):
    pass


bp.before_request(require_token)


@bp.errorhandler(BadRequest)
def bad_request(exc: BadRequest) -> Any:
    return jsonify(error=str(exc)), 400


def _int_arg(name: str, default: int | None = None, lo: int = 0, hi: int = INT64_MAX) -> int | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an integer") from exc
    if value < lo or value > hi:
        raise BadRequest(f"{name} must be between {lo} and {hi}")
    return value


def _utc(name: str, raw: str) -> str:
    """An ISO 8601 time as UTC text; 400 when unparsable or beyond the calendar once moved to UTC."""
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.astimezone(timezone.utc).isoformat(timespec="seconds")
    except (ValueError, OverflowError) as exc:
        raise BadRequest(f"{name} must be an ISO 8601 time between years 1 and 9999") from exc


def _dialog_filter() -> reads.DialogFilter:
    args = request.args
    since = _utc("since", args["since"]) if args.get("since") else None
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
        try:
            start = local_midnight.astimezone(timezone.utc)
            day_start = start.isoformat(timespec="seconds")
            day_end = (start + timedelta(days=1)).isoformat(timespec="seconds")
        except OverflowError as exc:
            raise BadRequest("date with tz_offset falls outside the calendar") from exc
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


@bp.get("/dialogs/<int(max=9223372036854775807):chat_id>")
def dialog(chat_id: int) -> Any:
    found = reads.get_dialog(services().ctx.db.read(), chat_id)
    if found is None:
        abort(404)
    return jsonify(found)


@bp.get("/dialogs/<int(max=9223372036854775807):chat_id>/messages")
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


def _abort_on_failure(chunks: Iterator[str]) -> Iterator[str]:
    """Re-raise after logging: the server then cuts the connection without the last chunk, so the client sees a
    broken download instead of a short file that looks complete."""
    sent = 0
    try:
        for chunk in chunks:
            yield chunk
            sent += 1
    except Exception as exc:
        log.error("export aborted after %d chunks: %s: %s", sent, exc.__class__.__name__, clip(exc))
        raise


@bp.get("/export")
def export_messages() -> Any:
    fmt = request.args.get("format", "jsonl")
    if fmt not in export.FORMATS:
        raise BadRequest("format must be jsonl or csv")
    args = request.args
    bounds = {key: _utc(key, args[key]) for key in ("from", "to") if args.get(key)}
    f = archive.ExportFilter(
        start=bounds.get("from"),
        end=bounds.get("to"),
        line_id=args.get("line_id") or None,
        operator_id=_int_arg("operator_id", None, 1),
        chat_id=_int_arg("chat_id", None, 1),
    )
    chunks = export.stream(services().ctx, fmt, f)
    mimetype = "application/x-ndjson" if fmt == "jsonl" else "text/csv"
    name = f"b24bot-export.{fmt}"
    return Response(
        stream_with_context(_abort_on_failure(chunks)),
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
