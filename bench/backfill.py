"""Figure 6: backfill throughput. `b24bot backfill --since` over a simulated portal holding N past sessions
(3 messages each, each with its IMOPENLINES_SESSION CRM activity), the portal enforcing Bitrix24's leaky bucket
(2 requests/s, burst 50) and the app at its shipped limits (B24BOT_REST_RATE=2, BURST=40, of which backfill
leaves 10 to hand-offs).

The model: a page of 50 sessions costs 1 `crm.activity.list` call plus 2 `batch` calls of 25 histories, so at
r requests/s the steady rate is r x 50 / 3 sessions per second (2,000 per minute at 2/s). For N sessions the
first (burst - reserve) calls go at once, so the run is expected to take (calls - 30) / r seconds.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from typing import Any

from common import log, start_stack, stop_stack, write_result

RATE, BURST, RESERVE = 2.0, 40, 10  # the shipped B24BOT_REST_RATE / _BURST, and backfill's reserve
PAGE, BATCH = 50, 25


def model(sessions: int, rate: float = RATE) -> dict[str, float]:
    pages = math.ceil((sessions + 1) / PAGE)  # the last page is the short one that ends the walk
    calls = pages + math.ceil(sessions / BATCH)
    seconds = max(0.0, (calls - (BURST - RESERVE)) / rate)
    return {
        "calls": calls,
        "steady_sessions_per_min": round(rate * PAGE / (1 + PAGE / BATCH) * 60, 1),
        "expected_s": round(seconds, 1),
        "expected_sessions_per_min": round(sessions / seconds * 60, 1) if seconds else float("inf"),
    }


def run(quick: bool = False) -> dict[str, Any]:
    sessions = 500 if quick else 5000
    portal, app = start_stack("backfill")
    try:
        portal.post("scope", {"scope": "imbot,imopenlines,user,crm"})
        portal.post("sessions", {"count": sessions})
        portal.post("rate_limit", {"rate": 2, "burst": 50})
        calls_before = len(portal.get("calls"))
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "b24bot", "backfill", "--since", "2025-01-01T00:00:00+00:00"],
            env=app.env,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        wall = time.perf_counter() - t0
        report = json.loads(done.stdout) if done.returncode == 0 else {"stderr": done.stderr[-2000:]}
        calls = len(portal.get("calls")) - calls_before
        state = portal.get("state")
        stored = app.count("sessions")
    finally:
        stop_stack(portal, app)
    m = model(sessions)
    spm = round(stored / wall * 60, 1)
    result = {
        "method": __doc__,
        "sessions": sessions,
        "stored": stored,
        "rc": done.returncode,
        "wall_s": round(wall, 1),
        "calls": calls,
        "calls_per_s": round(calls / wall, 2),
        "limit_hits": state["limit_hits"],
        "sessions_per_min": spm,
        "model": m,
        "ratio_to_model": round(spm / m["expected_sessions_per_min"], 2),
        "report": report,
        "goals": {
            "all_stored": stored == sessions and done.returncode == 0,
            "under_portal_limit": state["limit_hits"] == 0,
        },
    }
    log(
        f"backfill: {stored}/{sessions} sessions in {wall:.1f} s = {spm} sessions/min "
        f"(model {m['expected_sessions_per_min']}, steady {m['steady_sessions_per_min']}), "
        f"{calls} calls, {state['limit_hits']} limit hits"
    )
    write_result("backfill", result)
    return result


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
