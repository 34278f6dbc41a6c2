"""Queries behind the web viewer: the dialogs list, one transcript, search with filters. Keyset paging only."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from .text import fts_query


@dataclass(frozen=True)
class ViewFilter:
    line_id: str | None = None
    connector: str | None = None
    operator_id: int | None = None
    status: str | None = None  # open | closed (the dialog's latest session)
    start: str | None = None  # UTC ISO bounds on the dialog's first message (list) or the message (search)
    end: str | None = None
    unanswered: bool = False  # the latest session has a client message and no operator reply yet


_LIST_SQL = """
SELECT d.chat_id, d.title, d.connector, d.line_id, d.client_user_id, d.first_seen_at, d.last_message_at,
       d.message_count, d.transferred_at,
       (SELECT p.name FROM participants p WHERE p.chat_id = d.chat_id AND p.role = 'operator'
        ORDER BY p.first_seen_at LIMIT 1) AS operator,
       s.session_id, s.first_client_at, s.first_operator_at, s.closed_at
FROM dialogs d
LEFT JOIN sessions s ON s.session_id = (SELECT MAX(session_id) FROM sessions WHERE chat_id = d.chat_id)
"""


FEW_DIALOGS = 2000


def _operator_clause(conn: sqlite3.Connection, operator_id: int) -> str:
    """An operator in few dialogs: collect them through the user index. One in many: test each dialog walked
    (newest first, stopping at a page) by its primary key, instead of building a set of tens of thousands."""
    n = conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM participants WHERE user_id = ? LIMIT ?)", (operator_id, FEW_DIALOGS + 1)
    ).fetchone()[0]
    if n <= FEW_DIALOGS:
        return "d.chat_id IN (SELECT chat_id FROM participants WHERE user_id = ? AND role = 'operator')"
    return "EXISTS (SELECT 1 FROM participants p WHERE p.chat_id = d.chat_id AND p.user_id = ? AND p.role = 'operator')"


def _dialog_where(conn: sqlite3.Connection, f: ViewFilter, time_col: str) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if f.line_id:
        where.append("d.line_id = ?")
        args.append(f.line_id)
    if f.connector:
        where.append("d.connector = ?")
        args.append(f.connector)
    if f.operator_id is not None:
        where.append(_operator_clause(conn, f.operator_id))
        args.append(f.operator_id)
    if f.start:
        where.append(f"{time_col} >= ?")
        args.append(f.start)
    if f.end:
        where.append(f"{time_col} < ?")
        args.append(f.end)
    return where, args


def list_dialogs(
    conn: sqlite3.Connection, limit: int, before_chat_id: int | None, f: ViewFilter
) -> tuple[list[dict[str, Any]], int | None]:
    """Newest dialogs first with their latest session's figures; (rows, cursor of the next page or None)."""
    where, args = _dialog_where(conn, f, "d.first_seen_at")
    if before_chat_id is not None:
        where.append("d.chat_id < ?")
        args.append(before_chat_id)
    if f.status == "open":
        where.append("s.session_id IS NOT NULL AND s.closed_at IS NULL")
    elif f.status == "closed":
        where.append("s.closed_at IS NOT NULL")
    if f.unanswered:
        where.append("s.first_client_at IS NOT NULL AND s.first_operator_at IS NULL")
    sql = _LIST_SQL + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY d.chat_id DESC LIMIT ?"
    rows = [dict(r) for r in conn.execute(sql, [*args, limit + 1])]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["chat_id"] if more and rows else None)


def filter_options(conn: sqlite3.Connection) -> dict[str, list[Any]]:
    """Values for the filter drop-downs (callers cache this: it reads whole indexes)."""
    lines = [r[0] for r in conn.execute("SELECT DISTINCT line_id FROM dialogs WHERE line_id IS NOT NULL")]
    connectors = [r[0] for r in conn.execute("SELECT DISTINCT connector FROM dialogs WHERE connector IS NOT NULL")]
    operators = [
        (r[0], r[1] or f"#{r[0]}")
        for r in conn.execute(
            "SELECT user_id, MAX(name) FROM participants WHERE role = 'operator' GROUP BY user_id ORDER BY 2"
        )
    ]
    return {
        "lines": sorted(lines, key=lambda x: (len(x), x)),
        "connectors": sorted(connectors),
        "operators": operators,
    }


# ---- one transcript ------------------------------------------------------------------------------------------

PAGE = 200


def page_start(conn: sqlite3.Connection, chat_id: int, around: int) -> int:
    """The `after` cursor that shows a few messages before message `around` (search hits land in context)."""
    row = conn.execute(
        "SELECT message_id FROM messages WHERE chat_id = ? AND message_id < ?"
        " ORDER BY message_id DESC LIMIT 1 OFFSET 5",
        (chat_id, around),
    ).fetchone()
    return row[0] if row else 0


def transcript_page(conn: sqlite3.Connection, chat_id: int, after: int, limit: int = PAGE) -> dict[str, Any]:
    """Messages after `after` with their edit history, attachments and authors; cursors both ways."""
    msgs = [
        dict(r)
        for r in conn.execute(
            """SELECT message_id, session_id, author_id, author_role, text, original_text, created_at, edited,
                      deleted, via_connector
               FROM messages WHERE chat_id = ? AND message_id > ? ORDER BY message_id LIMIT ?""",
            (chat_id, after, limit + 1),
        )
    ]
    more = len(msgs) > limit
    msgs = msgs[:limit]
    ids = [m["message_id"] for m in msgs]
    changed = [m["message_id"] for m in msgs if m["edited"] or m["deleted"]]
    edits: dict[int, list[dict[str, Any]]] = {}
    sql = "SELECT message_id, kind, text, at FROM message_edits WHERE message_id IN ({}) ORDER BY id"
    for r in _in(conn, sql, changed):
        edits.setdefault(r["message_id"], []).append(dict(r))
    files: dict[int, list[dict[str, Any]]] = {}
    sql = "SELECT file_id, message_id, name, size, url, path FROM attachments WHERE message_id IN ({})"
    for r in _in(conn, sql, ids):
        files.setdefault(r["message_id"], []).append(dict(r))
    for m in msgs:
        m["edits"] = edits.get(m["message_id"], [])
        m["files"] = files.get(m["message_id"], [])
    prev = None
    if after:
        row = conn.execute(
            "SELECT message_id FROM messages WHERE chat_id = ? AND message_id <= ? ORDER BY message_id DESC"
            " LIMIT 1 OFFSET ?",
            (chat_id, after, limit),
        ).fetchone()
        prev = row[0] if row else 0
    return {"messages": msgs, "next": msgs[-1]["message_id"] if more and msgs else None, "prev": prev}


def _in(conn: sqlite3.Connection, sql: str, ids: list[int]) -> list[sqlite3.Row]:
    if not ids:
        return []
    return conn.execute(sql.format(",".join("?" * len(ids))), ids).fetchall()


def transcript_context(conn: sqlite3.Connection, chat_id: int) -> dict[str, Any]:
    """People (id -> name), sessions with their figures, hand-offs."""
    names = {
        r[0]: r[1] for r in conn.execute("SELECT user_id, name FROM participants WHERE chat_id = ?", (chat_id,)) if r[1]
    }
    sessions = [
        dict(r)
        for r in conn.execute(
            """SELECT session_id, started_at, first_seen_at, transferred_at, closed_at, first_client_at,
                      first_operator_at, first_operator_id, client_messages, operator_messages
               FROM sessions WHERE chat_id = ? ORDER BY session_id""",
            (chat_id,),
        )
    ]
    handoffs = [
        dict(r)
        for r in conn.execute(
            "SELECT target, created_ts, done_ts, outcome, attempts FROM handoffs WHERE chat_id = ? ORDER BY id",
            (chat_id,),
        )
    ]
    return {"names": names, "sessions": sessions, "handoffs": handoffs}


def attachment(conn: sqlite3.Connection, file_id: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT file_id, chat_id, name, type, path FROM attachments WHERE file_id = ?", (file_id,))
    found = row.fetchone()
    return dict(found) if found else None


# ---- search ----------------------------------------------------------------------------------------------------


def search(
    conn: sqlite3.Connection, query: str, limit: int, before: int | None, f: ViewFilter
) -> tuple[list[dict[str, Any]], int | None]:
    """Messages matching every word, newest first, within the dialog filters (case-insensitive, any script)."""
    expr = fts_query(query)
    if not expr:
        return [], None
    where, args = _dialog_where(conn, f, "m.created_at")
    sql = """SELECT m.message_id, m.chat_id, m.author_id, m.author_role, m.text, m.created_at, m.deleted,
                    d.title, d.line_id, d.connector
             FROM messages_fts JOIN messages m ON m.message_id = messages_fts.rowid
             JOIN dialogs d ON d.chat_id = m.chat_id
             WHERE messages_fts MATCH ? AND messages_fts.rowid < ?"""
    sql += "".join(f" AND {w}" for w in where) + " ORDER BY messages_fts.rowid DESC LIMIT ?"
    rows = [dict(r) for r in conn.execute(sql, [expr, before or 2**62, *args, limit + 1])]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["message_id"] if more and rows else None)
