"""`b24bot sync` running while the access token expires and a burst of joins arrives across gunicorn workers:
every hand-off happens promptly, with one refresh, whatever the sync work in the same processes is doing."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from b24bot.store import Database, writes
from b24bot.store import queue as q
from conftest import App, PortalSim, wait_for

CLOSED = 60  # sessions that closed a moment ago: each worker has session syncs to run


def _handed_off(portal: PortalSim) -> set[int]:
    return {int(h["params"]["CHAT_ID"]) for h in portal.handoffs() if h.get("answer") == "ok"}


def test_hand_offs_after_a_token_expiry_while_sync_runs(app: App, portal: PortalSim) -> None:
    app.env_extra.update(B24BOT_SYNC_AFTER_CLOSE_S="1", B24BOT_REST_TIMEOUT="10")  # the shipped timeout
    app.restart()
    assert app.install().status_code == 200
    refreshes_at_install = portal.get("state")["refreshes"]  # the install proves itself with one exchange
    for chat in range(1000, 1000 + CLOSED):
        app.message(chat, chat * 10, "first", session_id=chat)
        app.message(chat, chat * 10 + 1, "second", session_id=chat + 5000)  # the first session is over
    # The portal is slow to answer history reads (batches): a sync waits up to the 10 s timeout for each.
    portal.post("faults", {"method": "batch", "kind": "hang", "delay": 12})
    stop = threading.Event()

    def sync_loop() -> None:
        while not stop.is_set():
            subprocess.run([sys.executable, "-m", "b24bot", "sync"], env=app.env, capture_output=True, timeout=120)

    syncer = threading.Thread(target=sync_loop)
    syncer.start()
    try:
        time.sleep(2.5)  # the session syncs are due and running in the workers
        portal.post("expire")
        started = time.time()
        chats = range(900, 912)
        with ThreadPoolExecutor(6) as pool:
            assert list(pool.map(lambda c: app.join(c).status_code, chats)) == [200] * len(chats)
        wait_for(lambda: _handed_off(portal) >= set(chats), timeout=30, what="all hand-offs")
        took = time.time() - started
    finally:
        stop.set()
        portal.post("clear_faults")
        syncer.join(60)
    state = portal.get("state")
    assert state["failed_refreshes"] == 0 and state["refreshes"] - refreshes_at_install == 1
    assert took < 4, f"hand-offs waited {took:.1f}s behind sync work"


def test_a_hand_off_under_another_workers_lease_is_not_due(tmp_path: Path) -> None:
    """An idle worker waits for the lease to end instead of spinning on write transactions meanwhile."""
    db = Database(tmp_path / "d.db")
    now = time.time()
    with db.write() as conn:
        writes.enqueue_handoff(conn, 5, "operator", now)
        assert q.next_due(conn) == now
        claimed = q.claim_due(conn, now, 50.0)
    assert len(claimed) == 1
    assert q.next_due(db.read()) == now + 50.0
