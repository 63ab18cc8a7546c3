"""Independent reference code, written from waves-protocol.md, to cross-check iotlight.

Nothing here imports iotlight: these are second implementations on PyNaCl,
hashlib and pycryptodome, so a test that compares the two catches a bug in either.
"""

from __future__ import annotations

import hashlib

from Crypto.Hash import keccak
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

P25519 = 2**255 - 19
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


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


def secure_hash(data: bytes) -> bytes:
    """keccak256(blake2b256(data)), section 3."""
    blake = hashlib.blake2b(data, digest_size=32).digest()
    return keccak.new(data=blake, digest_bits=256).digest()


def address(public_key: bytes, chain_id: str) -> str:
    """Section 2.2, with a plain base58 encoder."""
    head = bytes([1, ord(chain_id)]) + secure_hash(public_key)[:20]
    raw = head + secure_hash(head)[:4]
    n = int.from_bytes(raw, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + out


# --- the vectors (tests/vectors/, vendored: see its PROVENANCE.md) -------------


def vectors_dir():
    """tests/vectors inside the checkout: nothing outside it is read."""
    from pathlib import Path

    return Path(__file__).resolve().parent / "vectors"


def load_vectors(name: str) -> dict:
    import json

    return json.loads((vectors_dir() / name).read_text(encoding="utf-8"))
