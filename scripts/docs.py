#!/usr/bin/env python3
"""Regenerate the role-variables table from roles/b24bot/meta/argument_specs.yml, in the top README and in the
role's own README (what a role user on Galaxy reads): one source, two copies that cannot drift.

`python scripts/docs.py` rewrites the block between <!-- vars:start --> and <!-- vars:end --> in both;
`--check` (run by `make lint`) fails when either is out of date.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "roles" / "b24bot" / "meta" / "argument_specs.yml"
TARGETS = (ROOT / "README.md", ROOT / "roles" / "b24bot" / "README.md")
START, END = "<!-- vars:start -->", "<!-- vars:end -->"


def cell(value: object) -> str:
    text = " ".join(value) if isinstance(value, list) else str(value)
    return text.replace("|", "\\|").replace("\n", " ").strip()


def table() -> str:
    options = yaml.safe_load(SPECS.read_text())["argument_specs"]["main"]["options"]
    rows = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    for name, spec in options.items():
        default = spec.get("default", "")
        shown = "*(secret)*" if spec.get("no_log") else f"`{default}`" if default not in ("", None, [], {}) else ""
        kind = spec.get("type", "str")
        if spec.get("choices"):
            kind += " (" + ", ".join(map(str, spec["choices"])) + ")"
        rows.append(f"| `{name}` | {cell(kind)} | {cell(shown)} | {cell(spec.get('description', ''))} |")
    return "\n".join(rows)


def regenerated(path: Path, generated: str) -> str | None:
    """The file's text with the block between the markers replaced, or None when it lacks the markers."""
    text = path.read_text()
    if START not in text or END not in text:
        return None
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{generated}\n{END}{tail}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    generated = table()
    status = 0
    for path in TARGETS:
        name = path.relative_to(ROOT)
        new = regenerated(path, generated)
        if new is None:
            print(f"{name} lacks {START} ... {END}", file=sys.stderr)
            status = 1
        elif args.check and new != path.read_text():
            print(f"{name}: the variables table is out of date: run python scripts/docs.py", file=sys.stderr)
            status = 1
        elif not args.check:
            path.write_text(new)
    return status


if __name__ == "__main__":
    sys.exit(main())
