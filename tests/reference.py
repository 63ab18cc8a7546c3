"""Independent reference code, written from waves-protocol.md, to cross-check iotlight.

Nothing here imports iotlight: this is a second implementation of the protocol on PyNaCl,
hashlib and pycryptodome, so a test that compares the two catches a bug in either, and the fake
node (tools/fakenode.py) judges every broadcast with it. It also holds the encoders only tests
need (Data v2, Issue v1/v3, the protobuf wire form, ...). Every vector in tests/vectors/ is
reproduced by it byte for byte (test_reference.py).

Sections (spec section in brackets): 1. hashes and base58 [3], 2. keys and addresses [2],
3. signatures [4], 4. transaction bytes [5-9], 5. signing and verifying transactions [5.1],
6. fees and Data limits [5.5, 8.4, 11], 7. the vectors.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
import struct
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from Crypto.Hash import keccak
from nacl import bindings as nb
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import VerifyKey

P25519 = 2**255 - 19
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
B58_LIMIT = 192  # the node refuses longer base58 strings in JSON byte fields
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
ISSUE, TRANSFER, MASS_TRANSFER, DATA = 3, 4, 11, 12
SIGNATURE_V1 = {(TRANSFER, 1), (ISSUE, 1)}  # wire form: type || signature || body
PROTOBUF = {(TRANSFER, 3), (MASS_TRANSFER, 2), (DATA, 2), (ISSUE, 3)}


class Invalid(ValueError):
    """A value no node takes: bad base58, an address of another chain, a field out of range, ..."""


# =============================================================================
# 1. Hashes and base58 (spec 3)
# =============================================================================


def blake2b256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def keccak256(data: bytes) -> bytes:
    """Original Keccak-256 (padding 0x01), not NIST SHA3-256."""
    return keccak.new(data=data, digest_bits=256).digest()


def secure_hash(data: bytes) -> bytes:
    """keccak256(blake2b256(data))."""
    return keccak256(blake2b256(data))


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def b58decode(text: str, limit: int = B58_LIMIT) -> bytes:
    if not isinstance(text, str):
        raise Invalid("base58 value must be a string, not %r" % (text,))
    if len(text) > limit:
        raise Invalid("base58 string of %d characters is longer than %d" % (len(text), limit))
    n = 0
    for c in text:
        if c not in B58:
            raise Invalid("invalid base58 character %r" % c)
        n = n * 58 + B58.index(c)
    zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * zeros + n.to_bytes((n.bit_length() + 7) // 8, "big")


def base64_decode(text: str) -> bytes:
    """A `base64:` value as the node reads it (java.util.Base64's basic decoder): standard alphabet,
    the padding may be left out, but padding that is there completes the last unit."""
    if not isinstance(text, str):
        raise Invalid("base64 must be a string, not %r" % (text,))
    m = re.fullmatch(r"([A-Za-z0-9+/]*)(=*)", text[7:] if text.startswith("base64:") else text)
    if not m or len(m.group(1)) % 4 == 1 or (m.group(2) and len(m.group(2)) != -len(m.group(1)) % 4):
        raise Invalid("not valid base64 (the node refuses it): %r" % text[:40])
    return base64.b64decode(m.group(1) + "=" * (-len(m.group(1)) % 4))


# =============================================================================
# 2. Keys and addresses (spec 2)
# =============================================================================


@dataclasses.dataclass(frozen=True)
class KeyPair:
    private_key: bytes = dataclasses.field(repr=False)
    public_key: bytes

    def address(self, chain_id: str) -> str:
        return address(self.public_key, chain_id)


def keys_from_private_key(private_key: bytes) -> KeyPair:
    """The X25519 public key (libsodium crypto_scalarmult_base) of a private key."""
    if len(private_key) != 32:
        raise Invalid("a private key is 32 bytes, not %d" % len(private_key))
    return KeyPair(private_key, nb.crypto_scalarmult_base(private_key))


def keys_from_seed(seed: Any, nonce: int = 0) -> KeyPair:
    """Seed phrase (UTF-8, as typed) -> sha256(secure_hash(uint32_be(nonce) || seed)), clamped."""
    seed_bytes = seed.encode("utf-8") if isinstance(seed, str) else bytes(seed)
    k = bytearray(hashlib.sha256(secure_hash(nonce.to_bytes(4, "big") + seed_bytes)).digest())
    k[0] &= 248
    k[31] = (k[31] & 127) | 64
    return keys_from_private_key(bytes(k))


def chain_char(chain_id: Any) -> str:
    """A chain id as its character: from "T" or from its byte 84."""
    if isinstance(chain_id, int) and not isinstance(chain_id, bool) and 0 < chain_id < 128:
        return chr(chain_id)
    if isinstance(chain_id, str) and len(chain_id) == 1 and 0 < ord(chain_id) < 128:
        return chain_id
    raise Invalid("a chain id is one ASCII character or its byte, not %r" % (chain_id,))


def address_bytes(public_key: bytes, chain_id: Any) -> bytes:
    """0x01 || chain byte || secure_hash(public key)[:20] || checksum (4 bytes)."""
    head = bytes([1, ord(chain_char(chain_id))]) + secure_hash(public_key)[:20]
    return head + secure_hash(head)[:4]


def address(public_key: bytes, chain_id: Any) -> str:
    return b58encode(address_bytes(public_key, chain_id))


def parse_address(text: str, chain_id: Any = None) -> bytes:
    """The 26 bytes of an address (an `address:` prefix is stripped); Invalid for a wrong length,
    version, checksum or (when chain_id is given) chain."""
    if isinstance(text, str) and text.startswith("address:"):
        text = text[len("address:") :]
    raw = b58decode(text)
    if len(raw) != 26:
        raise Invalid("an address is 26 bytes (35 base58 characters), got %d bytes" % len(raw))
    if raw[0] != 1:
        raise Invalid("unknown address version %d" % raw[0])
    if chain_id is not None and raw[1] != ord(chain_char(chain_id)):
        raise Invalid("address is for chain %r, not %r" % (chr(raw[1]), chain_char(chain_id)))
    if secure_hash(raw[:22])[:4] != raw[22:]:
        raise Invalid("address checksum does not match")
    return raw


ALIAS_CHARS = frozenset("-.0123456789@_abcdefghijklmnopqrstuvwxyz")


def parse_alias(text: str, chain_id: Any = None) -> str:
    """`alias:<chain>:<name>` (or a bare name, for chain_id) -> the canonical `alias:<chain>:<name>`."""
    if not isinstance(text, str):
        raise Invalid("an alias is a string, not %r" % (text,))
    chain, name = None if chain_id is None else chain_char(chain_id), text
    if text.startswith("alias:"):  # read by position: the chain is one character, which may be ':'
        if len(text) < 8 or text[7] != ":":
            raise Invalid("an alias is written alias:<chain>:<name>, not %r" % text)
        if chain is not None and text[6] != chain:
            raise Invalid("alias is for chain %r, not %r" % (text[6], chain))
        chain, name = chain_char(text[6]), text[8:]
    if chain is None:
        raise Invalid("alias %r names no chain" % text)
    if not 4 <= len(name) <= 30 or set(name) - ALIAS_CHARS:
        raise Invalid("an alias name has 4 to 30 characters of a-z 0-9 - . @ _, not %r" % name)
    return "alias:%s:%s" % (chain, name)


# =============================================================================
# 3. Signatures (spec 4): the Curve25519 ("axolotl") scheme on libsodium's Ed25519 arithmetic
# =============================================================================


def sign(private_key: bytes, message: bytes, random_z: Optional[bytes] = None) -> bytes:
    """64-byte signature of message (4.1); random_z: 64 random bytes (fixed only in tests)."""
    z = os.urandom(64) if random_z is None else random_z
    if len(z) != 64:
        raise Invalid("signature randomness must be 64 bytes")
    a_bytes = bytearray(private_key)
    a_bytes[0] &= 248
    a_bytes[31] = (a_bytes[31] & 127) | 64
    a = nb.crypto_core_ed25519_scalar_reduce(bytes(a_bytes) + bytes(32))
    big_a = nb.crypto_scalarmult_ed25519_base_noclamp(a)
    r = nb.crypto_core_ed25519_scalar_reduce(
        hashlib.sha512(b"\xfe" + b"\xff" * 31 + bytes(a_bytes) + message + z).digest()
    )
    big_r = nb.crypto_scalarmult_ed25519_base_noclamp(r)
    h = nb.crypto_core_ed25519_scalar_reduce(hashlib.sha512(big_r + big_a + message).digest())
    s = bytearray(nb.crypto_core_ed25519_scalar_add(nb.crypto_core_ed25519_scalar_mul(h, a), r))
    s[31] |= big_a[31] & 0x80  # A's sign bit rides in the top bit of S
    return big_r + bytes(s)


def nacl_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Section 4.2: X25519 key -> Edwards y, sign bit from sig[63], then standard Ed25519 (libsodium)."""
    u = int.from_bytes(public_key, "little") & ((1 << 255) - 1)
    y = (u - 1) * pow(u + 1, P25519 - 2, P25519) % P25519
    ed_pub = bytearray(y.to_bytes(32, "little"))
    ed_pub[31] = (ed_pub[31] & 0x7F) | (signature[63] & 0x80)
    sig = signature[:63] + bytes([signature[63] & 0x7F])
    try:
        VerifyKey(bytes(ed_pub)).verify(message, sig)
        return True
    except BadSignatureError:
        return False


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """nacl_verify, False (never an exception) for keys and signatures of the wrong size."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        return nacl_verify(public_key, message, signature)
    except (CryptoError, ValueError, TypeError):
        return False


# =============================================================================
# 4. Transaction bytes (spec 5-9): legacy binary and protobuf, from the broadcast JSON
# =============================================================================


def _int(v: Any, what: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not INT64_MIN <= v <= INT64_MAX:
        raise Invalid("%s must be a 64-bit integer, not %r" % (what, v))
    return v


def _i64(v: Any, what: str) -> bytes:
    return struct.pack(">q", _int(v, what))


def _utf8(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise Invalid("%s must be a string, not %r" % (what, text))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid("%s is not valid Unicode (a lone surrogate?)" % what) from None


def _short(data: bytes, what: str) -> bytes:
    """uint16 length || bytes (a "short array")."""
    if len(data) > 0xFFFF:
        raise Invalid("%s is %d bytes, more than 65535" % (what, len(data)))
    return struct.pack(">H", len(data)) + data


def _asset(asset_id: Any, what: str = "assetId") -> bytes:
    """32 bytes of a token id; b"" for the chain's coin (null)."""
    if asset_id is None or asset_id == "":
        return b""
    raw = b58decode(asset_id)
    if len(raw) != 32:
        raise Invalid("%s: an asset id is 32 bytes, not %d" % (what, len(raw)))
    return raw


def _pk(tx: Dict[str, Any]) -> bytes:
    pk = b58decode(tx.get("senderPublicKey"))
    if len(pk) != 32:
        raise Invalid("senderPublicKey must be 32 bytes, not %d" % len(pk))
    return pk


def _attachment(tx: Dict[str, Any]) -> bytes:
    raw = b58decode(tx.get("attachment") or "")
    if len(raw) > 140:
        raise Invalid("attachment is %d bytes, more than 140" % len(raw))
    return raw


def _list(tx: Dict[str, Any], key: str) -> List[Dict[str, Any]]:
    items = tx.get(key)
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items) or len(items) > 0xFFFF:
        raise Invalid("%s must be a list of objects" % key)
    return items


def _recipient(text: Any, chain: Optional[str]) -> Tuple[str, Optional[bytes], Optional[str]]:
    """(chain, address bytes, None) or (chain, None, alias name) of a JSON recipient."""
    if not isinstance(text, str):
        raise Invalid("a recipient is an address or alias:<chain>:<name>, not %r" % (text,))
    if text.startswith("alias:"):
        canonical = parse_alias(text, chain)
        return canonical[6], None, canonical[8:]
    raw = parse_address(text, chain)
    return chr(raw[1]), raw, None


def _chain(tx: Dict[str, Any], *, needed: bool) -> Optional[str]:
    """The JSON chainId; when needed and absent, the chain of the (first) recipient."""
    if tx.get("chainId") is not None:
        return chain_char(tx["chainId"])
    if not needed:
        return None
    items = tx.get("transfers")
    first = tx.get("recipient") or (items[0] if isinstance(items, list) and items else {}).get("recipient")
    if not isinstance(first, str):
        raise Invalid("transaction has no chainId")
    return _recipient(first, None)[0]


def _legacy_asset(asset_id: Any, what: str = "assetId") -> bytes:
    raw = _asset(asset_id, what)
    return b"\x01" + raw if raw else b"\x00"


def _legacy_recipient(text: Any, chain: Optional[str]) -> bytes:
    c, raw, alias = _recipient(text, chain)
    return raw if raw is not None else bytes([2, ord(c)]) + _short(alias.encode(), "alias")


# -- protobuf, as ScalaPB writes it deterministically (5.2): fields in order, defaults left out,
#    set sub-messages and oneof members written even when empty (keep=True)


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # a negative int64 takes 10 bytes
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


def _pb_int(field: int, value: int, keep: bool = False) -> bytes:
    return _varint(field << 3) + _varint(value) if value or keep else b""


def _pb_bytes(field: int, value: bytes, keep: bool = False) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(value)) + value if value or keep else b""


def _pb_amount(asset_id: Any, amount: Any, what: str = "assetId") -> bytes:
    return _pb_bytes(1, _asset(asset_id, what)) + _pb_int(2, _int(amount, "amount"))


def _pb_recipient(text: Any, chain: Optional[str]) -> bytes:
    _, raw, alias = _recipient(text, chain)
    return _pb_bytes(1, raw[2:22], True) if raw is not None else _pb_bytes(2, alias.encode(), True)


def _pb_transaction(tx: Dict[str, Any], field: int, data: bytes) -> bytes:
    """waves.Transaction: chain_id 1, sender_public_key 2, fee 3, timestamp 4, version 5, data."""
    return (
        _pb_int(1, ord(_chain(tx, needed=True)))
        + _pb_bytes(2, _pk(tx))
        + _pb_bytes(3, _pb_amount(tx.get("feeAssetId"), _int(tx.get("fee"), "fee"), "feeAssetId"), True)
        + _pb_int(4, _int(tx.get("timestamp"), "timestamp"))
        + _pb_int(5, tx["version"])
        + _pb_bytes(field, data, True)
    )


# -- Data entries (8.1-8.3)

DATA_TYPES = {"integer": 0, "boolean": 1, "binary": 2, "string": 3}


def data_entry(entry: Any) -> Tuple[bytes, Optional[str], bytes]:
    """(key, type, value) of a JSON entry as bytes: an integer's 8 bytes, a boolean's 1, a string's
    UTF-8, a binary's decoded bytes; type None (and b"") for a delete entry."""
    key = entry.get("key") if isinstance(entry, dict) else None
    if not isinstance(key, str) or not key:
        raise Invalid("a data entry needs a non-empty string key")
    key_bytes, kind, value = _utf8(key, "data key %r" % key), entry.get("type"), entry.get("value")
    what = "data entry %r" % key
    if kind is None and value is None:
        return key_bytes, None, b""
    if kind == "integer":
        return key_bytes, kind, _i64(value, what)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise Invalid("%s: boolean value must be true or false" % what)
        return key_bytes, kind, bytes([value])
    if kind == "string":
        if not isinstance(value, str):
            raise Invalid("%s: string value must be a string" % what)
        return key_bytes, kind, _utf8(value, what + ": string value")
    if kind == "binary":
        try:
            return key_bytes, kind, base64_decode(value)
        except Invalid:
            raise Invalid("%s: binary value is not valid base64" % what) from None
    raise Invalid("%s: unknown type %r" % (what, kind))


def _legacy_entry(entry: Any) -> bytes:
    key, kind, value = data_entry(entry)
    if kind is None:
        raise Invalid("data entry %r: deleting a key needs Data version 2" % entry["key"])
    if kind in ("string", "binary"):
        value = _short(value, "data entry %r" % entry["key"])
    return _short(key, "data key") + bytes([DATA_TYPES[kind]]) + value


def _pb_entry(entry: Any) -> bytes:
    """DataEntry: key 1, then one of int_value 10, bool_value 11, binary_value 12, string_value 13."""
    key, kind, value = data_entry(entry)
    out = _pb_bytes(1, key)
    if kind == "integer":
        return out + _pb_int(10, int.from_bytes(value, "big", signed=True), True)
    if kind == "boolean":
        return out + _pb_int(11, value[0], True)
    if kind is not None:
        return out + _pb_bytes(12 if kind == "binary" else 13, value, True)
    return out


def data_payload(entries: Sequence[Any]) -> bytes:
    """Serialized DataTransactionData (field 1: the repeated entries)."""
    return b"".join(_pb_bytes(1, _pb_entry(e), True) for e in entries)


# -- the body of each type and version


def _transfer_legacy(tx: Dict[str, Any]) -> bytes:
    return (
        (b"\x04" if tx["version"] == 1 else b"\x04\x02")
        + _pk(tx)
        + _legacy_asset(tx.get("assetId"))
        + _legacy_asset(tx.get("feeAssetId"), "feeAssetId")
        + _i64(tx.get("timestamp"), "timestamp")
        + _i64(tx.get("amount"), "amount")
        + _i64(tx.get("fee"), "fee")
        + _legacy_recipient(tx.get("recipient"), _chain(tx, needed=False))
        + _short(_attachment(tx), "attachment")
    )


def _transfer_pb(tx: Dict[str, Any]) -> bytes:
    data = (
        _pb_bytes(1, _pb_recipient(tx.get("recipient"), _chain(tx, needed=True)), True)
        + _pb_bytes(2, _pb_amount(tx.get("assetId"), tx.get("amount")), True)
        + _pb_bytes(3, _attachment(tx))
    )
    return _pb_transaction(tx, 104, data)


def _mass_legacy(tx: Dict[str, Any]) -> bytes:
    items = _list(tx, "transfers")
    chain = _chain(tx, needed=bool(items))  # every recipient on one chain (the node's V.chainIds)
    return (
        b"\x0b\x01"
        + _pk(tx)
        + _legacy_asset(tx.get("assetId"))
        + struct.pack(">H", len(items))
        + b"".join(
            _legacy_recipient(i.get("recipient"), chain) + _i64(i.get("amount"), "amount") for i in items
        )
        + _i64(tx.get("timestamp"), "timestamp")
        + _i64(tx.get("fee"), "fee")
        + _short(_attachment(tx), "attachment")
    )


def _mass_pb(tx: Dict[str, Any]) -> bytes:
    chain = _chain(tx, needed=True)
    items = b"".join(
        _pb_bytes(
            2,
            _pb_bytes(1, _pb_recipient(i.get("recipient"), chain), True)
            + _pb_int(2, _int(i.get("amount"), "amount")),
            True,
        )
        for i in _list(tx, "transfers")
    )
    return _pb_transaction(
        tx, 111, _pb_bytes(1, _asset(tx.get("assetId"))) + items + _pb_bytes(3, _attachment(tx))
    )


def _data_legacy(tx: Dict[str, Any]) -> bytes:
    entries = _list(tx, "data")
    return (
        b"\x0c\x01"
        + _pk(tx)
        + struct.pack(">H", len(entries))
        + b"".join(_legacy_entry(e) for e in entries)
        + _i64(tx.get("timestamp"), "timestamp")
        + _i64(tx.get("fee"), "fee")
    )


def _data_pb(tx: Dict[str, Any]) -> bytes:
    return _pb_transaction(tx, 112, data_payload(_list(tx, "data")))


def _issue_fields(tx: Dict[str, Any]) -> Tuple[bytes, bytes, int, int, bool, bytes]:
    """name, description, quantity, decimals, reissuable, script bytes (b"" for none)."""
    decimals, reissuable, script = tx.get("decimals"), tx.get("reissuable"), tx.get("script")
    if not isinstance(decimals, int) or isinstance(decimals, bool) or not 0 <= decimals <= 8:
        raise Invalid("decimals must be from 0 to 8, not %r" % (decimals,))
    if not isinstance(reissuable, bool):
        raise Invalid("reissuable must be true or false, not %r" % (reissuable,))
    return (
        _utf8(tx.get("name"), "the token name"),
        _utf8(tx.get("description", ""), "the token description"),
        _int(tx.get("quantity"), "quantity"),
        decimals,
        reissuable,
        base64_decode(script) if script else b"",
    )


def _issue_legacy(tx: Dict[str, Any]) -> bytes:
    name, description, quantity, decimals, reissuable, script = _issue_fields(tx)
    v2 = tx["version"] == 2
    body = (
        (b"\x03\x02" + chain_char(_chain(tx, needed=True)).encode() if v2 else b"\x03")
        + _pk(tx)
        + _short(name, "name")
        + _short(description, "description")
        + _i64(quantity, "quantity")
        + bytes([decimals, reissuable])
        + _i64(tx.get("fee"), "fee")
        + _i64(tx.get("timestamp"), "timestamp")
    )
    if not v2:
        return body
    return body + (b"\x01" + _short(script, "script") if script else b"\x00")


def _issue_pb(tx: Dict[str, Any]) -> bytes:
    name, description, quantity, decimals, reissuable, script = _issue_fields(tx)
    data = (
        _pb_bytes(1, name)
        + _pb_bytes(2, description)
        + _pb_int(3, quantity)
        + _pb_int(4, decimals)
        + _pb_int(5, reissuable)
        + _pb_bytes(6, script)
    )
    return _pb_transaction(tx, 103, data)


BODIES = {
    (TRANSFER, 1): _transfer_legacy,
    (TRANSFER, 2): _transfer_legacy,
    (TRANSFER, 3): _transfer_pb,
    (MASS_TRANSFER, 1): _mass_legacy,
    (MASS_TRANSFER, 2): _mass_pb,
    (DATA, 1): _data_legacy,
    (DATA, 2): _data_pb,
    (ISSUE, 1): _issue_legacy,
    (ISSUE, 2): _issue_legacy,
    (ISSUE, 3): _issue_pb,
}


def _kind(tx: Any) -> Tuple[Any, Any]:
    if not isinstance(tx, dict):
        raise Invalid("a transaction is a JSON object")
    t = tx.get("type")
    return t, tx.get("version", 1 if t == TRANSFER else None)  # Transfer alone defaults to v1


def tx_body_bytes(tx: Dict[str, Any]) -> bytes:
    """The bytes the proofs sign: legacy binary or a serialized waves.Transaction."""
    t, v = _kind(tx)
    encode = BODIES.get((t, v)) if isinstance(v, int) and not isinstance(v, bool) else None
    if encode is None:
        raise Invalid("unsupported transaction type %r version %r" % (t, v))
    return encode(dict(tx, version=v))


def tx_id(tx: Dict[str, Any]) -> str:
    """base58(blake2b256(body bytes))."""
    return b58encode(blake2b256(tx_body_bytes(tx)))


def _proofs(tx: Dict[str, Any]) -> List[bytes]:
    proofs = tx.get("proofs") or ([tx["signature"]] if tx.get("signature") else [])
    if not isinstance(proofs, list):
        raise Invalid("proofs must be a list")
    return [b58decode(p) for p in proofs]


def tx_signed_bytes(tx: Dict[str, Any]) -> bytes:
    """The wire form: v1 `type signature body`; MassTransfer v1 `body proofs`; other legacy
    `0x00 body proofs`; protobuf a serialized SignedTransaction (transaction 1, proofs 2)."""
    body, proofs, kind = tx_body_bytes(tx), _proofs(tx), _kind(tx)
    if kind in SIGNATURE_V1:
        if len(proofs) != 1 or len(proofs[0]) != 64:
            raise Invalid("a version 1 transaction carries one 64-byte signature")
        return bytes([kind[0]]) + proofs[0] + body
    if kind in PROTOBUF:
        return _pb_bytes(1, body, True) + b"".join(_pb_bytes(2, p, True) for p in proofs)
    legacy_proofs = b"\x01" + struct.pack(">H", len(proofs)) + b"".join(_short(p, "proof") for p in proofs)
    return (b"" if kind[0] == MASS_TRANSFER else b"\x00") + body + legacy_proofs


# =============================================================================
# 5. Signing and verifying transactions
# =============================================================================


def sign_tx(tx: Dict[str, Any], private_key: bytes, random_z: Optional[bytes] = None) -> Dict[str, Any]:
    """A copy of tx with one proof by private_key and its id (any `signature` dropped); Invalid when
    the key is not senderPublicKey's."""
    out = dict(tx)
    out.pop("signature", None)
    body = tx_body_bytes(out)
    sig = sign(private_key, body, random_z)
    if not verify(_pk(out), body, sig):
        raise Invalid("the signature does not verify under senderPublicKey: wrong key for this sender")
    out["proofs"] = [b58encode(sig)]
    out["id"] = b58encode(blake2b256(body))
    return out


def verify_tx(tx: Any) -> bool:
    """Whether the transaction's one proof (`proofs`, or a v1 `signature`) signs its body with
    senderPublicKey; False, never an exception, for anything malformed (5.1, 4.3: an account without
    a script carries exactly one proof)."""
    try:
        body, proofs = tx_body_bytes(tx), _proofs(tx)
        return len(proofs) == 1 and verify(_pk(tx), body, proofs[0])
    except (Invalid, LookupError, TypeError, ValueError, AttributeError):
        return False


# =============================================================================
# 6. Fees and Data limits (spec 5.5, 8.4, 11)
# =============================================================================
#
# rules: "waves" (the node source: fee unit 0.001 WAVES) or "0bs" (the 0bs docs' values, which
# also satisfy the Zbs source rule: section 11 leaves open which one the network enforced).

FEE_UNIT = 100_000
SMART_EXTRA = 400_000  # per smart asset involved
DATA_MAX_ENTRIES = 100
DATA_MAX_KEY_BYTES = 400  # Waves, feature 17, any version
DATA_MAX_KEY_CHARS_0BS = 100  # Zbs: Java chars (UTF-16 units)
DATA_MAX_VALUE = 32_767
DATA_MAX_PAYLOAD = 165_835  # Waves, feature 17: sum of key and value sizes
DATA_MAX_V1_BYTES = 153_600  # Zbs (and Waves before feature 17): the whole signed v1 transaction


def transfer_fee(rules: str = "waves", *, smart_asset: bool = False) -> int:
    if rules == "0bs":
        return 5_000_000
    return FEE_UNIT + (SMART_EXTRA if smart_asset else 0)


def mass_transfer_fee(n: int, rules: str = "waves", *, smart_asset: bool = False) -> int:
    """Waves: 1 + floor((n+1)/2) units for n transfers; 0bs: that, and at least the docs' 0.05 ZBS."""
    units = FEE_UNIT * (1 + (n + 1) // 2)
    if rules == "0bs":
        return max(5_000_000, units)
    return units + (SMART_EXTRA if smart_asset else 0)


def issue_fee(rules: str = "waves", *, nft: bool = False) -> int:
    if rules == "0bs":
        return 500 * 10**8
    return FEE_UNIT if nft else 1000 * FEE_UNIT


def data_payload_size(entries: Sequence[Any]) -> int:
    """Sum of UTF-8 key lengths and value sizes (integer 8, boolean 1, bytes, delete 0)."""
    return sum(len(key) + len(value) for key, _, value in map(data_entry, entries))


def _units(size: int) -> int:
    return 1 + max(size - 1, 0) // 1024  # the node's Int division: 1 unit for an empty payload too


def data_fee(tx: Dict[str, Any], rules: str = "waves") -> int:
    """Minimum fee of a Data transaction. Waves: the highest of the node's rules (feature 17: the
    payload size; before it: the v1 body or the v2 DataTransactionData size). 0bs: 30 units per
    started KB of the v1 body (a Zbs branch; the docs' 0.03 ZBS)."""
    body = len(tx_body_bytes(dict(tx, fee=tx.get("fee") or 0)))
    if rules == "0bs":
        return FEE_UNIT * (30 + (body - 1) // 1024)
    entries = _list(tx, "data")
    before = body if tx.get("version") == 1 else len(data_payload(entries))
    return FEE_UNIT * max(_units(data_payload_size(entries)), _units(before))


def validate_data_entries(entries: Any, *, version: int = 1, rules: str = "waves") -> None:
    """Invalid for entries a node refuses: more than 100, an empty or repeated key, a key over 400
    UTF-8 bytes (0bs: over 100 UTF-16 units), a value over 32767 bytes, a delete in version 1, a
    payload over 165835 bytes (Waves)."""
    if not isinstance(entries, list):
        raise Invalid("data must be a list of entries")
    if len(entries) > DATA_MAX_ENTRIES:
        raise Invalid(
            "a Data transaction holds at most %d entries, not %d" % (DATA_MAX_ENTRIES, len(entries))
        )
    seen = set()
    for e in entries:
        key_bytes, kind, value = data_entry(e)
        key = e["key"]
        if key in seen:
            raise Invalid("data key %r appears twice" % key)
        seen.add(key)
        if len(key_bytes) > DATA_MAX_KEY_BYTES:
            raise Invalid("data key %r is longer than 400 bytes" % key[:40])
        if rules == "0bs" and len(key.encode("utf-16-le")) // 2 > DATA_MAX_KEY_CHARS_0BS:
            raise Invalid("data key %r is longer than 100 characters (0bs rule)" % key[:40])
        if kind is None and version == 1:
            raise Invalid("data entry %r: deleting a key needs Data version 2" % key)
        if len(value) > DATA_MAX_VALUE and kind in ("string", "binary"):
            raise Invalid("data entry %r: value is longer than %d bytes" % (key, DATA_MAX_VALUE))
    total = data_payload_size(entries)
    if rules != "0bs" and total > DATA_MAX_PAYLOAD:
        raise Invalid("data entries total %d bytes, more than %d" % (total, DATA_MAX_PAYLOAD))


def validate_data_tx(tx: Dict[str, Any], rules: str = "waves") -> None:
    """validate_data_entries, and on 0bs the size of the whole signed v1 transaction."""
    validate_data_entries(tx.get("data"), version=tx.get("version"), rules=rules)
    if rules == "0bs":
        size = len(tx_signed_bytes(tx))
        if size > DATA_MAX_V1_BYTES:
            raise Invalid("Data transaction is %d bytes, more than %d" % (size, DATA_MAX_V1_BYTES))


def build_data_tx(
    keys: Any,
    entries: List[Dict[str, Any]],
    *,
    timestamp: int,
    chain_id: str,
    version: int = 1,
    fee: int = 0,
    rules: str = "waves",
    random_z: Optional[bytes] = None,
) -> Dict[str, Any]:
    """A signed Data transaction by keys (.public_key, .private_key) paying max(fee, data_fee)."""
    validate_data_entries(entries, version=version, rules=rules)
    tx = {
        "type": DATA,
        "version": version,
        "senderPublicKey": b58encode(keys.public_key),
        "fee": fee,
        "timestamp": timestamp,
        "chainId": ord(chain_char(chain_id)),
        "data": list(entries),
    }
    tx["fee"] = max(fee, data_fee(tx, rules))
    signed = sign_tx(tx, keys.private_key, random_z)
    validate_data_tx(signed, rules)
    return signed


# =============================================================================
# 7. The vectors (tests/vectors/, vendored: see its PROVENANCE.md)
# =============================================================================


def vectors_dir() -> Path:
    """tests/vectors inside the checkout: nothing outside it is read."""
    return Path(__file__).resolve().parent / "vectors"


def load_vectors(name: str) -> dict:
    return json.loads((vectors_dir() / name).read_text(encoding="utf-8"))
