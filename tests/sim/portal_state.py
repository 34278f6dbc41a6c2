"""The simulated portal's state: its identity and tokens, what it records, its fault switches (stdlib only).

A restarted portal (`--state FILE`) is the same portal: same member_id, tokens, bots and dialogs.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import time
from typing import Any

import portal_v2  # the imbot.v2 side (Chatbots 2.0) keeps its own part of the state

ACCESS_TTL = 3600


class Fault:
    def __init__(self, method: str, kind: str, count: int | None, every: int, delay: float) -> None:
        self.method, self.kind, self.count, self.every, self.delay = method, kind, count, every, delay
        self.seen = 0

    def fires(self, method: str) -> bool:
        if self.method not in ("*", method) or self.count == 0:
            return False
        self.seen += 1
        if self.seen % self.every:
            return False
        if self.count is not None:
            self.count -= 1
        return True


class State:
    PERSISTED = ("member_id", "application_token", "access_token", "refresh_token", "expires", "bots", "next_bot")

    def __init__(self, client_id: str, client_secret: str, domain: str, base_url: str, path: str = "") -> None:
        self.lock = threading.Lock()
        self.client_id, self.client_secret = client_id, client_secret
        self.domain, self.base_url = domain, base_url
        self.path = path
        self.reset()
        # The same portal after a restart even without --state (Molecule restarts it between its seed and its
        # load): the app pins an installed portal's member_id. POST /_sim/reset still makes another portal.
        self.member_id = hashlib.sha256(f"{domain}|{client_id}".encode()).hexdigest()[:32]
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                saved = json.load(fh)
            for key in self.PERSISTED:
                setattr(self, key, saved[key])
            self.old_access = set(saved["old_access"])
            self.in_bot_mode = {int(k): v for k, v in saved["in_bot_mode"].items()}
            self.v2.restore(saved.get("v2") or {})

    def save(self) -> None:
        """A restarted portal is the same portal: same tokens, bots and dialogs (a real outage loses nothing)."""
        if not self.path:
            return
        data = {key: getattr(self, key) for key in self.PERSISTED}
        data["old_access"] = sorted(self.old_access)
        data["in_bot_mode"] = self.in_bot_mode
        data["v2"] = self.v2.saved()
        with open(self.path + ".tmp", "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(self.path + ".tmp", self.path)

    def reset(self) -> None:
        self.member_id = secrets.token_hex(16)
        self.application_token = secrets.token_hex(16)
        self.access_token = secrets.token_hex(24)
        self.refresh_token = secrets.token_hex(24)
        self.expires = int(time.time()) + ACCESS_TTL
        self.old_access: set[str] = set()
        self.calls: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.refreshes = 0
        self.failed_refreshes = 0
        self.bots: dict[str, int] = {}
        self.in_bot_mode: dict[int, bool] = {}
        self.lines = {1: {}, 2: {}}
        self.bucket = None  # (rate, burst) when the portal's rate limit is enforced
        self.level, self.level_t = 0.0, time.time()
        self.limit_hits = 0
        self.down_until = 0.0
        self.next_bot = 100
        self.history: dict[int, dict[str, Any]] = {}  # session id -> chat, entity, messages, users, files
        self.current_session: dict[int, int] = {}  # chat id -> its open session
        self.files: dict[int, bytes] = {}
        self.v2 = portal_v2.V2()
        self.webhook = getattr(self, "webhook", "")  # "<user id>/<secret>" of an inbound webhook, or ""
        self.scope = "imbot,imopenlines,user"  # what REST calls are checked against (POST /_sim/scope)
        self.windows: list[dict[str, Any]] = []  # limit windows: until, kind, method
        self.activities: list[dict[str, Any]] = []  # CRM activities of Open Lines sessions, ID ascending

    def install_auth(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "member_id": self.member_id,
            "application_token": self.application_token,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_in": str(ACCESS_TTL),
            "expires": str(self.expires),
            "scope": "imbot,imopenlines,user",
            "status": "L",
            "user_id": "1",
            "client_endpoint": f"{self.base_url}/rest/",
            "server_endpoint": f"{self.base_url}/rest/",
        }


def new_tokens(state: State) -> None:
    """A new token pair; the old access token is remembered so it answers expired_token, not invalid_token."""
    state.old_access.add(state.access_token)
    state.access_token = secrets.token_hex(24)
    state.refresh_token = secrets.token_hex(24)  # single use: the old one is dead now
    state.expires = int(time.time()) + ACCESS_TTL


def oauth(state: State, q: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """The OAuth server's refresh_token grant (caller holds the lock)."""
    if q.get("grant_type") != "refresh_token":
        return 400, {"error": "invalid_request", "error_description": "grant_type"}
    if q.get("client_id") != state.client_id or q.get("client_secret") != state.client_secret:
        return 401, {"error": "invalid_client", "error_description": "Invalid client"}
    if q.get("refresh_token") != state.refresh_token:
        state.failed_refreshes += 1
        return 400, {"error": "invalid_grant", "error_description": "Invalid grant"}
    new_tokens(state)
    state.refreshes += 1
    state.save()
    return 200, {
        "access_token": state.access_token,
        "client_endpoint": f"{state.base_url}/rest/",
        "domain": "oauth.simulated",
        "expires": state.expires,
        "expires_in": ACCESS_TTL,
        "member_id": state.member_id,
        "refresh_token": state.refresh_token,
        "scope": "imbot,imopenlines,user",
        "server_endpoint": f"{state.base_url}/rest/",
        "status": "L",
        "user_id": 1,
    }
