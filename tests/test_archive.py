"""A complete archive: history reconciliation, sessions, search, export, attachments, retention, erasure."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import forms
from b24bot.store import Database
from b24bot.store.schema import MIGRATIONS
from conftest import App, PortalSim, free_port, wait_for

ENTITY = "telegrambot|1|ext{chat}|5001"


def cli(app: App, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "b24bot", *args], env=app.env, capture_output=True, text=True, check=check, timeout=120
    )


def history(portal: PortalSim, chat: int, session: int, messages: list[dict[str, Any]], entity: str = "") -> None:
    portal.post(
        "history",
        {"session_id": session, "chat_id": chat, "entity_id": entity or ENTITY.format(chat=chat), "messages": messages},
    )


CLIENT = {"author_id": 5001, "name": "Guest", "connector": True}
OPERATOR = {"author_id": 7, "name": "Operator Olga"}


def test_operator_replies_after_the_bot_left_are_stored_by_sync(installed: App, portal: PortalSim) -> None:
    installed.join(600)
    installed.message(600, 6001, "Где мой заказ?", session_id=77)
    history(
        portal,
        600,
        77,
        [
            {"id": 6001, "text": "Где мой заказ?", "date": "2026-03-11T10:00:00+03:00", **CLIENT},
            {"id": 6002, "text": "Ваш заказ в пути", "date": "2026-03-11T10:05:00+03:00", **OPERATOR},
            {"id": 6003, "text": "Спасибо!", "date": "2026-03-11T10:06:00+03:00", **CLIENT},
            {"id": 6004, "text": "=== Исходящее сообщение, автор: Телефон ===\nПерезвоню", **CLIENT},
            {"id": 6005, "text": "Session closed", "author_id": 0},
        ],
    )
    report = json.loads(cli(installed, "sync").stdout)
    assert report["sessions"] == 1 and report["new_messages"] == 4 and report["errors"] == []
    items = installed.api("dialogs/600/messages").json()["items"]
    assert [(m["message_id"], m["author_role"]) for m in items] == [
        (6001, "client"),
        (6002, "operator"),
        (6003, "client"),
        (6004, "operator"),
        (6005, "system"),
    ]
    assert items[0]["created_at"] == "2026-03-11T07:00:00+00:00"  # the portal's real time wins over event time
    with installed.db() as db:
        assert db.execute("SELECT via_connector FROM messages WHERE message_id = 6004").fetchone()[0] == 1
        assert db.execute("SELECT operator_ids FROM sessions WHERE session_id = 77").fetchone()[0] == "7"
    # Events arriving after the sync do not duplicate anything.
    installed.message(600, 6002, "Ваш заказ в пути", client=False, session_id=77)
    assert installed.api("dialogs/600").json()["message_count"] == 5
    again = json.loads(cli(installed, "sync").stdout)
    assert again["new_messages"] == 0 and installed.count("messages") == 5


def test_an_outage_while_messages_flow_is_healed_by_sync(installed: App, portal: PortalSim) -> None:
    installed.join(610)
    installed.message(610, 6101, "first", session_id=88)
    installed.stop()  # events during this time are lost for good: Bitrix24 does not retry
    installed.start()
    history(portal, 610, 88, [{"id": 6100 + i, "text": f"message {i}", **CLIENT} for i in range(1, 9)])
    cli(installed, "sync")
    assert [m["message_id"] for m in installed.api("dialogs/610/messages").json()["items"]] == list(range(6101, 6109))


def test_a_closed_session_is_synced_shortly_after_by_the_app_itself(app: App, portal: PortalSim) -> None:
    app.env_extra = {"B24BOT_SYNC_AFTER_CLOSE_S": "0.5"}
    app.restart()
    app.install()
    app.message(620, 6201, "old session", session_id=90)
    history(
        portal,
        620,
        90,
        [{"id": 6201, "text": "old session", **CLIENT}, {"id": 6202, "text": "operator closing words", **OPERATOR}],
    )
    app.message(620, 6203, "a new conversation", session_id=91)  # session 90 is over now
    wait_for(lambda: app.count("messages") == 3, timeout=20, what="the closed session's sync")
    with app.db() as db:
        row = db.execute("SELECT closed_at, synced_at FROM sessions WHERE session_id = 90").fetchone()
    assert row[0] and row[1]


def test_search_is_case_insensitive_in_any_script(installed: App) -> None:
    installed.message(630, 6301, "Здравствуйте, ЗАКАЗ №42 не пришёл")
    installed.message(630, 6302, "Order 42 arrived, THANKS")
    installed.message(631, 6303, "совсем другое")

    def hits(q: str) -> list[int]:
        return [m["message_id"] for m in installed.api("search", params={"q": q}).json()["items"]]

    assert hits("заказ") == [6301]
    assert hits("Заказа") == []  # every word must match (as a prefix of a word)
    assert hits("ЗАКА") == [6301]
    assert hits("пришел") == [6301]  # ё and е are one letter for search
    assert hits("thanks order") == [6302]
    assert hits("42") == [6302, 6301]
    assert hits('"; DROP TABLE messages; --') == []
    assert installed.api("search").status_code == 400
    assert "chat 630" in cli(installed, "search", "ЗДРАВСТВУЙТЕ").stdout
    installed.message(630, 6301, "исправленный текст", kind="edit")
    assert hits("заказ") == [] and hits("исправленный") == [6301]
    assert "6301" in cli(installed, "search", "исправленный").stdout


def _fill(db_path: Path, n: int) -> None:
    """n messages in n/100 dialogs, written straight into a schema the app made (fast, same shape)."""
    conn = sqlite3.connect(db_path)
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with conn:
        conn.executemany(
            "INSERT OR IGNORE INTO dialogs (chat_id, dialog_id, line_id, connector, first_seen_at, message_count)"
            " VALUES (?, ?, '1', 'telegrambot', ?, 100)",
            ((c, f"chat{c}", now.isoformat()) for c in range(1, n // 100 + 1)),
        )
        conn.executemany(
            "INSERT INTO messages (message_id, chat_id, author_id, author_role, text, created_at)"
            " VALUES (?, ?, 5001, 'client', ?, ?)",
            (
                (
                    i,
                    i // 100 + 1,
                    f'Сообщение номер {i}, "кавычки", запятые; и перевод\nстроки',
                    (now + timedelta(seconds=i)).isoformat(),
                )
                for i in range(1, n + 1)
            ),
        )
    conn.close()


def _export_rss_kb(app: App, out: Path) -> int:
    """Peak memory (KiB) of a `b24bot export` process."""
    code = (
        "import resource, runpy, sys\n"
        f"sys.argv = ['b24bot', 'export', '--format', 'csv', '--out', {str(out)!r}]\n"
        "try:\n    runpy.run_module('b24bot', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=app.env, capture_output=True, text=True, check=True)
    return int(proc.stdout.strip().splitlines()[-1])


def test_export_of_100k_messages_runs_in_bounded_memory(app: App, tmp_path: Path) -> None:
    small, big = tmp_path / "small", tmp_path / "big"
    for d in (small, big):
        d.mkdir()
    Database(small / "dialogs.db").read()
    Database(big / "dialogs.db").read()
    _fill(small / "dialogs.db", 10_000)
    _fill(big / "dialogs.db", 100_000)
    app.data_dir = small
    rss_small = _export_rss_kb(app, tmp_path / "small.csv")
    app.data_dir = big
    rss_big = _export_rss_kb(app, tmp_path / "big.csv")
    # Ten times the rows, (almost) the same memory: the export streams.
    assert rss_big - rss_small < 8 * 1024, (rss_small, rss_big)
    raw = (tmp_path / "big.csv").read_bytes()
    assert raw.startswith("\ufeff".encode())  # Excel's UTF-8 marker
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(rows) == 100_001 and rows[0][0] == "message_id"
    assert rows[100_000][10] == 'Сообщение номер 100000, "кавычки", запятые; и перевод\nстроки'


def test_api_export_streams_jsonl_and_csv_with_filters(installed: App) -> None:
    for i in range(1, 6):
        installed.message(640 + i % 2, 6400 + i, f"export {i}", client=i != 3)
    resp = installed.api("export", params={"format": "jsonl", "chat_id": 641}, stream=True)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("application/x-ndjson")
    assert resp.headers.get("Transfer-Encoding") == "chunked"
    lines = [json.loads(line) for line in resp.iter_lines() if line]
    assert [m["message_id"] for m in lines] == [6401, 6403, 6405] and lines[0]["line_id"] == "1"
    by_op = installed.api("export", params={"format": "csv", "operator_id": 7}).content.decode("utf-8-sig")
    assert [r[0] for r in csv.reader(io.StringIO(by_op))][1:] == ["6401", "6403", "6405"]
    assert installed.api("export", params={"format": "xml"}).status_code == 400
    assert installed.api("export", params={"from": "2999-01-01"}).text == ""


def test_attachments_are_recorded_and_downloaded_with_their_hash(installed: App, portal: PortalSim) -> None:
    installed.message(650, 6501, "see attached", session_id=95)
    history(
        portal,
        650,
        95,
        [
            {
                "id": 6501,
                "text": "see attached",
                **CLIENT,
                "file": {"id": 777, "name": "invoice.pdf", "content": "%PDF-1.4 test invoice"},
            }
        ],
    )
    report = json.loads(cli(installed, "sync", "--download").stdout)
    assert report["files"] == 1 and report["downloaded"] == 1, report
    with installed.db() as db:
        row = dict(db.execute("SELECT * FROM attachments WHERE file_id = 777").fetchone())
    assert (row["name"], row["size"], row["message_id"]) == ("invoice.pdf", 21, 6501)
    expected = hashlib.sha256(b"%PDF-1.4 test invoice").hexdigest()
    assert row["sha256"] == expected and Path(row["path"]).read_bytes() == b"%PDF-1.4 test invoice"
    assert json.loads(cli(installed, "sync", "--download").stdout)["downloaded"] == 0  # once is enough


def test_retention_global_and_per_line(app: App) -> None:
    app.env_extra = {"B24BOT_RETENTION_DAYS": "30", "B24BOT_RETENTION_LINES": "2:365"}
    app.restart()
    app.install()
    old = int((datetime.now(timezone.utc) - timedelta(days=60)).timestamp())
    app.post(
        forms.message(
            app.portal_ids, app.bot_id, 660, 6601, "old line 1", 5001, "G", True, "telegrambot|1|x|5001", 1, ts=old
        )
    )
    app.post(
        forms.message(
            app.portal_ids, app.bot_id, 661, 6602, "old line 2", 5001, "G", True, "telegrambot|2|y|5001", 2, ts=old
        )
    )
    app.message(660, 6603, "fresh")
    removed = json.loads(cli(app, "retention").stdout)
    assert removed == {"line 2": 0, "all lines": 1}
    with app.db() as db:
        assert [r[0] for r in db.execute("SELECT message_id FROM messages ORDER BY 1")] == [6602, 6603]
        assert db.execute("SELECT message_count FROM dialogs WHERE chat_id = 660").fetchone()[0] == 1
    assert app.api("search", params={"q": "old"}).json()["items"][0]["message_id"] == 6602


def test_erase_leaves_nothing_findable(installed: App, portal: PortalSim) -> None:
    secret = "Паспорт 4510 123456 Иванов"
    installed.join(670, client=9090)
    entity = "telegrambot|1|ext670|9090"
    installed.post(
        forms.message(installed.portal_ids, installed.bot_id, 670, 6701, secret, 9090, "Иван Иванов", True, entity, 99)
    )
    installed.message(671, 6702, "someone else entirely")
    history(
        portal,
        670,
        99,
        [
            {
                "id": 6701,
                "text": secret,
                "author_id": 9090,
                "name": "Иван Иванов",
                "connector": True,
                "file": {"id": 888, "name": "scan.jpg", "content": "JPEGDATA"},
            }
        ],
        entity,
    )
    cli(installed, "sync", "--download")
    files = list((installed.data_dir / "files").rglob("*"))
    assert any(f.is_file() for f in files)
    out = json.loads(cli(installed, "erase", "--client", entity, "--yes").stdout)
    assert out == {"dialogs": 1, "messages": 1, "events": 2}
    assert installed.api("search", params={"q": "Паспорт"}).json()["items"] == []
    assert installed.api("dialogs/670").status_code == 404
    assert not [f for f in (installed.data_dir / "files").rglob("*") if f.is_file()]
    with installed.db() as db:
        for table in ("messages", "events", "participants", "sessions", "attachments", "message_edits"):
            dump = " ".join(str(tuple(r)) for r in db.execute(f"SELECT * FROM {table}"))  # noqa: S608
            assert "Иван" not in dump and "Паспорт" not in dump and "9090" not in dump, table
        (audit,) = [r[0] for r in db.execute("SELECT detail FROM audit_log WHERE action = 'erase'")]
    assert "1 dialogs" in audit and "9090" not in audit and "Иван" not in audit
    time.sleep(0.2)
    raw = b"".join(p.read_bytes() for p in installed.data_dir.glob("dialogs.db*"))
    assert secret.encode() not in raw and "паспорт".encode() not in raw
    assert installed.api("dialogs/671").status_code == 200  # everyone else is untouched


def test_upgrade_from_the_first_schema_keeps_everything(tmp_path: Path, portal: PortalSim) -> None:
    """A database written by release 0.1 (schema 1) opens, migrates, and its messages become searchable."""
    db = tmp_path / "dialogs.db"
    conn = sqlite3.connect(db)
    conn.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    conn.execute("INSERT INTO dialogs (chat_id, dialog_id, first_seen_at, message_count) VALUES (1, 'chat1', 'x', 1)")
    conn.execute(
        "INSERT INTO messages (message_id, chat_id, author_role, text, created_at)"
        " VALUES (10, 1, 'client', 'Старое СООБЩЕНИЕ', '2025-01-01T00:00:00+00:00')"
    )
    conn.commit()
    conn.close()
    app = App(tmp_path, portal, free_port())
    app.start()
    try:
        assert app.api("search", params={"q": "сообщение"}).json()["items"][0]["message_id"] == 10
        assert app.api("dialogs/1/messages").json()["items"][0]["text"] == "Старое СООБЩЕНИЕ"
        with app.db() as c:
            assert c.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    finally:
        app.stop()


@pytest.mark.parametrize("bad", [["export", "--from", "not-a-date"], ["search"]])
def test_cli_rejects_bad_arguments(installed: App, bad: list[str]) -> None:
    assert cli(installed, *bad, check=False).returncode == 2
