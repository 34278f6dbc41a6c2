"""Versioned schema. Each entry upgrades the database by one `PRAGMA user_version`; never edit a released step."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from . import logins, responses
from .text import search_text


def _v3_backfill_search(conn: sqlite3.Connection) -> None:
    """Index the messages stored before search existed (normalised in Python: SQLite's lower() is ASCII-only)."""
    rows = conn.execute("SELECT message_id, text FROM messages")
    conn.executemany(
        "INSERT INTO messages_fts (rowid, text) VALUES (?, ?)", ((mid, search_text(text)) for mid, text in rows)
    )


def _viewer_step(conn: sqlite3.Connection) -> None:
    responses.add_columns(conn)
    logins.create_tables(conn)


Migration = str | Callable[[sqlite3.Connection], None]

MIGRATIONS: list[Migration] = [
    # 1: dialogs, sessions, participants, messages (+ edit history), raw events, hand-off queue, settings.
    """
    CREATE TABLE dialogs (
        chat_id          INTEGER PRIMARY KEY,
        dialog_id        TEXT NOT NULL,
        connector        TEXT,
        line_id          TEXT,
        external_chat_id TEXT,
        client_user_id   TEXT,
        title            TEXT,
        first_seen_at    TEXT NOT NULL,
        last_message_at  TEXT,
        message_count    INTEGER NOT NULL DEFAULT 0,
        transferred_at   TEXT
    );
    CREATE INDEX dialogs_last_message ON dialogs(last_message_at);
    CREATE INDEX dialogs_first_seen ON dialogs(first_seen_at);

    CREATE TABLE sessions (
        session_id      INTEGER PRIMARY KEY,
        chat_id         INTEGER NOT NULL,
        line_id         TEXT,
        connector       TEXT,
        crm_entity_type TEXT,
        crm_entity_id   TEXT,
        crm_bindings    TEXT,
        started_at      TEXT,
        first_seen_at   TEXT NOT NULL,
        transferred_at  TEXT,
        closed_at       TEXT
    );
    CREATE INDEX sessions_chat ON sessions(chat_id);

    CREATE TABLE participants (
        chat_id       INTEGER NOT NULL,
        user_id       INTEGER NOT NULL,
        name          TEXT,
        role          TEXT NOT NULL,
        first_seen_at TEXT NOT NULL,
        PRIMARY KEY (chat_id, user_id)
    ) WITHOUT ROWID;
    CREATE INDEX participants_user ON participants(user_id);

    CREATE TABLE messages (
        message_id    INTEGER PRIMARY KEY,
        chat_id       INTEGER NOT NULL,
        session_id    INTEGER,
        author_id     INTEGER,
        author_role   TEXT NOT NULL,
        text          TEXT NOT NULL DEFAULT '',
        original_text TEXT,
        created_at    TEXT NOT NULL,
        edited        INTEGER NOT NULL DEFAULT 0,
        deleted       INTEGER NOT NULL DEFAULT 0,
        source        TEXT NOT NULL DEFAULT 'event'
    );
    CREATE INDEX messages_chat ON messages(chat_id, message_id);

    CREATE TABLE message_edits (
        id         INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL,
        kind       TEXT NOT NULL,
        text       TEXT,
        at         TEXT NOT NULL
    );
    CREATE INDEX message_edits_message ON message_edits(message_id);

    CREATE TABLE events (
        id          INTEGER PRIMARY KEY,
        received_at TEXT NOT NULL,
        event       TEXT NOT NULL,
        chat_id     INTEGER,
        dedup_key   TEXT UNIQUE,
        payload     TEXT NOT NULL
    );
    CREATE INDEX events_received ON events(received_at);

    CREATE TABLE handoffs (
        id              INTEGER PRIMARY KEY,
        chat_id         INTEGER NOT NULL,
        target          TEXT NOT NULL,
        created_ts      REAL NOT NULL,
        next_attempt_ts REAL NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        locked_until    REAL,
        done_ts         REAL,
        outcome         TEXT,
        last_error      TEXT
    );
    CREATE INDEX handoffs_due ON handoffs(next_attempt_ts) WHERE done_ts IS NULL;
    CREATE UNIQUE INDEX handoffs_one_open ON handoffs(chat_id) WHERE done_ts IS NULL;

    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );

    CREATE TABLE portal_log (
        id        INTEGER PRIMARY KEY,
        at        TEXT NOT NULL,
        event     TEXT NOT NULL,
        member_id TEXT,
        domain    TEXT,
        detail    TEXT
    );
    """,
    # 2: what a complete archive needs: operator-sent-through-connector flag, per-session operators and sync
    # bookkeeping, attachments, an audit trail without personal data, full-text search.
    """
    ALTER TABLE messages ADD COLUMN via_connector INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX messages_created ON messages(created_at);
    CREATE INDEX messages_author ON messages(author_id);
    CREATE INDEX dialogs_client ON dialogs(client_user_id);
    ALTER TABLE sessions ADD COLUMN operator_ids TEXT;
    ALTER TABLE sessions ADD COLUMN last_activity_at TEXT;
    ALTER TABLE sessions ADD COLUMN synced_at TEXT;
    CREATE INDEX sessions_activity ON sessions(last_activity_at);

    CREATE TABLE attachments (
        file_id       INTEGER PRIMARY KEY,
        message_id    INTEGER,
        chat_id       INTEGER NOT NULL,
        name          TEXT,
        size          INTEGER,
        type          TEXT,
        url           TEXT,
        path          TEXT,
        sha256        TEXT,
        downloaded_at TEXT,
        first_seen_at TEXT NOT NULL
    );
    CREATE INDEX attachments_message ON attachments(message_id);
    CREATE INDEX attachments_chat ON attachments(chat_id);

    CREATE TABLE audit_log (
        id     INTEGER PRIMARY KEY,
        at     TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );

    CREATE TABLE jobs (
        kind   TEXT NOT NULL,
        key    TEXT NOT NULL,
        due_ts REAL NOT NULL,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID;

    CREATE VIRTUAL TABLE messages_fts USING fts5(text, tokenize = 'unicode61 remove_diacritics 2');
    """,
    _v3_backfill_search,
    # Viewer: per-session first-response figures, their indexes, the login rate-limit table. Written to be safe
    # under any step number (guarded ALTERs, IF NOT EXISTS), so it can be renumbered when branches merge.
    _viewer_step,
]

LATEST = len(MIGRATIONS)
