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
from urllib.parse import urlsplit

import requests

from .errors import AuthFailed, BitrixError, NotInstalled

log = logging.getLogger(__name__)

REFRESH_MARGIN = 60  # seconds before expiry that count as "expired"
DEFAULT_OAUTH_TOKEN_URL = "https://oauth.bitrix.info/oauth/token/"  # noqa: S105 - a URL, not a secret


def oauth_token_url(server_endpoint: str, override: str = "") -> str:
    """The token endpoint: the override, else the host of `server_endpoint` (`https://H/rest/` -> `https://H/oauth/token/`)."""
    if override:
        return override
    parts = urlsplit(server_endpoint or "")
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}/oauth/token/"
    return DEFAULT_OAUTH_TOKEN_URL


def installation(auth: dict[str, Any] | None) -> dict[str, Any]:
    """What status pages show of auth.json: never a token."""
    expires = auth.get("expires") if auth else None
    return {
        "installed": auth is not None,
        "portal": auth.get("domain") if auth else None,
        "bot_id": auth.get("bot_id") if auth else None,
        "token_expires_at": (
            datetime.fromtimestamp(int(expires), timezone.utc).isoformat(timespec="seconds") if expires else None
        ),
    }


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
            params = {
                "grant_type": "refresh_token",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "refresh_token": data.get("refresh_token", ""),
            }
            try:
                resp = self.session.get(url, params=params, timeout=self.timeout, allow_redirects=False)
            except requests.Timeout as exc:
                raise BitrixError("TIMEOUT", "OAuth server did not answer in time") from exc
            except requests.RequestException as exc:
                raise BitrixError("NETWORK_ERROR", f"OAuth server unreachable ({exc.__class__.__name__})") from exc
            try:
                body = resp.json()
            except ValueError:
                body = {}
            if resp.status_code != 200 or "access_token" not in body:
                code = str(body.get("error") or "BAD_RESPONSE")
                desc = str(body.get("error_description") or f"HTTP {resp.status_code}")
                if code in ("invalid_grant", "invalid_client", "NO_AUTH_FOUND"):
                    raise AuthFailed(code, f"{desc}; reinstall the app in Bitrix24")
                raise BitrixError(code, desc, resp.status_code)
            now = int(time.time())
            # The OAuth answer's `domain` is the OAuth server, not the portal: keep ours, take the rest.
            for key in (
                "access_token",
                "refresh_token",
                "client_endpoint",
                "server_endpoint",
                "scope",
                "member_id",
            ):
                if body.get(key):
                    data[key] = body[key]
            data["expires"] = int(body.get("expires") or now + int(body.get("expires_in") or 3600))
            data["refreshed_at"] = now
            write_json_atomic(self.path, data)
            self.refresh_count += 1
            log.info("OAuth tokens refreshed; valid until %s", data["expires"])
            return data
