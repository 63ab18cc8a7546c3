"""The offline rehearsal (tests/tools/rehearsal.py): the real daemon against the fake node, paid by the script.

Every test runs the rehearsal as a process (it runs the daemon as one), in a pseudo-terminal where a
terminal is what it is about; each waits for what it looks for, never for a fixed time.
"""

import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from harness import TREASURY_SEED, free_port, read_state, wait_until

REHEARSAL = Path(__file__).resolve().parent / "tools" / "rehearsal.py"
# "payment ID from SENDER: 3.00 IoT-Light -> 3.0 s of light" (the demo token has 2 decimals)
CREDIT_LINE = re.compile(r"payment \S+ from \S+: (\d+)\.(\d\d) \S+ -> [\d.]+ s of light")

pytestmark = [pytest.mark.timeout(300), pytest.mark.process]


def env():
    """The user's environment: no parts, not under systemd."""
    return {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}


def rehearse(*args, timeout=180):
    """Run the rehearsal to its end from the repository root, without a terminal."""
    try:
        return subprocess.run(
            [sys.executable, str(REHEARSAL), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env(),
            cwd=str(REHEARSAL.parent.parent),
        )
    except (
        subprocess.TimeoutExpired
    ) as e:  # the rehearsal was killed: its daemon, in its own session, was not
        text = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        pid = daemon_pid(text)
        if pid and alive(pid):
            os.kill(pid, signal.SIGKILL)
        raise


def payments(folder):
    """Amounts of the payments the daemon credited, oldest first; [] before its state file has its tables."""
    try:
        rows = read_state(folder / "iotlight.db", "SELECT amount FROM payments ORDER BY credited_ms")
    except sqlite3.OperationalError:  # not created yet, or created but still empty
        return []
    return [amount for (amount,) in rows]


def no_secrets(folder, text):
    device_seed = (folder / "device.seed").read_text().strip()
    assert device_seed not in text and TREASURY_SEED not in text


def spawn(folder, *args, stdin=subprocess.DEVNULL):
    """The rehearsal in its own session (like a shell job), its output in a file; (process, output reader)."""
    out = open(folder.parent / "rehearsal.out", "wb")
    proc = subprocess.Popen(
        [sys.executable, str(REHEARSAL), "--backend", "none", "--port", "0", "--dir", str(folder), *args],
        stdin=stdin,
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env(),
        start_new_session=True,
    )
    out.close()
    return proc, lambda: (folder.parent / "rehearsal.out").read_text(errors="replace")


def daemon_pid(text):
    found = re.search(r"\[rehearsal\] daemon pid (\d+)", text)
    return int(found.group(1)) if found else None


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def clean_up(proc, output):
    """After a failed test: stop the rehearsal (SIGTERM, then SIGKILL) and its daemon, which runs in its own session."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    pid = daemon_pid(output())
    if pid and alive(pid):
        os.kill(pid, signal.SIGKILL)


class Run:
    """A finished rehearsal: its folder, exit status, stdout and stderr."""

    def __init__(self, folder, returncode, stdout, stderr):
        self.folder, self.returncode, self.stdout, self.stderr = folder, returncode, stdout, stderr


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory):
    """One automatic rehearsal paying every second, stopped with Ctrl-C (SIGINT to its process group, as a
    terminal sends it to the foreground job) once the daemon credited two payments."""
    base = tmp_path_factory.mktemp("rehearsal")
    folder = base / "run"
    with open(base / "stdout", "wb") as out, open(base / "stderr", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(REHEARSAL), "--auto", "--interval", "1", "--backend", "none", "--port", "0"]
            + ["--dir", str(folder)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env(),
            start_new_session=True,
        )

    def stderr():
        return (base / "stderr").read_text(errors="replace")

    try:
        wait_until(
            lambda: len(payments(folder)) >= 2 or proc.poll() is not None, 120, what="two credited payments"
        )
        assert proc.poll() is None, stderr()
        os.killpg(proc.pid, signal.SIGINT)
        returncode = proc.wait(60)
    finally:
        clean_up(proc, stderr)
    return Run(folder, returncode, (base / "stdout").read_text(errors="replace"), stderr())


def test_auto_rehearsal_runs_the_daemon_and_it_credits_the_payments(auto_run):
    """--auto pays 3 tokens every interval; the daemon credits them, then both stop cleanly with status 0."""
    folder, proc = auto_run.folder, auto_run
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output
    assert proc.returncode == 0, output
    credited = payments(folder)
    assert len(credited) >= 2 and set(credited) == {300}, output
    assert [int(whole + cents) for whole, cents in CREDIT_LINE.findall(proc.stderr)] == credited
    assert "stopped; light state and outbox saved" in proc.stderr
    assert "the daemon credited %d payment(s)" % len(credited) in proc.stderr
    assert proc.stdout == ""
    no_secrets(folder, output)


def test_ctrl_c_stops_the_daemon_and_the_rehearsal_cleanly(auto_run):
    """SIGINT to the foreground job, as Ctrl-C sends it: the daemon is told to stop, saves its state and is
    gone; the rehearsal sums up and exits 0."""
    text = auto_run.stderr
    assert auto_run.returncode == 0, text
    assert "Traceback" not in text, text
    assert "stopped; light state and outbox saved" in text
    assert "the daemon credited" in text
    assert not alive(daemon_pid(text))


def test_auto_rehearsal_leaves_a_working_folder_with_its_config_and_seeds(auto_run):
    """The folder holds the rehearsal's config, the keygen seed and the treasury seed (both 0600), the log."""
    folder, proc = auto_run.folder, auto_run
    config = (folder / "iotlight.toml").read_text()
    assert config.startswith("# Written by tests/tools/rehearsal.py")
    for line in (
        'chain_id = "T"',
        "list_rate = 0",
        'backend = "none"',
        "port = 0",
        'host = "127.0.0.1"',
        'urls = ["http://127.0.0.1:',
    ):
        assert line in config
    assert "wrote a new 15-word seed phrase to %s" % (folder / "device.seed") in proc.stderr
    for seed in ("device.seed", "treasury.seed"):
        assert stat.S_IMODE((folder / seed).stat().st_mode) == 0o600
    assert (folder / "treasury.seed").read_text() == TREASURY_SEED + "\n"
    assert "running: address" in (folder / "daemon.log").read_text()
    assert "pay --seed-file %s" % (folder / "treasury.seed") in proc.stderr


def test_a_second_rehearsal_in_the_folder_keeps_the_address_and_starts_a_fresh_state(auto_run):
    """Rerun in the same folder: keygen is skipped, the address stays, only the new chain's payments count."""
    folder, first = auto_run.folder, auto_run
    address = re.search(r"keygen: address: (\w+)", first.stderr).group(1)
    proc = rehearse(
        "--auto",
        "--duration",
        "1",
        "--interval",
        "10",
        "--backend",
        "none",
        "--port",
        "0",
        "--dir",
        str(folder),
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert "keeping the device seed of an earlier rehearsal" in proc.stderr
    assert "running: address %s" % address in proc.stderr
    # the first run's payments (two at least) are gone: only this run's (one at most) are in the state
    assert payments(folder) == [300] * len(CREDIT_LINE.findall(proc.stderr))


def test_print_config_prints_the_config_and_touches_nothing(tmp_path):
    """--print-config writes the TOML to stdout, with the asked backend and port, and creates no folder."""
    folder = tmp_path / "never"
    proc = rehearse(
        "--print-config", "--backend", "terminal", "--port", "9999", "--dir", str(folder), timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# Written by tests/tools/rehearsal.py")
    assert re.search(r'\[payment\]\nasset_id = "\w{43,44}"', proc.stdout)
    assert 'backend = "terminal"' in proc.stdout and "port = 9999" in proc.stdout
    assert not folder.exists()


def test_a_folder_that_is_no_rehearsal_is_refused_and_left_alone(tmp_path):
    """A non-empty folder without the rehearsal's iotlight.toml (a real device's, say): exit 2, files untouched."""
    folder = tmp_path / "device"
    folder.mkdir()
    (folder / "iotlight.toml").write_text('[payment]\nasset_id = "x"\n')
    (folder / "iotlight.db").write_bytes(b"precious")
    proc = rehearse("--auto", "--duration", "1", "--port", "0", "--dir", str(folder), timeout=60)
    assert proc.returncode == 2
    assert "[rehearsal] --dir %s: the folder is not empty and holds no rehearsal" % folder in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert (folder / "iotlight.db").read_bytes() == b"precious"
    assert sorted(p.name for p in folder.iterdir()) == ["iotlight.db", "iotlight.toml"]


def test_keys_pay_mass_pay_and_counterfeit_then_q_quits(tmp_path):
    """On a terminal: p pays 5, x pays a counterfeit (ignored), m pays 2 x 1, q stops everything with status 0."""
    import pty

    master, slave = pty.openpty()
    folder = tmp_path / "run"
    try:
        proc, output = spawn(folder, stdin=slave)
        os.close(slave)
        try:
            wait_until(
                lambda: "keys: p = pay" in output() or proc.poll() is not None, 120, what="the key help"
            )
            assert proc.poll() is None, output()
            os.write(master, b"p")
            wait_until(lambda: payments(folder) == [500], 30, what="the 5 tokens to be credited")
            os.write(master, b"x")
            wait_until(
                lambda: "counterfeit token also named IoT-Light" in output(), 30, what="the counterfeit"
            )
            os.write(master, b"m")
            wait_until(lambda: sorted(payments(folder)) == [200, 500], 30, what="the mass transfer credited")
            os.write(master, b"q")
            assert proc.wait(60) == 0, output()
        finally:
            clean_up(proc, output)
    finally:
        os.close(master)
    text = output()
    assert "Traceback" not in text, text
    assert sorted(payments(folder)) == [
        200,
        500,
    ]  # the counterfeit, paid before the mass transfer, never counted
    assert "stopped; light state and outbox saved" in text
    assert "payments sent: 2 (7.00 IoT-Light); the daemon credited 2 payment(s), 7.00 IoT-Light" in text


def test_the_dashboard_url_is_printed_once_the_monitor_listens(tmp_path):
    """With a monitor port the rehearsal prints the URL the daemon's monitor reports."""
    port = free_port()  # the rehearsal checks it again before it starts
    proc = rehearse(
        "--auto",
        "--duration",
        "0.5",
        "--backend",
        "none",
        "--port",
        str(port),
        "--dir",
        str(tmp_path / "run"),
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert "[rehearsal] dashboard: http://127.0.0.1:%d/\n" % port in proc.stderr


def test_on_a_terminal_the_log_stays_readable_beside_the_matrix(tmp_path):
    """--backend terminal in a terminal (a pty, its screen kept by pyte): once payments came and the matrix was
    redrawn, the screen shows the 8x8 matrix and the daemon's recent log lines (the payments it credited) at
    the same time, and the rehearsal names the log file."""
    import fcntl
    import pty
    import struct
    import termios
    import threading

    import pyte

    columns, lines = 200, 60
    screen = pyte.Screen(columns, lines)
    stream = pyte.ByteStream(screen)
    lock = threading.Lock()
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    folder = tmp_path / "run"
    seen = []

    def read_screen():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            with lock:
                seen.append(data)
                stream.feed(data)

    proc = subprocess.Popen(
        [
            sys.executable,
            str(REHEARSAL),
            "--backend",
            "terminal",
            "--port",
            "0",
            "--auto",
            "--interval",
            "1",
            "--duration",
            "100",
            "--dir",
            str(folder),
        ],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=dict(env(), TERM="xterm-256color"),
        start_new_session=True,
    )
    os.close(slave)
    reader = threading.Thread(target=read_screen, daemon=True)
    reader.start()

    def output():
        with lock:
            return b"".join(seen).decode("utf-8", "replace")

    def matrix_top(snapshot):
        """The first row of 8 whose first 16 columns all have a background colour, or None."""
        for y in range(lines - 7):
            if all(snapshot[y + dy][x].bg != "default" for dy in range(8) for x in range(16)):
                return y
        return None

    def matrix_below_credits():
        """The screen's lines when it shows the matrix with two credited payments' log lines above it."""
        with lock:
            display = list(screen.display)
            top = matrix_top(screen.buffer)
        if top is None or len(CREDIT_LINE.findall("\n".join(display[:top]))) < 2:
            return None
        return display

    try:
        wait_until(
            lambda: len(payments(folder)) >= 2 or proc.poll() is not None, 120, what="two credited payments"
        )
        assert proc.poll() is None, output()
        try:  # the matrix is redrawn (countdown bar, status pixel) after the log lines
            display = wait_until(
                lambda: matrix_below_credits() or proc.poll() is not None,
                60,
                what="the matrix and the credited payments' log lines on the screen at once",
            )
        except AssertionError:
            with lock:
                raise AssertionError("the screen never showed both:\n" + "\n".join(screen.display)) from None
        assert proc.poll() is None, output()
        text = "\n".join(display)
        assert "[rehearsal] daemon pid %d; its log: " % daemon_pid(output()) in text
        assert str(folder / "daemon.log") in output() or "daemon.log" in text
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 0, output()
    finally:
        clean_up(proc, output)
        reader.join(10)
        os.close(master)
    assert "Traceback" not in output()
    assert CREDIT_LINE.search((folder / "daemon.log").read_text())
