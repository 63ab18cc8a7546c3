"""A class of devices behind one IP on a public node pool: payments found in the newest blocks
(not through the address-list route the pool allows 17 times a minute per IP), polls that back
off on 429/503 and come back, jitter so devices do not poll in lockstep, and the fake pool.

Everything runs in this process on the virtual clock (tests/scenario.py): a Watcher alone poll by
poll (Rig), or several whole Daemons on one VirtualLoop sharing one fake node behind
fakenode.Pool, whose clock is the virtual clock too (Classroom). This file's harness (PooledNode,
Classroom) is a small generalisation of scenario.py's InProcessNode and Scenario; the lead may
move it there."""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import httpx
import pytest
from fakenode import (
    HTML_TYPE,
    POOL_REASONS,
    POOL_ROUTES,
    SLOW_TEXT,
    TEXT_TYPE,
    Pool,
    Request,
    _nginx_page,
)
from harness import DEVICE_SEED, TREASURY_SEED, wait_until
from scenario import DECIMALS, FakeHardware, InProcessNode, Scenario, VirtualClock, VirtualLoop, run_until

import iotlight

LIST = "/transactions/address/"
URL = "http://pool.invalid"  # every device of the class asks the same pool

Seen = collections.namedtuple("Seen", "mono who method path status")  # one request at the fake pool


@pytest.fixture(autouse=True)
def quiet_httpx():
    logging.getLogger("httpx").setLevel(logging.WARNING)


# --- the harness: a fake pool in this process, a class of daemons on one virtual loop ------------


class PooledNode(InProcessNode):
    """scenario.InProcessNode that also plays the chain's own fail() faults (429 with Retry-After,
    503, 500, hang) and, with `pool`, fakenode.Pool in front of the node (per-route limits, queue or
    nodelay, caches) on the virtual clock. `seen` holds every request as the pool met it: (monotonic
    time, who asked: the tag given to transport(), method, path, status or None for no answer)."""

    def __init__(self, clock: VirtualClock, pool: Optional[Pool] = None):
        super().__init__(clock, "T")
        self.pool = pool
        if pool is not None:
            pool.clock = clock.monotonic
        self.seen: List[Seen] = []

    def transport(self, who: Any = None) -> httpx.MockTransport:
        async def handle(request: httpx.Request) -> httpx.Response:
            at = len(self.seen)
            self.seen.append(Seen(self.clock.monotonic(), who, request.method, request.url.path, None))
            response = await self._serve(request)
            self.seen[at] = self.seen[at]._replace(status=response.status_code)
            return response

        return httpx.MockTransport(handle)

    def answers(self, prefix: str = "", status: Optional[int] = None, who: Any = "any") -> List[Seen]:
        """The requests whose path starts with `prefix` (answered `status`, asked by `who`)."""
        return [
            s
            for s in self.seen
            if s.path.startswith(prefix)
            and (status is None or s.status == status)
            and (who == "any" or s.who == who)
        ]

    async def _serve(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if self._fault_for(path) is not None:  # scenario's hang()/refuse()
            return await self._handle(request)
        fault = self.chain._take_fault(path)
        pooled = self.pool is not None and (method == "GET" or path == "/transactions/broadcast")
        if fault is None and not pooled:
            return await self._handle(request)
        query = request.url.query.decode()
        self.chain.requests.append(Request(method, path, query, self.clock.time()))
        if fault is not None:
            return await self._play(fault, request)
        verdict, wait = self.pool.admit(path)
        if verdict != "ok":
            return self._page(int(verdict), POOL_REASONS[verdict])
        try:
            if wait:
                await asyncio.sleep(wait)  # nginx holds it in the route's burst queue
            full = path + ("?" + query if query else "")
            hit = self.pool.cached(path, full) if method == "GET" else None
            if hit is not None:
                return httpx.Response(hit[0], content=hit[1], headers={"Content-Type": hit[2]})
            response = await self._answer(request)
            if method == "GET":
                ctype = response.headers["Content-Type"]
                self.pool.keep(path, full, response.status_code, response.content, ctype)
            return response
        finally:
            self.pool.leave(path)

    @staticmethod
    def _page(status: int, reason: str, headers: Optional[Dict[str, str]] = None) -> httpx.Response:
        page = _nginx_page(status, reason).encode()
        return httpx.Response(
            status, content=page, headers=dict(headers or {}, **{"Content-Type": HTML_TYPE})
        )

    async def _play(self, fault: Any, request: httpx.Request) -> httpx.Response:
        """A fakenode.fail() fault as its HTTP server plays it."""
        if fault.kind == "429":
            return self._page(429, "Too Many Requests", {"Retry-After": str(fault.retry_after)})
        if fault.kind == "503":
            return httpx.Response(503, content=SLOW_TEXT.encode(), headers={"Content-Type": TEXT_TYPE})
        if fault.kind == "500":
            return self._page(500, "Internal Server Error")
        if fault.kind == "hang":  # no answer for hang_seconds, then the connection closes
            timeout = (request.extensions.get("timeout") or {}).get("read") or 10.0
            await asyncio.sleep(min(fault.hang_seconds, timeout))
            if fault.hang_seconds >= timeout:
                raise httpx.ReadTimeout("timed out", request=request)
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        raise NotImplementedError("fault %s is not played in-process" % fault.kind)


def new_chain(clock: VirtualClock, pool: Optional[Pool] = None) -> PooledNode:
    """A PooledNode whose chain has a funded treasury (`chain.treasury`) that issued the token
    (`chain.asset`, DECIMALS decimals), as harness.start_chain, without a socket."""
    node = PooledNode(clock, pool=pool)
    chain = node.chain
    chain.treasury = iotlight.keypair_from_seed(TREASURY_SEED)
    chain.fund(chain.treasury.address("T"), waves=10**12)
    chain.asset = chain.issue_asset(chain.treasury, "IoT-Light", DECIMALS, 10**12)
    chain.mine(3)
    return node


class Desk:
    """One device of a Classroom: its state file, node client and Daemon, on the class's loop."""

    def __init__(self, room: "Classroom", index: int, settings: Dict[str, Any]):
        self.room, self.index = room, index
        folder = Path(room.folder) / ("d%d" % index)
        folder.mkdir(parents=True, exist_ok=True)
        self.keys = iotlight.keypair_from_seed("classroom test device %d, throwaway" % index)
        self.address = self.keys.address("T")
        room.chain.fund(self.address, waves=10**9)
        values = {
            "node.urls": [URL],
            "node.chain_id": "T",
            "device.state_file": str(folder / "iotlight.db"),
            "payment.asset_id": room.chain.asset,
            "payment.max_seconds": 10**6,
            "hardware.backend": "none",
            "monitor.port": 0,
            "data.coalesce_window": 0.0,
            "light.countdown": False,
        }
        values.update({k.replace("__", "."): v for k, v in settings.items()})
        table: Dict[str, Dict[str, Any]] = {}
        for key, value in values.items():
            section, name = key.split(".", 1)
            table.setdefault(section, {})[name] = value
        self.config = iotlight.parse_config(table, str(folder / "iotlight.toml"))
        self.store = iotlight.Store(self.config.state_file, room.clock)
        self.store.bind_device(self.address, room.chain.asset)
        self.paid: Dict[str, int] = {}  # payment id -> units sent to this device
        self.credits: List[str] = []  # payment ids, each time the ledger credited one
        self.daemon: Optional[iotlight.Daemon] = None
        self.task: Optional[asyncio.Task] = None
        self.client: Optional[iotlight.NodeClient] = None

    async def _build(self) -> None:
        clock = self.room.clock
        self.client = iotlight.NodeClient(
            self.config.node_urls,
            timeout=self.config.timeout,
            chain_id="T",
            clock=clock,
            transport=self.room.node.transport(self.index),
        )
        self.daemon = iotlight.Daemon(
            self.config,
            self.keys,
            node=self.client,
            store=self.store,
            hardware=FakeHardware(clock),
            clock=clock,
            notify=lambda message: True,
        )
        credited = self.daemon._on_credited

        def counted(credits: List[iotlight.Credit], span: Any) -> None:
            self.credits.extend(c.id for c in credits)
            credited(credits, span)

        self.daemon._on_credited = counted
        self.task = asyncio.ensure_future(self.daemon.run())

    def stop(self) -> None:
        loop = self.room.loop
        if self.task is not None and self.daemon is not None:
            self.daemon.stop.set()
            loop.run_until_complete(asyncio.wait([self.task], timeout=120))
            assert self.task.done() and self.task.result() == 0, "the daemon did not stop cleanly"
            self.task = None
        if self.client is not None:
            loop.run_until_complete(self.client.aclose())
            self.client = None

    def restart(self, after: float = 0.0) -> None:
        """Stop this daemon, let `after` seconds pass, start a new one on the same state file."""
        self.stop()
        self.room.run_for(after)
        self.room.loop.run_until_complete(self._build())

    def credited(self) -> Dict[str, int]:
        """Payment id -> amount, as the state file holds them."""
        return {p["id"]: p["amount"] for p in self.store.recent_payments(10**6)}

    def each_once(self) -> bool:
        """Every payment sent to this device credited, each exactly once."""
        return self.credited() == self.paid and sorted(self.credits) == sorted(self.paid)


class Classroom:
    """`size` whole Daemons on ONE VirtualLoop, switched on together, sharing one in-process fake
    node behind `pool` (a fakenode.Pool; its clock becomes the virtual clock). Every setting is a
    config key with "." written "__", for every device."""

    def __init__(self, folder: Path, size: int, *, pool: Optional[Pool] = None, **settings: Any):
        self.folder = folder
        self.loop = VirtualLoop()
        self.clock = VirtualClock(self.loop)
        self.node = new_chain(self.clock, pool)
        self.chain, self.pool = self.node.chain, pool
        self.desks = [Desk(self, i, settings) for i in range(size)]
        self.switched_on = self.clock.monotonic()
        self.miner: Optional[asyncio.Future] = None

    def start(self) -> "Classroom":
        """Switch every device on at the same instant."""

        async def build() -> None:
            for desk in self.desks:
                await desk._build()

        self.loop.run_until_complete(build())
        self.switched_on = self.clock.monotonic()
        return self

    def run_for(self, seconds: float) -> None:
        self.loop.run_until_complete(asyncio.sleep(seconds))
        for desk in self.desks:
            if desk.task is not None and desk.task.done():
                raise AssertionError("daemon %d stopped: %r" % (desk.index, desk.task.result()))

    def run_until(self, condition: Callable[[], Any], timeout: float, what: str, step: float = 0.5) -> float:
        """Daemon time until `condition()` holds; AssertionError after `timeout` seconds of it."""
        return run_until(self.clock, self.run_for, condition, timeout, what, step)

    def mine_every(self, seconds: float) -> None:
        """A block every `seconds` of daemon time from now on (a chain of one-minute blocks: 60)."""

        async def blocks() -> None:
            while True:
                await asyncio.sleep(seconds)
                self.chain.mine()

        self.miner = self.loop.create_task(blocks())

    def pay(self, desk: Desk, units: int) -> str:
        txid = self.chain.transfer(self.chain.treasury, desk.address, units, asset_id=self.chain.asset)["id"]
        desk.paid[txid] = units
        return txid

    def stop(self) -> None:
        for desk in self.desks:
            desk.stop()
        if self.miner is not None:
            self.miner.cancel()
            self.loop.run_until_complete(asyncio.gather(self.miner, return_exceptions=True))
            self.miner = None

    def close(self) -> None:
        try:
            self.stop()
        finally:
            try:
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            finally:
                for desk in self.desks:
                    desk.store.close()
                self.loop.close()

    def __enter__(self) -> "Classroom":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Rig:
    """A Watcher alone in this process against the in-process fake node (behind `pool`, if any), on
    the virtual clock: poll by poll. Its `told` holds what it told the daemon: (kind, fields)."""

    def __init__(self, tmp_path: Path, *, pool: Optional[Pool] = None, **node_settings: Any):
        settings = {"list_rate": 0, "poll_interval": 1.0}
        settings.update(node_settings)
        self.clock = VirtualClock()
        self.loop = self.clock.loop
        self.node = new_chain(self.clock, pool)
        self.chain = chain = self.node.chain
        self.config = iotlight.parse_config(
            {"node": dict(settings, urls=[URL]), "payment": {"asset_id": chain.asset}},
            str(tmp_path / "x.toml"),
        )
        self.address = iotlight.keypair_from_seed(DEVICE_SEED).address("T")
        self.store = iotlight.Store(str(tmp_path / "state.db"), self.clock)
        self.store.bind_device(self.address, chain.asset)
        self.told: List[Any] = []
        self.client = iotlight.NodeClient(
            [URL], timeout=5.0, chain_id="T", clock=self.clock, transport=self.node.transport()
        )
        self.watcher = iotlight.Watcher(
            self.config,
            self.address,
            node=self.client,
            store=self.store,
            clock=self.clock,
            tell=lambda kind, **fields: self.told.append((kind, fields)),
            light_span=lambda: (0.0, 0.0),
        )

    def poll(self, n: int = 1, step: float = 1.0) -> None:
        """n polls, `step` seconds of daemon time apart (a list read a poll left running goes on)."""
        for _ in range(n):
            self.loop.run_until_complete(self.watcher.poll_once())
            self.loop.run_until_complete(asyncio.sleep(step))

    def requests_since(self, mark: int, prefix: str) -> List[Request]:
        return [r for r in self.chain.requests[mark:] if r.path.startswith(prefix)]

    def credits(self) -> List[str]:
        """Payment ids, each time the ledger credited one."""
        return [c.id for kind, f in self.told if kind == "credited" for c in f["credits"]]

    def close(self) -> None:
        self.watcher.cancel_list_read()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()
        self.store.close()


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    yield r
    r.close()


def paid(rig: Rig) -> Dict[str, int]:
    """Payment id -> amount in the state file; each also credited exactly once."""
    found = dict(rig.store.db.execute("SELECT id, amount FROM payments").fetchall())
    assert sorted(rig.credits()) == sorted(found), "a payment credited twice"
    return found


# --- the one back-off ------------------------------------------------------------------------


def test_backoff_halves_the_rate_on_failure_honours_retry_after_and_recovers_step_by_step():
    """Backoff: each failure doubles the gap (Retry-After a floor), each success adds back to the rate
    step by step, and every gap is jittered, never longer than asked."""
    b = iotlight.Backoff(1.0, 60.0, random.Random(3), recover=4, spread=0.2)
    waits = [b.failure() for _ in range(3)]
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0 and 2.0 <= waits[2] <= 4.0
    assert b.failure(retry_after=30) >= 30, "a Retry-After is a floor"
    assert b.gap == 16.0
    gaps = []
    for _ in range(12):
        b.success()
        gaps.append(b.gap)
    assert gaps == sorted(gaps, reverse=True) and gaps[0] > 1.0, "additive increase: step by step"
    assert gaps[-1] == 1.0, "back to the base gap once the node allows it"
    assert all(0.8 <= b.interval() <= 1.0 for _ in range(100))  # jittered, never longer than asked
    assert len({round(b.interval(), 6) for _ in range(20)}) > 10, "every gap jittered"


def test_polls_of_many_devices_do_not_stay_in_lockstep():
    """Thirty devices started in the same second: after a minute their polls are spread out."""
    pacers = [iotlight.Backoff(1.0, 60.0, recover=10, spread=0.2) for _ in range(30)]
    t = [0.0] * 30
    for _ in range(60):
        t = [x + p.interval() for x, p in zip(t, pacers)]
    phases = sorted(x % 1.0 for x in t)
    crowded = max(sum(1 for p in phases if a <= p < a + 0.1) for a in phases)
    assert crowded < 15, "more than half of the class still polls within the same 100 ms: %s" % phases


async def _new_event() -> asyncio.Event:
    return asyncio.Event()


def test_watcher_backs_off_on_429_and_503_and_recovers(tmp_path):
    """The pool answers 429 (Retry-After 2) and 503: the gap grows at least to Retry-After; once it
    answers again the gap comes back to node.poll_interval step by step."""
    r = Rig(tmp_path)
    chain, waits = r.chain, []
    stop = r.loop.run_until_complete(_new_event())  # on 3.9 an Event binds the loop it is made in
    wait = r.watcher.pulse.wait

    async def recorded(stop_event, timeout, wake=None):
        waits.append(timeout)
        if len(waits) == 4:
            chain.fail("429", count=3, retry_after=2)
        if len(waits) == 7:
            chain.fail("503", count=2)
        if len(waits) >= 40:
            stop.set()
        await wait(stop_event, timeout, wake)

    r.watcher.pulse.wait = recorded
    try:
        r.loop.run_until_complete(r.watcher.run(stop))
    finally:
        r.close()
    assert all(0.8 <= w <= 1.0 for w in waits[:4]), waits
    throttled = waits[4:9]
    assert max(throttled) >= 2.0, "Retry-After honoured: %s" % throttled
    assert max(waits[4:12]) > 3.0, "the gap grew while the pool refused: %s" % waits
    assert all(w <= 1.0 for w in waits[-5:]), "back to the poll interval: %s" % waits
    later = waits[9:]
    assert any(1.3 < w for w in later[:5]), "recovery is gradual (additive), not a jump: %s" % waits


# --- payments found in blocks ----------------------------------------------------------------


def test_payment_is_found_in_the_newest_block_without_the_list_route(rig):
    """A payment in the liquid block, and one sealed in the block below the top, are credited from
    the blocks without an address-list read; the sweep's list read later doubles nothing."""
    chain = rig.chain
    rig.poll(3)  # the first complete list read after the start
    assert not rig.watcher.dirty
    mark = len(chain.requests)
    txid = chain.transfer(chain.treasury, rig.address, 250, asset_id=chain.asset)["id"]
    rig.poll()
    assert paid(rig) == {txid: 250}
    assert rig.requests_since(mark, LIST) == [], "no address-list read for a payment the blocks show"
    assert rig.requests_since(mark, "/blocks/last")
    chain.mine()
    second = chain.transfer(chain.treasury, rig.address, 100, asset_id=chain.asset)["id"]
    chain.mine()  # sealed in the block below the top when the device asks
    rig.poll(3)
    assert paid(rig) == {txid: 250, second: 100}
    assert rig.requests_since(mark, LIST) == []
    rig.poll(400)  # the sweep reads the list once in a while: nothing doubles
    assert paid(rig) == {txid: 250, second: 100}
    assert 1 <= len(rig.requests_since(mark, LIST)) <= 3


def test_idle_polls_ask_only_the_balance_and_seldom_the_height(rig):
    """An idle minute: the balance every poll; the height and the newest block only every
    HEIGHT_INTERVAL (the pools cache the height that long); no list read."""
    chain = rig.chain
    rig.poll(3)
    mark = len(chain.requests)
    rig.poll(60)
    routes = [r.path for r in chain.requests[mark:]]
    balance = sum(1 for p in routes if p.startswith("/assets/balance/"))
    height = sum(1 for p in routes if p == "/blocks/height")
    newest = sum(1 for p in routes if p == "/blocks/last")
    due = 60 / iotlight.HEIGHT_INTERVAL
    assert balance == 60
    assert due - 1 <= height <= due + 1, "the height every 15 s, not every poll (%d)" % height
    assert due - 1 <= newest <= due + 1, "the newest block every 15 s, not every poll (%d)" % newest
    assert not any(p.startswith(LIST) or p.startswith("/blocks/at/") for p in routes)


def test_a_throttled_list_read_waits_without_costing_every_poll_more_requests(rig):
    """While the pool refuses the address list, the polls go on as before (balance only, the height
    every 15 s): the deferred list read does not make each poll ask the aliases and the height
    (a class of ten asked them every second on the pool), and a payment is still found in blocks."""
    chain = rig.chain
    rig.poll(3)
    chain.fail("429", paths=[LIST])
    rig.poll(400)  # a sweep falls due; its list read is refused
    assert rig.node.answers(LIST, status=429), "the sweep's list read was refused"
    mark = len(chain.requests)
    rig.poll(60)
    routes = [r.path for r in chain.requests[mark:]]
    assert sum(1 for p in routes if p.startswith("/alias/")) <= 1
    assert sum(1 for p in routes if p == "/blocks/height") <= 8
    assert sum(1 for p in routes if p.startswith(LIST)) <= 3, "the list read backs off"
    assert sum(1 for p in routes if p.startswith("/assets/balance/")) == 60, "the polls go on"
    txid = chain.transfer(chain.treasury, rig.address, 40, asset_id=chain.asset)["id"]
    rig.poll()
    assert paid(rig) == {txid: 40}


def test_a_list_read_held_in_the_pools_queue_does_not_hold_up_the_polls(rig):
    """nginx queues list reads beyond 17 a minute per IP (up to a minute): meanwhile the polls go
    on and a payment is credited from the blocks while that read is still waiting."""
    chain = rig.chain
    rig.poll(3)
    chain.fail("hang", count=1, paths=[LIST], hang_seconds=20)
    rig.watcher.next_sweep = rig.clock.monotonic()  # a sweep is due: its list read hangs
    rig.poll()
    assert rig.watcher.list_task is not None and not rig.watcher.list_task.done()
    txid = chain.transfer(chain.treasury, rig.address, 30, asset_id=chain.asset)["id"]
    rig.poll(2)
    assert paid(rig) == {txid: 30}
    assert not rig.watcher.list_task.done(), "credited while the list read still waits"


def test_a_balance_the_blocks_do_not_explain_is_left_to_the_list_read(rig):
    """A payment deeper than the blocks searched (the device missed several blocks) is still found:
    the list read takes over after a grace period."""
    chain = rig.chain
    rig.poll(3)
    txid = chain.transfer(chain.treasury, rig.address, 70, asset_id=chain.asset)["id"]
    chain.mine(iotlight.SCAN_DEPTH + 3)
    mark = len(chain.requests)
    rig.poll(int(iotlight.UNEXPLAINED_GRACE) + 3)
    assert paid(rig) == {txid: 70}
    assert len(rig.requests_since(mark, LIST)) >= 1


def rolled_back_and_back(rig: Rig) -> tuple:
    """A payment credited from the liquid block is rolled back and comes back above a newer one."""
    chain = rig.chain
    chain.mine(3)
    rig.poll(3)
    first = chain.transfer(chain.treasury, rig.address, 100, asset_id=chain.asset)["id"]
    rig.poll()
    assert paid(rig) == {first: 100}
    chain.rollback(1, to_utx=True)  # the first payment waits in the pool again
    rig.poll(2)
    later = chain.transfer(chain.treasury, rig.address, 200, asset_id=chain.asset)["id"]
    chain.include_utx()  # ...and comes back after the later one
    rig.poll(int(iotlight.UNEXPLAINED_GRACE) + 4)
    assert paid(rig) == {first: 100, later: 200}
    chain.mine()
    rig.poll(400)
    return first, later


def test_detection_via_blocks_across_a_rollback_is_exactly_once(rig):
    """A payment credited from the liquid block is rolled back and comes back above a newer one:
    each is credited once; the fall and rise of the balance do not double anything."""
    first, later = rolled_back_and_back(rig)
    assert paid(rig) == {first: 100, later: 200}


def test_after_a_rollback_and_back_the_list_reads_settle(rig, caplog):
    """After the payment rolled back came back and was credited once, the watcher settles: nothing is
    owed and no further list read is wanted, also past FALL_QUIET after the fall, through sweeps."""
    caplog.set_level(logging.INFO, "iotlight")
    first, later = rolled_back_and_back(rig)
    assert rig.watcher.book.owed == 0
    assert not rig.watcher.dirty
    mark, owed = len(rig.chain.requests), []
    for _ in range(int(iotlight.FALL_QUIET / 5) + 60):  # 15 minutes more, polls 5 s apart
        rig.poll(step=5.0)
        owed.append(rig.watcher.book.owed)
    assert rig.requests_since(mark, LIST), "sweeps read the list again"
    assert set(owed) == {0} and not rig.watcher.dirty
    assert "more than the payments the node lists" not in caplog.text
    assert paid(rig) == {first: 100, later: 200}


def test_with_confirmations_a_block_payment_rolled_back_before_it_counts_never_lights(tmp_path):
    """node.confirmations = 1: a payment seen in the newest block waits; rolled back before its
    confirmation it is never credited, while a later one is."""
    r = Rig(tmp_path, confirmations=1)
    try:
        chain = r.chain
        chain.mine(3)
        r.poll(3)
        gone = chain.transfer(chain.treasury, r.address, 100, asset_id=chain.asset)["id"]
        r.poll()
        assert paid(r) == {} and gone in r.watcher.ledger.pending, (
            "seen in the block, waiting for a confirmation"
        )
        chain.rollback(1)  # it vanishes before its confirmation
        chain.mine()
        kept = chain.transfer(chain.treasury, r.address, 50, asset_id=chain.asset)["id"]
        r.poll(3)
        chain.mine()
        r.poll(int(iotlight.HEIGHT_INTERVAL + iotlight.UNEXPLAINED_GRACE) + 5)
        assert paid(r) == {kept: 50}
    finally:
        r.close()


# --- the fake pool ---------------------------------------------------------------------------


def test_pool_queues_a_burst_then_answers_429_and_503_like_nginx():
    """fakenode.Pool: a list burst of 17 queued at 17 a minute, then 429; the bucket drains at its
    rate; more simultaneous requests than a route allows get 503."""
    now = [0.0]
    pool = Pool(clock=lambda: now[0])
    verdicts = [pool.admit("/transactions/address/3M/limit/50") for _ in range(19)]
    assert [v for v, _ in verdicts[:18]] == ["ok"] * 18 and verdicts[18][0] == "429"
    assert verdicts[1][1] == pytest.approx(60 / 17), "queued requests wait their turn at 17 a minute"
    now[0] += 60.0
    assert pool.admit("/transactions/address/3M/limit/50")[0] == "ok", "the bucket drains at its rate"
    for _ in range(15):
        assert pool.admit("/blocks/height")[0] == "ok"
    assert pool.admit("/blocks/height")[0] == "503", "15 simultaneous requests per IP on the route"
    pool.leave("/blocks/height")
    assert pool.admit("/blocks/height")[0] == "ok"
    assert pool.refused() == {"list": 1, "height": 1}


def test_pool_over_http_caches_answers_and_refuses_with_the_nginx_page():
    """The fake node's HTTP server behind the pool: a balance is served from the 3-second cache
    until it expires (on the pool's own clock), and the 19th list read at once gets nginx's 429 page."""
    from harness import start_chain

    now = [0.0]
    pool = Pool(nodelay=True, clock=lambda: now[0])
    chain = start_chain("T", pool=pool)
    try:
        device = iotlight.keypair_from_seed(DEVICE_SEED).address("T")
        path = "/assets/balance/%s/%s" % (device, chain.asset)
        url = chain.url + path
        with httpx.Client() as c:
            assert c.get(url).json()["balance"] == 0
            # the server thread keeps an answer in the cache once it is sent: before time moves on
            wait_until(lambda: path in pool.cache, 10, what="the answer in the pool's cache")
            chain.transfer(chain.treasury, device, 5, asset_id=chain.asset)
            now[0] += 2.9
            assert c.get(url).json()["balance"] == 0, "the pool serves its 3-second cache"
            now[0] += 0.2
            assert c.get(url).json()["balance"] == 5
            answers = [c.get("%s/transactions/address/%s/limit/1" % (chain.url, device)) for _ in range(19)]
        assert [a.status_code for a in answers[:18]] == [200] * 18
        assert (
            answers[18].status_code == 429
            and "<center><h1>429 Too Many Requests</h1></center>" in answers[18].text
        )
    finally:
        chain.stop()


def test_fake_node_plays_a_custom_chain(tmp_path):
    """An own node on its own chain id (the private node image uses "R"): addresses and the
    daemon's checks follow node.chain_id."""
    with Scenario(tmp_path, chain_id="R") as s:
        chain = s.node.chain
        assert s.address.startswith("3") and iotlight.chain_of_address(s.address) == "R"
        s.run_for(10)
        txid = s.pay(5)
        s.run_until(lambda: s.credited() == {txid: 500}, 90, "the payment on chain R")
        treasury = iotlight.keypair_from_seed(TREASURY_SEED)
        with pytest.raises(ValueError, match="not .R."):  # the fake node signs with tests/reference.py
            chain.transfer(
                treasury, iotlight.keypair_from_seed(DEVICE_SEED).address("T"), 5, asset_id=s.asset
            )


# --- a class behind one IP -------------------------------------------------------------------


def test_no_payment_lost_or_doubled_while_the_pool_throttles(tmp_path):
    """Six daemons polling fast behind a pool tighter than the public one: it refuses requests,
    the daemons back off, and every payment is credited once, to its device."""
    routes = tuple(
        (name, rx, conns, rate / 4, max(2, burst // 8), ttl)
        for name, rx, conns, rate, burst, ttl in POOL_ROUTES
    )
    pool = Pool(routes, nodelay=True)
    room = Classroom(
        tmp_path, 6, pool=pool, node__poll_interval=0.5, node__list_rate=15, node__sweep_interval=20.0
    )
    with room:
        chain = room.chain
        room.run_for(3.0)
        rng = random.Random(15)
        for _ in range(18):
            room.pay(rng.choice(room.desks), rng.randint(1, 50))
            if rng.random() < 0.2:
                chain.mine()
            room.run_for(rng.uniform(0.2, 1.0))
        chain.mine()
        room.run_until(
            lambda: all(d.credited() == d.paid for d in room.desks),
            150,
            "every payment credited to its device",
        )
        assert pool.refused(), "the pool never refused anything: the test did not throttle"
        room.run_for(60.0)  # three sweeps more
        assert all(d.each_once() for d in room.desks), "nothing doubled afterwards"
        assert sum(len(d.paid) for d in room.desks) == 18


def test_the_outbox_reads_its_own_few_entries_on_the_single_key_route(tmp_path):
    """The outbox's start-up check (joystick_count) and its count check after a press ask one key
    per request on /addresses/data/{address}/{key} (20 a second per IP on the public pool), never
    the address's data route, which the pool holds to 17 a minute per IP: thirty devices starting
    behind one IP got 124 429s there. Many keys at once (a state file that lost writes) still go 25
    to a request on that route."""
    import re

    data_route = re.compile(dict((r[0], r[1]) for r in POOL_ROUTES)["data"])
    with Scenario(tmp_path, data__coalesce_window=0.0) as s:
        s.run_for(10)
        s.hw.press("up")
        s.run_for(120)
        assert s.node.chain.data_entries(s.address)["joystick_count"]["value"] == 1
        reads = [r for r in s.node.chain.requests if r.path.startswith("/addresses/data/")]
        assert [r for r in reads if data_route.match(r.path)] == []
        assert any(r.path == "/addresses/data/%s/joystick_count" % s.address for r in reads)

        async def written(keys):
            return await s.daemon.outbox._written(keys)

        keys = ["joystick_%d" % i for i in range(1, 31)] + ["joystick_count"]
        found = s.loop.run_until_complete(written(keys))
        assert found["joystick_count"] == 1 and "joystick_1" in found and "joystick_2" not in found
        batched = [r for r in s.node.chain.requests if data_route.match(r.path)]
        assert len(batched) == 2  # 31 keys: 25 + 6
