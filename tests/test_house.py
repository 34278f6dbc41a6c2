"""The house rules a newcomer relies on: no Python file over 350 lines, no function over 60, outside the allow-list.

Counted from the `def` line to the function's last line (a nested function counts inside its parent too).
"""

from __future__ import annotations

import ast
import subprocess
import textwrap
from pathlib import Path

from conftest import ROOT

TREES = ("app", "tests", "bench", "scripts", "roles")
MAX_FILE_LINES = 350
MAX_FUNCTION_LINES = 60

# path -> reason, for files that must be longer.
FILE_ALLOW: dict[str, str] = {}

# "path:function" -> reason, for functions that must be longer.
FUNCTION_ALLOW: dict[str, str] = {}


def sources() -> list[Path]:
    """The repository's own .py files: bench/work/ holds git-ignored copies of the app, which are not ours to size."""
    listed = subprocess.run(
        [
            "git",
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            *(f"{tree}/*.py" for tree in TREES),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode == 0:
        return sorted(ROOT / name for name in listed.stdout.split("\0") if name)
    # An exported tree (no .git): everything under the trees.
    return sorted(p for tree in TREES for p in (ROOT / tree).rglob("*.py") if "__pycache__" not in p.parts)


def long_functions(source: str) -> dict[str, int]:
    """Function name -> lines, for every function (nested ones too) longer than the limit."""
    return {
        node.name: node.end_lineno - node.lineno + 1
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    }


def oversized() -> tuple[dict[str, int], dict[str, int]]:
    """Files over the limit (path -> lines) and functions over it ("path:function" -> lines), whole tree."""
    files: dict[str, int] = {}
    functions: dict[str, int] = {}
    for path in sources():
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        if (n := len(text.splitlines())) > MAX_FILE_LINES:
            files[rel] = n
        functions.update({f"{rel}:{name}": n for name, n in long_functions(text).items()})
    return files, functions


def test_the_measure_sees_a_function_one_line_too_long() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES - 1))
    assert long_functions(f"def ok():\n{body}") == {}
    assert long_functions(f"def long():\n{body}    return 1\n") == {"long": MAX_FUNCTION_LINES + 1}
    nested = (
        f"class C:\n    def m(self):\n        def inner():\n{textwrap.indent(body, '        ')}            return 1\n"
    )
    assert long_functions(nested) == {"m": MAX_FUNCTION_LINES + 2, "inner": MAX_FUNCTION_LINES + 1}


def test_the_tree_is_measured() -> None:
    found = {p.relative_to(ROOT).parts[0] for p in sources()}
    assert {"app", "tests", "bench", "scripts"} <= found
    assert ROOT / "tests" / "test_house.py" in sources()


def test_no_file_over_350_lines_outside_the_allow_list() -> None:
    files, _ = oversized()
    assert {k: v for k, v in files.items() if k not in FILE_ALLOW} == {}


def test_no_function_over_60_lines_outside_the_allow_list() -> None:
    _, functions = oversized()
    assert {k: v for k, v in functions.items() if k not in FUNCTION_ALLOW} == {}


def test_the_allow_list_holds_no_entry_that_is_within_the_limits() -> None:
    """Once a file or function is short enough, its entry goes: the list stays the list of real exceptions."""
    files, functions = oversized()
    assert sorted(set(FILE_ALLOW) - set(files)) == []
    assert sorted(set(FUNCTION_ALLOW) - set(functions)) == []
