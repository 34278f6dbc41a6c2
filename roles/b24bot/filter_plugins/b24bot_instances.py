"""The role's instance list: b24bot_instances (or the plain b24bot_* settings) resolved into one dict per
instance with every derived name and path. Pure functions, so pytest covers them without Ansible running.

b24bot_instance_list     (b24bot_instances, settings) -> [{name, service, env_file, data_dir, ..., handler_url}]
b24bot_without_secrets   the same list without client_id, client_secret, api_token, app_env and webhook_url
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean


def _sibling_idna() -> Callable[[Any], str]:
    """b24bot_idna from b24bot.py beside this file. Ansible loads plugin files by path under its own module
    names, so neither an absolute nor a relative import of a sibling works."""
    spec = importlib.util.spec_from_file_location("_b24bot_role_filters", Path(__file__).with_name("b24bot.py"))
    if spec is None or spec.loader is None:
        raise ImportError("b24bot.py not found beside b24bot_instances.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.b24bot_idna


b24bot_idna = _sibling_idna()

# Keys an instance may set itself; the role-wide b24bot_<key> is the default for each.
OVERRIDABLE = (
    "url_prefix",
    "port",
    "workers",
    "client_id",
    "client_secret",
    "api_token",
    "portal_domain",
    "oauth_url",
    "bot_code",
    "bot_name",
    "transfer",
    "lines",
    "log_level",
    "app_env",
    "retention_days",
    "retention_lines",
    "download_files",
    "viewer_users",
    "bot_api",
    "event_mode",
    "webhook_url",
    "v2_bot_code",
    "pump_idle_s",
    "pump_busy_s",
    "pump_limit",
)
# Also needed in `settings`: the host-wide domain, directories and URL scheme.
HOST_KEYS = ("domain", "config_dir", "data_dir", "log_dir", "scheme")
SECRET_KEYS = ("client_id", "client_secret", "api_token", "app_env", "webhook_url")
_STRINGS = ("client_id", "client_secret", "api_token", "portal_domain", "oauth_url", "bot_code", "bot_name")
_STRINGS += ("transfer", "lines", "log_level", "bot_api", "event_mode", "v2_bot_code")


def _int(value: Any) -> int:
    """Like Jinja's `int`: an unparsable value becomes 0, which validation then reports as out of range."""
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return 0


def _float(value: Any) -> float:
    """Like Jinja's `float`: an unparsable value becomes 0.0, which validation then reports as out of range."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _bool(value: Any) -> bool:
    try:
        return boolean(value, strict=False)
    except TypeError:
        return False


def _joined(users: Any) -> str:
    """Viewer accounts as the app reads them (user:hash,user:hash); a string is taken as already joined."""
    if isinstance(users, str):
        return users
    return ",".join(str(u) for u in users or [])


def _app_env(base: Mapping[str, Any], own: Any) -> Any:
    """The role-wide app_env with the instance's keys on top. A non-mapping is passed through unchanged, so
    validation names the instance and the field instead of failing here."""
    if own is None:
        return dict(base)
    if isinstance(own, Mapping):
        return {**base, **own}
    return own


def _one(spec: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    val = {k: spec.get(k, settings[k]) for k in OVERRIDABLE}
    name = str(spec.get("name", "default"))
    is_default = name == "default"
    service = "b24bot" if is_default else f"b24bot-{name}"
    domain_input = spec.get("domain") or settings["domain"]
    domain = b24bot_idna(domain_input)
    prefix = str(val["url_prefix"])
    return {
        "name": name,
        "is_default": is_default,
        "service": service,
        "sync_service": f"{service}-sync",
        "env_file": f"{settings['config_dir']}/{'b24bot' if is_default else name}.env",
        "data_dir": settings["data_dir"] if is_default else f"{settings['data_dir']}-{name}",
        "log_file": f"{settings['log_dir']}/{'bot' if is_default else name}.log",
        "domain": domain,
        "domain_input": domain_input,
        "url_prefix": prefix,
        "port": _int(val["port"]),
        "workers": _int(val["workers"]),
        **{k: str(val[k]) for k in _STRINGS},
        "app_env": _app_env(settings["app_env"], spec.get("app_env")),
        "retention_days": _int(val["retention_days"]),
        "retention_lines": val["retention_lines"],
        "download_files": _bool(val["download_files"]),
        "viewer_users": _joined(val["viewer_users"]),
        # Chatbots 2.0: with an inbound webhook `b24bot register` needs no OAuth install.
        "webhook_url": str(val["webhook_url"]).strip(),
        "auth": "webhook" if str(val["webhook_url"]).strip() else "oauth",
        "pump_idle_s": _float(val["pump_idle_s"]),
        "pump_busy_s": _float(val["pump_busy_s"]),
        "pump_limit": _int(val["pump_limit"]),
        "handler_url": f"{settings['scheme']}://{domain}{prefix}",
    }


def b24bot_instance_list(instances: Any, settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One resolved dict per entry of b24bot_instances; an empty list means one instance named default."""
    missing = [k for k in (*OVERRIDABLE, *HOST_KEYS) if k not in settings]
    if missing:
        raise AnsibleFilterError(f"b24bot_instance_list: settings lack {', '.join(missing)}")
    specs = list(instances or []) or [{"name": "default"}]
    bad = [i for i, s in enumerate(specs) if not isinstance(s, Mapping)]
    if bad:
        raise AnsibleFilterError(f"b24bot_instances: entries {bad} are not mappings (name: ..., port: ...)")
    return [_one(spec, settings) for spec in specs]


def b24bot_without_secrets(instances: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The instance list safe to print, loop over in task output, or put in templates without secrets."""
    return [{k: v for k, v in i.items() if k not in SECRET_KEYS} for i in instances]


class FilterModule:
    """b24bot instance-list filters."""

    def filters(self) -> dict[str, Any]:
        return {"b24bot_instance_list": b24bot_instance_list, "b24bot_without_secrets": b24bot_without_secrets}
