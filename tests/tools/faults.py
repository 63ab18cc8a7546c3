#!/usr/bin/env python3
"""Fault campaign: the real daemon under SIGKILL, node chaos, a damaged state file, clock
jumps, hostile monitor clients, a full disk, a short systemd watchdog, a lying node and a hostile
network (a node of another network, a hidden payment, dense answers, a flood, a counterfeit token,
a glitching alias). Prints a Markdown table; exit 1 when any case lost or doubled a payment or a
press (or crashed), 0 otherwise.

    python tests/tools/faults.py [--quick] [--only CASE[,CASE]] [--seed N]

CASE: sigkill, chaos, corrupt, clock, monitor, disk, watchdog, hostile, network (or 1-9). The default
run takes about 20 minutes on a 2-core machine, --quick about 8. Not a pytest module (nothing here is
collected); the bugs it found have regression tests in tests/test_regressions.py.

Everything stays on 127.0.0.1 and in a temporary folder; daemons, the fake node, the
emulator's files, mounts and folders are cleaned up on any exit (try/finally and atexit).
Needs: root for the tmpfs of the full-disk case, the `faketime` package (libfaketime) for
the clock case; a case whose tool is missing is reported as skipped, not passed.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import contextlib
import dataclasses
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

TESTS = Path(__file__).resolve().parent.parent
for _p in (str(TESTS.parent), str(TESTS), str(TESTS / "tools")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from emulator import EmulatedHat  # noqa: E402
from harness import (  # noqa: E402
    Device,
    credited,
    free_port,
    light_until,
    read_state,
    start_chain,
    wait_until,
)

import iotlight  # noqa: E402

DIRECTIONS = ("up", "down", "left", "right", "middle")
FAKETIME_LIBS = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/arm-linux-gnueabihf/faketime/libfaketime.so.1",
)
CASES = ("sigkill", "chaos", "corrupt", "clock", "monitor", "disk", "watchdog", "hostile", "network")


# =============================================================================
# Outcome of a case, cleanup
# =============================================================================


@dataclasses.dataclass
class Outcome:
    case: str
    runs: int = 0  # daemon processes started
    failures: int = 0  # things lost, doubled, crashed
    figures: List[str] = dataclasses.field(default_factory=list)
    problems: List[str] = dataclasses.field(default_factory=list)
    notes: List[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    skipped: Optional[str] = None

    def fail(self, what: str, n: int = 1) -> None:
        self.failures += n
        self.problems.append(what)

    def check(self, ok: bool, what: str, n: int = 1) -> bool:
        if not ok:
            self.fail(what, n)
        return ok


_stacks: List[contextlib.ExitStack] = []


def _close_all() -> None:
    while _stacks:
        with contextlib.suppress(Exception):
            _stacks.pop().close()


atexit.register(_close_all)


def _on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def new_stack() -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    _stacks.append(stack)
    return stack


def temp_dir(stack: contextlib.ExitStack, name: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="iotlight-faults-%s-" % name))
    if os.environ.get("IOTLIGHT_FAULTS_KEEP"):
        print("    (keeping %s)" % path, flush=True)
    else:
        stack.callback(shutil.rmtree, str(path), True)
    return path


def stop_quietly(device: Device) -> None:
    if device.alive():
        with contextlib.suppress(Exception):
            device.stop()
    if device.alive():
        with contextlib.suppress(Exception):
            device.kill(signal.SIGKILL)


# =============================================================================
# The device, the chain and what reached it
# =============================================================================


def make_device(stack: contextlib.ExitStack, folder: Path, chain: Any, name: str, **overrides: Any) -> Device:
    """A funded throwaway device (its own seed) whose daemon is stopped when the stack closes."""
    settings = dict(
        payment__max_seconds=10**6, data__max_tx_per_minute=60, light__countdown=False, node__timeout=2.0
    )
    settings.update(overrides)
    device = Device(
        folder,
        chain.url,
        chain.asset,
        seed="iotlight faults %s throwaway seed, never funded" % name,
        **settings,
    )
    chain.fund(device.address, waves=10**11)
    stack.callback(stop_quietly, device)
    return device


def open_hat(stack: contextlib.ExitStack, wait: float = 900.0) -> EmulatedHat:
    """The emulator (one per machine): waits while another test run holds its lock."""
    deadline = time.monotonic() + wait
    said = False
    while True:
        try:
            return stack.enter_context(EmulatedHat())
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            if not said:
                print("    (waiting for another test run to release the Sense HAT emulator)", flush=True)
                said = True
            time.sleep(1.0)


class Disturbed(Exception):
    """Another process took the emulator's fixed files in /dev/shm during the case (a parallel
    test run): its presses reach our daemon too, so the case is run again."""


def check_hat(hat: EmulatedHat) -> None:
    from sense_emu.lock import EmulatorLock
    from sense_emu.screen import screen_filename

    if not (EmulatorLock("sense_emu").mine and os.path.exists(screen_filename())):
        raise Disturbed("another process took the Sense HAT emulator during the case")


def chain_stop(chain: Any) -> None:
    with contextlib.suppress(Exception):
        chain.stop()


def open_chain(stack: contextlib.ExitStack) -> Any:
    """A started fake node, stopped when the stack closes."""
    chain = start_chain()
    stack.callback(chain_stop, chain)
    return chain


# The SIGKILL case refunds what the cap cuts: payments of 0.01-0.20 s arriving faster than the
# light burns keep the lamp at a 0.5 s cap, so most of them are cut and refunded. The chaos case
# refunds too, at a 30 s cap, with three payments of 45 s among the stream (each owes at least
# 15 s back); its watcher backs off up to 60 s under the faults and credits the stream in bursts,
# so more may be cut (a 10 s cap once owed 608 refunds for 947 payments). Each refund is a
# transaction of its own under the 2-a-second broadcast limit, so the settle window grows with
# the refunds owed (CHAOS_SETTLE).
REFUND_SETTINGS = {
    "sigkill": dict(payment__max_seconds=0.5, payment__refund="excess"),
    "chaos": dict(payment__max_seconds=30.0, payment__refund="excess"),
}
CHAOS_BIG = 4500  # units (45 s of light): over the chaos case's 30 s cap
CHAOS_SETTLE = (240.0, 0.75)  # seconds to settle after the chaos, plus this per refund owed


def streaming_setup(
    stack: contextlib.ExitStack, out: "Outcome", name: str
) -> Tuple[Any, EmulatedHat, Device]:
    """The chain, the emulator and a started device on it, for the streaming cases."""
    root = temp_dir(stack, name)
    chain = open_chain(stack)
    hat = open_hat(stack)
    device = make_device(
        stack, root / "device", chain, name, hardware__backend="sense-emu", **REFUND_SETTINGS.get(name, {})
    )
    device.start()
    out.runs += 1
    return chain, hat, device


def device_txs(chain: Any, device: Device, tx_type: int = 12) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """The device's transactions of `tx_type` (12 Data, 4 its refund transfers): "accepted" (every
    distinct one a broadcast got a 200 for, plus any in a block) and "on_chain" (in a block now),
    id -> node JSON."""
    pk = iotlight.b58encode(device.keys.public_key)
    accepted: Dict[str, Dict[str, Any]] = {}
    for b in list(chain.broadcasts):
        r = b.response
        if (
            b.status == 200
            and isinstance(r, dict)
            and r.get("type") == tx_type
            and r.get("senderPublicKey") == pk
        ):
            accepted[r["id"]] = r
    on_chain = {
        tx["id"]: tx
        for tx in chain.all_transactions()
        if tx["type"] == tx_type and tx["sender"] == device.address
    }
    accepted.update(on_chain)
    return {"accepted": accepted, "on_chain": on_chain}


def key_counts(txs: Dict[str, Dict[str, Any]], prefix: str) -> "collections.Counter[str]":
    return collections.Counter(
        e["key"]
        for tx in txs.values()
        for e in tx["data"]
        if e["key"].startswith(prefix) and e["key"] != "joystick_count"
    )


def press_entries(txs: Dict[str, Dict[str, Any]]) -> Dict[int, Dict[str, Any]]:
    out = {}
    for tx in txs.values():
        for e in tx["data"]:
            if e["key"].startswith("joystick_") and e["key"] != "joystick_count":
                out[int(e["key"].split("_")[1])] = json.loads(e["value"])
    return out


def state_file(device: Device) -> Path:
    return device.folder / "iotlight.db"


def db_query(device: Device, sql: str, default: Any = None) -> Any:
    try:
        return read_state(state_file(device), sql)
    except sqlite3.Error:
        return default


def outbox_idle(device: Device) -> bool:
    rows = db_query(
        device,
        "SELECT (SELECT COUNT(*) FROM events WHERE tx_id IS NULL) + "
        "(SELECT COUNT(*) FROM outbox WHERE status IN ('queued', 'broadcast'))",
    )
    return bool(rows) and rows[0][0] == 0


def press_ts(device: Device) -> set:
    rows = db_query(device, "SELECT entries FROM events WHERE kind = 'joystick'", [])
    return {json.loads(r[0])[0]["value"] and json.loads(json.loads(r[0])[0]["value"])["ts"] for r in rows}


def stored_press_count(device: Device) -> int:
    rows = db_query(device, "SELECT COUNT(*) FROM events WHERE kind = 'joystick'", [[0]])
    return rows[0][0]


def try_wait(predicate: Callable[[], Any], timeout: float, interval: float = 0.2) -> bool:
    try:
        wait_until(predicate, timeout, interval)
        return True
    except AssertionError:
        return False


def rss_kb(pid: int) -> Optional[int]:
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def log_count(device: Device, needle: str) -> int:
    return device.output(whole=True).count(needle)


# =============================================================================
# Streams: payments from the treasury, presses on the emulator's joystick
# =============================================================================


class PaymentStream(threading.Thread):
    """Transfers the token to the device at `rate` per second (into the liquid block, like a
    broadcast that the device does not see), mining a block every `mine_every` seconds."""

    def __init__(
        self,
        chain: Any,
        address: str,
        *,
        count: int,
        rate: float,
        mine_every: float,
        deadline: float,
        rng: random.Random,
        big: Sequence[Tuple[float, int]] = (),
    ):
        super().__init__(name="payments", daemon=True)
        self.chain, self.address, self.count, self.rate = chain, address, count, rate
        self.mine_every, self.deadline, self.rng = mine_every, deadline, rng
        self.big = sorted(big)  # (monotonic time, units): payments of that size once that time came
        self.sent: Dict[str, int] = {}
        self.stop = threading.Event()
        self.error: Optional[BaseException] = None
        self.lock = threading.Lock()

    def run(self) -> None:
        next_mine = time.monotonic() + self.mine_every
        try:
            for _ in range(self.count):
                if self.stop.is_set() or time.monotonic() > self.deadline:
                    break
                amount = 1 + self.rng.randrange(20)
                if self.big and time.monotonic() >= self.big[0][0]:
                    amount = self.big.pop(0)[1]
                tx = self.chain.transfer(self.chain.treasury, self.address, amount, asset_id=self.chain.asset)
                with self.lock:
                    self.sent[tx["id"]] = amount
                if time.monotonic() >= next_mine:
                    self.chain.mine()
                    next_mine = time.monotonic() + self.mine_every
                self.stop.wait(self.rng.uniform(0.5, 1.5) / self.rate)
        except BaseException as e:  # reported by the case
            self.error = e

    def snapshot(self) -> Dict[str, int]:
        with self.lock:
            return dict(self.sent)


class Presser(threading.Thread):
    """Presses the emulated joystick (press + release) while `live()` names a daemon pid whose
    stick client registered. A press counts as made only when the emulator's socket handed the
    event to that client; each made press has its own millisecond timestamp, so the entry on
    chain names the press it came from."""

    def __init__(
        self,
        hat: EmulatedHat,
        live: Callable[[], Optional[int]],
        *,
        count: int,
        interval: float,
        deadline: float,
        rng: random.Random,
    ):
        super().__init__(name="presser", daemon=True)
        self.hat, self.live, self.count, self.interval = hat, live, count, interval
        self.deadline, self.rng = deadline, rng
        self.made: List[Dict[str, Any]] = []  # ts_ms, direction, t (monotonic), pid
        self.refused = 0  # sent while the client was going away
        self.stop = threading.Event()
        self.error: Optional[BaseException] = None
        self._last_ms = 0

    def run(self) -> None:
        try:
            while len(self.made) < self.count and not self.stop.is_set() and time.monotonic() < self.deadline:
                pid = self.live()
                if pid is None or not self.hat.has_stick_client(pid):
                    self.stop.wait(0.02)
                    continue
                self._last_ms = max(int(time.time() * 1000), self._last_ms + 1)
                direction = DIRECTIONS[len(self.made) % 5]
                try:
                    self.hat.press(direction, "pressed", ts=self._last_ms / 1000)
                except OSError:
                    self.hat.delivered = []
                t = time.monotonic()
                name = "rpi-sense-emu-client-%d" % pid
                if any(isinstance(c, str) and os.path.basename(c) == name for c in self.hat.delivered):
                    self.made.append({"ts_ms": self._last_ms, "direction": direction, "t": t, "pid": pid})
                else:
                    self.refused += 1
                with contextlib.suppress(OSError):
                    self.hat.press(direction, "released", ts=self._last_ms / 1000)
                self.stop.wait(self.interval * self.rng.uniform(0.5, 1.5))
        except BaseException as e:
            self.error = e


class RssSampler(threading.Thread):
    def __init__(self, pid: Callable[[], Optional[int]], every: float = 3.0):
        super().__init__(name="rss", daemon=True)
        self.pid, self.every = pid, every
        self.samples: List[tuple] = []  # (monotonic, kB)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            pid = self.pid()
            kb = rss_kb(pid) if pid else None
            if kb:
                self.samples.append((time.monotonic(), kb))
            self.stop.wait(self.every)


# =============================================================================
# Checks shared by the streaming cases
# =============================================================================


def check_payments(out: Outcome, device: Device, chain: Any, sent: Dict[str, int]) -> None:
    got = credited(device)
    missing = [i for i in sent if i not in got]
    extra = [i for i in got if i not in sent]
    wrong = [i for i in sent if i in got and got[i] != sent[i]]
    if missing:
        where = collections.Counter()
        for i in missing:
            tx = chain.transaction(i)
            seen = db_query(device, "SELECT height FROM seen WHERE id = '%s'" % i, [])
            where[
                "%s, %s"
                % (
                    "in block %d" % tx["height"] if tx else "not in a block",
                    "marked seen at %s" % seen[0][0] if seen else "not seen",
                )
            ] += 1
        out.fail(
            "%d payment(s) never credited (%s), e.g. %s"
            % (len(missing), "; ".join("%d %s" % (n, w) for w, n in where.items()), missing[:2]),
            len(missing),
        )
    out.check(not extra, "%d credited payment(s) nobody sent" % len(extra), len(extra))
    out.check(not wrong, "%d payment(s) credited with another amount" % len(wrong), len(wrong))
    txs = device_txs(chain, device)
    on_chain = key_counts(txs["on_chain"], "served_")
    accepted = key_counts(txs["accepted"], "served_")
    no_receipt = [i for i in sent if on_chain["served_" + i] == 0]
    twice = [i for i in sent if accepted["served_" + i] > 1 or on_chain["served_" + i] > 1]
    strange = [k for k in accepted if k[len("served_") :] not in sent]
    out.check(
        not no_receipt, "%d payment(s) without their receipt on chain" % len(no_receipt), len(no_receipt)
    )
    out.check(
        not twice,
        "%d receipt(s) in two accepted Data transactions, e.g. %s" % (len(twice), twice[:2]),
        len(twice),
    )
    out.check(not strange, "%d receipt(s) for payments nobody sent" % len(strange), len(strange))
    out.figures.append("payments credited/expected %d/%d" % (len([i for i in sent if i in got]), len(sent)))
    out.figures.append(
        "receipts on chain once %d/%d"
        % (sum(1 for i in sent if on_chain["served_" + i] == 1 and accepted["served_" + i] == 1), len(sent))
    )


def check_refunds(out: Outcome, device: Device, chain: Any, sent: Dict[str, int]) -> None:
    """Refunds issued = refunds owed, none twice: each credited payment's owed refund is recomputed
    from what the state file says it granted (iotlight.refund_units); the chain must hold exactly
    one transfer back to the payer per payment owed one, of that amount, and no other transfer
    from the device; no transfer the node accepted may be left out of the state file's refunds."""
    decimals = 2
    granted = dict((r[0], r[1]) for r in db_query(device, "SELECT id, seconds FROM payments", []))
    rows = {r[0]: (r[1], r[2]) for r in db_query(device, "SELECT payment_id, tx_id, amount FROM refunds", [])}
    owed: Dict[str, int] = {}
    for pid, amount in sent.items():
        if pid not in granted:
            continue
        bought = iotlight.payment_seconds(amount, decimals, 1.0)
        units = iotlight.refund_units(amount, bought, max(0.0, bought - granted[pid]))
        if units:
            owed[pid] = units
    transfers = device_txs(chain, device, tx_type=4)
    accepted, on_chain = transfers["accepted"], transfers["on_chain"]
    by_tx = {tx_id: pid for pid, (tx_id, _) in rows.items()}
    wrong = [p for p in owed if rows.get(p, (None, None))[1] != owed[p]]
    extra = [p for p in rows if p not in owed]
    missing = [p for p in owed if p in rows and rows[p][0] not in on_chain]
    stray = [t for t in accepted if t not in by_tx]  # a transfer the state file does not own: a double
    payer = chain.treasury.address("T")
    bad = [
        t
        for t, tx in on_chain.items()
        if t in by_tx
        and (tx["amount"] != rows[by_tx[t]][1] or tx["recipient"].replace("address:", "") != payer)
    ]
    out.check(
        not wrong, "%d refund(s) of another amount than owed, e.g. %s" % (len(wrong), wrong[:2]), len(wrong)
    )
    out.check(not extra, "%d refund(s) for payments owed none" % len(extra), len(extra))
    out.check(
        not missing, "%d refund(s) owed but not on chain, e.g. %s" % (len(missing), missing[:2]), len(missing)
    )
    out.check(
        not stray,
        "%d transfer(s) from the device the state file does not know (sent twice?)" % len(stray),
        len(stray),
    )
    out.check(not bad, "%d refund transfer(s) with the wrong amount or recipient" % len(bad), len(bad))
    out.figures.append(
        "refunds on chain/owed %d/%d (%d units)"
        % (sum(1 for p in owed if p in rows and rows[p][0] in on_chain), len(owed), sum(owed.values()))
    )


def check_presses(
    out: Outcome,
    device: Device,
    chain: Any,
    made: List[Dict[str, Any]],
    kills: List[float] = (),
    in_flight_window: float = 2.0,
) -> None:
    """Each press made is on chain once as joystick_<n>, n = 1..N without a gap; a press lost
    with a SIGKILL right after it was handed to the daemon's socket is measured, not failed."""
    txs = device_txs(chain, device)
    counts = key_counts(txs["accepted"], "joystick_")
    entries = press_entries(txs["on_chain"])
    top = max(entries) if entries else 0
    gaps = [n for n in range(1, top + 1) if n not in entries]
    doubled = [k for k, c in counts.items() if c > 1]
    out.check(not gaps, "joystick numbers missing on chain: %s" % gaps[:10], len(gaps))
    out.check(not doubled, "press entries in two accepted Data transactions: %s" % doubled[:10], len(doubled))
    by_ts = collections.Counter(e["ts"] for e in entries.values())
    same = [ts for ts, c in by_ts.items() if c > 1]
    out.check(not same, "%d press(es) written under two numbers" % len(same), len(same))
    made_ts = {p["ts_ms"]: p for p in made}
    phantom = [n for n, e in entries.items() if e["ts"] not in made_ts]
    out.check(not phantom, "%d press entries on chain that no press made" % len(phantom), len(phantom))
    wrong_dir = [
        n
        for n, e in entries.items()
        if e["ts"] in made_ts and e["direction"] != made_ts[e["ts"]]["direction"]
    ]
    out.check(not wrong_dir, "%d press entries with the wrong direction" % len(wrong_dir), len(wrong_dir))
    on_chain_ts = set(by_ts)
    lost = [p for p in made if p["ts_ms"] not in on_chain_ts]
    in_flight, really_lost = [], []
    for p in lost:
        after = [k for k in kills if k >= p["t"]]
        gap = (min(after) - p["t"]) if after else None
        (in_flight if gap is not None and gap <= in_flight_window else really_lost).append((p, gap))
    out.check(
        not really_lost,
        "%d press(es) handed to a live daemon and never written, e.g. %s"
        % (
            len(really_lost),
            [
                "%s %s" % (p["direction"], "no kill after it" if g is None else "%.2fs before a kill" % g)
                for p, g in really_lost[:3]
            ],
        ),
        len(really_lost),
    )
    out.figures.append("presses on chain/made %d/%d" % (len(made) - len(lost), len(made)))
    if in_flight:
        worst = max(g for _, g in in_flight)
        out.figures.append(
            "lost in flight at SIGKILL %d (handed over <= %.2fs before the kill)" % (len(in_flight), worst)
        )
        out.notes.append(
            "%d press(es) were in the daemon's socket buffer (or between its read and its commit) "
            "when SIGKILL came, %.3f-%.3f s before the kill; the kernel drops them with the process, "
            "as a real HAT's evdev queue would at a power cut; numbering stays gapless"
            % (len(in_flight), min(g for _, g in in_flight), worst)
        )


def settle(device: Device, chain: Any, sent: Dict[str, int], timeout: float, mine_every: float = 2.0) -> bool:
    """Wait until every payment is credited, every stored event is on chain and the outbox is idle.
    The chain goes on meanwhile, a block every `mine_every` seconds: a refund counts as confirmed only
    REORG_MARGIN blocks deep, so on a chain that stood still the outbox would never be idle."""
    next_block = [time.monotonic() + mine_every]

    def done() -> bool:
        if time.monotonic() >= next_block[0]:
            chain.mine()
            next_block[0] = time.monotonic() + mine_every
        if len(credited(device)) < len(sent) or not outbox_idle(device):
            return False
        entries = chain.data_entries(device.address)
        if sum(1 for k in entries if k.startswith("served_")) < len(sent):
            return False
        stored = stored_press_count(device)
        return stored == 0 or entries.get("joystick_count", {}).get("value") == stored

    return try_wait(done, timeout, 0.5)


def unsettled(device: Device, chain: Any, sent: Dict[str, int]) -> str:
    """What is still open when settle() gives up: the evidence for finding out why."""
    parts = ["credited %d/%d" % (len(credited(device)), len(sent))]
    rows = db_query(
        device,
        "SELECT id, status, attempts, height, error, updated_ms FROM outbox "
        "WHERE status IN ('queued', 'broadcast')",
        [],
    )
    for r in rows[:5]:
        known = chain.transaction(r[0])
        parts.append(
            "outbox %s %s attempts=%s height=%s error=%s; chain: %s"
            % (
                r[0][:10],
                r[1],
                r[2],
                r[3],
                r[4],
                "at height %s" % known.get("height") if known else "unknown",
            )
        )
    parts.append("%d open outbox row(s)" % len(rows))
    pending = db_query(device, "SELECT seq, kind, press_n FROM events WHERE tx_id IS NULL", [])
    parts.append(
        "%d event(s) without a transaction%s"
        % (len(pending), (" (first: %s)" % (pending[0],)) if pending else "")
    )
    entries = chain.data_entries(device.address)
    parts.append(
        "served_ on chain %d; joystick_count on chain %s, stored presses %d"
        % (
            sum(1 for k in entries if k.startswith("served_")),
            entries.get("joystick_count", {}).get("value"),
            stored_press_count(device),
        )
    )
    parts.append("utx %d" % len(chain.unconfirmed()))
    return "; ".join(parts)


def crash_lines(device: Device) -> int:
    text = device.output(whole=True)
    return text.count("Traceback") + text.count("a service crashed")


# =============================================================================
# 1. SIGKILL at random instants during a stream of payments and presses
# =============================================================================


def case_sigkill(out: Outcome, quick: bool, rng: random.Random) -> None:
    payments, presses, kills = (300, 60, 5) if quick else (1000, 200, 20)
    stream_seconds = 30.0 if quick else 100.0
    with new_stack() as stack:
        chain, hat, device = streaming_setup(stack, out, "sigkill")
        live: List[Optional[int]] = [device.proc.pid]
        t0 = time.monotonic()
        stream = PaymentStream(
            chain,
            device.address,
            count=payments,
            rate=payments / stream_seconds,
            mine_every=2.0,
            deadline=t0 + stream_seconds + 60,
            rng=rng,
        )
        presser = Presser(
            hat,
            lambda: live[0],
            count=presses,
            interval=stream_seconds / presses,
            deadline=t0 + stream_seconds + 90,
            rng=rng,
        )
        stream.start()
        presser.start()
        kill_times: List[float] = []
        mid_start = 0
        gap = max(0.5, stream_seconds / kills - 1.5)
        try:
            for _ in range(kills):
                time.sleep(rng.uniform(0.2, 2 * gap))
                if rng.random() < 0.25:
                    # a kill while the new daemon is still starting up
                    live[0] = None
                    kill_times.append(time.monotonic())
                    device.kill(signal.SIGKILL)
                    device.start(ready=False)
                    out.runs += 1
                    time.sleep(rng.uniform(0.0, 1.5))
                    mid_start += 1
                live[0] = None
                kill_times.append(time.monotonic())
                device.kill(signal.SIGKILL)
                device.start()
                out.runs += 1
                live[0] = device.proc.pid
            stream.join(stream_seconds + 120)
            presser.join(max(1.0, t0 + stream_seconds + 100 - time.monotonic()))
        finally:
            stream.stop.set()
            presser.stop.set()
        for t in (stream, presser):
            if t.error is not None:
                raise RuntimeError("%s thread failed: %r" % (t.name, t.error))
        check_hat(hat)
        sent = stream.snapshot()
        settled = settle(device, chain, sent, 240)
        out.check(settled, "not settled within 240 s after the stream")
        rc = device.stop()
        out.check(rc == 0, "daemon exit status %s on SIGTERM" % rc)
        check_payments(out, device, chain, sent)
        check_refunds(out, device, chain, sent)
        check_presses(out, device, chain, presser.made, kill_times)
        out.check(
            crash_lines(device) == 0, "%d traceback(s) or crashed services in the log" % crash_lines(device)
        )
        out.figures.insert(0, "SIGKILLs %d (%d during start-up)" % (len(kill_times), mid_start))
        if presser.refused:
            out.notes.append(
                "%d press(es) were not counted: the emulator could not hand them to the daemon "
                "(its client was going away)" % presser.refused
            )


# =============================================================================
# 2. Node chaos while payments and presses stream
# =============================================================================

FAULT_PATHS = (
    None,
    None,
    ["/transactions/broadcast"],
    ["/transactions/address/"],
    ["/blocks/height"],
    ["/assets/balance"],
    ["/transactions/status"],
)


CHAOS_SECONDS: Optional[float] = None  # --chaos-minutes


def case_chaos(out: Outcome, quick: bool, rng: random.Random) -> None:
    duration = CHAOS_SECONDS or (60.0 if quick else 240.0)
    with new_stack() as stack:
        chain, hat, device = streaming_setup(stack, out, "chaos")
        pid = device.proc.pid
        t0 = time.monotonic()
        stream = PaymentStream(
            chain,
            device.address,
            count=100000,
            rate=4.0,
            mine_every=1.0,
            deadline=t0 + duration,
            rng=rng,
            big=[(t0 + duration * f, CHAOS_BIG) for f in (0.2, 0.5, 0.8)],
        )
        presser = Presser(
            hat,
            lambda: pid if device.alive() else None,
            count=100000,
            interval=1.0,
            deadline=t0 + duration,
            rng=rng,
        )
        rss = RssSampler(lambda: pid if device.alive() else None)
        for t in (stream, presser, rss):
            t.start()
        tally: "collections.Counter[str]" = collections.Counter()
        include_at: Optional[float] = None
        try:
            while time.monotonic() < t0 + duration:
                if include_at is not None and time.monotonic() >= include_at:
                    chain.include_utx()
                    include_at = None
                action = rng.choices(["fault", "rollback", "restart", "calm"], [6, 2, 1, 1])[0]
                if action == "fault":
                    kind = rng.choice(["500", "503", "429", "hang", "garbage", "truncated", "reset"])
                    chain.fail(
                        kind,
                        duration=rng.uniform(0.5, 4.0),
                        paths=rng.choice(FAULT_PATHS),
                        retry_after=rng.randint(1, 3),
                        hang_seconds=rng.uniform(0.5, 4.0),
                    )
                    tally[kind] += 1
                elif action == "rollback" and include_at is None:
                    n = min(rng.randint(1, 5), chain.height - 2)
                    if n >= 1:
                        chain.rollback(n, to_utx=True)  # like a node: the txs go back to the pool...
                        include_at = time.monotonic() + rng.uniform(0.0, 2.0)  # ...and into a block again
                        tally["rollback"] += 1
                elif action == "restart":
                    chain.stop()
                    time.sleep(rng.uniform(0.2, 3.0))
                    chain.start()
                    tally["restart"] += 1
                time.sleep(rng.uniform(0.3, 2.5))
                if not device.alive():
                    break
        finally:
            stream.stop.set()
            presser.stop.set()
            chain.start()
            chain.clear_faults()
            chain.include_utx()
        stream.join(30)
        presser.join(30)
        for t in (stream, presser):
            if t.error is not None:
                raise RuntimeError("%s thread failed: %r" % (t.name, t.error))
        out.check(device.alive(), "the daemon died during the chaos (exit %s)" % device.proc.poll())
        chain.mine()
        sent = stream.snapshot()
        try_wait(lambda: len(credited(device)) >= len(sent), 120, 0.5)  # refunds are signed with the credits
        owed = (db_query(device, "SELECT COUNT(*) FROM refunds", []) or [(0,)])[0][0]
        window = CHAOS_SETTLE[0] + CHAOS_SETTLE[1] * owed
        if not out.check(
            settle(device, chain, sent, window), "not settled within %.0f s after the chaos" % window
        ):
            out.notes.append("open after the chaos: " + unsettled(device, chain, sent))
            print("\n".join(device.output(whole=True).splitlines()[-40:]), flush=True)
        check_hat(hat)
        rss.stop.set()
        rss.join(10)
        if device.alive():
            rc = device.stop()
            out.check(rc == 0, "daemon exit status %s on SIGTERM" % rc)
        check_payments(out, device, chain, sent)
        check_refunds(out, device, chain, sent)
        check_presses(out, device, chain, presser.made)
        out.check(
            crash_lines(device) == 0, "%d traceback(s) or crashed services in the log" % crash_lines(device)
        )
        out.figures.insert(
            0, "chaos %.0f s: %s" % (duration, ", ".join("%s %d" % kv for kv in sorted(tally.items())))
        )
        samples = [kb for _, kb in rss.samples]
        if samples:
            warm = [kb for t, kb in rss.samples if t >= t0 + min(20.0, duration / 3)] or samples
            half = [kb for t, kb in rss.samples if t >= t0 + duration / 2] or samples
            out.figures.append(
                "VmRSS MB start/warm/half-time/end/max %.1f/%.1f/%.1f/%.1f/%.1f"
                % (samples[0] / 1024, warm[0] / 1024, half[0] / 1024, samples[-1] / 1024, max(samples) / 1024)
            )
            by_minute = [kb for t, kb in rss.samples if t >= t0][:: max(1, int(60 / rss.every))]
            out.notes.append(
                "VmRSS MB minute by minute from the chaos's start: %s"
                % " ".join("%.1f" % (kb / 1024) for kb in by_minute)
            )
            growth = warm[-1] - warm[0]
            out.check(
                growth < max(20 * 1024, warm[0] // 4),
                "memory grew by %.1f MB after warm-up (%.1f -> %.1f MB)"
                % (growth / 1024, warm[0] / 1024, warm[-1] / 1024),
            )
        errors = device.output(whole=True).count("ERROR ")
        out.figures.append("ERROR log lines %d" % errors)


# =============================================================================
# 3. A state file cut short or damaged (a power cut on an SD card)
# =============================================================================


def _page_size(db: Path) -> int:
    with open(db, "rb") as f:
        head = f.read(100)
    size = int.from_bytes(head[16:18], "big") if len(head) >= 18 else 4096
    return 65536 if size == 1 else (size or 4096)


def damage_truncate(db: Path, rng: random.Random, fraction: float) -> str:
    size = db.stat().st_size
    keep = int(size * fraction) // 512 * 512
    os.truncate(db, keep)
    return "database cut from %d to %d bytes" % (size, keep)


def damage_pages(db: Path, rng: random.Random) -> str:
    page = _page_size(db)
    pages = db.stat().st_size // page
    chosen = sorted(rng.sample(range(pages), min(pages, rng.randint(1, 3))))
    with open(db, "r+b") as f:
        for n in chosen:
            f.seek(n * page)
            f.write(bytes(rng.getrandbits(8) for _ in range(page)))
    return "pages %s of %d overwritten with random bytes" % ([n + 1 for n in chosen], pages)


def damage_wal(db: Path, rng: random.Random, how: str) -> str:
    wal = Path(str(db) + "-wal")
    size = wal.stat().st_size if wal.exists() else 0
    if size <= 32:
        return "no WAL to damage (%d bytes)" % size
    if how == "delete":
        wal.unlink()
        return "WAL of %d bytes deleted" % size
    if how == "cut":
        os.truncate(wal, size // 2)
        return "WAL cut from %d to %d bytes" % (size, size // 2)
    at = 32 + int((size - 32) * rng.uniform(0.3, 0.6))
    with open(wal, "r+b") as f:
        f.seek(at)
        f.write(bytes(rng.getrandbits(8) for _ in range(64)))
    return "64 random bytes written into the WAL (%d bytes) at %d" % (size, at)


# (name, how the daemon stops before the damage, damage)
DAMAGES = [
    ("db cut in half", "kill", lambda db, rng: damage_truncate(db, rng, 0.5)),
    ("db cut to a third", "stop", lambda db, rng: damage_truncate(db, rng, 0.34)),
    ("db cut to zero", "stop", lambda db, rng: damage_truncate(db, rng, 0.0)),
    ("random pages", "stop", damage_pages),
    ("WAL bytes overwritten", "kill", lambda db, rng: damage_wal(db, rng, "overwrite")),
    ("WAL cut in half", "kill", lambda db, rng: damage_wal(db, rng, "cut")),
    ("WAL deleted", "kill", lambda db, rng: damage_wal(db, rng, "delete")),
]


def wait_contact(device: Device, timeout: float = 30.0) -> bool:
    """Until the daemon first reached the node (it then fixed its history horizon)."""
    return try_wait(lambda: db_query(device, "SELECT value FROM meta WHERE key = 'horizon'"), timeout)


def pay_and_settle(chain: Any, device: Device, n: int, sent: Dict[str, int]) -> bool:
    wait_contact(device)
    for _ in range(n):
        tx = chain.transfer(chain.treasury, device.address, 100, asset_id=chain.asset)
        sent[tx["id"]] = 100
    chain.mine()
    return settle(device, chain, sent, 60)


def case_corrupt(out: Outcome, quick: bool, rng: random.Random) -> None:
    trials = []
    for name, stop, damage in DAMAGES:
        repeat = 6 if name == "random pages" and not quick else 2 if name == "random pages" else 1
        if quick and name not in ("db cut in half", "random pages", "WAL bytes overwritten"):
            continue
        trials.extend([(name, stop, damage)] * repeat)
    detected, undetected, recredited, next_ok = 0, [], 0, 0
    with new_stack() as stack:
        root = temp_dir(stack, "corrupt")
        chain = open_chain(stack)
        for k, (name, stop, damage) in enumerate(trials):
            device = make_device(stack, root / ("d%d" % k), chain, "corrupt %d" % k)
            sent: Dict[str, int] = {}
            device.start()
            out.runs += 1
            ok = pay_and_settle(chain, device, 10, sent)
            device.stop()
            device.start()
            out.runs += 1
            ok = pay_and_settle(chain, device, 10, sent) and ok
            if not ok:
                out.fail("%s: the payments before the damage did not settle" % name)
                stop_quietly(device)
                continue
            first_start = db_query(device, "SELECT value FROM meta WHERE key = 'first_start_ms'")
            if stop == "kill":
                device.kill(signal.SIGKILL)
            else:
                device.stop()
            db = state_file(device)
            what = damage(db, rng)
            device.start(ready=False)
            out.runs += 1
            try_wait(
                lambda device=device: device.proc.poll() is not None or "running: address" in device.output(),
                30,
            )
            text = device.output()
            if device.proc.poll() is not None:
                rc = device.proc.returncode
                lines = [ln for ln in text.splitlines() if ln.startswith("iotlight:")]
                aside = [n for n in os.listdir(device.folder) if n.startswith("iotlight.db.damaged-")]
                good = (
                    rc == 3
                    and len(lines) == 1
                    and "damaged" in lines[0]
                    and bool(aside)
                    and "Traceback" not in text
                )
                out.check(
                    good,
                    "%s (%s): refused with exit %s, %d message line(s) %r, aside %s"
                    % (name, what, rc, len(lines), lines[:1], aside),
                )
                detected += 1
                device.start()  # what the message says to do
                out.runs += 1
            else:
                undetected.append("%s (%s)" % (name, what))
                now_first = db_query(device, "SELECT value FROM meta WHERE key = 'first_start_ms'")
                out.check(
                    now_first == first_start,
                    "%s (%s): not refused: the daemon silently started over with a new state" % (name, what),
                )
            fresh = {}
            ok = pay_and_settle(chain, device, 1, fresh)
            out.check(ok, "%s (%s): a new payment after the damage was not credited" % (name, what))
            if device.alive():
                device.stop()
            txs = device_txs(chain, device)
            counts = key_counts(txs["accepted"], "served_")
            again = [i for i in sent if counts["served_" + i] > 1]
            recredited += len(again)
            out.check(
                not again,
                "%s (%s): %d old payment(s) credited again (second receipt on chain)"
                % (name, what, len(again)),
                len(again),
            )
            if not again and ok:
                next_ok += 1
            out.check(crash_lines(device) == 0, "%s: traceback in the log" % name)
    out.figures.append("damaged files refused (exit 3, kept aside) %d/%d" % (detected, len(trials)))
    out.figures.append("old payments credited again %d" % recredited)
    out.figures.append("next start fine %d/%d" % (next_ok, len(trials)))
    if undetected:
        out.notes.append(
            "damage PRAGMA quick_check did not see (the daemon ran on): %s" % "; ".join(undetected)
        )


# =============================================================================
# 4. The wall clock jumping (a Pi without RTC), measured on the emulator's screen
# =============================================================================


def lit(hat: EmulatedHat) -> bool:
    return hat.lit_count() >= 56


def dark(hat: EmulatedHat) -> bool:
    return hat.lit_count() <= 1


def set_offset(path: Path, seconds: float) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("%+d\n" % seconds)
    os.replace(tmp, path)


# (name, paid seconds, steps): a step is (seconds after the light came on, action, value);
# actions: "jump" (wall clock offset from real time), "pay" (more seconds), "kill-restart"
CLOCK_SCENARIOS = [
    ("forward 1 h while lit", 8, [(2.0, "jump", 3600)]),
    ("back 1 h while lit", 8, [(2.0, "jump", -3600)]),
    (
        "back and forth while lit",
        10,
        [(1.0, "jump", 30), (2.5, "jump", -60), (4.0, "jump", 3600), (5.5, "jump", -3600), (7.0, "jump", 0)],
    ),
    ("back 1 h, then a top-up", 8, [(1.0, "jump", -3600), (2.0, "pay", 4)]),
    ("SIGKILL, restart with the clock 90 s back", 10, [(2.0, "jump", -90), (2.1, "kill-restart", None)]),
    ("SIGKILL, restart with the clock 90 s ahead", 10, [(2.0, "jump", 90), (2.1, "kill-restart", None)]),
]


def case_clock(out: Outcome, quick: bool, rng: random.Random) -> None:
    lib = next((p for p in FAKETIME_LIBS if os.path.exists(p)), None)
    if lib is None:
        raise Skip("libfaketime not installed (apt-get install faketime)")
    scenarios = CLOCK_SCENARIOS if not quick else [CLOCK_SCENARIOS[i] for i in (1, 3, 4)]
    worst_long, worst_early = 0.0, 0.0
    with new_stack() as stack:
        root = temp_dir(stack, "clock")
        chain = open_chain(stack)
        hat = open_hat(stack)
        offset = root / "faketime"
        set_offset(offset, 0)
        env = {
            "LD_PRELOAD": lib,
            "FAKETIME_TIMESTAMP_FILE": str(offset),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }
        device = make_device(stack, root / "device", chain, "clock", hardware__backend="sense-emu")
        device.start(env=env)
        out.runs += 1
        wait_contact(device)
        for name, paid, steps in scenarios:
            set_offset(offset, 0)
            if not try_wait(lambda: dark(hat), 30, 0.05):
                out.fail("%s: the lamp was not dark before the scenario" % name)
                continue
            chain.transfer(chain.treasury, device.address, paid * 100, asset_id=chain.asset)
            if not try_wait(lambda: lit(hat), 20, 0.01):
                out.fail("%s: the payment did not light the lamp" % name)
                continue
            on = time.monotonic()
            total = float(paid)
            for at, action, value in steps:
                time.sleep(max(0.0, on + at - time.monotonic()))
                if action == "jump":
                    set_offset(offset, value)
                elif action == "pay":
                    chain.transfer(chain.treasury, device.address, value * 100, asset_id=chain.asset)
                    total += value
                elif action == "kill-restart":
                    device.kill(signal.SIGKILL)
                    device.start(env=env)
                    out.runs += 1
            bound = on + total + 15.0
            while time.monotonic() < bound and not dark(hat):
                time.sleep(0.01)
            off = time.monotonic()
            duration = off - on
            long_by, early_by = duration - total, total - duration
            worst_long, worst_early = max(worst_long, long_by), max(worst_early, early_by)
            if not dark(hat):
                out.fail("%s: paid %.0f s, still lit after %.0f s" % (name, total, duration))
                device.stop()  # blanks the matrix
                device.start(env=env)
                out.runs += 1
                continue
            out.check(
                long_by <= 0.5,
                "%s: paid %.0f s, lit %.1f s (%.1f s too long)" % (name, total, duration, long_by),
            )
            out.check(
                early_by <= 1.0,
                "%s: paid %.0f s, lit %.1f s (off %.1f s early)" % (name, total, duration, early_by),
            )
        set_offset(offset, 0)
        check_hat(hat)
        rc = device.stop()
        out.check(rc == 0, "daemon exit status %s on SIGTERM" % rc)
        text = device.output(whole=True)
        artefacts = text.count("in ping_server")  # sense_emu's sleep(1) gets EINVAL under libfaketime
        out.check(
            crash_lines(device) - artefacts == 0,
            "%d traceback(s) in the log" % (crash_lines(device) - artefacts),
        )
        if artefacts:
            out.notes.append(
                "%d traceback(s) of sense_emu's stick ping thread (time.sleep gets EINVAL under "
                "libfaketime): a test artefact, not counted" % artefacts
            )
    out.figures.append("scenarios %d" % len(scenarios))
    out.figures.append(
        "worst: on %.2f s too long, off %.2f s early" % (max(0.0, worst_long), max(0.0, worst_early))
    )


# =============================================================================
# 5. Hostile monitor clients
# =============================================================================


def raise_nofile(n: int) -> int:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n)) if hard != resource.RLIM_INFINITY else max(soft, n)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def case_monitor(out: Outcome, quick: bool, rng: random.Random) -> None:
    from websockets.sync.client import connect

    conns = 300 if quick else 1000
    raise_nofile(conns * 2 + 200)
    with new_stack() as stack:
        root = temp_dir(stack, "monitor")
        chain = open_chain(stack)
        hat = open_hat(stack)
        port = free_port()
        device = make_device(
            stack, root / "device", chain, "monitor", hardware__backend="sense-emu", monitor__port=port
        )
        device.start()
        out.runs += 1
        wait_contact(device)
        socks: List[socket.socket] = []
        stack.callback(lambda: [s.close() for s in socks])
        refused = 0
        # 1. many idle connections, half of them upgraded to WebSocket and never reading
        for i in range(conns):
            s = socket.socket()
            s.settimeout(5)
            try:
                s.connect(("127.0.0.1", port))
                if i % 2:
                    s.sendall(
                        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                    )
                socks.append(s)
            except OSError:
                refused += 1
                s.close()
        # 2. slowloris: request lines never finished, a byte now and then
        slow = [s for s in socks[:100]]
        for s in slow:
            with contextlib.suppress(OSError):
                s.sendall(b"GET /")
        # 3. garbage bytes and 4. a huge frame on upgraded connections
        garbage = 0
        for _ in range(50):
            s = socket.socket()
            s.settimeout(5)
            with contextlib.suppress(OSError):
                s.connect(("127.0.0.1", port))
                s.sendall(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4096))))
                garbage += 1
            socks.append(s)
        huge_closed = huge_refused = 0
        # the hostile sockets above hold 127.0.0.1's share of the monitor (monitor.max_clients_per_address):
        # the huge frames come from 127.0.0.3, the well-behaved client from 127.0.0.2
        for _ in range(3):
            try:
                with connect(
                    "ws://127.0.0.1:%d/" % port,
                    open_timeout=30,
                    max_size=None,
                    source_address=("127.0.0.3", 0),
                ) as ws:
                    ws.recv(timeout=30)
                    try:
                        ws.send("x" * (16 * 1024 * 1024))
                        ws.recv(timeout=30)
                        while True:
                            ws.recv(timeout=30)
                    except Exception:
                        huge_closed += 1
            except Exception:
                huge_refused += 1  # no free slot: the hostile connections fill the monitor
        # the daemon keeps serving a well-behaved client, and the lamp keeps working
        t0 = time.monotonic()
        got_payment = False
        tx = None
        try:
            ws = None
            for attempt in range(10):
                try:
                    ws = connect(
                        "ws://127.0.0.1:%d/" % port, open_timeout=30, source_address=("127.0.0.2", 0)
                    )
                    break
                except Exception:
                    if attempt == 9:
                        raise
                    time.sleep(2)
            with ws:
                first = json.loads(ws.recv(timeout=30))
                snapshot_s = time.monotonic() - t0
                out.check(
                    first.get("type") == "state",
                    "the first message was %r, not the state" % first.get("type"),
                )
                tx = chain.transfer(chain.treasury, device.address, 300, asset_id=chain.asset)
                t1 = time.monotonic()
                deadline = t1 + 30
                while time.monotonic() < deadline:
                    msg = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
                    if msg.get("type") == "payment" and msg.get("id") == tx["id"]:
                        got_payment = True
                        break
                event_s = time.monotonic() - t1
        except Exception as e:
            out.fail(
                "a well-behaved client was not served during the attack (20 s of retries): %s: %s"
                % (type(e).__name__, e)
            )
            snapshot_s = event_s = float("nan")
        if tx is None:
            chain.transfer(chain.treasury, device.address, 300, asset_id=chain.asset)
        out.check(got_payment, "the payment event did not reach the well-behaved client within 30 s")
        out.check(
            try_wait(lambda: lit(hat), 30, 0.05), "the payment did not light the lamp during the attack"
        )
        for s in socks[:100]:
            with contextlib.suppress(OSError):
                s.sendall(b" HTTP")  # slowloris: a byte now and then
        out.check(device.alive(), "the daemon died under the attack (exit %s)" % device.proc.poll())
        still_open = 0
        for s in socks:
            s.setblocking(False)
            try:
                still_open += 0 if s.recv(1, socket.MSG_PEEK) == b"" else 1
            except BlockingIOError:
                still_open += 1
            except OSError:
                pass
        check_hat(hat)
        rss = rss_kb(device.proc.pid) or 0
        rc = device.stop()
        out.check(rc == 0, "daemon exit status %s on SIGTERM" % rc)
        out.check(crash_lines(device) == 0, "%d traceback(s) in the log" % crash_lines(device))
        out.figures.append(
            "connections %d (%d refused), slowloris 100, garbage %d, 16 MB frames: 3 tried, %d closed "
            "by the daemon, %d not let in (monitor full)"
            % (conns, refused, garbage, huge_closed, huge_refused)
        )
        out.figures.append("good client: snapshot %.1f s, payment event %.1f s" % (snapshot_s, event_s))
        out.figures.append(
            "hostile sockets still open at the end %d/%d; VmRSS %.0f MB"
            % (still_open, len(socks), rss / 1024)
        )


# =============================================================================
# 6. A full disk under the state folder
# =============================================================================


def fill(folder: Path) -> int:
    """Write a filler file until the file system is full; returns its size."""
    n = 0
    with open(folder / "filler", "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 16, 4096, 512):
            while True:
                try:
                    f.write(b"\0" * chunk)
                    n += chunk
                except OSError:
                    break
    return n


def case_disk(out: Outcome, quick: bool, rng: random.Random) -> None:
    if os.geteuid() != 0:
        raise Skip("needs root to mount a tmpfs")
    with new_stack() as stack:
        root = temp_dir(stack, "disk")
        mnt = root / "mnt"
        mnt.mkdir()
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True, text=True
        )
        if r.returncode != 0:
            raise Skip("cannot mount a tmpfs: %s" % r.stderr.strip())
        stack.callback(subprocess.run, ["umount", "-l", str(mnt)], capture_output=True)
        chain = open_chain(stack)
        hat = open_hat(stack)
        device = make_device(
            stack,
            mnt / "device",
            chain,
            "disk",
            hardware__backend="sense-emu",
            device__seed_file=str(mnt / "device" / "device.seed"),
            device__state_file=str(mnt / "device" / "iotlight.db"),
        )
        (root / "etc").mkdir()
        device.config_path = root / "etc" / "iotlight.toml"  # config and log off the full disk
        device.log_path = root / "daemon.log"
        device.start()
        out.runs += 1
        sent: Dict[str, int] = {}
        made: List[Dict[str, Any]] = []
        ok = pay_and_settle(chain, device, 10, sent)
        out.check(ok, "payments before the disk filled did not settle")
        device.stop()
        device.start()  # a fresh WAL: it has to grow on the full disk
        out.runs += 1
        pid = [device.proc.pid]
        filled = fill(mnt)

        def stream(seconds: float) -> None:
            presser = Presser(
                hat,
                lambda: pid[0] if device.alive() else None,
                count=10,
                interval=seconds / 10,
                deadline=time.monotonic() + seconds + 10,
                rng=rng,
            )
            presser.start()
            t_end = time.monotonic() + seconds
            while time.monotonic() < t_end:
                tx = chain.transfer(chain.treasury, device.address, 100, asset_id=chain.asset)
                sent[tx["id"]] = 100
                if rng.random() < 0.3:
                    chain.mine()
                time.sleep(seconds / 30)
            presser.join(seconds + 15)
            made.extend(presser.made)

        stream(10.0 if quick else 20.0)
        wrote = log_count(device, "cannot write the state file")
        out.check(device.alive(), "the daemon stopped on the full disk (exit %s)" % device.proc.poll())
        out.figures.append("filled %d kB; 'cannot write' log lines while full %d" % (filled // 1024, wrote))
        out.check(wrote <= 3, "%d 'cannot write the state file' lines: a flood" % wrote)
        # a restart while the disk is still full (systemd's Restart=on-failure, a reboot)
        restart_rc: Any = None
        if device.alive():
            device.stop()
        kept = stored_press_count(device)
        lost_at_stop = len(made) - kept
        out.figures.append("presses stored/made while full, after a clean stop %d/%d" % (kept, len(made)))
        if lost_at_stop:
            out.fail(
                "%d press(es) waiting in memory for the full disk vanished at a clean stop (SIGTERM), "
                "without a log line" % lost_at_stop,
                lost_at_stop,
            )
            made[:] = [m for m in made if m["ts_ms"] in press_ts(device)]
        (mnt / "filler").unlink()
        device.start()
        out.runs += 1
        device.stop()  # a clean stop with space: no WAL, no -shm left
        fill(mnt)
        device.start(ready=False)
        out.runs += 1
        try_wait(lambda: device.proc.poll() is not None or "running: address" in device.output(), 30)
        if device.proc.poll() is not None:
            restart_rc = device.proc.returncode
            lines = [ln for ln in device.output().splitlines() if ln.startswith("iotlight:")]
            aside = [n for n in os.listdir(mnt / "device") if ".damaged-" in n]
            out.figures.append(
                "restart on the full disk: exit %s%s"
                % (restart_rc, ", state file moved aside as damaged" if aside else "")
            )
            out.check(
                not aside,
                "a restart on the full disk took the healthy state file for damaged and moved it "
                "aside (%s): %s" % (", ".join(aside), lines[:1]),
            )
        else:
            pid[0] = device.proc.pid
            out.figures.append("restart on the full disk: running")
            stream(5.0)
        # free the space: everything arrives exactly once
        (mnt / "filler").unlink()
        if not device.alive():
            device.start()  # what a person does once space is free
            out.runs += 1
            pid[0] = device.proc.pid
        chain.mine()
        out.check(settle(device, chain, sent, 120), "not settled within 120 s after space was freed")
        check_hat(hat)
        rc = device.stop()
        out.check(rc == 0, "daemon exit status %s on SIGTERM" % rc)
        check_payments(out, device, chain, sent)
        check_presses(out, device, chain, made)
        db = sqlite3.connect(str(state_file(device)))
        try:
            integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            db.close()
        out.check(integrity == "ok", "PRAGMA integrity_check afterwards: %s" % integrity)
        out.figures.append("integrity_check %s" % integrity)
        out.check(crash_lines(device) == 0, "%d traceback(s) in the log" % crash_lines(device))


# =============================================================================
# 7. The systemd watchdog through long quiet spans (a short WATCHDOG_USEC)
# =============================================================================

WATCHDOG_USEC = 3_000_000
# (label, settings, seconds of light paid): each set-up is quiet for long on purpose
WATCHDOG_SETUPS = (
    ("lit 1 h, no countdown", dict(light__countdown=False), 3600),
    ("lit 1 h, countdown", dict(light__countdown=True), 3600),  # a bar change every 450 s
    ("one-day telemetry", dict(data__telemetry_interval=86400), 0),
    ("lit 1 day, hourly telemetry", dict(light__countdown=False, data__telemetry_interval=3600), 86400),
)


class PingListener(threading.Thread):
    """A NOTIFY_SOCKET for one daemon: the arrival time of every WATCHDOG=1."""

    def __init__(self, path: str):
        super().__init__(name="notify", daemon=True)
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.pings: List[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if data == b"WATCHDOG=1":
                self.pings.append(time.monotonic())

    def close(self) -> None:
        self.stop.set()
        self.join(5)
        self.sock.close()


def case_watchdog(out: Outcome, quick: bool, rng: random.Random) -> None:
    """Daemons quiet for long on purpose (a lit lamp with and without the countdown, a one-day
    telemetry interval), then the node hanging up to the client's timeout: every whole period
    without WATCHDOG=1 is a missed ping (at the first, systemd would kill the daemon)."""
    calm = 30.0 if quick else 90.0
    period = WATCHDOG_USEC / 1e6
    with new_stack() as stack:
        root = temp_dir(stack, "watchdog")
        chain = open_chain(stack)
        runs = []
        for i, (label, settings, light) in enumerate(WATCHDOG_SETUPS):
            device = make_device(stack, root / ("device%d" % i), chain, "watchdog%d" % i, **settings)
            listener = PingListener(str(root / ("notify%d.sock" % i)))
            listener.start()
            stack.callback(listener.close)
            device.start(env={"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": str(WATCHDOG_USEC)})
            out.runs += 1
            if light:
                chain.transfer(chain.treasury, device.address, light * 100, asset_id=chain.asset)
            runs.append((label, device, listener, light))
        t0 = time.monotonic()
        time.sleep(calm)
        chain.fail("hang", duration=calm / 2, hang_seconds=3.0)  # past node.timeout (2 s)
        time.sleep(calm / 2)
        t1 = time.monotonic()
        missed = total = 0
        longest = 0.0
        for label, device, listener, light in runs:
            out.check(device.alive(), "%s: the daemon died (exit %s)" % (label, device.proc.poll()))
            if light:
                out.check(light_until(device) > time.time(), "%s: the light is not on" % label)
            marks = [t0] + [t for t in listener.pings if t0 <= t <= t1] + [t1]
            gaps = [b - a for a, b in zip(marks, marks[1:])]
            late = [g for g in gaps if g >= period]
            total += len(marks) - 2
            missed += sum(int(g // period) for g in late)  # whole periods without a ping
            longest = max(longest, max(gaps))
            out.check(
                not late,
                "%s: %d gap(s) without WATCHDOG=1 of a whole period or more (longest %.1f s)"
                % (label, len(late), max(gaps)),
            )
            withheld = log_count(device, "not telling the watchdog")
            out.check(withheld == 0, "%s: %d log line(s) withholding the ping" % (label, withheld))
            rc = device.stop()
            out.check(rc == 0, "%s: daemon exit status %s on SIGTERM" % (label, rc))
            out.check(
                crash_lines(device) == 0, "%s: %d traceback(s) in the log" % (label, crash_lines(device))
            )
        out.figures.append(
            "WATCHDOG_USEC %.0f s, %d set-ups, %.0f s calm + %.0f s node hanging: missed pings %d "
            "(of %d sent), longest gap %.1f s" % (period, len(runs), calm, calm / 2, missed, total, longest)
        )


# =============================================================================
# Main: run the cases, print the table
# =============================================================================

# =============================================================================
# 7. A lying node: bombs, malformed items, forged and relabelled payments
# =============================================================================

LIE_KINDS = ("forged", "relabelled", "other_chain", "huge_numbers", "wrong_types")


def case_hostile(out: Outcome, quick: bool, rng: random.Random) -> None:
    """Real payments stream while the node lies: gzip and nesting bombs on the address listing,
    made-up and relabelled payments, another chain's transfer, huge numbers and wrong types.
    Every real payment must be credited once, nothing else; every lie reported once."""
    duration = 30.0 if quick else 90.0
    with new_stack() as stack:
        root = temp_dir(stack, "hostile")
        chain = open_chain(stack)
        device = make_device(stack, root / "device", chain, "hostile")
        device.start()
        out.runs += 1
        pid = device.proc.pid
        t0 = time.monotonic()
        stream = PaymentStream(
            chain, device.address, count=100000, rate=2.0, mine_every=1.0, deadline=t0 + duration, rng=rng
        )
        rss = RssSampler(lambda: pid if device.alive() else None, every=0.5)
        stream.start()
        rss.start()
        tally: "collections.Counter[str]" = collections.Counter()
        lies: List[str] = []
        try:
            while time.monotonic() < t0 + duration and device.alive():
                time.sleep(rng.uniform(0.5, 2.0))
                if rng.random() < 0.4:
                    kind = rng.choice(["gzip_bomb", "nesting_bomb"])
                    chain.hostile(kind, duration=rng.uniform(0.3, 1.5))  # each poll in it is a bomb
                elif len(lies) < 25 and stream.snapshot():
                    kind = rng.choice(LIE_KINDS)
                    lies.append(
                        chain.hostile(
                            kind, device.address, asset_id=chain.asset, amount=rng.randint(1, 10**6)
                        )
                    )
                else:
                    continue
                tally[kind] += 1
        finally:
            stream.stop.set()
        stream.join(30)
        if stream.error is not None:
            raise RuntimeError("payments thread failed: %r" % (stream.error,))
        out.check(device.alive(), "the daemon died under the lying node (exit %s)" % device.proc.poll())
        chain.mine()
        sent = stream.snapshot()
        if not out.check(settle(device, chain, sent, 120), "not settled within 120 s after the lies"):
            out.notes.append("open after the lies: " + unsettled(device, chain, sent))
        try_wait(lambda: set(lies) <= set(r[0] for r in db_query(device, "SELECT id FROM ignored", [])), 20)
        reported = set(r[0] for r in db_query(device, "SELECT id FROM ignored", []))
        peak = None
        with contextlib.suppress(OSError, StopIteration, ValueError):
            with open("/proc/%d/status" % pid) as f:
                peak = int(next(line for line in f if line.startswith("VmHWM:")).split()[1])
        rss.stop.set()
        rss.join(10)
        if device.alive():
            rc = device.stop()
            out.check(rc == 0, "daemon exit status %s on SIGTERM" % rc)
        forged = [i for i in credited(device) if i in set(lies)]
        out.check(not forged, "%d lie(s) credited: %s" % (len(forged), forged[:3]), len(forged))
        check_payments(out, device, chain, sent)
        missing = [i for i in lies if i not in reported]
        text = device.output(whole=True)
        # past the report budget (20 at once, then 10 a minute) a lie is counted in a summary line instead
        summed = sum(int(n) for n in re.findall(r"(\d+) more transfers to the device light nothing", text))
        out.check(
            len(missing) <= summed,
            "%d lie(s) neither reported as ignored nor counted in a summary line (%d counted)"
            % (len(missing), summed),
            max(0, len(missing) - summed),
        )
        out.check(
            crash_lines(device) == 0, "%d traceback(s) or crashed services in the log" % crash_lines(device)
        )
        out.figures.insert(
            0, "lies %.0f s: %s" % (duration, ", ".join("%s %d" % kv for kv in sorted(tally.items())))
        )
        out.figures.append(
            "forged credits %d; lies reported once %d/%d (log lines %d), counted in summary lines %d"
            % (len(forged), len(set(lies) & reported), len(lies), text.count("lights nothing"), summed)
        )
        samples = [kb for _, kb in rss.samples]
        if samples or peak:
            out.figures.append(
                "VmRSS MB start/max sampled %.1f/%.1f, peak (VmHWM) %s"
                % (
                    samples[0] / 1024 if samples else 0,
                    max(samples) / 1024 if samples else 0,
                    "%.1f" % (peak / 1024) if peak else "?",
                )
            )
            out.check(
                peak is None or peak < 150 * 1024,
                "peak RSS %.1f MB: an answer was inflated" % ((peak or 0) / 1024),
            )


# =============================================================================
# 9. A node of another network, a hidden payment, dense answers, a flood, a counterfeit, an alias
# =============================================================================

NET_WATCHDOG_USEC = 3_000_000  # as systemd would set it: the daemon pings every quarter of it
NET_PAD_ITEMS = 2_800_000  # empty objects: 8 MiB of valid JSON, about 8 KB gzipped on the wire
NET_FLOOD = 500  # made-up transfers on top of every first-page read of the address's list
NET_FLOOD_SWEEP = 5.0  # the flood's sweep: with the default 300 s no list read would meet it
NET_ALIAS = "iotlight-faults"
NET_PAY = 100  # units (1 s of light) of each payment a phase makes by hand
# The daemon runs on the product's defaults: make_device and Device speed these keys up for the
# other cases, so they are set back here; each phase changes only what it needs.
NET_DEFAULTS = dict(
    node__poll_interval=1.0,
    node__timeout=10.0,
    node__list_rate=15.0,
    node__sweep_interval=300.0,
    data__coalesce_window=1.0,
    data__max_tx_per_minute=20,
    payment__max_seconds=3600.0,
    light__countdown=True,
)


class Miner(threading.Thread):
    """Seals a block every `every` seconds; pace() starts a block interval of a new length now."""

    def __init__(self, chain: Any, every: float):
        super().__init__(name="miner", daemon=True)
        self.chain, self.every = chain, every
        self.stop = threading.Event()
        self.changed = threading.Event()
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if self.changed.wait(self.every):
                    self.changed.clear()
                    continue
                if not self.stop.is_set():
                    self.chain.mine()
        except BaseException as e:  # reported by the case
            self.error = e

    def pace(self, every: float) -> None:
        self.every = every
        self.chain.mine()
        self.changed.set()


def status_kb(pid: int, field: str) -> Optional[int]:
    """A /proc/<pid>/status field in kB (VmRSS, VmHWM), None when the process is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def state_bytes(device: Device) -> int:
    """The state file with its write-ahead log, in bytes."""
    db = state_file(device)
    return sum(p.stat().st_size for p in (db, Path(str(db) + "-wal")) if p.exists())


def longest_gap(pings: Sequence[float], t0: float, t1: float) -> float:
    marks = [t0] + [t for t in pings if t0 <= t <= t1] + [t1]
    return max(b - a for a, b in zip(marks, marks[1:]))


def requests_since(chain: Any, prefix: str, since_wall: float, *, first_page: bool = False) -> int:
    """Requests the node got on paths starting with `prefix` since a wall-clock time (first_page:
    list reads without `after`, the ones a flood answers)."""
    return sum(
        1
        for r in list(chain.requests)
        if r.time >= since_wall and r.path.startswith(prefix) and not (first_page and "after=" in r.query)
    )


def case_network(out: Outcome, quick: bool, rng: random.Random) -> None:
    """One device through six phases, restarted between them with each phase's settings (the
    product's defaults otherwise), under a systemd-like watchdog, with a node of network W after
    the T node in node.urls all along: (1) the T node fails while payments and presses go on;
    (2) a payment withheld from every listing across sweeps, then shown (one hidden while the
    daemon runs, one hidden already when it starts); (3) the balance route answered with 8 MiB of
    valid JSON; (4) a flood of made-up transfers on every list read; (5) a token of the same name
    from another issuer on a chain mining every 60 s; (6) the device's alias missing from one
    answer. Each phase ends settled: every real payment credited once with one receipt on chain,
    nothing else credited, no outbox row failed, no traceback."""
    from fakenode import FakeNode

    fail_s, hide_s, pad_s, flood_s = (10.0, 20.0, 12.0, 15.0) if quick else (20.0, 40.0, 12.0, 25.0)
    hide_start_s = 15.0 if quick else 25.0
    period = NET_WATCHDOG_USEC / 1e6
    with new_stack() as stack:
        root = temp_dir(stack, "network")
        chain = open_chain(stack)
        other = FakeNode("W").start()  # a node of another network, on its own port
        stack.callback(chain_stop, other)
        hat = open_hat(stack)
        device = make_device(stack, root / "device", chain, "network", hardware__backend="sense-emu")
        base = dict(NET_DEFAULTS, node__urls=[chain.url, other.url])
        listener = PingListener(str(root / "notify.sock"))
        listener.start()
        stack.callback(listener.close)
        env = {"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": str(NET_WATCHDOG_USEC)}
        miner = Miner(chain, 1.0)
        miner.start()
        stack.callback(miner.stop.set)
        sent: Dict[str, int] = {}
        made: List[Dict[str, Any]] = []
        gaps: List[str] = []
        crashes_seen = [0]
        lost: Dict[str, float] = {}  # payments a phase reported never credited -> when they were shown
        phase_t, phase_s = [time.monotonic()], []
        w_line = re.compile(re.escape(other.url) + r"(?!\d)")

        def start(**settings: Any) -> float:
            """(Re)start the daemon with the defaults plus `settings`; the time of its first ping."""
            if device.alive():
                rc = device.stop()
                out.check(rc == 0, "daemon exit status %s on SIGTERM before a restart" % rc)
            device.configure(**dict(base, **settings))
            t, wall = time.monotonic(), time.time()
            device.start(env=env)
            out.runs += 1
            out.check(
                try_wait(lambda: any(p > t for p in list(listener.pings)), 10, 0.05),
                "no WATCHDOG=1 within 10 s of a start",
            )
            # the second balance request: the first poll (and what it made of the balance) is done
            polled = try_wait(lambda: requests_since(chain, "/assets/balance/", wall) >= 2, 30, 0.05)
            out.check(polled, "the daemon did not poll the node twice within 30 s of a start")
            return max([p for p in list(listener.pings) if p > t] or [t])

        def pay(to: Optional[str] = None, amount: int = NET_PAY) -> str:
            tx = chain.transfer(chain.treasury, to or device.address, amount, asset_id=chain.asset)
            sent[tx["id"]] = amount
            return tx["id"]

        def credit_seconds(txid: str, t0: float, timeout: float) -> Optional[float]:
            if try_wait(lambda: txid in credited(device), timeout, 0.1):
                return time.monotonic() - t0
            return None

        def gap(label: str, t0: float, limit: float = period) -> float:
            g = longest_gap(list(listener.pings), t0, time.monotonic())
            gaps.append("%s %.1f" % (label, g))
            out.check(g < limit, "%s: %.1f s without WATCHDOG=1 (limit %.1f s)" % (label, g, limit))
            return g

        def phase_end(label: str, timeout: float) -> Optional[float]:
            """Settled, every real payment credited once with one receipt, nothing else credited,
            no outbox row failed, no new traceback; returns when it was settled (None: it was not).
            A payment a phase already reported lost (`lost`) is left out of the later phases' waits
            and counts (the final check counts it again)."""
            live = {i: n for i, n in sent.items() if i not in lost}
            settled = settle(device, chain, live, timeout)
            settled_at = time.monotonic() if settled else None
            if not out.check(settled, "%s: not settled within %.0f s" % (label, timeout)):
                out.notes.append("%s: open: %s" % (label, unsettled(device, chain, live)))
                print("\n".join(device.output().splitlines()[-40:]), flush=True)
            got = credited(device)
            missing = [i for i in live if i not in got]
            extra = [i for i in got if i not in sent]
            wrong = [i for i in sent if i in got and got[i] != sent[i]]
            txs = device_txs(chain, device)
            accepted = key_counts(txs["accepted"], "served_")
            on_chain = key_counts(txs["on_chain"], "served_")
            twice = sorted(k for k in set(accepted) | set(on_chain) if accepted[k] > 1 or on_chain[k] > 1)
            no_receipt = [i for i in live if on_chain["served_" + i] == 0]
            failed = (
                db_query(device, "SELECT COUNT(*) FROM outbox WHERE status = 'failed'", [[0]]) or [[0]]
            )[0][0]
            crashes = crash_lines(device) - crashes_seen[0]
            crashes_seen[0] += crashes
            out.check(
                not missing,
                "%s: %d real payment(s) not credited, e.g. %s" % (label, len(missing), missing[:2]),
                len(missing),
            )
            out.check(
                not extra,
                "%s: %d credit(s) for transfers nobody paid: %s" % (label, len(extra), extra[:3]),
                len(extra),
            )
            out.check(
                not wrong, "%s: %d payment(s) credited with another amount" % (label, len(wrong)), len(wrong)
            )
            out.check(
                not twice,
                "%s: %d receipt(s) twice (credited twice): %s" % (label, len(twice), twice[:3]),
                len(twice),
            )
            out.check(
                not no_receipt,
                "%s: %d payment(s) without their receipt on chain" % (label, len(no_receipt)),
                len(no_receipt),
            )
            out.check(failed == 0, "%s: %d outbox row(s) failed" % (label, failed), failed)
            out.check(
                crashes == 0, "%s: %d traceback(s) or crashed services in the log" % (label, crashes), crashes
            )
            if not device.alive():
                out.fail("%s: the daemon died (exit %s)" % (label, device.proc.poll()))
            phase_s.append("%s %.0f" % (label.split()[0], time.monotonic() - phase_t[0]))
            phase_t[0] = time.monotonic()
            return settled_at

        # -- 1. the T node fails; the W node is next in node.urls
        t_run = start()
        pid = device.proc.pid
        t0 = time.monotonic()
        stream = PaymentStream(
            chain, device.address, count=10**6, rate=2.0, mine_every=10**9, deadline=t0 + fail_s + 60, rng=rng
        )
        presser = Presser(
            hat,
            lambda: pid if device.alive() else None,
            count=10**6,
            interval=1.0,
            deadline=t0 + fail_s + 60,
            rng=rng,
        )
        stream.start()
        presser.start()
        try:
            time.sleep(3.0)
            chain.fail("hang", duration=fail_s / 2, hang_seconds=12.0)  # past node.timeout (10 s)
            chain.fail("503", duration=fail_s)  # plays once the hang's time is over
            t_fail = time.monotonic()
            time.sleep(fail_s + 2.0)
        finally:
            stream.stop.set()
            presser.stop.set()
            chain.clear_faults()
        stream.join(30)
        presser.join(30)
        for t in (stream, presser):
            if t.error is not None:
                raise RuntimeError("%s thread failed: %r" % (t.name, t.error))
        check_hat(hat)
        sent.update(stream.snapshot())
        made.extend(presser.made)
        settled_at = phase_end("1 failover", 150)
        check_presses(out, device, chain, made)
        lines = [ln for ln in device.output().splitlines() if w_line.search(ln)]
        warned = [ln for ln in lines if ln.startswith("WARNING")]
        out.check(
            len(warned) == 1,
            "1 failover: %d WARNING line(s) name the W node, not 1: %s" % (len(warned), warned[:3]),
        )
        out.check(
            not other.broadcasts,
            "1 failover: the W node got %d broadcast(s) (first: %s)"
            % (len(other.broadcasts), other.broadcasts[0].status if other.broadcasts else ""),
            len(other.broadcasts),
        )
        if warned:
            out.notes.append("1 failover: the one WARNING line: %s" % warned[0])
        out.figures.append(
            "1 failover (T node hang %.0f s then 503 %.0f s, every path): payments %d, presses %d, "
            "settled %s s after the T node came back; lines naming the W node %d (WARNING %d), "
            "W requests %d, W broadcasts %d"
            % (
                fail_s / 2,
                fail_s / 2,
                len(sent),
                len(made),
                "%.0f" % (settled_at - t_fail - fail_s) if settled_at is not None else "not",
                len(lines),
                len(warned),
                len(other.requests),
                len(other.broadcasts),
            )
        )
        gap("1", t_run)

        # -- 2. a payment withheld from every listing and block across sweeps, then shown: first one
        # paid and hidden while the daemon runs; then one paid and hidden while it is stopped, still
        # hidden when it starts. Newer payments (Q1, Q2) go on while each is hidden.
        def hide() -> str:
            with chain._lock:  # paid and hidden at once: no read between the two sees it
                txid = pay(amount=3 * NET_PAY)
                chain.withhold(txid)
            return txid

        t_run = start(node__sweep_interval=10.0)
        rounds2 = (("2 withheld while running", False, hide_s), ("2 withheld at a start", True, hide_start_s))
        for label, at_start, hidden_for in rounds2:
            if at_start:
                gap("2", t_run)
                rc = device.stop()
                out.check(rc == 0, "daemon exit status %s on SIGTERM" % rc)
                wall_hide = time.time()
                hidden, t_hide = hide(), time.monotonic()
                t_run = start(node__sweep_interval=10.0)
            else:
                wall_hide = time.time()
                hidden, t_hide = hide(), time.monotonic()
            time.sleep(3.0)
            pay()  # Q1
            time.sleep(max(0.0, t_hide + hidden_for / 2 - time.monotonic()))
            pay()  # Q2
            time.sleep(max(0.0, t_hide + hidden_for - time.monotonic()))
            early = hidden in credited(device)
            reads = requests_since(chain, "/transactions/address/", wall_hide)
            owed = (db_query(device, "SELECT value FROM meta WHERE key = 'owed'", []) or [("0",)])[0][0]
            chain.release(hidden)
            t_rel = time.monotonic()
            found = credit_seconds(hidden, t_rel, 60)
            out.check(not early, "%s: the hidden payment was credited while no listing showed it" % label)
            out.check(
                found is not None,
                "%s: the payment %s (%d units) was not credited within 60 s of its release (%s units "
                "owed, %d list reads while hidden)" % (label, hidden, 3 * NET_PAY, owed, reads),
            )
            out.check(reads > 0, "%s: no list read (sweep) during the %.0f s of hiding" % (label, hidden_for))
            if found is None:
                lost[hidden] = t_rel
            phase_end(label, 60)
            out.figures.append(
                "%s, %.0f s (sweep 10 s: %d list reads inside; %s units owed): %s"
                % (
                    label,
                    hidden_for,
                    reads,
                    owed,
                    "credited %.1f s after the release" % found
                    if found is not None
                    else "not credited within 60 s of the release",
                )
            )
        gap("2b", t_run)

        # -- 3. dense but valid answers on the balance route
        t_run = start()
        pid = device.proc.pid
        rss0 = status_kb(pid, "VmRSS") or 0
        wall_pad, t_pad = time.time(), time.monotonic()
        chain.pad(["/assets/balance"], NET_PAD_ITEMS, duration=pad_s)
        time.sleep(pad_s / 3)
        during = pay()
        time.sleep(max(0.0, t_pad + pad_s + 0.2 - time.monotonic()))
        padded = requests_since(chain, "/assets/balance", wall_pad) - requests_since(
            chain, "/assets/balance", wall_pad + pad_s
        )
        t_after = time.monotonic()
        after = pay()
        s_during = credit_seconds(during, t_after, 90)
        s_after = credit_seconds(after, t_after, 90)
        g = gap("3", t_pad, 2.0)
        hwm = status_kb(pid, "VmHWM")
        out.check(
            s_during is not None and s_after is not None,
            "3 padded: payments were not credited within 90 s after the padding ended",
        )
        out.check(
            hwm is not None and hwm < 150 * 1024,
            "3 padded: peak RSS (VmHWM) %s MB" % ("%.1f" % (hwm / 1024) if hwm else "?"),
        )
        phase_end("3 padded", 60)
        out.figures.append(
            "3 padded balance route %.0f s (%d answers of %.1f million empty objects): longest watchdog "
            "gap %.1f s, VmRSS %.1f MB at start, VmHWM %s MB; credited again %s s after the padding "
            "(the payment made during it %s s)"
            % (
                pad_s,
                padded,
                NET_PAD_ITEMS / 1e6,
                g,
                rss0 / 1024,
                "%.1f" % (hwm / 1024) if hwm else "?",
                "%.1f" % s_after if s_after is not None else "never",
                "%.1f" % s_during if s_during is not None else "never",
            )
        )

        # -- 4. a flood of made-up transfers on every list read
        rounds = [("4 flood", {})] + ([] if quick else [("4 flood, list_rate 0", {"node__list_rate": 0})])
        for label, settings in rounds:
            t_run = start(node__sweep_interval=NET_FLOOD_SWEEP, **settings)
            rows0 = (db_query(device, "SELECT COUNT(*) FROM ignored", [[0]]) or [[0]])[0][0]
            size0, served0 = state_bytes(device), chain.flooded
            wall_flood, t_flood = time.time(), time.monotonic()
            chain.flood(device.address, NET_FLOOD, chain.asset)
            time.sleep(flood_s / 2)
            real = pay()
            took = credit_seconds(real, time.monotonic(), 10.0)
            time.sleep(max(0.0, t_flood + flood_s - time.monotonic()))
            chain.flood(device.address, 0)
            reads = requests_since(chain, "/transactions/address/", wall_flood, first_page=True)
            served = chain.flooded - served0
            g = gap(label[:1] + ("b" if settings else ""), t_flood)
            phase_end(label, 60)
            text = device.output()
            told = sum(1 for ln in text.splitlines() if ln.startswith("WARNING") and "lights nothing" in ln)
            summaries = sum(
                1
                for ln in text.splitlines()
                if ln.startswith("WARNING") and "more transfers to the device light nothing" in ln
            )
            info = sum(1 for ln in text.splitlines() if "lights nothing" in ln) - told
            minutes = (time.monotonic() - t_run) / 60.0
            budget = iotlight.REPORT_BURST + int(iotlight.REPORT_RATE * minutes) + 1
            rows = (db_query(device, "SELECT COUNT(*) FROM ignored", [[0]]) or [[0]])[0][0] - rows0
            grew = state_bytes(device) - size0
            out.check(
                took is not None,
                "%s: a real payment made during the flood was not credited within 10 s" % label,
            )
            out.check(
                told <= budget,
                "%s: %d 'lights nothing' WARNING lines, over the budget of %d" % (label, told, budget),
            )
            out.check(
                summaries <= int(minutes) + 1,
                "%s: %d summary lines in %.1f minutes" % (label, summaries, minutes),
            )
            out.check(reads > 0, "%s: no list read met the flood" % label)
            out.figures.append(
                "%s %d per read, %.0f s (sweep %.0f s): %d list reads, %d made-up transfers served; "
                "'lights nothing' WARNING lines %d (+%d INFO) and summary lines %d (budget %d and %d); "
                "ignored rows +%d; state file %+d kB; longest watchdog gap %.1f s; real payment credited in %s s"
                % (
                    label,
                    NET_FLOOD,
                    flood_s,
                    NET_FLOOD_SWEEP,
                    reads,
                    served,
                    told,
                    info,
                    summaries,
                    budget,
                    int(minutes) + 1,
                    rows,
                    grew // 1024,
                    g,
                    "%.1f" % took if took is not None else "never (10 s)",
                )
            )

        # -- 5. a token of the same name from another issuer, on a chain mining every 60 s
        t_run = start()
        miner.pace(60.0)
        try:
            forger = iotlight.keypair_from_seed("iotlight faults counterfeiter throwaway seed")
            chain.fund(forger.address("T"), waves=10**10)
            fake = chain.issue_asset(forger, "IoT-Light", 2, 10**8)
            t_real = time.monotonic()
            real = pay()
            s_real = credit_seconds(real, t_real, 30)
            out.check(s_real is not None, "5 counterfeit: a real payment on the slow chain was not credited")
            # sent alone: no balance of the token moves, no payment leads the daemon to its block
            t_fake, h_fake = time.monotonic(), chain.height
            counterfeit = chain.transfer(forger, device.address, 5 * NET_PAY, asset_id=fake)["id"]

            def reason() -> Optional[str]:
                rows = db_query(device, "SELECT reason FROM ignored WHERE id = '%s'" % counterfeit, [])
                return rows[0][0] if rows else None

            seen = try_wait(reason, 75, 0.2)
            s_fake = time.monotonic() - t_fake
            out.check(
                seen and s_fake <= 60 and reason() == "wrong_asset",
                "5 counterfeit: ignored row %s after %.0f s (want wrong_asset within 60 s)"
                % (reason(), s_fake),
            )
            sealed = chain.height - h_fake
        finally:
            miner.pace(1.0)
        phase_end("5 counterfeit", 60)
        out.figures.append(
            "5 counterfeit IoT-Light (blocks every 60 s; %d sealed before it was reported): ignored "
            "row %s after %s s; a real payment before it credited in %s s"
            % (
                sealed,
                reason(),
                "%.1f" % s_fake if seen else "never (75 s)",
                "%.1f" % s_real if s_real is not None else "never",
            )
        )
        gap("5", t_run)

        # -- 6. the device's alias missing from one answer, just before a payment to it
        alias = chain.add_alias(device.address, NET_ALIAS)

        def known() -> bool:
            rows = db_query(device, "SELECT value FROM meta WHERE key = 'aliases'", [])
            return bool(rows) and alias in rows[0][0].split()

        def alias_reads() -> int:
            return sum(1 for r in list(chain.requests) if r.path.startswith("/alias/by-address/"))

        t_run = start(node__sweep_interval=10.0)
        learnt = try_wait(known, 40, 0.2)
        out.check(learnt, "6 alias: the device did not learn its alias within 40 s")
        chain.glitch_aliases(1)  # the read that taught it has just been: the next one is a sweep away
        n = alias_reads()
        glitched = try_wait(lambda: alias_reads() > n, 25, 0.05)
        out.check(glitched, "6 alias: no alias read came after the glitch was set")
        time.sleep(0.5)
        kept = known()
        t_alias = time.monotonic()
        to_alias = pay(alias)
        s_alias = credit_seconds(to_alias, t_alias, 60)
        out.check(kept, "6 alias: the device forgot its alias after one empty answer")
        out.check(s_alias is not None, "6 alias: a payment to the alias was not credited within 60 s")
        phase_end("6 alias", 60)
        out.figures.append(
            "6 alias glitch (one empty /alias/by-address answer): alias %s; payment to %s credited in %s s"
            % ("kept" if kept else "FORGOTTEN", alias, "%.1f" % s_alias if s_alias is not None else "never")
        )
        gap("6", t_run)

        if miner.error is not None:
            raise RuntimeError("miner thread failed: %r" % (miner.error,))
        rc = device.stop()
        out.check(rc == 0, "daemon exit status %s on SIGTERM" % rc)
        check_payments(out, device, chain, sent)
        out.figures.append("seconds per phase %s" % ", ".join(phase_s))
        out.figures.append(
            "longest watchdog gap per phase (s, WATCHDOG_USEC %.0f s): %s" % (period, ", ".join(gaps))
        )
        out.check(
            crash_lines(device) == 0, "%d traceback(s) or crashed services in the log" % crash_lines(device)
        )
        for txid, shown in lost.items():
            out.notes.append(
                "the payment %s, reported lost, %s"
                % (
                    txid,
                    "was credited later, within %.0f s of its release" % (time.monotonic() - shown)
                    if txid in credited(device)
                    else "was still not credited at the end of the case",
                )
            )
        if presser.refused:
            out.notes.append(
                "network: %d press(es) the emulator could not hand over, not counted" % presser.refused
            )


RUNNERS: Dict[str, Callable[[Outcome, bool, random.Random], None]] = {}


def register_runners() -> None:
    for name in CASES:
        fn = globals().get("case_" + name)
        if fn is not None:
            RUNNERS[name] = fn


def run_case(name: str, quick: bool, seed: int) -> Outcome:
    t0 = time.monotonic()
    for _ in range(3):
        out = Outcome(name)
        try:
            RUNNERS[name](out, quick, random.Random("%s-%d" % (name, seed)))
        except Disturbed as e:
            _close_all()
            print("    %s; running the case again" % e, flush=True)
            time.sleep(5)
            continue
        except Skip as e:
            out.skipped = str(e)
        except Exception as e:
            import traceback

            out.fail("the case itself failed: %s: %s" % (type(e).__name__, e))
            traceback.print_exc()
        finally:
            _close_all()
        break
    else:
        out.fail("another process kept taking the Sense HAT emulator: no undisturbed run")
    out.seconds = time.monotonic() - t0
    return out


class Skip(Exception):
    """A case cannot run here (a tool missing); reported as skipped, never as passed."""


def table(outcomes: List[Outcome]) -> str:
    lines = ["| case | runs | failures | figures |", "|---|---|---|---|"]
    for o in outcomes:
        if o.skipped:
            lines.append("| %s | 0 | skipped | %s |" % (o.case, o.skipped))
            continue
        figures = "; ".join(o.figures + ["%.0f s" % o.seconds])
        lines.append("| %s | %d | %d | %s |" % (o.case, o.runs, o.failures, figures))
    details = []
    for o in outcomes:
        for p in o.problems:
            details.append("- **%s** FAIL: %s" % (o.case, p))
        for n in o.notes:
            details.append("- %s: %s" % (o.case, n))
    return "\n".join(lines + ([""] + details if details else []))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter streams, fewer kills (about 8 minutes)")
    parser.add_argument("--only", help="comma-separated cases: %s (or 1-%d)" % (", ".join(CASES), len(CASES)))
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: from the time)")
    parser.add_argument(
        "--chaos-minutes",
        type=float,
        default=None,
        help="how long the node chaos lasts (default 4, or 1 with --quick)",
    )
    args = parser.parse_args(argv)
    global CHAOS_SECONDS
    CHAOS_SECONDS = args.chaos_minutes * 60 if args.chaos_minutes else None
    register_runners()
    names = list(RUNNERS)
    if args.only:
        names = []
        for item in args.only.split(","):
            item = item.strip()
            name = CASES[int(item) - 1] if item.isdigit() and 1 <= int(item) <= len(CASES) else item
            if name not in RUNNERS:
                parser.error("unknown case %r: choose from %s" % (item, ", ".join(RUNNERS)))
            names.append(name)
    seed = args.seed if args.seed is not None else int(time.time()) % 100000
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    print(
        "iotlight fault campaign: %s, seed %d%s" % (", ".join(names), seed, " (quick)" if args.quick else ""),
        flush=True,
    )
    outcomes = []
    for name in names:
        print("... %s" % name, flush=True)
        o = run_case(name, args.quick, seed)
        print(
            "    %s: %s"
            % (
                name,
                "skipped (%s)" % o.skipped
                if o.skipped
                else "%d failure(s), %.0f s" % (o.failures, o.seconds),
            ),
            flush=True,
        )
        outcomes.append(o)
    print()
    print(table(outcomes))
    print(
        "\nreproduce: python tests/tools/faults.py%s%s%s --seed %d"
        % (
            " --quick" if args.quick else "",
            " --only " + ",".join(names) if args.only else "",
            " --chaos-minutes %g" % args.chaos_minutes if args.chaos_minutes else "",
            seed,
        )
    )
    return 1 if any(o.failures for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
