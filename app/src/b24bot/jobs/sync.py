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
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..bitrix import events as ev
from ..bitrix import history as hist
from ..bitrix import rest
from ..bitrix.errors import BitrixError
from ..bitrix.ratelimit import LeakyBucket
from ..bitrix.rest import Patience, RestClient, open_download
from ..store import queue, reads, responses, writes
from .context import Context
from .v2bot import our_bot_id

log = logging.getLogger(__name__)

BATCH = 25  # sessions per `batch` request: one rate-limit unit for up to 25 histories
MAX_SESSIONS = 5000  # per run; the next run continues


@dataclass
class SyncReport:
    sessions: int = 0
    new_messages: int = 0
    files: int = 0
    downloaded: int = 0
    discovered: int = 0  # sessions learnt from imopenlines.dialog.get (dialogs no message event named)
    limit_waited_s: float = 0.0
    sessions_behind: int | None = None
    stopped: str | None = None  # why the run ended early (the portal's limits outlasted the patience)
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


BULK_RESERVE = 10  # of the shared bucket's burst, left to live hand-offs by sync and backfill


def patient_client(ctx: Context) -> RestClient:
    """The shared client for bulk reads: no in-call retries (Patience decides how long to wait, and honours the
    portal's `operating_reset_at`, which fixed in-call delays would not), and the shared bucket with some room
    left for hand-offs."""
    c = ctx.client
    limiter = None
    if c.limiter is not None:
        limiter = LeakyBucket(c.limiter.path, c.limiter.rate, c.limiter.burst, reserve=BULK_RESERVE)
    return RestClient(c.tokens, limiter, timeout=c.timeout, session=c.session, backoff=())


def sync(
    ctx: Context,
    since: str | None = None,
    session_ids: list[int] | None = None,
    window_hours: float = 48.0,
    download: bool | None = None,
    patience: Patience | None = None,
) -> SyncReport:
    """One reconciliation run. A full run (no `session_ids`) first learns the sessions of dialogs no message
    event named, and records its outcome for `status` and /healthz."""
    report = SyncReport()
    try:
        keep_tokens_alive(ctx)
    except BitrixError as exc:
        report.errors.append(f"token refresh: {exc.code}")
    full = not session_ids
    if patience is None:
        patience = Patience(ctx.settings.sync_max_wait)
    client = patient_client(ctx) if full else ctx.client
    active_since = (datetime.now(timezone.utc) - timedelta(hours=window_hours)).isoformat(timespec="seconds")
    try:
        if full:
            report.discovered = discover_sessions(ctx, client, patience, active_since, report)
        todo = reads.sessions_to_sync(ctx.db.read(), active_since, since, session_ids, MAX_SESSIONS)
        bot_id = our_bot_id(ctx)
        for start in range(0, len(todo), BATCH):
            fetch_histories(ctx, client, patience, todo[start : start + BATCH], bot_id, report)
    except BitrixError as exc:
        report.stopped = f"{exc.code}: {exc.description}" if exc.description else exc.code
        report.errors.append(f"stopped: {exc.code}")
        log.error("sync stopped: %s", report.stopped)
    report.limit_waited_s = round(patience.waited, 1)
    if download if download is not None else ctx.settings.download_files:
        report.downloaded = download_attachments(ctx, report)
    if full:
        record_outcome(ctx, report)
    log.info(
        "sync: %d sessions (%d discovered), %d new messages, %d files, %d downloaded, %d errors",
        report.sessions,
        report.discovered,
        report.new_messages,
        report.files,
        report.downloaded,
        len(report.errors),
    )
    return report


def discover_sessions(
    ctx: Context, client: RestClient, patience: Patience, active_since: str, report: SyncReport
) -> int:
    """Ask the portal which session each dialog is in: a dialog the bot only joined (no message event, so no
    `CHAT_ENTITY_DATA_1`) has no known session, and an open dialog may have moved on to a new one."""
    chats = reads.dialogs_to_look_up(ctx.db.read(), active_since, ev.JOIN, MAX_SESSIONS)
    found = 0
    for start in range(0, len(chats), rest.BATCH_MAX):
        chunk = chats[start : start + rest.BATCH_MAX]
        calls = {f"c{chat}": ("imopenlines.dialog.get", {"CHAT_ID": chat}) for chat in chunk}
        results, errors = rest.patient_batch(client, patience, calls)
        for key, err in errors.items():
            report.errors.append(f"dialog {key[1:]}: {err.code}")
        now = _now()
        with ctx.db.write() as conn:
            for chat in chunk:
                chat_info = results.get(f"c{chat}")
                if isinstance(chat_info, dict):
                    data = ev.SessionData.parse(str(chat_info.get("entity_data_1") or ""))
                    found += note_session(conn, chat, str(chat_info.get("entity_id") or ""), data, now)
    return found


def note_session(
    conn: sqlite3.Connection, chat_id: int, entity_id: str, data: ev.SessionData, now: str, close_older: bool = True
) -> int:
    """Record a session of the chat (as the portal names it); 1 if it was new to us."""
    if not data.session_id:
        return 0
    try:
        entity: ev.LinesChat | None = ev.LinesChat.parse(entity_id)
    except ev.BadEvent:
        entity = None
    known = conn.execute("SELECT 1 FROM sessions WHERE session_id = ?", (data.session_id,)).fetchone()
    started = datetime.fromtimestamp(data.started_at, timezone.utc).isoformat(timespec="seconds")
    writes.upsert_session(
        conn,
        data.session_id,
        chat_id,
        entity.line_id if entity else None,
        entity.connector if entity else None,
        data.crm_entity_type,
        data.crm_entity_id,
        None,
        started if data.started_at else None,
        now,
    )
    if close_older:
        writes.close_older_sessions(conn, chat_id, data.session_id, now)
    return 0 if known else 1


def fetch_histories(
    ctx: Context,
    client: RestClient,
    patience: Patience,
    chunk: list[tuple[int, int]],
    bot_id: int | None,
    report: SyncReport,
) -> None:
    calls = {f"s{sid}": ("imopenlines.session.history.get", {"SESSION_ID": sid}) for sid, _ in chunk}
    results, errors = rest.patient_batch(client, patience, calls)
    for sid, chat_id in chunk:
        key = f"s{sid}"
        if key in errors:
            report.errors.append(f"session {sid}: {errors[key].code}")
            continue
        if not isinstance(results.get(key), dict):
            report.errors.append(f"session {sid}: no history")
            continue
        history = hist.parse(results[key], bot_id)
        with ctx.db.write() as conn:
            report.new_messages += store_history(conn, sid, chat_id, history, _now())
        report.sessions += 1
        report.files += len(history.files)


def record_outcome(ctx: Context, report: SyncReport) -> None:
    """What `status` and /healthz show: a few settings rows, so reading them stays cheap."""
    error = report.stopped or (report.errors[0] if report.errors else "")
    with ctx.db.write() as conn:
        report.sessions_behind = reads.sessions_behind(conn)
        writes.set_setting(conn, SYNC_LAST_AT, _now())
        writes.set_setting(conn, SYNC_LAST_ERROR, error)
        writes.set_setting(conn, SYNC_BEHIND, str(report.sessions_behind))


SYNC_LAST_AT, SYNC_LAST_ERROR, SYNC_BEHIND = "sync.last_at", "sync.last_error", "sync.sessions_behind"


def store_history(conn: sqlite3.Connection, session_id: int, chat_id: int, h: hist.SessionHistory, now: str) -> int:
    """One session's history into the archive (inside the caller's transaction); returns new messages."""
    new = 0
    current = ev.SessionData.parse(h.entity_data_1).session_id
    if h.entity_id:
        try:
            entity = ev.LinesChat.parse(h.entity_id)
        except ev.BadEvent:
            entity = None
        if entity is not None:
            first = min((m.created_at for m in h.messages), default=now)
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
                    min(first, now),
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
            auth = ctx.tokens.current()
            resp = open_download(
                ctx.session,
                str(a["url"]),
                str(auth["client_endpoint"]),
                str(auth["access_token"]),
                ctx.settings.rest_timeout,
                ctx.tokens.allow_http,
            )
            digest, size = hashlib.sha256(), 0
            fd, tmp = tempfile.mkstemp(dir=files_dir, prefix=".part-")
            with resp, os.fdopen(fd, "wb") as out:
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
        except BitrixError as exc:
            report.errors.append(f"file {a['file_id']}: {exc.code}")
            continue
        except (OSError, ValueError) as exc:
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
    # This runs in the hand-off thread: never wait long for the portal here (hand-offs come first); what
    # is left undone is picked up by the next `b24bot sync` (closed, not synced since closing).
    sync(ctx, session_ids=[int(k) for k in keys], patience=Patience(0.0))
    return True
