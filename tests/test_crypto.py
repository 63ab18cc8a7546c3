"""Waves cryptography: base58, hashes, keys, addresses, aliases and signatures.

The fixed vectors are in test_vectors.py; this file checks the rules around them,
with hypothesis generating inputs and tests/reference.py (PyNaCl, written from the
spec) as a second implementation. Signatures are also held to a small pure-Python model of
the Waves node's own check (curve25519-java = SUPERCOP ref10, and the node's weak-key list):
iotlight.verify follows the node, reference.verify keeps libsodium's stricter rule.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Optional, Tuple

import pytest
import reference
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from nacl import bindings as nb

import iotlight

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

B58 = iotlight.B58_ALPHABET
CHAINS = st.sampled_from("WTSZ:") | st.characters(min_codepoint=33, max_codepoint=126)
KEY_BYTES = st.binary(min_size=32, max_size=32)
Z_BYTES = st.binary(min_size=64, max_size=64)

# docs-example-15-words from accounts.json (a published, throwaway key)
DOCS_SEED = (
    "manage manual recall harvest series desert melt police rose hollow moral pledge kitten position add"
)
DOCS_ADDRESS_T = "3NBaYzWT2odsyrZ2u1ghsrHinBm4xFRAgLX"


# --- base58 ------------------------------------------------------------------------


def test_base58_alphabet_is_bitcoins():
    """The alphabet is Bitcoin's: no 0, O, I or l."""
    assert B58 == "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    assert len(set(B58)) == 58


@PROPS
@given(zeros=st.integers(0, 8), data=st.binary(max_size=96))
def test_base58_round_trip(zeros, data):
    """Any bytes survive encode then decode; each leading zero byte is one leading '1'."""
    raw = b"\0" * zeros + data
    text = iotlight.b58encode(raw)
    assert set(text) <= set(B58)
    assert iotlight.b58decode(text) == raw
    assert len(text) - len(text.lstrip("1")) == len(raw) - len(raw.lstrip(b"\0"))


@PROPS
@given(text=st.text(alphabet=B58, max_size=120))
def test_base58_decode_then_encode_is_identity(text):
    """Every string of alphabet characters is canonical: decoding and re-encoding gives it back."""
    assert iotlight.b58encode(iotlight.b58decode(text)) == text


NOT_B58 = st.characters(codec="utf-8").filter(lambda c: c not in B58)


@PROPS
@given(before=st.text(alphabet=B58, max_size=40), bad=NOT_B58, after=st.text(alphabet=B58, max_size=40))
def test_base58_rejects_bad_character_naming_it(before, bad, after):
    """A character outside the alphabet raises EncodingError naming it and its position."""
    with pytest.raises(iotlight.EncodingError) as info:
        iotlight.b58decode(before + bad + after)
    assert str(info.value) == "invalid base58 character %r at position %d" % (bad, len(before))


@pytest.mark.parametrize("bad", ["0", "O", "I", "l", " ", "+", "/", "="])
def test_base58_rejects_lookalikes_and_base64_characters(bad):
    """The characters people confuse (0 O I l) and base64's + / = are refused."""
    with pytest.raises(iotlight.EncodingError, match=re.escape(repr(bad))):
        iotlight.b58decode("3N" + bad + "x")


def test_base58_rejects_over_long_strings():
    """More than 192 characters is refused, as the node does; max_length moves the limit."""
    assert iotlight.b58decode("1" * 192) == b"\0" * 192
    with pytest.raises(iotlight.EncodingError, match="base58 string of 193 characters is longer than 192"):
        iotlight.b58decode("1" * 193)
    assert iotlight.b58decode("2" * 300, max_length=300)
    with pytest.raises(iotlight.EncodingError, match="longer than 10"):
        iotlight.b58decode("2" * 11, max_length=10)


@pytest.mark.parametrize("value", [None, b"3N", 42])
def test_base58_rejects_non_strings(value):
    """Bytes, numbers and None are not base58 text."""
    with pytest.raises(iotlight.EncodingError, match="base58 value must be a string"):
        iotlight.b58decode(value)


def test_encoding_error_is_a_value_error():
    """EncodingError is an IotlightError and a ValueError, as the error tree says."""
    assert issubclass(iotlight.EncodingError, iotlight.IotlightError)
    assert issubclass(iotlight.EncodingError, ValueError)


# --- hashes -----------------------------------------------------------------------------


@PROPS
@given(data=st.binary(max_size=300))
def test_hashes(data):
    """blake2b256 is BLAKE2b-256 (not truncated -512); keccak256 is not SHA3-256; secure = keccak(blake)."""
    blake = iotlight.blake2b256(data)
    assert blake == hashlib.blake2b(data, digest_size=32).digest()
    assert blake != hashlib.blake2b(data).digest()[:32]
    assert len(iotlight.keccak256(data)) == 32
    assert iotlight.keccak256(data) != hashlib.sha3_256(data).digest()
    assert iotlight.secure_hash(data) == iotlight.keccak256(blake) == reference.secure_hash(data)


# --- keys -----------------------------------------------------------------------------------


@PROPS
@given(seed=st.text(max_size=60), nonce=st.integers(0, 2**32 - 1))
def test_keys_from_any_seed(seed, nonce):
    """Any text seed and nonce give a clamped private key and its X25519 public key."""
    keys = iotlight.keypair_from_seed(seed, nonce)
    k = keys.private_key
    assert len(k) == 32 and k[0] & 7 == 0 and k[31] & 0x80 == 0 and k[31] & 0x40
    assert keys.public_key == nb.crypto_scalarmult_base(k)
    assert keys.public_key[31] & 0x80 == 0
    expected = hashlib.sha256(reference.secure_hash(nonce.to_bytes(4, "big") + seed.encode("utf-8"))).digest()
    assert k[1:31] == expected[1:31]


def test_seed_is_used_exactly_as_typed():
    """No trimming, no whitespace folding, no Unicode normalization, nonce matters."""
    variants = [
        DOCS_SEED,
        DOCS_SEED + " ",
        " " + DOCS_SEED,
        DOCS_SEED.replace(" ", "  ", 1),
        DOCS_SEED.upper(),
        DOCS_SEED + "\n",
    ]
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    variants += [nfc, nfd]
    public_keys = {iotlight.keypair_from_seed(s).public_key for s in variants}
    public_keys.add(iotlight.keypair_from_seed(DOCS_SEED, 1).public_key)
    assert len(public_keys) == len(variants) + 1
    assert iotlight.keypair_from_seed(DOCS_SEED).address("T") == DOCS_ADDRESS_T


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_private_key_must_be_32_bytes(size):
    """A private key of another length is refused with its length in the message."""
    with pytest.raises(iotlight.EncodingError, match="a private key is 32 bytes, not %d" % size):
        iotlight.keypair_from_private_key(b"\1" * size)


def test_key_pair_repr_hides_the_private_key():
    """repr (and so any log line or traceback) of a KeyPair never shows the private key."""
    keys = iotlight.keypair_from_seed(DOCS_SEED)
    text = repr(keys) + str(keys)
    assert keys.private_key.hex() not in text
    assert iotlight.b58encode(keys.private_key) not in text
    assert repr(keys.private_key) not in text


def test_generate_seed_phrase_uses_bip39_english():
    """15 words from the 2048-word BIP-39 English list, fresh each time."""
    from mnemonic import Mnemonic

    wordlist = set(Mnemonic("english").wordlist)
    assert len(wordlist) == 2048
    phrases = {iotlight.generate_seed_phrase() for _ in range(20)}
    assert len(phrases) == 20
    for phrase in phrases:
        words = phrase.split(" ")
        assert len(words) == 15 and set(words) <= wordlist
        assert phrase == " ".join(words)
    assert len(iotlight.generate_seed_phrase(12).split(" ")) == 12


# --- addresses ---------------------------------------------------------------------------------


@PROPS
@given(public_key=KEY_BYTES, chain=CHAINS)
def test_address_round_trip(public_key, chain):
    """Any 32-byte key on any chain gives a 35-character address that parses back to its 26 bytes."""
    address = iotlight.address_from_public_key(public_key, chain)
    assert len(address) == 35
    assert address == reference.address(public_key, chain)
    raw = iotlight.parse_address(address, chain)
    assert raw == iotlight.address_bytes_from_public_key(public_key, chain)
    assert raw[:2] == bytes([1, ord(chain)]) and raw[2:22] == iotlight.secure_hash(public_key)[:20]
    assert iotlight.parse_address("address:" + address, chain) == raw


@PROPS
@given(public_key=KEY_BYTES, chain=CHAINS, other=CHAINS)
def test_address_on_another_chain_is_refused(public_key, chain, other):
    """An address of one chain is refused on another, naming both."""
    assume(chain != other)
    address = iotlight.address_from_public_key(public_key, chain)
    with pytest.raises(iotlight.EncodingError) as info:
        iotlight.parse_address(address, other)
    assert str(info.value) == "address is for chain %r, not %r" % (chain, other)


@PROPS
@given(public_key=KEY_BYTES, chain=CHAINS, data=st.data())
def test_address_one_character_changed_is_refused(public_key, chain, data):
    """Changing any one character of an address makes it invalid; where the frame survives, the checksum says so."""
    address = iotlight.address_from_public_key(public_key, chain)
    pos = data.draw(st.integers(0, len(address) - 1), label="position")
    new = data.draw(st.sampled_from(B58).filter(lambda c: c != address[pos]), label="character")
    typo = address[:pos] + new + address[pos + 1 :]
    with pytest.raises(iotlight.EncodingError) as info:
        iotlight.parse_address(typo, chain)
    raw = iotlight.b58decode(typo)
    if len(raw) == 26 and raw[:2] == bytes([1, ord(chain)]):
        assert str(info.value) == "address checksum does not match (a typo?)"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "an address is 26 bytes (35 base58 characters), got 0 bytes"),
        (
            "HBqhfdFASRQ5eBBpu2y6c6KKi1az6bMx8v1JxX4iW1Q8",
            "an address is 26 bytes (35 base58 characters), got 32 bytes",
        ),
        (DOCS_ADDRESS_T[:-1], "an address is 26 bytes (35 base58 characters), got 25 bytes"),
        (DOCS_ADDRESS_T[:-1] + "0", "invalid base58 character '0' at position 34"),
        ("3PPbMwqLtwBGcJrTA5whqJfY95GqnNnFMDX", "address is for chain 'W', not 'T'"),
    ],
)
def test_parse_address_errors(text, message):
    """Wrong length, bad character and wrong chain each give their own message."""
    with pytest.raises(iotlight.EncodingError) as info:
        iotlight.parse_address(text, "T")
    assert str(info.value) == message


def test_parse_address_refuses_unknown_version():
    """Only address version 1 exists."""
    head = bytes([2, ord("T")]) + bytes(20)
    raw = head + iotlight.secure_hash(head)[:4]
    with pytest.raises(iotlight.EncodingError, match="unknown address version 2"):
        iotlight.parse_address(iotlight.b58encode(raw), "T")


@pytest.mark.parametrize("chain", ["", "TT", None, 84])
def test_chain_id_is_one_character(chain):
    """The chain id is a one-character string."""
    with pytest.raises(iotlight.EncodingError, match="chain id must be one character"):
        iotlight.chain_byte(chain)


# --- aliases -----------------------------------------------------------------------------------------

ALIAS_CHARS = "-.0123456789@_abcdefghijklmnopqrstuvwxyz"


@PROPS
@given(name=st.text(alphabet=ALIAS_CHARS, min_size=4, max_size=30), chain=CHAINS)
def test_alias_valid_names(name, chain):
    """A 4-30 character name from the alias alphabet, bare or prefixed, gives alias:<chain>:<name> on any
    chain, ':' included, and split_alias gives the chain and name back."""
    canonical = "alias:%s:%s" % (chain, name)
    assert iotlight.parse_alias(name, chain) == canonical
    assert iotlight.parse_alias(canonical, chain) == canonical
    assert iotlight.parse_recipient(canonical, chain) == canonical
    assert iotlight.split_alias(canonical) == (chain, name)


# --- aliases are read by position (issue item 8: edges found by a differential fuzz) ----------------
#
# `alias:` + one chain character + `:` + name. The old reader split on ':' and so refused every alias
# of a chain whose id is ':' ("alias:::lamp".split(":") has four parts).


@pytest.mark.parametrize(
    "text, chain, name",
    [
        ("alias:T:iot-light", "T", "iot-light"),
        ("alias:::iot-light", ":", "iot-light"),
        ("alias:W:a:b", "W", "a:b"),  # a ':' in the name is the name's (parse_alias refuses it)
        ("alias:::::", ":", "::"),
        ("alias:Z:", "Z", ""),
    ],
)
def test_split_alias_reads_by_position(text, chain, name):
    """split_alias takes the character after `alias:` as the chain and everything after the next ':' as
    the name, so a chain id ':' works."""
    assert iotlight.split_alias(text) == (chain, name)


@pytest.mark.parametrize(
    "text", ["alias:iot-light", "alias:TT:iot-light", "alias:T", "alias::", "alias", "", "T:iot-light"]
)
def test_split_alias_refuses_what_is_not_alias_chain_name(text):
    """No one-character chain between `alias:` and a ':': EncodingError quoting the text."""
    with pytest.raises(iotlight.EncodingError) as info:
        iotlight.split_alias(text)
    assert str(info.value) == "an alias is written alias:<chain>:<name>, not %r" % text


def test_alias_of_the_colon_chain():
    """On chain ':' a bare name and alias:::<name> both give alias:::<name> (parse_alias,
    parse_recipient); an alias of ':' on another chain, or of another chain on ':', is refused."""
    assert len("alias:::iot-light".split(":")) == 4, "what the old split-on-':' reader refused"
    for text in ("iot-light", "alias:::iot-light"):
        assert iotlight.parse_alias(text, ":") == "alias:::iot-light"
        assert iotlight.parse_recipient(text, ":") == "alias:::iot-light"
    with pytest.raises(iotlight.EncodingError) as info:
        iotlight.parse_alias("alias:::iot-light", "T")
    assert str(info.value) == "alias is for chain ':', not 'T'"
    with pytest.raises(iotlight.EncodingError) as info:
        iotlight.parse_alias("alias:T:iot-light", ":")
    assert str(info.value) == "alias is for chain 'T', not ':'"
    with pytest.raises(iotlight.EncodingError) as info:
        iotlight.parse_alias("alias:::iot:light", ":")
    assert str(info.value) == "alias name 'iot:light' has characters outside a-z 0-9 - . @ _: :"


@PROPS
@given(
    good=st.text(alphabet=ALIAS_CHARS, min_size=4, max_size=20),
    bad=st.characters(codec="utf-8").filter(lambda c: c not in ALIAS_CHARS and c != ":"),
)
def test_alias_bad_character_named(good, bad):
    """A character outside a-z 0-9 - . @ _ is refused and named."""
    name = good[:2] + bad + good[2:]
    with pytest.raises(iotlight.EncodingError) as info:
        iotlight.parse_alias(name, "T")
    assert str(info.value) == "alias name %r has characters outside a-z 0-9 - . @ _: %s" % (name, bad)


@pytest.mark.parametrize(
    "text, message",
    [
        ("iot", "an alias name has 4 to 30 characters, 'iot' has 3"),
        ("a" * 31, "an alias name has 4 to 30 characters, %r has 31" % ("a" * 31)),
        ("alias:W:iot-light", "alias is for chain 'W', not 'T'"),
        ("alias:iot-light", "an alias is written alias:<chain>:<name>, not 'alias:iot-light'"),
        ("alias:TT:iot-light", "an alias is written alias:<chain>:<name>, not 'alias:TT:iot-light'"),
        ("IoT-Light", "alias name 'IoT-Light' has characters outside a-z 0-9 - . @ _: ILT"),
    ],
)
def test_alias_errors(text, message):
    """Too short, too long, wrong chain, malformed prefix and upper case each have a clear message."""
    with pytest.raises(iotlight.EncodingError) as info:
        iotlight.parse_alias(text, "T")
    assert str(info.value) == message


def test_parse_recipient_forms():
    """Addresses (bare or address:) stay addresses; alias forms become alias:<chain>:<name>."""
    assert iotlight.parse_recipient(DOCS_ADDRESS_T, "T") == DOCS_ADDRESS_T
    assert iotlight.parse_recipient("address:" + DOCS_ADDRESS_T, "T") == DOCS_ADDRESS_T
    assert iotlight.parse_recipient("iot-light", "T") == "alias:T:iot-light"
    assert iotlight.parse_recipient("alias:T:iot-light", "T") == "alias:T:iot-light"


def test_parse_recipient_typo_in_address_is_a_checksum_error():
    """A mistyped address is reported as a checksum error, not taken for an alias."""
    typo = DOCS_ADDRESS_T[:10] + ("a" if DOCS_ADDRESS_T[10] != "a" else "b") + DOCS_ADDRESS_T[11:]
    with pytest.raises(iotlight.EncodingError, match="address checksum does not match"):
        iotlight.parse_recipient(typo, "T")
    with pytest.raises(iotlight.EncodingError, match="address is for chain 'W', not 'T'"):
        iotlight.parse_recipient("3PPbMwqLtwBGcJrTA5whqJfY95GqnNnFMDX", "T")


# --- signatures -------------------------------------------------------------------------------------


def _clamped(private_key: bytes) -> bytes:
    a = bytearray(private_key)
    a[0] &= 248
    a[31] &= 127
    a[31] |= 64
    return bytes(a)


def _ed25519_a(private_key: bytes) -> bytes:
    """A = a*B with a = the clamped private key, straight from libsodium."""
    return nb.crypto_scalarmult_ed25519_base_noclamp(
        nb.crypto_core_ed25519_scalar_reduce(_clamped(private_key) + bytes(32))
    )


@PROPS
@given(private_key=KEY_BYTES, message=st.binary(max_size=2048), z=Z_BYTES)
def test_signature_verifies_both_ways(private_key, message, z):
    """A signature verifies with iotlight.verify and plain libsodium (4.2); byte 63 carries A's sign bit."""
    keys = iotlight.keypair_from_private_key(private_key)
    sig = iotlight.sign(private_key, message, z)
    assert len(sig) == 64
    assert iotlight.verify(keys.public_key, message, sig) is True
    assert reference.nacl_verify(keys.public_key, message, sig) is True
    a = _ed25519_a(private_key)
    assert sig[63] & 0x80 == a[31] & 0x80
    assert iotlight.ed25519_public_key(keys.public_key, a[31]) == a


@PROPS
@given(private_key=KEY_BYTES, message=st.binary(min_size=1, max_size=200), z=Z_BYTES, data=st.data())
def test_any_flipped_bit_breaks_the_signature(private_key, message, z, data):
    """Flipping one bit of the message or of the signature makes both verifiers say False."""
    keys = iotlight.keypair_from_private_key(private_key)
    sig = iotlight.sign(private_key, message, z)
    bit = data.draw(st.integers(0, 8 * (len(message) + 64) - 1), label="bit")
    msg, s = bytearray(message), bytearray(sig)
    target, index = (msg, bit // 8) if bit < 8 * len(message) else (s, bit // 8 - len(message))
    target[index] ^= 1 << (bit % 8)
    assert iotlight.verify(keys.public_key, bytes(msg), bytes(s)) is False
    assert reference.nacl_verify(keys.public_key, bytes(msg), bytes(s)) is False


@FEW
@given(private_key=KEY_BYTES, other=KEY_BYTES, message=st.binary(max_size=100), z=Z_BYTES)
def test_signature_does_not_verify_under_another_key(private_key, other, message, z):
    """A signature is bound to its key."""
    assume(nb.crypto_scalarmult_base(private_key) != nb.crypto_scalarmult_base(other))
    sig = iotlight.sign(private_key, message, z)
    assert iotlight.verify(nb.crypto_scalarmult_base(other), message, sig) is False


def test_signature_randomness():
    """The same Z gives the same signature; a new Z (or none: os.urandom) another one that verifies too."""
    keys = iotlight.keypair_from_seed(DOCS_SEED)
    msg = b"IoT-Light"
    z1, z2 = bytes(range(64)), bytes(range(1, 65))
    assert iotlight.sign(keys.private_key, msg, z1) == iotlight.sign(keys.private_key, msg, z1)
    sigs = {
        iotlight.sign(keys.private_key, msg, z1),
        iotlight.sign(keys.private_key, msg, z2),
        iotlight.sign(keys.private_key, msg),
        iotlight.sign(keys.private_key, msg),
    }
    assert len(sigs) == 4
    assert all(iotlight.verify(keys.public_key, msg, s) for s in sigs)


@pytest.mark.parametrize("size", [0, 32, 63, 65])
def test_signature_randomness_must_be_64_bytes(size):
    """Z of another length is refused."""
    keys = iotlight.keypair_from_seed(DOCS_SEED)
    with pytest.raises(iotlight.EncodingError, match="signature randomness must be 64 bytes"):
        iotlight.sign(keys.private_key, b"x", bytes(size))


def test_standard_ed25519_signing_is_not_waves_signing():
    """PyNaCl's SigningKey (the pitfall of section 12) gives signatures our verifier refuses."""
    from nacl.signing import SigningKey

    keys = iotlight.keypair_from_seed(DOCS_SEED)
    wrong = SigningKey(keys.private_key).sign(b"light").signature
    assert iotlight.verify(keys.public_key, b"light", wrong) is False


@PROPS
@given(public_key=st.binary(max_size=40), message=st.binary(max_size=40), signature=st.binary(max_size=70))
def test_verify_never_raises(public_key, message, signature):
    """verify answers a bool for any bytes at all; wrong lengths are False."""
    result = iotlight.verify(public_key, message, signature)
    assert isinstance(result, bool)
    if len(public_key) != 32 or len(signature) != 64:
        assert result is False


@pytest.mark.parametrize(
    "public_key", [bytes(32), b"\xff" * 32, (2**255 - 20).to_bytes(32, "little"), (1).to_bytes(32, "little")]
)
def test_verify_degenerate_keys(public_key):
    """Keys at the edges of the u -> y map (0, p-1, all ones, 1) give False, not an exception."""
    keys = iotlight.keypair_from_seed(DOCS_SEED)
    sig = iotlight.sign(keys.private_key, b"m", bytes(64))
    assert iotlight.verify(public_key, b"m", sig) is False


# --- signatures as the Waves node checks them (issue item 8: edges found by a differential fuzz) ----
#
# The node verifies with curve25519-java, a port of SUPERCOP ref10's crypto_sign_open: after the sign
# bit (bit 255 of S) is taken out, S is refused only when bit 253 or 254 is set, so any S < 2^253 is
# accepted, reduced mod L or not (S·B = (S mod L)·B, and h does not cover S). libsodium refuses S >= L
# and small-order keys and R. iotlight.verify reduces an S in [L, 2^253) and then asks libsodium;
# tests/reference.py's verify is libsodium alone. _node_verify below is a model of the node's check,
# pure Python, written from ref10 and the node's isWeakPublicKey.

P25519 = 2**255 - 19
ED25519_L = 2**252 + 27742317777372353535851937790883648493  # the group order
_D = -121665 * pow(121666, P25519 - 2, P25519) % P25519
_SQRT_M1 = pow(2, (P25519 - 1) // 4, P25519)
Point = Tuple[int, int, int, int]  # extended coordinates X, Y, Z, T (RFC 8032 5.1.4)

# The X25519 u of the small-order points, as the Waves node lists them (com.wavesplatform.crypto,
# BlacklistedKeys): 0, 1, two points of order 8, p-1, p (= 0) and p+1 (= 1); isWeakPublicKey also
# takes each with the top bit of its last byte set.
WEAK_U = (
    0,
    1,
    325606250916557431795983626356110631294008115727848805560023387167927233504,
    39382357235489614581723060781553021112529911719440698176882885853963445705823,
    P25519 - 1,
    P25519,
    P25519 + 1,
)
WEAK_KEYS = [u.to_bytes(32, "little") for u in WEAK_U]
WEAK_KEYS += [k[:31] + bytes([k[31] | 0x80]) for k in WEAK_KEYS]

# A real mainnet signature whose S (sign bit cleared) is >= L: the sell order
# 59KLuWTV2G6upUKVjnpfVneWSWwtqEC156ekWYQ79Nup of exchange transaction
# 64Mhr6pJeX21guka35pGFb2dqppwBMGGagNF57Zq8qvD (height 5232511), taken from the Go node's tests:
# github.com/wavesplatform/gowaves pkg/crypto/crypto_test.go TestVerify, commit 684948ba (the same
# order is in pkg/state's TestExchangeVerifier). The message is the order's v3 bytes.
GO_PUBLIC_KEY = "J3qN131GYh3swtQZcgtRDguVdJ8LyqfSpnUccNxWNegi"
GO_MESSAGE = (
    "9htZdMPTdrZSPbggHoLMsdw2tQVJE41WjcLGQkYJjPvTv9Tju94PdnhEWXfemb7VzJcdtZLXqaxWbvAX2uKJrfEjWon9MpH"
    "tivaGnCwewoGQ49uvSwuaHP4VgNdY6oL2f7nGmJNfpy4QEuXqah7vnczwhq9jwPQEhEQsfx4Pzh3G8t2Ascj4xmTDWYqrkH4B"
)
GO_SIGNATURE = "4emUeYCTG3XDkvxNNi8bHFh6AhC45DbkM3nh1VwuckKe1UU19TqdUXUrQHbaTFDds48Nw5w3JoX1hZWdDCope14n"


def _x_of(y: int, sign: int) -> Optional[int]:
    """x of the Edwards point with this y and x's sign (RFC 8032 5.1.3); None when there is none. As in
    ref10, x = 0 with the sign bit set stays 0."""
    xx = (y * y - 1) * pow(_D * y * y + 1, P25519 - 2, P25519) % P25519
    x = pow(xx, (P25519 + 3) // 8, P25519)
    if (x * x - xx) % P25519:
        x = x * _SQRT_M1 % P25519
    if (x * x - xx) % P25519:
        return None
    return (P25519 - x) % P25519 if x & 1 != sign else x


def _point(x: int, y: int) -> Point:
    return (x, y, 1, x * y % P25519)


def _add(p: Point, q: Point) -> Point:
    """RFC 8032's complete addition for a = -1 (doubling included)."""
    a = (p[1] - p[0]) * (q[1] - q[0]) % P25519
    b = (p[1] + p[0]) * (q[1] + q[0]) % P25519
    c = 2 * p[3] * q[3] * _D % P25519
    d = 2 * p[2] * q[2] % P25519
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P25519, g * h % P25519, f * g % P25519, e * h % P25519)


def _times(k: int, p: Point) -> Point:
    out: Point = (0, 1, 1, 0)
    while k:
        if k & 1:
            out = _add(out, p)
        p, k = _add(p, p), k >> 1
    return out


def _encode(p: Point) -> bytes:
    z = pow(p[2], P25519 - 2, P25519)
    x, y = p[0] * z % P25519, p[1] * z % P25519
    return (y | (x & 1) << 255).to_bytes(32, "little")


_BASE_Y = 4 * pow(5, P25519 - 2, P25519) % P25519
_BASE = _point(_x_of(_BASE_Y, 0), _BASE_Y)
_IDENTITY: Point = (0, 1, 1, 0)


def _node_verify(public_key: bytes, message: bytes, signature: bytes, *, weak_check: bool = True) -> bool:
    """The Waves node's check: the isWeakPublicKey list, then curve25519-java's curve25519_verify (the
    X25519 key's Edwards y = (u-1)/(u+1), fe_invert(0) = 0; x's sign from bit 255 of the signature) and
    crypto_sign_open_modified (refuse bits 253/254 of S; R must be the encoding of S·B - h·A)."""
    if weak_check and public_key[:31] + bytes([public_key[31] & 0x7F]) in WEAK_KEYS[:7]:
        return False
    u = int.from_bytes(public_key, "little") & ((1 << 255) - 1)
    y = (u - 1) * pow(u + 1, P25519 - 2, P25519) % P25519
    sign = signature[63] >> 7
    s = int.from_bytes(signature[32:], "little") & ((1 << 255) - 1)
    x = _x_of(y, sign)
    if s >> 253 or x is None:
        return False
    edwards_key = (y | sign << 255).to_bytes(32, "little")
    h = int.from_bytes(hashlib.sha512(signature[:32] + edwards_key + message).digest(), "little") % ED25519_L
    minus_a = _point((P25519 - x) % P25519, y)
    return _encode(_add(_times(s, _BASE), _times(h, minus_a))) == signature[:32]


def _s_of(signature: bytes) -> int:
    """S without the sign bit."""
    return int.from_bytes(signature[32:], "little") & ((1 << 255) - 1)


def _with_s(signature: bytes, s: int) -> bytes:
    """The signature with S replaced (below 2^255), its sign bit kept."""
    return signature[:32] + (s | (signature[63] >> 7) << 255).to_bytes(32, "little")


def _go_vector() -> Tuple[bytes, bytes, bytes]:
    return (
        iotlight.b58decode(GO_PUBLIC_KEY),
        iotlight.b58decode(GO_MESSAGE, max_length=1000),
        iotlight.b58decode(GO_SIGNATURE),
    )


SIG_VECTORS = reference.load_vectors("signatures.json")


def test_the_node_model_agrees_with_the_recorded_vectors():
    """The model of the node's check accepts every recorded valid signature, and a fresh one, and refuses
    every tampered one: it is a fair witness for the edges below."""
    for vec in SIG_VECTORS["valid"]:
        public_key = iotlight.b58decode(vec["public_key_base58"])
        message = bytes.fromhex(vec["message_hex"])
        assert _node_verify(public_key, message, bytes.fromhex(vec["signature_hex"])) is True
    for vec in SIG_VECTORS["tampered"]:
        args = (iotlight.b58decode(vec["public_key_base58"]), bytes.fromhex(vec["message_hex"]))
        assert _node_verify(*args, iotlight.b58decode(vec["signature_base58"])) is False
    keys = iotlight.keypair_from_seed(DOCS_SEED)
    assert _node_verify(keys.public_key, b"light", iotlight.sign(keys.private_key, b"light")) is True


def test_mainnet_signature_with_s_above_the_group_order_verifies():
    """The real mainnet order signature from the Go node's tests has S >= L (below 2^253): the chain took
    it, the node's check and iotlight.verify accept it; reference.verify (libsodium, S < L) refuses it."""
    public_key, message, signature = _go_vector()
    assert iotlight.b58encode(iotlight.blake2b256(message)) == "59KLuWTV2G6upUKVjnpfVneWSWwtqEC156ekWYQ79Nup"
    assert iotlight.address_from_public_key(public_key, "W") == "3PHJZGJkQHDSTe1J1uoHdshhDoaBhZCzjns"
    assert ED25519_L <= _s_of(signature) < 2**253
    assert _node_verify(public_key, message, signature) is True
    assert iotlight.verify(public_key, message, signature) is True
    assert reference.verify(public_key, message, signature) is False


@pytest.mark.parametrize(
    "change, accepted",
    [
        (lambda s: s, True),  # as on chain: L <= S < 2^253
        (lambda s: s % ED25519_L, True),  # reduced
        (lambda s: s % ED25519_L + 2 * ED25519_L, False),  # >= 2^253: bit 253 set
        (lambda s: s % ED25519_L + 3 * ED25519_L, False),  # bit 253 set
        (lambda s: s % ED25519_L + 2**253, False),
        (lambda s: s % ED25519_L + 2**254, False),
        (lambda s: s % ED25519_L + 2**254 + 2**253, False),
    ],
    ids=["S", "S mod L", "S mod L + 2L", "S mod L + 3L", "bit 253", "bit 254", "bits 253 and 254"],
)
def test_the_mainnet_signature_with_other_s(change, accepted):
    """Of the mainnet signature's S: S and S mod L verify, any S >= 2^253 (bit 253 or 254 set) is
    refused, by iotlight.verify as by the node; reference.verify accepts the reduced S alone."""
    public_key, message, signature = _go_vector()
    s = change(_s_of(signature))
    changed = _with_s(signature, s)
    assert (
        iotlight.verify(public_key, message, changed)
        is _node_verify(public_key, message, changed)
        is accepted
    )
    assert reference.verify(public_key, message, changed) is (s < ED25519_L)


@pytest.mark.parametrize("vec", SIG_VECTORS["valid"], ids=[v["name"] for v in SIG_VECTORS["valid"]])
def test_vector_signatures_with_s_plus_l(vec):
    """A valid signature of the vectors turned into S + L verifies when S + L < 2^253 (iotlight, the node),
    S + 2L never does; reference.verify (libsodium) refuses both."""
    public_key = iotlight.b58decode(vec["public_key_base58"])
    message = bytes.fromhex(vec["message_hex"])
    signature = bytes.fromhex(vec["signature_hex"])
    s = _s_of(signature)
    assert s < ED25519_L
    for k in (1, 2):
        changed = _with_s(signature, s + k * ED25519_L)
        accepted = s + k * ED25519_L < 2**253
        assert (k, iotlight.verify(public_key, message, changed)) == (k, accepted)
        assert (k, _node_verify(public_key, message, changed)) == (k, accepted)
        assert (k, reference.verify(public_key, message, changed)) == (k, False)
    assert s + ED25519_L < 2**253, "the recorded signatures all have room for S + L"


@FEW
@given(private_key=KEY_BYTES, message=st.binary(max_size=64), z=Z_BYTES, k=st.integers(0, 3))
def test_the_two_verifiers_rules_for_s(private_key, message, z, k):
    """iotlight.verify takes the node's rule (S + kL verifies while it stays below 2^253: the model of the
    node agrees), reference.verify libsodium's (S < L only, so k = 0 alone)."""
    keys = iotlight.keypair_from_private_key(private_key)
    signature = iotlight.sign(private_key, message, z)
    s = _s_of(signature) + k * ED25519_L
    changed = _with_s(signature, s)
    assert iotlight.verify(keys.public_key, message, changed) is (s < 2**253)
    assert reference.verify(keys.public_key, message, changed) is (k == 0)
    if k == 1:
        assert _node_verify(keys.public_key, message, changed) is (s < 2**253)


def _equation_signature(public_key: bytes, message: bytes) -> bytes:
    """A signature R = r·B, S = r with h ≡ 0 (mod 8): for a key A of order dividing 8 (8·A = O), S·B = R + h·A
    holds, so only a weak-key check can refuse it."""
    y = int.from_bytes(iotlight.ed25519_public_key(public_key, 0), "little")
    a = _point(_x_of(y, 0), y)
    assert _encode(_times(8, a)) == _encode(_IDENTITY), "a small-order key"
    for n in range(1, 1000):
        r = int.from_bytes(hashlib.sha512(b"r%d" % n).digest(), "little") % ED25519_L
        big_r = nb.crypto_scalarmult_ed25519_base_noclamp(r.to_bytes(32, "little"))
        h = int.from_bytes(hashlib.sha512(big_r + _encode(a) + message).digest(), "little") % ED25519_L
        if h % 8 == 0:
            return big_r + r.to_bytes(32, "little")
    raise AssertionError("no r with h divisible by 8")


@pytest.mark.parametrize(
    "public_key", WEAK_KEYS, ids=["u=0", "u=1", "order8a", "order8b", "p-1", "p", "p+1"] * 2
)
def test_small_order_public_keys_are_refused(public_key):
    """A key the node's isWeakPublicKey lists (u = 0, 1, the order-8 points, p-1, p, p+1, top bit set or
    not) is refused by iotlight.verify even under a signature that satisfies ref10's equation; the node
    refuses it by that list, libsodium (iotlight, reference.verify) by its small-order check."""
    message = b"light for nothing"
    signature = _equation_signature(public_key, message)
    assert _node_verify(public_key, message, signature, weak_check=False) is True, "the equation holds"
    assert _node_verify(public_key, message, signature) is False
    assert iotlight.verify(public_key, message, signature) is False
    assert reference.verify(public_key, message, signature) is False


@pytest.mark.xfail(
    reason="product bug: iotlight.verify refuses R = the identity (libsodium's small-order check on R), "
    "which the node's ref10 check accepts when S = h·a",
    strict=True,
)
def test_identity_r_verifies_as_on_the_node():
    """A signature with R = the identity point and S = h·a (only the key's owner can make it) satisfies
    the node's check; iotlight.verify follows the node, reference.verify (libsodium) refuses it."""
    keys = iotlight.keypair_from_seed(DOCS_SEED)
    a = nb.crypto_core_ed25519_scalar_reduce(_clamped(keys.private_key) + bytes(32))
    big_a = nb.crypto_scalarmult_ed25519_base_noclamp(a)
    assert big_a == _ed25519_a(keys.private_key)
    message = b"light"
    big_r = _encode(_IDENTITY)
    h = nb.crypto_core_ed25519_scalar_reduce(hashlib.sha512(big_r + big_a + message).digest())
    s = bytearray(nb.crypto_core_ed25519_scalar_mul(h, a))
    s[31] |= big_a[31] & 0x80
    signature = big_r + bytes(s)
    assert _node_verify(keys.public_key, message, signature) is True
    assert reference.verify(keys.public_key, message, signature) is False
    assert iotlight.verify(keys.public_key, message, signature) is True
