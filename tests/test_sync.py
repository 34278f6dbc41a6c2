"""Sync fills in what events missed: dialogs that only got their join, and it waits out the portal's limits."""

from __future__ import annotations

import json
import time

from test_archive import CLIENT, OPERATOR, cli, history

from conftest import App, PortalSim, wait_for


def _dialog(app: App, chat: int) -> dict:
    return next(d for d in app.api("dialogs").json()["items"] if d["chat_id"] == chat)


def _dialog_gets(portal: PortalSim) -> list[str]:
    """CHAT_IDs the app asked imopenlines.dialog.get about (inside batches)."""
    out = []
    for c in portal.calls("batch"):
        out += [v for v in c["params"]["cmd"].values() if v.startswith("imopenlines.dialog.get")]
    return out


def test_a_dialog_that_only_got_its_join_is_complete_after_one_sync(installed: App, portal: PortalSim) -> None:
    installed.join(700)  # the join carries no session id, and no message event ever comes
    history(
        portal,
        700,
        88,
        [
            {"id": 7001, "text": "Здравствуйте, где мой заказ?", "date": "2026-03-11T10:00:00+03:00", **CLIENT},
            {"id": 7002, "text": "Сейчас проверю", "date": "2026-03-11T10:01:00+03:00", **OPERATOR},
            {"id": 7003, "text": "", "date": "2026-03-11T10:02:00+03:00", **CLIENT},
            {"id": 7004, "text": "Спасибо", "date": "2026-03-11T10:03:00+03:00", **CLIENT},
        ],
    )
    assert _dialog(installed, 700)["complete"] is False
    before = installed.api("../healthz").json()
    assert before["last_sync_at"] is None

    report = json.loads(cli(installed, "sync").stdout)

    assert report["discovered"] == 1 and report["sessions"] == 1 and report["new_messages"] == 4
    assert report["errors"] == [] and report["sessions_behind"] == 0
    assert any("CHAT_ID=700" in c for c in _dialog_gets(portal))
    items = installed.api("dialogs/700/messages").json()["items"]
    assert [m["message_id"] for m in items] == [7001, 7002, 7003, 7004]
    assert items[0]["text"] == "Здравствуйте, где мой заказ?"
    dialog = _dialog(installed, 700)
    assert dialog["complete"] is True and dialog["synced_at"]
    health = installed.http.get(installed.url + "healthz", timeout=5).json()
    assert health["last_sync_at"] and health["sessions_behind"] == 0 and health["last_sync_error"] is None
    status = json.loads(cli(installed, "status", "--json").stdout)
    assert status["last_sync_at"] == health["last_sync_at"] and status["sessions_behind"] == 0

    # A new session in the same chat starts with a new join, again without any message event: the next sync
    # learns that session too, and closes the first.
    history(portal, 700, 89, [{"id": 7010, "text": "Снова я", "date": "2026-03-12T10:00:00+03:00", **CLIENT}])
    installed.join(700, ts=int(time.time()) + 5)
    again = json.loads(cli(installed, "sync").stdout)
    assert again["discovered"] == 1 and again["new_messages"] == 1
    with installed.db() as db:
        rows = db.execute("SELECT session_id, closed_at IS NOT NULL FROM sessions WHERE chat_id = 700").fetchall()
    assert [tuple(r) for r in rows] == [(88, 1), (89, 0)]
    assert _dialog(installed, 700)["complete"] is True


def _two_join_only_dialogs(app: App, portal: PortalSim) -> None:
    for chat, sid in ((710, 91), (711, 92)):
        app.join(chat)
        history(
            portal,
            chat,
            sid,
            [
                {"id": chat * 10 + 1, "text": "Добрый день", **CLIENT},
                {"id": chat * 10 + 2, "text": "Здравствуйте!", **OPERATOR},
            ],
        )
    wait_for(lambda: len(portal.handoffs()) >= 2, what="the hand-offs, before any limit window opens")


def test_ten_seconds_of_query_limit_exceeded_are_waited_out(installed: App, portal: PortalSim) -> None:
    _two_join_only_dialogs(installed, portal)
    portal.post("limit_window", {"seconds": 10, "kind": "query_limit"})
    opened = time.time()

    done = cli(installed, "sync")

    report = json.loads(done.stdout)
    assert report["stopped"] is None and report["errors"] == []
    assert report["sessions"] == 2 and report["new_messages"] == 4 and installed.count("messages") == 4
    refused = [c for c in portal.calls("batch") if c.get("answer") == "QUERY_LIMIT_EXCEEDED"]
    assert refused and report["limit_waited_s"] > 0, "the run met the window and waited"
    assert max(c["t"] for c in refused) - opened < 10.5
    assert len(refused) <= 8, "backs off instead of hammering the portal"
    assert installed.http.get(installed.url + "healthz", timeout=5).json()["last_sync_error"] is None


def test_operation_time_limit_is_waited_out_until_operating_reset_at(installed: App, portal: PortalSim) -> None:
    _two_join_only_dialogs(installed, portal)
    # The portal blocks one method (inside batches too) and names when it is usable again.
    portal.post("limit_window", {"seconds": 6, "kind": "operation_limit", "method": "imopenlines.session.history.get"})
    opened = time.time()

    report = json.loads(cli(installed, "sync").stdout)

    assert report["stopped"] is None and report["sessions"] == 2 and installed.count("messages") == 4
    history_batches = [
        c for c in portal.calls("batch") if any("session.history.get" in v for v in c["params"]["cmd"].values())
    ]
    # One refused try, then the next one only after operating_reset_at (exponential back-off would have
    # tried again three times within those 6 s).
    assert len(history_batches) == 2
    assert history_batches[1]["t"] >= opened + 6


def test_a_limit_that_outlasts_sync_max_wait_stops_the_run_with_a_clear_message(
    installed: App, portal: PortalSim
) -> None:
    _two_join_only_dialogs(installed, portal)
    installed.env_extra["B24BOT_SYNC_MAX_WAIT_S"] = "3"
    portal.post("limit_window", {"seconds": 60, "kind": "query_limit"})
    started = time.time()

    done = cli(installed, "sync", check=False)

    assert done.returncode == 1
    assert "QUERY_LIMIT_EXCEEDED" in done.stderr and "B24BOT_SYNC_MAX_WAIT_S=3" in done.stderr
    assert time.time() - started < 30, "gave up after about B24BOT_SYNC_MAX_WAIT_S, not after the window"
    health = installed.http.get(installed.url + "healthz", timeout=5).json()
    assert "QUERY_LIMIT_EXCEEDED" in health["last_sync_error"] and health["sessions_behind"] == 2
