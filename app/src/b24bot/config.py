"""Settings from the environment. A bad value is reported, never fatal: the service must stay up."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = "/var/lib/b24bot"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_TRANSFER_RE = re.compile(r"^(operator|queue:\d+|user:\d+)$")
_USER_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_LINES_RE = re.compile(r"^(all|\d+(,\d+)*)?$")


@dataclass(frozen=True)
class Transfer:
    """Where a new dialog goes: the line's queue (`operator`), another line, or one employee."""

    kind: str  # operator | queue | user
    target: int | None = None

    @classmethod
    def parse(cls, raw: str) -> Transfer:
        if not _TRANSFER_RE.match(raw):
            raise ValueError(raw)
        if raw == "operator":
            return cls("operator")
        kind, _, num = raw.partition(":")
        return cls(kind, int(num))

    def __str__(self) -> str:
        return self.kind if self.target is None else f"{self.kind}:{self.target}"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    db_path: Path
    auth_path: Path
    client_id: str
    client_secret: str
    api_token: str
    handler_url: str
    portal_domain: str
    oauth_url: str
    bot_code: str
    bot_name: str
    transfer: Transfer
    lines: str  # "" | "all" | "1,2,3"
    log_file: str
    log_level: str
    rest_timeout: float
    rest_rate: float
    rest_burst: int
    retry_max: float
    download_files: bool
    file_max_mb: int
    retention_days: int
    retention_lines: dict[str, int]
    sync_window_hours: float
    sync_after_close: float
    sync_max_wait: float
    metrics: bool
    db_synchronous: str
    metrics_dir: Path
    welcome_bot_time: int
    viewer_users: dict[str, str] = field(default_factory=dict)  # user -> werkzeug password hash
    secret_key: str = ""
    timezone: str = "UTC"
    sla_minutes: float = 5.0
    viewer_secure_cookie: bool = False
    problems: tuple[str, ...] = field(default=())
    # Chatbots 2.0 (imbot.v2): see v2_settings(); defaults keep v1 behaviour.
    bot_api: str = "v1"
    v2_bot_code: str = "python_interceptor_bot_v2"
    event_mode: str = "fetch"
    webhook_url: str = ""
    bot_token_path: Path = Path(DEFAULT_DATA_DIR) / "bot-token"
    pump_idle_s: float = 5.0
    pump_busy_s: float = 2.0
    pump_limit: int = 100

    @property
    def line_ids(self) -> list[int]:
        if self.lines in ("", "all"):
            return []
        return [int(x) for x in self.lines.split(",")]


def _float(env: dict[str, str], key: str, default: float, problems: list[str]) -> float:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        problems.append(f"{key}={raw!r} is not a positive number; using {default}")
        return default
    return value


def _choice(raw: str, choices: tuple[str, ...], key: str, problems: list[str]) -> str:
    if not raw:
        return choices[0]
    if raw not in choices:
        problems.append(f"{key}={raw!r} is not one of {', '.join(choices)}; using {choices[0]}")
        return choices[0]
    return raw


def _days(raw: str, problems: list[str]) -> int:
    """B24BOT_RETENTION_DAYS: empty or 0 keeps everything."""
    if raw in ("", "0"):
        return 0
    if not raw.isdigit():
        problems.append(f"B24BOT_RETENTION_DAYS={raw!r} is not a number of days; keeping everything")
        return 0
    return int(raw)


def _retention_lines(raw: str, problems: list[str]) -> dict[str, int]:
    """`1:30,4:365` -> {"1": 30, "4": 365}: days to keep per Open Lines id."""
    out: dict[str, int] = {}
    for item in filter(None, (x.strip() for x in raw.split(","))):
        line, _, days = item.partition(":")
        if not line.isdigit() or not days.isdigit() or int(days) <= 0:
            problems.append(f"B24BOT_RETENTION_LINES item {item!r} is not <line id>:<days>; ignored")
            continue
        out[line] = int(days)
    return out


def _viewer_users(raw: str, problems: list[str]) -> dict[str, str]:
    """`alice:scrypt:...$...,bob:pbkdf2:...` (hashes from `b24bot passwd`; they hold no commas)."""
    out: dict[str, str] = {}
    for item in filter(None, (x.strip() for x in raw.split(","))):
        user, _, hashed = item.partition(":")
        if not _USER_RE.match(user) or "$" not in hashed:
            problems.append("B24BOT_VIEWER_USERS has an item that is not <user>:<hash from b24bot passwd>; ignored")
            continue
        out[user] = hashed
    return out


def _timezone(raw: str, problems: list[str]) -> str:
    if not raw:
        return "UTC"
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(raw)
    except (ValueError, KeyError, OSError, ImportError):
        problems.append(f"B24BOT_TIMEZONE={raw!r} is not a known time zone; using UTC")
        return "UTC"
    return raw


def _text(env: dict[str, str], key: str, default: str = "") -> str:
    """A variable's value without surrounding blanks (an env file's trailing space is a common typo)."""
    return env.get(key, default).strip()


def load(env: dict[str, str] | None = None) -> Settings:
    """Read B24BOT_* variables; every problem found is listed in `problems` instead of raising."""
    env = dict(os.environ if env is None else env)
    problems: list[str] = []
    get = partial(_text, env)
    data_dir = Path(get("B24BOT_DATA_DIR", DEFAULT_DATA_DIR) or DEFAULT_DATA_DIR)
    portal = _portal(env, problems)
    v2 = v2_settings(env, data_dir, problems)  # after _portal: it drops what v2 does not need from problems
    level = (get("B24BOT_LOG_LEVEL", "INFO") or "INFO").upper()
    if level not in LOG_LEVELS:
        problems.append(f"B24BOT_LOG_LEVEL={level!r} is invalid; using INFO")
        level = "INFO"
    return Settings(
        data_dir=data_dir,
        db_path=Path(get("B24BOT_DB_PATH") or data_dir / "dialogs.db"),
        auth_path=Path(get("B24BOT_AUTH_PATH") or data_dir / "auth.json"),
        log_file=get("B24BOT_LOG_FILE"),
        log_level=level,
        metrics_dir=Path(get("B24BOT_METRICS_DIR") or data_dir / "metrics"),
        **portal,
        **_pace(env, problems),
        **_viewer(env, problems),
        **v2,
        problems=tuple(problems),  # last: every reader above has added its own
    )


def _portal(env: dict[str, str], problems: list[str]) -> dict[str, Any]:
    """Who we are in the portal and what the bot does there: credentials, handler URL, bot, hand-off, lines."""
    get = partial(_text, env)
    for key in ("B24BOT_CLIENT_ID", "B24BOT_CLIENT_SECRET"):
        if not get(key):
            problems.append(f"{key} is not set: installs cannot be verified and tokens cannot be refreshed")
    if not get("B24BOT_API_TOKEN"):
        problems.append("B24BOT_API_TOKEN is not set: /api/ is disabled")
    handler_url = get("B24BOT_HANDLER_URL")
    if not handler_url:
        problems.append("B24BOT_HANDLER_URL is not set: the bot cannot be registered on install")
    elif not re.match(r"^https?://[^/]+/", handler_url):
        problems.append(f"B24BOT_HANDLER_URL={handler_url!r} is not an http(s) URL ending in a path")
    raw_transfer = get("B24BOT_TRANSFER", "operator") or "operator"
    try:
        transfer = Transfer.parse(raw_transfer)
    except ValueError:
        problems.append(
            f"B24BOT_TRANSFER={raw_transfer!r} is invalid (operator | queue:<line id> | user:<user id>);"
            " handing off to the line's queue"
        )
        transfer = Transfer("operator")
    lines = get("B24BOT_LINES").replace(" ", "")
    if not _LINES_RE.match(lines):
        problems.append(f"B24BOT_LINES={lines!r} is invalid (empty, all, or line ids like 1,3); lines left alone")
        lines = ""
    return {
        "client_id": get("B24BOT_CLIENT_ID"),
        "client_secret": get("B24BOT_CLIENT_SECRET"),
        "api_token": get("B24BOT_API_TOKEN"),
        "handler_url": handler_url,
        "portal_domain": get("B24BOT_PORTAL_DOMAIN").lower(),
        "oauth_url": get("B24BOT_OAUTH_URL"),
        "bot_code": get("B24BOT_BOT_CODE", "python_interceptor_bot") or "python_interceptor_bot",
        "bot_name": get("B24BOT_BOT_NAME", "Python Interceptor Bot") or "Python Interceptor Bot",
        "transfer": transfer,
        "lines": lines,
        "welcome_bot_time": int(_float(env, "B24BOT_WELCOME_BOT_TIME", 60, problems)),
    }


def _pace(env: dict[str, str], problems: list[str]) -> dict[str, Any]:
    """How hard we call the portal, how long we keep and re-read dialogs, and how the database syncs."""
    get = partial(_text, env)
    return {
        "rest_timeout": _float(env, "B24BOT_REST_TIMEOUT", 10.0, problems),
        "rest_rate": _float(env, "B24BOT_REST_RATE", 2.0, problems),
        "rest_burst": int(_float(env, "B24BOT_REST_BURST", 40, problems)),
        "retry_max": _float(env, "B24BOT_RETRY_MAX", 300.0, problems),
        "download_files": get("B24BOT_DOWNLOAD_FILES").lower() in ("1", "true", "yes", "on"),
        "file_max_mb": int(_float(env, "B24BOT_FILE_MAX_MB", 50, problems)),
        "retention_days": int(_float(env, "B24BOT_RETENTION_DAYS", 0, problems))
        if get("B24BOT_RETENTION_DAYS") != "0"
        else 0,
        "retention_lines": _retention_lines(get("B24BOT_RETENTION_LINES"), problems),
        "sync_window_hours": _float(env, "B24BOT_SYNC_WINDOW_HOURS", 48.0, problems),
        "sync_after_close": _float(env, "B24BOT_SYNC_AFTER_CLOSE_S", 60.0, problems),
        # Well under the 15-minute sync timer: a run that cannot get through gives up before the next one.
        "sync_max_wait": _float(env, "B24BOT_SYNC_MAX_WAIT_S", 300.0, problems),
        "metrics": get("B24BOT_METRICS").lower() in ("1", "true", "yes", "on"),
        "db_synchronous": _choice(
            get("B24BOT_DB_SYNCHRONOUS").upper(), ("NORMAL", "FULL"), "B24BOT_DB_SYNCHRONOUS", problems
        ),
    }


def _viewer(env: dict[str, str], problems: list[str]) -> dict[str, Any]:
    """The web viewer: its users, session key and cookie, the time zone it shows and the reply-time goal."""
    get = partial(_text, env)
    return {
        "viewer_users": _viewer_users(get("B24BOT_VIEWER_USERS"), problems),
        "secret_key": get("B24BOT_SECRET_KEY"),
        "timezone": _timezone(get("B24BOT_TIMEZONE"), problems),
        "sla_minutes": _float(env, "B24BOT_SLA_MINUTES", 5.0, problems),
        "viewer_secure_cookie": get("B24BOT_VIEWER_SECURE_COOKIE").lower() in ("1", "true", "yes", "on"),
    }


def _v2_code(env: dict[str, str]) -> str:
    """The v2 bot's own code: v1 and v2 bots share one registry, and registering a v1 bot's code again
    would hand back the v1 bot (whose events never reach Event.get)."""
    explicit = env.get("B24BOT_V2_BOT_CODE", "").strip()
    return explicit or (env.get("B24BOT_BOT_CODE", "").strip() or "python_interceptor_bot") + "_v2"


def v2_settings(env: dict[str, str], data_dir: Path, problems: list[str]) -> dict[str, object]:
    """B24BOT_BOT_API, B24BOT_EVENT_MODE, B24BOT_WEBHOOK_URL (a secret) and the event pump's pace."""
    get = partial(_text, env)
    bot_api = _choice(get("B24BOT_BOT_API").lower(), ("v1", "v2"), "B24BOT_BOT_API", problems)
    event_mode = _choice(get("B24BOT_EVENT_MODE").lower(), ("fetch", "webhook"), "B24BOT_EVENT_MODE", problems)
    webhook_url = get("B24BOT_WEBHOOK_URL")
    if webhook_url and not re.match(r"^https?://[^/]+/rest/\d+/[^/]+/?$", webhook_url):
        # Never echo the value: it is a secret like the client secret.
        problems.append("B24BOT_WEBHOOK_URL is not an inbound webhook URL (https://<portal>/rest/<user>/<secret>/)")
        webhook_url = ""
    if webhook_url and bot_api == "v1":
        problems.append("B24BOT_WEBHOOK_URL is used only with B24BOT_BOT_API=v2; ignored")
        webhook_url = ""
    if webhook_url and not webhook_url.endswith("/"):
        webhook_url += "/"
    if bot_api == "v2" and event_mode == "webhook" and webhook_url:
        problems.append(
            "B24BOT_EVENT_MODE=webhook verifies events with the OAuth install's application_token, which an inbound"
            " webhook does not have: use B24BOT_EVENT_MODE=fetch with B24BOT_WEBHOOK_URL"
        )
    unneeded = []  # what v1 needs and this v2 setup does not: not a problem here
    if bot_api == "v2" and webhook_url:
        unneeded += ["B24BOT_CLIENT_ID is not set", "B24BOT_CLIENT_SECRET is not set"]
    if bot_api == "v2" and event_mode == "fetch":
        unneeded.append("B24BOT_HANDLER_URL is not set")
    problems[:] = [p for p in problems if not p.startswith(tuple(unneeded))] if unneeded else problems
    limit = int(_float(env, "B24BOT_PUMP_LIMIT", 100, problems))
    if limit > 1000:
        problems.append(f"B24BOT_PUMP_LIMIT={limit} is over the portal's 1000; using 1000")
        limit = 1000
    return {
        "bot_api": bot_api,
        "v2_bot_code": _v2_code(env),
        "event_mode": event_mode,
        "webhook_url": webhook_url,
        "bot_token_path": Path(get("B24BOT_BOT_TOKEN_PATH") or data_dir / "bot-token"),
        "pump_idle_s": _float(env, "B24BOT_PUMP_IDLE_S", 5.0, problems),
        "pump_busy_s": _float(env, "B24BOT_PUMP_BUSY_S", 2.0, problems),
        "pump_limit": limit,
    }
