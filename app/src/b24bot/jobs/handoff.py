"""Hand each new dialog to a human: a durable queue in SQLite, worked by one thread per worker process.

The request that stored the join only wakes the thread; the portal call happens outside the request, so a slow
or absent portal never slows the webhook. Failed calls are retried with back-off, across restarts.
Lower-priority work (session syncs) runs in a second thread: a history read waiting on a slow portal (up to
the REST timeout) or on its rate limit must never hold up the next hand-off.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from .. import metrics
from ..bitrix.errors import AuthFailed, BitrixError, NotInstalled
from ..bitrix.rest import RestClient
from ..config import Transfer
from ..store import Database, StorageError
from ..store import queue as q

log = logging.getLogger(__name__)

GIVE_UP_AFTER = 8  # attempts, for errors no retry can fix (bad chat id, no such user); others retry forever


def transfer_call(target: str, chat_id: int) -> tuple[str, dict[str, object]]:
    t = Transfer.parse(target)
    if t.kind == "queue":
        return "imopenlines.bot.session.transfer", {"CHAT_ID": chat_id, "QUEUE_ID": t.target, "LEAVE": "N"}
    if t.kind == "user":
        return "imopenlines.bot.session.transfer", {"CHAT_ID": chat_id, "USER_ID": t.target, "LEAVE": "N"}
    return "imopenlines.bot.session.operator", {"CHAT_ID": chat_id}


def backoff(attempts: int, cap: float) -> float:
    """1, 2, 4 ... seconds up to `cap`, with jitter so retries from many workers do not arrive together."""
    return min(cap, 2.0 ** max(0, attempts - 1)) * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not crypto


class HandoffWorker:
    def __init__(
        self,
        db: Database,
        client: RestClient,
        retry_max: float,
        lease: float,
        side_jobs: Callable[[], bool] | None = None,
    ) -> None:
        self.side_jobs = side_jobs  # lower-priority work (session syncs) done when no hand-off is due
        self.db = db
        self.client = client
        self.retry_max = retry_max
        self.lease = lease
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._side_thread: threading.Thread | None = None

    def start(self) -> None:
        """Run the worker thread in this process. Idempotent; after a fork (gunicorn's workers) the parent's
        thread does not exist in the child, so the child starts its own."""
        if self._pid != os.getpid():
            self._pid, self._thread, self._side_thread = os.getpid(), None, None
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="handoff", daemon=True)
            self._thread.start()
        if self.side_jobs is not None and (self._side_thread is None or not self._side_thread.is_alive()):
            self._side_thread = threading.Thread(target=self._run_side_jobs, name="side-jobs", daemon=True)
            self._side_thread.start()

    def kick(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except StorageError as exc:
                log.error("hand-off queue unavailable: %s", exc)
                worked = False
            except Exception:  # a bug must not kill the thread that hands clients to humans
                log.exception("hand-off worker error")
                worked = False
            if worked:
                continue
            try:
                due = q.next_due(self.db.read())
            except Exception:
                due = None
            # `due` counts leases: a hand-off another worker is performing is not due here, so no busy loop.
            wait = 1.0 if due is None else min(1.0, max(0.0, due - time.time()))
            self._wake.wait(wait)
            self._wake.clear()

    def _run_side_jobs(self) -> None:
        assert self.side_jobs is not None
        while not self._stop.is_set():
            try:
                if self.side_jobs():
                    continue
            except Exception:
                log.exception("background job error")
            self._stop.wait(1.0)

    def run_once(self) -> bool:
        """Claim one due hand-off and perform it; False when nothing was due."""
        now = time.time()
        due = q.next_due(self.db.read())
        if due is None or due > now:
            return False
        with self.db.write() as conn:
            claimed = q.claim_due(conn, now, self.lease, limit=1)
        if not claimed:
            return False
        self.perform(claimed[0])
        return True

    def perform(self, h: q.Handoff) -> None:
        method, params = transfer_call(h.target, h.chat_id)
        try:
            self.client.call(method, params)
            outcome = "transferred"
        except BitrixError as exc:
            if exc.code == "WRONG_CHAT":
                outcome = "already"  # the session left bot mode: an operator has it already
            else:
                self._failed(h, exc)
                return
        now = time.time()
        with self.db.write() as conn:
            q.finish(conn, h.id, h.chat_id, now, datetime.now(timezone.utc).isoformat(timespec="seconds"), outcome)
        log.info(
            "chat %s handed off (%s, %s) after %.0f ms",
            h.chat_id,
            h.target,
            outcome,
            (now - h.created_ts) * 1000,
        )
        metrics.handoff_done(now - h.created_ts)

    def _failed(self, h: q.Handoff, exc: BitrixError) -> None:
        metrics.handoff_failed(exc.code)
        now = time.time()
        fixable = exc.retryable or isinstance(exc, (NotInstalled, AuthFailed))
        with self.db.write() as conn:
            if not fixable and h.attempts >= GIVE_UP_AFTER:
                q.give_up(conn, h.id, now, exc.code)
                log.error("chat %s: hand-off failed for good after %d attempts: %s", h.chat_id, h.attempts, exc.code)
                return
            delay = backoff(h.attempts, self.retry_max)
            q.retry_later(conn, h.id, now + delay, exc.code)
        log.warning("chat %s: hand-off attempt %d failed (%s), retry in %.1fs", h.chat_id, h.attempts, exc.code, delay)
