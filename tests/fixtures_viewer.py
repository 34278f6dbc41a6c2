"""Fixtures and helpers for the web viewer: one viewer account, dialogs seeded through the real event path."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from harness import App, PortalSim, free_port

VIEWER_USER = "quality"
VIEWER_PASSWORD = "correct horse battery staple"
VIEWER_TZ = "Europe/Moscow"


def viewer_env() -> dict[str, str]:
    from werkzeug.security import generate_password_hash

    return {
        "B24BOT_VIEWER_USERS": f"{VIEWER_USER}:{generate_password_hash(VIEWER_PASSWORD)}",
        "B24BOT_TIMEZONE": VIEWER_TZ,
    }


def seed_viewer(app: App, t0: int) -> None:
    """Dialogs through the real event path: an answered one (with an edit, a deletion, markup in a message),
    one still waiting on line 2, one answered after 10 minutes whose title Excel would run as a formula."""
    assert app.join(201, line=1, client=5001).status_code == 200
    formula = {"client_id": 5003, "session_id": 303, "title": "=HYPERLINK(1)"}
    steps: list[tuple[int, int, str, dict[str, Any]]] = [
        (201, 9001, "Добрый день! Где мой ЗАКАЗ 48213?", {"ts": t0}),
        (201, 9002, "Здравствуйте, заказ передан курьеру", {"client": False, "ts": t0 + 90}),
        (201, 9002, "Здравствуйте! Заказ 48213 передан курьеру.", {"client": False, "kind": "edit", "ts": t0 + 120}),
        (201, 9003, "<script>alert('x')</script> спасибо", {"ts": t0 + 150}),
        (201, 9004, "oops, wrong chat", {"ts": t0 + 160}),
        (201, 9004, "", {"kind": "delete", "ts": t0 + 170}),
        (202, 9101, "Hello, is anyone there?", {"ts": t0 + 60, "line": 2, "client_id": 5002, "session_id": 302}),
        (203, 9201, "Need an invoice", {"ts": t0, **formula}),
        (203, 9202, "Sent it", {"client": False, "ts": t0 + 600, **formula}),
    ]
    for chat, mid, text, kw in steps:
        resp = app.message(chat, mid, text, **kw)
        assert resp.status_code == 200, resp.text


@pytest.fixture
def viewer(tmp_path: Path, portal: PortalSim) -> Iterator[App]:
    """The app with one viewer account, installed and seeded; times shown in Moscow time."""
    a = App(tmp_path, portal, free_port())
    a.env_extra.update(viewer_env())
    a.start()
    assert a.install().status_code == 200
    seed_viewer(a, int(time.time()) - 7200)
    yield a
    a.stop()


def viewer_login(app: App, session: requests.Session | None = None) -> requests.Session:
    """A logged-in requests session (GET the login page for the CSRF token, then POST it)."""
    s = session or requests.Session()
    page = s.get(app.url + "ui/login", timeout=10)
    token = csrf_of(page.text)
    resp = s.post(
        app.url + "ui/login",
        data={"user": VIEWER_USER, "password": VIEWER_PASSWORD, "csrf": token},
        allow_redirects=False,
        timeout=10,
    )
    assert resp.status_code == 303, resp.text
    return s


def csrf_of(html: str) -> str:
    import re

    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)
