"""The role's no-change shortcuts decide right: the app probe and "is it current", and "is UFW already right".

The tasks are taken from the role's own files and run by ansible-playbook on localhost with the inputs a host
would give (the UFW text is real `ufw status verbose` output), so the test follows any edit of those tasks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TASKS = ROOT / "roles" / "b24bot" / "tasks"
UFW_OK = """Status: active
Logging: on (low)
Default: deny (incoming), allow (outgoing), deny (routed)
New profiles: skip

To                         Action      From
--                         ------      ----
22/tcp                     ALLOW IN    Anywhere                   # b24bot ssh
80/tcp                     ALLOW IN    Anywhere                   # b24bot web
22/tcp (v6)                ALLOW IN    Anywhere (v6)              # b24bot ssh
80/tcp (v6)                ALLOW IN    Anywhere (v6)              # b24bot web

"""
ROLE_443 = "443/tcp                    ALLOW IN    Anywhere                   # b24bot web\n"
OTHER_443 = "443/tcp                    ALLOW IN    Anywhere                   # shop\n"


def _task(path: Path, name: str) -> dict[str, Any]:
    """A task (or block) of the role by name, searched in blocks too."""
    todo = list(yaml.safe_load(path.read_text()))
    while todo:
        task = todo.pop(0)
        if task.get("name") == name:
            return task
        todo += task.get("block", [])
    raise AssertionError(f"no task {name!r} in {path.name}")


def _play(tmp_path: Path, tasks: list[dict[str, Any]]) -> None:
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    run = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local", str(play)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_PYTHON_INTERPRETER": sys.executable},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


def _write(out: Path, name: str, value: str) -> dict[str, Any]:
    return {"ansible.builtin.copy": {"content": value, "dest": f"{out}/{name}.json", "mode": "0600"}}


NONE_OK = "\n".join(line for line in UFW_OK.splitlines() if not line.startswith("80/")) + "\n"
ROLE_80 = "80/tcp                     ALLOW IN    Anywhere                   # b24bot web\n"

UFW_CASES = {
    # name: (ufw status verbose, b24bot_tls, b24bot_domain_mode, ssh port, expected right, expected stale ports)
    "converged": (UFW_OK, "none", "duckdns", 22, True, []),
    "converged, someone else's 443 rule": (UFW_OK + OTHER_443, "none", "duckdns", 22, True, []),
    "TLS on, 443 missing": (UFW_OK, "provided", "custom", 22, False, []),
    "TLS on, 443 open": (
        UFW_OK + ROLE_443 + ROLE_443.replace("/tcp ", "/tcp (v6)").replace("Anywhere ", "Anywhere (v6)"),
        "provided",
        "custom",
        22,
        True,
        [],
    ),
    "TLS off, the role's 443 still open": (UFW_OK + ROLE_443, "none", "duckdns", 22, False, ["443"]),
    "inactive": ("Status: inactive\n", "none", "duckdns", 22, False, []),
    "incoming allowed": (UFW_OK.replace("deny (incoming)", "allow (incoming)"), "none", "duckdns", 22, False, []),
    "another SSH port": (UFW_OK, "none", "duckdns", 2222, False, []),
    "the v6 rule missing": (UFW_OK.replace("80/tcp (v6)", "81/tcp (v6)"), "none", "duckdns", 22, False, []),
    "the comment differs": (UFW_OK.replace("# b24bot web", "# web"), "none", "duckdns", 22, False, []),
    "domain mode none, converged": (NONE_OK, "none", "none", 22, True, []),
    "domain mode none, the role's 80 still open": (UFW_OK, "none", "none", 22, False, ["80"]),
    "domain mode none, someone else's 80 rule": (
        NONE_OK + ROLE_80.replace("b24bot web", "shop"),
        "none",
        "none",
        22,
        True,
        [],
    ),
}


def test_ufw_calls_are_skipped_exactly_when_the_state_is_right(tmp_path: Path) -> None:
    outer = _task(TASKS / "firewall.yml", "Configure UFW")
    block = _task(TASKS / "firewall.yml", "Set the UFW rules and defaults that are not right yet")
    tasks = []
    for i, (status, tls, mode, port, _, _) in enumerate(UFW_CASES.values()):
        task = _write(tmp_path, str(i), "{{ {'right': __b24bot_ufw_right, 'stale': __b24bot_ufw_stale} | to_json }}")
        task["vars"] = {
            **outer["vars"],
            **block["vars"],
            "b24bot_domain_mode": mode,
            "__b24bot_ufw_status": {"stdout": status, "stdout_lines": status.splitlines()},
            "b24bot_tls": tls,
            "b24bot_ufw_ssh_port": port,
        }
        tasks.append(task)
    _play(tmp_path, tasks)
    for i, (name, (*_, right, stale)) in enumerate(UFW_CASES.items()):
        got = json.loads((tmp_path / f"{i}.json").read_text())
        assert (got["right"], got["stale"]) == (right, stale), name


def _probe(venv: Path, stamp: Path) -> dict[str, Any]:
    task = _task(TASKS / "app.yml", "Read the interpreter, the venv and the installed app's fingerprint")
    code = task["vars"]["__b24bot_probe"]
    out = subprocess.run(
        [sys.executable, "-c", code, str(venv), str(stamp)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_app_probe_reads_the_venv_and_the_stamp(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    me = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert _probe(venv, venv / ".stamp") == {"python": me, "venv": "", "venv_python": False, "stamp": ""}
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\n")
    (venv / ".stamp").write_text("fp-1\n")
    assert _probe(venv, venv / ".stamp") == {"python": me, "venv": "3.11", "venv_python": True, "stamp": "fp-1"}


APP_CASES = {
    # name: (probe rc, probe output, expected current)
    "converged": (0, {"python": "3.11", "venv": "3.11", "venv_python": True, "stamp": "fp"}, True),
    "new app": (0, {"python": "3.11", "venv": "3.11", "venv_python": True, "stamp": "old"}, False),
    "fresh host": (0, {"python": "3.11", "venv": "", "venv_python": False, "stamp": ""}, False),
    "new interpreter": (0, {"python": "3.13", "venv": "3.11", "venv_python": True, "stamp": "fp"}, False),
    "venv python gone": (0, {"python": "3.11", "venv": "3.11", "venv_python": False, "stamp": "fp"}, False),
    "no interpreter (fresh check mode)": (2, None, False),
}


def test_app_is_current_only_with_its_fingerprint_in_a_venv_of_this_interpreter(tmp_path: Path) -> None:
    note = _task(TASKS / "app.yml", "Note whether the installed app is current")
    tasks = []
    for i, (rc, probed, _) in enumerate(APP_CASES.values()):
        tasks.append(
            {
                **note,
                "vars": {
                    **note.get("vars", {}),
                    "__b24bot_app_fingerprint": "fp",
                    "__b24bot_app_probe": {"rc": rc, "stdout": json.dumps(probed) if probed else ""},
                },
            }
        )
        tasks.append(_write(tmp_path, str(i), "{{ __b24bot_app_current | to_json }}"))
    _play(tmp_path, tasks)
    for i, (name, (*_, current)) in enumerate(APP_CASES.items()):
        assert json.loads((tmp_path / f"{i}.json").read_text()) is current, name
