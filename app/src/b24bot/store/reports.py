"""Reports over a date range, from the per-session figures kept by store/responses.py."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from typing import Any

WAITING_SHOWN = 100


def _dt(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def dialogs_per_hour(conn: sqlite3.Connection, start: str, end: str) -> list[tuple[str, str, int]]:
    """(UTC hour 'YYYY-MM-DDTHH', line, dialogs started): the caller folds hours into local days."""
    rows = conn.execute(
        """SELECT substr(first_seen_at, 1, 13), COALESCE(line_id, '?'), count(*) FROM dialogs
           WHERE first_seen_at >= ? AND first_seen_at < ? GROUP BY 1, 2""",
        (start, end),
    )
    return [(r[0], r[1], r[2]) for r in rows]


def response_seconds(client_at: str | None, operator_at: str | None) -> float | None:
    """Client's first message to the first operator reply; an operator who wrote first answered at once."""
    if not client_at or not operator_at:
        return None
    return max(0.0, (_dt(operator_at) - _dt(client_at)).total_seconds())


def sessions(conn: sqlite3.Connection, start: str, end: str) -> list[dict[str, Any]]:
    """Sessions started in the range with their dialog, first reply and counts (one row per conversation)."""
    rows = conn.execute(
        """SELECT s.session_id, s.chat_id, COALESCE(s.line_id, d.line_id) AS line_id,
                  COALESCE(s.connector, d.connector) AS connector, d.title, d.client_user_id,
                  COALESCE(s.started_at, s.first_seen_at) AS started_at, s.first_client_at,
                  s.first_operator_at, s.first_operator_id, s.closed_at, s.client_messages,
                  s.operator_messages, s.other_messages
           FROM sessions s LEFT JOIN dialogs d ON d.chat_id = s.chat_id
           WHERE s.first_seen_at >= ? AND s.first_seen_at < ? ORDER BY s.session_id""",
        (start, end),
    )
    out = []
    for r in rows:
        row = dict(r)
        row["response_s"] = response_seconds(row["first_client_at"], row["first_operator_at"])
        out.append(row)
    return out


# Response seconds of a session in SQL (C speed over tens of thousands of sessions); an operator who wrote first
# answered at once.
_RS = "MAX(0, (julianday(first_operator_at) - julianday(first_client_at)) * 86400)"
_RANGE = "first_seen_at >= :start AND first_seen_at < :end AND first_client_at IS NOT NULL"


def per_operator(conn: sqlite3.Connection, start: str, end: str) -> list[dict[str, Any]]:
    """First-response time per operator (who gave the first reply): median and p90 (nearest rank), count.
    Grouped in Python: faster here than SQLite's window functions over tens of thousands of sessions."""
    by_op: dict[int | None, list[float]] = {}
    rows = conn.execute(
        f"SELECT first_operator_id, {_RS} FROM sessions WHERE {_RANGE} AND first_operator_at IS NOT NULL",  # noqa: S608
        {"start": start, "end": end},
    )
    for op, rs in rows:
        by_op.setdefault(op, []).append(rs)
    out = []
    for op, values in by_op.items():
        values.sort()
        out.append({"operator_id": op, "count": len(values), "median_s": _rank(values, 50), "p90_s": _rank(values, 90)})
    return sorted(out, key=lambda x: -x["count"])


def _rank(sorted_values: list[float], pct: int) -> float:
    """Nearest-rank percentile: the smallest value with at least pct % of the values at or below it."""
    return sorted_values[max(1, -(-len(sorted_values) * pct // 100)) - 1]


def sla(conn: sqlite3.Connection, start: str, end: str, minutes: float, now: str, shown: int) -> dict[str, Any]:
    """Share answered within the SLA among sessions decided: answered, closed unanswered, or unanswered for longer
    than the SLA (the rest are still inside their window). Breaches listed longest wait first."""
    waited = f"COALESCE({_RS}, (julianday(COALESCE(closed_at, :now)) - julianday(first_client_at)) * 86400)"
    decided = f"(first_operator_at IS NOT NULL OR closed_at IS NOT NULL OR {waited} > :limit)"
    args = {"start": start, "end": end, "now": now, "limit": minutes * 60}
    n_decided, n_met = conn.execute(
        f"SELECT SUM({decided}), SUM(first_operator_at IS NOT NULL AND {_RS} <= :limit) FROM sessions WHERE {_RANGE}",  # noqa: S608
        args,
    ).fetchone()
    n_decided, n_met = n_decided or 0, n_met or 0
    breaches = conn.execute(
        f"""SELECT s.session_id, s.chat_id, COALESCE(s.line_id, d.line_id) AS line_id, d.title, s.first_client_at,
                   s.first_operator_id, s.first_operator_at IS NOT NULL AS answered, w AS waited_s
            FROM (SELECT *, {waited} AS w FROM sessions WHERE {_RANGE} AND {decided}) s
            LEFT JOIN dialogs d ON d.chat_id = s.chat_id
            WHERE s.first_operator_at IS NULL OR w > :limit ORDER BY w DESC LIMIT :shown""",  # noqa: S608 - fixed clauses
        {**args, "shown": shown},
    )
    return {
        "minutes": minutes,
        "decided": n_decided,
        "met": n_met,
        "breached": n_decided - n_met,
        "share": (n_met / n_decided) if n_decided else None,
        "breaches": [dict(r) for r in breaches],
    }


def waiting_now(conn: sqlite3.Connection) -> tuple[int, list[dict[str, Any]]]:
    """Open sessions whose client has written and no operator has answered yet, longest wait first."""
    cond = "first_operator_at IS NULL AND closed_at IS NULL AND first_client_at IS NOT NULL"
    total = conn.execute(f"SELECT count(*) FROM sessions INDEXED BY sessions_waiting WHERE {cond}").fetchone()[0]  # noqa: S608
    rows = conn.execute(
        f"""SELECT s.session_id, s.chat_id, s.first_client_at, d.title, d.line_id, d.connector
            FROM sessions s INDEXED BY sessions_waiting LEFT JOIN dialogs d ON d.chat_id = s.chat_id
            WHERE {cond.replace("first_", "s.first_").replace("closed_at", "s.closed_at")}
            ORDER BY s.first_client_at LIMIT ?""",  # noqa: S608 - fixed clauses
        (WAITING_SHOWN,),
    )
    return total, [dict(r) for r in rows]


def operator_names(conn: sqlite3.Connection, ids: list[int]) -> dict[int, str]:
    ids = [i for i in ids if i is not None]
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT user_id, MAX(name) FROM participants WHERE user_id IN ({marks}) GROUP BY user_id",  # noqa: S608
        ids,
    )
    return {r[0]: r[1] for r in rows if r[1]}


CSV_COLUMNS = (
    "session_id",
    "chat_id",
    "line_id",
    "channel",
    "client",
    "client_user_id",
    "operator",
    "started_at",
    "first_response_s",
    "closed_at",
    "client_messages",
    "operator_messages",
    "other_messages",
)


def csv_rows(conn: sqlite3.Connection, start: str, end: str) -> Iterator[list[Any]]:
    rows = sessions(conn, start, end)
    names = operator_names(conn, list({r["first_operator_id"] for r in rows}))
    for r in rows:
        op = r["first_operator_id"]
        yield [
            r["session_id"],
            r["chat_id"],
            r["line_id"],
            r["connector"],
            r["title"],
            r["client_user_id"],
            names.get(op, f"#{op}") if op else "",
            r["started_at"],
            "" if r["response_s"] is None else round(r["response_s"]),
            r["closed_at"] or "",
            r["client_messages"],
            r["operator_messages"],
            r["other_messages"],
        ]
