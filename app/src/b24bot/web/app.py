"""The Flask application: wiring only. Routes live in events.py, events_v2.py, status.py, api.py, admin.py and
ui*.py; the state they share in state.py."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify

from .. import config, logs, metrics
from ..jobs import sync
from ..jobs.context import Context
from ..jobs.handoff import HandoffWorker
from ..jobs.pump import Pump
from ..store import StorageError
from . import admin, api, events, events_v2, status, ui
from .state import EXTENSION, Services

log = logging.getLogger(__name__)


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
    app.extensions[EXTENSION] = svc
    if settings.bot_api == "v2" and settings.event_mode == "fetch":
        svc.pump = Pump(ctx, on_joined=worker.kick)

    app.register_blueprint(status.bp)
    app.register_blueprint(events.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(events_v2.bp)
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
        svc.start()
    return app
