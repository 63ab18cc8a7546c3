"""tests/reference.py, the second implementation, reproduces every vector byte for byte on its own.

Nothing here imports iotlight: these tests hold the reference (which the fake node judges every
broadcast with, and which the product's tests compare against) to the official libraries' vectors
(tests/vectors/, see waves-protocol.md section 14), independently of the product.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.abc
import sys
from pathlib import Path

import pytest
import reference as ref
from nacl import bindings as nb

ACCOUNTS = ref.load_vectors("accounts.json")
SIGNATURES = ref.load_vectors("signatures.json")
TRANSFERS = ref.load_vectors("transfers.json")
DATA = ref.load_vectors("data.json")
MASS = ref.load_vectors("mass_transfers.json")

ACCOUNT_VECTORS = ACCOUNTS["vectors"] + ACCOUNTS["nonce_vectors"]
KEYS_BY_NAME = {v["name"]: v for v in ACCOUNTS["vectors"]}
ISSUES = TRANSFERS["issue_transactions"]
ALL_TXS = ISSUES + TRANSFERS["transfers"] + DATA["vectors"] + MASS["vectors"]
SIGNED_BY_LIBRARY = [t for t in ALL_TXS if "library_call" in t]
NODE_JSON_TXS = [t for t in ALL_TXS if "node_json_expected" in t]
TS = 1_700_000_000_000
ED25519_L = 2**252 + 27742317777372353535851937790883648493  # the group order
KEYS = ref.keys_from_seed(KEYS_BY_NAME["docs-example-15-words"]["seed"])


def _ids(vectors):
    return [v["name"] for v in vectors]


def _unsigned(tx_json: dict) -> dict:
    return {k: v for k, v in tx_json.items() if k not in ("proofs", "id", "signature")}


class _NoIotlight(importlib.abc.MetaPathFinder):
    """An import hook under which any import of iotlight fails."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "iotlight":
            raise ImportError("iotlight imported by the reference or the fake node")
        return None


def test_reference_and_the_fake_node_never_import_iotlight():
    """The second witness shares no code with the product: reference.py and tools/fakenode.py load afresh
    (in this process, with every module of the checkout unloaded) while any import of iotlight fails,
    and neither file's text imports it."""
    tests = Path(__file__).resolve().parent
    ours = {tests.parent, tests, tests / "tools"}
    saved = dict(sys.modules)
    blocker = _NoIotlight()
    try:
        for name, module in saved.items():
            file = getattr(module, "__file__", None)
            if file and Path(file).resolve().parent in ours:
                del sys.modules[name]
        sys.meta_path.insert(0, blocker)
        fresh = importlib.import_module("fakenode")
        assert fresh.reference is sys.modules["reference"] is not saved.get("reference")
        assert "iotlight" not in sys.modules
    finally:
        sys.meta_path.remove(blocker)
        for name in set(sys.modules) - set(saved):
            del sys.modules[name]
        sys.modules.update(saved)
    for path in (tests / "reference.py", tests / "tools" / "fakenode.py"):
        assert "import iotlight" not in path.read_text(encoding="utf-8"), path


# --- accounts, hashes, base58 -------------------------------------------------------------------


@pytest.mark.parametrize("vec", ACCOUNT_VECTORS, ids=_ids(ACCOUNT_VECTORS))
def test_account(vec):
    """Seed -> every intermediate hash -> keys -> the Ed25519 form -> the address on every chain."""
    hash_input = vec["nonce"].to_bytes(4, "big") + vec["seed"].encode("utf-8")
    assert hash_input.hex() == vec["hash_input_hex"]
    assert ref.blake2b256(hash_input).hex() == vec["blake2b256_hex"]
    assert ref.secure_hash(hash_input).hex() == vec["account_seed_keccak256_hex"]
    assert ref.b58encode(ref.secure_hash(hash_input)) == vec["account_seed_base58"]
    assert hashlib.sha256(ref.secure_hash(hash_input)).hexdigest() == vec["sha256_of_account_seed_hex"]
    keys = ref.keys_from_seed(vec["seed"], vec["nonce"])
    assert keys.private_key.hex() == vec["private_key_hex"] and keys.public_key.hex() == vec["public_key_hex"]
    assert ref.b58encode(keys.private_key) == vec["private_key_base58"]
    assert ref.b58encode(keys.public_key) == vec["public_key_base58"]
    assert ref.b58decode(vec["public_key_base58"]) == keys.public_key
    assert ref.keys_from_private_key(keys.private_key) == keys
    assert vec["private_key_base58"] not in repr(keys)
    a = nb.crypto_core_ed25519_scalar_reduce(keys.private_key + bytes(32))
    ed = nb.crypto_scalarmult_ed25519_base_noclamp(a)  # A = a·B, as the signatures use it
    assert ed.hex() == vec["ed25519_public_key_hex"] and ed[31] >> 7 == vec["ed25519_sign_bit"]
    for chain, expected in vec["addresses"].items():
        raw = ref.address_bytes(keys.public_key, chain)
        assert raw.hex() == expected["address_hex"] and raw[1] == expected["chain_id_byte"]
        assert (
            raw[2:22].hex() == expected["public_key_hash_hex"] and raw[22:].hex() == expected["checksum_hex"]
        )
        assert ref.address(keys.public_key, chain) == keys.address(chain) == expected["address"]
        assert ref.parse_address(expected["address"], chain) == raw
        assert ref.parse_address("address:" + expected["address"], chain) == raw


DOCS_ACCOUNTS = [v for v in ACCOUNTS["vectors"] if "expected_from_docs" in v]


@pytest.mark.parametrize("vec", DOCS_ACCOUNTS, ids=_ids(DOCS_ACCOUNTS))
def test_account_matches_published_docs(vec):
    """The keys and addresses printed in the Waves and 0bs docs come out of the reference's derivation."""
    docs = vec["expected_from_docs"]
    keys = ref.keys_from_seed(vec["seed"])
    assert ref.b58encode(keys.private_key) == docs["private_key_base58"]
    assert ref.b58encode(keys.public_key) == docs["public_key_base58"]
    for key, value in docs.items():
        if key.startswith("address_"):
            assert keys.address(key[len("address_") :]) == value


@pytest.mark.parametrize("vec", ACCOUNTS["hash_vectors"], ids=lambda v: "hash-%r" % v["input_utf8"])
def test_hash_vector(vec):
    """blake2b256, secure hash and keccak256 (original Keccak, not NIST SHA3) give the recorded digests."""
    data = vec["input_utf8"].encode("utf-8")
    if "fast_hash_blake2b256_base58" in vec:
        assert ref.b58encode(ref.blake2b256(data)) == vec["fast_hash_blake2b256_base58"]
    if "secure_hash_keccak256_blake2b256_base58" in vec:
        assert ref.b58encode(ref.secure_hash(data)) == vec["secure_hash_keccak256_blake2b256_base58"]
    if "expected_from_docs" in vec:
        assert ref.b58encode(ref.secure_hash(data)) == vec["expected_from_docs"]["secure"]
    if "keccak256_hex" in vec:
        assert ref.keccak256(data).hex() == vec["keccak256_hex"]
        assert ref.keccak256(data).hex() != vec.get("nist_sha3_256_hex_NOT_USED_BY_WAVES")


@pytest.mark.parametrize(
    "vec", ACCOUNTS["base58_vectors"], ids=lambda v: "b58-%s" % (v["bytes_hex"] or "empty")
)
def test_base58_vector(vec):
    """base58 encodes and decodes the recorded pairs."""
    raw = bytes.fromhex(vec["bytes_hex"])
    assert ref.b58encode(raw) == vec["base58"] and ref.b58decode(vec["base58"]) == raw


def test_malformed_addresses_and_aliases_are_invalid():
    """Addresses of another chain, with a typo or a bad character, and aliases of another chain, too
    short, in upper case, too long or with no name are Invalid; a bare name takes the given chain."""
    good = KEYS.address("T")
    for bad, chain in ((good, "W"), (good[:-1] + ("1" if good[-1] != "1" else "2"), "T"), ("3N0", "T")):
        with pytest.raises(ref.Invalid):
            ref.parse_address(bad, chain)
    assert ref.parse_alias("iot-light", "T") == ref.parse_alias("alias:T:iot-light") == "alias:T:iot-light"
    for bad in ("alias:W:iot-light", "alias:T:abc", "alias:T:Upper", "alias:T:" + "a" * 31, "alias:T"):
        with pytest.raises(ref.Invalid):
            ref.parse_alias(bad, "T")


def test_alias_of_the_colon_chain_is_read_by_position():
    """alias:::<name> is the alias <name> of chain ':' (`alias:` + one chain character + `:` + name), with
    or without the chain given, and a transfer to it encodes."""
    assert ref.parse_alias("iot-light", ":") == "alias:::iot-light"
    assert ref.parse_alias("alias:::iot-light", ":") == "alias:::iot-light"
    assert ref.parse_alias("alias:::iot-light") == "alias:::iot-light"
    tx = {
        "type": 4,
        "version": 2,
        "senderPublicKey": ref.b58encode(KEYS.public_key),
        "assetId": None,
        "feeAssetId": None,
        "timestamp": TS,
        "amount": 1,
        "fee": 100_000,
        "recipient": "alias:::iot-light",
        "attachment": "",
    }
    on_t = ref.tx_body_bytes(dict(tx, recipient="alias:T:iot-light"))
    assert ref.tx_body_bytes(tx) == on_t.replace(b"\x02T\x00\x09iot-light", b"\x02:\x00\x09iot-light")


# --- signatures -----------------------------------------------------------------------------------


@pytest.mark.parametrize("vec", SIGNATURES["valid"], ids=_ids(SIGNATURES["valid"]))
def test_signature_reproduced_from_recorded_z(vec):
    """sign() with the recorded Z (and the second Z) gives the recorded signatures; both verify."""
    private_key, public_key = (
        ref.b58decode(vec["private_key_base58"]),
        ref.b58decode(vec["public_key_base58"]),
    )
    assert ref.keys_from_private_key(private_key).public_key == public_key
    message = bytes.fromhex(vec["message_hex"])
    sig = ref.sign(private_key, message, bytes.fromhex(vec["random_Z_hex"]))
    assert sig.hex() == vec["signature_hex"] and ref.b58encode(sig) == vec["signature_base58"]
    assert sig[63] >> 7 == vec["signature_byte63_top_bit"] == vec["ed25519_sign_bit_of_key"]
    second = ref.sign(private_key, message, bytes.fromhex(vec["second_random_Z_hex"]))
    assert ref.b58encode(second) == vec["second_signature_base58"]
    assert ref.verify(public_key, message, sig) is ref.verify(public_key, message, second) is True
    assert ref.verify(public_key, message, ref.sign(private_key, message)) is True  # fresh randomness


@pytest.mark.parametrize("vec", SIGNATURES["tampered"], ids=_ids(SIGNATURES["tampered"]))
def test_tampered_signature_rejected(vec):
    """A changed message, R, S, sign bit or public key makes verify return False."""
    args = (ref.b58decode(vec["public_key_base58"]), bytes.fromhex(vec["message_hex"]))
    assert ref.verify(*args, ref.b58decode(vec["signature_base58"])) is vec["expected_verify"] is False


@pytest.mark.parametrize(
    "vec", SIGNATURES["implementation_defined"], ids=_ids(SIGNATURES["implementation_defined"])
)
def test_reference_verify_keeps_libsodiums_rule_for_s_plus_l(vec):
    """S + L (below 2^253): reference.verify is libsodium's (S < L only) and refuses it, while the Waves
    node (curve25519-java = ref10: any S < 2^253) and ts-lib-crypto accept it, as iotlight.verify does
    (test_vectors.py, test_crypto.py); the reduced S verifies under the reference too."""
    public_key, message = ref.b58decode(vec["public_key_base58"]), bytes.fromhex(vec["message_hex"])
    signature = ref.b58decode(vec["signature_base58"])
    s = int.from_bytes(signature[32:], "little") & ((1 << 255) - 1)
    assert ED25519_L <= s < 2**253 and vec["ts_lib_crypto_verify_result"] is True
    assert ref.verify(public_key, message, signature) is False
    reduced = (s % ED25519_L | (signature[63] >> 7) << 255).to_bytes(32, "little")
    assert ref.verify(public_key, message, signature[:32] + reduced) is True


def test_verify_is_false_for_wrong_sizes():
    """A key or signature of the wrong size is False (never an exception); Z must be 64 bytes."""
    sig = ref.sign(KEYS.private_key, b"m")
    assert ref.verify(KEYS.public_key, b"m", sig) is True
    assert ref.verify(KEYS.public_key[:31], b"m", sig) is ref.verify(KEYS.public_key, b"m", sig[:63]) is False
    with pytest.raises(ref.Invalid, match="64 bytes"):
        ref.sign(KEYS.private_key, b"m", bytes(63))


# --- transactions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("vec", ALL_TXS, ids=_ids(ALL_TXS))
def test_tx_bytes_id_and_proof(vec):
    """Body bytes (hex, base58, length), id, wire form and proof of every transaction vector."""
    tx = vec["tx_json"]
    body = ref.tx_body_bytes(tx)
    assert body.hex() == vec["body_bytes_hex"] and ref.b58encode(body) == vec["body_bytes_base58"]
    assert len(body) == vec["body_length"]
    assert ref.tx_id(tx) == vec["id"] == tx.get("id", vec["id"])
    assert ref.tx_signed_bytes(tx).hex() == vec["signed_bytes_hex"]
    assert ref.verify_tx(tx) is True
    assert ref.verify_tx(dict(tx, timestamp=tx["timestamp"] + 1)) is False
    assert ref.verify_tx(dict(tx, proofs=tx["proofs"] * 2)) is False, "an account without script: one proof"


@pytest.mark.parametrize("vec", SIGNED_BY_LIBRARY, ids=_ids(SIGNED_BY_LIBRARY))
def test_tx_resigned_with_recorded_z(vec):
    """sign_tx with the account's key and the recorded Z reproduces the proof, id and wire form."""
    account = KEYS_BY_NAME[vec["library_call"]["seed"]]
    assert account["public_key_base58"] == vec["tx_json"]["senderPublicKey"]
    keys = ref.keys_from_seed(account["seed"])
    signed = ref.sign_tx(
        _unsigned(vec["tx_json"]), keys.private_key, bytes.fromhex(vec["signature_random_Z_hex"])
    )
    assert signed["proofs"] == vec["tx_json"]["proofs"] and signed["id"] == vec["id"]
    assert ref.tx_signed_bytes(signed).hex() == vec["signed_bytes_hex"]
    fresh = ref.sign_tx(_unsigned(vec["tx_json"]), keys.private_key)
    assert fresh["id"] == vec["id"] and fresh["proofs"] != signed["proofs"] and ref.verify_tx(fresh)


@pytest.mark.parametrize("vec", NODE_JSON_TXS, ids=_ids(NODE_JSON_TXS))
def test_node_json_gives_the_same_id_and_verifies(vec):
    """The node's answer (extra fields, sender, no chainId for legacy versions) re-verifies."""
    node = vec["node_json_expected"]
    assert node["sender"] == ref.address(ref.b58decode(node["senderPublicKey"]), vec["chain"])
    assert ref.tx_id(node) == vec["id"] and ref.verify_tx(node) is True


def test_v1_transfer_from_docs():
    """The docs' v1 transfer verifies with `signature` alone; its wire form is type, signature, body."""
    vec = next(t for t in TRANSFERS["transfers"] if t["version"] == 1)
    keys = ref.keys_from_private_key(ref.b58decode(vec["fields"]["private_key_base58_from_docs"]))
    assert ref.b58encode(keys.public_key) == vec["tx_json"]["senderPublicKey"]
    only_signature = {k: v for k, v in vec["tx_json"].items() if k != "proofs"}
    assert ref.verify_tx(only_signature) is True and ref.tx_id(only_signature) == vec["id"]
    assert ref.tx_signed_bytes(only_signature).hex() == vec["signed_bytes_hex"]


def test_issue_v1_layout_by_hand():
    """No vector has Issue v1: its body is spelled out from spec section 9, and its wire form is
    `type || signature || body` (5.1)."""
    tx = {
        "type": 3,
        "version": 1,
        "senderPublicKey": ref.b58encode(KEYS.public_key),
        "name": "IoT-Light",
        "description": "é",
        "quantity": 10**6,
        "decimals": 2,
        "reissuable": True,
        "fee": 10**8,
        "timestamp": TS,
    }
    body = (
        b"\x03"
        + KEYS.public_key
        + b"\x00\x09IoT-Light"
        + b"\x00\x02\xc3\xa9"
        + (10**6).to_bytes(8, "big")
        + b"\x02\x01"
        + (10**8).to_bytes(8, "big")
        + TS.to_bytes(8, "big")
    )
    assert ref.tx_body_bytes(tx) == body
    signed = ref.sign_tx(tx, KEYS.private_key, bytes(64))
    assert ref.tx_signed_bytes(signed) == b"\x03" + ref.b58decode(signed["proofs"][0]) + body
    assert (
        ref.verify_tx(signed) and ref.verify_tx({k: v for k, v in signed.items() if k != "proofs"}) is False
    )
    assert ref.verify_tx(
        dict({k: v for k, v in signed.items() if k != "proofs"}, signature=signed["proofs"][0])
    )


@pytest.mark.parametrize(
    "tx",
    [
        None,
        [],
        {},
        {"type": 4, "version": 9},
        {"type": 12, "version": 1, "data": "x"},
        {"type": 4, "version": True, "senderPublicKey": ref.b58encode(KEYS.public_key)},
    ],
)
def test_verify_tx_is_false_for_malformed_transactions(tx):
    """Anything that is not a transaction of a known type and version is False, not an exception."""
    assert ref.verify_tx(tx) is False


def test_verify_tx_is_false_for_malformed_fields():
    """A bad proof, key, recipient, amount, asset, attachment or chain makes verify_tx False."""
    vec = TRANSFERS["transfers"][0]["tx_json"]
    for change in (
        {"proofs": ["0OIl"]},
        {"proofs": []},
        {"proofs": "x"},
        {"proofs": [ref.b58encode(bytes(63))]},
        {"senderPublicKey": "abc"},
        {"recipient": None},
        {"amount": "1"},
        {"amount": 2**63},
        {"assetId": "abc"},
        {"attachment": ref.b58encode(bytes(141))},
        {"chainId": 87},
    ):
        assert ref.verify_tx(dict(vec, **change)) is False, change


def test_legacy_mass_transfer_recipients_share_one_chain():
    """Without chainId (the node's JSON of a v1 mass transfer) the first recipient names the chain, and
    every other recipient must be on it (the node's V.chainIds)."""
    vec = next(v for v in MASS["vectors"] if v["version"] == 1 and v["chain"] == "T")
    tx = {k: v for k, v in vec["tx_json"].items() if k != "chainId"}
    assert ref.tx_id(tx) == vec["id"] and ref.verify_tx(tx)
    mixed = dict(tx, transfers=tx["transfers"] + [{"recipient": KEYS.address("W"), "amount": 1}])
    with pytest.raises(ref.Invalid, match="address is for chain 'W', not 'T'"):
        ref.tx_body_bytes(mixed)


def test_sign_tx_refuses_a_key_that_is_not_the_senders():
    """sign_tx checks its own signature: a private key that is not senderPublicKey's raises Invalid."""
    vec = TRANSFERS["transfers"][0]
    other = ref.b58decode(KEYS_BY_NAME["single-word"]["private_key_base58"])
    with pytest.raises(ref.Invalid, match="wrong key for this sender"):
        ref.sign_tx(_unsigned(vec["tx_json"]), other, bytes(64))


def test_compact_mass_transfer_does_not_verify_but_does_not_crash():
    """The compact mass transfer a recipient sees (its own items only) is False, not an exception."""
    assert ref.verify_tx(MASS["as_seen_by_recipient_in_transactions_address"]["response_item"]) is False


def test_token_asset_ids_are_issue_ids():
    """The IoT-Light asset ids of each chain are the ids of the two Issue vectors."""
    by_chain = {v["chain"]: ref.tx_id(v["tx_json"]) for v in ISSUES}
    assert (TRANSFERS["token"]["asset_id_T"], TRANSFERS["token"]["asset_id_Z"]) == (
        by_chain["T"],
        by_chain["Z"],
    )


# --- fees ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("vec", DATA["vectors"], ids=_ids(DATA["vectors"]))
def test_data_fee_matches_node_rules(vec):
    """Waves: the highest of the two node rules of the vector; 0bs: the 30-unit rule; payload size."""
    tx, rules = vec["tx_json"], vec["fee_rules"]
    waves = [
        v for k, v in rules.items() if k.startswith("min_fee_") and not k.endswith("_rule") and "zbs" not in k
    ]
    assert len(waves) == 2 and ref.data_fee(tx) == ref.data_fee(tx, "waves") == max(waves)
    if "min_fee_zbs_if_30_units" in rules:
        assert ref.data_fee(tx, "0bs") == rules["min_fee_zbs_if_30_units"]
    assert ref.data_payload_size(tx["data"]) == rules["real_user_payload_bytes"]
    if "protobuf_data_payload_length" in rules:
        assert len(ref.data_payload(tx["data"])) == rules["protobuf_data_payload_length"]
    assert tx["fee"] == vec["fee_used"] >= ref.data_fee(tx, "0bs" if vec["chain"] == "Z" else "waves")


@pytest.mark.parametrize("vec", MASS["vectors"], ids=_ids(MASS["vectors"]))
def test_mass_transfer_fee(vec):
    """Waves: exactly 1 + floor((n+1)/2) units; 0bs: at least the docs' 0.05 ZBS."""
    tx, n = vec["tx_json"], len(vec["tx_json"]["transfers"])
    if vec["chain"] == "Z":
        assert tx["fee"] >= ref.mass_transfer_fee(n, "0bs") >= 5_000_000
    else:
        assert tx["fee"] == ref.mass_transfer_fee(n) == 100_000 * (1 + (n + 1) // 2)


def test_fee_rules():
    """Mass transfer, transfer and issue fees of both rule sets, and every vector pays at least them."""
    assert [ref.mass_transfer_fee(n) for n in (1, 2, 3, 100)] == [200_000, 200_000, 300_000, 5_100_000]
    assert (
        ref.mass_transfer_fee(3, smart_asset=True) == 700_000
        and ref.mass_transfer_fee(100, "0bs") == 5_100_000
    )
    assert (ref.transfer_fee(), ref.transfer_fee(smart_asset=True), ref.transfer_fee("0bs")) == (
        100_000,
        500_000,
        5_000_000,
    )
    assert (ref.issue_fee(), ref.issue_fee(nft=True), ref.issue_fee("0bs")) == (10**8, 100_000, 500 * 10**8)
    for vec in TRANSFERS["transfers"]:
        if "library_call" in vec and not vec["tx_json"]["feeAssetId"]:
            assert vec["tx_json"]["fee"] >= ref.transfer_fee("0bs" if vec["chain"] == "Z" else "waves")
    for vec in ISSUES:
        assert vec["tx_json"]["fee"] >= ref.issue_fee("0bs" if vec["chain"] == "Z" else "waves")


# --- Data limits (what the fake node refuses on broadcast) -------------------------------------------


def _entries(n, key="k%d", kind="boolean", value=True):
    return [{"key": key % i if "%" in key else key, "type": kind, "value": value} for i in range(n)]


@pytest.mark.parametrize(
    "entries, version, rules, message",
    [
        (_entries(101), 1, "waves", "at most 100 entries, not 101"),
        (_entries(2, key="k"), 2, "waves", "data key 'k' appears twice"),
        ([{"key": "é" * 201, "type": "integer", "value": 0}], 2, "waves", "longer than 400 bytes"),
        ([{"key": "🔑" * 51, "type": "boolean", "value": True}], 1, "0bs", "100 characters"),
        ([{"key": "s", "type": "string", "value": "é" * 16_384}], 1, "waves", "longer than 32767 bytes"),
        ([{"key": "gone", "value": None}], 1, "waves", "deleting a key needs Data version 2"),
        (_entries(6, kind="string", value="x" * 32_767), 2, "waves", "total 196614 bytes, more than 165835"),
        ([{"key": "", "type": "integer", "value": 1}], 1, "waves", "non-empty string key"),
        ([{"key": "b", "type": "binary", "value": "base64:AA="}], 2, "waves", "not valid base64"),
        ([{"key": "n", "type": "integer", "value": True}], 2, "waves", "64-bit integer"),
    ],
)
def test_data_entries_over_the_limits(entries, version, rules, message):
    """Each Data limit (count, key, value, total, v1 deletes, malformed values) is Invalid, by name."""
    with pytest.raises(ref.Invalid, match=message):
        ref.validate_data_entries(entries, version=version, rules=rules)


def test_data_limits_are_inclusive():
    """100 entries, a 400-byte key, 50 emoji on 0bs, a 32767-byte value, 165835 payload bytes pass;
    an empty list too (the node's DataTxValidator has no lower bound)."""
    for entries, version, rules in (
        (_entries(100), 1, "waves"),
        ([{"key": "é" * 200, "type": "integer", "value": 0}], 1, "waves"),
        ([{"key": "🔑" * 50, "type": "boolean", "value": True}], 1, "0bs"),
        (
            [{"key": "s", "type": "binary", "value": "base64:" + base64.b64encode(bytes(32_767)).decode()}],
            1,
            "waves",
        ),
        (FULL, 2, "waves"),
        ([], 1, "waves"),
    ):
        ref.validate_data_entries(entries, version=version, rules=rules)
    assert ref.data_payload_size(FULL) == 165_835


FULL = _entries(5, kind="string", value="x" * 32_767) + [{"key": "k5", "type": "string", "value": "x" * 1988}]


def _v1_of_signed_size(total):
    """Five string entries whose v1 wire form (0x00, body, one proof) is `total` bytes."""
    fixed = 1 + 2 + 32 + 2 + 8 + 8 + (1 + 2 + 2 + 64)
    rest = total - fixed - 5 * (2 + 2 + 1 + 2)
    sizes = [32_767] * 4 + [rest - 4 * 32_767]
    return [{"key": "k%d" % i, "type": "string", "value": "x" * n} for i, n in enumerate(sizes)]


def test_0bs_limits_the_whole_signed_v1_transaction():
    """Zbs: 153600 signed bytes at most (Waves with feature 17 counts only the payload)."""
    ok = ref.build_data_tx(KEYS, _v1_of_signed_size(153_600), timestamp=TS, chain_id="Z", rules="0bs")
    assert len(ref.tx_signed_bytes(ok)) == 153_600 and ref.verify_tx(ok)
    with pytest.raises(ref.Invalid, match="Data transaction is 153601 bytes, more than 153600"):
        ref.build_data_tx(KEYS, _v1_of_signed_size(153_601), timestamp=TS, chain_id="Z", rules="0bs")
    assert ref.verify_tx(ref.build_data_tx(KEYS, _v1_of_signed_size(153_601), timestamp=TS, chain_id="T"))


@pytest.mark.parametrize("version", [1, 2])
def test_build_data_tx(version):
    """A Data transaction with every entry type (and a delete in v2) builds with the minimum fee and verifies."""
    entries = [
        {"key": "i", "type": "integer", "value": -1},
        {"key": "b", "type": "boolean", "value": False},
        {"key": "s", "type": "string", "value": ""},
        {"key": "x", "type": "binary", "value": "base64:AQI"},
    ] + ([{"key": "gone", "value": None}] if version == 2 else [])
    tx = ref.build_data_tx(KEYS, entries, timestamp=TS, chain_id="T", version=version)
    assert tx["fee"] == ref.data_fee(tx) == 100_000 and tx["data"] == entries and ref.verify_tx(tx)
    assert (
        ref.build_data_tx(KEYS, entries, timestamp=TS, chain_id="T", version=version, fee=777)["fee"]
        == 100_000
    )
    assert (
        ref.build_data_tx(KEYS, entries, timestamp=TS, chain_id="T", version=version, fee=10**6)["fee"]
        == 10**6
    )


@pytest.mark.parametrize(
    "text, raw",
    [
        ("base64:", b""),
        ("base64:AQ==", b"\1"),
        ("AQID", b"\1\2\3"),
        ("base64:AQI", b"\1\2"),
        ("base64:AR==", b"\1"),
    ],
)
def test_base64_as_the_node_reads_it(text, raw):
    """base64 is read as java.util.Base64's basic decoder does: padding optional, unused bits unchecked."""
    assert ref.base64_decode(text) == raw


@pytest.mark.parametrize(
    "text",
    ["base64:AAAA=", "base64:AA=", "base64:AAA==", "base64:A", "base64:=", "base64:AA=A", "base64:AA-_"],
)
def test_base64_the_node_refuses(text):
    """Stray or partial padding, a dangling character and the URL alphabet are refused."""
    with pytest.raises(ref.Invalid, match="not valid base64"):
        ref.base64_decode(text)
