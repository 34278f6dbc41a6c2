"""Store queries in process: the same answers whichever plan SQLite is steered to."""

from __future__ import annotations

from pathlib import Path

import pytest

from b24bot.store import Database, reads, writes


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = Database(tmp_path / "dialogs.db")
    with d.write() as conn:
        for chat in range(1, 41):
            writes.upsert_dialog(
                conn,
                writes.DialogRow(chat, f"chat{chat}", "telegrambot", "1", "x", "5", None, "2026-01-01T00:00:00+00:00"),
            )
            writes.insert_message(
                conn,
                writes.MessageRow(
                    chat * 10, chat, None, 5, "client", "t", f"2026-01-{chat % 28 + 1:02d}T00:00:00+00:00"
                ),
            )
    return d


@pytest.mark.parametrize("since", ["2026-01-20T00:00:00+00:00", "2026-01-02T00:00:00+00:00", "2030-01-01T00:00:00Z"])
def test_since_pages_agree_whether_or_not_the_time_index_is_used(
    db: Database, since: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def walk() -> list[int]:
        seen, cursor = [], None
        while True:
            items, cursor = reads.list_dialogs(db.read(), 7, cursor, reads.DialogFilter(since=since))
            seen += [d["chat_id"] for d in items]
            if cursor is None:
                return seen

    via_index = walk()  # few matches: the time index
    monkeypatch.setattr(reads, "SINCE_INDEX_MAX", 0)
    via_scan = walk()  # "too many" matches: chat_id order
    expected = sorted((c for c in range(1, 41) if f"2026-01-{c % 28 + 1:02d}T00:00:00+00:00" >= since), reverse=True)
    assert via_index == via_scan == expected


def test_noop_upserts_write_nothing(db: Database) -> None:
    conn = db.read()
    before = conn.total_changes
    with db.write() as w:
        writes.upsert_dialog(
            w, writes.DialogRow(1, "chat1", "telegrambot", "1", "x", "5", None, "2026-02-01T00:00:00+00:00")
        )
        writes.upsert_participant(w, 1, 5, None, "client", "2026-02-01T00:00:00+00:00")
        writes.upsert_participant(w, 1, 5, None, "client", "2026-02-01T00:00:00+00:00")
    assert conn.total_changes - before == 1  # only the participant's first insert
    with db.write() as w:
        writes.upsert_participant(w, 1, 5, "Guest", "client", "2026-02-01T00:00:00+00:00")
    assert conn.execute("SELECT name FROM participants WHERE user_id = 5").fetchone()[0] == "Guest"
