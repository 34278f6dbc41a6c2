"""`b24bot backfill --since DATE`: bring in the Open Lines sessions the portal held before the install.

Bitrix24's REST API has no method that lists Open Lines sessions (`imopenlines.*` reads one session or one
dialog by id). The documented list that reaches them is CRM's: `crm.activity.list` (scope `crm`) pages
through activities by `>ID` with `start=-1`, and Open Lines leaves one activity per session, with provider
`IMOPENLINES_SESSION` and the session id as `ASSOCIATED_ENTITY_ID`. Each page's sessions then go through
the same history path as `b24bot sync`. The cursor (last activity id) is committed in the same transaction
as the sessions it covers, so a run killed at any point resumes without losing or repeating work.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..bitrix import events as ev
from ..bitrix import history as hist
from ..bitrix import rest
from ..bitrix.errors import BitrixError
from ..bitrix.rest import Patience
from ..store import reads, writes
from .context import Context
from .sync import BATCH, note_session, patient_client, store_history
from .v2bot import our_bot_id

log = logging.getLogger(__name__)

PROVIDER = "IMOPENLINES_SESSION"
PAGE = 50  # what list methods return per call
CURSOR_KEY = "backfill.cursor"


@dataclass
class BackfillReport:
    since: str
    pages: int = 0
    sessions: int = 0  # stored in this run
    skipped: int = 0  # already complete in the archive
    new_messages: int = 0
    total_sessions: int = 0  # stored by every run since this `since`, this one included
    done: bool = False
    stopped: str | None = None
    errors: list[str] = field(default_factory=list)


class BackfillBusy(RuntimeError):
    """Another backfill of this instance is running."""


@contextlib.contextmanager
def _only_one(ctx: Context) -> Iterator[None]:
    fd = os.open(ctx.settings.data_dir / "backfill.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise BackfillBusy("another `b24bot backfill` is running") from exc
        yield
    finally:
        os.close(fd)


def _cursor(ctx: Context, since: str) -> dict[str, Any]:
    raw = reads.get_setting(ctx.db.read(), CURSOR_KEY, "")
    try:
        cur = json.loads(raw) if raw else {}
    except ValueError:
        cur = {}
    if not isinstance(cur, dict) or cur.get("since") != since:
        return {"since": since, "after_id": 0, "sessions": 0, "done": False}
    return cur


def backfill(ctx: Context, since: str, progress: Callable[[str], None] = lambda _: None) -> BackfillReport:
    with _only_one(ctx):
        cur = _cursor(ctx, since)
        report = BackfillReport(since, total_sessions=int(cur["sessions"]))
        client = patient_client(ctx)
        patience = Patience(ctx.settings.sync_max_wait)
        try:
            while not report.done:  # a rerun after the end asks once more: sessions may have closed since
                page = rest.patient_call(client, patience, "crm.activity.list", _page_params(since, cur["after_id"]))
                report.pages += 1
                activities = [a for a in page or [] if isinstance(a, dict) and _int(a.get("ID"))]
                for start in range(0, len(activities), BATCH):
                    _bring_in(ctx, client, patience, activities[start : start + BATCH], cur, report)
                    progress(
                        f"backfill: {report.total_sessions} sessions since {since}"
                        f" ({report.new_messages} new messages this run, last activity {cur['after_id']})"
                    )
                if len(activities) < PAGE:
                    report.done = cur["done"] = True
                    _save_cursor(ctx, cur)
        except BitrixError as exc:
            report.stopped = _explain(exc)
            report.errors.append(f"stopped: {exc.code}")
            log.error("backfill stopped: %s", report.stopped)
        return report


def _page_params(since: str, after_id: int) -> dict[str, Any]:
    return {
        "order": {"ID": "ASC"},
        "filter": {"PROVIDER_ID": PROVIDER, ">ID": after_id, ">=START_TIME": since},
        "select": ["ID", "ASSOCIATED_ENTITY_ID", "START_TIME"],
        "start": -1,  # no total count: the documented way to walk a large list by id
    }


def _bring_in(
    ctx: Context,
    client: rest.RestClient,
    patience: Patience,
    activities: list[dict[str, Any]],
    cur: dict[str, Any],
    report: BackfillReport,
) -> None:
    """One batch of sessions: their histories, then one transaction with them and the advanced cursor."""
    started_at = {_int(a.get("ASSOCIATED_ENTITY_ID")): _unix(a.get("START_TIME")) for a in activities}
    wanted = sorted(set(started_at) - {0})
    complete = reads.sessions_complete(ctx.db.read(), wanted)
    todo = [sid for sid in wanted if sid not in complete]
    calls = {f"s{sid}": ("imopenlines.session.history.get", {"SESSION_ID": sid}) for sid in todo}
    results, errors = rest.patient_batch(client, patience, calls) if calls else ({}, {})
    bot_id = our_bot_id(ctx)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with ctx.db.write() as conn:
        for sid in todo:
            if f"s{sid}" in errors or not isinstance(results.get(f"s{sid}"), dict):
                err = errors.get(f"s{sid}")
                report.errors.append(f"session {sid}: {err.code if err else 'no history'}")
                continue
            h = hist.parse(results[f"s{sid}"], bot_id)
            started = started_at.get(sid)
            note_session(conn, h.chat_id, h.entity_id, ev.SessionData(sid, started, "", ""), now, close_older=False)
            report.new_messages += store_history(conn, sid, h.chat_id, h, now)
            report.sessions += 1
        cur["after_id"] = max(_int(a.get("ID")) for a in activities)
        cur["sessions"] = int(cur["sessions"]) + len(todo)
        writes.set_setting(conn, CURSOR_KEY, json.dumps(cur))
    report.skipped += len(complete)
    report.total_sessions = int(cur["sessions"])


def _save_cursor(ctx: Context, cur: dict[str, Any]) -> None:
    with ctx.db.write() as conn:
        writes.set_setting(conn, CURSOR_KEY, json.dumps(cur))


def _explain(exc: BitrixError) -> str:
    if exc.code == "insufficient_scope":
        return (
            "insufficient_scope: crm.activity.list needs the app's `crm` scope (Bitrix24: Developer resources ->"
            " the local app -> add CRM to its permissions, then reinstall the app); nothing was changed"
        )
    return f"{exc.code}: {exc.description}" if exc.description else exc.code


def _int(raw: Any) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 0


def _unix(raw: Any) -> int | None:
    try:
        return int(datetime.fromisoformat(str(raw)).timestamp())
    except ValueError:
        return None
