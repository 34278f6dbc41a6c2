"""Bitrix24 event bodies as the portal sends them: form-encoded, PHP-style keys, every value a string.

Built from the documented samples in samples/ (stdlib only: this file is also copied into test containers).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

SAMPLES = Path(__file__).resolve().parent / "samples"


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    """{"a": {"b": 1}} -> [("a[b]", "1")], the way PHP's http_build_query writes it."""
    if isinstance(obj, dict):
        out: list[tuple[str, str]] = []
        for key, value in obj.items():
            out += flatten(value, f"{prefix}[{key}]" if prefix else str(key))
        return out
    if isinstance(obj, list):
        return flatten({str(i): v for i, v in enumerate(obj)}, prefix)
    if obj is None:
        return [(prefix, "")]
    if isinstance(obj, bool):
        return [(prefix, "Y" if obj else "N")]
    return [(prefix, str(obj))]


def encode(pairs: list[tuple[str, str]]) -> bytes:
    return urlencode(pairs).encode()


class Portal:
    """What a portal puts in every event: its identity and the application token the app saw at install."""

    def __init__(
        self, domain: str, member_id: str, application_token: str, client_endpoint: str, server_endpoint: str
    ) -> None:
        self.domain = domain
        self.member_id = member_id
        self.application_token = application_token
        self.client_endpoint = client_endpoint
        self.server_endpoint = server_endpoint

    @classmethod
    def from_install(cls, auth: dict[str, Any]) -> Portal:
        return cls(
            auth["domain"],
            auth["member_id"],
            auth["application_token"],
            auth["client_endpoint"],
            auth["server_endpoint"],
        )

    def event_auth(self, user_id: str = "0") -> dict[str, str]:
        # Open Lines events usually carry no user tokens (the hit is the client's or the system's).
        return {
            "domain": self.domain,
            "server_endpoint": self.server_endpoint,
            "client_endpoint": self.client_endpoint,
            "member_id": self.member_id,
            "application_token": self.application_token,
            "user_id": user_id,
            "status": "L",
            "scope": "imbot,imopenlines,user",
        }

    def bot_block(self, bot_id: int, template: dict[str, Any]) -> dict[str, Any]:
        """data[BOT][<id>]: the bot's own token set, shaped like the sample's."""
        ((_, block),) = template.items()
        block = copy.deepcopy(block)
        for target in (block, block.get("AUTH", {})):
            target.update(
                {
                    "domain": self.domain,
                    "client_endpoint": self.client_endpoint,
                    "server_endpoint": self.server_endpoint,
                    "member_id": self.member_id,
                    "application_token": self.application_token,
                    "user_id": str(bot_id),
                }
            )
        block["BOT_ID"] = str(bot_id)
        return {str(bot_id): block}


def install(auth: dict[str, Any], ts: int | None = None) -> list[tuple[str, str]]:
    body = sample("onappinstall")
    body["auth"] = {**body["auth"], **{k: str(v) for k, v in auth.items()}}
    body["ts"] = str(ts or int(time.time()))
    return flatten(body)


def uninstall(portal: Portal) -> list[tuple[str, str]]:
    body = sample("onappuninstall")
    body["auth"] = {k: v for k, v in portal.event_auth().items() if k not in ("user_id", "scope", "status")}
    body["ts"] = str(int(time.time()))
    return flatten(body)


def bot_delete(portal: Portal, bot_id: int, bot_code: str) -> list[tuple[str, str]]:
    body = sample("botdelete")
    body["data"] = {"BOT_ID": str(bot_id), "BOT_CODE": bot_code}
    body["auth"] = portal.event_auth()
    return flatten(body)


def lines_entity(connector: str, line_id: int, external_chat: str, client_user: int) -> str:
    return f"{connector}|{line_id}|{external_chat}|{client_user}"


def session_data(session_id: int, started: int, line_id: int = 0) -> str:
    """CHAT_ENTITY_DATA_1: CRM|type|id|PAUSE|WAIT|SESSION_ID|DATE_CREATE|LINE_ID|BLOCK_DATE|BLOCK_REASON."""
    return f"Y|LEAD|{1000 + session_id}|N|N|{session_id}|{started}|{line_id}|0|0"


def join(portal: Portal, bot_id: int, chat_id: int, entity_id: str, ts: int | None = None) -> list[tuple[str, str]]:
    body = sample("joinchat_group")
    body["data"]["BOT"] = portal.bot_block(bot_id, body["data"]["BOT"])
    body["data"]["PARAMS"] = {
        **body["data"]["PARAMS"],
        "CHAT_TYPE": "L",
        "MESSAGE_TYPE": "L",
        "BOT_ID": str(bot_id),
        "USER_ID": "0",
        "CHAT_ID": str(chat_id),
        "CHAT_AUTHOR_ID": "0",
        "CHAT_ENTITY_TYPE": "LINES",
        "CHAT_ENTITY_ID": entity_id,
        "DIALOG_ID": f"chat{chat_id}",
    }
    body["data"]["USER"] = {}  # the welcome bot is added by the system: no acting user
    body["ts"] = str(ts or int(time.time()))
    body["auth"] = portal.event_auth()
    return flatten(body)


def message(
    portal: Portal,
    bot_id: int,
    chat_id: int,
    message_id: int,
    text: str,
    author_id: int,
    author_name: str,
    is_client: bool,
    entity_id: str,
    session_id: int | None = None,
    kind: str = "add",
    system: bool = False,
    ts: int | None = None,
    title: str | None = None,
) -> list[tuple[str, str]]:
    """ONIMBOTMESSAGEADD (kind=add), ...UPDATE (edit) or ...DELETE (delete) in an Open Lines chat."""
    name = {"add": "msgadd_group", "edit": "msgupdate_group", "delete": "msgdelete_group"}[kind]
    body = sample(name)
    now = ts or int(time.time())
    body["data"]["BOT"] = portal.bot_block(bot_id, body["data"]["BOT"])
    params = body["data"]["PARAMS"]
    params.update(
        {
            "MESSAGE": text,
            "MESSAGE_ORIGINAL": text,
            "MESSAGE_TYPE": "L",
            "CHAT_TYPE": "L",
            "AUTHOR_ID": str(author_id),
            "CHAT_ID": str(chat_id),
            "DIALOG_ID": f"chat{chat_id}",
            "CHAT_AUTHOR_ID": "0",
            "CHAT_ENTITY_TYPE": "LINES",
            "CHAT_ENTITY_ID": entity_id,
            "CHAT_ENTITY_DATA_1": session_data(session_id, now) if session_id else "",
            "CHAT_ENTITY_DATA_2": f"LEAD|{1000 + (session_id or 0)}|COMPANY|0|CONTACT|0|DEAL|0",
            "CHAT_ENTITY_DATA_3": "N",
            "MESSAGE_ID": str(message_id),
            "SYSTEM": "Y" if system else "N",
            "TO_USER_ID": "0",
        }
    )
    params.pop("MENTIONED_LIST", None)
    if kind == "add":
        title = title or f"Guest #{chat_id}"
        params.update({"FROM_USER_ID": str(author_id), "TO_CHAT_ID": str(chat_id), "CHAT_TITLE": title})
        body["data"]["USER"] = {
            **body["data"]["USER"],
            "ID": str(author_id),
            "NAME": author_name,
            "FIRST_NAME": author_name,
            "LAST_NAME": "",
            "IS_CONNECTOR": "Y" if is_client else "N",
        }
    else:
        params["ID"] = str(message_id)
    body["ts"] = str(now)
    body["auth"] = portal.event_auth(str(author_id))
    return flatten(body)
