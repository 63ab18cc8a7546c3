"""A clone with nothing beside it passes the vector tests: nothing reads outside the checkout."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Paths on the developers' machines a clone elsewhere does not have: the shared spec folder beside
# the checkout and the checkout's own place. Spelled in parts, so that this file names none of
# them either and is checked like every other.
OUTSIDE = tuple("/".join(parts) for parts in (("", "work", "shared"), ("", "work", "main"), ("..", "shared")))


# The vector tests, in two groups of about the same length run side by side (two cores).
GROUPS = (
    ("tests/test_fakenode.py",),
    ("tests/test_vectors.py", "tests/test_transactions.py", "tests/test_crypto.py"),
)


@pytest.mark.process
def test_vector_tests_pass_in_a_copy_with_nothing_beside_it(tmp_path):
    """A copy of the tracked files, alone in its folder (no spec folder beside it, HOME elsewhere), passes
    the vector, transaction, crypto and fake-node tests: none of them reads outside the checkout."""
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
    runs = []
    try:
        for n, group in enumerate(GROUPS):
            out = tmp_path / ("group%d.out" % n)
            command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *group]
            with open(out, "w") as f:
                runs.append(
                    (subprocess.Popen(command, cwd=repo, env=env, stdout=f, stderr=subprocess.STDOUT), out)
                )
        for proc, _ in runs:
            proc.wait(600)
    finally:
        for proc, _ in runs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, out in runs:
        text = out.read_text(errors="replace")
        assert proc.returncode == 0, text[-5000:]
        last = text.strip().splitlines()[-1]
        assert re.search(r"\d+ passed", last) and not re.search(r"\d+ (failed|errors?)\b", last), last


def test_no_tracked_file_names_a_path_outside_the_checkout():
    """No tracked text file names the developers' shared spec folder or the checkout's own place."""
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
