"""Chatbots 2.0 fetch mode: ingest throughput of the event pump and event -> hand-off latency, beside v1's figures.

- ingest: a backlog of N events (one join per chat, then messages) waits on the simulated portal; the app starts
  and the pump drains it. Rate = events / (first Event.get -> last event committed). Two paces: `max` (limit 1000,
  no pause while hasMore: what the code can do) and `docs` (limit 100, 2 s between busy batches, the pace the
  Bitrix24 docs' polling example keeps).
- hand-off latency: joins appear on the portal at Poisson arrivals; latency = the moment the bench queued the
  event on the portal -> the portal's own receive time of imopenlines.bot.session.operator for that chat. Its
  floor is the idle poll interval (B24BOT_PUMP_IDLE_S, default 5 s; the docs suggest 5-30 s), measured at the
  default and at 1 s. v1's webhook figure is `handoff.json` (no polling there).
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from typing import Any

import requests
from common import BenchApp, conftest, log, role_default_workers, summary_ms, workdir, write_result

METHOD = "imopenlines.bot.session.operator"


def start(name: str, env: dict[str, str]) -> tuple[conftest.PortalSim, BenchApp]:
    wd = workdir(f"v2-{name}")
    portal = conftest.PortalSim(conftest.free_port(), wd / "portal-state.json")
    portal.start()
    app = BenchApp(wd, portal, conftest.free_port())
    app.workers = role_default_workers()
    app.env_extra = {
        "B24BOT_BOT_API": "v2",
        "B24BOT_V2_BOT_CODE": "bench_v2",
        "B24BOT_LINES": "1",
        "B24BOT_WEBHOOK_URL": f"{portal.url}/rest/{conftest.WEBHOOK}/",
        "B24BOT_REST_RATE": "20",
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-m", "b24bot", "register"], env=app.env, capture_output=True, text=True, timeout=60
    )
    if done.returncode:
        raise RuntimeError(f"register failed: {done.stderr}")
    return portal, app


def send(portal: conftest.PortalSim, steps: list[dict[str, Any]]) -> None:
    for i in range(0, len(steps), 2000):
        requests.post(f"{portal.url}/_sim/v2/events", json=steps[i : i + 2000], timeout=60).raise_for_status()


def backlog(chats: int, per_chat: int) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for c in range(1, chats + 1):
        steps.append({"kind": "join", "chat_id": c, "session_id": c})
        steps += [
            {"kind": "add", "chat_id": c, "message_id": c * 10000 + i, "text": f"message {i}", "session_id": c}
            for i in range(per_chat)
        ]
    return steps


def ingest_run(name: str, env: dict[str, str], chats: int, per_chat: int) -> dict[str, Any]:
    portal, app = start(f"ingest-{name}", env)
    try:
        steps = backlog(chats, per_chat)
        send(portal, steps)
        app.start()
        # Until the last event is committed (the acknowledgement itself waits for the next poll).
        conftest.wait_for(lambda: app.count("events") >= len(steps), timeout=900, what="every event stored")
        done = time.time()
        wall = done - portal.calls("imbot.v2.Event.get")[0]["t"]
        stored = app.count("messages")
        res = {
            "events": len(steps),
            "joins": chats,
            "messages_stored": stored,
            "batches": sum(1 for d in portal.get("v2/state")["deliveries"] if d["ids"]),
            "wall_s": round(wall, 2),
            "events_per_s": round(len(steps) / wall, 1) if wall else None,
            "env": env,
        }
        log(f"v2 ingest {name}: {res['events']} events in {res['wall_s']} s = {res['events_per_s']} ev/s")
        return res
    finally:
        app.stop()
        portal.stop()


def latency_run(name: str, idle: str, n: int, rate: float) -> dict[str, Any]:
    portal, app = start(f"latency-{name}", {"B24BOT_PUMP_IDLE_S": idle})
    try:
        app.start()
        time.sleep(float(idle) + 1)  # the pump has polled at least once
        rng = random.Random(12)
        sent: dict[int, float] = {}
        t0 = time.time()
        at = 0.0
        for chat in range(1, n + 1):
            at += rng.expovariate(rate)
            time.sleep(max(0.0, t0 + at - time.time()))
            sent[chat] = time.time()
            send(portal, [{"kind": "join", "chat_id": chat, "session_id": chat}])
        got: dict[int, float] = {}
        deadline = time.time() + float(idle) * 3 + 30
        while len(got) < n and time.time() < deadline:
            for c in portal.calls(METHOD):
                chat = int(c["params"]["CHAT_ID"])
                if c.get("answer") == "ok" and chat in sent and chat not in got:
                    got[chat] = c["t"]
            time.sleep(0.5)
        res = summary_ms([got[c] - sent[c] for c in got])
        res.update(joins=n, handed_off=len(got), missing=n - len(got), idle_s=float(idle), arrival_rate_per_s=rate)
        log(f"v2 hand-off {name}: p50 {res['p50_ms']} ms p99 {res['p99_ms']} ms missing {res['missing']}")
        return res
    finally:
        app.stop()
        portal.stop()


def rows(res: dict[str, Any], ing: dict[str, Any] | None, ho: dict[str, Any] | None) -> list[tuple[str, ...]]:
    """The v2 lines of the README table, with v1's figure beside each (v1 = webhook POSTs, no polling)."""
    out: list[tuple[str, ...]] = []
    v1_ingest = f"v1 webhook at 32 concurrent: {ing['levels']['32']['app']['events_per_s']} ev/s" if ing else "–"
    for pace, r in res["ingest"].items():
        expected = r["events"] - r["joins"]  # one join per chat, the rest messages
        out.append(
            (
                f"7 v2 fetch ingest, {pace} pace" + (" (quick)" if res.get("quick") else ""),
                f"{r['events_per_s']} ev/s ({r['events']} events, {r['batches']} batches, {r['wall_s']} s)",
                v1_ingest,
                "every event stored once",
                "yes" if r["messages_stored"] == expected else "**no**",
            )
        )
    v1_ho = f"v1 webhook, idle: p50 {ho['idle']['p50_ms']} ms, p99 {ho['idle']['p99_ms']} ms" if ho else "–"
    for r in res["handoff"].values():
        out.append(
            (
                f"7 v2 event → hand-off, idle poll {r['idle_s']:g} s",
                f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, {r['missing']} missing",
                v1_ho,
                "p99 ≤ idle poll + 1 s, none missing",
                "yes" if r["missing"] == 0 and (r["p99_ms"] or 1e9) <= r["idle_s"] * 1000 + 1000 else "**no**",
            )
        )
    return out


def run(quick: bool = False) -> dict[str, Any]:
    chats, per_chat = (20, 99) if quick else (100, 199)
    n = 20 if quick else 200
    out = {
        "ingest": {
            "max": ingest_run("max", {"B24BOT_PUMP_LIMIT": "1000", "B24BOT_PUMP_BUSY_S": "0.001"}, chats, per_chat),
            "docs": ingest_run("docs", {"B24BOT_PUMP_LIMIT": "100"}, 5 if quick else 10, 99),
        },
        "handoff": {
            "idle_5s": latency_run("idle-5s", "5", n, 1.0),
            "idle_1s": latency_run("idle-1s", "1", n, 1.0),
        },
        "quick": quick,
    }
    write_result("v2", out)
    return out


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
