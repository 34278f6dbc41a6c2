"""tests/sim/e2e.py is what Molecule and `make demo` run inside the container (stdlib only): it must keep working
against the real app, here without nginx in front."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import API_TOKEN, SIM, App, PortalSim


def drive(app: App, portal: PortalSim, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = ["--handler-url", app.url, "--portal", portal.url, "--api-token", API_TOKEN, *extra]
    return subprocess.run([sys.executable, str(SIM / "e2e.py"), *argv], capture_output=True, text=True, timeout=120)


def test_the_stdlib_e2e_driver_plays_a_dialog_through_the_webhook(app: App, portal: PortalSim) -> None:
    done = drive(app, portal, "--chat-id", "4343")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["dialog"]["chat_id"] == 4343 and summary["dialog"]["transferred_at"] is not None
    assert [m["author_role"] for m in summary["messages"]] == ["client", "operator"]
    assert len(portal.handoffs(4343)) == 1


def test_the_stdlib_e2e_driver_fails_loudly(app: App, portal: PortalSim) -> None:
    done = drive(app, portal, "--api-token", "not-the-token")
    assert done.returncode == 1 and "E2E FAILED" in done.stderr and "Traceback" not in done.stderr
