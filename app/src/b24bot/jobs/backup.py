"""Online backup: SQLite's backup API copies a consistent snapshot while workers keep writing.

A plain file copy of a live WAL database can miss committed pages (they may still sit in -wal) or catch a
half-written page; the backup API reads through SQLite itself, so the copy holds exactly what was committed
when it started.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from ..config import Settings


def backup(settings: Settings, dest: str) -> dict[str, Any]:
    out = Path(dest)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = out / "dialogs.db"
    tmp = out / ".dialogs.db.part"
    tmp.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{settings.db_path}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(tmp)
    try:
        src.backup(dst, pages=1024)  # in steps, so writers are never blocked for long
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        messages = dst.execute("SELECT count(*) FROM messages").fetchone()[0]
        version = dst.execute("PRAGMA user_version").fetchone()[0]
    finally:
        dst.close()
        src.close()
    if check != "ok":
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"backup copy failed its integrity check: {check}")
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)
    result: dict[str, Any] = {"db": str(target), "messages": messages, "schema": version}
    # The credentials that go with this database: the OAuth install's tokens and the v2 bot's botToken (a new
    # token would no longer match the bot registered with the old one).
    for key, path, name in (
        ("auth", settings.auth_path, "auth.json"),
        ("bot_token", settings.bot_token_path, "bot-token"),
    ):
        result[key] = None
        if path.exists():
            shutil.copy2(path, out / name)
            os.chmod(out / name, 0o600)
            result[key] = str(out / name)
    return result
