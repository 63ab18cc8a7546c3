"""Helpers for end-to-end tests: a throwaway device, its config, and the real daemon as a subprocess."""

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional

import iotlight

ROOT = Path(__file__).resolve().parent.parent
IOTLIGHT = ROOT / "iotlight.py"

# Throwaway seeds: never real accounts.
DEVICE_SEED = "iotlight test device seed, throwaway, never funded on a real chain"
TREASURY_SEED = "iotlight test treasury seed, throwaway, never funded on a real chain"
STRANGER_SEED = "iotlight test stranger seed, throwaway"


def wait_until(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.02, what: str = "condition"
) -> Any:
    """Poll `predicate` until it returns something truthy; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


async def eventually(condition: Callable[[], Any], what: str = "condition", timeout: float = 30.0) -> Any:
    """wait_until for a test on the event loop: poll `condition` (a function, or one returning an
    awaitable) without blocking the loop the code under test runs on; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        value = (await value) if asyncio.iscoroutine(value) else value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        await asyncio.sleep(0.02)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (bound to 0 and let go: it may be taken again)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return repr(v)


def config_text(settings: Dict[str, Any], header: str = "") -> str:
    """TOML text from {"section.key": value}, after `header` (comment lines, if any)."""
    sections: Dict[str, Dict[str, Any]] = {}
    for key, value in settings.items():
        section, name = key.split(".", 1)
        sections.setdefault(section, {})[name] = value
    lines = header.splitlines() + ([""] if header else [])
    for section, values in sections.items():
        lines.append("[%s]" % section)
        lines.extend("%s = %s" % (k, toml_value(v)) for k, v in values.items())
        lines.append("")
    return "\n".join(lines)


def write_config(path: Path, settings: Dict[str, Any], header: str = "") -> Path:
    """Write a TOML file from {"section.key": value}."""
    path.write_text(config_text(settings, header))
    return path


async def poll_settled(watcher: "iotlight.Watcher") -> None:
    """One Watcher poll, ending when the list read it started has ended too.

    A poll waits at most a poll interval (1 s of real time at least) for its list read and leaves
    a slower one running in the background. On a busy machine an in-process read against the fake
    node can take that long, and the poll's outcome would then depend on the machine's speed: here
    the read is waited for and its result taken, as the poll itself takes it on an idle machine.
    """
    await watcher.poll_once()
    if watcher.list_task is not None:
        await asyncio.wait({watcher.list_task}, timeout=60.0)
        watcher.take_list_result()


def start_chain(chain_id: str = "T", **node_options: Any) -> Any:
    """A started FakeNode whose treasury (TREASURY_SEED) issued an IoT-Light token (2 decimals).

    The node gets two attributes: `treasury` (its KeyPair) and `asset` (the token's id).
    The caller stops the node.
    """
    from fakenode import FakeNode

    treasury = iotlight.keypair_from_seed(TREASURY_SEED)
    node = FakeNode(chain_id, **node_options).start()
    try:
        node.fund(treasury.address(chain_id), waves=10**12)
        node.treasury = treasury
        node.asset = node.issue_asset(treasury, "IoT-Light", 2, 10**10)
    except BaseException:
        node.stop()
        raise
    return node


class Device:
    """A device folder (config, seed, state) and the daemon process running on it."""

    def __init__(
        self,
        folder: Path,
        node_url: str,
        asset_id: str,
        *,
        seed: str = DEVICE_SEED,
        chain_id: str = "T",
        **overrides: Any,
    ):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.seed_file = folder / "device.seed"
        if not self.seed_file.exists():
            fd = os.open(str(self.seed_file), os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, (seed + "\n").encode())
            os.close(fd)
        self.keys = iotlight.keypair_from_seed(seed)
        self.address = self.keys.address(chain_id)
        self.settings: Dict[str, Any] = {
            "node.urls": [node_url],
            "node.chain_id": chain_id,
            "node.poll_interval": 0.2,
            "node.timeout": 3.0,
            "node.list_rate": 0,
            "node.sweep_interval": 30.0,
            "device.seed_file": "device.seed",
            "device.state_file": "iotlight.db",
            "payment.asset_id": asset_id,
            "payment.seconds_per_token": 1.0,
            "hardware.backend": "none",
            "monitor.port": 0,
            "data.coalesce_window": 0.0,
        }
        self.settings.update({k.replace("__", "."): v for k, v in overrides.items()})
        self.config_path = folder / "iotlight.toml"
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = folder / "daemon.log"
        self.runs = 0
        self.command = [sys.executable, str(IOTLIGHT)]  # what runs the daemon (argv before the options)

    def configure(self, **overrides: Any) -> None:
        self.settings.update({k.replace("__", "."): v for k, v in overrides.items()})

    def start(self, *, ready: bool = True, env: Optional[Dict[str, str]] = None) -> "Device":
        write_config(self.config_path, self.settings)
        self.runs += 1
        self.log = open(self.log_path, "ab")
        self.log.write(b"\n===== run %d =====\n" % self.runs)
        self.log.flush()
        self.mark = self.log_path.stat().st_size
        full_env = dict(os.environ, PYTHONUNBUFFERED="1")
        full_env.pop("NOTIFY_SOCKET", None)
        full_env.pop("WATCHDOG_USEC", None)
        if env:
            full_env.update(env)
        self.proc = subprocess.Popen(
            self.command + ["-c", str(self.config_path), "-v", "run"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=str(self.folder),
        )
        if ready:
            self.wait_running()
            assert self.proc.poll() is None, "daemon exited early:\n" + self.output()
        return self

    def wait_running(self) -> None:
        """Until the daemon says it runs, or has exited."""
        assert self.proc is not None
        wait_until(
            lambda: "running: address" in self.output() or self.proc.poll() is not None,
            30,
            what="the daemon to start",
        )

    def start_with_monitor(self, env: Optional[Dict[str, str]] = None) -> int:
        """Start with the monitor on a free port; return the port.

        The port is free when looked at, but another program can take it before the daemon binds
        it; the daemon then exits with "monitor cannot listen" and another port is tried.
        """
        for _ in range(5):
            port = free_port()
            self.configure(monitor__port=port)
            self.start(ready=False, env=env)
            self.wait_running()
            if self.proc.poll() is None:
                return port
            self.log.close()
            assert "monitor cannot listen" in self.output(), "daemon exited early:\n" + self.output()
        raise AssertionError("five free ports were all taken before the daemon could listen")

    def output(self, whole: bool = False) -> str:
        text = self.log_path.read_bytes()
        return (text if whole else text[self.mark :]).decode("utf-8", "replace")

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(20)
        finally:
            self.log.close()

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        return self.kill(signal.SIGTERM)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def read_state(path: Path, query: str, args: tuple = ()) -> list:
    """Run a read-only query on a daemon's state file (WAL lets us read while it runs)."""
    import sqlite3

    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    try:
        return db.execute(query, args).fetchall()
    finally:
        db.close()


def credited(device: "Device") -> Dict[str, int]:
    """Payment id -> amount for every payment the device's state file holds."""
    if not (device.folder / "iotlight.db").exists():
        return {}
    return dict(read_state(device.folder / "iotlight.db", "SELECT id, amount FROM payments"))


def light_until(device: "Device") -> float:
    rows = read_state(device.folder / "iotlight.db", "SELECT value FROM meta WHERE key = 'light_until'")
    return float(rows[0][0]) if rows else 0.0


@contextlib.contextmanager
def funded_device(chain: Any, folder: Path, **settings: Any) -> Iterator["Device"]:
    """A device folder funded for fees on `chain` (not started); its daemon is stopped on the way out."""
    d = Device(folder, chain.url, chain.asset, **settings)
    chain.fund(d.address, waves=10**9)
    try:
        yield d
    finally:
        if d.alive():
            d.stop()
