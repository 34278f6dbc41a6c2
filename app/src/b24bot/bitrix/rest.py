"""A thin Bitrix24 REST client on `requests`: timeouts, token refresh, limit back-off, clear errors."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urljoin

import requests

from .. import __version__
from .errors import RATE_LIMIT_CODES, AuthFailed, BitrixError, LimitWaitExceeded
from .ratelimit import LeakyBucket
from .tokens import TokenStore
from .trust import portal_endpoint, same_origin

log = logging.getLogger(__name__)

USER_AGENT = f"b24bot/{__version__}"
BACKOFF = (0.5, 1.0, 2.0)  # seconds between in-call retries on QUERY_LIMIT_EXCEEDED / OPERATION_TIME_LIMIT


def raw_call(
    session: requests.Session,
    endpoint: str,
    access_token: str,
    method: str,
    params: dict[str, Any],
    timeout: float,
    allow_http: bool = False,
) -> Any:
    """One POST to `{client_endpoint}{method}`; returns `result` or raises BitrixError. No retries here.

    Only the portal's own scheme+host is ever contacted, and the token goes nowhere else."""
    url = portal_endpoint(endpoint, allow_http) + method
    body = dict(params)
    body["auth"] = access_token
    resp = post_json(session, url, body, timeout, method)
    if resp.status_code in (301, 302, 307, 308) and resp.headers.get("Location"):
        # A portal answers 302 after some moves; following it would turn the POST into a GET and drop the
        # body, so it is re-posted, but only on the same host: the body carries the token.
        target = urljoin(url, resp.headers["Location"])
        if not same_origin(target, url):
            raise AuthFailed(  # kept and retried after the Reinstall that records the new address
                "REDIRECT_REFUSED",
                f"{method}: the portal redirects to another host; reinstall the app from the portal's new address",
                resp.status_code,
            )
        resp = post_json(session, target, body, timeout, method)
    return result_of(resp, method)


def post_json(session: requests.Session, url: str, body: dict[str, Any], timeout: float, method: str) -> Any:
    """POST a JSON body, redirects not followed; raises BitrixError TIMEOUT / NETWORK_ERROR."""
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    try:
        return session.post(url, json=body, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.Timeout as exc:
        raise BitrixError("TIMEOUT", f"{method}: no answer within {timeout:g}s") from exc
    except requests.RequestException as exc:
        raise BitrixError("NETWORK_ERROR", f"{method}: {exc.__class__.__name__}") from exc


def result_of(resp: requests.Response, method: str) -> Any:
    """`result` of a REST answer; raises BitrixError with Bitrix24's own `error` (and its reset time), or
    BAD_RESPONSE for anything that is not a REST answer."""
    try:
        payload = resp.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "error" in payload:
        raise BitrixError(
            str(payload["error"]), str(payload.get("error_description", "")), resp.status_code, _reset_at(payload)
        )
    if resp.status_code != 200 or not isinstance(payload, dict) or "result" not in payload:
        raise BitrixError("BAD_RESPONSE", f"{method}: HTTP {resp.status_code}", resp.status_code)
    return payload["result"]


class RestClient:
    """Calls the installed portal with the stored admin tokens."""

    def __init__(
        self,
        tokens: TokenStore,
        limiter: LeakyBucket | None = None,
        timeout: float = 10.0,
        session: requests.Session | None = None,
        backoff: tuple[float, ...] = BACKOFF,
    ) -> None:
        self.tokens = tokens
        self.limiter = limiter
        self.timeout = timeout
        self.session = session or requests.Session()
        self.backoff = backoff

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        params = params or {}
        refreshed = False
        attempt = 0
        while True:
            auth = self.tokens.current()
            if self.limiter is not None:
                self.limiter.acquire()
            try:
                return raw_call(
                    self.session,
                    str(auth["client_endpoint"]),
                    str(auth["access_token"]),
                    method,
                    params,
                    self.timeout,
                    self.tokens.allow_http,
                )
            except BitrixError as exc:
                if exc.code == "expired_token" and not refreshed:
                    refreshed = True
                    self.tokens.refresh(stale_access_token=str(auth["access_token"]))
                    continue
                if exc.code in ("invalid_token", "NO_AUTH_FOUND"):
                    raise AuthFailed(exc.code, f"{exc.description}; reinstall the app in Bitrix24", exc.status) from exc
                if exc.code in RATE_LIMIT_CODES and attempt < len(self.backoff):
                    if self.limiter is not None:
                        self.limiter.penalize()
                    delay = self.backoff[attempt]
                    attempt += 1
                    log.warning("%s: %s, retrying in %.1fs", method, exc.code, delay)
                    time.sleep(delay)
                    continue
                raise

    def batch(self, calls: dict[str, tuple[str, dict[str, Any]]]) -> tuple[dict[str, Any], dict[str, BitrixError]]:
        """Up to 50 calls in one request (one unit of the portal's rate limit). Returns (results, errors)."""
        if len(calls) > BATCH_MAX:
            raise ValueError(f"a batch holds at most {BATCH_MAX} calls")
        cmd = {key: f"{method}?{urlencode(_flatten(params))}" for key, (method, params) in calls.items()}
        answer = self.call("batch", {"halt": 0, "cmd": cmd})
        results = dict(answer.get("result") or {}) if isinstance(answer, dict) else {}
        errors = {}
        raw_errors = answer.get("result_error") if isinstance(answer, dict) else None
        timings = answer.get("result_time") if isinstance(answer, dict) else None
        for key, err in (raw_errors or {}).items():
            if isinstance(err, dict):
                timing = timings.get(key) if isinstance(timings, dict) else None
                reset = _reset_at({"time": timing}) if isinstance(timing, dict) else None
                errors[key] = BitrixError(
                    str(err.get("error", "ERROR")), str(err.get("error_description", "")), retry_at=reset
                )
        return results, errors


BATCH_MAX = 50


def _flatten(params: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested params as PHP-style query pairs, the form batch sub-calls take."""
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict):
            out += _flatten(value, name)
        elif isinstance(value, (list, tuple)):
            out += _flatten({str(i): v for i, v in enumerate(value)}, name)
        else:
            out.append((name, str(value)))
    return out


def open_download(
    session: requests.Session, url: str, endpoint: str, access_token: str, timeout: float, allow_http: bool = False
) -> requests.Response:
    """GET a portal file (streamed). Only a URL on the portal's own scheme+host gets the token; redirects are not
    followed (they could lead anywhere, token in hand). The caller reads and closes the answer."""
    portal = portal_endpoint(endpoint, allow_http)
    if not same_origin(url, portal):
        raise BitrixError("FOREIGN_HOST", "the file is not on the portal's host; not fetched")
    try:
        resp = session.get(url, params={"auth": access_token}, stream=True, timeout=timeout, allow_redirects=False)
    except requests.Timeout as exc:
        raise BitrixError("TIMEOUT", f"file download: no answer within {timeout:g}s") from exc
    except requests.RequestException as exc:
        raise BitrixError("NETWORK_ERROR", f"file download: {exc.__class__.__name__}") from exc
    if resp.status_code != 200:
        resp.close()
        code = "REDIRECT_REFUSED" if 300 <= resp.status_code < 400 else "HTTP_ERROR"
        raise BitrixError(code, f"file download: HTTP {resp.status_code}", resp.status_code)
    return resp


def _reset_at(payload: dict[str, Any]) -> float | None:
    """`time.operating_reset_at` of an answer (OPERATION_TIME_LIMIT names when the method is usable again)."""
    timing = payload.get("time")
    try:
        value = float(timing["operating_reset_at"]) if isinstance(timing, dict) else 0.0
    except (KeyError, TypeError, ValueError):
        return None
    return value if value > 0 else None


class Patience:
    """How an unattended job (sync, backfill) waits out the portal's limits, which Bitrix24 shares between
    every app calling from one address: back off with jitter, or until `operating_reset_at` when the portal
    names it, and give up (LimitWaitExceeded) only after `max_wait` seconds without progress. The live
    hand-off path does not use this: it keeps RestClient's short in-call BACKOFF and its own retry queue."""

    def __init__(
        self,
        max_wait: float,
        first: float = 1.0,
        cap: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_wait = max_wait
        self.first, self.cap = first, cap
        self.sleep = sleep
        self.stalled_since: float | None = None
        self.attempt = 0
        self.waited = 0.0  # in total, for the report

    def progress(self) -> None:
        self.stalled_since, self.attempt = None, 0

    def wait(self, exc: BitrixError) -> None:
        now = time.monotonic()
        if self.stalled_since is None:
            self.stalled_since = now
        left = self.max_wait - (now - self.stalled_since)
        jitter = random.uniform(0.8, 1.2)  # noqa: S311 - spreads retries, not crypto
        delay = min(self.cap, self.first * 2.0**self.attempt) * jitter
        if exc.retry_at is not None:
            delay = max(0.0, exc.retry_at - time.time()) + random.uniform(0.0, 1.0)  # noqa: S311
        if left <= 0 or (exc.retry_at is not None and delay > left):
            raise LimitWaitExceeded(
                exc.code,
                f"the portal kept answering {exc.code} for {now - self.stalled_since:.0f}s"
                f" (B24BOT_SYNC_MAX_WAIT_S={self.max_wait:g}); progress so far is kept, the next run goes on",
                exc.status,
            ) from exc
        delay = min(delay, left)
        self.attempt += 1
        self.waited += delay
        log.warning(
            "%s from the portal: waiting %.1fs (%.0fs of %gs allowed)",
            exc.code,
            delay,
            now - self.stalled_since,
            self.max_wait,
        )
        self.sleep(delay)


def _over_limit(client: RestClient, patience: Patience, exc: BitrixError) -> None:
    """Tell the shared bucket (the request rate is what QUERY_LIMIT_EXCEEDED is about), then wait."""
    if exc.code == "QUERY_LIMIT_EXCEEDED" and client.limiter is not None:
        client.limiter.penalize()
    patience.wait(exc)


def patient_call(client: RestClient, patience: Patience, method: str, params: dict[str, Any]) -> Any:
    while True:
        try:
            result = client.call(method, params)
        except BitrixError as exc:
            if exc.code not in RATE_LIMIT_CODES:
                raise
            _over_limit(client, patience, exc)
            continue
        patience.progress()
        return result


def patient_batch(
    client: RestClient, patience: Patience, calls: dict[str, tuple[str, dict[str, Any]]]
) -> tuple[dict[str, Any], dict[str, BitrixError]]:
    """RestClient.batch that also waits out limits hit by single sub-calls, repeating only those."""
    results: dict[str, Any] = {}
    errors: dict[str, BitrixError] = {}
    todo = dict(calls)
    while todo:
        try:
            got, failed = client.batch(todo)
        except BitrixError as exc:
            if exc.code not in RATE_LIMIT_CODES:
                raise
            _over_limit(client, patience, exc)
            continue
        results.update(got)
        limited = {key: err for key, err in failed.items() if err.code in RATE_LIMIT_CODES}
        errors.update({key: err for key, err in failed.items() if key not in limited})
        if got or not limited:
            patience.progress()
        todo = {key: todo[key] for key in limited}
        if limited:
            _over_limit(client, patience, next(iter(limited.values())))
    return results, errors
