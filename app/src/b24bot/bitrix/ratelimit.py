"""A leaky bucket shared by every worker process, mirroring Bitrix24's own (2 req/s drain, burst 50).

Staying under the portal's bucket is cheaper than being told QUERY_LIMIT_EXCEEDED: the state is a tiny file
under an flock, so all gunicorn workers (and `b24bot sync`) draw from one budget.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path


class LeakyBucket:
    """`reserve`: room this caller leaves free. Bulk work (sync, backfill) keeps some of the burst for the live
    hand-offs, so a burst of joins while a backfill runs at the full rate is not queued behind it."""

    def __init__(self, path: Path, rate: float, burst: int, reserve: int = 0) -> None:
        self.path = path
        self.rate = rate
        self.burst = max(1, burst)
        self.reserve = max(0, min(reserve, self.burst - 1))

    def _update(self, penalty: bool = False) -> float:
        """Take one request's room (or fill the bucket on a penalty); return how long to wait first."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.read(fd, 256)
            try:
                state = json.loads(raw) if raw else {}
                level, last = float(state.get("level", 0.0)), float(state.get("t", 0.0))
            except (ValueError, AttributeError):
                level, last = 0.0, 0.0
            now = time.time()
            level = max(0.0, level - max(0.0, now - last) * self.rate)
            if penalty:
                level, wait = max(level, float(self.burst)), 0.0
            else:
                wait = max(0.0, (level + 1 - (self.burst - self.reserve)) / self.rate)
                level += 1
            payload = json.dumps({"level": level, "t": now}).encode()
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, payload)
            return wait
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def acquire(self) -> float:
        wait = self._update()
        if wait > 0:
            time.sleep(wait)
        return wait

    def penalize(self) -> None:
        """The portal said we are over its limit: behave as if our bucket were full."""
        self._update(penalty=True)
