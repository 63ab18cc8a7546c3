"""A clone with nothing beside it passes the vector tests: nothing reads outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Paths on the developers' machines a clone elsewhere does not have: the shared spec folder beside
# the checkout and the checkout's own place. Spelled in parts, so that this file names none of
# them either and is checked like every other.
OUTSIDE = tuple("/".join(parts) for parts in (("", "work", "shared"), ("", "work", "main"), ("..", "shared")))


def test_vector_tests_pass_in_a_copy_with_nothing_beside_it(tmp_path):
    # tmp_path/alone/repo: the parent holds nothing else, so no spec folder lies beside the copy.
    repo = tmp_path / "alone" / "repo"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = [f for f in tracked.decode().split("\0") if f] if tracked else []
    if not files:  # not a git checkout (an unpacked tarball): copy the tree without the venv
        files = [
            str(p.relative_to(ROOT))
            for p in ROOT.rglob("*")
            if p.is_file() and ".venv" not in p.parts and ".git" not in p.parts
        ]
    for name in files:
        dest = repo / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest)
    assert not (repo.parent.parent / "shared").exists() and sorted(p.name for p in repo.parent.iterdir()) == [
        "repo"
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["HOME"] = str(tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_vectors.py",
            "tests/test_transactions.py",
            "tests/test_crypto.py",
            "tests/test_fakenode.py",
        ],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "error" not in proc.stdout.splitlines()[-1]


def test_no_tracked_file_names_a_path_outside_the_checkout():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    offenders = []
    for name in tracked:
        path = ROOT / name
        if path.suffix not in (".py", ".sh", ".toml", ".txt", ".ini", "") or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for needle in OUTSIDE:
            if needle in text:
                offenders.append("%s: %s" % (name, needle))
    assert offenders == []
