"""Viewer pages: dialogs list, transcript (and its downloads), attachments, search, erasure."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from flask import Response, abort, request, send_file, stream_with_context

from ..jobs import retention
from ..store import archive, reads, viewer
from ..store.reports import response_seconds
from .state import services
from .ui import abort_bad, bp, highlight, link, local_time, page, tz

LIST_PAGE = 50
SEARCH_PAGE = 30
OPTIONS_TTL_S = 60.0
_options: dict[str, Any] = {"at": 0.0, "value": None}


def _options_cached() -> dict[str, Any]:
    """Filter drop-downs read whole indexes: once a minute per worker is plenty."""
    if _options["value"] is None or time.monotonic() - _options["at"] > OPTIONS_TTL_S:
        _options["value"] = viewer.filter_options(services().ctx.db.read())
        _options["at"] = time.monotonic()
    return _options["value"]


def int_arg(name: str, lo: int = 0) -> int | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < lo or int(raw) >= 2**62:
        abort_bad(f"{name} must be a whole number")
    return int(raw)


def day_bounds(default_days: int | None = None) -> tuple[str | None, str | None, str, str]:
    """`from`/`to` (YYYY-MM-DD, both days included, in the portal's time zone) as UTC ISO bounds."""
    raw_from, raw_to = request.args.get("from", "").strip(), request.args.get("to", "").strip()
    if default_days and not raw_from and not raw_to:
        today = datetime.now(tz()).date()
        raw_from, raw_to = (today - timedelta(days=default_days - 1)).isoformat(), today.isoformat()
    bounds: list[str | None] = []
    for raw, extra in ((raw_from, 0), (raw_to, 1)):
        if not raw:
            bounds.append(None)
            continue
        try:
            day = date.fromisoformat(raw) + timedelta(days=extra)
        except (ValueError, OverflowError):
            abort_bad("dates must be YYYY-MM-DD")
        midnight = datetime(day.year, day.month, day.day, tzinfo=tz())
        bounds.append(midnight.astimezone(timezone.utc).isoformat(timespec="seconds"))
    start, end = bounds
    if start and end and start >= end:
        abort_bad("the range ends before it starts")
    return start, end, raw_from, raw_to


def view_filter() -> tuple[viewer.ViewFilter, dict[str, str]]:
    a = request.args
    status = a.get("status", "")
    if status not in ("", "open", "closed"):
        abort_bad("status must be open or closed")
    start, end, raw_from, raw_to = day_bounds()
    f = viewer.ViewFilter(
        line_id=a.get("line", "").strip()[:32] or None,
        connector=a.get("connector", "").strip()[:64] or None,
        operator_id=int_arg("operator", 1),
        status=status or None,
        start=start,
        end=end,
        unanswered=a.get("unanswered") == "1",
    )
    form = {k: a.get(k, "") for k in ("line", "connector", "operator", "status", "unanswered", "q")}
    form.update({"from": raw_from, "to": raw_to})
    return f, form


def _partial() -> bool:
    """htmx asks for the results only (and not for a whole page it would nest)."""
    return bool(request.headers.get("HX-Request")) and not request.headers.get("HX-History-Restore-Request")


@bp.get("/dialogs")
def dialogs() -> Any:
    f, form = view_filter()
    rows, nxt = viewer.list_dialogs(services().ctx.db.read(), LIST_PAGE, int_arg("cursor", 1), f)
    for r in rows:
        r["response_s"] = response_seconds(r["first_client_at"], r["first_operator_at"])
    query = {k: v for k, v in form.items() if v and k != "q"}
    values = {"rows": rows, "next": nxt, "form": form, "query": query, "options": _options_cached()}
    return page("dialogs_rows.html" if _partial() else "dialogs.html", **values)


@bp.get("/dialogs/<int:chat_id>")
def transcript(chat_id: int) -> Any:
    conn = services().ctx.db.read()
    dialog = reads.get_dialog(conn, chat_id)
    if dialog is None:
        abort(404)
    at = int_arg("at", 1)
    after = viewer.page_start(conn, chat_id, at) if at else (int_arg("after") or 0)
    pg = viewer.transcript_page(conn, chat_id, after)
    extra = viewer.transcript_context(conn, chat_id)
    return page("transcript.html", dialog=dialog, page=pg, at=at, **extra)


def _text_lines(chat_id: int, names: dict[int, str]) -> Iterator[str]:
    for m in archive.export_rows(services().ctx.db.read(), archive.ExportFilter(chat_id=chat_id)):
        who = m["author_name"] or names.get(m["author_id"] or 0) or m["author_role"]
        flags = (" [edited]" if m["edited"] else "") + (" [deleted]" if m["deleted"] else "")
        body = m["text"].replace("\n", "\n    ")
        yield f"{local_time(m['created_at'])}  {m['author_role']} {who}{flags}:\n    {body}\n"


@bp.get("/dialogs/<int:chat_id>/transcript.<fmt>")
def download(chat_id: int, fmt: str) -> Any:
    ctx = services().ctx
    if fmt not in ("txt", "jsonl") or reads.get_dialog(ctx.db.read(), chat_id) is None:
        abort(404)
    if fmt == "txt":
        names = viewer.transcript_context(ctx.db.read(), chat_id)["names"]
        header = f"Dialog {chat_id}, times in {tz().key}\n\n"
        body: Iterator[str] = iter([header, *_text_lines(chat_id, names)])
        mimetype = "text/plain; charset=utf-8"
    else:
        rows = archive.export_rows(ctx.db.read(), archive.ExportFilter(chat_id=chat_id))
        body = (json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        mimetype = "application/x-ndjson"
    return Response(
        stream_with_context(body),
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="dialog-{chat_id}.{fmt}"'},
    )


@bp.get("/files/<int:file_id>")
def attachment(file_id: int) -> Any:
    """A file from the archive (downloaded by sync); only paths inside the data dir's files/ are served."""
    ctx = services().ctx
    found = viewer.attachment(ctx.db.read(), file_id)
    root = (Path(ctx.settings.data_dir) / "files").resolve()
    if not found or not found["path"]:
        abort(404)
    path = Path(found["path"]).resolve()
    if root not in path.parents or not path.is_file():
        abort(404)
    return send_file(path, as_attachment=True, download_name=found["name"] or f"file-{file_id}")


@bp.get("/search")
def search() -> Any:
    f, form = view_filter()
    q = request.args.get("q", "").strip()[:200]
    rows, nxt = [], None
    if q:
        rows, nxt = viewer.search(services().ctx.db.read(), q, SEARCH_PAGE, int_arg("cursor", 1), f)
        for r in rows:
            r["snippet"] = highlight(r["text"], q)
    query = {k: v for k, v in form.items() if v}
    values = {"rows": rows, "next": nxt, "form": form, "q": q, "query": query, "options": _options_cached()}
    return page("search_rows.html" if _partial() else "search.html", **values)


@bp.route("/erase", methods=["GET", "POST"])
def erase() -> Any:
    """GET shows what would go; POST (CSRF token + the confirmation box) erases it, like `b24bot erase`."""
    ctx = services().ctx
    client = request.values.get("client", "").strip()[:300]
    chats = archive.client_chats(ctx.db.read(), client) if client else []
    if request.method == "GET":
        dialogs = [reads.get_dialog(ctx.db.read(), c) for c in chats[:20]]
        return page("erase.html", client=client, chats=chats, dialogs=[d for d in dialogs if d])
    if not client:
        abort_bad("name the client to erase")
    if request.form.get("confirm") != "yes":
        return page("erase.html", 400, client=client, chats=chats, dialogs=[], error="Tick the confirmation box.")
    counts = retention.erase_client(ctx, client)
    return page("erase.html", client=client, chats=[], dialogs=[], done=counts, home=link("ui.dialogs"))
