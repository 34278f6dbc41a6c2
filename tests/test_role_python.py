"""The role's own Python: the controller-side wheel build and the filter plugin."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ROLE = ROOT / "roles" / "b24bot"
EXCLUDE = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["b24bot_app_src_exclude"]


def build(src: Path, cache: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, str(ROLE / "files" / "build_wheel.py"), str(src), str(cache), EXCLUDE],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


@pytest.fixture
def app_copy(tmp_path: Path) -> Path:
    src = tmp_path / "app"
    shutil.copytree(ROOT / "app", src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    return src


def test_wheel_is_byte_identical_for_identical_source_and_cached(app_copy: Path, tmp_path: Path) -> None:
    first = build(app_copy, tmp_path / "cache1")
    second = build(app_copy, tmp_path / "cache2")  # a fresh build elsewhere, not the cache
    assert first["cached"] is False and second["cached"] is False
    assert first["wheel_sha256"] == second["wheel_sha256"]
    assert Path(str(first["wheel"])).read_bytes() == Path(str(second["wheel"])).read_bytes()
    again = build(app_copy, tmp_path / "cache1")
    assert again["cached"] is True and again["wheel"] == first["wheel"]


def test_changed_source_gives_a_new_wheel_and_leftovers_never_leak(app_copy: Path, tmp_path: Path) -> None:
    before = build(app_copy, tmp_path / "cache")
    # In-tree leftovers a local build leaves behind must not reach the wheel or change its hash.
    stale = app_copy / "build" / "lib" / "b24bot" / "removed_module.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("x = 1\n")
    (app_copy / "src" / "b24bot" / "__pycache__").mkdir(exist_ok=True)
    (app_copy / "src" / "b24bot" / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"\0")
    assert build(app_copy, tmp_path / "cache")["wheel_sha256"] == before["wheel_sha256"]

    (app_copy / "src" / "b24bot" / "new_module.py").write_text('"""Added."""\n')
    after = build(app_copy, tmp_path / "cache")
    assert after["cached"] is False and after["wheel_sha256"] != before["wheel_sha256"]
    names = zipfile.ZipFile(str(after["wheel"])).namelist()
    assert "b24bot/new_module.py" in names
    assert not [n for n in names if "removed_module" in n or n.endswith(".pyc")]
    assert Path(str(after["requirements"])).read_text() == (app_copy / "requirements.txt").read_text()


def _filters() -> ModuleType:
    spec = importlib.util.spec_from_file_location("b24bot_filters", ROLE / "filter_plugins" / "b24bot.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_idna_filter() -> None:
    f = _filters()
    assert f.b24bot_idna("Бот.Пример.РФ.") == "xn--90a0am.xn--e1afmkfd.xn--p1ai"
    assert f.b24bot_idna("Bot.Example.COM") == "bot.example.com"
    assert f.b24bot_idna(None) == ""
    with pytest.raises(Exception, match="empty label"):
        f.b24bot_idna("a..b")


def test_env_quote_filter_reads_back_the_same_bytes_in_sh() -> None:
    f = _filters()
    value = 'a"b$c`d\\e f'
    quoted = f.b24bot_env_quote(value)
    echoed = subprocess.run(["sh", "-c", f"printf %s {quoted}"], check=True, capture_output=True, text=True)
    assert echoed.stdout == value
    assert f.b24bot_env_quote(True) == '"true"'
    with pytest.raises(Exception, match="single-line"):
        f.b24bot_env_quote("a\nb")
