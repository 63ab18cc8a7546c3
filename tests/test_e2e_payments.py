"""End to end: the real daemon (a subprocess) against the fake node, reading the emulator's LED screen."""

import signal
import time

import pytest
from harness import STRANGER_SEED, credited, light_until, wait_until

import iotlight

pytestmark = pytest.mark.timeout(180)


def lit(hat) -> bool:
    return hat.lit_count() >= 56


def dark(hat) -> bool:
    return hat.lit_count() <= 1


def test_payment_lights_the_lamp_for_the_time_it_bought(chain, device, hat):
    """3.00 tokens at 1 s per token light the matrix for about 3 s, then it goes dark."""
    device.configure(hardware__backend="sense-emu")
    device.start()
    wait_until(lambda: hat.lit_count() == 1, 10, what="the status pixel while dark")
    chain.transfer(chain.treasury, device.address, 300, asset_id=chain.asset)
    wait_until(lambda: lit(hat), 10, what="the lamp to light")
    on_at = time.monotonic()
    until = light_until(device)  # the paid end, fixed when the payment was credited
    wait_until(lambda: dark(hat), 15, what="the lamp to go dark")
    # dark at the paid end (not before it, not long after); measured from the credit, so a slow
    # first frame on a busy machine does not look like a short light
    assert until - 0.5 <= time.time() <= until + 2.0, (time.time(), until)
    assert time.monotonic() - on_at <= 5.0
    assert list(credited(device).values()) == [300]
    receipt = wait_until(
        lambda: [v for k, v in chain.data_entries(device.address).items() if k.startswith("served_")],
        15,
        what="the receipt on chain",
    )
    assert '"seconds":3.0' in receipt[0]["value"]


def test_only_real_payments_of_the_token_to_the_device_light_it(chain, device, hat):
    """Another asset, WAVES, a failed transfer and a payment to someone else never light the lamp."""
    device.configure(hardware__backend="sense-emu")
    device.start()
    other = chain.issue_asset(chain.treasury, "Other-Token", 2, 10**8)
    stranger = iotlight.keypair_from_seed(STRANGER_SEED).address("T")
    ignored = [
        chain.transfer(chain.treasury, device.address, 500, asset_id=other)["id"],
        chain.transfer(chain.treasury, device.address, 10**8)["id"],
        chain.failed_transfer(chain.treasury, device.address, 500, chain.asset)["id"],
        chain.transfer(chain.treasury, stranger, 500, asset_id=chain.asset)["id"],
    ]
    chain.mine()
    time.sleep(2.0)  # several polls and a list read: nothing may light
    assert hat.lit_count() <= 1
    assert credited(device) == {}
    good = chain.transfer(chain.treasury, device.address, 200, asset_id=chain.asset)["id"]
    wait_until(lambda: lit(hat), 10, what="the lamp to light for the real payment")
    assert credited(device) == {good: 200}
    assert not set(ignored) & set(credited(device))


def test_rolled_back_payment_never_lights_with_confirmations(chain, device, hat):
    """With confirmations = 1 a payment rolled back before its confirmation is never credited."""
    device.configure(hardware__backend="sense-emu", node__confirmations=1)
    device.start()
    chain.mine()
    gone = chain.transfer(chain.treasury, device.address, 400, asset_id=chain.asset)["id"]
    wait_until(
        lambda: "waiting for 1 confirmation" in device.output(), 10, what="the daemon to see it pending"
    )
    chain.rollback(1)
    chain.mine(2)
    time.sleep(1.5)
    assert hat.lit_count() <= 1
    assert gone not in credited(device)
    kept = chain.transfer(chain.treasury, device.address, 100, asset_id=chain.asset)["id"]
    time.sleep(1.0)
    assert kept not in credited(device), "credited before its confirmation"
    chain.mine()
    wait_until(lambda: lit(hat), 10, what="the confirmed payment to light the lamp")
    assert credited(device) == {kept: 100}


def test_mass_transfer_entries_add_up(chain, device):
    """Two entries of one mass transfer to the device light it for their sum."""
    device.start()
    stranger = iotlight.keypair_from_seed(STRANGER_SEED).address("T")
    tx = chain.mass_transfer(
        chain.treasury, [(device.address, 150), (stranger, 999), (device.address, 250)], asset_id=chain.asset
    )
    wait_until(lambda: credited(device), 10, what="the mass transfer to be credited")
    assert credited(device) == {tx["id"]: 400}


def test_payment_to_an_alias_counts(chain, device):
    """A transfer to one of the device's aliases is a payment to the device."""
    alias = chain.add_alias(device.address, "iot-lamp")
    device.start()
    tx = chain.transfer(chain.treasury, alias, 100, asset_id=chain.asset)
    wait_until(lambda: credited(device), 10, what="the alias payment")
    assert credited(device) == {tx["id"]: 100}


def test_history_before_the_first_start_counts_only_when_asked(chain, tmp_path):
    """payment.count_history decides whether payments made before the first start light the lamp."""
    from harness import Device

    for count in (False, True):
        d = Device(tmp_path / ("d%s" % count), chain.url, chain.asset, payment__count_history=count)
        old = chain.transfer(chain.treasury, d.address, 100, asset_id=chain.asset)["id"]
        chain.mine()
        d.start()
        try:
            new = chain.transfer(chain.treasury, d.address, 100, asset_id=chain.asset)["id"]
            wait_until(lambda new=new, d=d: new in credited(d), 10, what="the new payment")
            assert (old in credited(d)) is count
        finally:
            d.stop()


def test_sigkill_during_a_stream_of_payments_credits_each_exactly_once(chain, device):
    """Payments keep coming while the daemon is killed twice; after a restart each is credited once."""
    device.configure(payment__max_seconds=10**6)
    device.start()
    sent = {}
    for round_ in range(3):
        for _ in range(40):
            tx = chain.transfer(chain.treasury, device.address, 100 + round_, asset_id=chain.asset)
            sent[tx["id"]] = tx["amount"]
            time.sleep(0.01)
        if round_ < 2:
            device.kill(signal.SIGKILL)
            chain.mine()
            device.start()
    wait_until(lambda: len(credited(device)) == len(sent), 30, what="every payment to be credited")
    assert credited(device) == sent
    # each receipt exactly once, too
    receipts = wait_until(
        lambda: (
            [k for k in chain.data_entries(device.address) if k.startswith("served_")]
            if len([k for k in chain.data_entries(device.address) if k.startswith("served_")]) == len(sent)
            else None
        ),
        60,
        what="every receipt on chain",
    )
    assert sorted(r[len("served_") :] for r in receipts) == sorted(sent)


def test_sigkill_while_lit_resumes_to_the_same_end_time(chain, device, hat):
    """The lamp lit by a payment survives SIGKILL: after a restart it stays on until the paid end time."""
    device.configure(hardware__backend="sense-emu")
    device.start()
    chain.transfer(chain.treasury, device.address, 800, asset_id=chain.asset)
    wait_until(lambda: lit(hat), 10, what="the lamp to light")
    until = wait_until(lambda: light_until(device), 5, what="the stored end time")
    device.kill(signal.SIGKILL)
    device.start()
    assert light_until(device) == until
    wait_until(lambda: lit(hat), 10, what="the lamp to resume")
    wait_until(lambda: dark(hat), until - time.time() + 10, what="the lamp to go dark")
    assert time.time() >= until - 1.0, "switched off %.1f s early" % (until - time.time())


def test_node_faults_during_payments_lose_nothing(chain, device):
    """500s, hangs, garbage, truncated bodies and 429s while payments arrive: all are credited once."""
    device.configure(node__timeout=1.0)
    device.start()
    sent = {}
    for kind in ("500", "garbage", "hang", "429", "truncated", "503"):
        chain.fail(kind, duration=1.5)
        for _ in range(5):
            tx = chain.transfer(chain.treasury, device.address, 100, asset_id=chain.asset)
            sent[tx["id"]] = 100
        time.sleep(0.5)
    chain.clear_faults()
    wait_until(lambda: len(credited(device)) == len(sent), 60, what="every payment after the faults")
    assert credited(device) == sent
    assert device.alive()
    assert "Traceback" not in device.output()


def test_catch_up_after_downtime_pages_without_gaps(chain, device):
    """2,500 payments made while the daemon was stopped are all credited after it starts again."""
    device.configure(payment__max_seconds=10**7)
    device.start()
    first = chain.transfer(chain.treasury, device.address, 100, asset_id=chain.asset)
    wait_until(lambda: credited(device), 10, what="the first payment")
    device.stop()
    sent = {first["id"]: 100}
    for i in range(2500):
        tx = chain.transfer(chain.treasury, device.address, 1 + i % 7, asset_id=chain.asset)
        sent[tx["id"]] = tx["amount"]
        if i % 300 == 299:
            chain.mine()
    device.start()
    wait_until(lambda: len(credited(device)) == len(sent), 60, what="the backlog")
    assert credited(device) == sent
