"""Reconciliation: read each recent session's history from the portal and fill in what events missed.

Bitrix24 never retries an event, the bot may leave a chat at hand-off, and the app may be down: the portal's
history (`imopenlines.session.history.get`, readable with the installing admin's token without being a chat
member) is the source of truth. Copies from events and from history share the message id, so they meet in
one row. Progress is committed per batch, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..bitrix import events as ev
from ..bitrix import history as hist
from ..bitrix.errors import BitrixError
from ..store import queue, reads, responses, writes
from .context import Context

log = logging.getLogger(__name__)

BATCH = 25  # sessions per `batch` request: one rate-limit unit for up to 25 histories
MAX_SESSIONS = 5000  # per run; the next run continues


@dataclass
class SyncReport:
    sessions: int = 0
    new_messages: int = 0
    files: int = 0
    downloaded: int = 0
    errors: list[str] = field(default_factory=list)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


TOKEN_MAX_AGE_S = 7 * 86400


def keep_tokens_alive(ctx: Context) -> bool:
    """On a quiet portal nothing refreshes the tokens, and a refresh token lives only so long (28 days in older
    Bitrix24 docs): renew it weekly. Not more often: Bitrix24 warns that hourly refreshes look like abuse."""
    auth = ctx.tokens.load()
    if auth is None:
        return False
    last = int(auth.get("refreshed_at") or auth.get("installed_at") or 0)
    if time.time() - last < TOKEN_MAX_AGE_S:
        return False
    ctx.tokens.refresh(stale_access_token=str(auth["access_token"]))
    return True


def sync(
    ctx: Context,
    since: str | None = None,
    session_ids: list[int] | None = None,
    window_hours: float = 48.0,
    download: bool | None = None,
) -> SyncReport:
    report = SyncReport()
    try:
        keep_tokens_alive(ctx)
    except BitrixError as exc:
        report.errors.append(f"token refresh: {exc.code}")
    active_since = (datetime.now(timezone.utc) - timedelta(hours=window_hours)).isoformat(timespec="seconds")
    todo = reads.sessions_to_sync(ctx.db.read(), active_since, since, session_ids, MAX_SESSIONS)
    installed = ctx.tokens.load()
    bot_id = int(installed["bot_id"]) if installed and installed.get("bot_id") else None
    for start in range(0, len(todo), BATCH):
        chunk = todo[start : start + BATCH]
        calls = {f"s{sid}": ("imopenlines.session.history.get", {"SESSION_ID": sid}) for sid, _ in chunk}
        try:
            results, errors = ctx.client.batch(calls)
        except BitrixError as exc:
            report.errors.append(f"batch: {exc.code}")
            log.error("sync stopped: %s", exc)
            break
        for sid, chat_id in chunk:
            key = f"s{sid}"
            if key in errors:
                report.errors.append(f"session {sid}: {errors[key].code}")
                continue
            if not isinstance(results.get(key), dict):
                report.errors.append(f"session {sid}: no history")
                continue
            history = hist.parse(results[key], bot_id)
            report.new_messages += _store(ctx, sid, chat_id, history)
            report.sessions += 1
            report.files += len(history.files)
    if download if download is not None else ctx.settings.download_files:
        report.downloaded = download_attachments(ctx, report)
    log.info(
        "sync: %d sessions, %d new messages, %d files, %d downloaded, %d errors",
        report.sessions,
        report.new_messages,
        report.files,
        report.downloaded,
        len(report.errors),
    )
    return report


def _store(ctx: Context, session_id: int, chat_id: int, h: hist.SessionHistory) -> int:
    now = _now()
    new = 0
    current = ev.SessionData.parse(h.entity_data_1).session_id
    with ctx.db.write() as conn:
        if h.entity_id:
            try:
                entity = ev.LinesChat.parse(h.entity_id)
            except ev.BadEvent:
                entity = None
            if entity is not None:
                writes.upsert_dialog(
                    conn,
                    writes.DialogRow(
                        chat_id,
                        f"chat{chat_id}",
                        entity.connector,
                        entity.line_id,
                        entity.external_chat_id,
                        entity.client_user_id,
                        None,
                        now,
                    ),
                )
        operators = sorted({m.author_id for m in h.messages if m.author_role == "operator" and not m.via_connector})
        for m in h.messages:
            row = writes.MessageRow(
                message_id=m.message_id,
                chat_id=chat_id,
                session_id=session_id,
                author_id=m.author_id or None,
                author_role=m.author_role,
                text=m.text,
                created_at=m.created_at,
                source="history",
                via_connector=m.via_connector,
            )
            if writes.upsert_history_message(conn, row):
                new += 1
            if m.author_id and m.author_role != "system" and not m.via_connector:
                writes.upsert_participant(conn, chat_id, m.author_id, m.author_name, m.author_role, m.created_at)
            writes.touch_session(conn, session_id, m.created_at, None)
            for file_id in m.file_ids:
                f = h.files.get(file_id)
                if f is not None:
                    writes.upsert_attachment(conn, f.file_id, m.message_id, chat_id, f.name, f.size, f.kind, f.url, now)
        # The chat has moved on to another session: this one is over.
        closed = now if current and current != session_id else None
        writes.session_synced(conn, session_id, now, operators, closed)
        responses.recompute(conn, [chat_id])  # history may have moved times or authors of captured messages
    return new


def download_attachments(ctx: Context, report: SyncReport, limit: int = 200) -> int:
    """Copy files into the data dir (content-addressed, with their hash) before Bitrix24's clean-up removes them."""
    files_dir = ctx.settings.data_dir / "files"
    files_dir.mkdir(mode=0o750, exist_ok=True)
    done = 0
    max_bytes = ctx.settings.file_max_mb * 1024 * 1024
    for a in reads.attachments_to_download(ctx.db.read(), limit):
        try:
            token = ctx.tokens.current()["access_token"]
            resp = ctx.session.get(a["url"], params={"auth": token}, stream=True, timeout=ctx.settings.rest_timeout)
            if resp.status_code != 200:
                report.errors.append(f"file {a['file_id']}: HTTP {resp.status_code}")
                continue
            digest, size = hashlib.sha256(), 0
            fd, tmp = tempfile.mkstemp(dir=files_dir, prefix=".part-")
            with os.fdopen(fd, "wb") as out:
                for chunk in resp.iter_content(64 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        raise ValueError("larger than B24BOT_FILE_MAX_MB")
                    digest.update(chunk)
                    out.write(chunk)
            sha = digest.hexdigest()
            final = files_dir / sha[:2] / sha
            final.parent.mkdir(mode=0o750, exist_ok=True)
            os.replace(tmp, final)
        except (BitrixError, OSError, ValueError) as exc:
            report.errors.append(f"file {a['file_id']}: {exc.__class__.__name__}")
            for leftover in files_dir.glob(".part-*"):
                leftover.unlink(missing_ok=True)
            continue
        except Exception as exc:  # requests' own errors: keep going with the next file
            report.errors.append(f"file {a['file_id']}: {exc.__class__.__name__}")
            continue
        with ctx.db.write() as conn:
            writes.attachment_downloaded(conn, a["file_id"], str(Path(final)), sha, _now())
        done += 1
    return done


def run_due_jobs(ctx: Context) -> bool:
    """Sync sessions that closed a minute ago (scheduled by ingest); True if there was work."""
    with ctx.db.write() as conn:
        keys = queue.claim_jobs(conn, "sync", time.time(), limit=BATCH)
    if not keys:
        return False
    sync(ctx, session_ids=[int(k) for k in keys])
    return True
