"""`b24bot` command line: read-only views of a deployed instance (run with the service's EnvironmentFile)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any

from . import __version__, config
from .bitrix.tokens import TokenStore
from .store import Database, StorageError, reads


def status(settings: config.Settings) -> dict[str, Any]:
    auth = TokenStore(settings.auth_path, "", "").load()
    out: dict[str, Any] = {
        "version": __version__,
        "installed": auth is not None,
        "portal": auth.get("domain") if auth else None,
        "bot_id": auth.get("bot_id") if auth else None,
        "token_expires_at": (
            datetime.fromtimestamp(int(auth["expires"]), timezone.utc).isoformat(timespec="seconds")
            if auth and auth.get("expires")
            else None
        ),
        "db_path": str(settings.db_path),
        "problems": list(settings.problems),
    }
    try:
        out.update(reads.stats(Database(settings.db_path).read()))
        out["db_ok"] = True
    except StorageError as exc:
        out["db_ok"] = False
        out["problems"].append(f"database: {exc}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="b24bot", description=__doc__)
    parser.add_argument("--version", action="version", version=f"b24bot {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    st = sub.add_parser("status", help="installation, tokens, dialogs and queue of this instance")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)

    settings = config.load()
    if args.command == "status":
        info = status(settings)
        if args.json:
            json.dump(info, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            for key, value in info.items():
                if key == "problems":
                    for p in value:
                        print(f"problem: {p}")
                else:
                    print(f"{key}: {value}")
        return 0 if info.get("db_ok") else 1
    return 2
