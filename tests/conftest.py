"""Real processes on real sockets: the simulated portal and the app under gunicorn, per test.

The harness (PortalSim, App) lives in harness.py, the viewer's fixtures in fixtures_viewer.py, the browser's in
fixtures_browser.py; the names tests and benchmarks import from here are re-exported below.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# The harness and the fixture plugins assert too: rewrite them like conftest itself (they are imported right here).
pytest.register_assert_rewrite("harness", "fixtures_viewer", "fixtures_browser", "attacker")

from fixtures_browser import Browser  # noqa: E402
from fixtures_viewer import (  # noqa: E402
    VIEWER_PASSWORD,
    VIEWER_TZ,
    VIEWER_USER,
    csrf_of,
    seed_viewer,
    viewer_env,
    viewer_login,
)
from harness import (  # noqa: E402
    API_TOKEN,
    CLIENT_ID,
    CLIENT_SECRET,
    HANDLER_URL,
    ROOT,
    SIM,
    WEBHOOK,
    App,
    PortalSim,
    free_port,
    log_text,
    wait_for,
    wait_http,
)

pytest_plugins = ["fixtures_viewer", "fixtures_browser", "attacker"]

__all__ = [
    "API_TOKEN",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "HANDLER_URL",
    "ROOT",
    "SIM",
    "VIEWER_PASSWORD",
    "VIEWER_TZ",
    "VIEWER_USER",
    "WEBHOOK",
    "App",
    "Browser",
    "PortalSim",
    "csrf_of",
    "free_port",
    "log_text",
    "seed_viewer",
    "viewer_env",
    "viewer_login",
    "wait_for",
    "wait_http",
]


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[PortalSim]:
    sim = PortalSim(free_port(), tmp_path / "portal-state.json")
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def app(tmp_path: Path, portal: PortalSim) -> Iterator[App]:
    a = App(tmp_path, portal, free_port())
    a.start()
    yield a
    a.stop()


@pytest.fixture
def installed(app: App) -> App:
    assert app.install().status_code == 200
    return app
