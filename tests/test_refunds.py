"""payment.min_tokens and payment.refund: the pure rules, the store, and the real daemon on the fake node."""

import json
import re
import signal
import time
from fractions import Fraction

import pytest
import reference
from harness import credited, read_state, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st

import iotlight
from iotlight import below_minimum, extend_light, refund_units

NOW = 1_795_000_000.123  # a realistic Unix time: float steps there are about 2.4e-7 s


# --- the rules ---------------------------------------------------------------


@pytest.mark.parametrize(
    "lit_for, seconds, cap, granted, refunded",
    [
        # dark lamp
        (None, 10.0, 60.0, 10.0, 0),  # fits: nothing back
        (None, 60.0, 60.0, 60.0, 0),  # exactly the cap: nothing back
        (None, 100.0, 60.0, 60.0, 400),  # 40 of 100 s cut: 40 % back
        # lamp already lit
        (20.0, 10.0, 60.0, 10.0, 0),  # fits under the cap
        (20.0, 40.0, 60.0, 40.0, 0),  # reaches the cap exactly
        (20.0, 50.0, 60.0, 40.0, 200),  # 10 of 50 s cut: 20 % back
        (60.0, 30.0, 60.0, 0.0, 1000),  # lamp at the cap: all back
        (90.0, 30.0, 60.0, 0.0, 1000),  # beyond the cap (the cap was lowered): all back
    ],
)
def test_refund_for_every_combination_of_remaining_time_cap_and_amount(
    lit_for, seconds, cap, granted, refunded
):
    """A 1000-unit payment that bought `seconds`: granted time and refund for a dark lamp, a lit
    one under the cap, one at the cap and one beyond it."""
    until = 0.0 if lit_for is None else NOW + lit_for
    g = extend_light(until, NOW, seconds, cap)
    assert g.seconds == pytest.approx(granted, abs=1e-6)
    assert g.seconds + g.excess == pytest.approx(seconds)
    assert refund_units(1000, seconds, g.excess) == refunded


def test_a_payment_that_fits_is_granted_whole_with_no_float_dust_to_refund():
    """(start + s) - start is not s in floats: the old rule left ~1e-7 s of 'excess' on a payment
    that fits, which a refund of an 8-decimal token would have turned into units sent back."""
    for s in (0.1, 0.3, 1.7, 2.9, 1234.56):
        g = extend_light(NOW + 0.777, NOW, s, 3600.0)
        assert g.excess == 0.0 and g.seconds == s
        assert refund_units(10**8, s, g.excess) == 0


def test_rounding_never_refunds_more_than_the_unused_fraction():
    """The floor of the unused fraction, in the token's smallest unit."""
    assert refund_units(1, 2.0, 1.0) == 0  # half of one unit: nothing
    assert refund_units(3, 3.0, 1.0) == 1
    assert refund_units(10, 3.0, 1.0) == 3  # 3.33 -> 3
    assert refund_units(999, 1.0, 0.999999) == 998  # 998.999 -> 998
    assert refund_units(5, 1.0, 1.0) == 5  # nothing granted: all of it
    assert refund_units(5, 1.0, 2.0) == 5  # never more than was paid
    assert refund_units(5, 1.0, 0.0) == 0
    assert refund_units(0, 1.0, 1.0) == 0


@settings(max_examples=400, deadline=None)
@given(
    amount=st.integers(1, 10**15),
    decimals=st.integers(0, 8),
    per_token=st.floats(0.001, 1000),
    cap=st.floats(1.0, 100_000.0),
    lit=st.one_of(st.none(), st.floats(0.0, 200_000.0)),
)
def test_refund_is_the_floor_of_the_cut_share_never_more_than_paid(amount, decimals, per_token, cap, lit):
    seconds = iotlight.payment_seconds(amount, decimals, per_token)
    until = 0.0 if lit is None else NOW + lit
    g = extend_light(until, NOW, seconds, cap)
    r = refund_units(amount, seconds, g.excess)
    assert 0 <= r <= amount
    exact = Fraction(amount) * Fraction(g.excess) / Fraction(seconds) if seconds > 0 else Fraction(0)
    assert r <= exact < r + 1 or r == amount
    if g.excess == 0:
        assert r == 0
    if g.seconds == 0:
        assert r == amount


def test_below_minimum_compares_whole_tokens_exactly():
    assert not below_minimum(1, 2, 0.0)
    assert below_minimum(9, 2, 0.1) and not below_minimum(10, 2, 0.1)  # 0.1 is 10 units, not 10.000...02
    assert below_minimum(299, 2, 3) and not below_minimum(300, 2, 3)
    assert below_minimum(29_999_999, 8, 0.3) and not below_minimum(30_000_000, 8, 0.3)
    assert not below_minimum(1, 0, 1)


def test_receipt_names_the_refund():
    entry = iotlight.receipt_entry("P" * 44, 60.0, 1000, 61000, ("R" * 44, 400))
    assert json.loads(entry["value"]) == {
        "seconds": 60.0,
        "from": 1000,
        "until": 61000,
        "refund": {"id": "R" * 44, "amount": 400},
    }
    assert "refund" not in json.loads(iotlight.receipt_entry("P" * 44, 60.0, 1000, 61000)["value"])


def test_config_keys_and_their_errors(tmp_path):
    base = {"payment": {"asset_id": "5FKsurYZCD1FMdjij1u6MJ2yzCcLFs65Mak583TeNdQV"}}
    c = iotlight.parse_config(base, str(tmp_path / "c.toml"))
    assert (c.min_tokens, c.refund, c.gpio_pin, c.gpio_active_high) == (0.0, "none", -1, True)
    c = iotlight.parse_config(
        {
            "payment": dict(base["payment"], min_tokens=2.5, refund="excess"),
            "light": {"gpio_pin": 17, "gpio_active_high": False},
        },
        str(tmp_path / "c.toml"),
    )
    assert (c.min_tokens, c.refund, c.gpio_pin, c.gpio_active_high) == (2.5, "excess", 17, False)
    for section, key, value in [
        ("payment", "min_tokens", -1),
        ("payment", "refund", "all"),
        ("light", "gpio_pin", 28),
        ("light", "gpio_pin", 2.0),
        ("light", "gpio_pin", -2),
        ("light", "gpio_active_high", "no"),
    ]:
        table = {"payment": dict(base["payment"])}
        table.setdefault(section, {})[key] = value
        with pytest.raises(iotlight.ConfigError, match="%s.%s" % (section, key)):
            iotlight.parse_config(table, str(tmp_path / "c.toml"))


# --- the store ---------------------------------------------------------------

KEYS = iotlight.keypair_from_seed("iotlight refund unit test seed, throwaway")
PAYER = iotlight.keypair_from_seed("iotlight refund unit test payer, throwaway").address("T")
ASSET = "5FKsurYZCD1FMdjij1u6MJ2yzCcLFs65Mak583TeNdQV"


def signer(payment_id, recipient, amount):
    """The daemon's own Outbox.sign_refund, on a clock that stands still (every refund signed in
    the same millisecond)."""
    import types

    outbox = types.SimpleNamespace(
        keys=KEYS,
        config=iotlight.parse_config({"payment": {"asset_id": ASSET}}, "c.toml"),
        now_ms=lambda: int(NOW * 1000),
        smart_asset=False,
    )
    return iotlight.Outbox.sign_refund(outbox, payment_id, recipient, amount)


def test_store_signs_the_refund_with_the_credit_and_names_it_in_the_receipt(tmp_path):
    """Over the cap: one transfer stored in the outbox (queued), the refunds row and the receipt
    naming it, in the credit's transaction; crediting again adds nothing."""
    store = iotlight.Store(str(tmp_path / "s.db"))
    pay = ("P" * 44, PAYER, 1000, 5, 100.0)
    credits = store.credit_payments([pay], now=NOW, max_seconds=60.0, sign_refund=signer)
    assert store.credit_payments([pay], now=NOW + 1, max_seconds=60.0, sign_refund=signer) == []
    [c] = credits
    txid, amount = c.refund
    assert amount == 400
    [row] = store.open_txs()
    assert row["id"] == txid and row["status"] == "queued"
    assert row["tx"]["recipient"] == PAYER and row["tx"]["amount"] == 400 and row["tx"]["assetId"] == ASSET
    assert reference.verify_tx(row["tx"])
    assert store.refund_of(txid)["payment_id"] == "P" * 44
    [ev] = store.pending_events()
    assert json.loads(ev.entries[0]["value"])["refund"] == {"id": txid, "amount": 400}
    store.close()


def test_two_equal_refunds_to_one_sender_in_one_batch_are_two_transfers(tmp_path):
    """Two payments of the same amount from the same sender credited together: equal refunds
    signed in the same millisecond. A transfer's id covers its fields, not the signature, so
    without the payment id in the attachment both had one id, the second outbox row failed the
    unique constraint and the whole credit was rolled back, again and again (the SIGKILL case of
    tests/tools/faults.py with refunds credited nothing more after the first collision)."""
    store = iotlight.Store(str(tmp_path / "s.db"))
    pays = [("A" * 44, PAYER, 1000, 5, 100.0), ("B" * 44, PAYER, 1000, 5, 100.0)]
    credits = store.credit_payments(pays, now=NOW, max_seconds=60.0, sign_refund=signer)
    assert len(credits) == 2 and credits[0].refund[0] != credits[1].refund[0]
    assert credits[1].refund[1] == 1000  # the first took the whole cap: all of the second goes back
    rows = store.open_txs()
    assert [iotlight.b58decode(r["tx"]["attachment"]) for r in rows] == [
        iotlight.b58decode("A" * 44),
        iotlight.b58decode("B" * 44),
    ]
    store.close()


def test_store_refunds_nothing_when_the_payment_fits_or_refund_is_off(tmp_path):
    store = iotlight.Store(str(tmp_path / "s.db"))
    [c] = store.credit_payments(
        [("A" * 44, PAYER, 1000, 5, 10.0)], now=NOW, max_seconds=60.0, sign_refund=signer
    )
    assert c.refund is None
    [c] = store.credit_payments([("B" * 44, PAYER, 1000, 5, 100.0)], now=NOW, max_seconds=60.0)
    assert c.refund is None and c.grant.excess > 0
    assert store.open_txs() == []
    store.close()


def test_a_refund_re_signed_writes_its_receipt_again_with_the_new_id(tmp_path):
    store = iotlight.Store(str(tmp_path / "s.db"))
    [c] = store.credit_payments(
        [("P" * 44, PAYER, 1000, 5, 100.0)], now=NOW, max_seconds=60.0, sign_refund=signer
    )
    old = c.refund[0]
    new = iotlight.build_transfer_tx(
        KEYS,
        recipient=PAYER,
        amount=400,
        asset_id=ASSET,
        attachment=b"P",
        timestamp=int(NOW * 1000) + 9_000_000,
        chain_id="T",
        fee=iotlight.transfer_fee(),
    )
    refund = store.refund_of(old)
    receipt = iotlight.receipt_entry(
        "P" * 44,
        refund["receipt"]["seconds"],
        refund["receipt"]["from"],
        refund["receipt"]["until"],
        (new["id"], 400),
    )
    store.replace_refund(old, new, receipt, int(NOW * 1000))
    assert [r["id"] for r in store.open_txs()] == [new["id"]]
    assert store.refund_of(old) is None and store.refund_of(new["id"])["amount"] == 400
    values = [json.loads(e.entries[0]["value"]) for e in store.pending_events()]
    assert [v["refund"]["id"] for v in values] == [old, new["id"]]
    assert values[0]["until"] == values[1]["until"]
    store.close()


def test_an_ignored_transfer_is_recorded_once_across_reopening(tmp_path):
    path = str(tmp_path / "s.db")
    store = iotlight.Store(path)
    assert store.mark_ignored("I" * 44, "below_minimum", 1)
    assert not store.mark_ignored("I" * 44, "below_minimum", 2)
    store.close()
    store = iotlight.Store(path)
    assert not store.mark_ignored("I" * 44, "below_minimum", 3)
    store.close()


# --- end to end: the real daemon against the fake node ----------------------


def refunds_on_chain(chain, device):
    """Transfers the device sent (in blocks and in the pool), id -> (recipient, amount, assetId)."""
    out = {}
    for tx in chain.all_transactions() + chain.unconfirmed():
        if tx["type"] == 4 and tx.get("sender") == device.address:
            out[tx["id"]] = (tx["recipient"].replace("address:", ""), tx["amount"], tx.get("assetId"))
    return out


def refund_rows(device):
    db = device.folder / "iotlight.db"
    if not db.exists():
        return []
    try:
        return read_state(db, "SELECT payment_id, tx_id, amount FROM refunds")
    except Exception:  # the table appears with the daemon's first start
        return []


def served(chain, device, payment_id):
    entry = chain.data_entries(device.address).get("served_" + payment_id)
    return json.loads(entry["value"]) if entry else None


def wait_contact(device):
    wait_until(
        lambda: read_state(device.folder / "iotlight.db", "SELECT value FROM meta WHERE key = 'horizon'"),
        30,
        what="the daemon's first contact with the node",
    )


def over_cap_payment(chain, device):
    """5.00 tokens (5 s) while max_seconds is 2: 3 s cut, 300 units owed back."""
    return chain.transfer(chain.treasury, device.address, 500, asset_id=chain.asset)["id"]


@pytest.mark.timeout(120)
def test_a_payment_over_the_cap_gets_exactly_one_refund_the_node_verifies(chain, device):
    device.configure(payment__max_seconds=2.0, payment__refund="excess")
    device.start()
    wait_contact(device)
    before = chain.balance(chain.treasury.address("T"), chain.asset)
    coins = chain.balance(device.address)
    paid = over_cap_payment(chain, device)
    receipt = wait_until(lambda: served(chain, device, paid), 30, what="the receipt")
    refunds = wait_until(lambda: refunds_on_chain(chain, device), 30, what="the refund on chain")
    [(rid, (recipient, amount, asset))] = refunds.items()
    assert (recipient, amount, asset) == (chain.treasury.address("T"), 300, chain.asset)
    assert chain.transaction(rid) is not None, "the node did not put the refund in a block"
    assert receipt["refund"] == {"id": rid, "amount": 300} and receipt["seconds"] == 2.0
    assert chain.balance(chain.treasury.address("T"), chain.asset) == before - 500 + 300
    assert chain.balance(device.address, chain.asset) == 200
    assert coins - chain.balance(device.address) >= iotlight.transfer_fee()  # the fee came from the device
    assert re.search(r"refund of 3\.00 \S+ queued as transfer", device.output())
    time.sleep(2.0)  # more polls, reads and status checks: nothing more goes out
    assert len(refunds_on_chain(chain, device)) == 1
    assert credited(device) == {paid: 500}


@pytest.mark.timeout(150)
def test_sigkill_between_signing_and_broadcast_sends_the_refund_once(chain, device):
    """The refund is signed and stored with the credit; no broadcast gets through; SIGKILL; the
    restarted daemon posts the stored transfer: one refund, the id the receipt names."""
    device.configure(payment__max_seconds=2.0, payment__refund="excess")
    device.start()
    wait_contact(device)
    chain.fail("500", paths=["/transactions/broadcast"])
    paid = over_cap_payment(chain, device)
    [(pid, rid, amount)] = wait_until(lambda: refund_rows(device), 30, what="the refund signed and stored")
    assert (pid, amount) == (paid, 300)
    time.sleep(1.0)  # broadcasts of it fail meanwhile
    device.kill(signal.SIGKILL)
    assert refunds_on_chain(chain, device) == {}
    chain.clear_faults()
    device.start()
    wait_until(lambda: refunds_on_chain(chain, device), 30, what="the refund after the restart")
    receipt = wait_until(lambda: served(chain, device, paid), 30, what="the receipt")
    assert list(refunds_on_chain(chain, device)) == [rid] and receipt["refund"]["id"] == rid
    time.sleep(2.0)
    assert len(refunds_on_chain(chain, device)) == 1
    assert refund_rows(device) == [(paid, rid, 300)]


@pytest.mark.timeout(150)
def test_sigkill_between_the_refund_broadcast_and_the_receipt_sends_neither_twice(chain, device):
    """The receipt waits (a 5 s coalescing window) while the refund goes out; SIGKILL as soon as
    the refund is on chain; after the restart: still one refund, one receipt naming it."""
    device.configure(payment__max_seconds=2.0, payment__refund="excess", data__coalesce_window=5.0)
    device.start()
    wait_contact(device)
    time.sleep(5.5)  # the window counts from the last Data transaction built: none yet, so start clean
    paid = over_cap_payment(chain, device)
    [rid] = wait_until(lambda: list(refunds_on_chain(chain, device)), 30, what="the refund on chain")
    device.kill(signal.SIGKILL)
    device.start()
    receipt = wait_until(lambda: served(chain, device, paid), 30, what="the receipt after the restart")
    assert receipt["refund"] == {"id": rid, "amount": 300}
    time.sleep(2.0)
    assert list(refunds_on_chain(chain, device)) == [rid]
    assert credited(device) == {paid: 500}


@pytest.mark.timeout(150)
def test_a_payment_rolled_back_after_its_refund_went_out(chain, device):
    """Payment and refund leave the chain together and come back from the pool: still one refund.
    When they leave for good, nothing is sent again (the device is owed nothing, owes nothing)."""
    device.configure(payment__max_seconds=2.0, payment__refund="excess")
    chain.mine()
    device.start()
    wait_contact(device)
    chain.mine()
    paid = over_cap_payment(chain, device)
    [rid] = wait_until(lambda: list(refunds_on_chain(chain, device)), 30, what="the refund on chain")
    wait_until(lambda: served(chain, device, paid), 30, what="the receipt")
    chain.mine()
    removed = chain.rollback(2, to_utx=True)  # the liquid block and the one holding both
    assert paid in removed and rid in removed
    time.sleep(1.0)  # the daemon sees the height go back
    chain.mine(2)
    chain.include_utx()
    time.sleep(3.0)
    assert list(refunds_on_chain(chain, device)) == [rid]
    chain.mine()
    removed = chain.rollback(2)  # this time both are dropped
    assert paid in removed and rid in removed
    time.sleep(1.0)
    chain.mine(2)
    time.sleep(4.0)
    assert refunds_on_chain(chain, device) == {}
    assert credited(device) == {paid: 500}
    assert device.alive()


@pytest.mark.timeout(150)
def test_a_refund_waits_for_coins_for_its_fee_and_goes_out_once_they_arrive(chain, tmp_path):
    from harness import Device

    device = Device(
        tmp_path / "poor", chain.url, chain.asset, payment__max_seconds=2.0, payment__refund="excess"
    )
    try:
        device.start()
        wait_contact(device)
        paid = over_cap_payment(chain, device)
        wait_until(lambda: "not enough coins for the fee" in device.output(), 30, what="the no-funds line")
        time.sleep(1.0)
        assert refunds_on_chain(chain, device) == {}
        [(_, rid, _)] = refund_rows(device)
        chain.fund(device.address, waves=10**9)
        wait_until(lambda: refunds_on_chain(chain, device), 60, what="the refund once coins arrived")
        wait_until(lambda: served(chain, device, paid), 30, what="the receipt")
        time.sleep(1.0)
        assert list(refunds_on_chain(chain, device)) == [rid]
    finally:
        device.stop()


@pytest.mark.timeout(150)
def test_a_refund_the_chain_dropped_in_a_rollback_goes_out_again_same_id(chain, device):
    """The block holding the refund (not the payment) is rolled back and its transactions dropped:
    the daemon re-posts the same signed transfer, so the sender still gets exactly one refund."""
    device.configure(payment__max_seconds=2.0, payment__refund="excess")
    device.start()
    wait_contact(device)
    chain.fail("500", paths=["/transactions/broadcast"])
    paid = over_cap_payment(chain, device)
    [(_, rid, _)] = wait_until(lambda: refund_rows(device), 30, what="the refund signed and stored")
    chain.mine()  # the payment is sealed below
    chain.clear_faults()
    wait_until(
        lambda: read_state(
            device.folder / "iotlight.db",
            "SELECT 1 FROM outbox WHERE id = ? AND status = 'confirmed'",
            (rid,),
        ),
        30,
        what="the daemon to see the refund confirmed",
    )
    chain.mine()
    removed = chain.rollback(2)  # the refund's block is gone, and the refund with it
    assert rid in removed and paid not in removed
    wait_until(
        lambda: chain.transaction(rid) or rid in [t["id"] for t in chain.unconfirmed()],
        30,
        what="the same refund posted again",
    )
    time.sleep(2.0)
    assert list(refunds_on_chain(chain, device)) == [rid]
    assert "checking 1 refund transfer(s) again" in device.output()


@pytest.mark.timeout(120)
def test_a_payment_below_the_minimum_lights_nothing_and_costs_no_fee(chain, device):
    """Under payment.min_tokens: no credit, no Data transaction, one `ignored` line, also after a
    restart; a payment at the minimum counts."""
    device.configure(payment__min_tokens=2.5, monitor__port=0)
    device.start()
    wait_contact(device)
    dust = chain.transfer(chain.treasury, device.address, 249, asset_id=chain.asset)["id"]
    chain.mine()
    wait_until(lambda: "lights nothing: below_minimum" in device.output(), 20, what="the ignored line")
    time.sleep(1.5)
    assert credited(device) == {}
    data = [
        tx
        for tx in chain.all_transactions() + chain.unconfirmed()
        if tx["type"] == 12 and tx["sender"] == device.address
    ]
    assert data == []
    device.stop()
    device.start()
    good = chain.transfer(chain.treasury, device.address, 250, asset_id=chain.asset)["id"]
    wait_until(lambda: served(chain, device, good), 30, what="the receipt of the payment at the minimum")
    assert served(chain, device, dust) is None
    assert credited(device) == {good: 250}
    assert device.output(whole=True).count("transfer %s from" % dust) == 1


def test_the_monitor_snapshot_carries_the_price_rules(tmp_path):
    """The dashboard shows the minimum and the refund policy next to the price: they are in `state`."""
    cfg = iotlight.parse_config(
        {
            "payment": {
                "asset_id": ASSET,
                "min_tokens": 2.0,
                "refund": "excess",
                "seconds_per_token": 30.0,
                "max_seconds": 600.0,
            }
        },
        str(tmp_path / "c.toml"),
    )
    store = iotlight.Store(str(tmp_path / "s.db"))

    async def snap():
        node = iotlight.NodeClient(["http://127.0.0.1:9"], timeout=1.0)
        try:
            daemon = iotlight.Daemon(cfg, KEYS, node=node, store=store, hardware=None, clock=iotlight.Clock())
            return daemon.snapshot()
        finally:
            await node.aclose()

    import asyncio

    state = asyncio.run(snap())
    assert state["price"] == {
        "seconds_per_token": 30.0,
        "min_tokens": 2.0,
        "max_seconds": 600.0,
        "refund": "excess",
    }
    assert state["gpio"] is None
    assert 'id="price"' in iotlight.DASHBOARD_HTML and "p.min_tokens" in iotlight.DASHBOARD_HTML
    store.close()


def test_a_payment_granted_nothing_is_reported_ignored_and_its_refund_queued(tmp_path):
    """The lamp at the cap: the payment is credited for 0 s; the monitor gets `ignored` (reason
    cut_by_cap, the dashboard's word) and the `refund` event; a partly cut payment is no `ignored`."""
    cfg = iotlight.parse_config(
        {"payment": {"asset_id": ASSET, "refund": "excess"}}, str(tmp_path / "c.toml")
    )
    store = iotlight.Store(str(tmp_path / "s.db"))
    published = []

    class Recorder:
        def __init__(self, **kw):
            pass

        def publish(self, message):
            published.append(message)

    async def credit():
        node = iotlight.NodeClient(["http://127.0.0.1:9"], timeout=1.0)
        try:
            daemon = iotlight.Daemon(
                cfg,
                KEYS,
                node=node,
                store=store,
                hardware=None,
                clock=iotlight.Clock(),
                monitor_factory=Recorder,
            )
            nothing = iotlight.Grant(start=NOW + 60, until=NOW + 60, seconds=0.0, excess=5.0)
            part = iotlight.Grant(start=NOW, until=NOW + 60, seconds=3.0, excess=2.0)
            daemon.credited(
                [
                    iotlight.Credit("N" * 44, PAYER, 500, 7, nothing, ("R" * 44, 500)),
                    iotlight.Credit("Q" * 44, PAYER, 500, 7, part, ("S" * 44, 200)),
                ]
            )
        finally:
            await node.aclose()

    import asyncio

    asyncio.run(credit())
    ignored = [m for m in published if m["type"] == "ignored"]
    assert ignored == [
        {
            "type": "ignored",
            "id": "N" * 44,
            "sender": PAYER,
            "amount": 500,
            "asset_id": ASSET,
            "reason": "cut_by_cap",
        }
    ]
    refunds = [m for m in published if m["type"] == "refund"]
    assert refunds == [
        {"type": "refund", "payment_id": "N" * 44, "id": "R" * 44, "amount": 500, "status": "queued"},
        {"type": "refund", "payment_id": "Q" * 44, "id": "S" * 44, "amount": 200, "status": "queued"},
    ]
    store.close()


# --- a scripted (smart) token: its transfers cost 0.004 more -------------------------------------


def device_refunds(s):
    """The device's transfers on the fake chain: id -> the node's JSON."""
    return {
        b.body["id"]: b
        for b in s.node.chain.broadcasts
        if b.body.get("type") == 4 and b.body.get("senderPublicKey") == iotlight.b58encode(s.keys.public_key)
    }


def test_a_refund_of_a_scripted_token_is_signed_with_the_smart_asset_fee(tmp_path):
    """The node says the token is scripted (/assets/details): the refund pays 0.001 + 0.004 at once,
    the node accepts it, and nothing was refused on the way."""
    from scenario import Scenario

    with Scenario(tmp_path, scripted_token=True, payment__max_seconds=60.0, payment__refund="excess") as s:
        s.run_for(10)
        paid = s.pay(100)  # 40 of 100 s cut: 40 % back
        s.run_for(300)
        sent = device_refunds(s)
        assert [b.status for b in sent.values()] == [200]
        [(rid, b)] = sent.items()
        assert b.body["fee"] == iotlight.transfer_fee(smart_asset=True) == 500_000
        assert b.body["amount"] == 4000 and b.body["assetId"] == s.asset
        assert s.node.chain.transaction(rid) is not None
        assert s.store.refund_of(rid)["payment_id"] == paid
        assert s.store.token_fact(s.asset, "scripted") == "1"


def test_a_refund_refused_for_its_fee_is_signed_again_with_the_smart_asset_fee(tmp_path):
    """The node hides the asset's details (decimals known from the state file), so the refund goes
    out with the plain 0.001 fee; the node refuses it ("does not exceed minimal value"), and the
    daemon signs it once more with 0.005: one refund lands, the receipt names it, and after a
    restart the next refund is signed with the smart-asset fee from the start."""
    from scenario import Scenario

    s = Scenario(tmp_path, scripted_token=True, payment__max_seconds=60.0, payment__refund="excess")
    s.store.set_token_fact(s.asset, "decimals", 2)
    s.node.refuse(503, "/assets/details")
    with s:  # starts it
        s.run_for(10)
        paid = s.pay(100)
        s.run_for(300)
        sent = device_refunds(s)
        statuses = sorted((b.body["fee"], b.status) for b in sent.values())
        assert statuses == [(100_000, 400), (500_000, 200)]
        [landed] = [i for i, b in sent.items() if b.status == 200]
        assert s.node.chain.transaction(landed) is not None
        receipt = json.loads(s.node.chain.data_entries(s.address)["served_" + paid]["value"])
        assert receipt["refund"] == {"id": landed, "amount": 4000}
        assert s.store.token_fact(s.asset, "scripted") == "1"
        s.restart(after=60)
        s.run_for(10)
        s.pay(100)  # the lamp is lit (60 s cap): most of it goes back
        s.run_for(300)
        later = [b for i, b in device_refunds(s).items() if i not in sent]
        assert [(b.body["fee"], b.status) for b in later] == [(500_000, 200)]
