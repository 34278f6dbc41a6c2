"""`b24bot`: the command line of a deployed instance (run it as the service user, with its EnvironmentFile)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from typing import Any

from . import __version__, cli_v2, config, logs
from .bitrix.tokens import TokenStore, installation
from .store import Database, StorageError, archive, reads


def status(settings: config.Settings) -> dict[str, Any]:
    auth = TokenStore(settings.auth_path, "", "").load()
    out: dict[str, Any] = {
        "version": __version__,
        **installation(auth),
        "db_path": str(settings.db_path),
        "problems": list(settings.problems),
    }
    try:
        conn = Database(settings.db_path).read()
        out.update(reads.stats(conn))
        out.update(reads.sync_state(conn))
        out["db_ok"] = True
        if settings.bot_api == "v2":
            out["v2"] = cli_v2.status(settings)
    except StorageError as exc:
        out["db_ok"] = False
        out["problems"].append(f"database: {exc}")
    return out


def _iso(value: str) -> str:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).isoformat(timespec="seconds")


def _context(settings: config.Settings) -> Any:
    """What every command that talks to the store or the portal needs (logging goes to the instance's log)."""
    from .jobs.context import Context

    logs.configure(settings)
    return Context.build(settings)


def cmd_status(args: argparse.Namespace, settings: config.Settings) -> int:
    info = status(settings)
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for key, value in info.items():
            for line in value if key == "problems" else [value]:
                print(f"{'problem' if key == 'problems' else key}: {line}")
    return 0 if info.get("db_ok") else 1


def cmd_sync(args: argparse.Namespace, settings: config.Settings) -> int:
    from .jobs import sync

    report = sync.sync(
        _context(settings),
        since=args.since,
        session_ids=args.session,
        window_hours=settings.sync_window_hours,
        download=args.download,
    )
    print(json.dumps(report.__dict__, ensure_ascii=False))
    if report.stopped:
        print(f"b24bot sync: stopped early: {report.stopped}", file=sys.stderr)
        return 1
    return 1 if report.errors and not report.sessions else 0


def cmd_backfill(args: argparse.Namespace, settings: config.Settings) -> int:
    from .jobs import backfill

    try:
        report = backfill.backfill(
            _context(settings), args.since, progress=lambda line: print(line, file=sys.stderr, flush=True)
        )
    except backfill.BackfillBusy as exc:
        print(f"b24bot backfill: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("b24bot backfill: interrupted; progress is kept, run it again to go on", file=sys.stderr)
        return 130
    print(json.dumps(report.__dict__, ensure_ascii=False))
    if report.stopped:
        print(f"b24bot backfill: stopped: {report.stopped}; run it again to go on", file=sys.stderr)
        return 1
    return 0


def cmd_search(args: argparse.Namespace, settings: config.Settings) -> int:
    items, _ = archive.search(_context(settings).db.read(), args.query, args.limit, None)
    for m in items:
        print(f"{m['created_at']}  chat {m['chat_id']}  #{m['message_id']}  {m['author_role']}: {m['text']}")
    return 0


def cmd_export(args: argparse.Namespace, settings: config.Settings) -> int:
    from .jobs import export

    ctx = _context(settings)
    f = archive.ExportFilter(args.start, args.end, args.line_id, args.operator_id, args.chat_id)
    if not args.out:
        sys.stdout.writelines(export.stream(ctx, args.format, f))
        return 0
    # Into a temporary file renamed at the end: a failed export never leaves a short file that looks whole.
    tmp = f"{args.out}.part"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as out:
            out.writelines(export.stream(ctx, args.format, f))
        os.replace(tmp, args.out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return 0


def cmd_reset_install(args: argparse.Namespace, settings: config.Settings) -> int:
    from .jobs import install

    member, endpoint = install.reset_pin(_context(settings))
    print(json.dumps({"unpinned_member_id": member or None, "unpinned_client_endpoint": endpoint or None}))
    return 0


def cmd_erase(args: argparse.Namespace, settings: config.Settings) -> int:
    from .jobs import retention

    ctx = _context(settings)
    chats = archive.client_chats(ctx.db.read(), args.client)
    if not chats:
        print("no dialogs of that client")
        return 0
    if not args.yes and input(f"erase {len(chats)} dialog(s) for good? [y/N] ").lower() != "y":
        return 1
    print(json.dumps(retention.erase_client(ctx, args.client)))
    return 0


def cmd_retention(args: argparse.Namespace, settings: config.Settings) -> int:
    from .jobs import retention

    print(json.dumps(retention.apply_retention(_context(settings))))
    return 0


def cmd_backup(args: argparse.Namespace, settings: config.Settings) -> int:
    from .jobs import backup

    logs.configure(settings)
    print(json.dumps(backup.backup(settings, args.dest)))
    return 0


def cmd_passwd(args: argparse.Namespace, settings: config.Settings) -> int:
    """The password comes from the terminal (not echoed) or stdin, never argv (visible in ps)."""
    import getpass

    from werkzeug.security import generate_password_hash

    password = getpass.getpass("viewer password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        print("password too short (at least 8 characters)", file=sys.stderr)
        return 2
    hashed = generate_password_hash(password)
    print(f"{args.user}:{hashed}" if args.user else hashed)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="b24bot", description=__doc__)
    p.add_argument("--version", action="version", version=f"b24bot {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    st = sub.add_parser("status", help="installation, tokens, dialogs and queue of this instance")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(func=cmd_status)
    sy = sub.add_parser("sync", help="fill in messages from the portal's session history")
    sy.add_argument("--since", type=_iso, help="also sessions started since this time (ISO 8601)")
    sy.add_argument("--session", type=int, action="append", help="only this session id (repeatable)")
    sy.add_argument("--download", action="store_true", default=None, help="download attachments too")
    sy.set_defaults(func=cmd_sync)
    bf = sub.add_parser("backfill", help="bring in past Open Lines sessions (needs the crm scope); resumable")
    bf.add_argument("--since", type=_iso, required=True, help="sessions started since this time (ISO 8601)")
    bf.set_defaults(func=cmd_backfill)
    se = sub.add_parser("search", help="full-text search over messages")
    se.add_argument("query")
    se.add_argument("--limit", type=int, default=50)
    se.set_defaults(func=cmd_search)
    ex = sub.add_parser("export", help="messages as JSON Lines or CSV")
    ex.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    ex.add_argument("--from", dest="start", type=_iso)
    ex.add_argument("--to", dest="end", type=_iso)
    ex.add_argument("--line", dest="line_id")
    ex.add_argument("--operator", dest="operator_id", type=int)
    ex.add_argument("--chat", dest="chat_id", type=int)
    ex.add_argument("--out", help="file to write (default: standard output)")
    ex.set_defaults(func=cmd_export)
    er = sub.add_parser("erase", help="remove one client's messages and personal data everywhere")
    er.add_argument("--client", required=True, help="user code connector|line|chat|user, or connector user id")
    er.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    er.set_defaults(func=cmd_erase)
    rt = sub.add_parser("retention", help="delete messages older than B24BOT_RETENTION_DAYS / _LINES")
    rt.set_defaults(func=cmd_retention)
    ri = sub.add_parser(
        "reset-install",
        help="forget the portal this instance is pinned to, so that an install from another portal is accepted",
    )
    ri.set_defaults(func=cmd_reset_install)
    bk = sub.add_parser(
        "backup", help="consistent online copy of dialogs.db (and auth.json, bot-token) into a directory"
    )
    bk.add_argument("dest", help="directory to create the copies in")
    bk.set_defaults(func=cmd_backup)
    cli_v2.add_commands(sub)
    pw = sub.add_parser("passwd", help="print a password hash for B24BOT_VIEWER_USERS (reads the password from stdin)")
    pw.add_argument("user", nargs="?", help="also print the user: prefix")
    pw.set_defaults(func=cmd_passwd, needs_settings=False)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # passwd reads no settings: it runs on an admin's machine as well as on the host.
    settings = config.load() if getattr(args, "needs_settings", True) else None
    return int(args.func(args, settings))
