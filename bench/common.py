"""Shared bench helpers: machine description, percentiles, result files, the test harness's processes."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
WORK = BENCH / "work"  # scratch (gitignored): data dirs, generated databases, inventories
# Message texts of every generated load: what clients write (the ingest bodies), then an operator's reply
# (gen_db.py cycles through all of them).
CLIENT_TEXTS = (
    "Hello! I ordered a phone last week and it still has not arrived, order 48213",
    "Добрый день, подскажите, пожалуйста, где мой заказ?",
    "Can I change the delivery address?",
    "ok",
    "Thank you 🙂",
    "I would like to return the item, the size does not fit. What do I need to do?",
)
TEXTS = (*CLIENT_TEXTS, "Your order has been handed to the courier, tracking number RB123456789RU.")

for extra in (ROOT / "tests", ROOT / "tests" / "sim", ROOT / "app" / "src"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import conftest  # noqa: E402  (the test harness: PortalSim, App, free_port, wait_for)
import forms  # noqa: E402  (realistic form bodies built from the documented samples)

__all__ = ["conftest", "forms"]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    data = sorted(values)
    k = max(0, min(len(data) - 1, round(q / 100 * len(data) + 0.5) - 1))
    return data[k]


def summary_ms(seconds: list[float]) -> dict[str, Any]:
    """n, p50, p90, p99, max in milliseconds."""
    ms = [s * 1000 for s in seconds]
    out: dict[str, Any] = {"n": len(ms)}
    for name, q in (("p50", 50), ("p90", 90), ("p99", 99)):
        v = percentile(ms, q)
        out[f"{name}_ms"] = None if v is None else round(v, 2)
    out["max_ms"] = round(max(ms), 2) if ms else None
    out["mean_ms"] = round(statistics.fmean(ms), 2) if ms else None
    return out


def median(values: list[float]) -> float:
    return statistics.median(values)


def _meminfo_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def other_containers() -> list[str]:
    """Containers running on this machine that are not ours: noise worth recording."""
    try:
        out = subprocess.run(
            ["docker", "ps", "--format", "{{.Names}}"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [n for n in out.split() if not n.startswith("b24bot-bench-")]


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def code_version() -> dict[str, Any]:
    """The commit measured, and whether the app's tree had uncommitted changes (others commit concurrently)."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False)
        return out.stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"), "app_dirty": bool(git("status", "--porcelain", "app"))}


def machine() -> dict[str, Any]:
    return {
        "code": code_version(),
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gb": _meminfo_gb(),
        "python": platform.python_version(),
        "os": platform.platform(),
        "sqlite": __import__("sqlite3").sqlite_version,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "loadavg_at_start": loadavg(),
        "other_containers_at_start": other_containers(),
    }


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    body = {"name": name, "machine": machine(), **data}
    path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    log(f"wrote {path.relative_to(ROOT)}")
    return path


def workdir(name: str) -> Path:
    path = WORK / f"{name}-{os.getpid()}-{int(time.time())}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def gunicorn_argv(workers: int, port: int, wsgi: str = "b24bot.wsgi:app") -> list[str]:
    """gunicorn exactly as roles/b24bot/templates/etc/systemd/system/b24bot.service.j2 starts it."""
    gunicorn = Path(sys.executable).with_name("gunicorn")
    return [
        str(gunicorn),
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--timeout",
        "300",  # b24bot_gunicorn_timeout
        "--graceful-timeout",
        "30",  # b24bot_gunicorn_graceful_timeout
        "--error-logfile",
        "-",
        wsgi,
    ]


def role_default_workers() -> int:
    """b24bot_workers from roles/b24bot/defaults/main.yml (the default the role uses on the 2-core target)."""
    for line in (ROOT / "roles" / "b24bot" / "defaults" / "main.yml").read_text().splitlines():
        if line.startswith("b24bot_workers:"):
            return int(line.split(":", 1)[1].strip())
    return 2


class BenchApp(conftest.App):
    """conftest.App started with the role's gunicorn options instead of the test defaults."""

    def start(self) -> None:
        self.proc = subprocess.Popen(
            gunicorn_argv(self.workers, self.port),
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.data_dir / "gunicorn.err", "ab"),  # noqa: SIM115
        )
        conftest.wait_http(self.url + "healthz")

    def stop(self, sig: int = 15) -> None:
        if self.proc:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None


def start_stack(name: str, env: dict[str, str] | None = None, workers: int | None = None) -> tuple[Any, BenchApp]:
    """A simulated portal and the app (installed) in a fresh work dir."""
    wd = workdir(name)
    portal = conftest.PortalSim(conftest.free_port(), wd / "portal-state.json")
    portal.start()
    app = BenchApp(wd, portal, conftest.free_port())
    app.workers = workers or role_default_workers()
    app.env_extra = dict(env or {})  # log level INFO, as the role sets it
    app.start()
    resp = app.install()
    if resp.status_code != 200:
        raise RuntimeError(f"install failed: {resp.status_code} {resp.text}")
    return portal, app


def stop_stack(portal: Any, app: BenchApp) -> None:
    try:
        app.stop()
    finally:
        portal.stop()
