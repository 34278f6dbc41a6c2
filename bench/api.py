"""Figure 4: the local API on 1,000,000 messages in 50,000 dialogs (bench/gen_db.py), p50/p99 per page.

The app runs under gunicorn with the role's options and workers, on the generated database (WAL). One client
(keep-alive requested; the sync worker closes) walks each page kind in turn; five rounds, each round also
times GET /healthz (one tiny query) as the in-run baseline. Figures are medians over rounds.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

import page_timing
from common import conftest, write_result

TOKEN = conftest.API_TOKEN


def pages(info: dict[str, Any], rnd: random.Random) -> dict[str, Any]:
    lo, hi = info["chats"]
    big = info["big_chats"]
    end = info["span"][1][:10]
    day_before = (date.fromisoformat(end) - timedelta(days=1)).isoformat()

    def later_page() -> str:
        chat, first, last = rnd.choice(big)
        return f"/api/dialogs/{chat}/messages?cursor={rnd.randint(first, first + (last - first) // 2)}"

    return {
        "healthz (baseline)": lambda: "/healthz",
        "dialogs first page": lambda: "/api/dialogs",
        "dialogs page at random cursor": lambda: f"/api/dialogs?cursor={rnd.randint(lo + 200, hi)}",
        "dialogs limit=500 at random cursor": lambda: f"/api/dialogs?limit=500&cursor={rnd.randint(lo + 600, hi)}",
        "dialogs line_id=3": lambda: f"/api/dialogs?line_id=3&cursor={rnd.randint(lo + 2000, hi)}",
        "dialogs date=<day>": lambda: f"/api/dialogs?date=2026-10-{rnd.randint(1, 28):02d}&tz_offset=3",
        "dialogs since=<last 24 h>": lambda: f"/api/dialogs?since={day_before}T00:00:00Z",
        "dialogs since=<now> (poll, nothing new)": lambda: f"/api/dialogs?since={end}T00:00:00Z",
        "dialogs since=<30 days>": lambda: "/api/dialogs?since=2026-10-27T00:00:00Z",
        "dialogs working hours 09-18": lambda: (
            f"/api/dialogs?start_time=09:00&end_time=18:00&tz_offset=3&cursor={rnd.randint(lo + 2000, hi)}"
        ),
        "messages first page (random dialog)": lambda: f"/api/dialogs/{rnd.randint(lo, hi)}/messages",
        "messages first page (long dialog)": lambda: f"/api/dialogs/{rnd.choice(big)[0]}/messages",
        "messages later page (long dialog)": later_page,
    }


def run(quick: bool = False) -> dict[str, Any]:
    rounds = 2 if quick else 5
    per = 80 if quick else 300
    n_messages, n_dialogs = (200_000, 10_000) if quick else (1_000_000, 50_000)
    info, portal, app = page_timing.start("api", n_messages, n_dialogs)
    kinds = pages(info, random.Random(3))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        page_timing.warm_up(app, kinds, auth, 20, must_answer_200=False)
        raw, sizes = page_timing.measure(app, "api", kinds, auth, rounds, per, keep_body=True)
    finally:
        page_timing.stop(portal, app)
    table = {name: {**page_timing.medians(runs), "max_body_bytes": sizes.get(name)} for name, runs in raw.items()}
    base = table["healthz (baseline)"]["p50_ms"]
    for row in table.values():
        row["p50_vs_healthz"] = round(row["p50_ms"] / base, 1) if base else None
    pages_only = {k: v for k, v in table.items() if not k.startswith("healthz")}
    result = {
        "method": __doc__,
        "database": {k: v for k, v in info.items() if k not in ("big_chats", "path")},
        "requests_per_kind_per_round": per,
        "rounds": rounds,
        "pages": table,
        "rounds_raw": raw,
        "goals": {
            "p99_lt_20ms_every_page": all(v["p99_ms"] < 20 for v in pages_only.values()),
            "zero_errors": all(v["errors"] == 0 for v in table.values()),
            "over_goal": {k: v["p99_ms"] for k, v in pages_only.items() if v["p99_ms"] >= 20},
        },
    }
    write_result("api", result)
    return result


if __name__ == "__main__":
    import sys

    run(quick="--quick" in sys.argv)
