"""Waves cryptography: base58, hashes, keys, addresses, aliases and signatures.

The fixed vectors are in test_vectors.py; this file checks the rules around them,
with hypothesis generating inputs and tests/reference.py (PyNaCl, written from the
spec) as a second implementation.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import pytest
import reference
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from nacl import bindings as nb

import iotlight

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

B58 = iotlight.B58_ALPHABET
CHAINS = st.sampled_from("WTSZ") | st.characters(min_codepoint=33, max_codepoint=126)
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
@given(name=st.text(alphabet=ALIAS_CHARS, min_size=4, max_size=30), chain=st.sampled_from("WTSZ"))
def test_alias_valid_names(name, chain):
    """A 4-30 character name from the alias alphabet, bare or prefixed, gives alias:<chain>:<name>."""
    canonical = "alias:%s:%s" % (chain, name)
    assert iotlight.parse_alias(name, chain) == canonical
    assert iotlight.parse_alias(canonical, chain) == canonical
    assert iotlight.parse_recipient(canonical, chain) == canonical


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


def _ed25519_a(private_key: bytes) -> bytes:
    """A = a*B with a = the clamped private key, straight from libsodium."""
    a = bytearray(private_key)
    a[0] &= 248
    a[31] &= 127
    a[31] |= 64
    return nb.crypto_scalarmult_ed25519_base_noclamp(
        nb.crypto_core_ed25519_scalar_reduce(bytes(a) + bytes(32))
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
