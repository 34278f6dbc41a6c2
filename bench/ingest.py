"""Figure 1: ONIMBOTMESSAGEADD ingest at concurrency 1, 8, 32, 128, side by side with a bare-Flask baseline.

Both servers run under gunicorn with the role's options and workers (b24bot_workers). They are measured in
alternating rounds (baseline, app, baseline, app, ...; five per level) so machine noise hits both; figures are the
medians over rounds and the ratio is app / baseline of those medians.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from common import (
    BENCH,
    CLIENT_TEXTS,
    ROOT,
    conftest,
    forms,
    gunicorn_argv,
    log,
    median,
    role_default_workers,
    start_stack,
    stop_stack,
    write_result,
)
from loadgen import CpuMeter, closed_loop, post_form

LEVELS = (1, 8, 32, 128)
CHATS = 300  # "a few hundred distinct chats"
PLACEHOLDER = "987654321987"


class Bodies:
    """Realistic ONIMBOTMESSAGEADD bodies for CHATS chats; every request gets a new MESSAGE_ID."""

    def __init__(self, app: conftest.App, host: str, first_id: int = 1) -> None:
        assert app.portal_ids and app.bot_id
        rnd = random.Random(1)
        self.templates: list[tuple[bytes, bytes]] = []
        for n in range(CHATS):
            chat = 5000 + n
            entity = forms.lines_entity("telegrambot", 1 + n % 3, f"ext{chat}", 9000 + n)
            body = forms.encode(
                forms.message(
                    app.portal_ids,
                    app.bot_id,
                    chat,
                    int(PLACEHOLDER),
                    rnd.choice(CLIENT_TEXTS),
                    9000 + n,
                    "Guest",
                    True,
                    entity,
                    session_id=700000 + n,
                )
            )
            before, sep, after = body.partition(PLACEHOLDER.encode())
            assert sep and PLACEHOLDER.encode() not in after
            self.templates.append((before, after))
        self.host = host
        self.next_id = first_id
        self.rnd = rnd
        self.size = sum(len(b) + len(a) + len(PLACEHOLDER) for b, a in self.templates) // len(self.templates)

    def stream(self, n: int) -> Iterator[tuple[Any, bytes]]:
        for _ in range(n):
            before, after = self.templates[self.rnd.randrange(CHATS)]
            mid = self.next_id
            self.next_id += 1
            yield mid, post_form(self.host, "/", before + str(mid).encode() + after)


def start_baseline(workers: int) -> tuple[subprocess.Popen[bytes], int]:
    port = conftest.free_port()
    env = {
        **{k: v for k, v in __import__("os").environ.items() if not k.startswith("B24BOT_")},
        "PYTHONPATH": f"{BENCH}:{ROOT / 'app' / 'src'}",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    proc = subprocess.Popen(
        gunicorn_argv(workers, port, "baseline_app:app"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    conftest.wait_http(f"http://127.0.0.1:{port}/healthz")
    return proc, port


def measure(port: int, reqs: Iterator[tuple[Any, bytes]], conc: int, server_pid: int) -> dict[str, Any]:
    with CpuMeter(server_pid) as cpu:
        stats = closed_loop("127.0.0.1", port, reqs, conc)
    out = stats.summary()
    out["server_cpu_s"] = round(cpu.used, 2)
    out["server_cpu_cores"] = round(cpu.used / stats.wall, 2)
    return out


def probe() -> dict[str, Any]:
    """bench/ingest_probe.py in fresh processes: per-event COMMIT time and WAL volume (see its docstring)."""
    out: dict[str, Any] = {}
    for mode in ("shipped", "wal"):
        proc = subprocess.run(
            [sys.executable, str(BENCH / "ingest_probe.py"), mode],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=BENCH,
        )
        lines = proc.stdout.strip().splitlines()
        out[mode] = json.loads(lines[-1]) if proc.returncode == 0 and lines else {"error": proc.stderr[-500:]}
    return out


def _side(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One side (app or baseline) of a concurrency level: medians over its rounds, errors summed."""

    def med(f: Any) -> float:
        return round(median([f(x) for x in runs]), 2)

    return {
        "events_per_s": med(lambda x: x["rps"]),
        "p50_ms": med(lambda x: x["latency"]["p50_ms"]),
        "p99_ms": med(lambda x: x["latency"]["p99_ms"]),
        "errors": sum(x["errors"] for x in runs),
        "generator_cpu_share_of_one_core": med(lambda x: x["generator_cpu_share_of_one_core"]),
        "server_cpu_cores": med(lambda x: x["server_cpu_cores"]),
    }


def _level(conc: int, rounds: int, n: int, bodies: Bodies, targets: list[tuple[str, int, int]]) -> dict[str, Any]:
    """One concurrency level: `rounds` alternating rounds of n requests against each target (name, port, pid)."""
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "app": []}
    for r in range(rounds):
        for name, port, pid in targets:
            res = measure(port, bodies.stream(n), conc, pid)
            runs[name].append(res)
            log(
                f"ingest c={conc} round {r + 1} {name}: {res['rps']} ev/s p50 {res['latency']['p50_ms']} ms"
                f" p99 {res['latency']['p99_ms']} ms errors {res['errors']}"
                f" gen cpu {res['generator_cpu_share_of_one_core']}"
            )
    lv = {"app": _side(runs["app"]), "baseline": _side(runs["baseline"]), "rounds": runs}
    lv["ratio"] = round(lv["app"]["events_per_s"] / lv["baseline"]["events_per_s"], 2)
    return lv


def _method(workers: int, body_size: int, rounds: int) -> str:
    return (
        f"gunicorn sync, --workers {workers} (role default), role's --timeout/--graceful-timeout; "
        f"{CHATS} chats, ~{body_size}-byte ONIMBOTMESSAGEADD bodies from tests/sim/forms.py, every request a "
        "new MESSAGE_ID; asyncio raw-socket clients with keep-alive requested (the sync worker closes after "
        "each response, so each request includes its TCP connect); baseline = bench/baseline_app.py "
        f"(bare Flask: parse form + b24bot.bitrix.events.parse, 200, no storage); {rounds} alternating rounds "
        "per level, medians reported"
    )


def run(quick: bool = False) -> dict[str, Any]:
    workers = role_default_workers()
    rounds = 1 if quick else 5
    per_level = {1: 300, 8: 1000, 32: 1500, 128: 2000} if quick else {1: 600, 8: 2000, 32: 3000, 128: 4000}
    portal, app = start_stack("ingest")
    base_proc, base_port = start_baseline(workers)
    assert app.proc is not None and app.portal_ids and app.bot_id
    try:
        bodies = Bodies(app, f"127.0.0.1:{app.port}")
        log(f"ingest: body size ~{bodies.size} bytes, {CHATS} chats, workers={workers}")
        # Warm-up (imports, first connections, SQLite pages): not measured.
        closed_loop("127.0.0.1", base_port, bodies.stream(300), 8)
        closed_loop("127.0.0.1", app.port, bodies.stream(300), 8)
        targets = [("baseline", base_port, base_proc.pid), ("app", app.port, app.proc.pid)]
        levels = {str(conc): _level(conc, rounds, per_level[conc], bodies, targets) for conc in LEVELS}
        stored = app.count("messages")
        log("ingest: in-process probe (per-event SQL and COMMIT time, WAL bytes per event)")
        probed = probe()
        log(f"ingest probe: {probed}")
        sent = bodies.next_id - 1
    finally:
        base_proc.terminate()
        base_proc.wait(40)
        stop_stack(portal, app)
    result = {
        "method": _method(workers, bodies.size, rounds),
        "workers": workers,
        "requests_per_round": per_level,
        "levels": levels,
        "messages_stored": stored,
        "probe": probed,
        "app_requests_sent_incl_warmup": sent,
        "goals": {
            "ratio_ge_0_5_all_levels": all(v["ratio"] >= 0.5 for v in levels.values()),
            "p99_lt_50ms_at_32": levels["32"]["app"]["p99_ms"] < 50,
            "zero_errors": all(v["app"]["errors"] == 0 and v["baseline"]["errors"] == 0 for v in levels.values()),
        },
    }
    write_result("ingest", result)
    return result


if __name__ == "__main__":
    import sys

    run(quick="--quick" in sys.argv)
