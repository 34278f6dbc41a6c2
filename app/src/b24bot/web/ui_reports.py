"""Reports page (SVG bars drawn on the server, figures from per-session columns) and the per-conversation CSV."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

from flask import Response, stream_with_context

from ..jobs import export
from ..store import reports
from .state import services
from .ui import bp, page, tz
from .ui_pages import day_bounds

DEFAULT_DAYS = 30
MAX_DAYS = 400
BREACHES_SHOWN = 100
PALETTE = ("#1e88e5", "#e53935", "#43a047", "#fb8c00", "#8e24aa", "#00897b", "#6d4c41", "#546e7a")


def _range() -> tuple[str, str, str, str]:
    start, end, raw_from, raw_to = day_bounds(DEFAULT_DAYS)
    today = datetime.now(tz()).date()
    if start is None or end is None:  # one side given: the other is DEFAULT_DAYS away
        d_from = date.fromisoformat(raw_from) if raw_from else date.fromisoformat(raw_to) - timedelta(DEFAULT_DAYS - 1)
        d_to = date.fromisoformat(raw_to) if raw_to else min(today, d_from + timedelta(DEFAULT_DAYS - 1))
        raw_from, raw_to = d_from.isoformat(), d_to.isoformat()
        start, end = _bounds(d_from, d_to)
    if (date.fromisoformat(raw_to) - date.fromisoformat(raw_from)).days >= MAX_DAYS:
        from .ui import abort_bad

        abort_bad(f"reports cover at most {MAX_DAYS} days")
    return start, end, raw_from, raw_to


def _bounds(d_from: date, d_to: date) -> tuple[str, str]:
    out = []
    for d in (d_from, d_to + timedelta(days=1)):
        local = datetime(d.year, d.month, d.day, tzinfo=tz())
        out.append(local.astimezone(timezone.utc).isoformat(timespec="seconds"))
    return out[0], out[1]


def per_day(start: str, end: str, raw_from: str, raw_to: str) -> dict[str, Any]:
    """Dialogs per local day and line, as bar geometry for the template's SVG."""
    zone = tz()
    counts: dict[tuple[str, str], int] = {}
    for hour, line, n in reports.dialogs_per_hour(services().ctx.db.read(), start, end):
        day = datetime.fromisoformat(hour + ":00:00+00:00").astimezone(zone).date().isoformat()
        counts[(day, line)] = counts.get((day, line), 0) + n
    d0, d1 = date.fromisoformat(raw_from), date.fromisoformat(raw_to)
    days = [(d0 + timedelta(i)).isoformat() for i in range((d1 - d0).days + 1)]
    lines = sorted({line for _, line in counts}, key=lambda x: (len(x), x))
    totals = {d: sum(counts.get((d, ln), 0) for ln in lines) for d in days}
    top = max(totals.values(), default=0) or 1
    width, height, pad = 760, 220, 30
    bar_w = (width - pad) / max(1, len(days))
    bars = []
    for i, d in enumerate(days):
        y = height - pad
        for j, ln in enumerate(lines):
            n = counts.get((d, ln), 0)
            if not n:
                continue
            h = n / top * (height - 2 * pad)
            y -= h
            bars.append(
                {
                    "x": pad + i * bar_w + 1,
                    "y": y,
                    "w": max(1.0, bar_w - 2),
                    "h": h,
                    "color": PALETTE[j % len(PALETTE)],
                    "title": f"{d} line {ln}: {n}",
                }
            )
    legend = [{"line": ln, "color": PALETTE[j % len(PALETTE)]} for j, ln in enumerate(lines)]
    step = max(1, len(days) // 10)
    labels = [{"x": pad + i * bar_w + bar_w / 2, "text": d[5:]} for i, d in enumerate(days) if i % step == 0]
    return {
        "bars": bars,
        "legend": legend,
        "labels": labels,
        "top": top,
        "width": width,
        "height": height,
        "pad": pad,
        "total": sum(totals.values()),
        "days": totals,
    }


@bp.get("/reports")
def report() -> Any:
    start, end, raw_from, raw_to = _range()
    conn = services().ctx.db.read()
    ops = reports.per_operator(conn, start, end)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    sla = reports.sla(conn, start, end, services().ctx.settings.sla_minutes, now, BREACHES_SHOWN)
    waiting_total, waiting = reports.waiting_now(conn)
    ids = {o["operator_id"] for o in ops} | {b["first_operator_id"] for b in sla["breaches"]}
    names = reports.operator_names(conn, list(ids))
    return page(
        "reports.html",
        form={"from": raw_from, "to": raw_to},
        chart=per_day(start, end, raw_from, raw_to),
        operators=ops,
        names=names,
        sla=sla,
        breaches=sla["breaches"],
        waiting_total=waiting_total,
        waiting=waiting,
        now=datetime.now(timezone.utc),
    )


def _csv(start: str, end: str) -> Iterator[str]:
    return export.csv_lines(reports.CSV_COLUMNS, reports.csv_rows(services().ctx.db.read(), start, end))


@bp.get("/reports.csv")
def report_csv() -> Any:
    start, end, raw_from, raw_to = _range()
    return Response(
        stream_with_context(_csv(start, end)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="conversations-{raw_from}-{raw_to}.csv"'},
    )
