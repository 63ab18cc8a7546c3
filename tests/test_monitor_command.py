"""`iotlight.py monitor` against the real daemon: the snapshot first, then live events, raw or readable."""

import json
import re
import socket
import subprocess
import sys
import threading

import pytest
from harness import IOTLIGHT, wait_until

pytestmark = pytest.mark.timeout(120)


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
    device.start_with_monitor()
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
    device.start_with_monitor()
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
    light_lines = [line.split(" ", 1)[1] for line in out.lines if " light " in line]
    # 2.5 s paid; the time left is read a few ms after the credit, so 2.4 on a busy machine
    assert len(light_lines) == 2 and re.fullmatch(r"light on, 2\.[45] s left", light_lines[0]), light_lines
    assert light_lines[1] == "light off"
    assert kinds.count("payment") == 1
    matrix = [line for line in out.lines if " matrix " in line]
    assert (len(matrix) >= 2) if verbose else (matrix == []), out.lines
    assert "Traceback" not in proc.stderr.read()


def test_a_taken_monitor_port_is_one_line_and_the_harness_tries_another(device, monkeypatch):
    """A port taken between the harness's look and the daemon's bind: the daemon exits with one
    line saying so, and start_with_monitor starts it again on another port."""
    import harness

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        first = [busy]
        real = harness.free_port
        monkeypatch.setattr(harness, "free_port", lambda: first.pop() if first else real())
        port = device.start_with_monitor()
        assert port != busy and device.alive()
    runs = device.output(whole=True)
    assert runs.count("monitor cannot listen on 127.0.0.1:%d" % busy) == 1, runs
    assert "Traceback" not in runs
