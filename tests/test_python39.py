"""Python 3.9 is the floor (Raspberry Pi OS Bullseye): checked statically, and for real where a 3.9 is installed."""

import glob
import os
import shutil
import subprocess
import sys

import pytest
from harness import ROOT

FILES = [
    str(ROOT / "iotlight.py"),
    str(ROOT / "tests" / "tools" / "fakenode.py"),
    str(ROOT / "tests" / "tools" / "rehearsal.py"),
]


def test_vermin_finds_nothing_newer_than_39():
    """vermin's static analysis: no syntax, module or function that needs Python > 3.9."""
    vermin = os.path.join(os.path.dirname(sys.executable), "vermin")
    proc = subprocess.run(
        [vermin, "--target=3.9-", "--no-tips", "--violations", "--eval-annotations", *FILES],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _python39():
    found = shutil.which("python3.9")
    if found and subprocess.run([found, "-V"], capture_output=True).returncode == 0:
        return found
    for path in sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9"))):
        return path
    return None


def test_compiles_under_a_real_python39():
    """Where a Python 3.9 interpreter is on the machine, iotlight.py compiles with it."""
    py39 = _python39()
    if not py39:
        pytest.skip("no Python 3.9 interpreter on this machine; vermin above still checks the floor")
    proc = subprocess.run(
        [
            py39,
            "-c",
            "import ast, sys; [compile(open(f).read(), f, 'exec', dont_inherit=True) for f in sys.argv[1:]]",
            *FILES,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
