"""Figure 3: token storm. The access token expires while 4 workers serve 32 concurrent clients.

Each round sends 32 joins at once (32 clients, one join each) so the 4 workers' hand-off threads all call the
portal together. Rounds alternate: a normal round (valid token) and a storm round (POST /_sim/expire first, so
every in-flight call meets `expired_token`). Per storm round: refreshes at the portal must rise by exactly one,
no call may fail with anything but the expired token itself, every client gets 200. The extra latency is the
storm round's hand-off latency (join sent -> operator call received) minus the normal round's, medians over
rounds. B24BOT_REST_RATE=100 / BURST=200 so that the app's leaky bucket (which at 2/s would space 64 calls
over 30 s) does not hide the refresh cost.
"""

from __future__ import annotations

import time
from typing import Any

from common import BenchApp, conftest, log, median, start_stack, stop_stack, summary_ms, write_result
from handoff import METHOD, join_requests, wait_handoffs
from loadgen import closed_loop

CLIENTS = 32
WORKERS = 4


def one_round(portal: conftest.PortalSim, app: BenchApp, chats: range, storm: bool) -> dict[str, Any]:
    """One round of joins (after expiring the token when `storm`): hand-off latency, refreshes, call answers."""
    before = portal.get("state")
    n_calls = len(portal.get("calls"))
    if storm:
        portal.post("expire")
    stats = closed_loop("127.0.0.1", app.port, iter(join_requests(app, chats)), CLIENTS)
    sent = {s.key: s.start for s in stats.samples if s.status == 200}
    got = wait_handoffs(portal, set(chats), 30)
    time.sleep(0.3)  # let any late duplicate show up
    after = portal.get("state")
    calls = [c for c in portal.get("calls")[n_calls:] if c["method"] == METHOD]
    answers: dict[str, int] = {}
    for c in calls:
        answers[c.get("answer", "?")] = answers.get(c.get("answer", "?"), 0) + 1
    res = summary_ms([got[c] - sent[c] for c in got if c in sent])
    res.update(
        refreshes=after["refreshes"] - before["refreshes"],
        failed_refreshes=after["failed_refreshes"] - before["failed_refreshes"],
        answers=answers,
        client_errors=stats.errors(),
        handed_off=len(got),
        webhook=summary_ms([s.latency for s in stats.ok()]),
    )
    return res


def _goals(per_round: dict[str, list[dict[str, Any]]]) -> dict[str, bool]:
    storm, every = per_round["storm"], per_round["storm"] + per_round["normal"]
    return {
        "exactly_one_refresh_per_storm": all(x["refreshes"] == 1 for x in storm)
        and all(x["refreshes"] == 0 for x in per_round["normal"]),
        "no_failed_calls": all(
            set(x["answers"]) <= {"ok", "expired_token"} and x["failed_refreshes"] == 0 and x["client_errors"] == 0
            for x in every
        ),
        "all_handed_off": all(x["handed_off"] == CLIENTS for x in every),
    }


def run(quick: bool = False) -> dict[str, Any]:
    rounds = 3 if quick else 7
    env = {"B24BOT_REST_RATE": "100", "B24BOT_REST_BURST": "200"}
    portal, app = start_stack("token", env=env, workers=WORKERS)
    chat = 600_000
    per_round: dict[str, list[dict[str, Any]]] = {"normal": [], "storm": []}
    try:
        # Warm-up round (first connections, SQLite pages).
        closed_loop("127.0.0.1", app.port, iter(join_requests(app, range(chat, chat + CLIENTS))), CLIENTS)
        wait_handoffs(portal, set(range(chat, chat + CLIENTS)), 30)
        chat += CLIENTS
        for r in range(rounds):
            for kind in ("normal", "storm"):
                res = one_round(portal, app, range(chat, chat + CLIENTS), storm=kind == "storm")
                chat += CLIENTS
                per_round[kind].append(res)
                log(
                    f"token {kind} round {r + 1}: p50 {res['p50_ms']} ms p99 {res['p99_ms']} ms "
                    f"refreshes +{res['refreshes']} answers {res['answers']}"
                )
    finally:
        stop_stack(portal, app)

    def med(kind: str, key: str) -> float:
        return round(median([x[key] for x in per_round[kind]]), 2)

    result = {
        "method": __doc__,
        "workers": WORKERS,
        "clients": CLIENTS,
        "rounds": rounds,
        "env": env,
        "normal": {"p50_ms": med("normal", "p50_ms"), "p99_ms": med("normal", "p99_ms")},
        "storm": {"p50_ms": med("storm", "p50_ms"), "p99_ms": med("storm", "p99_ms")},
        "extra_latency_ms": {
            "p50": round(med("storm", "p50_ms") - med("normal", "p50_ms"), 2),
            "p99": round(med("storm", "p99_ms") - med("normal", "p99_ms"), 2),
        },
        "refreshes_per_storm": [x["refreshes"] for x in per_round["storm"]],
        "per_round": per_round,
        "goals": _goals(per_round),
    }
    write_result("token_storm", result)
    return result


if __name__ == "__main__":
    import sys

    run(quick="--quick" in sys.argv)
