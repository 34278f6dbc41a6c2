"""Every module of the app imports on its own in a fresh interpreter: no import cycle hides behind import order."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "app" / "src"
MODULES = sorted(
    ".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
    for p in (SRC / "b24bot").rglob("*.py")
    if p.name != "__main__.py"
)


def test_the_module_list_is_the_package() -> None:
    assert "b24bot.web.app" in MODULES and "b24bot.web.state" in MODULES and len(MODULES) > 30


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone(module: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        env={"PYTHONPATH": str(SRC), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
