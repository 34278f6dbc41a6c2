"""Search, export, retention and erasure over the archive."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .text import fts_query

EXPORT_COLUMNS = (
    "message_id",
    "chat_id",
    "session_id",
    "line_id",
    "connector",
    "created_at",
    "author_id",
    "author_role",
    "author_name",
    "via_connector",
    "text",
    "edited",
    "deleted",
)


def search(
    conn: sqlite3.Connection, query: str, limit: int, before_message_id: int | None, chat_id: int | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """Messages matching every word (case-insensitive, any script), newest first."""
    expr = fts_query(query)
    if not expr:
        return [], None
    sql = """SELECT m.message_id, m.chat_id, m.session_id, m.author_id, m.author_role, m.text, m.created_at,
                    m.edited, m.deleted
             FROM messages_fts f JOIN messages m ON m.message_id = f.rowid
             WHERE messages_fts MATCH ? AND f.rowid < ?"""
    args: list[Any] = [expr, before_message_id or 2**62]
    if chat_id is not None:
        sql += " AND m.chat_id = ?"
        args.append(chat_id)
    sql += " ORDER BY f.rowid DESC LIMIT ?"
    rows = [dict(r) for r in conn.execute(sql, [*args, limit + 1])]
    for r in rows:
        r["edited"], r["deleted"] = bool(r["edited"]), bool(r["deleted"])
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["message_id"] if more and rows else None)


@dataclass(frozen=True)
class ExportFilter:
    start: str | None = None  # created_at >= (ISO 8601 UTC)
    end: str | None = None  # created_at <
    line_id: str | None = None
    operator_id: int | None = None  # dialogs this operator took part in
    chat_id: int | None = None


def export_rows(conn: sqlite3.Connection, f: ExportFilter, batch: int = 1000) -> Iterator[dict[str, Any]]:
    """Every matching message in message order, read in keyset batches so memory stays flat."""
    where, args = ["m.message_id > ?"], []
    if f.start:
        where.append("m.created_at >= ?")
        args.append(f.start)
    if f.end:
        where.append("m.created_at < ?")
        args.append(f.end)
    if f.line_id:
        where.append("d.line_id = ?")
        args.append(f.line_id)
    if f.chat_id is not None:
        where.append("m.chat_id = ?")
        args.append(f.chat_id)
    if f.operator_id is not None:
        where.append("m.chat_id IN (SELECT chat_id FROM participants WHERE user_id = ? AND role = 'operator')")
        args.append(f.operator_id)
    sql = f"""SELECT m.message_id, m.chat_id, m.session_id, d.line_id, d.connector, m.created_at, m.author_id,
                     m.author_role, p.name AS author_name, m.via_connector, m.text, m.edited, m.deleted
              FROM messages m
              LEFT JOIN dialogs d ON d.chat_id = m.chat_id
              LEFT JOIN participants p ON p.chat_id = m.chat_id AND p.user_id = m.author_id
              WHERE {" AND ".join(where)}
              ORDER BY m.message_id LIMIT ?"""  # noqa: S608 - fixed clauses, every value is bound
    last = 0
    while True:
        rows = conn.execute(sql, [last, *args, batch]).fetchall()
        if not rows:
            return
        for r in rows:
            yield dict(r)
        last = rows[-1]["message_id"]


# ---- retention and erasure ----------------------------------------------------------------------------------


def _delete_messages(conn: sqlite3.Connection, where: str, args: list[Any]) -> tuple[int, list[str]]:
    """Delete messages (and their index entries, edits, attachments); return (count, attachment paths)."""
    ids = [r[0] for r in conn.execute(f"SELECT message_id FROM messages WHERE {where}", args)]  # noqa: S608
    paths: list[str] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        conn.execute(f"DELETE FROM messages_fts WHERE rowid IN ({marks})", chunk)  # noqa: S608
        conn.execute(f"DELETE FROM message_edits WHERE message_id IN ({marks})", chunk)  # noqa: S608
        paths += [
            r[0]
            for r in conn.execute(
                f"SELECT path FROM attachments WHERE message_id IN ({marks}) AND path IS NOT NULL",  # noqa: S608
                chunk,
            )
        ]
        conn.execute(f"DELETE FROM attachments WHERE message_id IN ({marks})", chunk)  # noqa: S608
        conn.execute(f"DELETE FROM messages WHERE message_id IN ({marks})", chunk)  # noqa: S608
    return len(ids), paths


def _recount(conn: sqlite3.Connection, chat_ids: list[int]) -> None:
    for chat_id in chat_ids:
        conn.execute(
            """UPDATE dialogs SET message_count = (SELECT count(*) FROM messages WHERE chat_id = ?),
                   last_message_at = (SELECT MAX(created_at) FROM messages WHERE chat_id = ?)
               WHERE chat_id = ?""",
            (chat_id, chat_id, chat_id),
        )


def prune(conn: sqlite3.Connection, cutoff: str, line_id: str | None = None) -> tuple[int, list[str]]:
    """Messages created before `cutoff` (of one line, or of every line without a rule of its own)."""
    if line_id is None:
        where, args = "created_at < ?", [cutoff]
    else:
        where = "created_at < ? AND chat_id IN (SELECT chat_id FROM dialogs WHERE line_id = ?)"
        args = [cutoff, line_id]
    chats = [r[0] for r in conn.execute(f"SELECT DISTINCT chat_id FROM messages WHERE {where}", args)]  # noqa: S608
    count, paths = _delete_messages(conn, where, args)
    if line_id is None:
        conn.execute("DELETE FROM events WHERE received_at < ?", args)
    else:
        conn.execute(
            "DELETE FROM events WHERE received_at < ? AND chat_id IN (SELECT chat_id FROM dialogs WHERE line_id = ?)",
            args,
        )
    _recount(conn, chats)
    return count, paths


def prune_lines_except(conn: sqlite3.Connection, cutoff: str, keep_lines: list[str]) -> tuple[int, list[str]]:
    """The global rule, for every line that has no rule of its own."""
    if not keep_lines:
        return prune(conn, cutoff)
    marks = ",".join("?" * len(keep_lines))
    scope = f"chat_id IN (SELECT chat_id FROM dialogs WHERE line_id IS NULL OR line_id NOT IN ({marks}))"  # noqa: S608
    where, args = f"created_at < ? AND {scope}", [cutoff, *keep_lines]
    chats = [r[0] for r in conn.execute(f"SELECT DISTINCT chat_id FROM messages WHERE {where}", args)]  # noqa: S608
    count, paths = _delete_messages(conn, where, args)
    conn.execute(f"DELETE FROM events WHERE received_at < ? AND {scope}", args)  # noqa: S608
    _recount(conn, chats)
    return count, paths


def client_chats(conn: sqlite3.Connection, client: str) -> list[int]:
    """Chats of a client named by user code (connector|line|chat|user) or by connector user id."""
    parts = client.split("|")
    if len(parts) >= 4:
        rows = conn.execute(
            "SELECT chat_id FROM dialogs WHERE connector = ? AND line_id = ? AND external_chat_id = ?"
            " AND client_user_id = ?",
            (parts[0], parts[1], parts[2], "|".join(parts[3:])),
        )
    else:
        rows = conn.execute("SELECT chat_id FROM dialogs WHERE client_user_id = ?", (client,))
    return [r[0] for r in rows]


def erase_chats(conn: sqlite3.Connection, chat_ids: list[int]) -> tuple[dict[str, int], list[str]]:
    """Remove every trace of these chats: messages, index, edits, attachments, raw events, people, sessions."""
    counts = {"dialogs": len(chat_ids), "messages": 0, "events": 0}
    paths: list[str] = []
    for chat_id in chat_ids:
        n, p = _delete_messages(conn, "chat_id = ?", [chat_id])
        counts["messages"] += n
        paths += p
        paths += [
            r[0]
            for r in conn.execute("SELECT path FROM attachments WHERE chat_id = ? AND path IS NOT NULL", (chat_id,))
        ]
        conn.execute("DELETE FROM attachments WHERE chat_id = ?", (chat_id,))
        counts["events"] += conn.execute("DELETE FROM events WHERE chat_id = ?", (chat_id,)).rowcount
        conn.execute("DELETE FROM participants WHERE chat_id = ?", (chat_id,))
        conn.execute("DELETE FROM sessions WHERE chat_id = ?", (chat_id,))
        conn.execute("DELETE FROM handoffs WHERE chat_id = ?", (chat_id,))
        conn.execute("DELETE FROM dialogs WHERE chat_id = ?", (chat_id,))
    return counts, paths
