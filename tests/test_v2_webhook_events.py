"""Chatbots 2.0 in webhook event mode: the portal posts v2 events (form-encoded, every scalar a string) to
POST /v2/events; they are verified by the install's application_token and take the same ingest path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import portal_v2
import pytest
import requests
from v2kit import cli, v2_env, v2_state

import forms
from conftest import HANDLER_URL, App, PortalSim, free_port, wait_for


def webhook_form(app: App, bot: dict[str, Any], step: dict[str, Any], token: str | None = None) -> bytes:
    """A v2 event as the portal posts it: http_build_query, so booleans are "1"/"0" and null is ""."""
    etype, data = portal_v2.build(bot, step)
    data["bot"] = {"id": bot["id"], "code": bot["code"], "auth": {"access_token": "bot-access-secret"}}

    def strings(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: strings(x) for k, x in v.items()}
        if isinstance(v, bool):
            return "1" if v else "0"
        return "" if v is None else v

    assert app.portal_ids
    auth = {"domain": app.portal_ids.domain, "application_token": token or app.portal_ids.application_token}
    return forms.encode(forms.flatten({"event": etype, "data": strings(data), "ts": 1_800_000_000, "auth": auth}))


@pytest.fixture
def hooked(tmp_path: Path, portal: PortalSim) -> Iterator[tuple[App, dict[str, Any]]]:
    app = App(tmp_path, portal, free_port())
    app.start()
    assert app.install().status_code == 200  # webhook event mode needs the OAuth install to verify events
    app.stop()
    app.env_extra = v2_env(portal, webhook=False, B24BOT_EVENT_MODE="webhook")
    assert cli(app, "register").returncode == 0
    app.start()
    (bot,) = v2_state(portal)["bots"].values()
    yield app, bot
    app.stop()


def post(app: App, body: bytes) -> requests.Response:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return requests.post(app.url + "v2/events", data=body, headers=headers, timeout=10)


def test_webhook_events_take_the_same_path(hooked: tuple[App, dict[str, Any]], portal: PortalSim) -> None:
    app, bot = hooked
    assert bot["eventMode"] == "webhook" and bot["webhookUrl"] == HANDLER_URL + "v2/events"
    assert not (app.data_dir / "pump.lock").exists()  # no poller in webhook mode
    assert post(app, webhook_form(app, bot, {"kind": "join", "chat_id": 77})).status_code == 200
    wait_for(lambda: portal.handoffs(77), what="hand-off")
    steps = [
        {"kind": "add", "chat_id": 77, "message_id": 701, "text": "hello"},
        {"kind": "add", "chat_id": 77, "message_id": 702, "text": "operator here", "client": False},
        {"kind": "update", "chat_id": 77, "message_id": 701, "text": "hello, edited"},
        {"kind": "delete", "chat_id": 77, "message_id": 702, "client": False},
    ]
    for step in steps:
        assert post(app, webhook_form(app, bot, step)).status_code == 200
    assert post(app, webhook_form(app, bot, steps[0])).status_code == 200  # a repeat stores nothing twice
    items = app.api("dialogs/77/messages").json()["items"]
    assert [(m["message_id"], m["author_role"], m["text"], m["edited"], m["deleted"]) for m in items] == [
        (701, "client", "hello, edited", True, False),
        (702, "operator", "operator here", False, True),
    ]
    with app.db() as db:
        assert all("bot-access-secret" not in r[0] for r in db.execute("SELECT payload FROM events"))
    assert len(portal.handoffs(77)) == 1


def test_unverified_or_malformed_webhook_events_change_nothing(hooked: tuple[App, dict[str, Any]]) -> None:
    app, bot = hooked
    before = app.count("events")
    forged = webhook_form(app, bot, {"kind": "join", "chat_id": 78}, token="not-the-app-token")
    assert post(app, forged).status_code == 401
    assert post(app, b"event=ONIMBOTV2JOINCHAT").status_code == 400
    assert requests.post(app.url + "v2/events", json={"event": "x"}, timeout=5).status_code == 400
    no_chat = forms.encode(
        forms.flatten(
            {"event": "ONIMBOTV2MESSAGEADD", "data": {"message": {"id": "1"}}, "auth": {"application_token": ""}}
        )
    )
    assert post(app, no_chat).status_code == 401
    assert app.portal_ids
    verified_no_chat = forms.encode(
        forms.flatten(
            {
                "event": "ONIMBOTV2MESSAGEADD",
                "data": {"message": {"id": "1"}},
                "auth": {"application_token": app.portal_ids.application_token},
            }
        )
    )
    assert post(app, verified_no_chat).status_code == 400
    assert app.count("events") == before and app.count("dialogs") == 0


def test_webhook_route_is_off_in_fetch_mode(tmp_path: Path, portal: PortalSim) -> None:
    app = App(tmp_path, portal, free_port())
    app.env_extra = v2_env(portal)
    app.start()
    try:
        assert requests.post(app.url + "v2/events", data={"event": "ONIMBOTV2JOINCHAT"}, timeout=5).status_code == 404
    finally:
        app.stop()
