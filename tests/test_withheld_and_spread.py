"""What a class on a public pool meets that a single device on its own node does not, all on the
virtual clock (test_classroom's Classroom: whole Daemons on one VirtualLoop, one in-process fake
node, optionally behind fakenode.Pool): a pool member that hides a confirmed payment while the
balance counts it (the BalanceBook's `owed` proof), a counterfeit token reported from the newest
blocks and what that watching costs an hour, and thirty devices switched on together behind the
strict pool."""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
from pathlib import Path

import pytest
from fakenode import Pool
from harness import STRANGER_SEED
from test_classroom import LIST, Classroom, Rig

import iotlight


@pytest.fixture(autouse=True)
def quiet_httpx():
    logging.getLogger("httpx").setLevel(logging.WARNING)


@pytest.fixture
def folder(tmp_path):
    """A folder for the state files: in RAM when /dev/shm is there (a class of thirty opens thirty
    SQLite files with synchronous=FULL: their fsyncs cost seconds on a disk, nothing in tmpfs)."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="iotlight-class-", dir=str(shm)))
    try:
        yield path
    finally:
        shutil.rmtree(str(path), ignore_errors=True)


def owed(desk) -> tuple:
    """The desk's owed units: (in the running BalanceBook, in the state file)."""
    return desk.daemon.watcher.book.owed, int(desk.store.get_meta("owed") or 0)


# --- 1. a payment withheld, then shown -------------------------------------------------------


def hide_one_behind_two(room):
    """Payment P hidden from every listing route, then Q1 and Q2 (shown) paid and buried under
    more than a reorg's depth of blocks; until P is owed. Returns (P, Q1, Q2, the desk)."""
    desk, chain = room.desks[0], room.chain
    room.run_for(30)  # the first read after the start is complete
    p = room.pay(desk, 100)
    chain.withhold(p)
    room.run_for(5)
    chain.mine()
    q1 = room.pay(desk, 200)
    room.run_for(5)
    chain.mine()
    q2 = room.pay(desk, 300)
    chain.mine(iotlight.REORG_MARGIN + 3)
    room.run_until(lambda: desk.credited() == {q1: 200, q2: 300}, 30, "Q1 and Q2 credited from the blocks")
    room.run_until(lambda: owed(desk) == (100, 100), 120, "P's units owed")
    assert p not in desk.credited()
    return p, q1, q2, desk


def test_a_payment_withheld_then_shown_is_credited_exactly_once(folder, caplog):
    """A pool member hides payment P from every listing while the balance counts it and newer Q1, Q2
    are credited: the complete reads prove P's units owed (a sweep inside the hiding owes nothing
    more), and once P is shown at its own height, below handled transactions where a read stops,
    the reads go past the stop and credit it exactly once; then nothing is owed."""
    caplog.set_level(logging.INFO, logger="iotlight")
    with Classroom(folder, 1, node__sweep_interval=60.0) as room:
        p, q1, q2, desk = hide_one_behind_two(room)
        watcher, chain = desk.daemon.watcher, room.chain
        sweep_due, reads = watcher.next_sweep, len(room.node.answers(LIST))
        room.run_for(300)
        assert room.clock.monotonic() > sweep_due, "a sweep fell due while P was hidden"
        assert len(room.node.answers(LIST)) > reads + 1, "the list was read while P was hidden"
        assert owed(desk) == (100, 100) and p not in desk.credited(), "owed once, not once per read"
        chain.release(p)
        room.run_until(lambda: p in desk.credited(), 600, "P credited")
        room.run_for(300)  # more sweeps: nothing doubles
        assert desk.credited() == {p: 100, q1: 200, q2: 300}
        assert sorted(desk.credits) == sorted([p, q1, q2]), "each credited exactly once"
        assert owed(desk) == (0, 0)
        assert "payment %s of 100 units was the one the balance showed: found" % p in caplog.text


def test_what_is_owed_survives_a_restart_during_the_hiding(folder):
    """The daemon restarts while P is hidden: the owed units come back from the state file, the first
    read after the start (100 blocks deep) still cannot see P, and once P is shown the reads go past
    the stop and credit it exactly once."""
    with Classroom(folder, 1, node__sweep_interval=60.0) as room:
        p, q1, q2, desk = hide_one_behind_two(room)
        desk.restart(after=30)
        assert owed(desk) == (100, 100), "kept in the state file"
        watcher = desk.daemon.watcher
        room.run_until(lambda: not watcher.verify_receipts, 60, "the first complete read after the start")
        room.run_for(120)
        assert p not in desk.credited() and owed(desk) == (100, 100)
        room.chain.release(p)
        room.run_until(lambda: p in desk.credited(), 600, "P credited after the restart")
        room.run_for(300)
        assert desk.credited() == {p: 100, q1: 200, q2: 300}
        assert sorted(desk.credits) == sorted([p, q1, q2]), "each credited exactly once"
        assert owed(desk) == (0, 0)


def test_a_payment_hidden_while_the_daemon_was_stopped_is_owed_at_the_next_start(folder):
    """P is paid and hidden while the daemon is stopped, Q after it: the balance the payments explained
    was kept in the state file, so the first complete read after the start proves P's units owed
    (anchoring on the new balance would take P as explained), and once P is shown it is credited."""
    with Classroom(folder, 1, node__sweep_interval=60.0) as room:
        desk, chain = room.desks[0], room.chain
        room.run_for(30)
        first = room.pay(desk, 50)
        chain.mine()
        room.run_until(lambda: first in desk.credited(), 30, "a payment before the stop")
        room.run_for(30)
        assert desk.store.get_meta("explained") == "50"
        desk.stop()
        p = room.pay(desk, 100)
        chain.withhold(p)
        chain.mine()
        q = room.pay(desk, 200)
        chain.mine(iotlight.REORG_MARGIN + 3)
        room.run_for(60)
        room.loop.run_until_complete(desk._build())
        room.run_until(lambda: owed(desk) == (100, 100), 300, "P's units owed after the start")
        assert desk.credited() == {first: 50, q: 200}
        chain.release(p)
        room.run_until(lambda: p in desk.credited(), 600, "P credited")
        room.run_for(120)
        assert desk.credited() == {first: 50, p: 100, q: 200} and owed(desk) == (0, 0)
        assert desk.store.get_meta("explained") == "350"


def test_a_new_token_forgets_what_the_old_balance_explained(tmp_path):
    """payment.asset_id changed: what the old token's balance explained or proved owed is dropped (it
    says nothing about the new token's balance); the payments credited stay."""
    store = iotlight.Store(str(tmp_path / "state.db"))
    store.bind_device("3Mdevice", "OLD")
    store.set_meta(explained=500, owed=100, owed_height=7)
    store.bind_device("3Mdevice", "OLD")
    assert store.get_meta("explained") == "500", "the same token: kept"
    store.bind_device("3Mdevice", "NEW")
    assert [store.get_meta(k) for k in ("explained", "owed", "owed_height")] == ["", "", ""]
    book = iotlight.BalanceBook(store, logging.getLogger("test"))
    assert (book.accounted, book.owed, book.owed_height) == (None, 0, 0)


def test_nothing_is_owed_when_no_payment_is_hidden(folder, caplog):
    """No false alarm: payments at random moments (in the liquid block, sealed, deeper than the
    blocks searched, during sweeps) never leave anything owed, and every payment is credited once."""
    caplog.set_level(logging.INFO, logger="iotlight")
    rng = random.Random(7)
    with Classroom(folder, 1, node__sweep_interval=20.0) as room:
        desk, chain = room.desks[0], room.chain
        room.run_for(30)
        most = 0
        for _ in range(40):
            room.pay(desk, rng.randint(1, 500))
            if rng.random() < 0.3:
                chain.mine(rng.choice([1, 1, 2, iotlight.SCAN_DEPTH + 2]))
            for _ in range(rng.randint(1, 20)):
                room.run_for(0.5)
                most = max(most, *owed(desk))
        chain.mine()
        room.run_until(desk.each_once, 120, "every payment credited")
        for _ in range(240):
            room.run_for(0.5)
            most = max(most, *owed(desk))
        assert desk.each_once()
        assert most == 0, "units owed although nothing was hidden"
        assert "more than the payments the node lists" not in caplog.text
        assert len(room.node.answers(LIST)) >= 10, "list reads (sweeps and unexplained rises) were made"


def test_nothing_is_owed_when_the_pool_lists_a_payment_before_its_cached_balance_shows_it(tmp_path, caplog):
    """Behind the public pool's caches a list read can show a payment up to 3 s before the balance
    does (lists cached 1 s, balances 3 s): the payment is credited once and, the balance catching up,
    it is accounted for, nothing is owed (also at the next complete read) and the list reads settle."""
    caplog.set_level(logging.INFO, logger="iotlight")
    rig = Rig(tmp_path, pool=Pool(nodelay=True), sweep_interval=3600)
    try:
        chain = rig.chain
        rig.poll(5)  # settled; the last poll's balance answer is in the pool's cache for 2 s more
        p = chain.transfer(chain.treasury, rig.address, 70, asset_id=chain.asset)["id"]
        rig.watcher.next_sweep = rig.clock.monotonic()  # a sweep falls due now: a fresh list read
        rig.poll()
        assert rig.credits() == [p], "the list showed it"
        assert rig.watcher.token_balance == 0 and chain.balance(rig.address, chain.asset) == 70, "cached"
        rig.poll(30)
        assert rig.credits() == [p]
        assert rig.watcher.token_balance == 70 and rig.watcher.book.accounted == 70, "accounted once shown"
        rig.watcher.next_sweep = rig.clock.monotonic()  # another complete read, the balance showing it
        rig.poll(30)
        assert rig.credits() == [p]
        assert "more than the payments the node lists" not in caplog.text
        assert rig.watcher.book.owed == 0 and not rig.watcher.dirty
    finally:
        rig.close()


def test_nothing_is_owed_after_a_payment_rolled_back_comes_back(folder, caplog):
    """A payment credited from the liquid block is rolled back (the balance falls) and comes back
    above a newer one: both credited once, and nothing is owed (no hidden payment to look for) at
    any time, also past FALL_QUIET after the fall, so the list reads settle."""
    caplog.set_level(logging.INFO, logger="iotlight")
    with Classroom(folder, 1) as room:
        desk, chain = room.desks[0], room.chain
        room.run_for(30)
        first = room.pay(desk, 100)
        room.run_until(lambda: first in desk.credited(), 10, "the first payment")
        chain.rollback(1, to_utx=True)
        room.run_for(5)
        later = room.pay(desk, 200)
        chain.include_utx()
        room.run_for(30)
        chain.mine()
        most = 0
        for _ in range(int(iotlight.FALL_QUIET) + 300):  # past FALL_QUIET after the fall, sweeps included
            room.run_for(1.0)
            most = max(most, *owed(desk))
        assert most == 0, "units owed although nothing was hidden"
        assert desk.credited() == {first: 100, later: 200} and sorted(desk.credits) == sorted([first, later])
        assert "more than the payments the node lists" not in caplog.text
        assert owed(desk) == (0, 0) and not desk.daemon.watcher.dirty


# --- 2. a counterfeit token on a chain of one-minute blocks ------------------------------------


def test_a_counterfeit_token_is_reported_within_a_minute_from_the_newest_blocks(folder, caplog):
    """A second token named like the device's, issued by another account, sent to the device on a
    chain of one-minute blocks with no sweep due: each transfer of it gets its `ignored` event
    (wrong_asset) and its log line within 60 s of daemon time, found in the newest blocks (no list
    read). What that watching costs on an idle chain: /blocks/last every HEIGHT_INTERVAL and one
    /blocks/at per new block, at most 3600/15 + 3600/60 = 300 requests a daemon hour."""
    caplog.set_level(logging.INFO, logger="iotlight")
    with Classroom(folder, 1, node__sweep_interval=3600.0) as room:
        desk, chain = room.desks[0], room.chain
        interval = desk.config.poll_interval
        room.mine_every(60.0)
        room.run_for(120)  # the start-up reads are done; the next sweep is an hour away
        start = len(room.node.seen)
        room.run_for(3600)
        hour = room.node.seen[start:]
        newest = sum(1 for s in hour if s.path == "/blocks/last")
        below = sum(1 for s in hour if s.path.startswith("/blocks/at/"))
        assert 3600 / (iotlight.HEIGHT_INTERVAL + interval) - 1 <= newest <= 3600 / iotlight.HEIGHT_INTERVAL
        assert below <= 3600 / 60, "one block below the newest per new block"
        assert newest + below <= 240 + 60

        stranger = iotlight.keypair_from_seed(STRANGER_SEED)
        chain.fund(stranger.address("T"), waves=10**9)
        fake = chain.issue_asset(stranger, "IoT-Light", 2, 10**6)
        assert chain.transaction(fake) and fake != chain.asset
        desk.daemon.watcher.next_sweep = room.clock.monotonic() + 3600  # no sweep before the end
        for phase in (0.0, 7.3, 29.0, 53.9):  # seconds into the next minute's block
            room.run_for(60 - (room.clock.monotonic() - room.switched_on) % 60 + phase)
            sent, reads = room.clock.monotonic(), len(room.node.answers(LIST))
            txid = chain.transfer(stranger, desk.address, 500, asset_id=fake)["id"]

            def told(txid=txid):
                return [m for m in desk.daemon.recent_ignored if m["id"] == txid]

            took = room.run_until(told, 60, "the ignored event of %s" % txid, step=0.25)
            assert took <= 60 and room.clock.monotonic() - sent <= 60
            assert told()[0]["reason"] == "wrong_asset" and told()[0]["asset_id"] == fake
            assert len(room.node.answers(LIST)) == reads, "found in the newest blocks, not the list"
            line = "transfer %s from %s (500 units of %s) lights nothing: wrong_asset" % (
                txid,
                stranger.address("T"),
                fake,
            )
            assert line in caplog.text
        assert desk.credited() == {}


# --- 3. thirty devices switched on together behind the strict pool ------------------------------

CLASS = 30


def test_thirty_devices_switched_on_together_behind_the_strict_pool(folder):
    """Thirty daemons switched on at the same instant behind Pool(shared_zone=True, nodelay=True)
    (429 at once beyond a burst, one zone for every 20 r/s route): every payment is credited once;
    the 429s on the one-off routes (/assets/details, /alias/by-address) never slow a balance poll
    (each Watcher's pace stays at node.poll_interval); and when the class is switched on again, its
    one-off start-up reads are spread over START_SPREAD seconds at the pool."""
    rng = random.Random(30)
    pool = Pool(shared_zone=True, nodelay=True)
    with Classroom(folder, CLASS, pool=pool) as room:
        interval = room.desks[0].config.poll_interval
        room.mine_every(60.0)
        room.run_for(1.0)
        for desk in room.desks:
            room.pay(desk, rng.randint(1, 500))
        later = sorted((rng.uniform(0, 50), i) for i in range(CLASS))
        for i, (at, who) in enumerate(later):
            room.run_for(at - (later[i - 1][0] if i else 0))
            room.pay(room.desks[who], rng.randint(1, 500))
        room.run_until(lambda: all(d.each_once() for d in room.desks), 240, "every payment credited")
        room.run_for(30)
        assert all(d.each_once() for d in room.desks), "nothing doubled afterwards"

        one_off = room.node.answers("/assets/details/", status=429) + room.node.answers(
            "/alias/by-address/", status=429
        )
        assert one_off, "the pool refused no one-off read: the test did not throttle them"
        for desk in room.desks:
            times = [s.mono for s in room.node.answers("/assets/balance/", who=desk.index)]
            gaps = [b - a for a, b in zip(times, times[1:])]
            assert max(gaps) <= interval * 1.05, "device %d's balance poll slowed: %.2f s" % (
                desk.index,
                max(gaps),
            )
            assert desk.daemon.watcher.pace.gap == interval
            assert times[0] - room.switched_on < interval

        room.stop()
        room.run_for(60)
        room.start()  # the next lesson: the state files know the token
        on = room.switched_on
        room.run_for(iotlight.START_SPREAD + 20)
        first = {}
        for s in room.node.seen:
            if s.mono >= on and s.path.startswith("/alias/by-address/"):
                first.setdefault(s.who, s.mono - on)
        assert sorted(first) == list(range(CLASS)), "each device read its aliases once the spread let it"
        times = sorted(first.values())
        # each waits a random moment up to START_SPREAD; one that a 429 of the start-up wave still
        # throttles is deferred by the learn loop's back-off: at most 5 s, then 10 s if throttled again
        assert times[-1] <= iotlight.START_SPREAD + 15.0, times
        assert sum(1 for t in times if t <= iotlight.START_SPREAD) >= 0.9 * CLASS, times
        assert times[-1] - times[0] >= iotlight.START_SPREAD / 2, "spread over START_SPREAD: %s" % times
        crowded = max(sum(1 for t in times if a <= t < a + 1.0) for a in times)
        assert crowded < CLASS / 2, "half the class in one second: %s" % times
        assert not [s for s in room.node.seen if s.mono >= on and s.path.startswith("/assets/details/")], (
            "the token's details are kept in the state file"
        )
        assert all(d.each_once() for d in room.desks)
