"""`iotlight monitor`: the terminal client (run_monitor_client) in-process, fed by a real Monitor that
replays what the real Daemon published around a payment on the virtual clock (readable, verbose and
raw JSON); one end-to-end run of the real command against the real daemon (a process)."""

from __future__ import annotations

import asyncio
import functools
import io
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

import pytest
from harness import IOTLIGHT, wait_until
from scenario import Scenario
from test_monitor import WAIT, anyio_backend, clock, eventually, url  # noqa: F401 (fixtures)

import iotlight

pytestmark = pytest.mark.timeout(120)


# -- in-process: what the daemon publishes, through the monitor, to the terminal ---------------------


@dataclass
class PaidLight:
    """The real Daemon (a Scenario) around a 2.5 s payment: its snapshot before, then every message it
    published (daemon time, message) until the light was off and the receipt confirmed."""

    snapshot: Dict[str, Any]
    snapshot_time: float
    events: List[Tuple[float, Dict[str, Any]]]
    address: str
    sender: str

    def kinds(self, kind: str) -> List[Tuple[float, Dict[str, Any]]]:
        return [(t, m) for t, m in self.events if m["type"] == kind]


@pytest.fixture(scope="module")
def paid_light(tmp_path_factory) -> PaidLight:
    """What the real Daemon publishes for a 2.5 s payment, on the virtual clock (a few ms of test time)."""
    with Scenario(tmp_path_factory.mktemp("paid-light")) as s:
        published: List[Tuple[float, Dict[str, Any]]] = []
        s.daemon.publish = lambda message: published.append((s.clock.time(), json.loads(json.dumps(message))))
        s.run_until(lambda: s.daemon.snapshot()["balance"]["decimals"] == 2, 120, "the token's decimals")
        snapshot, snapshot_time = json.loads(json.dumps(s.daemon.snapshot())), s.clock.time()
        published.clear()
        s.pay(2.5)

        def over() -> bool:
            off = [m for _, m in published if m["type"] == "light" and not m["on"]]
            confirmed = [m for _, m in published if m["type"] == "data_tx" and m["status"] == "confirmed"]
            return bool(off and confirmed)

        s.run_until(over, 600, "the light to go off and its receipt to be confirmed")
        return PaidLight(snapshot, snapshot_time, list(published), s.address, s.treasury.address("T"))


def hms(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


async def replay(paid: PaidLight, monitor_clock, **client) -> List[str]:
    """A Monitor serving the daemon's snapshot and publishing its events, each at its daemon time on
    the monitor's clock; run_monitor_client prints them. The lines it printed."""
    monitor_clock.jump_wall(paid.snapshot_time - monitor_clock.time())
    monitor = iotlight.Monitor(
        host="127.0.0.1", port=0, token="", snapshot=lambda: paid.snapshot, clock=monitor_clock
    )
    await monitor.start()
    out = io.StringIO()
    task = asyncio.ensure_future(iotlight.run_monitor_client(url(monitor), out=out, **client))
    try:
        await eventually(lambda: out.getvalue().count("\n") >= 1, "the state line")
        for when, message in paid.events:
            monitor_clock.advance(when - monitor_clock.time())
            monitor.publish(message)
        if client["as_json"]:
            await eventually(lambda: out.getvalue().count("\n") == 1 + len(paid.events), "every message")
        else:  # the light going off is the last event
            await eventually(lambda: out.getvalue().endswith(" light off\n"), "the light off line")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await monitor.close()
    return out.getvalue().splitlines()


@pytest.mark.anyio
@pytest.mark.parametrize("verbose", [False, True])
async def test_a_paid_light_is_one_line_per_event_and_countdown_frames_only_when_verbose(
    paid_light,
    clock,  # noqa: F811 (a fixture)
    verbose,
    capsys,
):
    """The daemon's 2.5 s light through the monitor to the terminal: the state line, one payment line in
    tokens, one "light on" and one "light off" line (the lamp's state told twice is one line), the
    receipt queued, broadcast and confirmed, the countdown's matrix frames only with verbose; each line
    at the daemon time of its event."""
    lines = await replay(paid_light, clock, as_json=False, verbose=verbose)
    p = paid_light
    height = p.snapshot["node"]["height"]
    state = "%s state %s lamp off, node ok height %s, outbox 0 pending" % (
        hms(p.snapshot_time),
        p.address,
        height,
    )
    assert lines[0] == state
    body = [line.split(" ", 1)[1] for line in lines[1:]]
    ((_, payment),) = p.kinds("payment")
    short = "%s..%s" % (p.sender[:4], p.sender[-4:])
    assert [b for b in body if b.startswith("payment ")] == [
        "payment %s 2.50 tokens -> 2.5 s (height %d)" % (short, payment["height"])
    ]
    assert [b for b in body if b.startswith("light ")] == ["light on, 2.5 s left", "light off"]
    assert len(p.kinds("light")) > 2, "the daemon told the light more often than the terminal shows it"
    ((_, queued),) = [(t, m) for t, m in p.kinds("data_tx") if m["status"] == "queued"]
    receipt = "%s..%s" % (queued["id"][:4], queued["id"][-4:])
    assert [b for b in body if b.startswith("data_tx ")] == [
        "data_tx %s %s" % (receipt, status) for status in ("queued", "broadcast", "confirmed")
    ]
    frames = [b for b in body if b.startswith("matrix ")]
    assert len(frames) == (len(p.kinds("matrix")) if verbose else 0) and len(p.kinds("matrix")) >= 2
    shown, light = [], (False, None)  # the events a line is expected for: a light only when it changed
    for t, m in p.events:
        if m["type"] == "light":
            if (m["on"], m["until"]) == light:
                continue
            light = (m["on"], m["until"])
        if m["type"] != "matrix" or verbose:
            shown.append(t)
    assert [line.split(" ", 1)[0] for line in lines[1:]] == [hms(t) for t in shown]
    assert capsys.readouterr().err.startswith("monitor: connected to ws://127.0.0.1:")


@pytest.mark.anyio
async def test_a_paid_light_in_json_is_every_message_raw_with_its_daemon_time(paid_light, clock):  # noqa: F811
    """With --json every message is one line of JSON as the daemon published it, the snapshot first,
    each stamped with the monitor clock's time when it was published (the daemon time)."""
    lines = [json.loads(line) for line in await replay(paid_light, clock, as_json=True, verbose=False)]
    p = paid_light
    assert lines[0] == dict(p.snapshot, type="state", ts=p.snapshot_time)
    assert lines[1:] == [dict(m, ts=t) for t, m in p.events]
    ((_, payment),) = p.kinds("payment")
    assert (payment["amount"], payment["seconds"], payment["sender"]) == (250, 2.5, p.sender)


# -- the real command against the real daemon ------------------------------------------------


class Lines:
    """Collect a subprocess's stdout lines in a thread."""

    def __init__(self, proc):
        self.lines = []
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc):
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))


@pytest.mark.process
def test_the_monitor_command_prints_the_running_daemons_events_and_ends_on_ctrl_c(chain, device):
    """`iotlight monitor` against the running daemon: the state line first, then a 2.5 s payment as one
    payment line, one "light on" and one "light off" line, its receipt confirmed, no countdown frames
    without -v; Ctrl-C ends it with exit status 0 and no traceback."""
    port = device.start_with_monitor()
    args = [sys.executable, str(IOTLIGHT), "-c", str(device.config_path), "monitor"]
    # as a foreground job in a terminal: SIGINT at its default even when these tests run as a
    # background job (`cmd &` in a script starts it with SIGINT ignored, and a child inherits that)
    foreground = functools.partial(signal.signal, signal.SIGINT, signal.SIG_DFL)
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=foreground
    )
    try:
        out = Lines(proc)
        wait_until(lambda: out.lines, WAIT, what="the first line")
        chain.transfer(chain.treasury, device.address, 250, asset_id=chain.asset)
        wait_until(lambda: [x for x in out.lines if " light off" in x], WAIT, what="the light to go off")
        wait_until(
            lambda: [x for x in out.lines if " confirmed" in x], WAIT, what="the receipt to be confirmed"
        )
        proc.send_signal(signal.SIGINT)
        status = proc.wait(WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)
    out.thread.join(WAIT)
    err = proc.stderr.read()
    assert status == 0, err
    assert "Traceback" not in err
    assert err.startswith("monitor: connected to ws://127.0.0.1:%d/\n" % port)
    assert " state %s lamp off" % device.address in out.lines[0]
    body = [line.split(" ", 1)[1] for line in out.lines[1:]]
    sender = chain.treasury.address("T")
    payments = [b for b in body if b.startswith("payment ")]
    paid = r"payment %s\.\.%s 2\.50 tokens -> 2\.5 s \(height \d+\)" % (sender[:4], sender[-4:])
    assert len(payments) == 1 and re.fullmatch(paid, payments[0]), payments
    # 2.5 s paid; the time left is read a few ms after the credit, so 2.4 on a busy machine
    light_lines = [b for b in body if b.startswith("light ")]
    assert len(light_lines) == 2 and re.fullmatch(r"light on, 2\.[45] s left", light_lines[0]), light_lines
    assert light_lines[1] == "light off"
    assert [b for b in body if b.startswith("matrix ")] == []


@pytest.mark.process
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
