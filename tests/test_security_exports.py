"""The trust boundary, tried as an attacker would: CSV formula injection; a failing export is a broken download."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys

import pytest
import requests

from conftest import App, log_text

# ---- 3: CSV formula injection; a failing export is a broken download ------------------------------------------

DANGEROUS = ['=HYPERLINK("http://x","y")', "+1", "-2", "@SUM(1)", "\tx", "\rx"]


def test_csv_cells_cannot_become_formulas_and_jsonl_keeps_the_text(installed: App) -> None:
    installed.join(45)
    texts = [*DANGEROUS, "plain", "a=b"]
    for i, text in enumerate(texts):
        assert installed.message(45, 4500 + i, text).status_code == 200
    resp = installed.api("export", params={"format": "csv", "chat_id": 45})
    rows = list(csv.DictReader(io.StringIO(resp.content.decode("utf-8-sig"), newline="")))
    got = [r["text"] for r in rows]
    assert got == ["'" + t for t in DANGEROUS] + ["plain", "a=b"]
    jsonl = installed.api("export", params={"format": "jsonl", "chat_id": 45}).text.splitlines()
    assert [json.loads(line)["text"] for line in jsonl] == texts


def _fill(app: App, n: int, bad_at: int) -> None:
    """n stored messages straight in SQLite, one of them unreadable (not UTF-8) deep in the export."""
    with sqlite3.connect(app.data_dir / "dialogs.db") as conn:
        conn.execute(
            "INSERT INTO messages (message_id, chat_id, author_role, text, created_at)"
            " WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " SELECT i, 46, 'client', 'row ' || i, '2026-01-01T00:00:00+00:00' FROM n",
            (n,),
        )
        conn.execute("UPDATE messages SET text = CAST(X'FF41' AS TEXT) WHERE message_id = ?", (bad_at,))


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_an_export_failing_midway_is_a_broken_download(installed: App, fmt: str) -> None:
    _fill(installed, 1500, bad_at=1400)
    received = b""
    resp = installed.api("export", params={"format": fmt}, stream=True)
    assert resp.status_code == 200
    with pytest.raises(requests.exceptions.ChunkedEncodingError):  # never a clean end of a short file
        for chunk in resp.iter_content(4096):
            received += chunk
    assert b"row 1000" in received and b"row 1500" not in received
    assert "export aborted" in log_text(installed)


def test_cli_export_failing_midway_leaves_no_file(installed: App) -> None:
    _fill(installed, 1500, bad_at=1400)
    out = installed.data_dir / "export.csv"
    run = subprocess.run(
        [sys.executable, "-m", "b24bot", "export", "--format", "csv", "--out", str(out)],
        env=installed.env,
        capture_output=True,
    )
    assert run.returncode != 0
    assert not out.exists() and not (installed.data_dir / "export.csv.part").exists()


def test_export_filter_out_of_range_is_400_before_any_byte(installed: App) -> None:
    resp = installed.api("export", params={"format": "csv", "chat_id": "99999999999999999999"})
    assert resp.status_code == 400 and "chat_id" in resp.json()["error"]
