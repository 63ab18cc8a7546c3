"""The pure core: pricing, the light timer, the ledger rules (judge_transfer on the official
vectors), event packing; the store's guarantees; the ledger's report budget; the light's end time,
which flows one way from a credit to the lamp. All in-process, on the virtual clock."""

import asyncio
import copy
import json
import logging
import os
import random

import pytest
from harness import poll_settled
from reference import load_vectors
from scenario import FakeHardware, Scenario, VirtualClock

import iotlight
from iotlight import (
    Grant,
    LightTimer,
    PendingEvent,
    Rules,
    Verdict,
    extend_light,
    judge_transfer,
    payment_amount,
)

ASSET = "5FKsurYZCD1FMdjij1u6MJ2yzCcLFs65Mak583TeNdQV"
ME = "3MqmzT5yx13napicjXpbkDupdWmRwmX37oL"
MINE = {ME, "alias:T:iot-light"}
NOW = 1_800_000_000.0  # the virtual clock's wall time at its start


def in_loop(clock, make):
    """Run `make()` (a coroutine function) on the virtual clock's loop: the services create their
    asyncio objects there (Python 3.9 binds them to a loop when they are made)."""
    return clock.loop.run_until_complete(make())


def test_payment_seconds_uses_decimals_and_rate():
    """150 units of a 2-decimal token at 2 s per token buy 3 s."""
    assert iotlight.payment_seconds(150, 2, 2.0) == 3.0
    assert iotlight.payment_seconds(1, 8, 1.0) == 1e-8


def test_extend_light_when_dark_and_when_lit_and_capped():
    """A payment starts now when dark, at the end time when lit, and the cap cuts the excess."""
    assert extend_light(0.0, 100.0, 10.0, 3600) == Grant(start=100.0, until=110.0, seconds=10.0, excess=0.0)
    assert extend_light(110.0, 105.0, 10.0, 3600) == Grant(start=110.0, until=120.0, seconds=10.0, excess=0.0)
    g = extend_light(110.0, 105.0, 100.0, 20.0)
    assert (g.start, g.until, g.seconds, g.excess) == (110.0, 125.0, 15.0, 85.0)
    g = extend_light(200.0, 105.0, 10.0, 20.0)  # already past the cap: nothing more
    assert (g.until, g.seconds, g.excess) == (200.0, 0.0, 10.0)


def test_light_timer_runs_on_the_monotonic_clock():
    """The deadline is monotonic: a wall-clock value only converts at set time."""
    t = LightTimer()
    assert not t.is_on(0.0) and t.fraction(0.0) == 0.0
    t.set_until(1_000_010.0, mono=50.0, wall=1_000_000.0)
    assert t.is_on(55.0) and t.remaining(55.0) == 5.0 and t.fraction(55.0) == 0.5
    t.set_until(1_000_020.0, mono=55.0, wall=1_000_005.0)  # extended while lit: same span
    assert t.span_start == 50.0 and t.remaining(55.0) == 15.0
    assert not t.is_on(70.0)


@pytest.mark.parametrize(
    "tx, amount",
    [
        (
            {"type": 4, "assetId": ASSET, "recipient": ME, "amount": 150, "applicationStatus": "succeeded"},
            150,
        ),
        ({"type": 4, "assetId": ASSET, "recipient": "alias:T:iot-light", "amount": 7}, 7),
        ({"type": 4, "assetId": ASSET, "recipient": "address:" + ME, "amount": 9}, 9),
        ({"type": 4, "assetId": None, "recipient": ME, "amount": 150}, 0),
        ({"type": 4, "assetId": "other", "recipient": ME, "amount": 150}, 0),
        ({"type": 4, "assetId": ASSET, "recipient": "3Mother", "amount": 150}, 0),
        (
            {
                "type": 4,
                "assetId": ASSET,
                "recipient": ME,
                "amount": 150,
                "applicationStatus": "script_execution_failed",
            },
            0,
        ),
        ({"type": 4, "assetId": ASSET, "recipient": ME, "amount": "150"}, 0),
        (
            {
                "type": 11,
                "assetId": ASSET,
                "transfers": [
                    {"recipient": ME, "amount": 100},
                    {"recipient": "alias:T:iot-light", "amount": 250},
                    {"recipient": "3Mother", "amount": 1},
                ],
            },
            350,
        ),
        ({"type": 12, "assetId": ASSET, "recipient": ME, "amount": 5}, 0),
    ],
)
def test_payment_amount_rules(tx, amount):
    """Only transfers and mass-transfer items of the token to the device, that succeeded, count."""
    assert payment_amount(tx, asset_id=ASSET, mine=MINE) == amount


def test_malformed_transactions_are_refused_with_a_reason():
    """check_tx_shape and the transfer rules name what is malformed (ValueError), item by item."""
    with pytest.raises(ValueError, match="not an object"):
        iotlight.check_tx_shape([1])
    with pytest.raises(ValueError, match="id"):
        iotlight.check_tx_shape({"id": 5, "type": 4})
    with pytest.raises(ValueError, match="non-integer height"):
        iotlight.check_tx_shape({"id": "A" * 44, "type": 4, "height": "x"})
    with pytest.raises(ValueError, match="mass transfer item"):
        payment_amount({"type": 11, "assetId": ASSET, "transfers": ["x"]}, asset_id=ASSET, mine=MINE)


# --- judge_transfer on the official vectors (tests/vectors) -------------------------------------

TRANSFER_VECTORS = load_vectors("transfers.json")
MASS_VECTORS = load_vectors("mass_transfers.json")
DEVICES = TRANSFER_VECTORS["_accounts"]["recipient_addresses"]  # chain -> the vectors' recipient
TOKENS = {"T": ASSET, "W": ASSET, "S": ASSET, "Z": TRANSFER_VECTORS["token"]["asset_id_Z"]}
OTHER_ASSET = "BG39cCNUFWPQYeyLnu7tjKHaiUGRxYwJjvntt9gdDPxG"
HEIGHT = 1234567  # the height the vectors' node JSON carries
PER_TOKEN = 2.5  # seconds a whole token buys in these rules
PAYMENTS = TRANSFER_VECTORS["transfers"] + MASS_VECTORS["vectors"]


def listed(vec):
    """The vector as the node lists it (the docs' v1 transfer has no node JSON: made from its fields)."""
    tx = vec.get("node_json_expected")
    if tx is None:
        pk = iotlight.b58decode(vec["tx_json"]["senderPublicKey"])
        sender = iotlight.address_from_public_key(pk, vec["chain"])
        tx = dict(vec["tx_json"], id=vec["id"], sender=sender, height=HEIGHT, applicationStatus="succeeded")
    return copy.deepcopy(tx)


def device_of(vec):
    """The addresses (and alias) of the device the vector pays."""
    if "docs-example" in vec["name"]:
        return frozenset({vec["tx_json"]["recipient"]})
    chain = vec["chain"]
    return frozenset({DEVICES[chain], "alias:%s:iot-light" % chain})


def rules_for(vec, **changes):
    tx = listed(vec)
    values = dict(
        asset_id=tx.get("assetId") or TOKENS[vec["chain"]],
        chain_id=vec["chain"],
        mine=device_of(vec),
        decimals=2,
        seconds_per_token=PER_TOKEN,
    )
    values.update(changes)
    return Rules(**values)


def paid_to_device(tx, vec):
    """What the (node JSON of the) vector sends the device."""
    items = tx["transfers"] if tx["type"] == 11 else [tx]
    return sum(i["amount"] for i in items if i["recipient"] in device_of(vec))


def tampered(vec, what):
    """The vector's node JSON with one thing changed after signing."""
    tx, other = listed(vec), [v for v in PAYMENTS if v["name"] != vec["name"]][0]
    if what == "id":
        tx["id"] = other["id"]
    elif what == "proof":
        proof = listed(other)["proofs"][0]
        tx["proofs"] = [proof]
        if "signature" in tx:
            tx["signature"] = proof
    elif what == "amount":  # one more unit (one less where the amount is 2^63-1 already)
        items = tx["transfers"] if tx["type"] == 11 else [tx]
        item = next(i for i in items if i["recipient"] in device_of(vec))
        item["amount"] += -1 if item["amount"] == iotlight.INT64_MAX else 1
    elif what == "sender":
        tx["sender"] = DEVICES[vec["chain"]] if tx["sender"] != DEVICES[vec["chain"]] else other["sender"]
    return tx


def judged(tx, rules, height=HEIGHT):
    v = judge_transfer(tx, rules, height)
    return v, v.handled, v.paid


@pytest.mark.parametrize("vec", PAYMENTS, ids=[v["name"] for v in PAYMENTS])
def test_judge_transfer_on_every_vector(vec):
    """Every vector transfer, judged for the device it pays: a payment in the token is credited with
    its amount and the seconds it buys; one in another asset is ignored (wrong_asset); for another
    address it is none of the device's business; failed, tampered (id, proof, amount, sender,
    network), not yet final, below the minimum, made before the first start and pruned each get
    their own verdict, and only a complete read may mark handled what may still change."""
    tx = listed(vec)
    amount = paid_to_device(tx, vec)
    assert amount > 0
    in_token = tx.get("assetId") is not None
    seconds = iotlight.payment_seconds(amount, 2, PER_TOKEN)
    credit = Verdict("credit", amount, seconds)

    # the device it pays
    if in_token:
        assert judged(tx, rules_for(vec)) == (credit, True, True)
        assert seconds == amount / 100 * PER_TOKEN
    else:  # the chain's coin, not the token
        assert judged(tx, rules_for(vec)) == (Verdict("ignore", amount, reason="wrong_asset"), True, False)
    # another address (the vector's sender is no recipient of it)
    assert judged(tx, rules_for(vec, mine=frozenset({tx["sender"]}))) == (Verdict("none"), True, False)
    # the wrong asset
    wrong = rules_for(vec, asset_id=OTHER_ASSET if tx.get("assetId") != OTHER_ASSET else ASSET)
    assert judged(tx, wrong) == (Verdict("ignore", amount, reason="wrong_asset"), True, False)
    # failed on chain (only the fee moved)
    failed = dict(tx, applicationStatus="script_execution_failed")
    detail = "applicationStatus script_execution_failed"
    assert judged(failed, rules_for(vec)) == (
        Verdict("ignore", amount, reason="failed", detail=detail),
        True,
        False,
    )
    # tampered: nothing the node says counts before it checks out (and the real one may still come)
    for what, why in [
        ("id", "its id is not the hash of its fields"),
        ("proof", "its proof is not the sender's signature"),
        ("amount", "its id is not the hash of its fields"),
        ("sender", "its sender is not the address of its senderPublicKey"),
    ]:
        bad = tampered(vec, what)
        expected = Verdict("ignore", paid_to_device(bad, vec), reason="not_verified", detail=why)
        assert judged(bad, rules_for(vec)) == (expected, False, False), what
    elsewhere = rules_for(vec, chain_id="S" if vec["chain"] != "S" else "T")
    v, handled, paid = judged(tx, elsewhere)
    assert (v.action, v.reason, handled, paid) == ("ignore", "not_verified", False, False), v
    if not in_token:
        return

    # not yet final: waits for its confirmations (in the pool it has no height: waits too)
    final = rules_for(vec, confirmations=3)
    assert judged(tx, final, HEIGHT + 2) == (Verdict("wait", amount), False, True)
    assert judged(tx, final, HEIGHT + 3) == (credit, True, True)
    assert judged(dict(tx, height=None), rules_for(vec), HEIGHT) == (Verdict("wait", amount), False, True)
    # below payment.min_tokens: ignored, but a real payment (the balance counts it)
    under = "under payment.min_tokens (%g)" % ((amount + 1) / 100)
    below = Verdict("ignore", amount, reason="below_minimum", detail=under)
    assert judged(tx, rules_for(vec, min_tokens=(amount + 1) / 100)) == (below, True, True)
    assert judged(tx, rules_for(vec, min_tokens=amount / 100)) == (credit, True, True)
    # made before the very first start and mined by the node's height then: history
    before = rules_for(vec, first_start_ms=tx["timestamp"] + 1, horizon=HEIGHT)
    assert judged(tx, before) == (Verdict("history", amount), True, False)
    assert (
        judged(tx, rules_for(vec, first_start_ms=tx["timestamp"] + 1, horizon=HEIGHT, count_history=True))[0]
        == credit
    )
    assert judged(tx, rules_for(vec, first_start_ms=tx["timestamp"] + 1, horizon=HEIGHT - 1))[0] == credit
    assert judged(tx, rules_for(vec, first_start_ms=tx["timestamp"]))[0] == credit
    # at or below the pruned height: handled long ago, never credited again (before any check)
    assert judged(tx, rules_for(vec, pruned=HEIGHT)) == (Verdict("pruned", amount), False, False)
    assert judged(tampered(vec, "proof"), rules_for(vec, pruned=HEIGHT))[0] == Verdict("pruned", amount)
    assert judged(tx, rules_for(vec, pruned=HEIGHT - 1))[0] == credit


def test_a_compact_mass_transfer_is_not_verified_until_its_full_form_is_read():
    """A node lists a mass transfer with other recipients in compact form (only the device's items):
    its id is not the hash of what is left, so it is not_verified and not handled (the chain reader
    reads the full form); the full form credits every item to the device, the alias's included."""
    compact = copy.deepcopy(MASS_VECTORS["as_seen_by_recipient_in_transactions_address"]["response_item"])
    full = next(v for v in MASS_VECTORS["vectors"] if v["id"] == compact["id"])
    rules = rules_for(full)
    v = judge_transfer(compact, rules, HEIGHT)
    assert (v.action, v.amount, v.reason, v.handled, v.paid) == ("ignore", 100, "not_verified", False, False)
    assert judge_transfer(listed(full), rules, HEIGHT) == Verdict("credit", 350, 350 / 100 * PER_TOKEN)


def press(seq, n):
    return PendingEvent(seq, "joystick", (iotlight.joystick_entry(n, "up", "pressed", 1000 + n),), n)


def test_pack_events_respects_entry_limit_and_one_telemetry_set():
    """A batch holds at most 100 entries including joystick_count, and one telemetry set."""
    presses = [press(i, i) for i in range(1, 151)]
    batch = iotlight.pack_events(presses)
    assert len(batch) == 99 and len(iotlight.events_to_entries(batch)) == 100
    tele = PendingEvent(
        1,
        "telemetry",
        tuple(
            iotlight.telemetry_entries(
                {"temperature_c": 20.0, "humidity_pct": 40.0, "pressure_hpa": 1000.0}, 5
            )
        ),
    )
    assert iotlight.pack_events([tele, tele, press(3, 1)]) == [tele]
    entries = iotlight.events_to_entries(presses[:3])
    assert entries[-1] == {"key": "joystick_count", "type": "integer", "value": 3}
    iotlight.validate_data_entries(iotlight.events_to_entries(batch))


def test_telemetry_entries_scale_and_skip_failed_sensors():
    """Readings become hundredths in integer entries with their time; a failed sensor is left out."""
    out = iotlight.telemetry_entries(
        {"temperature_c": 21.374, "humidity_pct": None, "pressure_hpa": 1013.256}, 77
    )
    assert out == [
        {"key": "temperature_c100", "type": "integer", "value": 2137},
        {"key": "pressure_hpa100", "type": "integer", "value": 101326},
        {"key": "telemetry_ts", "type": "integer", "value": 77},
    ]
    assert iotlight.telemetry_entries({"temperature_c": None}, 1) == []


@pytest.mark.parametrize(
    "reading", [{"temperature_c": 1e307}, {"pressure_hpa": 9.3e16}, {"humidity_pct": -1e17}]
)
def test_telemetry_value_past_int64_is_an_encoding_error(reading, tmp_path):
    """A reading whose hundredths do not fit a Data integer: EncodingError (not OverflowError, not an
    entry the builder refuses later); the telemetry service leaves that reading out and goes on."""
    with pytest.raises(iotlight.EncodingError, match="does not fit a 64-bit Data integer"):
        iotlight.telemetry_entries(reading, 1)

    class Sensors:
        async def read_environment(self):
            return dict(reading)

    clock = VirtualClock()
    store = iotlight.Store(str(tmp_path / "s.db"), clock)
    config = iotlight.parse_config(
        {"payment": {"asset_id": ASSET}, "data": {"telemetry_interval": 60}}, "x.toml"
    )
    told = []
    telemetry = iotlight.Telemetry(config, Sensors(), store, clock, lambda kind, **f: told.append(kind))
    in_loop(clock, telemetry.read_once)
    assert store.pending_event_count() == 0 and told == []
    store.close()


def test_rate_limiter_and_backoff():
    """The token bucket refills at its rate; back-off grows, jitters, stays under its cap, honours a
    Retry-After, and comes back to its base at once (or step by step with `recover`)."""
    rl = iotlight.RateLimiter(2, 1.0, 2, now=0.0)
    rl.take(0.0)
    rl.take(0.0)
    assert rl.delay(0.0) == pytest.approx(0.5)
    assert not rl.take(0.0)
    assert rl.delay(0.5) == 0.0 and rl.take(0.5)
    assert iotlight.RateLimiter(0, 60, 1, now=0).delay(0) == 0.0
    b = iotlight.Backoff(1.0, 8.0, random.Random(1))
    values = [b.failure() for _ in range(8)]
    assert 0.5 <= values[0] <= 1.0 and 1.0 <= values[1] <= 2.0 and all(4.0 <= v <= 8.0 for v in values[4:])
    assert len(set(values)) == len(values), "jittered"
    assert b.failure(retry_after=30.0) == 30.0 and b.failures == 9
    b.success()
    assert b.failures == 0 and b.gap == 1.0 and 0.5 <= b.failure() <= 1.0
    slow = iotlight.Backoff(1.0, 8.0, random.Random(2), recover=2, spread=0.2)
    for _ in range(5):
        slow.failure()
    assert slow.gap == 8.0
    slow.success()
    assert slow.gap == pytest.approx(1 / (1 / 8 + 1 / 2))  # a step back to full speed, not a jump
    assert all(0.8 * slow.gap <= slow.interval() <= slow.gap for _ in range(50))
    slow.success()
    assert slow.gap == 1.0


# --- the store ------------------------------------------------------------------------------------

SENDER = "3Msender"


def test_store_credits_each_payment_once_with_its_receipt(tmp_path):
    """Crediting the same id twice changes nothing; the light and a receipt move together."""
    store = iotlight.Store(str(tmp_path / "s.db"), VirtualClock())
    first, span = store.credit_payments([("A" * 44, SENDER, 300, 5, 3.0)], now=1000.0, max_seconds=3600)
    again, same = store.credit_payments([("A" * 44, SENDER, 300, 5, 3.0)], now=1001.0, max_seconds=3600)
    assert len(first) == 1 and again == []
    assert span == same == store.light() == (1000.0, 1003.0)
    events = store.pending_events()
    assert [e.kind for e in events] == ["receipt"]
    assert json.loads(events[0].entries[0]["value"]) == {"seconds": 3.0, "from": 1000000, "until": 1003000}
    store.close()


def test_a_credit_returns_the_lights_new_span(tmp_path):
    """credit_payments returns the light's (start, until) after the credit, the same the state file
    keeps: a new span when dark, the same span extended when lit, cut at the cap, as it was when
    nothing new is credited; `light` (the running lamp's span) is what a credit extends; a payment
    served already (its receipt on chain) resumes the light up to its end, no further."""
    store = iotlight.Store(str(tmp_path / "s.db"), VirtualClock())

    def credit(txid, seconds, now, **kw):
        credits, span = store.credit_payments(
            [(txid * 44, SENDER, 100, 5, seconds)], now=NOW + now, max_seconds=60, **kw
        )
        assert span == store.light(), "the span returned is the span kept"
        return [c.grant for c in credits], (span[0] - NOW, span[1] - NOW)

    assert credit("A", 3.0, 0) == ([Grant(NOW, NOW + 3, 3.0, 0.0)], (0, 3))  # dark: a new span
    assert credit("B", 1.0, 1) == ([Grant(NOW + 3, NOW + 4, 1.0, 0.0)], (0, 4))  # lit: extended
    assert credit("C", 100.0, 2) == ([Grant(NOW + 4, NOW + 62, 58.0, 42.0)], (0, 62))  # capped
    assert credit("A", 3.0, 3) == ([], (0, 62))  # nothing new: the span as it is
    # the running lamp says the light ends at +105 (the stored +62 is stale): that is extended
    assert credit("D", 10.0, 100, light=(NOW + 90, NOW + 105)) == (
        [Grant(NOW + 105, NOW + 115, 10.0, 0.0)],
        (90, 115),
    )
    assert credit("E", 5.0, 1000) == ([Grant(NOW + 1000, NOW + 1005, 5.0, 0.0)], (1000, 1005))  # dark again
    receipts = store.pending_event_count()
    served = {
        "F" * 44: {"seconds": 20.0, "from": int((NOW + 1990) * 1000), "until": int((NOW + 2010) * 1000)}
    }
    assert credit("F", 20.0, 2000, served=served) == ([], (1990, 2010))  # recorded, resumed, no new receipt
    assert store.pending_event_count() == receipts and store.credited_ids(["F" * 44]) == {"F" * 44}
    served = {"G" * 44: {"seconds": 5.0, "from": int((NOW + 1000) * 1000), "until": int((NOW + 1005) * 1000)}}
    assert credit("G", 5.0, 2001, served=served) == ([], (1990, 2010))  # served long ago: no light again
    store.close()


def test_store_read_only_reads_what_the_daemon_wrote_and_writes_nothing(tmp_path):
    """`status` reads through Store.open_read_only: the same answers as the daemon's Store, the file
    unchanged and nothing of ours created beside it (no reserve file), and a write is refused."""
    import sqlite3

    path = tmp_path / "s.db"
    store = iotlight.Store(str(path), VirtualClock())
    store.credit_payments([("A" * 44, SENDER, 300, 5, 3.0)], now=1000.0, max_seconds=3600)
    store.add_press("up", "pressed", 1)
    expected = (
        store.light(),
        store.pending_event_count(),
        store.outbox_counts(),
        store.payment_count(),
        store.recent_payments(5),
    )
    store.close()
    (tmp_path / "s.db.reserve").unlink()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    reader = iotlight.Store.open_read_only(str(path))
    try:
        assert (
            reader.light(),
            reader.pending_event_count(),
            reader.outbox_counts(),
            reader.payment_count(),
            reader.recent_payments(5),
        ) == expected
        assert expected[1] == 2 and expected[3] == 1
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.db.execute("INSERT INTO meta VALUES ('x', 'y')")
    finally:
        reader.close()
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    # SQLite's own shared-memory index and empty log of a WAL reader may appear; nothing else
    assert {k: v for k, v in after.items() if k not in ("s.db-shm", "s.db-wal")} == before
    assert after.get("s.db-wal", b"") == b""


def test_store_lookups_by_id_use_a_handful_of_statement_texts(tmp_path):
    """Every length of id list answered right, with few distinct SQL texts: each text is a prepared
    statement SQLite keeps (the chaos case grew SQLite's memory 0.8 -> 3.4 MB with one per length)."""
    store = iotlight.Store(str(tmp_path / "s.db"))
    store.mark_seen([("T%04d" % i, i) for i in range(1200)])
    texts = set()
    store.db.set_trace_callback(texts.add)
    for n in range(0, 1100, 7):
        ids = ["T%04d" % i for i in range(n)] + ["unknown"]
        assert store.seen_heights(ids) == {"T%04d" % i: i for i in range(n)}
    store.db.set_trace_callback(None)
    assert len({t.count(",") for t in texts}) <= 8  # the trace shows the values bound: count the list
    store.close()


def test_store_numbers_presses_and_replaces_transactions_atomically(tmp_path):
    """Presses get 1, 2, 3 ... across reopenings; a re-signed transaction takes over its events."""
    path = str(tmp_path / "s.db")
    clock = VirtualClock()
    store = iotlight.Store(path, clock)
    assert [store.add_press("up", "pressed", 5) for _ in range(2)] == [1, 2]
    store.close()
    store = iotlight.Store(path, clock)
    assert store.add_press("down", "pressed", 7) == 3
    keys = iotlight.keypair_from_seed("throwaway store test")
    events = store.pending_events()
    tx1 = iotlight.build_data_tx(keys, iotlight.events_to_entries(events), timestamp=1, chain_id="T")
    store.queue_tx(tx1, events)
    assert store.pending_events() == []
    tx2 = iotlight.build_data_tx(keys, iotlight.events_to_entries(events), timestamp=2, chain_id="T")
    store.queue_tx(tx2, store.events_of(tx1["id"]), replaces=tx1["id"])
    assert [r["id"] for r in store.open_txs()] == [tx2["id"]]
    assert [e.press_n for e in store.events_of(tx2["id"])] == [1, 2, 3]
    assert store.outbox_counts() == {"replaced": 1, "queued": 1}
    store.close()


def test_store_refuses_another_devices_state(tmp_path):
    """A state file bound to one address refuses another (StateError naming the owner)."""
    store = iotlight.Store(str(tmp_path / "s.db"))
    store.bind_device("3Mone", ASSET)
    with pytest.raises(iotlight.StateError, match="belongs to address 3Mone"):
        store.bind_device("3Mtwo", ASSET)
    store.close()


def test_every_exit_status_is_a_class_of_the_documented_error_tree():
    """Exit statuses live on the error classes (never set on an instance), and the comment diagram
    of section 2 names every error class with its status; a damaged state file is StateDamaged, 3."""
    import inspect
    import re

    source = inspect.getsource(iotlight)
    assert not re.search(r"\.exit_status\s*=", source), "an exit status set on an instance"
    diagram = source.split("# 2. Errors", 1)[1].split("\nclass ", 1)[0]
    classes = [
        c for c in vars(iotlight).values() if isinstance(c, type) and issubclass(c, iotlight.IotlightError)
    ]
    assert len(classes) >= 8
    for cls in classes:
        line = next((x for x in diagram.splitlines() if re.search(r"\b%s\b" % cls.__name__, x)), "")
        assert line.endswith("exit %d" % cls.exit_status), (cls.__name__, line)
    assert issubclass(iotlight.StateDamaged, iotlight.StateError) and iotlight.StateDamaged.exit_status == 3


def test_damaged_state_file_is_moved_aside_with_exit_status_3(tmp_path):
    """A state file that is not SQLite (or fails its check) is kept aside, with a recovery hint."""
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(iotlight.StateDamaged) as e:
        iotlight.Store(str(path))
    assert e.value.exit_status == 3
    assert "moved to" in str(e.value) and "not credited again" in str(e.value)
    assert not path.exists() and list(tmp_path.glob("s.db.damaged-*"))


def test_press_numbers_continue_after_the_chains_count(tmp_path):
    """A state file behind the chain (lost writes) continues numbering after joystick_count;
    a pending press the chain already holds is marked sent, another one is renumbered."""
    store = iotlight.Store(str(tmp_path / "s.db"), VirtualClock())
    assert [store.add_press(d, "pressed", 1000 + i) for i, d in enumerate(("up", "down"))] == [1, 2]
    first, second = store.pending_events()
    assert store.raise_press_count(5, on_chain=[first.seq])
    pending = store.pending_events()
    assert [(e.press_n, e.entries[0]["key"]) for e in pending] == [(6, "joystick_6")]
    value = json.loads(pending[0].entries[0]["value"])
    assert (value["direction"], value["ts"]) == ("down", 1001)
    assert store.add_press("left", "pressed", 2000) == 7 and store.press_count() == 7
    assert not store.raise_press_count(3)
    store.close()


def test_a_state_file_cut_to_nothing_is_damage_not_a_fresh_start(tmp_path):
    """A state file that was in use and is now empty is refused (exit 3), not taken for a first start."""
    path = tmp_path / "s.db"
    store = iotlight.Store(str(path))
    store.set_meta(address="3Mtest")
    store.close()
    path.write_bytes(b"")
    with pytest.raises(iotlight.StateError) as e:
        iotlight.Store(str(path))
    assert e.value.exit_status == 3 and "empty but was in use before" in str(e.value)
    fresh = iotlight.Store(str(path))  # moved aside: the next start begins a fresh state
    assert fresh.get_meta("address") is None
    fresh.close()


def test_a_full_disk_is_told_once_and_the_waiting_services_do_not_repeat_it(tmp_path, caplog):
    """The Store logs a failed write once for the episode; a service that waits for the state file
    (_state_trouble, _retry_delay) says only that it retries, never the error again."""
    import sqlite3

    store = iotlight.Store(str(tmp_path / "s.db"), VirtualClock())
    log = logging.getLogger("iotlight.test-state-trouble")
    with caplog.at_level(logging.DEBUG):
        errors = [store._write_failed(sqlite3.OperationalError("database or disk is full")) for _ in range(3)]
        iotlight._state_trouble(log)
        delay = iotlight._retry_delay(log, "poll", errors[0], iotlight.Backoff(1.0, 1.0), node=None)
    assert delay == iotlight.STATE_RETRY
    told = [r.getMessage() for r in caplog.records if "database or disk is full" in r.getMessage()]
    assert len(told) == 1 and "cannot write the state file" in told[0]
    waits = [r.getMessage() for r in caplog.records if r.name == log.name]
    assert waits == ["state file busy or full: will retry in %g s" % iotlight.STATE_RETRY] * 2
    store.close()


OUTBOX_SEED = "iotlight core test seed, throwaway"


def offline_outbox(config, store, clock, told=None):
    """An Outbox with no node (for what it does without one); make it inside the clock's loop."""
    return iotlight.Outbox(
        config,
        iotlight.keypair_from_seed(OUTBOX_SEED),
        node=None,
        store=store,
        clock=clock,
        tell=lambda kind, **fields: (told if told is not None else []).append((kind, fields)),
    )


def test_services_that_cannot_write_the_state_file_wait_instead_of_raising(tmp_path, caplog):
    """Every `except StateError` hands over to _state_trouble: an ignored transfer that cannot be
    marked, a refund re-check after a rollback, the scripted-token flag and a new alias on a full
    disk leave one debug line each and no exception (two of them once passed the error on and
    raised a TypeError instead); the ignored transfer is still told."""
    clock = VirtualClock()
    store = iotlight.Store(str(tmp_path / "s.db"), clock)

    def full(*args, **kwargs):
        raise iotlight.StateError("cannot write the state file: database or disk is full")

    store.mark_ignored = store.reopen_refunds = store.set_meta = full
    config = iotlight.parse_config({"payment": {"asset_id": ASSET}}, "x.toml")
    address = iotlight.keypair_from_seed(OUTBOX_SEED).address(config.chain_id)
    told = []

    async def on_a_full_disk():
        outbox = offline_outbox(config, store, clock)
        outbox.recheck_after_rollback(100)
        outbox.set_smart_asset(True)
        ledger = iotlight.Ledger(
            config,
            address,
            store=store,
            clock=clock,
            tell=lambda kind, **fields: told.append((kind, fields)),
            light_span=store.light,
        )
        ledger.report_malformed({"id": "tx-1"}, "not a transaction")
        ledger.add_aliases(["alias:T:new-name"])
        return outbox.smart_asset, "alias:T:new-name" in ledger.mine

    with caplog.at_level(logging.DEBUG):
        assert in_loop(clock, on_a_full_disk) == (True, True)
    waits = [r.getMessage() for r in caplog.records if "state file busy or full" in r.getMessage()]
    assert len(waits) == 4
    assert [(k, f["id"], f["reason"]) for k, f in told] == [("ignored", "tx-1", "malformed")]
    store.close()


def test_log_once_tells_each_trouble_once_until_it_is_over():
    """LogOnce, the one "log this once" mechanism: once per topic and detail, again after over();
    over() says whether there was something to call over; `quiet` spaces a flapping topic;
    `limit` bounds the memory."""
    once = iotlight.LogOnce()
    assert once.first("show", "OSError") and not once.first("show", "OSError")
    assert once.first("show", "ValueError")  # another kind of fault of the same thing
    assert once.first("joystick") and not once.first("joystick")
    assert once.over("show") and not once.over("show") and not once.over("never")
    assert once.first("show", "OSError")  # over, then failing again: told again
    assert not once.first("joystick")  # other topics stay told
    quiet = iotlight.LogOnce(quiet=60.0)
    assert quiet.first("write", now=1000.0)
    assert quiet.over("write")
    assert not quiet.first("write", now=1030.0)  # flapped back within a minute: quiet
    assert not quiet.over("write")  # nothing was told: no recovery line either
    assert quiet.first("write", now=1061.0)  # a minute after the last line: told
    bounded = iotlight.LogOnce(limit=3)
    assert all(bounded.first("rej:%d" % i) for i in range(3))
    assert bounded.first("rej:3") and bounded.size == 1  # full: forgot the old ones
    assert bounded.first("rej:0")


def test_outbox_raises_a_low_data_fee_to_the_minimum_and_says_so_once(tmp_path, caplog):
    """data.fee below the minimum for a transaction's size: the outbox signs the minimum instead (the node
    would refuse the lower fee for ever) and logs one warning, not one per transaction."""
    clock = VirtualClock()
    store = iotlight.Store(str(tmp_path / "s.db"), clock)
    config = iotlight.parse_config({"payment": {"asset_id": ASSET}, "data": {"fee": 1000}}, "x.toml")
    told = []

    async def build_three():
        outbox = offline_outbox(config, store, clock, told)
        fees = []
        for i in range(3):
            store.add_event("telemetry", [{"key": "note", "type": "string", "value": "x" * (1100 * i)}])
            fees.append(outbox.build(store.pending_events())["fee"])
        return fees

    assert in_loop(clock, build_three) == [100_000, 200_000, 300_000]
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "data.fee = 1000" in r.getMessage()]
    assert len(warnings) == 1
    assert [(k, f["status"]) for k, f in told] == [("data_tx", "queued")] * 3
    assert store.outbox_counts() == {"queued": 3} and store.pending_event_count() == 0
    store.close()


# --- the ledger's report budget ---------------------------------------------------------------------

PAYER = iotlight.keypair_from_seed("iotlight core test payer, throwaway")


def wrong_asset_transfer(n):
    """A real signed transfer of another token to the device, as the node lists it."""
    tx = iotlight.build_transfer_tx(
        PAYER,
        recipient=ME,
        amount=100 + n,
        asset_id=OTHER_ASSET,
        timestamp=1_700_000_000_000 + n,
        chain_id="T",
        fee=100_000,
    )
    return dict(tx, sender=PAYER.address("T"), height=10, applicationStatus="succeeded")


def made_up_transfer(n):
    """A transfer of the token to the device that nobody signed (a lying node's)."""
    txid = iotlight.b58encode(iotlight.blake2b256(b"made up %d" % n))
    return {"type": 4, "id": txid, "assetId": ASSET, "recipient": ME, "amount": 5, "sender": ME, "height": 11}


def test_the_ledger_reports_ignored_transfers_within_a_budget(tmp_path, caplog):
    """Transfers that light nothing are told once each (a log line, an `ignored` event, a row in the
    state file) within a budget: REPORT_BURST at once, then REPORT_RATE a minute; the rest are
    counted and summed up in one line a minute (WARNING when some were not_verified). Told once:
    listed again, or after a restart, a told transfer is not told again."""
    clock = VirtualClock()
    path = str(tmp_path / "s.db")
    store = iotlight.Store(path, clock)
    config = iotlight.parse_config({"payment": {"asset_id": ASSET}}, "x.toml")
    told = []

    def ledger_on(store):
        tell = lambda kind, **fields: told.append((kind, fields))  # noqa: E731
        return iotlight.Ledger(config, ME, store=store, clock=clock, tell=tell, light_span=store.light)

    def told_ids():
        ids = [f["id"] for k, f in told if k == "ignored"]
        told.clear()
        return ids

    def lines():
        out = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "iotlight.watcher"]
        caplog.clear()
        return out

    caplog.set_level(logging.INFO, logger="iotlight.watcher")
    ledger = ledger_on(store)
    assert (iotlight.REPORT_BURST, iotlight.REPORT_RATE) == (20, 10.0)
    wrong = [wrong_asset_transfer(n) for n in range(30)]
    handled, paid = ledger.process(wrong[::-1], 20)  # newest first, as listed
    assert len(handled) == 30 and paid == []  # every one handled; none is a payment in the token
    first = [tx["id"] for tx in wrong[:20]]
    assert told_ids() == first  # the burst, oldest first
    said = lines()
    assert [level for level, _ in said] == ["INFO"] * 21
    assert "lights nothing: wrong_asset" in said[0][1] and wrong[0]["id"] in said[0][1]
    assert said[-1][1] == (
        "10 more transfers to the device light nothing (10 wrong_asset): too many to report one by one"
    )
    assert store.ignored_ids([tx["id"] for tx in wrong]) == set(first)

    ledger.process(wrong[::-1], 20)  # listed again: nothing told again, nothing counted again
    assert told_ids() == [] and lines() == []

    clock.advance(30)  # half a minute: 5 more may be told
    made_up = [made_up_transfer(n) for n in range(10)]
    handled, paid = ledger.process(made_up[::-1], 20)
    assert handled == [] and paid == []  # not verified: a complete read does not mark them handled
    assert told_ids() == [tx["id"] for tx in made_up[:5]]
    said = lines()
    assert [level for level, _ in said] == ["WARNING"] * 5  # no summary yet: one a minute
    assert all("lights nothing: not_verified" in line for _, line in said)

    clock.advance(30)
    ledger.summarise()
    assert lines() == [
        (
            "WARNING",
            "5 more transfers to the device light nothing (5 not_verified): too many to report one by one",
        )
    ]
    clock.advance(60)
    ledger.summarise()
    assert lines() == []  # nothing more to sum up

    # a restart: the state file remembers what was told; what was only counted is told now
    store.close()
    store = iotlight.Store(path, clock)
    ledger = ledger_on(store)
    ledger.process((wrong + made_up)[::-1], 20)
    assert sorted(told_ids()) == sorted([tx["id"] for tx in wrong[20:] + made_up[5:]])
    store.close()


def test_ignored_rows_are_pruned_to_the_newest_ignored_keep(tmp_path):
    """The state file keeps the newest IGNORED_KEEP ignored reports (a flood costs bounded disk);
    an id is recorded once, with the time it was first told, across reopenings."""
    clock = VirtualClock()
    path = str(tmp_path / "s.db")
    store = iotlight.Store(path, clock)
    store.mark_ignored([("I" * 44, "below_minimum")])
    first_ms = clock.ms()
    clock.advance(1)
    store.mark_ignored([("I" * 44, "below_minimum"), ("J" * 44, "failed")])
    store.close()
    store = iotlight.Store(path, clock)
    store.mark_ignored([("I" * 44, "wrong_asset")])
    rows = store.db.execute("SELECT id, reason, reported_ms FROM ignored ORDER BY rowid").fetchall()
    assert rows == [("I" * 44, "below_minimum", first_ms), ("J" * 44, "failed", first_ms + 1000)]
    assert store.ignored_ids(["I" * 44, "J" * 44, "K" * 44]) == {"I" * 44, "J" * 44}

    keep, extra = iotlight.IGNORED_KEEP, 48
    ids = ["%044d" % i for i in range(keep + extra - 2)]
    for i in range(0, len(ids), 50):
        clock.advance(1)
        store.mark_ignored([(x, "not_verified") for x in ids[i : i + 50]])
    deleted = store.prune(0, now_ms=clock.ms())
    assert deleted["ignored"] == extra and not any(n for t, n in deleted.items() if t != "ignored")
    left = {r[0] for r in store.db.execute("SELECT id FROM ignored")}
    assert left == set(ids[extra - 2 :]), "the newest kept"
    assert store.prune(0, now_ms=clock.ms()) == {}
    store.close()


# --- the light's end time flows one way: credit -> span -> lamp ----------------------------------------


def pass_time(clock, seconds):
    """Virtual time passes with the loop running (what Scenario.run_for does)."""
    clock.loop.run_until_complete(asyncio.sleep(seconds))


def test_the_lamp_follows_the_span_a_credit_returns(tmp_path):
    """The lamp is told the end time a credit returned (Lamp.follow) and never reads it back from
    the state file: it lights until then, says so, and goes off at that end; an end already past
    changes nothing."""
    clock = VirtualClock()
    store = iotlight.Store(str(tmp_path / "s.db"), clock)
    config = iotlight.parse_config({"payment": {"asset_id": ASSET}, "light": {"countdown": False}}, "x.toml")
    hw, told = FakeHardware(clock), []

    def no_read_back():
        raise AssertionError("the lamp read the end time back from the state file")

    async def start():
        tell = lambda kind, **f: told.append((kind, f))  # noqa: E731
        lamp = iotlight.Lamp(config, hw, clock, store=store, tell=tell, status=lambda: "ok")
        stop = asyncio.Event()
        return lamp, stop, asyncio.ensure_future(lamp.run(stop))

    lamp, stop, task = in_loop(clock, start)
    pass_time(clock, 0.1)
    assert not lamp.state()["on"] and hw.frames[-1][1][0] == (0, 0, 0)  # dark: the status dot only
    _, span = store.credit_payments([("A" * 44, SENDER, 3000, 5, 30.0)], now=clock.time(), max_seconds=60)
    store.light = no_read_back
    lamp.follow(span[1])
    assert lamp.state() == {"on": True, "remaining": 30.0, "until": span[1]}
    assert lamp.span() == span
    assert ("light", {"on": True, "remaining": 30.0, "until": span[1]}) in told
    lamp.follow(clock.time() - 5)  # an end in the past: nothing changes
    assert lamp.span() == span
    pass_time(clock, 29.5)
    assert lamp.state()["on"] and hw.frames[-1][1][0] == (255, 255, 255)
    pass_time(clock, 1)
    assert not lamp.state()["on"] and hw.frames[-1][1][0] == (0, 0, 0)
    assert ("light", {"on": False, "remaining": 0.0, "until": None}) in told
    stop.set()
    clock.loop.run_until_complete(task)
    store.close()


def test_the_daemon_lights_what_the_ledger_credited_without_reading_it_back(tmp_path):
    """The whole daemon: each credit's span goes to the lamp (Daemon.tell "credited" -> follow) and
    the next credit extends the lamp's own span (light_span); the stored end time is written, never
    read back while the daemon runs. Lamp, state file and receipts agree on one end time."""
    with Scenario(tmp_path, light__countdown=False) as s:
        s.run_for(10)  # started: the lamp loaded the stored span once
        real, reads = s.store.light, []
        s.store.light = lambda: reads.append(1) or real()
        s.pay(600)
        s.run_until(s.lit, 120, "the light")
        start, until = s.daemon.lamp.span()
        assert (start, until) == pytest.approx(real(), abs=1e-3)
        assert until - start == pytest.approx(600, abs=1e-3)
        s.run_for(100)
        second = s.pay(300)
        s.run_until(lambda: second in s.credited(), 120, "the second payment")
        assert s.daemon.lamp.span() == pytest.approx((start, until + 300), abs=1e-3)
        assert real() == pytest.approx((start, until + 300), abs=1e-3)
        s.run_until(lambda: "served_" + second in s.node.chain.data_entries(s.address), 120, "the receipt")
        receipt = json.loads(s.node.chain.data_entries(s.address)["served_" + second]["value"])
        assert receipt["from"] == pytest.approx(until * 1000, abs=1)
        assert receipt["until"] == pytest.approx((until + 300) * 1000, abs=1)
        s.run_for(until + 300 - s.clock.time() - 0.5)
        assert s.lit(), "on until the end the credit returned"
        s.run_for(1)
        assert not s.lit(), "off at that end"
        assert reads == []


# --- a year on an SD card (issue 11 point 7) ------------------------------------------------------------


class YearChain:
    """An in-memory chain of payments to the device, one block a minute, answering what the Watcher
    asks the NodeClient (the typed methods it uses), newest first as the node lists them."""

    PAYER = iotlight.keypair_from_seed("iotlight year test payer, throwaway")
    SENDER = PAYER.address("T")

    def __init__(self, address: str, asset: str):
        self.address, self.asset = address, asset
        self.tip = 1
        self.txs: list = []  # oldest first
        self.listed = 0  # transactions handed out by list reads

    def pay(self, n: int, amount: int, wall: float, signed: bool) -> dict:
        """A payment as the node lists it (sender, height, applicationStatus): really signed where the
        ledger will read its signature, else with a made-up id (the bulk of the year, credited
        through the store: signing and checking 8,760 transfers would cost seconds)."""
        if signed:
            tx = iotlight.build_transfer_tx(
                self.PAYER,
                recipient=self.address,
                amount=amount,
                asset_id=self.asset,
                timestamp=int(wall * 1000) + n % 1000,
                chain_id="T",
                fee=100_000,
            )
        else:
            txid = "year-payment-%031d" % n
            tx = {"type": 4, "id": txid, "recipient": self.address, "amount": amount, "assetId": self.asset}
            tx["timestamp"] = int(wall * 1000)
        tx.update(sender=self.SENDER, height=self.tip, applicationStatus="succeeded")
        self.txs.append(tx)
        return tx

    async def height(self) -> int:
        return self.tip

    async def asset_balance(self, address: str, asset_id: str) -> int:
        return sum(t["amount"] for t in self.txs)

    async def balance(self, address: str) -> int:
        return 10**8

    async def address_transactions(self, address: str, limit: int, after=None) -> list:
        newest_first = self.txs[::-1]
        start = 0
        if after is not None:
            start = next(i for i, t in enumerate(newest_first) if t["id"] == after) + 1
        page = [dict(t) for t in newest_first[start : start + limit]]
        self.listed += len(page)
        return page

    async def block(self, height=None):
        at = self.tip if height is None else height
        if not 1 <= at <= self.tip:
            return None
        txs = [dict(t) for t in self.txs[-3:] if t["height"] == at]
        return {"height": at, "id": "block-%d" % at, "transactions": txs}

    async def block_id(self, height: int):
        return "block-%d" % height if 1 <= height <= self.tip else None

    async def data_entry(self, address: str, key: str):
        return None  # no receipt of ours on chain: the state file lost nothing

    def retry_in(self) -> float:
        return 0.0


def _state_bytes(path) -> int:
    return sum(os.path.getsize(str(path) + s) for s in ("", "-wal") if os.path.exists(str(path) + s))


ID_MARK, TS_MARK = "@" * 44, 4_102_444_800_000  # stand-ins in JSON texts made once, filled per row


def _send_outbox(store, height: int, template_text: str, n: int) -> None:
    """What the outbox does, in one step: every pending event goes out in a Data transaction that is
    confirmed at `height` (a realistic signed JSON, with its own id)."""
    events = store.pending_events(10_000)
    if events:
        txid = "receipts-%035d" % n
        text = template_text.replace(ID_MARK, txid).replace(str(TS_MARK), str(store.clock.ms()))
        store.queue_tx(json.loads(text), events)
        store.set_tx_status(txid, "confirmed", height=height)


def _telemetry_day(store, day: int, first_ms: int, first_height: int, template_text: str, readings) -> None:
    """A day of telemetry `readings` ((minute, entries JSON)), each sent in its own confirmed Data
    transaction (bulk-filled: one SQLite transaction for the day, the rows as the outbox writes them)."""
    events, outbox = [], []
    for m, entries_text in readings:
        ms = first_ms + m * 60_000
        txid = "telemetry-%034d" % (day * 1440 + m)
        events.append((entries_text.replace(str(TS_MARK), str(ms)), ms, txid))
        tx_text = template_text.replace(ID_MARK, txid).replace(str(TS_MARK), str(ms))
        outbox.append((txid, tx_text, ms, ms, first_height + m + 1, ms))
    with store.transaction() as db:
        sql = "INSERT INTO events (kind, entries, created_ms, tx_id) VALUES ('telemetry', ?, ?, ?)"
        db.executemany(sql, events)
        sql = "INSERT INTO outbox (id, tx, status, created_ms, timestamp_ms, height, updated_ms) "
        db.executemany(sql + "VALUES (?, ?, 'confirmed', ?, ?, ?, ?)", outbox)


def test_a_simulated_year_keeps_the_state_file_bounded_and_pruned_payments_are_never_credited_again(tmp_path):
    """A year of a payment an hour and telemetry every ten minutes, on the virtual clock with one
    block a minute: each complete read (every six hours) credits, marks handled and prunes as the
    watcher does, so the state file ends near where it was after a week; and a payment the node
    lists again after its rows were pruned is not credited a second time (not by a catch-up read
    after a restart, not by the ledger itself, not by the store)."""
    keys = iotlight.keypair_from_seed("iotlight year test device, throwaway")
    address = keys.address("T")
    chain = YearChain(address, ASSET)
    clock = VirtualClock()
    path = tmp_path / "state.db"
    store = iotlight.Store(str(path), clock)
    store.db.execute("PRAGMA synchronous=OFF")  # the simulation's speed only: the same pages are written
    store.bind_device(address, ASSET)
    store.set_token_fact(ASSET, "decimals", 2)
    config = iotlight.parse_config(
        {"payment": {"asset_id": ASSET, "count_history": True}, "node": {"list_rate": 0}}, "x.toml"
    )
    told = []
    tell = lambda kind, **fields: told.append((kind, fields))  # noqa: E731
    ledger = iotlight.Ledger(config, address, store=store, clock=clock, tell=tell, light_span=store.light)
    reading = {"temperature_c": 21.5, "humidity_pct": 40.25, "pressure_hpa": 1013.25}
    template = iotlight.build_data_tx(
        keys, iotlight.telemetry_entries(reading, TS_MARK), timestamp=TS_MARK, chain_id="T"
    )
    template_text = json.dumps(dict(template, id=ID_MARK))
    readings = [  # every ten minutes
        (m, json.dumps(iotlight.telemetry_entries(dict(reading, temperature_c=20 + m / 1000), TS_MARK)))
        for m in range(0, 1440, 10)
    ]
    hours = 365 * 24
    credited = 0
    sizes = {}
    for day in range(365):
        _telemetry_day(store, day, clock.ms(), chain.tip, template_text, readings)
        for _read in range(4):  # the daemon reads far more often; a complete read every 6 hours will do
            found = []
            for _hour in range(6):
                n = len(chain.txs)
                found.append(chain.pay(n, 100 + n % 7, clock.time(), signed=n == 100 or n >= hours - 48))
                chain.tip += 60
                clock.advance(3600)
            payments = [(t["id"], t["sender"], t["amount"], t["height"], t["amount"] / 100) for t in found]
            credits, _ = store.credit_payments(payments, now=clock.time(), max_seconds=3600)
            credited += len(credits)
            store.mark_seen([(t["id"], t["height"]) for t in found])
            ledger.prune(chain.tip)
            _send_outbox(store, chain.tip, template_text, len(chain.txs))
        if day in (7, 364):
            sizes[day] = _state_bytes(path)
    assert credited == len(chain.txs) == hours
    assert store.payment_count() <= 24 + iotlight.PRUNE_KEEP_RECENT
    assert store.credited_ever() == hours
    pruned = store.pruned_height()
    assert chain.tip - iotlight.PRUNE_KEEP_BLOCKS - 360 <= pruned <= chain.tip - iotlight.PRUNE_KEEP_BLOCKS
    counts = {
        t: store.db.execute("SELECT COUNT(*) FROM %s" % t).fetchone()[0] for t in ("seen", "events", "outbox")
    }
    assert counts["seen"] <= 30 and counts["events"] <= 2 * 144 + 100 and counts["outbox"] <= 144 + 100, (
        counts
    )
    assert sizes[364] <= sizes[7] + 512 * 1024, sizes  # bounded: a year ends where the first week did
    assert sizes[364] < 8 * 1024 * 1024, sizes  # the file and its write-ahead log

    # restart after three days down: the catch-up read credits the new payments and stops at the
    # handled ones just above the pruned height; the year's payments below it are not read again
    store.close()
    store = iotlight.Store(str(path), clock)
    light_before = store.light()
    new = []
    for i in range(3 * 24):
        new.append(chain.pay(hours + i, 1000, clock.time(), signed=True)["id"])
        chain.tip += 60
        clock.advance(3600)
    told.clear()
    chain.listed = 0

    async def catch_up():
        watcher = iotlight.Watcher(
            config, address, node=chain, store=store, clock=clock, tell=tell, light_span=store.light
        )
        await poll_settled(watcher)
        return watcher

    watcher = in_loop(clock, catch_up)
    credits = [c for kind, f in told if kind == "credited" for c in f["credits"]]
    assert sorted(c.id for c in credits) == sorted(new) and all(c.amount == 1000 for c in credits)
    assert chain.listed <= iotlight.LIST_FIRST_PAGE + iotlight.LIST_PAGE  # two pages, not a year's 8,760
    assert store.light() != light_before
    assert not [f for kind, f in told if kind == "ignored"], "every payment it read checked out"

    old = chain.txs[100]  # credited in the first week (really signed), its rows long pruned
    assert old["height"] <= store.pruned_height() and not store.credited_ids([old["id"]])
    told.clear()
    handled, paid = watcher.ledger.process([dict(old)], chain.tip)  # listed again, as a node might
    assert told == [] and (handled, paid) == ([], []) and not store.credited_ids([old["id"]])
    again, _ = store.credit_payments(
        [(old["id"], old["sender"], old["amount"], old["height"], 1.0)], now=clock.time(), max_seconds=3600
    )
    assert again == [] and not store.credited_ids([old["id"]])
    store.close()


def test_store_prune_keeps_what_is_pending_recent_or_within_the_horizon(tmp_path):
    """prune(floor) drops handled ids, payments and confirmed Data transactions at or below the floor
    (with their events), keeps pending events, open transactions, the newest payments and anything a
    rollback moved above the floor; it raises the pruned height, below which nothing is credited again;
    with nothing to delete it writes nothing."""
    store = iotlight.Store(str(tmp_path / "s.db"), VirtualClock())
    ids = ["%044d" % i for i in range(10)]
    store.mark_seen([(ids[i], 10 * i) for i in range(10)])
    for i in range(10):
        store.credit_payments([(ids[i], SENDER, 100, 10 * i, 1.0)], now=1000.0 + i, max_seconds=3600)
    store.mark_seen([(ids[2], 95)])  # re-included higher up by a rollback
    for n, (status, height) in enumerate(
        [("confirmed", 20), ("confirmed", 60), ("broadcast", None), ("queued", None)]
    ):
        events = store.pending_events(1 if n < 3 else 100)
        store.queue_tx({"id": "tx%d" % n, "timestamp": 1}, events)
        store.set_tx_status("tx%d" % n, status, height=height)
    store.add_event("telemetry", [{"key": "t", "type": "integer", "value": 1}])  # pending
    with store.transaction() as db:  # tx0 and tx2 as refund transfers: tx0's is final, tx2's still open
        db.execute(
            "INSERT INTO refunds VALUES ('p0', 'tx0', '3Msender', 5, '{}', 1), ('p2', 'tx2', '3Msender', 5, '{}', 1)"
        )
    deleted = store.prune(45, now_ms=10_000, keep_recent=3)
    assert deleted == {"seen": 4, "payments": 4, "outbox": 1, "events": 1, "ignored": 0}
    assert [r[0] for r in store.db.execute("SELECT tx_id FROM refunds")] == ["tx2"]
    assert store.pruned_height() == 45
    left = {r[0] for r in store.db.execute("SELECT id FROM payments")}
    assert left == {ids[2]} | set(ids[5:])  # moved above the floor, or newer than it
    assert {r[0] for r in store.db.execute("SELECT id FROM outbox")} == {"tx1", "tx2", "tx3"}
    assert store.pending_event_count() == 1 and store.events_of("tx1") and store.events_of("tx3")
    # below the pruned height nothing is credited again; above it the ledger works as before
    credits, _ = store.credit_payments(
        [(ids[0], SENDER, 100, 0, 1.0), ("X" * 44, SENDER, 100, 45, 1.0)], now=2000.0, max_seconds=3600
    )
    assert credits == []
    credits, _ = store.credit_payments([("Y" * 44, SENDER, 100, 46, 1.0)], now=2000.0, max_seconds=3600)
    assert len(credits) == 1
    before = store.db.total_changes
    assert store.prune(45, now_ms=10_000) == {} and store.prune(46, now_ms=10_000, keep_recent=3) == {}
    assert store.db.total_changes == before and store.pruned_height() == 45
    store.close()


def test_mark_seen_writes_only_what_is_new_or_moved(tmp_path):
    """A sweep that finds the same transactions at the same heights writes nothing to the state file."""
    store = iotlight.Store(str(tmp_path / "s.db"))
    store.mark_seen([("A" * 44, 5), ("B" * 44, None)])
    before = store.db.total_changes
    store.mark_seen([("A" * 44, 5), ("B" * 44, None)])
    assert store.db.total_changes == before
    store.mark_seen([("A" * 44, 5), ("B" * 44, 6)])
    assert store.db.total_changes == before + 1 and store.seen_heights(["B" * 44]) == {"B" * 44: 6}
    store.close()


def test_prune_keeps_the_count_of_payments_ever_credited(tmp_path):
    """`status` counts every payment credited, pruned rows included."""
    store = iotlight.Store(str(tmp_path / "s.db"))
    for i in range(6):
        store.credit_payments([("%044d" % i, SENDER, 100, 10 + i, 1.0)], now=1000.0 + i, max_seconds=3600)
    store.prune(12, now_ms=0, keep_recent=1)
    store.prune(20, now_ms=0, keep_recent=1)
    assert store.payment_count() == 1 and int(store.get_meta("pruned_payments")) == 5
    assert store.credited_ever() == 6
    store.close()


def test_prune_cuts_a_backlog_down_in_batches(tmp_path):
    """A state file from before pruning (years of rows) is cut down a batch at a time, so that one prune
    never holds the event loop for long; nothing at or below the pruned height is credited meanwhile."""
    store = iotlight.Store(str(tmp_path / "s.db"))
    store.mark_seen([("%044d" % i, i + 1) for i in range(25)])
    rounds = []
    while True:
        deleted = store.prune(30, now_ms=0, batch=10)
        if not deleted:
            break
        rounds.append(deleted["seen"])
        assert store.pruned_height() == 30
    assert rounds == [10, 10, 5]
    assert store.db.execute("SELECT COUNT(*) FROM seen").fetchone()[0] == 0
    store.close()
