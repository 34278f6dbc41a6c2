"""Per-session figures for the viewer, kept up to date as messages are written (never computed per page view).

A session gets the time of the client's first message, the time and author of the first operator reply, and
message counts. Ingest adds exactly one UPDATE per new message (`note_message`); history sync and the schema
step that adds the columns recompute them from the stored messages (`recompute`).
"""

from __future__ import annotations

import sqlite3

COLUMNS = {
    "first_client_at": "TEXT",
    "first_operator_at": "TEXT",
    "first_operator_id": "INTEGER",
    "client_messages": "INTEGER NOT NULL DEFAULT 0",
    "operator_messages": "INTEGER NOT NULL DEFAULT 0",
    "other_messages": "INTEGER NOT NULL DEFAULT 0",
}


def add_columns(conn: sqlite3.Connection) -> None:
    """Schema step (safe to run twice, whatever its number): columns and indexes, figures rebuilt."""
    have = {r[1] for r in conn.execute("PRAGMA table_info(sessions)")}
    for name, decl in COLUMNS.items():
        if name not in have:
            conn.execute(f"ALTER TABLE sessions ADD COLUMN {name} {decl}")
    conn.execute("CREATE INDEX IF NOT EXISTS sessions_first_seen ON sessions(first_seen_at)")
    conn.execute(
        "CREATE INDEX IF NOT EXISTS sessions_waiting ON sessions(first_client_at)"
        " WHERE first_operator_at IS NULL AND closed_at IS NULL"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS dialogs_line ON dialogs(line_id, chat_id)")
    conn.execute("CREATE INDEX IF NOT EXISTS handoffs_chat ON handoffs(chat_id)")  # a transcript's hand-offs
    recompute(conn)


def note_message(conn: sqlite3.Connection, session_id: int | None, role: str, author_id: int | None, at: str) -> None:
    """The one extra UPDATE on ingest: count the new message and move the session's first times if earlier."""
    if not session_id:
        return
    if role == "client":
        conn.execute(
            """UPDATE sessions SET client_messages = client_messages + 1,
                   first_client_at = MIN(COALESCE(first_client_at, ?1), ?1)
               WHERE session_id = ?2""",
            (at, session_id),
        )
    elif role == "operator":
        conn.execute(
            """UPDATE sessions SET operator_messages = operator_messages + 1,
                   first_operator_id = CASE WHEN first_operator_at IS NULL OR ?1 < first_operator_at
                                            THEN ?2 ELSE first_operator_id END,
                   first_operator_at = MIN(COALESCE(first_operator_at, ?1), ?1)
               WHERE session_id = ?3""",
            (at, author_id, session_id),
        )
    else:
        conn.execute("UPDATE sessions SET other_messages = other_messages + 1 WHERE session_id = ?", (session_id,))


def recompute(conn: sqlite3.Connection, chat_ids: list[int] | None = None) -> None:
    """Figures from the stored messages, for every session (schema step) or those of a few chats (after a
    history sync, which may move message times). One grouped pass over the messages, through the chat index."""
    where, args = "session_id IS NOT NULL", []  # type: ignore[var-annotated]
    if chat_ids is not None:
        if not chat_ids:
            return
        where += f" AND chat_id IN ({','.join('?' * len(chat_ids))})"
        args = list(chat_ids)
    rows = conn.execute(
        f"""SELECT session_id,
                   MIN(CASE WHEN author_role = 'client' THEN created_at END),
                   MIN(CASE WHEN author_role = 'operator' THEN created_at || '|' || COALESCE(author_id, '') END),
                   SUM(author_role = 'client'), SUM(author_role = 'operator'),
                   SUM(author_role NOT IN ('client', 'operator'))
            FROM messages WHERE {where} GROUP BY session_id""",  # noqa: S608 - fixed clauses, values bound
        args,
    ).fetchall()
    updates = []
    for sid, client_at, op, n_client, n_op, n_other in rows:
        op_at, _, op_id = (op or "").partition("|")
        updates.append(
            (client_at, op_at or None, int(op_id) if op_id.isdigit() else None, n_client, n_op, n_other, sid)
        )
    conn.executemany(
        """UPDATE sessions SET first_client_at = ?, first_operator_at = ?, first_operator_id = ?,
               client_messages = ?, operator_messages = ?, other_messages = ? WHERE session_id = ?""",
        updates,
    )
