"""Chatbots 2.0 test kit: the app in v2 fetch mode (inbound-webhook auth by default) against the simulated portal."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import WEBHOOK, App, PortalSim, free_port, wait_for

BOT_CODE = "interceptor_v2"


def v2_env(portal: PortalSim, webhook: bool = True, **extra: str) -> dict[str, str]:
    env = {
        "B24BOT_BOT_API": "v2",
        "B24BOT_EVENT_MODE": "fetch",
        "B24BOT_V2_BOT_CODE": BOT_CODE,
        "B24BOT_LINES": "1",
        "B24BOT_PUMP_IDLE_S": "0.2",
        "B24BOT_PUMP_BUSY_S": "0.01",
    }
    if webhook:
        env["B24BOT_WEBHOOK_URL"] = f"{portal.url}/rest/{WEBHOOK}/"
    env.update(extra)
    return env


def cli(app: App, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "b24bot", *args], env=app.env, capture_output=True, text=True, timeout=timeout
    )


def v2_state(portal: PortalSim) -> dict[str, Any]:
    return portal.get("v2/state")


def send(portal: PortalSim, *steps: dict[str, Any]) -> None:
    requests.post(f"{portal.url}/_sim/v2/events", json=list(steps), timeout=30).raise_for_status()


def stored_v2(app: App) -> int:
    with app.db() as db:
        return db.execute(
            "SELECT count(*) FROM events WHERE json_extract(payload, '$.data.V2_EVENT_ID') IS NOT NULL"
        ).fetchone()[0]


def all_acked(portal: PortalSim) -> bool:
    st = v2_state(portal)
    return st["acked"] and all(v == st["next_event"] for v in st["acked"].values())


def wait_drained(app: App, portal: PortalSim, timeout: float = 60) -> None:
    """Every event stored and acknowledged (the ack is the next Event.get's offset)."""
    wait_for(lambda: all_acked(portal), timeout=timeout, what="all events acknowledged")


def pump_pid(app: App) -> int:
    return int((app.data_dir / "pump.lock").read_text().strip() or 0)


@pytest.fixture
def v2app(tmp_path: Path, portal: PortalSim) -> Iterator[App]:
    """Registered through `b24bot register` (no install event, no inbound call), then started."""
    app = App(tmp_path, portal, free_port())
    app.env_extra = v2_env(portal)
    done = cli(app, "register")
    assert done.returncode == 0, done.stderr
    app.start()
    wait_for(lambda: (app.data_dir / "pump.lock").exists() and pump_pid(app), what="a pump holding the lock")
    yield app
    app.stop()


def bot_id(portal: PortalSim) -> int:
    (bid,) = v2_state(portal)["bots"]
    return int(bid)
