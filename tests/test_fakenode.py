"""The fake Waves node answers like the documented node API (shapes, paging, errors, faults).

Each node runs in this process (its HTTP server on a thread); only the standalone script's test starts
a process (marked `process`). Fault durations run on the tests' one fake clock (scenario.VirtualClock).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List

import fakenode
import httpx
import pytest
import reference
from fakenode import SHARED_ZONE_ROUTES, FakeNode, FakeNodeError, Pool
from harness import free_port
from scenario import VirtualClock

import iotlight

SPEC = Path(__file__).resolve().parent / "vectors"
EXAMPLES = SPEC / "api_examples"
CHAIN = "T"


def example(name: str) -> Dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text())


def vector(file: str, name: str) -> Dict[str, Any]:
    data = json.loads((SPEC / file).read_text())
    items = data.get("vectors") or data.get("transfers") or []
    if file == "transfers.json":
        items = items + data["issue_transactions"]
    return next(v for v in items if v["name"] == name)


def keys(name: str) -> iotlight.KeyPair:
    return iotlight.keypair_from_seed("fakenode test throwaway " + name)


ALICE, BOB, CAROL = keys("alice"), keys("bob"), keys("carol")


@pytest.fixture
def node():
    with FakeNode(CHAIN) as n:
        n.fund(ALICE.address(CHAIN), waves=1000 * 10**8)
        yield n


@pytest.fixture
def client(node):
    with httpx.Client(base_url=node.url, timeout=10.0) as c:
        yield c


@pytest.fixture
def asset(node):
    return node.issue_asset(ALICE, "IoT-Light", 2, 100_000_000)


def get_json(client: httpx.Client, path: str, status: int = 200) -> Any:
    r = client.get(path)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json; charset=UTF-8"
    return r.json()


def by_address(client: httpx.Client, address: str, limit: int, after: str = None) -> List[Dict[str, Any]]:
    path = "/transactions/address/%s/limit/%d" % (address, limit)
    if after:
        path += "?after=" + after
    page = get_json(client, path)
    assert isinstance(page, list) and len(page) == 1
    return page[0]


def broadcast(client: httpx.Client, body: Any) -> httpx.Response:
    if isinstance(body, (bytes, str)):
        return client.post(
            "/transactions/broadcast", content=body, headers={"Content-Type": "application/json"}
        )
    return client.post("/transactions/broadcast", json=body)


# --- shapes --------------------------------------------------------------------


def test_simple_endpoint_shapes_match_examples(client, node):
    """/blocks/height, /utils/time and /blocks/headers/last have the examples' keys in their order."""
    assert list(get_json(client, "/blocks/height")) == list(example("blocks_height.json")["response"])
    assert list(get_json(client, "/utils/time")) == list(example("utils_time.json")["response"])
    header = get_json(client, "/blocks/headers/last")
    assert list(header) == list(example("blocks_headers_last.json")["response_large_significand_format"])
    assert header["height"] == node.height and isinstance(header["totalFee"], int)
    last = get_json(client, "/blocks/last")
    assert list(last) == list(header) + ["transactions"]
    assert set(example("blocks_last.json")["response"]) <= set(last)


def test_large_significand_header_turns_amounts_into_strings(client, node):
    """Accept: ...large-significand-format=string makes totalFee/reward strings, like the example."""
    r = client.get(
        "/blocks/headers/last", headers={"Accept": "application/json;large-significand-format=string"}
    )
    assert isinstance(r.json()["totalFee"], str) and isinstance(r.json()["reward"], str)


def test_transaction_shapes_match_vectors(client, node, asset):
    """Transfer, Issue, Data and MassTransfer JSON have the node_json_expected keys in order."""
    node.add_alias(BOB.address(CHAIN), "iot-light")
    t = node.transfer(ALICE, BOB.address(CHAIN), 150, asset_id=asset, attachment=b"hi")
    t3 = node.transfer(ALICE, "alias:T:iot-light", 1, asset_id=asset, version=3)
    d = node.data(ALICE, [{"key": "joystick", "type": "string", "value": "pressed"}])
    d2 = node.data(ALICE, [{"key": "joystick", "type": "string", "value": "pressed"}], version=2)
    m = node.mass_transfer(
        ALICE, [(BOB.address(CHAIN), 100), ("alias:T:iot-light", 250), (CAROL.address(CHAIN), 1)], asset
    )
    cases = [
        (t["id"], vector("transfers.json", "transfer-T-v2-token-to-address")),
        (t3["id"], vector("transfers.json", "transfer-T-v3-token-to-alias")),
        (asset, vector("transfers.json", "issue-Z-v2-IoT-Light")),
        (d["id"], vector("data.json", "data-W-v1-daemon-event")),
        (d2["id"], vector("data.json", "data-W-v2-daemon-event")),
        (m["id"], vector("mass_transfers.json", "mass-T-v1-token-3-recipients")),
    ]
    for tx_id, vec in cases:
        info = get_json(client, "/transactions/info/" + tx_id)
        assert list(info) == list(vec["node_json_expected"]), vec["name"]
    assert get_json(client, "/transactions/info/" + t3["id"])["recipient"] == "alias:T:iot-light"


def test_v1_transfer_carries_signature_and_proofs(client, node):
    """A v1 transfer is served with both proofs and signature, as in the transactions_info example."""
    t = node.transfer(ALICE, BOB.address(CHAIN), 5, version=1)
    info = get_json(client, "/transactions/info/" + t["id"])
    assert info["signature"] == info["proofs"][0]
    assert set(example("transactions_info.json")["response"]) <= set(info)


def test_address_listing_shape_and_compact_mass_transfer(client, node, asset):
    """A recipient sees a mass transfer compact (own items only), the sender sees it whole."""
    bob, carol = BOB.address(CHAIN), CAROL.address(CHAIN)
    node.add_alias(bob, "bobs-lamp")
    m = node.mass_transfer(ALICE, [(bob, 100), ("alias:T:bobs-lamp", 250), (carol, 1)], asset)
    seen_by_bob = by_address(client, bob, 10)
    assert [tx["id"] for tx in seen_by_bob] == [m["id"]]
    item = seen_by_bob[0]
    expected = json.loads((SPEC / "mass_transfers.json").read_text())[
        "as_seen_by_recipient_in_transactions_address"
    ]
    assert list(item) == list(expected["response_item"])
    assert item["transfers"] == [
        {"recipient": bob, "amount": 100},
        {"recipient": "alias:T:bobs-lamp", "amount": 250},
    ]
    assert item["transferCount"] == 3 and item["totalAmount"] == 351
    assert by_address(client, carol, 10)[0]["transfers"] == [{"recipient": carol, "amount": 1}]
    assert len(by_address(client, ALICE.address(CHAIN), 10)[0]["transfers"]) == 3
    assert node.balance(bob, asset) == 350


def test_listing_by_alias_recipient(client, node, asset):
    """A transfer to an alias is listed for the alias owner and shows the alias as recipient."""
    bob = BOB.address(CHAIN)
    node.add_alias(bob, "bobs-lamp")
    t = node.transfer(ALICE, "alias:T:bobs-lamp", 7, asset_id=asset)
    (item,) = by_address(client, bob, 5)
    assert item["id"] == t["id"] and item["recipient"] == "alias:T:bobs-lamp"
    assert get_json(client, "/alias/by-address/" + bob) == ["alias:T:bobs-lamp"]
    assert get_json(client, "/alias/by-alias/bobs-lamp") == example("alias_by_alias.json")["response"] | {
        "address": bob
    }
    missing = get_json(client, "/alias/by-alias/iot-light", 404)
    assert missing == example("alias_by_alias.json")["not_found"]["body"]


def test_status_unconfirmed_and_info_shapes(client):
    """status, unconfirmed and unconfirmed/info follow the examples; unknown ids get error 311."""
    with FakeNode(CHAIN, auto_include=False) as node, httpx.Client(base_url=node.url) as c:
        node.fund(ALICE.address(CHAIN), waves=10**9)
        t = node.make_transfer(ALICE, BOB.address(CHAIN), 10)
        assert broadcast(c, t).status_code == 200
        (pending,) = get_json(c, "/transactions/unconfirmed")
        assert (
            list(pending)
            == list(vector("transfers.json", "transfer-T-v2-token-to-address")["node_json_expected"])[:-3]
        )
        assert get_json(c, "/transactions/unconfirmed/info/" + t["id"]) == pending
        missing = get_json(c, "/transactions/info/" + t["id"], 404)
        assert missing == example("transactions_info.json")["error_not_found_waves"]["body"]
        other = node.make_transfer(ALICE, BOB.address(CHAIN), 11)["id"]
        st = get_json(c, "/transactions/status?id=%s&id=%s" % (t["id"], other))
        assert st == [{"status": "unconfirmed", "id": t["id"]}, {"status": "not_found", "id": other}]
        node.include_utx()
        node.mine(2)
        (st,) = c.post("/transactions/status", json={"ids": [t["id"]]}).json()
        assert list(st) == ["status", "height", "confirmations", "applicationStatus", "spentComplexity", "id"]
        assert set(example("transactions_status.json")["response"][0]) <= set(st)
        assert st["confirmations"] == 2 and st["status"] == "confirmed"


def test_account_and_asset_shapes(client, node, asset):
    """Balances, balance details, asset details and data endpoints have the examples' shapes."""
    a = ALICE.address(CHAIN)
    assert list(get_json(client, "/addresses/balance/" + a)) == list(
        example("addresses_balance.json")["response"]
    )
    details = get_json(client, "/addresses/balance/details/" + a)
    assert list(details) == list(example("addresses_balance.json")["details_response"])
    assert list(get_json(client, "/assets/balance/%s/%s" % (a, asset))) == list(
        example("assets_balance_address_asset.json")["response"]
    )
    assert get_json(client, "/assets/balance/%s/%s" % (BOB.address(CHAIN), asset))["balance"] == 0
    d = get_json(client, "/assets/details/" + asset)
    assert list(d) == [
        "assetId",
        "issueHeight",
        "issueTimestamp",
        "issuer",
        "issuerPublicKey",
        "name",
        "description",
        "decimals",
        "reissuable",
        "quantity",
        "scripted",
        "minSponsoredAssetFee",
        "originTransactionId",
        "sequenceInBlock",
    ]
    assert d["decimals"] == 2 and d["quantity"] == 100_000_000 and d["issuer"] == a
    unknown = iotlight.b58encode(b"\x07" * 32)
    assert get_json(client, "/assets/details/" + unknown, 404) == {
        "error": 313,
        "message": "Asset does not exist: " + unknown,
    }
    assert get_json(client, "/assets/details/notanasset", 400) == {
        "error": 4007,
        "message": "Invalid asset id",
    }
    ex = example("addresses_data.json")
    node.data(ALICE, ex["response"])
    assert get_json(client, "/addresses/data/" + a) == ex["response"]
    assert get_json(client, "/addresses/data/%s/int" % a) == ex["single_key_response"]
    assert get_json(client, "/addresses/data/%s?key=str&key=int" % a) == [
        ex["response"][3],
        ex["response"][2],
    ]
    assert get_json(client, "/addresses/data/%s/nope" % a, 404) == ex["single_key_not_found"]["body"]
    assert get_json(client, "/addresses/balance/3Nbad", 400) == {"error": 102, "message": "invalid address"}


def test_unknown_route_is_the_node_404(client):
    """An unknown path gets the node's (akka) 404 text."""
    r = client.get("/no/such/route")
    assert r.status_code == 404 and r.text.startswith("The requested resource could not be found")


def test_served_transactions_are_really_signed(client, node, asset):
    """Every transaction served verifies (reference) and its id is the hash of its body; iotlight's own
    payment check accepts the transfers and mass transfers."""
    node.add_alias(BOB.address(CHAIN), "iot-light")
    node.transfer(ALICE, BOB.address(CHAIN), 1, asset_id=asset, version=1)
    node.transfer(ALICE, "alias:T:iot-light", 2, asset_id=asset, version=3)
    node.mass_transfer(ALICE, [(BOB.address(CHAIN), 3)], asset, version=2)
    node.data(ALICE, [{"key": "k", "type": "integer", "value": -1}], version=2)
    served = by_address(client, ALICE.address(CHAIN), 100)
    assert len(served) == 5
    for tx in served + [get_json(client, "/transactions/info/" + t["id"]) for t in served]:
        assert reference.verify_tx(tx), tx["id"]
        assert reference.tx_id(tx) == tx["id"]
        if tx["type"] in (4, 11):
            assert iotlight.check_transfer_proof(tx, CHAIN) is None, tx["id"]


# --- paging, liquid block, rollback ----------------------------------------------


def test_paging_2500_transactions_without_gaps_or_repeats(client, node, asset):
    """Pages of 1000 with ?after= walk 2500 transactions newest first, each exactly once."""
    bob = BOB.address(CHAIN)
    made = []
    for i in range(2500):
        made.append(node.transfer(ALICE, bob, 1 + i % 7, asset_id=asset)["id"])
        if i % 300 == 299:
            node.mine()
    seen: List[Dict[str, Any]] = []
    after = None
    while True:
        page = by_address(client, bob, 1000, after)
        seen.extend(page)
        if len(page) < 1000:
            break
        after = page[-1]["id"]
    ids = [t["id"] for t in seen]
    assert ids == list(reversed(made))
    heights = [t["height"] for t in seen]
    assert heights == sorted(heights, reverse=True) and heights[0] == node.height
    assert by_address(client, bob, 1000, ids[-1]) == []


def test_limit_cap_and_bad_after(client, node):
    """limit above 1000 is error 10; a malformed after is error 199."""
    a = ALICE.address(CHAIN)
    assert (
        get_json(client, "/transactions/address/%s/limit/1001" % a, 400)
        == example("errors.json")["examples"][0]["body"]
    )
    assert get_json(client, "/transactions/address/%s/limit/1000" % a) == [[]]
    bad = get_json(client, "/transactions/address/%s/limit/10?after=0OIl" % a, 400)
    assert bad == {"error": 199, "message": "Unable to decode transaction id 0OIl"}


def test_liquid_block_is_visible_then_mined(client, node):
    """A transaction shows at once at the current height; mining raises the height, not the tx's."""
    h = get_json(client, "/blocks/height")["height"]
    t = node.transfer(ALICE, BOB.address(CHAIN), 100)
    (item,) = by_address(client, BOB.address(CHAIN), 10)
    assert item["id"] == t["id"] and item["height"] == h
    assert get_json(client, "/blocks/headers/last")["transactionCount"] == 1
    node.mine()
    assert get_json(client, "/blocks/height")["height"] == h + 1
    assert get_json(client, "/transactions/info/" + t["id"])["height"] == h
    assert get_json(client, "/blocks/headers/last")["transactionCount"] == 0


def test_rollback_removes_transactions_and_restores_balances(client, node):
    """rollback drops the blocks' transactions and their effects; to_utx puts them back in the pool."""
    bob = BOB.address(CHAIN)
    node.mine()
    t1 = node.transfer(ALICE, bob, 100)
    node.mine()
    t2 = node.transfer(ALICE, bob, 200)
    assert node.balance(bob) == 300
    h = node.height
    assert node.rollback(1) == [t2["id"]]
    assert get_json(client, "/blocks/height")["height"] == h - 1
    assert [t["id"] for t in by_address(client, bob, 10)] == [t1["id"]]
    assert get_json(client, "/addresses/balance/" + bob)["balance"] == 100
    assert get_json(client, "/transactions/info/" + t2["id"], 404)["error"] == 311
    node.rollback(1, to_utx=True)
    assert by_address(client, bob, 10) == [] and node.balance(bob) == 0
    assert [t["id"] for t in get_json(client, "/transactions/unconfirmed")] == [t1["id"]]
    node.include_utx()
    assert by_address(client, bob, 10)[0]["height"] == node.height


def test_unknown_after_waves_returns_newest_stored_again(client, node):
    """Waves: after a vanished id the newest sealed transactions come again, the liquid block skipped."""
    bob = BOB.address(CHAIN)
    old = node.transfer(ALICE, bob, 1)
    node.mine()
    gone = node.transfer(ALICE, bob, 2)
    node.rollback(1)
    node.mine()
    liquid = node.transfer(ALICE, bob, 3)
    assert [t["id"] for t in by_address(client, bob, 10)] == [liquid["id"], old["id"]]
    assert [t["id"] for t in by_address(client, bob, 10, gone["id"])] == [old["id"]]


def test_unknown_after_zbs_is_error_199(client):
    """after_unknown="zbs": a vanished id answers 400 error 199."""
    with FakeNode(CHAIN, after_unknown="zbs") as node, httpx.Client(base_url=node.url) as c:
        gone = iotlight.b58encode(b"\x05" * 32)
        body = get_json(c, "/transactions/address/%s/limit/10?after=%s" % (BOB.address(CHAIN), gone), 400)
        assert body == {"error": 199, "message": "Transaction %s does not exist" % gone}


# --- broadcast ---------------------------------------------------------------------


def data_tx(k: iotlight.KeyPair = ALICE, ts: int = None, version: int = 1, **kw: Any) -> Dict[str, Any]:
    """A Data transaction as the daemon sends it (v1, built by iotlight); v2 built by the reference."""
    entries = [
        {"key": "joystick", "type": "string", "value": "pressed"},
        {"key": "event_ts", "type": "integer", "value": 1700000000123},
    ]
    ts = ts or int(time.time() * 1000)
    if version == 1:  # the daemon's builder makes Data v1 only
        return iotlight.build_data_tx(k, entries, timestamp=ts, chain_id=CHAIN, **kw)
    return reference.build_data_tx(k, entries, timestamp=ts, chain_id=CHAIN, version=version, **kw)


@pytest.mark.parametrize("version", [1, 2])
def test_broadcast_accepts_data_tx_built_by_iotlight(client, node, version):
    """A Data tx from iotlight (v1; v2 from the reference) is echoed with the node fields and lands in
    /addresses/data."""
    tx = data_tx(version=version)
    r = broadcast(client, tx)
    assert r.status_code == 200, r.text
    echoed = r.json()
    assert echoed["id"] == tx["id"] and echoed["sender"] == ALICE.address(CHAIN)
    assert "height" not in echoed
    assert node.data_entries(ALICE.address(CHAIN))["joystick"]["value"] == "pressed"
    assert get_json(client, "/transactions/info/" + tx["id"])["applicationStatus"] == "succeeded"
    assert node.broadcasts[-1].status == 200 and node.broadcasts[-1].body["id"] == tx["id"]


def test_broadcast_rejects_tampered_signature(client, node):
    """A changed value under the old proof is error 112 'Proof doesn't validate as signature'."""
    tx = data_tx()
    tx["data"][1]["value"] += 1
    r = broadcast(client, tx)
    body = r.json()
    assert r.status_code == 400 and body["error"] == 112
    assert body["message"].startswith("State check failed. Reason: Proof doesn't validate as signature for {")
    assert body["transaction"]["id"] == iotlight.tx_id(tx) != tx["id"]


def test_broadcast_rejects_low_fee(client, node):
    """A fee under the minimum is error 112 with the node's fee text."""
    t = node.make_transfer(ALICE, BOB.address(CHAIN), 10, fee=1)
    body = broadcast(client, t).json()
    assert body["message"] == (
        "State check failed. Reason: Fee for TransferTransaction (1 in WAVES) does not "
        "exceed minimal value of 100000 WAVES."
    )
    assert body["error"] == 112 and list(body) == ["error", "message", "transaction"]


def test_broadcast_timestamp_window_follows_the_node_clock(client):
    """A transaction aged past 120 min (or 90 min ahead) is error 303."""
    clock = {"now": 1_800_000_000_000}
    with FakeNode(CHAIN, now_ms=lambda: clock["now"]) as node, httpx.Client(base_url=node.url) as c:
        node.fund(ALICE.address(CHAIN), waves=10**9)
        tx = data_tx(ts=clock["now"])
        clock["now"] += 120 * 60 * 1000 + 1
        r = broadcast(c, tx)
        assert r.status_code == 400
        assert r.json() == {
            "error": 303,
            "message": "Transaction timestamp %d is more than 7200000ms in the past "
            "relative to previous block timestamp %d" % (tx["timestamp"], clock["now"]),
        }
        future = data_tx(ts=clock["now"] + 90 * 60 * 1000 + 1)
        assert broadcast(c, future).json()["error"] == 303
        assert broadcast(c, data_tx(ts=clock["now"] - 60_000)).status_code == 200


def test_broadcast_rejects_wrong_chain_and_bad_json(client, node):
    """chainId of another network is error 404; unparsable or incomplete JSON is error 1."""
    tx = data_tx()
    tx["chainId"] = 87
    assert broadcast(client, tx).json() == {
        "error": 404,
        "message": "Wrong chain-id. Expected - 84, provided - 87",
    }
    bad = broadcast(client, b'{"type": 12,')
    assert bad.status_code == 400 and bad.json()["error"] == 1
    assert list(bad.json()) == ["error", "message", "cause", "validationErrors"]
    tx = data_tx()
    del tx["fee"]
    missing = broadcast(client, tx).json()
    assert missing == example("transactions_broadcast.json")["errors_waves_1x"][-1]["body"]


def test_broadcast_balance_errors(client, node, asset):
    """Not enough funds: 'Attempt to transfer unavailable funds' or 'Accounts balance errors'."""
    poor = CAROL.address(CHAIN)
    node.fund(poor, waves=99_999)
    t = node.make_transfer(CAROL, BOB.address(CHAIN), 2)
    body = broadcast(client, t).json()
    assert body["message"] == (
        "State check failed. Reason: Attempt to transfer unavailable funds: Transaction "
        "application leads to negative waves balance to (at least) temporary negative state, "
        "current balance equals 99999, spends equals -100002, result is -3"
    )
    body = broadcast(client, data_tx(CAROL)).json()
    assert list(body) == ["details", "error", "message", "transaction"]
    assert body["details"] == {poor: "negative waves balance: %s, old: 99999, new: -1" % poor}
    with pytest.raises(FakeNodeError) as e:
        node.transfer(BOB, poor, 1, asset_id=asset)
    assert "negative asset '%s'" % asset in e.value.body["message"]


def test_duplicate_broadcast(client):
    """Re-posting a UTX transaction is 200 again; once in a block it is 'already in the state'."""
    with FakeNode(CHAIN, auto_include=False) as node, httpx.Client(base_url=node.url) as c:
        node.fund(ALICE.address(CHAIN), waves=10**9)
        tx = data_tx()
        assert broadcast(c, tx).status_code == 200
        assert broadcast(c, tx).status_code == 200
        assert len(node.unconfirmed()) == 1
        node.include_utx()
        r = broadcast(c, tx)
        assert r.status_code == 400
        assert r.json()["message"] == (
            "State check failed. Reason: Transaction %s is already in the state on a "
            "height of %d" % (tx["id"], node.height)
        )


def test_failed_transfer_has_failed_status(client, node):
    """failed_transfer is included with script_execution_failed; only the fee moves."""
    scripted = node.issue_asset(ALICE, "Smart-Light", 2, 1000, scripted=True)
    t = node.failed_transfer(ALICE, BOB.address(CHAIN), 10, scripted)
    info = get_json(client, "/transactions/info/" + t["id"])
    assert info["applicationStatus"] == "script_execution_failed" and info["fee"] == 500_000
    assert node.balance(BOB.address(CHAIN), scripted) == 0
    assert get_json(client, "/assets/details/" + scripted)["scripted"] is True


def test_zbs_fork_accepts_only_legacy_versions(client):
    """fork="0bs": Data v2 is refused, v1 accepted, served without applicationStatus/chainId."""
    with FakeNode(CHAIN, fork="0bs") as node, httpx.Client(base_url=node.url) as c:
        node.fund(ALICE.address(CHAIN), waves=10**9)
        v2 = reference.build_data_tx(
            ALICE,
            [{"key": "k", "type": "integer", "value": 1}],
            timestamp=int(time.time() * 1000),
            chain_id=CHAIN,
            version=2,
            rules="waves",
        )
        assert broadcast(c, v2).status_code == 400
        v1 = data_tx(fee=0, rules="0bs")
        r = broadcast(c, v1)
        assert r.status_code == 200, r.text
        info = get_json(c, "/transactions/info/" + v1["id"])
        assert list(info)[:7] == ["type", "id", "sender", "senderPublicKey", "fee", "timestamp", "proofs"]
        assert "applicationStatus" not in info and "chainId" not in info and info["height"] == node.height
        assert c.get("/transactions/status?id=" + v1["id"]).status_code == 404
        low = node.make_transfer(ALICE, BOB.address(CHAIN), 1, fee=100_000)
        assert "tx" in broadcast(c, low).json()


# --- faults, restart, limits ----------------------------------------------------------


def test_fault_500_503_429_count_and_paths(client, node):
    """500/503/429 answer like nginx or the slow-request handler, for count requests on matching paths."""
    node.fail("503", count=1, paths=["/blocks/height"])
    assert client.get("/utils/time").status_code == 200
    r = client.get("/blocks/height")
    assert r.status_code == 503 and r.text.startswith("The server was not able to produce a timely response")
    assert client.get("/blocks/height").status_code == 200
    node.fail("500", count=2)
    assert [client.get("/blocks/height").status_code for _ in range(3)] == [500, 500, 200]
    node.fail("429", retry_after=7)
    r = client.get("/blocks/height")
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    node.clear_faults()
    assert client.get("/blocks/height").status_code == 200


class _NodeTime:
    """The time module as the fake node reads it, its monotonic() from a VirtualClock."""

    def __init__(self, clock: VirtualClock):
        self.clock = clock

    def monotonic(self) -> float:
        return self.clock.monotonic()

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def test_fault_duration_expires(client, node, monkeypatch):
    """A fault with a duration holds for that many seconds of the node's monotonic clock, then stops by
    itself (virtual seconds: nothing is waited for)."""
    clock = VirtualClock()
    try:
        monkeypatch.setattr(fakenode, "time", _NodeTime(clock))
        node.fail("500", duration=2.0)
        assert client.get("/blocks/height").status_code == 500
        clock.advance(1.9)
        assert client.get("/blocks/height").status_code == 500
        clock.advance(0.1)
        assert client.get("/blocks/height").status_code == 200
        assert client.get("/blocks/height").status_code == 200
    finally:
        clock.loop.close()


def test_fault_garbage_and_truncated(client, node):
    """garbage is a 200 that is not JSON; truncated cuts the body in half and closes."""
    node.fail("garbage", count=1)
    r = client.get("/blocks/height")
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        r.json()
    node.fail("truncated", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/blocks/height")
    assert client.get("/blocks/height").json() == {"height": node.height}


def test_fault_reset_and_hang(client, node):
    """reset drops the connection; hang outlasts the client's timeout."""
    node.fail("reset", count=1)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.get("/blocks/height")
    node.fail("hang", count=1, hang_seconds=5)
    with pytest.raises(httpx.ReadTimeout):
        client.get("/blocks/height", timeout=0.25)
    assert client.get("/blocks/height").status_code == 200


def test_restart_keeps_state_and_port(node):
    """restart() stops (connections refused) and starts on the same port with the chain intact."""
    t = node.transfer(ALICE, BOB.address(CHAIN), 100)
    url = node.url
    node.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/blocks/height", timeout=2)
    node.start()
    assert node.url == url
    assert httpx.get(url + "/transactions/info/" + t["id"], timeout=5).json()["id"] == t["id"]
    node.restart()
    assert httpx.get(url + "/addresses/balance/" + BOB.address(CHAIN), timeout=5).json()["balance"] == 100


@pytest.mark.parametrize("shared", [True, False])
def test_pool_shared_zone_puts_every_20_per_second_route_in_one_bucket(shared):
    """Pool(shared_zone=True): info, height, heavy and default requests share one limit_req bucket
    (burst 50: the 52nd at one instant is refused), while the default Pool gives each route its own;
    the other routes keep theirs either way, and caches stay per route."""
    assert SHARED_ZONE_ROUTES == {"info", "height", "heavy", "default"}
    paths = ["/transactions/info/x", "/blocks/height", "/alias/by-alias/abcd", "/utils/time"]
    now = [0.0]
    pool = Pool(shared_zone=shared, nodelay=True, clock=lambda: now[0])
    verdicts = []
    for i in range(52):
        verdicts.append(pool.admit(paths[i % 4])[0])
        pool.leave(paths[i % 4])
    assert verdicts == ["ok"] * 51 + (["429"] if shared else ["ok"])
    assert pool.refused() == ({"default": 1} if shared else {})
    assert pool.admit("/addresses/balance/3M")[0] == "ok", "100 r/s: a zone of its own"
    assert pool.admit("/transactions/address/3M/limit/1")[0] == "ok", "17 r/min: a zone of its own"
    now[0] += 1.0  # 20 r/s drain the bucket below its burst again
    assert pool.admit("/blocks/height")[0] == "ok"
    pool.keep("/blocks/height", "/blocks/height", 200, b"{}", "application/json")
    assert pool.cached("/blocks/height", "/blocks/height") is not None
    assert pool.cached("/utils/time", "/utils/time") is None


def test_rate_limit_on_address_listing(client, node):
    """With the pool's limit on, the 18th listing within a minute is 429; other paths pass."""
    node.set_rate_limit(r"^/transactions/address/", 17, 60)
    path = "/transactions/address/%s/limit/1" % BOB.address(CHAIN)
    codes = [client.get(path).status_code for _ in range(18)]
    assert codes == [200] * 17 + [429]
    assert client.get("/blocks/height").status_code == 200
    assert [r.path for r in node.requests].count(path) == 18


def test_requests_are_recorded(client, node):
    """requests lists method, path, query and time of each call."""
    client.get("/blocks/height?x=1")
    req = node.requests[-1]
    assert (req.method, req.path, req.query) == ("GET", "/blocks/height", "x=1") and req.time > 0


# --- a broken or hostile network ------------------------------------------------------------


def ids(items: List[Dict[str, Any]]) -> List[str]:
    return [t["id"] for t in items]


def test_withhold_hides_a_confirmed_transaction_but_not_its_balance(client, node, asset):
    """A withheld transaction is missing from the address pages, /blocks/at, /blocks/last, info (404
    311) and status (not_found), an ?after= of it reads like an unknown id, balances still count it;
    release() shows it again at its own height and position."""
    alice, bob = ALICE.address(CHAIN), BOB.address(CHAIN)
    before = node.transfer(ALICE, bob, 5, asset_id=asset)
    node.mine()
    t = node.transfer(ALICE, bob, 7, asset_id=asset)
    same_block = node.transfer(ALICE, bob, 8, asset_id=asset)
    node.mine()
    newest = node.transfer(ALICE, bob, 9, asset_id=asset)
    h = t["height"]
    shown = {
        "bob": by_address(client, bob, 10),
        "alice": by_address(client, alice, 10),
        "block": get_json(client, "/blocks/at/%d" % h),
        "header": get_json(client, "/blocks/headers/at/%d" % h),
    }
    alice_waves = get_json(client, "/addresses/balance/" + alice)
    node.withhold(t["id"])
    assert ids(by_address(client, bob, 10)) == [newest["id"], same_block["id"], before["id"]]
    assert t["id"] not in ids(by_address(client, alice, 10))
    block = get_json(client, "/blocks/at/%d" % h)
    assert ids(block["transactions"]) == [same_block["id"]]
    assert block["transactionCount"] == 2 and get_json(client, "/blocks/headers/at/%d" % h) == shown["header"]
    node.withhold(newest["id"])
    assert get_json(client, "/blocks/last")["transactions"] == []
    node.release(newest["id"])
    missing = get_json(client, "/transactions/info/" + t["id"], 404)
    assert missing == example("transactions_info.json")["error_not_found_waves"]["body"]
    assert get_json(client, "/transactions/status?id=" + t["id"]) == [{"status": "not_found", "id": t["id"]}]
    unknown = iotlight.b58encode(b"\x09" * 32)
    assert by_address(client, bob, 10, t["id"]) == by_address(client, bob, 10, unknown)
    assert get_json(client, "/assets/balance/%s/%s" % (bob, asset))["balance"] == 5 + 7 + 8 + 9
    assert get_json(client, "/addresses/balance/" + alice) == alice_waves
    node.release(t["id"])
    assert by_address(client, bob, 10) == shown["bob"] and by_address(client, alice, 10) == shown["alice"]
    assert get_json(client, "/blocks/at/%d" % h) == shown["block"]
    assert get_json(client, "/transactions/info/" + t["id"])["height"] == h
    node.withhold(t["id"])
    node.clear_faults()
    assert get_json(client, "/transactions/status?id=" + t["id"])[0]["status"] == "confirmed"
    with pytest.raises(ValueError):
        node.withhold(unknown)


def test_flood_tops_every_first_page_with_fresh_made_up_transfers(client, node, asset):
    """flood(): each first-page read brings per_read new made-up transfers of the asset to the address
    (new ids, proofs that sign nothing, current height, the real transfer's fields) on top, within
    the limit; later pages, other addresses and the chain state are untouched; flooded counts them."""
    bob = BOB.address(CHAIN)
    real = node.transfer(ALICE, bob, 5, asset_id=asset)
    node.mine()
    node.flood(bob, 3, asset_id=asset)
    first, second = by_address(client, bob, 10), by_address(client, bob, 10)
    assert ids(first)[3:] == ids(second)[3:] == [real["id"]]
    spam = first[:3] + second[:3]
    assert len(set(ids(spam))) == 6 and node.flooded == 6
    for item in spam:
        assert list(item) == list(first[3])
        assert (item["recipient"], item["assetId"], item["amount"]) == (bob, asset, 1)
        assert item["height"] == node.height and item["applicationStatus"] == "succeeded"
        assert not reference.verify_tx(item) and reference.tx_id(item) != item["id"]
        assert get_json(client, "/transactions/info/" + item["id"], 404)["error"] == 311
    assert [t["timestamp"] for t in first[:3]] == sorted((t["timestamp"] for t in first[:3]), reverse=True)
    assert len(by_address(client, bob, 2)) == 2 and node.flooded == 8
    assert by_address(client, bob, 10, real["id"]) == []
    assert ids(by_address(client, CAROL.address(CHAIN), 10)) == []
    assert get_json(client, "/assets/balance/%s/%s" % (bob, asset))["balance"] == 5
    assert node.all_transactions()[-1]["id"] == real["id"]
    node.flood(bob, 0)
    assert ids(by_address(client, bob, 10)) == [real["id"]]
    node.flood(bob, 1, asset_id=asset, amount=300)
    assert by_address(client, bob, 10)[0]["amount"] == 300
    node.clear_faults()
    assert ids(by_address(client, bob, 10)) == [real["id"]] and node.flooded == 9


def test_pad_keeps_the_answer_and_adds_megabytes_of_empty_objects_gzipped_on_the_wire(client, node, asset):
    """pad(): the answer stays the right object plus "padding": [{}, ...] (2.8 million: over 8 MiB
    inflated, a few KB gzipped for a client asking for gzip, the whole body for one that does not);
    a list answer carries it in its first object; errors and other paths are not padded."""
    n = 2_800_000
    dense = b',"padding":[' + b"{}," * (n - 1) + b"{}]}"
    header = get_json(client, "/blocks/headers/last")
    node.pad("^/blocks/headers/last$", n, count=2)
    r = client.get("/blocks/headers/last")
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert int(r.headers["content-length"]) < 64 * 1024 < 8 * 1024 * 1024 < len(r.content)
    assert r.content.endswith(dense) and json.loads(r.content[: -len(dense)] + b"}") == header
    plain = client.get("/blocks/headers/last", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == r.content
    assert int(plain.headers["content-length"]) == len(plain.content)
    assert get_json(client, "/blocks/headers/last") == header, "count=2: the third answer is plain"
    bob = BOB.address(CHAIN)
    node.transfer(ALICE, bob, 5, asset_id=asset)
    node.transfer(ALICE, bob, 6, asset_id=asset)
    listing = by_address(client, bob, 10)
    node.pad(r"^/transactions/(address|info)/", 3)
    padded = by_address(client, bob, 10)
    assert padded[0].pop("padding") == [{}, {}, {}] and padded == listing
    assert by_address(client, CAROL.address(CHAIN), 10) == []
    unknown = get_json(client, "/transactions/info/" + iotlight.b58encode(b"\x09" * 32), 404)
    assert "padding" not in unknown
    assert "padding" not in get_json(client, "/blocks/height")
    node.clear_faults()
    assert by_address(client, bob, 10) == listing


def test_pad_behind_the_pool_is_cached_plain_and_gzipped_on_the_way_out():
    """Behind the pool a padded answer is cached as the node wrote it; a cache hit is gzipped too."""
    with FakeNode(CHAIN, pool=Pool(nodelay=True)) as node, httpx.Client(base_url=node.url) as c:
        node.pad("/blocks/headers/last", 10_000, count=1)
        first, cached = c.get("/blocks/headers/last"), c.get("/blocks/headers/last")
        assert node.pool.counts[("default", "cached")] == 1
        assert first.headers["content-encoding"] == cached.headers["content-encoding"] == "gzip"
        assert len(cached.json()["padding"]) == 10_000 and cached.content == first.content


def test_glitch_aliases_answers_empty_then_the_truth(client, node):
    """glitch_aliases(n): the next n /alias/by-address reads answer [] (a bad address is still 400),
    then the aliases again; clear_faults() ends it early."""
    bob = BOB.address(CHAIN)
    node.add_alias(bob, "bobs-lamp")
    node.glitch_aliases(2)
    assert get_json(client, "/alias/by-address/3Nbad", 400) == {"error": 102, "message": "invalid address"}
    reads = [get_json(client, "/alias/by-address/" + bob) for _ in range(3)]
    assert reads == [[], [], ["alias:T:bobs-lamp"]]
    assert get_json(client, "/alias/by-alias/bobs-lamp") == {"address": bob}
    node.glitch_aliases(5)
    node.clear_faults()
    assert get_json(client, "/alias/by-address/" + bob) == ["alias:T:bobs-lamp"]


def test_a_node_of_another_network():
    """A FakeNode("W") is a mainnet node to a testnet client: a W block generator, T addresses
    refused with error 102, a T transaction's chainId with the node's 400 error 404 text."""
    t_chain = FakeNode(CHAIN)  # never started: only signs T transactions
    with FakeNode("W") as node, httpx.Client(base_url=node.url) as c:
        generator = get_json(c, "/blocks/headers/last")["generator"]
        reference.parse_address(generator, "W")
        with pytest.raises(reference.Invalid):
            reference.parse_address(generator, CHAIN)
        wrong_chain = {"error": 404, "message": "Wrong chain-id. Expected - 87, provided - 84"}
        v3 = t_chain.make_transfer(ALICE, BOB.address(CHAIN), 1, version=3)
        r = broadcast(c, v3)
        assert r.status_code == 400 and r.json() == wrong_chain
        assert broadcast(c, data_tx(version=2)).json() == wrong_chain
        invalid = {"error": 102, "message": "invalid address"}
        legacy = t_chain.make_transfer(ALICE, BOB.address(CHAIN), 1)  # v2: no chain byte in its body ...
        del legacy["chainId"]  # ... nor in its JSON: the T recipient is what the node refuses
        assert broadcast(c, legacy).json() == invalid
        for path in ("/addresses/balance/%s", "/transactions/address/%s/limit/10", "/alias/by-address/%s"):
            assert get_json(c, path % ALICE.address(CHAIN), 400) == invalid
        assert node.broadcasts and all(b.status == 400 for b in node.broadcasts)


@pytest.mark.process
def test_standalone_demo_prints_treasury_and_asset(tmp_path):
    """The standalone node (`python tests/tools/fakenode.py --demo`, a process) starts, issues the demo
    token and serves it."""
    import subprocess
    import sys

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).parent / "tools" / "fakenode.py"),
            "--port",
            str(port),
            "--chain",
            "T",
            "--demo",
            "--block-interval",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 60
        while not any(line.startswith("fake waves node") for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None
            lines.append(proc.stdout.readline())
        asset = next(line.split(": ")[1].strip() for line in lines if line.startswith("demo asset id"))
        r = httpx.get("http://127.0.0.1:%d/assets/details/%s" % (port, asset), timeout=10)
        assert r.json()["name"] == "IoT-Light" and r.json()["decimals"] == 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)
