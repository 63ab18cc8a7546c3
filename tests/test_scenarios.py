"""Whole-daemon scenarios on a virtual clock (tests/scenario.py): payments across pages, a
restart and a rollback; a press whose broadcasts are refused for hours; a long light span across
a restart. Hours of daemon time, each in about a second."""

import asyncio
import json
import logging
import math

import pytest
from scenario import Scenario, VirtualLoop


@pytest.fixture(autouse=True)
def quiet_httpx():
    logging.getLogger("httpx").setLevel(logging.WARNING)


def test_payments_across_pages_a_restart_and_a_rollback_are_credited_once(tmp_path):
    """120 payments made while the daemon is down (the first read after the start pages back past
    the 50 of its first page), then the last blocks rolled back with their transactions going back
    into a block: each payment is credited once, each receipt is on chain once."""
    with Scenario(tmp_path, watchdog=30.0) as s:
        s.run_for(120)
        s.stop()
        chain = s.node.chain
        ids = []
        for i in range(120):
            ids.append(s.pay(30))
            if i % 10 == 9:
                chain.mine()
        s.restart(after=600)
        s.run_for(600)
        assert sorted(s.credited()) == sorted(ids)
        chain.mine(2)
        back = chain.rollback(4, to_utx=True)  # the last payments and receipts leave the chain...
        assert back
        s.run_for(30)
        chain.include_utx()  # ...and come back in the liquid block
        chain.mine()
        s.run_for(900)
        assert sorted(s.credited()) == sorted(ids)
        assert all(amount == 3000 for amount in s.credited().values())
        served = [k for k in chain.data_entries(s.address) if k.startswith("served_")]
        assert sorted(served) == sorted("served_%s" % i for i in ids)
        assert s.lit(), "120 x 30 s of light, paid at once"
        assert s.longest_silence() < 30.0


def test_a_press_whose_broadcasts_are_refused_for_hours_is_resigned_and_lands_once(tmp_path):
    """The node refuses every broadcast (503) for 130 minutes: the stored transaction gets older than
    the node's 120-minute window and is signed again with the same entry (its own event time);
    once the node takes broadcasts, joystick_1 is on chain once, from the re-signed transaction."""
    with Scenario(tmp_path, watchdog=30.0) as s:
        s.run_for(60)
        s.node.refuse(503, "/transactions/broadcast", seconds=130 * 60)
        pressed_ms = int(s.clock.time() * 1000)
        s.hw.press("left")
        s.run_for(130 * 60 + 300)
        chain = s.node.chain
        entries = chain.data_entries(s.address)
        value = json.loads(entries["joystick_1"]["value"])
        assert value["direction"] == "left" and value["ts"] == pressed_ms
        assert "joystick_2" not in entries and entries["joystick_count"]["value"] == 1
        landed = [
            b.body
            for b in chain.broadcasts
            if b.status == 200 and any(e["key"] == "joystick_1" for e in b.body.get("data", []))
        ]
        assert len(landed) == 1 and landed[0]["timestamp"] > pressed_ms + 120 * 60_000, "re-signed"
        assert s.store.outbox_counts().get("replaced", 0) >= 1
        assert s.longest_silence() < 30.0


def test_the_light_keeps_its_paid_end_across_a_restart(tmp_path):
    """Two hours paid, a restart after one with ten minutes down: the lamp resumes and goes off at
    the paid end, neither extended by the downtime nor cut."""
    with Scenario(tmp_path, watchdog=30.0, light__countdown=True) as s:
        s.run_for(10)
        s.pay(2 * 3600)
        s.node.chain.mine()  # the chain moves on: the payment's block is no longer the newest
        s.run_for(120)  # a poll gap is at most node.poll_interval (60 s here)
        assert s.lit()
        end = s.clock.monotonic() + s.daemon.lamp.state()["remaining"]
        s.run_for(3600)
        s.restart(after=600)
        s.run_for(end - s.clock.monotonic() - 1)
        assert s.lit(), "on until the paid end"
        s.run_for(2)
        assert not s.lit(), "off at the paid end"
        assert s.longest_silence(since=s.started) < 30.0


def test_a_wait_shorter_than_the_clock_resolution_moves_the_virtual_clock():
    """asyncio runs a timer due within 1 ns at once. A service that then waits again for what is
    left of its deadline (1e-12 s, one float step) must find the clock moved, as a real clock
    would have, or the scenario spins forever on one instant (it did: one run in 13 of the
    watchdog's hours-of-light scenario hung with the loop kept busy by other tasks)."""
    loop = VirtualLoop(start=11848.58029350368)
    spins = 0

    async def busy(done: asyncio.Event) -> None:  # keeps the ready queue non-empty
        nonlocal spins
        while not done.is_set():
            spins += 1
            assert spins < 100_000, "the virtual clock stood still"
            await asyncio.sleep(0)

    async def wait_for_deadline() -> int:
        done = asyncio.Event()
        task = asyncio.ensure_future(busy(done))
        deadline = math.nextafter(loop.time(), math.inf)
        rounds = 0
        while loop.time() < deadline:
            rounds += 1
            await asyncio.sleep(deadline - loop.time())
        done.set()
        await task
        return rounds

    try:
        assert loop.run_until_complete(wait_for_deadline()) == 1
        assert loop.time() == math.nextafter(11848.58029350368, math.inf)
    finally:
        loop.close()
