"""The trust boundary, tried as an attacker would: forged installs, SSRF before verification, the portal pin."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import requests
from attacker import Listener

import forms
from conftest import App, PortalSim, wait_for


def forged_install(app: App, attacker: Listener, **extra: str) -> requests.Response:
    """The report's forged ONAPPINSTALL: every address points at the attacker, the tokens are made up."""
    host = f"127.0.0.1:{attacker.port}"
    auth = {
        **app.portal.get("install"),
        "domain": host,
        "client_endpoint": f"{attacker.url}/rest/",
        "server_endpoint": f"{attacker.url}/rest/",
        "access_token": "attacker-access",
        "refresh_token": "attacker-refresh",
        "member_id": "a" * 32,
        "expires": "1",
        **extra,
    }
    return app.post(forms.install(auth))


# ---- 1 + 2: install takeover and SSRF before verification ----------------------------------------------------


def test_forged_install_after_the_real_one_is_refused_and_never_reaches_the_attacker(
    app: App, portal: PortalSim, attacker: Listener
) -> None:
    app.env_extra = {"B24BOT_PORTAL_DOMAIN": ""}  # the role's default: no domain pin configured
    app.restart()
    assert app.install().status_code == 200
    before = (app.data_dir / "auth.json").read_bytes()
    for extra in ({}, {"member_id": app.portal_ids.member_id}, {"client_endpoint": f"{attacker.url}/rest/#"}):
        resp = forged_install(app, attacker, **extra)
        assert resp.status_code == 403, resp.text
    assert (app.data_dir / "auth.json").read_bytes() == before
    assert attacker.connections == 0  # not app.info, not the OAuth refresh, not anything
    app.join(41)  # the real portal is still the installed one
    assert app.message(41, 4101, "still here").status_code == 200
    wait_for(lambda: app.api("dialogs/41").json()["transferred_at"], what="hand-off to the real portal")


def test_install_with_client_credentials_unset_is_refused_without_any_call(
    app: App, portal: PortalSim, attacker: Listener
) -> None:
    app.env_extra = {"B24BOT_CLIENT_ID": "", "B24BOT_PORTAL_DOMAIN": ""}
    app.restart()
    for resp in (forged_install(app, attacker), app.install()):
        assert resp.status_code == 403
        assert "B24BOT_CLIENT_ID and B24BOT_CLIENT_SECRET are not set" in resp.json()["error"]
    assert app.auth_json() is None
    assert attacker.connections == 0
    assert portal.calls() == [] and portal.get("state")["refreshes"] == 0


def test_without_an_oauth_url_only_bitrix24_oauth_hosts_are_asked(app: App, attacker: Listener) -> None:
    """Production settings (no B24BOT_OAUTH_URL): the secret may go to Bitrix24's OAuth servers only. An HTTPS proxy
    that refuses everything stands in for the internet and tells which host the app tried."""
    proxy = Listener(403, {"error": "no"})
    proxy_url = f"http://127.0.0.1:{proxy.port}"
    app.env_extra = {
        "B24BOT_OAUTH_URL": "",
        "B24BOT_PORTAL_DOMAIN": "",
        **{k: proxy_url for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")},
        **{k: "" for k in ("NO_PROXY", "no_proxy")},
    }
    try:
        app.restart()
        assert forged_install(app, attacker).status_code == 502  # OAuth server unreachable: nothing saved
        tech = forged_install(app, attacker, server_endpoint="https://oauth.bitrix24.tech/rest/")
        assert tech.status_code == 502
        assert attacker.connections == 0
        assert proxy.requests == [
            "CONNECT oauth.bitrix.info:443",
            "CONNECT oauth.bitrix24.tech:443",
        ]
        assert app.auth_json() is None
    finally:
        proxy.close()


def test_the_refresh_token_of_another_portal_proves_nothing(app: App, portal: PortalSim) -> None:
    """A genuine token pair of portal A sent with portal B's identity: the OAuth answer names A, so it is refused."""
    auth = portal.get("install")
    resp = app.post(forms.install({**auth, "member_id": "b" * 32}))
    assert resp.status_code == 403 and "member_id" in resp.json()["error"]
    assert app.auth_json() is None and portal.calls("imbot.register") == []


def test_token_refresh_never_follows_a_forged_server_endpoint(installed: App, attacker: Listener) -> None:
    """auth.json naming another OAuth host (an older version took it from a request): the refresh still goes to
    Bitrix24's OAuth server. Production settings; a refusing HTTPS proxy shows which host was tried."""
    proxy = Listener(403, {"error": "no"})
    path = installed.data_dir / "auth.json"
    data = json.loads(path.read_text())
    data["server_endpoint"] = f"{attacker.url}/rest/"
    data["installed_at"] = int(time.time()) - 8 * 86400  # due for the weekly renewal
    path.write_text(json.dumps(data))
    env = {
        **installed.env,
        "B24BOT_OAUTH_URL": "",
        **{k: f"http://127.0.0.1:{proxy.port}" for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")},
        **{k: "" for k in ("NO_PROXY", "no_proxy")},
    }
    try:
        subprocess.run([sys.executable, "-m", "b24bot", "sync"], env=env, capture_output=True, timeout=60)
        assert proxy.requests == ["CONNECT oauth.bitrix.info:443"]
        assert attacker.connections == 0
    finally:
        proxy.close()


# ---- pinning ---------------------------------------------------------------------------------------------------


def test_the_first_portal_is_pinned_until_reset_install(installed: App, portal: PortalSim) -> None:
    first = installed.portal_ids
    assert installed.post(forms.uninstall(first)).status_code == 200  # auth.json is gone now
    assert installed.auth_json() is None
    assert installed.install().status_code == 200  # the same portal may come back
    portal.post("reset")  # another portal (new member_id), with a genuine install
    resp = installed.install()
    assert resp.status_code == 403 and "b24bot reset-install" in resp.json()["error"]
    assert installed.auth_json()["member_id"] == first.member_id
    assert portal.get("state")["refreshes"] == 0  # refused before its tokens were even spent
    run = subprocess.run(
        [sys.executable, "-m", "b24bot", "reset-install"], env=installed.env, capture_output=True, text=True
    )
    assert run.returncode == 0 and json.loads(run.stdout)["unpinned_member_id"] == first.member_id
    assert installed.install().status_code == 200
    assert installed.auth_json()["member_id"] == portal.get("install")["member_id"] != first.member_id


def test_the_pin_survives_an_uninstall(installed: App, portal: PortalSim) -> None:
    assert installed.post(forms.uninstall(installed.portal_ids)).status_code == 200
    assert installed.auth_json() is None
    portal.post("reset")
    resp = installed.install()
    assert resp.status_code == 403 and "reset-install" in resp.json()["error"]
    assert installed.auth_json() is None


def test_an_instance_installed_before_pinning_is_pinned_to_its_portal(installed: App, portal: PortalSim) -> None:
    with installed.db() as conn:  # as an older version left it: auth.json, no pin
        conn.execute("DELETE FROM settings WHERE key LIKE 'portal_%'")
    portal.post("reset")
    resp = installed.install()
    assert resp.status_code == 403 and "reset-install" in resp.json()["error"]


def test_reinstall_from_the_same_portal_keeps_working(installed: App, portal: PortalSim) -> None:
    installed.join(43)
    for _ in range(2):
        portal.post("reinstall")
        assert installed.install().status_code == 200
    assert installed.auth_json()["access_token"] == portal.get("install")["access_token"]
    assert installed.message(43, 4301, "after two reinstalls").status_code == 200


def test_a_refused_install_pins_nothing(app: App, attacker: Listener) -> None:
    """A refused install writes neither auth.json nor the pin: the real portal can still install first."""
    app.env_extra = {"B24BOT_PORTAL_DOMAIN": ""}
    app.restart()
    assert forged_install(app, attacker).status_code == 403
    assert app.install().status_code == 200
