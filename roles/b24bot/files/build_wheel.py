"""Build the app's wheel on the controller, once per source state (run by tasks/app.yml, never on a host).

    build_wheel.py APP_SRC CACHE_DIR EXCLUDE_REGEX

Prints one JSON object: {"wheel": path, "wheel_sha256": ..., "requirements": path, "cached": bool}.

The wheel is byte-identical for identical source (SOURCE_DATE_EPOCH pins every timestamp), so a rerun copies
nothing to the hosts, and it is kept in CACHE_DIR under the hash of the source: an unchanged app costs a hash of
its files, not a build. The build runs on a filtered copy of the source, so in-tree leftovers (build/,
*.egg-info) can never leak removed modules into the wheel.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# 1980-01-01: the earliest time a zip entry can carry.
SOURCE_DATE_EPOCH = "315532800"


def source_files(src: Path, exclude: re.Pattern[str]) -> list[str]:
    """Paths relative to `src`, sorted, that make up the app (what EXCLUDE_REGEX does not match)."""
    out = []
    for path in src.rglob("*"):
        rel = path.relative_to(src).as_posix()
        if path.is_file() and not exclude.search(rel):
            out.append(rel)
    return sorted(out)


def source_hash(src: Path, files: list[str]) -> str:
    digest = hashlib.sha256()
    for rel in files:
        digest.update(rel.encode() + b"\0" + (src / rel).read_bytes() + b"\0")
    return digest.hexdigest()


def build(src: Path, files: list[str], dest: Path) -> None:
    """pip wheel on a clean copy; raises CalledProcessError with pip's output when the build fails."""
    with tempfile.TemporaryDirectory(prefix="b24bot-build-") as tmp:
        tree = Path(tmp) / "app"
        for rel in files:
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, tree / rel)
        env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, "PYTHONDONTWRITEBYTECODE": "1"}
        out = Path(tmp) / "out"
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q", "-w", out, tree],
            check=True,
            env=env,
            capture_output=True,
            text=True,
        )
        dest.mkdir(parents=True, exist_ok=True)
        for wheel in out.glob("*.whl"):
            shutil.move(str(wheel), dest / wheel.name)
        shutil.copy2(tree / "requirements.txt", dest / "requirements.txt")


def main(argv: list[str]) -> int:
    src, cache, exclude = Path(argv[1]), Path(argv[2]).expanduser(), re.compile(argv[3])
    files = source_files(src, exclude)
    slot = cache / source_hash(src, files)
    cached = any(slot.glob("*.whl"))
    if not cached:
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=cache))
        try:
            build(src, files, staging)
            staging.rename(slot)  # atomic: a parallel play sees a whole slot or none
        except subprocess.CalledProcessError as exc:
            sys.stderr.write(f"building the b24bot wheel failed:\n{exc.stdout}{exc.stderr}")
            return 1
        except OSError:
            if not any(slot.glob("*.whl")):  # not simply another play finishing first
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    wheel = next(slot.glob("*.whl"))
    print(
        json.dumps(
            {
                "wheel": str(wheel),
                "wheel_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
                "requirements": str(slot / "requirements.txt"),
                "cached": cached,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
