"""Real processes on real sockets: the simulated portal and the app under gunicorn, per test."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
SIM = ROOT / "tests" / "sim"
sys.path.insert(0, str(SIM))
import forms  # noqa: E402

CLIENT_ID = "local.test.1"
CLIENT_SECRET = "test-client-secret-0123456789"
API_TOKEN = "api-token-0123456789abcdef"
WEBHOOK = "1/webhooksecret0123456789"  # the simulated portal's inbound webhook (user id / secret)
HANDLER_URL = "http://bot.example.test/python_bot/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 15.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.05)
    raise TimeoutError(url)


class PortalSim:
    def __init__(self, port: int, state_file: Path) -> None:
        self.state_file = state_file
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(SIM / "portal.py"),
                "--port",
                str(self.port),
                "--client-id",
                CLIENT_ID,
                "--client-secret",
                CLIENT_SECRET,
                "--state",
                str(self.state_file),
                "--webhook",
                WEBHOOK,
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_http(self.url + "/_sim/state")

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def get(self, what: str) -> Any:
        return requests.get(f"{self.url}/_sim/{what}", timeout=5).json()

    def post(self, what: str, body: Any = None) -> None:
        requests.post(f"{self.url}/_sim/{what}", json=body or {}, timeout=5).raise_for_status()

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        return [c for c in self.get("calls") if method is None or c["method"] == method]

    def handoffs(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        return [
            c
            for c in self.get("calls")
            if c["method"].startswith("imopenlines.bot.session.")
            and (chat_id is None or int(c["params"]["CHAT_ID"]) == chat_id)
        ]


class App:
    """b24bot under real gunicorn with its own data dir."""

    def __init__(self, data_dir: Path, portal: PortalSim, port: int) -> None:
        self.data_dir = data_dir
        self.portal = portal
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"
        self.proc: subprocess.Popen[bytes] | None = None
        self.env_extra: dict[str, str] = {}
        self.workers = 2
        self.http = requests.Session()
        self.bot_id: int | None = None
        self.portal_ids: forms.Portal | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("B24BOT_")}
        env.update(
            PYTHONPATH=str(ROOT / "app" / "src"),
            PYTHONDONTWRITEBYTECODE="1",
            B24BOT_DATA_DIR=str(self.data_dir),
            B24BOT_CLIENT_ID=CLIENT_ID,
            B24BOT_CLIENT_SECRET=CLIENT_SECRET,
            B24BOT_API_TOKEN=API_TOKEN,
            B24BOT_HANDLER_URL=HANDLER_URL,
            B24BOT_PORTAL_DOMAIN=f"127.0.0.1:{self.portal.port}",
            B24BOT_OAUTH_URL=f"{self.portal.url}/oauth/token/",
            B24BOT_LOG_FILE=str(self.data_dir / "bot.log"),
            B24BOT_REST_TIMEOUT="2",
            B24BOT_RETRY_MAX="1",
        )
        env.update(self.env_extra)
        return env

    def start(self) -> None:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.proc = subprocess.Popen(
            [
                str(gunicorn),
                "--workers",
                str(self.workers),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--graceful-timeout",
                "5",
                "b24bot.wsgi:app",
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.data_dir / "gunicorn.err", "ab"),  # noqa: SIM115
        )
        wait_http(self.url + "healthz")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc:
            self.proc.send_signal(sig)
            self.proc.wait(20)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    # ---- talking to it ------------------------------------------------------------------------------------

    def post(self, pairs: list[tuple[str, str]]) -> requests.Response:
        return self.http.post(
            self.url,
            data=forms.encode(pairs),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=30,
        )

    def api(self, path: str, token: str | None = API_TOKEN, method: str = "GET", **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.request(method, self.url + "api/" + path, headers=headers, timeout=30, **kw)

    def install(self, **overrides: str) -> requests.Response:
        auth = {**self.portal.get("install"), **overrides}
        resp = self.post(forms.install(auth))
        if resp.status_code == 200:
            self.bot_id = int(resp.json()["bot_id"])
            self.portal_ids = forms.Portal.from_install(auth)
        return resp

    def join(self, chat_id: int, line: int = 1, client: int = 5001, ts: int | None = None) -> requests.Response:
        assert self.portal_ids and self.bot_id
        entity = forms.lines_entity("telegrambot", line, f"ext{chat_id}", client)
        return self.post(forms.join(self.portal_ids, self.bot_id, chat_id, entity, ts=ts))

    def message(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        client: bool = True,
        author: int | None = None,
        kind: str = "add",
        session_id: int | None = 300,
        portal: forms.Portal | None = None,
        system: bool = False,
        ts: int | None = None,
        line: int = 1,
        client_id: int = 5001,
        name: str | None = None,
        title: str | None = None,
    ) -> requests.Response:
        assert self.portal_ids and self.bot_id
        author = author if author is not None else (client_id if client else 7)
        entity = forms.lines_entity("telegrambot", line, f"ext{chat_id}", client_id)
        return self.post(
            forms.message(
                portal or self.portal_ids,
                self.bot_id,
                chat_id,
                message_id,
                text,
                author,
                name or ("Guest" if client else "Operator Olga"),
                client,
                entity,
                session_id,
                kind,
                system,
                ts,
                title,
            )
        )

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.data_dir / "dialogs.db")
        conn.row_factory = sqlite3.Row
        return conn

    def count(self, table: str) -> int:
        with self.db() as conn:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed table names

    def auth_json(self) -> dict[str, Any] | None:
        path = self.data_dir / "auth.json"
        return json.loads(path.read_text()) if path.exists() else None


def wait_for(predicate: Any, timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


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


# ---- the web viewer -----------------------------------------------------------------------------------------------

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


# ---- a real browser (Debian's chromium + chromium-driver, driven by Selenium) ------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)  # lets fixtures see whether the test failed
    return report


class Browser:
    """Headless chromium on the viewer; every page it reaches is screenshot, kept only when the test fails."""

    def __init__(self, app: App, out: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.app = app
        self.shots = out / "screenshots"
        self.downloads = out / "downloads"
        self.shots.mkdir()
        self.downloads.mkdir()
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
            options.add_argument(arg)
        options.add_experimental_option(
            "prefs", {"download.default_directory": str(self.downloads), "download.prompt_for_download": False}
        )
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.execute_cdp_cmd(
            "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(self.downloads)}
        )
        self.driver.implicitly_wait(0)
        self._n = 0

    def get(self, path: str) -> None:
        self.driver.get(self.app.url + path)
        self.snap(path)

    def snap(self, name: str) -> None:
        self._n += 1
        safe = "".join(c if c.isalnum() else "-" for c in name)[:60]
        self.driver.save_screenshot(str(self.shots / f"{self._n:02d}-{safe}.png"))

    def wait(self, predicate: Any, what: str, timeout: float = 10.0) -> Any:
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        # htmx swaps elements out from under a predicate that is reading them: try again.
        wait = WebDriverWait(self.driver, timeout, ignored_exceptions=[StaleElementReferenceException])
        return wait.until(lambda d: predicate(d), message=what)

    def css(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)


@pytest.fixture
def browser(request: pytest.FixtureRequest, tmp_path: Path, viewer: App) -> Iterator[Browser]:
    """Fails (never skips) when chromium or its driver is missing: CI installs both (.ci/run)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: apt-get install -y chromium chromium-driver", pytrace=False)
    b = Browser(viewer, tmp_path)
    yield b
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    try:
        if failed:
            b.snap("at-failure")
            (tmp_path / "at-failure.html").write_text(b.driver.page_source)
            print(f"browser screenshots: {b.shots}")
        else:
            for shot in b.shots.iterdir():
                shot.unlink()
    finally:
        b.driver.quit()
