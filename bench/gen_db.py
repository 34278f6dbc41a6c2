"""Generate a dialogs.db with the app's own schema: N messages in M dialogs, bulk-inserted.

    python bench/gen_db.py OUT.db [--messages 1000000] [--dialogs 50000]

Messages interleave across dialogs in time (ids ascend globally, chats are random), dialog sizes are skewed
(most dialogs short, a few with thousands of messages), every dialog has a session and two participants, so
/api/dialogs and /api/dialogs/<id>/messages see the shapes a real contact center produces.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from common import TEXTS  # also puts app/src on sys.path

from b24bot.store import Database

START = datetime(2026, 9, 1, tzinfo=timezone.utc)
FIRST_CHAT = 10_001  # chat ids FIRST_CHAT, FIRST_CHAT + 1, ...: one per dialog


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="seconds")


def _open(path: Path) -> sqlite3.Connection:
    """A new database with the app's schema, opened for one bulk transaction (no journal, no fsync)."""
    if path.exists():
        path.unlink()
    db = Database(path)
    db.conn  # noqa: B018 - opens and migrates with the app's schema
    db.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-400000")
    conn.execute("BEGIN")
    return conn


def _dialogs(
    conn: sqlite3.Connection, rnd: random.Random, n_dialogs: int, span: int
) -> tuple[list[float], list[float]]:
    """Dialogs with a session and two participants each: when each was first seen, and its skewed weight."""
    first_seen = sorted(rnd.uniform(0, span) for _ in range(n_dialogs))  # chat ids ascend with time
    # Skewed sizes: weights from a Pareto distribution, so a few dialogs are very long.
    weights = [min(rnd.paretovariate(1.5), 200.0) for _ in range(n_dialogs)]
    dialogs = [
        (
            chat,
            f"chat{chat}",
            "telegrambot",
            rnd.choice(("1", "1", "2", "3")),
            f"ext{chat}",
            str(50_000 + chat),
            f"Guest #{chat}",
            iso(START + timedelta(seconds=seen)),
        )
        for chat, seen in zip(range(FIRST_CHAT, FIRST_CHAT + n_dialogs), first_seen, strict=True)
    ]
    conn.executemany(
        "INSERT INTO dialogs (chat_id, dialog_id, connector, line_id, external_chat_id, client_user_id, title,"
        " first_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        dialogs,
    )
    conn.executemany(
        "INSERT INTO sessions (session_id, chat_id, line_id, connector, crm_entity_type, crm_entity_id,"
        " started_at, first_seen_at) VALUES (?, ?, ?, 'telegrambot', 'LEAD', ?, ?, ?)",
        ((d[0] + 1_000_000, d[0], d[3], str(d[0]), d[7], d[7]) for d in dialogs),
    )
    conn.executemany(
        "INSERT INTO participants (chat_id, user_id, name, role, first_seen_at) VALUES (?, ?, ?, ?, ?)",
        (
            p
            for d in dialogs
            for p in ((d[0], 50_000 + d[0], "Guest", "client", d[7]), (d[0], 7, "Olga", "operator", d[7]))
        ),
    )
    return first_seen, weights


class _Messages:
    """The messages, one pick of a dialog each (ids ascend globally); what each dialog got, for its row."""

    def __init__(self, picks: list[int], first_seen: list[float]) -> None:
        n = len(first_seen)
        self.picks, self.first_seen = picks, first_seen
        self.counts, self.last = [0] * n, [""] * n
        self.first_id, self.last_id = [0] * n, [0] * n

    def rows(self) -> Any:
        for mid, idx in enumerate(self.picks, start=1):
            self.counts[idx] += 1
            self.first_id[idx] = self.first_id[idx] or mid
            self.last_id[idx] = mid
            at = iso(START + timedelta(seconds=self.first_seen[idx] + self.counts[idx] * 37))
            self.last[idx] = max(self.last[idx], at)
            role = "client" if mid % 3 else "operator"
            chat, text = FIRST_CHAT + idx, TEXTS[mid % len(TEXTS)]
            yield (mid, chat, chat + 1_000_000, 50_000 + chat if role == "client" else 7, role, text, at)

    def insert(self, conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT INTO messages (message_id, chat_id, session_id, author_id, author_role, text, original_text,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?6, ?7)",
            self.rows(),
        )
        conn.executemany(
            "UPDATE dialogs SET message_count = ?, last_message_at = ? WHERE chat_id = ?",
            ((c, self.last[i] or None, FIRST_CHAT + i) for i, c in enumerate(self.counts)),
        )


def generate(path: Path, n_messages: int, n_dialogs: int, seed: int = 42, viewer: bool = False) -> dict[str, Any]:
    """viewer=True also fills what the viewer reads and ingest keeps in production: the search index, the
    per-session first-response figures, and sessions closed once their dialog went quiet (all but the last day)."""
    t0 = time.perf_counter()
    conn = _open(path)
    rnd = random.Random(seed)
    span = 86 * 86400  # three months of traffic
    first_seen, weights = _dialogs(conn, rnd, n_dialogs, span)
    msgs = _Messages(rnd.choices(range(n_dialogs), weights=weights, k=n_messages), first_seen)
    msgs.insert(conn)
    if viewer:
        _viewer_tables(conn, START + timedelta(seconds=span - 86400))
    conn.execute("COMMIT")
    # No ANALYZE: the app never runs it, so the query planner here sees what it sees in production.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    counts = msgs.counts
    return {
        "path": str(path),
        "messages": n_messages,
        "dialogs": n_dialogs,
        "largest_dialog": max(counts),
        "dialogs_with_100_plus": sum(1 for c in counts if c >= 100),
        "size_mb": round(path.stat().st_size / 1e6, 1),
        "seconds": round(time.perf_counter() - t0, 1),
        "chats": (FIRST_CHAT, FIRST_CHAT + n_dialogs - 1),
        # The 50 longest dialogs: (chat_id, first message id, last message id).
        "big_chats": [
            (FIRST_CHAT + i, msgs.first_id[i], msgs.last_id[i])
            for i, c in sorted(enumerate(counts), key=lambda x: -x[1])[:50]
        ],
        "span": (iso(START), iso(START + timedelta(seconds=span))),
    }


def _viewer_tables(conn: sqlite3.Connection, quiet_before: datetime) -> None:
    from b24bot.store import responses
    from b24bot.store.text import search_text

    rows = conn.execute("SELECT message_id, text FROM messages")
    conn.executemany("INSERT INTO messages_fts (rowid, text) VALUES (?, ?)", ((m, search_text(t)) for m, t in rows))
    responses.recompute(conn)
    conn.execute(  # one finished hand-off per dialog, as the app leaves them
        """INSERT INTO handoffs (chat_id, target, created_ts, next_attempt_ts, attempts, done_ts, outcome)
           SELECT chat_id, 'operator', strftime('%s', first_seen_at), strftime('%s', first_seen_at), 1,
                  strftime('%s', first_seen_at) + 1, 'transferred' FROM dialogs"""
    )
    conn.execute(
        """UPDATE sessions SET closed_at = (SELECT last_message_at FROM dialogs d WHERE d.chat_id = sessions.chat_id)
           WHERE chat_id IN (SELECT chat_id FROM dialogs WHERE last_message_at < ?)""",
        (iso(quiet_before),),
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--dialogs", type=int, default=50_000)
    a = ap.parse_args()
    info = generate(a.out, a.messages, a.dialogs)
    print({k: v for k, v in info.items() if k != "big_chats"})
