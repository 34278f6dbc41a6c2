"""Where an ingested event's time goes: the app in-process (Flask test client, no HTTP, no gunicorn), 1,000
ONIMBOTMESSAGEADD events, every SQLite statement timed. Prints JSON; bench/ingest.py stores it with figure 1.

Pass 1 runs the app as shipped (COMMIT time per event = the fsync of the WAL under synchronous=FULL, plus the
occasional auto-checkpoint). Pass 2 disables the auto-checkpoint only to measure how many bytes each event adds
to the WAL (the volume every commit must fsync while holding the database's write lock).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from common import percentile, start_stack

EVENTS = 1000


class SqlTimer:
    """While installed, every connection the app's store opens times each statement (and may skip checkpoints)."""

    def __init__(self, no_checkpoint: bool) -> None:
        self.no_checkpoint = no_checkpoint
        self.per_sql: dict[str, float] = defaultdict(float)
        self.commits: list[float] = []

    def clear(self) -> None:
        self.per_sql.clear()
        self.commits.clear()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        from b24bot.store import db as dbmod

        timer, real_connect = self, sqlite3.connect

        class Timed(sqlite3.Connection):
            def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
                t0 = time.perf_counter()
                try:
                    return super().execute(sql, *args)
                finally:
                    dt = time.perf_counter() - t0
                    timer.per_sql[" ".join(sql.split()[:3])] += dt
                    if sql == "COMMIT":
                        timer.commits.append(dt)

        def connect(*a: Any, **k: Any) -> sqlite3.Connection:
            k["factory"] = Timed
            conn = real_connect(*a, **k)
            if self.no_checkpoint:
                conn.execute("PRAGMA wal_autocheckpoint=0")
            return conn

        dbmod.sqlite3.connect = connect  # type: ignore[attr-defined]
        try:
            yield
        finally:
            dbmod.sqlite3.connect = real_connect  # type: ignore[attr-defined]

    def summary(self, wall: float, wal_bytes: int) -> dict[str, Any]:
        ms = [c * 1000 for c in self.commits]
        sql_total = sum(self.per_sql.values())
        return {
            "ms_per_event": round(wall / EVENTS * 1000, 3),
            "sql_ms_per_event": round(sql_total / EVENTS * 1000, 3),
            "commit_ms": {
                "mean": round(statistics.fmean(ms), 3),
                "p50": round(percentile(ms, 50) or 0, 3),
                "p99": round(percentile(ms, 99) or 0, 3),
                "max": round(max(ms), 3),
            },
            "top_statements_ms_per_event": {
                k: round(v / EVENTS * 1000, 3) for k, v in sorted(self.per_sql.items(), key=lambda x: -x[1])[:6]
            },
            "wal_bytes_per_event": round(wal_bytes / EVENTS) if self.no_checkpoint else None,
        }


def one_pass(no_checkpoint: bool) -> dict[str, Any]:
    portal, app = start_stack("probe")
    env = app.env
    app.stop()  # only its data dir, install (auth.json) and portal are used; the app runs in this process
    os.environ.update(env)
    from ingest import Bodies

    from b24bot.web import create_app

    timer = SqlTimer(no_checkpoint)
    try:
        with timer.installed():
            client = create_app(start_worker=False).test_client()
            bodies = [raw.split(b"\r\n\r\n", 1)[1] for _, raw in Bodies(app, "probe").stream(EVENTS + 100)]
            ctype = "application/x-www-form-urlencoded"
            for body in bodies[:100]:
                client.post("/", data=body, content_type=ctype)
            timer.clear()
            wal = app.data_dir / "dialogs.db-wal"
            w0 = wal.stat().st_size
            t0 = time.perf_counter()
            for body in bodies[100:]:
                assert client.post("/", data=body, content_type=ctype).status_code == 200
            wall = time.perf_counter() - t0
            w1 = wal.stat().st_size
    finally:
        portal.stop()
    return timer.summary(wall, w1 - w0)


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "shipped"
    print(json.dumps(one_pass(no_checkpoint=mode == "wal")))


if __name__ == "__main__":
    main()
