"""Figure 5: deploy wall times. Fresh converge of one host, a no-change rerun, then the same for 3 hosts at once.

Containers are started exactly as Molecule's default scenario starts them (the platform settings are read from
molecule/default/molecule.yml; images from scripts/test-images.sh), and site.yml is run against a generated
inventory over the community.docker.docker connection, with the scenario's group_vars.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml
from common import ROOT, log, other_containers, workdir, write_result

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


def _inventory(path: Path, hosts: list[str], group_vars: dict[str, Any], app_src: Path) -> None:
    gv = {
        **group_vars,
        "b24bot_app_src": str(app_src),
        "ansible_connection": "community.docker.docker",
        "b24bot_domain_mode": "custom",
        "b24bot_domain": "{{ inventory_hostname }}.example.test",
    }
    inv = {"all": {"children": {"b24bot": {"hosts": {h: {} for h in hosts}, "vars": gv}}}}
    path.write_text(yaml.safe_dump(inv, sort_keys=False))


def _playbook(inventory: Path, logfile: Path, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        # Per-task durations at the end of the log: where a run spends its time.
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
        **(extra_env or {}),
    }
    ansible = Path(__import__("sys").executable).with_name("ansible-playbook")
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
    text = logfile.read_text()
    recap = {
        m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3)), "failed": int(m.group(5))}
        for m in re.finditer(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", text, re.M)
    }
    slowest = [
        (m.group(1).strip(), float(m.group(2)))
        for m in re.finditer(r"^(.+?) -{3,} (\d+\.\d+)s$", text, re.M)
        if not m.group(1).startswith("=")
    ]
    slowest = sorted(slowest, key=lambda x: -x[1])[:8]
    return {
        "wall_s": round(wall, 1),
        "rc": rc,
        "recap": recap,
        "slowest_tasks": slowest,
        "log": str(logfile.relative_to(ROOT)),
    }


def run(quick: bool = False) -> dict[str, Any]:
    platform, group_vars = _platform()
    wd = workdir("deploy")
    noise = other_containers()
    app_src = _snapshot_app(wd / "app")
    results: dict[str, Any] = {
        "method": (
            "docker run with molecule/default platform settings (image "
            f"{platform['image']}), ansible-playbook site.yml over community.docker.docker, "
            "molecule default group_vars; the app source is a copy of app/ taken when the part starts (so"
            " concurrent commits cannot change it between runs); one run of each step (slow), wall time of"
            " ansible-playbook only; per-task times from ansible.posix.profile_tasks"
        ),
        "other_containers_during_run": noise,
    }
    for n in (1,) if os.environ.get("B24BOT_BENCH_KEEP") else (1, 3):
        hosts = [f"{PREFIX}{n}-{i}" for i in range(1, n + 1)]
        _remove(hosts)
        try:
            for h in hosts:
                _run_container(h, platform)
            for h in hosts:
                _wait_systemd(h)
            inv = wd / f"inventory-{n}.yml"
            _inventory(inv, hosts, group_vars, app_src)
            log(f"deploy: fresh converge of {n} host(s)")
            fresh = _playbook(inv, wd / f"fresh-{n}.log")
            log(f"deploy: fresh {n}: {fresh['wall_s']} s rc={fresh['rc']}")
            log(f"deploy: no-change rerun of {n} host(s)")
            rerun = _playbook(inv, wd / f"rerun-{n}.log")
            log(f"deploy: rerun {n}: {rerun['wall_s']} s rc={rerun['rc']}")
            # Experiment: ansible.cfg enables pipelining under [ssh_connection] only, so the docker connection
            # (Molecule's too) copies every module into the container first. The same rerun with it on:
            log(f"deploy: no-change rerun of {n} host(s) with ANSIBLE_PIPELINING=True")
            piped = _playbook(inv, wd / f"rerun-pipelining-{n}.log", {"ANSIBLE_PIPELINING": "True"})
            log(f"deploy: rerun {n} with pipelining: {piped['wall_s']} s rc={piped['rc']}")
            results[f"hosts_{n}"] = {"fresh": fresh, "rerun": rerun, "rerun_pipelining": piped}
        finally:
            if not os.environ.get("B24BOT_BENCH_KEEP"):
                _remove(hosts)
    one, three = results["hosts_1"], results["hosts_3"]
    results["ratio_3_to_1"] = {
        "fresh": round(three["fresh"]["wall_s"] / one["fresh"]["wall_s"], 2),
        "rerun": round(three["rerun"]["wall_s"] / one["rerun"]["wall_s"], 2),
        "rerun_pipelining": round(three["rerun_pipelining"]["wall_s"] / one["rerun_pipelining"]["wall_s"], 2),
    }
    ok = all(r["rc"] == 0 for h in (one, three) for r in h.values())
    rerun_changed = sum(v["changed"] for h in (one, three) for v in h["rerun"]["recap"].values())
    results["goals"] = {
        "all_runs_succeeded": ok,
        "rerun_changed_tasks": rerun_changed,
        "rerun_under_30s": max(one["rerun"]["wall_s"], three["rerun"]["wall_s"]) < 30,
        "three_hosts_within_1_5x": max(results["ratio_3_to_1"]["fresh"], results["ratio_3_to_1"]["rerun"]) <= 1.5,
    }
    write_result("deploy", results)
    return results


if __name__ == "__main__":
    run()
