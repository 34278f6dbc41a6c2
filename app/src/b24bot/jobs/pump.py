"""The Chatbots 2.0 event pump: `imbot.v2.Event.get` in a loop, exactly once into SQLite.

Exactly once: the offset we send acknowledges on the portal every event below it, so it is sent only after
the events below it are committed. Each batch is stored together with the next offset in ONE transaction;
a crash before that commit re-reads the batch (the portal has not been told), a crash after it resends an
offset whose events are stored. The commit also checks that the stored offset is still the one the batch
was fetched with, so a second consumer can never store a batch twice.

One consumer per instance: a thread in every gunicorn worker, but only the one holding an exclusive flock on
`pump.lock` polls; when its process dies (even by kill -9) the kernel frees the lock and another worker takes
over within one idle interval. `b24bot pump` runs the same loop in the foreground under the same lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import metrics
from ..bitrix import events as ev
from ..bitrix import v2
from ..bitrix.errors import BitrixError
from ..store import StorageError, reads, writes
from . import ingest, v2bot
from .context import Context

log = logging.getLogger(__name__)

ERROR_BACKOFF_MAX = 60.0


class OffsetMoved(Exception):
    """Another consumer committed since we fetched: our batch is dropped unstored (it already has it)."""


class PumpLock:
    """Non-blocking exclusive flock; the holder's pid is written into the file for operators and tests."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def stored_offset(ctx: Context) -> int | None:
    return ev.int_or_none(reads.get_setting(ctx.db.read(), v2bot.OFFSET_KEY, ""))


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Pump:
    def __init__(self, ctx: Context, on_joined: Callable[[], None] | None = None) -> None:
        self.ctx = ctx
        self.on_joined = on_joined  # wakes the hand-off thread once the joins are committed
        self.lock = PumpLock(ctx.settings.data_dir / "pump.lock")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    # ---- one batch ----------------------------------------------------------------------------------------

    def run_once(self) -> tuple[int, bool]:
        """Fetch one batch, store it with its offset in one transaction. Returns (events, has_more)."""
        record = v2bot.require(self.ctx)
        bot_id = int(record["bot_id"])
        offset = stored_offset(self.ctx)
        batch = v2bot.api(self.ctx).events(bot_id, offset, self.ctx.settings.pump_limit)
        if not batch.events:
            return 0, batch.has_more
        ids = [int(e["eventId"]) for e in batch.events]
        # Acknowledge exactly what we saw: never an offset past an event we were not given.
        new_offset = max(ids) + 1
        if batch.next_offset is not None and batch.next_offset != new_offset:
            log.warning("Event.get nextOffset %s differs from last eventId + 1 = %s", batch.next_offset, new_offset)
        auth = v2bot.portal_auth(self.ctx)
        joined = 0
        with self.ctx.db.write() as conn:
            if ev.int_or_none(reads.get_setting(conn, v2bot.OFFSET_KEY, "")) != offset:
                raise OffsetMoved(f"offset moved from {offset} while the batch was fetched")
            for item in batch.events:
                joined += self._apply(conn, item, auth, bot_id)
            writes.set_setting(conn, v2bot.OFFSET_KEY, str(new_offset))
        if joined and self.on_joined is not None:
            self.on_joined()
        log.debug("stored %d v2 events, offset now %d", len(ids), new_offset)
        return len(ids), batch.has_more

    def _apply(self, conn: Any, item: dict[str, Any], auth: ev.EventAuth, bot_id: int) -> int:
        """One event through the v1 ingest path (its writes nest as savepoints in our transaction)."""
        kind = str(item.get("type", "")).upper()
        if kind == v2.BOT_DELETE:
            v2bot.bot_deleted(self.ctx, bot_id)
            return 0
        try:
            event = v2.to_lines(item, auth, bot_id)
            if event is None:
                return 0
            outcome, chat_id = ingest.record(self.ctx, event)
        except ev.BadEvent as exc:
            # Nothing lost: the raw event is kept for inspection, then acknowledged (it can never get better).
            payload = json.dumps(ev.redact(item), ensure_ascii=False, separators=(",", ":"))
            writes.record_event(conn, _now_iso(), f"{kind} rejected", None, f"v2:{item.get('eventId')}", payload)
            log.warning("v2 event %s (%s) rejected: %s", item.get("eventId"), kind, exc)
            return 0
        metrics.event(event.name, outcome)
        return 1 if chat_id is not None else 0

    def drain(self) -> int:
        """Batches until the portal has no more; the number of events stored."""
        total, more = 0, True
        while more:
            try:
                n, more = self.run_once()
            except OffsetMoved:
                continue
            total += n
            if n == 0:
                break
        return total

    # ---- the loop -----------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self.reset_after_fork()
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self.run, name="v2-pump", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def reset_after_fork(self) -> None:
        """A forked child has no thread and must not trust a lock object made in its parent."""
        self._thread = None
        self.lock = PumpLock(self.lock.path)

    def run(self) -> None:
        s = self.ctx.settings
        failures, warned = 0, False
        while not self._stop.is_set():
            if not self.lock.acquire():
                self._stop.wait(s.pump_idle_s)
                continue
            try:
                _n, more = self.run_once()
                failures = 0
                wait = s.pump_busy_s if more else s.pump_idle_s
            except v2bot.NotRegistered as exc:
                if not warned:  # once: the pump waits quietly for `b24bot register`
                    log.warning("%s", exc)
                    warned = True
                wait = s.pump_idle_s
            except OffsetMoved as exc:
                log.warning("event pump: %s; fetching again", exc)
                wait = 0.0
            except (BitrixError, StorageError) as exc:
                failures += 1
                wait = min(ERROR_BACKOFF_MAX, s.pump_idle_s * 2 ** min(failures, 6))
                log.warning("event pump: %s; retrying in %.1fs", exc, wait)
            except Exception:  # a bug must not stop the only reader of the bot's events
                log.exception("event pump error")
                wait = s.pump_idle_s
            self._stop.wait(wait)
        self.lock.release()
