"""Formatting shared by the README table's rows and its missed-goal lines (bench/report.py)."""

from __future__ import annotations

import json
from typing import Any

import common

Row = tuple[str, ...]  # Figure | Result | Baseline / ratio | Goal | Met


def when(result: dict[str, Any]) -> str:
    """When a part ran and on which processor: parts of the table may come from different runs and machines."""
    return f"{result['machine']['date']} ({result['machine'].get('cpu', '?')})"


def load(name: str) -> dict[str, Any] | None:
    path = common.RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        v = f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return f"{v}{unit}"


def over(value: float, goal: float) -> str:
    """'4% over' for near misses, '2.8×' for large ones."""
    return f"{(value / goal - 1):.0%} over" if value < 1.5 * goal else f"{value / goal:.1f}×"
