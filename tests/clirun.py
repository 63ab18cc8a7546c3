"""Run the real command line (`python iotlight.py ...`) as a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

IOTLIGHT = Path(__file__).resolve().parent.parent / "iotlight.py"
TIMEOUT = 120  # generous: a busy 2-core machine; a command that hangs fails the test, never waits forever


@dataclass
class Result:
    args: tuple
    status: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


def run_cli(*args: str, cwd, umask: int = 0o022, timeout: float = TIMEOUT) -> Result:
    """`python iotlight.py ARGS` in cwd, without a terminal, with the parts variable cleared."""
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET",)}
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.run(
        [sys.executable, str(IOTLIGHT), *args],
        cwd=str(cwd),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        umask=umask,
    )
    return Result(tuple(args), proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(result: Result, message: str, status: int = 2) -> None:
    """Exit status, nothing on stdout, exactly `iotlight: MESSAGE` as the one stderr line, no traceback."""
    assert "Traceback" not in result.output, result.err
    got, want = (result.status, result.out, result.err), (status, "", "iotlight: %s\n" % message)
    assert got == want, "\n got: %r\nwant: %r" % (got, want)
