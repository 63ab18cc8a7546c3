#!/usr/bin/env python3
"""Try iotlight on a laptop without any network: the real daemon, a fake Waves node, your keys.

    python3 -m venv .venv && .venv/bin/pip install -r requirements-test.txt && .venv/bin/python tests/tools/rehearsal.py

What it does, in order:
  1. starts the fake node of tests/tools/fakenode.py inside this process, on a free port of 127.0.0.1.
     A throwaway treasury issues an "IoT-Light" token (2 decimals) there, and a throwaway stranger
     a counterfeit token with the very same name (only the asset id buys light, never the name);
  2. makes the working folder (default <system temp dir>/rehearsal-run, or --dir PATH) and writes
     iotlight.toml there, pointing at the fake node and the token; creates the device seed with the
     real `iotlight.py keygen`, writes the treasury seed to treasury.seed (mode 0600) and funds the
     device address with coins for the fees of its Data transactions;
  3. runs the real daemon, `python iotlight.py -c <dir>/iotlight.toml run`, as a subprocess, prints
     the dashboard URL and lets you pay it, until Ctrl-C, q or --duration.

Who owns the keyboard. The daemon's standard output and input are this terminal's, so its
terminal backend draws the 8x8 matrix here and reads the arrow keys and Enter as the joystick
(with `auto` on a desktop where the Sense HAT emulator is installed, the daemon draws in the
emulator's window instead; if no such window comes up, the rehearsal says so, and --backend
terminal brings the matrix here). Two readers of one terminal steal each other's keys, so the rehearsal reads keys
only once the daemon has said, in its log, that it took a backend other than the terminal:

  - key mode (standard input is a terminal, the daemon is not on it): p pays 5 tokens, m sends a
    mass transfer of 2 x 1 token, x pays 5 of the counterfeit token (the daemon must ignore it),
    q quits;
  - auto mode (--auto, standard input not a terminal, or the daemon on the terminal or silent
    about its backend): the rehearsal pays 3 tokens every --interval seconds (3 s of light, so
    the lamp lights and goes dark again) and prints the `iotlight.py pay` command that pays by
    hand from a second terminal.

Output. The daemon's log (standard error) passes through this script line by line, unchanged,
to standard error and to <dir>/daemon.log (the rehearsal names it when the daemon starts): that
is how the rehearsal learns that the daemon runs, which backend it took and where the monitor
listens. When standard output and standard error are a terminal, the daemon's standard output is
a pseudo-terminal of the rehearsal's: the rehearsal draws the daemon's 8x8 matrix frames itself,
below the log lines, which scroll above it (class Screen), so the recent log stays readable
beside the lamp; two programs drawing on one screen would erase each other's lines. Elsewhere
the daemon's standard output is the rehearsal's. The rehearsal's own lines go to standard error too, prefixed
"[rehearsal]", and few of them; only --print-config writes to standard output.

Stopping. The daemon runs in a session of its own, so Ctrl-C (and a closed terminal) reaches
the rehearsal only, which sends the daemon exactly one SIGTERM: a second signal arriving while
the daemon finishes its shutdown would kill it half-way. It waits for the daemon to save its
state and exit (SIGKILL after 30 s), puts the terminal's settings back as they were, and stops
the node. (Reading the terminal from another session is allowed: it is not the daemon's
controlling terminal, so no job-control signal stops it.)

Every run is a new chain, since the fake node lives only in this process: each run rewrites
iotlight.toml and starts from an empty state file, and keeps the device seed, so the address
stays. The folder must be new, empty or an earlier rehearsal's (its iotlight.toml starts with
the rehearsal's header): a real device folder is never touched.

Options: --auto, --interval S (15), --duration S (forever), --backend B (auto), --port P (8765,
0 = no monitor), --dir PATH, --print-config (print the iotlight.toml and exit), -v.
Exit status: 0 after a clean stop, 1 when the daemon failed, 2 for bad usage or a foreign folder.
Sections: 1. setup (node, folder, config, seeds), 2. the daemon process, 3. paying, 4. main().
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent
for _p in (str(ROOT), str(TESTS), str(TESTS / "tools")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from fakenode import FakeNodeError  # noqa: E402
from harness import IOTLIGHT, STRANGER_SEED, TREASURY_SEED, config_text, read_state, start_chain  # noqa: E402

import iotlight  # noqa: E402

CHAIN_ID = "T"
DECIMALS = 2  # the demo token's, as start_chain issues it
PAY_TOKENS = 5  # the p key
AUTO_TOKENS = 3  # auto mode: 3 s of light, then dark again
DEVICE_COINS = 10 * 10**8  # 10 WAVES for Data transaction fees
BLOCK_SECONDS = 10.0  # the fake chain seals a block this often, so the height moves
READY_TIMEOUT = 120.0  # generous: a slow laptop's first start
STOP_TIMEOUT = 30.0
EMULATOR_GRACE = 10.0  # seconds the Sense HAT emulator's window may take to come up
HEADER = "# Written by tests/tools/rehearsal.py"
STALE_STATE = ("iotlight.db", "iotlight.db-wal", "iotlight.db-shm")

READY_LINE = re.compile(r"running: address")
HARDWARE_LINE = re.compile(r"hardware: (?:using )?(sense-hat|sense-emu|terminal|none)\b")
MONITOR_LINE = re.compile(r"monitor listening on (\S+)")


class RehearsalError(Exception):
    """A problem the user fixes (a usage, a folder, a busy port): one line, exit status 2."""


_out_lock = threading.Lock()


class Screen:
    """The terminal shared by the daemon's 8x8 matrix and the log lines: log lines scroll above the
    matrix, which is drawn again below the newest of them, so the recent log stays readable beside
    the lamp (the daemon does the same when its own standard error is a terminal, but here its log
    passes through the rehearsal). Callers hold _out_lock."""

    ROWS = 8
    UP = b"\x1b[%dA" % ROWS

    def __init__(self, write: Callable[[bytes], None]):
        self.write = write
        self.frame: Optional[bytes] = None  # the last matrix, 8 rows of the daemon's own drawing
        self.drawn = False  # the matrix is on the screen, right above the cursor

    def line(self, data: bytes) -> None:
        """One log line (or a few) above the matrix."""
        if self.drawn:
            self.write(self.UP + b"\r\x1b[J")
        self.write(data if data.endswith(b"\n") else data + b"\n")
        if self.frame is not None:
            self.write(self.frame)
            self.drawn = True

    def draw(self, frame: bytes) -> None:
        """The matrix again, in place."""
        self.write((self.UP if self.drawn else b"") + frame)
        self.frame = frame
        self.drawn = True

    def release(self) -> None:
        """The daemon is gone: the last matrix stays where it is, later lines go below it."""
        self.frame = None
        self.drawn = False


_screen: Optional[Screen] = None  # set while a daemon draws its matrix through the rehearsal


def _write_stderr(data: bytes) -> None:
    stream = getattr(sys.stderr, "buffer", None)
    if stream is None:
        sys.stderr.write(data.decode("utf-8", "replace"))
    else:
        stream.write(data)
    sys.stderr.flush()


def _emit(data: bytes) -> None:
    """Write bytes to standard error, whole lines at a time from any thread (above the matrix, if one is drawn)."""
    with _out_lock:
        if _screen is not None:
            _screen.line(data)
        else:
            _write_stderr(data)


def say(message: str) -> None:
    _emit(("[rehearsal] %s\n" % message).encode("utf-8"))


def shown(path: Any) -> str:
    """A path as short as it can be shown: relative to the current folder when inside it."""
    path = os.path.abspath(str(path))
    rel = os.path.relpath(path)
    return shlex.quote(path if rel.startswith("..") else rel)


# =============================================================================
# 1. Setup: node, folder, config, seeds
# =============================================================================


def start_node() -> Any:
    """The fake node with the demo token (node.asset) and a counterfeit one (node.counterfeit)."""
    node = start_chain(CHAIN_ID)
    try:
        node.stranger = iotlight.keypair_from_seed(STRANGER_SEED)
        node.fund(node.stranger.address(CHAIN_ID), waves=10**10)
        node.counterfeit = node.issue_asset(
            node.stranger,
            "IoT-Light",
            DECIMALS,
            10**8,
            description="a counterfeit: same name, another asset id",
        )
    except BaseException:
        node.stop()
        raise
    return node


def rehearsal_settings(node: Any, backend: str, port: int) -> Dict[str, Any]:
    return {
        "node.urls": [node.url],
        "node.chain_id": CHAIN_ID,
        "node.list_rate": 0,
        "device.seed_file": "device.seed",
        "device.state_file": "iotlight.db",
        "payment.asset_id": node.asset,
        "hardware.backend": backend,
        "monitor.host": "127.0.0.1",
        "monitor.port": port,
    }


def rehearsal_config(node: Any, backend: str, port: int) -> str:
    header = "\n".join(
        [
            HEADER + " for an offline rehearsal: the node below is a fake one",
            "# that lives only while the rehearsal runs; every run rewrites this file.",
        ]
    )
    return config_text(rehearsal_settings(node, backend, port), header)


def prepare_folder(folder: Path) -> None:
    """Make the folder, refusing one that is neither new, empty nor an earlier rehearsal's;
    an earlier rehearsal's state file goes (its chain is gone)."""
    if folder.exists() and not folder.is_dir():
        raise RehearsalError("--dir %s: not a folder; pass a new or empty folder" % folder)
    if folder.is_dir() and any(folder.iterdir()):
        config = folder / "iotlight.toml"
        try:
            ours = config.is_file() and config.read_text(encoding="utf-8").startswith(HEADER)
        except (OSError, UnicodeDecodeError):
            ours = False
        if not ours:
            raise RehearsalError(
                "--dir %s: the folder is not empty and holds no rehearsal (no iotlight.toml "
                "written by tests/tools/rehearsal.py); pass a new or empty folder" % folder
            )
    folder.mkdir(parents=True, exist_ok=True)
    for name in STALE_STATE:
        (folder / name).unlink(missing_ok=True)


def write_secret(path: Path, text: str) -> None:
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    os.chmod(str(path), 0o600)


def iotlight_command(config: Path, *args: str) -> List[str]:
    return [sys.executable, str(IOTLIGHT), "-c", str(config), *args]


def child_env() -> Dict[str, str]:
    """The environment of the daemon and keygen: not under systemd, stdout unbuffered."""
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def ensure_device_seed(config: Path) -> None:
    """The real `iotlight.py keygen`, unless an earlier rehearsal made the seed already."""
    if (config.parent / "device.seed").exists():
        say("keeping the device seed of an earlier rehearsal in %s" % shown(config.parent / "device.seed"))
        return
    proc = subprocess.run(
        iotlight_command(config, "keygen"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
    )
    for line in (proc.stdout + proc.stderr).splitlines():
        say("keygen: %s" % line)
    if proc.returncode != 0:
        raise RehearsalError(
            "iotlight.py keygen failed with status %d (its message is above)" % proc.returncode
        )


def check_port_free(port: int) -> None:
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the monitor's server does
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            raise RehearsalError(
                "--port %d: 127.0.0.1:%d is taken (%s; another rehearsal or iotlight?); "
                "pass another --port, or --port 0 for no monitor" % (port, port, e.strerror or e)
            ) from None


# =============================================================================
# 2. The daemon process
# =============================================================================


def on_one_terminal() -> bool:
    """Standard output and standard error are both a terminal: the matrix and the log share the screen."""
    try:
        return sys.stdout.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class DaemonProcess:
    """`iotlight.py run` as a subprocess: stdin this terminal's, its log passed through. On a terminal its
    standard output is a pseudo-terminal of the rehearsal's, whose matrix frames the rehearsal draws
    below the log lines (Screen); elsewhere its standard output is the rehearsal's."""

    def __init__(self, config: Path, *, verbose: bool = False):
        self.config = config
        self.log_path = config.parent / "daemon.log"
        self.verbose = verbose
        self.proc: Optional[subprocess.Popen] = None
        self.ready = threading.Event()
        self.backend: Optional[str] = None
        self.monitor_url: Optional[str] = None
        self._forwarder: Optional[threading.Thread] = None
        self._drawer: Optional[threading.Thread] = None

    def start(self) -> "DaemonProcess":
        global _screen
        args = iotlight_command(self.config, *(["-v"] if self.verbose else []), "run")
        master = slave = None
        if on_one_terminal():
            import pty

            master, slave = pty.openpty()
            _copy_window_size(sys.stderr.fileno(), slave)
            with _out_lock:
                _screen = Screen(_write_stderr)
        try:
            self.proc = subprocess.Popen(
                args,
                stdout=slave,
                stderr=subprocess.PIPE,
                env=child_env(),
                cwd=str(self.config.parent),
                start_new_session=True,
            )  # signals reach it from the rehearsal only
        except BaseException:
            if master is not None:
                os.close(master)
            raise
        finally:
            if slave is not None:
                os.close(slave)
        self._forwarder = threading.Thread(target=self._forward, name="daemon-log", daemon=True)
        self._forwarder.start()
        if master is not None:
            self._drawer = threading.Thread(
                target=self._draw, args=(master,), name="daemon-matrix", daemon=True
            )
            self._drawer.start()
        return self

    def _draw(self, master: int) -> None:
        """Read the daemon's standard output from the pseudo-terminal: its matrix frames (8 rows, each
        redrawn in place after cursor-up) go to the Screen, anything else to the log lines."""
        global _screen
        buf, rows = b"", []  # type: bytes, List[bytes]
        try:
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every copy of the other side is closed, the daemon is gone
                    break
                if not data:
                    break
                buf = (buf + data).replace(Screen.UP, b"")
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    line = line.rstrip(b"\r") + b"\n"
                    if line.startswith(b"\r\x1b[48;2;"):
                        rows.append(line)
                        if len(rows) == Screen.ROWS:
                            with _out_lock:
                                if _screen is not None:
                                    _screen.draw(b"".join(rows))
                            rows = []
                    elif line.strip():
                        _emit(line)
        finally:
            os.close(master)
            with _out_lock:
                if _screen is not None:
                    _screen.release()
                    _screen = None
                _write_stderr(b"\x1b[0m")

    def _forward(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        with open(self.log_path, "wb") as log_file:
            for raw in iter(self.proc.stderr.readline, b""):
                _emit(raw)
                log_file.write(raw)
                log_file.flush()
                line = raw.decode("utf-8", "replace")
                found = HARDWARE_LINE.search(line)
                if found and self.backend is None:
                    self.backend = found.group(1)
                found = MONITOR_LINE.search(line)
                if found:
                    self.monitor_url = found.group(1)
                if READY_LINE.search(line):
                    self.ready.set()
        self.ready.set()  # the daemon is gone: nobody waits for it any longer

    def exited(self) -> Optional[int]:
        return None if self.proc is None else self.proc.poll()

    def wait_ready(self, stop: threading.Event) -> bool:
        """True once the daemon says it runs; False when it exited, stop was set, or it stayed silent."""
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.ready.wait(0.2):
            if stop.is_set() or self.exited() is not None:
                return False
            if time.monotonic() > deadline:
                say("the daemon has not said it runs after %.0f s; going on anyway" % READY_TIMEOUT)
                return True
        return self.exited() is None

    def stop(self) -> int:
        """SIGTERM, wait (SIGKILL after STOP_TIMEOUT); the exit status; the screen is the rehearsal's again."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                say("the daemon did not stop within %.0f s of SIGTERM; killing it" % STOP_TIMEOUT)
                self.proc.kill()
                self.proc.wait()
        if self._forwarder is not None:
            self._forwarder.join(10)
        if self._drawer is not None:
            self._drawer.join(10)
        return self.proc.returncode


def _copy_window_size(src: int, dst: int) -> None:
    """The pseudo-terminal gets the size of the real one."""
    import fcntl
    import termios

    try:
        fcntl.ioctl(dst, termios.TIOCSWINSZ, fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        pass


# =============================================================================
# 3. Paying
# =============================================================================


class Payer:
    """Payments to the device, signed by the throwaway treasury (or stranger) and put on the fake chain."""

    def __init__(self, node: Any, device_address: str):
        self.node = node
        self.device = device_address
        self.sent = 0  # real payments sent
        self.units = 0  # their total in the token's smallest units

    def _submit(self, what: str, action: Callable[[], Dict[str, Any]]) -> Optional[str]:
        try:
            tx_id = action()["id"]
        except FakeNodeError as e:
            say("the fake node refused %s: %s" % (what, e.body))
            return None
        say("%s (transaction %s)" % (what, tx_id))
        return tx_id

    def pay(self, tokens: int) -> None:
        units = tokens * 10**DECIMALS
        if self._submit(
            "paid %d IoT-Light" % tokens,
            lambda: self.node.transfer(self.node.treasury, self.device, units, asset_id=self.node.asset),
        ):
            self.sent += 1
            self.units += units

    def mass_pay(self) -> None:
        unit = 10**DECIMALS
        if self._submit(
            "sent a mass transfer of 2 x 1 IoT-Light",
            lambda: self.node.mass_transfer(
                self.node.treasury, [(self.device, unit), (self.device, unit)], asset_id=self.node.asset
            ),
        ):
            self.sent += 1
            self.units += 2 * unit

    def pay_counterfeit(self, tokens: int) -> None:
        self._submit(
            "paid %d of a counterfeit token also named IoT-Light (the daemon must ignore it)" % tokens,
            lambda: self.node.transfer(
                self.node.stranger, self.device, tokens * 10**DECIMALS, asset_id=self.node.counterfeit
            ),
        )


class Keyboard:
    """Single keys from a terminal on standard input (cbreak mode until close; Ctrl-C still works)."""

    def __init__(self) -> None:
        import termios
        import tty

        self.fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)

    def read(self, timeout: float) -> str:
        import select

        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not ready:
            return ""
        data = os.read(self.fd, 64)
        return data.decode("utf-8", "replace").lower() if data else "q"  # end of input: quit

    def close(self) -> None:
        import termios

        termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)


KEYS_HELP = (
    "keys: p = pay %d IoT-Light, m = mass transfer of 2 x 1, x = pay with a counterfeit token, q = quit"
    % PAY_TOKENS
)


def handle_key(key: str, payer: Payer) -> bool:
    """Act on one key; False when it asks to quit."""
    if key == "p":
        payer.pay(PAY_TOKENS)
    elif key == "m":
        payer.mass_pay()
    elif key == "x":
        payer.pay_counterfeit(PAY_TOKENS)
    elif key == "q":
        return False
    elif key in ("h", "?"):
        say(KEYS_HELP)
    return True


def tokens(units: int) -> str:
    """Smallest units of the demo token as whole tokens, e.g. 1050 -> "10.50"."""
    whole, cents = divmod(units, 10**DECIMALS)
    return "%d.%0*d" % (whole, DECIMALS, cents)


def credited_summary(state_file: Path) -> str:
    if not state_file.exists():
        return "no state file"
    count, units = read_state(state_file, "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM payments")[0]
    return "%d payment(s), %s IoT-Light" % (count, tokens(units))


# =============================================================================
# 4. main()
# =============================================================================


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number of seconds" % text) from None
    if not value > 0:
        raise argparse.ArgumentTypeError("%r must be more than 0 seconds" % text)
    return value


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError("%r is not a port from 0 (no monitor) to 65535" % text)
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rehearsal.py",
        description="Run the real iotlight daemon against a fake Waves node on this "
        "machine (127.0.0.1 only, no network) and pay it with a throwaway token.",
    )
    p.add_argument(
        "--auto",
        action="store_true",
        help="pay %d tokens every --interval seconds instead of reading keys" % AUTO_TOKENS,
    )
    p.add_argument("--interval", type=_positive, default=15.0, help="seconds between automatic payments (15)")
    p.add_argument(
        "--duration", type=_positive, default=None, help="stop after this many seconds (default: never)"
    )
    p.add_argument(
        "--backend", choices=iotlight.HARDWARE_BACKENDS, default="auto", help="hardware.backend (auto)"
    )
    p.add_argument(
        "--port", type=_port, default=8765, help="monitor and dashboard port on 127.0.0.1 (8765; 0 = off)"
    )
    p.add_argument(
        "--dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "rehearsal-run",
        help="working folder (default: rehearsal-run in the system temp folder)",
    )
    p.add_argument(
        "--print-config", action="store_true", help="print the iotlight.toml it would write, and exit"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug log from the daemon and the fake node")
    return p


class _EmitHandler(logging.Handler):
    """Log records through _emit, so that they too go above the matrix."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _emit((self.format(record) + "\n").encode("utf-8", "replace"))
        except Exception:
            self.handleError(record)


def setup_node_logging(verbose: bool) -> None:
    handler = _EmitHandler()
    handler.setFormatter(logging.Formatter("[rehearsal] fake node: %(message)s"))
    node_log = logging.getLogger("iotlight.fakenode")
    node_log.addHandler(handler)
    node_log.setLevel(logging.INFO if verbose else logging.WARNING)
    node_log.propagate = False


def rehearse(args: argparse.Namespace, node: Any, stop: threading.Event) -> int:
    """Folder, config, seeds, then the daemon and the payments until the end; the exit status."""
    folder = args.dir.resolve()
    config = folder / "iotlight.toml"
    treasury_file = folder / "treasury.seed"
    try:
        prepare_folder(folder)
        config.write_text(rehearsal_config(node, args.backend, args.port), encoding="utf-8")
        write_secret(treasury_file, TREASURY_SEED)
    except OSError as e:
        raise RehearsalError("--dir %s: %s; pass another folder" % (folder, e.strerror or e)) from None
    ensure_device_seed(config)
    address = iotlight.device_keys(iotlight.load_config(str(config))).address(CHAIN_ID)
    node.fund(address, waves=DEVICE_COINS)
    say(
        "fake node %s; token IoT-Light %s; device %s (funded with %d WAVES for fees)"
        % (node.url, node.asset, address, DEVICE_COINS // 10**8)
    )
    say(
        "folder %s; starting: %s"
        % (shown(folder), " ".join(shlex.quote(a) for a in iotlight_command(config, "run")))
    )
    if stop.is_set():
        return 130
    pay_hint = " ".join(
        [
            shown(sys.executable),
            shown(IOTLIGHT),
            "-c",
            shown(config),
            "pay",
            "--seed-file",
            shown(treasury_file),
            address,
            str(PAY_TOKENS),
        ]
    )
    daemon = DaemonProcess(config, verbose=args.verbose).start()
    say(
        "daemon pid %d; its log: %s (every line; they pass through here too)"
        % (daemon.proc.pid, shown(daemon.log_path))
    )
    payer = Payer(node, address)
    keyboard: Optional[Keyboard] = None
    status = 0
    try:
        if daemon.wait_ready(stop):
            keyboard = announce(args, daemon, pay_hint)
            status = pay_until_the_end(args, node, daemon, payer, keyboard, stop)
        elif not stop.is_set():
            status = daemon.stop() or 1
            say("the daemon exited with status %d before it ran (its message is above)" % status)
    finally:
        if keyboard is not None:
            keyboard.close()
        code = daemon.stop()
        if status == 0 and code != 0:
            say("the daemon exited with status %s; its log: %s" % (code, shown(daemon.log_path)))
            status = 1
        say(
            "payments sent: %d (%s IoT-Light); the daemon credited %s"
            % (payer.sent, tokens(payer.units), credited_summary(folder / "iotlight.db"))
        )
    return status


def announce(args: argparse.Namespace, daemon: DaemonProcess, pay_hint: str) -> Optional[Keyboard]:
    """Say where the dashboard is and how to pay; the keyboard when the rehearsal may read keys."""
    if args.port:
        if daemon.monitor_url:
            say("dashboard: %s" % daemon.monitor_url)
        else:
            say(
                "monitor.port = %d is set but the daemon did not say it listens (see its log above)"
                % args.port
            )
    on_terminal = sys.stdin is not None and sys.stdin.isatty()
    if not args.auto and on_terminal and daemon.backend not in (None, "terminal"):
        keyboard = Keyboard()
        say(KEYS_HELP)
        say("or pay from another terminal: %s" % pay_hint)
        return keyboard
    if daemon.backend == "terminal" and on_terminal:
        say("the keyboard belongs to the daemon: arrow keys and Enter are the joystick; Ctrl-C stops")
    elif daemon.backend is None and on_terminal:
        say("the daemon did not say which backend it took, so the rehearsal leaves the keyboard alone")
    say(
        "paying %d IoT-Light every %g s%s; pay by hand from a second terminal: %s"
        % (AUTO_TOKENS, args.interval, " for %g s" % args.duration if args.duration else "", pay_hint)
    )
    return None


def pay_until_the_end(
    args: argparse.Namespace,
    node: Any,
    daemon: DaemonProcess,
    payer: Payer,
    keyboard: Optional[Keyboard],
    stop: threading.Event,
) -> int:
    """Pay (by key or by the clock) and seal blocks until stop, q, --duration or the daemon's end."""
    start = time.monotonic()
    end = start + args.duration if args.duration else None
    next_pay = start if keyboard is None else None
    next_block = start + BLOCK_SECONDS
    emulator_check = start + EMULATOR_GRACE if daemon.backend == "sense-emu" else None
    while not stop.is_set():
        code = daemon.exited()
        if code is not None:
            say("the daemon exited on its own with status %s; its log: %s" % (code, shown(daemon.log_path)))
            return code or 1
        now = time.monotonic()
        if end is not None and now >= end:
            say("%g s are over; stopping" % args.duration)
            return 0
        if next_pay is not None and now >= next_pay:
            payer.pay(AUTO_TOKENS)
            next_pay += args.interval
        if now >= next_block:
            node.mine()
            next_block += BLOCK_SECONDS
            del node.requests[:-1000]  # the fake node records every request: keep a long run's memory flat
            del node.broadcasts[:-1000]
        if emulator_check is not None and now >= emulator_check:
            emulator_check = None
            if not iotlight._emulator_running():
                say(
                    "the daemon draws on the Sense HAT emulator, but no emulator window runs (sense_emu_gui "
                    "needs PyGObject and GTK); to see the matrix here instead, rerun with --backend terminal"
                )
        wake = min(t for t in (next_pay, next_block, end, emulator_check, now + 0.2) if t is not None)
        if keyboard is not None:
            for key in keyboard.read(wake - time.monotonic()):
                if not handle_key(key, payer):
                    return 0
        else:
            stop.wait(max(0.0, wake - time.monotonic()))
    return 0


class TerminalSettings:
    """The settings of the terminal on standard input, put back at the end whatever the daemon did to them."""

    def __init__(self) -> None:
        self.saved = None
        if sys.stdin is not None and sys.stdin.isatty():
            import termios

            self.saved = termios.tcgetattr(sys.stdin.fileno())

    def restore(self) -> None:
        if self.saved is not None:
            import termios

            try:
                termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self.saved)
            except (OSError, termios.error):  # the terminal is gone
                pass


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_node_logging(args.verbose)
    stop = threading.Event()
    terminal = TerminalSettings()
    if not args.print_config:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda signum, frame: stop.set())
    node = start_node()
    try:
        if args.print_config:
            print(rehearsal_config(node, args.backend, args.port), end="")
            return 0
        check_port_free(args.port)
        return rehearse(args, node, stop)
    except RehearsalError as e:
        say(str(e))
        return 2
    except iotlight.IotlightError as e:  # the configuration just written does not load: a bug here
        say("iotlight refused the rehearsal's configuration: %s" % e)
        return 1
    finally:
        terminal.restore()
        node.stop()


if __name__ == "__main__":
    sys.exit(main())
