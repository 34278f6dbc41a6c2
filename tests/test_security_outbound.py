"""The trust boundary, tried as an attacker would: outbound calls and downloads go only to the pinned portal."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests
from attacker import Listener

import forms
from b24bot.bitrix.errors import BitrixError
from b24bot.bitrix.rest import open_download, raw_call
from conftest import App

# ---- 2 + 5: outbound calls only to the pinned portal (real sockets, in-process client) ------------------------


@pytest.fixture
def redirector(attacker: Listener) -> Iterator[Listener]:
    lst = Listener(302, {}, location=f"{attacker.url}/rest/app.info")
    yield lst
    lst.close()


def test_rest_client_refuses_a_redirect_to_another_host(redirector: Listener, attacker: Listener) -> None:
    with pytest.raises(BitrixError) as err:
        raw_call(requests.Session(), f"{redirector.url}/rest/", "tok", "app.info", {}, 2, allow_http=True)
    assert err.value.code == "REDIRECT_REFUSED"
    assert redirector.connections == 1 and attacker.connections == 0


def test_rest_client_reposts_a_redirect_on_the_same_host() -> None:
    relative = Listener(307, {"result": True}, location="/rest/moved/")
    try:
        with pytest.raises(BitrixError) as err:  # re-posted once to the same host, which answers 307 again
            raw_call(requests.Session(), f"{relative.url}/rest/", "tok", "event.bind", {}, 2, True)
        assert err.value.code == "BAD_RESPONSE"
        assert relative.requests == ["POST /rest/event.bind", "POST /rest/moved/"]
    finally:
        relative.close()


def test_rest_client_requires_https_unless_http_was_configured(attacker: Listener) -> None:
    with pytest.raises(BitrixError) as err:
        raw_call(requests.Session(), f"{attacker.url}/rest/", "tok", "app.info", {}, 2)
    assert err.value.code == "UNTRUSTED_ENDPOINT" and attacker.connections == 0


def test_download_only_from_the_portal_host_and_never_through_a_redirect(
    redirector: Listener, attacker: Listener
) -> None:
    session = requests.Session()
    portal_endpoint = f"{redirector.url}/rest/"
    with pytest.raises(BitrixError) as err:
        open_download(session, f"{attacker.url}/file.bin", portal_endpoint, "secret-token", 2, True)
    assert err.value.code == "FOREIGN_HOST"
    with pytest.raises(BitrixError) as err:
        open_download(session, f"{redirector.url}/disk/1", portal_endpoint, "secret-token", 2, True)
    assert err.value.code == "REDIRECT_REFUSED"
    assert attacker.connections == 0 and redirector.connections == 1


def test_sync_download_of_a_foreign_url_never_sends_the_token(installed: App, attacker: Listener) -> None:
    pairs = forms.message(
        installed.portal_ids,
        installed.bot_id,
        44,
        4401,
        "see file",
        5001,
        "Guest",
        True,
        forms.lines_entity("telegrambot", 1, "ext44", 5001),
        300,
    )
    pairs += [
        ("data[PARAMS][FILES][77][id]", "77"),
        ("data[PARAMS][FILES][77][name]", "x.pdf"),
        ("data[PARAMS][FILES][77][urlDownload]", f"{attacker.url}/disk/downloadFile/77/"),
    ]
    assert installed.post(pairs).status_code == 200
    run = subprocess.run(
        [sys.executable, "-m", "b24bot", "sync", "--download"], env=installed.env, capture_output=True, text=True
    )
    report = json.loads(run.stdout)
    assert "file 77: FOREIGN_HOST" in report["errors"] and report["downloaded"] == 0
    assert attacker.connections == 0
