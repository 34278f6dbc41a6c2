"""Figure 5: deploy wall and CPU times. Fresh converge of one host, a no-change rerun, then the same for 3 hosts at
once; on two inventories (Molecule's group_vars, and what a new user runs).

Containers are started exactly as Molecule's default scenario starts them (the platform settings are read from
molecule/default/molecule.yml; images from scripts/test-images.sh), and site.yml is run against a generated
inventory over the community.docker.docker connection, with the scenario's group_vars.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import deploy_cpu
import yaml
from common import ROOT, log, other_containers, workdir, write_result
from deploy_report import goals

PREFIX = "b24bot-bench-"


def _platform() -> tuple[dict[str, Any], dict[str, Any]]:
    cfg = yaml.safe_load((ROOT / "molecule" / "default" / "molecule.yml").read_text())
    platform = next(p for p in cfg["platforms"] if p["image"].endswith(":bookworm"))
    group_vars = dict(cfg["provisioner"]["inventory"]["group_vars"]["b24bot"])
    return platform, group_vars


def _docker(*args: str, timeout: float = 300, check: bool = True) -> str:
    out = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])}: {out.stderr.strip()}")
    return out.stdout


def _run_container(name: str, p: dict[str, Any]) -> None:
    argv = ["run", "-d", "--name", name, "--hostname", name]
    argv += [f"--cap-add={c}" for c in p.get("capabilities", [])]
    argv += [f"--security-opt={s}" for s in p.get("security_opts", [])]
    if p.get("cgroupns_mode"):
        argv.append(f"--cgroupns={p['cgroupns_mode']}")
    argv += [f"--volume={v}" for v in p.get("volumes", [])]
    argv += [f"--tmpfs={t}" for t in p.get("tmpfs", [])]
    if p.get("stop_signal"):
        argv.append(f"--stop-signal={p['stop_signal']}")
    argv += [p["image"], *str(p.get("command", "/lib/systemd/systemd")).split()]
    _docker(*argv)


def _wait_systemd(name: str, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    state = ""
    while time.time() < deadline:
        out = subprocess.run(
            ["docker", "exec", name, "systemctl", "is-system-running", "--wait"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        state = out.stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(1)
    raise RuntimeError(f"{name}: systemd did not finish booting ({state!r})")


def _remove(names: list[str]) -> None:
    if names:
        _docker("rm", "-f", *names, check=False, timeout=120)


def _snapshot_app(dest: Path) -> Path:
    """A frozen copy of app/ for every run of this part: others commit to app/ while the bench runs, and a
    changed source file would turn the no-change rerun into a redeploy."""
    shutil.copytree(
        ROOT / "app",
        dest,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist", ".*"),
    )
    return dest


# What a new user runs (inventory.example's group_vars and vps1's host_vars): a dedicated service user, DuckDNS
# mode with UFW on; HTTP only (Let's Encrypt cannot run offline), the DuckDNS endpoint faked inside the host.
NEW_USER_VARS: dict[str, Any] = {
    "b24bot_workers": 2,
    "b24bot_sync_interval": "15min",
    "b24bot_user": "b24bot",
    "b24bot_domain_mode": "duckdns",
    "b24bot_duckdns_subdomain": "{{ inventory_hostname }}",
    "b24bot_duckdns_token": "bench-duckdns-token-0000",
    "b24bot_duckdns_update_url": "http://127.0.0.1:8053/update",
    "b24bot_ufw_enabled": True,
}


def _inventory(path: Path, hosts: list[str], group_vars: dict[str, Any], app_src: Path, kind: str) -> None:
    gv = {
        **group_vars,
        "b24bot_app_src": str(app_src),
        # A new, empty wheel cache for each fresh run: the first deploy from a new controller builds the wheel.
        "b24bot_wheel_cache": str(path.with_suffix(".wheels")),
        "ansible_connection": "community.docker.docker",
    }
    if kind == "new_user":
        gv.update(NEW_USER_VARS)
    else:
        gv.update({"b24bot_domain_mode": "custom", "b24bot_domain": "{{ inventory_hostname }}.example.test"})
    inv = {"all": {"children": {"b24bot": {"hosts": {h: {} for h in hosts}, "vars": gv}}}}
    path.write_text(yaml.safe_dump(inv, sort_keys=False))


def _fake_duckdns(host: str) -> None:
    """The Molecule scenario's stand-in for DuckDNS, started the way its prepare step starts it."""
    files = ROOT / "molecule" / "resources" / "files"
    _docker("cp", str(files / "fake-duckdns.py"), f"{host}:/usr/local/bin/fake-duckdns")
    _docker("cp", str(files / "fake-duckdns.service"), f"{host}:/etc/systemd/system/fake-duckdns.service")
    _docker(
        "exec",
        host,
        "sh",
        "-c",
        "chmod 755 /usr/local/bin/fake-duckdns && systemctl daemon-reload"
        " && systemctl enable --now fake-duckdns.service",
    )


def _recap(text: str) -> dict[str, dict[str, int]]:
    return {
        m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3)), "failed": int(m.group(5))}
        for m in re.finditer(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", text, re.M)
    }


def _tasks(text: str) -> list[tuple[str, float]]:
    """profile_tasks' closing list: every task that ran, with its duration, slowest first."""
    found = [
        (m.group(1).strip(), float(m.group(2)))
        for m in re.finditer(r"^(.+?) -{3,} (\d+\.\d+)s$", text, re.M)
        if not m.group(1).startswith("=")
    ]
    return sorted(found, key=lambda x: -x[1])


def _playbook(inventory: Path, hosts: list[str], logfile: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        # Per-task durations at the end of the log: where a run spends its time.
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
        "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all",
    }
    ansible = Path(sys.executable).with_name("ansible-playbook")
    cpu_hosts = {h: deploy_cpu.container_s(h) for h in hosts}
    cpu_ctl, cpu_dockerd = deploy_cpu.controller_s(), deploy_cpu.daemons_s()
    started = time.perf_counter()
    with logfile.open("w") as fh:
        rc = subprocess.run(
            [str(ansible), "-i", str(inventory), str(ROOT / "site.yml")],
            cwd=ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=1800,
            check=False,
        ).returncode
    wall = time.perf_counter() - started
    cpu = {
        "controller": deploy_cpu.controller_s() - cpu_ctl,
        "docker_daemons": deploy_cpu.daemons_s() - cpu_dockerd,
        **{h: deploy_cpu.container_s(h) - v for h, v in cpu_hosts.items()},
    }
    total = sum(cpu.values())
    text = logfile.read_text()
    tasks = _tasks(text)
    return {
        "wall_s": round(wall, 1),
        "rc": rc,
        "recap": _recap(text),
        "cpu_s": {k: round(v, 1) for k, v in cpu.items()},
        "cpu_total_s": round(total, 1),
        # The shortest wall time this machine's cores allow for that much CPU work.
        "cpu_bound_s": round(total / (os.cpu_count() or 1), 1),
        "tasks_timed": len(tasks),
        "tasks_total_s": round(sum(t for _, t in tasks), 1),
        "slowest_tasks": tasks[:8],
        "log": str(logfile.relative_to(ROOT)),
    }


def _hosts_run(n: int, kind: str, platform: dict[str, Any], group_vars: dict[str, Any], wd: Path, app_src: Path):
    hosts = [f"{PREFIX}{kind.replace('_', '')}-{n}-{i}" for i in range(1, n + 1)]
    _remove(hosts)
    try:
        for h in hosts:
            _run_container(h, platform)
        for h in hosts:
            _wait_systemd(h)
            if kind == "new_user":
                _fake_duckdns(h)
        inv = wd / f"inventory-{kind}-{n}.yml"
        _inventory(inv, hosts, group_vars, app_src, kind)
        out = {}
        for step in ("fresh", "rerun"):
            log(f"deploy: {kind}, {step} run on {n} host(s)")
            out[step] = _playbook(inv, hosts, wd / f"{kind}-{step}-{n}.log")
            r = out[step]
            log(f"deploy: {kind} {step} {n}: {r['wall_s']} s rc={r['rc']} cpu {r['cpu_s']} bound {r['cpu_bound_s']} s")
        return out
    finally:
        if not os.environ.get("B24BOT_BENCH_KEEP"):
            _remove(hosts)


def run(quick: bool = False) -> dict[str, Any]:
    # A stopped bench still removes its containers (the finally below) and its running ansible-playbook.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    platform, group_vars = _platform()
    wd = workdir("deploy")
    noise = other_containers()
    app_src = _snapshot_app(wd / "app")
    results: dict[str, Any] = {
        "method": (
            "docker run with molecule/default platform settings (image "
            f"{platform['image']}), ansible-playbook site.yml with the project's ansible.cfg over"
            " community.docker.docker; two inventories: Molecule's default group_vars (custom domain), and"
            " what a new user runs (inventory.example: b24bot user, DuckDNS mode against a local fake endpoint,"
            " UFW on, HTTP only); the app source is a copy of app/ taken when the part starts, the wheel cache empty"
            " before each fresh run; one run of each"
            " step; wall time of ansible-playbook; CPU seconds of the controller (getrusage of ansible-playbook"
            " and its children), of each container (its cgroup) and of dockerd/containerd/shims (/proc, their own"
            " time; dockerd also serves other jobs' docker commands if any run);"
            " per-task times from ansible.posix.profile_tasks"
        ),
        "other_containers_during_run": noise,
        "cores": os.cpu_count(),
        "quick": quick,
    }
    sizes = (1,) if quick else (1, 3)
    for kind in ("new_user", "molecule"):
        results[kind] = {f"hosts_{n}": _hosts_run(n, kind, platform, group_vars, wd, app_src) for n in sizes}
    results["goals"] = goals(results)
    write_result("deploy", results)
    return results


if __name__ == "__main__":
    run()
