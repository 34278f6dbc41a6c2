"""Retention and erasure (152-FZ / GDPR): old messages go on schedule, a client's data goes on request."""

from __future__ import annotations

import contextlib
import logging
import os
from datetime import datetime, timedelta, timezone

from ..store import archive, writes
from .context import Context

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _remove_files(paths: list[str]) -> None:
    for path in set(paths):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _scrub(ctx: Context) -> None:
    """Deleted rows must not linger in free pages or the WAL (secure_delete is on for these writes)."""
    conn = ctx.db.read()
    conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('optimize')")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def apply_retention(ctx: Context) -> dict[str, int]:
    """Delete messages older than the global period, or than their line's own period."""
    s = ctx.settings
    removed: dict[str, int] = {}
    conn = ctx.db.read()
    conn.execute("PRAGMA secure_delete = ON")
    paths: list[str] = []
    with ctx.db.write() as w:
        for line_id, days in s.retention_lines.items():
            cutoff = (_now() - timedelta(days=days)).isoformat(timespec="seconds")
            n, p = archive.prune(w, cutoff, line_id)
            removed[f"line {line_id}"] = n
            paths += p
        if s.retention_days:
            cutoff = (_now() - timedelta(days=s.retention_days)).isoformat(timespec="seconds")
            n, p = archive.prune_lines_except(w, cutoff, list(s.retention_lines))
            removed["all lines"] = n
            paths += p
        if removed:
            writes.audit(
                w,
                _now().isoformat(timespec="seconds"),
                "retention",
                ", ".join(f"{k}: {v} messages" for k, v in removed.items()),
            )
    _remove_files(paths)
    if any(removed.values()):
        _scrub(ctx)
    log.info("retention: %s", removed or "no period configured")
    return removed


def erase_client(ctx: Context, client: str) -> dict[str, int]:
    """Every dialog of one client, everywhere; the audit line says how much, never whose."""
    conn = ctx.db.read()
    conn.execute("PRAGMA secure_delete = ON")
    with ctx.db.write() as w:
        chats = archive.client_chats(w, client)
        counts, paths = archive.erase_chats(w, chats)
        writes.audit(
            w,
            _now().isoformat(timespec="seconds"),
            "erase",
            f"client erased on request: {counts['dialogs']} dialogs, {counts['messages']} messages,"
            f" {counts['events']} raw events",
        )
    _remove_files(paths)
    _scrub(ctx)
    log.warning("erase: %d dialogs, %d messages removed", counts["dialogs"], counts["messages"])
    return counts
