"""What the daemon trusts the node for and what it checks itself.

Every node answer is bounded (node.max_answer_bytes, raw and inflated) and checked for the
documented shape; a bad answer is that node failing (the next url is asked). One bad item of a
listing is skipped alone. Every transfer to the device is checked against its id, proof and
sender before it lights anything; what lights nothing is reported once as `ignored`.
Unit tests of the checks, NodeClient tests on httpx.MockTransport, the watcher in-process
against the fake node's hostile switches, and the real daemon against them.
"""

from __future__ import annotations

import asyncio
import copy
import gzip
import json
import logging
import os
import time
import tracemalloc

import httpx
import pytest
from fakenode import gzip_bomb
from harness import TREASURY_SEED, credited, poll_settled, read_state, wait_until
from reference import load_vectors

import iotlight

TRANSFERS = load_vectors("transfers.json")
MASS = load_vectors("mass_transfers.json")
CHECKED = [v for v in TRANSFERS["transfers"] if "node_json_expected" in v] + [
    v for v in MASS["vectors"] if "node_json_expected" in v
]
V1_DOCS = [v for v in TRANSFERS["transfers"] if "fields" in v]
ASSET = TRANSFERS["token"]["asset_id_T"]


def node_json(vec):
    return copy.deepcopy(vec["node_json_expected"])


def run(coro):
    return asyncio.run(coro)


# --- the checks, pure ------------------------------------------------------------------------------


def test_the_vectors_cover_every_version_the_watcher_accepts():
    seen = {(v["type"], v["version"]) for v in CHECKED + V1_DOCS}
    assert {(4, 1), (4, 2), (4, 3), (11, 1), (11, 2)} <= seen


@pytest.mark.parametrize("vec", CHECKED, ids=[v["name"] for v in CHECKED])
def test_real_node_json_checks_out(vec):
    """The node's JSON of a real transfer or mass transfer (every version, both chains) rebuilds
    the body that its id hashes and its proof signs."""
    assert iotlight.check_transfer_proof(node_json(vec), vec["chain"]) is None


@pytest.mark.parametrize("vec", V1_DOCS, ids=[v["name"] for v in V1_DOCS])
def test_v1_transfer_checks_out_with_signature_or_proofs(vec):
    tx = dict(
        vec["tx_json"],
        sender=iotlight.address_from_public_key(
            iotlight.b58decode(vec["tx_json"]["senderPublicKey"]), vec["chain"]
        ),
        id=vec["id"],
    )
    tx["signature"] = tx.get("signature") or tx["proofs"][0]
    chain = iotlight._tx_chain(tx)
    assert iotlight.check_transfer_proof(tx, chain) is None
    assert iotlight.check_transfer_proof({k: v for k, v in tx.items() if k != "proofs"}, chain) is None


LIES = {
    "made-up id": lambda tx: tx.update(id=iotlight.b58encode(os.urandom(32))),
    "proof that signs nothing": lambda tx: tx.update(proofs=[iotlight.b58encode(os.urandom(64))]),
    "amount raised": lambda tx: (
        tx.update(amount=tx["amount"] + 1)
        if "amount" in tx
        else tx["transfers"][0].update(amount=tx["transfers"][0]["amount"] + 1)
    ),
    "sender not of the key": lambda tx: tx.update(sender=iotlight.keypair_from_seed("x").address("T")),
    "asset changed": lambda tx: tx.update(assetId=None if tx.get("assetId") else ASSET),
    "attachment dropped": lambda tx: tx.update(attachment="" if tx.get("attachment") else "2M"),
    "no proof": lambda tx: (tx.pop("proofs"), tx.pop("signature", None)),
}


@pytest.mark.parametrize("lie", sorted(LIES))
@pytest.mark.parametrize("vec", CHECKED, ids=[v["name"] for v in CHECKED])
def test_a_changed_field_fails_the_check(vec, lie):
    tx = node_json(vec)
    LIES[lie](tx)
    assert iotlight.check_transfer_proof(tx, vec["chain"]) is not None


@pytest.mark.parametrize("vec", CHECKED, ids=[v["name"] for v in CHECKED])
def test_a_transaction_of_another_chain_fails_the_check(vec):
    other = "W" if vec["chain"] != "W" else "T"
    assert iotlight.check_transfer_proof(node_json(vec), other) is not None


def test_compact_mass_transfer_fails_the_check_and_a_relabelled_copy_too():
    item = MASS["as_seen_by_recipient_in_transactions_address"]["response_item"]
    assert iotlight.check_transfer_proof(copy.deepcopy(item), "T") is not None
    real = node_json(next(v for v in CHECKED if v["type"] == 4 and v["chain"] == "T"))
    relabelled = dict(real, id=iotlight.b58encode(os.urandom(32)))
    assert iotlight.check_transfer_proof(relabelled, "T") == "its id is not the hash of its fields"


def transfer_item(**changes):
    tx = node_json(next(v for v in CHECKED if v["type"] == 4 and v["chain"] == "T"))
    tx.update(changes)
    return tx


@pytest.mark.parametrize(
    "changes",
    [
        {"amount": 10**400},
        {"amount": -1},
        {"amount": 2**63},
        {"amount": "150"},
        {"amount": 1.5},
        {"amount": True},
        {"recipient": {"address": "3M"}},
        {"fee": 10**30},
        {"timestamp": "now"},
        {"height": 2**40},
        {"type": 10**400},
        {"proofs": "abc"},
        {"proofs": [1]},
        {"assetId": 5},
        {"attachment": ["x"]},
        {"sender": 7},
        {"version": "2"},
        {"chainId": 10**400},
    ],
)
def test_shape_check_refuses_wrong_types_and_numbers_out_of_range(changes):
    with pytest.raises(ValueError):
        iotlight.check_tx_shape(transfer_item(**changes))


def test_shape_check_refuses_bad_mass_transfer_items_and_accepts_real_ones():
    mass = node_json(next(v for v in CHECKED if v["type"] == 11))
    assert iotlight.check_tx_shape(mass) is mass
    for bad in ([{"recipient": "3M", "amount": 10**400}], ["x"], [{"recipient": "3M", "amount": 1}] * 101):
        with pytest.raises(ValueError):
            iotlight.check_tx_shape(dict(mass, transfers=bad))
    for vec in CHECKED:
        iotlight.check_tx_shape(node_json(vec))


def test_classify_names_why_a_transfer_to_the_device_lights_nothing():
    mine = {"3Mdevice"}
    base = {"type": 4, "recipient": "3Mdevice", "amount": 5, "assetId": ASSET}
    assert iotlight.classify_transfer(base, asset_id=ASSET, mine=mine) == (5, None)
    assert iotlight.classify_transfer(dict(base, assetId="Other"), asset_id=ASSET, mine=mine) == (
        5,
        "wrong_asset",
    )
    assert iotlight.classify_transfer(dict(base, assetId=None), asset_id=ASSET, mine=mine) == (
        5,
        "wrong_asset",
    )
    assert iotlight.classify_transfer(
        dict(base, applicationStatus="script_execution_failed"), asset_id=ASSET, mine=mine
    ) == (5, "failed")
    assert iotlight.classify_transfer(dict(base, recipient="3Mother"), asset_id=ASSET, mine=mine) == (0, None)


def test_nesting_bomb_is_a_bad_answer_not_a_recursion_error():
    with pytest.raises(iotlight.BadAnswer, match="nested"):
        iotlight.parse_answer(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(iotlight.BadAnswer, match="nested deeper"):
        iotlight.parse_answer(b"[" * 100 + b"]" * 100)
    with pytest.raises(iotlight.BadAnswer):
        iotlight.parse_answer(b'{"height": NaN}')
    assert iotlight.parse_answer(b'[[{"a": [{"b": 1}]}]]') == [[{"a": [{"b": 1}]}]]


def test_gzip_bomb_never_inflates_past_the_cap():
    bomb = gzip_bomb(64 * 1024 * 1024)
    cap = 1024 * 1024
    reader = iotlight.BodyReader(cap, "gzip")
    tracemalloc.start()
    try:
        with pytest.raises(iotlight.BadAnswer, match="larger than 1048576 bytes decompressed"):
            for i in range(0, len(bomb), 65536):
                reader.feed(bomb[i : i + 65536])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(reader.out) <= cap + 1
    assert peak < 4 * cap, peak


def test_body_reader_inflates_a_real_answer_and_refuses_a_cut_one():
    data = json.dumps([[{"id": "x" * 40}] * 100]).encode()
    packed = gzip.compress(data)
    reader = iotlight.BodyReader(len(data), "gzip")
    reader.feed(packed)
    assert reader.body() == data
    cut = iotlight.BodyReader(len(data), "gzip")
    cut.feed(packed[: len(packed) // 2])
    with pytest.raises(iotlight.BadAnswer, match="cut short"):
        cut.body()
    with pytest.raises(iotlight.BadAnswer, match="Content-Encoding"):
        iotlight.BodyReader(100, "br")


def test_a_full_page_of_a_thousand_transfers_fits_the_default_cap():
    item = transfer_item(attachment=iotlight.b58encode(b"x" * 140))
    page = json.dumps([[item] * 1000], separators=(",", ":")).encode()
    assert len(page) < iotlight.NODE_MAX_ANSWER // 4
    mass = node_json(next(v for v in CHECKED if v["type"] == 11))
    mass["transfers"] = mass["transfers"][:1] * 100  # a mass transfer with 100 items to the device
    mass["attachment"] = iotlight.b58encode(b"x" * 140)
    page = json.dumps([[mass] * 1000], separators=(",", ":")).encode()
    assert len(page) < iotlight.NODE_MAX_ANSWER
    config = iotlight.parse_config({"payment": {"asset_id": ASSET}}, "x.toml")
    assert config.max_answer_bytes == iotlight.NODE_MAX_ANSWER


def test_max_answer_bytes_is_checked_in_the_config():
    with pytest.raises(iotlight.ConfigError, match="node.max_answer_bytes"):
        iotlight.parse_config({"payment": {"asset_id": ASSET}, "node": {"max_answer_bytes": 10}}, "x.toml")
    config = iotlight.parse_config(
        {"payment": {"asset_id": ASSET}, "node": {"max_answer_bytes": 1 << 20}}, "x.toml"
    )
    assert config.max_answer_bytes == 1 << 20


def test_terminal_monitor_prints_ignored_events():
    line = iotlight.format_event(
        {
            "type": "ignored",
            "ts": 0,
            "id": "A" * 44,
            "sender": "3M" + "b" * 33,
            "amount": 500,
            "asset_id": None,
            "reason": "not_verified",
        }
    )
    assert "ignored AAAA..AAAA from 3Mbb..bbbb: 500 units of the chain's coin, not_verified" in line


# --- NodeClient on httpx.MockTransport -----------------------------------------------------------


class FakeClock(iotlight.Clock):
    def __init__(self):
        self.mono = 1000.0

    def monotonic(self):
        return self.mono


class Chunks(httpx.AsyncByteStream):
    """A body httpx streams chunk by chunk, as from the network (not held in memory first)."""

    def __init__(self, data: bytes, size: int = 16384):
        self.data, self.size, self.sent = data, size, 0

    async def __aiter__(self):
        for i in range(0, len(self.data), self.size):
            self.sent += self.size
            yield self.data[i : i + self.size]


def two_nodes(bad_answer, cap=1024 * 1024):
    """A client of nodes a (answers `bad_answer()`) and b (answers honestly)."""
    calls = []

    def handler(request):
        calls.append(request.url.host)
        if request.url.host == "a":
            return bad_answer()
        return httpx.Response(200, json={"height": 42})

    c = iotlight.NodeClient(
        ["http://a", "http://b"],
        timeout=1.0,
        clock=FakeClock(),
        transport=httpx.MockTransport(handler),
        max_answer_bytes=cap,
    )
    return c, calls


def ask_height(c):
    async def go():
        try:
            return [await c.height() for _ in range(3)]
        finally:
            await c.aclose()

    return run(go())


@pytest.mark.parametrize(
    "name", ["gzip bomb", "nesting bomb", "too long", "declared too long", "huge height", "wrong type"]
)
def test_a_bad_answer_fails_over_to_the_next_node_with_one_log_line(name, caplog):
    stream = Chunks(gzip_bomb(32 * 1024 * 1024))
    answers = {
        "gzip bomb": lambda: httpx.Response(200, headers={"Content-Encoding": "gzip"}, stream=stream),
        "nesting bomb": lambda: httpx.Response(200, stream=Chunks(b"[" * 50_000 + b"]" * 50_000)),
        "too long": lambda: httpx.Response(
            200, stream=Chunks(b'{"height": 1, "x": "' + b"y" * (2 << 20) + b'"}')
        ),
        "declared too long": lambda: httpx.Response(
            200, headers={"Content-Length": str(10**9)}, stream=Chunks(b'{"height": 1}')
        ),
        "huge height": lambda: httpx.Response(200, json={"height": 10**400}),
        "wrong type": lambda: httpx.Response(200, json={"height": "42"}),
    }
    c, calls = two_nodes(answers[name])
    caplog.set_level(logging.INFO, "iotlight.node")
    assert ask_height(c) == [42, 42, 42]
    assert calls == ["a", "b", "b", "b"], "the bad node is left for the healthy one while it backs off"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "node http://a is failing: bad answer" in warnings[0], warnings
    if name == "gzip bomb":
        assert stream.sent <= 2 * 16384, "reading stopped at the first chunks that inflated past the cap"


def test_a_page_with_more_items_than_asked_is_a_bad_answer():
    def handler(request):
        n = 60 if request.url.host == "a" else 2
        return httpx.Response(200, json=[[{"id": "x" * 44, "type": 4}] * n])

    c = iotlight.NodeClient(
        ["http://a", "http://b"], timeout=1.0, clock=FakeClock(), transport=httpx.MockTransport(handler)
    )

    async def go():
        try:
            return await c.address_transactions("3M", 50)
        finally:
            await c.aclose()

    assert len(run(go())) == 2
    assert "more than the 50 asked for" in c.errors["http://a"]


# --- the watcher in-process against the fake node's hostile switches ---------------------------


def make_watcher(chain, tmp_path, urls=None, *, with_events=True, **node_settings):
    """A watcher on a fresh state file for a device funded on `chain`; payments before it count."""
    device = iotlight.keypair_from_seed("node trust device %s" % tmp_path.name)
    address = device.address("T")
    settings = {"urls": list(urls or [chain.url]), "chain_id": "T", "list_rate": 0, "timeout": 3.0}
    settings.update(node_settings)
    config = iotlight.parse_config(
        {
            "node": settings,
            "payment": {"asset_id": chain.asset, "count_history": True},
            "monitor": {"port": 0},
        },
        str(tmp_path / "iotlight.toml"),
    )
    store = iotlight.Store(str(tmp_path / "state.db"))
    node = iotlight.NodeClient(config.node_urls, timeout=config.timeout)  # the default node.max_answer_bytes
    credits, events = [], []
    extra = {"on_ignored": events.append} if with_events else {}
    w = iotlight.Watcher(
        config,
        address,
        node=node,
        store=store,
        clock=iotlight.Clock(),
        on_credit=credits.extend,
        on_height=lambda h: None,
        on_balance=lambda t, c: None,
        light_span=lambda: (0.0, 0.0),
        **extra,
    )
    w.credits, w.events = credits, events
    return w


def polls(w, n=1):
    async def go():
        try:
            for _ in range(n):
                await poll_settled(w)
        finally:
            await w.node.aclose()

    run(go())


def paid(w):
    return {c.id: c.amount for c in w.credits}


def test_forged_relabelled_and_other_chain_payments_light_nothing(chain, tmp_path):
    """A made-up id with a proof that signs nothing, a real payment relisted under a new id and a
    transaction of another chain are not credited; the real payment is, once."""
    w = make_watcher(chain, tmp_path, with_events=False)
    real = chain.transfer(chain.treasury, w.address, 300, asset_id=chain.asset)["id"]
    chain.mine()
    lies = [
        chain.hostile(kind, w.address, asset_id=chain.asset)
        for kind in ("forged", "relabelled", "other_chain")
    ]
    polls(w, 2)
    assert paid(w) == {real: 300}
    assert not w.store.credited_ids(lies)


def test_not_verified_is_reported_once_across_restarts_and_the_real_one_still_lights(chain, tmp_path, caplog):
    caplog.set_level(logging.INFO, "iotlight.watcher")
    w = make_watcher(chain, tmp_path)
    real = chain.transfer(chain.treasury, w.address, 300, asset_id=chain.asset)["id"]
    chain.mine()
    forged = chain.hostile("forged", w.address, asset_id=chain.asset)
    relabelled = chain.hostile("relabelled", w.address, asset_id=chain.asset)
    polls(w, 3)
    assert paid(w) == {real: 300}
    reasons = {e["id"]: e["reason"] for e in w.events}
    assert reasons == {forged: "not_verified", relabelled: "not_verified"}
    e = next(e for e in w.events if e["id"] == forged)
    assert (e["type"], e["amount"], e["asset_id"]) == ("ignored", 500, chain.asset) and e["sender"]
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and "not_verified" in r.getMessage()
    ]
    assert len(warnings) == 2
    w.store.close()
    again = make_watcher(chain, tmp_path)  # a restart on the same state file
    polls(again, 2)
    assert again.events == [], "reported before the restart: not again"


def test_wrong_asset_coin_and_failed_transfers_are_reported_once_and_light_nothing(chain, tmp_path, caplog):
    caplog.set_level(logging.INFO, "iotlight.watcher")
    w = make_watcher(chain, tmp_path)
    other = chain.issue_asset(chain.treasury, "IoT-Light", 2, 10**8)  # a counterfeit of the same name
    fake = chain.transfer(chain.treasury, w.address, 500, asset_id=other)["id"]
    coin = chain.transfer(chain.treasury, w.address, 10**7)["id"]
    failed = chain.failed_transfer(chain.treasury, w.address, 500, chain.asset)["id"]
    chain.mine()
    polls(w, 3)
    assert paid(w) == {}
    assert sorted((e["id"], e["reason"], e["asset_id"]) for e in w.events) == sorted(
        [(fake, "wrong_asset", other), (coin, "wrong_asset", None), (failed, "failed", chain.asset)]
    )
    infos = [r.getMessage() for r in caplog.records if "lights nothing" in r.getMessage()]
    assert len(infos) == 3 and all(
        r.levelno == logging.INFO for r in caplog.records if "lights nothing" in r.getMessage()
    )


def test_one_item_with_a_huge_amount_or_wrong_types_is_skipped_and_the_rest_credited(chain, tmp_path):
    """A 401-digit amount raised OverflowError on every poll: no later payment was credited."""
    w = make_watcher(chain, tmp_path)
    first = chain.transfer(chain.treasury, w.address, 100, asset_id=chain.asset)["id"]
    huge = chain.hostile("huge_numbers", w.address, asset_id=chain.asset)
    typed = chain.hostile("wrong_types", w.address, asset_id=chain.asset)
    later = chain.transfer(chain.treasury, w.address, 200, asset_id=chain.asset)["id"]
    chain.mine()
    polls(w, 3)
    assert paid(w) == {first: 100, later: 200}
    assert sorted((e["id"], e["reason"]) for e in w.events) == sorted(
        [(huge, "malformed"), (typed, "malformed")]
    )
    assert next(e for e in w.events if e["id"] == huge)["amount"] is None


def test_a_bomb_from_the_first_node_fails_over_to_the_healthy_second(chain, tmp_path):
    """A nesting bomb (RecursionError) or a gzip bomb from the first node: the second is asked."""
    from harness import start_chain

    liar = start_chain("T")
    try:
        for kind in ("nesting_bomb", "gzip_bomb"):
            (tmp_path / kind).mkdir()
            w = make_watcher(chain, tmp_path / kind, urls=[liar.url, chain.url], with_events=False)
            liar.hostile(kind, paths=["/"])  # every answer of the first node is a bomb
            tx = chain.transfer(chain.treasury, w.address, 100, asset_id=chain.asset)["id"]
            chain.mine()
            polls(w, 3)
            assert paid(w) == {tx: 100}, kind
            assert "bad answer" in w.node.errors[liar.url]
            liar.clear_faults()
    finally:
        liar.stop()


def test_compact_mass_transfer_is_read_in_full_and_checked(chain, tmp_path):
    w = make_watcher(chain, tmp_path)
    stranger = iotlight.keypair_from_seed(TREASURY_SEED + " stranger").address("T")
    for version in (1, 2):
        chain.mass_transfer(
            chain.treasury,
            [(w.address, 150), (stranger, 999), (w.address, 250)],
            asset_id=chain.asset,
            version=version,
        )
    chain.mine()
    polls(w, 2)
    assert sorted(paid(w).values()) == [400, 400]
    assert w.events == []


# --- the real daemon against a lying node --------------------------------------------------------


@pytest.mark.timeout(180)
def test_daemon_credits_only_real_payments_from_a_lying_node(chain, tmp_path):
    from harness import funded_device

    # the lies live in the address listing, which a device now reads mostly on its sweep: sweep often
    with funded_device(chain, tmp_path / "device", monitor__port=0, node__sweep_interval=5.0) as device:
        device.start()
        real = [chain.transfer(chain.treasury, device.address, 100, asset_id=chain.asset)["id"]]
        chain.mine()
        wait_until(lambda: set(real) <= set(credited(device)), 15, what="the first payment")
        lies = [
            chain.hostile(kind, device.address, asset_id=chain.asset)
            for kind in ("forged", "relabelled", "other_chain", "huge_numbers", "wrong_types")
        ]
        chain.hostile("gzip_bomb", count=2)
        chain.hostile("nesting_bomb", count=2)
        real.append(chain.transfer(chain.treasury, device.address, 200, asset_id=chain.asset)["id"])
        chain.mine()
        wait_until(lambda: set(real) <= set(credited(device)), 30, what="the later payment despite the lies")
        time.sleep(1.0)
        assert set(credited(device)) == set(real)
        db = device.folder / "iotlight.db"
        wait_until(lambda: len(read_state(db, "SELECT id FROM ignored")) >= 5, 15, what="the lies reported")
        assert {r[0] for r in read_state(db, "SELECT id FROM ignored")} == set(lies)
        served = [k for k in chain.data_entries(device.address) if k.startswith("served_")]
        assert not {k[len("served_") :] for k in served} & set(lies), "no receipt for a lie"
        out = device.output()
        assert "Traceback" not in out and "OverflowError" not in out and "RecursionError" not in out
        assert out.count("lights nothing") == 5
        assert device.alive()
        with open("/proc/%d/status" % device.proc.pid) as f:
            peak_kb = int(next(line for line in f if line.startswith("VmHWM:")).split()[1])
        assert peak_kb < 150 * 1024, "the daemon's peak RSS %d KB: the gzip bomb was inflated" % peak_kb
