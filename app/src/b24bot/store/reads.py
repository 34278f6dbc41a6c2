"""Queries behind the local API and the CLI. Keyset pagination: cost per page does not grow with the table."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

DIALOG_COLUMNS = (
    "chat_id, dialog_id, connector, line_id, external_chat_id, client_user_id, title, first_seen_at,"
    " last_message_at, message_count, transferred_at"
)

# A session is behind when its history was never read, or not read since it closed or since its last known
# activity. (Same in `sessions_behind` and in each dialog's `complete`.)
_SESSION_BEHIND = """(s.synced_at IS NULL OR s.synced_at < COALESCE(s.closed_at, '')
                       OR s.synced_at < COALESCE(s.last_activity_at, ''))"""

# Per dialog, as of the last sync: every session read from the portal's history with nothing newer known.
CAPTURE_COLUMNS = f"""(SELECT MAX(s.synced_at) FROM sessions s WHERE s.chat_id = dialogs.chat_id) AS synced_at,
    (SELECT count(*) > 0 AND NOT max({_SESSION_BEHIND}) FROM sessions s WHERE s.chat_id = dialogs.chat_id)
        AS complete"""  # noqa: S608 - constant text


@dataclass(frozen=True)
class DialogFilter:
    since: str | None = None  # last_message_at >= since (ISO 8601)
    day_start: str | None = None  # first_seen_at in [day_start, day_end) (UTC ISO)
    day_end: str | None = None
    tz_hours: float = 0.0  # for the working-hours window below
    start_time: str | None = None  # HH:MM local
    end_time: str | None = None
    line_id: str | None = None


SINCE_INDEX_MAX = 2000


def _few_since(conn: sqlite3.Connection, since: str) -> bool:
    n = conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM dialogs WHERE last_message_at >= ? LIMIT ?)", (since, SINCE_INDEX_MAX + 1)
    ).fetchone()[0]
    return n <= SINCE_INDEX_MAX


def list_dialogs(
    conn: sqlite3.Connection, limit: int, before_chat_id: int | None, f: DialogFilter
) -> tuple[list[dict[str, Any]], int | None]:
    """Newest dialogs first; returns (items, cursor for the next page or None)."""
    where, args = [], []  # type: ignore[var-annotated]
    if before_chat_id is not None:
        where.append("chat_id < ?")
        args.append(before_chat_id)
    if f.since:
        where.append("last_message_at >= ?")
        args.append(f.since)
    if f.day_start and f.day_end:
        where.append("first_seen_at >= ? AND first_seen_at < ?")
        args += [f.day_start, f.day_end]
    if f.start_time or f.end_time:
        local = "strftime('%H:%M', first_seen_at, ?)"
        shift = f"{f.tz_hours * 60:+.0f} minutes"
        if f.start_time:
            where.append(f"{local} >= ?")
            args += [shift, f.start_time]
        if f.end_time:
            where.append(f"{local} < ?")
            args += [shift, f.end_time]
    if f.line_id:
        where.append("line_id = ?")
        args.append(f.line_id)
    source = "dialogs"
    if f.since and _few_since(conn, f.since):
        # A poll for recent activity usually matches a handful of dialogs: walk the time index and sort those,
        # instead of walking every dialog in chat_id order to find them.
        source = "dialogs INDEXED BY dialogs_last_message"
    sql = f"SELECT {DIALOG_COLUMNS}, {CAPTURE_COLUMNS} FROM {source}"  # noqa: S608 - constant names, every value is bound
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY chat_id DESC LIMIT ?"
    rows = [_capture(dict(r)) for r in conn.execute(sql, [*args, limit + 1])]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["chat_id"] if more and rows else None)


def get_dialog(conn: sqlite3.Connection, chat_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        f"SELECT {DIALOG_COLUMNS}, {CAPTURE_COLUMNS} FROM dialogs WHERE chat_id = ?",  # noqa: S608 - constant columns
        (chat_id,),
    ).fetchone()
    if row is None:
        return None
    dialog = _capture(dict(row))
    dialog["participants"] = [
        dict(r)
        for r in conn.execute(
            "SELECT user_id, name, role, first_seen_at FROM participants WHERE chat_id = ? ORDER BY first_seen_at",
            (chat_id,),
        )
    ]
    dialog["sessions"] = [
        dict(r)
        for r in conn.execute(
            """SELECT session_id, line_id, connector, crm_entity_type, crm_entity_id, crm_bindings, started_at,
                      first_seen_at, transferred_at, closed_at
               FROM sessions WHERE chat_id = ? ORDER BY session_id""",
            (chat_id,),
        )
    ]
    return dialog


def _capture(row: dict[str, Any]) -> dict[str, Any]:
    row["complete"] = bool(row["complete"])
    return row


def list_messages(
    conn: sqlite3.Connection, chat_id: int, limit: int, after_message_id: int | None
) -> tuple[list[dict[str, Any]], int | None]:
    rows = [
        dict(r)
        for r in conn.execute(
            """SELECT message_id, chat_id, session_id, author_id, author_role, text, created_at, edited, deleted
               FROM messages WHERE chat_id = ? AND message_id > ? ORDER BY message_id LIMIT ?""",
            (chat_id, after_message_id or 0, limit + 1),
        )
    ]
    for r in rows:
        r["edited"] = bool(r["edited"])
        r["deleted"] = bool(r["deleted"])
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["message_id"] if more and rows else None)


def list_users(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Everyone seen in any dialog, with the role they had and how many dialogs they were in."""
    return [
        dict(r)
        for r in conn.execute(
            """SELECT user_id, MAX(name) AS name, MIN(role) AS role, count(*) AS dialogs
               FROM participants GROUP BY user_id ORDER BY user_id"""
        )
    ]


def get_setting(conn: sqlite3.Connection, key: str, default: str = "") -> str:
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return row[0] if row else default


def stats(conn: sqlite3.Connection) -> dict[str, Any]:
    one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
    return {
        "dialogs": one("SELECT count(*) FROM dialogs"),
        "messages": one("SELECT count(*) FROM messages"),
        "pending_handoffs": one("SELECT count(*) FROM handoffs WHERE done_ts IS NULL"),
        "failed_handoffs": one("SELECT count(*) FROM handoffs WHERE outcome = 'failed'"),
        "last_event_at": one("SELECT MAX(received_at) FROM events"),
    }


def sessions_to_sync(
    conn: sqlite3.Connection, active_since: str, since: str | None, only: list[int] | None, limit: int
) -> list[tuple[int, int]]:
    """(session_id, chat_id) whose history may hold messages we lack: open and active lately, closed but not
    synced since closing, anything started after `since`, or exactly `only`. Synced-after-close sessions never
    come back, which is what lets an interrupted run resume where it stopped."""
    if only:
        marks = ",".join("?" * len(only))
        sql = f"SELECT session_id, chat_id FROM sessions WHERE session_id IN ({marks}) ORDER BY session_id"  # noqa: S608
        return [(r[0], r[1]) for r in conn.execute(sql, only)]
    rows = conn.execute(
        """SELECT session_id, chat_id FROM sessions
           WHERE (closed_at IS NULL AND COALESCE(last_activity_at, first_seen_at) >= ?)
              OR (closed_at IS NOT NULL AND (synced_at IS NULL OR synced_at < closed_at))
              OR (? IS NOT NULL AND first_seen_at >= ? AND synced_at IS NULL)
           ORDER BY session_id LIMIT ?""",
        (active_since, since, since, limit),
    )
    return [(r[0], r[1]) for r in rows]


def attachments_to_download(conn: sqlite3.Connection, limit: int) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in conn.execute(
            "SELECT file_id, chat_id, name, size, url FROM attachments"
            " WHERE sha256 IS NULL AND url IS NOT NULL AND url != '' ORDER BY file_id LIMIT ?",
            (limit,),
        )
    ]


def dialogs_to_look_up(conn: sqlite3.Connection, active_since: str, join_event: str, limit: int) -> list[int]:
    """Chats whose current session only the portal can tell: none known (the bot got the join but no message
    event), a join lately (a new session starts with one), or an open session active lately (the chat may have
    moved on to a new one). Newest first."""
    rows = conn.execute(
        """SELECT chat_id FROM (
               SELECT chat_id FROM dialogs d
               WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.chat_id = d.chat_id)
               UNION
               SELECT chat_id FROM events WHERE received_at >= ? AND event = ? AND chat_id IS NOT NULL
               UNION
               SELECT chat_id FROM sessions
               WHERE closed_at IS NULL AND COALESCE(last_activity_at, first_seen_at) >= ?)
           ORDER BY chat_id DESC LIMIT ?""",
        (active_since, join_event, active_since, limit),
    )
    return [r[0] for r in rows]


def sessions_behind(conn: sqlite3.Connection) -> int:
    """Sessions whose history we have not read since their last known change, plus dialogs with no known
    session at all (each is at least one session behind). Counted once per sync run, not per /healthz."""
    behind = conn.execute(f"SELECT count(*) FROM sessions s WHERE {_SESSION_BEHIND}").fetchone()[0]  # noqa: S608 - constant
    unknown = conn.execute(
        "SELECT count(*) FROM dialogs d WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.chat_id = d.chat_id)"
    ).fetchone()[0]
    return int(behind) + int(unknown)


def sync_state(conn: sqlite3.Connection) -> dict[str, Any]:
    """The last full sync's outcome (three settings rows: cheap enough for /healthz)."""
    rows = dict(
        conn.execute(
            "SELECT key, value FROM settings WHERE key IN ('sync.last_at', 'sync.last_error', 'sync.sessions_behind')"
        ).fetchall()
    )
    behind = rows.get("sync.sessions_behind")
    return {
        "last_sync_at": rows.get("sync.last_at"),
        "sessions_behind": int(behind) if behind and behind.isdigit() else None,
        "last_sync_error": rows.get("sync.last_error") or None,
    }


def sessions_complete(conn: sqlite3.Connection, session_ids: list[int]) -> set[int]:
    """Those of `session_ids` whose history is in the archive with nothing newer known."""
    if not session_ids:
        return set()
    marks = ",".join("?" * len(session_ids))
    sql = f"SELECT session_id FROM sessions s WHERE session_id IN ({marks}) AND NOT {_SESSION_BEHIND}"  # noqa: S608 - constant
    return {r[0] for r in conn.execute(sql, session_ids)}
