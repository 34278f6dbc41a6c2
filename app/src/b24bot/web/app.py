"""The Flask application: wiring only. Routes live in events.py, status.py, api.py, admin.py and ui*.py."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from flask import Flask, current_app, jsonify

from .. import config, logs, metrics
from ..jobs import sync
from ..jobs.context import Context
from ..jobs.handoff import HandoffWorker
from ..store import StorageError, reads

LOG_LEVEL_KEY = "log_level"
LOG_LEVEL_POLL_S = 5.0

log = logging.getLogger(__name__)


class Services:
    def __init__(self, ctx: Context, worker: HandoffWorker) -> None:
        self.ctx = ctx
        self.worker = worker
        self.pid = os.getpid()
        self._level_checked = 0.0

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

    def ensure_worker(self) -> None:
        # A fork (gunicorn) leaves the thread behind in the parent: start one in this process.
        if self.pid != os.getpid():
            self.pid = os.getpid()
            self.worker._thread = None
        self.worker.start()


def services() -> Services:
    return current_app.extensions["b24bot"]


def create_app(settings: config.Settings | None = None, start_worker: bool = True) -> Flask:
    settings = settings or config.load()
    logs.configure(settings)
    for problem in settings.problems:
        log.warning("configuration: %s", problem)
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.error("data dir %s unusable: %s", settings.data_dir, exc)
    metrics.init(settings.metrics, str(settings.metrics_dir))
    ctx = Context.build(settings)
    lease = settings.rest_timeout * 4 + 10  # longer than one call with its in-call retries
    worker = HandoffWorker(ctx.db, ctx.client, settings.retry_max, lease, side_jobs=lambda: sync.run_due_jobs(ctx))

    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["MAX_CONTENT_LENGTH"] = 2 * 1024 * 1024
    svc = Services(ctx, worker)
    app.extensions["b24bot"] = svc

    from . import admin, api, events, status

    app.register_blueprint(status.bp)
    app.register_blueprint(events.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    from . import ui

    ui.init_app(app)

    @app.errorhandler(StorageError)
    def storage_error(exc: StorageError) -> Any:
        log.error("storage error: %s", exc)
        return jsonify(error="storage unavailable", detail=str(exc)), 503

    @app.errorhandler(413)
    def too_large(_exc: Any) -> Any:
        return jsonify(error="request body too large"), 413

    @app.before_request
    def follow_log_level() -> None:
        svc.follow_log_level()

    if start_worker:
        svc.ensure_worker()
    return app
