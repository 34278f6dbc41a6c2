"""The v2 event pump delivers exactly once: kill -9 mid-batch loses and duplicates nothing, two workers never
consume the same events, no offset is acknowledged before its events are stored, portal faults only delay."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import v2kit
from v2kit import cli, pump_pid, send, stored_v2, v2_env, v2_state, wait_drained

from b24bot import config
from b24bot.jobs import pump as pump_mod
from b24bot.jobs.context import Context
from conftest import App, PortalSim, free_port, wait_for

v2app = v2kit.v2app  # the fixture


def dialog_events(chats: int, per_chat: int, first_chat: int = 100) -> list[dict[str, object]]:
    steps: list[dict[str, object]] = []
    for c in range(first_chat, first_chat + chats):
        steps.append({"kind": "join", "chat_id": c, "session_id": c})
        for i in range(per_chat):
            mid = c * 1000 + i
            steps.append({"kind": "add", "chat_id": c, "message_id": mid, "text": f"m{mid}", "session_id": c})
    return steps


def assert_exactly_once(app: App, portal: PortalSim, chats: int, per_chat: int, kills: int = 0) -> None:
    wait_drained(app, portal, timeout=120)
    assert app.count("messages") == chats * per_chat
    assert stored_v2(app) == chats * (per_chat + 1)
    wait_for(lambda: len(transferred(portal)) >= chats, timeout=60, what="hand-offs")
    assert Counter(transferred(portal)) == {100 + c: 1 for c in range(chats)}
    # A kill -9 between the portal's answer and the app's commit repeats that one call: the portal answers
    # WRONG_CHAT (already with an operator), which the app counts as done, so each dialog still moves once.
    repeats = [c for c in portal.handoffs() if c.get("answer") != "ok"]
    assert all(c.get("answer") == "WRONG_CHAT" for c in repeats)
    assert len(repeats) <= kills


def transferred(portal: PortalSim) -> list[int]:
    """The chats whose hand-off the portal carried out (a repeat is answered WRONG_CHAT and is not counted)."""
    return [int(c["params"]["CHAT_ID"]) for c in portal.handoffs() if c.get("answer") == "ok"]


def test_kill_9_of_the_pumping_worker_mid_batch_loses_and_duplicates_nothing(v2app: App, portal: PortalSim) -> None:
    chats, per_chat = 20, 150
    send(portal, *dialog_events(chats, per_chat))
    total = chats * (per_chat + 1)
    for threshold in (total // 5, total // 2):
        wait_for(lambda t=threshold: stored_v2(v2app) >= t, timeout=60, what=f"{threshold} events stored")
        pid = pump_pid(v2app)
        os.kill(pid, signal.SIGKILL)  # the worker holding pump.lock, whatever it is doing
        assert stored_v2(v2app) < total  # killed while the backlog was being pumped
        wait_for(lambda p=pid: pump_pid(v2app) not in (0, p), timeout=30, what="another worker takes the lock")
    assert_exactly_once(v2app, portal, chats, per_chat, kills=2)


def test_two_workers_never_consume_the_same_events(tmp_path: Path, portal: PortalSim) -> None:
    app = App(tmp_path, portal, free_port())
    app.workers = 3
    app.env_extra = v2_env(portal, B24BOT_PUMP_IDLE_S="0.05", B24BOT_PUMP_LIMIT="50")
    assert cli(app, "register").returncode == 0
    app.start()
    try:
        for first in (100, 110, 120, 130):
            send(portal, *dialog_events(10, 40, first_chat=first))
            time.sleep(0.3)
        refused = cli(app, "pump", "--once")  # a second consumer beside the service is refused
        assert refused.returncode == 1 and "another event pump" in refused.stderr
        assert_exactly_once(app, portal, 40, 40)
    finally:
        app.stop()
    delivered = [i for d in v2_state(portal)["deliveries"] for i in d["ids"]]
    assert len(delivered) == len(set(delivered)) == 40 * 41  # each event handed out once, to one consumer


def test_no_offset_is_acknowledged_before_its_events_are_stored(v2app: App, portal: PortalSim) -> None:
    portal.post("v2/audit", {"db": str(v2app.data_dir / "dialogs.db")})
    for first in (100, 105, 110):
        send(portal, *dialog_events(5, 60, first_chat=first))
        time.sleep(0.2)
    assert_exactly_once(v2app, portal, 15, 60)
    st = v2_state(portal)
    assert st["audits"] >= 10 and st["violations"] == []


def test_a_second_consumer_that_lost_the_race_stores_nothing(tmp_path: Path, portal: PortalSim) -> None:
    """Even without the lock, the offset check makes a slower consumer drop its (already stored) batch."""
    app = App(tmp_path, portal, free_port())
    app.env_extra = v2_env(portal)
    assert cli(app, "register").returncode == 0
    send(portal, *dialog_events(2, 30))
    settings = config.load(app.env)
    slow, fast = pump_mod.Pump(Context.build(settings)), pump_mod.Pump(Context.build(settings))
    portal.post("faults", {"method": "imbot.v2.Event.get", "kind": "hang", "count": 1, "delay": 1.5})
    outcome: list[BaseException | tuple[int, bool]] = []

    def run_slow() -> None:
        try:
            outcome.append(slow.run_once())
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=run_slow)
    t.start()
    wait_for(lambda: portal.calls("imbot.v2.Event.get"), what="the slow consumer's fetch")
    assert fast.run_once() == (62, False)
    t.join(10)
    assert isinstance(outcome[0], pump_mod.OffsetMoved)
    assert pump_mod.stored_offset(fast.ctx) == v2_state(portal)["next_event"]
    assert app.count("messages") == 60 and stored_v2(app) == 62


@pytest.mark.parametrize("kind", ["5xx", "query_limit", "down"])
def test_portal_faults_on_event_get_only_delay(v2app: App, portal: PortalSim, kind: str) -> None:
    portal.post("faults", {"method": "imbot.v2.Event.get", "kind": kind, "every": 2, "count": 6})
    send(portal, *dialog_events(3, 100))
    assert_exactly_once(v2app, portal, 3, 100)
    assert any(c.get("answer") == f"fault:{kind}" for c in portal.calls("imbot.v2.Event.get"))


def test_a_next_offset_past_the_returned_events_skips_nothing(tmp_path: Path, portal: PortalSim) -> None:
    """The docs leave nextOffset's relation to the returned events implicit: the app acknowledges only what it saw."""
    app = App(tmp_path, portal, free_port())
    app.env_extra = v2_env(portal, B24BOT_PUMP_LIMIT="10")
    assert cli(app, "register").returncode == 0
    portal.post("v2/skew", {"next_offset_plus": 5})
    send(portal, *dialog_events(1, 59))
    app.start()
    try:
        assert_exactly_once(app, portal, 1, 59)
    finally:
        app.stop()
