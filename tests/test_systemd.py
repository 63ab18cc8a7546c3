"""systemd integration: READY=1 once the daemon is up, WATCHDOG=1 while its loops live, STOPPING=1 at the end."""

import socket
import time

import pytest

from harness import wait_until

pytestmark = pytest.mark.timeout(120)


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
        device.start(ready=False, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
        wait_until(lambda: any(m.startswith("READY=1") for _, m in drain()), 30, what="READY=1")
        assert "running: address" in device.output(), "READY=1 only once the daemon runs"
        wait_until(lambda: sum(m == "WATCHDOG=1" for _, m in drain()) >= 3, 20, what="three watchdog pings")
        pings = [t for t, m in messages if m == "WATCHDOG=1"]
        assert all(b - a < 1.9 for a, b in zip(pings, pings[1:])), "pings come every half watchdog period"
        assert device.stop() == 0
        drain()
        assert messages[-1][1] == "STOPPING=1"
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
