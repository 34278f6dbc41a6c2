"""The deploy part's goals, README table rows and missed-goal lines, from bench/results/deploy.json."""

from __future__ import annotations

from typing import Any

from report_fmt import yes

KINDS = {"new_user": "new-user inventory (DuckDNS, UFW)", "molecule": "Molecule group_vars"}
GOAL_S = {"fresh": 35.0, "rerun": 12.0}
RATIO_GOAL = 1.5


def _n(v: float) -> str:
    return f"{v:.1f}" if abs(v) < 100 else f"{v:.0f}"


def _ratio(res: dict[str, Any], kind: str, step: str) -> float | None:
    sizes = res.get(kind, {})
    if "hosts_3" not in sizes:
        return None
    return round(sizes["hosts_3"][step]["wall_s"] / sizes["hosts_1"][step]["wall_s"], 2)


def goals(res: dict[str, Any]) -> dict[str, Any]:
    """Each goal of the part, per inventory: met or not."""
    out: dict[str, Any] = {}
    for kind in KINDS:
        sizes = res.get(kind)
        if not sizes:
            continue
        runs = [r for size in sizes.values() for r in size.values()]
        one = sizes["hosts_1"]
        out[kind] = {
            "all_runs_succeeded": all(r["rc"] == 0 for r in runs),
            "rerun_changed_tasks": sum(v["changed"] for s in sizes.values() for v in s["rerun"]["recap"].values()),
            "fresh_1_host_le_35s": one["fresh"]["wall_s"] <= GOAL_S["fresh"],
            "rerun_1_host_le_12s": one["rerun"]["wall_s"] <= GOAL_S["rerun"],
            **{
                f"{step}_3_hosts_le_1_5x": (_ratio(res, kind, step) or 0) <= RATIO_GOAL
                for step in ("fresh", "rerun")
                if "hosts_3" in sizes
            },
        }
    return out


def _split(run: dict[str, Any]) -> str:
    """Who spent the CPU seconds: the controller, each host, the docker daemons."""
    cpu = run["cpu_s"]
    hosts = [v for k, v in cpu.items() if k not in ("controller", "docker_daemons")]
    each = "+".join(_n(h) for h in hosts)
    return f"controller {_n(cpu['controller'])}, hosts {each}, docker {_n(cpu['docker_daemons'])}"


def _cpu(run: dict[str, Any]) -> str:
    return f"CPU {_n(run['cpu_total_s'])} s: {_split(run)}"


def rows(res: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    out: list[tuple[str, str, str, str, str]] = []
    for kind, label in KINDS.items():
        sizes = res.get(kind)
        if not sizes:
            continue
        for step in ("fresh", "rerun"):
            one, three = sizes["hosts_1"][step], sizes.get("hosts_3", {}).get(step)
            result = f"1 host {_n(one['wall_s'])} s ({_cpu(one)})"
            base = "–"
            if three:
                ratio = _ratio(res, kind, step)
                result += f"; 3 hosts {_n(three['wall_s'])} s ({_cpu(three)})"
                base = f"**3/1 ratio {ratio}**; {res['cores']}-core bound for 3 hosts {_n(three['cpu_bound_s'])} s"
            g = res["goals"][kind]
            if step == "rerun":
                result += f", changed={g['rerun_changed_tasks']}"
            ok = g["all_runs_succeeded"] and g[f"{step}_1_host_le_{int(GOAL_S[step])}s"]
            ok = ok and g.get(f"{step}_3_hosts_le_1_5x", True) and (step == "fresh" or g["rerun_changed_tasks"] == 0)
            out.append(
                (
                    f"5 Deploy, {label}, {'fresh converge' if step == 'fresh' else 'no-change rerun'}",
                    result,
                    base,
                    f"1 host ≤ {int(GOAL_S[step])} s; 3 hosts ≤ {RATIO_GOAL}× one",
                    yes(ok),
                )
            )
    return out


def _top(run: dict[str, Any], k: int = 3) -> str:
    return ", ".join(f"{n.split(' : ')[-1]} {t:.1f} s" for n, t in (run.get("slowest_tasks") or [])[:k])


def _cause(run: dict[str, Any]) -> str:
    """CPU-bound or waiting, from the CPU seconds the run kept busy against its wall time."""
    cpu, wall = run["cpu_total_s"], run["wall_s"]
    if cpu >= 0.8 * wall:
        return (
            f"CPU-bound: it kept a CPU busy for {cpu} s of its {wall} s ({_split(run)}); tasks run one after another,"
            " so the controller's work per task and the module run on the host barely overlap: only less work"
            " shortens it (fewer tasks reaching the host, or less done in the slowest)."
        )
    return (
        f"It kept a CPU busy for {cpu} s ({_split(run)}); the other {wall - cpu:.1f} s were waiting: downloads,"
        " disk, and the CPU queue of this shared machine."
    )


def _load(res: dict[str, Any]) -> str:
    load = (res.get("machine") or {}).get("loadavg_at_start")
    return f" Load average at the start: {load[0]} (the machine is shared)." if load else ""


def misses(res: dict[str, Any]) -> list[str]:
    """One line per missed goal: by how much, and the cause as the bench measured it."""
    out: list[str] = []
    for kind, label in KINDS.items():
        sizes, g = res.get(kind), res.get("goals", {}).get(kind)
        if not sizes or not g:
            continue
        for step in ("fresh", "rerun"):
            one = sizes["hosts_1"][step]
            if not g[f"{step}_1_host_le_{int(GOAL_S[step])}s"]:
                over = one["wall_s"] - GOAL_S[step]
                out.append(
                    f"Deploy {step}, 1 host, {label}: {one['wall_s']} s, {over:.1f} s ({over / GOAL_S[step]:.0%}) over"
                    f" the {int(GOAL_S[step])} s goal. {_cause(one)} profile_tasks lists {one['tasks_timed']} tasks"
                    f" (skipped ones included, {one['tasks_total_s']} s in all); slowest: {_top(one)}.{_load(res)}"
                )
            three = sizes.get("hosts_3", {}).get(step)
            ratio = _ratio(res, kind, step)
            if three and ratio is not None and ratio > RATIO_GOAL:
                floor = three["cpu_bound_s"] / one["wall_s"]
                out.append(
                    f"Deploy {step}, 3 hosts / 1 host, {label}: {ratio} (goal ≤ {RATIO_GOAL}). The 3-host run cost"
                    f" {three['cpu_total_s']} s of CPU ({_split(three)}), so {res['cores']} cores cannot finish it"
                    f" under {three['cpu_bound_s']} s = {floor:.2f}× the 1-host wall time; the run took"
                    f" {three['wall_s']} s ({three['wall_s'] / max(three['cpu_bound_s'], 0.1):.2f}× that bound)."
                )
    return out


def notes(res: dict[str, Any], before: dict[str, Any] | None) -> list[str]:
    """The method in one line, and the same figures of an earlier tree when bench/results/deploy_before.json
    holds them (the same bench run against that tree, in the same sitting)."""
    load = (res.get("machine") or {}).get("loadavg_at_start") or ["?"]
    out = [
        f"Deploy: site.yml over the docker connection into systemd containers (Molecule's platform settings), one"
        f" run per figure; CPU seconds from getrusage (controller), each container's cgroup and the docker daemons;"
        f" the {res['cores']}-core bound is the 3-host run's CPU seconds / {res['cores']}: no schedule on this"
        f" machine finishes that work sooner. Load average at the start {load[0]} (a shared machine)."
    ]
    if not before or before.get("cores") is None:
        return out
    pairs = []
    for kind, label in KINDS.items():
        for size in ("hosts_1", "hosts_3"):
            for step in ("fresh", "rerun"):
                b = before.get(kind, {}).get(size, {}).get(step)
                a = res.get(kind, {}).get(size, {}).get(step)
                if a and b:
                    pairs.append(
                        f"{label} {size[-1]} host{'s' if size == 'hosts_3' else ''} {step} {_n(b['wall_s'])} → "
                        f"{_n(a['wall_s'])} s (CPU {_n(b['cpu_total_s'])} → {_n(a['cpu_total_s'])} s)"
                    )
    tree = before.get("measured_tree", "the tree before")
    out.append(
        f"Deploy before → after ({tree}, load average {before['machine']['loadavg_at_start'][0]}): "
        + "; ".join(pairs)
        + "."
    )
    return out
