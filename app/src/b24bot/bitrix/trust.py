"""Which hosts the app may talk to: Bitrix24's own OAuth servers and the one portal an install proved.

Nothing an unauthenticated request names is ever contacted: the OAuth URL comes from the operator's settings or
from a short list of Bitrix24's hosts, and the portal endpoint from the OAuth server's answer.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .errors import AuthFailed

DEFAULT_OAUTH_TOKEN_URL = "https://oauth.bitrix.info/oauth/token/"  # noqa: S105 - a URL, not a secret
# The English docs name the first, the Russian docs and the official SDK (since 2026) the second.
OAUTH_HOSTS = frozenset({"oauth.bitrix.info", "oauth.bitrix24.tech"})


def oauth_token_url(server_endpoint: str, override: str = "") -> str:
    """The operator's URL, else `https://H/oauth/token/` when `server_endpoint` is on one of Bitrix24's OAuth hosts H
    (plain https, default port), else the default. Any other host it names is ignored: it may be an attacker's."""
    if override:
        return override
    try:
        parts = urlsplit(server_endpoint or "")
        port = parts.port
    except ValueError:
        return DEFAULT_OAUTH_TOKEN_URL
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and host in OAUTH_HOSTS and port in (None, 443) and not parts.username:
        return f"https://{host}/oauth/token/"
    return DEFAULT_OAUTH_TOKEN_URL


def allows_http(oauth_override: str) -> bool:
    """Plain http only when the operator configured an http OAuth URL (the simulator in tests and Molecule)."""
    return oauth_override.lower().startswith("http://")


def origin(url: str) -> str:
    """`scheme://host:port` of a URL, lower-cased, '' when it has none (or a malformed port)."""
    try:
        parts = urlsplit(url or "")
        port = parts.port
    except ValueError:
        return ""
    if not parts.scheme or not parts.hostname:
        return ""
    scheme = parts.scheme.lower()
    port = port or {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{parts.hostname.lower()}:{port}"


def portal_endpoint(url: str, allow_http: bool) -> str:
    """A portal's REST endpoint as we store it (`https://host/rest/`), else AuthFailed UNTRUSTED_ENDPOINT (a
    hand-off keeps waiting: a Reinstall stores a usable endpoint)."""
    try:
        parts = urlsplit(url or "")
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise AuthFailed("UNTRUSTED_ENDPOINT", "the portal endpoint is not a URL") from exc
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme.lower() not in schemes or not parts.hostname:
        raise AuthFailed("UNTRUSTED_ENDPOINT", f"the portal endpoint must be an {'/'.join(schemes)} URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise AuthFailed("UNTRUSTED_ENDPOINT", "the portal endpoint carries credentials, a query or a fragment")
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}"


def portal_host(endpoint: str) -> str:
    """`host[:port]` of an endpoint: what Bitrix24 calls the portal's domain."""
    return urlsplit(endpoint).netloc.lower()


def same_origin(url: str, allowed: str) -> bool:
    return bool(origin(url)) and origin(url) == origin(allowed)
