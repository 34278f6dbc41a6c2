"""OAuth tokens: refreshed before expiry and on expired_token, one refresh at a time across every worker."""

from __future__ import annotations

import json
import stat
import time
from concurrent.futures import ThreadPoolExecutor

from conftest import App, PortalSim, wait_for


def test_expired_token_is_refreshed_once_and_the_call_retried(installed: App, portal: PortalSim) -> None:
    old = installed.auth_json()
    assert old is not None
    base = portal.get("state")["refreshes"]  # the install's own exchange counts as one
    portal.post("expire")
    installed.join(31)
    wait_for(lambda: installed.api("dialogs/31").json()["transferred_at"], what="hand-off after refresh")
    new = installed.auth_json()
    assert new is not None
    assert portal.get("state")["refreshes"] == base + 1
    assert new["access_token"] != old["access_token"] and new["refresh_token"] != old["refresh_token"]
    assert new["application_token"] == old["application_token"] and new["bot_id"] == old["bot_id"]
    assert new["domain"] == old["domain"]  # the OAuth answer's domain is the OAuth server's, never stored
    assert stat.S_IMODE((installed.data_dir / "auth.json").stat().st_mode) == 0o600


def test_tokens_about_to_expire_are_refreshed_before_the_call(installed: App, portal: PortalSim) -> None:
    path = installed.data_dir / "auth.json"
    data = json.loads(path.read_text())
    data["expires"] = int(time.time()) + 5
    path.write_text(json.dumps(data))
    base = portal.get("state")["refreshes"]
    installed.join(32)
    wait_for(lambda: installed.api("dialogs/32").json()["transferred_at"], what="hand-off")
    answers = [c.get("answer") for c in portal.calls()]
    assert "expired_token" not in answers
    assert portal.get("state")["refreshes"] == base + 1


def test_token_storm_four_workers_exactly_one_refresh(app: App, portal: PortalSim) -> None:
    app.workers = 4
    app.restart()
    app.install()
    base = portal.get("state")["refreshes"]
    portal.post("expire")
    chats = list(range(1000, 1032))
    with ThreadPoolExecutor(32) as pool:
        statuses = list(pool.map(lambda c: app.join(c).status_code, chats))
    assert statuses == [200] * 32
    wait_for(
        lambda: len([c for c in portal.handoffs() if c.get("answer") == "ok"]) == 32, timeout=30, what="32 hand-offs"
    )
    state = portal.get("state")
    assert state["refreshes"] == base + 1 and state["failed_refreshes"] == 0
    answers = [c.get("answer") for c in portal.handoffs()]
    assert set(answers) <= {"ok", "expired_token"}  # nothing failed beyond the expired token itself
    assert sorted(int(c["params"]["CHAT_ID"]) for c in portal.handoffs() if c.get("answer") == "ok") == chats


def test_event_auth_blocks_never_overwrite_auth_json(installed: App) -> None:
    before = (installed.data_dir / "auth.json").read_bytes()
    installed.join(33)
    installed.message(33, 330, "hello")
    assert (installed.data_dir / "auth.json").read_bytes() == before


def test_rejected_refresh_asks_for_a_reinstall(app: App, portal: PortalSim) -> None:
    assert app.install().status_code == 200
    app.env_extra = {"B24BOT_CLIENT_SECRET": "wrong-secret-000"}  # the secret was rotated on one side only
    app.restart()
    portal.post("expire")
    app.join(34)
    wait_for(lambda: "invalid_client" in (app.data_dir / "bot.log").read_text(), what="refresh failure logged")
    assert app.http.get(app.url + "healthz").json()["pending_handoffs"] == 1  # kept, retried after a fix
    assert "wrong-secret-000" not in (app.data_dir / "bot.log").read_text()


def test_sync_renews_week_old_tokens_on_a_quiet_portal(installed: App, portal: PortalSim) -> None:
    import subprocess
    import sys

    path = installed.data_dir / "auth.json"
    data = json.loads(path.read_text())
    data["installed_at"] = int(time.time()) - 8 * 86400
    path.write_text(json.dumps(data))
    base = portal.get("state")["refreshes"]
    run = [sys.executable, "-m", "b24bot", "sync"]
    subprocess.run(run, env=installed.env, check=True, capture_output=True)
    assert portal.get("state")["refreshes"] == base + 1
    subprocess.run(run, env=installed.env, check=True, capture_output=True)
    assert portal.get("state")["refreshes"] == base + 1  # fresh now: once a week is enough
