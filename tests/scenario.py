"""In-process scenarios on a virtual clock: the whole Daemon (watcher, lamp, outbox, telemetry,
watchdog) against the fake node's chain, hours of daemon time in a second or two of test time.

The pieces, each usable on its own:

- VirtualLoop: an asyncio event loop whose clock is virtual. When nothing is ready to run, time
  jumps to the next timer instead of sleeping, so a one-day wait costs nothing. stall(seconds)
  moves time while nothing runs: what a blocking call does to a real loop.
- VirtualClock: the daemon's Clock (wall and monotonic time) read from that loop.
- FakeHardware: the HardwareRunner's async face without threads: frames shown, a scripted
  environment reading, joystick presses from the test; freeze() makes show() hang for good.
- InProcessNode: tests/tools/fakenode.py's FakeNode (real chain, signatures, balances, error
  bodies) answering through httpx.MockTransport, no socket; hang() makes requests hang until
  the client's own timeout (or forever), as a node that accepts and never answers; refuse()
  answers an HTTP error. Its `chain` is the FakeNode: mine, rollback, transfer there.
- Scenario: all of the above wired into a Daemon with a throwaway device key, a funded chain and
  a state file in a test folder; run_for() advances daemon time, pay() buys light, restart()
  stops the daemon and starts a new one on the same state, pings() and longest_silence() read
  the systemd notifications the daemon sent.

    with Scenario(tmp_path, watchdog=30, light__countdown=False) as s:
        s.run_for(10)
        s.pay(3 * 3600)
        s.run_for(3 * 3600)
        assert s.longest_silence() < 30

Every setting is a config key with "." written "__" (as in harness.Device). Nothing here
touches the network, threads or the real clock (the SQLite state file is real).
"""

from __future__ import annotations

import asyncio
import json
import logging
import selectors
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs

import httpx
from harness import DEVICE_SEED, TREASURY_SEED

import iotlight

DECIMALS = 2  # the scenario token's decimals: 100 units buy one token's seconds
WALL_START = 1_800_000_000.0  # the wall clock at the start of every scenario (2027-01-15)


# --- the virtual clock ------------------------------------------------------------


class _JumpSelector(selectors.DefaultSelector):
    """Polls the real selector without waiting; where the loop would sleep, time jumps instead."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: Optional["VirtualLoop"] = None

    def select(self, timeout: Optional[float] = None) -> List[Any]:
        events = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:  # no timer at all: only I/O could wake the loop
            return super().select(None)
        assert self.loop is not None
        self.loop.now += timeout
        return events


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time: waiting costs no real time, blocking is stall()."""

    def __init__(self, start: float = 1000.0):
        selector = _JumpSelector()
        super().__init__(selector)
        selector.loop = self
        self.now = start

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any, *args: Any, context: Any = None) -> asyncio.TimerHandle:
        """A timer's callback runs at its own time. asyncio runs a timer that is due within the
        clock's resolution (1 ns) at once; on a real clock time has moved on by then, here it
        would not, and a service that waits again for the remaining 1e-12 s would spin forever
        on the same instant. So the clock first moves to the timer's time."""

        def at_its_time(*a: Any) -> None:
            if self.now < when:
                self.now = when
            callback(*a)

        return super().call_at(when, at_its_time, *args, context=context)

    def stall(self, seconds: float) -> None:
        """Time passes and nothing runs: the loop is blocked (a synchronous call that hangs)."""
        self.now += seconds


class VirtualClock(iotlight.Clock):
    """The tests' one fake clock: the daemon's Clock read from a VirtualLoop (a new one unless
    given). advance() moves time while nothing runs; jump_wall() moves the wall clock alone."""

    def __init__(self, loop: Optional[VirtualLoop] = None, wall_start: float = WALL_START):
        self.loop = loop if loop is not None else VirtualLoop()
        self.offset = wall_start - self.loop.time()

    def monotonic(self) -> float:
        return self.loop.time()

    def time(self) -> float:
        return self.offset + self.loop.time()

    def advance(self, seconds: float) -> None:
        self.loop.stall(seconds)

    def jump_wall(self, seconds: float) -> None:
        self.offset += seconds


def run_until(
    clock: VirtualClock, run_for: Any, condition: Any, timeout: float, what: str, step: float
) -> float:
    """Daemon time passes (`run_for(step)` at a time) until `condition()` holds; AssertionError after
    `timeout` seconds of it. Returns the daemon time it took."""
    start = clock.monotonic()
    while not condition():
        if clock.monotonic() - start > timeout:
            raise AssertionError("no %s within %g s of daemon time" % (what, timeout))
        run_for(step)
    return clock.monotonic() - start


class Stamped(logging.Handler):
    """The records of a logger with the virtual time of each (LogRecord.created is real time):
    `records` (time, level, message), `lines` (time, message). The logger is at INFO meanwhile."""

    def __init__(self, clock: VirtualClock, logger: str):
        super().__init__(logging.INFO)
        self.clock, self.logger, self.records = clock, logging.getLogger(logger), []

    @property
    def lines(self) -> List[Tuple[float, str]]:
        return [(t, m) for t, _, m in self.records]

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((self.clock.monotonic(), record.levelno, record.getMessage()))

    def __enter__(self) -> "Stamped":
        self.level = self.logger.level
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level)


# --- the hardware ------------------------------------------------------------------


class FakeHardware:
    """What the Daemon needs of a HardwareRunner, without threads; frames kept with their time."""

    name = "fake"

    def __init__(self, clock: iotlight.Clock):
        self.clock = clock
        self.frames: List[Tuple[float, List[Tuple[int, int, int]]]] = []
        self.reading: Dict[str, Optional[float]] = {
            "temperature_c": 21.5,
            "humidity_pct": 40.0,
            "pressure_hpa": 1013.2,
        }
        self.readings: List[float] = []  # when the environment was read
        self.callback: Any = None
        self.frozen = False
        self.closed = False

    async def show(self, pixels: Any) -> bool:
        frame = [tuple(p) for p in pixels]
        if self.frames and self.frames[-1][1] == frame:  # HardwareRunner skips an unchanged frame
            return False
        while self.frozen:  # a matrix write that never returns
            await asyncio.sleep(3600)
        self.frames.append((self.clock.monotonic(), frame))
        return True

    async def read_environment(self) -> Dict[str, Optional[float]]:
        self.readings.append(self.clock.monotonic())
        return dict(self.reading)

    def start_joystick(self, callback: Any) -> bool:
        self.callback = callback
        return True

    def press(self, direction: str = "middle") -> None:
        """A joystick press as the joystick thread delivers it (on the loop, at once)."""
        ts = int(self.clock.time() * 1000)
        self.callback(iotlight.JoystickEvent(direction, "pressed", ts))
        self.callback(iotlight.JoystickEvent(direction, "released", ts + 80))

    def freeze(self) -> None:
        self.frozen = True

    async def close(self) -> None:
        self.closed = True


# --- the node ----------------------------------------------------------------------


class InProcessNode:
    """The fake node answering the daemon's httpx client in-process (httpx.MockTransport)."""

    def __init__(self, clock: iotlight.Clock, chain_id: str = "T"):
        from fakenode import FakeNode

        self.clock = clock
        self.chain = FakeNode(chain_id, now_ms=lambda: int(clock.time() * 1000))
        self.faults: List[Tuple[Optional[str], Any, Optional[float]]] = []  # (path prefix, kind, until)
        self.hung = 0  # requests that hung

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def hang(
        self, path: Optional[str] = None, *, forever: bool = False, seconds: Optional[float] = None
    ) -> None:
        """Requests (whose path starts with `path`, or all) get no answer: until the client's
        read timeout runs out (httpx.ReadTimeout), or never with forever=True; for `seconds` of
        daemon time from now, or until clear()."""
        self._add(path, "forever" if forever else "hang", seconds)

    def refuse(
        self, status: int = 503, path: Optional[str] = None, *, seconds: Optional[float] = None
    ) -> None:
        """Requests (whose path starts with `path`, or all) get HTTP `status` with an nginx page."""
        self._add(path, status, seconds)

    def clear(self) -> None:
        self.faults.clear()

    def _add(self, path: Optional[str], kind: Any, seconds: Optional[float]) -> None:
        until = self.clock.monotonic() + seconds if seconds is not None else None
        self.faults.append((path, kind, until))

    def _fault_for(self, path: str) -> Any:
        now = self.clock.monotonic()
        for prefix, kind, until in self.faults:
            if (until is None or now < until) and (prefix is None or path.startswith(prefix)):
                return kind
        return None

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        from fakenode import Request

        path = request.url.path
        query = request.url.query.decode()
        self.chain.requests.append(Request(request.method, path, query, self.clock.time()))
        fault = self._fault_for(path)
        if fault in ("hang", "forever"):
            self.hung += 1
            if fault == "forever":
                await asyncio.get_running_loop().create_future()  # never done
            timeout = (request.extensions.get("timeout") or {}).get("read") or 10.0
            await asyncio.sleep(timeout)
            raise httpx.ReadTimeout("timed out", request=request)
        if fault is not None:
            from fakenode import HTML_TYPE, _nginx_page

            return httpx.Response(
                fault, content=_nginx_page(fault, "Error").encode(), headers={"Content-Type": HTML_TYPE}
            )
        return await self._answer(request)

    async def _answer(self, request: httpx.Request) -> httpx.Response:
        """The node's own answer to `request` (already recorded in chain.requests)."""
        from fakenode import JSON_TYPE, ApiError, Broadcast, _compact

        path, body = request.url.path, request.content or None
        large = "large-significand-format=string" in request.headers.get("Accept", "")
        try:
            payload: Any = self.chain._route(
                request.method, path, parse_qs(request.url.query.decode()), body, large
            )
            status, ctype, headers = 200, JSON_TYPE, {}
        except ApiError as e:
            status, payload, ctype, headers = e.status, e.body, e.content_type, dict(e.headers)
        if path == "/transactions/broadcast" and request.method == "POST":
            self.chain.broadcasts.append(
                Broadcast(json.loads(body or b"null"), status, payload, self.clock.time())
            )
        data = (_compact(payload) if not isinstance(payload, str) else payload).encode("utf-8")
        return httpx.Response(status, content=data, headers=dict(headers, **{"Content-Type": ctype}))


# --- the scenario ------------------------------------------------------------------


class Scenario:
    """A Daemon on a virtual clock against an in-process fake chain, driven by the test."""

    def __init__(
        self,
        folder: Path,
        *,
        watchdog: Optional[float] = 30.0,
        seed: str = DEVICE_SEED,
        chain_id: str = "T",
        scripted_token: bool = False,
        **settings: Any,
    ):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.loop = VirtualLoop()
        self.clock = VirtualClock(self.loop)
        self.node = InProcessNode(self.clock, chain_id)
        chain = self.node.chain
        self.treasury = iotlight.keypair_from_seed(TREASURY_SEED)
        self.keys = iotlight.keypair_from_seed(seed)
        self.address = self.keys.address(chain_id)
        chain.fund(self.treasury.address(chain_id), waves=10**12)
        chain.fund(self.address, waves=10**10)
        self.asset = chain.issue_asset(self.treasury, "IoT-Light", DECIMALS, 10**12, scripted=scripted_token)
        chain.mine(3)  # the token stays when a test rolls back a block or two
        values: Dict[str, Any] = {
            "node.urls": ["http://node-a.invalid", "http://node-b.invalid"],
            "node.chain_id": chain_id,
            "node.poll_interval": 60.0,
            "node.timeout": 10.0,
            "node.list_rate": 0,
            "node.sweep_interval": 3600.0,
            "device.state_file": str(self.folder / "iotlight.db"),
            "payment.asset_id": self.asset,
            "payment.seconds_per_token": 1.0,
            "payment.max_seconds": 10**6,
            "hardware.backend": "none",
            "monitor.port": 0,
            "data.coalesce_window": 0.0,
        }
        values.update({k.replace("__", "."): v for k, v in settings.items()})
        table: Dict[str, Dict[str, Any]] = {}
        for key, value in values.items():
            section, name = key.split(".", 1)
            table.setdefault(section, {})[name] = value
        self.config = iotlight.parse_config(table, str(self.folder / "iotlight.toml"))
        self.watchdog = watchdog
        self.notes: List[Tuple[float, str]] = []  # (monotonic time, message) sent to systemd
        self.told: List[
            Tuple[float, str, Dict[str, Any]]
        ] = []  # (monotonic time, kind, fields) told the Daemon
        self.store = iotlight.Store(self.config.state_file, self.clock)
        self.store.bind_device(self.address, self.asset)
        self.hw = FakeHardware(self.clock)
        self.daemon: Optional[iotlight.Daemon] = None
        self.task: Optional[asyncio.Task] = None
        self.client: Optional[iotlight.NodeClient] = None
        self.started = self.clock.monotonic()
        self.status: Optional[int] = None

    # -- life cycle
    def _notify(self, message: str) -> bool:
        self.notes.append((self.clock.monotonic(), message))
        return True

    def start(self) -> "Scenario":
        async def build() -> None:
            self.client = iotlight.NodeClient(
                self.config.node_urls,
                timeout=self.config.timeout,
                chain_id=self.config.chain_id,
                clock=self.clock,
                transport=self.node.transport(),
                max_answer_bytes=self.config.max_answer_bytes,
            )
            self.daemon = iotlight.Daemon(
                self.config,
                self.keys,
                node=self.client,
                store=self.store,
                hardware=self.hw,
                clock=self.clock,
                watchdog_period=self.watchdog,
                notify=self._notify,
            )
            told = self.daemon.tell

            def tell(kind: str, **fields: Any) -> None:  # what the services told the Daemon, in order
                self.told.append((self.clock.monotonic(), kind, fields))
                told(kind, **fields)

            self.daemon.tell = self.client.tell = tell  # type: ignore[method-assign]
            for service in (
                self.daemon.lamp,
                self.daemon.outbox,
                self.daemon.watcher,
                self.daemon.watcher.ledger,
            ):
                service.tell = tell
            if self.daemon.telemetry is not None:
                self.daemon.telemetry.tell = tell
            self.task = asyncio.ensure_future(self.daemon.run())

        self.loop.run_until_complete(build())
        self.started = self.clock.monotonic()
        return self

    def run_for(self, seconds: float) -> None:
        """Let `seconds` of daemon time pass (the daemon must still run at the end)."""
        assert self.task is not None, "start() first"
        self.loop.run_until_complete(asyncio.sleep(seconds))
        if self.task.done():
            raise AssertionError("the daemon stopped (exit status %r)" % self._result())

    def run_until(
        self, condition: Any, timeout: float, what: str = "the condition", step: float = 0.1
    ) -> float:
        """Let daemon time pass until `condition()` holds; AssertionError after `timeout` seconds of
        daemon time. Returns the daemon time it took."""
        return run_until(self.clock, self.run_for, condition, timeout, what, step)

    def block(self, seconds: float) -> None:
        """The event loop stands still for `seconds` (a blocking call in some service)."""
        self.loop.stall(seconds)

    def stop(self) -> int:
        """SIGTERM: the daemon stops; its exit status."""
        if self.task is not None and self.daemon is not None:
            self.daemon.stop.set()
            self.loop.run_until_complete(asyncio.wait([self.task], timeout=120))
            self.status = self._result()
            self.task = None
        if self.client is not None:
            self.loop.run_until_complete(self.client.aclose())
            self.client = None
        return self.status or 0

    def restart(self, after: float = 0.0) -> None:
        """Stop the daemon, let `after` seconds pass, start a new one on the same state file and chain."""
        assert self.stop() == 0, "the daemon did not stop cleanly"
        self.loop.stall(after)
        self.hw = FakeHardware(self.clock)
        self.start()

    def _result(self) -> Optional[int]:
        assert self.task is not None
        if not self.task.done():
            return None
        if self.task.exception() is not None:
            raise self.task.exception()
        return self.task.result()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            try:
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            finally:
                self.store.close()
                self.loop.close()

    def __enter__(self) -> "Scenario":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the chain
    def pay(self, seconds: float, sender: Optional[iotlight.KeyPair] = None) -> str:
        """Transfer the token to the device for `seconds` of light (seconds_per_token 1); the id."""
        units = int(round(seconds / self.config.seconds_per_token * 10**DECIMALS))
        tx = self.node.chain.transfer(sender or self.treasury, self.address, units, asset_id=self.asset)
        return tx["id"]

    # -- what the daemon did
    def pings(self, since: Optional[float] = None) -> List[float]:
        """Monotonic times of the WATCHDOG=1 notifications (since `since`)."""
        return [t for t, m in self.notes if m == "WATCHDOG=1" and (since is None or t >= since)]

    def longest_silence(self, since: Optional[float] = None, until: Optional[float] = None) -> float:
        """The longest time without WATCHDOG=1 between `since` (default: the start) and `until`
        (default: now), counting both ends: what systemd's watchdog timer sees."""
        start = self.started if since is None else since
        end = self.clock.monotonic() if until is None else until
        marks = [start] + [t for t in self.pings(start) if t <= end] + [end]
        return max(b - a for a, b in zip(marks, marks[1:]))

    def lit(self) -> bool:
        """The lamp's light is on (the matrix may show a status dot while it is off)."""
        assert self.daemon is not None
        return bool(self.daemon.lamp.state()["on"])

    def events(self, kind: str) -> List[Dict[str, Any]]:
        """The fields of every `kind` the services told the Daemon (ignored, credited, data_tx, ...)."""
        return [fields for _, k, fields in self.told if k == kind]

    def credited(self) -> Dict[str, int]:
        return {p["id"]: p["amount"] for p in self.store.recent_payments(10**6)}
