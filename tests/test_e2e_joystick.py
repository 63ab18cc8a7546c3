"""End to end: joystick presses on the emulator's own socket become signed Data transactions, none lost."""

import json
import math
import signal
import time

import pytest
import reference
from harness import Device, wait_until

import iotlight

pytestmark = pytest.mark.timeout(240)


def presses_on_chain(chain, address):
    """n -> decoded joystick entry, for every joystick_<n> entry the node holds for the address."""
    out = {}
    for key, entry in chain.data_entries(address).items():
        if key.startswith("joystick_") and key != "joystick_count":
            out[int(key.split("_")[1])] = json.loads(entry["value"])
    return out


def joystick_broadcasts(chain, address):
    """Accepted Data broadcasts from the device, as posted."""
    out = []
    for b in chain.broadcasts:
        body = b.body if isinstance(b.body, dict) else None
        if b.status == 200 and body and body.get("type") == 12:
            out.append(body)
    return out


def press_keys(tx):
    return [e["key"] for e in tx["data"] if e["key"].startswith("joystick_") and e["key"] != "joystick_count"]


def test_presses_arrive_as_verified_data_transactions(chain, device, hat):
    """Each press becomes an entry with direction, action and the press time; ids and proofs verify."""
    device.configure(hardware__backend="sense-emu")
    device.start()
    assert hat.wait_for_stick_client(10)
    times = {}
    for n, direction in enumerate(("up", "left", "middle"), start=1):
        times[n] = hat.click(direction)[0]
        time.sleep(0.3)
    on_chain = wait_until(
        lambda: (
            presses_on_chain(chain, device.address)
            if len(presses_on_chain(chain, device.address)) == 3
            else None
        ),
        20,
        what="3 presses",
    )
    assert [on_chain[n]["direction"] for n in (1, 2, 3)] == ["up", "left", "middle"]
    assert all(on_chain[n]["action"] == "pressed" for n in on_chain)
    for n, t in times.items():
        assert abs(on_chain[n]["ts"] - t * 1000) < 1000
    assert chain.data_entries(device.address)["joystick_count"]["value"] == 3
    for tx in joystick_broadcasts(chain, device.address):
        assert reference.verify_tx(tx)
        assert iotlight.tx_id(tx) == tx["id"]
        assert tx["senderPublicKey"] == iotlight.b58encode(device.keys.public_key)


def test_presses_during_refused_broadcasts_arrive_once_after_recovery(chain, device, hat):
    """While every broadcast fails, presses wait in the outbox; afterwards each is on chain exactly once."""
    device.configure(hardware__backend="sense-emu")
    device.start()
    assert hat.wait_for_stick_client(10)
    chain.fail("500", duration=6, paths=["/transactions/broadcast"])
    for d in ("up", "down", "left", "right", "middle", "up"):
        hat.click(d)
        time.sleep(0.25)
    time.sleep(1)
    assert presses_on_chain(chain, device.address) == {}
    on_chain = wait_until(
        lambda: (
            presses_on_chain(chain, device.address)
            if len(presses_on_chain(chain, device.address)) == 6
            else None
        ),
        60,
        what="6 presses",
    )
    assert sorted(on_chain) == [1, 2, 3, 4, 5, 6]
    keys = [k for tx in joystick_broadcasts(chain, device.address) for k in press_keys(tx)]
    assert sorted(keys) == sorted(set(keys)), "a press went out in two transactions"


def test_presses_before_sigkill_are_broadcast_after_restart(chain, device, hat):
    """Presses stored but not yet sent when the daemon is killed go out after the restart."""
    device.configure(hardware__backend="sense-emu")
    device.start()
    assert hat.wait_for_stick_client(10)
    chain.fail("hang", duration=30, paths=["/transactions/broadcast"], hang_seconds=30)
    for d in ("up", "down", "left"):
        hat.click(d)
        time.sleep(0.2)
    wait_until(lambda: "joystick press 3" in device.output(), 10, what="the daemon to store 3 presses")
    device.kill(signal.SIGKILL)
    chain.clear_faults()
    device.start()
    assert hat.wait_for_stick_client(10)
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


def test_too_old_transaction_is_resigned_and_its_entries_arrive_once(tmp_path, hat):
    """A transaction that waited past the node's timestamp window is re-signed with the same entries."""
    from fakenode import FakeNode
    from harness import TREASURY_SEED

    skew = [0]
    node = FakeNode("T", now_ms=lambda: int(time.time() * 1000) + skew[0]).start()
    try:
        treasury = iotlight.keypair_from_seed(TREASURY_SEED)
        node.fund(treasury.address("T"), waves=10**12)
        asset = node.issue_asset(treasury, "IoT-Light", 2, 10**8)
        device = Device(tmp_path / "dev", node.url, asset, hardware__backend="sense-emu")
        node.fund(device.address, waves=10**9)
        device.start()
        assert hat.wait_for_stick_client(10)
        node.fail("500", paths=["/transactions/broadcast"])
        t_press = hat.click("right")[0]
        wait_until(
            lambda: "queued Data transaction" in device.output(), 10, what="the transaction to be queued"
        )
        old_id = device.output().split("queued Data transaction ")[1].split()[0]
        skew[0] = 3 * 3600 * 1000  # three hours pass on the chain while nothing gets through
        node.clear_faults()
        on_chain = wait_until(
            lambda: presses_on_chain(chain=node, address=device.address) or None,
            60,
            what="the re-signed press",
        )
        assert on_chain[1]["direction"] == "right"
        assert abs(on_chain[1]["ts"] - t_press * 1000) < 1000, "the press keeps its own time"
        assert "re-signing Data transaction %s" % old_id in device.output()
        assert node.transaction(old_id) is None
        keys = [k for tx in joystick_broadcasts(node, device.address) for k in press_keys(tx)]
        assert keys == ["joystick_1"]
        device.stop()
    finally:
        node.stop()


def test_rapid_presses_are_coalesced_into_a_few_transactions(chain, device, hat):
    """50 presses in 2 seconds become a handful of Data transactions carrying all 50 entries."""
    device.configure(hardware__backend="sense-emu", data__coalesce_window=1.0)
    device.start()
    assert hat.wait_for_stick_client(10)
    began = time.monotonic()
    for i in range(50):
        hat.click(("up", "down", "left", "right", "middle")[i % 5])
        time.sleep(0.04)
    pressing = time.monotonic() - began  # about 2 s; longer on a busy machine
    on_chain = wait_until(
        lambda: (
            presses_on_chain(chain, device.address)
            if len(presses_on_chain(chain, device.address)) == 50
            else None
        ),
        60,
        what="50 presses",
    )
    assert sorted(on_chain) == list(range(1, 51))
    txs = [tx for tx in joystick_broadcasts(chain, device.address) if press_keys(tx)]
    # at most one transaction per 1 s coalescing window while the presses last, and the rest after
    assert 2 <= len(txs) <= math.ceil(pressing) + 3, (len(txs), pressing)
    assert chain.data_entries(device.address)["joystick_count"]["value"] == 50


def test_no_coins_for_fees_waits_and_sends_once_funded(chain, tmp_path, hat):
    """Without coins for the fee the presses wait (status pixel amber), then go out once funds arrive."""
    device = Device(tmp_path / "poor", chain.url, chain.asset, hardware__backend="sense-emu")
    device.start()
    assert hat.wait_for_stick_client(10)
    hat.click("up")
    wait_until(lambda: "not enough coins for the fee" in device.output(), 15, what="the no-funds warning")
    from emulator import quantize

    amber = quantize((96, 48, 0))
    wait_until(lambda: hat.pixels()[63] == amber, 10, what="the amber status pixel")
    chain.fund(device.address, waves=10**8)
    on_chain = wait_until(
        lambda: presses_on_chain(chain, device.address) or None, 40, what="the press after funding"
    )
    assert on_chain[1]["direction"] == "up"
    device.stop()
