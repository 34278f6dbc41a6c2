"""Real processes on real sockets: the simulated portal (tests/sim/portal.py) and the app under gunicorn.

conftest.py builds the pytest fixtures on it and re-exports it for the tests, the benchmarks (bench/common.py)
and scripts/screenshots.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
SIM = ROOT / "tests" / "sim"
sys.path.insert(0, str(SIM))
import forms  # noqa: E402  (tests/sim, also shipped to the test containers)

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


def log_text(app: App) -> str:
    return (app.data_dir / "bot.log").read_text(encoding="utf-8", errors="replace")
