#!/usr/bin/env python3
"""iotlight: a Raspberry Pi Sense HAT that sells light for tokens on a Waves chain.

Someone sends "IoT-Light" tokens to the device's address; the daemon sees the
transfer on the chain and lights the LED matrix for the time the payment bought.
Joystick presses (and, if enabled, temperature, humidity and pressure) go back
onto the chain as Data transactions signed with the device's own key. A local
WebSocket endpoint and a small web page show it all live.

Run it:   python3 iotlight.py [-c iotlight.toml] [-v] [run|keygen|address|check|
                                                  status|issue|pay|monitor]

Sections, lowest layer first:
   1. imports and constants
   2. errors
   3. configuration
   4. Waves cryptography (base58, hashes, keys, addresses, signatures)
   5. transaction bytes (legacy binary and protobuf), JSON, fees, limits
   6. core logic (pricing, the light timer, the ledger rules, Data entries)
   7. edges: clock, store (SQLite), node client (httpx), hardware, sd_notify
   8. services: watcher, lamp, joystick, telemetry, outbox, monitor
   9. the daemon: wiring and shutdown
  10. command line and main()
"""

# =============================================================================
# 1. Imports and constants
# =============================================================================

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import difflib
import hashlib
import json
import logging
import math
import os
import random
import signal
import socket
import sqlite3
import stat
import struct
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

__version__ = "0.1.0"

log = logging.getLogger("iotlight")


# =============================================================================
# 2. Errors
# =============================================================================
#
#   IotlightError
#    +-- ConfigError (ValueError)        bad configuration or usage: exit 2
#    +-- SeedFileError (ConfigError)     missing, unreadable or too open seed
#    +-- EncodingError (ValueError)      bad base58, address, alias, tx field
#    +-- NodeError                       the node could not be asked
#    |    +-- NodeRejected               the node answered with an API error
#    +-- StateError                      the state file cannot be used


class IotlightError(Exception):
    """Base of every error iotlight reports to the user as one line."""

    exit_status = 1


class ConfigError(IotlightError, ValueError):
    """The configuration or the command line is wrong (exit status 2)."""

    exit_status = 2


class SeedFileError(ConfigError):
    """The seed file is missing, unreadable or readable by others."""


class EncodingError(IotlightError, ValueError):
    """A value cannot be encoded or decoded (base58, address, transaction)."""


class NodeError(IotlightError):
    """The node could not be reached or gave an unusable answer."""


class NodeRejected(NodeError):
    """The node answered with an API error body ({"error": n, "message": ...})."""

    def __init__(self, message: str, *, status: int = 0, code: Optional[int] = None):
        super().__init__(message)
        self.status = status
        self.code = code


class StateError(IotlightError):
    """The state file is damaged or cannot be written."""


# =============================================================================
# 3. Configuration
# =============================================================================
#
# The contract's keys (../shared/spec/interface.md) plus a few of our own
# (marked "ours"). Each key: (type check, default, what is expected).

DEFAULT_CONFIG_PATHS = ("./iotlight.toml", "/etc/iotlight/iotlight.toml")

HARDWARE_BACKENDS = ("auto", "sense-hat", "sense-emu", "terminal", "none")
FORKS = ("auto", "waves", "0bs")


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _is_color(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 3 and all(_is_int(x) and 0 <= x <= 255 for x in v)


def _in_range(lo: float, hi: float) -> Callable[[Any], bool]:
    return lambda v: _is_number(v) and lo <= v <= hi


def _int_range(lo: int, hi: int) -> Callable[[Any], bool]:
    return lambda v: _is_int(v) and lo <= v <= hi


def _positive(v: Any) -> bool:
    return _is_number(v) and v > 0 and math.isfinite(v)


def _one_of(*choices: str) -> Callable[[Any], bool]:
    return lambda v: v in choices


# key -> (check, default, expected). A default of None means required.
CONFIG_SCHEMA: Dict[str, Tuple[Callable[[Any], bool], Any, str]] = {
    "node.urls": (lambda v: _is_str_list(v) and len(v) > 0,
                  ["https://nodes-testnet.wavesnodes.com"], "a non-empty list of http(s) URLs"),
    "node.chain_id": (lambda v: _is_str(v) and len(v) == 1 and 33 <= ord(v) <= 126, "T",
                      'one character, e.g. "W" mainnet, "T" testnet, "S" stagenet, "Z" 0bsnetwork'),
    "node.poll_interval": (_in_range(0.1, 60), 1.0, "a number of seconds from 0.1 to 60"),
    "node.confirmations": (_int_range(0, 100), 0, "an integer from 0 to 100"),
    "node.timeout": (_in_range(0.5, 300), 10.0, "a number of seconds from 0.5 to 300"),
    "node.fork": (_one_of(*FORKS), "auto",
                  '"auto" (0bs rules on chain "Z", Waves rules elsewhere), "waves" or "0bs"'),  # ours
    "node.sweep_interval": (_in_range(5, 3600), 60.0,
                            "a number of seconds from 5 to 3600"),  # ours
    "device.seed_file": (_is_str, "device.seed", "a path"),
    "device.address": (_is_str, "", "a base58 address or \"\""),
    "device.state_file": (_is_str, "iotlight.db", "a path"),
    "payment.asset_id": (_is_str, None, "the base58 id of the token that buys light"),
    "payment.seconds_per_token": (_positive, 1.0, "a number greater than 0"),
    "payment.max_seconds": (_positive, 3600.0, "a number greater than 0"),
    "payment.count_history": (_is_bool, False, "true or false"),
    "light.color": (_is_color, [255, 255, 255], "[r, g, b] with integers from 0 to 255"),
    "light.countdown": (_is_bool, True, "true or false"),
    "data.joystick": (_is_bool, True, "true or false"),
    "data.telemetry_interval": (lambda v: _is_number(v) and (v == 0 or 10 <= v <= 86400), 0.0,
                                "0 (off) or a number of seconds from 10 to 86400"),
    "data.fee": (_int_range(0, 10**12), 0, "0 (automatic) or a fee in the smallest coin unit"),
    "data.coalesce_window": (_in_range(0, 60), 1.0, "a number of seconds from 0 to 60"),  # ours
    "data.max_tx_per_minute": (_int_range(1, 120), 20, "an integer from 1 to 120"),  # ours
    "hardware.backend": (_one_of(*HARDWARE_BACKENDS), "auto",
                         "one of " + ", ".join('"%s"' % b for b in HARDWARE_BACKENDS)),
    "monitor.host": (_is_str, "127.0.0.1", "a host name or IP address"),
    "monitor.port": (_int_range(0, 65535), 8765, "an integer from 0 (off) to 65535"),
    "monitor.token": (_is_str, "", "a string"),
}


@dataclasses.dataclass(frozen=True)
class Config:
    """A validated configuration; paths are absolute."""

    path: str
    node_urls: Tuple[str, ...]
    chain_id: str
    poll_interval: float
    confirmations: int
    timeout: float
    fork: str
    sweep_interval: float
    seed_file: str
    address: str
    state_file: str
    asset_id: str
    seconds_per_token: float
    max_seconds: float
    count_history: bool
    color: Tuple[int, int, int]
    countdown: bool
    joystick: bool
    telemetry_interval: float
    fee: int
    coalesce_window: float
    max_tx_per_minute: int
    backend: str
    monitor_host: str
    monitor_port: int
    monitor_token: str

    @property
    def rules(self) -> str:
        """The fee and limit rules of the chain: "waves" or "0bs"."""
        if self.fork != "auto":
            return self.fork
        return "0bs" if self.chain_id == "Z" else "waves"


def _flatten(table: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in table.items():
        key = prefix + k
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    import ipaddress
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_config(table: Dict[str, Any], path: str, *, require_asset: bool = True) -> Config:
    """Validate a parsed TOML table and return a Config; ConfigError names file and key."""
    name = path

    def fail(key: str, msg: str) -> ConfigError:
        return ConfigError("%s: %s: %s" % (name, key, msg))

    flat: Dict[str, Any] = {}
    for section, value in table.items():
        if not isinstance(value, dict):
            known_sections = sorted({k.split(".")[0] for k in CONFIG_SCHEMA})
            hint = difflib.get_close_matches(section, known_sections, 1)
            raise fail(section, "unknown key at top level; keys live in sections [%s]%s"
                       % ("], [".join(known_sections),
                          (" (did you mean [%s]?)" % hint[0]) if hint else ""))
        flat.update(_flatten(value, section + "."))
    for key in flat:
        if key not in CONFIG_SCHEMA:
            hint = difflib.get_close_matches(key, list(CONFIG_SCHEMA), 1, 0.6)
            raise fail(key, "unknown key%s" % ((" (did you mean %s?)" % hint[0]) if hint else ""))
    values: Dict[str, Any] = {}
    for key, (check, default, expected) in CONFIG_SCHEMA.items():
        if key in flat:
            v = flat[key]
            if not check(v):
                raise fail(key, "%s is not valid: expected %s" % (_toml_repr(v), expected))
            values[key] = v
        elif default is None:
            if require_asset:
                raise fail(key, "missing: expected %s (set it in [%s])" % (expected, key.split(".")[0]))
            values[key] = ""
        else:
            values[key] = default
    base = Path(path).resolve().parent

    for url in values["node.urls"]:
        if not (url.startswith("http://") or url.startswith("https://")) or len(url) < 10:
            raise fail("node.urls", "%s is not valid: expected http:// or https:// URLs" % _toml_repr(url))
    chain = values["node.chain_id"]
    if values["device.address"]:
        try:
            parse_address(values["device.address"], chain)
        except EncodingError as e:
            raise fail("device.address", "%s is not valid: %s" % (_toml_repr(values["device.address"]), e))
    asset = values["payment.asset_id"]
    if asset:
        try:
            if len(b58decode(asset)) != 32:
                raise EncodingError("an asset id is 32 bytes")
        except EncodingError as e:
            raise fail("payment.asset_id", "%s is not valid: %s (expected %s)"
                       % (_toml_repr(asset), e, CONFIG_SCHEMA["payment.asset_id"][2]))
    for key in ("device.seed_file", "device.state_file"):
        if not values[key].strip():
            raise fail(key, "must not be empty: expected a path")
    host = values["monitor.host"].strip()
    if not host:
        raise fail("monitor.host", "must not be empty")
    if values["monitor.port"] and not _is_loopback(host) and not values["monitor.token"]:
        raise fail("monitor.token", "required when monitor.host (%s) is not a loopback address: "
                   "set a secret token, clients then pass ?token=..." % _toml_repr(host))
    return Config(
        path=str(Path(path).resolve()),
        node_urls=tuple(u.rstrip("/") for u in values["node.urls"]),
        chain_id=chain,
        poll_interval=float(values["node.poll_interval"]),
        confirmations=values["node.confirmations"],
        timeout=float(values["node.timeout"]),
        fork=values["node.fork"],
        sweep_interval=float(values["node.sweep_interval"]),
        seed_file=str(base / values["device.seed_file"]),
        address=values["device.address"],
        state_file=str(base / values["device.state_file"]),
        asset_id=asset,
        seconds_per_token=float(values["payment.seconds_per_token"]),
        max_seconds=float(values["payment.max_seconds"]),
        count_history=values["payment.count_history"],
        color=tuple(values["light.color"]),  # type: ignore[arg-type]
        countdown=values["light.countdown"],
        joystick=values["data.joystick"],
        telemetry_interval=float(values["data.telemetry_interval"]),
        fee=values["data.fee"],
        coalesce_window=float(values["data.coalesce_window"]),
        max_tx_per_minute=values["data.max_tx_per_minute"],
        backend=values["hardware.backend"],
        monitor_host=host,
        monitor_port=values["monitor.port"],
        monitor_token=values["monitor.token"],
    )


def _toml_repr(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_repr(x) for x in v) + "]"
    return str(v)


def _toml_loads(text: str) -> Dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.9/3.10 only
        import tomli as tomllib
    return tomllib.loads(text)


def find_config(explicit: Optional[str]) -> str:
    """The configuration path: -c, else ./iotlight.toml, else /etc/iotlight/iotlight.toml."""
    if explicit:
        return explicit
    for p in DEFAULT_CONFIG_PATHS:
        if os.path.exists(p):
            return p
    raise ConfigError("no configuration found: tried %s; pass -c PATH" % ", ".join(DEFAULT_CONFIG_PATHS))


def load_config(path: str, *, require_asset: bool = True) -> Config:
    """Read, parse and validate a TOML configuration file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("%s: no such configuration file" % path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("%s: cannot read: %s" % (path, getattr(e, "strerror", None) or e)) from None
    try:
        table = _toml_loads(text)
    except ValueError as e:  # tomllib.TOMLDecodeError is a ValueError
        raise ConfigError("%s: not valid TOML: %s" % (path, e)) from None
    return parse_config(table, path, require_asset=require_asset)


# =============================================================================
# 4. Waves cryptography
# =============================================================================
#
# Keys, addresses and signatures as in ../shared/spec/waves-protocol.md sections
# 2-4. Hashes come from hashlib (BLAKE2b, SHA-256, SHA-512) and pycryptodome
# (Keccak-256); curve arithmetic from libsodium through PyNaCl.

B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(B58_ALPHABET)}
B58_MAX_DECODE = 192  # the node refuses longer base58 strings in JSON byte fields


def b58encode(data: bytes) -> str:
    """Base58 (Bitcoin alphabet); each leading zero byte becomes a leading '1'."""
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(B58_ALPHABET[r])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str, *, max_length: int = B58_MAX_DECODE) -> bytes:
    """Decode base58; EncodingError on a bad character or an over-long string."""
    if not isinstance(text, str):
        raise EncodingError("base58 value must be a string, not %s" % type(text).__name__)
    if len(text) > max_length:
        raise EncodingError("base58 string of %d characters is longer than %d" % (len(text), max_length))
    n = 0
    for pos, c in enumerate(text):
        i = _B58_INDEX.get(c)
        if i is None:
            raise EncodingError("invalid base58 character %r at position %d" % (c, pos))
        n = n * 58 + i
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * zeros + body


def blake2b256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def keccak256(data: bytes) -> bytes:
    from Crypto.Hash import keccak  # pycryptodome: original Keccak, not NIST SHA3
    return keccak.new(data=data, digest_bits=256).digest()


def secure_hash(data: bytes) -> bytes:
    """keccak256(blake2b256(data)), Waves' "secure hash"."""
    return keccak256(blake2b256(data))


@dataclasses.dataclass(frozen=True)
class KeyPair:
    """A Waves key pair: X25519 private and public key, 32 bytes each."""

    private_key: bytes = dataclasses.field(repr=False)
    public_key: bytes

    def address(self, chain_id: str) -> str:
        return address_from_public_key(self.public_key, chain_id)


def keypair_from_private_key(private_key: bytes) -> KeyPair:
    from nacl.bindings import crypto_scalarmult_base
    if len(private_key) != 32:
        raise EncodingError("a private key is 32 bytes, not %d" % len(private_key))
    return KeyPair(private_key, crypto_scalarmult_base(private_key))


def keypair_from_seed(seed: str, nonce: int = 0) -> KeyPair:
    """Seed phrase -> key pair: sha256(secure_hash(nonce || UTF-8 seed)), clamped."""
    seed_bytes = seed.encode("utf-8") if isinstance(seed, str) else bytes(seed)
    account_seed = secure_hash(struct.pack(">I", nonce) + seed_bytes)
    k = bytearray(hashlib.sha256(account_seed).digest())
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    return keypair_from_private_key(bytes(k))


def chain_byte(chain_id: str) -> int:
    if not isinstance(chain_id, str) or len(chain_id) != 1:
        raise EncodingError("chain id must be one character, not %r" % (chain_id,))
    return ord(chain_id)


def address_bytes_from_public_key(public_key: bytes, chain_id: str) -> bytes:
    head = bytes([1, chain_byte(chain_id)]) + secure_hash(public_key)[:20]
    return head + secure_hash(head)[:4]


def address_from_public_key(public_key: bytes, chain_id: str) -> str:
    return b58encode(address_bytes_from_public_key(public_key, chain_id))


def parse_address(address: str, chain_id: str) -> bytes:
    """Check an address string (version, chain id, checksum); return its 26 bytes."""
    if isinstance(address, str) and address.startswith("address:"):
        address = address[len("address:"):]
    raw = b58decode(address)
    if len(raw) != 26:
        raise EncodingError("an address is 26 bytes (35 base58 characters), got %d bytes" % len(raw))
    if raw[0] != 1:
        raise EncodingError("unknown address version %d" % raw[0])
    if raw[1] != chain_byte(chain_id):
        raise EncodingError("address is for chain %r, not %r" % (chr(raw[1]), chain_id))
    if secure_hash(raw[:22])[:4] != raw[22:]:
        raise EncodingError("address checksum does not match (a typo?)")
    return raw


ALIAS_CHARS = frozenset("-.0123456789@_abcdefghijklmnopqrstuvwxyz")


def parse_alias(text: str, chain_id: str) -> str:
    """`alias:<chain>:<name>` or a bare name -> the canonical `alias:<chain>:<name>`."""
    name = text
    if text.startswith("alias:"):
        parts = text.split(":", 2)
        if len(parts) != 3 or len(parts[1]) != 1:
            raise EncodingError("an alias is written alias:<chain>:<name>, not %r" % text)
        if parts[1] != chain_id:
            raise EncodingError("alias is for chain %r, not %r" % (parts[1], chain_id))
        name = parts[2]
    if not 4 <= len(name) <= 30:
        raise EncodingError("an alias name has 4 to 30 characters, %r has %d" % (name, len(name)))
    bad = sorted(set(name) - ALIAS_CHARS)
    if bad:
        raise EncodingError("alias name %r has characters outside a-z 0-9 - . @ _: %s"
                            % (name, "".join(bad)))
    return "alias:%s:%s" % (chain_id, name)


def parse_recipient(text: str, chain_id: str) -> str:
    """An address (checked) or an alias (canonical form) as typed by a user."""
    if text.startswith("alias:"):
        return parse_alias(text, chain_id)
    if len(text) >= 34 and all(c in _B58_INDEX for c in text.replace("address:", "", 1)):
        parse_address(text, chain_id)
        return text.replace("address:", "", 1)
    return parse_alias(text, chain_id)


_ED25519_L = 2 ** 252 + 27742317777372353535851937790883648493
_P25519 = 2 ** 255 - 19


def sign(private_key: bytes, message: bytes, random_z: Optional[bytes] = None) -> bytes:
    """Waves Curve25519 signature (64 bytes) of message; random_z is 64 random bytes."""
    from nacl import bindings as nb
    z = os.urandom(64) if random_z is None else random_z
    if len(z) != 64:
        raise EncodingError("signature randomness must be 64 bytes")
    a = bytearray(private_key)
    a[0] &= 248
    a[31] &= 127
    a[31] |= 64
    a_bytes = bytes(a)
    a_red = nb.crypto_core_ed25519_scalar_reduce(a_bytes + b"\0" * 32)
    ed_pub = nb.crypto_scalarmult_ed25519_base_noclamp(a_red)
    sign_bit = ed_pub[31] & 0x80
    r = nb.crypto_core_ed25519_scalar_reduce(
        hashlib.sha512(b"\xfe" + b"\xff" * 31 + a_bytes + message + z).digest())
    big_r = nb.crypto_scalarmult_ed25519_base_noclamp(r)
    h = nb.crypto_core_ed25519_scalar_reduce(hashlib.sha512(big_r + ed_pub + message).digest())
    s = bytearray(nb.crypto_core_ed25519_scalar_add(nb.crypto_core_ed25519_scalar_mul(h, a_red), r))
    s[31] |= sign_bit
    return big_r + bytes(s)


def ed25519_public_key(public_key: bytes, sign_bit: int) -> bytes:
    """The Edwards form of an X25519 public key, with the given sign bit."""
    u = int.from_bytes(public_key, "little") & ((1 << 255) - 1)
    y = (u - 1) * pow(u + 1, _P25519 - 2, _P25519) % _P25519
    y_bytes = bytearray(y.to_bytes(32, "little"))
    y_bytes[31] = (y_bytes[31] & 0x7F) | (sign_bit & 0x80)
    return bytes(y_bytes)


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Verify a Waves Curve25519 signature; False for anything malformed."""
    from nacl.bindings import crypto_sign_open
    from nacl.exceptions import BadSignatureError, CryptoError
    if len(public_key) != 32 or len(signature) != 64:
        return False
    ed_pub = ed25519_public_key(public_key, signature[63])
    sig = signature[:63] + bytes([signature[63] & 0x7F])
    try:
        crypto_sign_open(sig + message, ed_pub)
        return True
    except (BadSignatureError, CryptoError, ValueError):
        return False


def generate_seed_phrase(words: int = 15, rng: Optional[random.SystemRandom] = None) -> str:
    """A new seed phrase of `words` words from the 2048-word list Waves wallets use (BIP-39 English)."""
    from mnemonic import Mnemonic
    wordlist = Mnemonic("english").wordlist
    rng = rng or random.SystemRandom()
    return " ".join(rng.choice(wordlist) for _ in range(words))


# =============================================================================
# 5. Transaction bytes, JSON, fees and limits
# =============================================================================
#
# A transaction is kept as the JSON dict the node's broadcast endpoint accepts;
# tx_body_bytes() turns that dict into the bytes that are signed. Legacy binary
# layouts (Transfer v1/v2, Issue v1/v2, Data v1, MassTransfer v1) work on Waves
# and on the 0bs fork; protobuf layouts (Transfer v3, Issue v3, Data v2,
# MassTransfer v2) only on Waves. See waves-protocol.md sections 5-9.

TX_ISSUE, TX_TRANSFER, TX_MASS_TRANSFER, TX_DATA = 3, 4, 11, 12
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
FEE_UNIT = 100_000
MAX_ATTACHMENT = 140
DATA_MAX_ENTRIES = 100
DATA_MAX_VALUE = 32_767
DATA_MAX_PAYLOAD = 165_835       # Waves with feature 17: sum of key and value sizes
DATA_MAX_V1_BYTES = 153_600      # Waves before feature 17 and 0bs: full signed v1 bytes
DATA_ENTRY_TYPES = {"integer": 0, "boolean": 1, "binary": 2, "string": 3}


def _i64(v: Any, what: str) -> bytes:
    if not _is_int(v) or not INT64_MIN <= v <= INT64_MAX:
        raise EncodingError("%s must be a 64-bit integer, not %r" % (what, v))
    return struct.pack(">q", v)


def _short(data: bytes, what: str) -> bytes:
    if len(data) > 0xFFFF:
        raise EncodingError("%s is %d bytes, more than 65535" % (what, len(data)))
    return struct.pack(">H", len(data)) + data


def _pk(tx: Dict[str, Any]) -> bytes:
    pk = b58decode(tx.get("senderPublicKey", ""))
    if len(pk) != 32:
        raise EncodingError("senderPublicKey must be 32 bytes, not %d" % len(pk))
    return pk


def _asset_bytes(asset_id: Optional[str], what: str = "assetId") -> bytes:
    if asset_id in (None, "", "WAVES"):
        return b""
    raw = b58decode(asset_id)  # type: ignore[arg-type]
    if len(raw) != 32:
        raise EncodingError("%s must be 32 bytes, not %d" % (what, len(raw)))
    return raw


def _legacy_asset(asset_id: Optional[str], what: str = "assetId") -> bytes:
    raw = _asset_bytes(asset_id, what)
    return b"\x01" + raw if raw else b"\x00"


def _tx_chain(tx: Dict[str, Any]) -> str:
    c = tx.get("chainId")
    if _is_int(c):
        return chr(c)
    if isinstance(c, str) and len(c) == 1:
        return c
    rec = tx.get("recipient") or ""
    if isinstance(rec, str) and rec.startswith("alias:"):
        return rec.split(":")[1]
    if rec:
        raw = b58decode(rec.replace("address:", "", 1))
        if len(raw) == 26:
            return chr(raw[1])
    raise EncodingError("transaction has no chainId")


def _legacy_recipient(recipient: str, chain_id: str) -> bytes:
    if not isinstance(recipient, str):
        raise EncodingError("recipient must be a string")
    if recipient.startswith("alias:"):
        canonical = parse_alias(recipient, recipient.split(":")[1] if recipient.count(":") == 2 else chain_id)
        name = canonical.split(":", 2)[2].encode()
        return bytes([2, ord(canonical.split(":")[1])]) + _short(name, "alias")
    return parse_address(recipient, chain_id)


def _attachment(tx: Dict[str, Any]) -> bytes:
    raw = b58decode(tx.get("attachment") or "")
    if len(raw) > MAX_ATTACHMENT:
        raise EncodingError("attachment is %d bytes, more than %d" % (len(raw), MAX_ATTACHMENT))
    return raw


def _legacy_proofs(proofs: Sequence[bytes]) -> bytes:
    return b"\x01" + struct.pack(">H", len(proofs)) + b"".join(_short(p, "proof") for p in proofs)


# --- protobuf (deterministic, as the node's ScalaPB encoder writes it) -------
# Only the handful of messages the transaction types above need; fields in
# ascending order, defaults omitted, set oneof members and sub-messages written.

def _pb_varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _pb_int(field: int, v: int, *, force: bool = False) -> bytes:
    if not v and not force:
        return b""
    return _pb_varint(field << 3) + _pb_varint(v)


def _pb_bytes(field: int, v: bytes, *, force: bool = False) -> bytes:
    if not v and not force:
        return b""
    return _pb_varint(field << 3 | 2) + _pb_varint(len(v)) + v


def _pb_amount(asset_id: Optional[str], amount: int) -> bytes:
    return _pb_bytes(1, _asset_bytes(asset_id)) + _pb_int(2, amount)


def _pb_recipient(recipient: str, chain_id: str) -> bytes:
    if recipient.startswith("alias:"):
        return _pb_bytes(2, parse_alias(recipient, chain_id).split(":", 2)[2].encode())
    return _pb_bytes(1, parse_address(recipient, chain_id)[2:22])


def _pb_transaction(tx: Dict[str, Any], field: int, data: bytes) -> bytes:
    fee = tx.get("fee")
    _i64(fee, "fee")
    _i64(tx.get("timestamp"), "timestamp")
    return (_pb_int(1, chain_byte(_tx_chain(tx))) + _pb_bytes(2, _pk(tx))
            + _pb_bytes(3, _pb_amount(tx.get("feeAssetId"), fee), force=True)
            + _pb_int(4, tx["timestamp"]) + _pb_int(5, tx["version"])
            + _pb_bytes(field, data, force=True))


def _data_value(entry: Dict[str, Any]) -> Tuple[Optional[str], Any]:
    """(type, python value) of a JSON data entry; binary decoded to bytes."""
    key = entry.get("key")
    if not isinstance(key, str) or not key:
        raise EncodingError("a data entry needs a non-empty string key")
    kind, value = entry.get("type"), entry.get("value")
    if value is None and kind is None:
        return None, None
    if kind == "integer":
        _i64(value, "data entry %r" % key)
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise EncodingError("data entry %r: boolean value must be true or false" % key)
    elif kind == "string":
        if not isinstance(value, str):
            raise EncodingError("data entry %r: string value must be a string" % key)
    elif kind == "binary":
        if not isinstance(value, str):
            raise EncodingError("data entry %r: binary value must be a base64: string" % key)
        text = value[7:] if value.startswith("base64:") else value
        try:
            value = base64.b64decode(text, validate=True)
        except ValueError:
            raise EncodingError("data entry %r: binary value is not valid base64" % key) from None
    else:
        raise EncodingError("data entry %r: unknown type %r" % (key, kind))
    return kind, value


def _data_value_bytes(kind: str, value: Any) -> bytes:
    if kind == "integer":
        return struct.pack(">q", value)
    if kind == "boolean":
        return b"\x01" if value else b"\x00"
    raw = value.encode("utf-8") if kind == "string" else value
    return raw


def _legacy_data_entry(entry: Dict[str, Any]) -> bytes:
    kind, value = _data_value(entry)
    if kind is None:
        raise EncodingError("data entry %r: deleting a key needs Data version 2" % entry["key"])
    raw = _data_value_bytes(kind, value)
    if kind in ("string", "binary"):
        raw = _short(raw, "data entry %r" % entry["key"])
    return _short(entry["key"].encode("utf-8"), "data key") + bytes([DATA_ENTRY_TYPES[kind]]) + raw


def _pb_data_entry(entry: Dict[str, Any]) -> bytes:
    kind, value = _data_value(entry)
    out = _pb_bytes(1, entry["key"].encode("utf-8"))
    if kind == "integer":
        out += _pb_int(10, value, force=True)
    elif kind == "boolean":
        out += _pb_int(11, int(value), force=True)
    elif kind == "binary":
        out += _pb_bytes(12, value, force=True)
    elif kind == "string":
        out += _pb_bytes(13, value.encode("utf-8"), force=True)
    return out


def _data_payload(tx: Dict[str, Any]) -> bytes:
    """Serialized DataTransactionData (protobuf) of a Data transaction."""
    return b"".join(_pb_bytes(1, _pb_data_entry(e), force=True) for e in tx.get("data", []))


def _mass_items(tx: Dict[str, Any]) -> List[Dict[str, Any]]:
    items = tx.get("transfers")
    if not isinstance(items, list) or not 0 < len(items) <= 100:
        raise EncodingError("a mass transfer has 1 to 100 transfers")
    return items


def tx_body_bytes(tx: Dict[str, Any]) -> bytes:
    """The bytes a transaction's proofs sign (and whose hash is its id)."""
    t, v = tx.get("type"), tx.get("version", 1 if tx.get("type") == TX_TRANSFER else None)
    if t == TX_TRANSFER and v in (1, 2):
        chain = _tx_chain(tx)
        head = b"\x04" if v == 1 else b"\x04\x02"
        return (head + _pk(tx) + _legacy_asset(tx.get("assetId"))
                + _legacy_asset(tx.get("feeAssetId"), "feeAssetId")
                + _i64(tx.get("timestamp"), "timestamp") + _i64(tx.get("amount"), "amount")
                + _i64(tx.get("fee"), "fee") + _legacy_recipient(tx.get("recipient"), chain)
                + _short(_attachment(tx), "attachment"))
    if t == TX_TRANSFER and v == 3:
        chain = _tx_chain(tx)
        data = (_pb_bytes(1, _pb_recipient(tx["recipient"], chain), force=True)
                + _pb_bytes(2, _pb_amount(tx.get("assetId"), tx.get("amount")), force=True)
                + _pb_bytes(3, _attachment(tx)))
        return _pb_transaction(tx, 104, data)
    if t == TX_DATA and v == 1:
        entries = tx.get("data", [])
        return (b"\x0c\x01" + _pk(tx) + struct.pack(">H", len(entries))
                + b"".join(_legacy_data_entry(e) for e in entries)
                + _i64(tx.get("timestamp"), "timestamp") + _i64(tx.get("fee"), "fee"))
    if t == TX_DATA and v == 2:
        return _pb_transaction(tx, 112, _data_payload(tx))
    if t == TX_ISSUE and v in (1, 2):
        head = b"\x03" if v == 1 else b"\x03\x02" + bytes([chain_byte(_tx_chain(tx))])
        body = (head + _pk(tx) + _short(str(tx.get("name", "")).encode(), "name")
                + _short(str(tx.get("description", "")).encode(), "description")
                + _i64(tx.get("quantity"), "quantity") + bytes([tx.get("decimals", 0)])
                + bytes([1 if tx.get("reissuable") else 0]))
        if v == 1:
            return body + _i64(tx.get("fee"), "fee") + _i64(tx.get("timestamp"), "timestamp")
        script = tx.get("script")
        script_bytes = b"\x00"
        if script:
            script_bytes = b"\x01" + _short(base64.b64decode(script.replace("base64:", "", 1)), "script")
        return body + _i64(tx.get("fee"), "fee") + _i64(tx.get("timestamp"), "timestamp") + script_bytes
    if t == TX_ISSUE and v == 3:
        script = tx.get("script")
        data = (_pb_bytes(1, str(tx.get("name", "")).encode()) + _pb_bytes(2, str(tx.get("description", "")).encode())
                + _pb_int(3, tx.get("quantity")) + _pb_int(4, tx.get("decimals", 0))
                + _pb_int(5, 1 if tx.get("reissuable") else 0)
                + _pb_bytes(6, base64.b64decode(script.replace("base64:", "", 1)) if script else b""))
        return _pb_transaction(tx, 103, data)
    if t == TX_MASS_TRANSFER and v == 1:
        chain = _tx_chain(tx)
        items = _mass_items(tx)
        return (b"\x0b\x01" + _pk(tx) + _legacy_asset(tx.get("assetId")) + struct.pack(">H", len(items))
                + b"".join(_legacy_recipient(i["recipient"], chain) + _i64(i["amount"], "amount") for i in items)
                + _i64(tx.get("timestamp"), "timestamp") + _i64(tx.get("fee"), "fee")
                + _short(_attachment(tx), "attachment"))
    if t == TX_MASS_TRANSFER and v == 2:
        chain = _tx_chain(tx)
        items = b"".join(
            _pb_bytes(2, _pb_bytes(1, _pb_recipient(i["recipient"], chain), force=True) + _pb_int(2, i["amount"]),
                      force=True)
            for i in _mass_items(tx))
        data = _pb_bytes(1, _asset_bytes(tx.get("assetId"))) + items + _pb_bytes(3, _attachment(tx))
        return _pb_transaction(tx, 111, data)
    raise EncodingError("unsupported transaction type %r version %r" % (t, v))


def tx_id(tx: Dict[str, Any]) -> str:
    return b58encode(blake2b256(tx_body_bytes(tx)))


def tx_signed_bytes(tx: Dict[str, Any]) -> bytes:
    """The wire form: legacy `[0x00] body proofs`, v1 `type sig body`, protobuf SignedTransaction."""
    body = tx_body_bytes(tx)
    proofs = [b58decode(p) for p in tx.get("proofs", [])]
    t, v = tx["type"], tx.get("version", 1)
    if (t in (TX_TRANSFER, TX_ISSUE) and v == 1):
        return bytes([t]) + proofs[0] + body
    if (t, v) in ((TX_TRANSFER, 3), (TX_ISSUE, 3), (TX_DATA, 2), (TX_MASS_TRANSFER, 2)):
        return _pb_bytes(1, body, force=True) + b"".join(_pb_bytes(2, p, force=True) for p in proofs)
    if t == TX_MASS_TRANSFER:
        return body + _legacy_proofs(proofs)
    return b"\x00" + body + _legacy_proofs(proofs)


def sign_tx(tx: Dict[str, Any], private_key: bytes, random_z: Optional[bytes] = None) -> Dict[str, Any]:
    """A copy of tx with its id and one proof; the signature is checked before it is returned."""
    out = dict(tx)
    out.pop("signature", None)
    body = tx_body_bytes(out)
    sig = sign(private_key, body, random_z)
    if not verify(_pk(out), body, sig):
        raise EncodingError("the signature does not verify under senderPublicKey: wrong key for this sender")
    out["proofs"] = [b58encode(sig)]
    out["id"] = b58encode(blake2b256(body))
    return out


def verify_tx(tx: Dict[str, Any]) -> bool:
    """Whether the first proof (or v1 signature) is a valid signature of the body by the sender."""
    try:
        body = tx_body_bytes(tx)
        proofs = tx.get("proofs") or ([tx["signature"]] if tx.get("signature") else [])
        if len(proofs) != 1:
            return False
        return verify(_pk(tx), body, b58decode(proofs[0]))
    except (EncodingError, KeyError, TypeError, ValueError):
        return False


# --- Data entries: limits and fees ----------------------------------------

def data_payload_size(entries: Sequence[Dict[str, Any]]) -> int:
    """Sum of UTF-8 key lengths and value sizes (integer 8, boolean 1, bytes, delete 0)."""
    total = 0
    for e in entries:
        kind, value = _data_value(e)
        total += len(e["key"].encode("utf-8"))
        if kind is not None:
            total += len(_data_value_bytes(kind, value))
    return total


def validate_data_entries(entries: Sequence[Dict[str, Any]], *, version: int = 1, rules: str = "waves") -> None:
    """Refuse entries the node would reject: count, keys, value and total size."""
    if not entries:
        raise EncodingError("a Data transaction needs at least one entry")
    if len(entries) > DATA_MAX_ENTRIES:
        raise EncodingError("a Data transaction holds at most %d entries, not %d" % (DATA_MAX_ENTRIES, len(entries)))
    seen = set()
    for e in entries:
        kind, value = _data_value(e)
        key = e["key"]
        if key in seen:
            raise EncodingError("data key %r appears twice" % key)
        seen.add(key)
        if len(key.encode("utf-8")) > 400:
            raise EncodingError("data key %r is longer than 400 bytes" % key[:40])
        if rules == "0bs" and len(key.encode("utf-16-le")) // 2 > 100:
            raise EncodingError("data key %r is longer than 100 characters (0bs rule)" % key[:40])
        if kind is None and version == 1:
            raise EncodingError("data entry %r: deleting a key needs Data version 2" % key)
        if kind in ("string", "binary") and len(_data_value_bytes(kind, value)) > DATA_MAX_VALUE:
            raise EncodingError("data entry %r: value is longer than %d bytes" % (key, DATA_MAX_VALUE))
    if data_payload_size(entries) > DATA_MAX_PAYLOAD:
        raise EncodingError("data entries total %d bytes, more than %d" % (data_payload_size(entries), DATA_MAX_PAYLOAD))


def data_fee(tx: Dict[str, Any], rules: str = "waves") -> int:
    """Minimum fee of a Data transaction: the highest of the node rules that may apply."""
    body_len = len(tx_body_bytes(dict(tx, fee=tx.get("fee") or 1, proofs=[])))
    if rules == "0bs":
        # 0bs docs list 0.03 ZBS; a Zbs branch used 30 units per started KB of body
        return FEE_UNIT * (30 + (body_len - 1) // 1024)
    current = 1 + (data_payload_size(tx.get("data", [])) - 1) // 1024
    if tx.get("version") == 2:
        before = 1 + (len(_data_payload(tx)) - 1) // 1024
    else:
        before = 1 + (body_len - 1) // 1024
    return FEE_UNIT * max(current, before, 1)


def transfer_fee(rules: str = "waves", *, smart_asset: bool = False) -> int:
    if rules == "0bs":
        return 5_000_000
    return FEE_UNIT + (400_000 if smart_asset else 0)


def mass_transfer_fee(n: int, rules: str = "waves", *, smart_asset: bool = False) -> int:
    if rules == "0bs":
        return 5_000_000
    return FEE_UNIT * (1 + (n + 1) // 2) + (400_000 if smart_asset else 0)


def issue_fee(rules: str = "waves", *, nft: bool = False) -> int:
    if rules == "0bs":
        return 500 * 10 ** 8
    return FEE_UNIT if nft else 1000 * FEE_UNIT


def build_data_tx(keys: KeyPair, entries: List[Dict[str, Any]], *, timestamp: int, chain_id: str,
                  fee: int = 0, rules: str = "waves", version: int = 1,
                  random_z: Optional[bytes] = None) -> Dict[str, Any]:
    """A signed Data transaction; fee 0 computes the minimum for its size."""
    validate_data_entries(entries, version=version, rules=rules)
    tx: Dict[str, Any] = {"type": TX_DATA, "version": version, "senderPublicKey": b58encode(keys.public_key),
                          "fee": fee or 1, "timestamp": timestamp, "chainId": chain_byte(chain_id),
                          "data": list(entries)}
    if not fee:
        tx["fee"] = data_fee(tx, rules)
    if rules == "0bs" or version == 1:
        full = len(tx_signed_bytes(dict(tx, proofs=[b58encode(b"\0" * 64)])))
        if full > DATA_MAX_V1_BYTES:
            raise EncodingError("Data transaction is %d bytes, more than %d" % (full, DATA_MAX_V1_BYTES))
    return sign_tx(tx, keys.private_key, random_z)


def build_transfer_tx(keys: KeyPair, *, recipient: str, amount: int, asset_id: Optional[str], timestamp: int,
                      chain_id: str, fee: int, attachment: bytes = b"", fee_asset_id: Optional[str] = None,
                      random_z: Optional[bytes] = None) -> Dict[str, Any]:
    """A signed Transfer v2 (legacy binary: accepted by Waves and 0bs nodes)."""
    if not _is_int(amount) or amount <= 0:
        raise EncodingError("amount must be a positive integer of the smallest unit, not %r" % (amount,))
    tx = {"type": TX_TRANSFER, "version": 2, "senderPublicKey": b58encode(keys.public_key),
          "assetId": asset_id or None, "recipient": parse_recipient(recipient, chain_id), "amount": amount,
          "attachment": b58encode(attachment), "fee": fee, "feeAssetId": fee_asset_id, "timestamp": timestamp,
          "chainId": chain_byte(chain_id)}
    return sign_tx(tx, keys.private_key, random_z)


def build_issue_tx(keys: KeyPair, *, name: str, description: str, quantity: int, decimals: int,
                   reissuable: bool, timestamp: int, chain_id: str, fee: int,
                   random_z: Optional[bytes] = None) -> Dict[str, Any]:
    """A signed Issue v2 (legacy binary); its id is the new asset id."""
    if not 4 <= len(name.encode()) <= 16:
        raise EncodingError("a token name has 4 to 16 bytes, %r has %d" % (name, len(name.encode())))
    if len(description.encode()) > 1000:
        raise EncodingError("a token description has at most 1000 bytes")
    if not 0 <= decimals <= 8:
        raise EncodingError("decimals must be from 0 to 8, not %r" % decimals)
    if not _is_int(quantity) or not 0 < quantity <= INT64_MAX:
        raise EncodingError("quantity must be a positive 64-bit integer of the smallest unit")
    tx = {"type": TX_ISSUE, "version": 2, "senderPublicKey": b58encode(keys.public_key), "name": name,
          "description": description, "quantity": quantity, "decimals": decimals, "reissuable": reissuable,
          "script": None, "fee": fee, "timestamp": timestamp, "chainId": chain_byte(chain_id)}
    return sign_tx(tx, keys.private_key, random_z)


# =============================================================================
# 10. Command line and main()
# =============================================================================

SEED_WORDS = 15


def read_seed_file(path: str) -> str:
    """The seed phrase of a seed file, refusing one that group or others can read."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SeedFileError("%s: no seed file; create one with: iotlight.py keygen" % path) from None
    except OSError as e:
        raise SeedFileError("%s: cannot read the seed file: %s" % (path, e.strerror)) from None
    if not stat.S_ISREG(st.st_mode):
        raise SeedFileError("%s: the seed file is not a regular file" % path)
    if st.st_mode & 0o077:
        raise SeedFileError("%s: the seed file is readable by group or others (mode %03o); fix it with: chmod 600 %s"
                            % (path, st.st_mode & 0o777, path))
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SeedFileError("%s: cannot read the seed file: %s" % (path, getattr(e, "strerror", None) or "not UTF-8")) from None
    seed = text[:-1] if text.endswith("\n") else text
    if seed.endswith("\r"):
        seed = seed[:-1]
    if not seed.strip():
        raise SeedFileError("%s: the seed file is empty" % path)
    return seed


def write_seed_file(path: str, seed: str) -> None:
    """Create a seed file with mode 0600; never overwrite an existing one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SeedFileError("%s: a seed file exists already; keygen never overwrites one" % path) from None
    except OSError as e:
        raise SeedFileError("%s: cannot create the seed file: %s" % (path, e.strerror)) from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(seed + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, 0o600)


def device_keys(config: Config) -> KeyPair:
    """The device key pair, checked against device.address when that is set."""
    keys = keypair_from_seed(read_seed_file(config.seed_file))
    if config.address:
        address = keys.address(config.chain_id)
        if address != config.address:
            raise ConfigError("%s: device.address: the seed file %s gives %s on chain %r, not %s "
                              "(wrong seed file or wrong network?)"
                              % (config.path, config.seed_file, address, config.chain_id, config.address))
    return keys


def cmd_keygen(config: Config, args: argparse.Namespace) -> int:
    seed = generate_seed_phrase(SEED_WORDS)
    write_seed_file(config.seed_file, seed)
    keys = keypair_from_seed(seed)
    print("wrote a new %d-word seed phrase to %s (mode 0600); keep a copy offline" % (SEED_WORDS, config.seed_file))
    print("address: %s" % keys.address(config.chain_id))
    return 0


def cmd_address(config: Config, args: argparse.Namespace) -> int:
    keys = device_keys(config)
    print("address: %s" % keys.address(config.chain_id))
    print("public key: %s" % b58encode(keys.public_key))
    return 0


def cmd_check(config: Config, args: argparse.Namespace) -> int:
    keys = device_keys(config)
    print("configuration %s is valid" % config.path)
    print("  chain: %s (%s rules), nodes: %s" % (config.chain_id, config.rules, ", ".join(config.node_urls)))
    print("  device address: %s" % keys.address(config.chain_id))
    print("  token: %s, %g s per token, at most %g s" % (config.asset_id, config.seconds_per_token, config.max_seconds))
    print("  state file: %s" % config.state_file)
    print("  hardware: %s, monitor: %s" % (config.backend, "off" if not config.monitor_port
                                          else "%s:%d" % (config.monitor_host, config.monitor_port)))
    return 0


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> "NoReturn":  # type: ignore[name-defined]  # noqa: F821
        raise ConfigError("usage: %s" % message)


def build_parser() -> argparse.ArgumentParser:
    p = _ArgumentParser(prog="iotlight.py", description="Sells light for tokens on a Waves chain.")
    p.add_argument("-c", "--config", help="configuration file (default ./iotlight.toml, then /etc/iotlight/iotlight.toml)")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    p.add_argument("--version", action="version", version="iotlight %s" % __version__)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="run the daemon (the default)")
    sub.add_parser("keygen", help="write a new seed phrase to device.seed_file and print the address")
    sub.add_parser("address", help="print the device address and public key")
    sub.add_parser("check", help="validate the configuration and the seed file")
    return p


COMMANDS: Dict[str, Callable[[Config, argparse.Namespace], int]] = {
    "keygen": cmd_keygen,
    "address": cmd_address,
    "check": cmd_check,
}

# commands that work before payment.asset_id is set
_NO_ASSET_NEEDED = {"keygen", "address"}


class _LogFormatter(logging.Formatter):
    """One line per event; timestamps only on a terminal (journald adds its own)."""

    def __init__(self, tty: bool):
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if tty else "%(levelname)s %(name)s: %(message)s"
        super().__init__(fmt, "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", " | ")


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogFormatter(sys.stderr.isatty()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("httpx", "httpcore", "websockets", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        setup_logging(args.verbose)
        command = args.command or "run"
        config = load_config(find_config(args.config), require_asset=command not in _NO_ASSET_NEEDED)
        return COMMANDS[command](config, args)
    except IotlightError as e:
        print("iotlight: %s" % e, file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
