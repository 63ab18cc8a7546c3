"""payment.min_tokens and payment.refund: the pure rules, the store, the whole daemon on the virtual
clock (tests/scenario.py) against the fake chain, and, as real processes, the two SIGKILLs that
only a process shows (between signing a refund and its broadcast, between the broadcast and the
receipt)."""

import json
import logging
import re
import signal
import time
from fractions import Fraction
from typing import Tuple

import pytest
import reference
from harness import credited, light_until, read_state, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st
from scenario import Scenario, VirtualClock

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
    """For any payment, token, price, cap and light left: the refund is the floor of the share the
    cap cut, never more than was paid; nothing back when nothing was cut, all when nothing fit."""
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
    """payment.min_tokens is compared in exact smallest units (0.1 of a 2-decimal token is 10 units)."""
    assert not below_minimum(1, 2, 0.0)
    assert below_minimum(9, 2, 0.1) and not below_minimum(10, 2, 0.1)  # 0.1 is 10 units, not 10.000...02
    assert below_minimum(299, 2, 3) and not below_minimum(300, 2, 3)
    assert below_minimum(29_999_999, 8, 0.3) and not below_minimum(30_000_000, 8, 0.3)
    assert not below_minimum(1, 0, 1)


def test_receipt_names_the_refund():
    """served_<id> carries {"refund": {"id", "amount"}} when part of the payment went back, else none."""
    entry = iotlight.receipt_entry("P" * 44, 60.0, 1000, 61000, ("R" * 44, 400))
    assert json.loads(entry["value"]) == {
        "seconds": 60.0,
        "from": 1000,
        "until": 61000,
        "refund": {"id": "R" * 44, "amount": 400},
    }
    assert "refund" not in json.loads(iotlight.receipt_entry("P" * 44, 60.0, 1000, 61000)["value"])


def test_config_keys_and_their_errors(tmp_path):
    """payment.min_tokens, payment.refund, light.gpio_pin and light.gpio_active_high: their defaults,
    their values, and an error naming the key for each bad value."""
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


def in_loop(clock, make):
    """Run `make()` (a coroutine function) on the virtual clock's loop, where the services are made."""
    return clock.loop.run_until_complete(make())


def store_and_signer(tmp_path):
    """A state file and the daemon's own Outbox.sign_refund on a virtual clock that stands still
    (every refund signed in the same millisecond, at NOW)."""
    clock = VirtualClock(wall_start=NOW)
    store = iotlight.Store(str(tmp_path / "s.db"), clock)
    config = iotlight.parse_config({"payment": {"asset_id": ASSET, "refund": "excess"}}, "c.toml")

    async def make():
        return iotlight.Outbox(config, KEYS, node=None, store=store, clock=clock, tell=lambda kind, **f: None)

    return store, in_loop(clock, make).sign_refund


def test_store_signs_the_refund_with_the_credit_and_names_it_in_the_receipt(tmp_path):
    """Over the cap: one transfer stored in the outbox (queued), the refunds row and the receipt
    naming it, in the credit's transaction; crediting again adds nothing."""
    store, signer = store_and_signer(tmp_path)
    pay = ("P" * 44, PAYER, 1000, 5, 100.0)
    credits, span = store.credit_payments([pay], now=NOW, max_seconds=60.0, sign_refund=signer)
    assert store.credit_payments([pay], now=NOW + 1, max_seconds=60.0, sign_refund=signer) == ([], span)
    [c] = credits
    assert span == (NOW, NOW + 60.0) and c.grant.seconds == 60.0
    txid, amount = c.refund
    assert amount == 400
    [row] = store.open_txs()
    assert row["id"] == txid and row["status"] == "queued"
    assert row["tx"]["recipient"] == PAYER and row["tx"]["amount"] == 400 and row["tx"]["assetId"] == ASSET
    assert row["tx"]["timestamp"] == int(NOW * 1000) and row["tx"]["fee"] == iotlight.transfer_fee()
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
    store, signer = store_and_signer(tmp_path)
    pays = [("A" * 44, PAYER, 1000, 5, 100.0), ("B" * 44, PAYER, 1000, 5, 100.0)]
    credits, _ = store.credit_payments(pays, now=NOW, max_seconds=60.0, sign_refund=signer)
    assert len(credits) == 2 and credits[0].refund[0] != credits[1].refund[0]
    assert credits[1].refund[1] == 1000  # the first took the whole cap: all of the second goes back
    rows = store.open_txs()
    assert [iotlight.b58decode(r["tx"]["attachment"]) for r in rows] == [
        iotlight.b58decode("A" * 44),
        iotlight.b58decode("B" * 44),
    ]
    store.close()


def test_store_refunds_nothing_when_the_payment_fits_or_refund_is_off(tmp_path):
    """A payment under the cap signs nothing; without a signer (payment.refund = "none") the cut
    excess is only recorded in the grant."""
    store, signer = store_and_signer(tmp_path)
    [c], _ = store.credit_payments(
        [("A" * 44, PAYER, 1000, 5, 10.0)], now=NOW, max_seconds=60.0, sign_refund=signer
    )
    assert c.refund is None
    [c], _ = store.credit_payments([("B" * 44, PAYER, 1000, 5, 100.0)], now=NOW, max_seconds=60.0)
    assert c.refund is None and c.grant.excess > 0
    assert store.open_txs() == []
    store.close()


def test_a_refund_re_signed_writes_its_receipt_again_with_the_new_id(tmp_path):
    """A refund re-signed (too old to land) replaces the old transfer and its refunds row, and
    queues the receipt again naming the new id with the same span."""
    store, signer = store_and_signer(tmp_path)
    [c], _ = store.credit_payments(
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
    assert store.outbox_counts() == {"queued": 1, "replaced": 1}
    assert store.refund_of(old) is None and store.refund_of(new["id"])["amount"] == 400
    values = [json.loads(e.entries[0]["value"]) for e in store.pending_events()]
    assert [v["refund"]["id"] for v in values] == [old, new["id"]]
    assert values[0]["until"] == values[1]["until"]
    store.close()


# --- the whole daemon on the virtual clock against the fake chain ---------------------------------------

OVER_CAP = {"payment__max_seconds": 2.0, "payment__refund": "excess"}  # 5 s paid: 3 s (300 units) back


@pytest.fixture(autouse=True)
def quiet_httpx():
    logging.getLogger("httpx").setLevel(logging.WARNING)


def sent_by(chain, address, asset):
    """Transfers of `asset` that `address` sent (in blocks and in the pool): id -> (recipient,
    amount, assetId)."""
    out = {}
    for tx in chain.all_transactions() + chain.unconfirmed():
        if tx["type"] == 4 and tx.get("sender") == address and tx.get("assetId") == asset:
            out[tx["id"]] = (tx["recipient"].replace("address:", ""), tx["amount"], tx.get("assetId"))
    return out


def receipt_of(chain, address, payment_id):
    """The served_<id> receipt `address` wrote on chain, or None."""
    entry = chain.data_entries(address).get("served_" + payment_id)
    return json.loads(entry["value"]) if entry else None


def refunds(s):
    return sent_by(s.node.chain, s.address, s.asset)


def served(s, payment_id):
    return receipt_of(s.node.chain, s.address, payment_id)


def on_chain_or_pool(chain, txid):
    return chain.transaction(txid) is not None or txid in [t["id"] for t in chain.unconfirmed()]


def refund_rows(s):
    return s.store.db.execute("SELECT payment_id, tx_id, amount FROM refunds").fetchall()


def outbox_row(s, txid):
    """(status, attempts) of a stored transaction."""
    return s.store.db.execute("SELECT status, attempts FROM outbox WHERE id = ?", (txid,)).fetchone()


def until(s, condition, what, timeout=900.0):
    """Daemon time passes until `condition()` holds; its value."""
    s.run_until(condition, timeout, what, step=1.0)
    return condition()


def receipts_sent(s, payment_id):
    """How many Data transactions of the device the node accepted with served_<payment_id>."""
    key = "served_" + payment_id
    return sum(
        1
        for b in s.node.chain.broadcasts
        if b.status == 200 and b.body.get("type") == 12 and any(e["key"] == key for e in b.body["data"])
    )


def test_a_payment_over_the_cap_gets_exactly_one_refund_the_node_verifies(tmp_path, caplog):
    """5 tokens (5 s) while max_seconds is 2: 2 s of light and 3 tokens back in one transfer the node
    accepts into a block, from the device's coins; the receipt names it; more polls, reads and status
    checks send nothing more."""
    caplog.set_level(logging.INFO, logger="iotlight")
    with Scenario(tmp_path, **OVER_CAP) as s:
        chain, treasury = s.node.chain, s.treasury.address("T")
        s.run_for(10)
        before, coins = chain.balance(treasury, s.asset), chain.balance(s.address)
        paid = s.pay(5)
        receipt = until(s, lambda: served(s, paid), "the receipt")
        [(rid, sent)] = until(s, lambda: refunds(s), "the refund on chain").items()
        assert sent == (treasury, 300, s.asset)
        assert chain.transaction(rid) is not None, "the node did not put the refund in a block"
        assert receipt["refund"] == {"id": rid, "amount": 300} and receipt["seconds"] == 2.0
        assert chain.balance(treasury, s.asset) == before - 500 + 300
        assert chain.balance(s.address, s.asset) == 200
        assert coins - chain.balance(s.address) >= iotlight.transfer_fee()  # the fee came from the device
        assert re.search(r"refund of 3\.00 IoT-Light queued as transfer %s" % rid, caplog.text)
        s.run_for(60)
        assert outbox_row(s, rid)[0] == "broadcast", "in the newest blocks a fork may replace: asked again"
        chain.mine(iotlight.REORG_MARGIN)
        s.run_for(900)  # more polls, list reads and status checks
        assert list(refunds(s)) == [rid] and receipts_sent(s, paid) == 1
        assert s.credited() == {paid: 500} and outbox_row(s, rid)[0] == "confirmed"


def test_a_refund_signed_with_its_credit_goes_out_once_after_a_restart(tmp_path):
    """The refund is signed and stored with the credit; no broadcast gets through (HTTP 500) until
    the daemon stops; the next daemon posts the stored transfer: one refund, the id the receipt
    names. (Across a SIGKILL: test_sigkill_between_signing_and_broadcast_sends_the_refund_once.)"""
    with Scenario(tmp_path, **OVER_CAP) as s:
        s.run_for(10)
        s.node.refuse(500, "/transactions/broadcast")
        paid = s.pay(5)
        [(pid, rid, amount)] = until(s, lambda: refund_rows(s), "the refund signed and stored")
        assert (pid, amount) == (paid, 300)
        until(s, lambda: outbox_row(s, rid)[1] >= 1, "a broadcast of it refused")
        s.stop()
        assert refunds(s) == {} and outbox_row(s, rid)[0] == "queued"
        s.node.clear()
        s.restart(after=60)
        until(s, lambda: refunds(s), "the refund after the restart")
        receipt = until(s, lambda: served(s, paid), "the receipt")
        assert list(refunds(s)) == [rid] and receipt["refund"] == {"id": rid, "amount": 300}
        s.run_for(900)
        assert list(refunds(s)) == [rid] and refund_rows(s) == [(paid, rid, 300)]
        assert receipts_sent(s, paid) == 1


def test_a_refund_out_before_its_receipt_is_named_by_the_receipt_after_a_restart(tmp_path):
    """A joystick press just went out, so the payment's receipt waits in the coalescing window while
    its refund goes out; the daemon stops right then; the next one writes the receipt naming that
    refund: one refund, one receipt. (Across a SIGKILL:
    test_sigkill_between_the_refund_broadcast_and_the_receipt_sends_neither_twice.)"""
    with Scenario(tmp_path, node__poll_interval=5.0, data__coalesce_window=60.0, **OVER_CAP) as s:
        s.run_for(10)
        s.hw.press("up")
        until(s, lambda: "joystick_1" in s.node.chain.data_entries(s.address), "the press on chain")
        paid = s.pay(5)
        [rid] = until(s, lambda: list(refunds(s)), "the refund on chain", timeout=50)
        assert served(s, paid) is None and s.store.pending_event_count() == 1, "the receipt waits"
        s.restart()
        receipt = until(s, lambda: served(s, paid), "the receipt after the restart")
        assert receipt["refund"] == {"id": rid, "amount": 300}
        s.run_for(900)
        assert list(refunds(s)) == [rid] and receipts_sent(s, paid) == 1
        assert s.credited() == {paid: 500}


def test_a_payment_rolled_back_after_its_refund_went_out(tmp_path):
    """Payment and refund leave the chain together and come back from the pool: still one refund.
    When they leave for good, nothing is sent again (the device is owed nothing, owes nothing), and
    once the refund could no longer land it is given up, not signed again."""
    with Scenario(tmp_path, **OVER_CAP) as s:
        chain = s.node.chain
        s.run_for(10)
        chain.mine()
        paid = s.pay(5)
        [rid] = until(s, lambda: list(refunds(s)), "the refund on chain")
        until(s, lambda: served(s, paid), "the receipt")
        chain.mine()
        removed = chain.rollback(2, to_utx=True)  # the liquid block and the one holding both
        assert paid in removed and rid in removed
        until(s, lambda: s.daemon.node_state["height"] == chain.height, "the daemon to see the rollback")
        chain.mine(2)
        chain.include_utx()
        s.run_for(300)
        assert list(refunds(s)) == [rid] and chain.transaction(rid) is not None
        chain.mine()
        removed = chain.rollback(2)  # this time both are dropped
        assert paid in removed and rid in removed
        until(s, lambda: s.daemon.node_state["height"] == chain.height, "the daemon to see the rollback")
        chain.mine(2)
        s.run_for(900)
        assert refunds(s) == {}
        s.restart(after=iotlight.RESIGN_AFTER_MS / 1000)  # off for longer than the refund could wait to land
        until(s, lambda: outbox_row(s, rid)[0] == "failed", "the refund given up")
        assert refunds(s) == {} and [r["id"] for r in s.store.open_txs()] == []
        assert s.credited() == {paid: 500}


def test_a_refund_waits_for_coins_for_its_fee_and_goes_out_once_they_arrive(tmp_path, caplog):
    """A device without coins credits the payment and stores its refund, says once that the fees
    cannot be paid and sends nothing; once coins arrive, that same refund goes out, and the receipt."""
    caplog.set_level(logging.INFO, logger="iotlight")
    s = Scenario(tmp_path, **OVER_CAP)
    chain, fee = s.node.chain, iotlight.transfer_fee()
    chain.transfer(s.keys, s.treasury.address("T"), chain.balance(s.address) - fee, fee=fee)  # every coin
    assert chain.balance(s.address) == 0
    with s:
        s.run_for(10)
        paid = s.pay(5)
        until(s, lambda: "not enough coins for the fee" in caplog.text, "the no-funds line")
        s.run_for(300)
        assert refunds(s) == {} and served(s, paid) is None
        [(_, rid, _)] = refund_rows(s)
        assert s.daemon.snapshot()["outbox"]["no_funds"] is True
        chain.fund(s.address, waves=10**9)
        until(s, lambda: refunds(s), "the refund once coins arrived")
        until(s, lambda: served(s, paid), "the receipt")
        s.run_for(300)
        assert list(refunds(s)) == [rid] and receipts_sent(s, paid) == 1
        assert caplog.text.count("not enough coins for the fee") == 1


def refund_in_the_newest_block(s: Scenario) -> Tuple[str, str]:
    """A payment over the cap whose refund's first broadcast the node refused: the payment sealed
    in a block, then the refund (posted again) in the newest block. Returns (payment id, refund id)."""
    chain = s.node.chain
    s.run_for(10)
    s.node.refuse(500, "/transactions/broadcast")
    paid = s.pay(5)
    [(_, rid, _)] = until(s, lambda: refund_rows(s), "the refund signed and stored")
    chain.mine()  # the payment is sealed below
    s.node.clear()
    until(s, lambda: chain.transaction(rid) is not None, "the refund in the newest block")
    return paid, rid


def test_a_refund_the_chain_dropped_in_a_rollback_goes_out_again_same_id(tmp_path, caplog):
    """The block holding the refund (not the payment) is rolled back and its transactions dropped:
    the daemon re-posts the same signed transfer, so the sender still gets exactly one refund."""
    caplog.set_level(logging.INFO, logger="iotlight")
    with Scenario(tmp_path, **OVER_CAP) as s:
        chain = s.node.chain
        paid, rid = refund_in_the_newest_block(s)
        chain.mine(iotlight.REORG_MARGIN)
        until(s, lambda: outbox_row(s, rid)[0] == "confirmed", "the daemon to see the refund confirmed")
        until(s, lambda: s.daemon.node_state["height"] == chain.height, "the daemon to see the newest block")
        # the refund's block is gone, and the refund with it
        removed = chain.rollback(iotlight.REORG_MARGIN + 1)
        assert rid in removed and paid not in removed
        until(s, lambda: on_chain_or_pool(chain, rid), "the same refund posted again")
        chain.mine(iotlight.REORG_MARGIN + 1)
        s.run_for(900)
        assert list(refunds(s)) == [rid] and outbox_row(s, rid)[0] == "confirmed"
        assert "checking 1 refund transfer(s) again" in caplog.text


def test_a_refund_dropped_from_a_block_replaced_at_the_same_height_goes_out_again(tmp_path):
    """The newest block, holding the refund (not the payment), is replaced by another at the same
    height, as a microblock fork does, and the height never goes back: a refund in the newest
    REORG_MARGIN blocks is still asked about, so the same signed transfer goes out again, and it is
    marked confirmed only once it is that deep: exactly one refund."""
    with Scenario(tmp_path, **OVER_CAP) as s:
        chain = s.node.chain
        paid, rid = refund_in_the_newest_block(s)
        s.run_for(30)  # the daemon asks about it: in a block, but not deep enough to be final
        assert outbox_row(s, rid)[0] == "broadcast"
        removed = chain.rollback(1)
        chain.mine()  # another block at the same height, without the refund
        assert rid in removed and paid not in removed and not on_chain_or_pool(chain, rid)
        until(s, lambda: on_chain_or_pool(chain, rid), "the same refund posted again")
        chain.mine(iotlight.REORG_MARGIN + 1)
        until(s, lambda: outbox_row(s, rid)[0] == "confirmed", "the refund confirmed once deep enough")
        assert list(refunds(s)) == [rid]


def test_a_payment_below_the_minimum_lights_nothing_and_costs_no_fee(tmp_path, caplog):
    """Under payment.min_tokens: no credit, no Data transaction, one `ignored` line, also after a
    restart; a payment at the minimum counts."""
    caplog.set_level(logging.INFO, logger="iotlight")
    with Scenario(tmp_path, payment__min_tokens=2.5) as s:
        chain = s.node.chain
        s.run_for(10)
        dust = chain.transfer(s.treasury, s.address, 249, asset_id=s.asset)["id"]
        chain.mine()
        until(s, lambda: "lights nothing: below_minimum" in caplog.text, "the ignored line")
        s.run_for(900)
        assert s.credited() == {} and not s.lit()
        data = [
            tx
            for tx in chain.all_transactions() + chain.unconfirmed()
            if tx["type"] == 12 and tx.get("sender") == s.address
        ]
        assert data == [] and chain.broadcasts == []
        s.restart(after=60)
        good = s.pay(2.5)
        until(s, lambda: served(s, good), "the receipt of the payment at the minimum")
        assert served(s, dust) is None
        assert s.credited() == {good: 250}
        assert caplog.text.count("transfer %s from" % dust) == 1
        assert [(e["id"], e["reason"]) for e in s.events("ignored")] == [(dust, "below_minimum")]


def daemon_on(config, clock, store, **kw):
    """A Daemon (not started) with a node client that is never asked; made inside the clock's loop."""

    async def make():
        node = iotlight.NodeClient(["http://127.0.0.1:9"], timeout=1.0, clock=clock)
        return iotlight.Daemon(config, KEYS, node=node, store=store, hardware=None, clock=clock, **kw)

    return in_loop(clock, make)


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
    clock = VirtualClock()
    store = iotlight.Store(str(tmp_path / "s.db"), clock)
    daemon = daemon_on(cfg, clock, store)
    state = daemon.snapshot()
    assert state["price"] == {
        "seconds_per_token": 30.0,
        "min_tokens": 2.0,
        "max_seconds": 600.0,
        "refund": "excess",
    }
    assert state["gpio"] is None
    assert 'id="price"' in iotlight.DASHBOARD_HTML and "p.min_tokens" in iotlight.DASHBOARD_HTML
    in_loop(clock, daemon.node.aclose)
    store.close()


def test_a_payment_granted_nothing_is_reported_ignored_and_its_refund_queued(tmp_path):
    """The lamp at the cap: the payment is credited for 0 s; the monitor gets `ignored` (reason
    cut_by_cap, the dashboard's word) and the `refund` event; a partly cut payment is no `ignored`.
    The lamp follows the span the credit returned, and the outbox is woken for the receipts."""
    cfg = iotlight.parse_config(
        {"payment": {"asset_id": ASSET, "refund": "excess"}}, str(tmp_path / "c.toml")
    )
    clock = VirtualClock(wall_start=NOW)
    store = iotlight.Store(str(tmp_path / "s.db"), clock)
    published = []

    class Recorder:
        def __init__(self, **kw):
            pass

        def publish(self, message):
            published.append(message)

    daemon = daemon_on(cfg, clock, store, monitor_factory=Recorder)
    nothing = iotlight.Grant(start=NOW + 60, until=NOW + 60, seconds=0.0, excess=5.0)
    part = iotlight.Grant(start=NOW, until=NOW + 60, seconds=3.0, excess=2.0)
    daemon.tell(
        "credited",
        credits=[
            iotlight.Credit("N" * 44, PAYER, 500, 7, nothing, ("R" * 44, 500)),
            iotlight.Credit("Q" * 44, PAYER, 500, 7, part, ("S" * 44, 200)),
        ],
        span=(NOW, NOW + 60),
    )
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
    refund_events = [m for m in published if m["type"] == "refund"]
    assert refund_events == [
        {"type": "refund", "payment_id": "N" * 44, "id": "R" * 44, "amount": 500, "status": "queued"},
        {"type": "refund", "payment_id": "Q" * 44, "id": "S" * 44, "amount": 200, "status": "queued"},
    ]
    state = daemon.lamp.state()
    assert state["on"] and state["remaining"] == 60.0 and state["until"] == pytest.approx(NOW + 60, abs=1e-3)
    assert [m for m in published if m["type"] == "light"] == [dict(state, type="light")]
    assert daemon.outbox.wake.is_set()
    in_loop(clock, daemon.node.aclose)
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


# --- real processes: a SIGKILL in the middle -----------------------------------------------------


def process_refunds(chain, device):
    return sent_by(chain, device.address, chain.asset)


def process_refund_rows(device):
    db = device.folder / "iotlight.db"
    if not db.exists():
        return []
    try:
        return read_state(db, "SELECT payment_id, tx_id, amount FROM refunds")
    except Exception:  # the table appears with the daemon's first start
        return []


def settled(device):
    """No transaction of the device is open (queued or broadcast) in its state file."""
    rows = read_state(
        device.folder / "iotlight.db", "SELECT COUNT(*) FROM outbox WHERE status IN ('queued', 'broadcast')"
    )
    return rows[0][0] == 0


def wait_contact(device):
    wait_until(
        lambda: read_state(device.folder / "iotlight.db", "SELECT value FROM meta WHERE key = 'horizon'"),
        30,
        what="the daemon's first contact with the node",
    )


@pytest.mark.process
@pytest.mark.timeout(150)
def test_sigkill_between_signing_and_broadcast_sends_the_refund_once(chain, device):
    """The refund is signed and stored with the credit; no broadcast gets through; SIGKILL; the
    restarted daemon posts the stored transfer: one refund, the id the receipt names."""
    device.configure(payment__max_seconds=2.0, payment__refund="excess")
    device.start()
    wait_contact(device)
    chain.fail("500", paths=["/transactions/broadcast"])
    paid = chain.transfer(chain.treasury, device.address, 500, asset_id=chain.asset)["id"]  # 3 s over the cap
    [(pid, rid, amount)] = wait_until(
        lambda: process_refund_rows(device), 30, what="the refund signed and stored"
    )
    assert (pid, amount) == (paid, 300)
    db = device.folder / "iotlight.db"
    attempts = "SELECT attempts FROM outbox WHERE id = ?"
    wait_until(lambda: read_state(db, attempts, (rid,))[0][0] >= 1, 30, what="a broadcast of it refused")
    device.kill(signal.SIGKILL)
    assert process_refunds(chain, device) == {}
    chain.clear_faults()
    device.start()
    wait_until(lambda: process_refunds(chain, device), 30, what="the refund after the restart")
    receipt = wait_until(lambda: receipt_of(chain, device.address, paid), 30, what="the receipt")
    assert list(process_refunds(chain, device)) == [rid] and receipt["refund"]["id"] == rid
    chain.mine(
        iotlight.REORG_MARGIN
    )  # a refund counts as confirmed once a fork can no longer replace its block
    wait_until(lambda: settled(device), 30, what="every transaction of the device confirmed")
    assert list(process_refunds(chain, device)) == [rid]
    assert process_refund_rows(device) == [(paid, rid, 300)]


@pytest.mark.process
@pytest.mark.timeout(150)
def test_sigkill_between_the_refund_broadcast_and_the_receipt_sends_neither_twice(chain, device):
    """A first payment's receipt opens a 60 s coalescing window, so the second payment's receipt
    waits while its refund goes out; SIGKILL as soon as the refund is on chain, before the receipt;
    after the restart: still one refund, and one receipt naming it."""
    device.configure(payment__max_seconds=2.0, payment__refund="excess", data__coalesce_window=60.0)
    device.start()
    wait_contact(device)
    first = chain.transfer(chain.treasury, device.address, 100, asset_id=chain.asset)["id"]  # 1 s of light
    wait_until(lambda: receipt_of(chain, device.address, first), 30, what="the first receipt")
    wait_until(lambda: light_until(device) < time.time(), 10, what="the first second of light to end")
    paid = chain.transfer(chain.treasury, device.address, 500, asset_id=chain.asset)["id"]  # 3 s over the cap
    [rid] = wait_until(lambda: list(process_refunds(chain, device)), 30, what="the refund on chain")
    device.kill(signal.SIGKILL)
    assert receipt_of(chain, device.address, paid) is None, "the receipt waited in the window"
    device.start()
    receipt = wait_until(
        lambda: receipt_of(chain, device.address, paid), 30, what="the receipt after the restart"
    )
    assert receipt["refund"] == {"id": rid, "amount": 300}
    chain.mine(
        iotlight.REORG_MARGIN
    )  # a refund counts as confirmed once a fork can no longer replace its block
    wait_until(lambda: settled(device), 30, what="every transaction of the device confirmed")
    assert list(process_refunds(chain, device)) == [rid]
    assert credited(device) == {first: 100, paid: 500}
