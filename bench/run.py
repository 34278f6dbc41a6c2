"""`make bench`: run the benchmark parts, write bench/results/*.json, bench/results/summary.md and the README table.

    bench/run.py                     every part (ingest, handoff, token, api, viewer, deploy, v2, backfill)
    bench/run.py --only deploy       one or more parts (comma-separated)
    bench/run.py --skip deploy       everything but the slow deploy part
    bench/run.py --quick             smaller runs (a smoke test of the bench itself, not for publishing)
    bench/run.py --report            only regenerate summary.md and the README section from the JSON files

The table is built from whatever bench/results/*.json exist, so a partial run keeps the other figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, ROOT, WORK, log, machine

PARTS = ("ingest", "handoff", "token", "api", "viewer", "deploy", "v2", "backfill")
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _when(result: dict[str, Any]) -> str:
    """When a part ran and on which processor: parts of the table may come from different runs and machines."""
    return f"{result['machine']['date']} ({result['machine'].get('cpu', '?')})"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        v = f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return f"{v}{unit}"


def table() -> str:
    rows: list[tuple[str, str, str, str, str]] = []
    notes: list[str] = []
    machines: dict[str, str] = {}

    ing = _load("ingest")
    if ing:
        machines["ingest"] = _when(ing)
        for conc, lv in ing["levels"].items():
            a, b = lv["app"], lv["baseline"]
            goal = "ratio ≥ 0.5" + (", p99 < 50 ms" if conc == "32" else "") + ", 0 errors"
            ok = lv["ratio"] >= 0.5 and a["errors"] == 0 and (conc != "32" or a["p99_ms"] < 50)
            rows.append(
                (
                    f"1 Ingest, {conc} concurrent",
                    f"{_fmt(a['events_per_s'])} ev/s, p50 {_fmt(a['p50_ms'])} ms, p99 {_fmt(a['p99_ms'])} ms,"
                    f" {a['errors']} errors",
                    f"{_fmt(b['events_per_s'])} ev/s, p99 {_fmt(b['p99_ms'])} ms; **ratio {lv['ratio']}**",
                    goal,
                    _yes(ok),
                )
            )
        gen = max(lv["app"]["generator_cpu_share_of_one_core"] for lv in ing["levels"].values())
        gen_b = max(lv["baseline"]["generator_cpu_share_of_one_core"] for lv in ing["levels"].values())
        notes.append(
            f"Ingest: gunicorn sync, {ing['workers']} workers (role default); load generator CPU at most "
            f"{gen:.2f} of one core against the app and {gen_b:.2f} against the baseline (it is not the bottleneck)."
        )

    ho = _load("handoff")
    if ho:
        machines["handoff"] = _when(ho)
        for key, label in (("idle", "idle"), ("under_load", "under ingest load (32 clients)")):
            r = ho[key]
            after = r.get("after_answer") or {}
            rows.append(
                (
                    f"2 Hand-off latency, {label}",
                    f"p50 {_fmt(r['p50_ms'])} ms, p99 {_fmt(r['p99_ms'])} ms over {r['joins']} joins at"
                    f" {r['arrival_rate_per_s']}/s; after the 200: p99 {_fmt(after.get('p99_ms'))} ms;"
                    f" missing {r['missing']}, twice {r['handed_off_twice']}",
                    f"join webhook p99 {_fmt(r['join_webhook_latency']['p99_ms'])} ms",
                    "p99 < 100 ms",
                    _yes((r["p99_ms"] or 1e9) < 100 and r["missing"] == 0),
                )
            )
        d = ho["default_limiter"]
        rows.append(
            (
                "2 Hand-off, shipped limiter (2/s, burst 40)",
                f"p50 {_fmt(d['p50_ms'])} ms, p99 {_fmt(d['p99_ms'])} ms over {d['joins']} joins at"
                f" {d['arrival_rate_per_s']}/s",
                "–",
                "p99 < 100 ms",
                _yes((d["p99_ms"] or 1e9) < 100 and d["missing"] == 0),
            )
        )
        for key in ("burst_rate20", "burst_default"):
            b = ho[key]
            rows.append(
                (
                    f"2 Hand-off, burst of {b['joins']} joins, bucket {b['rate']:g}/s burst {b['burst']}",
                    f"last hand-off after {_fmt(b['last_handoff_after_s'])} s, steady"
                    f" {_fmt(b.get('steady_calls_per_s'))} calls/s, p50 {_fmt(b['p50_ms'] / 1000)} s",
                    f"model (n − burst) / rate = {_fmt(b['model_last_handoff_s'])} s",
                    "paced by the bucket, none lost",
                    _yes(b["missing"] == 0 and b["handed_off_twice"] == 0),
                )
            )
        notes.append(
            "Hand-off: B24BOT_REST_RATE=20 / B24BOT_REST_BURST=40 for the 1,000-join runs (arrivals at 10/s stay"
            " under the drain rate, so the bucket never delays a call and the figure is the app's own path); the"
            " shipped 2/s bucket gives the same latency below 2 arrivals/s (row 'shipped limiter'). A 1,000-join"
            " burst at 2/s takes (1000 − 40) / 2 = 480 s by design: the bucket keeps the app under Bitrix24's limit."
        )

    tok = _load("token_storm")
    if tok:
        machines["token"] = _when(tok)
        g = tok["goals"]
        rows.append(
            (
                f"3 Token storm, {tok['workers']} workers, {tok['clients']} clients",
                f"refreshes per storm {tok['refreshes_per_storm']}; hand-off p50 {_fmt(tok['storm']['p50_ms'])} ms,"
                f" p99 {_fmt(tok['storm']['p99_ms'])} ms; extra p50 {_fmt(tok['extra_latency_ms']['p50'])} ms,"
                f" p99 {_fmt(tok['extra_latency_ms']['p99'])} ms",
                f"normal rounds p50 {_fmt(tok['normal']['p50_ms'])} ms, p99 {_fmt(tok['normal']['p99_ms'])} ms",
                "exactly 1 refresh, no failed call",
                _yes(g["exactly_one_refresh_per_storm"] and g["no_failed_calls"] and g["all_handed_off"]),
            )
        )

    api = _load("api")
    if api:
        machines["api"] = _when(api)
        base = api["pages"]["healthz (baseline)"]
        db = api["database"]
        for name, p in api["pages"].items():
            if name.startswith("healthz"):
                continue
            rows.append(
                (
                    f"4 API: {name}",
                    f"p50 {_fmt(p['p50_ms'])} ms, p99 {_fmt(p['p99_ms'])} ms",
                    f"healthz p50 {_fmt(base['p50_ms'])} ms (×{p['p50_vs_healthz']})",
                    "p99 < 20 ms",
                    _yes(p["p99_ms"] < 20 and p["errors"] == 0),
                )
            )
        notes.append(
            f"API: {db['messages']:,} messages in {db['dialogs']:,} dialogs ({db['size_mb']} MB, generated in"
            f" {db['seconds']} s by bench/gen_db.py); pages of 100 unless noted; one client."
        )

    vw = _load("viewer")
    if vw and not vw.get("quick"):
        machines["viewer"] = _when(vw)
        base = vw["pages"]["healthz (baseline)"]
        for name, p in vw["pages"].items():
            if p["goal_p99_ms"] is None:
                continue
            rows.append(
                (
                    f"4b Viewer: {name}",
                    f"p50 {_fmt(p['p50_ms'])} ms, p99 {_fmt(p['p99_ms'])} ms",
                    f"healthz p50 {_fmt(base['p50_ms'])} ms",
                    f"p99 < {p['goal_p99_ms']} ms",
                    _yes(p["p99_ms"] < p["goal_p99_ms"] and p["errors"] == 0),
                )
            )
        notes.append("Viewer: the same generated database plus its search index and per-session figures; logged in.")

    dep = _load("deploy")
    if dep and "new_user" in dep:
        import deploy_report

        machines["deploy"] = _when(dep)
        rows += deploy_report.rows(dep)
        notes += deploy_report.notes(dep, _load("deploy_before"))
    v2res = _load("v2")
    if v2res:
        import v2

        machines["v2"] = _when(v2res)
        rows += v2.rows(v2res, ing, ho)
    bf = _load("backfill")
    if bf:
        machines["backfill"] = _when(bf)
        m = bf["model"]
        rows.append(
            (
                f"6 Backfill, {bf['sessions']} past sessions",
                f"{_fmt(bf['sessions_per_min'])} sessions/min ({bf['stored']} stored in {_fmt(bf['wall_s'])} s,"
                f" {_fmt(bf['calls_per_s'])} calls/s, {bf['limit_hits']} limit hits)",
                f"model {_fmt(m['expected_sessions_per_min'])}/min for this run, {_fmt(m['steady_sessions_per_min'])}"
                f"/min steady (2 calls/s × 50 sessions per 3 calls); **ratio {bf['ratio_to_model']}**",
                "all stored, 0 limit hits, ≥ 0.9 of the model",
                _yes(all(bf["goals"].values()) and bf["ratio_to_model"] >= 0.9),
            )
        )
    misses = missed_goals(ing, ho, tok, api, dep)
    m = machine()
    head = (
        f"Machine: {m['cores']} cores, {m['memory_gb']} GB, Python {m['python']}, SQLite "
        f"{m['sqlite']}. Measured (each part on the processor named): "
        + ", ".join(f"{k} {v}" for k, v in machines.items())
        + ". Baselines run in the same process tree and the same run; medians over rounds."
    )
    lines = [
        head,
        "",
        "| Figure | Result | Baseline / ratio | Goal | Met |",
        "|---|---|---|---|---|",
        *(f"| {' | '.join(r)} |" for r in rows),
        "",
        *(f"- {n}" for n in notes),
        "",
        *(["**Goals missed, by how much and why**", "", *(f"- {x}" for x in misses), ""] if misses else []),
        "Generated by `make bench` (bench/run.py) from bench/results/*.json; do not edit by hand.",
    ]
    return "\n".join(lines) + "\n"


def _over(value: float, goal: float) -> str:
    """'4% over' for near misses, '2.8×' for large ones."""
    return f"{(value / goal - 1):.0%} over" if value < 1.5 * goal else f"{value / goal:.1f}×"


def missed_goals(
    ing: dict[str, Any] | None,
    ho: dict[str, Any] | None,
    tok: dict[str, Any] | None,
    api: dict[str, Any] | None,
    dep: dict[str, Any] | None,
) -> list[str]:
    """One line per missed goal: the shortfall, and the cause as the bench measured it."""
    out: list[str] = []
    if ing:
        lv = ing["levels"]
        low = {c: v["ratio"] for c, v in lv.items() if v["ratio"] < 0.5}
        p99 = lv["32"]["app"]["p99_ms"]
        probe = (ing.get("probe") or {}).get("shipped") or {}
        wal = (ing.get("probe") or {}).get("wal") or {}
        why = ""
        if probe.get("commit_ms"):
            share = probe["commit_ms"]["mean"] / probe["ms_per_event"]
            why = (
                f" In-process (no HTTP) an event costs {probe['ms_per_event']:.2f} ms, of which COMMIT is"
                f" {probe['commit_ms']['mean']:.2f} ms ({share:.0%}; p99 {probe['commit_ms']['p99']:.1f} ms):"
                " synchronous=FULL fsyncs the WAL"
                + (f" ({wal['wal_bytes_per_event'] / 1024:.0f} KB per event)" if wal.get("wal_bytes_per_event") else "")
                + " while the database write lock is held, so the two workers serialize on it; every other"
                " statement together costs well under 0.3 ms. The baseline stores nothing."
            )
        cores = max(v["app"]["server_cpu_cores"] for v in lv.values())
        base_cores = max(v["baseline"]["server_cpu_cores"] for v in lv.values())
        load = ing["machine"].get("loadavg_at_start", ["?"])[0]
        if low:
            out.append(
                "Ingest ratio: "
                + ", ".join(f"{r} at {c} concurrent" for c, r in low.items())
                + f" (goal 0.5, so the app reaches {min(low.values()) / 0.5:.0%}–{max(low.values()) / 0.5:.0%} of it)."
                + why
                + f" The servers used at most {cores} (app) and {base_cores} (baseline) of the 2 cores; other jobs"
                f" shared the machine (load average {load} at the start), so absolute rates are below an idle"
                " host's, and the ratio compares both under the same noise."
            )
        if p99 >= 50:
            base = lv["32"]["baseline"]
            out.append(
                f"Ingest p99 at 32 concurrent: {p99} ms, {_over(p99, 50)} the 50 ms goal. With 32 clients in a closed"
                " loop the latency is about 32 / throughput (Little's law): "
                f"{lv['32']['app']['events_per_s']} ev/s gives a p50 of {lv['32']['app']['p50_ms']} ms before any"
                f" tail. The storage-free baseline itself reaches p99 {base['p99_ms']} ms at"
                f" {base['events_per_s']} ev/s on this machine."
            )
    if ho:
        r = ho["under_load"]
        if (r["p99_ms"] or 0) >= 100:
            after = r.get("after_answer") or {}
            out.append(
                f"Hand-off under ingest load: p99 {r['p99_ms']} ms, {_over(r['p99_ms'], 100)} the 100 ms goal. Most of"
                " it is the join's own webhook waiting its turn in the sync workers behind the 32 ingest clients"
                f" (webhook p99 {r['join_webhook_latency']['p99_ms']} ms); after the 200 the hand-off itself takes"
                f" p50 {after.get('p50_ms')} ms, p99 {after.get('p99_ms')} ms (its thread shares the worker's GIL"
                " and the SQLite write lock with ingest)."
            )
        r = ho["idle"]
        if (r["p99_ms"] or 0) >= 100:
            out.append(f"Hand-off at idle: p99 {r['p99_ms']} ms, {_over(r['p99_ms'], 100)} the 100 ms goal.")
    if tok:
        g = tok["goals"]
        if not (g["exactly_one_refresh_per_storm"] and g["no_failed_calls"] and g["all_handed_off"]):
            out.append(f"Token storm: {g} (refreshes per storm {tok['refreshes_per_storm']}).")
    if api:
        over = api["goals"].get("over_goal") or {}
        for name, p99 in over.items():
            why = ""
            if "since" in name:
                why = (
                    " `since` filters last_message_at but pages by chat_id, so SQLite walks the dialogs table"
                    " backwards and tests every row until a page fills; when few dialogs match (a poll that"
                    " finds nothing new) it reads all of them."
                )
            runs = [r["latency"]["p99_ms"] for r in api.get("rounds_raw", {}).get(name, [])]
            if runs:
                why += (
                    f" Per-round p99 ranged {min(runs)}–{max(runs)} ms (p50 {api['pages'][name]['p50_ms']} ms):"
                    " the tail moves with the load of this shared machine."
                )
            out.append(f"API {name}: p99 {p99} ms, {_over(p99, 20)} the 20 ms goal.{why}")
    if dep and "new_user" in dep:
        import deploy_report

        out += deploy_report.misses(dep)
    return out


def write_reports() -> None:
    text = table()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.md").write_text("# Benchmarks\n\n" + text, encoding="utf-8")
    log("wrote bench/results/summary.md")
    readme = ROOT / "README.md"
    if not readme.exists():
        log("README.md not found: README table not updated")
        return
    body = readme.read_text(encoding="utf-8")
    if START not in body or END not in body or body.index(START) > body.index(END):
        log(f"README.md has no {START} ... {END} markers: README table not updated")
        return
    before, rest = body.split(START, 1)
    _, after = rest.split(END, 1)
    readme.write_text(f"{before}{START}\n{text}{END}{after}", encoding="utf-8")
    log("updated the README section between the bench markers")


def main(argv: list[str] | None = None) -> int:
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
    if parts and WORK.exists():
        # Scratch of earlier runs (data dirs, logs): only the latest run's is kept.
        shutil.rmtree(WORK, ignore_errors=True)
    timings: dict[str, float] = {}
    failed: list[str] = []
    for part in parts:
        t0 = time.perf_counter()
        log(f"=== {part} ===")
        try:
            if part == "ingest":
                import ingest

                ingest.run(args.quick)
            elif part == "handoff":
                import handoff

                handoff.run(args.quick)
            elif part == "token":
                import token_storm

                token_storm.run(args.quick)
            elif part == "api":
                import api

                api.run(args.quick)
            elif part == "viewer":
                import viewer

                viewer.run(args.quick)
            elif part == "deploy":
                import deploy

                deploy.run(args.quick)
            elif part == "v2":
                import v2

                v2.run(args.quick)
            elif part == "backfill":
                import backfill

                backfill.run(args.quick)
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
