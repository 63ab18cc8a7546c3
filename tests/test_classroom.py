"""A class of devices behind one IP on a public node pool: payments found in the newest blocks
(not through the address-list route the pool allows 17 times a minute per IP), polls that back
off on 429/503 and come back, jitter so devices do not poll in lockstep, and the fake pool."""

import asyncio
import random
import time

import httpx
import pytest
from fakenode import POOL_ROUTES, Pool
from harness import (
    DEVICE_SEED,
    TREASURY_SEED,
    Device,
    FakeClock,
    credited,
    poll_settled,
    start_chain,
    wait_until,
)

import iotlight

pytestmark = pytest.mark.timeout(240)

LIST = "/transactions/address/"


class Rig:
    """A Watcher in this process against a real fake node, on a fake clock: poll by poll."""

    def __init__(self, chain, tmp_path, **node_settings):
        settings = {"list_rate": 0, "poll_interval": 1.0}
        settings.update(node_settings)
        self.config = iotlight.parse_config(
            {"node": dict(settings, urls=[chain.url]), "payment": {"asset_id": chain.asset}},
            str(tmp_path / "x.toml"),
        )
        self.keys = iotlight.keypair_from_seed(DEVICE_SEED)
        self.address = self.keys.address("T")
        self.chain = chain
        self.clock = FakeClock()
        self.store = iotlight.Store(str(tmp_path / "state.db"))
        self.store.bind_device(self.address, chain.asset)
        self.credits = []
        self.loop = asyncio.new_event_loop()
        self.node = iotlight.NodeClient([chain.url], timeout=5.0, clock=self.clock)
        self.watcher = iotlight.Watcher(
            self.config,
            self.address,
            node=self.node,
            store=self.store,
            clock=self.clock,
            on_credit=self.credits.extend,
            on_height=lambda h: None,
            on_balance=lambda t, c: None,
            light_span=lambda: (0.0, 0.0),
        )

    def poll(self, n=1, step=1.0, settle=True):
        """n polls, step fake seconds apart; each waits for its list read unless settle is False."""
        for _ in range(n):
            self.loop.run_until_complete(poll_settled(self.watcher) if settle else self.watcher.poll_once())
            self.clock.mono += step

    def requests_since(self, mark, prefix):
        return [r for r in self.chain.requests[mark:] if r.path.startswith(prefix)]

    def close(self):
        self.watcher.cancel_list_read()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.run_until_complete(self.node.aclose())
        self.loop.close()
        self.store.close()


@pytest.fixture
def rig(chain, tmp_path):
    r = Rig(chain, tmp_path)
    yield r
    r.close()


def paid(rig):
    return dict(rig.store.db.execute("SELECT id, amount FROM payments").fetchall())


# --- the one back-off ------------------------------------------------------------------------


def test_backoff_halves_the_rate_on_failure_honours_retry_after_and_recovers_step_by_step():
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


def test_watcher_backs_off_on_429_and_503_and_recovers(chain, tmp_path, monkeypatch):
    """The pool answers 429 (Retry-After 2) and 503: the gap grows at least to Retry-After; once it
    answers again the gap comes back to node.poll_interval step by step."""
    r = Rig(chain, tmp_path)
    waits = []
    stop = asyncio.Event()

    async def fake_wait(stop_event, timeout):
        waits.append(timeout)
        r.clock.mono += timeout
        if len(waits) == 4:
            chain.fail("429", count=3, retry_after=2)
        if len(waits) == 7:
            chain.fail("503", count=2)
        if len(waits) >= 40:
            stop.set()

    monkeypatch.setattr(iotlight, "_wait_or_stop", fake_wait)
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
    chain = rig.chain
    rig.poll(3)
    mark = len(chain.requests)
    rig.poll(60)
    routes = [r.path for r in chain.requests[mark:]]
    balance = sum(1 for p in routes if p.startswith("/assets/balance/"))
    height = sum(1 for p in routes if p == "/blocks/height")
    assert balance == 60
    assert 3 <= height <= 5, "the height every 15 s, not every poll (%d)" % height
    assert not any(p.startswith(LIST) or p.startswith("/blocks/last") for p in routes)


def test_a_throttled_list_read_waits_without_costing_every_poll_more_requests(rig):
    """While the pool refuses the address list, the polls go on as before (balance only, the height
    every 15 s): the deferred list read does not make each poll ask the aliases and the height
    (a class of ten asked them every second on the pool), and a payment is still found in blocks."""
    chain = rig.chain
    rig.poll(3)
    chain.fail("429", duration=3600, paths=[LIST])
    rig.poll(400)  # a sweep falls due; its list read is refused
    mark = len(chain.requests)
    rig.poll(60)
    routes = [r.path for r in chain.requests[mark:]]
    assert sum(1 for p in routes if p.startswith("/alias/")) <= 1
    assert sum(1 for p in routes if p == "/blocks/height") <= 8
    assert sum(1 for p in routes if p.startswith(LIST)) <= 3, "the list read backs off"
    txid = chain.transfer(chain.treasury, rig.address, 40, asset_id=chain.asset)["id"]
    rig.poll()
    assert paid(rig) == {txid: 40}
    chain.clear_faults()


def test_a_list_read_held_in_the_pools_queue_does_not_hold_up_the_polls(rig):
    """nginx queues list reads beyond 17 a minute per IP (up to a minute): meanwhile the polls go
    on and a payment is credited from the blocks while that read is still waiting."""
    chain = rig.chain
    rig.poll(3)
    chain.fail("hang", count=1, paths=[LIST], hang_seconds=20)
    rig.watcher.next_sweep = rig.clock.mono  # a sweep is due: its list read hangs
    rig.poll(settle=False)
    assert rig.watcher.list_task is not None and not rig.watcher.list_task.done()
    txid = chain.transfer(chain.treasury, rig.address, 30, asset_id=chain.asset)["id"]
    rig.poll(2, settle=False)
    assert paid(rig) == {txid: 30}
    assert not rig.watcher.list_task.done(), "credited while the list read still waits"
    chain.clear_faults()


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


def test_detection_via_blocks_across_a_rollback_is_exactly_once(rig):
    """A payment credited from the liquid block is rolled back and comes back above a newer one:
    each is credited once; the fall and rise of the balance do not double anything."""
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
    assert paid(rig) == {first: 100, later: 200}
    assert not rig.watcher.dirty


def test_with_confirmations_a_block_payment_rolled_back_before_it_counts_never_lights(chain, tmp_path):
    r = Rig(chain, tmp_path, confirmations=1)
    try:
        chain.mine(3)
        r.poll(3)
        gone = chain.transfer(chain.treasury, r.address, 100, asset_id=chain.asset)["id"]
        r.poll()
        assert paid(r) == {} and gone in r.watcher.pending, "seen in the block, waiting for a confirmation"
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


def test_pool_over_http_caches_answers_and_refuses_with_the_nginx_page(tmp_path):
    chain = start_chain("T", pool=Pool(nodelay=True))
    try:
        device = iotlight.keypair_from_seed(DEVICE_SEED).address("T")
        url = "%s/assets/balance/%s/%s" % (chain.url, device, chain.asset)
        with httpx.Client() as c:
            assert c.get(url).json()["balance"] == 0
            chain.transfer(chain.treasury, device, 5, asset_id=chain.asset)
            assert c.get(url).json()["balance"] == 0, "the pool serves its 3-second cache"
            time.sleep(3.2)
            assert c.get(url).json()["balance"] == 5
            answers = [c.get("%s/transactions/address/%s/limit/1" % (chain.url, device)) for _ in range(19)]
        assert [a.status_code for a in answers[:18]] == [200] * 18
        assert (
            answers[18].status_code == 429
            and "<center><h1>429 Too Many Requests</h1></center>" in answers[18].text
        )
    finally:
        chain.stop()


def test_fake_node_plays_a_custom_chain():
    """An own node on its own chain id (the private node image uses "R"): addresses and the
    daemon's checks follow node.chain_id."""
    chain = start_chain("R")
    try:
        treasury = iotlight.keypair_from_seed(TREASURY_SEED)
        device = iotlight.keypair_from_seed(DEVICE_SEED).address("R")
        chain.transfer(treasury, device, 5, asset_id=chain.asset)
        assert chain.balance(device, chain.asset) == 5
        with pytest.raises(ValueError, match="not .R."):  # the fake node signs with tests/reference.py
            chain.transfer(
                treasury, iotlight.keypair_from_seed(DEVICE_SEED).address("T"), 5, asset_id=chain.asset
            )
    finally:
        chain.stop()


# --- a class behind one IP -------------------------------------------------------------------


def test_no_payment_lost_or_doubled_while_the_pool_throttles(tmp_path):
    """Six daemons polling fast behind a pool tighter than the public one: it refuses requests,
    the daemons back off, and every payment is credited once, to its device."""
    routes = tuple(
        (name, rx, conns, rate / 4, max(2, burst // 8), ttl)
        for name, rx, conns, rate, burst, ttl in POOL_ROUTES
    )
    pool = Pool(routes, nodelay=True)
    chain = start_chain("T", pool=pool)
    devices = []
    try:
        for i in range(6):
            d = Device(
                tmp_path / ("d%d" % i),
                chain.url,
                chain.asset,
                seed="classroom test device %d, throwaway" % i,
                node__poll_interval=0.5,
                node__list_rate=15,
                node__sweep_interval=20.0,
            )
            chain.fund(d.address, waves=10**9)
            devices.append(d)
        for d in devices:
            d.start()
        wait_until(lambda: all("running: address" in d.output() for d in devices), 60, what="all daemons")
        time.sleep(3.0)
        rng = random.Random(15)
        expected = {d.address: {} for d in devices}
        for _ in range(18):
            d = rng.choice(devices)
            amount = rng.randint(1, 50)
            txid = chain.transfer(chain.treasury, d.address, amount, asset_id=chain.asset)["id"]
            expected[d.address][txid] = amount
            if rng.random() < 0.2:
                chain.mine()
            time.sleep(rng.uniform(0.2, 1.0))
        chain.mine()
        wait_until(
            lambda: all(credited(d) == expected[d.address] for d in devices),
            150,
            interval=0.5,
            what="every payment credited to its device",
        )
        assert pool.refused(), "the pool never refused anything: the test did not throttle"
        time.sleep(3.0)
        assert all(credited(d) == expected[d.address] for d in devices), "nothing doubled afterwards"
    finally:
        for d in devices:
            d.stop()
        chain.stop()


def test_the_outbox_reads_its_own_few_entries_on_the_single_key_route(tmp_path):
    """The outbox's start-up check (joystick_count) and its count check after a press ask one key
    per request on /addresses/data/{address}/{key} (20 a second per IP on the public pool), never
    the address's data route, which the pool holds to 17 a minute per IP: thirty devices starting
    behind one IP got 124 429s there. Many keys at once (a state file that lost writes) still go 25
    to a request on that route."""
    import re

    from scenario import Scenario

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
