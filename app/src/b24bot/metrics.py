"""Optional Prometheus metrics (B24BOT_METRICS=true), summed over every gunicorn worker.

prometheus_client's multiprocess mode keeps each worker's counters in files under B24BOT_METRICS_DIR; queue
depth is read from SQLite at scrape time so it is exact whichever worker answers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

_enabled = False
_events: Any = None
_handoff_latency: Any = None
_handoff_failures: Any = None


def init(enabled: bool, directory: str) -> None:
    """Must run before anything imports prometheus_client: the multiprocess switch is read at import."""
    global _enabled, _events, _handoff_latency, _handoff_failures
    if not enabled or _enabled:
        return
    os.makedirs(directory, mode=0o750, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    from prometheus_client import Counter, Histogram

    _events = Counter("b24bot_events_total", "Bitrix24 calls received, by event and outcome", ["event", "outcome"])
    _handoff_latency = Histogram(
        "b24bot_handoff_seconds",
        "From a dialog's join event to the portal accepting its hand-off",
        buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    )
    _handoff_failures = Counter("b24bot_handoff_failures_total", "Failed hand-off attempts, by error", ["code"])
    _enabled = True


def enabled() -> bool:
    return _enabled


def event(name: str, outcome: str) -> None:
    if _enabled:
        _events.labels(name, outcome.split(":")[0]).inc()


def handoff_done(seconds: float) -> None:
    if _enabled:
        _handoff_latency.observe(seconds)


def handoff_failed(code: str) -> None:
    if _enabled:
        _handoff_failures.labels(code).inc()


def render(gauges: Callable[[], dict[str, tuple[str, float]]]) -> tuple[bytes, str]:
    """The exposition text: every worker's counters plus gauges computed now."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
    from prometheus_client.core import GaugeMetricFamily

    class Gauges:
        def collect(self) -> Iterable[GaugeMetricFamily]:
            for name, (doc, value) in gauges().items():
                yield GaugeMetricFamily(name, doc, value=value)

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(Gauges())  # type: ignore[arg-type]
    return generate_latest(registry), CONTENT_TYPE_LATEST
