#!/usr/bin/env python3
"""Regenerate the README's role-variables table from roles/b24bot/meta/argument_specs.yml.

`python scripts/docs.py` rewrites the block between <!-- vars:start --> and <!-- vars:end -->;
`--check` (run by `make lint`) fails when the README is out of date, so the table can never drift.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "roles" / "b24bot" / "meta" / "argument_specs.yml"
README = ROOT / "README.md"
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    text = README.read_text()
    if START not in text or END not in text:
        print(f"README.md lacks {START} ... {END}", file=sys.stderr)
        return 1
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{table()}\n{END}{tail}"
    if args.check:
        if new != text:
            print("README.md variables table is out of date: run python scripts/docs.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
