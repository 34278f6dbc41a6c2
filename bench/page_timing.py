"""Page timings on a generated database, one client: what the API (figure 4) and viewer (4b) benches share.

start() generates the database and runs the app on it under gunicorn with the role's options and workers;
warm_up() asks every page kind a few times; measure() walks the kinds in turn, `per` requests each, per round.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from common import BenchApp, conftest, log, median, role_default_workers, workdir
from gen_db import generate
from loadgen import closed_loop, get

Kinds = dict[str, Callable[[], str]]  # page kind -> a maker of its next path


def start(
    name: str, n_messages: int, n_dialogs: int, viewer: bool = False, env: dict[str, str] | None = None
) -> tuple[dict[str, Any], Any, BenchApp]:
    """The generated database's facts, the simulated portal and the app on that database."""
    wd = workdir(name)
    extra = " (with search index and figures)" if viewer else ""
    log(f"{name}: generating {n_messages} messages in {n_dialogs} dialogs{extra}")
    info = generate(wd / "dialogs.db", n_messages, n_dialogs, viewer=viewer)
    log(f"{name}: generated in {info['seconds']} s ({info['size_mb']} MB)")
    portal = conftest.PortalSim(conftest.free_port(), wd / "portal-state.json")
    portal.start()
    app = BenchApp(wd, portal, conftest.free_port())
    app.workers = role_default_workers()
    if env:
        app.env_extra = env
    app.start()
    return info, portal, app


def stop(portal: Any, app: BenchApp) -> None:
    app.stop()
    portal.stop()
    (app.data_dir / "dialogs.db").unlink(missing_ok=True)


def warm_up(app: BenchApp, kinds: Kinds, headers: dict[str, str], n: int, must_answer_200: bool) -> None:
    """Every kind n times (page cache, statement cache), not measured."""
    host = f"127.0.0.1:{app.port}"
    for name, path in kinds.items():
        stats = closed_loop("127.0.0.1", app.port, iter([(name, get(host, path(), headers)) for _ in range(n)]), 1)
        bad = [s.status for s in stats.samples if s.status != 200]
        if must_answer_200 and bad:
            raise RuntimeError(f"{name}: status {bad[0]}")


def measure(
    app: BenchApp, tag: str, kinds: Kinds, headers: dict[str, str], rounds: int, per: int, keep_body: bool = False
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    """Each round's summary per kind, and (keep_body) the largest body each kind answered."""
    host = f"127.0.0.1:{app.port}"
    raw: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    sizes: dict[str, int] = {}
    for r in range(rounds):
        for name, path in kinds.items():
            reqs = [(name, get(host, path(), headers)) for _ in range(per)]
            stats = closed_loop("127.0.0.1", app.port, iter(reqs), 1, keep_body=keep_body)
            s = stats.summary()
            raw[name].append(s)
            if keep_body:
                sizes[name] = max(len(x.body) for x in stats.samples)
            if r == 0:
                log(f"{tag} {name}: p50 {s['latency']['p50_ms']} ms p99 {s['latency']['p99_ms']} ms")
    return raw, sizes


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """p50 and p99 as medians over the rounds, errors summed."""
    return {
        "p50_ms": round(median([x["latency"]["p50_ms"] for x in runs]), 2),
        "p99_ms": round(median([x["latency"]["p99_ms"] for x in runs]), 2),
        "errors": sum(x["errors"] for x in runs),
    }
