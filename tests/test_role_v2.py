"""The role's Chatbots 2.0 settings and b24bot_domain_mode=none, rendered by real ansible-playbook runs on this
machine (validation, the env file and the nginx site; nothing is installed). Molecule's fleet scenario deploys it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "roles" / "b24bot" / "templates" / "etc"
SECRET = "s3cr3t-webhook-0123"
WEBHOOK = f"https://company.bitrix24.ru/rest/1/{SECRET}/"
BASE = {"b24bot_api_token": "0123456789abcdef0123", "b24bot_client_id": "cid", "b24bot_client_secret": "sec"}

# The role's validation, then the two templates, with the role's defaults and vars (include_role public).
PLAYBOOK = f"""
- hosts: localhost
  connection: local
  gather_facts: true
  gather_subset: [min]
  tasks:
    - ansible.builtin.include_role: {{name: b24bot, tasks_from: "{{{{ item }}}}", public: true}}
      loop: [validate.yml, v2_validate.yml]
    - ansible.builtin.set_fact: {{__b24bot_tls_domains: []}}
    - ansible.builtin.copy: {{content: "{{{{ __b24bot_v2_names | to_json }}}}", dest: "{{{{ out }}}}/registered"}}
    - ansible.builtin.template: {{src: {TEMPLATES}/nginx/sites-available/b24bot.conf.j2, dest: "{{{{ out }}}}/site"}}
    - ansible.builtin.template: {{src: {TEMPLATES}/b24bot/b24bot.env.j2, dest: "{{{{ out }}}}/env-{{{{ item.name }}}}"}}
      loop: "{{{{ b24bot_instances_resolved }}}}"
      no_log: true
"""


def render(tmp_path: Path, **variables: object) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "vars.json").write_text(json.dumps({**BASE, **variables, "out": str(out)}))
    env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
    }
    ansible = Path(sys.executable).parent / "ansible-playbook"
    cmd = [str(ansible), "-i", "localhost,", str(tmp_path / "play.yml"), "-e", f"@{tmp_path / 'vars.json'}"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    return done, out


def env_file(path: Path) -> dict[str, str]:
    lines = [ln for ln in path.read_text().splitlines() if "=" in ln and not ln.startswith("#")]
    return {k: v.strip('"') for k, v in (ln.split("=", 1) for ln in lines)}


def test_none_mode_renders_no_event_location_and_a_v2_env(tmp_path: Path) -> None:
    done, out = render(tmp_path, b24bot_domain_mode="none", b24bot_bot_api="v2", b24bot_webhook_url=WEBHOOK)
    assert done.returncode == 0, done.stdout[-3000:]
    site = (out / "site").read_text()
    assert "server_name localhost 127.0.0.1;" in site
    assert "location = /python_bot/healthz {" in site and "location /python_bot/api/ {" in site
    assert "location /python_bot/ {" not in site  # no event location: nothing is POSTed to this host
    env = env_file(out / "env-default")
    assert (env["B24BOT_BOT_API"], env["B24BOT_EVENT_MODE"], env["B24BOT_WEBHOOK_URL"]) == ("v2", "fetch", WEBHOOK)
    assert env["B24BOT_HANDLER_URL"] == ""
    assert SECRET not in done.stdout + done.stderr


def test_v1_host_gets_no_v2_settings(tmp_path: Path) -> None:
    done, out = render(tmp_path, b24bot_domain="bot.example.com")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "location /python_bot/ {" in (out / "site").read_text()
    env = env_file(out / "env-default")
    assert not any(k.startswith(("B24BOT_BOT_API", "B24BOT_WEBHOOK", "B24BOT_PUMP")) for k in env)
    assert env["B24BOT_HANDLER_URL"] == "http://bot.example.com/python_bot/"


def test_per_instance_v2_overrides(tmp_path: Path) -> None:
    instances = [
        {"name": "default"},
        {"name": "v2", "port": 8081, "url_prefix": "/v2/", "bot_api": "v2", "webhook_url": WEBHOOK, "pump_idle_s": 1},
    ]
    done, out = render(tmp_path, b24bot_domain="bot.example.com", b24bot_instances=instances)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "B24BOT_BOT_API" not in env_file(out / "env-default")
    assert json.loads((out / "registered").read_text()) == ["v2"]  # the instances tasks/v2.yml registers
    env = env_file(out / "env-v2")
    assert (env["B24BOT_BOT_API"], env["B24BOT_PUMP_IDLE_S"], env["B24BOT_PUMP_BUSY_S"]) == ("v2", "1.0", "2.0")


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"b24bot_domain_mode": "none"}, "b24bot_domain_mode=none has no handler URL, so it needs bot_api v2"),
        (
            {"b24bot_domain_mode": "none", "b24bot_bot_api": "v2", "b24bot_event_mode": "webhook"},
            "needs bot_api v2 with event_mode fetch",
        ),
        ({"b24bot_domain_mode": "none", "b24bot_bot_api": "v2", "b24bot_domain": "a.example.com"}, "no public name"),
        (
            {"b24bot_domain": "a.example.com", "b24bot_bot_api": "v2", "b24bot_webhook_url": f"https://x/{SECRET}"},
            "webhook_url is not an inbound webhook URL",
        ),
        ({"b24bot_domain": "a.example.com", "b24bot_webhook_url": WEBHOOK}, "webhook_url is used only with bot_api v2"),
        ({"b24bot_domain": "a.example.com", "b24bot_bot_api": "v2", "b24bot_pump_limit": 5000}, "pump_limit 1-1000"),
    ],
)
def test_refused_settings_say_why_and_never_show_the_webhook(
    tmp_path: Path, variables: dict[str, object], message: str
) -> None:
    done, _ = render(tmp_path, **variables)
    assert done.returncode != 0 and message in done.stdout, done.stdout[-3000:]
    assert SECRET not in done.stdout + done.stderr
