"""Reads for `b24bot doctor`'s Chatbots 2.0 checks: what actually arrived and happened since a time."""

from __future__ import annotations

import sqlite3
from typing import Any


def v2_events_since(conn: sqlite3.Connection, since_iso: str) -> tuple[int, str | None]:
    """Stored events that came through the v2 pump (their payload carries V2_EVENT_ID)."""
    row = conn.execute(
        "SELECT count(*), max(received_at) FROM events WHERE received_at >= ?"
        " AND json_extract(payload, '$.data.V2_EVENT_ID') IS NOT NULL",
        (since_iso,),
    ).fetchone()
    return int(row[0]), row[1]


def handoffs_since(conn: sqlite3.Connection, since_ts: float) -> tuple[dict[str, int], dict[str, int]]:
    """(finished hand-offs by outcome, open failing ones by last error) for dialogs joined since `since_ts`."""
    done = conn.execute(
        "SELECT outcome, count(*) FROM handoffs WHERE done_ts IS NOT NULL AND created_ts >= ? GROUP BY outcome",
        (since_ts,),
    ).fetchall()
    failing = conn.execute(
        "SELECT last_error, count(*) FROM handoffs WHERE done_ts IS NULL AND attempts > 0 AND created_ts >= ?"
        " GROUP BY last_error",
        (since_ts,),
    ).fetchall()
    return {str(r[0]): r[1] for r in done}, {str(r[0]): r[1] for r in failing}


def operator_messages_since(conn: sqlite3.Connection, since_iso: str) -> int:
    row: Any = conn.execute(
        "SELECT count(*) FROM messages WHERE author_role = 'operator' AND created_at >= ?", (since_iso,)
    ).fetchone()
    return int(row[0])
