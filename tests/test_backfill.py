"""Backfill: past Open Lines sessions (listed through their CRM activities) come in once, resumably, within
the portal's rate limit."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from test_archive import cli

from conftest import App, PortalSim, wait_for

SINCE = "2026-01-01T00:00:00+00:00"
COUNT = 1000


def _history_fetches(portal: PortalSim) -> Counter[int]:
    seen: Counter[int] = Counter()
    for c in portal.calls("batch"):
        if c.get("answer") != "ok":
            continue
        for sub in c["params"]["cmd"].values():
            if sub.startswith("imopenlines.session.history.get?SESSION_ID="):
                seen[int(sub.rsplit("=", 1)[1])] += 1
    return seen


def _sessions(app: App) -> int:
    try:
        return app.count("sessions")
    except Exception:
        return 0


def test_backfill_of_1000_sessions_survives_ctrl_c_and_kill_and_stays_under_the_portals_rate(
    portal: PortalSim, app: App
) -> None:
    portal.post("scope", {"scope": "imbot,imopenlines,user,crm"})
    assert app.install().status_code == 200
    portal.post("sessions", {"count": COUNT, "first_session": 1000, "first_chat": 50000, "messages": 3})
    portal.post("rate_limit", {"rate": 2, "burst": 50})  # the portal's own leaky bucket, enforced

    def start() -> subprocess.Popen[str]:
        cmd = [sys.executable, "-m", "b24bot", "backfill", "--since", SINCE]
        return subprocess.Popen(cmd, env=app.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    # Ctrl-C a quarter of the way in: a clean stop that says how to go on.
    proc = start()
    wait_for(lambda: _sessions(app) >= COUNT * 0.25, timeout=60, what="a quarter of the sessions")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "run it again" in err
    # kill -9 half-way through the next run.
    proc = start()
    wait_for(lambda: _sessions(app) >= COUNT * 0.5, timeout=60, what="half of the sessions")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    half = _sessions(app)
    assert 0 < half < COUNT, "killed half-way"

    done = cli(app, "backfill", "--since", SINCE)

    report = json.loads(done.stdout)
    assert report["done"] and report["stopped"] is None and report["errors"] == []
    assert report["total_sessions"] == COUNT and report["sessions"] <= COUNT - half + 25
    assert "backfill: " in done.stderr and "sessions since" in done.stderr  # progress is shown
    assert app.count("sessions") == COUNT and app.count("messages") == 3 * COUNT
    with app.db() as db:
        assert db.execute("SELECT count(*) FROM sessions WHERE synced_at IS NULL").fetchone()[0] == 0
        assert db.execute("SELECT count(DISTINCT chat_id) FROM messages").fetchone()[0] == COUNT // 2
    fetched = _history_fetches(portal)
    assert set(fetched) == set(range(1000, 1000 + COUNT))
    # Each session was read once; only the batches in flight at the two stops may have been read twice.
    assert sum(n - 1 for n in fetched.values()) <= 50

    # A rerun brings nothing twice: one list call, no history.
    again = json.loads(cli(app, "backfill", "--since", SINCE).stdout)
    assert again["sessions"] == 0 and again["new_messages"] == 0 and _history_fetches(portal) == fetched

    state = portal.get("state")
    assert state["limit_hits"] == 0, "never over the portal's 2 calls/s (burst 50)"
    times = sorted(c["t"] for c in portal.calls() if c["method"] in ("batch", "crm.activity.list"))
    assert len(times) <= 50 + 2 * (times[-1] - times[0]) + 1


def test_backfill_without_the_crm_scope_says_what_is_missing(installed: App, portal: PortalSim) -> None:
    portal.post("sessions", {"count": 10})
    done = cli(installed, "backfill", "--since", SINCE, check=False)
    assert done.returncode == 1
    assert "crm" in done.stderr and "scope" in done.stderr
    assert installed.count("sessions") == 0


def test_hand_offs_are_not_queued_behind_a_backfill_at_the_full_rate(portal: PortalSim, app: App) -> None:
    portal.post("scope", {"scope": "imbot,imopenlines,user,crm"})
    assert app.install().status_code == 200
    portal.post("sessions", {"count": COUNT})
    portal.post("rate_limit", {"rate": 2, "burst": 50})
    proc = subprocess.Popen(
        [sys.executable, "-m", "b24bot", "backfill", "--since", SINCE],
        env=app.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _sessions(app) >= 550, timeout=60, what="the backfill to use its share of the burst")
        started = time.time()
        chats = range(900, 910)
        with ThreadPoolExecutor(5) as pool:
            assert list(pool.map(lambda c: app.join(c).status_code, chats)) == [200] * len(chats)
        wait_for(lambda: {int(h["params"]["CHAT_ID"]) for h in portal.handoffs()} >= set(chats), timeout=30)
        took = time.time() - started
        assert proc.poll() is None, "the backfill was still running"
    finally:
        proc.kill()
        proc.wait(10)
    assert took < 1.5, f"hand-offs waited {took:.1f}s behind the backfill"
    assert portal.get("state")["limit_hits"] == 0
