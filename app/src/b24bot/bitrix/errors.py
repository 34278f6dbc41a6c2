"""Bitrix24 failures as exceptions a caller can act on."""

from __future__ import annotations


class BitrixError(Exception):
    """A REST or OAuth call failed. `code` is Bitrix24's stable `error` string (or a local one)."""

    def __init__(
        self, code: str, description: str = "", status: int | None = None, retry_at: float | None = None
    ) -> None:
        super().__init__(f"{code}: {description}" if description else code)
        self.code = code
        self.description = description
        self.status = status
        self.retry_at = retry_at  # unix time the portal named for retrying (`time.operating_reset_at`)

    @property
    def retryable(self) -> bool:
        """Worth trying again later: limits, timeouts, 5xx, network."""
        return self.code in RETRYABLE_CODES or (self.status is not None and self.status >= 500)


class NotInstalled(BitrixError):
    """No tokens: the app was never installed in a portal, or was uninstalled."""

    def __init__(self) -> None:
        super().__init__("NOT_INSTALLED", "the app is not installed in a Bitrix24 portal")


class AuthFailed(BitrixError):
    """The portal or the OAuth server rejected our credentials; a reinstall is needed."""


class LimitWaitExceeded(BitrixError):
    """The portal kept saying "over the limit" for longer than the caller was willing to wait."""


RATE_LIMIT_CODES = frozenset({"QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT"})
RETRYABLE_CODES = RATE_LIMIT_CODES | frozenset(
    {
        "NETWORK_ERROR",
        "TIMEOUT",
        "INTERNAL_SERVER_ERROR",
        "OVERLOAD_LIMIT",
        "ERROR_UNEXPECTED_ANSWER",
        "BAD_RESPONSE",
    }
)
