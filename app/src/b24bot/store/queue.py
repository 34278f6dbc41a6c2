"""The durable hand-off queue: claim with a lease, finish, or schedule a retry. Safe across processes."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class Handoff:
    id: int
    chat_id: int
    target: str
    attempts: int
    created_ts: float


def claim_due(conn: sqlite3.Connection, now: float, lease_s: float, limit: int = 10) -> list[Handoff]:
    """Take up to `limit` due hand-offs for `lease_s` seconds; a crashed worker's lease simply runs out."""
    rows = conn.execute(
        """UPDATE handoffs SET locked_until = ?, attempts = attempts + 1
           WHERE id IN (SELECT id FROM handoffs
                        WHERE done_ts IS NULL AND next_attempt_ts <= ? AND COALESCE(locked_until, 0) <= ?
                        ORDER BY next_attempt_ts LIMIT ?)
           RETURNING id, chat_id, target, attempts, created_ts""",
        (now + lease_s, now, now, limit),
    ).fetchall()
    return [Handoff(r["id"], r["chat_id"], r["target"], r["attempts"], r["created_ts"]) for r in rows]


def finish(conn: sqlite3.Connection, handoff_id: int, chat_id: int, now: float, now_iso: str, outcome: str) -> None:
    conn.execute(
        "UPDATE handoffs SET done_ts = ?, outcome = ?, locked_until = NULL, last_error = NULL WHERE id = ?",
        (now, outcome, handoff_id),
    )
    conn.execute(
        "UPDATE dialogs SET transferred_at = COALESCE(transferred_at, ?) WHERE chat_id = ?",
        (now_iso, chat_id),
    )
    conn.execute(
        """UPDATE sessions SET transferred_at = COALESCE(transferred_at, ?)
           WHERE session_id = (SELECT MAX(session_id) FROM sessions WHERE chat_id = ?)""",
        (now_iso, chat_id),
    )


def retry_later(conn: sqlite3.Connection, handoff_id: int, next_ts: float, error: str) -> None:
    conn.execute(
        "UPDATE handoffs SET next_attempt_ts = ?, locked_until = NULL, last_error = ? WHERE id = ?",
        (next_ts, error[:500], handoff_id),
    )


def give_up(conn: sqlite3.Connection, handoff_id: int, now: float, error: str) -> None:
    """Only for errors no retry can fix (the app was uninstalled); kept visible in the table."""
    conn.execute(
        "UPDATE handoffs SET done_ts = ?, outcome = 'failed', locked_until = NULL, last_error = ? WHERE id = ?",
        (now, error[:500], handoff_id),
    )


def next_due(conn: sqlite3.Connection) -> float | None:
    """When the next hand-off can be claimed: one under another worker's lease is not claimable before the
    lease ends (counting it as due made every idle worker spin on write transactions meanwhile)."""
    row = conn.execute(
        "SELECT MIN(MAX(next_attempt_ts, COALESCE(locked_until, 0))) FROM handoffs WHERE done_ts IS NULL"
    ).fetchone()
    return row[0] if row else None


def pending_count(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM handoffs WHERE done_ts IS NULL").fetchone()[0]


def claim_jobs(conn: sqlite3.Connection, kind: str, now: float, limit: int) -> list[str]:
    """Take due jobs of one kind; deleting them is the claim, so two processes never run the same one."""
    rows = conn.execute(
        """DELETE FROM jobs WHERE kind = ? AND key IN (SELECT key FROM jobs WHERE kind = ? AND due_ts <= ? LIMIT ?)
           RETURNING key""",
        (kind, kind, now, limit),
    ).fetchall()
    return [r[0] for r in rows]
