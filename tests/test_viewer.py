"""The web viewer over HTTP (access is in test_viewer_access.py, the browser journey in test_viewer_browser.py):
escaping, figures kept at write time, downloads, CSV, erasure, bad input."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from conftest import (
    ROOT,
    App,
    PortalSim,
    csrf_of,
    viewer_login,
)


def test_markup_in_messages_is_escaped(viewer: App) -> None:
    s = viewer_login(viewer)
    for path in ("ui/dialogs/201", "ui/search?q=спасибо"):
        body = s.get(viewer.url + path, timeout=10).text
        assert "&lt;script&gt;alert(" in body and "<script>alert" not in body
    resp = s.get(viewer.url + "ui/dialogs/201", timeout=10)
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"


def test_first_response_is_kept_per_session_at_write_time(viewer: App) -> None:
    with viewer.db() as conn:
        rows = {
            r["session_id"]: dict(r)
            for r in conn.execute(
                "SELECT session_id, first_client_at, first_operator_at, first_operator_id, client_messages,"
                " operator_messages FROM sessions"
            )
        }
    assert rows[300]["first_operator_id"] == 7 and rows[300]["client_messages"] == 3
    assert rows[300]["operator_messages"] == 1  # an edit is no new message
    assert rows[302]["first_operator_at"] is None
    s = viewer_login(viewer)
    listing = s.get(viewer.url + "ui/dialogs", timeout=10).text
    row_201 = listing.split('data-chat="201"')[1].split("</tr>")[0]
    assert "1 min 30 s" in row_201
    assert "waiting" in listing.split('data-chat="202"')[1].split("</tr>")[0]
    unanswered = s.get(viewer.url + "ui/dialogs?unanswered=1", timeout=10).text
    assert 'data-chat="202"' in unanswered and 'data-chat="201"' not in unanswered
    by_olga = s.get(viewer.url + "ui/dialogs?operator=7", timeout=10).text
    assert 'data-chat="201"' in by_olga and 'data-chat="203"' in by_olga and 'data-chat="202"' not in by_olga
    hits = s.get(viewer.url + "ui/search?q=заказ&operator=7", timeout=10).text
    assert hits.count('class="hit"') == 2  # both messages of 201 (Olga's dialog) contain the word
    assert 'id="no-hits"' in s.get(viewer.url + "ui/search?q=заказ&operator=5001", timeout=10).text
    line2 = s.get(viewer.url + "ui/dialogs?line=2", timeout=10).text
    assert 'data-chat="202"' in line2 and 'data-chat="203"' not in line2


def test_transcript_downloads_in_the_portal_time_zone(viewer: App) -> None:
    s = viewer_login(viewer)
    with viewer.db() as conn:
        created = conn.execute("SELECT created_at FROM messages WHERE message_id = 9001").fetchone()[0]
    from datetime import datetime
    from zoneinfo import ZoneInfo

    local = datetime.fromisoformat(created).astimezone(ZoneInfo("Europe/Moscow")).strftime("%Y-%m-%d %H:%M:%S")
    text = s.get(viewer.url + "ui/dialogs/201/transcript.txt", timeout=10).text
    assert f"{local}  client Guest:\n    Добрый день! Где мой ЗАКАЗ 48213?" in text
    assert "[edited]" in text and "[deleted]" in text
    lines = s.get(viewer.url + "ui/dialogs/201/transcript.jsonl", timeout=10).text.splitlines()
    assert [json.loads(x)["message_id"] for x in lines] == [9001, 9002, 9003, 9004]
    page = s.get(viewer.url + "ui/dialogs/201", timeout=10).text
    assert local in page and "original: Здравствуйте, заказ передан курьеру" in page


def test_reports_and_csv_one_row_per_conversation_formulas_neutralised(viewer: App) -> None:
    s = viewer_login(viewer)
    page = s.get(viewer.url + "ui/reports", timeout=10).text
    assert page.count('class="bar"') >= 2  # lines 1 and 2 on the seeded day
    # 201 answered in 90 s; 203 after 10 min and 202 not for 2 h: both breach the 5 min SLA.
    assert "33.3 %</strong> (1 of 3 sessions)" in page
    breaches = page.split('id="breaches"')[1].split("</table>")[0]
    assert "Guest #202" in breaches and "(no reply)" in breaches and "=HYPERLINK(1)" in breaches
    assert "Guest #201" not in breaches
    ops = page.split('id="operators"')[1].split("</table>")[0]
    # Olga answered 201 in 90 s and 203 in 600 s: median (nearest rank) 90 s, p90 600 s, 2 sessions.
    assert "<td>Operator Olga</td><td>1 min 30 s</td><td>10 min 0 s</td><td>2</td>" in ops
    waiting = page.split('id="waiting"')[1]
    assert "Waiting for an operator now (1)" in waiting and "Guest #202" in waiting
    resp = s.get(viewer.url + "ui/reports.csv", timeout=10)
    rows = list(csv.DictReader(io.StringIO(resp.content.decode("utf-8-sig"))))
    by_chat = {r["chat_id"]: r for r in rows}
    assert set(by_chat) == {"201", "202", "203"}
    assert by_chat["201"]["first_response_s"] == "90" and by_chat["203"]["first_response_s"] == "600"
    assert by_chat["203"]["client"] == "'=HYPERLINK(1)"
    assert by_chat["202"]["first_response_s"] == "" and by_chat["202"]["line_id"] == "2"


def test_erase_needs_the_confirmation(viewer: App) -> None:
    s = viewer_login(viewer)
    page = s.get(viewer.url + "ui/erase?client=5001", timeout=10).text
    token = csrf_of(page)
    resp = s.post(viewer.url + "ui/erase", data={"client": "5001", "csrf": token}, timeout=10)
    assert resp.status_code == 400 and viewer.count("dialogs") == 3
    resp = s.post(viewer.url + "ui/erase", data={"client": "5001", "csrf": token, "confirm": "yes"}, timeout=10)
    assert resp.status_code == 200 and "Erased 1 dialogs, 4 messages" in resp.text
    with viewer.db() as conn:
        assert conn.execute("SELECT count(*) FROM messages WHERE chat_id = 201").fetchone()[0] == 0
    assert s.get(viewer.url + "ui/dialogs/201", timeout=10).status_code == 404


def test_bad_input_is_a_clear_4xx(viewer: App) -> None:
    s = viewer_login(viewer)
    for path, code in (
        ("ui/dialogs?from=yesterday", 400),
        ("ui/dialogs?cursor=-1", 400),
        ("ui/dialogs?to=9999-12-31", 400),
        ("ui/dialogs?status=maybe", 400),
        ("ui/dialogs?from=2026-02-01&to=2026-01-01", 400),
        ("ui/reports?from=2020-01-01&to=2026-01-01", 400),
        ("ui/dialogs/999999", 404),
        ("ui/dialogs/201/transcript.exe", 404),
        ("ui/files/1", 404),
        ("ui/search?q=%22%29%20OR%20*", 200),
    ):
        resp = s.get(viewer.url + path, timeout=10)
        assert resp.status_code == code, (path, resp.status_code)
        assert resp.headers["Content-Type"].startswith("text/html")


def test_schema_step_is_safe_to_repeat_and_backfills(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "app" / "src"))
    from b24bot.store import Database, responses

    db = Database(tmp_path / "d.db")
    with db.write() as conn:
        conn.execute("INSERT INTO sessions (session_id, chat_id, first_seen_at) VALUES (1, 10, '2026-01-01')")
        conn.executemany(
            "INSERT INTO messages (message_id, chat_id, session_id, author_id, author_role, created_at)"
            " VALUES (?, 10, 1, ?, ?, ?)",
            [(1, 5, "client", "2026-01-01T10:00:00+00:00"), (2, 7, "operator", "2026-01-01T10:02:00+00:00")],
        )
        conn.execute("UPDATE sessions SET first_client_at = NULL, client_messages = 0")
        responses.add_columns(conn)  # a second run: no error, and figures rebuilt from the messages
    row = (
        sqlite3.connect(tmp_path / "d.db")
        .execute("SELECT first_client_at, first_operator_at, first_operator_id, client_messages FROM sessions")
        .fetchone()
    )
    assert row == ("2026-01-01T10:00:00+00:00", "2026-01-01T10:02:00+00:00", 7, 1)


def test_operator_filter_both_ways(tmp_path: Path) -> None:
    """Few dialogs: through the user index; many: tested per dialog. Same answer either way."""
    sys.path.insert(0, str(ROOT / "app" / "src"))
    from b24bot.store import Database, viewer

    db = Database(tmp_path / "d.db")
    with db.write() as conn:
        for chat in (1, 2, 3):
            conn.execute(
                "INSERT INTO dialogs (chat_id, dialog_id, first_seen_at) VALUES (?, ?, '2026-01-01')",
                (chat, f"c{chat}"),
            )
            who = 7 if chat != 2 else 8
            conn.execute(
                "INSERT INTO participants (chat_id, user_id, role, first_seen_at) VALUES (?, ?, 'operator', '')",
                (chat, who),
            )
    conn = db.read()
    few = viewer.list_dialogs(conn, 10, None, viewer.ViewFilter(operator_id=7))[0]
    old = viewer.FEW_DIALOGS
    viewer.FEW_DIALOGS = 0
    try:
        many = viewer.list_dialogs(conn, 10, None, viewer.ViewFilter(operator_id=7))[0]
    finally:
        viewer.FEW_DIALOGS = old
    assert [d["chat_id"] for d in few] == [d["chat_id"] for d in many] == [3, 1]


def test_attachments_served_only_from_the_archive(viewer: App) -> None:
    files = viewer.data_dir / "files"
    files.mkdir(exist_ok=True)
    (files / "ab12").write_bytes(b"%PDF-1.4 invoice")
    outside = viewer.data_dir / "auth-copy.json"
    outside.write_text("{}")
    with viewer.db() as conn:
        conn.executemany(
            "INSERT INTO attachments (file_id, message_id, chat_id, name, path, first_seen_at, url)"
            " VALUES (?, 9001, 201, ?, ?, '2026-01-01', ?)",
            [
                (1, "invoice.pdf", str(files / "ab12"), ""),
                (2, "x.json", str(outside), ""),
                (3, "photo.jpg", None, "https://portal.example/x.jpg"),
            ],
        )
    s = viewer_login(viewer)
    resp = s.get(viewer.url + "ui/files/1", timeout=10)
    assert resp.status_code == 200 and resp.content == b"%PDF-1.4 invoice"
    assert "filename=invoice.pdf" in resp.headers["Content-Disposition"]
    assert s.get(viewer.url + "ui/files/2", timeout=10).status_code == 404  # outside files/: never served
    assert s.get(viewer.url + "ui/files/3", timeout=10).status_code == 404  # not archived
    page = s.get(viewer.url + "ui/dialogs/201", timeout=10).text
    assert 'href="/ui/files/1">invoice.pdf</a> (archived)' in page
    assert 'href="https://portal.example/x.jpg" rel="noreferrer noopener">photo.jpg</a> (on the portal)' in page


def test_csv_neutralises_every_formula_prefix() -> None:
    sys.path.insert(0, str(ROOT / "app" / "src"))
    from b24bot.jobs.export import neutralise  # the one the viewer's report CSV uses too

    for cell in ("=1+1", "+7 900", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert neutralise(cell) == "'" + cell
    assert neutralise("Guest #1") == "Guest #1" and neutralise(42) == 42 and neutralise("") == ""


def test_transcript_pages_both_ways_and_lands_on_a_message(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "app" / "src"))
    from b24bot.store import Database, viewer

    db = Database(tmp_path / "d.db")
    with db.write() as conn:
        conn.executemany(
            "INSERT INTO messages (message_id, chat_id, author_role, created_at) VALUES (?, 5, 'client', '2026')",
            [(i,) for i in range(1, 451)],
        )
    conn = db.read()
    first = viewer.transcript_page(conn, 5, 0)
    assert [m["message_id"] for m in first["messages"]][:2] == [1, 2] and first["next"] == 200 and first["prev"] is None
    second = viewer.transcript_page(conn, 5, first["next"])
    assert second["messages"][0]["message_id"] == 201 and second["next"] == 400 and second["prev"] == 0
    third = viewer.transcript_page(conn, 5, second["next"])
    assert len(third["messages"]) == 50 and third["next"] is None and third["prev"] == 200
    at = viewer.transcript_page(conn, 5, viewer.page_start(conn, 5, 300))
    assert at["messages"][0]["message_id"] == 295  # a few messages of context before the hit


def test_history_sync_rebuilds_the_session_figures(installed: App, portal: PortalSim) -> None:
    """The event said "now"; the portal's history has the real times and a phone reply the events missed."""
    installed.join(600)
    installed.message(600, 6001, "Где мой заказ?", session_id=77)
    client = {"author_id": 5001, "name": "Guest", "connector": True}
    portal.post(
        "history",
        {
            "session_id": 77,
            "chat_id": 600,
            "entity_id": "telegrambot|1|ext600|5001",
            "messages": [
                {"id": 6001, "text": "Где мой заказ?", "date": "2026-03-11T10:00:00+03:00", **client},
                {"id": 6002, "text": "В пути", "date": "2026-03-11T10:05:00+03:00", "author_id": 7, "name": "Olga"},
                {"id": 6003, "text": "Спасибо!", "date": "2026-03-11T10:06:00+03:00", **client},
            ],
        },
    )
    env = installed.env
    subprocess.run([sys.executable, "-m", "b24bot", "sync"], env=env, check=True, capture_output=True, timeout=120)
    with installed.db() as conn:
        row = conn.execute(
            "SELECT first_client_at, first_operator_at, first_operator_id, client_messages, operator_messages"
            " FROM sessions WHERE session_id = 77"
        ).fetchone()
    assert tuple(row) == ("2026-03-11T07:00:00+00:00", "2026-03-11T07:05:00+00:00", 7, 2, 1)
