"""Logging: one line per event, to B24BOT_LOG_FILE or stderr, with secrets masked as a last line of defence."""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from collections import deque
from pathlib import Path

from .config import Settings

FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
# Anything that looks like a token after a token-ish key, whatever logged it.
_TOKEN_RE = re.compile(
    r"(?i)((?:access_token|refresh_token|application_token|client_secret|auth)[\"']?\s*[=:]\s*[\"']?)[^&\s\"',]+"
)

# Control characters (newlines above all) would let a request forge log lines; they are shown escaped.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_MESSAGE = 2000  # characters of one log line's message; what a request sent is cut far shorter by clip()


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def clip(value: object, limit: int = 200) -> str:
    """Something a request sent, fit for a log line or an error body: at most `limit` characters, one line."""
    text = str(value)
    if len(text) > limit:
        text = f"{text[:limit]}...[{len(text) - limit} more chars]"
    return _CONTROL_RE.sub(_escape, text)


class RedactFilter(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = _TOKEN_RE.sub(r"\1***", msg)
        for secret in self.secrets:
            clean = clean.replace(secret, "***")
        if len(clean) > MAX_MESSAGE or _CONTROL_RE.search(clean):  # a last line of defence: one bounded line
            clean = clip(clean, MAX_MESSAGE)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


def configure(settings: Settings) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_b24bot", False):
            root.removeHandler(h)
    handler: logging.Handler
    if settings.log_file:
        try:
            Path(settings.log_file).parent.mkdir(parents=True, exist_ok=True)
            # Watched: logrotate moves the file and creates a new one; every worker reopens it by itself.
            handler = logging.handlers.WatchedFileHandler(settings.log_file, encoding="utf-8")
        except OSError as exc:
            handler = logging.StreamHandler(sys.stderr)
            print(f"b24bot: cannot open log file {settings.log_file}: {exc}; logging to stderr", file=sys.stderr)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler._b24bot = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactFilter([settings.client_secret, settings.api_token]))
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # urllib3 logs full URLs at DEBUG, and the OAuth refresh URL carries the client secret.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def set_level(level: str) -> None:
    logging.getLogger().setLevel(level)


def tail(path: str, lines: int) -> list[str]:
    """The last `lines` lines of the log file (already redacted when written)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return [line.rstrip("\n") for line in deque(fh, maxlen=lines)]
    except OSError:
        return []
