"""Python 3.9 is the floor (Raspberry Pi OS Bullseye): checked statically (vermin, in this process), and
for real where a 3.9 is installed (a process)."""

import contextlib
import glob
import io
import os
import shutil
import subprocess
import sys

import pytest
import vermin
from harness import ROOT

FILES = [
    str(ROOT / "iotlight.py"),
    str(ROOT / "tests" / "tools" / "fakenode.py"),
    str(ROOT / "tests" / "tools" / "rehearsal.py"),
]


def run_vermin(*paths: str):
    """vermin's command line in this process, one process of its own (no pool): (exit status, output)."""
    argv = ["vermin", "--target=3.9-", "--no-tips", "--violations", "--eval-annotations", "--processes=1"]
    out, saved = io.StringIO(), sys.argv
    sys.argv = argv + list(paths)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                vermin.main()
                status = 0
            except SystemExit as e:
                status = e.code if isinstance(e.code, int) else int(e.code is not None)
    finally:
        sys.argv = saved
    return status, out.getvalue()


def test_vermin_finds_nothing_newer_than_39():
    """vermin's static analysis: no syntax, module or function that needs Python > 3.9."""
    status, output = run_vermin(*FILES)
    assert status == 0, output


def test_vermin_would_see_a_310_construct(tmp_path):
    """The check above can fail: a file that calls int.bit_count and zip(strict=) (both 3.10, and both still
    parsed by 3.9, where this suite runs too) makes vermin exit non-zero under the same options, naming 3.10."""
    newer = tmp_path / "newer.py"
    newer.write_text("def f(x):\n    return (5).bit_count(), list(zip(x, x, strict=True))\n")
    status, output = run_vermin(str(newer))
    assert status != 0 and "3.10" in output, output


def _python39():
    found = shutil.which("python3.9")
    if found and subprocess.run([found, "-V"], capture_output=True).returncode == 0:
        return found
    for path in sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9"))):
        return path
    return None


@pytest.mark.process
def test_compiles_and_starts_under_a_real_python39(tmp_path):
    """Where a Python 3.9 interpreter is on the machine, the three files compile with it, and iotlight.py
    runs there: its module body (the configuration schema, the tables, the classes) executes and
    `iotlight.py --version` exits 0."""
    py39 = _python39()
    if not py39:
        pytest.skip("no Python 3.9 interpreter on this machine; vermin above still checks the floor")
    proc = subprocess.run(
        [
            py39,
            "-c",
            "import sys; [compile(open(f).read(), f, 'exec', dont_inherit=True) for f in sys.argv[1:]]",
            *FILES,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    version = subprocess.run(
        [py39, "-I", str(ROOT / "iotlight.py"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert (version.returncode, version.stderr) == (0, ""), version.stderr
    assert version.stdout.startswith("iotlight ")
