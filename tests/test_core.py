"""The pure core: pricing, the light timer, the ledger rules, event packing; and the store's guarantees."""

import asyncio
import json
import os
import random

import pytest
from harness import poll_settled

import iotlight
from iotlight import Grant, LightTimer, PendingEvent, extend_light, payment_amount

ASSET = "5FKsurYZCD1FMdjij1u6MJ2yzCcLFs65Mak583TeNdQV"
ME = "3MqmzT5yx13napicjXpbkDupdWmRwmX37oL"
MINE = {ME, "alias:T:iot-light"}


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
    with pytest.raises(ValueError, match="not an object"):
        iotlight.check_tx_shape([1])
    with pytest.raises(ValueError, match="id"):
        iotlight.check_tx_shape({"id": 5, "type": 4})
    with pytest.raises(ValueError, match="non-integer height"):
        iotlight.check_tx_shape({"id": "A" * 44, "type": 4, "height": "x"})
    with pytest.raises(ValueError, match="mass transfer item"):
        payment_amount({"type": 11, "assetId": ASSET, "transfers": ["x"]}, asset_id=ASSET, mine=MINE)


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

    store = iotlight.Store(str(tmp_path / "s.db"))
    config = iotlight.parse_config(
        {"payment": {"asset_id": ASSET}, "data": {"telemetry_interval": 60}}, "x.toml"
    )
    woken = []
    telemetry = iotlight.Telemetry(config, Sensors(), store, iotlight.Clock(), lambda: woken.append(1))
    asyncio.run(telemetry.read_once())
    assert store.pending_event_count() == 0 and woken == []
    store.close()


def test_rate_limiter_and_backoff():
    """The token bucket refills at its rate; back-off grows, jitters and stays under its cap."""
    rl = iotlight.RateLimiter(2, 1.0, 2, now=0.0)
    rl.take(0.0)
    rl.take(0.0)
    assert rl.delay(0.0) == pytest.approx(0.5)
    assert rl.delay(0.5) == 0.0
    assert iotlight.RateLimiter(0, 60, 1, now=0).delay(0) == 0.0
    delays = iotlight.backoff_delays(1.0, 8.0, random.Random(1))
    values = [next(delays) for _ in range(8)]
    assert 0.5 <= values[0] <= 1.0 and all(4.0 <= v <= 8.0 for v in values[4:])


def test_store_credits_each_payment_once_with_its_receipt(tmp_path):
    """Crediting the same id twice changes nothing; the light and a receipt move together."""
    store = iotlight.Store(str(tmp_path / "s.db"))
    first = store.credit_payments([("A" * 44, "3Msender", 300, 5, 3.0)], now=1000.0, max_seconds=3600)
    again = store.credit_payments([("A" * 44, "3Msender", 300, 5, 3.0)], now=1001.0, max_seconds=3600)
    assert len(first) == 1 and again == []
    assert store.light() == (1000.0, 1003.0)
    events = store.pending_events()
    assert [e.kind for e in events] == ["receipt"]
    assert json.loads(events[0].entries[0]["value"]) == {"seconds": 3.0, "from": 1000000, "until": 1003000}
    store.close()


def test_store_read_only_reads_what_the_daemon_wrote_and_writes_nothing(tmp_path):
    """`status` reads through Store.open_read_only: the same answers as the daemon's Store, the file
    unchanged and nothing of ours created beside it (no reserve file), and a write is refused."""
    import sqlite3

    path = tmp_path / "s.db"
    store = iotlight.Store(str(path))
    store.credit_payments([("A" * 44, "3Msender", 300, 5, 3.0)], now=1000.0, max_seconds=3600)
    store.add_press("up", "pressed", 1, 2)
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
    store = iotlight.Store(path)
    assert [store.add_press("up", "pressed", 5, 6) for _ in range(2)] == [1, 2]
    store.close()
    store = iotlight.Store(path)
    assert store.add_press("down", "pressed", 7, 8) == 3
    keys = iotlight.keypair_from_seed("throwaway store test")
    events = store.pending_events()
    tx1 = iotlight.build_data_tx(keys, iotlight.events_to_entries(events), timestamp=1, chain_id="T")
    store.queue_tx(tx1, events, 10)
    assert store.pending_events() == []
    tx2 = iotlight.build_data_tx(keys, iotlight.events_to_entries(events), timestamp=2, chain_id="T")
    store.queue_tx(tx2, store.events_of(tx1["id"]), 11, replaces=tx1["id"])
    assert [r["id"] for r in store.open_txs()] == [tx2["id"]]
    assert [e.press_n for e in store.events_of(tx2["id"])] == [1, 2, 3]
    store.close()


def test_store_refuses_another_devices_state(tmp_path):
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
    store = iotlight.Store(str(tmp_path / "s.db"))
    assert [store.add_press(d, "pressed", 1000 + i, 5) for i, d in enumerate(("up", "down"))] == [1, 2]
    first, second = store.pending_events()
    assert store.raise_press_count(5, on_chain=[first.seq])
    pending = store.pending_events()
    assert [(e.press_n, e.entries[0]["key"]) for e in pending] == [(6, "joystick_6")]
    assert json.loads(pending[0].entries[0]["value"])["direction"] == "down"
    assert store.add_press("left", "pressed", 2000, 6) == 7
    assert not store.raise_press_count(3)
    store.close()


def test_a_state_file_cut_to_nothing_is_damage_not_a_fresh_start(tmp_path):
    """A state file that was in use and is now empty is refused (exit 3), not taken for a first start."""
    path = tmp_path / "s.db"
    store = iotlight.Store(str(path))
    store.set_meta("address", "3Mtest")
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
    import logging
    import sqlite3

    store = iotlight.Store(str(tmp_path / "s.db"))
    log = logging.getLogger("iotlight.test-state-trouble")
    with caplog.at_level(logging.DEBUG):
        errors = [store._write_failed(sqlite3.OperationalError("database or disk is full")) for _ in range(3)]
        iotlight._state_trouble(log)
        delay = iotlight._retry_delay(log, "poll", errors[0], iter([1.0]), node=None)
    assert delay == iotlight.STATE_RETRY
    told = [r.getMessage() for r in caplog.records if "database or disk is full" in r.getMessage()]
    assert len(told) == 1 and "cannot write the state file" in told[0]
    waits = [r.getMessage() for r in caplog.records if r.name == log.name]
    assert waits == ["state file busy or full: will retry in %g s" % iotlight.STATE_RETRY] * 2
    store.close()


OUTBOX_SEED = "iotlight core test seed, throwaway"


def offline_outbox(config, store):
    """An Outbox with no node (for what it does without one); call it inside an event loop."""
    return iotlight.Outbox(
        config,
        iotlight.keypair_from_seed(OUTBOX_SEED),
        node=None,
        store=store,
        clock=iotlight.Clock(),
        publish=lambda m: None,
        on_funds=lambda ok: None,
    )


def test_services_that_cannot_write_the_state_file_wait_instead_of_raising(tmp_path, caplog):
    """Every `except StateError` hands over to _state_trouble: an ignored transfer that cannot be
    marked, a refund re-check after a rollback and the scripted-token flag on a full disk leave one
    debug line and no exception (two of them passed the error on and raised a TypeError instead)."""
    import logging

    store = iotlight.Store(str(tmp_path / "s.db"))

    def full(*args, **kwargs):
        raise iotlight.StateError("cannot write the state file: database or disk is full")

    store.mark_ignored = store.reopen_refunds = store.set_meta = full
    config = iotlight.parse_config({"payment": {"asset_id": ASSET}}, "x.toml")
    keys = iotlight.keypair_from_seed(OUTBOX_SEED)

    async def on_a_full_disk():
        outbox = offline_outbox(config, store)
        outbox.recheck_refunds(100)
        outbox.set_smart_asset(True)
        watcher = iotlight.Watcher(
            config,
            keys.address(config.chain_id),
            node=None,
            store=store,
            clock=iotlight.Clock(),
            on_credit=lambda credits: None,
            on_height=lambda h: None,
            on_balance=lambda t, c: None,
            light_span=lambda: None,
        )
        return outbox.smart_asset, watcher.report_ignored("tx-1", reason="malformed")

    with caplog.at_level(logging.DEBUG):
        assert asyncio.run(on_a_full_disk()) == (True, False)
    waits = [r.getMessage() for r in caplog.records if "state file busy or full" in r.getMessage()]
    assert len(waits) == 3
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
    store = iotlight.Store(str(tmp_path / "s.db"))
    config = iotlight.parse_config({"payment": {"asset_id": ASSET}, "data": {"fee": 1000}}, "x.toml")

    async def build_three():  # the Outbox's events want a loop (Python 3.9 has none outside one)
        outbox = offline_outbox(config, store)
        fees = []
        for i in range(3):
            store.add_event("telemetry", [{"key": "note", "type": "string", "value": "x" * (1100 * i)}], 1)
            fees.append(outbox.build(store.pending_events())["fee"])
        return fees

    assert asyncio.run(build_three()) == [100_000, 200_000, 300_000]
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "data.fee = 1000" in r.getMessage()]
    assert len(warnings) == 1
    store.close()


# --- a year on an SD card (issue 11 point 7) ------------------------------------------------------------


class FakeClock:
    """Wall and monotonic time that move only when the test says so."""

    def __init__(self, wall: float):
        self.wall, self.mono = wall, 1000.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


class ListNode:
    """The few node answers the watcher asks for, from an in-memory chain of payments (one block a
    minute), newest first as the node lists them."""

    def __init__(self, address: str, asset: str):
        self.address, self.asset = address, asset
        self.tip = 1
        self.txs: list = []  # oldest first
        self.listed = 0  # transactions handed out by list reads

    PAYER = iotlight.keypair_from_seed("iotlight year test payer, throwaway")

    def pay(self, n: int, amount: int, wall: float) -> dict:
        """A really signed transfer (the watcher checks every payment before it counts), as the node
        lists it: with the sender's address, the height and applicationStatus."""
        tx = iotlight.build_transfer_tx(
            self.PAYER,
            recipient=self.address,
            amount=amount,
            asset_id=self.asset,
            timestamp=int(wall * 1000) + n % 1000,
            chain_id="T",
            fee=100_000,
        )
        tx.update(sender=self.PAYER.address("T"), height=self.tip, applicationStatus="succeeded")
        self.txs.append(tx)
        return tx

    async def height(self) -> int:
        return self.tip

    async def asset_balance(self, address: str, asset_id: str) -> int:
        return sum(t["amount"] for t in self.txs)

    async def balance(self, address: str) -> int:
        return 10**8

    async def asset_decimals(self, asset_id: str) -> int:
        return 2

    async def aliases(self, address: str) -> list:
        return []

    async def address_transactions(self, address: str, limit: int, after=None) -> list:
        newest_first = self.txs[::-1]
        start = 0
        if after is not None:
            start = next(i for i, t in enumerate(newest_first) if t["id"] == after) + 1
        page = [dict(t) for t in newest_first[start : start + limit]]
        self.listed += len(page)
        return page

    async def block(self, height=None) -> dict:
        """A block with its transactions, as /blocks/last and /blocks/at/{h} give it."""
        at = self.tip if height is None else height
        if not 1 <= at <= self.tip:
            raise iotlight.NodeRejected("no block at %d" % at, status=404)
        return {
            "height": at,
            "id": "block-%d" % at,
            "transactions": [dict(t) for t in self.txs if t["height"] == at],
        }

    async def get(self, path: str, params=None, check=None):
        assert path.startswith("/blocks/headers/at/"), path
        return {"id": "block-%s" % path.rsplit("/", 1)[1]}


def _watcher(store, node, clock, credits):
    config = iotlight.parse_config(
        {"payment": {"asset_id": node.asset, "count_history": True}, "node": {"list_rate": 0}}, "x.toml"
    )
    return iotlight.Watcher(
        config,
        node.address,
        node=node,
        store=store,
        clock=clock,
        on_credit=credits.extend,
        on_height=lambda h: None,
        on_balance=lambda t, c: None,
        light_span=lambda: store.light(),
    )


def _state_bytes(path) -> int:
    return sum(os.path.getsize(str(path) + s) for s in ("", "-wal") if os.path.exists(str(path) + s))


def _send_outbox(store, now_ms: int, height: int, template: dict, n: int) -> None:
    """What the outbox does, in one step: every pending event goes out in a Data transaction that is
    confirmed at `height` (a realistic signed JSON, with its own id)."""
    events = store.pending_events(10_000)
    if events:
        tx = dict(template, id=iotlight.b58encode(iotlight.blake2b256(b"tx %d" % n)), timestamp=now_ms)
        store.queue_tx(tx, events, now_ms)
        store.set_tx_status(tx["id"], "confirmed", now_ms, height=height)


def _telemetry_day(
    store, day: int, first_ms: int, first_height: int, template: dict, every_minutes: int
) -> None:
    """A day of telemetry readings, each sent in its own confirmed Data transaction (bulk-filled: one
    SQLite transaction for the day, the rows as the outbox writes them)."""
    with store.transaction() as db:
        for m in range(0, 1440, every_minutes):
            ms = first_ms + m * 60_000
            txid = iotlight.b58encode(iotlight.blake2b256(b"telemetry %d %d" % (day, m)))
            entries = iotlight.telemetry_entries(
                {"temperature_c": 20 + m / 1000, "humidity_pct": 40.5, "pressure_hpa": 1013.25}, ms
            )
            db.execute(
                "INSERT INTO events (kind, entries, created_ms, tx_id) VALUES ('telemetry', ?, ?, ?)",
                (json.dumps(entries), ms, txid),
            )
            db.execute(
                "INSERT INTO outbox (id, tx, status, created_ms, timestamp_ms, height, updated_ms) "
                "VALUES (?, ?, 'confirmed', ?, ?, ?, ?)",
                (txid, json.dumps(dict(template, id=txid, timestamp=ms)), ms, ms, first_height + m + 1, ms),
            )


def test_a_simulated_year_keeps_the_state_file_bounded_and_pruned_payments_are_never_credited_again(tmp_path):
    """A year of a payment an hour and telemetry every ten minutes, on a fake clock with one block a
    minute: the watcher prunes as it goes, so the state file ends near where it was after a week,
    and a payment the node lists again after its rows were pruned is not credited a second time
    (not by a catch-up read after a restart, not by the ledger itself)."""
    keys = iotlight.keypair_from_seed("iotlight year test device, throwaway")
    address = keys.address("T")
    node = ListNode(address, ASSET)
    clock = FakeClock(1_700_000_000.0)
    path = tmp_path / "state.db"
    store = iotlight.Store(str(path))
    store.db.execute("PRAGMA synchronous=OFF")  # the simulation's speed only: the same pages are written
    store.bind_device(address, ASSET)
    store.set_meta("first_start_ms", int(clock.time() * 1000) - 1)
    template = iotlight.build_data_tx(
        keys,
        iotlight.telemetry_entries(
            {"temperature_c": 21.5, "humidity_pct": 40.25, "pressure_hpa": 1013.25}, 1_700_000_000_000
        ),
        timestamp=1_700_000_000_000,
        chain_id="T",
    )
    credits: list = []
    watcher = _watcher(store, node, clock, credits)
    paid = 0
    sizes = {}
    for day in range(365):
        first_ms, first_height = int(clock.time() * 1000), node.tip
        _telemetry_day(store, day, first_ms, first_height, template, 10)
        for hour in range(24):
            node.pay(paid, 100 + paid % 7, clock.time())
            paid += 1
            node.tip += 60
            clock.advance(3600)
            if hour % 3 == 2:  # the daemon polls far more often; a read every 3 hours will do
                asyncio.run(poll_settled(watcher))
                _send_outbox(store, int(clock.time() * 1000), node.tip, template, paid)
        if day in (7, 364):
            sizes[day] = _state_bytes(path)
    assert len(credits) == paid == 365 * 24
    assert store.payment_count() <= 24 + iotlight.PRUNE_KEEP_RECENT
    pruned = store.pruned_height()
    assert node.tip - iotlight.PRUNE_KEEP_BLOCKS - 61 <= pruned <= node.tip - iotlight.PRUNE_KEEP_BLOCKS
    counts = {
        t: store.db.execute("SELECT COUNT(*) FROM %s" % t).fetchone()[0] for t in ("seen", "events", "outbox")
    }
    assert counts["seen"] <= 30 and counts["events"] <= 2 * 144 + 100 and counts["outbox"] <= 144 + 100, (
        counts
    )
    assert sizes[364] <= sizes[7] + 512 * 1024, sizes  # bounded: a year ends where the first week did
    assert sizes[364] < 8 * 1024 * 1024, sizes  # the file and its write-ahead log

    # restart after three days down: the catch-up read credits the new payments and stops at the pruned
    # height; the year's payments, listed again below it, are not credited again
    store.close()
    store = iotlight.Store(str(path))
    light_before = store.light()
    total_before = sum(c.amount for c in credits)
    new = []
    for i in range(3 * 24):
        new.append(node.pay(paid + i, 1000, clock.time())["id"])
        node.tip += 60
        clock.advance(3600)
    credits.clear()
    watcher = _watcher(store, node, clock, credits)
    node.listed = 0
    asyncio.run(poll_settled(watcher))
    assert sorted(c.id for c in credits) == sorted(new)
    assert node.listed < 3 * 24 + 1000  # it stopped near the pruned height, not a year down
    assert store.light() != light_before and total_before > 0

    old = node.txs[100]  # credited in the first week, its rows long pruned
    assert old["height"] <= store.pruned_height() and not store.credited_ids([old["id"]])
    credits.clear()
    watcher.process([dict(old)], node.tip)  # listed again, as a node might
    assert credits == [] and not store.credited_ids([old["id"]])
    assert (
        store.credit_payments(
            [(old["id"], old["sender"], old["amount"], old["height"], 1.0)],
            now=clock.time(),
            max_seconds=3600,
        )
        == []
    )
    assert not store.credited_ids([old["id"]])
    store.close()


def test_store_prune_keeps_what_is_pending_recent_or_within_the_horizon(tmp_path):
    """prune(floor) drops handled ids, payments and confirmed Data transactions at or below the floor
    (with their events), keeps pending events, open transactions, the newest payments and anything a
    rollback moved above the floor; it raises the pruned height, below which nothing is credited again;
    with nothing to delete it writes nothing."""
    store = iotlight.Store(str(tmp_path / "s.db"))
    ids = ["%044d" % i for i in range(10)]
    store.mark_seen([(ids[i], 10 * i) for i in range(10)])
    for i in range(10):
        store.credit_payments([(ids[i], "3Msender", 100, 10 * i, 1.0)], now=1000.0 + i, max_seconds=3600)
    store.mark_seen([(ids[2], 95)])  # re-included higher up by a rollback
    for n, (status, height) in enumerate(
        [("confirmed", 20), ("confirmed", 60), ("broadcast", None), ("queued", None)]
    ):
        events = store.pending_events(1 if n < 3 else 100)
        store.queue_tx({"id": "tx%d" % n, "timestamp": 1}, events, 1)
        store.set_tx_status("tx%d" % n, status, 2, height=height)
    store.add_event("telemetry", [{"key": "t", "type": "integer", "value": 1}], 3)  # pending
    with store.transaction() as db:  # tx0 and tx2 as refund transfers: tx0's is final, tx2's still open
        db.execute(
            "INSERT INTO refunds VALUES ('p0', 'tx0', '3Msender', 5, '{}', 1), ('p2', 'tx2', '3Msender', 5, '{}', 1)"
        )
    deleted = store.prune(45, now_ms=10_000, keep_recent=3)
    assert deleted == {"seen": 4, "payments": 4, "outbox": 1, "events": 1}
    assert [r[0] for r in store.db.execute("SELECT tx_id FROM refunds")] == ["tx2"]
    assert store.pruned_height() == 45
    left = {r[0] for r in store.db.execute("SELECT id FROM payments")}
    assert left == {ids[2]} | set(ids[5:])  # moved above the floor, or newer than it
    assert {r[0] for r in store.db.execute("SELECT id FROM outbox")} == {"tx1", "tx2", "tx3"}
    assert store.pending_event_count() == 1 and store.events_of("tx1") and store.events_of("tx3")
    # below the pruned height nothing is credited again; above it the ledger works as before
    assert (
        store.credit_payments(
            [(ids[0], "3Msender", 100, 0, 1.0), ("X" * 44, "3Msender", 100, 45, 1.0)],
            now=2000.0,
            max_seconds=3600,
        )
        == []
    )
    assert (
        len(store.credit_payments([("Y" * 44, "3Msender", 100, 46, 1.0)], now=2000.0, max_seconds=3600)) == 1
    )
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
        store.credit_payments([("%044d" % i, "3Msender", 100, 10 + i, 1.0)], now=1000.0 + i, max_seconds=3600)
    store.prune(12, now_ms=0, keep_recent=1)
    store.prune(20, now_ms=0, keep_recent=1)
    assert store.payment_count() == 1 and int(store.get_meta("pruned_payments")) == 5
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
