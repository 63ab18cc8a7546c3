"""Transaction builders, fees and Data entry limits.

The builders must reproduce the library vectors when given the recorded Z, sign
with fresh randomness otherwise (the body and id rebuilt by tests/reference.py, the
proof checked with iotlight.verify and with plain libsodium per waves-protocol.md 4.2),
and refuse, with a clear EncodingError, anything a node would reject, never returning
a transaction for it. iotlight sends Data v1 (Data v2 is the reference's: test_reference.py).
"""

from __future__ import annotations

import base64
import json

import pytest
import reference
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import iotlight

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BIG = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ACCOUNTS = {v["name"]: v for v in reference.load_vectors("accounts.json")["vectors"]}
TRANSFERS = reference.load_vectors("transfers.json")
DATA = reference.load_vectors("data.json")["vectors"]

KEYS = iotlight.keypair_from_seed(ACCOUNTS["docs-example-15-words"]["seed"])
KEYS_0BS = iotlight.keypair_from_seed(ACCOUNTS["0bs-docs-example"]["seed"])
RECIPIENT_T = "3MqmzT5yx13napicjXpbkDupdWmRwmX37oL"
ASSET_T = TRANSFERS["token"]["asset_id_T"]
TS = 1_700_000_000_000
UNIT = 100_000


def _keys_of(vec) -> iotlight.KeyPair:
    return iotlight.keypair_from_seed(ACCOUNTS[vec["library_call"]["seed"]]["seed"])


def assert_signed_by(tx: dict, keys: iotlight.KeyPair) -> None:
    """tx carries one proof by keys over its body: the reference rebuilds body and id from the JSON
    (also after a JSON round trip); iotlight, libsodium (4.2) and the reference accept the proof."""
    assert tx["senderPublicKey"] == iotlight.b58encode(keys.public_key)
    body = reference.tx_body_bytes(tx)
    assert tx["id"] == reference.b58encode(reference.blake2b256(body))
    assert len(tx["proofs"]) == 1
    sig = iotlight.b58decode(tx["proofs"][0])
    assert iotlight.verify(keys.public_key, body, sig) is True
    assert reference.nacl_verify(keys.public_key, body, sig) is True
    assert reference.verify_tx(tx) is True
    wire = json.loads(json.dumps(tx))
    assert reference.verify_tx(wire) is True and reference.tx_id(wire) == tx["id"]


# --- builders reproduce the vectors ---------------------------------------------------------


DATA_V1 = [v for v in DATA if v["version"] == 1]


@pytest.mark.parametrize("vec", DATA_V1, ids=[v["name"] for v in DATA_V1])
def test_build_data_tx_reproduces_vector(vec):
    """build_data_tx (Data v1, the only version iotlight sends) with the recorded Z and automatic fee gives
    the vector's body, fee, proof, id and wire form."""
    tx_json = vec["tx_json"]
    rules = "0bs" if vec["chain"] == "Z" else "waves"
    tx = iotlight.build_data_tx(
        _keys_of(vec),
        tx_json["data"],
        timestamp=tx_json["timestamp"],
        chain_id=vec["chain"],
        rules=rules,
        random_z=bytes.fromhex(vec["signature_random_Z_hex"]),
    )
    assert tx["version"] == vec["version"] == 1
    assert tx["fee"] == tx_json["fee"]
    assert iotlight.tx_body_bytes(tx).hex() == vec["body_bytes_hex"]
    assert tx["proofs"] == tx_json["proofs"]
    assert tx["id"] == vec["id"]
    assert iotlight.tx_signed_bytes(tx).hex() == vec["signed_bytes_hex"]


V2_TRANSFERS = [v for v in TRANSFERS["transfers"] if v["version"] == 2]


@pytest.mark.parametrize("vec", V2_TRANSFERS, ids=[v["name"] for v in V2_TRANSFERS])
def test_build_transfer_tx_reproduces_vector(vec):
    """build_transfer_tx (Transfer v2) with the recorded Z gives the vector's proof and id."""
    j = vec["tx_json"]
    tx = iotlight.build_transfer_tx(
        _keys_of(vec),
        recipient=j["recipient"],
        amount=j["amount"],
        asset_id=j["assetId"],
        timestamp=j["timestamp"],
        chain_id=vec["chain"],
        fee=j["fee"],
        attachment=iotlight.b58decode(j["attachment"]),
        fee_asset_id=j["feeAssetId"],
        random_z=bytes.fromhex(vec["signature_random_Z_hex"]),
    )
    assert iotlight.tx_body_bytes(tx).hex() == vec["body_bytes_hex"]
    assert tx["proofs"] == j["proofs"] and tx["id"] == vec["id"]
    assert iotlight.tx_signed_bytes(tx).hex() == vec["signed_bytes_hex"]


V2_ISSUES = [v for v in TRANSFERS["issue_transactions"] if v["version"] == 2]


@pytest.mark.parametrize("vec", V2_ISSUES, ids=[v["name"] for v in V2_ISSUES])
def test_build_issue_tx_reproduces_vector(vec):
    """build_issue_tx (Issue v2) with the recorded Z gives the vector's proof and the asset id."""
    j = vec["tx_json"]
    tx = iotlight.build_issue_tx(
        _keys_of(vec),
        name=j["name"],
        description=j["description"],
        quantity=j["quantity"],
        decimals=j["decimals"],
        reissuable=j["reissuable"],
        timestamp=j["timestamp"],
        chain_id=vec["chain"],
        fee=j["fee"],
        random_z=bytes.fromhex(vec["signature_random_Z_hex"]),
    )
    assert iotlight.tx_body_bytes(tx).hex() == vec["body_bytes_hex"]
    assert tx["proofs"] == j["proofs"] and tx["id"] == vec["id"] == vec["asset_id"]


# --- builders with real randomness --------------------------------------------------------------


def test_build_data_tx_random_signature():
    """A Data transaction signed with os.urandom Z verifies both ways and has the broadcast fields."""
    entries = [
        {
            "key": "joystick_1",
            "type": "string",
            "value": '{"direction": "up", "action": "pressed", "ts": 1700000000123}',
        },
        {"key": "joystick_count", "type": "integer", "value": 1},
    ]
    tx = iotlight.build_data_tx(KEYS, entries, timestamp=TS, chain_id="T")
    assert_signed_by(tx, KEYS)
    assert {"type", "version", "senderPublicKey", "fee", "timestamp", "proofs", "data", "chainId"} <= set(tx)
    assert (tx["type"], tx["version"], tx["chainId"], tx["fee"], tx["timestamp"]) == (12, 1, 84, UNIT, TS)
    assert tx["data"] == entries
    again = iotlight.build_data_tx(KEYS, entries, timestamp=TS, chain_id="T")
    assert again["id"] == tx["id"] and again["proofs"] != tx["proofs"]


def test_build_data_tx_explicit_fee_is_kept():
    """A non-zero fee is used as given (data.fee in the configuration)."""
    tx = iotlight.build_data_tx(
        KEYS,
        [{"key": "k", "type": "integer", "value": 1}],
        timestamp=TS,
        chain_id="W",
        fee=777_000,
    )
    assert tx["fee"] == 777_000
    assert_signed_by(tx, KEYS)


def test_build_transfer_tx_random_signature():
    """A token transfer to an address and one to a bare alias name, both signed and verifiable."""
    tx = iotlight.build_transfer_tx(
        KEYS,
        recipient=RECIPIENT_T,
        amount=150,
        asset_id=ASSET_T,
        timestamp=TS,
        chain_id="T",
        fee=iotlight.transfer_fee(),
        attachment="light:on".encode(),
    )
    assert_signed_by(tx, KEYS)
    assert (tx["type"], tx["version"], tx["amount"], tx["assetId"], tx["recipient"]) == (
        4,
        2,
        150,
        ASSET_T,
        RECIPIENT_T,
    )
    assert iotlight.b58decode(tx["attachment"]) == b"light:on"
    to_alias = iotlight.build_transfer_tx(
        KEYS, recipient="iot-light", amount=1, asset_id=None, timestamp=TS, chain_id="T", fee=UNIT
    )
    assert to_alias["recipient"] == "alias:T:iot-light" and to_alias["assetId"] is None
    assert_signed_by(to_alias, KEYS)


def test_build_issue_tx_random_signature():
    """An Issue transaction signed with fresh randomness; its id is the new asset id."""
    tx = iotlight.build_issue_tx(
        KEYS_0BS,
        name="IoT-Light",
        description="light for tokens",
        quantity=10**6,
        decimals=2,
        reissuable=False,
        timestamp=TS,
        chain_id="Z",
        fee=iotlight.issue_fee("0bs"),
    )
    assert_signed_by(tx, KEYS_0BS)
    assert (tx["type"], tx["version"], tx["chainId"], tx["decimals"]) == (3, 2, 90, 2)


@PROPS
@given(
    amount=st.integers(1, iotlight.INT64_MAX),
    attachment=st.binary(max_size=140),
    timestamp=st.integers(0, 2**62),
    chain=st.sampled_from("WTSZ"),
    z=st.binary(min_size=64, max_size=64),
)
def test_build_transfer_tx_property(amount, attachment, timestamp, chain, z):
    """Any valid amount, attachment, time and chain gives a transfer that verifies both ways."""
    recipient = iotlight.address_from_public_key(KEYS_0BS.public_key, chain)
    tx = iotlight.build_transfer_tx(
        KEYS,
        recipient=recipient,
        amount=amount,
        asset_id=ASSET_T,
        timestamp=timestamp,
        chain_id=chain,
        fee=UNIT,
        attachment=attachment,
        random_z=z,
    )
    assert_signed_by(tx, KEYS)
    assert iotlight.b58decode(tx["attachment"]) == attachment


# --- builder input errors ----------------------------------------------------------------------------


def _transfer(**change):
    args = dict(recipient=RECIPIENT_T, amount=1, asset_id=ASSET_T, timestamp=TS, chain_id="T", fee=UNIT)
    args.update(change)
    return iotlight.build_transfer_tx(KEYS, **args)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"amount": 0}, "amount must be a positive integer of the smallest unit, not 0"),
        ({"amount": -5}, "amount must be a positive integer of the smallest unit, not -5"),
        ({"amount": 1.5}, "amount must be a positive integer of the smallest unit, not 1.5"),
        ({"amount": True}, "amount must be a positive integer of the smallest unit, not True"),
        ({"amount": 2**63}, "amount must be a 64-bit integer, not 9223372036854775808"),
        ({"recipient": "3PPbMwqLtwBGcJrTA5whqJfY95GqnNnFMDX"}, "address is for chain 'W', not 'T'"),
        ({"recipient": "alias:W:iot-light"}, "alias is for chain 'W', not 'T'"),
        ({"attachment": b"x" * 141}, "attachment is 141 bytes, more than 140"),
        ({"asset_id": "abc"}, "assetId: an asset id is 32 bytes, not 3"),
        ({"fee": 0}, "fee must be a positive integer of the smallest unit, not 0"),
        ({"fee": -1}, "fee must be a positive integer of the smallest unit, not -1"),
    ],
)
def test_build_transfer_tx_refuses(change, message):
    """Bad amounts, recipients, attachments, asset ids and fees raise EncodingError naming the value."""
    with pytest.raises(iotlight.EncodingError) as info:
        _transfer(**change)
    assert str(info.value) == message


def _issue(**change):
    args = dict(
        name="IoT-Light",
        description="",
        quantity=100,
        decimals=2,
        reissuable=False,
        timestamp=TS,
        chain_id="T",
        fee=iotlight.issue_fee(),
    )
    args.update(change)
    return iotlight.build_issue_tx(KEYS, **args)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"name": "IoT"}, "a token name has 4 to 16 bytes, 'IoT' has 3"),
        ({"name": "IoT-Light-Token-X"}, "a token name has 4 to 16 bytes, 'IoT-Light-Token-X' has 17"),
        ({"name": "Lichtschalter-ää"}, "a token name has 4 to 16 bytes, 'Lichtschalter-ää' has 18"),
        ({"description": "d" * 1001}, "a token description has at most 1000 bytes"),
        ({"decimals": 9}, "decimals must be from 0 to 8, not 9"),
        ({"decimals": -1}, "decimals must be from 0 to 8, not -1"),
        ({"quantity": 0}, "quantity must be a positive 64-bit integer of the smallest unit"),
        ({"quantity": 2**63}, "quantity must be a positive 64-bit integer of the smallest unit"),
        ({"fee": 0}, "fee must be a positive integer of the smallest unit, not 0"),
    ],
)
def test_build_issue_tx_refuses(change, message):
    """Names of 4-16 bytes, descriptions up to 1000 bytes, decimals 0-8, positive quantity and fee."""
    with pytest.raises(iotlight.EncodingError) as info:
        _issue(**change)
    assert str(info.value) == message


def test_build_issue_tx_limits_are_inclusive():
    """4- and 16-byte names, a 1000-byte description, 0 and 8 decimals, int64 max quantity all work."""
    for tx in (
        _issue(name="IoTL"),
        _issue(name="I" * 16),
        _issue(description="d" * 1000),
        _issue(decimals=0),
        _issue(decimals=8),
        _issue(quantity=iotlight.INT64_MAX),
    ):
        assert_signed_by(tx, KEYS)


# --- fees ---------------------------------------------------------------------------------------------


def test_fee_constants():
    """Fee unit 0.001 WAVES; Transfer 1 unit (+0.004 smart asset); Issue 1 WAVES, NFT 0.001; 0bs docs values."""
    assert iotlight.FEE_UNIT == UNIT
    assert iotlight.transfer_fee() == iotlight.transfer_fee("waves") == 100_000
    assert iotlight.transfer_fee(smart_asset=True) == 500_000
    assert iotlight.transfer_fee("0bs") == 5_000_000
    assert iotlight.issue_fee() == 100_000_000 and iotlight.issue_fee(nft=True) == 100_000
    assert iotlight.issue_fee("0bs") == 500 * 10**8


@pytest.mark.parametrize("n", list(range(1, 101)))
def test_mass_transfer_fee(n):
    """Waves: 1 + floor((n+1)/2) units (+0.004 smart asset); 0bs: at least the docs' 0.05 and the Zbs source
    rule. (The reference's: iotlight sends no mass transfers; the fake node charges this.)"""
    node_rule = UNIT * (1 + (n + 1) // 2)
    assert reference.mass_transfer_fee(n) == node_rule
    assert reference.mass_transfer_fee(n, smart_asset=True) == node_rule + 400_000
    zbs = reference.mass_transfer_fee(n, "0bs")
    assert zbs >= 5_000_000 and zbs >= node_rule


def _varint_len(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)


def _string_entries(key: str, size: int):
    return [{"key": key, "type": "string", "value": "v" * size}]


@PROPS
@given(size=st.integers(0, 5000), key=st.text(alphabet="abcdefgh_é", min_size=1, max_size=30))
def test_data_fee_is_the_highest_node_rule(size, key):
    """One string entry: data_fee is the highest of the three Waves rules (8.4), written out by hand here
    (iotlight's for v1, which it sends; the reference's for v1 and v2)."""
    k = len(key.encode())
    payload = k + size  # feature 17: sum of key and value sizes
    v1_body = 2 + 32 + 2 + (2 + k + 1 + 2 + size) + 8 + 8
    entry = 1 + _varint_len(k) + k + 1 + _varint_len(size) + size
    v2_data = 1 + _varint_len(entry) + entry  # DataTransactionData with one DataEntry

    def units(n):
        return 1 + (n - 1) // 1024

    entries = _string_entries(key, size)
    for version, before in ((1, v1_body), (2, v2_data)):
        tx = {
            "type": 12,
            "version": version,
            "senderPublicKey": iotlight.b58encode(KEYS.public_key),
            "fee": 1,
            "timestamp": TS,
            "chainId": 84,
            "data": entries,
        }
        expected = UNIT * max(units(max(payload, 1)), units(before))
        if version == 1:
            assert len(iotlight.tx_body_bytes(tx)) == v1_body
            assert iotlight.data_fee(tx, "waves") == expected
        assert reference.data_fee(tx, "waves") == expected
    v1 = {
        "type": 12,
        "version": 1,
        "senderPublicKey": iotlight.b58encode(KEYS.public_key),
        "fee": 1,
        "timestamp": TS,
        "data": entries,
    }
    assert (
        iotlight.data_fee(v1, "0bs") == reference.data_fee(v1, "0bs") == UNIT * (30 + (v1_body - 1) // 1024)
    )


def test_data_fee_of_small_events():
    """A daemon event costs 0.001 WAVES on Waves and 0.03 ZBS on 0bs."""
    entries = [{"key": "joystick_count", "type": "integer", "value": 1}]
    assert iotlight.build_data_tx(KEYS, entries, timestamp=TS, chain_id="W")["fee"] == 100_000
    assert iotlight.build_data_tx(KEYS, entries, timestamp=TS, chain_id="T")["fee"] == 100_000
    assert (
        iotlight.build_data_tx(KEYS_0BS, entries, timestamp=TS, chain_id="Z", rules="0bs")["fee"] == 3_000_000
    )


# --- Data entries: within the limits ----------------------------------------------------------------


def test_limit_constants():
    """The limits of section 8.4."""
    assert iotlight.DATA_MAX_ENTRIES == 100
    assert iotlight.DATA_MAX_VALUE == 32_767
    assert iotlight.DATA_MAX_PAYLOAD == 165_835
    assert iotlight.DATA_MAX_V1_BYTES == 153_600


KEY_TEXT = st.text(min_size=1, max_size=24)
VALUE = st.one_of(
    st.builds(lambda v: {"type": "integer", "value": v}, st.integers(iotlight.INT64_MIN, iotlight.INT64_MAX)),
    st.builds(lambda v: {"type": "boolean", "value": v}, st.booleans()),
    st.builds(lambda v: {"type": "string", "value": v}, st.text(max_size=200)),
    st.builds(
        lambda v: {"type": "binary", "value": "base64:" + base64.b64encode(v).decode()},
        st.binary(max_size=200),
    ),
)


@st.composite
def entry_lists(draw, *, deletes: bool, max_entries: int = 100):
    keys = draw(st.lists(KEY_TEXT, min_size=1, max_size=max_entries, unique=True))
    out = []
    for key in keys:
        if deletes and draw(st.integers(0, 9)) == 0:
            out.append({"key": key, "value": None})
        else:
            out.append(dict(key=key, **draw(VALUE)))
    return out


@PROPS
@given(entries=entry_lists(deletes=False), chain=st.sampled_from("WTS"))
def test_data_entries_within_limits_build_and_verify(entries, chain):
    """Any entry list within the Waves limits builds, carries its entries unchanged and verifies both ways."""
    tx = iotlight.build_data_tx(KEYS, entries, timestamp=TS, chain_id=chain)
    assert tx["data"] == entries
    assert tx["fee"] == iotlight.data_fee(tx, "waves") >= UNIT
    assert_signed_by(tx, KEYS)


@PROPS
@given(entries=entry_lists(deletes=True))
def test_data_v2_with_deletes_builds_and_verifies(entries):
    """Version 2 (the reference's: iotlight sends v1) also carries delete entries (value null)."""
    tx = reference.build_data_tx(KEYS, entries, timestamp=TS, chain_id="T", version=2)
    assert_signed_by(tx, KEYS)


@PROPS
@given(entries=entry_lists(deletes=False, max_entries=30))
def test_data_entries_0bs_build_and_verify(entries):
    """On 0bs (v1, keys up to 100 characters) the fee is the 30-unit rule and the proof verifies."""
    tx = iotlight.build_data_tx(KEYS_0BS, entries, timestamp=TS, chain_id="Z", rules="0bs")
    assert tx["version"] == 1 and tx["fee"] == iotlight.data_fee(tx, "0bs") >= 3_000_000
    assert_signed_by(tx, KEYS_0BS)


def test_data_limits_are_inclusive():
    """100 entries, a 400-byte key and a 32767-byte value build; exactly 165835 payload bytes pass the entry
    rules (a v1 transaction that big is over its 153600 signed bytes, below)."""
    hundred = [{"key": "k%d" % i, "type": "boolean", "value": True} for i in range(100)]
    assert_signed_by(iotlight.build_data_tx(KEYS, hundred, timestamp=TS, chain_id="T"), KEYS)
    key400 = [{"key": "é" * 200, "type": "integer", "value": 0}]
    assert_signed_by(iotlight.build_data_tx(KEYS, key400, timestamp=TS, chain_id="T"), KEYS)
    value_max = [
        {"key": "k", "type": "binary", "value": "base64:" + base64.b64encode(bytes(32_767)).decode()}
    ]
    assert_signed_by(iotlight.build_data_tx(KEYS, value_max, timestamp=TS, chain_id="T"), KEYS)
    full = [{"key": "k%d" % i, "type": "string", "value": "x" * 32_767} for i in range(5)]
    full.append({"key": "k5", "type": "string", "value": "x" * (165_835 - 5 * (2 + 32_767) - 2)})
    assert iotlight.data_payload_size(full) == 165_835
    iotlight.validate_data_entries(full)


def _v1_entries_of_signed_size(total: int):
    """Five string entries whose v1 wire form (0x00, body, proofs) is `total` bytes, counted by hand."""
    fixed = 1 + 2 + 32 + 2 + 8 + 8 + (1 + 2 + 2 + 64)  # 0x00, type+version, pk, count, ts, fee, proofs
    values = total - fixed - 5 * (2 + 2 + 1 + 2)
    sizes = [32_767] * 4 + [values - 4 * 32_767]
    return [{"key": "k%d" % i, "type": "string", "value": "x" * n} for i, n in enumerate(sizes)]


def test_data_v1_signed_size_limit():
    """Version 1 (and 0bs): 153600 signed bytes build, 153601 are refused."""
    ok = iotlight.build_data_tx(KEYS, _v1_entries_of_signed_size(153_600), timestamp=TS, chain_id="T")
    assert len(iotlight.tx_signed_bytes(ok)) == 153_600
    assert_signed_by(ok, KEYS)
    with pytest.raises(iotlight.EncodingError) as info:
        iotlight.build_data_tx(KEYS, _v1_entries_of_signed_size(153_601), timestamp=TS, chain_id="T")
    assert str(info.value) == "Data transaction is 153601 bytes, more than 153600"


# --- Data entries: over the limits --------------------------------------------------------------------


def _refused(entries, message, *, validate=True, **kw):
    """build_data_tx raises EncodingError with exactly `message` and returns nothing."""
    kw.setdefault("timestamp", TS)
    kw.setdefault("chain_id", "T")
    result = []
    with pytest.raises(iotlight.EncodingError) as info:
        result.append(iotlight.build_data_tx(KEYS, entries, **kw))
    assert result == []
    assert str(info.value) == message
    if validate:  # the entry rules alone (the signed-size rule needs the whole transaction)
        with pytest.raises(iotlight.EncodingError) as alone:
            iotlight.validate_data_entries(entries, rules=kw.get("rules", "waves"))
        assert str(alone.value) == message


@PROPS
@given(n=st.integers(101, 160))
def test_too_many_entries(n):
    """More than 100 entries are refused, saying how many."""
    entries = [{"key": "k%d" % i, "type": "integer", "value": i} for i in range(n)]
    _refused(entries, "a Data transaction holds at most 100 entries, not %d" % n)


@st.composite
def keys_over_400_bytes(draw):
    """Keys of more than 400 UTF-8 bytes: any text, then ASCII, 2-, 3- or 4-byte characters past the limit
    (so some are far fewer than 400 characters)."""
    head = draw(st.text(max_size=120))
    pad = draw(st.sampled_from(["x", "é", "語", "🔑"]))
    need = max(0, (400 - len(head.encode())) // len(pad.encode()) + 1)
    key = head + pad * (need + draw(st.integers(0, 10)))
    assert len(key.encode()) > 400
    return key


@PROPS
@given(key=keys_over_400_bytes())
def test_key_over_400_bytes(key):
    """A key of more than 400 UTF-8 bytes (not characters) is refused."""
    _refused(
        [{"key": key, "type": "boolean", "value": True}], "data key %r is longer than 400 bytes" % key[:40]
    )


@st.composite
def keys_over_100_utf16_units(draw):
    """Keys of more than 100 UTF-16 units but at most 400 UTF-8 bytes: ASCII, accents, CJK and emoji."""
    narrow = draw(st.lists(st.sampled_from("aZ_é語"), max_size=150))
    emoji = draw(st.integers(max(0, (101 - len(narrow) + 1) // 2), 60))
    chars = draw(st.permutations(narrow + ["🔑"] * emoji))
    key = "".join(chars)
    assert len(key.encode("utf-16-le")) // 2 > 100
    assume(len(key.encode()) <= 400)
    return key


@PROPS
@given(key=keys_over_100_utf16_units())
def test_key_over_100_characters_on_0bs(key):
    """0bs counts key length in UTF-16 units (Java chars), at most 100."""
    _refused(
        [{"key": key, "type": "boolean", "value": True}],
        "data key %r is longer than 100 characters (0bs rule)" % key[:40],
        rules="0bs",
        chain_id="Z",
    )


def test_key_of_50_emoji_is_100_characters_on_0bs():
    """An astral character counts twice: 50 emoji are exactly the 0bs limit, 51 are over it."""
    ok = [{"key": "🔑" * 50, "type": "boolean", "value": True}]
    assert_signed_by(iotlight.build_data_tx(KEYS_0BS, ok, timestamp=TS, chain_id="Z", rules="0bs"), KEYS_0BS)
    over = [{"key": "🔑" * 51, "type": "boolean", "value": True}]
    _refused(
        over, "data key %r is longer than 100 characters (0bs rule)" % ("🔑" * 40), rules="0bs", chain_id="Z"
    )


@BIG
@given(
    size=st.integers(32_768, 40_000),
    kind=st.sampled_from(["string", "binary"]),
    multibyte=st.booleans(),
)
def test_value_over_32767_bytes(size, kind, multibyte):
    """A string or binary value over 32767 bytes (UTF-8 bytes for strings) is refused."""
    if kind == "binary":
        value = "base64:" + base64.b64encode(bytes(size)).decode()
    elif multibyte:
        value = "é" * (size // 2) + "x" * (size % 2)  # fewer than 32768 characters, more bytes
    else:
        value = "x" * size
    _refused(
        [{"key": "big", "type": kind, "value": value}],
        "data entry 'big': value is longer than 32767 bytes",
    )


@BIG
@given(extra=st.integers(1, 30_000))
def test_total_over_165835_bytes(extra):
    """Entries each within the value limit but summing to more than 165835 bytes are refused."""
    entries = [{"key": "k%d" % i, "type": "string", "value": "x" * 32_767} for i in range(5)]
    entries.append({"key": "k5", "type": "string", "value": "x" * (165_835 - 5 * 32_769 - 2 + extra)})
    total = 165_835 + extra
    _refused(entries, "data entries total %d bytes, more than 165835" % total)


@BIG
@given(extra=st.integers(1, 5_000), rules=st.sampled_from(["waves", "0bs"]))
def test_v1_over_153600_signed_bytes(extra, rules):
    """Version 1 over 153600 signed bytes is refused on Waves and on 0bs."""
    total = 153_600 + extra
    _refused(
        _v1_entries_of_signed_size(total),
        "Data transaction is %d bytes, more than 153600" % total,
        validate=False,
        rules=rules,
        chain_id="Z" if rules == "0bs" else "T",
    )


@pytest.mark.parametrize(
    "entries, message",
    [
        ([], "a Data transaction needs at least one entry"),
        ([{"key": "", "type": "integer", "value": 1}], "a data entry needs a non-empty string key"),
        ([{"key": 7, "type": "integer", "value": 1}], "a data entry needs a non-empty string key"),
        (
            [{"key": "a", "type": "integer", "value": 1}, {"key": "a", "type": "boolean", "value": True}],
            "data key 'a' appears twice",
        ),
        (
            [{"key": "gone", "value": None}],
            "data entry 'gone': unknown type None (deleting a key needs Data version 2)",
        ),
        (
            [{"key": "n", "type": "integer", "value": 2**63}],
            "data entry 'n' must be a 64-bit integer, not %d" % 2**63,
        ),
        ([{"key": "n", "type": "integer", "value": "5"}], "data entry 'n' must be a 64-bit integer, not '5'"),
        (
            [{"key": "n", "type": "integer", "value": True}],
            "data entry 'n' must be a 64-bit integer, not True",
        ),
        (
            [{"key": "b", "type": "boolean", "value": 1}],
            "data entry 'b': boolean value must be true or false",
        ),
        ([{"key": "s", "type": "string", "value": 5}], "data entry 's': string value must be a string"),
        (
            [{"key": "x", "type": "binary", "value": "base64:!!"}],
            "data entry 'x': binary value is not valid base64",
        ),
        (
            [{"key": "f", "type": "float", "value": 1.5}],
            "data entry 'f': unknown type 'float' (deleting a key needs Data version 2)",
        ),
    ],
)
def test_malformed_entries(entries, message):
    """Empty lists, bad keys, duplicates, deletes (Data v1 has none) and values of the wrong type are
    refused by name."""
    _refused(entries, message)


def test_iotlight_builds_data_version_1_only():
    """iotlight sends Data v1, which Waves and 0bs nodes both take (0bs knows no protobuf
    transactions): build_data_tx has no version to ask for another; Data v2 is the reference's
    (test_reference.py), and the 0bs fake node refuses it (test_fakenode.py)."""
    entries = [{"key": "k", "type": "integer", "value": 1}]
    for keys, chain, rules in ((KEYS_0BS, "Z", "0bs"), (KEYS, "T", "waves")):
        tx = iotlight.build_data_tx(keys, entries, timestamp=TS, chain_id=chain, rules=rules)
        assert tx["version"] == 1
        assert_signed_by(tx, keys)
        with pytest.raises(TypeError, match="version"):
            iotlight.build_data_tx(keys, entries, timestamp=TS, chain_id=chain, rules=rules, version=2)


# --- encoding edges found against the official libraries (issue 11 point 6) ----------------------


@pytest.mark.parametrize(
    "value_size, rules, chain",
    [(2000, "waves", "T"), (2000, "waves", "W"), (10, "waves", "T"), (1500, "0bs", "Z")],
)
def test_explicit_fee_below_the_minimum_for_the_size_is_raised_to_it(value_size, rules, chain):
    """data.fee below the node's minimum for the transaction's size would be signed and refused for ever:
    the transaction is built with the minimum instead (a fee above it is kept, see above)."""
    keys = KEYS_0BS if rules == "0bs" else KEYS
    entries = [{"key": "k", "type": "string", "value": "x" * value_size}]
    auto = iotlight.build_data_tx(keys, entries, timestamp=TS, chain_id=chain, rules=rules)
    low = iotlight.build_data_tx(keys, entries, timestamp=TS, chain_id=chain, rules=rules, fee=UNIT - 1)
    assert low["fee"] == auto["fee"] == iotlight.data_fee(low, rules) >= UNIT
    assert_signed_by(low, keys)


@pytest.mark.parametrize("fee", [-1, 1.5, True, "100000"])
def test_data_fee_of_the_wrong_kind_is_refused(fee):
    """A negative, fractional, boolean or text data fee is refused, naming what a fee must be."""
    with pytest.raises(iotlight.EncodingError, match="fee must be 0"):
        iotlight.build_data_tx(
            KEYS, [{"key": "k", "type": "integer", "value": 1}], timestamp=TS, chain_id="T", fee=fee
        )


@pytest.mark.parametrize(
    "text, raw",
    [
        ("base64:", b""),
        ("base64:AQ==", b"\x01"),
        ("base64:AQI=", b"\x01\x02"),
        ("base64:AQID", b"\x01\x02\x03"),
        ("AQID", b"\x01\x02\x03"),  # the node takes it without the prefix too
        ("base64:AQ", b"\x01"),
        ("base64:AQI", b"\x01\x02"),  # java.util.Base64: a last unit may leave its padding out
        ("base64:AR==", b"\x01"),  # unused low bits are not checked by the node either
    ],
)
def test_binary_values_decode_as_the_node_reads_them(text, raw):
    """Binary Data values are read as the node's decoder (java.util.Base64, basic) reads them."""
    assert iotlight.base64_node_decode(text) == raw
    tx = iotlight.build_data_tx(
        KEYS, [{"key": "b", "type": "binary", "value": text}], timestamp=TS, chain_id="T"
    )
    assert_signed_by(tx, KEYS)
    assert iotlight.data_payload_size(tx["data"]) == 1 + len(raw)


@pytest.mark.parametrize(
    "text",
    [
        "base64:AAAA=",
        "base64:AAAA==",
        "base64:AA=",
        "base64:AAA==",
        "base64:A",
        "base64:A===",
        "base64:=",
        "base64:AA=A",
        "base64:AA==AA==",
        "base64: AAAA",
        "base64:AAAA\n",
        "base64:AA-_",
        "base64:AAAA\u00e9",
    ],
)
def test_binary_values_the_node_refuses_are_refused(text):
    """Stray or partial padding, whitespace, the URL alphabet and a dangling character are refused by the
    node's decoder: never signed."""
    with pytest.raises(iotlight.EncodingError, match="not valid base64"):
        iotlight.base64_node_decode(text)
    _refused(
        [{"key": "x", "type": "binary", "value": text}], "data entry 'x': binary value is not valid base64"
    )


@pytest.mark.parametrize("asset", [None, "", "WAVES"])
def test_native_coin_is_null_in_transfer_json(asset):
    """The chain's own coin is `null` in the JSON the node takes, however it was named."""
    tx = iotlight.build_transfer_tx(
        KEYS,
        recipient=RECIPIENT_T,
        amount=5,
        asset_id=asset,
        timestamp=TS,
        chain_id="T",
        fee=UNIT,
        fee_asset_id=asset,
        random_z=b"\1" * 64,
    )
    assert tx["assetId"] is None and tx["feeAssetId"] is None
    assert json.loads(json.dumps(tx))["assetId"] is None
    assert_signed_by(tx, KEYS)
    plain = iotlight.build_transfer_tx(
        KEYS,
        recipient=RECIPIENT_T,
        amount=5,
        asset_id=None,
        timestamp=TS,
        chain_id="T",
        fee=UNIT,
        random_z=b"\1" * 64,
    )
    assert tx["id"] == plain["id"]


@pytest.mark.parametrize(
    "entries, message",
    [
        (
            [{"key": "k\ud800", "type": "integer", "value": 1}],
            "data key 'k\\ud800' is not valid Unicode (a lone surrogate?)",
        ),
        (
            [{"key": "s", "type": "string", "value": "a\udc00"}],
            "data entry 's': string value is not valid Unicode (a lone surrogate?)",
        ),
    ],
)
def test_lone_surrogates_are_an_encoding_error(entries, message):
    """A key or string value with a lone surrogate has no UTF-8: EncodingError naming it, never signed."""
    _refused(entries, message)


@pytest.mark.parametrize("chain", ["\u20ac", "\u00e9", "\x00", "\x80"])
def test_non_ascii_chain_id_is_an_encoding_error(chain):
    """The node keeps the chain id in one byte: only an ASCII character is one."""
    entries = [{"key": "k", "type": "integer", "value": 1}]
    with pytest.raises(iotlight.EncodingError, match="chain id must be an ASCII character"):
        iotlight.build_data_tx(KEYS, entries, timestamp=TS, chain_id=chain)
    with pytest.raises(iotlight.EncodingError):
        iotlight.build_transfer_tx(
            KEYS,
            recipient="alias:%s:light" % chain,
            amount=1,
            asset_id=None,
            timestamp=TS,
            chain_id=chain,
            fee=UNIT,
        )


@pytest.mark.parametrize("chain_id", [0, 128, 300, -1])
def test_chain_id_number_outside_ascii_is_an_encoding_error(chain_id):
    """A JSON chainId that is not the byte of an ASCII character makes no body: EncodingError."""
    tx = _transfer()
    with pytest.raises(iotlight.EncodingError, match="chainId must be the byte of one ASCII character"):
        iotlight.tx_body_bytes(dict(tx, chainId=chain_id))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"decimals": True}, "decimals must be from 0 to 8, not True"),
        ({"decimals": 2.0}, "decimals must be from 0 to 8, not 2.0"),
        ({"name": "Light\ud800"}, "the token name is not valid Unicode (a lone surrogate?)"),
        ({"description": "\udfff"}, "the token description is not valid Unicode (a lone surrogate?)"),
    ],
)
def test_build_issue_tx_refuses_bools_and_surrogates(change, message):
    """bool is no int here, and a lone surrogate has no UTF-8: EncodingError, never another type."""
    args = dict(
        name="IoTLight",
        description="",
        quantity=10**6,
        decimals=2,
        reissuable=False,
        timestamp=TS,
        chain_id="T",
        fee=iotlight.issue_fee(),
    )
    args.update(change)
    with pytest.raises(iotlight.EncodingError) as info:
        iotlight.build_issue_tx(KEYS, **args)
    assert type(info.value) is iotlight.EncodingError and str(info.value) == message


@pytest.mark.parametrize("change", [{"recipient": None}, {"recipient": 7}, {"attachment": "light:on"}])
def test_build_transfer_tx_refuses_wrong_kinds_with_an_encoding_error(change):
    """A recipient that is no string, an attachment that is no bytes: EncodingError, not AttributeError."""
    args = dict(recipient=RECIPIENT_T, amount=5, asset_id=ASSET_T, timestamp=TS, chain_id="T", fee=UNIT)
    args.update(change)
    with pytest.raises(iotlight.EncodingError):
        iotlight.build_transfer_tx(KEYS, **args)


# --- edges found by a differential fuzz (issue item 8) -----------------------------------------------
#
# (a) aliases are read by position, so a payment to alias:::<name> on a chain whose id is ':' has the
# bytes its sender signed (the old split-on-':' reader refused it); (b) a proof whose S is not reduced
# (S + L < 2^253) is one the node accepts, so the transfer is a real payment and is credited.

ED25519_L = 2**252 + 27742317777372353535851937790883648493
PAYER = reference.keys_from_seed("item 8 payer (a throwaway key)")
LAMP = iotlight.keypair_from_seed("item 8 lamp (a throwaway key)")
HEIGHT = 1000


def _as_listed(tx: dict, chain: str) -> dict:
    """tx as a node lists it: its sender's address on `chain`, a height, applicationStatus."""
    sender = reference.address(reference.b58decode(tx["senderPublicKey"]), chain)
    return dict(tx, sender=sender, height=HEIGHT - 5, applicationStatus="succeeded")


def _lamp_rules(chain: str, *mine: str) -> iotlight.Rules:
    return iotlight.Rules(
        asset_id=ASSET_T, chain_id=chain, mine=frozenset(mine), decimals=2, seconds_per_token=60.0
    )


def _payment_on_t(kind: str) -> dict:
    """A payment of 2.50 tokens to alias:T:iot-light (with 0.05 to alias:T:other-lamp in a mass transfer)."""
    head = {"senderPublicKey": reference.b58encode(PAYER.public_key), "timestamp": TS, "chainId": 84}
    head.update(assetId=ASSET_T, attachment="")
    if kind.startswith("transfer"):
        version = int(kind[-1])
        return dict(
            head,
            type=4,
            version=version,
            recipient="alias:T:iot-light",
            amount=250,
            fee=UNIT,
            feeAssetId=None,
        )
    items = [
        {"recipient": "alias:T:iot-light", "amount": 250},
        {"recipient": "alias:T:other-lamp", "amount": 5},
    ]
    return dict(head, type=11, version=int(kind[-1]), transfers=items, fee=reference.mass_transfer_fee(2))


def _on_the_colon_chain(tx_t: dict):
    """tx_t remade for chain ':' (recipients alias:::<name>) and signed with the reference's sign(): its JSON
    and its body bytes, the reference's body of tx_t with the chain byte changed where the layout carries
    it (legacy: each alias recipient's chain byte; protobuf: Transaction.chain_id), since the reference
    itself cannot read alias:::<name> (test_reference.py)."""
    body = reference.tx_body_bytes(tx_t)
    assert iotlight.tx_body_bytes(tx_t) == body, "the two implementations agree on chain 'T'"
    if (tx_t["type"], tx_t["version"]) in ((4, 3), (11, 2)):  # protobuf: field 1, the chain id's varint
        assert body[:2] == b"\x08T"
        body = b"\x08:" + body[2:]
    else:
        for item in tx_t.get("transfers") or [tx_t]:
            name = item["recipient"][len("alias:T:") :].encode()
            recipient = len(name).to_bytes(2, "big") + name
            assert body.count(b"\x02T" + recipient) == 1
            body = body.replace(b"\x02T" + recipient, b"\x02:" + recipient)
    tx = json.loads(json.dumps(tx_t).replace('"alias:T:', '"alias:::'))
    tx["chainId"] = ord(":")
    signature = reference.sign(PAYER.private_key, body)
    return dict(
        tx, proofs=[reference.b58encode(signature)], id=reference.b58encode(reference.blake2b256(body))
    ), body


@pytest.mark.parametrize("kind", ["transfer v2", "transfer v3", "mass transfer v1", "mass transfer v2"])
def test_payment_to_an_alias_of_the_colon_chain(kind):
    """A transfer or mass transfer to alias:::iot-light signed on chain ':' (legacy and protobuf) has the
    body iotlight rebuilds, check_transfer_proof accepts it (also without chainId, as the node lists a
    legacy one: the chain is read from the alias), it is of another network on 'T', and judge_transfer
    credits the 2.50 tokens to a lamp that owns the alias (and a mass transfer's 0.05 to the other one)."""
    tx, body = _on_the_colon_chain(_payment_on_t(kind))
    assert iotlight.tx_body_bytes(tx) == body
    listed = _as_listed(tx, ":")
    assert iotlight.check_transfer_proof(listed, ":") is None
    if (tx["type"], tx["version"]) in ((4, 2), (11, 1)):  # legacy: listed without chainId
        assert iotlight.check_transfer_proof({k: v for k, v in listed.items() if k != "chainId"}, ":") is None
    assert iotlight.check_transfer_proof(listed, "T") == "made for another network"
    verdict = iotlight.judge_transfer(
        listed, _lamp_rules(":", LAMP.address(":"), "alias:::iot-light"), HEIGHT
    )
    assert (verdict.action, verdict.amount, verdict.seconds) == ("credit", 250, 150.0)
    assert verdict.paid and verdict.handled
    other = iotlight.judge_transfer(listed, _lamp_rules(":", "alias:::other-lamp"), HEIGHT)
    assert (other.action, other.amount) == (("credit", 5) if tx["type"] == 11 else ("none", 0))


def test_transfer_built_to_an_alias_of_the_colon_chain():
    """build_transfer_tx on chain ':' to `iot-light` or alias:::iot-light signs the body a ':' node
    expects (the reference's 'T' body with the alias's chain byte changed) and checks out."""
    for recipient in ("iot-light", "alias:::iot-light"):
        tx = iotlight.build_transfer_tx(
            KEYS, recipient=recipient, amount=250, asset_id=ASSET_T, timestamp=TS, chain_id=":", fee=UNIT
        )
        assert tx["recipient"] == "alias:::iot-light" and tx["chainId"] == ord(":")
        on_t = reference.tx_body_bytes(dict(tx, recipient="alias:T:iot-light", chainId=84))
        name = b"\x00\x09iot-light"
        assert iotlight.tx_body_bytes(tx) == on_t.replace(b"\x02T" + name, b"\x02:" + name)
        sig = iotlight.b58decode(tx["proofs"][0])
        assert reference.verify(KEYS.public_key, iotlight.tx_body_bytes(tx), sig)
        assert iotlight.check_transfer_proof(_as_listed(tx, ":"), ":") is None


@pytest.mark.parametrize("version", [2, 3])
def test_a_proof_with_s_plus_l_is_a_real_payment(version):
    """A transfer whose proof carries S + L (below 2^253) is one the node accepts: check_transfer_proof
    passes it and judge_transfer credits it (reference.verify_tx, libsodium's S < L, refuses it); with
    S + 2L (bit 253 set) it is not the sender's signature and is ignored as not_verified."""
    tx_t = _payment_on_t("transfer v%d" % version)
    tx = _as_listed(reference.sign_tx(dict(tx_t, recipient=LAMP.address("T")), PAYER.private_key), "T")
    signature = reference.b58decode(tx["proofs"][0])
    s = int.from_bytes(signature[32:], "little") & ((1 << 255) - 1)
    assert s + ED25519_L < 2**253 <= s + 2 * ED25519_L

    def with_s(new_s):
        raw = signature[:32] + (new_s | (signature[63] >> 7) << 255).to_bytes(32, "little")
        return dict(tx, proofs=[reference.b58encode(raw)])

    rules = _lamp_rules("T", LAMP.address("T"))
    plus_l = with_s(s + ED25519_L)
    assert reference.verify_tx(tx) is True and reference.verify_tx(plus_l) is False
    assert iotlight.check_transfer_proof(plus_l, "T") is None
    verdict = iotlight.judge_transfer(plus_l, rules, HEIGHT)
    assert (verdict.action, verdict.amount, verdict.seconds) == ("credit", 250, 150.0) and verdict.paid
    plus_2l = with_s(s + 2 * ED25519_L)
    assert iotlight.check_transfer_proof(plus_2l, "T") == "its proof is not the sender's signature"
    refused = iotlight.judge_transfer(plus_2l, rules, HEIGHT)
    assert (refused.action, refused.reason, refused.paid) == ("ignore", "not_verified", False)
