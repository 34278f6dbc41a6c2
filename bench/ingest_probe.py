"""Where an ingested event's time goes: the app in-process (Flask test client, no HTTP, no gunicorn), 1,000
ONIMBOTMESSAGEADD events, every SQLite statement timed. Prints JSON; bench/ingest.py stores it with figure 1.

Pass 1 runs the app as shipped (COMMIT time per event = the fsync of the WAL under synchronous=FULL, plus the
occasional auto-checkpoint). Pass 2 disables the auto-checkpoint only to measure how many bytes each event adds
to the WAL (the volume every commit must fsync while holding the database's write lock).
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import sys
import time
from collections import defaultdict
from typing import Any

from common import percentile, start_stack

EVENTS = 1000


def one_pass(no_checkpoint: bool) -> dict[str, Any]:
    portal, app = start_stack("probe")
    env = app.env
    app.stop()  # only its data dir, install (auth.json) and portal are used; the app runs in this process
    os.environ.update(env)
    from ingest import Bodies

    from b24bot.store import db as dbmod
    from b24bot.web import create_app

    per_sql: dict[str, float] = defaultdict(float)
    commits: list[float] = []

    class Timed(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
            t0 = time.perf_counter()
            try:
                return super().execute(sql, *args)
            finally:
                dt = time.perf_counter() - t0
                per_sql[" ".join(sql.split()[:3])] += dt
                if sql == "COMMIT":
                    commits.append(dt)

    real_connect = sqlite3.connect

    def connect(*a: Any, **k: Any) -> sqlite3.Connection:
        k["factory"] = Timed
        conn = real_connect(*a, **k)
        if no_checkpoint:
            conn.execute("PRAGMA wal_autocheckpoint=0")
        return conn

    dbmod.sqlite3.connect = connect  # type: ignore[attr-defined]
    try:
        client = create_app(start_worker=False).test_client()
        bodies = [raw.split(b"\r\n\r\n", 1)[1] for _, raw in Bodies(app, "probe").stream(EVENTS + 100)]
        ctype = "application/x-www-form-urlencoded"
        for body in bodies[:100]:
            client.post("/", data=body, content_type=ctype)
        per_sql.clear()
        commits.clear()
        wal = app.data_dir / "dialogs.db-wal"
        w0 = wal.stat().st_size
        t0 = time.perf_counter()
        for body in bodies[100:]:
            assert client.post("/", data=body, content_type=ctype).status_code == 200
        wall = time.perf_counter() - t0
        w1 = wal.stat().st_size
    finally:
        dbmod.sqlite3.connect = real_connect  # type: ignore[attr-defined]
        portal.stop()
    ms = [c * 1000 for c in commits]
    sql_total = sum(per_sql.values())
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
            k: round(v / EVENTS * 1000, 3) for k, v in sorted(per_sql.items(), key=lambda x: -x[1])[:6]
        },
        "wal_bytes_per_event": round((w1 - w0) / EVENTS) if no_checkpoint else None,
    }


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "shipped"
    print(json.dumps(one_pass(no_checkpoint=mode == "wal")))


if __name__ == "__main__":
    main()
