"""Joystick presses become signed Data transactions, none lost. End to end (marked process): presses
on the Sense HAT emulator's own socket reach the fake node from the real daemon, also across a
SIGKILL. The outbox's rules (refused broadcasts, too-old transactions re-signed, coalescing, no
coins for the fee), in-process on the virtual clock (tests/scenario.py)."""

import json
import logging
import math
import signal

import pytest
import reference
from harness import TREASURY_SEED, wait_until
from scenario import Scenario

import iotlight

pytestmark = pytest.mark.timeout(240)

AMBER = (96, 48, 0)  # the status pixel: no coins for the fees


@pytest.fixture(autouse=True)
def quiet_httpx(caplog):
    logging.getLogger("httpx").setLevel(logging.WARNING)
    caplog.set_level(logging.INFO, logger="iotlight")


def presses_on_chain(chain, address):
    """n -> decoded joystick entry, for every joystick_<n> entry the node holds for the address."""
    out = {}
    for key, entry in chain.data_entries(address).items():
        if key.startswith("joystick_") and key != "joystick_count":
            out[int(key.split("_")[1])] = json.loads(entry["value"])
    return out


def joystick_broadcasts(chain):
    """Accepted Data broadcasts, as posted."""
    out = []
    for b in chain.broadcasts:
        body = b.body if isinstance(b.body, dict) else None
        if b.status == 200 and body and body.get("type") == 12:
            out.append(body)
    return out


def press_keys(tx):
    return [e["key"] for e in tx["data"] if e["key"].startswith("joystick_") and e["key"] != "joystick_count"]


def wait_contact(s):
    """Until the daemon has reached the node once."""
    s.run_until(lambda: s.store.get_meta("horizon"), 300, "the daemon's first contact with the node")


# --- the real daemon and the emulator ------------------------------------------------


@pytest.mark.process
def test_presses_arrive_as_verified_data_transactions(chain, device, hat):
    """Each press on the emulator's joystick becomes an entry with direction, action and the press
    time; ids and proofs verify, signed by the device."""
    device.configure(hardware__backend="sense-emu")
    device.start()
    assert hat.wait_for_stick_client(30, pid=device.proc.pid)
    times = {}
    for n, direction in enumerate(("up", "left", "middle"), start=1):
        times[n] = hat.click(direction)[0]
        # one at a time: the order on chain is the order pressed
        wait_until(lambda n=n: "joystick press %d" % n in device.output(), 30, what="press %d stored" % n)
    on_chain = wait_until(
        lambda: (
            presses_on_chain(chain, device.address)
            if len(presses_on_chain(chain, device.address)) == 3
            else None
        ),
        30,
        what="3 presses",
    )
    assert [on_chain[n]["direction"] for n in (1, 2, 3)] == ["up", "left", "middle"]
    assert all(on_chain[n]["action"] == "pressed" for n in on_chain)
    for n, t in times.items():
        assert abs(on_chain[n]["ts"] - t * 1000) < 1000
    assert chain.data_entries(device.address)["joystick_count"]["value"] == 3
    txs = joystick_broadcasts(chain)
    assert txs
    for tx in txs:
        assert reference.verify_tx(tx)
        assert iotlight.tx_id(tx) == tx["id"]
        assert tx["senderPublicKey"] == iotlight.b58encode(device.keys.public_key)


@pytest.mark.process
def test_presses_before_sigkill_are_broadcast_after_restart(chain, device, hat):
    """Presses stored but not yet sent when the daemon is killed go out after the restart."""
    device.configure(hardware__backend="sense-emu")
    device.start()
    assert hat.wait_for_stick_client(30, pid=device.proc.pid)
    chain.fail("hang", duration=60, paths=["/transactions/broadcast"], hang_seconds=60)
    for d in ("up", "down", "left"):
        hat.click(d)
    wait_until(lambda: "joystick press 3" in device.output(), 30, what="the daemon to store 3 presses")
    assert presses_on_chain(chain, device.address) == {}
    device.kill(signal.SIGKILL)
    chain.clear_faults()
    device.start()
    on_chain = wait_until(
        lambda: (
            presses_on_chain(chain, device.address)
            if len(presses_on_chain(chain, device.address)) == 3
            else None
        ),
        60,
        what="3 presses",
    )
    assert [on_chain[n]["direction"] for n in (1, 2, 3)] == ["up", "down", "left"]


# --- in-process, on the virtual clock ------------------------------------------------


def test_presses_during_refused_broadcasts_arrive_once_after_recovery(tmp_path):
    """While every broadcast fails, presses wait in the outbox; afterwards each is on chain exactly once."""
    with Scenario(tmp_path) as s:
        chain = s.node.chain
        wait_contact(s)
        s.node.refuse(500, "/transactions/broadcast", seconds=120)
        for d in ("up", "down", "left", "right", "middle", "up"):
            s.hw.press(d)
            s.run_for(0.25)
        s.run_for(60)
        assert presses_on_chain(chain, s.address) == {}
        assert any(r.path == "/transactions/broadcast" for r in chain.requests), "a broadcast was tried"
        s.run_until(lambda: len(presses_on_chain(chain, s.address)) == 6, 600, "6 presses")
        on_chain = presses_on_chain(chain, s.address)
        assert sorted(on_chain) == [1, 2, 3, 4, 5, 6]
        assert [on_chain[n]["direction"] for n in sorted(on_chain)] == [
            "up",
            "down",
            "left",
            "right",
            "middle",
            "up",
        ]
        keys = [k for tx in joystick_broadcasts(chain) for k in press_keys(tx)]
        assert sorted(keys) == sorted(set(keys)), "a press went out in two transactions"
        s.run_for(600)
        assert len([k for tx in joystick_broadcasts(chain) for k in press_keys(tx)]) == 6


def test_too_old_transaction_is_resigned_and_its_entries_arrive_once(tmp_path, caplog):
    """A transaction that waited past the node's timestamp window is re-signed with the same entries."""
    s = Scenario(tmp_path)
    chain = s.node.chain
    skew = [0]
    chain.now_ms = lambda: int(s.clock.time() * 1000) + skew[0]  # the node's clock
    with s:
        wait_contact(s)
        s.node.refuse(500, "/transactions/broadcast")
        t_press = s.clock.time()
        s.hw.press("right")
        s.run_until(lambda: "queued Data transaction" in caplog.text, 60, "the transaction to be queued")
        old_id = caplog.text.split("queued Data transaction ")[1].split()[0]
        skew[0] = 3 * 3600 * 1000  # three hours pass on the chain while nothing gets through
        s.node.clear()
        s.run_until(lambda: presses_on_chain(chain, s.address), 600, "the re-signed press")
        on_chain = presses_on_chain(chain, s.address)
        assert on_chain[1]["direction"] == "right"
        assert on_chain[1]["ts"] == int(t_press * 1000), "the press keeps its own time"
        assert "re-signing Data transaction %s" % old_id in caplog.text
        assert chain.transaction(old_id) is None
        keys = [k for tx in joystick_broadcasts(chain) for k in press_keys(tx)]
        assert keys == ["joystick_1"]


def test_rapid_presses_are_coalesced_into_a_few_transactions(tmp_path):
    """50 presses in 2 seconds become a handful of Data transactions carrying all 50 entries."""
    with Scenario(tmp_path, data__coalesce_window=1.0) as s:
        chain = s.node.chain
        wait_contact(s)
        began = s.clock.monotonic()
        for i in range(50):
            s.hw.press(("up", "down", "left", "right", "middle")[i % 5])
            s.run_for(0.04)
        pressing = s.clock.monotonic() - began  # 2 s
        s.run_until(lambda: len(presses_on_chain(chain, s.address)) == 50, 600, "50 presses")
        assert sorted(presses_on_chain(chain, s.address)) == list(range(1, 51))
        txs = [tx for tx in joystick_broadcasts(chain) if press_keys(tx)]
        # at most one transaction per 1 s coalescing window while the presses last, and the rest after
        assert 2 <= len(txs) <= math.ceil(pressing) + 3, (len(txs), pressing)
        assert sorted(k for tx in txs for k in press_keys(tx)) == sorted(
            "joystick_%d" % n for n in range(1, 51)
        )
        assert chain.data_entries(s.address)["joystick_count"]["value"] == 50


def test_no_coins_for_fees_waits_and_sends_once_funded(tmp_path, caplog):
    """Without coins for the fee the presses wait (status pixel amber), then go out once funds arrive."""
    s = Scenario(tmp_path)
    chain = s.node.chain
    treasury = iotlight.keypair_from_seed(TREASURY_SEED).address("T")
    fee = reference.transfer_fee("waves")
    chain.transfer(s.keys, treasury, chain.balance(s.address) - fee, fee=fee)  # the device spends its coins
    chain.mine()
    assert chain.balance(s.address) == 0
    with s:
        wait_contact(s)
        s.hw.press("up")
        s.run_until(lambda: "not enough coins for the fee" in caplog.text, 300, "the no-funds warning")
        s.run_until(lambda: s.hw.frames and s.hw.frames[-1][1][63] == AMBER, 60, "the amber status pixel")
        assert s.daemon.status_name() == "no_funds"
        assert presses_on_chain(chain, s.address) == {}
        chain.fund(s.address, waves=10**8)
        s.run_until(lambda: presses_on_chain(chain, s.address), 300, "the press after funding")
        assert presses_on_chain(chain, s.address)[1]["direction"] == "up"
        s.run_until(lambda: s.hw.frames[-1][1][63] != AMBER, 60, "the status pixel back from amber")
