"""Per-process state every blueprint shares (the way Flask's tutorial keeps `get_db` in db.py): blueprints import
`services()` from here, never the app factory, so web/ has no import cycle."""

from __future__ import annotations

import logging
import time

from flask import current_app

from .. import logs
from ..jobs.context import Context
from ..jobs.handoff import HandoffWorker
from ..jobs.pump import Pump
from ..store import reads

LOG_LEVEL_KEY = "log_level"
LOG_LEVEL_POLL_S = 5.0
EXTENSION = "b24bot"


class Services:
    def __init__(self, ctx: Context, worker: HandoffWorker) -> None:
        self.ctx = ctx
        self.worker = worker
        self.pump: Pump | None = None  # the Chatbots 2.0 event pump, in fetch mode
        self._level_checked = 0.0

    def start(self) -> None:
        """Run this process's background threads; a no-op when they run (after gunicorn's fork, the child starts
        its own)."""
        self.worker.start()
        if self.pump is not None:
            self.pump.start()

    def follow_log_level(self) -> None:
        """POST /api/admin/loglevel reaches one worker; the others pick the level up from the database."""
        now = time.monotonic()
        if now - self._level_checked < LOG_LEVEL_POLL_S:
            return
        self._level_checked = now
        try:
            level = reads.get_setting(self.ctx.db.read(), LOG_LEVEL_KEY, "")
        except Exception:  # the database being down is reported by /healthz, not here
            return
        if level and logging.getLogger().getEffectiveLevel() != logging.getLevelName(level):
            logs.set_level(level)


def services() -> Services:
    """The current app's Services (set up by create_app)."""
    return current_app.extensions[EXTENSION]
