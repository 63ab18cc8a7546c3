#!/usr/bin/env python3
"""iotlight benchmark: measures the daemon and its parts, prints one Markdown table.

Not part of the pytest suite (no test functions): run it by hand, on an idle
machine if you can, and paste what it prints on stdout into README.md:

    python tests/tools/bench.py                  # about 6-7 minutes
    python tests/tools/bench.py --quick          # about 2 minutes, fewer samples
    python tests/tools/bench.py --json out.json  # also write every number as JSON
    python tests/tools/bench.py --only crypto,pywaves
    python tests/tools/bench.py --only classroom,requests   # not in the default run: ~20 minutes
    python tests/tools/bench.py --only together             # 30 daemons switched on at once, 3 runs

Progress goes to stderr, the table to stdout. It uses the test kit: the fake
node (tests/tools/fakenode.py), the Sense HAT emulator played by EmulatedHat
(tests/emulator.py) and the real daemon as a subprocess (tests/harness.py).
Nothing leaves 127.0.0.1. The emulator's files have fixed paths
in /dev/shm: while another test run holds them the benchmark waits (up to 3
minutes), and it starts a section again if they are taken from under it.

Sections: 1. setup and helpers, 2. the figures (one function each),
3. the table, 4. worker processes (polls, WebSocket clients, pywaves-ce),
5. main().
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent
for _p in (str(ROOT), str(TESTS), str(TESTS / "tools")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from harness import Device, free_port, funded_device, read_state, start_chain, wait_until  # noqa: E402

import iotlight  # noqa: E402

log = logging.getLogger("iotlight.bench")

# =============================================================================
# 1. Setup and helpers
# =============================================================================

PYWAVES_VENV = "/tmp/bench-venv"
PYWAVES_PACKAGE = "pywaves-ce"
LIT = 56  # a lit frame: the whole matrix (the countdown row is dim, not dark)
PAYMENT_UNITS = 30  # 0.30 tokens (2 decimals) at 1 s per token: 0.3 s of light

# Assumed single-core slowdown of a Raspberry Pi against this kind of x86 core,
# for CPython code that calls into libsodium (see the notes printed with the table).
PI4_FACTOR = (5.0, 8.0)
ZERO2_FACTOR = (10.0, 15.0)
# sysbench 1.0.20 `cpu --threads=1` (primes to 10000), published on
# leoncode.co.uk/articles/raspberry-pi-benchmarks: Pi 4 1477.83 events/s,
# Pi 3B+ (Cortex-A53 at 1.4 GHz) 687.45; the Zero 2 W has the same core at 1.0 GHz.
SYSBENCH_PI4 = 1477.83
SYSBENCH_ZERO2 = 687.45 * 1.0 / 1.4


class Skip(Exception):
    """A figure that cannot be measured here; the text says why."""


@dataclasses.dataclass
class Row:
    """One line of the table; `data` holds the raw numbers for --json."""

    key: str
    figure: str
    measured: str
    target: str = "-"
    ok: Optional[bool] = None  # None: no target (info)
    data: Dict[str, Any] = dataclasses.field(default_factory=dict)
    status: str = ""  # overrides PASS/MISS/info: "n/a", "ERROR", "estimate"

    @property
    def result(self) -> str:
        if self.status:
            return self.status
        if self.ok is None:
            return "info"
        return "PASS" if self.ok else "MISS"


@dataclasses.dataclass(frozen=True)
class Plan:
    """How many samples each figure takes: full or --quick."""

    quick: bool
    crypto_seconds: float
    payments: int
    catchup_payments: int
    catchup_rounds: int
    idle_seconds: float
    polls: int
    presses: int
    fanout_clients: int
    fanout_events: int
    fanout_rounds: int
    startups: int

    @classmethod
    def make(cls, quick: bool) -> "Plan":
        if quick:
            return cls(
                quick=True,
                crypto_seconds=0.3,
                payments=15,
                catchup_payments=10_000,
                catchup_rounds=1,
                idle_seconds=30.0,
                polls=2_000,
                presses=10,
                fanout_clients=200,
                fanout_events=50,
                fanout_rounds=1,
                startups=3,
            )
        return cls(
            quick=False,
            crypto_seconds=1.0,
            payments=40,
            catchup_payments=10_000,
            catchup_rounds=3,
            idle_seconds=180.0,
            polls=10_000,
            presses=30,
            fanout_clients=200,
            fanout_events=100,
            fanout_rounds=3,
            startups=5,
        )


def say(msg: str, *args: Any) -> None:
    log.info(msg, *args)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))]


def ms(seconds: float) -> str:
    return "%.0f ms" % (seconds * 1000) if seconds >= 0.0995 else "%.1f ms" % (seconds * 1000)


def rate_str(per_second: float) -> str:
    return "{:,.0f}/s".format(per_second)


def measure_rate(fn: Callable[[], Any], seconds: float, repeats: int = 3) -> float:
    """Calls per second of fn: the median of `repeats` runs of about `seconds` each."""
    for _ in range(3):
        fn()  # warm-up: imports, caches
    rates = []
    for _ in range(repeats):
        n = 0
        batch = 1
        start = time.perf_counter()
        while True:
            for _ in range(batch):
                fn()
            n += batch
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
            batch = min(batch * 2, 1000)
        rates.append(n / elapsed)
    return statistics.median(rates)


def machine_info() -> Dict[str, Any]:
    """CPU (first processor of /proc/cpuinfo), cores, Python, load: printed above the table."""
    cpu: Dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().split("\n\n")[0].splitlines():
            key, _, value = line.partition(":")
            cpu[key.strip()] = value.strip()
    info: Dict[str, Any] = {
        "cpu": cpu.get("model name", platform.processor() or "unknown CPU"),
        "cpu_family": cpu.get("cpu family", "?"),
        "cpu_mhz": cpu.get("cpu MHz", "?"),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": platform.platform(),
        "iotlight": iotlight.__version__,
    }
    with contextlib.suppress(OSError):
        info["load_before"] = os.getloadavg()
    return info


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat."""
    fields = Path("/proc/%d/stat" % pid).read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_kb(pid: Any = "self") -> int:
    for line in Path("/proc/%s/status" % pid).read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS for process %s" % pid)


def proc_private_kb(pid: Any = "self") -> int:
    """Memory only this process holds (Private_Clean + Private_Dirty): RSS without shared libraries."""
    total = 0
    for line in Path("/proc/%s/smaps_rollup" % pid).read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1])
    return total


@contextlib.contextmanager
def fake_chain() -> Iterator[Any]:
    """A fresh fake node with a treasury that issued an IoT-Light token, as the tests' chain."""
    node = start_chain("T")
    try:
        yield node
    finally:
        node.stop()


device_on = funded_device


@contextlib.contextmanager
def emulated_hat(wait: float = 180.0) -> Iterator[Any]:
    """The Sense HAT emulator; waits for the lock while another test run holds it."""
    try:
        from emulator import EmulatedHat
    except ImportError as e:
        raise Skip("the Sense HAT emulator library is missing (%s): pip install sense-emu" % e) from None
    deadline = time.monotonic() + wait
    while True:
        try:
            hat = EmulatedHat()
            break
        except RuntimeError as e:
            if time.monotonic() > deadline:
                raise Skip("the Sense HAT emulator stayed busy for %.0f s: %s" % (wait, e)) from None
            time.sleep(1.0)
    try:
        yield hat
    finally:
        if not emulator_intact():
            hat._created = []  # the files at those paths are another run's now: leave them be
        hat.close()


def emulator_intact() -> bool:
    """Whether this process still holds the emulator lock and its screen file is there."""
    from sense_emu.lock import EmulatorLock
    from sense_emu.screen import screen_filename

    return EmulatorLock("sense_emu").mine and os.path.exists(screen_filename())


def with_emulator(fn: Callable[[Any], List[Row]], attempts: int = 3) -> List[Row]:
    """fn(hat), started again when another process (a parallel test run) took the emulator's
    fixed files in /dev/shm from under it."""
    for attempt in range(1, attempts + 1):
        with emulated_hat() as hat:
            try:
                return fn(hat)
            except Exception as e:
                if emulator_intact() or attempt == attempts:
                    raise
                say("another process changed the emulator's files in /dev/shm (%s); starting over", e)
        time.sleep(5.0)
    raise AssertionError("unreachable")


# =============================================================================
# 2. The figures
# =============================================================================

BENCH_SEED = "iotlight benchmark seed, throwaway, never funded on a real chain"


def joystick_entries(n: int = 1) -> List[Dict[str, Any]]:
    """The entries of a Data transaction for one press, as the outbox builds them."""
    ts = int(time.time() * 1000)
    return iotlight.events_to_entries(
        [iotlight.PendingEvent(n, "joystick", (iotlight.joystick_entry(n, "up", "pressed", ts),), press_n=n)]
    )


def bench_crypto(plan: Plan, results: Dict[str, Any]) -> List[Row]:
    """1. Seed -> address, sign, verify, Data transaction build+sign, in this process."""
    keys = iotlight.keypair_from_seed(BENCH_SEED)
    entries = joystick_entries()
    assert len(entries) == 2, entries
    tx = iotlight.build_data_tx(keys, entries, timestamp=int(time.time() * 1000), chain_id="T")
    message = iotlight.tx_body_bytes(tx)
    signature = iotlight.sign(keys.private_key, message)
    assert iotlight.verify(keys.public_key, message, signature)
    sec = plan.crypto_seconds
    say("crypto: %.1f s x 3 per figure", sec)
    r_addr = measure_rate(lambda: iotlight.keypair_from_seed(BENCH_SEED).address("T"), sec)
    r_sign = measure_rate(lambda: iotlight.sign(keys.private_key, message), sec)
    r_verify = measure_rate(lambda: iotlight.verify(keys.public_key, message, signature), sec)
    r_data = measure_rate(
        lambda: iotlight.build_data_tx(keys, entries, timestamp=int(time.time() * 1000), chain_id="T"), sec
    )
    results.update(
        address=r_addr,
        sign=r_sign,
        verify=r_verify,
        data_tx=r_data,
        message=message,
        signature=signature,
        keys=keys,
    )
    how = {"message_bytes": len(message), "seconds_per_run": sec, "runs": 3}
    return [
        Row(
            "crypto.address",
            "Seed -> key pair + address",
            rate_str(r_addr),
            data=dict(how, per_second=r_addr),
        ),
        Row(
            "crypto.sign",
            "Sign (Curve25519, %d-byte Data tx body)" % len(message),
            rate_str(r_sign),
            data=dict(how, per_second=r_sign),
        ),
        Row(
            "crypto.verify",
            "Verify the same signature",
            rate_str(r_verify),
            data=dict(how, per_second=r_verify),
        ),
        Row(
            "crypto.data_tx",
            "Data tx build + sign (press: 2 entries)",
            "%s, mean %.2f ms" % (rate_str(r_data), 1000 / r_data),
            "< 1 ms",
            1000 / r_data < 1.0,
            data=dict(how, per_second=r_data, mean_ms=1000 / r_data),
        ),
    ]


def ensure_pywaves(venv: str) -> str:
    """The python of a venv with pywaves-ce, created on first use; Skip with the reason if impossible."""
    py = os.path.join(venv, "bin", "python")
    check = [py, "-c", "import pywaves, pywaves_curve25519"]
    if os.path.exists(py) and subprocess.run(check, capture_output=True, timeout=120).returncode == 0:
        return py
    say("pywaves-ce: creating %s and installing %s (once)", venv, PYWAVES_PACKAGE)
    try:
        if not os.path.exists(py):
            subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True, timeout=300)
        p = subprocess.run(
            [py, "-m", "pip", "install", "-q", PYWAVES_PACKAGE], capture_output=True, text=True, timeout=600
        )
    except (subprocess.SubprocessError, OSError) as e:
        raise Skip("cannot create the venv %s: %s" % (venv, e)) from None
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise Skip("pip install %s failed: %s" % (PYWAVES_PACKAGE, last[:160]))
    if subprocess.run(check, capture_output=True, timeout=120).returncode != 0:
        raise Skip("%s installed but `import pywaves` fails" % PYWAVES_PACKAGE)
    return py


def bench_pywaves(plan: Plan, crypto: Dict[str, Any], venv: str) -> List[Row]:
    """8a. The same address derivation, signing and verifying with pywaves-ce, in its own venv."""
    names = ("Seed -> key pair + address", "Sign", "Verify")
    try:
        if not crypto:
            raise Skip("the crypto figures did not run")
        py = ensure_pywaves(venv)
        keys = crypto["keys"]
        job = {
            "seed": BENCH_SEED,
            "message": crypto["message"].hex(),
            "private_key": keys.private_key.hex(),
            "public_key": keys.public_key.hex(),
            "signature": crypto["signature"].hex(),
            "seconds": plan.crypto_seconds,
        }
        say("pywaves-ce: timing in %s", venv)
        p = subprocess.run(
            [py, "-c", PYWAVES_SCRIPT],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tempfile.gettempdir(),
        )
        if p.returncode != 0:
            raise Skip(
                "the pywaves-ce timing script failed: %s" % (p.stderr.strip().splitlines() or ["?"])[-1]
            )
        pw = json.loads(p.stdout)
    except Skip as e:
        return [
            Row("pywaves." + k, "pywaves-ce: " + n, "n/a: %s" % e, status="n/a")
            for k, n in zip(("address", "sign", "verify"), names)
        ]
    ours_address = iotlight.keypair_from_seed(BENCH_SEED).address("T")
    same_address = pw["address"] == ours_address
    pw_sig_ok = iotlight.verify(crypto["keys"].public_key, crypto["message"], bytes.fromhex(pw["signature"]))
    rows = []
    for key, name, ours, theirs in (
        ("address", names[0], crypto["address"], pw["address_per_s"]),
        ("sign", names[1], crypto["sign"], pw["sign_per_s"]),
        ("verify", names[2], crypto["verify"], pw["verify_per_s"]),
    ):
        rows.append(
            Row(
                "pywaves." + key,
                "pywaves-ce %s: %s" % (pw["version"], name),
                "%s; iotlight/pywaves = %.2fx" % (rate_str(theirs), ours / theirs),
                data={
                    "pywaves_per_second": theirs,
                    "iotlight_per_second": ours,
                    "ratio": ours / theirs,
                    "pywaves_version": pw["version"],
                    "same_address": same_address,
                    "pywaves_signature_verifies_in_iotlight": pw_sig_ok,
                    "pywaves_verifies_iotlight_signature": pw["verifies_ours"],
                    "pywaves_b58_sign_per_s": pw.get("b58_sign_per_s"),
                },
            )
        )
    if not (same_address and pw_sig_ok and pw["verifies_ours"]):
        rows.append(
            Row(
                "pywaves.agree",
                "pywaves-ce and iotlight agree",
                "NO: address %s, signatures %s/%s" % (same_address, pw_sig_ok, pw["verifies_ours"]),
                status="MISS",
            )
        )
    return rows


def pi_estimates(crypto: Dict[str, Any]) -> List[Row]:
    """8b. Crypto figures scaled by the assumed single-core factors (estimates, not measurements)."""
    if not crypto:
        return []
    rows = []
    for key, board, (lo, hi) in (
        ("pi4", "Raspberry Pi 4 (est.)", PI4_FACTOR),
        ("zero2", "Raspberry Pi Zero 2 W (est.)", ZERO2_FACTOR),
    ):

        def span(rate: float, hi: float = hi, lo: float = lo) -> str:
            return "{:,.0f}-{:,.0f}/s".format(rate / hi, rate / lo)

        data_ms = (1000 / crypto["data_tx"] * lo, 1000 / crypto["data_tx"] * hi)
        rows.append(
            Row(
                "estimate." + key,
                "%s, %g-%gx slower" % (board, lo, hi),
                "address %s; sign %s; verify %s; Data tx %.1f-%.1f ms"
                % (span(crypto["address"]), span(crypto["sign"]), span(crypto["verify"]), *data_ms),
                status="estimate",
                data={
                    "factor": [lo, hi],
                    "data_tx_ms": list(data_ms),
                    "address_per_s": [crypto["address"] / hi, crypto["address"] / lo],
                    "sign_per_s": [crypto["sign"] / hi, crypto["sign"] / lo],
                    "verify_per_s": [crypto["verify"] / hi, crypto["verify"] / lo],
                },
            )
        )
    return rows


def sysbench_ratio() -> Optional[Dict[str, float]]:
    """This machine's sysbench single-thread score against the published Pi ones, when sysbench is installed."""
    if not shutil.which("sysbench"):
        return None
    try:
        p = subprocess.run(
            ["sysbench", "cpu", "--threads=1", "--time=5", "run"], capture_output=True, text=True, timeout=60
        )
        score = float(
            next(line.split(":")[1] for line in p.stdout.splitlines() if "events per second" in line)
        )
    except (subprocess.SubprocessError, OSError, StopIteration, ValueError):
        return None
    return {"events_per_s": score, "pi4": score / SYSBENCH_PI4, "zero2": score / SYSBENCH_ZERO2}


def light_latencies(chain: Any, hat: Any, folder: Path, poll: float, n: int) -> List[float]:
    """Seconds from a payment entering the liquid block to the first lit frame on the emulator's screen."""
    out: List[float] = []
    with device_on(
        chain,
        folder,
        node__poll_interval=poll,
        node__list_rate=0,
        hardware__backend="sense-emu",
        light__countdown=True,
    ) as dev:
        dev.start()
        wait_until(lambda: hat.lit_count() == 1, 20, what="the dark lamp's status pixel")
        for i in range(n):
            time.sleep(random.uniform(0.05, 0.05 + poll))  # a random phase against the poll cycle
            tx = chain.make_transfer(chain.treasury, dev.address, PAYMENT_UNITS, asset_id=chain.asset)
            chain.submit(tx)
            t0 = time.monotonic()
            deadline = t0 + poll + 20
            while hat.lit_count() < LIT:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        "payment %d did not light the lamp within %.0f s" % (i + 1, poll + 20)
                    )
                time.sleep(0.001)
            out.append(time.monotonic() - t0)
            wait_until(lambda: hat.lit_count() <= 1, 20, interval=0.005, what="the lamp to go dark")
            if (i + 1) % 10 == 0:
                say("  poll %.2f s: %d/%d payments", poll, i + 1, n)
    return out


def bench_light(plan: Plan, work: Path) -> List[Row]:
    """2. Payment visible on the node -> first lit frame, at poll_interval 1.0 and 0.25."""
    return with_emulator(lambda hat: light_rows(plan, work, hat))


def light_rows(plan: Plan, work: Path, hat: Any) -> List[Row]:
    rows = []
    for poll in (1.0, 0.25):
        say("payment -> light: %d payments at node.poll_interval = %g", plan.payments, poll)
        with fake_chain() as chain:
            folder = Path(tempfile.mkdtemp(prefix="light-%g-" % poll, dir=str(work)))
            lat = light_latencies(chain, hat, folder, poll, plan.payments)
        p50, p95 = statistics.median(lat), percentile(lat, 95)
        rows.append(
            Row(
                "light.%g" % poll,
                "Payment -> first lit LED frame, poll %g s" % poll,
                "median %s, p95 %s (n=%d, max %s)" % (ms(p50), ms(p95), len(lat), ms(max(lat))),
                "p95 < %s" % ms(poll + 0.1),
                p95 < poll + 0.1,
                data={
                    "poll_interval": poll,
                    "median_s": p50,
                    "p95_s": p95,
                    "max_s": max(lat),
                    "samples_s": lat,
                },
            )
        )
    return rows


def bench_catchup(plan: Plan, work: Path) -> List[Row]:
    """3. Payments made while the daemon was stopped: start it, time until all are credited."""
    n = plan.catchup_payments
    db_files = ("iotlight.db", "iotlight.db-wal", "iotlight.db-shm")
    with (
        fake_chain() as chain,
        device_on(chain, work / "catchup", node__poll_interval=1.0, node__list_rate=0) as dev,
    ):
        dev.start()  # the first start fixes the history horizon: later payments count
        wait_until(
            lambda: query(dev, "SELECT value FROM meta WHERE key = 'horizon'"), 30, what="the first poll"
        )
        dev.stop()
        chain.mine()
        say("catch-up: making %d payments on the fake node", n)
        t = time.monotonic()
        for i in range(n):
            chain.transfer(chain.treasury, dev.address, 1, asset_id=chain.asset)
            if (i + 1) % 500 == 0:
                chain.mine()
        chain.mine()
        say("  %d payments in %.1f s", n, time.monotonic() - t)
        saved = work / "catchup-saved"
        saved.mkdir()
        for name in db_files:
            if (dev.folder / name).exists():
                shutil.copy2(dev.folder / name, saved / name)
        from_start, from_poll = [], []
        for r in range(plan.catchup_rounds):
            for name in db_files:
                with contextlib.suppress(FileNotFoundError):
                    (dev.folder / name).unlink()
                if (saved / name).exists():
                    shutil.copy2(saved / name, dev.folder / name)
            first_request = len(chain.requests)
            spawned = time.time()
            dev.start(ready=False)
            wait_until(
                lambda: (query(dev, "SELECT COUNT(*) FROM payments") or [(0,)])[0][0] >= n,
                180,
                interval=0.05,
                what="%d payments to be credited" % n,
            )
            done_ms = query(dev, "SELECT MAX(credited_ms) FROM payments")[0][0]
            dev.stop()
            from_start.append(done_ms / 1000 - spawned)
            from_poll.append(done_ms / 1000 - chain.requests[first_request].time)
            say(
                "  round %d: %.2f s from process start, %.2f s from its first request to the node",
                r + 1,
                from_start[-1],
                from_poll[-1],
            )
    s, p = statistics.median(from_start), statistics.median(from_poll)
    return [
        Row(
            "catchup",
            "Catch-up: %s payments made while stopped" % "{:,}".format(n),
            "%.2f s from process start, %.2f s from first poll (median of %d)" % (s, p, len(from_start)),
            "< 5 s",
            s < 5.0,
            data={"payments": n, "from_start_s": from_start, "from_first_poll_s": from_poll},
        )
    ]


def query(dev: Device, sql: str) -> list:
    """A read-only query on a device's state file; [] while the daemon has not opened it yet."""
    import sqlite3

    try:
        return read_state(dev.folder / "iotlight.db", sql)
    except sqlite3.Error:
        return []


def bench_idle(plan: Plan, work: Path) -> List[Row]:
    """4. Idle CPU and memory of the real daemon; RSS over many in-process polls (Watcher.poll_once)."""
    rows = []
    with fake_chain() as chain:
        with device_on(
            chain, work / "idle", node__poll_interval=1.0, node__list_rate=0, node__sweep_interval=60.0
        ) as dev:
            # as the systemd unit runs it: python -m iotlight, from the bytecode cache
            import py_compile

            py_compile.compile(str(ROOT / "iotlight.py"), doraise=True)
            dev.command = [sys.executable, "-m", "iotlight"]
            dev.start(env={"PYTHONPATH": str(ROOT)})
            pid = dev.proc.pid
            time.sleep(12.0)  # past start-up and the daemon's hand-back of start-up memory (at 10 s)
            rss_start = proc_rss_kb(pid)
            cpu0, t0, polls0 = proc_cpu_seconds(pid), time.monotonic(), count_polls(chain)
            say("idle: the daemon at poll_interval 1.0 for %.0f s", plan.idle_seconds)
            time.sleep(plan.idle_seconds)
            cpu1, t1, polls1 = proc_cpu_seconds(pid), time.monotonic(), count_polls(chain)
            rss_end = proc_rss_kb(pid)
            private_end = proc_private_kb(pid)
            uptime = t1 - t0 + 12.0
            dev.stop()
        per_hour = (cpu1 - cpu0) / (t1 - t0) * 3600
        rows.append(
            Row(
                "idle.cpu",
                "Idle CPU, daemon polling every 1.0 s",
                "%.1f CPU-s per hour (%.2f%% of a core; %d polls in %.0f s)"
                % (per_hour, per_hour / 36, polls1 - polls0, t1 - t0),
                data={"cpu_s_per_hour": per_hour, "window_s": t1 - t0, "polls": polls1 - polls0},
            )
        )
        rows.append(
            Row(
                "idle.rss",
                "Daemon resident memory (VmRSS)",
                "%.1f MB after %.0f s (%.1f MB at 12 s); of it %.1f MB private, the rest shared "
                "libraries" % (rss_end / 1024, uptime, rss_start / 1024, private_end / 1024),
                "< 40 MB",
                rss_end / 1024 < 40,
                data={
                    "rss_kb_start": rss_start,
                    "rss_kb_end": rss_end,
                    "private_kb_end": private_end,
                    "uptime_s": uptime,
                },
            )
        )
        with device_on(
            chain, work / "polls", node__poll_interval=1.0, node__list_rate=0, node__sweep_interval=60.0
        ) as dev:
            from harness import write_config

            write_config(dev.config_path, dev.settings)
            marks = sorted({1, 1000, plan.polls // 2, plan.polls})
            say("idle: %d polls in a worker process (Watcher.poll_once)", plan.polls)
            p = subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--worker",
                    "polls",
                    str(dev.config_path),
                    ",".join(map(str, marks)),
                ],
                capture_output=True,
                text=True,
                timeout=1800,
                cwd=str(dev.folder),
            )
            if p.returncode != 0:
                raise RuntimeError(
                    "the polls worker failed: %s" % (p.stderr.strip().splitlines() or ["?"])[-1]
                )
            out = json.loads(p.stdout)
    rss = {int(k): v for k, v in out["rss_kb"].items()}
    growth = (rss[plan.polls] - rss[1000]) / 1024
    rows.append(
        Row(
            "idle.growth",
            "RSS over %s polls (Watcher.poll_once)" % "{:,}".format(plan.polls),
            ", ".join("%s: %.1f MB" % ("{:,}".format(k), v / 1024) for k, v in sorted(rss.items()))
            + "; growth 1k->%dk %+.2f MB" % (plan.polls // 1000, growth),
            "no growth (< 1 MB)",
            growth < 1.0,
            data={"rss_kb": rss, "seconds": out["seconds"], "growth_mb": growth},
        )
    )
    return rows


def count_polls(chain: Any) -> int:
    """Polls of the watcher: each asks the token balance (the height only now and then)."""
    return sum(1 for r in list(chain.requests) if r.path.startswith("/assets/balance/"))


# --- 9. A class behind one IP, and requests by route ----------------------------------------

CLASS_SIZES = (1, 10, 30)
HARNESS_NODE_KEYS = ("node.poll_interval", "node.list_rate", "node.sweep_interval", "node.timeout")


def route_name(path: str) -> str:
    """A request path as a route: ids, addresses and numbers replaced by placeholders."""
    import re

    path = re.sub(r"served_[1-9A-HJ-NP-Za-km-z]{32,50}", "served_{id}", path)
    path = re.sub(r"/[1-9A-HJ-NP-Za-km-z]{32,50}", "/{id}", path)
    path = re.sub(r"/(at|limit)/\d+", r"/\1/{n}", path)
    return path


def pool_chain(block_interval: float = 60.0, strict: bool = False) -> Any:
    """A fake node behind the public pool's per-IP limits and cache (fakenode.Pool), a block every
    block_interval s. strict: the stricter reading of the pool's page (429 at once beyond the burst,
    nginx's nodelay; every 20 r/s route in one shared zone)."""
    import threading

    from fakenode import Pool

    chain = start_chain("T", pool=Pool(shared_zone=True, nodelay=True) if strict else Pool())
    chain.bench_stop = threading.Event()

    def mine() -> None:
        while not chain.bench_stop.wait(block_interval):
            chain.mine()

    threading.Thread(target=mine, daemon=True).start()
    return chain


def start_class(chain: Any, work: Path, n: int, daemon: Optional[str]) -> List[Device]:
    devices = []
    for i in range(n):
        d = Device(
            work / ("dev%02d" % i),
            chain.url,
            chain.asset,
            seed="iotlight bench class device %d, throwaway" % i,
        )
        for key in HARNESS_NODE_KEYS:
            d.settings.pop(key)  # the daemon's own defaults, not the test harness's faster ones
        if daemon:
            d.command = [sys.executable, daemon]
        chain.fund(d.address, waves=10**9)
        devices.append(d)
    for d in devices:
        d.start(ready=False)
    wait_until(
        lambda: all("running: address" in d.output() or not d.alive() for d in devices),
        180,
        interval=0.2,
        what="%d daemons to start" % n,
    )
    dead = [d for d in devices if not d.alive()]
    if dead:
        raise RuntimeError("a daemon exited early:\n" + dead[0].output())
    return devices


def class_round(
    chain: Any,
    work: Path,
    n: int,
    seconds: float,
    gap: float,
    daemon: Optional[str] = None,
    settle: float = 20.0,
    drain: float = 90.0,
) -> Dict[str, Any]:
    """n daemons behind one pool IP; a payment to a random device every `gap` s for `seconds` (none
    when gap is 0); latency payment -> credit, 429/503s, requests by route, CPU and memory."""
    rng = random.Random(n)
    devices = start_class(chain, work, n, daemon)
    try:
        time.sleep(settle)  # past the start-up reads
        mark = len(chain.requests)
        counts0 = dict(chain.pool.counts)
        cpu0 = {d.address: proc_cpu_seconds(d.proc.pid) for d in devices}
        t0 = time.monotonic()
        paid: Dict[str, Dict[str, float]] = {d.address: {} for d in devices}
        next_pay = t0 + (rng.uniform(0, gap) if gap else seconds + 1)
        while time.monotonic() - t0 < seconds:
            if time.monotonic() >= next_pay:
                d = rng.choice(devices)
                txid = chain.transfer(chain.treasury, d.address, PAYMENT_UNITS, asset_id=chain.asset)["id"]
                paid[d.address][txid] = time.time()
                next_pay += gap
            time.sleep(0.05)
        window = time.monotonic() - t0
        cpu = [proc_cpu_seconds(d.proc.pid) - cpu0[d.address] for d in devices]
        rss = [proc_rss_kb(d.proc.pid) for d in devices]
        requests = list(chain.requests[mark:])
        counts = dict(chain.pool.counts)
        deadline = time.monotonic() + drain
        while True:
            got = {d.address: dict(query(d, "SELECT id, credited_ms FROM payments")) for d in devices}
            missing = sum(1 for a, ps in paid.items() for i in ps if i not in got[a])
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        lat = [got[a][i] / 1000 - t for a, ps in paid.items() for i, t in ps.items() if i in got[a]]
        extra = sum(len(set(got[a]) - set(paid[a])) for a in paid)  # credited, never paid in this round
        n_paid = sum(len(ps) for ps in paid.values())
    finally:
        for d in devices:
            d.stop()
    by_route: Dict[str, int] = {}
    for r in requests:
        by_route[route_name(r.path)] = by_route.get(route_name(r.path), 0) + 1
    refused = {"%s %s" % k: v - counts0.get(k, 0) for k, v in counts.items() if k[1] in ("429", "503")}
    return {
        "n": n,
        "window_s": window,
        "payments": n_paid,
        "credited": len(lat),
        "missing": missing,
        "extra": extra,
        "latency_s": lat,
        "requests": len(requests),
        "by_route": by_route,
        "refused": {k: v for k, v in refused.items() if v},
        "cpu_s": cpu,
        "rss_kb": rss,
    }


def bench_classroom(
    plan: Plan, work: Path, minutes: float, sizes: Sequence[int] = CLASS_SIZES, daemon: Optional[str] = None
) -> List[Row]:
    """9. N daemons (default settings, backend none, monitor off) behind the public pool's per-IP
    limits as ONE IP; a payment to a random device every 2 s."""
    rows = []
    for n in sizes:
        say("classroom: %d daemon(s) behind one pool IP, paying for %.1f min", n, minutes)
        chain = pool_chain()
        try:
            r = class_round(chain, work / ("class%d" % n), n, minutes * 60, 2.0, daemon)
        finally:
            chain.bench_stop.set()
            chain.stop()
        lat = r["latency_s"]
        per_dev_min = r["requests"] / n / (r["window_s"] / 60)
        cpu_h = statistics.mean(r["cpu_s"]) / r["window_s"] * 3600
        say("  %s", json.dumps({k: v for k, v in r.items() if k != "latency_s"}))
        rows.append(
            Row(
                "classroom.%d" % n,
                "Class of %d behind one IP (pool limits), a payment every 2 s" % n,
                "%s; %.0f requests per device-minute; %.1f CPU-s/h and %.1f MB RSS per daemon"
                % (round_text(r), per_dev_min, cpu_h, statistics.mean(r["rss_kb"]) / 1024),
                "all credited once, p95 < 5 s",
                bool(lat) and not r["missing"] and not r["extra"] and percentile(lat, 95) < 5.0,
                data=r,
            )
        )
    return rows


def round_text(r: Dict[str, Any]) -> str:
    """A class round's latency, credits and refusals, as the classroom and together rows print them."""
    lat = r["latency_s"]
    return (
        "payment->credit median %s, p95 %s; %d/%d credited once (%d missing, %d extra); %d x 429/503 (%s)"
        % (
            ms(statistics.median(lat)) if lat else "-",
            ms(percentile(lat, 95)) if lat else "-",
            r["credited"],
            r["payments"],
            r["missing"],
            r["extra"],
            sum(r["refused"].values()),
            ", ".join("%s %d" % kv for kv in sorted(r["refused"].items())) or "none",
        )
    )


def bench_together(plan: Plan, work: Path, runs: int, n: int = 30, daemon: Optional[str] = None) -> List[Row]:
    """9. A class switched on together: n daemons started at once behind the strict pool (429 at
    once beyond the burst, one zone for every 20 r/s route), 40 payments (one every 2 s) from the
    moment all report ready; `runs` times, each on a fresh chain and fresh devices."""
    rows = []
    for run in range(1, runs + 1):
        say("together: %d daemons switched on at once behind the strict pool, run %d of %d", n, run, runs)
        chain = pool_chain(strict=True)
        try:
            r = class_round(chain, work / ("together%d" % run), n, 80.0, 2.0, daemon, settle=0.0)
        finally:
            chain.bench_stop.set()
            chain.stop()
        lat = r["latency_s"]
        say("  %s", json.dumps({k: v for k, v in r.items() if k != "latency_s"}))
        rows.append(
            Row(
                "together.%d" % run,
                "%d switched on together (strict pool), run %d" % (n, run),
                round_text(r),
                "all credited once, p95 < 5 s",
                bool(lat) and not r["missing"] and not r["extra"] and percentile(lat, 95) < 5.0,
                data=r,
            )
        )
    return rows


def bench_requests(plan: Plan, work: Path, minutes: float, daemon: Optional[str] = None) -> List[Row]:
    """10. Requests per device-hour by route at default settings, idle and with a payment a minute."""
    rows = []
    for label, gap in (("idle", 0.0), ("a payment a minute", 60.0)):
        say("requests: one daemon, %s, %.1f min", label, minutes)
        chain = pool_chain()
        try:
            r = class_round(chain, work / ("req-%d" % gap), 1, minutes * 60, gap, daemon, drain=30.0)
        finally:
            chain.bench_stop.set()
            chain.stop()
        hours = r["window_s"] / 3600
        routes = sorted(r["by_route"].items(), key=lambda kv: -kv[1])
        say("  %s", json.dumps({k: v for k, v in r.items() if k != "latency_s"}))
        rows.append(
            Row(
                "requests.%s" % ("idle" if not gap else "pay"),
                "Requests per device-hour, %s" % label,
                "%.0f in all: %s"
                % (r["requests"] / hours, "; ".join("%s %.0f" % (k, v / hours) for k, v in routes)),
                data=r,
            )
        )
    return rows


def bench_joystick(plan: Plan, work: Path) -> List[Row]:
    """5. Joystick press on the emulator -> the POST /transactions/broadcast carrying it reaches the node."""
    return with_emulator(lambda hat: joystick_rows(plan, work, hat))


def joystick_rows(plan: Plan, work: Path, hat: Any) -> List[Row]:
    n = plan.presses
    folder = Path(tempfile.mkdtemp(prefix="joystick-", dir=str(work)))
    with (
        fake_chain() as chain,
        device_on(
            chain,
            folder,
            hardware__backend="sense-emu",
            data__coalesce_window=0.0,
            data__max_tx_per_minute=120,
            node__poll_interval=1.0,
        ) as dev,
    ):
        dev.start()
        if not hat.wait_for_stick_client(20):
            raise RuntimeError("the daemon never connected to the emulator's joystick")
        time.sleep(0.5)
        say("joystick: %d presses 1.2 s apart", n)
        pressed: Dict[int, float] = {}
        for i in range(1, n + 1):
            pressed[i] = hat.press("up")
            time.sleep(0.05)
            hat.press("up", "released")
            time.sleep(1.15)

        def arrivals() -> Optional[Dict[int, float]]:
            got: Dict[int, float] = {}
            posts = [
                r for r in list(chain.requests) if r.path == "/transactions/broadcast" and r.method == "POST"
            ]
            casts = list(chain.broadcasts)
            for k, b in enumerate(casts):
                body = b.body if isinstance(b.body, dict) else {}
                # the POST's arrival (its request read), paired in order with its outcome: the
                # daemon posts one broadcast at a time
                t = posts[k].time if len(posts) >= len(casts) else b.time
                for e in body.get("data") or ():
                    key = e.get("key", "")
                    if key.startswith("joystick_") and key != "joystick_count":
                        got.setdefault(int(key.split("_")[1]), t)
            return got if len(got) >= n else None

        got = wait_until(arrivals, 60, interval=0.1, what="%d presses to be broadcast" % n)
    lat = [got[i] - pressed[i] for i in range(1, n + 1)]
    med = statistics.median(lat)
    return [
        Row(
            "joystick",
            "Joystick press -> broadcast POST at the node",
            "median %s, p95 %s (n=%d)" % (ms(med), ms(percentile(lat, 95)), n),
            "median < 50 ms",
            med < 0.050,
            data={"median_s": med, "p95_s": percentile(lat, 95), "samples_s": lat},
        )
    ]


def make_monitor(snapshot: Callable[[], Dict[str, Any]], clients: int) -> Any:
    # every client runs in one worker process on 127.0.0.1: lift the per-address cap with the total
    return iotlight.Monitor(
        host="127.0.0.1",
        port=0,
        token="",
        snapshot=snapshot,
        max_clients=clients + 10,
        max_clients_per_address=clients + 10,
    )


async def fanout_round(clients: int, events: int, spacing: float) -> Dict[str, Any]:
    pixels = [[255, 255, 255]] * 64
    snapshot = {
        "address": iotlight.keypair_from_seed(BENCH_SEED).address("T"),
        "matrix": pixels,
        "light": {"on": False, "remaining": 0, "until": None},
    }
    monitor = make_monitor(lambda: snapshot, clients)
    await monitor.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "ws-clients",
        "ws://127.0.0.1:%d/" % monitor.port,
        str(clients),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while monitor.client_count < clients:
            if proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "only %d of %d WebSocket clients connected" % (monitor.client_count, clients)
                )
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # every client has read its state message
        for seq in range(events):
            monitor.publish({"type": "matrix", "pixels": pixels, "bench_seq": seq, "bench_sent": time.time()})
            await asyncio.sleep(spacing)
        monitor.publish({"type": "bench_end"})
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        if proc.returncode != 0:
            raise RuntimeError(
                "the WebSocket clients failed: %s" % (err.decode().strip().splitlines() or ["?"])[-1]
            )
        return json.loads(out)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await monitor.close()


def bench_fanout(plan: Plan) -> List[Row]:
    """6. One monitor event -> received by each of 200 WebSocket clients (clients in another process)."""
    p50s, p99s, maxes, lasts = [], [], [], []
    for r in range(plan.fanout_rounds):
        say("fan-out: round %d, %d clients, %d events", r + 1, plan.fanout_clients, plan.fanout_events)
        got = asyncio.run(fanout_round(plan.fanout_clients, plan.fanout_events, 0.05))
        samples = [lat for per in got["latencies"] for _, lat in per]
        expected = plan.fanout_clients * plan.fanout_events
        if len(samples) != expected:
            raise RuntimeError("%d of %d event deliveries arrived" % (len(samples), expected))
        by_event: Dict[int, float] = {}
        for per in got["latencies"]:
            for seq, lat in per:
                by_event[seq] = max(by_event.get(seq, 0.0), lat)
        p50s.append(statistics.median(samples))
        p99s.append(percentile(samples, 99))
        maxes.append(max(samples))
        lasts.append(statistics.median(by_event.values()))
    p50, p99 = statistics.median(p50s), statistics.median(p99s)
    return [
        Row(
            "fanout",
            "Monitor event -> %d WebSocket clients" % plan.fanout_clients,
            "p50 %s, p99 %s, last client median %s (%d rounds x %d events)"
            % (ms(p50), ms(p99), ms(statistics.median(lasts)), plan.fanout_rounds, plan.fanout_events),
            "p99 < 50 ms",
            p99 < 0.050,
            data={
                "p50_s": p50s,
                "p99_s": p99s,
                "max_s": maxes,
                "last_client_median_s": lasts,
                "clients": plan.fanout_clients,
                "events": plan.fanout_events,
            },
        )
    ]


def bench_startup(plan: Plan, work: Path) -> List[Row]:
    """7. Spawn -> READY=1 on a NOTIFY_SOCKET the benchmark binds."""
    times = []
    with fake_chain() as chain, device_on(chain, work / "startup", node__poll_interval=1.0) as dev:
        dev.configure(monitor__port=free_port())
        sock_path = str(work / "notify.sock")
        for _ in range(plan.startups):
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.bind(sock_path)
                s.settimeout(60)
                t0 = time.monotonic()
                dev.start(ready=False, env={"NOTIFY_SOCKET": sock_path})
                try:
                    while True:
                        msg = s.recv(4096)
                        if b"READY=1" in msg.split(b"\n"):
                            break
                except socket.timeout:
                    raise RuntimeError("no READY=1 within 60 s:\n" + dev.output()[-2000:]) from None
                times.append(time.monotonic() - t0)
                dev.stop()
            os.unlink(sock_path)
    med = statistics.median(times)
    return [
        Row(
            "startup",
            "Start-up: spawn -> READY=1 (sd_notify)",
            "median %s (n=%d, min %s, max %s)" % (ms(med), len(times), ms(min(times)), ms(max(times))),
            data={"samples_s": times, "monitor_on": True},
        )
    ]


# =============================================================================
# 3. The table
# =============================================================================


def render(
    machine: Dict[str, Any], rows: List[Row], plan: Plan, runtime: int, sysbench: Optional[Dict[str, float]]
) -> str:
    lines = ["### iotlight %s benchmark%s" % (machine["iotlight"], " (--quick)" if plan.quick else ""), ""]
    lines.append(
        "Machine: %s (family %s, %s MHz), %d cores, %s %s, %s. Run time %dm%02ds; load average %s "
        "before the run."
        % (
            machine["cpu"],
            machine.get("cpu_family", "?"),
            machine.get("cpu_mhz", "?"),
            machine["cores"],
            machine["implementation"],
            machine["python"],
            machine["system"],
            runtime // 60,
            runtime % 60,
            "/".join("%.2f" % x for x in machine.get("load_before", ())),
        )
    )
    lines += ["", "| # | Figure | Measured | Target | Result |", "|---|---|---|---|---|"]
    number = {
        "crypto": 1,
        "light": 2,
        "catchup": 3,
        "idle": 4,
        "joystick": 5,
        "fanout": 6,
        "startup": 7,
        "pywaves": 8,
        "estimate": 8,
        "classroom": 9,
        "together": 9,
        "requests": 10,
    }
    for row in rows:
        n = number.get(row.key.split(".")[0], "")
        lines.append(
            "| %s | %s | %s | %s | %s |"
            % (n, row.figure, row.measured.replace("|", "/"), row.target, row.result)
        )
    lines += ["", "Notes:", ""]
    lines += ["%d. %s" % (i, n) for i, n in enumerate(notes(rows, plan, sysbench), 1)]
    return "\n".join(lines) + "\n"


def notes(rows: List[Row], plan: Plan, sysbench: Optional[Dict[str, float]]) -> List[str]:
    keys = {r.key.split(".")[0] for r in rows}
    out = []
    if "crypto" in keys:
        out.append(
            "Crypto: one thread in the benchmark process, median of 3 runs of %.1f s each. Sign/verify use "
            "libsodium through PyNaCl; the seed hash (Keccak-256) is pycryptodome. The Data transaction "
            "is a joystick press (joystick_1 + joystick_count), fee computed, proof signed."
            % plan.crypto_seconds
        )
    if "light" in keys:
        out.append(
            'Payment -> light: the real daemon (subprocess, hardware.backend = "sense-emu") against the fake '
            "node; t0 is taken right after the signed transfer enters the node's liquid block, the end when "
            "the emulator's screen file first shows a lit frame (read every 1 ms). Payments of 0.3 s of light, "
            "each after the lamp went dark again, at a random phase against the poll cycle. "
            "node.list_rate = 0 (unlimited, as against an own node): on the public pool the address "
            "transaction list is limited (17 reads a minute), the daemon then reads it at most "
            "node.list_rate times a minute and a payment can wait for the next allowed read."
        )
    if "catchup" in keys:
        out.append(
            "Catch-up: the payments were made on the fake node while the daemon was stopped (after one "
            "start that fixed the history horizon), 500 per block; the state file is restored before each "
            "round. The end is the payments' credited_ms in the state file; \"first poll\" is the daemon's "
            "first request to the node. It includes the fake node's time to serve the address's transactions "
            "(11 pages), in the benchmark process on the same 2 cores."
        )
    if "idle" in keys:
        out.append(
            "Idle: CPU = utime + stime from /proc/PID/stat over %.0f s of the real daemon polling an "
            "idle fake node every 1.0 s (backend none, monitor off), started as the systemd unit starts it "
            "(python -m iotlight, from compiled bytecode), scaled to an hour; VmRSS from "
            "/proc/PID/status. The RSS growth row runs Watcher.poll_once %s times back to back in a separate "
            "process (the fake node stays in the benchmark process, so its request log does not count) and "
            "reads that process's VmRSS at the marks shown." % (plan.idle_seconds, "{:,}".format(plan.polls))
        )
    if "joystick" in keys:
        out.append(
            "Joystick: the emulator's stick socket sends the press; the end is the arrival of the POST "
            "/transactions/broadcast carrying joystick_<n> at the fake node (request read, before the node "
            "validates it). data.coalesce_window = 0 and data.max_tx_per_minute = 120 (the default 20 a "
            "minute would hold back presses 1.2 s apart after a burst of 5)."
        )
    if "fanout" in keys:
        out.append(
            "Fan-out: iotlight.Monitor in the benchmark process (port 0, max_clients raised to fit), %d "
            "clients (websockets) in ONE separate process so their work does not slow the server's loop; "
            "%d matrix events (~1 KB each) 50 ms apart, each stamped with time.time() just before "
            'publish(); latency = receive time in the client process minus that stamp. "last client" is '
            "the time until the slowest of the %d got an event. Note the daemon's own monitor accepts 100 "
            "clients by default." % (plan.fanout_clients, plan.fanout_events, plan.fanout_clients)
        )
    if "startup" in keys:
        out.append(
            "Start-up: from Popen of `python iotlight.py -c CFG -v run` to READY=1 on a unix datagram socket "
            "the benchmark binds as NOTIFY_SOCKET (backend none%s); includes the interpreter start and "
            "imports. No figure was asked for." % ", monitor on"
        )
    if "pywaves" in keys:
        out.append(
            "pywaves-ce: installed only into %s (pip install %s), timed there on the same seed and message "
            "(Address(seed=...) offline; pywaves_curve25519.calculateSignature and verifySignature on raw bytes, as iotlight.sign/verify; crypto.sign, which adds base58 around it, is in the JSON). "
            "Ratio > 1: iotlight is faster. pywaves hashes Keccak-256 in pure Python, which dominates its "
            "address derivation." % (PYWAVES_VENV, PYWAVES_PACKAGE)
        )
    if "estimate" in keys:
        text = (
            "Pi estimates are NOT measurements: the crypto figures divided by an assumed single-core slowdown, "
            "Pi 4 (Cortex-A72, 1.5-1.8 GHz) %g-%gx and Zero 2 W (Cortex-A53, 1.0 GHz) %g-%gx against this x86 "
            "core. A lower bound comes from sysbench 1.0.20 cpu --threads=1 as published on "
            "leoncode.co.uk/articles/raspberry-pi-benchmarks (Pi 4 1478 events/s; Pi 3B+ 687, whose A53 "
            "core the Zero 2 W has at 1.0 instead of 1.4 GHz, so about 491)" % (PI4_FACTOR + ZERO2_FACTOR)
        )
        if sysbench:
            text += "; this machine scores %.0f, i.e. %.1fx a Pi 4 and %.1fx a Zero 2 W" % (
                sysbench["events_per_s"],
                sysbench["pi4"],
                sysbench["zero2"],
            )
        text += (
            ". Interpreter-bound Python code loses more than that integer loop on in-order, small-cache ARM "
            "cores, hence the wider factors. Measure on the board to replace them."
        )
        out.append(text)
    return out


# =============================================================================
# 4. Worker processes
# =============================================================================


async def _worker_polls(config_path: str, marks: List[int]) -> Dict[str, Any]:
    """Watcher.poll_once back to back against the node of the configuration; VmRSS at the marks."""
    config = iotlight.load_config(config_path)
    address = iotlight.device_keys(config).address(config.chain_id)
    clock = iotlight.Clock()
    store = iotlight.Store(config.state_file, clock)
    node = iotlight.NodeClient(
        config.node_urls, timeout=config.timeout, chain_id=config.chain_id, clock=clock
    )
    watcher = iotlight.Watcher(
        config,
        address,
        node=node,
        store=store,
        clock=clock,
        tell=lambda kind, **fields: None,
        light_span=lambda: (time.time(), time.time()),
    )
    await watcher.learn()  # what the daemon's learn loop does beside the polls
    rss: Dict[int, int] = {}
    start = time.monotonic()
    try:
        for i in range(1, max(marks) + 1):
            await watcher.poll_once()
            if i in marks:
                rss[i] = proc_rss_kb()
    finally:
        await node.aclose()
        store.close()
    return {"rss_kb": rss, "seconds": time.monotonic() - start}


async def _worker_ws_clients(url: str, n: int) -> Dict[str, Any]:
    """n WebSocket clients; each records (seq, receive time - bench_sent) until bench_end."""
    from websockets.asyncio.client import connect

    latencies: List[List[Any]] = [[] for _ in range(n)]
    gate = asyncio.Semaphore(20)

    async def client(i: int) -> None:
        async with gate:
            ws = await connect(url, max_size=None, ping_interval=None, open_timeout=60)
        async with ws:
            async for raw in ws:
                now = time.time()
                msg = json.loads(raw)
                if "bench_sent" in msg:
                    latencies[i].append((msg["bench_seq"], now - msg["bench_sent"]))
                elif msg.get("type") == "bench_end":
                    return

    await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(n))), 600)
    return {"latencies": latencies}


# A timing script run inside the pywaves-ce venv: JSON job on stdin, JSON rates on stdout.
PYWAVES_SCRIPT = r"""
import json, os, statistics, sys, time
from importlib.metadata import version
job = json.load(sys.stdin)
import pywaves as pw
import pywaves.crypto as crypto
import pywaves_curve25519 as curve
pw.setOffline()
pw.setChain("testnet")

def rate(fn, seconds):
    for _ in range(3):
        fn()
    out = []
    for _ in range(3):
        n, batch, start = 0, 1, time.perf_counter()
        while True:
            for _ in range(batch):
                fn()
            n += batch
            el = time.perf_counter() - start
            if el >= seconds:
                break
            batch = min(batch * 2, 1000)
        out.append(n / el)
    return statistics.median(out)

msg = bytes.fromhex(job["message"])
priv, pub = bytes.fromhex(job["private_key"]), bytes.fromhex(job["public_key"])
ours = bytes.fromhex(job["signature"])
a = pw.Address(seed=job["seed"])
priv_b58 = a.privateKey
sec = job["seconds"]
print(json.dumps({
    "version": version("pywaves-ce"),
    "address": a.address,
    "signature": curve.calculateSignature(os.urandom(64), priv, msg).hex(),
    "verifies_ours": curve.verifySignature(pub, msg, ours) == 0,
    "address_per_s": rate(lambda: pw.Address(seed=job["seed"]).address, sec),
    "sign_per_s": rate(lambda: curve.calculateSignature(os.urandom(64), priv, msg), sec),
    "b58_sign_per_s": rate(lambda: crypto.sign(priv_b58, msg), sec),
    "verify_per_s": rate(lambda: curve.verifySignature(pub, msg, ours), sec),
}))
"""


def run_worker(argv: List[str]) -> int:
    kind, args = argv[0], argv[1:]
    if kind == "polls":
        result = asyncio.run(_worker_polls(args[0], [int(x) for x in args[1].split(",")]))
    elif kind == "ws-clients":
        result = asyncio.run(_worker_ws_clients(args[0], int(args[1])))
    else:
        print("bench.py: unknown worker %r" % kind, file=sys.stderr)
        return 2
    json.dump(result, sys.stdout)
    return 0


# =============================================================================
# 5. main()
# =============================================================================

SECTIONS = (
    "crypto",
    "pywaves",
    "startup",
    "light",
    "joystick",
    "catchup",
    "idle",
    "fanout",
    "classroom",
    "together",
    "requests",
)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        return run_worker(argv[1:])
    parser = argparse.ArgumentParser(
        prog="bench.py", description="Measure iotlight; print one Markdown table."
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples: about 2 minutes instead of 6-7")
    parser.add_argument("--json", metavar="PATH", help="also write every number to PATH as JSON")
    parser.add_argument("--only", metavar="LIST", help="comma-separated sections: %s" % ",".join(SECTIONS))
    parser.add_argument(
        "--pywaves-venv",
        default=PYWAVES_VENV,
        metavar="DIR",
        help="venv for pywaves-ce, created if missing (default %(default)s)",
    )
    parser.add_argument(
        "--class-minutes",
        type=float,
        default=3.0,
        metavar="MIN",
        help="how long the classroom rows pay devices (default %(default)s)",
    )
    parser.add_argument(
        "--class-sizes",
        default=",".join(map(str, CLASS_SIZES)),
        metavar="LIST",
        help="class sizes for the classroom rows (default %(default)s)",
    )
    parser.add_argument(
        "--together-runs",
        type=int,
        default=3,
        metavar="N",
        help="how many times the 'switched on together' row runs (default %(default)s)",
    )
    parser.add_argument(
        "--requests-minutes",
        type=float,
        default=4.0,
        metavar="MIN",
        help="how long each requests-by-route row runs (default %(default)s)",
    )
    parser.add_argument(
        "--daemon",
        metavar="PATH",
        help="classroom/requests rows: run this iotlight.py instead (a before/after comparison)",
    )
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else set(SECTIONS) - {"classroom", "together", "requests"}
    unknown = only - set(SECTIONS)
    if unknown:
        parser.error(
            "unknown section(s) %s: choose from %s" % (",".join(sorted(unknown)), ",".join(SECTIONS))
        )
    logging.basicConfig(
        level=logging.INFO, format="[bench %(asctime)s] %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    logging.getLogger("iotlight.fakenode").setLevel(logging.WARNING)
    logging.getLogger("iotlight.monitor").setLevel(logging.WARNING)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    plan = Plan.make(args.quick)
    machine = machine_info()
    started = time.monotonic()
    rows: List[Row] = []
    crypto: Dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="iotlight-bench-") as tmp:
        work = Path(tmp)

        def section(name: str, fn: Callable[[], List[Row]]) -> None:
            if name not in only:
                return
            t = time.monotonic()
            try:
                rows.extend(fn())
            except Skip as e:
                rows.append(Row(name, name, "n/a: %s" % e, status="n/a"))
            except Exception as e:  # one broken figure must not lose the others
                log.exception("%s failed", name)
                rows.append(Row(name, name, "error: %s" % str(e).splitlines()[0][:200], status="ERROR"))
            say("%s took %.0f s", name, time.monotonic() - t)

        section("crypto", lambda: bench_crypto(plan, crypto))
        section("light", lambda: bench_light(plan, work))
        section("catchup", lambda: bench_catchup(plan, work))
        section("idle", lambda: bench_idle(plan, work))
        section("joystick", lambda: bench_joystick(plan, work))
        section("fanout", lambda: bench_fanout(plan))
        section("startup", lambda: bench_startup(plan, work))
        section("pywaves", lambda: bench_pywaves(plan, crypto, args.pywaves_venv) + pi_estimates(crypto))
        section(
            "classroom",
            lambda: bench_classroom(
                plan, work, args.class_minutes, [int(x) for x in args.class_sizes.split(",")], args.daemon
            ),
        )
        section("together", lambda: bench_together(plan, work, args.together_runs, daemon=args.daemon))
        section("requests", lambda: bench_requests(plan, work, args.requests_minutes, args.daemon))
    sysbench = sysbench_ratio() if "pywaves" in only and crypto else None
    runtime = int(time.monotonic() - started)
    sys.stdout.write(render(machine, rows, plan, runtime, sysbench))
    if args.json:
        clean = {k: v for k, v in crypto.items() if isinstance(v, float)}
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": machine,
                    "quick": plan.quick,
                    "plan": dataclasses.asdict(plan),
                    "runtime_s": runtime,
                    "sysbench": sysbench,
                    "crypto_per_second": clean,
                    "rows": [
                        dict(
                            key=r.key,
                            figure=r.figure,
                            measured=r.measured,
                            target=r.target,
                            result=r.result,
                            data=r.data,
                        )
                        for r in rows
                    ],
                },
                indent=2,
                default=str,
            )
            + "\n"
        )
        say("wrote %s", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
