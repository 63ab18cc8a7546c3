"""Payments light the lamp. End to end (marked process): the real daemon (a subprocess) against the
fake node, read on the Sense HAT emulator's LED screen file, and SIGKILLs in the middle of its
writes. Every other rule of which payments count, in-process on the virtual clock
(tests/scenario.py): other tokens, rollbacks, mass transfers, aliases, history, node faults, a
catch-up of thousands."""

import collections
import logging
import signal
import time

import httpx
import pytest
from fakenode import HTML_TYPE, JSON_TYPE, SLOW_TEXT, TEXT_TYPE, _compact, _nginx_page
from harness import STRANGER_SEED, credited, light_until, wait_until
from scenario import Scenario

import iotlight

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def quiet_httpx(caplog):
    logging.getLogger("httpx").setLevel(logging.WARNING)
    caplog.set_level(logging.INFO, logger="iotlight")


def lit(hat) -> bool:
    return hat.lit_count() >= 56


def dark(hat) -> bool:
    return hat.lit_count() <= 1


# --- helpers for the in-process scenarios ----------------------------------------


def wait_contact(s):
    """Until the daemon has reached the node once (the history horizon is fixed then)."""
    s.run_until(lambda: s.store.get_meta("horizon"), 300, "the daemon's first contact with the node")


def ever_lit(s) -> bool:
    """Whether the fake matrix ever showed the lit lamp (56 pixels or more)."""
    return any(sum(p != (0, 0, 0) for p in frame) >= 56 for _, frame in s.hw.frames)


class _Truncated(httpx.AsyncByteStream):
    """Half a JSON body, then the connection closes (as the fake node's "truncated" fault)."""

    def __init__(self, data: bytes):
        self.data = data

    async def __aiter__(self):
        yield self.data[: len(self.data) // 2]
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


class NodeFaults:
    """The fake node's fault kinds on the in-process node (installed before it starts), one at a
    time until stop(): "500" (nginx page), "garbage" (200, not JSON), "truncated" (half the body,
    then the connection closes), "429" (nginx, Retry-After: 1), "503" (the node's slow-request
    text); "hang" is the node's own hang(). `played` counts the answers spoilt, by kind. (A
    candidate for tests/scenario.py's InProcessNode.)"""

    def __init__(self, s):
        self.s, self.kind, self.played = s, None, collections.Counter()
        self.inner = s.node._handle
        s.node._handle = self.handle

    def start(self, kind):
        self.kind = kind
        if kind == "hang":
            self.s.node.hang()

    def stop(self):
        self.kind = None
        self.s.node.clear()

    def count(self, kind):
        return self.s.node.hung if kind == "hang" else self.played[kind]

    async def handle(self, request):
        kind = self.kind
        if kind in (None, "hang"):
            return await self.inner(request)
        self.played[kind] += 1
        if kind == "500":
            page = _nginx_page(500, "Internal Server Error").encode()
            return httpx.Response(500, content=page, headers={"Content-Type": HTML_TYPE})
        if kind == "garbage":
            return httpx.Response(
                200, content=b'{"height": 12,, <html>oops', headers={"Content-Type": JSON_TYPE}
            )
        if kind == "truncated":
            data = _compact({"height": self.s.node.chain.height, "padding": "x" * 64}).encode()
            headers = {"Content-Type": JSON_TYPE, "Content-Length": str(len(data))}
            return httpx.Response(200, headers=headers, stream=_Truncated(data))
        if kind == "429":
            page = _nginx_page(429, "Too Many Requests").encode()
            return httpx.Response(429, content=page, headers={"Content-Type": HTML_TYPE, "Retry-After": "1"})
        assert kind == "503", kind
        return httpx.Response(503, content=SLOW_TEXT.encode(), headers={"Content-Type": TEXT_TYPE})


# --- the real daemon and the emulator ------------------------------------------------


@pytest.mark.process
def test_payment_lights_the_lamp_for_the_time_it_bought(chain, device, hat):
    """3.00 tokens at 1 s per token light the emulator's matrix for about 3 s, then it goes dark;
    the receipt goes on chain."""
    device.configure(hardware__backend="sense-emu")
    device.start()
    wait_until(lambda: hat.lit_count() == 1, 30, what="the status pixel while dark")
    chain.transfer(chain.treasury, device.address, 300, asset_id=chain.asset)
    wait_until(lambda: lit(hat), 30, what="the lamp to light")
    on_at = time.monotonic()
    until = light_until(device)  # the paid end, fixed when the payment was credited
    wait_until(lambda: dark(hat), 30, what="the lamp to go dark")
    # dark at the paid end (not before it, not long after); measured from the credit, so a slow
    # first frame on a busy machine does not look like a short light
    assert until - 0.5 <= time.time() <= until + 2.0, (time.time(), until)
    assert time.monotonic() - on_at <= 5.0
    assert list(credited(device).values()) == [300]
    receipt = wait_until(
        lambda: [v for k, v in chain.data_entries(device.address).items() if k.startswith("served_")],
        30,
        what="the receipt on chain",
    )
    assert '"seconds":3.0' in receipt[0]["value"]


@pytest.mark.process
def test_sigkill_while_lit_resumes_to_the_same_end_time(chain, device, hat):
    """The lamp lit by a payment survives SIGKILL: after a restart it stays on until the paid end time."""
    device.configure(hardware__backend="sense-emu")
    device.start()
    chain.transfer(chain.treasury, device.address, 800, asset_id=chain.asset)
    wait_until(lambda: lit(hat), 30, what="the lamp to light")
    until = wait_until(lambda: light_until(device), 30, what="the stored end time")
    device.kill(signal.SIGKILL)
    device.start()
    assert light_until(device) == until
    wait_until(lambda: lit(hat), 30, what="the lamp to resume")
    wait_until(lambda: dark(hat), until - time.time() + 30, what="the lamp to go dark")
    assert time.time() >= until - 1.0, "switched off %.1f s early" % (until - time.time())


@pytest.mark.process
def test_sigkill_during_a_stream_of_payments_credits_each_exactly_once(chain, device):
    """Payments keep coming while the daemon is killed twice in the middle of crediting them;
    after a restart each is credited once and its receipt is on chain once."""
    device.configure(payment__max_seconds=10**6)
    device.start()
    sent = {}
    for round_ in range(3):
        before = len(credited(device))
        for _ in range(40):
            tx = chain.transfer(chain.treasury, device.address, 100 + round_, asset_id=chain.asset)
            sent[tx["id"]] = tx["amount"]
        if round_ < 2:
            # killed once it is crediting this round's payments (and signing their receipts)
            wait_until(lambda n=before: len(credited(device)) > n, 30, what="the daemon crediting the round")
            device.kill(signal.SIGKILL)
            chain.mine()
            device.start()
    wait_until(lambda: len(credited(device)) == len(sent), 60, what="every payment to be credited")
    assert credited(device) == sent

    def receipts():
        return [k for k in chain.data_entries(device.address) if k.startswith("served_")]

    wait_until(lambda: len(receipts()) == len(sent), 60, what="every receipt on chain")
    assert sorted(r[len("served_") :] for r in receipts()) == sorted(sent)
    served = [
        e["key"]
        for tx in chain.all_transactions()
        if tx["type"] == 12 and tx["sender"] == device.address
        for e in tx["data"]
        if e["key"].startswith("served_")
    ]
    assert sorted(served) == sorted("served_" + i for i in sent), "a receipt went on chain twice"


# --- in-process, on the virtual clock ------------------------------------------------


def test_only_real_payments_of_the_token_to_the_device_light_it(tmp_path):
    """Another asset, WAVES, a failed transfer and a payment to someone else never light the lamp."""
    with Scenario(tmp_path, node__sweep_interval=60.0) as s:
        chain = s.node.chain
        wait_contact(s)
        other = chain.issue_asset(s.treasury, "Other-Token", 2, 10**8)
        stranger = iotlight.keypair_from_seed(STRANGER_SEED).address("T")
        ignored = [
            chain.transfer(s.treasury, s.address, 500, asset_id=other)["id"],
            chain.transfer(s.treasury, s.address, 10**8)["id"],
            chain.failed_transfer(s.treasury, s.address, 500, s.asset)["id"],
            chain.transfer(s.treasury, stranger, 500, asset_id=s.asset)["id"],
        ]
        chain.mine()
        s.run_for(600)  # polls, the newest blocks and list reads: nothing may light
        assert not ever_lit(s)
        assert s.credited() == {}
        good = s.pay(2)
        s.run_until(s.lit, 300, "the lamp to light for the real payment")
        assert ever_lit(s)
        assert s.credited() == {good: 200}
        assert not set(ignored) & set(s.credited())


def test_rolled_back_payment_never_lights_with_confirmations(tmp_path, caplog):
    """With confirmations = 1 a payment rolled back before its confirmation is never credited."""
    with Scenario(tmp_path, node__confirmations=1, node__sweep_interval=60.0) as s:
        chain = s.node.chain
        chain.mine()
        wait_contact(s)
        gone = s.pay(4)
        s.run_until(lambda: "waiting for 1 confirmation" in caplog.text, 300, "the daemon to see it pending")
        chain.rollback(1)
        chain.mine(2)
        s.run_for(300)
        assert not ever_lit(s)
        assert gone not in s.credited()
        kept = s.pay(1)
        s.run_for(300)
        assert kept not in s.credited(), "credited before its confirmation"
        assert not ever_lit(s)
        chain.mine()
        s.run_until(s.lit, 300, "the confirmed payment to light the lamp")
        assert s.credited() == {kept: 100}


def test_mass_transfer_entries_add_up(tmp_path):
    """Two entries of one mass transfer to the device light it for their sum."""
    with Scenario(tmp_path) as s:
        chain = s.node.chain
        stranger = iotlight.keypair_from_seed(STRANGER_SEED).address("T")
        wait_contact(s)
        tx = chain.mass_transfer(
            s.treasury, [(s.address, 150), (stranger, 999), (s.address, 250)], asset_id=s.asset
        )
        s.run_until(s.credited, 300, "the mass transfer to be credited")
        assert s.credited() == {tx["id"]: 400}
        assert s.lit()
        assert s.daemon.lamp.state()["remaining"] == pytest.approx(4.0, abs=0.5)


def test_payment_to_an_alias_counts(tmp_path):
    """A transfer to one of the device's aliases is a payment to the device."""
    s = Scenario(tmp_path)
    alias = s.node.chain.add_alias(s.address, "iot-lamp")
    with s:
        wait_contact(s)
        tx = s.node.chain.transfer(s.treasury, alias, 100, asset_id=s.asset)
        s.run_until(s.credited, 300, "the alias payment")
        assert s.credited() == {tx["id"]: 100}


@pytest.mark.parametrize("count", [False, True])
def test_history_before_the_first_start_counts_only_when_asked(tmp_path, caplog, count):
    """payment.count_history decides whether payments made before the first start light the lamp."""
    s = Scenario(tmp_path, payment__count_history=count)
    chain = s.node.chain
    old = s.pay(1)
    chain.mine()
    s.clock.advance(60)
    # the device's very first start is now (the scenario bound its state file when it was made)
    s.store.set_meta(first_start_ms=s.clock.ms())
    with s:
        new = s.pay(1)
        s.run_until(lambda: new in s.credited(), 300, "the new payment")
        s.run_for(60)
        assert (old in s.credited()) is count
        assert ("made before the first start: not counted" in caplog.text) is not count


def test_node_faults_during_payments_lose_nothing(tmp_path, caplog):
    """500s, hangs, garbage, truncated bodies, 429s and 503s while payments arrive: all are credited once."""
    s = Scenario(tmp_path, node__timeout=1.0, node__poll_interval=1.0, node__sweep_interval=30.0)
    faults = NodeFaults(s)
    sent = {}
    with s:
        wait_contact(s)
        for kind in ("500", "garbage", "hang", "429", "truncated", "503"):
            faults.start(kind)
            for _ in range(5):
                sent[s.pay(1)] = 100
                s.run_for(1)
            s.run_until(lambda kind=kind: faults.count(kind) >= 3, 600, "three %s answers" % kind)
            faults.stop()
        s.run_until(lambda: len(s.credited()) == len(sent), 600, "every payment after the faults")
        assert s.credited() == sent
        assert any(not e["ok"] for e in s.events("node_status")), "the daemon saw the node fail"
        s.run_for(60)  # the daemon still runs
        assert not [r for r in caplog.records if r.exc_info or "crashed" in r.getMessage()]


def test_catch_up_after_downtime_pages_without_gaps(tmp_path):
    """2,500 payments made while the daemon was stopped are all credited after it starts again."""
    with Scenario(tmp_path, payment__max_seconds=10**7) as s:
        chain = s.node.chain
        first = s.pay(1)
        s.run_until(s.credited, 300, "the first payment")
        s.stop()
        sent = {first: 100}
        for i in range(2500):
            tx = chain.transfer(s.treasury, s.address, 1 + i % 7, asset_id=s.asset)
            sent[tx["id"]] = tx["amount"]
            if i % 300 == 299:
                chain.mine()
        s.restart(after=600)
        s.run_until(lambda: len(s.credited()) == len(sent), 600, "the backlog", step=1.0)
        assert s.credited() == sent
