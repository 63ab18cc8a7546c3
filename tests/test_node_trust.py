"""What the daemon trusts the node for and what it checks itself.

Every node answer is bounded (its route's AnswerCap: bytes raw and inflated, JSON values counted
before parsing; node.max_answer_bytes for the large routes) and checked for the documented shape;
a bad answer is that node failing (the next url is asked). One bad item of a listing is skipped
alone. Every transfer to the device is checked against its id, proof and sender before it lights
anything; what lights nothing is reported once as `ignored`. Unit tests of the checks, NodeClient
tests on httpx.MockTransport, the watcher and the whole daemon in-process on the virtual clock
against the fake node's hostile switches (played by test_hostile_network.Network).
"""

from __future__ import annotations

import copy
import gzip
import json
import logging
import os
import tracemalloc

import httpx
import pytest
from fakenode import gzip_bomb
from harness import TREASURY_SEED, poll_settled, read_state
from reference import load_vectors
from scenario import InProcessNode, Scenario, VirtualClock
from test_hostile_network import T_URL, Chunks, Network

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


# --- the checks, pure ------------------------------------------------------------------------------


def test_the_vectors_cover_every_version_the_watcher_accepts():
    """The vectors hold transfers v1-v3 and mass transfers v1-v2: every version the watcher accepts."""
    seen = {(v["type"], v["version"]) for v in CHECKED + V1_DOCS}
    assert {(4, 1), (4, 2), (4, 3), (11, 1), (11, 2)} <= seen


@pytest.mark.parametrize("vec", CHECKED, ids=[v["name"] for v in CHECKED])
def test_real_node_json_checks_out(vec):
    """The node's JSON of a real transfer or mass transfer (every version, both chains) rebuilds
    the body that its id hashes and its proof signs."""
    assert iotlight.check_transfer_proof(node_json(vec), vec["chain"]) is None


@pytest.mark.parametrize("vec", V1_DOCS, ids=[v["name"] for v in V1_DOCS])
def test_v1_transfer_checks_out_with_signature_or_proofs(vec):
    """A v1 transfer checks out with its `signature` alone or with `proofs` too."""
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
    """Any field of a real transfer changed, or its proof dropped, fails the payment check."""
    tx = node_json(vec)
    LIES[lie](tx)
    assert iotlight.check_transfer_proof(tx, vec["chain"]) is not None


@pytest.mark.parametrize("vec", CHECKED, ids=[v["name"] for v in CHECKED])
def test_a_transaction_of_another_chain_fails_the_check(vec):
    """A real transaction checked for the other chain fails the payment check."""
    other = "W" if vec["chain"] != "W" else "T"
    assert iotlight.check_transfer_proof(node_json(vec), other) is not None


def test_compact_mass_transfer_fails_the_check_and_a_relabelled_copy_too():
    """The compact form of a mass transfer (the device's items only) and a real transfer under a new
    id fail the payment check."""
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
    """A listed item with a wrong type or a number out of range is refused by the shape check."""
    with pytest.raises(ValueError):
        iotlight.check_tx_shape(transfer_item(**changes))


def test_shape_check_refuses_bad_mass_transfer_items_and_accepts_real_ones():
    """Bad mass transfer items (a huge amount, not an object, more than 100) are refused; real ones pass."""
    mass = node_json(next(v for v in CHECKED if v["type"] == 11))
    assert iotlight.check_tx_shape(mass) is mass
    for bad in ([{"recipient": "3M", "amount": 10**400}], ["x"], [{"recipient": "3M", "amount": 1}] * 101):
        with pytest.raises(ValueError):
            iotlight.check_tx_shape(dict(mass, transfers=bad))
    for vec in CHECKED:
        iotlight.check_tx_shape(node_json(vec))


def test_classify_names_why_a_transfer_to_the_device_lights_nothing():
    """classify_transfer: the amount to the device and why it lights nothing (wrong asset, failed)."""
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
    """JSON nested 100,000 deep is a BadAnswer (refused by its container count under a route's cap,
    and as nested too deep under a cap that lets it be parsed), never a RecursionError; NaN is refused."""
    with pytest.raises(iotlight.BadAnswer, match="more JSON values than its route needs"):
        iotlight.parse_answer(b"[" * 100_000 + b"]" * 100_000)
    roomy = iotlight.AnswerCap(1 << 20, 200_000, 400_000)
    with pytest.raises(iotlight.BadAnswer, match="nested"):
        iotlight.parse_answer(b"[" * 100_000 + b"]" * 100_000, roomy)
    with pytest.raises(iotlight.BadAnswer, match="nested deeper"):
        iotlight.parse_answer(b"[" * 100 + b"]" * 100)
    with pytest.raises(iotlight.BadAnswer):
        iotlight.parse_answer(b'{"height": NaN}')
    assert iotlight.parse_answer(b'[[{"a": [{"b": 1}]}]]') == [[{"a": [{"b": 1}]}]]


def test_gzip_bomb_never_inflates_past_the_cap():
    """A gzip bomb fed chunk by chunk is refused once it inflates past the cap, in bounded memory."""
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
    """BodyReader inflates a gzipped answer; a cut one or an encoding not asked for is a BadAnswer."""
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
    """The largest honest answers (a page of 1,000 transfers, of 1,000 mass transfers of 100 items,
    of 1,000 Data transactions of 100 integer entries) fit the default node.max_answer_bytes and the large
    routes' value counts: they parse."""
    config = iotlight.parse_config({"payment": {"asset_id": ASSET}}, "x.toml")
    assert config.max_answer_bytes == 8 * 1024 * 1024
    large = iotlight.NodeClient(["http://a"], timeout=1.0, max_answer_bytes=config.max_answer_bytes).large
    item = transfer_item(attachment=iotlight.b58encode(b"x" * 140))
    page = json.dumps([[item] * 1000], separators=(",", ":")).encode()
    assert len(page) < config.max_answer_bytes // 4
    assert len(iotlight.parse_answer(page, large)[0]) == 1000
    mass = node_json(next(v for v in CHECKED if v["type"] == 11))
    mass["transfers"] = mass["transfers"][:1] * 100  # a mass transfer with 100 items to the device
    mass["attachment"] = iotlight.b58encode(b"x" * 140)
    page = json.dumps([[mass] * 1000], separators=(",", ":")).encode()
    assert len(page) < config.max_answer_bytes
    assert len(iotlight.parse_answer(page, large)[0]) == 1000
    entries = [{"key": "telemetry_%d" % i, "type": "integer", "value": 1_800_000_000_000} for i in range(100)]
    data_tx = dict(transfer_item(), type=12, version=2, data=entries)
    page = json.dumps([[data_tx] * 1000], separators=(",", ":")).encode()
    assert len(page) < config.max_answer_bytes
    assert len(iotlight.parse_answer(page, large)[0]) == 1000


def test_max_answer_bytes_is_checked_in_the_config():
    """node.max_answer_bytes below 64 KiB is a config error; a valid value is taken."""
    with pytest.raises(iotlight.ConfigError, match="node.max_answer_bytes"):
        iotlight.parse_config({"payment": {"asset_id": ASSET}, "node": {"max_answer_bytes": 10}}, "x.toml")
    config = iotlight.parse_config(
        {"payment": {"asset_id": ASSET}, "node": {"max_answer_bytes": 1 << 20}}, "x.toml"
    )
    assert config.max_answer_bytes == 1 << 20


def test_terminal_monitor_prints_ignored_events():
    """The terminal monitor prints an `ignored` event with its id, sender, amount and reason."""
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


@pytest.fixture
def clock():
    c = VirtualClock()
    yield c
    c.loop.close()


def two_nodes(bad_answer, clock):
    """A client of nodes a (answers `bad_answer()`) and b (answers honestly)."""
    calls = []

    def handler(request):
        calls.append(request.url.host)
        if request.url.host == "a":
            return bad_answer()
        return httpx.Response(200, json={"height": 42})

    c = iotlight.NodeClient(
        ["http://a", "http://b"], timeout=1.0, clock=clock, transport=httpx.MockTransport(handler)
    )
    return c, calls


def ask_height(c, clock):
    async def go():
        try:
            return [await c.height() for _ in range(3)]
        finally:
            await c.aclose()

    return clock.loop.run_until_complete(go())


@pytest.mark.parametrize(
    "name", ["gzip bomb", "nesting bomb", "too long", "declared too long", "huge height", "wrong type"]
)
def test_a_bad_answer_fails_over_to_the_next_node_with_one_log_line(name, clock, caplog):
    """A bomb, an answer too long (sent or declared), a height out of range or of the wrong type from
    the first node: the second answers, the first backs off, one warning line names it."""
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
    c, calls = two_nodes(answers[name], clock)
    caplog.set_level(logging.INFO, "iotlight.node")
    assert ask_height(c, clock) == [42, 42, 42]
    assert calls == ["a", "b", "b", "b"], "the bad node is left for the healthy one while it backs off"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "node http://a is failing: bad answer" in warnings[0], warnings
    if name == "gzip bomb":
        assert stream.sent <= 2 * 16384, "reading stopped at the first chunks that inflated past the cap"


def test_a_page_with_more_items_than_asked_is_a_bad_answer(clock, caplog):
    """A listing page longer than the limit asked for is that node failing (one warning): its list
    route is left aside (the node not down, its other routes still asked); the next node's page counts."""
    calls = []

    def handler(request):
        calls.append((request.url.host, request.url.path))
        if request.url.path == "/blocks/height":
            return httpx.Response(200, json={"height": 42})
        n = 60 if request.url.host == "a" else 2
        return httpx.Response(200, json=[[{"id": "x" * 44, "type": 4}] * n])

    c = iotlight.NodeClient(
        ["http://a", "http://b"], timeout=1.0, clock=clock, transport=httpx.MockTransport(handler)
    )
    caplog.set_level(logging.INFO, "iotlight.node")

    async def go():
        try:
            page = await c.address_transactions("3M", 50)
            assert ("http://a", "list") in c.bad and c.throttled[("http://a", "list")] > clock.monotonic()
            assert "http://a" not in c.down_until, "the node is not down: only its list route is aside"
            assert await c.height() == 42
            assert len(await c.address_transactions("3M", 50)) == 2
            return page
        finally:
            await c.aclose()

    assert len(clock.loop.run_until_complete(go())) == 2
    assert calls == [
        ("a", "/transactions/address/3M/limit/50"),
        ("b", "/transactions/address/3M/limit/50"),
        ("a", "/blocks/height"),
        ("b", "/transactions/address/3M/limit/50"),
    ], "a is asked its height; its list route is left aside"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "node http://a is failing: bad answer" in warnings[0]
    assert "holds 60 transactions, more than the 50 asked for" in warnings[0]
    assert warnings[0].endswith("(that route is asked again less often)")


# --- the watcher in-process against the fake node's hostile switches ---------------------------


class Told:
    """What the watcher tells the Daemon: `ignored` events and credits."""

    def __init__(self):
        self.events, self.credits = [], []

    def __call__(self, kind, **fields):
        if kind == "ignored":
            self.events.append(dict(fields, type=kind))
        elif kind == "credited":
            self.credits.extend(fields["credits"])


class Rig:
    """A Watcher alone (no Daemon) on the virtual clock against in-process fake nodes: Scenario's
    chain, funded device, config and state file at T_URL; `others`: host -> chain id of more fake
    nodes (`nodes[host]`), asked first."""

    def __init__(self, tmp_path, others=()):
        urls = ["http://%s" % h for h in others] + [T_URL]
        self.s = Scenario(tmp_path, payment__count_history=True, node__urls=urls, node__timeout=3.0)
        self.chain, self.address, self.treasury = self.s.node.chain, self.s.address, self.s.treasury
        self.nodes = {host: InProcessNode(self.s.clock, chain_id) for host, chain_id in dict(others).items()}
        self.net = Network.around(self.s, **self.nodes)
        self.watcher = self.new_watcher()

    def new_watcher(self):
        s = self.s
        node = iotlight.NodeClient(
            s.config.node_urls,
            timeout=s.config.timeout,
            chain_id=s.config.chain_id,
            clock=s.clock,
            transport=self.net.transport(),
        )
        self.told = Told()
        return iotlight.Watcher(
            s.config,
            s.address,
            node=node,
            store=s.store,
            clock=s.clock,
            tell=self.told,
            light_span=lambda: (0.0, 0.0),
        )

    def restart(self):
        """A new watcher on the same state file, reopened."""
        self.s.loop.run_until_complete(self.watcher.node.aclose())
        self.s.store.close()
        self.s.store = iotlight.Store(self.s.config.state_file, self.s.clock)
        self.watcher = self.new_watcher()

    def polls(self, n=1):
        """n polls a second apart, each with the list read it started."""
        for _ in range(n):
            self.s.loop.run_until_complete(poll_settled(self.watcher))
            self.s.clock.advance(1.0)

    def pay(self, units):
        return self.chain.transfer(self.treasury, self.address, units, asset_id=self.s.asset)["id"]

    def paid(self):
        return {c.id: c.amount for c in self.told.credits}

    def close(self):
        try:
            self.s.loop.run_until_complete(self.watcher.node.aclose())
        finally:
            self.s.close()


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    yield r
    r.close()


def test_forged_relabelled_and_other_chain_payments_light_nothing(rig):
    """A made-up id with a proof that signs nothing, a real payment relisted under a new id and a
    transaction of another chain are not credited; the real payment is, once."""
    real = rig.pay(300)
    rig.chain.mine()
    lies = [
        rig.chain.hostile(kind, rig.address, asset_id=rig.s.asset)
        for kind in ("forged", "relabelled", "other_chain")
    ]
    rig.polls(2)
    assert rig.paid() == {real: 300}
    assert [c.id for c in rig.told.credits] == [real]
    assert not rig.s.store.credited_ids(lies)


def test_not_verified_is_reported_once_across_restarts_and_the_real_one_still_lights(rig, caplog):
    """Forged and relabelled payments are reported once each (a WARNING line, an `ignored`
    `not_verified` event with the listed amount, asset and sender), not again after a restart;
    the real payment is credited."""
    caplog.set_level(logging.INFO, "iotlight.watcher")
    real = rig.pay(300)
    rig.chain.mine()
    forged = rig.chain.hostile("forged", rig.address, asset_id=rig.s.asset)
    relabelled = rig.chain.hostile("relabelled", rig.address, asset_id=rig.s.asset)
    rig.polls(3)
    assert rig.paid() == {real: 300}
    events = rig.told.events
    assert {e["id"]: e["reason"] for e in events} == {forged: "not_verified", relabelled: "not_verified"}
    assert len(events) == 2
    e = next(e for e in events if e["id"] == forged)
    assert (e["type"], e["amount"], e["asset_id"]) == ("ignored", 500, rig.s.asset) and e["sender"]
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and "not_verified" in r.getMessage()
    ]
    assert len(warnings) == 2
    rig.restart()
    rig.polls(2)
    assert rig.told.events == [], "reported before the restart: not again"


def test_wrong_asset_coin_and_failed_transfers_are_reported_once_and_light_nothing(rig, caplog):
    """A counterfeit token of the same name, the chain's coin and a failed transfer of the token
    light nothing: each reported once (an INFO line, an `ignored` event with its reason)."""
    caplog.set_level(logging.INFO, "iotlight.watcher")
    chain, treasury = rig.chain, rig.treasury
    other = chain.issue_asset(treasury, "IoT-Light", 2, 10**8)  # a counterfeit of the same name
    fake = chain.transfer(treasury, rig.address, 500, asset_id=other)["id"]
    coin = chain.transfer(treasury, rig.address, 10**7)["id"]
    failed = chain.failed_transfer(treasury, rig.address, 500, rig.s.asset)["id"]
    chain.mine()
    rig.polls(3)
    assert rig.paid() == {}
    assert sorted((e["id"], e["reason"], e["asset_id"]) for e in rig.told.events) == sorted(
        [(fake, "wrong_asset", other), (coin, "wrong_asset", None), (failed, "failed", rig.s.asset)]
    )
    lines = [r for r in caplog.records if "lights nothing" in r.getMessage()]
    assert len(lines) == 3 and all(r.levelno == logging.INFO for r in lines)


def test_one_item_with_a_huge_amount_or_wrong_types_is_skipped_and_the_rest_credited(rig):
    """A 401-digit amount raised OverflowError on every poll: no later payment was credited. Now the
    item is skipped alone (reported `malformed`, amount unknown) and the payments around it count."""
    first = rig.pay(100)
    huge = rig.chain.hostile("huge_numbers", rig.address, asset_id=rig.s.asset)
    typed = rig.chain.hostile("wrong_types", rig.address, asset_id=rig.s.asset)
    later = rig.pay(200)
    rig.chain.mine()
    rig.polls(3)
    assert rig.paid() == {first: 100, later: 200}
    assert sorted((e["id"], e["reason"]) for e in rig.told.events) == sorted(
        [(huge, "malformed"), (typed, "malformed")]
    )
    assert next(e for e in rig.told.events if e["id"] == huge)["amount"] is None


@pytest.mark.parametrize("kind", ["nesting_bomb", "gzip_bomb"])
def test_a_bomb_from_the_first_node_fails_over_to_the_healthy_second(tmp_path, kind, caplog):
    """A nesting bomb (RecursionError) or a gzip bomb in every answer of the first node: the second
    is asked, the payment credited; the first node is failing with a bad answer (one line), and no
    gzip bomb was read past its first chunks."""
    caplog.set_level(logging.INFO, "iotlight.node")
    r = Rig(tmp_path, others={"liar.invalid": "T"})
    try:
        r.nodes["liar.invalid"].chain.hostile(kind, paths=["/"])  # every answer of the first node is a bomb
        tx = r.pay(100)
        r.chain.mine()
        r.polls(3)
        assert r.paid() == {tx: 100}
        failing = [
            m.getMessage() for m in caplog.records if "http://liar.invalid is failing" in m.getMessage()
        ]
        assert len(failing) == 1 and "bad answer" in failing[0]
        assert r.net.streams, "the bombs were played"
        if kind == "gzip_bomb":
            assert all(b.sent <= 2 * 16384 for b in r.net.streams), (
                "read up to the first chunks that inflated past the cap"
            )
    finally:
        r.close()


def test_compact_mass_transfer_is_read_in_full_and_checked(rig):
    """A mass transfer with other recipients, listed in compact form, is read in full from
    /transactions/info and checked: the device's items of each version are credited."""
    stranger = iotlight.keypair_from_seed(TREASURY_SEED + " stranger").address("T")
    for version in (1, 2):
        rig.chain.mass_transfer(
            rig.treasury,
            [(rig.address, 150), (stranger, 999), (rig.address, 250)],
            asset_id=rig.s.asset,
            version=version,
        )
    rig.chain.mine()
    rig.polls(2)
    assert sorted(rig.paid().values()) == [400, 400]
    assert rig.told.events == []
    assert any(r.path.startswith("/transactions/info/") for r in rig.chain.requests)


# --- the whole daemon against a lying node (in-process) ------------------------------------------


def test_daemon_credits_only_real_payments_from_a_lying_node(tmp_path, caplog):
    """The daemon against a node that lists forged, relabelled, other-chain, huge-number and
    wrong-type items and answers list reads with gzip and nesting bombs: only the real payments are
    credited, each lie is reported once (a line, a row in `ignored`), none gets a receipt, nothing
    crashes, and no bomb is read past its first chunks."""
    caplog.set_level(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # the lies live in the address listing, which a device reads mostly on its sweep: sweep often
    s = Scenario(tmp_path, node__poll_interval=1.0, node__sweep_interval=5.0)
    net = Network.around(s)
    chain = s.node.chain
    with s:
        real = [s.pay(1)]
        chain.mine()
        s.run_until(lambda: set(real) <= set(s.credited()), 30, "the first payment")
        lies = [
            chain.hostile(kind, s.address, asset_id=s.asset)
            for kind in ("forged", "relabelled", "other_chain", "huge_numbers", "wrong_types")
        ]
        chain.hostile("gzip_bomb", count=2)
        chain.hostile("nesting_bomb", count=2)
        real.append(s.pay(2))
        chain.mine()
        s.run_until(lambda: set(real) <= set(s.credited()), 60, "the later payment despite the lies")
        s.run_until(
            lambda: len(read_state(s.folder / "iotlight.db", "SELECT id FROM ignored")) >= 5,
            60,
            "the lies reported",
        )
        s.run_for(60)  # a dozen more sweeps: nothing more
        assert s.credited() == {real[0]: 100, real[1]: 200}
        assert {r[0] for r in read_state(s.folder / "iotlight.db", "SELECT id FROM ignored")} == set(lies)
        served = [k for k in chain.data_entries(s.address) if k.startswith("served_")]
        assert sorted(served) == sorted("served_" + i for i in real), (
            "a receipt for each real payment, none for a lie"
        )
        assert sorted(b.kind for b in net.streams) == ["gzip_bomb"] * 2 + ["nesting_bomb"] * 2, "all played"
        assert all(b.sent <= 2 * 16384 for b in net.streams if b.kind == "gzip_bomb")
    lines = [r.getMessage() for r in caplog.records]
    assert sum("lights nothing" in line for line in lines) == 5
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not [line for line in lines if "OverflowError" in line or "RecursionError" in line]
