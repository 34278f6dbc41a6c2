"""The role's instance list: the b24bot_instance_list filter alone, and validate.yml using it under Ansible."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROLE = ROOT / "roles" / "b24bot"
SETTINGS: dict[str, Any] = {
    "domain": "bot.example.com",
    "config_dir": "/etc/b24bot",
    "data_dir": "/var/lib/b24bot",
    "log_dir": "/var/log/b24bot",
    "scheme": "https",
    "url_prefix": "/python_bot/",
    "port": 8000,
    "workers": 2,
    "client_id": "local.1",
    "client_secret": "role-secret",
    "api_token": "role-api-token-0123456789",
    "portal_domain": "company.bitrix24.ru",
    "oauth_url": "https://oauth.bitrix.info/oauth/token/",
    "bot_code": "b24bot",
    "bot_name": "Bot",
    "transfer": "operator",
    "lines": "",
    "log_level": "INFO",
    "app_env": {"B24BOT_REST_RATE": "2"},
    "retention_days": 0,
    "retention_lines": {},
    "download_files": True,
    "viewer_users": ["ann:hash1", "bob:hash2"],
    "bot_api": "v2",
    "event_mode": "fetch",
    "webhook_url": "https://company.bitrix24.ru/rest/1/hook-secret/",
    "v2_bot_code": "",
    "pump_idle_s": 5.0,
    "pump_busy_s": 2.0,
    "pump_limit": 100,
}


def _module() -> ModuleType:
    path = ROLE / "filter_plugins" / "b24bot_instances.py"
    spec = importlib.util.spec_from_file_location("b24bot_instances_under_test", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def f() -> ModuleType:
    return _module()


def test_no_instances_means_one_default_with_the_role_settings(f: ModuleType) -> None:
    (only,) = f.b24bot_instance_list([], SETTINGS)
    derived = {k: v for k, v in only.items() if k not in SETTINGS}
    assert derived == {
        "name": "default",
        "is_default": True,
        "service": "b24bot",
        "sync_service": "b24bot-sync",
        "env_file": "/etc/b24bot/b24bot.env",
        "log_file": "/var/log/b24bot/bot.log",
        "domain_input": "bot.example.com",
        "handler_url": "https://bot.example.com/python_bot/",
        "auth": "webhook",
    }
    # Every role-wide setting reaches the instance as it is, but the joined viewer accounts.
    assert {k: only[k] for k in SETTINGS if k in only and k != "viewer_users"} == {
        k: v for k, v in SETTINGS.items() if k not in ("config_dir", "log_dir", "scheme", "viewer_users")
    }
    assert only["viewer_users"] == "ann:hash1,bob:hash2"
    assert f.b24bot_instance_list(None, SETTINGS) == [only]


def test_a_named_instance_gets_its_own_names_and_overrides(f: ModuleType) -> None:
    spec = {
        "name": "shop",
        "domain": "Бот.Пример.РФ",
        "url_prefix": "/shop/",
        "port": "8101",
        "workers": "3",
        "api_token": "shop-token-0123456789",
        "app_env": {"B24BOT_EXTRA": "1"},
        "download_files": "no",
        "viewer_users": [],
    }
    _, shop = f.b24bot_instance_list([{"name": "default"}, spec], SETTINGS)
    assert shop["service"] == "b24bot-shop" and shop["sync_service"] == "b24bot-shop-sync"
    assert shop["env_file"] == "/etc/b24bot/shop.env"
    assert shop["data_dir"] == "/var/lib/b24bot-shop"
    assert shop["log_file"] == "/var/log/b24bot/shop.log"
    assert shop["domain"] == "xn--90a0am.xn--e1afmkfd.xn--p1ai" and shop["domain_input"] == "Бот.Пример.РФ"
    assert shop["handler_url"] == "https://xn--90a0am.xn--e1afmkfd.xn--p1ai/shop/"
    assert (shop["port"], shop["workers"]) == (8101, 3)
    assert shop["api_token"] == "shop-token-0123456789" and shop["client_secret"] == "role-secret"
    assert shop["app_env"] == {"B24BOT_REST_RATE": "2", "B24BOT_EXTRA": "1"}
    assert shop["download_files"] is False and shop["viewer_users"] == ""
    assert SETTINGS["app_env"] == {"B24BOT_REST_RATE": "2"}, "the role-wide app_env must not be changed in place"


def test_values_validation_must_see_are_passed_on_not_raised(f: ModuleType) -> None:
    (inst,) = f.b24bot_instance_list([{"name": 7, "domain": "", "port": "eighty", "app_env": ["x"]}], SETTINGS)
    assert inst["name"] == "7"
    assert inst["domain"] == "bot.example.com", "an empty domain falls back to the host's, as an unset one does"
    assert inst["port"] == 0, "unparsable numbers become 0, which validation reports as out of range"
    assert inst["app_env"] == ["x"], "a non-mapping app_env reaches validation, which names the instance"


def test_bad_input_is_named(f: ModuleType) -> None:
    with pytest.raises(Exception, match="not mappings"):
        f.b24bot_instance_list(["shop"], SETTINGS)
    with pytest.raises(Exception, match="settings lack scheme"):
        f.b24bot_instance_list([], {k: v for k, v in SETTINGS.items() if k != "scheme"})


def test_the_public_list_has_every_key_but_the_secrets(f: ModuleType) -> None:
    full = f.b24bot_instance_list([{"name": "default"}, {"name": "shop", "port": 8101}], SETTINGS)
    public = f.b24bot_without_secrets(full)
    for whole, safe in zip(full, public, strict=True):
        assert set(whole) - set(safe) == {"client_id", "client_secret", "api_token", "app_env", "webhook_url"}
        assert {k: whole[k] for k in safe} == safe
    assert "role-secret" not in json.dumps(public) and "hook-secret" not in json.dumps(public)


def test_playbooks_read_only_facts_the_role_sets() -> None:
    """Every b24bot_instances*/b24bot_domains name a playbook or template reads is one validate.yml sets."""
    validate = (ROLE / "tasks" / "validate.yml").read_text()
    set_here = set(re.findall(r"^    (b24bot_\w+|__b24bot_\w+):", validate, re.M))
    assert {"b24bot_instances_resolved", "b24bot_instances_public", "b24bot_domains"} <= set_here
    readers = [*ROOT.glob("playbooks/*.yml"), *ROOT.glob("molecule/*/*.yml"), *ROLE.rglob("*.yml"), *ROLE.rglob("*.j2")]
    read = {n for p in readers for n in re.findall(r"\b_*b24bot_instances_\w+|\b_*b24bot_domains\b", p.read_text())}
    assert read <= set_here, f"read but never set: {sorted(read - set_here)}"


PLAY = """
- hosts: all
  gather_facts: true
  gather_subset: [min]
  tasks:
    - ansible.builtin.include_role: {name: b24bot, tasks_from: validate.yml}
    - ansible.builtin.copy:
        content: "{{ {'public': b24bot_instances_public, 'domains': b24bot_domains,
                      'resolved_names': b24bot_instances_resolved | map(attribute='name') | list} | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
"""


def _validate(tmp_path: Path, instances: list[dict[str, Any]]) -> tuple[subprocess.CompletedProcess[str], Path]:
    """validate.yml under ansible-playbook (local connection, changes nothing)."""
    play, out = tmp_path / "play.yml", tmp_path / "out.json"
    play.write_text(PLAY)
    extra = {
        "out": str(out),
        "ansible_python_interpreter": sys.executable,
        "b24bot_domain": "Bot.Example.COM",
        "b24bot_api_token": "t" * 20,
        "b24bot_instances": instances,
    }
    ansible = Path(sys.executable).with_name("ansible-playbook")
    run = subprocess.run(
        [str(ansible), "-v", "-i", "localhost,", "-c", "local", str(play), "-e", json.dumps(extra)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(ROOT / "roles")},
    )
    return run, out


def test_an_instance_named_after_another_ones_sync_unit_is_refused(tmp_path: Path) -> None:
    run, out = _validate(tmp_path, [{"name": "shop"}, {"name": "shop-sync", "port": 8101}])
    assert run.returncode != 0 and not out.exists()
    assert "two instances would share the systemd unit b24bot-shop-sync.service" in run.stdout


def test_validate_yml_sets_the_public_facts(tmp_path: Path) -> None:
    """The filter is found and the facts other playbooks read come out under their public names."""
    run, out = _validate(tmp_path, [{"name": "default"}, {"name": "shop", "port": 8101, "domain": "shop.example.com"}])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    got = json.loads(out.read_text())
    assert [i["name"] for i in got["public"]] == got["resolved_names"] == ["default", "shop"]
    assert got["domains"] == ["bot.example.com", "shop.example.com"]
    assert got["public"][1]["service"] == "b24bot-shop" and "api_token" not in got["public"][1]
    assert "t" * 20 not in run.stdout, "the secret-holding list must stay out of the output"
