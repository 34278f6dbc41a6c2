"""CPU seconds a deploy costs, split by who spent them: the controller (ansible-playbook and every process it
waited for, docker CLI included), each container (its cgroup), and the docker daemons between them.

Their sum divided by the machine's cores is the shortest wall time this machine could give the run: the bound a
3-host wall time is judged against.
"""

from __future__ import annotations

import os
import resource
import subprocess
from pathlib import Path

_DAEMONS = ("dockerd", "containerd", "containerd-shim")  # comm is cut at 15 characters
_TICK = os.sysconf("SC_CLK_TCK")


def controller_s() -> float:
    """User + system CPU seconds of every child this process has waited for (ansible-playbook and its forks)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _container_id(name: str) -> str:
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{.Id}}", name], capture_output=True, text=True, timeout=30, check=True
    )
    return out.stdout.strip()


def _cgroup_files(cid: str) -> list[Path]:
    """Where the container's CPU counter lives: cgroup v1 (cgroupfs or systemd driver), then v2."""
    return [
        Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage"),
        Path(f"/sys/fs/cgroup/cpu,cpuacct/docker/{cid}/cpuacct.usage"),
        Path(f"/sys/fs/cgroup/cpuacct/system.slice/docker-{cid}.scope/cpuacct.usage"),
        Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat"),
        Path(f"/sys/fs/cgroup/docker/{cid}/cpu.stat"),
    ]


def container_s(name: str) -> float:
    """CPU seconds the container's cgroup has used since it started (every process in it, systemd included)."""
    cid = _container_id(name)
    for path in _cgroup_files(cid):
        if not path.exists():
            continue
        text = path.read_text()
        if path.name == "cpuacct.usage":
            return int(text) / 1e9
        usage = next(line.split()[1] for line in text.splitlines() if line.startswith("usage_usec"))
        return int(usage) / 1e6
    raise RuntimeError(f"no CPU counter found for container {name} ({cid[:12]})")


def daemons_s() -> float:
    """CPU seconds of dockerd, containerd and the shims so far: their own time only. A shim's waited-for
    children are the processes `docker exec` starts in the container, already counted in its cgroup; the
    short-lived runc runs are left out with them."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
            if comm not in _DAEMONS:
                continue
            # Fields after the ")" that ends comm: utime and stime are fields 14 and 15 of stat.
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        total += int(fields[11]) + int(fields[12])
    return total / _TICK
