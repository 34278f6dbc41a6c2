"""`make bench`: run the benchmark parts, write bench/results/*.json, bench/results/summary.md and the README table.

    bench/run.py                     every part (ingest, handoff, token, api, viewer, deploy, v2, backfill)
    bench/run.py --only deploy       one or more parts (comma-separated)
    bench/run.py --skip deploy       everything but the slow deploy part
    bench/run.py --quick             smaller runs (a smoke test of the bench itself, not for publishing)
    bench/run.py --report            only regenerate summary.md and the README section from the JSON files

The table is built from whatever bench/results/*.json exist, so a partial run keeps the other figures
(bench/report.py; its rows in report_rows.py, the missed-goal lines in report_misses.py).
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import WORK, log
from report import write_reports

# Each part is a module of bench/ with run(quick); imported when it runs (some need tools the others do not).
PARTS = {
    "ingest": "ingest",
    "handoff": "handoff",
    "token": "token_storm",
    "api": "api",
    "viewer": "viewer",
    "deploy": "deploy",
    "v2": "v2",
    "backfill": "backfill",
}


def _args(argv: list[str] | None) -> tuple[list[str], bool]:
    """The parts to run, in PARTS order, and whether runs are quick."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help=f"comma-separated parts: {', '.join(PARTS)}")
    ap.add_argument("--skip", default="", help="comma-separated parts to leave out")
    ap.add_argument("--quick", action="store_true", help="small runs, to check the bench itself")
    ap.add_argument("--report", action="store_true", help="only rebuild summary.md and the README table")
    args = ap.parse_args(argv)
    only = [p for p in args.only.split(",") if p]
    skip = [p for p in args.skip.split(",") if p]
    for p in only + skip:
        if p not in PARTS:
            ap.error(f"unknown part {p!r}; parts: {', '.join(PARTS)}")
    parts = [] if args.report else [p for p in (only or PARTS) if p not in skip]
    return parts, args.quick


def main(argv: list[str] | None = None) -> int:
    parts, quick = _args(argv)
    if parts and WORK.exists():
        # Scratch of earlier runs (data dirs, logs): only the latest run's is kept.
        shutil.rmtree(WORK, ignore_errors=True)
    timings: dict[str, float] = {}
    failed: list[str] = []
    for part in parts:
        t0 = time.perf_counter()
        log(f"=== {part} ===")
        try:
            importlib.import_module(PARTS[part]).run(quick)
        except Exception as exc:  # one broken part must not hide the others' figures
            log(f"{part} failed: {exc.__class__.__name__}: {exc}")
            failed.append(part)
        timings[part] = round(time.perf_counter() - t0, 1)
        log(f"{part} took {timings[part]} s")
    write_reports()
    if timings:
        log("durations: " + ", ".join(f"{k} {v} s" for k, v in timings.items()))
    if failed:
        log(f"failed parts: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
