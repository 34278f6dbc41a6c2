"""A real socket server standing in for an attacker's host: it counts every connection and answers like a portal."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from harness import CLIENT_ID


class Listener:
    """Accepts on 127.0.0.1:<port>; records each request's method and target; answers `status` + `body` (+ `location`).

    Used as the attacker's "portal" (answers app.info with our client id, as in the issue's report), as a redirect
    target, and as an HTTPS proxy that only notes which host a CONNECT asked for."""

    def __init__(self, status: int = 200, body: Any = None, location: str = "") -> None:
        self.status, self.location = status, location
        self.body = json.dumps(body if body is not None else {"result": {"CODE": "local.test.1"}}).encode()
        self.requests: list[str] = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data and len(data) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                return
            with self.lock:
                self.requests.append(data.split(b"\r\n", 1)[0].decode("latin-1").rsplit(" ", 1)[0])
            head = f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\nContent-Length: {len(self.body)}\r\n"
            if self.location:
                head += f"Location: {self.location}\r\n"
            with contextlib.suppress(OSError):
                conn.sendall(head.encode() + b"Connection: close\r\n\r\n" + self.body)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def attacker() -> Iterator[Listener]:
    """The attacker's host (a conftest plugin): answers app.info with our client id, as in the review's report."""
    lst = Listener(200, {"result": {"ID": 1, "CODE": CLIENT_ID}})
    yield lst
    lst.close()
