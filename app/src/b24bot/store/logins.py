"""Viewer logins: failures per user+address and live sessions, in SQLite so every gunicorn worker agrees."""

from __future__ import annotations

import sqlite3


def create_tables(conn: sqlite3.Connection) -> None:
    """Part of the viewer's schema step (IF NOT EXISTS: safe under any step number, safe to repeat)."""
    conn.execute(
        """CREATE TABLE IF NOT EXISTS viewer_logins (
               key          TEXT PRIMARY KEY,
               failures     INTEGER NOT NULL,
               window_start REAL NOT NULL
           ) WITHOUT ROWID"""
    )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS viewer_sessions (
               sid        TEXT PRIMARY KEY,
               user       TEXT NOT NULL,
               expires_ts REAL NOT NULL
           ) WITHOUT ROWID"""
    )


def session_start(conn: sqlite3.Connection, sid: str, user: str, now: float, lifetime_s: float) -> None:
    conn.execute("DELETE FROM viewer_sessions WHERE expires_ts <= ?", (now,))
    conn.execute("INSERT INTO viewer_sessions (sid, user, expires_ts) VALUES (?, ?, ?)", (sid, user, now + lifetime_s))


def session_user(conn: sqlite3.Connection, sid: str, now: float) -> str | None:
    """The user of a live session; a cookie replayed after logout or expiry finds nothing."""
    row = conn.execute("SELECT user FROM viewer_sessions WHERE sid = ? AND expires_ts > ?", (sid, now)).fetchone()
    return row[0] if row else None


def session_end(conn: sqlite3.Connection, sid: str) -> None:
    conn.execute("DELETE FROM viewer_sessions WHERE sid = ?", (sid,))


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
