"""Failed viewer logins per user+address, in SQLite so the limit holds across gunicorn workers."""

from __future__ import annotations

import sqlite3


def blocked(conn: sqlite3.Connection, key: str, now: float, max_failures: int, window_s: float) -> bool:
    row = conn.execute("SELECT failures, window_start FROM viewer_logins WHERE key = ?", (key,)).fetchone()
    return bool(row) and row[1] > now - window_s and row[0] >= max_failures


def failed(conn: sqlite3.Connection, key: str, now: float, window_s: float) -> None:
    """Count a failure; a window older than window_s starts over."""
    conn.execute(
        """INSERT INTO viewer_logins (key, failures, window_start) VALUES (?1, 1, ?2)
           ON CONFLICT(key) DO UPDATE SET
               failures = CASE WHEN window_start <= ?2 - ?3 THEN 1 ELSE failures + 1 END,
               window_start = CASE WHEN window_start <= ?2 - ?3 THEN ?2 ELSE window_start END""",
        (key, now, window_s),
    )
    conn.execute("DELETE FROM viewer_logins WHERE window_start <= ?", (now - 2 * window_s,))  # keep it small


def succeeded(conn: sqlite3.Connection, key: str) -> None:
    conn.execute("DELETE FROM viewer_logins WHERE key = ?", (key,))
