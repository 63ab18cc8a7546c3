"""Every vector in tests/vectors/ (vendored; see its PROVENANCE.md) that iotlight has a use for,
reproduced byte for byte by iotlight.

The vectors were made with the official Waves JavaScript libraries (see
waves-protocol.md section 14). Each vector is its own test, named after it. iotlight encodes the
transactions it verifies or sends (IOTLIGHT_BODIES) and the wire form of the legacy ones
(IOTLIGHT_WIRE); every vector, those included, is also reproduced by tests/reference.py
(test_reference.py), which the fake node judges broadcasts with.
"""

from __future__ import annotations

import hashlib

import pytest
import reference
from reference import load_vectors

import iotlight

ED25519_L = 2**252 + 27742317777372353535851937790883648493  # the group order

ACCOUNTS = load_vectors("accounts.json")
SIGNATURES = load_vectors("signatures.json")
TRANSFERS = load_vectors("transfers.json")
DATA = load_vectors("data.json")
MASS = load_vectors("mass_transfers.json")

ACCOUNT_VECTORS = ACCOUNTS["vectors"] + ACCOUNTS["nonce_vectors"]
KEYS_BY_NAME = {v["name"]: v for v in ACCOUNTS["vectors"]}

ISSUES = TRANSFERS["issue_transactions"]
TRANSFER_TXS = TRANSFERS["transfers"]
SIGNED_BY_LIBRARY = (
    ISSUES + [t for t in TRANSFER_TXS if "library_call" in t] + DATA["vectors"] + MASS["vectors"]
)
ALL_TXS = ISSUES + TRANSFER_TXS + DATA["vectors"] + MASS["vectors"]
# (type, version): Transfer v1-v3 and Mass Transfer v1-v2 (payments it verifies), Data v1 and
# Issue v2 (what it sends); the `[0x00] body proofs` wire form of the legacy ones among them (the
# v1 `type || signature || body` form, which iotlight never sends, is the reference's: test_reference.py).
IOTLIGHT_BODIES = {(4, 1), (4, 2), (4, 3), (11, 1), (11, 2), (12, 1), (3, 2)}
IOTLIGHT_WIRE = {(4, 2), (11, 1), (12, 1), (3, 2)}
BODY_TXS = [t for t in ALL_TXS if (t["tx_json"]["type"], t["tx_json"].get("version", 1)) in IOTLIGHT_BODIES]
WIRE_TXS = [t for t in ALL_TXS if (t["tx_json"]["type"], t["tx_json"].get("version", 1)) in IOTLIGHT_WIRE]


def _ids(vectors, key="name"):
    return [v[key] for v in vectors]


def _rules(chain: str) -> str:
    return "0bs" if chain == "Z" else "waves"


def _unsigned(tx_json: dict) -> dict:
    """The tx_json of a vector without what signing adds (proofs, id)."""
    return {k: v for k, v in tx_json.items() if k not in ("proofs", "id", "signature")}


# --- accounts: seed phrase -> keys -> addresses -------------------------------


@pytest.mark.parametrize("vec", ACCOUNT_VECTORS, ids=_ids(ACCOUNT_VECTORS))
def test_account_intermediates(vec):
    """Each step of the seed derivation matches: input, blake2b, keccak, sha256, clamping."""
    seed_bytes = vec["seed"].encode("utf-8")
    assert seed_bytes.hex() == vec["seed_utf8_hex"]
    hash_input = vec["nonce"].to_bytes(4, "big") + seed_bytes
    assert hash_input.hex() == vec["hash_input_hex"]
    assert iotlight.blake2b256(hash_input).hex() == vec["blake2b256_hex"]
    account_seed = iotlight.keccak256(iotlight.blake2b256(hash_input))
    assert account_seed.hex() == vec["account_seed_keccak256_hex"]
    assert iotlight.secure_hash(hash_input) == account_seed
    assert iotlight.b58encode(account_seed) == vec["account_seed_base58"]
    assert hashlib.sha256(account_seed).hexdigest() == vec["sha256_of_account_seed_hex"]


@pytest.mark.parametrize("vec", ACCOUNT_VECTORS, ids=_ids(ACCOUNT_VECTORS))
def test_account_keys(vec):
    """keypair_from_seed gives the private and public key, hex and base58."""
    keys = iotlight.keypair_from_seed(vec["seed"], vec["nonce"])
    assert keys.private_key.hex() == vec["private_key_hex"]
    assert keys.public_key.hex() == vec["public_key_hex"]
    assert iotlight.b58encode(keys.private_key) == vec["private_key_base58"]
    assert iotlight.b58encode(keys.public_key) == vec["public_key_base58"]
    assert iotlight.b58decode(vec["private_key_base58"]) == keys.private_key
    assert iotlight.b58decode(vec["public_key_base58"]) == keys.public_key
    assert iotlight.keypair_from_private_key(keys.private_key) == keys
    assert vec["private_key_base58"] not in repr(keys), "KeyPair repr must not show the private key"


@pytest.mark.parametrize("vec", ACCOUNT_VECTORS, ids=_ids(ACCOUNT_VECTORS))
def test_account_ed25519_form(vec):
    """ed25519_public_key converts the X25519 key to the Edwards key the signatures use."""
    public_key = bytes.fromhex(vec["public_key_hex"])
    sign_bit = vec["ed25519_sign_bit"]
    ed = iotlight.ed25519_public_key(public_key, 0x80 if sign_bit else 0)
    assert ed.hex() == vec["ed25519_public_key_hex"]
    assert ed[31] >> 7 == sign_bit


@pytest.mark.parametrize("vec", ACCOUNT_VECTORS, ids=_ids(ACCOUNT_VECTORS))
def test_account_addresses(vec):
    """Every chain's address: bytes, hex, public key hash, checksum, base58; parse_address accepts it."""
    keys = iotlight.keypair_from_seed(vec["seed"], vec["nonce"])
    assert set(vec["addresses"]) == set(ACCOUNTS["_chains"])
    for chain, expected in vec["addresses"].items():
        raw = iotlight.address_bytes_from_public_key(keys.public_key, chain)
        assert raw.hex() == expected["address_hex"]
        assert raw[0] == 1 and raw[1] == expected["chain_id_byte"] == ACCOUNTS["_chains"][chain]["byte"]
        assert raw[2:22].hex() == expected["public_key_hash_hex"]
        assert raw[22:].hex() == expected["checksum_hex"]
        assert iotlight.address_from_public_key(keys.public_key, chain) == expected["address"]
        assert keys.address(chain) == expected["address"]
        assert len(expected["address"]) == 35
        assert iotlight.parse_address(expected["address"], chain) == raw
        assert iotlight.parse_address("address:" + expected["address"], chain) == raw


DOCS_ACCOUNTS = [v for v in ACCOUNTS["vectors"] if "expected_from_docs" in v]


@pytest.mark.parametrize("vec", DOCS_ACCOUNTS, ids=_ids(DOCS_ACCOUNTS))
def test_account_matches_published_docs(vec):
    """The values printed in the Waves and 0bs docs come out of our derivation."""
    docs = vec["expected_from_docs"]
    keys = iotlight.keypair_from_seed(vec["seed"])
    assert iotlight.b58encode(keys.private_key) == docs["private_key_base58"]
    assert iotlight.b58encode(keys.public_key) == docs["public_key_base58"]
    for key, value in docs.items():
        if key.startswith("address_"):
            assert keys.address(key[len("address_") :]) == value
    seed_input = b"\0\0\0\0" + vec["seed"].encode()
    if "blake2b256_base58" in docs:
        assert iotlight.b58encode(iotlight.blake2b256(seed_input)) == docs["blake2b256_base58"]
    if "account_seed_base58" in docs:
        assert iotlight.b58encode(iotlight.secure_hash(seed_input)) == docs["account_seed_base58"]
    if "sha256_account_seed_base58" in docs:
        digest = hashlib.sha256(iotlight.secure_hash(seed_input)).digest()
        assert iotlight.b58encode(digest) == docs["sha256_account_seed_base58"]


def test_nonce_changes_the_account():
    """Nonces 0, 1, 2 of one seed give three different accounts, each as recorded."""
    base = KEYS_BY_NAME["docs-example-15-words"]
    by_nonce = {0: base, **{v["nonce"]: v for v in ACCOUNTS["nonce_vectors"] if v["seed"] == base["seed"]}}
    assert sorted(by_nonce) == [0, 1, 2]
    keys = {n: iotlight.keypair_from_seed(base["seed"], n) for n in by_nonce}
    assert len({k.public_key for k in keys.values()}) == 3
    for n, vec in by_nonce.items():
        assert iotlight.b58encode(keys[n].public_key) == vec["public_key_base58"]


# --- hashes and base58 -----------------------------------------------------------

HASHES = ACCOUNTS["hash_vectors"]


@pytest.mark.parametrize("vec", HASHES, ids=["hash-%r" % v["input_utf8"] for v in HASHES])
def test_hash_vector(vec):
    """blake2b256, keccak256, secure hash and sha256 give the recorded digests."""
    data = vec["input_utf8"].encode("utf-8")
    checked = 0
    if "fast_hash_blake2b256_base58" in vec:
        assert iotlight.b58encode(iotlight.blake2b256(data)) == vec["fast_hash_blake2b256_base58"]
        checked += 1
    if "secure_hash_keccak256_blake2b256_base58" in vec:
        assert (
            iotlight.b58encode(iotlight.secure_hash(data)) == vec["secure_hash_keccak256_blake2b256_base58"]
        )
        checked += 1
    if "expected_from_docs" in vec:
        assert iotlight.b58encode(iotlight.blake2b256(data)) == vec["expected_from_docs"]["fast"]
        assert iotlight.b58encode(iotlight.secure_hash(data)) == vec["expected_from_docs"]["secure"]
        checked += 1
    if "blake2b256_hex" in vec:
        assert iotlight.blake2b256(data).hex() == vec["blake2b256_hex"]
        checked += 1
    if "keccak256_hex" in vec:
        assert iotlight.keccak256(data).hex() == vec["keccak256_hex"]
        checked += 1
    if "nist_sha3_256_hex_NOT_USED_BY_WAVES" in vec:
        sha3 = vec["nist_sha3_256_hex_NOT_USED_BY_WAVES"]
        assert hashlib.sha3_256(data).hexdigest() == sha3
        assert iotlight.keccak256(data).hex() != sha3, "keccak256 must be original Keccak, not NIST SHA3-256"
        checked += 1
    if "sha256_hex" in vec:
        assert hashlib.sha256(data).hexdigest() == vec["sha256_hex"]
        checked += 1
    assert checked >= 2


BASE58 = ACCOUNTS["base58_vectors"]


@pytest.mark.parametrize("vec", BASE58, ids=["b58-%s" % (v["bytes_hex"] or "empty") for v in BASE58])
def test_base58_vector(vec):
    """base58 encodes and decodes the recorded pairs, leading zeros and the empty string included."""
    raw = bytes.fromhex(vec["bytes_hex"])
    if "bytes_signed" in vec:
        assert bytes(b & 0xFF for b in vec["bytes_signed"]) == raw
    assert iotlight.b58encode(raw) == vec["base58"]
    assert iotlight.b58decode(vec["base58"]) == raw


# --- signatures ----------------------------------------------------------------------

VALID_SIGS = SIGNATURES["valid"]


@pytest.mark.parametrize("vec", VALID_SIGS, ids=_ids(VALID_SIGS))
def test_signature_reproduced_from_recorded_z(vec):
    """Signing with the recorded Z gives the recorded signature byte for byte, and it verifies."""
    private_key = iotlight.b58decode(vec["private_key_base58"])
    public_key = iotlight.b58decode(vec["public_key_base58"])
    assert iotlight.keypair_from_private_key(private_key).public_key == public_key
    assert KEYS_BY_NAME[vec["key"]]["public_key_base58"] == vec["public_key_base58"]
    message = bytes.fromhex(vec["message_hex"])
    sig = iotlight.sign(private_key, message, bytes.fromhex(vec["random_Z_hex"]))
    assert sig.hex() == vec["signature_hex"]
    assert iotlight.b58encode(sig) == vec["signature_base58"]
    assert sig[63] >> 7 == vec["signature_byte63_top_bit"] == vec["ed25519_sign_bit_of_key"]
    assert iotlight.verify(public_key, message, sig) is vec["expected_verify"] is True


@pytest.mark.parametrize("vec", VALID_SIGS, ids=_ids(VALID_SIGS))
def test_signature_reproduced_from_second_z(vec):
    """Another Z gives another signature (also recorded) that verifies just the same."""
    private_key = iotlight.b58decode(vec["private_key_base58"])
    public_key = iotlight.b58decode(vec["public_key_base58"])
    message = bytes.fromhex(vec["message_hex"])
    sig = iotlight.sign(private_key, message, bytes.fromhex(vec["second_random_Z_hex"]))
    assert iotlight.b58encode(sig) == vec["second_signature_base58"]
    assert sig.hex() != vec["signature_hex"]
    assert iotlight.verify(public_key, message, sig) is True


TAMPERED = SIGNATURES["tampered"]


@pytest.mark.parametrize("vec", TAMPERED, ids=_ids(TAMPERED))
def test_tampered_signature_rejected(vec):
    """A changed message, R, S, sign bit or public key makes verify return False."""
    assert vec["expected_verify"] is False
    result = iotlight.verify(
        iotlight.b58decode(vec["public_key_base58"]),
        bytes.fromhex(vec["message_hex"]),
        iotlight.b58decode(vec["signature_base58"]),
    )
    assert result is False


IMPL_DEFINED = SIGNATURES["implementation_defined"]


@pytest.mark.parametrize("vec", IMPL_DEFINED, ids=_ids(IMPL_DEFINED))
def test_non_canonical_s_plus_l_verifies_as_on_the_node(vec):
    """S replaced by S + L (still below 2^253): iotlight.verify follows the Waves node (curve25519-java,
    SUPERCOP ref10: any S < 2^253 once the sign bit is cleared) and accepts it, as ts-lib-crypto does;
    tests/reference.py's verify keeps libsodium's rule (S < L only) and refuses it."""
    public_key = iotlight.b58decode(vec["public_key_base58"])
    message = bytes.fromhex(vec["message_hex"])
    signature = iotlight.b58decode(vec["signature_base58"])
    s = int.from_bytes(signature[32:], "little") & ((1 << 255) - 1)
    assert vec["S_plus_L_below_2_253"] is True and ED25519_L <= s < 2**253
    assert vec["ts_lib_crypto_verify_result"] is True
    assert iotlight.verify(public_key, message, signature) is True
    assert reference.verify(public_key, message, signature) is False


# --- transactions ------------------------------------------------------------------------


@pytest.mark.parametrize("vec", BODY_TXS, ids=_ids(BODY_TXS))
def test_tx_body_bytes(vec):
    """tx_body_bytes of the broadcast JSON equals the library's body bytes (hex and base58)."""
    body = iotlight.tx_body_bytes(vec["tx_json"])
    assert body.hex() == vec["body_bytes_hex"]
    assert iotlight.b58encode(body) == vec["body_bytes_base58"]
    assert len(body) == vec["body_length"]


@pytest.mark.parametrize("vec", BODY_TXS, ids=_ids(BODY_TXS))
def test_tx_id(vec):
    """The id is base58(blake2b256(body)) and equals the recorded one (and tx_json's own id)."""
    assert iotlight.tx_id(vec["tx_json"]) == vec["id"]
    assert iotlight.b58encode(iotlight.blake2b256(bytes.fromhex(vec["body_bytes_hex"]))) == vec["id"]
    if "id" in vec["tx_json"]:
        assert vec["tx_json"]["id"] == vec["id"]


@pytest.mark.parametrize("vec", WIRE_TXS, ids=_ids(WIRE_TXS))
def test_tx_signed_bytes(vec):
    """The legacy wire form iotlight sizes its Data with (0x00 body proofs, MassTransfer body proofs) is exact."""
    assert iotlight.tx_signed_bytes(vec["tx_json"]).hex() == vec["signed_bytes_hex"]


@pytest.mark.parametrize("vec", BODY_TXS, ids=_ids(BODY_TXS))
def test_tx_proof_verifies(vec):
    """The recorded proof verifies over iotlight's body; it does not over another body."""
    tx = vec["tx_json"]
    public_key, proof = iotlight.b58decode(tx["senderPublicKey"]), iotlight.b58decode(tx["proofs"][0])
    assert iotlight.verify(public_key, iotlight.tx_body_bytes(tx), proof) is True
    other = dict(tx, timestamp=tx["timestamp"] + 1)
    assert iotlight.verify(public_key, iotlight.tx_body_bytes(other), proof) is False


RESIGNED = [t for t in SIGNED_BY_LIBRARY if t in BODY_TXS]


@pytest.mark.parametrize("vec", RESIGNED, ids=_ids(RESIGNED))
def test_tx_resigned_with_recorded_z(vec):
    """sign_tx with the named account's private key and the recorded Z reproduces the proof and id."""
    account = KEYS_BY_NAME[vec["library_call"]["seed"]]
    private_key = iotlight.b58decode(account["private_key_base58"])
    assert account["public_key_base58"] == vec["tx_json"]["senderPublicKey"]
    signed = iotlight.sign_tx(
        _unsigned(vec["tx_json"]), private_key, bytes.fromhex(vec["signature_random_Z_hex"])
    )
    assert signed["proofs"] == vec["tx_json"]["proofs"]
    assert signed["id"] == vec["id"]
    if vec in WIRE_TXS:
        assert iotlight.tx_signed_bytes(signed).hex() == vec["signed_bytes_hex"]


def test_sign_tx_refuses_a_key_that_is_not_the_senders():
    """sign_tx checks its own signature, so a wrong private key for senderPublicKey raises."""
    vec = TRANSFER_TXS[0]
    other = iotlight.b58decode(KEYS_BY_NAME["single-word"]["private_key_base58"])
    with pytest.raises(iotlight.EncodingError, match="wrong key for this sender"):
        iotlight.sign_tx(_unsigned(vec["tx_json"]), other, bytes(64))


V1_DOCS = [t for t in TRANSFER_TXS if t["version"] == 1]


@pytest.mark.parametrize("vec", V1_DOCS, ids=_ids(V1_DOCS))
def test_v1_transfer_from_docs(vec):
    """The docs' v1 transfer: its key pair, its signature (as `signature` or `proofs`) and its fields."""
    fields = vec["fields"]
    keys = iotlight.keypair_from_private_key(iotlight.b58decode(fields["private_key_base58_from_docs"]))
    assert iotlight.b58encode(keys.public_key) == fields["senderPublicKey"]
    assert iotlight.b58encode(bytes(fields["attachment_bytes"])) == fields["attachment"]
    body = bytes.fromhex(vec["body_bytes_hex"])
    assert vec["signature_verifies"] is True
    assert iotlight.verify(keys.public_key, body, iotlight.b58decode(vec["signature_base58"])) is True
    only_signature = {k: v for k, v in vec["tx_json"].items() if k != "proofs"}
    signature = iotlight.b58decode(only_signature["signature"])
    assert iotlight.verify(keys.public_key, iotlight.tx_body_bytes(only_signature), signature) is True
    assert iotlight.tx_id(only_signature) == vec["id"]


# --- fees ----------------------------------------------------------------------------------

DATA_TXS = [t for t in DATA["vectors"] if t["version"] == 1]  # Data v2: test_reference.py


@pytest.mark.parametrize("vec", DATA_TXS, ids=_ids(DATA_TXS))
def test_data_fee_matches_node_rules(vec):
    """data_fee(waves) is the highest Waves node rule; data_fee(0bs) the 30-unit Zbs rule; fee_used is enough."""
    tx = vec["tx_json"]
    rules = vec["fee_rules"]
    waves_rules = [
        v for k, v in rules.items() if k.startswith("min_fee_") and not k.endswith("_rule") and "zbs" not in k
    ]
    assert len(waves_rules) == 2
    assert iotlight.data_fee(tx, "waves") == max(waves_rules)
    if "min_fee_zbs_if_30_units" in rules:
        assert iotlight.data_fee(tx, "0bs") == rules["min_fee_zbs_if_30_units"]
    assert vec["fee_used"] == tx["fee"]
    assert vec["fee_used"] >= iotlight.data_fee(tx, _rules(vec["chain"]))
    assert iotlight.data_payload_size(tx["data"]) == rules["real_user_payload_bytes"]


TRANSFER_FEE_TXS = [t for t in TRANSFER_TXS if "library_call" in t and not t["tx_json"].get("feeAssetId")]


@pytest.mark.parametrize("vec", TRANSFER_FEE_TXS, ids=_ids(TRANSFER_FEE_TXS))
def test_transfer_fee_used_is_enough(vec):
    """Transfers paid in the chain coin pay at least transfer_fee() of their chain's rules."""
    assert vec["tx_json"]["fee"] >= iotlight.transfer_fee(_rules(vec["chain"]))


@pytest.mark.parametrize("vec", ISSUES, ids=_ids(ISSUES))
def test_issue_fee_used_is_enough(vec):
    """Issue transactions pay issue_fee() of their chain's rules (1 WAVES, 500 ZBS)."""
    assert vec["tx_json"]["fee"] >= iotlight.issue_fee(_rules(vec["chain"]))


# --- the node's JSON ----------------------------------------------------------------------------

NODE_JSON_TXS = [t for t in BODY_TXS if "node_json_expected" in t]


@pytest.mark.parametrize("vec", NODE_JSON_TXS, ids=_ids(NODE_JSON_TXS))
def test_node_json_consistent(vec):
    """The node's answer: same id, sender = our address of senderPublicKey, same proofs; it re-verifies."""
    node = vec["node_json_expected"]
    tx = vec["tx_json"]
    assert node["id"] == vec["id"]
    assert node["senderPublicKey"] == tx["senderPublicKey"]
    assert node["sender"] == iotlight.address_from_public_key(
        iotlight.b58decode(tx["senderPublicKey"]), vec["chain"]
    )
    assert node["proofs"] == tx["proofs"]
    for key in ("fee", "timestamp", "version", "type"):
        assert node[key] == tx[key]
    if vec["type"] == iotlight.TX_ISSUE:
        assert node["assetId"] == vec["id"] == vec["asset_id"]
    if vec["type"] == iotlight.TX_TRANSFER:
        assert node["recipient"] == tx["recipient"]
        assert node["amount"] == tx["amount"]
    # what the watcher reads back from the node must give the same id and a valid proof
    assert iotlight.tx_id(node) == vec["id"]
    proof = iotlight.b58decode(node["proofs"][0])
    assert iotlight.verify(iotlight.b58decode(node["senderPublicKey"]), iotlight.tx_body_bytes(node), proof)
    if vec["type"] in (iotlight.TX_TRANSFER, iotlight.TX_MASS_TRANSFER):
        assert iotlight.check_transfer_proof(node, vec["chain"]) is None


def test_token_asset_ids_are_issue_ids():
    """The "IoT-Light" asset ids are the ids of the two Issue vectors, per chain."""
    by_chain = {v["chain"]: v["id"] for v in ISSUES}
    assert TRANSFERS["token"]["asset_id_T"] == by_chain["T"]
    assert TRANSFERS["token"]["asset_id_Z"] == by_chain["Z"]


def test_compact_mass_transfer_does_not_verify_but_does_not_crash():
    """The compact form a recipient sees lacks the other items: check_transfer_proof names a reason, it
    does not raise."""
    item = MASS["as_seen_by_recipient_in_transactions_address"]["response_item"]
    assert iotlight.check_transfer_proof(item, "T") is not None
