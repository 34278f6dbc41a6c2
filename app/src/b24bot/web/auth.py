"""The bearer-token check of /api/ and /api/admin/."""

from __future__ import annotations

import hmac
from typing import Any

from flask import jsonify, request

from .state import services


def require_token() -> Any:
    """A `before_request` hook: None lets the request through, anything else is the refusal to send."""
    expected = services().ctx.settings.api_token
    if not expected:
        return jsonify(error="the API is disabled: B24BOT_API_TOKEN is not set"), 503
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
        return jsonify(error="missing or wrong bearer token"), 401
    return None
