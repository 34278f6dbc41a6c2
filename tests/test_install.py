"""ONAPPINSTALL: proved at Bitrix24's OAuth server, accepted only from the pinned portal; saved atomically."""

from __future__ import annotations

import stat

import pytest

from conftest import App, PortalSim


def test_install_saves_tokens_registers_bot_and_binds_uninstall(app: App, portal: PortalSim) -> None:
    resp = app.install()
    assert resp.status_code == 200, resp.text
    auth = app.auth_json()
    assert auth is not None
    expected = portal.get("install")  # the portal's tokens now: the pair the install's refresh token was swapped for
    for key in (
        "access_token",
        "refresh_token",
        "application_token",
        "member_id",
        "domain",
        "client_endpoint",
        "server_endpoint",
    ):
        assert auth[key] == expected[key]
    assert auth["bot_id"] == resp.json()["bot_id"]
    assert stat.S_IMODE((app.data_dir / "auth.json").stat().st_mode) == 0o600
    (register,) = portal.calls("imbot.register")
    assert register["params"] == {
        "CODE": "python_interceptor_bot",
        "TYPE": "O",
        "OPENLINE": "Y",
        "EVENT_HANDLER": "http://bot.example.test/python_bot/",
        "PROPERTIES": {"NAME": "Python Interceptor Bot", "WORK_POSITION": "Transfers you to an operator"},
    }
    (bind,) = portal.calls("event.bind")
    assert bind["params"] == {"event": "ONAPPUNINSTALL", "handler": "http://bot.example.test/python_bot/"}
    assert portal.calls("imopenlines.config.update") == []  # B24BOT_LINES empty: lines are left alone
    assert "Installed in 127.0.0.1" in app.http.get(app.url).text


def test_lines_all_makes_the_bot_every_lines_welcome_bot(app: App, portal: PortalSim) -> None:
    app.env_extra = {"B24BOT_LINES": "all", "B24BOT_BOT_CODE": "rec", "B24BOT_BOT_NAME": "Recorder"}
    app.restart()
    assert app.install().status_code == 200
    updates = portal.calls("imopenlines.config.update")
    assert [u["params"]["CONFIG_ID"] for u in updates] == [1, 2]
    for u in updates:
        assert u["params"]["PARAMS"] == {
            "WELCOME_BOT_ENABLE": "Y",
            "WELCOME_BOT_JOIN": "always",
            "WELCOME_BOT_ID": app.bot_id,
            "WELCOME_BOT_TIME": 60,
            "WELCOME_BOT_LEFT": "close",
        }
    assert portal.calls("imbot.register")[0]["params"]["CODE"] == "rec"


@pytest.mark.parametrize(
    "override, reason",
    [
        ({"domain": "evil.example.com", "client_endpoint": "http://evil.example.com/rest/"}, "B24BOT_PORTAL_DOMAIN"),
        ({"client_endpoint": "http://evil.example.com/rest/"}, "client_endpoint"),
        ({"refresh_token": "not-a-portal-token"}, "did not accept the install's token (invalid_grant)"),
    ],
)
def test_refused_installs_save_nothing(app: App, portal: PortalSim, override: dict[str, str], reason: str) -> None:
    resp = app.install(**override)
    assert resp.status_code == 403
    assert reason in resp.json()["error"]
    assert app.auth_json() is None
    assert portal.calls("imbot.register") == []
    assert "install refused" in (app.data_dir / "bot.log").read_text()


def test_install_for_another_application_is_refused(app: App, portal: PortalSim) -> None:
    app.env_extra = {"B24BOT_CLIENT_ID": "local.someone.else"}
    app.restart()
    resp = app.install()
    assert resp.status_code == 403 and "(invalid_client)" in resp.json()["error"]
    assert app.auth_json() is None


def test_install_without_tokens_is_a_bad_request(app: App, portal: PortalSim) -> None:
    resp = app.install(refresh_token="")
    assert resp.status_code == 400 and "refresh_token" in resp.json()["error"]
    assert app.auth_json() is None


def test_portal_failure_midway_leaves_no_half_install(app: App, portal: PortalSim) -> None:
    portal.post("faults", {"method": "imbot.register", "kind": "5xx", "count": 1})
    resp = app.install()
    assert resp.status_code == 502 and "imbot.register" in resp.json()["error"]
    assert app.auth_json() is None
    assert app.install().status_code == 200  # Bitrix24's "Reinstall" simply works afterwards


def test_reinstall_replaces_tokens_and_keeps_dialogs(installed: App, portal: PortalSim) -> None:
    installed.join(501)
    installed.message(501, 9001, "hi")
    first = installed.auth_json()
    portal.post("reinstall")  # the admin pressed Reinstall after a scope change: a new token pair arrives
    assert installed.install().status_code == 200
    second = installed.auth_json()
    assert second["access_token"] != first["access_token"]
    assert second["access_token"] == portal.get("install")["access_token"]
    assert second["bot_id"] == first["bot_id"]  # imbot.register is idempotent by CODE
    assert installed.count("messages") == 1
