"""`iotlight.py monitor` against the real daemon: the snapshot first, then live events, raw or readable."""

import json
import socket
import subprocess
import sys
import threading

import pytest
from harness import IOTLIGHT, wait_until

pytestmark = pytest.mark.timeout(120)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lines:
    """Collect a subprocess's stdout lines in a thread."""

    def __init__(self, proc):
        self.lines = []
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc):
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))


@pytest.mark.parametrize("as_json", [True, False])
def test_monitor_command_streams_the_daemons_events(chain, device, as_json):
    device.configure(monitor__port=free_port())
    device.start()
    args = [sys.executable, str(IOTLIGHT), "-c", str(device.config_path), "monitor"] + (
        ["--json"] if as_json else []
    )
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out = Lines(proc)
        wait_until(lambda: out.lines, 20, what="the first line")
        chain.transfer(chain.treasury, device.address, 250, asset_id=chain.asset)
        if as_json:
            first = json.loads(out.lines[0])
            assert first["type"] == "state" and first["address"] == device.address
            msg = wait_until(
                lambda: [
                    json.loads(x) for x in out.lines if '"type": "payment"' in x or '"type":"payment"' in x
                ],
                20,
                what="the payment event",
            )[0]
            assert (
                msg["amount"] == 250
                and msg["seconds"] == 2.5
                and msg["sender"] == chain.treasury.address("T")
            )
        else:
            assert device.address in out.lines[0]
            line = wait_until(lambda: [x for x in out.lines if "payment" in x], 20, what="the payment line")[
                0
            ]
            assert "2.50 tokens" in line or "250" in line
    finally:
        proc.terminate()
        proc.wait(10)
    assert "Traceback" not in proc.stderr.read()


@pytest.mark.parametrize("verbose", [False, True])
def test_monitor_command_prints_one_line_per_event(chain, device, verbose):
    """A 2.5 s light is one "light on" and one "light off" line; the countdown's matrix frames show only with -v."""
    device.configure(monitor__port=free_port())
    device.start()
    args = (
        [sys.executable, str(IOTLIGHT), "-c", str(device.config_path)]
        + (["-v"] if verbose else [])
        + ["monitor"]
    )
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out = Lines(proc)
        wait_until(lambda: out.lines, 20, what="the first line")
        chain.transfer(chain.treasury, device.address, 250, asset_id=chain.asset)
        wait_until(lambda: [x for x in out.lines if " light off" in x], 30, what="the light to go off")
        wait_until(
            lambda: [x for x in out.lines if " confirmed" in x], 30, what="the receipt to be confirmed"
        )
    finally:
        proc.terminate()
        proc.wait(10)
    kinds = [line.split(" ")[1] for line in out.lines]
    assert [line.split(" ", 1)[1] for line in out.lines if " light " in line] == [
        "light on, 2.5 s left",
        "light off",
    ]
    assert kinds.count("payment") == 1
    matrix = [line for line in out.lines if " matrix " in line]
    assert (len(matrix) >= 2) if verbose else (matrix == []), out.lines
    assert "Traceback" not in proc.stderr.read()
