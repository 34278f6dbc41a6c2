"""Idempotent writes. Each takes a connection inside `Database.write()` so one event is one transaction."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace

from . import responses
from .text import search_text


@dataclass(frozen=True)
class DialogRow:
    chat_id: int
    dialog_id: str
    connector: str | None
    line_id: str | None
    external_chat_id: str | None
    client_user_id: str | None
    title: str | None
    seen_at: str


@dataclass(frozen=True)
class MessageRow:
    message_id: int
    chat_id: int
    session_id: int | None
    author_id: int | None
    author_role: str
    text: str
    created_at: str
    source: str = "event"
    via_connector: bool = False


def record_event(
    conn: sqlite3.Connection,
    received_at: str,
    event: str,
    chat_id: int | None,
    dedup_key: str | None,
    payload: str,
) -> bool:
    """Keep the raw (redacted) event; False when the same event was already recorded."""
    cur = conn.execute(
        "INSERT INTO events (received_at, event, chat_id, dedup_key, payload) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT(dedup_key) DO NOTHING",
        (received_at, event, chat_id, dedup_key, payload),
    )
    return cur.rowcount == 1


def upsert_dialog(conn: sqlite3.Connection, d: DialogRow) -> None:
    conn.execute(
        """INSERT INTO dialogs (chat_id, dialog_id, connector, line_id, external_chat_id, client_user_id, title,
                                first_seen_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(chat_id) DO UPDATE SET
               connector = COALESCE(excluded.connector, connector),
               line_id = COALESCE(excluded.line_id, line_id),
               external_chat_id = COALESCE(excluded.external_chat_id, external_chat_id),
               client_user_id = COALESCE(excluded.client_user_id, client_user_id),
               title = COALESCE(excluded.title, title),
               first_seen_at = MIN(first_seen_at, excluded.first_seen_at)
           -- most events repeat what is stored: skip the write (and its WAL page) then
           WHERE (excluded.connector IS NOT NULL AND excluded.connector IS NOT connector)
              OR (excluded.line_id IS NOT NULL AND excluded.line_id IS NOT line_id)
              OR (excluded.external_chat_id IS NOT NULL AND excluded.external_chat_id IS NOT external_chat_id)
              OR (excluded.client_user_id IS NOT NULL AND excluded.client_user_id IS NOT client_user_id)
              OR (excluded.title IS NOT NULL AND excluded.title IS NOT title)
              OR excluded.first_seen_at < first_seen_at""",
        (
            d.chat_id,
            d.dialog_id,
            d.connector,
            d.line_id,
            d.external_chat_id,
            d.client_user_id,
            d.title,
            d.seen_at,
        ),
    )


def upsert_session(
    conn: sqlite3.Connection,
    session_id: int,
    chat_id: int,
    line_id: str | None,
    connector: str | None,
    crm_entity_type: str | None,
    crm_entity_id: str | None,
    crm_bindings: str | None,
    started_at: str | None,
    seen_at: str,
) -> None:
    conn.execute(
        """INSERT INTO sessions (session_id, chat_id, line_id, connector, crm_entity_type, crm_entity_id,
                                 crm_bindings, started_at, first_seen_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(session_id) DO UPDATE SET
               crm_entity_type = COALESCE(NULLIF(excluded.crm_entity_type, ''), crm_entity_type),
               crm_entity_id = COALESCE(NULLIF(excluded.crm_entity_id, ''), crm_entity_id),
               crm_bindings = COALESCE(NULLIF(excluded.crm_bindings, ''), crm_bindings),
               started_at = COALESCE(started_at, excluded.started_at)
           WHERE (NULLIF(excluded.crm_entity_type, '') IS NOT NULL AND excluded.crm_entity_type IS NOT crm_entity_type)
              OR (NULLIF(excluded.crm_entity_id, '') IS NOT NULL AND excluded.crm_entity_id IS NOT crm_entity_id)
              OR (NULLIF(excluded.crm_bindings, '') IS NOT NULL AND excluded.crm_bindings IS NOT crm_bindings)
              OR (started_at IS NULL AND excluded.started_at IS NOT NULL)""",
        (
            session_id,
            chat_id,
            line_id,
            connector,
            crm_entity_type,
            crm_entity_id,
            crm_bindings,
            started_at,
            seen_at,
        ),
    )


def upsert_participant(
    conn: sqlite3.Connection, chat_id: int, user_id: int, name: str | None, role: str, seen_at: str
) -> None:
    conn.execute(
        """INSERT INTO participants (chat_id, user_id, name, role, first_seen_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT(chat_id, user_id) DO UPDATE SET name = excluded.name
           WHERE NULLIF(excluded.name, '') IS NOT NULL AND excluded.name IS NOT name""",
        (chat_id, user_id, name, role, seen_at),
    )


def insert_message(conn: sqlite3.Connection, m: MessageRow) -> bool:
    """Insert once per message id; the dialog's counters move only for a new row."""
    cur = conn.execute(
        """INSERT INTO messages (message_id, chat_id, session_id, author_id, author_role, text, original_text,
                                 created_at, source, via_connector)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(message_id) DO NOTHING""",
        (
            m.message_id,
            m.chat_id,
            m.session_id,
            m.author_id,
            m.author_role,
            m.text,
            m.text,
            m.created_at,
            m.source,
            int(m.via_connector),
        ),
    )
    if cur.rowcount != 1:
        return False
    conn.execute("INSERT INTO messages_fts (rowid, text) VALUES (?, ?)", (m.message_id, search_text(m.text)))
    conn.execute(
        """UPDATE dialogs SET message_count = message_count + 1,
               last_message_at = MAX(COALESCE(last_message_at, ''), ?)
           WHERE chat_id = ?""",
        (m.created_at, m.chat_id),
    )
    responses.note_message(conn, m.session_id, m.author_role, m.author_id, m.created_at)
    return True


def edit_message(conn: sqlite3.Connection, m: MessageRow) -> None:
    """A new text for a message; the original and every version stay in `message_edits`."""
    if not insert_message(conn, m):
        conn.execute("UPDATE messages SET text = ?, edited = 1 WHERE message_id = ?", (m.text, m.message_id))
        conn.execute("DELETE FROM messages_fts WHERE rowid = ?", (m.message_id,))
        conn.execute("INSERT INTO messages_fts (rowid, text) VALUES (?, ?)", (m.message_id, search_text(m.text)))
    else:
        conn.execute("UPDATE messages SET edited = 1 WHERE message_id = ?", (m.message_id,))
    conn.execute(
        "INSERT INTO message_edits (message_id, kind, text, at) VALUES (?, 'edit', ?, ?)",
        (m.message_id, m.text, m.created_at),
    )


def delete_message(conn: sqlite3.Connection, m: MessageRow) -> None:
    """Flag as deleted; the stored text is kept (the event only carries "message ... has been deleted")."""
    insert_message(conn, replace(m, text=""))  # a deletion of a message we never saw still leaves a trace
    conn.execute("UPDATE messages SET deleted = 1 WHERE message_id = ?", (m.message_id,))
    conn.execute(
        "INSERT INTO message_edits (message_id, kind, text, at) VALUES (?, 'delete', NULL, ?)",
        (m.message_id, m.created_at),
    )


def upsert_history_message(conn: sqlite3.Connection, m: MessageRow) -> bool:
    """A message as the portal's history has it: real time and author. One row per message id, whatever
    captured it first; a different text than the stored one is kept as an edit."""
    if insert_message(conn, m):
        return True
    row = conn.execute("SELECT text FROM messages WHERE message_id = ?", (m.message_id,)).fetchone()
    conn.execute(
        """UPDATE messages SET created_at = ?, session_id = COALESCE(session_id, ?),
               author_id = COALESCE(author_id, ?),
               author_role = CASE WHEN ? THEN 'operator' ELSE author_role END,
               via_connector = MAX(via_connector, ?)
           WHERE message_id = ?""",
        (m.created_at, m.session_id, m.author_id, int(m.via_connector), int(m.via_connector), m.message_id),
    )
    if row is not None and m.text and row[0] != m.text:
        edit_message(conn, m)
    return False


def upsert_attachment(
    conn: sqlite3.Connection,
    file_id: int,
    message_id: int | None,
    chat_id: int,
    name: str,
    size: int | None,
    kind: str,
    url: str,
    seen_at: str,
) -> None:
    conn.execute(
        """INSERT INTO attachments (file_id, message_id, chat_id, name, size, type, url, first_seen_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(file_id) DO UPDATE SET message_id = COALESCE(message_id, excluded.message_id),
               url = COALESCE(NULLIF(excluded.url, ''), url)""",
        (file_id, message_id, chat_id, name, size, kind, url, seen_at),
    )


def attachment_downloaded(conn: sqlite3.Connection, file_id: int, path: str, sha256: str, at: str) -> None:
    conn.execute(
        "UPDATE attachments SET path = ?, sha256 = ?, downloaded_at = ? WHERE file_id = ?", (path, sha256, at, file_id)
    )


def session_synced(
    conn: sqlite3.Connection, session_id: int, at: str, operator_ids: list[int], closed_at: str | None
) -> None:
    conn.execute(
        """UPDATE sessions SET synced_at = ?, operator_ids = COALESCE(?, operator_ids),
               closed_at = COALESCE(closed_at, ?)
           WHERE session_id = ?""",
        (at, ",".join(map(str, operator_ids)) if operator_ids else None, closed_at, session_id),
    )


def touch_session(conn: sqlite3.Connection, session_id: int, at: str, operator_id: int | None) -> None:
    """Activity on a session (for the sync window) and the operators who spoke in it."""
    conn.execute(
        "UPDATE sessions SET last_activity_at = ? WHERE session_id = ? AND COALESCE(last_activity_at, '') < ?",
        (at, session_id, at),
    )
    if operator_id:
        conn.execute(
            """UPDATE sessions SET operator_ids = CASE
                   WHEN operator_ids IS NULL OR operator_ids = '' THEN ?
                   WHEN instr(',' || operator_ids || ',', ',' || ? || ',') > 0 THEN operator_ids
                   ELSE operator_ids || ',' || ? END
               WHERE session_id = ? AND instr(',' || COALESCE(operator_ids, '') || ',', ',' || ? || ',') = 0""",
            (str(operator_id), str(operator_id), str(operator_id), session_id, str(operator_id)),
        )


def close_older_sessions(conn: sqlite3.Connection, chat_id: int, current_session_id: int, at: str) -> list[int]:
    """A new session in a chat means the earlier ones are over."""
    rows = conn.execute(
        """UPDATE sessions SET closed_at = ? WHERE chat_id = ? AND session_id < ? AND closed_at IS NULL
           RETURNING session_id""",
        (at, chat_id, current_session_id),
    ).fetchall()
    return [r[0] for r in rows]


def schedule_job(conn: sqlite3.Connection, kind: str, key: str, due_ts: float) -> None:
    conn.execute(
        "INSERT INTO jobs (kind, key, due_ts) VALUES (?, ?, ?) ON CONFLICT(kind, key) DO UPDATE SET due_ts = ?",
        (kind, key, due_ts, due_ts),
    )


def audit(conn: sqlite3.Connection, at: str, action: str, detail: str) -> None:
    conn.execute("INSERT INTO audit_log (at, action, detail) VALUES (?, ?, ?)", (at, action, detail))


def enqueue_handoff(conn: sqlite3.Connection, chat_id: int, target: str, now: float) -> bool:
    """At most one open hand-off per chat."""
    cur = conn.execute(
        """INSERT INTO handoffs (chat_id, target, created_ts, next_attempt_ts) VALUES (?, ?, ?, ?)
           ON CONFLICT(chat_id) WHERE done_ts IS NULL DO NOTHING""",
        (chat_id, target, now, now),
    )
    return cur.rowcount == 1


def set_setting(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def log_portal(conn: sqlite3.Connection, at: str, event: str, member_id: str, domain: str, detail: str) -> None:
    conn.execute(
        "INSERT INTO portal_log (at, event, member_id, domain, detail) VALUES (?, ?, ?, ?, ?)",
        (at, event, member_id, domain, detail),
    )


def delete_settings(conn: sqlite3.Connection, *keys: str) -> None:
    conn.executemany("DELETE FROM settings WHERE key = ?", [(k,) for k in keys])
