"""The web viewer on 1,000,000 messages in 50,000 dialogs (bench/gen_db.py with the search index and the
per-session figures filled as ingest keeps them): p50/p99 per page, logged in, one client, five rounds.

Goals: dialogs list and transcript p99 < 50 ms, search p99 < 100 ms, reports over 30 days p99 < 300 ms.
"""

from __future__ import annotations

import random
import re
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import page_timing
import requests
from common import BenchApp, conftest, write_result

GOALS_MS = {"list": 50, "transcript": 50, "search": 100, "reports": 300}


def pages(info: dict[str, Any], rnd: random.Random) -> dict[str, tuple[str, Any]]:
    """name -> (goal group, path maker)."""
    lo, hi = info["chats"]
    big = info["big_chats"]
    end = date.fromisoformat(info["span"][1][:10])

    def q(path: str, **args: Any) -> str:
        return f"/ui/{path}?{urlencode(args, quote_via=quote)}" if args else f"/ui/{path}"

    def days(n: int) -> dict[str, str]:
        return {"from": (end - timedelta(days=n - 1)).isoformat(), "to": end.isoformat()}

    return {
        "healthz (baseline)": ("", lambda: "/healthz"),
        "dialogs first page": ("list", lambda: q("dialogs")),
        "dialogs at random cursor": ("list", lambda: q("dialogs", cursor=rnd.randint(lo + 200, hi))),
        "dialogs line=3": ("list", lambda: q("dialogs", line=3, cursor=rnd.randint(lo + 2000, hi))),
        "dialogs no operator reply yet": ("list", lambda: q("dialogs", unanswered=1)),
        "dialogs open": ("list", lambda: q("dialogs", status="open")),
        "dialogs operator=7, last 7 days": ("list", lambda: q("dialogs", operator=7, **days(7))),
        "transcript (random dialog)": ("transcript", lambda: q(f"dialogs/{rnd.randint(lo, hi)}")),
        "transcript (long dialog)": ("transcript", lambda: q(f"dialogs/{rnd.choice(big)[0]}")),
        "transcript at a message (search hit)": ("transcript", lambda: _at(rnd, big, q)),
        "search заказ (common word)": ("search", lambda: q("search", q="ЗАКАЗ")),
        "search two words": ("search", lambda: q("search", q="return item")),
        "search word + line=2 + 7 days": ("search", lambda: q("search", q="courier", line=2, **days(7))),
        "search no match": ("search", lambda: q("search", q="несуществующее")),
        "reports 30 days": ("reports", lambda: q("reports", **days(30))),
        "reports 7 days": ("reports", lambda: q("reports", **days(7))),
    }


def _at(rnd: random.Random, big: list[Any], q: Any) -> str:
    chat, first, last = rnd.choice(big)
    return q(f"dialogs/{chat}", at=rnd.randint(first, last))


def login(app: BenchApp) -> str:
    s = requests.Session()
    page = s.get(app.url + "ui/login", timeout=10).text
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    data = {"user": conftest.VIEWER_USER, "password": conftest.VIEWER_PASSWORD, "csrf": token}
    s.post(app.url + "ui/login", data=data, allow_redirects=False, timeout=10).raise_for_status()
    return f"b24bot_viewer={s.cookies['b24bot_viewer']}"


def run(quick: bool = False) -> dict[str, Any]:
    rounds = 2 if quick else 5
    per = 30 if quick else 200
    n_messages, n_dialogs = (200_000, 10_000) if quick else (1_000_000, 50_000)
    env = conftest.viewer_env() | {"B24BOT_TIMEZONE": "UTC"}
    info, portal, app = page_timing.start("viewer", n_messages, n_dialogs, viewer=True, env=env)
    grouped = pages(info, random.Random(5))
    kinds = {name: path for name, (_, path) in grouped.items()}
    try:
        cookie = {"Cookie": login(app)}
        page_timing.warm_up(app, kinds, cookie, 5, must_answer_200=True)  # and every page must answer 200
        raw, _ = page_timing.measure(app, "viewer", kinds, cookie, rounds, per)
    finally:
        page_timing.stop(portal, app)
    table = {}
    for name, runs in raw.items():
        group = grouped[name][0]
        m = page_timing.medians(runs)
        table[name] = {
            "group": group,
            "p50_ms": m["p50_ms"],
            "p99_ms": m["p99_ms"],
            "goal_p99_ms": GOALS_MS.get(group),
            "errors": m["errors"],
        }
    over = {k: v["p99_ms"] for k, v in table.items() if v["goal_p99_ms"] and v["p99_ms"] >= v["goal_p99_ms"]}
    result = {
        "method": __doc__,
        "quick": quick,
        "database": {k: v for k, v in info.items() if k not in ("big_chats", "path")},
        "requests_per_kind_per_round": per,
        "rounds": rounds,
        "pages": table,
        "goals": {"met": not over, "over_goal": over, "zero_errors": all(v["errors"] == 0 for v in table.values())},
    }
    write_result("viewer", result)
    return result


if __name__ == "__main__":
    import sys

    run(quick="--quick" in sys.argv)
