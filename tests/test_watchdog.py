"""The systemd watchdog judges liveness by deadline: a service quiet for hours on purpose (a lamp
lit with no countdown, a one-day telemetry interval) keeps it fed, a service stuck past its
deadline or a blocked event loop starves it. In-process, hours of daemon time on a virtual clock
(tests/scenario.py); the real daemon under a short WATCHDOG_USEC is in test_systemd.py."""

import asyncio
import logging

import pytest
from scenario import Scenario

import iotlight

PERIOD = 30.0  # the unit's WatchdogSec
BUDGET = 80.0  # a round's budget: node.timeout 10 s x 2 URLs + WATCHDOG_GRACE


@pytest.fixture(autouse=True)
def quiet_httpx():
    logging.getLogger("httpx").setLevel(logging.WARNING)


def pay_and_seal(s, seconds):
    """Buy `seconds` of light and let the chain move on (a block a minute): the payment's block is
    no longer the newest, which every poll reads again."""
    s.pay(seconds)
    s.node.chain.mine()


def withheld(caplog):
    return [r.getMessage() for r in caplog.records if "not telling the watchdog" in r.getMessage()]


@pytest.mark.parametrize("countdown, hours", [(False, 3), (True, 1), (True, 5)])
def test_hours_of_light_keep_the_watchdog_fed(tmp_path, caplog, countdown, hours):
    """A lit lamp sleeps until its next bar change: the whole span without the countdown, an
    eighth of it with. The old watchdog starved after 70 s of that and systemd killed the daemon."""
    with Scenario(tmp_path, watchdog=PERIOD, light__countdown=countdown) as s:
        s.run_for(10)
        pay_and_seal(s, hours * 3600)
        s.run_for(120)
        assert s.lit(), "the payment lit the lamp"
        s.run_for(hours * 3600 - 300)
        assert s.lit(), "still lit near the end of the paid span"
        s.run_for(600)
        assert not s.lit()
        assert s.longest_silence() < PERIOD
        assert not withheld(caplog)


def test_one_day_telemetry_interval_keeps_the_watchdog_fed(tmp_path, caplog):
    """Telemetry sleeps a day between readings (the lamp is lit all along, no countdown: it sleeps too)."""
    with Scenario(tmp_path, watchdog=PERIOD, data__telemetry_interval=86400, light__countdown=False) as s:
        s.run_for(10)
        pay_and_seal(s, 26 * 3600)
        s.run_for(25 * 3600)
        assert s.lit()
        assert len(s.hw.readings) == 2, "read at the start and after a day"
        assert s.longest_silence() < PERIOD
        assert not withheld(caplog)


def test_node_hanging_up_to_its_timeout_keeps_the_watchdog_fed(tmp_path, caplog):
    """Every request to both nodes hangs until the client's timeout (10 s x 2 URLs a round) for two
    hours: the watcher and the outbox spend their rounds waiting for it, and they are alive."""
    with Scenario(tmp_path, watchdog=PERIOD, light__countdown=False) as s:
        s.run_for(10)
        pay_and_seal(s, 3 * 3600)
        s.run_for(120)
        s.node.hang(seconds=2 * 3600)
        s.hw.press("up")
        s.run_for(2 * 3600)
        assert s.node.hung > 100
        assert s.daemon.node_state["ok"] is False
        assert s.longest_silence() < PERIOD
        assert not withheld(caplog)
        s.run_for(300)  # the node answers again: the press reaches the chain
        assert s.node.chain.data_entries(s.address).get("joystick_1", {}).get("value") is not None


@pytest.mark.parametrize("stuck", ["lamp", "watcher"])
def test_a_service_stuck_past_its_deadline_starves_the_watchdog(tmp_path, caplog, stuck):
    """The lamp stuck in a matrix write, or the watcher in a node request that never ends (a
    timeout that does not fire): once past its deadline the pings stop and the log says who."""
    with Scenario(tmp_path, watchdog=PERIOD, light__countdown=False) as s:
        s.run_for(10)
        if stuck == "lamp":
            s.hw.freeze()
            s.pay(3600)  # the lamp wakes up to show it, and hangs
        else:
            # a round that never ends (a node request is bounded by 3 x node.timeout, so the
            # stand-in is a round stuck in code: a bug, a lock that is never released)
            async def stuck_forever():
                await asyncio.Event().wait()

            s.daemon.watcher.poll_once = stuck_forever
        s.run_for(70)  # the watcher's next round is due within 60 s
        hung_at = s.clock.monotonic()
        assert s.longest_silence() < PERIOD, "fed while the stuck service is within its budget"
        s.run_for(BUDGET + 2 * PERIOD)
        assert s.pings(since=hung_at + BUDGET + PERIOD / 2) == []
        assert any(stuck in m for m in withheld(caplog))


def test_a_blocked_event_loop_starves_the_watchdog(tmp_path, caplog):
    """The loop stands still for 0.9 of the period right after a ping (a blocking call): the tick
    that comes that late sends nothing, so systemd sees more than a period of silence. Then the
    loop runs again and the pings come back."""
    with Scenario(tmp_path, watchdog=PERIOD) as s:
        s.run_for(61)
        assert s.longest_silence() < PERIOD
        blocked_at = s.clock.monotonic()
        s.block(0.9 * PERIOD)
        s.run_for(60)
        assert s.longest_silence(since=blocked_at) >= PERIOD
        assert s.longest_silence(since=s.clock.monotonic() - 40) < PERIOD, "pings again once the loop runs"
        assert any("event loop stood still" in m for m in withheld(caplog))


def test_no_watchdog_no_pings(tmp_path):
    """Without WATCHDOG_USEC the daemon says READY=1 and STOPPING=1 and nothing in between."""
    s = Scenario(tmp_path, watchdog=None).start()
    try:
        s.run_for(3600)
    finally:
        s.close()
    assert [m.split("\n")[0] for _, m in s.notes] == ["READY=1", "STOPPING=1"]


def test_watchdog_period_from_the_environment():
    """WATCHDOG_USEC gives the period in seconds, for this process only (WATCHDOG_PID); 0, junk or
    none: no watchdog."""
    import os

    assert iotlight.systemd_watchdog_period({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert (
        iotlight.systemd_watchdog_period({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())})
        == 30.0
    )
    assert iotlight.systemd_watchdog_period({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert iotlight.systemd_watchdog_period({"WATCHDOG_USEC": "0"}) is None
    assert iotlight.systemd_watchdog_period({"WATCHDOG_USEC": "soon"}) is None
    assert iotlight.systemd_watchdog_period({}) is None
