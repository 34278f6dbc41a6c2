"""auth.json: the portal's OAuth tokens. Atomic writes, and one refresh at a time across all worker processes.

Bitrix24 refresh tokens are single-use: two workers refreshing with the same one would leave one of them with
`invalid_grant` and possibly a stale file. Every refresh therefore runs under an exclusive file lock and first
re-reads the file, so a worker that waited simply picks up the pair another worker just stored.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests

from .errors import AuthFailed, BitrixError, NotInstalled
from .trust import DEFAULT_OAUTH_TOKEN_URL, allows_http, oauth_token_url, portal_endpoint, same_origin

log = logging.getLogger(__name__)

REFRESH_MARGIN = 60  # seconds before expiry that count as "expired"
__all__ = ["DEFAULT_OAUTH_TOKEN_URL", "TokenStore", "exchange", "installation", "oauth_token_url"]


def exchange(
    session: requests.Session, url: str, client_id: str, client_secret: str, refresh_token: str, timeout: float
) -> dict[str, Any]:
    """One refresh_token grant at the OAuth server: its answer, or AuthFailed (refused) / BitrixError (unreachable)."""
    params = {
        "grant_type": "refresh_token",
        "client_id": client_id,
        "client_secret": client_secret,
        "refresh_token": refresh_token,
    }
    try:
        resp = session.get(url, params=params, timeout=timeout, allow_redirects=False)
    except requests.Timeout as exc:
        raise BitrixError("TIMEOUT", "OAuth server did not answer in time") from exc
    except requests.RequestException as exc:
        raise BitrixError("NETWORK_ERROR", f"OAuth server unreachable ({exc.__class__.__name__})") from exc
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    if resp.status_code != 200 or not body.get("access_token") or not body.get("refresh_token"):
        code = str(body.get("error") or "BAD_RESPONSE")[:64]
        desc = str(body.get("error_description") or f"HTTP {resp.status_code}")[:200]
        if code in ("invalid_grant", "invalid_client", "NO_AUTH_FOUND"):
            raise AuthFailed(code, desc, resp.status_code)
        raise BitrixError(code, desc, resp.status_code)
    return body


def installation(auth: dict[str, Any] | None) -> dict[str, Any]:
    """What status pages show of auth.json: never a token."""
    expires = auth.get("expires") if auth else None
    try:
        expires_at = datetime.fromtimestamp(int(expires), timezone.utc).isoformat(timespec="seconds")
    except (TypeError, ValueError, OverflowError, OSError):  # none stored, or out of any calendar's range
        expires_at = None
    return {
        "installed": auth is not None,
        "portal": auth.get("domain") if auth else None,
        "bot_id": auth.get("bot_id") if auth else None,
        "token_expires_at": expires_at,
    }


def expiry(body: dict[str, Any], now: int) -> int:
    """`expires` of an OAuth answer, else now + `expires_in`; kept within a day of now whatever the answer says."""
    try:
        when = int(body.get("expires") or now + int(body.get("expires_in") or 3600))
    except (TypeError, ValueError):
        when = now + 3600
    return max(0, min(when, now + 86400))


def write_json_atomic(path: Path, data: dict[str, Any], mode: int = 0o600) -> None:
    """Temp file in the same directory, fsync, rename: readers see the old or the new file, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class TokenStore:
    def __init__(
        self,
        path: Path,
        client_id: str,
        client_secret: str,
        oauth_url: str = "",
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self.path = path
        self.client_id = client_id
        self.client_secret = client_secret
        self.oauth_url = oauth_url
        self.timeout = timeout
        self.session = session or requests.Session()
        self.refresh_count = 0  # in this process; tests and /healthz read it

    # ---- file access ---------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def load(self) -> dict[str, Any] | None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error("cannot read %s: %s", self.path, exc.__class__.__name__)
            return None
        return data if isinstance(data, dict) and data.get("access_token") else None

    def save(self, data: dict[str, Any]) -> None:
        with self.lock():
            write_json_atomic(self.path, data)

    def update(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Read-modify-write under the lock."""
        with self.lock():
            data = self.load()
            if data is None:
                raise NotInstalled()
            change(data)
            write_json_atomic(self.path, data)
            return data

    def delete(self) -> bool:
        with self.lock():
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                return False
            return True

    # ---- tokens --------------------------------------------------------------------------------------------

    def current(self, min_valid: int = REFRESH_MARGIN) -> dict[str, Any]:
        """Stored tokens, refreshed first when they expire within `min_valid` seconds."""
        data = self.load()
        if data is None:
            raise NotInstalled()
        if int(data.get("expires", 0)) - time.time() < min_valid:
            return self.refresh(stale_access_token=str(data["access_token"]))
        return data

    @property
    def allow_http(self) -> bool:
        return allows_http(self.oauth_url)

    def _take(self, data: dict[str, Any], body: dict[str, Any]) -> None:
        """Keep what a refresh answer brings, as long as it still names our portal."""
        if body.get("member_id") and data.get("member_id") and str(body["member_id"]) != str(data["member_id"]):
            raise AuthFailed("MEMBER_MISMATCH", "the OAuth server answered for another portal; reinstall the app")
        now = int(time.time())
        # The OAuth answer's `domain` is the OAuth server, not the portal: keep ours. A client_endpoint on another
        # host (a renamed portal) is not followed: a Reinstall from the renamed portal records it.
        data["access_token"], data["refresh_token"] = str(body["access_token"]), str(body["refresh_token"])
        for key in ("server_endpoint", "scope"):
            if body.get(key):
                data[key] = str(body[key])
        try:
            new_endpoint = portal_endpoint(str(body.get("client_endpoint") or ""), self.allow_http)
        except BitrixError:
            new_endpoint = ""
        if new_endpoint and same_origin(new_endpoint, str(data.get("client_endpoint", ""))):
            data["client_endpoint"] = new_endpoint
        elif new_endpoint:
            log.warning("the OAuth server names another portal host; kept the installed one (reinstall if renamed)")
        data["expires"] = expiry(body, now)
        data["refreshed_at"] = now

    def refresh(self, stale_access_token: str) -> dict[str, Any]:
        """Exchange the refresh token, unless another worker already replaced `stale_access_token`."""
        with self.lock():
            data = self.load()
            if data is None:
                raise NotInstalled()
            fresh = int(data.get("expires", 0)) - time.time() >= REFRESH_MARGIN
            if data["access_token"] != stale_access_token and fresh:
                return data
            if not self.client_id or not self.client_secret:
                raise AuthFailed("NO_CLIENT_CREDENTIALS", "B24BOT_CLIENT_ID/B24BOT_CLIENT_SECRET are not set")
            url = oauth_token_url(str(data.get("server_endpoint", "")), self.oauth_url)
            try:
                refresh_token = str(data.get("refresh_token", ""))
                body = exchange(self.session, url, self.client_id, self.client_secret, refresh_token, self.timeout)
            except AuthFailed as exc:
                raise AuthFailed(exc.code, f"{exc.description}; reinstall the app in Bitrix24", exc.status) from exc
            self._take(data, body)
            write_json_atomic(self.path, data)
            self.refresh_count += 1
            log.info("OAuth tokens refreshed; valid until %s", data["expires"])
            return data
