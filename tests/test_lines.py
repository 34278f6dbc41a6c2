"""An Open Lines event parsed once: the same typed value from a v1 form and from a v2 event, read in one place."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import portal_v2
import pytest

import forms
from b24bot.bitrix import events as ev
from b24bot.bitrix import lines, v2

OURS = 456
PORTAL = forms.Portal("portal.example", "m1", "apptoken-1", "https://portal.example/rest/", "https://oauth.example/")
AUTH = ev.EventAuth("portal.example", "m1", "", "", "", "", "", None, None, "", "")
BOT = {"id": OURS, "code": "b", "type": "openline", "isSupportOpenline": True, "eventMode": "fetch", "isHidden": False}
BOT.update(isReactionsEnabled=True, backgroundId=None, language="en")
TS = 1773212400


def v1(kind: str, author: int, client: bool, text: str = "hi") -> lines.LinesEvent | None:
    entity = forms.lines_entity("telegrambot", 1, "ext42", 5001)
    if kind == "join":
        pairs = forms.join(PORTAL, OURS, 42, entity, ts=TS)
    else:
        name = "Guest" if client else "Operator Olga"
        pairs = forms.message(PORTAL, OURS, 42, 9, text, author, name, client, entity, 343, kind, ts=TS)
    return lines.from_v1(ev.parse(pairs), OURS)


def v2_event(kind: str, author: int, client: bool, text: str = "hi") -> lines.LinesEvent | None:
    step = {"kind": "update" if kind == "edit" else kind, "chat_id": 42, "message_id": 9, "text": text}
    step.update(client=client, author_id=author, session_id=343, ts=TS)
    etype, data = portal_v2.build(BOT, step)
    return v2.to_lines({"eventId": 7, "type": etype, "date": portal_v2._date(TS), "data": data}, AUTH, OURS)


def comparable(event: lines.LinesEvent | None) -> Any:
    """The value minus what differs by nature: the raw event; the chat title and the session's start (the
    simulated portals fill them in differently); a join's session and an edit's author name (v1 sends none)."""
    assert event is not None
    d = event.dialog
    session = replace(d.session, started_at=None) if event.name != ev.JOIN else ev.SessionData.parse("")
    name = event.author_name if event.name == ev.MESSAGE_ADD else None
    return replace(event, raw={}, dialog=replace(d, title=None, session=session, entity_data_2=""), author_name=name)


@pytest.mark.parametrize(
    "kind, author, client, role",
    [
        ("add", 5001, True, "client"),
        ("add", 7, False, "operator"),
        ("add", OURS, False, "bot"),  # not flagged as a bot by the portal: known by our id
        ("edit", 7, False, "operator"),
        ("join", 0, False, "system"),
    ],
)
def test_a_v1_form_and_a_v2_event_parse_to_the_same_value(kind: str, author: int, client: bool, role: str) -> None:
    one, two = v1(kind, author, client), v2_event(kind, author, client)
    assert comparable(one) == comparable(two)
    assert one is not None and one.role == role and one.dialog.entity.line_id == "1"
    if kind == "join":
        assert one.bot_id == OURS and one.message_id == 0
    else:
        assert (one.message_id, one.text, one.dialog.session.session_id, one.at) == (9, "hi", 343, ev.iso(TS))


def test_the_v1_value_reads_files_masks_secrets_and_refuses_what_cannot_be_stored() -> None:
    entity = forms.lines_entity("telegrambot", 1, "ext42", 5001)
    pairs = forms.message(PORTAL, OURS, 42, 9, "file", 5001, "Guest", True, entity, 343, ts=TS)
    pairs += [("data[PARAMS][FILES][11][id]", "11"), ("data[PARAMS][FILES][11][name]", "a.pdf")]
    pairs += [("data[PARAMS][FILES][11][size]", "2048"), ("data[PARAMS][FILES][11][urlDownload]", "https://x/a")]
    event = lines.from_v1(ev.parse(pairs), OURS)
    assert event is not None and event.files == (lines.Attachment(11, "a.pdf", 2048, "", "https://x/a"),)
    assert "BOT" not in event.raw["data"] and "apptoken-1" not in str(event.raw)  # the bot's token set stays out
    assert event.raw["auth"] == {"domain": "portal.example", "member_id": "m1"}
    huge = [(k, "9" * 30 if k == "data[PARAMS][FILES][11][size]" else v) for k, v in pairs]
    with pytest.raises(ev.OutOfRange):
        lines.from_v1(ev.parse(huge), OURS)
    group = [(k, "CHAT" if k == "data[PARAMS][CHAT_ENTITY_TYPE]" else v) for k, v in pairs]
    assert lines.from_v1(ev.parse(group), OURS) is None  # not an Open Lines chat: nothing to store
