"""systemd integration: READY=1 once the daemon is up, WATCHDOG=1 while its loops live, STOPPING=1
at the end. The real daemon (marked process) on a real NOTIFY_SOCKET with WATCHDOG_USEC set; hours
of quiet under the watchdog are in-process in test_watchdog.py."""

import socket
import time

import pytest
from harness import light_until, wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.mark.process
def test_daemon_notifies_ready_and_watchdog(device, tmp_path):
    """With NOTIFY_SOCKET and WATCHDOG_USEC set, the daemon says READY=1, pings the watchdog, says STOPPING=1."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    messages = []

    def drain():
        while True:
            try:
                data = sock.recv(4096).decode()
            except socket.timeout:
                return messages
            messages.append((time.monotonic(), data))

    try:
        # a 6 s period: pings every 1.5 s, and a stall of the machine up to 3 s is not a missed ping
        device.start(ready=False, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "6000000"})
        wait_until(lambda: any(m.startswith("READY=1") for _, m in drain()), 30, what="READY=1")
        assert "running: address" in device.output(), "READY=1 only once the daemon runs"
        wait_until(lambda: sum(m == "WATCHDOG=1" for _, m in drain()) >= 3, 30, what="three watchdog pings")
        pings = [t for t, m in messages if m == "WATCHDOG=1"]
        assert all(b - a < 5.9 for a, b in zip(pings, pings[1:])), "a ping within every watchdog period"
        assert device.stop() == 0
        drain()
        assert messages[-1][1] == "STOPPING=1"
    finally:
        sock.close()


@pytest.mark.process
def test_watchdog_fed_through_a_long_quiet_light_span(device, chain, tmp_path):
    """A lamp lit for an hour with no countdown sleeps the whole span, telemetry sleeps an hour:
    under a 10 s watchdog no gap between two pings may reach the period, for two periods of it
    (the old watchdog went by heartbeat age and stopped pinging after 60 s of such quiet: systemd
    killed the daemon; test_watchdog.py follows hours of it in-process)."""
    period = 10.0  # pings every 2.5 s; a machine that stalls under 5 s does not count as a missed one
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.1)
    pings = []

    def drain(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data = sock.recv(4096).decode()
            except socket.timeout:
                continue
            if data == "WATCHDOG=1":
                pings.append(time.monotonic())

    try:
        device.configure(
            light__countdown=False,
            payment__max_seconds=10**6,
            data__telemetry_interval=3600,
            node__poll_interval=0.5,
        )
        device.start(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(int(period * 1e6))})
        chain.transfer(chain.treasury, device.address, 360000, asset_id=chain.asset)  # 3600 tokens: an hour
        wait_until(
            lambda: "light on" in device.output() or light_until(device) > time.time() + 3000,
            30,
            what="the light to go on",
        )
        sock.setblocking(False)  # the pings sent so far are not part of the span
        while True:
            try:
                sock.recv(4096)
            except BlockingIOError:
                break
        sock.settimeout(0.1)
        start = time.monotonic()
        drain(2 * period)
        end = time.monotonic()
        marks = [start] + [t for t in pings if t >= start] + [end]
        gaps = [b - a for a, b in zip(marks, marks[1:])]
        assert len(gaps) >= 8 and max(gaps) < period, "longest gap %.1f s under a %.0f s watchdog" % (
            max(gaps),
            period,
        )
        assert "not telling the watchdog" not in device.output()
        assert light_until(device) > time.time() + 3000, "still lit"
        assert device.stop() == 0
    finally:
        sock.close()


def test_abstract_notify_socket_and_no_socket(monkeypatch):
    """sd_notify reaches an abstract socket (@name) and is a quiet no-op outside systemd."""
    import iotlight

    name = "@iotlight-test-%d" % time.monotonic_ns()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name[1:])
    try:
        assert iotlight.sd_notify("READY=1", {"NOTIFY_SOCKET": name})
        assert sock.recv(64) == b"READY=1"
    finally:
        sock.close()
    assert iotlight.sd_notify("READY=1", {}) is False
    assert iotlight.sd_notify("READY=1", {"NOTIFY_SOCKET": "/nonexistent/socket"}) is False
