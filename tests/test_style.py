"""One formatter and one linter over the whole tree, configured once in .ci/ruff.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".ci" / "ruff.toml"


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--config", str(CONFIG), "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_tree_is_formatted():
    proc = ruff("format", "--check")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_the_linter_finds_nothing():
    proc = ruff("check", "--no-cache")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
