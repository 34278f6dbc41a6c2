"""The welcome-bot setup of Open Lines, shared by the v1 install and the Chatbots 2.0 registration."""

from __future__ import annotations

from typing import Any

from ..bitrix.errors import BitrixError


class InstallFailed(Exception):
    """The portal would not let us finish the install (HTTP 502); nothing was saved, a reinstall retries."""


def configure_lines(call: Any, mode: str, ids: list[int], bot_id: int, welcome_time: int) -> list[int]:
    """Make the bot the welcome bot of each line; all five fields in one call (the portal drops partial ones)."""
    if not mode:
        return []
    if mode == "all":
        try:
            found = call("imopenlines.config.list.get", {})
        except BitrixError as exc:
            raise InstallFailed(f"imopenlines.config.list.get failed: {exc}") from exc
        ids = sorted(int(line["ID"]) for line in (found or []) if isinstance(line, dict) and "ID" in line)
    for line_id in ids:
        try:
            call(
                "imopenlines.config.update",
                {
                    "CONFIG_ID": line_id,
                    "PARAMS": {
                        "WELCOME_BOT_ENABLE": "Y",
                        "WELCOME_BOT_JOIN": "always",
                        "WELCOME_BOT_ID": bot_id,
                        "WELCOME_BOT_TIME": welcome_time,
                        # close: the bot stays after the hand-off and keeps receiving client and operator messages.
                        "WELCOME_BOT_LEFT": "close",
                    },
                },
            )
        except BitrixError as exc:
            raise InstallFailed(f"imopenlines.config.update for line {line_id} failed: {exc}") from exc
    return ids
