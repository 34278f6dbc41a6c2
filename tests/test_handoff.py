"""Hand-offs: at once, durable, retried with back-off until they succeed, never twice."""

from __future__ import annotations

import signal
import time

import pytest

from conftest import App, PortalSim, wait_for


@pytest.mark.parametrize(
    "transfer, method, params",
    [
        ("queue:4", "imopenlines.bot.session.transfer", {"CHAT_ID": 21, "QUEUE_ID": 4, "LEAVE": "N"}),
        ("user:12", "imopenlines.bot.session.transfer", {"CHAT_ID": 21, "USER_ID": 12, "LEAVE": "N"}),
    ],
)
def test_transfer_targets(app: App, portal: PortalSim, transfer: str, method: str, params: dict) -> None:
    app.env_extra = {"B24BOT_TRANSFER": transfer}
    app.restart()
    app.install()
    app.join(21)
    (call,) = wait_for(lambda: portal.handoffs(21), what="transfer call")
    assert (call["method"], call["params"]) == (method, params)


def test_wrong_chat_means_already_handed_off(installed: App, portal: PortalSim) -> None:
    portal.post("faults", {"method": "imopenlines.bot.session.operator", "kind": "wrong_chat", "count": 1})
    installed.join(22)
    wait_for(lambda: installed.api("dialogs/22").json()["transferred_at"], what="done")
    assert len(portal.handoffs(22)) == 1  # not retried: WRONG_CHAT is the portal saying "an operator has it"
    with installed.db() as db:
        assert db.execute("SELECT outcome FROM handoffs WHERE chat_id = 22").fetchone()[0] == "already"


@pytest.mark.parametrize("kind", ["5xx", "query_limit", "hang"])
def test_failed_handoffs_are_retried_until_they_succeed(installed: App, portal: PortalSim, kind: str) -> None:
    portal.post("faults", {"method": "imopenlines.bot.session.operator", "kind": kind, "count": 2, "delay": 3})
    started = time.time()
    assert installed.join(23).status_code == 200
    assert time.time() - started < 1.0  # the webhook never waits on the portal
    wait_for(lambda: installed.api("dialogs/23").json()["transferred_at"], timeout=40, what="retried hand-off")
    answers = [c.get("answer") for c in portal.handoffs(23)]
    # Exactly one transfer took effect. After a hang the portal may have acted on a call whose answer we never
    # saw: the retry then meets WRONG_CHAT, which is success.
    assert answers.count("ok") == 1 and len(answers) >= 2
    assert set(answers[answers.index("ok") + 1 :]) <= {"WRONG_CHAT"}


def test_portal_down_during_joins_then_back(installed: App, portal: PortalSim) -> None:
    portal.stop()  # connection refused: the portal is really gone
    for chat in range(300, 320):
        started = time.time()
        assert installed.join(chat).status_code == 200
        assert time.time() - started < 1.0
    time.sleep(1.5)
    pending = installed.http.get(installed.url + "healthz").json()["pending_handoffs"]
    assert pending == 20
    portal.start()  # same port, fresh process: it must see every chat exactly once
    wait_for(lambda: len(portal.handoffs()) >= 20, timeout=40, what="all hand-offs after the outage")
    time.sleep(1)
    chats = sorted(int(c["params"]["CHAT_ID"]) for c in portal.handoffs() if c.get("answer") == "ok")
    assert chats == list(range(300, 320))
    assert installed.http.get(installed.url + "healthz").json()["pending_handoffs"] == 0


def test_restart_with_pending_handoffs(installed: App, portal: PortalSim) -> None:
    portal.post("down", {"seconds": 30})
    for chat in (401, 402, 403):
        installed.join(chat)
    time.sleep(0.5)
    installed.stop(signal.SIGKILL)  # no goodbye: the queue must live in the database, not in memory
    for p in installed.data_dir.glob("*"):
        assert p.exists()
    portal.post("down", {"seconds": 0})
    installed.start()
    wait_for(
        lambda: {int(c["params"]["CHAT_ID"]) for c in portal.handoffs() if c.get("answer") == "ok"} == {401, 402, 403},
        timeout=30,
        what="hand-offs after restart",
    )
    oks = [int(c["params"]["CHAT_ID"]) for c in portal.handoffs() if c.get("answer") == "ok"]
    assert sorted(oks) == [401, 402, 403]


def test_handoff_waits_for_a_reinstall_when_not_installed(installed: App, portal: PortalSim) -> None:
    portal.post("faults", {"method": "*", "kind": "5xx", "count": 1})
    installed.join(24)
    wait_for(lambda: installed.api("dialogs/24").json()["transferred_at"], timeout=20, what="hand-off")
