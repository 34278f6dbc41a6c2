"""Pure functions: form un-flattening, Open Lines identifiers, author roles, redaction, configuration."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from b24bot import config, logs
from b24bot.bitrix import events as ev
from b24bot.bitrix.tokens import oauth_token_url

SAMPLES = Path(__file__).parent / "sim" / "samples"


def wire_pairs(name: str) -> list[tuple[str, str]]:
    lines = (SAMPLES / name).read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("=", 1)) for line in lines if line]  # type: ignore[misc]


def test_documented_install_form_parses_to_the_documented_values() -> None:
    event = ev.parse(wire_pairs("onappinstall.form.txt"))
    assert event.name == "ONAPPINSTALL"
    assert event.ts == 1696527000
    assert event.auth.domain == "some-domain.bitrix24.com"
    assert event.auth.client_endpoint == "https://some-domain.bitrix24.com/rest/"
    assert event.auth.refresh_token == "4s386p3q0tr8dy89xvmt96234v3dljg8"
    assert event.auth.expires_in == 3600
    assert event.data == {"VERSION": "1.0.0", "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": "de"}


def test_numeric_keys_stay_ids_not_list_positions() -> None:
    body = ev.unflatten([("data[BOT][571][BOT_ID]", "571"), ("data[PARAMS][MENTIONED_LIST][567]", "567")])
    assert body == {"data": {"BOT": {"571": {"BOT_ID": "571"}}, "PARAMS": {"MENTIONED_LIST": {"567": "567"}}}}


@pytest.mark.parametrize(
    "pairs, reason",
    [
        ([("foo", "bar")], "missing 'event'"),
        ([("event", "ONIMBOTMESSAGEADD")], "missing 'auth'"),
        ([("event", "X"), ("auth[member_id]", "m")], "application_token"),
        ([("event", "X"), ("auth", "scalar")], "missing 'auth'"),
        ([("event", "X"), ("data[a]", "1"), ("data[a][b]", "2")], "conflicts"),
        ([("event", "X"), ("da]ta[", "1")], "unparsable"),
    ],
)
def test_bodies_that_are_not_bitrix24_calls_are_refused(pairs: list[tuple[str, str]], reason: str) -> None:
    with pytest.raises(ev.BadEvent, match=reason):
        ev.parse(pairs)


def test_lines_identifiers() -> None:
    chat = ev.LinesChat.parse("telegrambot|2|209607941|744")
    assert (chat.connector, chat.line_id, chat.external_chat_id, chat.client_user_id) == (
        "telegrambot",
        "2",
        "209607941",
        "744",
    )
    with pytest.raises(ev.BadEvent):
        ev.LinesChat.parse("livechat|22")
    session = ev.SessionData.parse("Y|LEAD|1205|N|N|321|1773223732|0|0|0")
    assert (session.session_id, session.started_at, session.crm_entity_type, session.crm_entity_id) == (
        321,
        1773223732,
        "LEAD",
        "1205",
    )
    assert ev.SessionData.parse("").session_id is None
    assert ev.chat_id_of({"DIALOG_ID": "chat1777"}) == 1777
    with pytest.raises(ev.BadEvent):
        ev.chat_id_of({"DIALOG_ID": "27"})


@pytest.mark.parametrize(
    "params, user, role",
    [
        ({"AUTHOR_ID": "599"}, {"IS_CONNECTOR": "Y"}, "client"),
        ({"AUTHOR_ID": "7"}, {"IS_CONNECTOR": "N"}, "operator"),
        ({"AUTHOR_ID": "100"}, {}, "bot"),
        ({"AUTHOR_ID": "7", "SYSTEM": "Y"}, {}, "system"),
        ({"AUTHOR_ID": "0"}, {}, "system"),
        ({"AUTHOR_ID": "8"}, {"IS_BOT": "Y"}, "bot"),
    ],
)
def test_author_roles(params: dict[str, str], user: dict[str, str], role: str) -> None:
    assert ev.author_role(params, user, bot_id=100) == role


def test_redact_masks_every_token_at_any_depth() -> None:
    body = ev.unflatten(
        [
            ("data[BOT][5][access_token]", "secret-a"),
            ("data[BOT][5][AUTH][refresh_token]", "secret-r"),
            ("data[BOT][5][application_token]", "secret-t"),
            ("data[PARAMS][MESSAGE]", "hello"),
        ]
    )
    text = repr(ev.redact(body))
    assert "secret" not in text and "hello" in text


def test_oauth_url_follows_server_endpoint_only_to_bitrix24_hosts() -> None:
    default = "https://oauth.bitrix.info/oauth/token/"
    assert oauth_token_url("https://oauth.bitrix24.tech/rest/") == "https://oauth.bitrix24.tech/oauth/token/"
    assert oauth_token_url("https://OAUTH.bitrix.info/rest/") == default
    assert oauth_token_url("") == default
    assert oauth_token_url("https://x/rest/", "http://127.0.0.1:1/oauth/token/") == "http://127.0.0.1:1/oauth/token/"
    # Any other host a request names could be an attacker's collecting our client secret: never followed.
    for forged in (
        "http://127.0.0.1:9/rest/",
        "https://evil.example/rest/",
        "http://oauth.bitrix.info/rest/",
        "https://oauth.bitrix.info:8443/rest/",
        "https://oauth.bitrix.info.evil.example/rest/",
        "https://user@oauth.bitrix24.tech/rest/",
        "https://oauth.bitrix.info:bad/rest/",
    ):
        assert oauth_token_url(forged) == default, forged


def test_config_reports_problems_instead_of_failing() -> None:
    s = config.load(
        {"B24BOT_TRANSFER": "queue:abc", "B24BOT_LINES": "1,x", "B24BOT_LOG_LEVEL": "loud", "B24BOT_REST_TIMEOUT": "-3"}
    )
    text = "\n".join(s.problems)
    for needle in (
        "B24BOT_CLIENT_ID",
        "B24BOT_API_TOKEN",
        "B24BOT_HANDLER_URL",
        "B24BOT_TRANSFER",
        "B24BOT_LINES",
        "B24BOT_LOG_LEVEL",
        "B24BOT_REST_TIMEOUT",
    ):
        assert needle in text
    assert str(s.transfer) == "operator" and s.lines == "" and s.log_level == "INFO" and s.rest_timeout == 10.0
    assert str(s.db_path) == "/var/lib/b24bot/dialogs.db" and str(s.auth_path) == "/var/lib/b24bot/auth.json"


def test_config_accepts_every_documented_form() -> None:
    s = config.load(
        {
            "B24BOT_TRANSFER": "user:12",
            "B24BOT_LINES": "1, 3",
            "B24BOT_DATA_DIR": "/srv/x",
            "B24BOT_CLIENT_ID": "a",
            "B24BOT_CLIENT_SECRET": "b",
            "B24BOT_API_TOKEN": "c",
            "B24BOT_HANDLER_URL": "https://bot.example.com/python_bot/",
        }
    )
    assert s.problems == ()
    assert (s.transfer.kind, s.transfer.target, s.line_ids) == ("user", 12, [1, 3])
    assert str(s.db_path) == "/srv/x/dialogs.db"


def test_log_filter_masks_secrets(caplog: pytest.LogCaptureFixture) -> None:
    record = logging.LogRecord(
        "x",
        logging.INFO,
        __file__,
        1,
        "refresh with client_secret=%s auth=%s for %s",
        ("s3cr3t-value", "tok-abc", "portal"),
        None,
    )
    logs.RedactFilter(["s3cr3t-value"]).filter(record)
    msg = record.getMessage()
    assert "s3cr3t-value" not in msg and "tok-abc" not in msg and "portal" in msg
