#!/usr/bin/env python3
"""iotlight: a Raspberry Pi Sense HAT that sells light for tokens on a Waves chain.

Someone sends "IoT-Light" tokens to the device's address; the daemon sees the transfer on the chain and
lights the LED matrix for the time the payment bought. Joystick presses (and, if enabled, temperature,
humidity and pressure) go back onto the chain as Data transactions signed with the device's own key.
A local WebSocket endpoint and a small web page show it all live. README.md is the user-facing contract.

Run it: python3 iotlight.py [-c FILE] [-v] run|keygen|address|check|status|issue|pay|monitor|gpio-off

Sections, lowest layer first (each uses only what stands above it; the monitor reads 11 when a browser asks):
   1. imports and constants     2. errors and their exit statuses     3. configuration, secrets in URLs
   4. Waves cryptography (base58, hashes, keys, addresses, aliases, signatures)   5. transaction bytes, fees
   6. core logic, pure: pricing, the light timer, what a transfer does (judge_transfer), the Data entries
      the device writes, retries (Backoff), rate limits, log-once
   7. edges: clock and store (7a, SQLite), node client (7b, httpx: the only door to the node), systemd (7c),
      hardware (7d), GPIO (7e)
   8. services: loop helpers and liveness (8a, Pulse), ledger (8b), chain reader (8c), watcher (8d),
      lamp (8e), outbox (8f), telemetry (8g), monitor (8h), terminal client (8i)
   9. the daemon: wiring, events, shutdown     10. command line and main()     11. the dashboard's assets
Banners: "# ===" a section, "# --- 8b." a part of one, "# --" a piece of a part.

Who calls whom: main() runs one cmd_* function; cmd_run hands the edges to the Daemon, which runs each
service's run(stop) loop as a task, watched through its Pulse. The Watcher polls the node and asks the
ChainReader for blocks and list pages; the Ledger judges each transfer and credits payments
(Store.credit_payments gives the light's new end time). Services report with tell(kind, **fields): the Daemon
keeps what the monitor's snapshot needs, drives the Lamp, wakes the Outbox (it signs, stores, then broadcasts
Data transactions) and publishes the event. Sections 4-6 read no clock and do no I/O: tests call them
directly; tests/scenario.py runs the Daemon on a virtual clock (the fake node behind httpx.MockTransport).
"""

# =============================================================================
# 1. Imports and constants
# =============================================================================

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import concurrent.futures
import contextlib
import dataclasses
import difflib
import fractions
import gc
import glob
import hashlib
import hmac
import http
import importlib.util
import io
import ipaddress
import json
import logging
import math
import os
import random
import re
import select
import shutil
import signal
import socket
import sqlite3
import stat
import struct
import sys
import threading
import time
import urllib.parse
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, NoReturn, Optional, Sequence, Tuple

if TYPE_CHECKING:  # websockets itself is imported where the monitor starts: less memory when it is off
    from websockets.asyncio.server import ServerConnection  # noqa: F401

__version__ = "0.2.0"
log = logging.getLogger("iotlight")


# =============================================================================
# 2. Errors
# =============================================================================
# Each class says its exit status (exit_status, a class attribute; never set on an instance):
#   IotlightError                       any error shown as one line: exit 1
#    +-- ConfigError (ValueError)        bad configuration or usage: exit 2
#    |    +-- SeedFileError              missing, unreadable or too open seed: exit 2
#    +-- EncodingError (ValueError)      bad base58, address, alias, tx field: exit 1
#    +-- NodeError                       the node could not be asked: exit 1
#    |    +-- NodeRejected               the node answered with an API error: exit 1
#    |    +-- NodeThrottled              the node (a pool) answered 429/503: asked too often: exit 1
#    +-- StateError                      the state file cannot be used (locked, disk full): exit 1
#         +-- StateDamaged               the state file is damaged, kept aside: exit 3


class IotlightError(Exception):
    exit_status = 1


class ConfigError(IotlightError, ValueError):
    exit_status = 2


class SeedFileError(ConfigError): ...


class EncodingError(IotlightError, ValueError): ...


class NodeError(IotlightError): ...


class NodeThrottled(NodeError):
    def __init__(self, message: str, *, retry_after: Optional[float] = None):
        super().__init__(message)
        self.retry_after = retry_after


class NodeRejected(NodeError):
    def __init__(self, message: str, *, status: int = 0, code: Optional[int] = None):
        super().__init__(message)
        self.status, self.code = status, code
        self.refusal = refusal_of(message, status=status, code=code)  # what the table of refusals (7b) says


class StateError(IotlightError): ...


class StateDamaged(StateError):
    exit_status = 3


# =============================================================================
# 3. Configuration
# =============================================================================
# CONFIG_SCHEMA is the one list of keys: those of README.md plus a few of our own (node.fork, node.list_rate,
# node.max_answer_bytes, data.coalesce_window, data.max_tx_per_minute, monitor.max_clients_per_address).

DEFAULT_CONFIG_PATHS = ("./iotlight.toml", "/etc/iotlight/iotlight.toml")
HARDWARE_BACKENDS = ("auto", "sense-hat", "sense-emu", "terminal", "none")
FORKS, REFUND_POLICIES = ("auto", "waves", "0bs"), ("none", "excess")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _positive(v: Any) -> bool:
    return _is_number(v) and 0 < v < math.inf


def _as_is(v: Any) -> Any:
    return v


@dataclasses.dataclass(frozen=True)
class ConfigKey:
    """One key: its check, default (None: required), what is expected (for errors), how the TOML
    value becomes the Config attribute, and that attribute's name if not the key's last part."""

    check: Callable[[Any], bool]
    default: Any
    expected: str
    convert: Callable[[Any], Any] = _as_is
    attr: str = ""


def _switch(default: bool, expected: str = "true or false") -> ConfigKey:
    return ConfigKey(lambda v: isinstance(v, bool), default, expected)


def _text(default: Optional[str], expected: str, **fields: Any) -> ConfigKey:
    return ConfigKey(lambda v: isinstance(v, str), default, expected, **fields)


def _number(lo: float, hi: float, default: float, expected: str = "") -> ConfigKey:
    expected = expected or "a number of seconds from %s to %s" % (lo, hi)
    return ConfigKey(lambda v: _is_number(v) and lo <= v <= hi, default, expected, float)


def _integer(lo: int, hi: int, default: int, expected: str = "", attr: str = "") -> ConfigKey:
    expected = expected or "an integer from %d to %d" % (lo, hi)
    return ConfigKey(lambda v: _is_int(v) and lo <= v <= hi, default, expected, attr=attr)


def _choice(choices: Tuple[str, ...], expected: str = "") -> ConfigKey:
    """One of `choices`, the first by default."""
    expected = expected or "one of " + ", ".join('"%s"' % c for c in choices)
    return ConfigKey(lambda v: v in choices, choices[0], expected)


CONFIG_SCHEMA: Dict[str, ConfigKey] = {
    "node.urls": ConfigKey(
        lambda v: isinstance(v, list) and len(v) > 0 and all(isinstance(x, str) for x in v),
        ["https://nodes-testnet.wavesnodes.com"],
        "a non-empty list of http(s) URLs",
        lambda v: tuple(u.rstrip("/") for u in v),
        "node_urls",
    ),
    "node.chain_id": ConfigKey(
        lambda v: isinstance(v, str) and len(v) == 1 and 33 <= ord(v) <= 126,
        "T",
        'one character, e.g. "W" mainnet, "T" testnet, "S" stagenet, "Z" 0bsnetwork',
    ),
    "node.poll_interval": _number(0.1, 60, 1.0),
    "node.confirmations": _integer(0, 100, 0),
    "node.timeout": _number(0.5, 300, 10.0),
    "node.fork": _choice(FORKS, '"auto" (0bs rules on chain "Z", Waves rules elsewhere), "waves" or "0bs"'),
    "node.sweep_interval": _number(5, 3600, 300.0),
    "node.list_rate": _number(0, 600, 15.0, "requests per minute from 0 (unlimited, for an own node) to 600"),
    "node.max_answer_bytes": _integer(
        65536, 268435456, 8 * 1024 * 1024, "an integer from 65536 to 268435456 (bytes)"
    ),
    "device.seed_file": _text("device.seed", "a path"),
    "device.address": _text("", 'a base58 address or ""'),
    "device.state_file": _text("iotlight.db", "a path"),
    "payment.asset_id": _text(None, "the base58 id of the token that buys light"),
    "payment.seconds_per_token": ConfigKey(_positive, 1.0, "a number greater than 0", float),
    "payment.max_seconds": ConfigKey(_positive, 3600.0, "a number greater than 0", float),
    "payment.count_history": _switch(False),
    "payment.min_tokens": ConfigKey(
        lambda v: _is_number(v) and 0 <= v < 1e15, 0.0, "a number of whole tokens, 0 or more", float
    ),
    "payment.refund": _choice(REFUND_POLICIES, '"none" or "excess"'),
    "light.color": ConfigKey(
        lambda v: isinstance(v, list) and len(v) == 3 and all(_is_int(x) and 0 <= x <= 255 for x in v),
        [255, 255, 255],
        "[r, g, b] with integers from 0 to 255",
        tuple,
    ),
    "light.countdown": _switch(True),
    "light.gpio_pin": ConfigKey(
        lambda v: _is_int(v) and (v == -1 or 0 <= v <= 27), -1, "a BCM pin number from 0 to 27, or -1 (off)"
    ),
    "light.gpio_active_high": _switch(True, "true or false (false for relay boards that switch on low)"),
    "data.joystick": _switch(True),
    "data.telemetry_interval": ConfigKey(
        lambda v: _is_number(v) and (v == 0 or 1 <= v <= 86400),
        0.0,
        "0 (off) or a number of seconds from 1 to 86400",
        float,
    ),
    "data.fee": _integer(0, 10**12, 0, "0 (automatic) or a fee in the smallest coin unit"),
    "data.coalesce_window": _number(0, 60, 1.0),
    "data.max_tx_per_minute": _integer(1, 120, 20),
    "hardware.backend": _choice(HARDWARE_BACKENDS),
    "monitor.host": _text("127.0.0.1", "a host name or IP address", convert=str.strip, attr="monitor_host"),
    "monitor.port": _integer(0, 65535, 8765, "an integer from 0 (off) to 65535", "monitor_port"),
    "monitor.token": _text("", "a string", attr="monitor_token"),
    "monitor.max_clients_per_address": _integer(1, 1000, 10, attr="monitor_max_clients_per_address"),
    "monitor.wallet_url": _text(
        "auto",
        '"auto" (the public web wallet of node.chain_id), "" (none) or an https:// link with {asset}, {address} and {amount}',
    ),
    "monitor.explorer_url": _text(
        "auto", '"auto" (the public explorer of node.chain_id), "" (none) or an https:// link with {id}'
    ),
}

# "auto" above: the public web wallet and explorer of each Waves network. The wallet link is the WX
# Network (waves.exchange) Payment API; amount is in whole tokens, `strict` makes the wallet show it as given.
WALLET_URLS = {
    "W": "https://waves.exchange/#send/{asset}?recipient={address}&amount={amount}&strict",
    "T": "https://testnet.waves.exchange/#send/{asset}?recipient={address}&amount={amount}&strict",
    "S": "https://stagenet.waves.exchange/#send/{asset}?recipient={address}&amount={amount}&strict",
}
EXPLORER_URLS = {
    "W": "https://wavesexplorer.com/tx/{id}",
    "T": "https://wavesexplorer.com/testnet/tx/{id}",
    "S": "https://wavesexplorer.com/stagenet/tx/{id}",
}


def config_attr(key: str) -> str:
    """The Config attribute that CONFIG_SCHEMA's `key` fills."""
    return CONFIG_SCHEMA[key].attr or key.split(".", 1)[1]


def _rules(config: Any) -> str:
    """The fee and limit rules of the chain: "waves" or "0bs" (node.fork "auto": 0bs on chain "Z")."""
    return config.fork if config.fork != "auto" else ("0bs" if config.chain_id == "Z" else "waves")


Config = dataclasses.make_dataclass(
    "Config", ["path", *map(config_attr, CONFIG_SCHEMA)], frozen=True, namespace={"rules": property(_rules)}
)
Config.__doc__ = """A validated configuration: `path`, then one attribute per CONFIG_SCHEMA key (config_attr
names it), with the paths made absolute and the "auto" links resolved; frozen."""


def _flatten(table: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in table.items():
        out.update(_flatten(v, prefix + k + ".") if isinstance(v, dict) and v else {prefix + k: v})
    return out


def _is_loopback(host: str) -> bool:
    try:
        return host in ("localhost", "ip6-localhost") or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _toml_repr(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_toml_repr(x) for x in v) + "]"
    return json.dumps(v, ensure_ascii=False) if isinstance(v, (bool, str)) else str(v)


def _key_error(path: str, key: str, msg: str) -> ConfigError:
    return ConfigError("%s: %s: %s" % (path, key, msg))


def _bad_value(path: str, key: str, shown: Any, why: str) -> ConfigError:
    return _key_error(path, key, "%s is not valid: %s" % (_toml_repr(shown), why))


def _known_keys(table: Dict[str, Any], path: str) -> Dict[str, Any]:
    """The table flattened to "section.key" -> value; ConfigError for anything CONFIG_SCHEMA lacks."""
    sections = sorted({k.split(".")[0] for k in CONFIG_SCHEMA})
    listed = "[%s]" % "], [".join(sections)
    flat: Dict[str, Any] = {}
    for section, value in table.items():
        hint = difflib.get_close_matches(section, sections, 1)
        if not isinstance(value, dict):
            mean = " (did you mean [%s]?)" % hint[0] if hint else ""
            why = "unknown key at top level; keys live in sections %s%s" % (listed, mean)
            raise _key_error(path, section, why)
        if section not in sections:
            why = " (did you mean [%s]?)" % hint[0] if hint else "; sections are %s" % listed
            raise _key_error(path, "[%s]" % section, "unknown section" + why)
        flat.update(_flatten(value, section + "."))
    for key in [k for k in flat if k not in CONFIG_SCHEMA]:
        hint = difflib.get_close_matches(key, list(CONFIG_SCHEMA), 1, 0.6)
        raise _key_error(path, key, "unknown key%s" % (" (did you mean %s?)" % hint[0] if hint else ""))
    return flat


def _check_ids(v: Dict[str, Any], path: str) -> None:
    """The device address and the asset id, as far as they can be checked offline."""
    address, asset = v["device.address"], v["payment.asset_id"]
    try:
        if address:
            parse_address(address, v["node.chain_id"])
    except EncodingError as e:
        raise _bad_value(path, "device.address", address, str(e)) from None
    try:
        if asset:
            parse_asset_id(asset, coin=None)
    except EncodingError as e:
        expected = CONFIG_SCHEMA["payment.asset_id"].expected
        raise _bad_value(path, "payment.asset_id", asset, "%s (expected %s)" % (e, expected)) from None


def _check_monitor(v: Dict[str, Any], path: str) -> None:
    """The monitor's host (a token unless it is loopback) and links ("auto": those of the chain)."""
    host = v["monitor.host"].strip()
    if not host:
        raise _key_error(path, "monitor.host", "must not be empty")
    if v["monitor.port"] and not _is_loopback(host) and not v["monitor.token"]:
        why = "required when monitor.host (%s) is not a loopback address: " % _toml_repr(host)
        raise _key_error(path, "monitor.token", why + "set a secret token, clients then pass ?token=...")
    for key, known in (("monitor.wallet_url", WALLET_URLS), ("monitor.explorer_url", EXPLORER_URLS)):
        link, needs = v[key].strip(), "{address}" if known is WALLET_URLS else "{id}"
        if link == "auto":
            link = known.get(v["node.chain_id"], "")
        elif link and (not link.startswith(("https://", "http://")) or needs not in link):
            raise _bad_value(path, key, v[key], "expected " + CONFIG_SCHEMA[key].expected)
        v[key] = link


def parse_config(table: Dict[str, Any], path: str, *, require_asset: bool = True) -> Config:
    """Validate a parsed TOML table and return a Config; ConfigError names file and key."""
    flat = _known_keys(table, path)
    v: Dict[str, Any] = {}
    for key, spec in CONFIG_SCHEMA.items():
        if key in flat and not spec.check(flat[key]):
            raise _bad_value(path, key, flat[key], "expected " + spec.expected)
        if not flat.get(key) and spec.default is None and require_asset:  # missing, or "": no token
            missing = "missing: expected %s (set it in [%s])" % (spec.expected, key.split(".")[0])
            raise _key_error(path, key, missing)
        v[key] = flat.get(key, "" if spec.default is None else spec.default)
    for url in v["node.urls"]:
        if not url.startswith(("http://", "https://")) or len(url) < 10:
            raise _bad_value(path, "node.urls", redact_url(url), "expected http:// or https:// URLs")
    _check_ids(v, path)
    base = Path(path).resolve().parent
    for key in ("device.seed_file", "device.state_file"):
        if not v[key].strip():
            raise _key_error(path, key, "must not be empty: expected a path")
        v[key] = str(base / v[key])
    _check_monitor(v, path)
    attrs = {config_attr(key): spec.convert(v[key]) for key, spec in CONFIG_SCHEMA.items()}
    return Config(path=str(Path(path).resolve()), **attrs)


def _toml_loads(text: str) -> Dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib  # novermin (3.11+, guarded)
    else:  # pragma: no cover - exercised on 3.9/3.10 only
        import tomli as tomllib
    return tomllib.loads(text)


def find_config(explicit: Optional[str]) -> str:
    """The configuration path: -c, else ./iotlight.toml, else /etc/iotlight/iotlight.toml."""
    found = explicit or next((p for p in DEFAULT_CONFIG_PATHS if os.path.exists(p)), None)
    if not found:
        raise ConfigError("no configuration found: tried %s; pass -c PATH" % ", ".join(DEFAULT_CONFIG_PATHS))
    return found


def load_config(path: str, *, require_asset: bool = True) -> Config:
    """Read, parse and validate a TOML configuration file."""
    try:
        table = _toml_loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("%s: no such configuration file" % path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("%s: cannot read: %s" % (path, getattr(e, "strerror", None) or e)) from None
    except ValueError as e:  # tomllib.TOMLDecodeError is a ValueError
        raise ConfigError("%s: not valid TOML: %s" % (path, e)) from None
    return parse_config(table, path, require_asset=require_asset)


# -- Secrets in URLs ----------------------------------------------------------
# A node URL may carry credentials (https://user:pass@host/, ?apikey=...): whatever shows a URL (logs, errors,
# check, status, the monitor) shows redact_url(url), requests use the real one. The log formatter passes
# every line through it too: the monitor's ?token= stays out of access logs.

REDACTED = "***"
_SECRET_PARAM = re.compile(r"key|token|secret|pass|pwd|auth|sig|session|cred", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s?#]*)@")
_QUERY_PARAM = re.compile(r"(?P<head>[?&;](?P<name>[A-Za-z0-9_.\-\[\]]+)=)(?P<value>[^&;#\s\"'<>]*)")


def _mask_userinfo(m: "re.Match") -> str:
    user, colon, _ = m.group("userinfo").partition(":")
    # user:password keeps the user; a lone user part is often the key itself (https://KEY@host)
    return "%s%s@" % (m.group("scheme"), "%s:%s" % (user, REDACTED) if colon else REDACTED)


def _mask_param(m: "re.Match") -> str:
    secret = m.group("value") and _SECRET_PARAM.search(m.group("name"))
    return m.group("head") + REDACTED if secret else m.group(0)


def redact_url(text: str) -> str:
    """A URL (or any text with URLs or a request path in it) fit to show: user:password@ and key-like query
    values lose their secret: "https://u:pw@n/x?apikey=k&a=1" -> "https://u:***@n/x?apikey=***&a=1"."""
    if "@" in text:
        text = _URL_USERINFO.sub(_mask_userinfo, text)
    if "=" in text:
        text = _QUERY_PARAM.sub(_mask_param, text)
    return text


# =============================================================================
# 4. Waves cryptography
# =============================================================================
# As in the Waves protocol notes (README, "Dependencies" and "What the daemon trusts the node for"): hashes
# from hashlib (BLAKE2b, SHA-256, SHA-512) and pycryptodome (Keccak-256), curves from libsodium via PyNaCl.

B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(B58_ALPHABET)}
B58_MAX_DECODE = 192  # the node refuses longer base58 strings in JSON byte fields
NETWORKS = {"W": "mainnet", "T": "testnet", "S": "stagenet", "Z": "0bsnetwork"}
ALIAS_CHARS = frozenset("-.0123456789@_abcdefghijklmnopqrstuvwxyz")
_ED25519_L = 2**252 + 27742317777372353535851937790883648493
_P25519 = 2**255 - 19


def b58encode(data: bytes) -> str:
    """Base58 (Bitcoin alphabet); each leading zero byte becomes a leading '1'."""
    n, out = int.from_bytes(data, "big"), ""
    while n:
        n, r = divmod(n, 58)
        out = B58_ALPHABET[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def b58decode(text: str, *, max_length: int = B58_MAX_DECODE) -> bytes:
    """Decode base58; EncodingError on a bad character or an over-long string."""
    if not isinstance(text, str):
        raise EncodingError("base58 value must be a string, not %s" % type(text).__name__)
    if len(text) > max_length:
        raise EncodingError("base58 string of %d characters is longer than %d" % (len(text), max_length))
    n = 0
    for pos, c in enumerate(text):
        if c not in _B58_INDEX:
            raise EncodingError("invalid base58 character %r at position %d" % (c, pos))
        n = n * 58 + _B58_INDEX[c]
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


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


def _clamp(key: bytes) -> bytes:
    return bytes([key[0] & 248, *key[1:31], (key[31] & 127) | 64, *key[32:]])


def keypair_from_seed(seed: str, nonce: int = 0) -> KeyPair:
    """Seed phrase -> key pair: sha256(secure_hash(nonce || UTF-8 seed)), clamped."""
    seed_bytes = seed.encode("utf-8") if isinstance(seed, str) else bytes(seed)
    account_seed = secure_hash(struct.pack(">I", nonce) + seed_bytes)
    return keypair_from_private_key(_clamp(hashlib.sha256(account_seed).digest()))


def chain_byte(chain_id: str) -> int:
    """The chain id's byte: one ASCII character (the node keeps it in one signed byte)."""
    if not isinstance(chain_id, str) or len(chain_id) != 1:
        raise EncodingError("chain id must be one character, not %r" % (chain_id,))
    if not 0 < ord(chain_id) < 128:
        raise EncodingError("chain id must be an ASCII character, not %r" % (chain_id,))
    return ord(chain_id)


def address_bytes_from_public_key(public_key: bytes, chain_id: str) -> bytes:
    head = bytes([1, chain_byte(chain_id)]) + secure_hash(public_key)[:20]
    return head + secure_hash(head)[:4]


def address_from_public_key(public_key: bytes, chain_id: str) -> str:
    return b58encode(address_bytes_from_public_key(public_key, chain_id))


def parse_address(address: str, chain_id: str) -> bytes:
    """Check an address string (version, chain id, checksum); return its 26 bytes."""
    raw = b58decode(address.removeprefix("address:") if isinstance(address, str) else address)
    if len(raw) != 26:
        raise EncodingError("an address is 26 bytes (35 base58 characters), got %d bytes" % len(raw))
    if raw[0] != 1:
        raise EncodingError("unknown address version %d" % raw[0])
    if raw[1] != chain_byte(chain_id):
        raise EncodingError("address is for chain %r, not %r" % (chr(raw[1]), chain_id))
    if secure_hash(raw[:22])[:4] != raw[22:]:
        raise EncodingError("address checksum does not match (a typo?)")
    return raw


def chain_of_address(address: Any) -> Optional[str]:
    """The network byte of a base58 address as a character, or None when it is not an address."""
    try:
        raw = b58decode(address.replace("address:", "", 1))
    except (EncodingError, AttributeError):
        return None
    return chr(raw[1]) if len(raw) == 26 and raw[0] == 1 else None


def network_name(chain_id: str) -> str:
    return "%r (%s)" % (chain_id, NETWORKS.get(chain_id, "a fork"))


def split_alias(text: str) -> Tuple[str, str]:
    """(chain, name) of `alias:<chain>:<name>`, read by position: the chain is one character, maybe ':'."""
    if len(text) < 8 or not text.startswith("alias:") or text[7] != ":":
        raise EncodingError("an alias is written alias:<chain>:<name>, not %r" % text)
    return text[6], text[8:]


def parse_alias(text: str, chain_id: str) -> str:
    """`alias:<chain>:<name>` or a bare name -> the canonical `alias:<chain>:<name>`."""
    chain_byte(chain_id)
    chain, name = split_alias(text) if text.startswith("alias:") else (chain_id, text)
    if chain != chain_id:
        raise EncodingError("alias is for chain %r, not %r" % (chain, chain_id))
    if not 4 <= len(name) <= 30:
        raise EncodingError("an alias name has 4 to 30 characters, %r has %d" % (name, len(name)))
    bad = sorted(set(name) - ALIAS_CHARS)
    if bad:
        raise EncodingError("alias name %r has characters outside a-z 0-9 - . @ _: %s" % (name, "".join(bad)))
    return "alias:%s:%s" % (chain_id, name)


def parse_recipient(text: str, chain_id: str) -> str:
    """An address (checked) or an alias (canonical form) as typed by a user."""
    if not isinstance(text, str):
        raise EncodingError("a recipient is an address or an alias, not %r" % (text,))
    bare = text.replace("address:", "", 1)
    if not text.startswith("alias:") and len(text) >= 34 and all(c in _B58_INDEX for c in bare):
        parse_address(text, chain_id)
        return bare
    return parse_alias(text, chain_id)


def parse_asset_id(asset_id: Optional[str], *, coin: Optional[str] = "WAVES", what: str = "") -> bytes:
    """The one check of an asset id: a token's base58 id -> its 32 bytes; the chain's own coin (None,
    "", "WAVES" or `coin` such as "ZBS", any case) -> b"" unless coin=None. Errors start "`what`: "."""
    if coin is not None and (not asset_id or asset_id.upper() in ("WAVES", coin.upper())):
        return b""
    try:
        raw = b58decode(asset_id)  # type: ignore[arg-type]
        if len(raw) != 32:
            raise EncodingError("an asset id is 32 bytes, not %d" % len(raw))
    except EncodingError as e:
        raise EncodingError("%s: %s" % (what, e) if what else str(e)) from None
    return raw


def sign(private_key: bytes, message: bytes, random_z: Optional[bytes] = None) -> bytes:
    """Waves Curve25519 signature (64 bytes) of message; random_z is 64 random bytes."""
    from nacl import bindings as nb

    z = os.urandom(64) if random_z is None else random_z
    if len(z) != 64:
        raise EncodingError("signature randomness must be 64 bytes")
    a_bytes = _clamp(private_key)
    a_red = nb.crypto_core_ed25519_scalar_reduce(a_bytes + b"\0" * 32)
    ed_pub = nb.crypto_scalarmult_ed25519_base_noclamp(a_red)
    nonce = hashlib.sha512(b"\xfe" + b"\xff" * 31 + a_bytes + message + z).digest()
    r = nb.crypto_core_ed25519_scalar_reduce(nonce)
    big_r = nb.crypto_scalarmult_ed25519_base_noclamp(r)
    h = nb.crypto_core_ed25519_scalar_reduce(hashlib.sha512(big_r + ed_pub + message).digest())
    s = bytearray(nb.crypto_core_ed25519_scalar_add(nb.crypto_core_ed25519_scalar_mul(h, a_red), r))
    s[31] |= ed_pub[31] & 0x80
    return big_r + bytes(s)


def ed25519_public_key(public_key: bytes, sign_bit: int) -> bytes:
    """The Edwards form of an X25519 public key, with the given sign bit."""
    u = int.from_bytes(public_key, "little") & ((1 << 255) - 1)
    inverse = pow(u + 1, -1, _P25519) if (u + 1) % _P25519 else 0  # u = -1: a degenerate key
    y_bytes = bytearray(((u - 1) * inverse % _P25519).to_bytes(32, "little"))
    y_bytes[31] = (y_bytes[31] & 0x7F) | (sign_bit & 0x80)
    return bytes(y_bytes)


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Verify a Waves Curve25519 signature as the node does; False for anything malformed.
    The node (curve25519-java, ref10's crypto_sign_open) takes any S < 2^253 once the sign bit is cleared;
    libsodium only S < L. S and S + L verify alike (h does not cover S, S·B = (S mod L)·B), so an S in
    [L, 2^253) is reduced first. Small-order public keys stay refused, as by the node since feature 17."""
    from nacl.bindings import crypto_sign_open
    from nacl.exceptions import BadSignatureError, CryptoError

    if len(public_key) != 32 or len(signature) != 64:
        return False
    s = int.from_bytes(signature[32:], "little") & ((1 << 255) - 1)
    if s >= 1 << 253:
        return False
    ed_pub = ed25519_public_key(public_key, signature[63])
    sig = signature[:32] + (s % _ED25519_L).to_bytes(32, "little")
    try:
        crypto_sign_open(sig + message, ed_pub)
        return True
    except (BadSignatureError, CryptoError, ValueError):
        return False


def generate_seed_phrase(words: int = 15, rng: Optional[random.SystemRandom] = None) -> str:
    """A new seed phrase of `words` words from the 2048-word list Waves wallets use (BIP-39 English)."""
    from mnemonic import Mnemonic

    wordlist, rng = Mnemonic("english").wordlist, rng or random.SystemRandom()
    return " ".join(rng.choice(wordlist) for _ in range(words))


# =============================================================================
# 5. Transaction bytes, JSON, fees and limits
# =============================================================================
# A transaction is the JSON dict the node's broadcast endpoint accepts. The device writes legacy binary only
# (Data v1, Transfer v2, Issue v2: Waves and 0bs accept them) and verifies every transfer a payment may come
# in: Transfer v1-v3, Mass Transfer v1-v2 (v3, v2: protobuf). Other layouts: tests/reference.py.

TX_ISSUE, TX_TRANSFER, TX_MASS_TRANSFER, TX_DATA = 3, 4, 11, 12
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FEE_UNIT, MAX_ATTACHMENT = 100_000, 140
DATA_MAX_ENTRIES, DATA_MAX_VALUE = 100, 32_767
DATA_MAX_PAYLOAD = 165_835  # Waves with feature 17: sum of key and value sizes
DATA_MAX_V1_BYTES = 153_600  # Waves before feature 17 and 0bs: full signed v1 bytes
DATA_ENTRY_TYPES = {"integer": 0, "boolean": 1, "binary": 2, "string": 3}
Tx = Dict[str, Any]  # a transaction (or its fields) as the node's JSON has it
# The node reads base64 with java.util.Base64's basic decoder: the standard alphabet, nothing else;
# the final unit may leave its padding out, but padding that is there is complete and comes last
# ("AAAA=", "AA=", "AAA==" and "A" are refused; "AA" and "AAA" are read as "AA==" and "AAA=").
_NODE_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?")


def _i64(v: Any, what: str) -> bytes:
    if not _is_int(v) or not INT64_MIN <= v <= INT64_MAX:
        raise EncodingError("%s must be a 64-bit integer, not %r" % (what, v))
    return struct.pack(">q", v)


def _longs(tx: Tx, *keys: str) -> bytes:
    return b"".join(_i64(tx.get(key), key) for key in keys)


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise EncodingError("%s is not valid Unicode (a lone surrogate?)" % what) from None


def base64_node_decode(text: str) -> bytes:
    """A base64 string (`base64:` prefix optional) decoded exactly as the node does, or refused."""
    if not isinstance(text, str):
        raise EncodingError("base64 must be a string, not %r" % (text,))
    body = text[7:] if text.startswith("base64:") else text
    if not _NODE_BASE64.fullmatch(body):
        raise EncodingError("not valid base64 (the node refuses it): %r" % (text[:40],))
    body = body.rstrip("=")
    return base64.b64decode(body + "=" * (-len(body) % 4))


def _short(data: bytes, what: str) -> bytes:
    if len(data) > 0xFFFF:
        raise EncodingError("%s is %d bytes, more than 65535" % (what, len(data)))
    return struct.pack(">H", len(data)) + data


def _pk(tx: Tx) -> bytes:
    pk = b58decode(tx.get("senderPublicKey", ""))
    if len(pk) != 32:
        raise EncodingError("senderPublicKey must be 32 bytes, not %d" % len(pk))
    return pk


def _asset_json(asset_id: Optional[str]) -> Optional[str]:
    """An asset id as the node's JSON has it: the chain's own coin is null, not "" or "WAVES"."""
    return None if not parse_asset_id(asset_id, what="assetId") else asset_id


def _legacy_asset(asset_id: Optional[str], what: str = "assetId") -> bytes:
    raw = parse_asset_id(asset_id, what=what)
    return b"\x01" + raw if raw else b"\x00"


def _tx_chain(tx: Tx) -> str:
    """The chain a transaction was made for: its chainId, else its (first) recipient's."""
    c = tx.get("chainId")
    if _is_int(c):
        if not 0 < c < 128:
            raise EncodingError("chainId must be the byte of one ASCII character, not %r" % (c,))
        return chr(c)
    if isinstance(c, str) and len(c) == 1:
        return chr(chain_byte(c))
    rec, items = tx.get("recipient") or "", tx.get("transfers")
    if not rec and isinstance(items, list) and items and isinstance(items[0], dict):
        rec = items[0].get("recipient") or ""
    alias = isinstance(rec, str) and rec.startswith("alias:")
    chain = split_alias(rec)[0] if alias else chain_of_address(rec)
    if chain is None:
        raise EncodingError("transaction has no chainId")
    return chain


def _legacy_recipient(recipient: str, chain_id: str) -> bytes:
    if not isinstance(recipient, str):
        raise EncodingError("recipient must be a string")
    if recipient.startswith("alias:"):
        chain, name = split_alias(parse_alias(recipient, split_alias(recipient)[0]))
        return bytes([2, ord(chain)]) + _short(name.encode(), "alias")
    return parse_address(recipient, chain_id)


def _attachment(tx: Tx) -> bytes:
    raw = b58decode(tx.get("attachment") or "")
    if len(raw) > MAX_ATTACHMENT:
        raise EncodingError("attachment is %d bytes, more than %d" % (len(raw), MAX_ATTACHMENT))
    return raw


# -- Protobuf: what Transfer v3 and Mass Transfer v2 need (deterministic, as the node's ScalaPB encoder
# writes it: fields in ascending order, defaults omitted, set oneof members and sub-messages written).


def _pb_varint(n: int) -> bytes:
    n, out = n & (1 << 64) - 1, b""
    while n > 0x7F:
        n, out = n >> 7, out + bytes([n & 0x7F | 0x80])
    return out + bytes([n])


def _pb_int(field: int, v: int) -> bytes:
    return _pb_varint(field << 3) + _pb_varint(v) if v else b""


def _pb_bytes(field: int, v: bytes, *, force: bool = False) -> bytes:
    return _pb_varint(field << 3 | 2) + _pb_varint(len(v)) + v if v or force else b""


def _pb_amount(asset_id: Optional[str], amount: int) -> bytes:
    return _pb_bytes(1, parse_asset_id(asset_id, what="assetId")) + _pb_int(2, amount)


def _pb_recipient(recipient: str, chain_id: str) -> bytes:
    if isinstance(recipient, str) and recipient.startswith("alias:"):
        return _pb_bytes(2, split_alias(parse_alias(recipient, chain_id))[1].encode())
    return _pb_bytes(1, parse_address(recipient, chain_id)[2:22])


def _pb_transaction(tx: Tx, field: int, data: bytes) -> bytes:
    _longs(tx, "fee", "timestamp")  # refuses what is not a 64-bit integer
    head = _pb_int(1, chain_byte(_tx_chain(tx))) + _pb_bytes(2, _pk(tx))
    head += _pb_bytes(3, _pb_amount(tx.get("feeAssetId"), tx["fee"]), force=True)
    return head + _pb_int(4, tx["timestamp"]) + _pb_int(5, tx["version"]) + _pb_bytes(field, data, force=True)


def _data_value(entry: Dict[str, Any]) -> Tuple[str, bytes]:
    """(type, value bytes) of a JSON data entry: integer 8 bytes, boolean 1, binary decoded."""
    key = entry.get("key")
    if not isinstance(key, str) or not key:
        raise EncodingError("a data entry needs a non-empty string key")
    _utf8(key, "data key %r" % key)
    kind, value = entry.get("type"), entry.get("value")
    if kind == "integer":
        return kind, _i64(value, "data entry %r" % key)
    if kind == "boolean" and isinstance(value, bool):
        return kind, b"\x01" if value else b"\x00"
    if kind == "string" and isinstance(value, str):
        return kind, _utf8(value, "data entry %r: string value" % key)
    if kind in ("boolean", "string"):
        must = "true or false" if kind == "boolean" else "a string"
        raise EncodingError("data entry %r: %s value must be %s" % (key, kind, must))
    if kind == "binary":
        try:
            return kind, base64_node_decode(value)
        except EncodingError:
            raise EncodingError("data entry %r: binary value is not valid base64" % key) from None
    raise EncodingError("data entry %r: unknown type %r (deleting a key needs Data version 2)" % (key, kind))


def _legacy_data_entry(entry: Dict[str, Any]) -> bytes:
    kind, raw = _data_value(entry)
    if kind in ("string", "binary"):
        raw = _short(raw, "data entry %r" % entry["key"])
    return _short(entry["key"].encode("utf-8"), "data key") + bytes([DATA_ENTRY_TYPES[kind]]) + raw


def _transfer_body(tx: Tx, v: int) -> bytes:
    chain = _tx_chain(tx)
    if v == 3:
        data = _pb_bytes(1, _pb_recipient(tx["recipient"], chain), force=True)
        data += _pb_bytes(2, _pb_amount(tx.get("assetId"), tx.get("amount")), force=True)
        return _pb_transaction(tx, 104, data + _pb_bytes(3, _attachment(tx)))
    body = (b"\x04" if v == 1 else b"\x04\x02") + _pk(tx) + _legacy_asset(tx.get("assetId"))
    body += _legacy_asset(tx.get("feeAssetId"), "feeAssetId") + _longs(tx, "timestamp", "amount", "fee")
    return body + _legacy_recipient(tx.get("recipient"), chain) + _short(_attachment(tx), "attachment")


def _mass_transfer_body(tx: Tx, v: int) -> bytes:
    chain, items = _tx_chain(tx), tx.get("transfers")
    if not isinstance(items, list) or not 0 < len(items) <= 100:
        raise EncodingError("a mass transfer has 1 to 100 transfers")
    if v == 2:
        entries = b""
        for item in items:
            to = _pb_bytes(1, _pb_recipient(item["recipient"], chain), force=True)
            entries += _pb_bytes(2, to + _pb_int(2, item["amount"]))
        data = _pb_bytes(1, parse_asset_id(tx.get("assetId"), what="assetId")) + entries
        return _pb_transaction(tx, 111, data + _pb_bytes(3, _attachment(tx)))
    body = b"\x0b\x01" + _pk(tx) + _legacy_asset(tx.get("assetId")) + struct.pack(">H", len(items))
    body += b"".join(_legacy_recipient(i["recipient"], chain) + _i64(i["amount"], "amount") for i in items)
    return body + _longs(tx, "timestamp", "fee") + _short(_attachment(tx), "attachment")


def tx_body_bytes(tx: Tx) -> bytes:
    """The bytes a transaction's proofs sign (and whose hash is its id)."""
    t, v = tx.get("type"), tx.get("version", 1 if tx.get("type") == TX_TRANSFER else None)
    if t == TX_TRANSFER and v in (1, 2, 3):
        return _transfer_body(tx, v)
    if t == TX_MASS_TRANSFER and v in (1, 2):
        return _mass_transfer_body(tx, v)
    if t == TX_DATA and v == 1:
        entries = tx.get("data", [])
        data = b"".join(_legacy_data_entry(e) for e in entries)
        return b"\x0c\x01" + _pk(tx) + struct.pack(">H", len(entries)) + data + _longs(tx, "timestamp", "fee")
    if t != TX_ISSUE or v != 2:
        raise EncodingError("unsupported transaction type %r version %r" % (t, v))
    d, script = tx.get("decimals", 0), tx.get("script")  # Issue v2
    if not _is_int(d) or not 0 <= d <= 8:
        raise EncodingError("decimals must be from 0 to 8, not %r" % (d,))
    body = b"\x03\x02" + bytes([chain_byte(_tx_chain(tx))]) + _pk(tx)
    body += b"".join(_short(_utf8(str(tx.get(k, "")), k), k) for k in ("name", "description"))
    body += _longs(tx, "quantity") + bytes([d, bool(tx.get("reissuable"))]) + _longs(tx, "fee", "timestamp")
    return body + (b"\x01" + _short(base64_node_decode(script), "script") if script else b"\x00")


def tx_id(tx: Tx) -> str:
    return b58encode(blake2b256(tx_body_bytes(tx)))


def tx_signed_bytes(tx: Tx) -> bytes:
    """The legacy wire form: `[0x00] body proofs` (a Mass Transfer without the 0x00)."""
    proofs = [b58decode(p) for p in tx.get("proofs", [])]
    head = b"" if tx["type"] == TX_MASS_TRANSFER else b"\x00"
    proof_bytes = b"".join(_short(p, "proof") for p in proofs)
    return head + tx_body_bytes(tx) + b"\x01" + struct.pack(">H", len(proofs)) + proof_bytes


def sign_tx(tx: Tx, private_key: bytes, random_z: Optional[bytes] = None) -> Tx:
    """A copy of tx with its id and one proof; the signature is checked before it is returned."""
    out = {k: v for k, v in tx.items() if k != "signature"}
    body = tx_body_bytes(out)
    sig = sign(private_key, body, random_z)
    if not verify(_pk(out), body, sig):
        raise EncodingError("the signature does not verify under senderPublicKey: wrong key for this sender")
    return {**out, "proofs": [b58encode(sig)], "id": b58encode(blake2b256(body))}


# --- Data entries: limits and fees -------------------------------------------


def data_payload_size(entries: Sequence[Dict[str, Any]]) -> int:
    """Sum of UTF-8 key lengths and value sizes (integer 8, boolean 1, bytes)."""
    return sum(len(e["key"].encode("utf-8")) + len(_data_value(e)[1]) for e in entries)


def validate_data_entries(entries: Sequence[Dict[str, Any]], *, rules: str = "waves") -> None:
    """Refuse entries the node would reject in a Data v1: count, keys, value and total size."""
    if not entries:
        raise EncodingError("a Data transaction needs at least one entry")
    if len(entries) > DATA_MAX_ENTRIES:
        count = (DATA_MAX_ENTRIES, len(entries))
        raise EncodingError("a Data transaction holds at most %d entries, not %d" % count)
    seen = set()
    for e in entries:
        (kind, value), key = _data_value(e), e["key"]
        if key in seen:
            raise EncodingError("data key %r appears twice" % key)
        seen.add(key)
        if len(key.encode("utf-8")) > 400:
            raise EncodingError("data key %r is longer than 400 bytes" % key[:40])
        if rules == "0bs" and len(key.encode("utf-16-le")) // 2 > 100:
            raise EncodingError("data key %r is longer than 100 characters (0bs rule)" % key[:40])
        if kind in ("string", "binary") and len(value) > DATA_MAX_VALUE:
            raise EncodingError("data entry %r: value is longer than %d bytes" % (key, DATA_MAX_VALUE))
    size = data_payload_size(entries)
    if size > DATA_MAX_PAYLOAD:
        raise EncodingError("data entries total %d bytes, more than %d" % (size, DATA_MAX_PAYLOAD))


def data_fee(tx: Tx, rules: str = "waves") -> int:
    """Minimum fee of a Data v1 transaction: the highest of the node rules that may apply."""
    body_len = len(tx_body_bytes(dict(tx, fee=tx.get("fee") or 1, proofs=[])))
    if rules == "0bs":  # 0bs docs list 0.03 ZBS; a Zbs branch used 30 units per started KB of body
        return FEE_UNIT * (30 + (body_len - 1) // 1024)
    current = 1 + (data_payload_size(tx.get("data", [])) - 1) // 1024
    return FEE_UNIT * max(current, 1 + (body_len - 1) // 1024, 1)


def transfer_fee(rules: str = "waves", *, smart_asset: bool = False) -> int:
    return 5_000_000 if rules == "0bs" else FEE_UNIT + (400_000 if smart_asset else 0)


def issue_fee(rules: str = "waves", *, nft: bool = False) -> int:
    return 500 * 10**8 if rules == "0bs" else (FEE_UNIT if nft else 1000 * FEE_UNIT)


def _positive_units(v: Any, what: str) -> None:
    if not _is_int(v) or v <= 0:
        raise EncodingError("%s must be a positive integer of the smallest unit, not %r" % (what, v))


def _new_tx(tx_type: int, version: int, keys: KeyPair, fields: Tx, timestamp: int, chain_id: str) -> Tx:
    head = {"type": tx_type, "version": version, "senderPublicKey": b58encode(keys.public_key)}
    return {**head, **fields, "timestamp": timestamp, "chainId": chain_byte(chain_id)}


def build_data_tx(
    keys: KeyPair,
    entries: List[Dict[str, Any]],
    *,
    timestamp: int,
    chain_id: str,
    fee: int = 0,
    rules: str = "waves",
    random_z: Optional[bytes] = None,
) -> Tx:
    """A signed Data v1; a fee of 0 or under the minimum for its size (refused for ever) is raised to it."""
    if not _is_int(fee) or not 0 <= fee <= INT64_MAX:
        why = "0 (automatic) or a positive integer of the smallest unit"
        raise EncodingError("fee must be %s, not %r" % (why, fee))
    validate_data_entries(entries, rules=rules)
    tx = _new_tx(TX_DATA, 1, keys, {"fee": fee or 1}, timestamp, chain_id)
    tx["data"] = list(entries)
    tx["fee"] = max(fee, data_fee(tx, rules))
    full = len(tx_signed_bytes(dict(tx, proofs=[b58encode(b"\0" * 64)])))
    if full > DATA_MAX_V1_BYTES:
        raise EncodingError("Data transaction is %d bytes, more than %d" % (full, DATA_MAX_V1_BYTES))
    return sign_tx(tx, keys.private_key, random_z)


def build_transfer_tx(
    keys: KeyPair,
    *,
    recipient: str,
    amount: int,
    asset_id: Optional[str],
    timestamp: int,
    chain_id: str,
    fee: int,
    attachment: bytes = b"",
    fee_asset_id: Optional[str] = None,
    random_z: Optional[bytes] = None,
) -> Tx:
    """A signed Transfer v2 (legacy binary: accepted by Waves and 0bs nodes)."""
    _positive_units(amount, "amount")
    _positive_units(fee, "fee")
    if not isinstance(attachment, bytes):
        raise EncodingError("attachment must be bytes, not %r" % (attachment,))
    if len(attachment) > MAX_ATTACHMENT:
        raise EncodingError("attachment is %d bytes, more than %d" % (len(attachment), MAX_ATTACHMENT))
    asset, to = _asset_json(asset_id), parse_recipient(recipient, chain_id)
    fields = {"assetId": asset, "recipient": to, "amount": amount, "attachment": b58encode(attachment)}
    fields.update(fee=fee, feeAssetId=_asset_json(fee_asset_id))
    return sign_tx(_new_tx(TX_TRANSFER, 2, keys, fields, timestamp, chain_id), keys.private_key, random_z)


def build_issue_tx(
    keys: KeyPair,
    *,
    name: str,
    description: str,
    quantity: int,
    decimals: int,
    reissuable: bool,
    timestamp: int,
    chain_id: str,
    fee: int,
    random_z: Optional[bytes] = None,
) -> Tx:
    """A signed Issue v2 (legacy binary); its id is the new asset id."""
    if not isinstance(name, str) or not isinstance(description, str):
        raise EncodingError("a token name and description are strings")
    if not 4 <= len(_utf8(name, "the token name")) <= 16:
        raise EncodingError("a token name has 4 to 16 bytes, %r has %d" % (name, len(name.encode())))
    if len(_utf8(description, "the token description")) > 1000:
        raise EncodingError("a token description has at most 1000 bytes")
    if not _is_int(decimals) or not 0 <= decimals <= 8:
        raise EncodingError("decimals must be from 0 to 8, not %r" % decimals)
    if not _is_int(quantity) or not 0 < quantity <= INT64_MAX:
        raise EncodingError("quantity must be a positive 64-bit integer of the smallest unit")
    _positive_units(fee, "fee")
    fields = {"name": name, "description": description, "quantity": quantity, "decimals": decimals}
    fields.update(reissuable=reissuable, script=None, fee=fee)
    return sign_tx(_new_tx(TX_ISSUE, 2, keys, fields, timestamp, chain_id), keys.private_key, random_z)


# =============================================================================
# 6. Core logic: pricing, the light timer, the ledger rules, Data entries
# =============================================================================
# Pure functions and small value objects: no clock reads, no I/O, no logging.
Rng = Optional[random.Random]  # a seeded one in tests; None: a fresh random.Random()


def payment_seconds(amount: int, decimals: int, seconds_per_token: float) -> float:
    """Light time a payment buys: amount / 10^decimals x seconds_per_token."""
    return amount / (10**decimals) * seconds_per_token


@dataclasses.dataclass(frozen=True)
class Grant:
    """What one credited payment added to the light."""

    start: float  # when its span starts (now, or the previous end time)
    until: float  # the new end time
    seconds: float  # light time granted, after the cap
    excess: float  # light time bought but cut by payment.max_seconds


def extend_light(until: float, now: float, seconds: float, max_seconds: float) -> Grant:
    """Add `seconds` to a light ending at `until`, up to now + max_seconds (what fits has excess exactly 0)."""
    start, cap_end = max(until, now), now + max_seconds
    if start + seconds <= cap_end:
        return Grant(start=start, until=max(start + seconds, until), seconds=seconds, excess=0.0)
    granted = max(0.0, cap_end - start)
    return Grant(start=start, until=max(cap_end, until), seconds=granted, excess=seconds - granted)


def refund_units(amount: int, seconds: float, excess: float) -> int:
    """Units to refund when the cap cut `excess` of the `seconds` bought: exact floor, never rounded up."""
    if amount <= 0 or seconds <= 0 or excess <= 0:
        return 0
    if excess >= seconds:
        return amount
    return min(amount, math.floor(amount * fractions.Fraction(excess) / fractions.Fraction(seconds)))


def min_units(decimals: int, min_tokens: float) -> fractions.Fraction:
    """payment.min_tokens in smallest units, exactly (0.1 in the TOML means 0.1, not 0.1000...055)."""
    return fractions.Fraction(repr(float(min_tokens))) * 10**decimals


def below_minimum(amount: int, decimals: int, min_tokens: float) -> bool:
    return amount < min_units(decimals, min_tokens)


def tokens_text(amount: int, decimals: int, name: str = "", *, trim: bool = True) -> str:
    """The one amount formatter, exact: (150, 2) -> "1.5", trim=False "1.50", with a name "1.5 IoT-Light"."""
    whole, frac = divmod(abs(amount), 10**decimals)
    text = "%d.%0*d" % (whole, decimals, frac) if decimals else "%d" % whole
    if trim and decimals:
        text = text.rstrip("0").rstrip(".")
    text = ("-" if amount < 0 else "") + text
    return "%s %s" % (text, name) if name else text


def payment_link(template: str, *, asset: str, address: str, amount: str) -> str:
    """A wallet's payment link (monitor.wallet_url) with the payment filled in; "" without a template."""
    if not template:
        return ""
    quote = urllib.parse.quote
    filled = template.replace("{asset}", quote(asset, safe="")).replace("{address}", quote(address, safe=""))
    return filled.replace("{amount}", quote(amount, safe="."))


PAY_PRESET_SECONDS = (30, 60, 300, 900)


def pay_presets(
    *,
    seconds_per_token: float,
    max_seconds: float,
    decimals: Optional[int],
    min_units: int = 0,
    template: str,
    asset: str,
    address: str,
) -> List[Dict[str, Any]]:
    """The dashboard's "pay" buttons up to the cap: the amount that buys at least each preset, and its link."""
    places = 0 if decimals is None else decimals
    buttons: Dict[int, Dict[str, Any]] = {}  # by units: two presets costing the same make one button
    for preset in PAY_PRESET_SECONDS:
        seconds = min(preset, max_seconds)  # the last button buys the cap
        units = max(math.ceil(seconds / seconds_per_token * 10**places - 1e-9), min_units, 1)
        amount = tokens_text(units, places)
        link = payment_link(template, asset=asset, address=address, amount=amount)
        bought = round(payment_seconds(units, places, seconds_per_token), 3)
        buttons.setdefault(units, {"amount": amount, "units": units, "seconds": bought, "link": link})
        if preset >= max_seconds:
            break
    return list(buttons.values())


@dataclasses.dataclass
class LightTimer:
    """The lamp's end time on a monotonic clock, so that wall-clock jumps neither extend nor cut it."""

    deadline: float = 0.0
    span_start: float = 0.0

    def remaining(self, mono: float) -> float:
        return max(0.0, self.deadline - mono)

    def is_on(self, mono: float) -> bool:
        return self.deadline > mono

    def fraction(self, mono: float) -> float:
        total = self.deadline - self.span_start
        return 0.0 if total <= 0 else min(1.0, self.remaining(mono) / total)

    def set_until(self, until_wall: float, *, mono: float, wall: float) -> None:
        """Light until the Unix time `until_wall` (a new span starts when it was dark)."""
        if not self.is_on(mono):
            self.span_start = mono
        self.deadline = mono + (until_wall - wall)


# --- What a transfer to the device does --------------------------------------
def classify_transfer(tx: Dict[str, Any], *, asset_id: str, mine: Iterable[str]) -> Tuple[int, Optional[str]]:
    """What a (mass) transfer sends to `mine` (address, aliases), and None or why it lights nothing (failed, wrong_asset)."""
    kind = tx.get("type")
    items = [tx] if kind == TX_TRANSFER else (tx.get("transfers") or []) if kind == TX_MASS_TRANSFER else []
    to_me = 0
    for item in items:
        if not isinstance(item, dict):
            raise ValueError("mass transfer item is not an object")
        amount, to = item.get("amount"), item.get("recipient")
        if isinstance(to, str) and to.replace("address:", "", 1) in mine and _is_int(amount) and amount > 0:
            to_me += amount
    if to_me <= 0:
        return 0, None
    if tx.get("applicationStatus") not in (None, "succeeded"):
        return to_me, "failed"
    return to_me, None if tx.get("assetId") == asset_id else "wrong_asset"


def payment_amount(tx: Dict[str, Any], *, asset_id: str, mine: Iterable[str]) -> int:
    """Amount of `asset_id` a transfer sends to one of `mine`; 0 when it is no such payment."""
    amount, reason = classify_transfer(tx, asset_id=asset_id, mine=mine)
    return 0 if reason else amount


def _int_within(v: Any, lo: int, hi: int) -> bool:
    return _is_int(v) and lo <= v <= hi


def _str_or_none(v: Any, longest: int = 200) -> bool:
    return v is None or (isinstance(v, str) and len(v) <= longest)


def _check_transfer_fields(tx: Dict[str, Any], txid: str) -> None:
    v, chain, proofs = tx.get("version"), tx.get("chainId"), tx.get("proofs")
    if v is not None and not _int_within(v, 1, 255):
        raise ValueError("transaction %s: version is not a small integer" % txid)
    if chain is not None and not (_int_within(chain, 0, 255) or (isinstance(chain, str) and len(chain) == 1)):
        raise ValueError("transaction %s: chainId is not a network byte" % txid)
    for key in ("assetId", "feeAssetId", "attachment", "signature"):
        if not _str_or_none(tx.get(key)):
            raise ValueError("transaction %s: %s is not a string or null" % (txid, key))
    strings = isinstance(proofs, list) and all(isinstance(p, str) and len(p) <= 100 for p in proofs)
    if proofs is not None and not (strings and len(proofs) <= 8):
        raise ValueError("transaction %s: proofs is not a list of at most 8 strings" % txid)
    items = [tx] if tx["type"] == TX_TRANSFER else tx.get("transfers")
    if not isinstance(items, list) or len(items) > 100 or not all(isinstance(i, dict) for i in items):
        raise ValueError("transaction %s: transfers is not a list of at most 100 objects" % txid)
    for item in items:
        if not _int_within(item.get("amount"), 0, INT64_MAX):
            what = str(item.get("amount"))[:30]
            raise ValueError("transaction %s: amount %s is not an integer from 0 to 2^63-1" % (txid, what))
        if not isinstance(item.get("recipient"), str) or len(item["recipient"]) > 64:
            raise ValueError("transaction %s: recipient is not a string" % txid)


def check_tx_shape(tx: Any) -> Dict[str, Any]:
    """A listed transaction, or ValueError naming what is malformed (JSON types and ranges the watcher reads)."""
    if not isinstance(tx, dict):
        raise ValueError("transaction is not an object")
    txid = tx.get("id")
    if not isinstance(txid, str) or not 30 <= len(txid) <= 50:
        raise ValueError("transaction id %r is not valid" % (txid[:60] if isinstance(txid, str) else txid,))
    if not _int_within(tx.get("type"), 1, 255):
        raise ValueError("transaction %s has no integer type" % txid)
    if tx.get("height") is not None and not _int_within(tx["height"], 0, 2**31 - 1):
        raise ValueError("transaction %s has a non-integer height" % txid)
    for key in ("timestamp", "fee"):
        if tx.get(key) is not None and not _int_within(tx[key], 0, INT64_MAX):
            raise ValueError("transaction %s: %s is not an integer from 0 to 2^63-1" % (txid, key))
    for key in ("sender", "applicationStatus", "senderPublicKey"):
        if not _str_or_none(tx.get(key)):
            raise ValueError("transaction %s: %s is not a string" % (txid, key))
    if tx["type"] in (TX_TRANSFER, TX_MASS_TRANSFER):
        _check_transfer_fields(tx, txid)
    return tx


def check_transfer_proof(tx: Dict[str, Any], chain_id: str) -> Optional[str]:
    """Why the node's JSON of a (mass) transfer is not one its sender signed for `chain_id` (id, proof, sender), or None."""
    try:
        if tx.get("type") not in (TX_TRANSFER, TX_MASS_TRANSFER):
            return "not a transfer"
        if _tx_chain(tx) != chain_id:
            return "made for another network"
        body, pk = tx_body_bytes(tx), _pk(tx)
        proofs = tx.get("proofs") or ([tx["signature"]] if tx.get("signature") else [])
        signature = b58decode(proofs[0]) if len(proofs) == 1 else b""
    except (EncodingError, KeyError, TypeError, ValueError, OverflowError) as e:
        return "its fields do not make a transaction (%s)" % str(e)[:80]
    if b58encode(blake2b256(body)) != tx.get("id"):
        return "its id is not the hash of its fields"
    if tx.get("sender") != address_from_public_key(pk, chain_id):
        return "its sender is not the address of its senderPublicKey"
    if not verify(pk, body, signature):
        return "its proof is not the sender's signature"
    return None


@dataclasses.dataclass(frozen=True)
class Rules:
    """What judge_transfer needs besides the transfer: the payment rules and what the device learnt."""

    asset_id: str
    chain_id: str
    mine: frozenset  # the device's address and aliases
    decimals: int
    seconds_per_token: float = 1.0
    min_tokens: float = 0.0
    confirmations: int = 0
    count_history: bool = False
    first_start_ms: int = 0  # Unix ms of the very first start
    horizon: int = 0  # the node's height at the very first start (0: use the current height)
    pruned: int = 0  # rows of transactions at or below this height may be gone


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What a transfer does: `action` "credit" (buys `seconds`), "wait" (confirmations), "ignore" (`reason` as in the
    monitor's `ignored` event, `detail` for the log), "history" (before the first start), "pruned" or "none"."""

    action: str
    amount: int = 0  # what it sends the device
    seconds: float = 0.0
    reason: str = ""
    detail: str = ""

    @property
    def handled(self) -> bool:
        """May a complete read mark it handled? Not while waiting, nor unverified (the real one may still be listed)."""
        return self.action not in ("wait", "pruned") and self.reason not in ("not_verified", "malformed")

    @property
    def paid(self) -> bool:
        """A real payment in the token, counted in the token balance (credited or not)."""
        return self.action in ("credit", "wait") or self.reason == "below_minimum"


def judge_transfer(tx: Dict[str, Any], rules: Rules, height: int) -> Verdict:
    """The ledger's rules in one place: what one listed transaction does at chain height `height`.
    Nothing the node says counts before the transfer checks out (id, signature, sender, network)."""
    try:
        amount, reason = classify_transfer(tx, asset_id=rules.asset_id, mine=rules.mine)
    except ValueError as e:
        return Verdict("ignore", reason="malformed", detail=str(e))
    if amount <= 0:
        return Verdict("none")
    h = tx.get("height")
    if rules.pruned and h is not None and h <= rules.pruned:
        return Verdict("pruned", amount)
    why = check_transfer_proof(tx, rules.chain_id)
    if why is not None:
        return Verdict("ignore", amount, reason="not_verified", detail=why)
    if reason is not None:
        status = "applicationStatus %s" % tx.get("applicationStatus") if reason == "failed" else ""
        return Verdict("ignore", amount, reason=reason, detail=status)
    # made before the very first start: signed before it and mined no later than the node's height
    # at first contact (a node down at the first start does not turn later payments into history)
    horizon = rules.horizon or height
    if _is_int(tx.get("timestamp")):
        history = tx["timestamp"] < rules.first_start_ms and (h is None or h <= horizon)
    else:
        history = h is not None and h < horizon
    if history and not rules.count_history:
        return Verdict("history", amount)
    if h is None or height - h < rules.confirmations:
        return Verdict("wait", amount)
    if below_minimum(amount, rules.decimals, rules.min_tokens):
        under = "under payment.min_tokens (%g)" % rules.min_tokens
        return Verdict("ignore", amount, reason="below_minimum", detail=under)
    return Verdict("credit", amount, payment_seconds(amount, rules.decimals, rules.seconds_per_token))


# --- Data entries the device writes (the contract's table) -------------------
def joystick_entry(n: int, direction: str, action: str, ts_ms: int) -> Dict[str, Any]:
    value = json.dumps({"direction": direction, "action": action, "ts": ts_ms}, separators=(",", ":"))
    return {"key": "joystick_%d" % n, "type": "string", "value": value}


def receipt_span(text: Any) -> Dict[str, Any]:
    """{"seconds", "from", "until"} of a served_<id> receipt (KeyError, TypeError, ValueError: not ours)."""
    value = json.loads(text)
    return {"seconds": float(value["seconds"]), "from": int(value["from"]), "until": int(value["until"])}


def receipt_entry(
    payment_id: str, seconds: float, from_ms: int, until_ms: int, refund: Optional[Tuple[str, int]] = None
) -> Dict[str, Any]:
    """served_<payment id>; `refund` is (transfer id, amount) when part of the payment went back."""
    body: Dict[str, Any] = {"seconds": round(seconds, 3), "from": from_ms, "until": until_ms}
    if refund is not None:
        body["refund"] = {"id": refund[0], "amount": refund[1]}
    value = json.dumps(body, separators=(",", ":"))
    return {"key": "served_%s" % payment_id, "type": "string", "value": value}


# (Data entry key, reading field) of the three sensors: temperature_c100 holds hundredths of temperature_c.
TELEMETRY_FIELDS = tuple((name + "100", name) for name in ("temperature_c", "humidity_pct", "pressure_hpa"))


def telemetry_entries(reading: Dict[str, Optional[float]], ts_ms: int) -> List[Dict[str, Any]]:
    """The entries of a reading, failed sensors left out; EncodingError when hundredths overflow 64 bits."""
    out = []
    for key, field in TELEMETRY_FIELDS:
        v = reading.get(field)
        if v is not None and math.isfinite(v):
            scaled = v * 100
            if not math.isfinite(scaled) or not INT64_MIN <= round(scaled) <= INT64_MAX:
                raise EncodingError("telemetry %s = %r does not fit a 64-bit Data integer" % (field, v))
            out.append({"key": key, "type": "integer", "value": int(round(scaled))})
    return out + [{"key": "telemetry_ts", "type": "integer", "value": ts_ms}] if out else out


@dataclasses.dataclass(frozen=True)
class PendingEvent:
    """An event stored in the outbox's queue, waiting for a Data transaction."""

    seq: int
    kind: str  # "joystick", "receipt", "telemetry" or "count" (joystick_count alone)
    entries: Tuple[Dict[str, Any], ...]
    press_n: int = 0  # for joystick events: its n


def pack_events(
    events: Sequence[PendingEvent], *, max_entries: int = DATA_MAX_ENTRIES, max_payload: int = 8 * 1024
) -> List[PendingEvent]:
    """The longest prefix of `events` that fits one Data transaction (entries with joystick_count, one telemetry set)."""
    taken: List[PendingEvent] = []
    entries = payload = 0
    has_press = has_telemetry = False
    for ev in events:
        counted = ev.kind in ("joystick", "count") and not has_press
        extra = len(ev.entries) + (1 if counted else 0)
        size = data_payload_size(ev.entries) + (len("joystick_count") + 8 if counted else 0)
        full = taken and (entries + extra > max_entries or payload + size > max_payload)
        if full or (ev.kind == "telemetry" and has_telemetry):
            break
        taken.append(ev)
        entries, payload = entries + extra, payload + size
        has_press, has_telemetry = has_press or counted, has_telemetry or ev.kind == "telemetry"
    return taken


def events_to_entries(events: Sequence[PendingEvent]) -> List[Dict[str, Any]]:
    """The Data entries for a batch of events, with joystick_count when it has presses."""
    entries = [e for ev in events for e in ev.entries]
    top = max((ev.press_n for ev in events), default=0)
    return entries + [{"key": "joystick_count", "type": "integer", "value": top}] if top else entries


# --- Retries, rate limits, log-once ------------------------------------------
class Backoff:
    """The one way to retry, AIMD with jitter: failure() (an error, a 429/503) waits [gap/2, gap] (at least Retry-After)
    and doubles the gap up to `cap`; success() restores `base` (`recover`: adds 1/(base*recover) to the rate).
    interval() is the gap cut by up to `spread` at random: devices sharing a pool drift apart."""

    def __init__(self, base: float, cap: float, rng: Rng = None, *, recover: int = 0, spread: float = 0.1):
        self.base, self.cap, self.rng = base, max(cap, base), rng or random.Random()
        self.recover, self.spread = recover, spread
        self.gap, self.failures = base, 0  # seconds between attempts (before jitter); failures in a row

    def failure(self, retry_after: Optional[float] = None) -> float:
        wait = self.gap / 2 + self.rng.uniform(0, self.gap / 2)
        self.failures, self.gap = self.failures + 1, min(self.cap, self.gap * 2)
        return max(wait, retry_after or 0.0)

    def success(self) -> None:
        self.failures = 0
        if self.recover <= 0 or self.gap <= self.base:
            self.gap = self.base
        else:
            self.gap = max(self.base, 1.0 / (1.0 / self.gap + 1.0 / (self.base * self.recover)))

    def interval(self) -> float:
        return self.gap * (1 - self.rng.uniform(0, self.spread))


class RateLimiter:
    """A token bucket: `rate` tokens per `per` seconds, holding at most `burst`. Clock passed in."""

    def __init__(self, rate: float, per: float, burst: float, now: float):
        self.rate = rate / per if rate else 0.0
        self.burst, self.tokens, self.stamp = burst, burst, now

    def delay(self, now: float) -> float:
        """Seconds to wait before one more token is there (0 = now). Unlimited when rate is 0."""
        if not self.rate:
            return 0.0
        self.tokens, self.stamp = min(self.burst, self.tokens + (now - self.stamp) * self.rate), now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self, now: float) -> bool:
        """Take a token if one is there; False (nothing taken) when the bucket is empty."""
        if self.delay(now) > 0:
            return False
        if self.rate:
            self.tokens -= 1
        return True


class LogOnce:
    """Each trouble logged once until it is over: first(topic, detail) True the first time, over(topic) True when one
    was told. `quiet`: a topic told at most once in `quiet` s, even across an over(); past `limit` all are forgotten."""

    def __init__(self, *, limit: int = 1000, quiet: float = 0.0):
        self.limit, self.quiet = limit, quiet
        self.told: Dict[Any, set] = {}  # topic -> the details told
        self.size = 0  # details told, all topics
        self.last: Dict[Any, float] = {}  # topic -> when it was last told (with `quiet`)

    def first(self, topic: Any, detail: Any = None, *, now: float = 0.0) -> bool:
        hushed = self.quiet and now - self.last.get(topic, -math.inf) < self.quiet
        if hushed or detail in self.told.get(topic, ()):
            return False
        if self.size >= self.limit:
            self.told, self.last, self.size = {}, {}, 0
        self.told.setdefault(topic, set()).add(detail)
        self.size += 1
        if self.quiet:
            self.last[topic] = now
        return True

    def over(self, topic: Any) -> bool:
        details = self.told.pop(topic, None)
        self.size -= len(details or ())
        return bool(details)


# =============================================================================
# 7. Edges: clock, store, node client, systemd, hardware, GPIO
# =============================================================================


class Clock:
    """Wall time (Unix seconds) and monotonic time; tests pass their own. ms(): Unix milliseconds."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def ms(self) -> int:
        return int(self.time() * 1000)


# --- 7a. Store: the SQLite state file ----------------------------------------
STATE_SCHEMA = 1
_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS payments (id TEXT PRIMARY KEY, sender TEXT, amount INTEGER NOT NULL, height INTEGER,
    seconds REAL NOT NULL, start_ms INTEGER NOT NULL, until_ms INTEGER NOT NULL, credited_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, height INTEGER);
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
    entries TEXT NOT NULL, press_n INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL, tx_id TEXT);
CREATE INDEX IF NOT EXISTS events_tx ON events (tx_id);
CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, tx TEXT NOT NULL, status TEXT NOT NULL,
    created_ms INTEGER NOT NULL, timestamp_ms INTEGER NOT NULL, height INTEGER, error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, updated_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_status ON outbox (status);
CREATE TABLE IF NOT EXISTS ignored (id TEXT PRIMARY KEY, reason TEXT NOT NULL, reported_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS refunds (payment_id TEXT PRIMARY KEY, tx_id TEXT NOT NULL, recipient TEXT NOT NULL,
    amount INTEGER NOT NULL, receipt TEXT NOT NULL, created_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS refunds_tx ON refunds (tx_id);
"""

OUTBOX_OPEN = ("queued", "broadcast")
# the page cache is SQLite's only growing memory (default about 2 MB): 1 MiB holds the indexes the
# daemon reads (a 10,000-payment catch-up included) on a 512 MB Pi
STATE_CACHE_KIB = 1024
_PRAGMAS = ("busy_timeout=5000", "journal_mode=WAL", "synchronous=FULL", "cache_size=-%d" % STATE_CACHE_KIB)
# Store.prune keeps every handled id, payment and confirmed Data transaction of the last PRUNE_KEEP_BLOCKS below the
# final height (a rollback goes at most 100 deep), the newest PRUNE_KEEP_RECENT payments and Data transactions, the
# newest IGNORED_KEEP ignored reports, all that is open; what was re-signed away or found on chain goes after PRUNE_DONE_AGE_MS.
PRUNE_KEEP_BLOCKS = 1440  # a day of Waves blocks
PRUNE_KEEP_RECENT = 50
PRUNE_DONE_AGE_MS = 7 * 86_400_000
PRUNE_BATCH = 5000  # rows per table and prune: a year-old file is cut down in steps
IGNORED_KEEP = 1000


@dataclasses.dataclass(frozen=True)
class Credit:
    """A payment credited by Store.credit_payments, with what it bought."""

    id: str
    sender: str
    amount: int
    height: Optional[int]
    grant: Grant
    refund: Optional[Tuple[str, int]] = None  # (transfer id, amount) signed and queued with the credit


def _set_meta(db: sqlite3.Connection, **values: Any) -> None:
    db.executemany(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [(k, str(v)) for k, v in values.items()]
    )


def _insert_tx(db: sqlite3.Connection, tx: Dict[str, Any], now_ms: int, old: Optional[str] = None) -> None:
    """Store a signed transaction; the `old` one it replaces is marked so."""
    sql = "INSERT INTO outbox (id, tx, status, created_ms, timestamp_ms, updated_ms) VALUES (?, ?, 'queued', ?, ?, ?)"
    db.execute(sql, (tx["id"], json.dumps(tx), now_ms, tx["timestamp"], now_ms))
    if old:
        sql = "UPDATE outbox SET status = 'replaced', error = ?, updated_ms = ? WHERE id = ?"
        db.execute(sql, ("re-signed as %s" % tx["id"], now_ms, old))


def _add_event(db: sqlite3.Connection, kind: str, entries: List[Dict], now_ms: int, press_n: int = 0) -> None:
    sql = "INSERT INTO events (kind, entries, press_n, created_ms) VALUES (?, ?, ?, ?)"
    db.execute(sql, (kind, json.dumps(entries), press_n, now_ms))


class _LedgerRows:
    """Store's rows of handled transactions and credited payments, and their pruning (a mixin of Store)."""

    def _rows_by_id(self, select: str, ids: Sequence[str]) -> List[Tuple[Any, ...]]:
        """Rows of `select` ("... id IN (%s)") in chunks padded to a power of two (SQLite keeps each distinct text)."""
        rows: List[Tuple[Any, ...]] = []
        for i in range(0, len(ids), 512):
            chunk = list(ids[i : i + 512])
            size = max(8, 1 << (len(chunk) - 1).bit_length())
            chunk += chunk[-1:] * (size - len(chunk))
            rows.extend(self.db.execute(select % ",".join("?" * size), chunk).fetchall())
        return rows

    def seen_heights(self, ids: Sequence[str]) -> Dict[str, Optional[int]]:
        """Handled transaction id -> the height it had when it was handled."""
        return dict(self._rows_by_id("SELECT id, height FROM seen WHERE id IN (%s)", ids))

    def mark_seen(self, items: Sequence[Tuple[str, Optional[int]]]) -> None:
        """Record handled ids with their heights; only what is new or moved is written."""
        known = self.seen_heights([i for i, _ in items]) if items else {}
        changed = [(i, h) for i, h in dict(items).items() if i not in known or known[i] != h]
        if changed:
            with self.transaction() as db:
                db.executemany("INSERT OR REPLACE INTO seen (id, height) VALUES (?, ?)", changed)

    def ignored_ids(self, ids: Sequence[str]) -> set:
        return {r[0] for r in self._rows_by_id("SELECT id FROM ignored WHERE id IN (%s)", ids)}

    def mark_ignored(self, rows: Sequence[Tuple[str, str]]) -> None:
        if rows:
            now_ms = self.clock.ms()
            with self.transaction() as db:
                db.executemany("INSERT OR IGNORE INTO ignored VALUES (?, ?, ?)", [(*r, now_ms) for r in rows])

    def credited_ids(self, ids: Sequence[str]) -> set:
        return {r[0] for r in self._rows_by_id("SELECT id FROM payments WHERE id IN (%s)", ids)}

    def outbox_ids(self, ids: Sequence[str]) -> set:
        """The ids among `ids` of transactions this device signed."""
        return {r[0] for r in self._rows_by_id("SELECT id FROM outbox WHERE id IN (%s)", ids)}

    def credit_payments(
        self,
        payments: Sequence[Tuple[str, str, int, Optional[int], float]],
        *,
        now: float,
        max_seconds: float,
        light: Optional[Tuple[float, float]] = None,
        served: Optional[Dict[str, Dict[str, Any]]] = None,
        sign_refund: Optional[Callable[[str, str, int], Dict[str, Any]]] = None,
    ) -> Tuple[List[Credit], Tuple[float, float]]:
        """Credit new (id, sender, amount, height, seconds) payments with receipts and the light's end in one transaction.
        `served`: receipts on chain (the light resumes up to their end); sign_refund signs what the cap cut off."""
        credits: List[Credit] = []
        now_ms = int(now * 1000)
        insert = "INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        refund_sql = "INSERT INTO refunds VALUES (?, ?, ?, ?, ?, ?)"
        with self.transaction() as db:
            start, until = light = self.light() if light is None else light
            pruned = self.pruned_height()
            for txid, sender, amount, height, seconds in payments:
                known = db.execute("SELECT 1 FROM payments WHERE id = ?", (txid,)).fetchone()
                # at or below the pruned horizon: handled long ago, its row is gone
                if known or (pruned and height is not None and height <= pruned):
                    continue
                receipt = (served or {}).get(txid)
                if receipt is not None:
                    span = (receipt["seconds"], receipt["from"], receipt["until"])
                    db.execute(insert, (txid, sender, amount, height, *span, now_ms))
                    if receipt["until"] / 1000 > max(until, now):
                        start = receipt["from"] / 1000 if until <= now else start
                        until = receipt["until"] / 1000
                    continue
                grant = extend_light(until, now, seconds, max_seconds)
                start, until = (now if until <= now else start), grant.until
                span = (grant.seconds, int(grant.start * 1000), int(grant.until * 1000))
                db.execute(insert, (txid, sender, amount, height, *span, now_ms))
                refund, units = None, refund_units(amount, seconds, grant.excess)
                if sign_refund is not None and units > 0 and sender:
                    # the refund's receipt span is kept too, for the receipt of a re-signed refund
                    tx = sign_refund(txid, sender, units)
                    _insert_tx(db, tx, now_ms)
                    kept = json.dumps(dict(zip(("seconds", "from", "until"), span)))
                    db.execute(refund_sql, (txid, tx["id"], sender, units, kept, now_ms))
                    refund = (tx["id"], units)
                _add_event(db, "receipt", [receipt_entry(txid, *span, refund)], now_ms)
                credits.append(Credit(txid, sender, amount, height, grant, refund))
            if (start, until) != tuple(light):
                _set_meta(db, light_start=repr(start), light_until=repr(until))
        return credits, (start, until)

    def recent_payments(self, limit: int = 10) -> List[Dict[str, Any]]:
        sql = "SELECT id, sender, amount, height, seconds, credited_ms FROM payments ORDER BY credited_ms DESC, rowid DESC LIMIT ?"
        keys = ("id", "sender", "amount", "height", "seconds")
        return [dict(zip(keys, r[:5]), ts=r[5] / 1000) for r in self.db.execute(sql, (limit,))]

    def light_sold_by_hour(self, now_ms: int, hours: int = 24) -> Dict[str, Any]:
        """Light credited per hour, the last `hours` (the last one so far): {"start_ms", "seconds": [...]}."""
        first = (now_ms // 3_600_000 - hours + 1) * 3_600_000
        seconds = [0.0] * hours
        sql = "SELECT credited_ms, seconds FROM payments WHERE credited_ms >= ?"
        for credited, secs in self.db.execute(sql, (first,)):
            i = (credited - first) // 3_600_000
            if 0 <= i < hours:
                seconds[i] += secs
        return {"start_ms": first, "seconds": [round(x, 3) for x in seconds]}

    def payment_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM payments").fetchone()[0]

    def credited_ever(self) -> int:
        """Payments credited since the state file began, the pruned ones included (for `status`)."""
        return self.payment_count() + int(self.get_meta("pruned_payments") or 0)

    def pruned_height(self) -> int:
        """Rows of transactions at or below it may be gone: handled long ago, never credited again (0: none)."""
        return int(self.get_meta("pruned_height") or 0)

    def prune(
        self,
        floor: int,
        *,
        now_ms: int,
        keep_recent: int = PRUNE_KEEP_RECENT,
        done_age_ms: int = PRUNE_DONE_AGE_MS,
        batch: int = PRUNE_BATCH,
    ) -> Dict[str, int]:
        """Delete rows of transactions at or below `floor` (handled, past any rollback) but what the comment at
        PRUNE_KEEP_BLOCKS keeps, raising the pruned height; at most `batch` rows a table (a count of `batch`: call again)."""
        old = now_ms - done_age_ms
        args = dict(floor=floor, recent=keep_recent, old=old, batch=batch, ignored=IGNORED_KEEP)
        parts = {
            "seen": "FROM seen WHERE height <= :floor",
            # a payment re-included higher up after a rollback keeps its row while its new height is kept
            "payments": "FROM payments WHERE height <= :floor AND id NOT IN (SELECT id FROM payments "
            "ORDER BY credited_ms DESC, rowid DESC LIMIT :recent) AND NOT EXISTS "
            "(SELECT 1 FROM seen WHERE seen.id = payments.id AND seen.height > :floor)",
            "events": "FROM events WHERE tx_id = 'on-chain' AND created_ms < :old",
            "ignored": "FROM ignored WHERE rowid NOT IN (SELECT rowid FROM ignored ORDER BY reported_ms DESC, rowid DESC LIMIT :ignored)",
        }
        # confirmed Data transactions deep enough (with their events); re-signed-away ones after a while
        outbox = (
            "FROM outbox WHERE (status = 'confirmed' AND (height <= :floor OR (height IS NULL AND "
            "updated_ms < :old)) AND id NOT IN (SELECT id FROM outbox WHERE status != 'replaced' "
            "ORDER BY created_ms DESC, rowid DESC LIMIT :recent)) OR (status = 'replaced' AND updated_ms < :old)"
        )
        probe = "SELECT 1 %s LIMIT 1"
        if not any(self.db.execute(probe % p, args).fetchone() for p in [outbox, *parts.values()]):
            return {}
        with self.transaction() as db:
            gone = [r[0] for r in db.execute("SELECT id %s LIMIT :batch" % outbox, args).fetchall()]
            sql = "DELETE FROM %s WHERE rowid IN (SELECT rowid %s LIMIT :batch)"
            deleted = {table: db.execute(sql % (table, part), args).rowcount for table, part in parts.items()}
            for i in range(0, len(gone), 500):
                chunk = gone[i : i + 500]
                marks = ",".join("?" * len(chunk))
                events = db.execute("DELETE FROM events WHERE tx_id IN (%s)" % marks, chunk)
                deleted["events"] += events.rowcount
                db.execute("DELETE FROM outbox WHERE id IN (%s)" % marks, chunk)
                # a refund confirmed that deep is final: its bookkeeping (re-sign, rollback re-check) goes too
                db.execute("DELETE FROM refunds WHERE tx_id IN (%s)" % marks, chunk)
            deleted["outbox"] = len(gone)
            _set_meta(db, pruned_height=max(floor, self.pruned_height()))
            if deleted["payments"]:  # `status` still counts every payment ever credited
                pruned = int(self.get_meta("pruned_payments") or 0) + deleted["payments"]
                _set_meta(db, pruned_payments=pruned)
        return deleted


class _OutboxRows:
    """Store's rows of pending events, signed transactions (the outbox) and refunds (a mixin of Store)."""

    def add_press(self, direction: str, action: str, ts_ms: int) -> int:
        """Store a joystick press with the next press number; returns that number."""
        with self.transaction() as db:
            n = self.press_count() + 1
            _set_meta(db, press_n=n)
            _add_event(db, "joystick", [joystick_entry(n, direction, action, ts_ms)], self.clock.ms(), n)
        return n

    def raise_press_count(self, count: int, on_chain: Sequence[int] = ()) -> bool:
        """Next press number at least count + 1, pending presses up to count renumbered but `on_chain` seqs marked sent."""
        with self.transaction() as db:
            current = self.press_count()
            db.executemany("UPDATE events SET tx_id = 'on-chain' WHERE seq = ?", [(seq,) for seq in on_chain])
            sql = "SELECT seq, entries FROM events WHERE kind='joystick' AND tx_id IS NULL AND press_n <= ? ORDER BY seq"
            stale = db.execute(sql, (count,)).fetchall()
            if current >= count and not stale and not on_chain:
                return False
            n = max(current, count)
            for seq, entries in stale:
                n += 1
                value = json.loads(json.loads(entries)[0]["value"])
                entry = joystick_entry(n, value["direction"], value["action"], value["ts"])
                renumber = "UPDATE events SET entries = ?, press_n = ? WHERE seq = ?"
                db.execute(renumber, (json.dumps([entry]), n, seq))
            _set_meta(db, press_n=n)
            return True

    def press_count(self) -> int:
        return int(self.get_meta("press_n") or 0)

    def add_count_event(self) -> None:
        """Queue joystick_count alone (the current press count), to put the chain's value right."""
        with self.transaction() as db:
            _add_event(db, "count", [], self.clock.ms(), self.press_count())

    def add_event(self, kind: str, entries: List[Dict[str, Any]]) -> None:
        with self.transaction() as db:
            _add_event(db, kind, entries, self.clock.ms())

    def _events(self, where: str, args: Tuple[Any, ...]) -> List[PendingEvent]:
        sql = "SELECT seq, kind, entries, press_n FROM events WHERE " + where
        return [PendingEvent(r[0], r[1], tuple(json.loads(r[2])), r[3]) for r in self.db.execute(sql, args)]

    def pending_events(self, limit: int = 200) -> List[PendingEvent]:
        return self._events("tx_id IS NULL ORDER BY seq LIMIT ?", (limit,))

    def pending_event_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM events WHERE tx_id IS NULL").fetchone()[0]

    def events_of(self, txid: str) -> List[PendingEvent]:
        return self._events("tx_id = ? ORDER BY seq", (txid,))

    def telemetry_history(self, since_ms: int, limit: int = 720) -> List[Dict[str, Any]]:
        """The newest `limit` readings since `since_ms`, oldest first (a failed reading's field left out)."""
        sql = "SELECT entries FROM events WHERE kind = 'telemetry' AND created_ms >= ? ORDER BY seq DESC LIMIT ?"
        out = []
        for (text,) in reversed(self.db.execute(sql, (since_ms, limit)).fetchall()):
            values = {e["key"]: e["value"] for e in json.loads(text)}
            fields = {field: values[key] / 100 for key, field in TELEMETRY_FIELDS if key in values}
            out.append({"ts": values.get("telemetry_ts", 0) / 1000, **fields})
        return out

    def queue_tx(
        self, tx: Dict[str, Any], events: Sequence[PendingEvent], replaces: Optional[str] = None
    ) -> None:
        """Store a signed transaction and tie its events to it; the one it `replaces` is marked so."""
        with self.transaction() as db:
            _insert_tx(db, tx, self.clock.ms(), replaces)
            db.executemany("UPDATE events SET tx_id = ? WHERE seq = ?", [(tx["id"], e.seq) for e in events])

    def set_tx_status(
        self,
        txid: str,
        status: str,
        *,
        height: Optional[int] = None,
        error: Optional[str] = None,
        attempt: bool = False,
    ) -> None:
        sql = "UPDATE outbox SET status = ?, height = COALESCE(?, height), error = ?, updated_ms = ?, attempts = attempts + ? WHERE id = ?"
        with self.transaction() as db:
            db.execute(sql, (status, height, error, self.clock.ms(), int(attempt), txid))

    def open_txs(self) -> List[Dict[str, Any]]:
        keys = ("id", "tx", "status", "created_ms", "timestamp_ms", "attempts")
        sql = "SELECT id, tx, status, created_ms, timestamp_ms, attempts FROM outbox WHERE status IN ('queued', 'broadcast') ORDER BY created_ms, rowid"
        return [dict(zip(keys, (r[0], json.loads(r[1]), *r[2:]))) for r in self.db.execute(sql)]

    def recent_txs(self, limit: int = 10) -> List[Dict[str, Any]]:
        keys = ("id", "status", "height", "error")
        sql = "SELECT id, status, height, error, updated_ms, EXISTS (SELECT 1 FROM refunds WHERE tx_id = outbox.id) FROM outbox WHERE status != 'replaced' ORDER BY created_ms DESC, rowid DESC LIMIT ?"
        rows = self.db.execute(sql, (limit,)).fetchall()
        return [dict(zip(keys, r[:4]), ts=r[4] / 1000, kind="refund" if r[5] else "data") for r in rows]

    def outbox_counts(self) -> Dict[str, int]:
        return dict(self.db.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())

    def refund_of(self, txid: str) -> Optional[Dict[str, Any]]:
        """The refund that transfer `txid` carries: payment_id, recipient, amount, receipt span; None if none."""
        keys = ("payment_id", "recipient", "amount", "receipt")
        row = self.db.execute("SELECT %s FROM refunds WHERE tx_id = ?" % ", ".join(keys), (txid,)).fetchone()
        return None if row is None else dict(zip(keys, (*row[:3], json.loads(row[3]))))

    def replace_refund(self, old_txid: str, tx: Dict[str, Any], receipt: Dict[str, Any], now_ms: int) -> None:
        """Store a refund re-signed (the old can never land) and queue its receipt again (the later entry wins)."""
        with self.transaction() as db:
            _insert_tx(db, tx, now_ms, old_txid)
            db.execute("UPDATE refunds SET tx_id = ? WHERE tx_id = ?", (tx["id"], old_txid))
            _add_event(db, "receipt", [receipt], now_ms)

    def reopen_refunds(self, from_height: int, now_ms: int) -> int:
        """After a rollback: refunds confirmed at `from_height` or above are broadcast again if the chain lost them."""
        sql = "UPDATE outbox SET status = 'broadcast', updated_ms = ? WHERE status = 'confirmed' AND height >= ? AND id IN (SELECT tx_id FROM refunds)"
        with self.transaction() as db:
            return db.execute(sql, (now_ms, from_height)).rowcount


class Store(_LedgerRows, _OutboxRows):
    """The state file. Every change that must survive a power cut is one SQLite transaction (WAL, synchronous=FULL):
    crediting a payment, moving the light's end time and queuing its receipt happen together or not at all."""

    RESERVE_BYTES = 1024 * 1024

    def __init__(self, path: str, clock: Optional[Clock] = None):
        self.path, self.clock, self.log = path, clock or Clock(), logging.getLogger("iotlight.store")
        self.failing: Optional[str] = None  # the write error while writes fail (a full disk)
        self.told = LogOnce(quiet=60.0)  # a disk that flips between full and not: one line a minute
        size, wal = [os.path.getsize(p) if os.path.exists(p) else None for p in (path, path + "-wal")]
        if size == 0 and (os.path.exists(path + ".reserve") or wal):
            # an empty database that was in use before: cut short, say by a power cut on an SD card
            raise self._damaged("the database file is empty but was in use before")
        self.db = self._open(bool(size))
        damaged = sorted(glob.glob(glob.escape(path) + ".damaged-*"))
        schema = self.get_meta("schema")
        if damaged and schema is None:
            fresh = "starting a fresh state file beside the damaged %s: payments made before now are not credited again"
            self.log.warning(fresh, damaged[-1])
        if schema is None:
            self.set_meta(schema=STATE_SCHEMA)
        elif schema != str(STATE_SCHEMA):
            unsupported = "%s: state file schema %s is not the supported %d" % (path, schema, STATE_SCHEMA)
            raise StateError(unsupported)
        self.keep_reserve()

    def _open(self, check: bool) -> sqlite3.Connection:
        db = None
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            for pragma in _PRAGMAS:
                db.execute("PRAGMA " + pragma)
            if check:
                row = db.execute("PRAGMA quick_check").fetchone()
                if not row or row[0] != "ok":
                    raise sqlite3.DatabaseError(row[0] if row else "integrity check failed")
            db.executescript(_SCHEMA_SQL)
            return db
        except sqlite3.Error as e:
            if db is not None:
                with contextlib.suppress(Exception):
                    db.close()
            if isinstance(e, sqlite3.DatabaseError) and not isinstance(e, sqlite3.OperationalError):
                raise self._damaged(str(e)) from None  # "not a database", "malformed"
            # locked, disk full, an I/O error: the file may be fine, so it stays where it is
            hint = "free some space, or stop the other process using it"
            raise StateError("%s: cannot open the state file: %s (%s)" % (self.path, e, hint)) from None

    def _damaged(self, reason: str) -> StateDamaged:
        """Keep a damaged state file aside and say how to recover (never start over silently)."""
        path = self.path
        aside = "%s.damaged-%s" % (path, time.strftime("%Y%m%d-%H%M%S", time.localtime(self.clock.time())))
        try:
            os.replace(path, aside)
            for suffix in ("-wal", "-shm"):
                if os.path.exists(path + suffix):
                    os.replace(path + suffix, aside + suffix)
            where = "it was moved to %s" % aside
        except OSError as e:
            where = "it could not be moved aside (%s)" % e.strerror
        msg = "%s: the state file is damaged (%s); %s. To start with a fresh state, run the daemon again: payments made before then are not credited again, pending presses in the damaged file are lost unless you restore it"
        return StateDamaged(msg % (path, reason, where))

    def keep_reserve(self) -> None:
        """Keep a file of free space beside the state file, to delete on a full disk (free_reserve)."""
        reserve = self.path + ".reserve"
        try:
            if not os.path.exists(reserve):
                with open(reserve, "wb") as f:
                    f.write(b"\0" * self.RESERVE_BYTES)
                    f.flush()
                    os.fsync(f.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(reserve)

    def free_reserve(self) -> bool:
        try:
            os.unlink(self.path + ".reserve")
        except OSError:
            return False
        self.log.warning("%s: the disk is full; used the reserved space to save what is pending", self.path)
        return True

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.close()

    @contextlib.contextmanager
    def transaction(self):
        try:
            self.db.execute("BEGIN IMMEDIATE")
            yield self.db
            self.db.execute("COMMIT")
        except BaseException as e:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            if isinstance(e, sqlite3.Error):
                raise self._write_failed(e) from None
            raise
        if self.failing is not None and self.has_room():
            self.failing = None
            self.told.over("write")
            self.log.debug("%s: the state file can be written again", self.path)
            self.keep_reserve()

    def has_room(self) -> bool:
        """Whether the state folder has room again (twice the reserve), not just the freed reserve."""
        try:
            st = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
        except OSError:
            return True
        return st.f_bavail * st.f_frsize >= 2 * self.RESERVE_BYTES

    def probe(self) -> None:
        """While writes fail: StateError until a write works; services call it instead of writing, sparing the reserve."""
        if not self.has_room():
            raise StateError("%s: no room on its disk yet" % self.path)
        self.set_meta(probe=self.clock.ms())

    def _write_failed(self, e: sqlite3.Error) -> StateError:
        err = StateError("%s: cannot write the state file: %s" % (self.path, e))
        if self.failing is None:
            self.failing = str(e)
            if self.told.first("write", now=self.clock.monotonic()):
                self.log.error("%s; what is pending is kept in memory and retried (free some space?)", err)
        return err

    def get_meta(self, key: str, default: Optional[str] = None) -> Optional[str]:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, **values: Any) -> None:
        with self.transaction() as db:
            _set_meta(db, **values)

    def bind_device(self, address: str, asset_id: str) -> None:
        """Tie the state file to one address; refuse another device's state."""
        known = self.get_meta("address")
        if known is None:
            self.set_meta(address=address, first_start_ms=self.clock.ms())
        elif known != address:
            msg = "%s: this state file belongs to address %s, not %s; point device.state_file at another file"
            raise StateError(msg % (self.path, known, address))
        old_asset = self.get_meta("asset_id")
        if old_asset not in (None, asset_id):
            changed = "payment.asset_id changed from %s to %s; payments already credited stay credited"
            self.log.warning(changed, old_asset, asset_id)
            self.set_meta(explained="", owed="", owed_height="")  # the old token's balance proves nothing
        self.set_meta(asset_id=asset_id)

    _TOKEN_FACT_KEYS = {"decimals": "decimals:%s", "name": "asset_name:%s", "scripted": "asset_scripted:%s"}

    def token_fact(self, asset_id: str, fact: str) -> Optional[str]:
        """A kept fact about a token ("decimals", "name" or "scripted"); None when not learnt."""
        return self.get_meta(self._TOKEN_FACT_KEYS[fact] % asset_id)

    def set_token_fact(self, asset_id: str, fact: str, value: Any) -> None:
        self.set_meta(**{self._TOKEN_FACT_KEYS[fact] % asset_id: value})

    def aliases(self) -> List[str]:
        """The device's aliases learnt so far (an alias on Waves is permanent)."""
        return (self.get_meta("aliases") or "").split()

    def light(self) -> Tuple[float, float]:
        """(start, until) of the current or last lit span, Unix seconds."""
        return float(self.get_meta("light_start", "0")), float(self.get_meta("light_until", "0"))

    @classmethod
    def open_read_only(cls, path: str) -> "Store":
        """The state file read-only for `status` beside a running daemon (the constructor writes, so it is skipped)."""
        store = cls.__new__(cls)
        store.path, store.clock, store.failing = path, Clock(), None
        store.db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
        return store


# --- 7b. Node client: the only door to the node --------------------------------
# Only this part knows the node's routes, answers and refusals. Each answer is a stream capped by its route
# (bytes, and JSON values counted before json.loads); callers get typed results, None, or a NodeError kind.

NODE_MAX_DEPTH = 32  # JSON nesting; the deepest documented answer (a transaction list) is 5
_TOO_LARGE = "the answer is larger than %d bytes%s, more than its route needs"
Check = Callable[[Any], Any]  # a route's shape check: the answer's JSON -> what the caller gets, or BadAnswer
JsonObject = Dict[str, Any]
Answer = Tuple[int, Any, Any]  # an HTTP status, the headers, the body (bytes, or its JSON)
Wait = Optional[float]  # seconds a node asks us to wait; None: it asked for no wait
AnswerCap = collections.namedtuple("AnswerCap", "size containers values")  # bytes, JSON containers, values
TINY = AnswerCap(16 * 1024, 200, 2_000)  # a balance, the height, a header, one data entry, a token
SMALL = AnswerCap(256 * 1024, 5_000, 50_000)  # statuses, data entries by key, one transaction, a broadcast
LARGE_CONTAINERS, LARGE_VALUES = 150_000, 1_000_000  # node.max_answer_bytes: 1,000 Data txs of 100 entries


class BadAnswer(ValueError):
    """A node answer that is too large, does not parse or does not have the documented shape."""


def _no_constant(name: str) -> Any:
    raise BadAnswer("the answer holds %s, which is not JSON" % name)


def parse_answer(body: bytes, cap: AnswerCap = TINY) -> Any:
    """The JSON of a node answer, or BadAnswer: more values than `cap`, not JSON, NaN, or nested too deep."""
    containers = body.count(b"{") + body.count(b"[")
    if containers > cap.containers or containers + body.count(b",") > cap.values:
        raise BadAnswer("the answer holds more JSON values than its route needs (%d containers)" % containers)
    paused = gc.isenabled()  # json.loads makes no cycles: GC passes would only slow a large answer down
    gc.disable()
    try:
        data = json.loads(body, parse_constant=_no_constant)
    except RecursionError:
        raise BadAnswer("the answer is nested too deep to parse") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise BadAnswer("the answer is not JSON (%s)" % str(e)[:80]) from None
    finally:
        if paused:
            gc.enable()
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > NODE_MAX_DEPTH:
            raise BadAnswer("the answer is nested deeper than %d levels" % NODE_MAX_DEPTH)
        children = value.values() if isinstance(value, dict) else value
        stack.extend((v, depth + 1) for v in children if isinstance(v, (dict, list)))
    return data


class BodyReader:
    """Collects a body in chunks, inflating gzip/deflate; BadAnswer once raw or inflated bytes pass `cap`."""

    WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}

    def __init__(self, cap: int, encoding: Optional[str]):
        self.cap, self.raw, self.out = cap, 0, bytearray()
        enc = (encoding or "identity").strip().lower()
        if enc not in ("", "identity", *self.WBITS):
            raise BadAnswer("the answer has Content-Encoding %r, which was not asked for" % enc[:40])
        self.inflater = zlib.decompressobj(self.WBITS[enc]) if enc in self.WBITS else None

    def _inflate(self, inflate: Callable[..., bytes], *args: Any) -> None:
        try:
            self.out += inflate(*args)
        except zlib.error as e:
            raise BadAnswer("the compressed answer is damaged (%s)" % e) from None
        if len(self.out) > self.cap:
            raise BadAnswer(_TOO_LARGE % (self.cap, " decompressed"))

    def feed(self, chunk: bytes) -> None:
        self.raw += len(chunk)
        if self.raw > self.cap:
            raise BadAnswer(_TOO_LARGE % (self.cap, ""))
        if self.inflater is None:
            self.out += chunk
            return
        while chunk:  # in pieces of at most 64 KiB: never a second copy of a large answer in memory
            self._inflate(self.inflater.decompress, chunk, min(65536, self.cap + 1 - len(self.out)))
            chunk = self.inflater.unconsumed_tail

    def body(self) -> bytes:
        if self.inflater is not None:
            self._inflate(self.inflater.flush)
            if not self.inflater.eof:
                raise BadAnswer("the compressed answer is cut short")
        return bytes(self.out)


def coin_name(rules: str) -> str:
    """The name of the chain's own coin (the one fees are paid in)."""
    return "ZBS" if rules == "0bs" else "WAVES"


def format_coins(units: int, rules: str) -> str:
    """Smallest units of the chain's coin as coins with the name: 100000 -> "0.001 WAVES"."""
    return tokens_text(units, 8, coin_name(rules))


# The node's refusals: (words all in its lower-case text, kind, plain line with the fix); first match wins.
# "known": broadcast already; "no_coins"/"no_tokens": wait for funds; "timestamp" (or error 303): re-sign with
# the node's time; "fee": the smart-asset fee; "other_network": the node is set aside; any other: failed.
_NO_COINS = "the sender has too few {coin} to pay for it (fees are paid in {coin}); send it some: iotlight.py pay --seed-file FUNDED.seed --asset {coin} ADDRESS 1"
_CLOCK = "set this machine's clock (e.g. sudo timedatectl set-ntp true)"
_OFF_CLOCK = "the transaction's time is %s the node's clock; " + _CLOCK
_NO_TOKEN = "the token does not exist on the node's chain; check the asset id and node.urls"
_OTHER_NETWORK = "the node runs another network than node.chain_id; fix node.chain_id or node.urls"
_LOW_FEE = "the fee is below the node's minimum; set data.fee = 0 (automatic)"
REFUSALS: Tuple[Tuple[Tuple[str, ...], str, str], ...] = (
    (("already in the state",), "known", "the node has this transaction already"),
    (("negative asset",), "no_tokens", "the sender holds too few of the token for this transfer"),
    (("negative waves balance",), "no_coins", _NO_COINS),
    (("accounts balance errors",), "no_coins", _NO_COINS),
    (("unavailable funds",), "no_coins", _NO_COINS),
    (("negative", "balance"), "no_coins", _NO_COINS),
    (("balance", "not enough"), "no_coins", _NO_COINS),
    (("balance", "insufficient"), "no_coins", _NO_COINS),
    (("timestamp", "in the future"), "timestamp", _OFF_CLOCK % "ahead of"),
    (("timestamp", "in the past"), "timestamp", _OFF_CLOCK % "behind"),
    (("timestamp",), "timestamp", "the node refused the transaction's time; " + _CLOCK),
    (("wrong chain-id",), "other_network", _OTHER_NETWORK),
    (("invalid address",), "other_network", _OTHER_NETWORK),
    (("unissued asset",), "no_token", _NO_TOKEN),
    (("asset does not exist",), "no_token", _NO_TOKEN),
    (("invalid asset id",), "bad_asset", "that is not an asset id; check the asset id"),
    (("does not exceed minimal value",), "fee", _LOW_FEE),
    (("alias", "doesn't exist"), "no_alias", "no such alias on the node's chain; check the recipient"),
)
Refusal = collections.namedtuple("Refusal", "kind plain")


def refusal_of(message: str, *, status: int = 400, code: Optional[int] = None) -> Refusal:
    """What a node's refusal means: its kind and a plain line with the fix (else the node's text)."""
    text = message.lower()
    if code == 303:
        return Refusal("timestamp", REFUSALS[10][2])
    for words, kind, plain in REFUSALS:
        if all(w in text for w in words):
            return Refusal(kind, plain)
    return Refusal("refused" if status < 500 else "error", message)


def describe_refusal(e: NodeError, *, rules: str = "waves") -> str:
    """What to tell a person about a NodeError: the plain line of a known refusal, else its text."""
    refusal = getattr(e, "refusal", None)
    if refusal is None or refusal.plain == str(e):
        return str(e)
    logging.getLogger("iotlight.node").debug("the node said: %s", e)
    return refusal.plain.format(coin=coin_name(rules))


def _retry_after(value: Optional[str], now: float) -> Wait:
    """Seconds a Retry-After header asks for (a number or an HTTP date), at most an hour."""
    from email.utils import parsedate_to_datetime

    if not value:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, min(3600.0, float(value)))
    try:
        return max(0.0, min(3600.0, parsedate_to_datetime(value).timestamp() - now))
    except (TypeError, ValueError):
        return None


def _int_field(field: str, lo: int = 0, hi: int = INT64_MAX) -> Callable[[Any], int]:
    def check(data: Any) -> int:
        value = data.get(field) if isinstance(data, dict) else None
        if not _int_within(value, lo, hi):
            raise BadAnswer("the answer has no %s (an integer from %d)" % (field, lo))
        return value

    return check


def _of_type(kind: type) -> Callable[[Any], Any]:
    def check(data: Any) -> Any:
        if not isinstance(data, kind):
            raise BadAnswer("the answer is not a JSON %s" % ("object" if kind is dict else "list"))
        return data

    return check


# What /assets/details tells about a token: str, int, str, Optional[bool] (None: not said), str
AssetDetails = collections.namedtuple("AssetDetails", "asset_id decimals name scripted issuer")


class _Routes:
    """The node's routes, one typed method each (a mixin of NodeClient: all go through its request)."""

    async def _get(self, path: str, check: Check, cap: AnswerCap = TINY, **kw: Any) -> Any:
        return await self.request("GET", path, check=check, cap=cap, **kw)

    async def _maybe(self, path: str, check: Check, cap: AnswerCap = TINY, *missing: str) -> Any:
        """What `check` makes of the answer; None for a 404 or a refusal kind in `missing` (no such thing)."""
        try:
            return await self._get(path, check, cap)
        except NodeRejected as e:
            if e.status == 404 or e.refusal.kind in missing:
                return None
            raise

    async def height(self) -> int:
        return await self._get("/blocks/height", _int_field("height", 0, 2**31 - 1))

    async def asset_balance(self, address: str, asset_id: str) -> int:
        path = "/assets/balance/%s/%s" % (address, asset_id)
        return await self._get(path, _int_field("balance"), family="balance")

    async def balance(self, address: str) -> int:
        return await self._get("/addresses/balance/%s" % address, _int_field("balance"), family="coin")

    async def address_transactions(self, address: str, limit: int, after: Optional[str] = None) -> List[Any]:
        def check(data: Any) -> List[Any]:
            if not isinstance(data, list) or len(data) > 1 or (data and not isinstance(data[0], list)):
                raise BadAnswer("the answer is not a transaction list [[...]]")
            if data and len(data[0]) > limit:
                too_many = "the answer holds %d transactions, more than the %d asked for"
                raise BadAnswer(too_many % (len(data[0]), limit))
            return data[0] if data else []  # the caller checks each (check_tx_shape)

        path = "/transactions/address/%s/limit/%d" % (address, limit)
        params = {"after": after} if after else None
        return await self._get(path, check, self.large, params=params, family="list")

    async def block(self, height: Optional[int] = None) -> Optional[Dict[str, Any]]:
        """The last block (the liquid block, microblocks included) or the one at `height` (None if none)."""

        def check(data: Any) -> JsonObject:
            has_height = isinstance(data, dict) and _int_within(data.get("height"), 0, 2**31)
            if not has_height or not isinstance(data.get("transactions"), list):
                raise BadAnswer("the answer is not a block with a height and a transaction list")
            return data

        if height is None:
            return await self._get("/blocks/last", check, self.large)
        return await self._maybe("/blocks/at/%d" % height, check, self.large)

    async def block_id(self, height: int) -> Optional[str]:
        def check(data: Any) -> str:
            ident = (data.get("id") or data.get("signature")) if isinstance(data, dict) else None
            if not isinstance(ident, str) or not 0 < len(ident) <= 100:
                raise BadAnswer("the answer is not a block header with an id")
            return ident

        return await self._maybe("/blocks/headers/at/%d" % height, check)  # None: a rollback took it

    async def last_header(self) -> Dict[str, Any]:
        return await self._get("/blocks/headers/last", _of_type(dict))

    async def asset_details(self, asset_id: str) -> Optional[AssetDetails]:
        def check(data: Any) -> AssetDetails:
            if not isinstance(data, dict) or data.get("assetId") != asset_id:
                raise BadAnswer("the answer is not the details of token %s" % asset_id)
            decimals = _int_field("decimals", 0, 8)(data)
            name = data.get("name") if isinstance(data.get("name"), str) else ""
            name = name if 0 < len(name) <= 64 and name.isprintable() else ""
            scripted = data["scripted"] if isinstance(data.get("scripted"), bool) else None
            return AssetDetails(asset_id, decimals, name, scripted, str(data.get("issuer") or "?")[:64])

        return await self._maybe("/assets/details/%s" % asset_id, check, TINY, "no_token", "bad_asset")

    async def aliases(self, address: str) -> List[str]:
        data = await self._get("/alias/by-address/%s" % address, _of_type(list), SMALL)
        return [a for a in data if isinstance(a, str) and a.startswith("alias:") and len(a) <= 64]

    async def alias_address(self, name: str) -> Optional[str]:
        def check(data: Any) -> str:
            address = data.get("address") if isinstance(data, dict) else None
            if not isinstance(address, str) or chain_of_address(address) is None:
                raise BadAnswer("the answer has no address")
            return address.replace("address:", "", 1)

        return await self._maybe("/alias/by-alias/%s" % urllib.parse.quote(name, safe=""), check)

    async def data_entry(self, address: str, key: str) -> Any:
        def check(data: Any) -> Any:
            if not isinstance(data, dict) or data.get("key") != key:
                raise BadAnswer("the answer is not the data entry %s" % key)
            return data.get("value")

        path = "/addresses/data/%s/%s" % (address, urllib.parse.quote(key, safe=""))
        return await self._maybe(path, check, SMALL)

    async def data_entries(self, address: str, keys: Sequence[str] = (), *, matches: str = "") -> JsonObject:
        params = [("matches", matches)] if matches else [("key", k) for k in keys]
        path, cap = "/addresses/data/%s" % address, self.large if matches else SMALL
        data = await self._get(path, _of_type(list), cap, params=params, family="list")
        entries = [e for e in data if isinstance(e, dict) and isinstance(e.get("key"), str)]
        return {e["key"]: e.get("value") for e in entries}

    async def transaction(self, txid: str) -> Optional[Dict[str, Any]]:
        """A confirmed transaction (its full form: a mass transfer with every item); None when unknown."""
        return await self._maybe("/transactions/info/%s" % txid, _of_type(dict), SMALL)

    async def statuses(self, ids: Sequence[str]) -> Dict[str, Dict[str, Any]]:
        """Status of transactions by id: {"status": confirmed|unconfirmed|not_found, "height": ...}.
        Uses /transactions/status; on nodes without it (the 0bs fork), info + unconfirmed/info."""
        if not ids:
            return {}
        try:
            params = [("id", i) for i in ids]
            data = await self._get("/transactions/status", _of_type(list), SMALL, params=params)
            return {i["id"]: i for i in data if isinstance(i, dict) and isinstance(i.get("id"), str)}
        except NodeRejected as e:
            if e.status not in (404, 405):
                raise
        return {i: await self._tx_status(i) for i in ids}

    async def _tx_status(self, txid: str) -> JsonObject:
        info = await self.transaction(txid)
        if info is not None:
            return {"id": txid, "status": "confirmed", "height": info.get("height")}
        pending = await self._maybe("/transactions/unconfirmed/info/%s" % txid, _of_type(dict), SMALL)
        return {"id": txid, "status": "not_found" if pending is None else "unconfirmed"}

    async def broadcast(self, tx: Dict[str, Any]) -> Dict[str, Any]:
        check = _of_type(dict)
        return await self.request("POST", "/transactions/broadcast", body=tx, check=check, family="broadcast")

    async def node_time_ms(self) -> int:
        def check(data: Any) -> int:
            for key in ("NTP", "system"):
                t = data.get(key) if isinstance(data, dict) else None
                if _int_within(t, 0, INT64_MAX):
                    return t
            raise BadAnswer("the answer has no time")

        return await self._get("/utils/time", check)


class NodeClient(_Routes):
    """The node REST API: failover across `urls`, back-off with jitter, Retry-After, one log line per outage.
    A node of another network than `chain_id` (learnt from its last block) is left aside: no broadcast, no
    failed transaction. A 429 or bad answers set one route family aside (balance, coin, list, broadcast, other)."""

    FOREIGN_RECHECK, UNKNOWN_RECHECK = 600.0, 60.0  # seconds until a node's network is looked at again

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout: float,
        chain_id: str = "",
        clock: Optional[Clock] = None,
        transport: Any = None,
        rng: Optional[random.Random] = None,
        tell: Callable[..., None] = lambda kind, **fields: None,
        max_answer_bytes: int = 8 * 1024 * 1024,
    ):
        import httpx

        self.urls, self.timeout, self.chain_id = list(urls), timeout, chain_id
        self.clock, self.rng, self.tell = clock or Clock(), rng or random.Random(), tell
        self.large = AnswerCap(max_answer_bytes, LARGE_CONTAINERS, LARGE_VALUES)
        self.log = logging.getLogger("iotlight.node")
        agent = "iotlight/%s" % __version__
        headers = {"Accept": "application/json", "Accept-Encoding": "gzip, deflate", "User-Agent": agent}
        tls = any(u.startswith("https://") for u in self.urls)  # a CA bundle (~4 MB): only for https
        self.client = httpx.AsyncClient(timeout=timeout, transport=transport, verify=tls, headers=headers)
        self.down_until: Dict[str, float] = {}
        self.backoffs: Dict[Any, Backoff] = {}  # per node, and per (node, route family) after a 429
        self.throttled: Dict[Tuple[str, str], float] = {}  # (node, route family) -> asked again from then
        self.bad: set = set()  # (node, route family) left aside for bad answers, not a 429
        self.network_due: Dict[str, float] = {}  # node -> when its network is (re)learnt; inf: it is ours
        self.foreign: Dict[str, str] = {}  # node -> the network it runs, while it is left aside
        self.told, self.current = LogOnce(quiet=300.0), self.urls[0]  # a flapping node: a line in 5 minutes
        self.ok: Optional[bool] = None

    async def aclose(self) -> None:
        await self.client.aclose()

    def _order(self, family: str) -> List[str]:
        now = self.clock.monotonic()
        due = [u for u in self.urls if u not in self.foreign or now >= self.network_due.get(u, 0)]
        usable = [u for u in due if self.throttled.get((u, family), 0) <= now]
        up = [u for u in usable if self.down_until.get(u, 0) <= now]
        return up or sorted(usable, key=lambda u: self.down_until.get(u, 0))[:1]

    def _askable(self, family: str, path: str) -> List[str]:
        """Nodes to ask; NodeThrottled (NodeError after bad answers) while all of ours have `family` aside."""
        order, now = self._order(family), self.clock.monotonic()
        waits = [t - now for (u, f), t in self.throttled.items() if f == family and u not in self.foreign]
        wait = 0.0 if order else min(waits, default=0.0)
        if wait > 0 and all((u, family) in self.bad for u in self.urls if u not in self.foreign):
            raise NodeError("every node gave bad answers to %s lately: asked again in %.0f s" % (path, wait))
        if wait > 0:
            raise NodeThrottled("every node throttles %s: asked too often" % path, retry_after=wait)
        return order

    def retry_in(self) -> float:
        """Seconds until some node may be asked again (0 when one is up)."""
        return max(0.0, min(self.down_until.get(u, 0) for u in self.urls) - self.clock.monotonic())

    def _status(self, url: str, ok: bool, error: Optional[str] = None) -> None:
        if (url, ok) != (self.current, self.ok):
            self.current, self.ok = url, ok
            self.tell("node_status", url=url, ok=ok, error=error)

    def _mark_down(self, url: str, error: str, retry_after: Wait = None) -> None:
        backoff = self.backoffs.setdefault(url, Backoff(1.0, 60.0, self.rng))
        self.down_until[url] = self.clock.monotonic() + backoff.failure(retry_after)
        if self.told.first(("down", url), now=self.clock.monotonic()):
            self.log.warning("node %s is failing: %s", redact_url(url), error)
        if url == self.current and all(self.down_until.get(u, 0) > self.clock.monotonic() for u in self.urls):
            self._status(url, False, error)

    def _mark_up(self, url: str, family: str) -> None:
        if self.told.over(("down", url)):
            self.log.info("node %s answers again", redact_url(url))
        for key in (url, (url, family), (url, family, "bad")):
            if key in self.backoffs:
                self.backoffs[key].success()
        self.down_until.pop(url, None)
        self.throttled.pop((url, family), None)
        self.bad.discard((url, family))
        if (url, "balance") not in self.bad:  # the status pixel follows the polls' route
            self._status(url, True)

    def _mark_foreign(self, url: str, chain: Optional[str]) -> None:
        self.foreign[url] = chain or "?"
        self.network_due[url] = self.clock.monotonic() + self.FOREIGN_RECHECK
        message = "node %s runs %s, not node.chain_id %s: it is left aside (fix node.urls or node.chain_id)"
        if self.told.first(("foreign", url), now=self.clock.monotonic()):
            runs = "network " + network_name(chain) if chain else "another network"
            self.log.warning(message, redact_url(url), runs, network_name(self.chain_id))
        if not self._order("other"):
            why = "node %s runs another network than %r" % (redact_url(url), self.chain_id)
            self._status(url, False, why)

    async def _learn_network(self, url: str) -> None:
        now = self.clock.monotonic()
        if not self.chain_id or now < self.network_due.get(url, 0):
            return
        self.network_due[url] = now + self.UNKNOWN_RECHECK
        try:
            fetch = self._fetch("GET", url + "/blocks/headers/last", None, None, TINY.size)
            status, _, raw = await asyncio.wait_for(fetch, self.timeout)
            generator = parse_answer(raw).get("generator") if status == 200 else None
        except Exception:  # noqa: BLE001 - an optional look: the request itself reports the node's trouble
            return
        chain = chain_of_address(generator)
        if chain is not None and chain != self.chain_id:
            self._mark_foreign(url, chain)
        elif chain == self.chain_id:
            self.network_due[url] = math.inf
            if self.foreign.pop(url, None) and self.told.over(("foreign", url)):
                self.log.info("node %s runs network %r now", redact_url(url), chain)

    async def _fetch(self, method: str, url: str, params: Any, body: Any, cap: int) -> Answer:
        content = None if body is None else json.dumps(body)
        headers = None if body is None else {"Content-Type": "application/json"}
        request = self.client.build_request(method, url, params=params, content=content, headers=headers)
        resp = await self.client.send(request, stream=True)
        try:
            declared = resp.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > cap:
                raise BadAnswer(_TOO_LARGE % (cap, ""))
            # an answer httpx already holds in memory is decoded already (the in-process transport)
            if resp.is_stream_consumed:
                reader = BodyReader(cap, None)
                reader.feed(resp.content)
            else:
                reader = BodyReader(cap, resp.headers.get("Content-Encoding"))
                async for chunk in resp.aiter_raw():
                    reader.feed(chunk)
            return resp.status_code, resp.headers, reader.body()
        finally:
            await resp.aclose()

    async def _ask(self, url: str, method: str, path: str, params: Any, body: Any, cap: AnswerCap) -> Answer:
        """One node's (status, headers, JSON) or an exception: httpx's, a timeout or BadAnswer."""
        await self._learn_network(url)
        if url in self.foreign:
            raise BadAnswer("it runs another network")
        # per-read timeouts alone let a node drip an answer forever: the whole answer is bounded too
        fetch = self._fetch(method, url + path, params, body, cap.size)
        status, headers, raw = await asyncio.wait_for(fetch, self.timeout * 3)
        if status == 429 or status >= 500:
            return status, headers, None
        try:
            return status, headers, parse_answer(raw, cap)
        except BadAnswer:
            if status >= 400:
                raise BadAnswer("HTTP %d with a body that is not JSON" % status) from None
            raise

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        body: Any = None,
        check: Callable[[Any], Any] = _as_is,
        cap: Optional[AnswerCap] = None,
        family: str = "other",
    ) -> Any:
        """The first usable answer as `check` makes it, else NodeRejected, NodeThrottled or NodeError."""
        import httpx

        last_error = "no node to ask (all run another network?)"
        throttled: Wait = None  # when the last failure was a 429/503: Retry-After or 0
        for url in self._askable(family, path):
            throttled = None
            try:
                status, headers, data = await self._ask(url, method, path, params, body, cap or SMALL)
                if status == 429 or status >= 500:
                    last_error, throttled = self._unavailable(url, family, path, status, headers)
                    continue
                result = check(data) if status < 400 else None
            except (httpx.TimeoutException, asyncio.TimeoutError):
                last_error = "timed out"
            except httpx.HTTPError as e:  # its text may name the URL: shown masked
                last_error = redact_url("%s: %s" % (type(e).__name__, e) if str(e) else type(e).__name__)
            except BadAnswer as e:  # the node answers: this route of it is left aside, on its own back-off
                last_error = "bad answer to %s: %s" % (path, e)
                if url not in self.foreign:
                    self._set_aside(url, family, last_error)
                continue
            else:
                if status < 400:
                    self._mark_up(url, family)
                    return result
                rejected = self._rejected(status, data)
                if rejected.refusal.kind == "other_network":
                    self._mark_foreign(url, None)
                    last_error = "it runs another network: %s" % rejected
                    continue
                self._mark_up(url, family)
                raise rejected
            if url not in self.foreign:
                self._mark_down(url, last_error)
        message = "no node answered %s %s: %s" % (method, path, last_error)
        if throttled is not None:
            raise NodeThrottled(message, retry_after=throttled or None)
        raise NodeError(message)

    def _set_aside(self, url: str, family: str, error: str) -> None:
        """Bad answers: this family is asked again on a growing back-off; a bad balance fails the node."""
        wait = self.backoffs.setdefault((url, family, "bad"), Backoff(1.0, 300.0, self.rng)).failure()
        self.throttled[(url, family)] = self.clock.monotonic() + wait
        self.bad.add((url, family))
        if self.told.first(("down", url), now=self.clock.monotonic()):
            failing = "node %s is failing: %s (that route is asked again less often)"
            self.log.warning(failing, redact_url(url), error)
        if family == "balance":
            self._mark_down(url, error)

    def _unavailable(self, url: str, family: str, path: str, status: int, headers: Any) -> Tuple[str, Wait]:
        """The error line of a 429 or 5xx and the wait it asks for: a 429's back-off, a 503's Retry-After
        (or 0), else None. A 429 is a pool: this route family is asked too often here; the node is fine."""
        retry = _retry_after(headers.get("Retry-After"), self.clock.time())
        error = "HTTP %d%s" % (status, " (retry after %gs)" % retry if retry else "")
        if status != 429:
            self._mark_down(url, error, retry)
            return error, (retry or 0.0) if status == 503 else None
        throttled = self.backoffs.setdefault((url, family), Backoff(1.0, 60.0, self.rng)).failure(retry)
        self.throttled[(url, family)] = self.clock.monotonic() + throttled
        self.bad.discard((url, family))
        self.log.debug("node %s throttles %s: %s", redact_url(url), path, error)
        return error, throttled

    @staticmethod
    def _rejected(status: int, data: Any) -> NodeRejected:
        if not isinstance(data, dict):
            return NodeRejected(json.dumps(data)[:200], status=status)
        message = data.get("message") or data.get("details") or json.dumps(data)[:200]
        code = data.get("error") if _is_int(data.get("error")) else None
        return NodeRejected(str(message)[:500], status=status, code=code)


# --- 7c. systemd: readiness and the watchdog -----------------------------------
def sd_notify(message: str, environ: Optional[Dict[str, str]] = None) -> bool:
    """Send a notification (READY=1, WATCHDOG=1, STOPPING=1) to systemd; a no-op outside it."""
    addr = (environ if environ is not None else os.environ).get("NOTIFY_SOCKET")
    if not addr:
        return False
    addr = "\0" + addr[1:] if addr.startswith("@") else addr  # "@": an abstract socket
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        s.sendall(message.encode())
        return True
    return False


def systemd_watchdog_period(environ: Optional[Dict[str, str]] = None) -> Optional[float]:
    """WATCHDOG_USEC in seconds; None if unset, 0, or WATCHDOG_PID names another process."""
    env = environ if environ is not None else os.environ
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 1e6


# --- 7d. Hardware: LED matrix, joystick, environment sensors -----------------
# One blocking API (class Hardware), four backends: the real Sense HAT, its emulator (the same library
# API), an ANSI truecolour terminal preview, none. HardwareRunner is the asyncio face the daemon uses.
hardware_log = logging.getLogger("iotlight.hardware")
JOYSTICK_DIRECTIONS = ("up", "down", "left", "right", "middle")
JOYSTICK_ACTIONS = ("pressed", "released", "held")
SENSE_HAT_FB_NAME = "RPi-Sense FB"
INSTALL_SENSE_HAT = "install sense-hat: sudo apt install sense-hat"
INSTALL_SENSE_EMU = "install the emulator: sudo apt install python3-sense-emu sense-emu-tools"
RGB = Tuple[int, int, int]
BLACK = (0, 0, 0)
# Dim green, red, amber, blue: a hint in the dark, bright enough for the HAT's gamma (5-bit values < 6: off)
STATUS_COLORS = {"ok": (0, 64, 0), "node_down": (64, 0, 0), "no_funds": (96, 48, 0), "starting": (0, 0, 64)}
STATUS_MEANINGS = {  # for the dashboard's legend and the README
    "ok": "all well, waiting for a payment",
    "node_down": "no node answers",
    "no_funds": "no coins left for the fees of its Data transactions",
    "starting": "starting up",
}
_ENVIRONMENT_KEYS = ("temperature_c", "humidity_pct", "pressure_hpa")
JoystickEvent = collections.namedtuple("JoystickEvent", "direction action ts_ms")  # ts_ms: its own Unix ms


def render_matrix(*, on: bool, fraction: float, color: RGB, countdown: bool, status: str) -> List[RGB]:
    """The 64 pixels, row-major from the top-left. Lit: all `color`, with `countdown` a bottom-row bar
    of the time left. Dark: black but for the STATUS_COLORS pixel at the bottom-right."""
    if status not in STATUS_COLORS:
        raise ValueError("unknown lamp status %r: expected one of %s" % (status, ", ".join(STATUS_COLORS)))
    color = _check_color(color)
    if not on:
        return [BLACK] * 63 + [STATUS_COLORS[status]]
    pixels = [color] * 64
    if countdown:
        # NaN lights nothing; - 1e-9: float noise in remaining/total never lights one pixel more
        lit = max(0, min(8, math.ceil(8 * min(float(fraction), 1.0) - 1e-9))) if fraction > 0 else 0
        dim = tuple((c + 4) // 8 for c in color)
        pixels[56:] = [color if x < lit else dim for x in range(8)]
    return pixels


def _check_color(color) -> RGB:
    try:
        rgb = tuple(int(c) for c in color)
    except (TypeError, ValueError):
        rgb = ()
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise ValueError("bad colour %r: expected [r, g, b] with each 0-255" % (color,))
    return rgb  # type: ignore[return-value]


def _check_pixels(pixels) -> List[RGB]:
    frame = [_check_color(p) for p in pixels]
    if len(frame) != 64:
        raise ValueError("a frame has 64 pixels, got %d" % len(frame))
    return frame


class Hardware:
    """Blocking hardware API, used from HardwareRunner's worker thread (read_joystick: its stick thread)."""

    name, has_joystick = "none", False

    def set_pixels(self, pixels: Sequence[RGB]) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        self.set_pixels([BLACK] * 64)

    def read_environment(self) -> Dict[str, Optional[float]]:
        """temperature_c (from the humidity sensor), humidity_pct, pressure_hpa; None: absent or failed."""
        return dict.fromkeys(_ENVIRONMENT_KEYS)

    def read_joystick(self, timeout: float) -> List[JoystickEvent]:
        time.sleep(timeout)
        return []

    def close(self) -> None:
        pass


class NullHardware(Hardware):
    """No matrix, no sensors, no joystick; keeps the last frame it was given."""

    def __init__(self):
        self.frame, self._closed = [BLACK] * 64, threading.Event()

    def set_pixels(self, pixels):
        self.frame = _check_pixels(pixels)

    def read_joystick(self, timeout):
        self._closed.wait(timeout)
        return []

    def close(self):
        self._closed.set()


class SenseHatHardware(Hardware):
    """The real Sense HAT through the sense_hat library (the emulator's sense_emu has the same API)."""

    name, has_joystick = "sense-hat", True
    library = "sense_hat"  # imported only when used: on a Pi with sense-hat installed

    def __init__(self, hat=None):
        self._hat = hat if hat is not None else importlib.import_module(self.library).SenseHat()

    def set_pixels(self, pixels):
        self._hat.set_pixels(_check_pixels(pixels))

    def clear(self):
        self._hat.clear()

    def read_environment(self):
        env = dict.fromkeys(_ENVIRONMENT_KEYS)
        # the libraries say 0 for an invalid reading; their RTIMU readers carry the validity flags
        try:
            self._hat.get_humidity()  # initialises the sensor, OSError when absent
            h_valid, humidity, t_valid, temperature = self._hat._humidity.humidityRead()
            env["humidity_pct"] = float(humidity) if h_valid else None
            env["temperature_c"] = float(temperature) if t_valid else None
        except Exception as exc:  # sensor absent or I2C failure: leave None
            hardware_log.debug("humidity sensor: %s", exc)
        try:
            self._hat.get_pressure()
            p_valid, pressure, _, _ = self._hat._pressure.pressureRead()
            env["pressure_hpa"] = float(pressure) if p_valid and pressure > 0 else None
        except Exception as exc:
            hardware_log.debug("pressure sensor: %s", exc)
        return env

    def read_joystick(self, timeout):
        stick = self._hat.stick
        if not stick._wait(timeout):  # select() on the evdev file / socket
            return []
        return [JoystickEvent(e.direction, e.action, round(e.timestamp * 1000)) for e in stick.get_events()]

    def close(self):
        try:
            self._hat.stick.close()
        except Exception as exc:
            hardware_log.debug("closing the joystick: %s", exc)


class SenseEmuHardware(SenseHatHardware):
    """The Sense HAT emulator (sense_emu): files and a socket in /dev/shm."""

    name, library = "sense-emu", "sense_emu"  # its SenseHat() spawns sense_emu_gui if none runs


def _sense_hat_framebuffer_present(pattern: str = "/sys/class/graphics/fb*/name") -> bool:
    for path in glob.glob(pattern):
        with contextlib.suppress(OSError), open(path) as f:
            if f.read().strip() == SENSE_HAT_FB_NAME:
                return True
    return False


def _module_installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _emulator_running() -> bool:
    try:
        from sense_emu.lock import lock_filename, pid_exists

        with open(lock_filename(), "rb") as f:
            return pid_exists(int(f.readline().decode("ascii").strip()))
    except Exception:  # no lock file, garbage in it, or sense_emu unusable
        return False


def probe_sense_hat() -> Optional[str]:
    """None when the real Sense HAT can be used, else why not (with the fix)."""
    if not _module_installed("sense_hat"):
        return "the python module sense_hat is not installed (%s)" % INSTALL_SENSE_HAT
    if not _sense_hat_framebuffer_present():
        fix = "is the HAT seated? check dtoverlay=rpi-sense in /boot/config.txt, then reboot"
        return 'no "%s" framebuffer in /sys/class/graphics (%s)' % (SENSE_HAT_FB_NAME, fix)
    return None


def probe_sense_emu(environ) -> Optional[str]:
    """None when the emulator can be used without spawning a GUI nobody sees."""
    if not _module_installed("sense_emu"):
        return "the python module sense_emu is not installed (%s)" % INSTALL_SENSE_EMU
    if _emulator_running():
        return None
    if not (environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")):
        return "no desktop session (DISPLAY and WAYLAND_DISPLAY unset) and no emulator running (start sense_emu_gui on a desktop)"
    if not shutil.which("sense_emu_gui", path=environ.get("PATH")) or not _module_installed("gi"):
        needed = "sense_emu_gui and PyGObject are needed: %s" % INSTALL_SENSE_EMU
        return "no emulator running, and its window cannot be started here (%s)" % needed
    return None


# -- Terminal preview: arrow keys (ESC [ or, in application cursor mode, ESC O) and Enter --------
_ARROWS = ((b"A", "up"), (b"B", "down"), (b"C", "right"), (b"D", "left"))
_KEYS = {esc + key: direction for esc in (b"\x1b[", b"\x1bO") for key, direction in _ARROWS}
_KEYS.update({b"\r": "middle", b"\n": "middle"})


def parse_keys(buf: bytes) -> Tuple[List[str], bytes]:
    """Terminal input as joystick directions, and the unfinished tail of an escape sequence. Pure."""
    directions, i = [], 0
    while i < len(buf):
        seq = next((s for s in _KEYS if buf.startswith(s, i)), None)
        if seq is not None:
            directions.append(_KEYS[seq])
            i += len(seq)
        elif any(len(buf) - i < len(s) and s.startswith(buf[i:]) for s in _KEYS):
            return directions, buf[i:]  # wait for the rest of the sequence
        else:
            i += 1  # any other key: ignored
    return directions, b""


class TerminalHardware(Hardware):
    """An 8x8 preview redrawn in place on `stdout`; arrow keys and Enter on a terminal `stdin` (in cbreak)."""

    name = "terminal"

    def __init__(self, stdout=None, stdin=None, *, clock=time.time):
        self._out = stdout if stdout is not None else sys.stdout
        self._in = stdin if stdin is not None else sys.stdin
        self._clock, self._drawn, self._frame, self._pending = clock, False, [BLACK] * 64, b""
        self._lock = threading.Lock()  # frames (worker thread) and log lines (any thread)
        self._restore_tty = self._fd = None
        with contextlib.suppress(ValueError, OSError):
            self.has_joystick = self._in is not None and self._in.isatty()
        if self.has_joystick:
            import termios
            import tty

            self._fd = self._in.fileno()
            saved = termios.tcgetattr(self._fd)
            self._restore_tty = lambda: termios.tcsetattr(self._fd, termios.TCSADRAIN, saved)
            tty.setcbreak(self._fd)  # keys arrive at once, no echo; Ctrl-C still works

    def set_pixels(self, pixels):
        frame = _check_pixels(pixels)
        with self._lock:
            self._out.write(("\x1b[8A" if self._drawn else "") + self._frame_text(frame))
            self._out.flush()
            self._frame, self._drawn = frame, True

    @staticmethod
    def _frame_text(frame) -> str:
        rows = ("".join("\x1b[48;2;%d;%d;%dm  " % rgb for rgb in frame[y : y + 8]) for y in range(0, 64, 8))
        return "".join("\r" + row + "\x1b[0m\x1b[K\n" for row in rows)

    def write_above(self, text: str) -> None:
        """Print text (log lines) above the drawn matrix, which is drawn again below it."""
        text = text if text.endswith("\n") else text + "\n"
        with self._lock:
            if self._drawn:
                text = "\x1b[8A\r\x1b[J" + text + self._frame_text(self._frame)
            self._out.write(text)
            self._out.flush()

    def read_joystick(self, timeout):
        if self._fd is None:
            return super().read_joystick(timeout)
        if not select.select([self._fd], [], [], timeout)[0]:
            return []
        data, ts_ms = os.read(self._fd, 64), round(self._clock() * 1000)
        directions, self._pending = parse_keys(self._pending + data)  # keys have no release: press + release
        return [JoystickEvent(d, action, ts_ms) for d in directions for action in ("pressed", "released")]

    def close(self):
        if self._restore_tty is not None:
            self._restore_tty()
            self._restore_tty = None
        with contextlib.suppress(OSError, ValueError):
            self._out.write("\x1b[0m")
            self._out.flush()


def _open_backend(name: str) -> Hardware:
    backends = {"sense-hat": SenseHatHardware, "sense-emu": SenseEmuHardware, "terminal": TerminalHardware}
    return backends.get(name, NullHardware)()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _open_chosen(choice: str, environ: Any) -> Hardware:
    why = probe_sense_emu(environ) if choice == "sense-emu" else None
    if why:
        why += ', or set hardware.backend = "terminal"'
    elif choice == "sense-hat" and not _module_installed("sense_hat"):
        why = "the python module sense_hat is not installed: " + INSTALL_SENSE_HAT
    if why:
        raise IotlightError('hardware.backend = "%s": %s' % (choice, why))
    try:
        hardware = _open_backend(choice)
    except Exception as exc:
        error = 'hardware.backend = "%s": cannot open it: %s' % (choice, _one_line(exc))
        raise IotlightError(error) from None
    hardware_log.info("hardware: %s", hardware.name)
    return hardware


def open_hardware(choice: str, *, environ=os.environ, stdout_isatty: bool) -> Hardware:
    """Open hardware.backend `choice`. "auto": the real Sense HAT, else the emulator if there is a desktop
    or a running one, else the terminal if stdout is one, else none, logging why it passed the others."""
    if choice not in HARDWARE_BACKENDS:
        choices = ", ".join('"%s"' % b for b in HARDWARE_BACKENDS)
        raise ConfigError('hardware.backend = "%s": expected one of %s' % (choice, choices))
    if choice != "auto":
        return _open_chosen(choice, environ)
    passed = []
    for name, probe in (("sense-hat", probe_sense_hat), ("sense-emu", lambda: probe_sense_emu(environ))):
        why = probe()
        if why is None:
            try:
                hardware = _open_backend(name)
                break
            except Exception as exc:
                why = "failed to open: %s" % _one_line(exc)
        passed.append("not %s: %s" % (name, why))
    else:  # neither opened
        if not stdout_isatty:
            passed.append("not terminal: standard output is not a terminal")
        hardware = TerminalHardware() if stdout_isatty else NullHardware()
    if passed:
        hardware_log.warning("hardware: using %s; %s", hardware.name, "; ".join(passed))
    else:
        hardware_log.info("hardware: using %s", hardware.name)
    return hardware


class HardwareRunner:
    """Runs a Hardware for the event loop: blocking calls on ONE worker thread, the joystick on its own.
    show() and read_environment() never raise: each kind of fault is logged once (again after a recovery)."""

    JOYSTICK_POLL = 0.25  # seconds a joystick wait may last: bounds close()

    def __init__(self, hardware: Hardware):
        self.hardware, self.told = hardware, LogOnce()  # told: what failed, with the exception's type
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="iotlight-hardware")
        self._last_frame: Optional[List[RGB]] = None
        self._stop, self._closed = threading.Event(), False
        self._stick_thread: Optional[threading.Thread] = None

    async def _guarded(self, what: str, fn: Callable, *args: Any) -> Tuple[bool, Any]:
        """(True, fn(*args)) run on the worker thread, or (False, None) after a fault, logged."""
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except Exception as exc:
            self._fault(what, exc)
            return False, None
        if self.told.over(what):
            hardware_log.info("%s: %s works again", self.hardware.name, what)
        return True, result

    def _fault(self, what: str, exc: BaseException) -> None:
        if not self.told.first(what, type(exc).__name__):
            hardware_log.debug("%s failed again: %s", what, exc)
            return
        trace = hardware_log.isEnabledFor(logging.DEBUG)
        message = "%s: %s failed: %s (logged once)"
        hardware_log.warning(message, self.hardware.name, what, _one_line(exc), exc_info=trace)

    async def show(self, pixels: Sequence[RGB]) -> bool:
        frame = _check_pixels(pixels)
        if self._closed or frame == self._last_frame:
            return False
        drawn, _ = await self._guarded("show", self.hardware.set_pixels, frame)
        self._last_frame = frame if drawn else None
        return drawn

    async def read_environment(self) -> Dict[str, Optional[float]]:
        if self._closed:
            return dict.fromkeys(_ENVIRONMENT_KEYS)
        read, env = await self._guarded("read_environment", self.hardware.read_environment)
        return env if read else dict.fromkeys(_ENVIRONMENT_KEYS)

    def start_joystick(self, callback: Callable[[JoystickEvent], Any]) -> bool:
        """Call `callback(event)` on the running loop (this one) for every joystick event; False if none."""
        if not self.hardware.has_joystick or self._stick_thread is not None or self._closed:
            return False
        loop = asyncio.get_running_loop()

        def deliver(event):
            try:
                callback(event)
            except Exception:
                hardware_log.exception("joystick callback failed for %s", event)

        def run():
            while not self._stop.is_set():
                try:
                    events = self.hardware.read_joystick(self.JOYSTICK_POLL)
                except Exception as exc:
                    self._fault("joystick", exc)
                    self._stop.wait(1.0)
                    continue
                for event in events:
                    try:
                        loop.call_soon_threadsafe(deliver, event)
                    except RuntimeError:  # the loop is closed
                        return

        self._stick_thread = threading.Thread(target=run, name="iotlight-joystick", daemon=True)
        self._stick_thread.start()
        return True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._stick_thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._stick_thread.join)
            self._stick_thread = None
        await self._guarded("clear", self.hardware.clear)
        await self._guarded("close", self.hardware.close)
        self._executor.shutdown(wait=False)


# --- 7e. GPIO output: a relay or an LED switched with the light --------------
class GpioSwitch:
    """A GPIO output (light.gpio_pin, BCM) on while the lamp is lit, via gpiozero (imported here only). Off at
    start and at a clean stop; if the process dies, the wiring decides (README, "Wiring a relay")."""

    def __init__(self, pin: int, *, active_high: bool, pin_factory: Any = None):
        try:
            from gpiozero import DigitalOutputDevice
            from gpiozero.exc import GPIOZeroError
        except ImportError:
            fix = "on Raspberry Pi OS sudo apt install python3-gpiozero (or pip install gpiozero)"
            raise IotlightError("light.gpio_pin = %d needs the gpiozero library: %s" % (pin, fix)) from None
        try:
            options = dict(active_high=active_high, initial_value=False, pin_factory=pin_factory)
            self.device = DigitalOutputDevice(pin, **options)
        except (GPIOZeroError, OSError, RuntimeError) as e:
            raise IotlightError("light.gpio_pin = %d cannot be used: %s" % (pin, _one_line(e))) from None
        self.pin, self.active_high = pin, active_high

    def switch(self, on: bool) -> bool:
        """Switch the output on or off; returns the electrical level read back from the pin (True high)."""
        (self.device.on if on else self.device.off)()
        return bool(self.device.pin.state)

    def close(self) -> None:
        """Off, then release the pin (a clean stop never leaves the relay on)."""
        for step in (self.device.off, self.device.close):
            with contextlib.suppress(Exception):
                step()


def open_gpio(config: Config) -> Optional[GpioSwitch]:
    """The GPIO switch that light.gpio_pin asks for; None when it is -1 (off)."""
    return None if config.gpio_pin < 0 else GpioSwitch(config.gpio_pin, active_high=config.gpio_active_high)


# =============================================================================
# 8. Services: ledger, chain reader, watcher, lamp, outbox, telemetry, monitor
# =============================================================================
#
# A service is a loop, run(stop), that waits through its Pulse and tells the Daemon what
# happened the one way: tell(kind, **fields) (see Daemon.tell).

LIST_FIRST_PAGE, LIST_PAGE = 50, 1000  # a list read's first page, and the next ones (the node's cap)
LIST_READ_MAX = 20_000  # transactions one list read holds at most (about 30 MB)
REORG_MARGIN = 3  # blocks a microblock fork or a short reorg may rewrite
DEEP_MARGIN = 100  # the node's deepest automatic rollback: how far the first read after start looks
RESIGN_AFTER_MS = 125 * 60_000  # a tx older than the node's 120-minute window can never land
STATUS_CHECK_INTERVAL = 3.0
SINGLE_KEY_READS = 4  # up to this many Data keys are read one per request (Outbox._written)
COUNT_CHECK_INTERVAL = 20.0  # how often an idle outbox may compare joystick_count on chain with its own
COIN_BALANCE_INTERVAL = 30.0
PRUNE_INTERVAL = 3600.0  # how often a complete read may prune the state file (Store.prune)
HEIGHT_INTERVAL = 15.0  # how often the newest block is read (the pools cache the height 15 s)
SCAN_DEPTH = 5  # newest blocks searched for what raised the balance; deeper: the list read
UNEXPLAINED_GRACE = 6.0  # seconds the balance may run ahead of the blocks (pool caches: 3 s and 1 s)
FALL_QUIET = 600.0  # seconds after the balance fell (a rollback) in which nothing is owed
SWEEP_SPREAD = 0.2  # +-20 % on each sweep's time, so that a class's devices spread their list reads
START_SPREAD = 10.0  # seconds over which a class switched on at once spreads its one-off reads
REPORT_BURST, REPORT_RATE = 20, 10.0  # ignored transfers told one by one: 20 at once, 10 a minute
CLOCK_SKEW_LIMIT = 60.0  # seconds; beyond it the outbox signs with the node's time, `check` says so
STATE_RETRY = 5.0
WATCHDOG_GRACE = 60.0  # seconds a round of work may take on top of one node request tried on every URL


# --- 8a. What every service loop uses: retries, waits, liveness ----------------

_unexpected_seen = LogOnce()


def _unexpected(log: logging.Logger, where: str, e: Exception) -> None:
    """Log an unforeseen error with its traceback, once per kind and place; the loop goes on."""
    if _unexpected_seen.first((where, type(e).__name__, str(e)[:100])):
        log.error("unexpected error in %s (the loop goes on): %s", where, e, exc_info=e)


def _state_trouble(log: logging.Logger) -> None:
    """A state-file write failed (a full disk): the Store logged it once; the caller retries later."""
    log.debug("state file busy or full: will retry in %g s", STATE_RETRY)


def _retry_delay(log: logging.Logger, where: str, e: Exception, backoff: Backoff, node: Any) -> float:
    """After an error in one round of a service loop: log it as its kind deserves, say how long to
    wait. The loop goes on (CancelledError is no Exception and passes)."""
    if isinstance(e, NodeError):
        log.debug("%s: %s", where, e)
        return max(backoff.failure(getattr(e, "retry_after", None)), node.retry_in())
    if isinstance(e, StateError):
        _state_trouble(log)
        return STATE_RETRY
    _unexpected(log, where, e)  # a bug or an answer we did not foresee
    return backoff.failure()


def release_free_memory() -> None:
    """Hand back to the OS what start-up and bursts of work freed (glibc keeps it): 2-3 MB on a Pi."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)


def boot_id() -> str:
    """This boot's id (Linux): monotonic clock readings compare only within one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or "-"
    except OSError:
        return "-"


async def wait_any(timeout: float, *events: asyncio.Event) -> None:
    """Wait `timeout` seconds, or until one of `events` is set."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


class Pulse:
    """Liveness by deadline, not by heartbeat age: a quiet service is not a dead one. Every wait of a
    service goes through its Pulse, which records until when it is quiet; its round must then reach
    the next wait within the daemon's budget (node.timeout x the node URLs + WATCHDOG_GRACE), or
    Daemon.watchdog withholds WATCHDOG=1 from systemd."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.quiet_until = clock.monotonic()  # the current wait's end; in the past: busy since then

    def late_by(self, mono: float, budget: float) -> float:
        """Seconds past the service's deadline (quiet_until + budget); 0 or less while it lives."""
        return mono - self.quiet_until - budget

    async def wait(self, stop: asyncio.Event, timeout: float, wake: Optional[asyncio.Event] = None) -> None:
        """Wait between rounds: `timeout` seconds, or until `stop` (or `wake`) is set."""
        self.quiet_until = self.clock.monotonic() + max(0.0, timeout)
        try:
            await wait_any(timeout, stop, *([wake] if wake is not None else []))
        finally:
            self.quiet_until = self.clock.monotonic()

    async def sleep(self, seconds: float) -> None:
        """A planned pause within a round (a rate limit): the round's budget starts again after it."""
        self.quiet_until = self.clock.monotonic() + max(0.0, seconds)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.quiet_until = self.clock.monotonic()


# --- 8b. Ledger: what the transfers found do, applied once ---------------------


class Ledger:
    """Applies judge_transfer's verdicts: credits the payments (exactly once: Store.credit_payments
    is keyed by transaction id) and reports the transfers that light nothing, once each, within a
    budget: REPORT_BURST at once, then REPORT_RATE a minute, get a log line (WARNING for
    not_verified), an `ignored` event and a row in the state file (which keeps the newest
    IGNORED_KEEP); the rest are counted and summed up in one line a minute. So a flood of made-up
    or spam transfers of any size costs a bounded journal, disk and monitor traffic."""

    def __init__(
        self,
        config: Config,
        address: str,
        *,
        store: Store,
        clock: Clock,
        tell: Callable[..., None],
        light_span: Callable[[], Tuple[float, float]],
        sign_refund: Optional[Callable[[str, str, int], Dict[str, Any]]] = None,
    ):
        self.config, self.address, self.store, self.clock, self.tell = config, address, store, clock, tell
        self.light_span = light_span
        self.sign_refund = sign_refund if config.refund == "excess" else None
        self.log = logging.getLogger("iotlight.watcher")
        self.mine = {address, *store.aliases()}
        cached = store.token_fact(config.asset_id, "decimals")
        self.decimals: Optional[int] = int(cached) if cached is not None else None
        self.pending: Dict[str, int] = {}  # payment id -> height, waiting for confirmations
        self.budget = RateLimiter(REPORT_RATE, 60.0, REPORT_BURST, clock.monotonic())
        self.reported: set = set()  # keys told (or counted) this run; the store keeps the told ones
        self.unreported: "collections.Counter[str]" = collections.Counter()
        self.summary_due = self.next_prune = 0.0
        self.told = LogOnce()

    def add_aliases(self, aliases: Iterable[str]) -> None:
        """Aliases are permanent on Waves: an answer without one never makes the device forget it."""
        new = set(aliases) - self.mine
        if new:
            self.log.info("device aliases: %s", ", ".join(sorted(new)))
            self.mine |= new
            try:
                self.store.set_meta(aliases=" ".join(sorted(self.mine - {self.address})))
            except StateError:
                _state_trouble(self.log)

    def rules(self) -> Rules:
        c, meta = self.config, self.store.get_meta
        return Rules(
            asset_id=c.asset_id,
            chain_id=c.chain_id,
            mine=frozenset(self.mine),
            decimals=self.decimals or 0,
            seconds_per_token=c.seconds_per_token,
            min_tokens=c.min_tokens,
            confirmations=c.confirmations,
            count_history=c.count_history,
            first_start_ms=int(meta("first_start_ms") or 0),
            horizon=int(meta("horizon") or 0),
            pruned=self.store.pruned_height(),
        )

    def process(
        self, txs: List[Dict], height: int, served: Optional[Dict] = None, *, merge_pending: bool = False
    ) -> Tuple:
        """Credit the final payments among `txs` (newest first, as listed) and report what lights
        nothing. Returns the handled transactions (id, height), which the caller marks seen once its
        read proved complete, and the payments in the token found (id, amount), oldest first.
        `served`: payments whose receipts are on chain already (recorded, not lit again)."""
        rules = self.rules()
        payments, handled, paid, pending, reports = [], [], [], {}, []
        for tx in reversed(txs):
            v, txid, h = judge_transfer(tx, rules, height), tx["id"], tx.get("height")
            handled += [(txid, h)] if v.handled else []
            paid += [(txid, v.amount)] if v.paid else []
            if v.action == "ignore":
                reports.append((txid, tx, v))
            elif v.action == "credit":
                sender = tx.get("sender") if isinstance(tx.get("sender"), str) else ""
                payments.append((txid, sender, v.amount, h, v.seconds))
            elif v.action == "wait":
                pending[txid] = h if h is not None else height
            elif v.action == "history":
                history = "payment %s of %d made before the first start: not counted (payment.count_history = false)"
                self.log.info(history, txid, v.amount)
            elif v.action == "pruned" and self.told.first(("pruned", txid)):
                pruned = "payment %s at height %s lies at or below the pruned height %d: not credited again"
                self.log.warning(pruned, txid, h, rules.pruned)
        self.report(reports)
        if payments:
            now, cap, light = self.clock.time(), self.config.max_seconds, self.light_span()
            refund = self.sign_refund
            credits, span = self.store.credit_payments(
                payments, now=now, max_seconds=cap, light=light, served=served, sign_refund=refund
            )
            if credits or served:
                self.tell("credited", credits=credits, span=span)
        for txid in set(pending) - set(self.pending):
            waits = "payment %s seen at height %d; waiting for %d confirmation(s)"
            self.log.info(waits, txid, pending[txid], self.config.confirmations)
        self.pending = dict(self.pending, **pending) if merge_pending else pending
        return handled, paid

    def report(self, items: Sequence[Tuple[Optional[str], Any, Verdict]], key: Optional[str] = None) -> None:
        """Tell once that transfers to the device light nothing, within the budget. `items`:
        (id, the node's JSON, verdict); `key` names a malformed item without an id."""
        fresh = [(key or txid or "?", txid, raw, v) for txid, raw, v in items]
        fresh = [item for item in fresh if item[0] not in self.reported]
        told = self.store.ignored_ids([item[0] for item in fresh]) if fresh else set()  # before a restart
        rows = []
        for k, txid, raw, verdict in fresh:
            if len(self.reported) >= 10_000:
                self.reported.clear()
            self.reported.add(k)
            if k in told:
                continue
            if not self.budget.take(self.clock.monotonic()):
                self.unreported[verdict.reason] += 1
                continue
            rows.append((k, verdict.reason))
            self._tell_ignored(txid, raw, verdict)
        try:
            self.store.mark_ignored(rows)
        except StateError:
            _state_trouble(self.log)
        self.summarise()

    def _tell_ignored(self, txid: Optional[str], raw: Any, verdict: Verdict) -> None:
        def field(name: str, ok: Callable[[Any], bool]) -> Any:
            value = raw.get(name) if isinstance(raw, dict) else None
            return value if ok(value) else None

        def short(v: Any) -> bool:
            return isinstance(v, str) and len(v) <= 64

        sender, asset = field("sender", short), field("assetId", short)
        amount = verdict.amount or field("amount", lambda v: _int_within(v, 0, INT64_MAX))
        level = logging.WARNING if verdict.reason == "not_verified" else logging.INFO
        detail = ": " + verdict.detail if verdict.detail else ""
        what = (
            txid or "(no id)",
            sender or "?",
            "?" if amount is None else amount,
            asset or "the chain's coin",
        )
        line = "transfer %s from %s (%s units of %s) lights nothing: %s%s"
        self.log.log(level, line, *what, verdict.reason, detail)
        self.tell("ignored", id=txid, sender=sender, amount=amount, asset_id=asset, reason=verdict.reason)

    def report_malformed(self, raw: Any, why: str) -> None:
        """A listed item without the documented shape: skipped, reported once as `malformed`."""
        txid = raw.get("id") if isinstance(raw, dict) else None
        txid = txid if isinstance(txid, str) and len(txid) <= 64 else None
        digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:40]
        verdict = Verdict("ignore", reason="malformed", detail=why)
        self.report([(txid, raw, verdict)], key=txid or "malformed:" + digest)

    def summarise(self) -> None:
        """One line a minute for the ignored transfers past the budget."""
        mono = self.clock.monotonic()
        if not self.unreported or mono < self.summary_due:
            return
        self.summary_due = mono + 60.0
        counts = ", ".join("%d %s" % (n, r) for r, n in self.unreported.most_common())
        level = logging.WARNING if "not_verified" in self.unreported else logging.INFO
        line = "%d more transfers to the device light nothing (%s): too many to report one by one"
        self.log.log(level, line, sum(self.unreported.values()), counts)
        self.unreported.clear()

    def prune(self, height: int) -> None:
        """After a complete read at `height`, at most every PRUNE_INTERVAL: forget what lies
        PRUNE_KEEP_BLOCKS below the final height (no rollback goes 100 blocks deep)."""
        mono = self.clock.monotonic()
        floor = height - self.config.confirmations - PRUNE_KEEP_BLOCKS
        if mono < self.next_prune or floor <= 0:
            return
        self.next_prune = mono + PRUNE_INTERVAL
        deleted = self.store.prune(floor, now_ms=self.clock.ms())
        if any(n >= PRUNE_BATCH for n in deleted.values()):
            self.next_prune = mono  # a backlog (a state file from before pruning): more on the next read
        if deleted:
            what = ", ".join("%d %s" % (n, t) for t, n in sorted(deleted.items()) if n)
            self.log.debug("state file pruned at height %d: %s", floor, what)


# --- 8c. Chain reader: the transaction list, its stop, the rollback witness ----


class ChainReader:
    """Reads the address's transaction list, page by page with `after`, down to a transaction handled
    in a block deep enough to be final and unchanged since the last read (the witness: the block id at
    the previous read's floor). A `deep` read (after a start or a rollback) looks DEEP_MARGIN blocks
    back; an `exhaustive` one (the balance proved a payment the list did not show) goes down to the
    pruned height or the history floor. Also: compact mass transfers, new aliases, receipts on chain."""

    def __init__(
        self, config: Config, address: str, *, node: Any, store: Store, clock: Clock, ledger: Any, pulse: Any
    ):
        self.config, self.address, self.node, self.store, self.clock = config, address, node, store, clock
        self.ledger, self.pulse = ledger, pulse
        self.log = logging.getLogger("iotlight.watcher")
        self.deep = True  # the next complete read looks DEEP_MARGIN blocks back (start, rollback)
        self.witness: Optional[Tuple[int, str]] = None  # (height, block id) at the last complete read's floor
        burst = max(1.0, min(15.0, config.list_rate))
        self.limiter = RateLimiter(config.list_rate, 60.0, burst, clock.monotonic())
        self.full_txs: Dict[str, Dict[str, Any]] = {}  # checked full forms of compact mass transfers
        self.aliases_asked: Dict[str, Optional[str]] = {}  # alias -> its address, as the node said

    async def list_token(self) -> None:
        """Wait until the rate limit of the public pools' most limited routes allows a request."""
        wait = self.limiter.delay(self.clock.monotonic())
        if wait > 0:
            self.log.debug("next limited request in %.1fs (node.list_rate)", wait)
            await self.pulse.sleep(wait)
        self.limiter.take(self.clock.monotonic())

    def _stop_rule(self, height: int) -> Callable[[Dict[str, Any], Dict[str, Any]], bool]:
        """Whether a listed transaction is where a read may stop: handled, unmoved and deeper than a
        reorg reaches, in blocks the witness checked unchanged (a rollback can put a handled one back
        above newer ones: a moved one, or one in the last blocks, is no stop); or below the history
        or the pruned height, where everything was handled long ago."""
        floor = height - self.config.confirmations - (DEEP_MARGIN if self.deep else REORG_MARGIN)
        if self.witness is not None and not self.deep:
            floor = min(floor, self.witness[0])
        horizon, pruned = int(self.store.get_meta("horizon") or 0), self.store.pruned_height()
        history = None if self.config.count_history else horizon - DEEP_MARGIN

        def stop(tx: Dict[str, Any], seen: Dict[str, Any]) -> bool:
            h = tx.get("height")
            if h is None:
                return False
            handled = seen.get(tx["id"], -1) == h and h <= floor
            return handled or (history is not None and h < history) or 0 < h <= pruned

        return stop

    async def read(self, height: int, found: List[Dict[str, Any]], *, exhaustive: bool = False) -> bool:
        """Page through the address's transactions (into `found`, newest first) down to the stop;
        True when the read got there (complete)."""
        stop, seen_ids = self._stop_rule(height), set()
        after, limit, restarts = None, LIST_FIRST_PAGE, 0
        while True:
            await self.list_token()
            try:
                page = await self.node.address_transactions(self.address, limit, after)
            except NodeRejected as e:
                if not (after and e.code == 199 and restarts < 3):
                    raise
                # the 0bs fork refuses an `after` id that vanished (rolled back): start again at the top
                gone = "node no longer knows transaction %s (rolled back?); reading from the top"
                self.log.info(gone, after)
                after, limit, restarts = None, LIST_FIRST_PAGE, restarts + 1
                continue
            good = self._well_formed(page)
            seen = {} if exhaustive else self.store.seen_heights([t["id"] for t in good])
            for tx in good:
                if tx["id"] in seen_ids:
                    return False  # Waves answers a vanished `after` with the newest page again
                seen_ids.add(tx["id"])
                if stop(tx, seen):
                    return True
                found.append(tx)
            after = page[-1].get("id") if page and isinstance(page[-1], dict) else None
            if len(page) < limit:
                return True
            if len(found) >= LIST_READ_MAX or not isinstance(after, str):
                return False  # a backlog (or a liar's endless pages): the rest next time
            limit = LIST_PAGE

    def _well_formed(self, page: List[Any]) -> List[Dict[str, Any]]:
        good = []
        for raw in page:
            try:
                good.append(check_tx_shape(raw))
            except ValueError as e:
                self.ledger.report_malformed(raw, str(e))
        return good

    async def complete(self, txs: List[Dict[str, Any]]) -> None:
        """Make the listed `txs` checkable: an unknown alias they pay is looked up (the list holds only
        what involves the address: it may be a new alias of ours); a compact mass transfer (only the
        device's items) is read in full from /transactions/info, the listing's height and status kept."""
        await self._resolve_aliases(txs)
        mine, asset = self.ledger.mine, self.config.asset_id
        wanted = []
        for i, tx in enumerate(txs):
            count, mass = tx.get("transferCount"), tx.get("type") == TX_MASS_TRANSFER
            if mass and tx.get("sender") != self.address and _is_int(count) and count != len(tx["transfers"]):
                with contextlib.suppress(ValueError):
                    wanted += [i] if classify_transfer(tx, asset_id=asset, mine=mine)[0] > 0 else []
        credited = self.store.credited_ids([txs[i]["id"] for i in wanted]) if wanted else set()
        for i in wanted:
            tx = txs[i]
            full = tx if tx["id"] in credited else self.full_txs.get(tx["id"]) or await self._full(tx["id"])
            if full is not tx and full is not None:  # the listing's height and status are the ones that count
                status = {k: tx[k] for k in ("applicationStatus",) if k in tx}
                txs[i] = dict(full, height=tx.get("height"), **status)

    async def _full(self, txid: str) -> Optional[Dict[str, Any]]:
        """The full form of a listed mass transfer; None when the node cannot show it (the compact
        form then fails the payment check). One that checks out is kept: an id has only this body."""
        full = await self.node.transaction(txid)
        try:
            if full is None or check_tx_shape(full)["id"] != txid:
                return None
        except ValueError:
            return None
        if check_transfer_proof(full, self.config.chain_id) is None:
            if len(self.full_txs) >= 256:
                self.full_txs.clear()
            self.full_txs[txid] = full
        return full

    async def _resolve_aliases(self, txs: List[Dict[str, Any]]) -> None:
        prefix, names = "alias:%s:" % self.config.chain_id, set()
        for tx in txs:
            if tx.get("sender") != self.address and tx.get("type") in (TX_TRANSFER, TX_MASS_TRANSFER):
                items = [tx] + [i for i in tx.get("transfers") or [] if isinstance(i, dict)]
                names |= {i.get("recipient") for i in items if str(i.get("recipient")).startswith(prefix)}
        for alias in sorted(names - self.ledger.mine - set(self.aliases_asked))[:10]:
            self.aliases_asked[alias] = address = await self.node.alias_address(alias[len(prefix) :])
            if address == self.address:
                self.ledger.add_aliases([alias])
        if len(self.aliases_asked) > 1000:
            self.aliases_asked.clear()

    async def receipts(self, ids: Sequence[str]) -> Dict[str, Dict[str, Any]]:
        """The device's served_<id> receipts on chain for payments `ids` (missing from the state
        file): id -> the receipt's span. A few are read one key per request (a route the pools do not
        hold to 17 a minute); more by pattern on the address's data route."""
        found: Dict[str, Any] = {}
        if len(ids) > 50:
            await self.list_token()
            found = await self.node.data_entries(self.address, matches="served_.*")
        for txid in ids if len(ids) <= 50 else ():
            found["served_" + txid] = await self.node.data_entry(self.address, "served_" + txid)
        served = {}
        for txid in ids:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                served[txid] = receipt_span(found["served_" + txid])
        if served:
            self.log.warning(
                "%d payment(s) missing from the state file were served already (receipts on chain): "
                "recorded without lighting again",
                len(served),
            )
        return served

    async def chain_below_unchanged(self, height: int) -> bool:
        """After a read got down to its stop: were the blocks up to the witness left alone meanwhile?
        A block's id covers every block below it. If a rollback went that deep, the read may have
        stopped at a transaction that came back at its old height above newer ones: it does not
        count, and the next one reads deep. Then the witness moves up to this read's floor."""
        if self.witness is not None and not self.deep:
            at, ident = self.witness
            if await self.node.block_id(at) != ident:
                return self._went_back("block %d changed since the last read" % at)
        at = height - self.config.confirmations - REORG_MARGIN
        ident = await self.node.block_id(at) if at >= 1 else None
        if ident is None and at >= 1:
            return self._went_back("block %d is gone" % at)  # went back below it during the read
        self.witness = (at, ident) if ident is not None else None
        return True

    def _went_back(self, what: str) -> bool:
        """The chain below the stop changed: this read does not count, and the next one reads deep."""
        self.log.info("%s (a rollback): reading again, deeper", what)
        self.witness, self.deep = None, True
        return False


# --- 8d. Watcher: polls the node, reads what the balance and the blocks point at ---


class BalanceBook:
    """What the token balance says about the payments found: the balance they explain (`accounted`,
    plus `ahead`: credited, the balance not showing them yet) and the units a complete read could
    not explain (`owed`): the proof of a payment a node hid, which the reads then look for past every
    stop. All three are kept in the state file, so a payment hidden across a restart is owed too.
    For FALL_QUIET seconds after the balance fell nothing is owed: a rollback's payment may come back."""

    def __init__(self, store: Store, log: logging.Logger):
        self.store, self.log, meta = store, log, store.get_meta
        explained = meta("explained")
        self.accounted: Optional[int] = int(explained) if explained else None  # what payments found explain
        self.absorbed: set = set()  # payments whose amount is inside `accounted`
        self.ahead: Dict[str, int] = {}  # credited while the balance did not show them yet: id -> amount
        self.owed, self.owed_height = int(meta("owed") or 0), int(meta("owed_height") or 0)
        self.quiet_height: Optional[int] = None  # height when the balance was last fully explained
        self.unexplained_since: Optional[float] = None
        self.fell_at, self.saved = -math.inf, (explained, self.owed, self.owed_height)

    def fell(self, balance: int, mono: float) -> bool:
        """A fall of the balance (a rollback took a payment back, a refund went out): True when it fell."""
        if self.accounted is None or balance >= self.accounted:
            return False
        fell = "the token balance fell from %d to %d: reading the transaction list"
        self.log.info(fell, self.accounted, balance)
        self.owed -= min(self.owed, self.accounted - balance)
        self.accounted, self.fell_at = None, mono
        return True

    def absorb(self, paid: List[Tuple[str, int]], before: set, heights: Dict, balance: Optional[int]) -> None:
        """Take payments found (oldest first) into `accounted` while `balance` shows them; one the
        balance showed long ago, at or below the height of an `owed` proof, pays that proof off."""
        if len(self.absorbed) > 10_000 or len(self.ahead) > 10_000:
            self.absorbed.clear()
            self.ahead.clear()
        for txid, amount in paid:
            if txid in self.absorbed or txid in before:
                continue
            if self.accounted is not None and self.accounted + amount <= (balance or 0):
                self.accounted += amount
            elif self.owed and (heights.get(txid) or 0) <= self.owed_height:
                self.log.info("payment %s of %d units was the one the balance showed: found", txid, amount)
                self.owed -= min(self.owed, amount)
            else:
                continue
            self.absorbed.add(txid)
            self.ahead.pop(txid, None)
        self.save()

    def save(self) -> None:
        """Keep what the book knows in the state file, when it changed (an idle daemon writes nothing)."""
        explained = None if self.accounted is None else str(self.accounted + sum(self.ahead.values()))
        if (explained, self.owed, self.owed_height) == self.saved:
            return
        try:
            self.store.set_meta(explained=explained or "", owed=self.owed, owed_height=self.owed_height)
            self.saved = (explained, self.owed, self.owed_height)
        except StateError:
            _state_trouble(self.log)

    def settle(self, balance: Optional[int], height: int, mono: float) -> bool:
        """A complete read with nothing asked meanwhile: the balance is accounted for, and what the
        payments found leave unexplained is owed. True while something is owed."""
        surplus = balance is not None and self.accounted is not None and self.accounted < balance
        if surplus and mono - self.fell_at > FALL_QUIET:
            self.owed, self.owed_height = self.owed + balance - self.accounted, height
            more = "the token balance shows %d units more than the payments the node lists: reading further back until that payment is found (%d units owed)"
            self.log.warning(more, balance - self.accounted, self.owed)
        if self.owed and self.store.pruned_height() >= self.owed_height:
            none = "no payment found for the %d units the balance showed: a token sent another way (a trade?)"
            self.log.warning(none, self.owed)
            self.owed = 0
        self.accounted, self.quiet_height, self.unexplained_since = balance, height, None
        self.save()
        return self.owed > 0


class Watcher:
    """Finds payments to the device and has the Ledger credit them exactly once. Each poll asks the
    token balance (the pools' most generous route) and, in the same round trip, the height, the
    newest block (every HEIGHT_INTERVAL: where another token's transfer shows) and the coins when
    due. A balance above what is accounted for is looked up in the newest blocks. The transaction
    list (ChainReader, in the background) stays the complete record: read at start, after a
    rollback, when the blocks leave a rise unexplained, while payments wait for confirmations and on
    the sweep. A 429 on the balance slows the polls (AIMD); one on another route defers that read."""

    def __init__(
        self,
        config: Config,
        address: str,
        *,
        node: NodeClient,
        store: Store,
        clock: Clock,
        tell: Callable[..., None],
        light_span: Callable[[], Tuple[float, float]],
        sign_refund: Optional[Callable[[str, str, int], Dict[str, Any]]] = None,
        rng: Optional[random.Random] = None,
    ):
        self.config, self.address, self.node, self.store, self.clock = config, address, node, store, clock
        self.tell, self.rng = tell, rng or random.Random()
        self.log = logging.getLogger("iotlight.watcher")
        self.pulse = Pulse(clock)
        edges = {"store": store, "clock": clock}
        self.ledger = Ledger(
            config, address, tell=tell, light_span=light_span, sign_refund=sign_refund, **edges
        )
        self.reader = ChainReader(config, address, node=node, ledger=self.ledger, pulse=self.pulse, **edges)
        self.height: Optional[int] = None
        self.route_height: Optional[int] = None  # the last answer of the height route
        self.news_height: Optional[int] = None  # the newest block's height when last read
        self.token_balance: Optional[int] = None
        self.coin_balance: Optional[int] = None
        self.book = BalanceBook(store, self.log)
        self.verify_receipts = True  # until the first complete read: look up receipts on chain too
        self.next_sweep = self.next_coin = self.next_news = self.list_not_before = 0.0
        self.dirty = True  # a list read is wanted
        self.asked = 0  # list reads asked for; one asked during a read makes another
        self.list_task: Optional["asyncio.Future[None]"] = None
        self.pace = Backoff(config.poll_interval, 60.0, self.rng, recover=10, spread=0.2)  # gaps of 80-100 %
        self.list_backoff = Backoff(10.0, 120.0, self.rng)  # list reads after a 429/503 on them
        self.owed_backoff = Backoff(30.0, config.sweep_interval, self.rng)  # reads that look for owed units
        self.told = LogOnce()

    # -- the poll loop
    async def run(self, stop: asyncio.Event) -> None:
        learning = asyncio.ensure_future(self._learn_loop(stop))
        try:
            while not stop.is_set():
                try:
                    await self.poll_once()
                    self.pace.success()
                    wait = self.pace.interval()
                except NodeThrottled as e:
                    wait = max(self.pace.failure(e.retry_after), self.node.retry_in())
                    if self.told.first("throttled"):
                        slower = "the node throttles the polls (%s): polling less often, back to every %gs when it allows"
                        self.log.warning(slower, e, self.config.poll_interval)
                except NodeRejected as e:
                    if self.told.first(("refused", str(e))):
                        refused = describe_refusal(e, rules=self.config.rules)
                        self.log.warning("the node refused a request: %s", refused)
                    wait = self.pace.failure()
                except Exception as e:
                    wait = _retry_delay(self.log, "poll", e, self.pace, self.node)
                await self.pulse.wait(stop, wait)
        finally:
            learning.cancel()
            self.cancel_list_read()

    async def poll_once(self) -> None:
        """One poll: the balance (and the height, the newest block, the coins when due) in one round
        trip; then what they point at (follow_up). Only the balance's failure fails the poll."""
        if self.store.failing:
            self.store.probe()  # credits wait until the state file has room again
        mono = self.clock.monotonic()
        if mono >= self.next_sweep:  # due from when it was due, not from when a deferred read got through
            spread = 1 + self.rng.uniform(-SWEEP_SPREAD, SWEEP_SPREAD)
            self.next_sweep = mono + self.config.sweep_interval * spread
            self._want_list()
            release_free_memory()  # what answers and bursts of work freed goes back to the OS, once a sweep
        list_due = self.dirty and self.list_task is None and mono >= self.list_not_before
        list_due = list_due and self.reader.limiter.delay(mono) <= 0
        asks = {"balance": self.node.asset_balance(self.address, self.config.asset_id)}
        if self.height is None or self.ledger.pending or list_due or mono >= self.next_news:
            asks["height"] = self.node.height()
        if mono >= self.next_news:
            asks["block"] = self.node.block()
        if mono >= self.next_coin:
            asks["coin"] = self.node.balance(self.address)
        answers = dict(zip(asks, await asyncio.gather(*asks.values(), return_exceptions=True)))
        for name, answer in answers.items():  # the others are asked again next time
            if isinstance(answer, BaseException) and (name == "balance" or not isinstance(answer, NodeError)):
                raise answer
        if _is_int(answers.get("height")):
            self._seen_height(answers["height"])
        if _is_int(answers.get("coin")):
            self.next_coin = mono + COIN_BALANCE_INTERVAL
            self._balances(self.token_balance, answers["coin"])
        self._balances(answers["balance"], self.coin_balance)
        try:
            await self.follow_up(mono, answers, fresh_height=_is_int(answers.get("height")))
        except NodeThrottled as e:  # a block or a receipt read: asked again next poll, the pace stays
            self.log.debug("poll: a read was throttled: %s", e)

    async def follow_up(self, mono: float, answers: Dict[str, Any], *, fresh_height: bool) -> None:
        """What a poll's answers point at: the newest blocks, a balance to explain, a list read."""
        if self.ledger.decimals is None:  # nothing is credited before the token's decimals are known
            with contextlib.suppress(NodeError):  # asked with the polls, not only on learn's back-off
                await self.learn()
            if self.ledger.decimals is None:
                return
        if self.verify_receipts:  # at start the catch-up comes first: payments are credited in their order
            await self._list_read(mono, fresh_height)
        top = answers.get("block")
        if isinstance(top, dict):
            self.next_news = mono + HEIGHT_INTERVAL
            floor = max(top["height"] - SCAN_DEPTH, self.news_height or top["height"])
            self.news_height = top["height"]
            await self.scan_blocks(top, floor)  # a transfer of another token is reported within a block
        await self.explain_balance(answers["balance"])
        await self._list_read(mono, fresh_height)
        self.ledger.summarise()

    def _balances(self, token: Optional[int], coin: Optional[int]) -> None:
        if (token, coin) != (self.token_balance, self.coin_balance):
            self.token_balance, self.coin_balance = token, coin
            self.tell("balance", token=token, coin=coin)

    def _seen_height(self, height: int, *, route: bool = True) -> None:
        """A height: first contact, a rollback, news for pending payments. Only the height route's answers
        are compared for a rollback: a pool caches /blocks/height 15 s and blocks 1 s."""
        if self.store.get_meta("horizon") is None:
            self.store.set_meta(horizon=height)  # the node's height at the very first start
        before = self.route_height
        went_back = route and before is not None and height < before
        self.route_height = height if route else before
        if went_back or self.height is None or height > self.height:
            if went_back:
                back = "the node's height went back from %d to %d (a rollback): reading deeper"
                self.log.info(back, before, height)
                self.reader.deep = True
                self._want_list()
            self.height = height
            self.tell("height", height=height)
            if self.ledger.pending:
                self._want_list()

    async def _learn_loop(self, stop: asyncio.Event) -> None:
        """The token's facts once and the aliases every sweep, beside the polls (a 429 here only defers
        them); at start after a random moment up to START_SPREAD (a class switched on at once)."""
        if self.ledger.decimals is not None:
            await wait_any(self.rng.uniform(0, START_SPREAD), stop)
        backoff = Backoff(5.0, 300.0, self.rng)
        while not stop.is_set():
            try:
                await self.learn()
                backoff.success()
                wait = self.config.sweep_interval
            except (NodeError, StateError) as e:
                self.log.debug("token or aliases not known yet: %s", e)
                wait = backoff.failure(getattr(e, "retry_after", None))
            await wait_any(wait, stop)

    async def learn(self) -> None:
        """What the node tells once about the token (decimals, name, scripted: kept in the state
        file), and the device's aliases."""
        asset = self.config.asset_id
        if self.ledger.decimals is None or self.store.token_fact(asset, "scripted") is None:
            details = await self.node.asset_details(asset)
            if details is None:
                if self.told.first("no token"):
                    unknown = (
                        "the node knows no token %s: check payment.asset_id, node.urls and node.chain_id"
                    )
                    self.log.warning(unknown, asset)
                raise NodeError("no token %s on the node" % asset)
            if self.ledger.decimals is None:
                self.store.set_token_fact(asset, "decimals", details.decimals)
                self.ledger.decimals = details.decimals
                self.log.info("token %s has %d decimals", asset, details.decimals)
            self.tell("token", details=details)
        self.ledger.add_aliases(await self.node.aliases(self.address))

    # -- the balance, explained by the newest blocks
    async def explain_balance(self, balance: int) -> None:
        """A rise is looked up in the newest blocks; what they leave unexplained for UNEXPLAINED_GRACE,
        or a fall, is left to the list read."""
        book = self.book
        if book.fell(balance, self.clock.monotonic()):
            self._want_list()
        if book.accounted is None or balance == book.accounted:
            book.accounted, book.quiet_height, book.unexplained_since = balance, self.height, None
            return book.save()
        top = await self.node.block()
        height = top["height"]
        await self.scan_blocks(top, max(1, height - SCAN_DEPTH, (book.quiet_height or height) - 1), balance)
        mono = self.clock.monotonic()
        if book.accounted >= balance:
            book.quiet_height, book.unexplained_since = self.height, None
        elif book.unexplained_since is None:
            book.unexplained_since = mono
        elif mono - book.unexplained_since >= UNEXPLAINED_GRACE and not self.dirty:
            line = "the newest blocks do not explain the token balance %d (%d accounted for): reading the transaction list"
            self.log.info(line, balance, book.accounted)
            self._want_list()

    async def scan_blocks(self, top: Dict[str, Any], floor: int, balance: Optional[int] = None) -> None:
        """The newest block `top` and those below it down to `floor`: the final payments in them are
        credited, what lights nothing reported; with `balance`, it stops once that is explained."""
        at, block = top["height"], top
        self._seen_height(at, route=False)
        while True:
            if block is not None:
                await self._account(block["transactions"], at, top["height"])
            explained = (
                balance is not None and self.book.accounted is not None and self.book.accounted >= balance
            )
            if at <= floor or explained:
                return
            at -= 1
            block = await self.node.block(at)  # None: gone meanwhile (a rollback); the next poll sees it

    async def _account(self, raws: List[Any], at: int, height: int) -> None:
        """Credit the final payments to the device in one block and account for them. Before the first
        complete list read, a payment the state file lacks waits for its receipt's look-up (lost writes)."""
        ours = []
        for raw in raws:
            try:
                tx = dict(check_tx_shape(raw), height=at)
                if classify_transfer(tx, asset_id=self.config.asset_id, mine=self.ledger.mine)[0] > 0:
                    ours.append(tx)
            except ValueError as e:
                if self.told.first(("shape", str(e))):
                    self.log.warning("skipping a malformed transaction from the node: %s", e)
        if not ours:
            return
        ids = [tx["id"] for tx in ours]
        known = self.store.credited_ids(ids)
        before = known.difference(self.book.ahead)
        missing = [i for i in self._payments(ours) if i not in known]
        served = await self.reader.receipts(missing) if self.verify_receipts else {}
        _, paid = self.ledger.process(ours[::-1], height, served or None, merge_pending=True)
        self._ahead(paid, before, ids)
        self.book.absorb(paid, before, {tx["id"]: at for tx in ours}, self.token_balance)

    def _ahead(self, paid: List[Tuple[str, int]], before: set, ids: List[str]) -> None:
        """Credited now (or still waiting for the balance): accounted for once the balance shows it."""
        credited = self.store.credited_ids(ids) - before
        self.book.ahead.update((txid, amount) for txid, amount in paid if txid in credited)

    def _payments(self, txs: List[Dict[str, Any]]) -> List[str]:
        asset, mine = self.config.asset_id, self.ledger.mine
        return [tx["id"] for tx in txs if payment_amount(tx, asset_id=asset, mine=mine)]

    # -- the transaction list, read beside the polls
    def _want_list(self) -> None:
        """Something only a list read can settle: ask for one (also while one is under way)."""
        self.dirty = True
        self.asked += 1

    async def _list_read(self, mono: float, fresh_height: bool) -> None:
        """Start the list read when one is asked for and wait for it at most a poll interval (1 s at
        least): a read the pool holds in its queue goes on while the next polls find payments in blocks."""
        self.take_list_result()
        if self.list_task is None and self.dirty:
            task = self.list_task = asyncio.ensure_future(self._list_read_due(mono, fresh_height))
            await asyncio.wait({task}, timeout=max(1.0, self.config.poll_interval))
            self.take_list_result()

    def take_list_result(self) -> None:
        """A list read that has ended is let go, and what it raised is raised here."""
        task = self.list_task
        if task is not None and task.done():
            self.list_task = None
            task.result()

    def cancel_list_read(self) -> None:
        if self.list_task is not None and not self.list_task.done():
            self.list_task.cancel()
        self.list_task = None

    async def _list_read_due(self, mono: float, fresh_height: bool) -> None:
        """The list read, when its rate limit and its back-off allow; a 429/503 on it defers it (with a
        growing, jittered wait) without slowing the polls down."""
        if mono < self.list_not_before or self.reader.limiter.delay(mono) > 0:
            return
        try:
            if not fresh_height:
                self._seen_height(await self.node.height())
        except NodeError as e:  # the height first: its failure is no news about the list
            self.log.debug("transaction list read waits for the height: %s", e)
            self.list_not_before = self.clock.monotonic() + self.config.poll_interval
            return
        try:
            await self.read_list(self.height or 0)
        except NodeRejected:
            raise
        except NodeThrottled as e:  # a 429/503 from the pool: its per-IP budget for the list is spent
            self.list_not_before = self.clock.monotonic() + self.list_backoff.failure(e.retry_after)
            if self.told.first("list-throttled"):
                less = "the node throttles the transaction list (%s): reading it less often; payments are still found in the newest blocks"
                self.log.warning(less, e)
            return
        except NodeError as e:  # a bad answer or a timeout: read less often, as after a 429
            wait = max(self.list_backoff.failure(), self.node.retry_in(), self.config.poll_interval)
            self.list_not_before = self.clock.monotonic() + wait
            self.log.debug("transaction list read failed: %s", e)
            return
        self.list_backoff.success()

    async def read_list(self, height: int) -> None:
        """One list read. Payments found are credited even when it is cut short; what it found is marked
        handled, and the balance accounted for, only when it got all the way down."""
        found: List[Dict[str, Any]] = []
        deep, asked, complete = self.reader.deep, self.asked, False
        self.dirty = True
        try:
            complete = await self.reader.read(height, found, exhaustive=self.book.owed > 0)
            await self.reader.complete(found)
        finally:
            ids = [tx["id"] for tx in found]
            before = self.store.credited_ids(ids).difference(self.book.ahead)
            # a pool caches the height longer than the list: the list may be ahead of it
            top = max([height] + [tx["height"] for tx in found if _is_int(tx.get("height"))])
            if not self.verify_receipts:
                handled, paid = self.ledger.process(found, top)  # the light goes on before the checks below
        if self.verify_receipts:
            # the first read after a start: a state file that lost its newest writes (a damaged WAL)
            # must not credit again what the chain shows served. It lost writes if the chain holds
            # Data transactions of ours that the outbox does not know.
            own = [tx["id"] for tx in found if tx.get("type") == TX_DATA and tx.get("sender") == self.address]
            served = {}
            if set(own) - self.store.outbox_ids(own):
                ids = self._payments(found)
                served = await self.reader.receipts(sorted(set(ids) - self.store.credited_ids(ids)))
            handled, paid = self.ledger.process(found, top, served)
        self._ahead(paid, before, ids)
        if complete and await self.reader.chain_below_unchanged(height):
            self.store.mark_seen(handled)
            self.verify_receipts = self.reader.deep = False
            self.dirty = self.asked != asked  # asked again while it read: read again
            self.ledger.prune(height)
            self.book.absorb(paid, before, {tx["id"]: tx.get("height") for tx in found}, self.token_balance)
            if not self.dirty and self.book.settle(self.token_balance, height, self.clock.monotonic()):
                self._want_list()  # the reads go on looking, further apart each time
                self.list_not_before = self.clock.monotonic() + self.owed_backoff.failure()
            elif not self.book.owed:
                self.owed_backoff.success()
        if len(found) > LIST_PAGE or deep:
            release_free_memory()  # a catch-up or deep read held many transactions


# --- 8e. Lamp: the light on the matrix (and a GPIO pin) ----------------------
_Tell = Callable[..., None]  # a service's line to the Daemon: tell(kind, **fields)
_Tx = Dict[str, Any]  # a signed transaction (or a stored row of one) as JSON


class Lamp:
    """Drives the LED matrix (and GPIO pin) from the light timer; the Daemon hands it each new end time."""

    def __init__(
        self,
        config: Config,
        hardware: Any,
        clock: Clock,
        *,
        store: Store,
        tell: _Tell,
        status: Callable[[], str],
        gpio: Optional["GpioSwitch"] = None,
    ):
        self.config, self.clock, self.store, self.hw, self.gpio = config, clock, store, hardware, gpio
        self.tell, self.status, self.timer, self.pulse = tell, status, LightTimer(), Pulse(clock)
        self.wake, self.log = asyncio.Event(), logging.getLogger("iotlight.lamp")
        self.pixels: List[Tuple[int, int, int]] = [(0, 0, 0)] * 64
        self.offset = clock.time() - clock.monotonic()

    def load(self, start: float, until: float) -> None:
        """Resume a stored span: its monotonic deadline in the same boot, else the wall clock (capped)."""
        wall, mono = self.clock.time(), self.clock.monotonic()
        remaining = min(until - wall, until - start)
        mark = (self.store.get_meta("light_mono") or "").split()
        if len(mark) == 3 and mark[2] == boot_id() and float(mark[0]) == until:
            remaining = float(mark[1]) - mono
        if remaining > 0:
            self.timer.deadline = mono + remaining
            self.timer.span_start = self.timer.deadline - max(until - start, remaining)
            self.log.info("resuming the light for %.1f s, until the paid end time", remaining)

    def _mark(self, until: float) -> None:
        try:
            self.store.set_meta(light_mono="%r %r %s" % (until, self.timer.deadline, boot_id()))
        except StateError:
            _state_trouble(self.log)

    def span(self) -> Tuple[float, float]:
        """(start, until) of the current span in Unix seconds, from the monotonic timer."""
        wall, mono = self.clock.time(), self.clock.monotonic()
        if not self.timer.is_on(mono):
            return wall, wall
        return wall - (mono - self.timer.span_start), wall + self.timer.remaining(mono)

    def follow(self, until: float) -> None:
        """The light's new end time (Unix seconds), as the credit that moved it returned it."""
        if until <= self.clock.time():
            return
        self.timer.set_until(until, mono=self.clock.monotonic(), wall=self.clock.time())
        self._mark(until)
        self.tell("light", **self.state())
        self.wake.set()

    def state(self) -> Dict[str, Any]:
        rem = self.timer.remaining(self.clock.monotonic())
        until = round(self.clock.time() + rem, 3) if rem > 0 else None
        return {"on": rem > 0, "remaining": round(rem, 3), "until": until}

    def switch_gpio(self, on: bool) -> None:
        """The GPIO output follows the light (before the matrix is drawn: the relay is the real lamp)."""
        if self.gpio is None:
            return
        pin, word = self.gpio.pin, ("on" if on else "off")
        try:
            level = self.gpio.switch(on)
        except Exception as e:  # a pin fault must not stop the matrix or the ledger
            self.log.warning("gpio pin %d: switching %s failed: %s", pin, word, _one_line(e))
            return
        self.log.info("gpio pin %d %s (level %s)", pin, word, "high" if level else "low")
        self.tell("gpio", pin=pin, on=on, level=int(level))

    def _next_change(self, mono: float) -> float:
        rem = self.timer.remaining(mono)
        if rem <= 0:
            return 1.0
        total = self.timer.deadline - self.timer.span_start
        if not self.config.countdown or total <= 0:
            return rem
        k = math.ceil(8 * rem / total - 1e-9)
        return max(0.01, min(rem, rem - (k - 1) / 8 * total))

    def _clock_jumped(self, wall: float, mono: float) -> None:
        """The wall clock jumped (a Pi without RTC setting its time): the stored end time moves with it."""
        jump = (wall - mono) - self.offset
        self.log.warning("the wall clock jumped by %+.1f s; the light keeps its paid duration", jump)
        self.offset = wall - mono
        until = self.span()[1] if self.timer.is_on(mono) else 0.0
        try:
            self.store.set_meta(light_until=repr(until))
        except StateError:
            _state_trouble(self.log)
        self._mark(until)
        if until:
            self.tell("light", **self.state())

    async def run(self, stop: asyncio.Event) -> None:
        was_on, look = None, dict(color=self.config.color, countdown=self.config.countdown)
        while not stop.is_set():
            self.wake.clear()
            mono, wall = self.clock.monotonic(), self.clock.time()
            if abs((wall - mono) - self.offset) > 1.0:
                self._clock_jumped(wall, mono)
            on = self.timer.is_on(mono)
            if on != was_on:
                self.switch_gpio(on)
            status = "ok" if on else self.status()
            pixels = render_matrix(on=on, fraction=self.timer.fraction(mono), status=status, **look)
            if await self.hw.show(pixels):
                self.pixels = pixels
                self.tell("matrix", pixels=[list(p) for p in pixels])
            if was_on is not None and on != was_on:
                self.log.info("light %s", "on" if on else "off")
                self.tell("light", **self.state())
            was_on = on
            await self.pulse.wait(stop, self._next_change(self.clock.monotonic()), self.wake)


# --- 8f. Outbox: signed transactions, stored before they are sent ------------
class Outbox:
    """Turns stored events into signed Data transactions and gets them (and refunds) onto the chain. Each
    is stored before its first broadcast, re-posted unchanged until the node knows it, re-signed (new
    timestamp) only when too old ever to be accepted or when its timestamp is refused; others: REFUSALS."""

    def __init__(
        self, config: Config, keys: KeyPair, *, node: NodeClient, store: Store, clock: Clock, tell: _Tell
    ):
        self.config, self.keys, self.address = config, keys, keys.address(config.chain_id)
        self.node, self.store, self.clock, self.tell = node, store, clock, tell
        self.log, self.told = logging.getLogger("iotlight.outbox"), LogOnce()
        self.wake, self.pulse, now = asyncio.Event(), Pulse(clock), clock.monotonic()
        burst = max(1, min(5, config.max_tx_per_minute))
        self.tx_limiter = RateLimiter(config.max_tx_per_minute, 60.0, burst, now)
        self.broadcast_limiter = RateLimiter(2, 1.0, 2, now)
        self.last_build, self.node_offset_ms, self.reconciled, self.count_ok = -1e9, 0, False, 0
        self.no_funds, self.next_funds_check, self.next_status_check = False, 0.0, 0.0
        self.retry_at: Dict[str, float] = {}
        self.retries: Dict[str, Backoff] = {}
        self.next_count_check = now + COUNT_CHECK_INTERVAL  # count_ok: the press count last seen on chain
        self.smart_asset = store.token_fact(config.asset_id, "scripted") == "1"
        self.paid_on_chain: set = set()  # payment ids found in a block: their refunds may go out

    def now_ms(self) -> int:
        """Unix ms to sign with: this clock, or the node's when this one is off by more than a minute."""
        return self.clock.ms() + self.node_offset_ms

    def pending_count(self) -> int:
        return self.store.pending_event_count() + len(self.store.open_txs())

    def build_due(self) -> float:
        """Seconds until the next transaction may be built (0 = now)."""
        mono = self.clock.monotonic()
        return max(self.last_build + self.config.coalesce_window - mono, self.tx_limiter.delay(mono), 0.0)

    def build(self, events: Sequence[PendingEvent], replaces: Optional[str] = None) -> Optional[_Tx]:
        entries, keys, c, now = events_to_entries(events), self.keys, self.config, self.now_ms()
        try:
            tx = build_data_tx(keys, entries, timestamp=now, chain_id=c.chain_id, fee=c.fee, rules=c.rules)
        except EncodingError as e:
            self.log.error("cannot build a Data transaction from %d event(s): %s", len(events), e)
            return None
        if c.fee and tx["fee"] > c.fee and self.told.first("fee"):
            low = "data.fee = %d is below the node's minimum for this transaction's size: sent with %d instead (this and later ones); set data.fee = 0 for automatic fees"
            self.log.warning(low, c.fee, tx["fee"])
        self.store.queue_tx(tx, events, replaces=replaces)
        txid, n, replacing = tx["id"], len(entries), (" replacing %s" % replaces if replaces else "")
        self.tell("data_tx", id=txid, status="queued", entries=n)
        self.log.info("queued Data transaction %s with %d entries (fee %d)%s", txid, n, tx["fee"], replacing)
        return tx

    def build_pending(self) -> None:
        while self.build_due() <= 0 and (events := pack_events(self.store.pending_events())):
            self.last_build = self.clock.monotonic()
            self.tx_limiter.take(self.last_build)
            if self.build(events) is None:
                return

    def sign_refund(self, payment_id: str, recipient: str, amount: int) -> _Tx:
        """A signed refund; its attachment (the payment's id) keeps two same refunds in one ms apart."""
        c, fee = self.config, transfer_fee(self.config.rules, smart_asset=self.smart_asset)
        what = dict(recipient=recipient, amount=amount, asset_id=c.asset_id, attachment=b58decode(payment_id))
        return build_transfer_tx(self.keys, **what, timestamp=self.now_ms(), chain_id=c.chain_id, fee=fee)

    def _tell_status(self, txid: str, status: str, **extra: Any) -> None:
        refund, height = self.store.refund_of(txid), extra.get("height")
        if status not in ("queued", "failed"):
            what = "refund transfer" if refund else "Data transaction"
            self.log.info("%s %s %s%s", what, txid, status, " at height %d" % height if height else "")
        if refund is None:
            self.tell("data_tx", id=txid, status=status, **extra)
        else:
            paid = refund["payment_id"]
            self.tell("refund", payment_id=paid, id=txid, amount=refund["amount"], status=status, **extra)

    async def broadcast_open(self) -> None:
        mono = self.clock.monotonic()
        for row in self.store.open_txs():
            if self.no_funds:
                return
            if row["status"] == "broadcast" or self.retry_at.get(row["id"], 0) > mono:
                continue
            refund = self.store.refund_of(row["id"]) if row["tx"].get("type") == TX_TRANSFER else None
            if refund is not None and refund["payment_id"] not in self.paid_on_chain:
                continue  # a refund goes out only once its payment is seen in a block (check_statuses)
            if (wait := self.broadcast_limiter.delay(self.clock.monotonic())) > 0:
                self.wake_in(wait)
                return
            self.broadcast_limiter.take(self.clock.monotonic())
            if not await self.broadcast_one(row):
                return  # no node answers: the others wait for their own retry time

    def wake_in(self, seconds: float) -> None:
        asyncio.get_running_loop().call_later(seconds, self.wake.set)

    def set_smart_asset(self, scripted: bool) -> None:
        """Whether the token is scripted (said /assets/details or a refused fee): transfers pay 0.004 more."""
        if scripted != self.smart_asset:
            is_, fee = ("", "the smart-asset") if scripted else ("not ", "the plain")
            self.log.info("the payment token is %sscripted: refunds pay %s fee", is_, fee)
        self.smart_asset = scripted
        try:
            self.store.set_token_fact(self.config.asset_id, "scripted", "1" if scripted else "0")
        except StateError:
            _state_trouble(self.log)

    async def broadcast_one(self, row: _Tx) -> bool:
        """Post one stored transaction; False when no node could be asked."""
        txid, tx = row["id"], row["tx"]
        try:
            await self.node.broadcast(tx)
        except NodeRejected as e:
            await self._refused(txid, tx, e)
            return True
        except NodeError as e:  # also a node of another network, which the client leaves aside
            backoff = self.retries.setdefault(txid, Backoff(1.0, 60.0))
            delay = max(backoff.failure(getattr(e, "retry_after", None)), self.node.retry_in())
            self.retry_at[txid] = self.clock.monotonic() + delay
            self.store.set_tx_status(txid, "queued", attempt=True)
            self.log.debug("broadcast of %s failed (%s); again in %.1fs", txid, e, delay)
            self.wake_in(delay)
            return False
        self._set(txid, "broadcast", attempt=True)
        return True

    async def _refused(self, txid: str, tx: _Tx, e: NodeRejected) -> None:
        """What the node's refusal of a broadcast means for the transaction (REFUSALS)."""
        kind, refund = e.refusal.kind, self.store.refund_of(txid)
        smart_fee = transfer_fee(self.config.rules, smart_asset=True)
        if kind == "known":
            self._set(txid, "broadcast", attempt=True)
            self.next_status_check = 0.0
        elif kind in ("no_coins", "no_tokens"):
            if self.told.first("funds"):
                poor = "not enough coins for the fee of %s: %s; entries wait until funds arrive"
                self.log.warning(poor, txid, describe_refusal(e, rules=self.config.rules))
            self.no_funds, self.next_funds_check = True, self.clock.monotonic() + 10.0
            self.tell("funds", ok=False)
        elif kind == "timestamp":
            await self.resync_clock(str(e))
            self.resign(txid, "the node refused its timestamp: %s" % e)
        elif kind == "fee" and refund is not None and int(tx.get("fee") or 0) < smart_fee:
            # signed before the token's script was known: once more (the smart-asset fee is the highest)
            self.set_smart_asset(True)
            self.resign(txid, "the token is scripted and its transfers cost 0.004 more: %s" % e)
        else:
            what = "refund transfer" if refund else "Data transaction"
            why = describe_refusal(e, rules=self.config.rules)
            self.log.error("the node rejected %s %s: %s", what, txid, why)
            self._set(txid, "failed", error=str(e))  # its events stay with it

    def _set(self, txid: str, status: str, *, attempt: bool = False, **extra: Any) -> None:
        """Store a transaction's new status (with its `height` or `error`) and tell it."""
        self.store.set_tx_status(txid, status, attempt=attempt, **extra)
        self.retry_at.pop(txid, None)
        self.retries.pop(txid, None)
        self._tell_status(txid, status, **{k: v for k, v in extra.items() if v not in (None, "")})

    async def resync_clock(self, why: str) -> None:
        try:
            offset = await self.node.node_time_ms() - self.clock.ms()
        except NodeError:
            return
        self.node_offset_ms = offset if abs(offset) > CLOCK_SKEW_LIMIT * 1000 else 0
        if self.node_offset_ms:
            off = "this clock is %+.0f s off the node's (%s); signing with the node's time (set the clock: a Pi without RTC needs network time)"
            self.log.warning(off, offset / 1000, why)

    def resign(self, txid: str, why: str) -> None:
        self.retry_at.pop(txid, None)
        self.retries.pop(txid, None)
        if (refund := self.store.refund_of(txid)) is not None:
            self.resign_refund(txid, refund, why)
        elif events := self.store.events_of(txid):
            self.log.info("re-signing Data transaction %s: %s", txid, why)
            self.build(events, replaces=txid)
        else:
            self.store.set_tx_status(txid, "replaced", error=why)

    def resign_refund(self, txid: str, refund: Dict[str, Any], why: str) -> None:
        """Re-sign a refund that can never land as it is: new timestamp, receipt rewritten with the new id."""
        try:
            tx = self.sign_refund(refund["payment_id"], refund["recipient"], refund["amount"])
        except EncodingError as e:
            self.log.error("cannot re-sign refund transfer %s: %s", txid, e)
            return
        served = [refund["receipt"][key] for key in ("seconds", "from", "until")]
        receipt = receipt_entry(refund["payment_id"], *served, (tx["id"], refund["amount"]))
        self.store.replace_refund(txid, tx, receipt, self.clock.ms())
        self.log.info("re-signed refund transfer %s as %s: %s", txid, tx["id"], why)
        self._tell_status(tx["id"], "queued")

    async def reconcile_with_chain(self) -> None:
        """Before the first transaction: a state file that lost its newest writes (a damaged WAL) may hold as
        pending what is on chain already (marked sent then); press numbers continue after joystick_count."""
        pending = [e for e in self.store.pending_events(10_000) if e.kind in ("joystick", "receipt")]
        written = await self._written([x["key"] for e in pending for x in e.entries] + ["joystick_count"])
        done = [e.seq for e in pending if all(written.get(x["key"]) == x["value"] for x in e.entries)]
        on_chain = written.get("joystick_count")
        if self.store.raise_press_count(on_chain if _is_int(on_chain) else 0, done):
            behind = "the state file was behind the chain (joystick_count %s): %d pending event(s) were on chain already; press numbers continue after the chain's"
            self.log.warning(behind, on_chain, len(done))
        self.reconciled = True

    async def _written(self, keys: Sequence[str]) -> Dict[str, Any]:
        """The device's Data entries on chain for these keys (absent ones left out). A few go one per request
        (pools allow 20 a second); more go 25 to a request on the data route (pools: 17 a minute per IP)."""
        if len(keys) > SINGLE_KEY_READS:
            starts = range(0, len(keys), 25)
            chunks = [await self.node.data_entries(self.address, keys[i : i + 25]) for i in starts]
            return {key: value for chunk in chunks for key, value in chunk.items()}
        values = [(k, await self.node.data_entry(self.address, k)) for k in keys]
        return {k: v for k, v in values if v is not None}

    async def check_statuses(self) -> None:
        if not (rows := self.store.open_txs()[:100]):
            return
        refunds = {r["id"]: self.store.refund_of(r["id"]) for r in rows if r["tx"].get("type") == TX_TRANSFER}
        refunds = {txid: refund["payment_id"] for txid, refund in refunds.items() if refund}
        payments = set(refunds.values())
        statuses = await self.node.statuses([r["id"] for r in rows] + sorted(payments))
        confirmed = {p for p in payments if (statuses.get(p) or {}).get("status") == "confirmed"}
        if confirmed - self.paid_on_chain:
            self.wake.set()  # their refunds may go out now
        self.paid_on_chain = (self.paid_on_chain - payments) | confirmed
        now_ms = self.now_ms()
        for row in rows:
            txid, payment_id = row["id"], refunds.get(row["id"])
            status, deep = ((statuses.get(txid) or {}).get(k) for k in ("status", "confirmations"))
            lost = status == "not_found" and now_ms - row["timestamp_ms"] > RESIGN_AFTER_MS
            if status == "confirmed" and payment_id is not None and _is_int(deep) and deep < REORG_MARGIN:
                status = "unconfirmed"  # a refund in the newest blocks, which a fork may still replace: asked again
            if lost and payment_id is not None and payment_id not in self.paid_on_chain:
                # the payment left the chain (a rollback) for longer than a transaction may wait: no refund
                why = "its payment %s is no longer on chain" % payment_id
                self.log.warning("refund transfer %s dropped: %s", txid, why)
                self._set(txid, "failed", error=why)
            elif status == "confirmed":
                height = statuses[txid].get("height")
                self._set(txid, "confirmed", height=height if _is_int(height) else None)
            elif status == "unconfirmed" and row["status"] == "queued":
                self._set(txid, "broadcast")  # the node has it (an earlier post got through)
            elif lost:
                self.resign(txid, "it is too old for the node to accept and the node does not know it")
            elif status == "not_found" and row["status"] == "broadcast":
                self.store.set_tx_status(txid, "queued")  # dropped from the pool: post the same JSON again

    def recheck_after_rollback(self, height: int) -> None:
        """The chain went back to `height`: check joystick_count again; a refund confirmed in a block that
        may be gone is asked about again, and re-posted unchanged if lost (its id can land once)."""
        self.count_ok = 0
        try:
            n = self.store.reopen_refunds(height - REORG_MARGIN, self.clock.ms())
        except StateError:
            _state_trouble(self.log)
            return
        if n:
            self.log.info("the chain went back to height %d: checking %d refund transfer(s) again", height, n)
            self.next_status_check = 0.0
            self.wake.set()

    async def check_press_count(self) -> None:
        """joystick_count on chain is whichever transaction came last, so a rollback can leave it behind
        the presses written: once all is confirmed, compare, and write it again if behind."""
        own, mono = self.store.press_count(), self.clock.monotonic()
        if own == self.count_ok or mono < self.next_count_check:
            return
        self.next_count_check = mono + COUNT_CHECK_INTERVAL
        value = (await self._written(["joystick_count"])).get("joystick_count")
        if _is_int(value) and value >= own:
            self.count_ok = own
            return
        rewrite = "joystick_count on chain is %s but %d presses were written (a rollback put an older transaction last): writing the count again"
        self.log.warning(rewrite, value, own)
        self.store.add_count_event()
        self.wake.set()

    async def check_funds(self) -> None:
        if not self.no_funds or self.clock.monotonic() < self.next_funds_check:
            return
        self.next_funds_check = self.clock.monotonic() + 10.0
        balance = await self.node.balance(self.address)
        if balance >= max((r["tx"].get("fee", 0) for r in self.store.open_txs()), default=0):
            coins = format_coins(balance, self.config.rules)
            self.log.info("coins for fees arrived (%s); sending the waiting entries", coins)
            self.told.over("funds")
            self.no_funds = False
            self.tell("funds", ok=True)

    async def _round(self) -> float:
        """One round: build, broadcast, confirm; returns how long to wait for the next."""
        if self.store.failing:
            self.store.probe()  # no outbox writes while the disk is full: the reserve is for presses
        if not self.reconciled:
            await self.reconcile_with_chain()
        self.build_pending()
        await self.check_funds()
        await self.broadcast_open()
        if self.clock.monotonic() >= self.next_status_check:
            self.next_status_check = self.clock.monotonic() + STATUS_CHECK_INTERVAL
            await self.check_statuses()
        open_txs, pending = self.store.open_txs(), self.store.pending_event_count()
        if not open_txs and not pending:
            await self.check_press_count()
        timeout = STATUS_CHECK_INTERVAL if open_txs else 30.0
        if pending:
            return min(timeout, max(0.01, self.build_due()))
        if not open_txs and self.count_ok != self.store.press_count():  # the count is checked once all is out
            return min(timeout, max(0.5, self.next_count_check - self.clock.monotonic()))
        return timeout

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff(1.0, 60.0)
        while not stop.is_set():
            self.wake.clear()
            try:
                timeout = await self._round()
                backoff.success()
            except Exception as e:
                timeout = _retry_delay(self.log, "outbox", e, backoff, self.node)
            await self.pulse.wait(stop, timeout, self.wake)


# --- 8g. Telemetry: the sensors, every data.telemetry_interval ---------------
class Telemetry:
    def __init__(self, config: Config, hardware: Any, store: Store, clock: Clock, tell: _Tell):
        self.config, self.hw, self.store, self.clock, self.tell = config, hardware, store, clock, tell
        self.log, self.told, self.pulse = logging.getLogger("iotlight.telemetry"), LogOnce(), Pulse(clock)

    async def read_once(self) -> None:
        reading = await self.hw.read_environment()
        for _, field in TELEMETRY_FIELDS:
            if reading.get(field) is not None:
                self.told.over(field)
            elif self.told.first(field):
                self.log.warning("sensor reading %s failed; it is left out until it works again", field)
        try:
            entries = telemetry_entries(reading, self.clock.ms())
        except EncodingError as e:
            self.log.warning("sensor reading left out: %s", e)
            return
        if entries:
            try:
                self.store.add_event("telemetry", entries)
            except StateError:
                _state_trouble(self.log)
                return
            values = {f: reading.get(f) for _, f in TELEMETRY_FIELDS}
            values = {f: round(v, 2) for f, v in values.items() if v is not None and math.isfinite(v)}
            self.tell("telemetry", **values)  # the Daemon wakes the outbox too

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.read_once()
            await self.pulse.wait(stop, self.config.telemetry_interval)


# --- 8h. Monitor: WebSocket server, dashboard page, QR code --------------------
monitor_log = logging.getLogger("iotlight.monitor")
CLOSE_GOING_AWAY, CLOSE_UNSUPPORTED_DATA, CLOSE_INVALID_DATA = 1001, 1003, 1007  # RFC 6455 7.4.1
CLOSE_POLICY_VIOLATION, CLOSE_INTERNAL_ERROR, CLOSE_TRY_AGAIN_LATER = 1008, 1011, 1013
MONITOR_CLOSE_TIMEOUT = 5.0  # seconds a closing handshake may take before the socket is cut
MONITOR_MESSAGE_RATE = 10.0  # messages a second a client may send on average (it need send none) ...
MONITOR_MESSAGE_BURST = 20  # ... and at once; a client that sends faster is closed (1008)
_LISTEN_FAILED = "monitor cannot listen on %s:%s: %s; set monitor.port to a free port (0 turns the monitor off) or stop the program using it"


def is_same_origin(origin: str, host: str) -> bool:
    """Whether an Origin header (scheme://host[:port]) names the Host header's host:port."""
    try:
        o, h = urllib.parse.urlsplit(origin), urllib.parse.urlsplit("//" + host)
        if not o.hostname or not h.hostname:
            return False
        default = 443 if o.scheme in ("https", "wss") else 80  # the port when none is written
        ports = [default if port is None else port for port in (o.port, h.port)]
        return o.hostname.lower() == h.hostname.lower() and ports[0] == ports[1]
    except ValueError:  # a port that is not a number
        return False


def _peer_ip(connection: Any) -> str:
    return str(connection.remote_address[0]) if connection.remote_address else "?"


def _own_host_names(host: str) -> set:
    """monitor.host, the machine's name and NAME.local; a thread adds the FQDN (slow without a network)."""
    hostname = socket.gethostname().lower().rstrip(".")
    names = {hostname, hostname.split(".")[0] + ".local"}
    if host.lower() not in ("0.0.0.0", "::", "[::]"):  # a wildcard is no name
        names.add(host.lower().strip("[]").rstrip("."))

    def add_fqdn() -> None:
        names.add(socket.getfqdn(hostname).lower().rstrip("."))

    threading.Thread(target=add_fqdn, name="iotlight-fqdn", daemon=True).start()
    return names


def _same_address(name: str, local: str) -> bool:
    """Whether a Host name is the IP address the client connected to (one of this machine's)."""
    try:
        a, b = ipaddress.ip_address(name), ipaddress.ip_address(local.split("%")[0])
    except ValueError:
        return False
    return a == (getattr(b, "ipv4_mapped", None) or b)  # ::ffff:10.1.2.3 is 10.1.2.3


def _reply(conn: ServerConnection, status: int, body: str, mime: str = "text/plain; charset=utf-8") -> Any:
    """An HTTP answer that no cache keeps and no browser sniffs."""
    response = conn.respond(http.HTTPStatus(status), body)
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = mime
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"  # the token rides in the query
    return response


class _MonitorClient:
    def __init__(self, ws: ServerConnection, queue_size: int, limiter: RateLimiter):
        self.ws, self.limiter, self.dropped = ws, limiter, False
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=queue_size)
        self.sender: Optional[asyncio.Task] = None
        self.peer, self.ip = ("%s:%s" % ws.remote_address[:2] if ws.remote_address else "?"), _peer_ip(ws)


class Monitor:
    """One port serves the WebSocket endpoint (`/`, `/ws`), the dashboard (`GET /`) and the address as a QR
    code (`GET /qr.svg`). Every client gets the state snapshot, then the events. publish() never waits: each
    client's bounded queue is drained by its own task, and a client whose queue is full is dropped."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        token: str,
        snapshot: Callable[[], Dict[str, Any]],
        max_clients: int = 100,
        max_clients_per_address: int = 10,
        queue_size: int = 256,
        max_frame: int = 4096,
        ping_interval: float = 20.0,
        message_rate: float = MONITOR_MESSAGE_RATE,
        message_burst: int = MONITOR_MESSAGE_BURST,
        clock: Optional[Clock] = None,
    ):
        self.clock, self.host, self._token, self._ping_interval = clock or Clock(), host, token, ping_interval
        self.port, self._message_rate, self._message_burst = port, message_rate, message_burst
        self._snapshot, self._queue_size, self._max_frame = snapshot, queue_size, max_frame
        self._max_clients, self._max_per_address = max_clients, max_clients_per_address
        self._per_address: Dict[str, int] = {}  # open clients by IP address
        self._names: set = set()  # host names this device answers to (filled by start)
        self._server: Any = None
        self._clients: Dict[ServerConnection, _MonitorClient] = {}
        self._closing: set = set()  # tasks closing dropped clients
        self._accepted: set = set()  # every TCP connection from accept until its socket is gone

    @property
    def client_count(self) -> int:
        """How many WebSocket clients are connected (dropped ones until their socket is gone)."""
        return len(self._clients)

    async def start(self) -> None:
        """Listen on host:port (port 0 picks a free one, then self.port tells which)."""
        ping = self._ping_interval if self._ping_interval > 0 else None
        self._names = _own_host_names(self.host)
        log = logging.getLogger("iotlight.monitor.websockets")
        if not log.filters:
            log.addFilter(_QuietWebsocketsLog())
        accepted = self._accepted  # so that close() finds those that never finished their handshake
        try:
            from websockets.asyncio.server import ServerConnection
            from websockets.asyncio.server import serve as ws_serve

            class TrackedConnection(ServerConnection):  # type: ignore[misc]
                def connection_made(self, transport: Any) -> None:
                    super().connection_made(transport)
                    accepted.add(self)

                def connection_lost(self, exc: Optional[Exception]) -> None:
                    accepted.discard(self)
                    super().connection_lost(exc)

            # open_timeout: a handshake not done in 5 s is dropped (slowloris)
            limits = dict(max_size=self._max_frame, open_timeout=5.0, close_timeout=MONITOR_CLOSE_TIMEOUT)
            limits.update(ping_interval=ping, ping_timeout=ping)
            hooks = dict(create_connection=TrackedConnection, process_request=self._process_request)
            self._server = await ws_serve(self._handle, self.host, self.port, logger=log, **hooks, **limits)
        except OSError as exc:
            raise IotlightError(_LISTEN_FAILED % (self.host, self.port, exc.strerror or exc)) from None
        self.port = self._server.sockets[0].getsockname()[1]
        shown = "[%s]" % self.host if ":" in self.host else self.host
        monitor_log.info("monitor listening on http://%s:%d/", shown, self.port)

    async def close(self) -> None:
        """Stop listening, close every client (1001) and wait until all are gone."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        byes = [
            self._close_client(c, CLOSE_GOING_AWAY, "monitor shutting down") for c in self._clients.values()
        ]
        await asyncio.gather(*byes, *self._closing)
        # a browser's spare sockets, never sent on, would keep the server waiting and swallow its next request
        for transport in [c.transport for c in self._accepted if c.transport is not None]:
            transport.abort()
        try:
            await asyncio.wait_for(server.wait_closed(), MONITOR_CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            monitor_log.debug("monitor: a connection's handler had not ended; left to end with the process")
        monitor_log.info("monitor stopped")

    def publish(self, message: Dict[str, Any]) -> None:
        """Queue one event for every client; never waits, drops clients that lag behind."""
        event = dict(message, ts=message.get("ts", self.clock.time()))
        try:
            text = json.dumps(event, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError):
            monitor_log.exception("monitor: cannot encode %r event", event.get("type"))
            return
        for client in [c for c in self._clients.values() if not c.dropped]:
            try:
                client.queue.put_nowait(text)
            except asyncio.QueueFull:
                self._drop(client)

    def _drop(self, client: _MonitorClient) -> None:
        client.dropped = True
        unread = client.queue.qsize()
        monitor_log.info("monitor client %s dropped: it left %d messages unread", client.peer, unread)
        closing = self._close_client(client, CLOSE_TRY_AGAIN_LATER, "too slow: messages were piling up")
        task = asyncio.ensure_future(closing)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_client(self, client: _MonitorClient, code: int, reason: str) -> None:
        """Close one connection; a peer that does not read gets its socket cut."""
        if client.sender is not None:
            client.sender.cancel()
        try:
            await asyncio.wait_for(client.ws.close(code, reason), MONITOR_CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            client.ws.transport.abort()

    def _process_request(self, conn: ServerConnection, request: Any) -> Any:
        url, headers = urllib.parse.urlsplit(request.path), request.headers
        if not self._host_allowed(conn, headers):
            hosts = ",".join(headers.get_all("Host"))
            monitor_log.debug("monitor refused host %.80r from %s (DNS rebinding?)", hosts, _peer_ip(conn))
            refusal = "this device does not answer to that host name: open it by its own name or address\n"
            return _reply(conn, 421, refusal)
        given = urllib.parse.parse_qs(url.query).get("token", [""])[-1]
        if self._token and not given:
            return _reply(conn, 401, "monitor token required: add ?token=<monitor.token> to the url\n")
        if self._token and not hmac.compare_digest(given.encode(), self._token.encode()):
            return _reply(conn, 403, "monitor token is wrong: use monitor.token from the configuration\n")
        if "websocket" not in ",".join(headers.get_all("Upgrade")).lower():
            if url.path == "/":
                response = _reply(conn, 200, DASHBOARD_HTML, "text/html; charset=utf-8")
                response.headers["Content-Security-Policy"] = dashboard_csp()
                return response
            if url.path == "/qr.svg":
                return self._qr_svg(conn, url.query)
            if url.path == "/ws":
                return _reply(conn, 426, "this is the websocket endpoint; open / for the dashboard\n")
            return _reply(conn, 404, "not found: the dashboard is at /\n")
        if url.path not in ("/", "/ws"):
            return _reply(conn, 404, "not found: the websocket endpoint is / or /ws\n")
        origins, host_headers = headers.get_all("Origin"), headers.get_all("Host")
        same_origin = len(origins) == len(host_headers) == 1 and is_same_origin(origins[0], host_headers[0])
        if origins and not same_origin and not self._token:  # allowed: no Origin (a script) or the page's own
            monitor_log.debug("monitor refused a cross-origin websocket from %s", conn.remote_address)
            refusal = "cross-origin websocket refused: set monitor.token to allow other origins\n"
            return _reply(conn, 403, refusal)
        ip = _peer_ip(conn)
        if self._per_address.get(ip, 0) >= self._max_per_address:
            count = self._per_address[ip]
            monitor_log.debug("monitor refused a client from %s: %d connected from there already", ip, count)
            return _reply(conn, 429, "too many monitor connections from your address, close one first\n")
        if len(self._clients) >= self._max_clients:
            monitor_log.debug("monitor refused a client: %d connected already", len(self._clients))
            return _reply(conn, 503, "too many monitor clients, try again later\n")
        return None  # go on with the WebSocket handshake

    def _host_allowed(self, connection: ServerConnection, headers: Any) -> bool:
        """Whether Host names this device (loopback, its names or address), not a DNS-rebinding page."""
        hosts = headers.get_all("Host")
        if len(hosts) != 1 or "@" in hosts[0]:
            return False
        try:
            name = urllib.parse.urlsplit("//" + hosts[0].strip()).hostname
        except ValueError:
            return False
        if not name:
            return False
        name = name.rstrip(".")
        if _is_loopback(name) or name.endswith(".localhost") or name in self._names:
            return True
        local = connection.transport.get_extra_info("sockname") if connection.transport else None
        return bool(local) and _same_address(name, str(local[0]))

    def _qr_svg(self, connection: ServerConnection, query: str = "") -> Any:
        try:
            import segno
        except ImportError:
            return _reply(connection, 404, "no qr code: pip install segno to get one\n")
        try:
            snapshot = self._snapshot()
        except Exception:
            monitor_log.exception("monitor: the state snapshot failed")
            return _reply(connection, 500, "the state snapshot failed, see the daemon log\n")
        if not (address := str(snapshot.get("address") or "")):
            return _reply(connection, 404, "no device address yet\n")
        # ?amount=A: the wallet link of that "pay" preset (only links the daemon made itself)
        amount = urllib.parse.parse_qs(query).get("amount", [""])[-1]
        presets = snapshot.get("pay") or ()
        links = [p["link"] for p in presets if amount and p.get("amount") == amount and p.get("link")]
        buf = io.BytesIO()
        svg = dict(kind="svg", scale=1, border=4, omitsize=True, xmldecl=False, dark="#000", light="#fff")
        segno.make(links[-1] if links else address, error="m", micro=False).save(buf, **svg)
        return _reply(connection, 200, buf.getvalue().decode("utf-8"), "image/svg+xml")

    async def _handle(self, ws: ServerConnection) -> None:
        full = len(self._clients) >= self._max_clients
        if full or self._per_address.get(_peer_ip(ws), 0) >= self._max_per_address:  # raced past the checks
            reason = "too many monitor clients" if full else "too many monitor connections from your address"
            await ws.close(CLOSE_TRY_AGAIN_LATER, reason)
            return
        try:
            state = {"type": "state", "ts": self.clock.time(), **self._snapshot()} | {"type": "state"}
            state_text = json.dumps(state, separators=(",", ":"), allow_nan=False)
        except Exception:
            monitor_log.exception("monitor: the state snapshot failed")
            await ws.close(CLOSE_INTERNAL_ERROR, "state snapshot failed")
            return
        limiter = RateLimiter(self._message_rate, 1.0, self._message_burst, self.clock.monotonic())
        client = _MonitorClient(ws, self._queue_size, limiter)
        client.queue.put_nowait(state_text)  # first in the queue: no event can come before it
        self._clients[ws] = client
        self._per_address[client.ip] = self._per_address.get(client.ip, 0) + 1
        monitor_log.debug("monitor client %s connected (%d open)", client.peer, len(self._clients))
        client.sender = asyncio.ensure_future(self._send_loop(client))
        try:
            await self._receive_loop(client)
        finally:
            client.sender.cancel()
            await asyncio.wait([client.sender])
            self._clients.pop(ws, None)
            if left := self._per_address.pop(client.ip, 1) - 1:
                self._per_address[client.ip] = left
            code, still = ws.close_code, len(self._clients)
            monitor_log.debug("monitor client %s disconnected (code %s, %d open)", client.peer, code, still)

    async def _send_loop(self, client: _MonitorClient) -> None:
        from websockets.exceptions import ConnectionClosed

        with contextlib.suppress(ConnectionClosed):
            while True:
                await client.ws.send(await client.queue.get())

    async def _receive_loop(self, client: _MonitorClient) -> None:
        """Ignore JSON objects; close on garbage or on messages over budget: one DEBUG line, no traceback."""
        from websockets.exceptions import ConnectionClosed

        with contextlib.suppress(ConnectionClosed):
            async for raw in client.ws:
                if not client.limiter.take(self.clock.monotonic()):
                    problem = (CLOSE_POLICY_VIOLATION, "sending too fast")
                elif isinstance(raw, bytes):
                    problem = (CLOSE_UNSUPPORTED_DATA, "binary frames are not accepted")
                else:
                    try:
                        message = json.loads(raw)
                    except (ValueError, RecursionError):  # RecursionError: nested deeper than json goes
                        problem = (CLOSE_INVALID_DATA, "malformed json")
                    else:
                        if isinstance(message, dict):
                            kind = message.get("type")
                            monitor_log.debug("monitor client %s sent %r, ignored", client.peer, kind)
                            continue
                        problem = (CLOSE_POLICY_VIOLATION, "messages must be json objects")
                monitor_log.debug("monitor client %s closed: %s", client.peer, problem[1])
                await self._close_client(client, *problem)
                return


class _QuietWebsocketsLog(logging.Filter):
    """websockets' lines: a failed handshake is one DEBUG line, not an ERROR with a traceback; tracebacks
    and ?token= (redact_url) go; INFO becomes DEBUG, so a client connecting in a loop cannot flood the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a line websockets itself formats wrongly: let logging report it
            return True
        exc = record.exc_info[1] if record.exc_info else None
        if record.levelno >= logging.ERROR and "handshake failed" in text:
            record.levelno = logging.INFO
            text = "monitor: a client's handshake failed: %s" % (exc or "unknown")
        elif exc is not None and record.levelno < logging.WARNING:
            text = "%s: %s: %s" % (text, type(exc).__name__, exc)
        record.msg, record.args, record.exc_info, record.exc_text = redact_url(text), (), None, None
        if record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


# --- 8i. The terminal client: `iotlight monitor` -----------------------------
def _short_id(value: Any) -> str:
    text = str(value if value is not None else "?")
    return text if len(text) <= 12 else "%s..%s" % (text[:4], text[-4:])


def _format_units(amount: Any, decimals: Optional[int]) -> str:
    """A monitor message's amount as whole tokens when the decimals are known: 150, 2 -> "1.50 tokens"."""
    if not _is_int(amount):
        return "%s units" % (amount,)
    return tokens_text(amount, decimals, "tokens", trim=False) if _is_int(decimals) else "%d units" % amount


def _format_seconds(value: Any) -> str:
    """90.0 -> "90 s", 2.54 -> "2.5 s"."""
    if not isinstance(value, (int, float)):
        return "? s"
    return "%.0f s" % value if float(value).is_integer() else "%.1f s" % value


def _event_text(m: Dict[str, Any], decimals: Optional[int]) -> str:
    """A message as text: readable for the known types, type and JSON fields for the others."""
    kind = m.get("type")
    if kind == "state":
        light, node = m.get("light") or {}, m.get("node") or {}
        lamp = "on, %s left" % _format_seconds(light.get("remaining")) if light.get("on") else "off"
        health, pending = ("ok" if node.get("ok") else "down"), (m.get("outbox") or {}).get("pending")
        fields = (m.get("address"), lamp, health, node.get("height"), pending)
        return "state %s lamp %s, node %s height %s, outbox %s pending" % fields
    if kind == "payment":
        sender, seconds = _short_id(m.get("sender")), _format_seconds(m.get("seconds"))
        amount = _format_units(m.get("amount"), decimals)
        return "payment %s %s -> %s (height %s)" % (sender, amount, seconds, m.get("height"))
    if kind == "ignored":
        txid, sender = _short_id(m.get("id")), _short_id(m.get("sender"))
        asset = _short_id(m.get("asset_id")) if m.get("asset_id") else "the chain's coin"
        amount = _format_units(m.get("amount"), None)
        return "ignored %s from %s: %s of %s, %s" % (txid, sender, amount, asset, m.get("reason"))
    if kind == "light":
        return "light on, %s left" % _format_seconds(m.get("remaining")) if m.get("on") else "light off"
    if kind == "joystick":
        return "joystick %s %s" % (m.get("direction"), m.get("action"))
    if kind == "data_tx":
        error = ": %s" % m["error"] if m.get("error") else ""
        return "data_tx %s %s" % (_short_id(m.get("id")), m.get("status")) + error
    if kind == "node" and m.get("ok"):
        return "node ok height %s (%s)" % (m.get("height"), m.get("url"))
    if kind == "node":
        return "node down %s: %s" % (m.get("url"), m.get("error") or "no answer")
    if kind == "outbox":
        return "outbox %s pending" % m.get("pending") + (", no funds for fees" if m.get("no_funds") else "")
    if kind == "balance":
        coin = tokens_text(m["coin"], 8, "coin", trim=False) if _is_int(m.get("coin")) else "? coin"
        return "balance %s, %s" % (_format_units(m.get("token"), m.get("decimals")), coin)
    if kind == "matrix":
        pixels = m.get("pixels") or []
        lit = sum(1 for p in pixels if isinstance(p, (list, tuple)) and any(p))
        return "matrix %d/%d pixels lit" % (lit, len(pixels))
    others = {k: v for k, v in m.items() if k not in ("type", "ts")}
    fields = " ".join("%s=%s" % (k, json.dumps(v, separators=(",", ":"))) for k, v in others.items())
    return ("%s %s" % (kind, fields)).rstrip()


def format_event(message: Dict[str, Any], *, decimals: Optional[int] = None) -> str:
    """One readable line for a monitor message; `decimals` turns amounts into tokens."""
    ts = message.get("ts")
    clock = time.strftime("%H:%M:%S", time.localtime(ts)) if isinstance(ts, (int, float)) else "--:--:--"
    return "%s %s" % (clock, _event_text(message, decimals))


def _light_key(message: Dict[str, Any]) -> Tuple[Any, Any]:
    """A light state as the terminal shows it: on or off, and its end time (Unix seconds)."""
    light = message.get("light") if message.get("type") == "state" else message
    light = light if isinstance(light, dict) else {}
    until = light.get("until")
    return (bool(light.get("on")), float(until) if isinstance(until, (int, float)) else None)


def is_news(message: Dict[str, Any], last_light: Optional[Tuple[Any, Any]], *, verbose: bool) -> bool:
    """Whether the terminal client prints it: matrix frames (8 per countdown) only when verbose, `light`
    only when it changes the last light line (told both when a payment lands and when the lamp switches)."""
    kind = message.get("type")
    if kind == "matrix":
        return verbose
    if kind == "light" and last_light is not None:
        (on, until), (was_on, was_until) = _light_key(message), last_light
        if on != was_on or until is None or was_until is None:
            return on != was_on or until != was_until
        return abs(until - was_until) >= 1.0
    return True


class _Printer:
    def __init__(self, out: Any, as_json: bool, verbose: bool):
        self.out, self.as_json, self.verbose = out, as_json, verbose
        self.decimals: Optional[int] = None
        self.last_light: Optional[Tuple[Any, Any]] = None

    def show(self, raw: Any) -> None:
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        if self.as_json:
            print(text, file=self.out, flush=True)
            return
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            print("unreadable message: %s" % text[:200], file=self.out, flush=True)
            return
        kind = message.get("type")
        if kind in ("balance", "state"):  # a state holds the last balance
            self.decimals = (message if kind == "balance" else message.get("balance") or {}).get("decimals")
        if is_news(message, self.last_light, verbose=self.verbose):
            if kind in ("state", "light"):
                self.last_light = _light_key(message)
            print(format_event(message, decimals=self.decimals), file=self.out, flush=True)


def _say(text: str) -> None:
    print("monitor: " + text, file=sys.stderr, flush=True)


async def run_monitor_client(
    url: str, *, as_json: bool, out: Any = None, reconnect: bool = True, verbose: bool = False
) -> int:
    """Print monitor messages (a line per is_news event, or raw with `as_json`), reconnecting with back-off.
    1 on a refused token or host (401/403/421); without `reconnect`, 0 when closed, 1 if never connected."""
    from websockets.asyncio.client import connect as ws_connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

    parts = urllib.parse.urlsplit(url)
    where = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))  # never the token
    if parts.scheme not in ("ws", "wss"):
        raise ConfigError("monitor url %r must start with ws:// or wss://, e.g. ws://127.0.0.1:8765/" % where)
    printer = _Printer(out if out is not None else sys.stdout, as_json, verbose)
    backoff, connected = Backoff(0.5, 10.0), False
    while True:
        try:
            async with ws_connect(url, open_timeout=10) as ws:
                connected = True
                backoff.success()
                _say("connected to %s" % where)
                async for raw in ws:
                    printer.show(raw)
            problem = "the monitor closed the connection"
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                refused = "%s refused the connection (HTTP %d): pass the right ?token=<monitor.token>"
                _say(refused % (where, status))
                return 1
            if status == 421:  # a name the device does not answer to: retrying cannot help either
                _say("%s refused that host name (HTTP 421): use the device's own name or address" % where)
                return 1
            problem = "HTTP %d" % status
        except InvalidURI as exc:
            raise ConfigError("monitor url %r is not valid: %s" % (where, exc)) from None
        except (OSError, asyncio.TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
            problem = str(exc) or type(exc).__name__
        if not reconnect:
            hint = "cannot connect to %s: %s; is the daemon running with monitor.port set?"
            _say(("%s: %s" if connected else hint) % (where, problem))
            return 0 if connected else 1
        delay = backoff.failure()
        _say("%s: %s; reconnecting in %.1f s" % (where, problem, delay))
        await asyncio.sleep(delay)


# =============================================================================
# 9. The daemon: wiring, events and shutdown
# =============================================================================


class Daemon:
    """Owns every service task; the node, store, hardware and clock are passed in, and so are
    systemd's watchdog period (None: no watchdog) and the way to notify it."""

    def __init__(
        self,
        config: Config,
        keys: KeyPair,
        *,
        node: NodeClient,
        store: Store,
        hardware: Any,
        clock: Clock,
        monitor_factory: Optional[Callable[..., Any]] = None,
        watchdog_period: Optional[float] = None,
        notify: Callable[[str], Any] = lambda message: sd_notify(message),
        gpio: Optional["GpioSwitch"] = None,
    ):
        self.config, self.keys, self.node, self.store, self.clock = config, keys, node, store, clock
        self.hw, self.gpio, self.watchdog_period, self.notify = hardware, gpio, watchdog_period, notify
        self.address, self.funds_ok = keys.address(config.chain_id), True
        self.log, self.stop = logging.getLogger("iotlight"), asyncio.Event()
        self.node_state: Dict[str, Any] = {"url": redact_url(config.node_urls[0]), "ok": None, "height": None}
        self.balance: Dict[str, Any] = {"coin": None, "token": None, "decimals": None}
        self.joystick: Optional[Dict[str, Any]] = None
        self.unsaved: "collections.deque" = collections.deque()
        self.token_name: Optional[str] = store.token_fact(config.asset_id, "name")
        self.recent_ignored: "collections.deque" = collections.deque(maxlen=20)  # for the dashboard
        node.tell = self.tell
        edges = {"store": store, "clock": clock, "tell": self.tell}
        self.lamp = Lamp(config, hardware, status=self.status_name, gpio=gpio, **edges)
        self.outbox = Outbox(config, keys, node=node, **edges)
        refunds = {"light_span": self.lamp.span, "sign_refund": self.outbox.sign_refund}
        self.watcher = Watcher(config, self.address, node=node, **refunds, **edges)
        self.telemetry = Telemetry(config, hardware, **edges) if config.telemetry_interval > 0 else None
        self.monitor = None
        if config.monitor_port and monitor_factory is not None:
            self.monitor = monitor_factory(
                host=config.monitor_host,
                port=config.monitor_port,
                token=config.monitor_token,
                snapshot=self.snapshot,
                max_clients_per_address=config.monitor_max_clients_per_address,
                clock=clock,
            )

    # -- what the services tell
    def tell(self, kind: str, **fields: Any) -> None:
        """How a service (and the node client) tells the Daemon what happened: _on_<kind> keeps what the
        snapshot needs, reacts, publishes; other kinds (light, matrix, gpio, data_tx, refund) go out as is."""
        handler = getattr(self, "_on_" + kind, None)
        if handler is not None:
            handler(**fields)
        else:
            self.publish(dict(fields, type=kind))

    def publish(self, message: Dict[str, Any]) -> None:
        if self.monitor is not None:
            self.monitor.publish(message)

    def _on_node_status(self, url: str, ok: bool, error: Optional[str]) -> None:
        error = None if ok else redact_url(error or "unreachable")
        self.node_state.update(url=redact_url(url), ok=ok, error=error)
        message = dict(type="node", url=self.node_state["url"], ok=ok, height=self.node_state["height"])
        self.publish(dict(message, error=error) if error else message)
        self.publish({"type": "warnings", "lines": self.warnings()})
        self.lamp.wake.set()

    def _on_height(self, height: int) -> None:
        if height < (self.node_state.get("height") or 0):
            self.outbox.recheck_after_rollback(height)
        self.node_state["height"] = height
        self.publish({"type": "node", "url": redact_url(self.node.current), "ok": True, "height": height})

    def _on_balance(self, token: Optional[int], coin: Optional[int]) -> None:
        known = self.balance.get("decimals")
        self.balance.update(token=token, coin=coin, decimals=self.watcher.ledger.decimals)
        self.publish(dict(type="balance", **self.balance))
        if known != self.balance["decimals"]:  # the pay buttons' amounts depend on the decimals
            self.publish({"type": "pay", "presets": self.pay_presets()})

    def _on_token(self, details: AssetDetails) -> None:
        """The token's details from the node, kept in the state file: its name, whether it is scripted."""
        if details.scripted is not None:
            self.outbox.set_smart_asset(details.scripted)
        if details.name and details.name != self.token_name:
            self.token_name = details.name
            with contextlib.suppress(StateError):
                self.store.set_token_fact(self.config.asset_id, "name", details.name)
        self.publish({"type": "token", "name": self.token_name, "decimals": details.decimals})
        self.publish({"type": "pay", "presets": self.pay_presets()})

    def _on_ignored(self, **message: Any) -> None:
        """A transfer to the device that lights nothing (reported once by the ledger)."""
        message["type"] = "ignored"
        self.recent_ignored.appendleft(dict(message, ts=self.clock.time()))
        self.publish(message)

    def _on_funds(self, ok: bool) -> None:
        self.funds_ok = ok
        self.publish({"type": "outbox", "pending": self.outbox.pending_count(), "no_funds": not ok})
        self.publish({"type": "warnings", "lines": self.warnings()})
        self.lamp.wake.set()

    def _on_telemetry(self, **values: Any) -> None:
        self.outbox.wake.set()
        self.publish(dict(values, type="telemetry"))

    def _on_credited(self, credits: List[Credit], span: Tuple[float, float]) -> None:
        for c in credits:
            g, (txid, refunded) = c.grant, c.refund or ("", 0)  # txid: the refund transfer's, if any
            cut = " (%.1f s over payment.max_seconds not granted)" % g.excess if g.excess > 0 else ""
            back = txid and "; refund of %s queued as transfer %s" % (self.tokens(refunded), txid)
            what = (c.id, c.sender, self.tokens(c.amount), g.seconds, cut, back)
            self.log.info("payment %s from %s: %s -> %.1f s of light%s%s", *what)
            paid = {"id": c.id, "sender": c.sender, "amount": c.amount}
            self.publish(dict(paid, type="payment", seconds=round(g.seconds, 3), height=c.height))
            if g.seconds <= 0:  # the light was at its cap: credited (and refunded), but no light
                self._on_ignored(**paid, asset_id=self.config.asset_id, reason="cut_by_cap")
            if txid:
                self.publish(dict(type="refund", payment_id=c.id, id=txid, amount=refunded, status="queued"))
        self.lamp.follow(span[1])
        self.outbox.wake.set()

    def tokens(self, units: int) -> str:
        """A token amount for a log line: "2.50 IoT-Light" (raw units before the decimals are known)."""
        decimals, name = self.watcher.ledger.decimals, self.token_name or "tokens"
        return "%d units" % units if decimals is None else tokens_text(units, decimals, name, trim=False)

    # -- the monitor's snapshot
    def status_name(self) -> str:
        if not self.funds_ok:
            return "no_funds"
        if self.node_state["ok"] is False:
            return "node_down"
        return "ok" if self.node_state["ok"] else "starting"

    def snapshot(self) -> Dict[str, Any]:
        c, now = self.config, self.clock.time()
        gpio = None if self.gpio is None else {"pin": self.gpio.pin, "active_high": self.gpio.active_high}
        legend = [dict(name=k, rgb=list(STATUS_COLORS[k]), meaning=v) for k, v in STATUS_MEANINGS.items()]
        out = {
            "address": self.address,
            "asset_id": c.asset_id,
            "chain_id": c.chain_id,
            "version": __version__,
            "backend": getattr(getattr(self.hw, "hardware", None), "name", None),
            "price": {k: getattr(c, k) for k in ("seconds_per_token", "min_tokens", "max_seconds", "refund")},
            "gpio": gpio,
            "light": self.lamp.state(),
            "node": dict(self.node_state),
            "outbox": {"pending": self.outbox.pending_count(), "no_funds": not self.funds_ok},
            "balance": dict(self.balance),
            "matrix": [list(p) for p in self.lamp.pixels],
            "payments": self.store.recent_payments(10),
            "data_txs": self.store.recent_txs(10),
            "ignored": list(self.recent_ignored),
            "joystick": self.joystick,
            "token": {"name": self.token_name, "decimals": self.watcher.ledger.decimals},
            "links": {"wallet": c.wallet_url, "explorer": c.explorer_url},
            "pay": self.pay_presets(),
            "status": {"name": self.status_name(), "legend": legend},
            "warnings": self.warnings(),
            "light_sold": self.store.light_sold_by_hour(int(now * 1000)),
        }
        if self.telemetry is not None:
            out["telemetry"] = self.store.telemetry_history(int((now - 6 * 3600) * 1000))
        return out

    def pay_presets(self) -> List[Dict[str, Any]]:
        c, decimals = self.config, self.watcher.ledger.decimals
        return pay_presets(
            seconds_per_token=c.seconds_per_token,
            max_seconds=c.max_seconds,
            decimals=decimals,
            min_units=math.ceil(min_units(decimals or 0, c.min_tokens)),
            template=c.wallet_url,
            asset=c.asset_id,
            address=self.address,
        )

    def warnings(self) -> List[str]:
        """What the owner must act on, one full sentence each (dashboard, monitor)."""
        out = []
        if not self.funds_ok:
            coin, rules = self.balance.get("coin"), self.config.rules
            holds = " (it holds %s)" % format_coins(coin, rules) if isinstance(coin, int) else ""
            out.append(
                "The device cannot pay the fees of its Data transactions%s: send it some %s, e.g. "
                "`sudo iotlight pay --seed-file FUNDED.seed --asset %s %s 0.1`."
                % (holds, coin_name(rules), coin_name(rules), self.address)
            )
        if self.node_state.get("ok") is False:
            out.append(
                "No node answers (%s): payments are seen again as soon as one does; check the network and node.urls."
                % (self.node_state.get("error") or "unreachable")
            )
        return out

    # -- the joystick
    def joystick_event(self, ev: Any) -> None:
        self.joystick = {"direction": ev.direction, "action": ev.action, "ts": ev.ts_ms / 1000}
        self.publish({"type": "joystick", "direction": ev.direction, "action": ev.action})
        if ev.action == "pressed" and self.config.joystick:
            self.unsaved.append(ev)
            self.save_presses()

    def save_presses(self) -> None:
        """Store presses in order; while the state file cannot be written they wait in memory."""
        while self.unsaved:
            ev = self.unsaved[0]
            try:
                n = self.store.add_press(ev.direction, ev.action, ev.ts_ms)
            except StateError:
                if self.store.free_reserve():
                    continue
                _state_trouble(self.log)
                if not self.stop.is_set():
                    asyncio.get_running_loop().call_later(STATE_RETRY, self.save_presses)
                return
            self.unsaved.popleft()
            self.log.debug("joystick press %d: %s", n, ev.direction)
            self.outbox.wake.set()

    # -- life cycle
    def services(self) -> Dict[str, Any]:
        out = {"watcher": self.watcher, "lamp": self.lamp, "outbox": self.outbox, "telemetry": self.telemetry}
        return {name: service for name, service in out.items() if service is not None}

    async def watchdog(self) -> None:
        """Tell systemd WATCHDOG=1 every quarter period while no service is past its deadline (Pulse); a tick
        over half a period late means the event loop stood still (a blocking call): that tick says nothing."""
        period = self.watchdog_period
        if not period:
            await self.stop.wait()
            return
        budget = max(period, self.config.timeout * len(self.config.node_urls) + WATCHDOG_GRACE)
        tick, due, trouble = period / 4, self.clock.monotonic(), ""
        while not self.stop.is_set():
            mono = self.clock.monotonic()
            lateness = {n: s.pulse.late_by(mono, budget) for n, s in self.services().items()}
            late = ["%s (%.0f s late)" % (n, by) for n, by in lateness.items() if by > 0]
            if mono - due > period / 2:
                trouble = "the event loop stood still for %.1f s or more" % (mono - due)
            elif late:
                trouble = "no sign of life from %s" % ", ".join(late)
            else:
                if trouble:
                    self.log.warning("alive again: telling the watchdog")
                trouble = ""
                self.notify("WATCHDOG=1")
            if trouble:
                self.log.error("%s; not telling the watchdog", trouble)
            due = self.clock.monotonic() + tick
            await wait_any(tick, self.stop)

    async def run(self) -> int:
        """Run until stop is set or a service crashes; returns the exit status."""
        self.lamp.load(*self.store.light())
        if self.monitor is not None:
            await self.monitor.start()
        self.hw.start_joystick(self.joystick_event)
        self.notify("READY=1\nSTATUS=watching %s" % self.address)
        c = self.config
        what = (__version__, self.address, c.chain_id, c.asset_id, redact_url(c.node_urls[0]))
        self.log.info("iotlight %s running: address %s on chain %r, token %s, node %s", *what)
        tasks = [asyncio.ensure_future(svc.run(self.stop)) for svc in self.services().values()]
        tasks.append(asyncio.ensure_future(self.watchdog()))
        asyncio.get_running_loop().call_later(10.0, release_free_memory)
        stopper, status = asyncio.ensure_future(self.stop.wait()), 0
        try:
            done, _ = await asyncio.wait(tasks + [stopper], return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                exc = None if t is stopper or t.cancelled() else t.exception()
                if isinstance(exc, IotlightError):
                    self.log.error("%s", exc)
                    status = exc.exit_status
                elif exc is not None:
                    self.log.error("a service crashed", exc_info=exc)
                    status = 1
        finally:
            await self._shut_down(tasks + [stopper])
        self.save_presses()
        if self.unsaved:
            lost, why = len(self.unsaved), self.store.failing or "the state file cannot be written"
            self.log.error(
                "stopped with %d joystick press(es) that could not be saved (%s): they are lost", lost, why
            )
            return status or 1
        self.log.info("stopped; light state and outbox saved")
        return status

    async def _shut_down(self, tasks: List["asyncio.Future[Any]"]) -> None:
        """Tear down in reverse: the services, the monitor, the matrix, the relay."""
        self.notify("STOPPING=1")
        self.stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.monitor is not None:
            await self.monitor.close()
        await self.hw.close()
        if self.gpio is not None:
            self.lamp.switch_gpio(False)
            self.gpio.close()


class _AboveMatrixHandler(logging.Handler):
    """Log lines printed above the terminal backend's matrix instead of through it."""

    def __init__(self, terminal: "TerminalHardware", formatter: Optional[logging.Formatter]):
        super().__init__()
        self.terminal = terminal
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.terminal.write_above(self.format(record))
        except Exception:
            self.handleError(record)


async def run_daemon(config: Config, keys: KeyPair) -> int:
    """Build the real edges and run the daemon until SIGINT or SIGTERM."""
    clock = Clock()
    store = Store(config.state_file, clock)
    try:
        store.bind_device(keys.address(config.chain_id), config.asset_id)
        gpio = open_gpio(config)
        device = open_hardware(config.backend, stdout_isatty=sys.stdout.isatty())
        if isinstance(device, TerminalHardware) and sys.stderr.isatty():
            root = logging.getLogger()
            root.handlers[:] = [_AboveMatrixHandler(device, h.formatter) for h in root.handlers]
        node = NodeClient(
            config.node_urls,
            timeout=config.timeout,
            chain_id=config.chain_id,
            clock=clock,
            max_answer_bytes=config.max_answer_bytes,
        )
        try:
            daemon = Daemon(
                config,
                keys,
                node=node,
                store=store,
                hardware=HardwareRunner(device),
                clock=clock,
                monitor_factory=Monitor,
                watchdog_period=systemd_watchdog_period(),
                gpio=gpio,
            )
            for sig in (signal.SIGINT, signal.SIGTERM):
                asyncio.get_running_loop().add_signal_handler(sig, daemon.stop.set)
            return await daemon.run()
        finally:
            await node.aclose()
    finally:
        store.close()


def cmd_run(config: Config, args: argparse.Namespace) -> int:
    keys, lock = device_keys(config), lock_state_file(config.state_file)
    try:
        return asyncio.run(run_daemon(config, keys))
    finally:
        os.close(lock)


# =============================================================================
# 10. Command line and main()
# =============================================================================

SEED_WORDS = 15
FUND_HINT = "iotlight.py pay --seed-file FUNDED.seed --asset %s %s 1"
_EXISTS = "%s: a seed file exists already; keygen never overwrites one"
Lines = List[str]
Holdings = Tuple[Optional[int], Optional[AssetDetails]]  # `status`: the device's coins, the token


def _refuse_open_seed(path: str, st: os.stat_result) -> None:
    if st.st_mode & 0o077:
        why = "%s: the seed file is readable by group or others (mode %03o); fix it with: chmod 600 %s"
        raise SeedFileError(why % (path, st.st_mode & 0o777, path))


def _dangling(path: str) -> Optional[str]:
    """Where a symbolic link at `path` points when that is nowhere; None otherwise."""
    return os.readlink(path) if os.path.islink(path) and not os.path.exists(path) else None


def read_seed_file(path: str) -> str:
    """The seed phrase of a seed file, refusing one that group or others can read."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if (target := _dangling(path)) is not None:
            why = "%s: the seed file is a symbolic link to %s, which does not exist; fix the link or point device.seed_file at the seed file"
            raise SeedFileError(why % (path, target)) from None
        raise SeedFileError("%s: no seed file; create one with: iotlight.py keygen" % path) from None
    except OSError as e:
        raise SeedFileError("%s: cannot read the seed file: %s" % (path, e.strerror)) from None
    if not stat.S_ISREG(st.st_mode):
        raise SeedFileError("%s: the seed file is not a regular file" % path)
    _refuse_open_seed(path, st)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = getattr(e, "strerror", None) or "not UTF-8"
        raise SeedFileError("%s: cannot read the seed file: %s" % (path, why)) from None
    seed = text.removesuffix("\n").removesuffix("\r")
    if not seed.strip():
        raise SeedFileError("%s: the seed file is empty" % path)
    return seed


def write_seed_file(path: str, seed: str) -> None:
    """Create a seed file with mode 0600; never overwrite an existing one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _refuse_open_seed(path, os.stat(path))
        raise SeedFileError(_EXISTS % path) from None
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
    address = keys.address(config.chain_id)
    if config.address and address != config.address:
        why = "%s: device.address: the seed file %s gives %s on chain %r, not %s (wrong seed file or wrong network?)"
        raise ConfigError(why % (config.path, config.seed_file, address, config.chain_id, config.address))
    return keys


def lock_state_file(state_file: str, *, claim: bool = True) -> int:
    """flock STATE_FILE.lock: one daemon per state file; the kernel drops it however the process ends (SIGKILL)."""
    import fcntl

    path = state_file + ".lock"
    try:
        fd = os.open(path, (os.O_RDWR if claim else os.O_RDONLY) | os.O_CREAT, 0o644)
    except OSError as e:
        raise StateError("%s: cannot create the lock file: %s" % (path, e.strerror)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        busy = "%s: iotlight is already running on this state file (pid %s); stop it first (sudo systemctl stop iotlight, or kill %s), or give this one another device.state_file"
        raise ConfigError(busy % (state_file, holder or "unknown", holder or "PID")) from None
    except OSError as e:
        os.close(fd)
        raise StateError("%s: cannot lock the lock file: %s" % (path, e.strerror)) from None
    if claim:
        try:  # the pid is for the message of a second daemon; written in place: a full disk rarely stops it
            mine = b"%-10d\n" % os.getpid()
            os.pwrite(fd, mine, 0)
            os.ftruncate(fd, len(mine))
        except OSError as e:
            why = "%s: cannot write this daemon's pid into the lock file (%s); the lock holds all the same"
            log.warning(why, path, e.strerror)
    return fd


def cmd_gpio_off(config: Config, args: argparse.Namespace) -> int:
    """Switch light.gpio_pin off and release it (the unit's ExecStopPost: a crashed daemon leaves no relay on)."""
    if config.gpio_pin < 0:
        print("light.gpio_pin is -1: no pin to switch off")
        return 0
    lock: Optional[int] = None  # no state folder: no daemon ever ran on this state file
    if os.path.isdir(os.path.dirname(os.path.abspath(config.state_file))):
        lock = lock_state_file(config.state_file, claim=False)  # refused while a daemon runs
    try:
        GpioSwitch(config.gpio_pin, active_high=config.gpio_active_high).close()
    finally:
        if lock is not None:
            os.close(lock)
    level = "low" if config.gpio_active_high else "high"
    print("gpio pin %d off (level %s), released" % (config.gpio_pin, level))
    return 0


def cmd_keygen(config: Config, args: argparse.Namespace) -> int:
    path = config.seed_file
    if (target := _dangling(path)) is not None:
        why = "%s is a symbolic link to %s, which does not exist; keygen writes no seed through a link: remove it (rm %s) and run keygen again, or point device.seed_file at a real file"
        raise SeedFileError(why % (path, target, path))
    if os.path.lexists(path):  # read_seed_file refuses an open or broken one
        print("address: %s" % keypair_from_seed(read_seed_file(path)).address(config.chain_id))
        raise SeedFileError((_EXISTS + " (its address is above)") % path)
    seed = generate_seed_phrase(SEED_WORDS)
    write_seed_file(path, seed)
    print("wrote a new %d-word seed phrase to %s (mode 0600); keep a copy offline" % (SEED_WORDS, path))
    print("address: %s" % keypair_from_seed(seed).address(config.chain_id))
    return 0


def cmd_address(config: Config, args: argparse.Namespace) -> int:
    keys = device_keys(config)
    print("address: %s" % keys.address(config.chain_id))
    print("public key: %s" % b58encode(keys.public_key))
    return 0


def _min_data_fee(config: Config, keys: KeyPair, *entries: Dict[str, Any]) -> int:
    """The node's minimum fee for a Data transaction of these entries and a joystick_count."""
    count = {"key": "joystick_count", "type": "integer", "value": 1}
    tx = build_data_tx(keys, [*entries, count], timestamp=0, chain_id=config.chain_id, rules=config.rules)
    return tx["fee"]


def data_tx_fee(config: Config, keys: KeyPair) -> int:
    """What one of the device's smallest Data transactions (one press) costs: data.fee or the minimum."""
    return config.fee or _min_data_fee(config, keys, joystick_entry(1, "up", "pressed", 0))


def cmd_check(config: Config, args: argparse.Namespace) -> int:
    keys = device_keys(config)
    monitor = "off" if not config.monitor_port else "%s:%d" % (config.monitor_host, config.monitor_port)
    nodes = ", ".join(redact_url(u) for u in config.node_urls)
    print("configuration %s is valid" % config.path)
    print("  chain: %s (%s rules), nodes: %s" % (config.chain_id, config.rules, nodes))
    print("  device address: %s" % keys.address(config.chain_id))
    price = (config.asset_id, config.seconds_per_token, config.max_seconds)
    print("  token: %s, %g s per token, at most %g s" % price)
    print("  state file: %s" % config.state_file)
    print("  hardware: %s, monitor: %s" % (config.backend, monitor))
    status, smallest = 0, _min_data_fee(config, keys)
    if config.fee and config.fee < smallest:
        low = "problem: data.fee = %d is below the node's minimum fee of %d for even the smallest Data transaction: each one is sent with the minimum for its size instead. Fix: set data.fee = 0 (automatic) or at least %d"
        print(low % (config.fee, smallest, smallest))
        status = 1
    elif config.fee:
        print("  data fee: %d (a transaction whose size needs more is sent with its minimum)" % config.fee)
    minimum = (config.min_tokens, 'yes (payment.refund = "excess")' if config.refund == "excess" else "no")
    print("  minimum payment: %g tokens, refund of what max_seconds cuts off: %s" % minimum)
    status += check_gpio(config)
    if args.offline:
        print("the node was not asked (--offline)")
        return min(status, 1)
    facts, problems = asyncio.run(_with_node(config, lambda node: inspect_chain(node, config, keys)))
    for line in ["  " + fact for fact in facts] + ["problem: " + problem for problem in problems]:
        print(redact_url(line))
    if problems or status:
        print("check found %d problem(s)" % (len(problems) + status))
        return 1
    print("the node agrees: all good")
    return 0


def check_gpio(config: Config) -> int:
    """The `check` line for light.gpio_pin: 0 when off or gpiozero is there, 1 (with the fix) when not."""
    pin, level = config.gpio_pin, "high" if config.gpio_active_high else "low"
    if pin < 0:
        print("  gpio: off (light.gpio_pin = -1)")
        return 0
    if not _module_installed("gpiozero"):
        missing = "  problem: light.gpio_pin = %d needs the gpiozero library, which is not installed: sudo apt install python3-gpiozero (or pip install gpiozero in the venv)"
        print(missing % pin)
        return 1
    print("  gpio: BCM pin %d switched with the light, on = %s level (gpiozero found)" % (pin, level))
    return 0


async def inspect_chain(node: NodeClient, config: Config, keys: KeyPair) -> Tuple[Lines, Lines]:
    """(facts, problems with their fix): the node's network, the token, the device's coins, the clock."""
    facts: Lines = []
    problems: Lines = []
    header: Optional[Dict[str, Any]] = None
    try:
        header = await node.last_header()
    except NodeRejected:
        header = {}  # a node without /blocks/headers: the rest still tells
    except NodeError as e:
        if not node.foreign:
            silent = "no node answered (%s): %s; check node.urls and this machine's network"
            problems.append(silent % (", ".join(config.node_urls), e))
    ours = network_name(config.chain_id)
    foreign = 'the node %s runs network %s, not node.chain_id = %s: set chain_id = "%s" in [node], or point node.urls at a %s node (then run keygen for that network\'s address)'
    for url, chain in node.foreign.items():
        problems.append(foreign % (redact_url(url), network_name(chain), ours, chain, ours))
    if header is None:
        return facts, problems
    height = header.get("height") if _is_int(header.get("height")) else "unknown"
    facts.append("node %s: network %s, height %s" % (node.current, ours, height))
    await _ask_token(node, config, keys, facts, problems)
    await _ask_coins(node, config, keys, facts, problems)
    try:
        before = node.clock.time()
        skew = await node.node_time_ms() / 1000 - (before + node.clock.time()) / 2
        facts.append("clock: %+.1f s from the node's" % -skew)
        if abs(skew) > CLOCK_SKEW_LIMIT:
            off = "this machine's clock is %.0f s %s the node's: set it (sudo timedatectl set-ntp true; a Pi without a real-time clock needs network time)"
            problems.append(off % (abs(skew), "behind" if skew > 0 else "ahead of"))
    except NodeError as e:
        problems.append("the node did not tell its time (/utils/time): %s" % e)
    return facts, problems


async def _ask_token(node: NodeClient, config: Config, keys: KeyPair, facts: Lines, problems: Lines) -> None:
    try:
        details = await node.asset_details(config.asset_id)
        if details is None:
            unknown = 'payment.asset_id = "%s": no such token on the node\'s chain; copy the id from the output of issue or from an explorer'
            problems.append(unknown % config.asset_id)
            return
        about = (config.asset_id, details.name, details.decimals, details.issuer)
        facts.append("token %s: %s, %d decimals, issued by %s" % about)
        token = await node.asset_balance(keys.address(config.chain_id), config.asset_id)
        facts.append("device holds %s" % tokens_text(token, details.decimals, details.name, trim=False))
    except NodeRejected as e:
        problems.append("the node refused to tell the token: %s" % describe_refusal(e, rules=config.rules))
    except NodeError as e:
        problems.append("the node did not tell the token: %s" % e)


async def _ask_coins(node: NodeClient, config: Config, keys: KeyPair, facts: Lines, problems: Lines) -> None:
    address, rules = keys.address(config.chain_id), config.rules
    try:
        coins, fee = await node.balance(address), data_tx_fee(config, keys)
    except NodeError as e:
        problems.append("the node did not tell the device's balance: %s" % describe_refusal(e, rules=rules))
        return
    held, each = format_coins(coins, rules), format_coins(fee, rules)
    facts.append("device holds %s: fees for %d Data transaction(s) at %s each" % (held, coins // fee, each))
    if coins < fee:
        poor = "the device %s holds %s, less than one Data transaction's fee (%s): presses and receipts cannot be written; send it coins: %s"
        problems.append(poor % (address, held, each, FUND_HINT % (coin_name(rules), address)))


# --- workshop commands: issue, pay, status -----------------------------------


async def _with_node(config: Config, action: Callable[[NodeClient], Any]) -> Any:
    urls, cap = config.node_urls, config.max_answer_bytes
    node = NodeClient(urls, timeout=config.timeout, chain_id=config.chain_id, max_answer_bytes=cap)
    try:
        return await action(node)
    finally:
        await node.aclose()


def _refused(what: str, e: NodeError, rules: str = "waves") -> IotlightError:
    if isinstance(e, NodeRejected):
        return IotlightError("the node refused the %s: %s" % (what, describe_refusal(e, rules=rules)))
    return IotlightError("cannot reach the node for the %s: %s" % (what, e))


def parse_token_amount(text: str, decimals: int) -> int:
    """Whole tokens as typed ("2.5") -> smallest units; ConfigError when it is not exact."""
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ConfigError("amount %r is not a number" % text) from None
    if not value.is_finite() or value <= 0:
        raise ConfigError("amount %r must be a positive number of tokens" % text)
    units = value * (10**decimals)
    if units != units.to_integral_value():
        raise ConfigError("amount %s has more decimals than the token's %d" % (text, decimals))
    if units > INT64_MAX:
        raise ConfigError("amount %s is too large" % text)
    return int(units)


def cmd_issue(config: Config, args: argparse.Namespace) -> int:
    keys = keypair_from_seed(read_seed_file(args.seed_file))
    if not 0 <= args.decimals <= 8:
        raise ConfigError("--decimals must be from 0 to 8, not %d" % args.decimals)
    quantity, fee = parse_token_amount(args.quantity, args.decimals), issue_fee(config.rules)
    token = dict(name=args.name, description=args.description, quantity=quantity, decimals=args.decimals)
    try:
        tx = build_issue_tx(
            keys, **token, reissuable=False, timestamp=Clock().ms(), chain_id=config.chain_id, fee=fee
        )
    except EncodingError as e:
        raise ConfigError(str(e)) from None
    try:
        asyncio.run(_with_node(config, lambda node: node.broadcast(tx)))
    except NodeError as e:
        raise _refused("token", e, config.rules) from None
    issued = tokens_text(quantity, args.decimals, args.name, trim=False)
    cost = format_coins(tx["fee"], config.rules)
    print("issued %s from %s; fee %s" % (issued, keys.address(config.chain_id), cost))
    print('asset id: %s\npaste into [payment] of %s:\nasset_id = "%s"' % (tx["id"], config.path, tx["id"]))
    return 0


def cmd_pay(config: Config, args: argparse.Namespace) -> int:
    keys = keypair_from_seed(read_seed_file(args.seed_file))
    coin, asset = coin_name(config.rules), args.asset or config.asset_id
    if not asset:
        raise ConfigError(
            "no token to pay with: pass --asset ID (or --asset %s for coins) or set payment.asset_id in %s"
            % (coin, config.path)
        )
    try:
        own_coin = not parse_asset_id(asset, coin=coin, what="--asset %s" % asset)
        recipient = parse_recipient(args.recipient, config.chain_id)
    except EncodingError as e:
        hint = " (or --asset %s for the chain's coin)" % coin if "--asset" in str(e) else ""
        raise ConfigError(str(e) + hint) from None

    async def go(node: NodeClient) -> Tuple[Dict[str, Any], str]:
        try:
            details = None if own_coin else await node.asset_details(asset)
            if not own_coin and details is None:
                unknown = "the node refused the transfer: no token %s on the node's chain; check the asset id"
                raise IotlightError(unknown % asset)
            decimals = 8 if details is None else details.decimals
            amount = parse_token_amount(args.amount, decimals)
            fee = transfer_fee(config.rules, smart_asset=bool(details and details.scripted))
            transfer = dict(recipient=recipient, amount=amount, asset_id=asset if details else None, fee=fee)
            tx = build_transfer_tx(keys, **transfer, timestamp=Clock().ms(), chain_id=config.chain_id)
            await node.broadcast(tx)
        except NodeError as e:
            raise _refused("transfer", e, config.rules) from None
        if details is None:
            return tx, format_coins(amount, config.rules)
        paid = tokens_text(amount, decimals, details.name or asset, trim=False)
        return tx, "%s (%d units of %s)" % (paid, amount, asset)

    tx, sent = asyncio.run(_with_node(config, go))
    print("sent %s to %s; fee %s" % (sent, recipient, format_coins(tx["fee"], config.rules)))
    print("transaction id: %s" % tx["id"])
    return 0


async def _status_of_node(node: NodeClient, config: Config, address: str) -> Holdings:
    """`status`'s node lines; (the device's coins or None when no node answered, the token's details)."""
    try:
        height = await node.height()
        print("node: %s, height %d" % (redact_url(node.current), height))
        coin = await node.balance(address)
        print("coins: %s (%d units)" % (format_coins(coin, config.rules), coin))
    except NodeError as e:
        print("node: cannot ask it: %s" % redact_url(describe_refusal(e, rules=config.rules)))
        return None, None
    if not config.asset_id:
        return coin, None
    details = None
    try:  # the node answered the rest: not a reason for exit status 1
        details = await node.asset_details(config.asset_id)
        if details is None:
            print("token %s: %s" % (config.asset_id, _NO_TOKEN))
        else:
            token = await node.asset_balance(address, config.asset_id)
            held = tokens_text(token, details.decimals, details.name, trim=False)
            print("token: %s (%d units of %s)" % (held, token, config.asset_id))
    except NodeError as e:
        print("token %s: %s" % (config.asset_id, describe_refusal(e, rules=config.rules)))
    return coin, details


def _status_of_state(config: Config, details: Optional[AssetDetails]) -> Tuple[int, int]:
    """`status`'s state-file lines; (queued events, transactions waiting to be sent)."""
    try:
        with contextlib.closing(Store.open_read_only(config.state_file)) as store:
            until, now = store.light()[1], store.clock.time()
            ends = time.strftime("%H:%M:%S", time.localtime(until))
            lamp = "on for %.1f s more (until %s)" % (until - now, ends) if until > now else "off"
            print("lamp: %s" % lamp)
            queued = store.pending_event_count()
            open_txs = [(s, n) for s, n in store.outbox_counts().items() if s in OUTBOX_OPEN]
            txs = ", ".join("%d %s" % (n, s) for s, n in open_txs) or "no transaction pending"
            print("outbox: %d event(s) waiting, %s" % (queued, txs))
            rows = store.recent_payments(5)
            print("payments: %d credited%s" % (store.credited_ever(), ", the last:" if rows else ""))
            for p in rows:
                paid = "%d units of the token" % p["amount"]
                if details:
                    paid = tokens_text(p["amount"], details.decimals, details.name, trim=False)
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p["ts"]))
                print("  %s  %s from %s: %s, %.1f s" % (when, p["id"], p["sender"], paid, p["seconds"]))
    except sqlite3.Error as e:
        raise StateError("%s: cannot read the state file: %s" % (config.state_file, e)) from None
    return queued, dict(open_txs).get("queued", 0)


def cmd_status(config: Config, args: argparse.Namespace) -> int:
    keys = device_keys(config)
    address, rules = keys.address(config.chain_id), config.rules
    print("device %s on chain %r" % (address, config.chain_id))
    coins, details = asyncio.run(_with_node(config, lambda node: _status_of_node(node, config, address)))
    fee, hint = data_tx_fee(config, keys), FUND_HINT % (coin_name(rules), address)
    poor = "warning: the device holds %s, less than one Data transaction's fee (%s); send it coins: %s"
    if not os.path.exists(config.state_file):
        print("state: no state yet (%s appears on the first run)" % config.state_file)
        if coins is not None and coins < fee:
            print(poor % (format_coins(coins, rules), format_coins(fee, rules), hint))
        return 0 if coins is not None else 1
    queued, unsent = _status_of_state(config, details)
    waiting = unsent + (1 if queued else 0)
    if coins is not None and (coins < fee or coins < waiting * fee):
        broke = "warning: the device cannot pay its fees: it holds %s, %d Data transaction(s) wait at %s or more each; send it coins: %s"
        print(broke % (format_coins(coins, rules), waiting, format_coins(fee, rules), hint))
    return 0 if coins is not None else 1


def cmd_monitor(config: Config, args: argparse.Namespace) -> int:
    if not config.monitor_port:
        raise ConfigError("%s: monitor.port is 0: the monitor is off" % config.path)
    host = "127.0.0.1" if config.monitor_host in ("0.0.0.0", "::", "") else config.monitor_host
    host = "[%s]" % host if ":" in host and not host.startswith("[") else host
    url = "ws://%s:%d/" % (host, config.monitor_port)
    if config.monitor_token:
        url += "?token=" + urllib.parse.quote(config.monitor_token, safe="")
    try:
        return asyncio.run(run_monitor_client(url, as_json=args.json, verbose=args.verbose))
    except KeyboardInterrupt:
        return 0


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError("usage: %s" % message)


# command -> (the function, its line in --help); _DESCRIPTIONS: `COMMAND --help` (README.md documents each in full)
COMMANDS: Dict[str, Tuple[Callable[[Config, argparse.Namespace], int], str]] = {
    "run": (cmd_run, "run the daemon (the default)"),
    "keygen": (cmd_keygen, "write a new seed phrase to device.seed_file and print the address"),
    "address": (cmd_address, "print the device address and public key"),
    "check": (cmd_check, "validate the configuration and the seed file, then ask the node"),
    "status": (cmd_status, "node height, balances, lamp, outbox and recent payments"),
    "gpio-off": (
        cmd_gpio_off,
        "switch light.gpio_pin off (after a crash; the unit runs it when the daemon stops)",
    ),
    "issue": (cmd_issue, "create the light token, signed by a seed file"),
    "monitor": (cmd_monitor, "print the daemon's live events (the monitor stream)"),
    "pay": (cmd_pay, "send tokens or coins, signed by a seed file"),
}
_DESCRIPTIONS = {
    "run": "Run the daemon until SIGINT or SIGTERM: sell light for payments of payment.asset_id, serve the monitor. "
    "One daemon per state file: a second one exits with status 2 naming the first one's pid.",
    "keygen": "Write a new 15-word seed phrase to device.seed_file (mode 0600) and print the device's address. An "
    "existing seed file is never overwritten: keygen then prints that seed's address and exits with status 2.",
    "address": "Print the device's address on node.chain_id and its public key (never the seed).",
    "check": "Validate the configuration and the seed file, then ask the node what only the chain can tell. Exit status 0: "
    "all good; 1: a problem found (each named with its fix) or no node answered; 2: bad configuration or seed file.",
    "status": "Ask the node and the state file; a warning line when the device cannot pay its fees. Exit status 1 when no node answers.",
    "gpio-off": "Switch the light.gpio_pin output off and release the pin (the installed unit runs it after every stop). Refused (exit status 2) while a daemon runs on the state file.",
    "issue": "Create a token with an Issue transaction signed by --seed-file; print the payment.asset_id line to paste.",
    "monitor": "Connect to the running daemon's monitor and print its events as they happen, until Ctrl-C.",
    "pay": "Send AMOUNT whole tokens (or, with --asset WAVES, coins of the chain) to RECIPIENT, signed by --seed-file.",
}
_NO_ASSET_NEEDED = {"keygen", "address", "status", "issue", "pay", "monitor", "gpio-off"}


def build_parser() -> argparse.ArgumentParser:
    p = _ArgumentParser(prog="iotlight.py", description="Sells light for tokens on a Waves chain.")
    where = "configuration file (default ./iotlight.toml, then /etc/iotlight/iotlight.toml)"
    p.add_argument("-c", "--config", help=where)
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    p.add_argument("--version", action="version", version="iotlight %s" % __version__)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    cmd = {n: sub.add_parser(n, help=h, description=_DESCRIPTIONS[n]) for n, (_, h) in COMMANDS.items()}
    check, issue, monitor, pay = cmd["check"], cmd["issue"], cmd["monitor"], cmd["pay"]
    offline = "validate the configuration and the seed file only; ask no node"
    check.add_argument("--offline", action="store_true", help=offline)
    monitor.add_argument("--json", action="store_true", help="print the raw JSON messages, one per line")
    issue.add_argument("--seed-file", required=True, help="seed file of the issuing account (mode 0600)")
    issue.add_argument("--name", required=True, help="token name, 4 to 16 bytes")
    issue.add_argument("--quantity", required=True, help="supply in whole tokens")
    issue.add_argument("--decimals", required=True, type=int, help="decimals, 0 to 8")
    issue.add_argument("--description", default="", help="token description")
    pay.add_argument("--seed-file", required=True, help="seed file of the paying account (mode 0600)")
    pay.add_argument("--asset", help="token id (default: payment.asset_id), or WAVES for the chain's coin")
    pay.add_argument("recipient", help="address, alias:<chain>:<name> or a bare alias name")
    pay.add_argument("amount", help="whole tokens, decimals allowed (e.g. 2.5)")
    return p


class _LogFormatter(logging.Formatter):
    """One line per event; timestamps only on a terminal (journald adds its own); credentials and tokens
    in URLs masked, whichever library logged them (redact_url)."""

    def __init__(self, tty: bool):
        super().__init__(("%(asctime)s " if tty else "") + "%(levelname)s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        return redact_url(super().format(record).replace("\n", " | "))


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogFormatter(sys.stderr.isatty()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("httpx", "httpcore", "websockets", "asyncio", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        setup_logging(args.verbose)
        command = args.command or "run"
        config = load_config(find_config(args.config), require_asset=command not in _NO_ASSET_NEEDED)
        return COMMANDS[command][0](config, args)
    except IotlightError as e:
        print("iotlight: %s" % e, file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:
        return 130


# =============================================================================
# 11. The dashboard page's assets
# =============================================================================
# The page Monitor serves at GET / (section 8h): HTML, CSS and script in one string, no CDN (it works offline).


def dashboard_csp() -> str:
    """The page's Content-Security-Policy: only its own script and style sheet run (by SHA-256 hash)."""
    bodies = [DASHBOARD_HTML.split("<%s>" % t, 1)[1].split("</%s>" % t, 1)[0] for t in ("script", "style")]
    hashes = tuple(
        "'sha256-%s'" % base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() for b in bodies
    )
    csp = "default-src 'none'; script-src %s; style-src %s; img-src 'self' data:; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    return csp % hashes


DASHBOARD_HTML = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="dark">
<title>iotlight</title>
<link rel="icon" href="data:,">
<style>
:root { --bg: #0b0e14; --card: #141924; --card2: #1b2130; --line: #262e40; --text: #e8ebf2; --muted: #98a1b6;
  --amber: #ffc94d; --green: #3ddc84; --red: #ff6b6b; --blue: #6cb6ff; --radius: 16px; }
* { box-sizing: border-box; }
html, body { margin: 0; background: var(--bg); color: var(--text);
  font: 16px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, Ubuntu, sans-serif; }
.num { font-variant-numeric: tabular-nums; }
.mono { font-family: ui-monospace, "SF Mono", Menlo, Consolas, "DejaVu Sans Mono", monospace; }
header { display: flex; align-items: center; gap: 12px; flex-wrap: wrap;
  padding: 14px clamp(12px, 2vw, 28px); border-bottom: 1px solid var(--line); }
.brand { font-weight: 700; font-size: clamp(1.2rem, 1.6vw, 1.7rem); letter-spacing: .02em; } .brand span { color: var(--amber); }
#meta { color: var(--muted); font-size: .9rem; order: 3; flex: 1 1 100%; }
#conn { margin-left: auto; padding: 5px 12px; border-radius: 999px; font-size: .85rem; font-weight: 600;
  background: var(--card2); color: var(--muted); border: 1px solid var(--line); white-space: nowrap; }
#conn::before { content: ""; display: inline-block; width: 8px; height: 8px; border-radius: 50%;
  margin-right: 7px; background: currentColor; vertical-align: 1px; }
#conn.live, #node-status.ok { color: var(--green); } #conn.offline, #node-status.down { color: var(--red); }
main { display: grid; gap: clamp(12px, 1.4vw, 22px); padding: clamp(12px, 1.6vw, 28px); grid-template-columns: minmax(0, 1fr);
  grid-template-areas: "warn" "lamp" "pay" "stats" "pays" "charts" "joy" "txs"; }
body.stale main { opacity: .55; transition: opacity .4s; }
#warnings { grid-area: warn; display: flex; flex-direction: column; gap: 8px; } #warnings:empty { display: none; }
#warnings div { background: #3a2a08; border: 1px solid var(--amber); color: var(--amber); border-radius: 12px;
  padding: 10px 14px; white-space: normal; word-break: break-word; }
a { color: var(--blue); } a.txid { font-size: .82rem; text-decoration: none; } a.txid:hover { text-decoration: underline; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: var(--radius);
  padding: clamp(14px, 1.4vw, 24px); min-width: 0; }
.card h2 { margin: 0 0 12px; font-size: .8rem; font-weight: 600; text-transform: uppercase; letter-spacing: .12em; color: var(--muted); }
#card-lamp { grid-area: lamp; } #card-pay { grid-area: pay; } #card-stats { grid-area: stats; } #card-joy { grid-area: joy; }
#card-pays { grid-area: pays; } #card-txs { grid-area: txs; } #card-charts { grid-area: charts; }
#card-lamp, .lamp-body, .lamp-info, .pay-body { display: flex; flex-direction: column; gap: 18px; }
.lamp-info { gap: 10px; justify-content: center; } .pay-body { gap: 14px; align-items: center; text-align: center; }
#matrix { display: grid; grid-template-columns: repeat(8, 1fr); gap: 5px; padding: 10px; background: #07090d;
  border-radius: 14px; border: 1px solid var(--line); width: 100%; max-width: 560px; margin: 0 auto; aspect-ratio: 1 / 1; }
#matrix .px { border-radius: 22%; background: #161b26; transition: background-color .25s, box-shadow .25s; }
.lamp-row { display: flex; align-items: center; gap: 14px; flex-wrap: wrap; }
#lamp-state { font-weight: 800; font-size: clamp(1.1rem, 2vw, 1.6rem); padding: 4px 14px; border-radius: 10px;
  background: var(--card2); color: var(--muted); letter-spacing: .08em; }
#lamp-state.on { background: var(--amber); color: #1d1500; box-shadow: 0 0 24px rgba(255, 201, 77, .45); }
#remaining { font-size: clamp(3rem, 7vw, 6.5rem); font-weight: 800; line-height: 1; letter-spacing: -.02em; }
#remaining.on, #price b { color: var(--amber); }
.bar { height: 10px; background: var(--card2); border-radius: 99px; overflow: hidden; }
#remaining-bar { height: 100%; width: 0; background: linear-gradient(90deg, #ff9f1c, var(--amber)); border-radius: 99px; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 14px; font-size: .82rem; color: var(--muted); }
.legend span { display: inline-flex; align-items: center; gap: 6px; } .legend span.current { color: var(--text); font-weight: 600; }
.legend i { width: 12px; height: 12px; border-radius: 3px; display: inline-block; }
.hint { color: var(--muted); font-size: .9rem; } #price { font-size: 1.05rem; }
.presets { display: flex; flex-wrap: wrap; gap: 8px; justify-content: center; }
.presets button { font: inherit; font-size: .9rem; padding: 8px 12px; border-radius: 10px; cursor: pointer;
  background: var(--card2); color: var(--text); border: 1px solid var(--line); min-height: 44px; }
.presets button.on { background: var(--amber); color: #1d1500; border-color: var(--amber); font-weight: 700; }
#pay-link { display: inline-block; padding: 10px 18px; border-radius: 10px; background: var(--amber); color: #1d1500;
  font-weight: 700; text-decoration: none; min-height: 44px; }
#pay-link.missing, #qr.missing { display: none; }
#qr { width: min(100%, 260px); aspect-ratio: 1 / 1; background: #fff; border-radius: 12px; padding: 6px; }
#address { font-size: clamp(.95rem, 1.1vw, 1.2rem); word-break: break-all; text-wrap: balance; user-select: all;
  background: var(--card2); padding: 10px 12px; border-radius: 10px; width: 100%; }
#asset { font-size: .8rem; color: var(--muted); word-break: break-all; }
.tiles { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 12px; }
.tile { background: var(--card2); border-radius: 12px; padding: 12px 14px; min-width: 0; }
.tile .label { color: var(--muted); font-size: .78rem; text-transform: uppercase; letter-spacing: .08em; }
.tile .value, .tile .sub, .who .mono { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.tile .value { font-size: clamp(1.35rem, 2.1vw, 2.2rem); font-weight: 700; }
.tile .sub, .who .when { color: var(--muted); font-size: .82rem; }
.pad { display: grid; grid-template-columns: repeat(3, 1fr); gap: 8px; width: min(100%, 220px); margin: 0 auto; aspect-ratio: 1 / 1; }
.pad div { border-radius: 14px; background: var(--card2); border: 1px solid var(--line); display: flex; align-items: center;
  justify-content: center; color: var(--muted); font-size: 1.4rem; transition: background-color .12s, color .12s, transform .12s; }
.pad div.on { background: var(--blue); color: #06121f; border-color: var(--blue); transform: scale(.94);
  box-shadow: 0 0 22px rgba(108, 182, 255, .55); }
.pad .gap { visibility: hidden; } #joy-last { text-align: center; margin-top: 10px; }
ul.list { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 8px; }
ul.list li { display: flex; align-items: center; justify-content: space-between; gap: 12px;
  background: var(--card2); border-radius: 12px; padding: 10px 14px; min-width: 0; }
ul.list li.empty { justify-content: center; color: var(--muted); background: transparent; border: 1px dashed var(--line); }
ul.list li.ignored { opacity: .75; border: 1px dashed var(--line); }
ul.list li.ignored .amount { color: var(--muted); text-decoration: line-through; }
.who { min-width: 0; overflow: hidden; } .who .mono { display: block; }
.what { text-align: right; white-space: nowrap; } .what .secs { color: var(--muted); font-size: .85rem; }
.what .amount { font-weight: 700; font-size: 1.15rem; color: var(--amber); }
.badge { font-size: .78rem; font-weight: 700; padding: 3px 10px; border-radius: 99px; text-transform: uppercase; letter-spacing: .06em; }
.badge.queued { background: #2a3142; color: var(--muted); } .badge.broadcast { background: #173152; color: var(--blue); }
.badge.confirmed { background: #123a25; color: var(--green); } .badge.failed { background: #451b1f; color: var(--red); }
.err { color: var(--red); font-size: .82rem; white-space: normal; word-break: break-word; }
.chart { width: 100%; height: auto; display: block; } .chart .line { fill: none; stroke: var(--blue); stroke-width: 2; }
.chart .sold-bar { fill: var(--amber); } .chart .axis { fill: var(--muted); font-size: 10px; }
.spark { display: grid; grid-template-columns: minmax(0, 1fr) auto; gap: 4px 10px; align-items: center; margin-top: 10px; }
.spark .now { font-weight: 700; white-space: nowrap; }
@media (min-width: 760px) {
  header { flex-wrap: nowrap; } #meta { order: 0; flex: 1 1 auto; }
  main { grid-template-columns: repeat(2, minmax(0, 1fr));
    grid-template-areas: "warn warn" "lamp lamp" "pay stats" "pay joy" "pays txs" "charts charts"; }
  .lamp-body { flex-direction: row; align-items: center; gap: clamp(18px, 3vw, 48px); }
  #matrix { flex: 0 0 auto; width: min(52%, 460px); margin: 0; } .lamp-info { flex: 1 1 auto; }
}
@media (min-width: 1280px) {
  main { grid-template-columns: repeat(4, minmax(0, 1fr));
    grid-template-areas: "warn warn warn warn" "lamp lamp pay stats" "lamp lamp pay joy" "pays pays txs charts"; }
  #matrix { width: min(52%, 46vh); } .lamp-body { flex: 1 1 auto; }
}
@media (min-width: 1280px) and (min-height: 760px) {
  /* a projector: one screen, no scrolling; the lists show as many rows as fit */
  body { height: 100vh; display: flex; flex-direction: column; }
  main { flex: 1 1 auto; min-height: 0; grid-template-rows: auto auto auto minmax(0, 1fr); }
  #card-pays, #card-txs, #card-charts { overflow: hidden; }
}
</style>
</head>
<body class="stale">
<header>
  <div class="brand">iot<span>light</span></div>
  <div id="meta">waiting for the device&hellip;</div>
  <div id="conn" class="connecting">connecting&hellip;</div>
</header>
<main>
  <div id="warnings" role="alert"></div>
  <section class="card" id="card-lamp">
    <h2>Light</h2>
    <div class="lamp-body">
      <div id="matrix" aria-label="LED matrix"></div>
      <div class="lamp-info">
        <div class="lamp-row"><span id="lamp-state" data-on="false">OFF</span><span class="hint" id="lamp-hint"></span></div>
        <div id="remaining" class="num" data-seconds="0">0:00</div>
        <div class="bar"><div id="remaining-bar"></div></div>
        <div class="legend" id="legend" aria-label="status pixel colours (bottom-right, while dark)"></div>
      </div>
    </div>
  </section>
  <section class="card" id="card-pay">
    <h2>Pay to light</h2>
    <div class="pay-body">
      <div id="price">&hellip;</div>
      <div class="presets" id="presets"></div>
      <img id="qr" class="missing" alt="QR code: pay the device">
      <a id="pay-link" class="missing" target="_blank" rel="noopener noreferrer">Open in wallet</a>
      <div id="address" class="mono">&hellip;</div>
      <div id="asset" class="mono"></div>
    </div>
  </section>
  <section class="card" id="card-stats">
    <h2>Device</h2>
    <div class="tiles">
      <div class="tile"><div class="label">Tokens</div><div class="value num" id="balance-token">&ndash;</div><div class="sub">token balance</div></div>
      <div class="tile"><div class="label">Coin</div><div class="value num" id="balance-coin">&ndash;</div><div class="sub" id="coin-name">for fees</div></div>
      <div class="tile"><div class="label">Node</div><div class="value" id="node-status">&ndash;</div><div class="sub" id="node-url"></div></div>
      <div class="tile"><div class="label">Height</div><div class="value num" id="node-height">&ndash;</div><div class="sub" id="outbox">outbox &ndash;</div></div>
    </div>
  </section>
  <section class="card" id="card-joy">
    <h2>Joystick</h2>
    <div class="pad" id="joystick">
      <div class="gap"></div><div id="joy-up">&#9650;</div><div class="gap"></div>
      <div id="joy-left">&#9664;</div><div id="joy-middle">&#9679;</div><div id="joy-right">&#9654;</div>
      <div class="gap"></div><div id="joy-down">&#9660;</div><div class="gap"></div>
    </div>
    <div id="joy-last" class="hint">no presses yet</div>
  </section>
  <section class="card" id="card-pays">
    <h2>Last payments</h2>
    <ul class="list" id="payments"><li class="empty">No payments yet</li></ul>
  </section>
  <section class="card" id="card-txs">
    <h2>Data transactions</h2>
    <ul class="list" id="datatxs"><li class="empty">No Data transactions yet</li></ul>
  </section>
  <section class="card" id="card-charts">
    <h2>Light sold per hour, last 24 h</h2>
    <svg id="svg-ns" width="0" height="0" aria-hidden="true"></svg>
    <div id="chart-sold"></div>
    <div id="telemetry"></div>
  </section>
</main>
<script>
"use strict";
(function () {
  var MAX_ROWS = 8, KEPT = 50;   // rows shown in a list; events kept per list
  var $ = function (id) { return document.getElementById(id); };
  var token = new URLSearchParams(location.search).get("token");
  var tokenQuery = token ? "?token=" + encodeURIComponent(token) : "";
  var wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" + tokenQuery;
  var S = null, offset = 0;   // the last state, updated by events; server clock minus this clock, seconds
  var lightSpan = 0;          // remaining time when the lamp was last (re)lit, for the bar
  var joyTimer = null, chosen = 1, qrFor = null;   // chosen: index of the chosen "pay" preset

  // -- helpers -------------------------------------------------------------------
  // Fill element e (or the one with id e): content is its text (written only when it changed: the lamp's
  // is set every frame) or an array of its new children (nodes or strings); then its class and attributes.
  function set(e, content, cls, attrs) {
    if (typeof e === "string") e = $(e);
    if (Array.isArray(content)) { e.textContent = ""; e.append.apply(e, content); }
    else if (content !== undefined && e.textContent !== content) e.textContent = content;
    if (cls !== undefined) e.className = cls;
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function el(tag, cls, content, attrs) { return set(document.createElement(tag), content, cls || undefined, attrs); }
  var SVG = $("svg-ns").namespaceURI;   // the SVG namespace, from an inline <svg> (no URL in the page)
  function svg(tag, attrs, content) { return set(document.createElementNS(SVG, tag), content, undefined, attrs); }
  function list(a) { return Array.isArray(a) ? a.slice() : []; }
  function now() { return Date.now() / 1000 + offset; }
  function short(s) { s = String(s == null ? "?" : s); return s.length > 14 ? s.slice(0, 6) + "\u2026" + s.slice(-5) : s; }
  function group(intText) { return intText.replace(/\B(?=(\d{3})+(?!\d))/g, ","); }
  function units(amount, decimals, maxFrac) {
    if (typeof amount !== "number") return "\u2013";
    if (typeof decimals !== "number") return group(String(amount)) + " units";
    var text = (amount / Math.pow(10, decimals)).toFixed(Math.min(decimals, maxFrac));
    if (text.indexOf(".") >= 0) text = text.replace(/0+$/, "").replace(/\.$/, "");
    return text.replace(/^[^.]*/, group);   // commas in the whole part only
  }
  function duration(s) {
    s = Math.max(0, Math.ceil(s));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), ss = String(s % 60).padStart(2, "0");
    return h ? h + ":" + String(m).padStart(2, "0") + ":" + ss : m + ":" + ss;
  }
  function ago(ts) {
    if (typeof ts !== "number" || isNaN(ts)) return "";
    var d = Math.max(0, now() - ts);
    if (d < 5) return "just now";
    if (d < 90) return Math.round(d) + " s ago";
    if (d < 5400) return Math.round(d / 60) + " min ago";
    if (d < 172800) return Math.round(d / 3600) + " h ago";
    return new Date(ts * 1000).toLocaleDateString();
  }
  function when(ts) { return el("span", "when", ago(ts), { "data-ts": String(ts) }); }   // kept fresh by tickAges
  function coinName(chain) { return (chain === "W" || chain === "T" || chain === "S") ? "WAVES" : "coin"; }
  function tokenName() { return (S && S.token && S.token.name) ? S.token.name : "tokens"; }
  function decimals() {
    if (S && S.token && typeof S.token.decimals === "number") return S.token.decimals;
    return S && S.balance ? S.balance.decimals : null;
  }
  // a transaction id: a link to the explorer (monitor.explorer_url) when there is one
  function txLink(id, label) {
    var t = S && S.links ? S.links.explorer : "", text = label || short(id);
    if (!id || typeof t !== "string" || !/^https?:\/\//.test(t)) return el("span", "mono txid", text);
    var href = t.split("{id}").join(encodeURIComponent(id));
    return el("a", "mono txid", text, { href: href, target: "_blank", rel: "noopener noreferrer", title: id });
  }
  var REASONS = { wrong_asset: "another token", below_minimum: "below the minimum payment", failed: "failed on chain",
    not_verified: "signature does not verify", malformed: "malformed transaction", cut_by_cap: "the light was already at its cap" };

  // -- matrix, light and countdown -------------------------------------------------
  var cells = [];
  for (var i = 0; i < 64; i++) cells.push($("matrix").appendChild(el("div", "px", undefined, { "data-rgb": "0,0,0" })));
  function renderMatrix() {
    var px = (S && Array.isArray(S.matrix)) ? S.matrix : [];
    cells.forEach(function (c, i) {
      var p = Array.isArray(px[i]) ? px[i] : [0, 0, 0], rgb = [p[0] | 0, p[1] | 0, p[2] | 0].join(",");
      if (c.getAttribute("data-rgb") === rgb) return;
      var lit = rgb !== "0,0,0";
      c.setAttribute("data-rgb", rgb);
      c.style.backgroundColor = lit ? "rgb(" + rgb + ")" : "";
      c.style.boxShadow = lit ? "0 0 14px rgba(" + rgb + ",.55)" : "";
    });
  }
  function remainingNow() {
    var l = S && S.light;
    if (!l || !l.on) return 0;
    if (typeof l.until === "number") return Math.max(0, l.until - now());
    return typeof l.remaining === "number" ? Math.max(0, l.remaining - (now() - (l._at || now()))) : 0;
  }
  function renderLight() {
    var rem = remainingNow(), on = rem > 0;
    set("lamp-state", on ? "ON" : "OFF", on ? "on" : "", { "data-on": on ? "true" : "false" });
    set("remaining", duration(rem), "num" + (on ? " on" : ""), { "data-seconds": rem.toFixed(1) });
    if (rem > lightSpan) lightSpan = rem;
    $("remaining-bar").style.width = (on && lightSpan > 0 ? Math.min(100, 100 * rem / lightSpan) : 0) + "%";
    set("lamp-hint", on ? "until " + new Date((now() + rem - offset) * 1000).toLocaleTimeString() : "send tokens to light it");
  }
  function frame() { renderLight(); requestAnimationFrame(frame); }
  function setLight(l) { S.light = Object.assign({ on: false }, l, { _at: now() }); lightSpan = remainingNow(); }

  // -- the other cards ---------------------------------------------------------
  function renderHeader() {
    set("meta", [S.version && "v" + S.version, S.chain_id && "chain " + S.chain_id, S.backend].filter(Boolean).join(" \u00b7 "));
    set("address", S.address || "\u2013");
    set("asset", S.asset_id ? (S.token && S.token.name ? S.token.name + " \u00b7 " : "token ") + S.asset_id : "");
  }
  function renderStats() {
    var b = S.balance || {}, n = S.node || {}, ob = S.outbox || {};
    set("balance-token", units(b.token, b.decimals, 8));
    set("balance-coin", units(b.coin, 8, 4));
    set("coin-name", coinName(S.chain_id) + " for fees");
    set("node-status", n.ok === true ? "online" : (n.ok === false ? "offline" : "\u2013"),
      "value " + (n.ok === true ? "ok" : (n.ok === false ? "down" : "")));
    set("node-url", n.ok === false && n.error ? n.error : (n.url || ""), undefined, { title: n.url || "" });
    set("node-height", typeof n.height === "number" ? group(String(n.height)) : "\u2013");
    set("outbox", (typeof ob.pending === "number" ? "outbox " + ob.pending + " pending" : "outbox \u2013")
      + (ob.no_funds ? " \u00b7 no funds for fees" : ""), "sub" + (ob.no_funds ? " err" : ""));   // in full: the warnings
  }
  function renderPayments() {
    var rows = S.payments.concat(S.ignored), dec = decimals();
    rows.sort(function (a, b) { return (b.ts || 0) - (a.ts || 0); });
    set("payments", rows.length ? rows.slice(0, MAX_ROWS).map(function (p) {
      var ignored = typeof p.reason === "string", own = !ignored || !p.asset_id || p.asset_id === S.asset_id;
      var amount = own ? units(p.amount, dec, 8) : group(String(p.amount)) + " units";
      if (own && typeof dec === "number") amount += " " + tokenName();
      var secs = ignored ? "not counted: " + (REASONS[p.reason] || p.reason) : "+" + duration(p.seconds || 0) + " light";
      var sender = el("span", "mono", p.sender || "?", { title: p.sender || "" });
      return el("li", ignored ? "ignored" : "", [el("div", "who", [sender, txLink(p.id), when(p.ts)]),
        el("div", "what", [el("div", "amount", amount), el("div", "secs", secs)])], { "data-id": p.id || "" });
    }) : [el("li", "empty", "No payments yet")]);
  }
  function renderDataTxs() {
    set("datatxs", S.datatxs.length ? S.datatxs.slice(0, MAX_ROWS).map(function (t) {
      var label = txLink(t.id, (t.kind === "refund" ? "refund " : "") + short(t.id));
      var detail = t.status === "failed" && t.error ? el("span", "err", t.error) : when(t.ts);
      return el("li", "", [el("div", "who", [label, detail]), el("span", "badge " + (t.status || ""), t.status || "?")],
        { "data-status": t.status || "" });
    }) : [el("li", "empty", "No Data transactions yet")]);
  }
  function renderJoystick(ev, live) {
    ["up", "down", "left", "right", "middle"].forEach(function (d) { $("joy-" + d).classList.remove("on"); });
    clearTimeout(joyTimer);
    var last = ev ? (ev.direction || "?") + " " + (ev.action || "") + (live ? "" : " \u00b7 " + ago(ev.ts)) : "no presses yet";
    set("joy-last", last);
    var cell = ev && $("joy-" + ev.direction);
    if (live && cell && ev.action !== "released") {
      cell.classList.add("on");
      joyTimer = setTimeout(function () { cell.classList.remove("on"); }, 1500);
    }
  }
  function tickAges() { document.querySelectorAll("[data-ts]").forEach(function (e) { set(e, ago(parseFloat(e.getAttribute("data-ts")))); }); }
  function renderLegend() {
    var legend = (S.status && S.status.legend) || [], current = "starting";
    if (S.outbox && S.outbox.no_funds) current = "no_funds";
    else if (S.node && S.node.ok === false) current = "node_down";
    else if (S.node && S.node.ok) current = "ok";
    set("legend", legend.length ? [el("span", "", "status pixel:")].concat(legend.map(function (item) {
      var dot = el("i"), rgb = (item.rgb || [0, 0, 0]).map(function (c) { return Math.min(255, c * 3); });
      dot.style.backgroundColor = "rgb(" + rgb.join(",") + ")";
      return el("span", item.name === current ? "current" : "", [dot, item.meaning], { "data-status": item.name });
    })) : []);
  }
  function renderWarnings() { set("warnings", list(S.warnings).map(function (line) { return el("div", "", line); })); }
  function renderPay() {
    var p = S.price || {}, presets = S.pay || [], name = tokenName(), extra = [], price = set("price", []);
    if (typeof p.seconds_per_token === "number") {
      price.append("1 " + name + " = ", el("b", "", duration(p.seconds_per_token) + " of light"));
      if (typeof p.max_seconds === "number") extra.push("at most " + duration(p.max_seconds) + " at a time");
      if (typeof p.min_tokens === "number" && p.min_tokens > 0) extra.push("minimum " + p.min_tokens + " " + name);
      if (p.refund === "excess") extra.push("what the cap cuts off is refunded");
      if (extra.length) price.append(el("div", "hint", extra.join(" \u00b7 ")));
    }
    if (chosen >= presets.length) chosen = Math.max(0, presets.length - 1);
    set("presets", presets.map(function (preset, i) {
      var text = preset.amount + " " + name + " \u00b7 " + duration(preset.seconds);
      var b = el("button", i === chosen ? "on" : "", text, { type: "button", "data-amount": preset.amount });
      b.onclick = function () { chosen = i; renderPay(); };
      return b;
    }));
    var preset = presets[chosen], link = preset && preset.link, a = S.address || "";
    if (link) set("pay-link", "Pay " + preset.amount + " " + name + " in the wallet", "", { href: link });
    else set("pay-link", undefined, "missing").removeAttribute("href");
    var src = a ? "/qr.svg" + (tokenQuery ? tokenQuery + "&" : "?") + "a=" + encodeURIComponent(a)
                  + (link ? "&amount=" + encodeURIComponent(preset.amount) : "") : "";
    if (src && src !== qrFor) {
      qrFor = src;
      set("qr", undefined, undefined, { src: src,
        alt: link ? "QR code: pay " + preset.amount + " " + name + " in a wallet" : "QR code of the device address" });
    }
  }
  $("qr").onload = $("qr").onerror = function (ev) { this.className = ev.type === "load" ? "" : "missing"; };
  function soldNow() {   // the 24 hourly buckets, moved on when the hour changed since the snapshot
    var sold = S.light_sold;
    if (!sold || !Array.isArray(sold.seconds)) return null;
    var hourMs = 3600000, current = Math.floor(now() * 1000 / hourMs) * hourMs;
    var last = sold.start_ms + (sold.seconds.length - 1) * hourMs;
    while (last < current) { sold.seconds.shift(); sold.seconds.push(0); sold.start_ms += hourMs; last += hourMs; }
    return sold;
  }
  function renderSold() {
    var box = set("chart-sold", []), sold = soldNow();
    if (!sold) return;
    var n = sold.seconds.length, W = 480, H = 120, pad = 16, w = W / n, total = 0;
    var max = Math.max.apply(null, sold.seconds.concat([60]));
    var hour = function (i) { return new Date(sold.start_ms + i * 3600000).getHours() + ":00"; };
    var g = svg("svg", { viewBox: "0 0 " + W + " " + (H + pad), "class": "chart", role: "img",
      "aria-label": "seconds of light sold in each of the last " + n + " hours" });
    sold.seconds.forEach(function (v, i) {
      var h = Math.round((H - 4) * v / max);
      total += v;
      g.append(svg("rect", { x: (i * w + 1).toFixed(1), y: H - h, width: (w - 2).toFixed(1), height: h, "class": "sold-bar" },
        [svg("title", {}, hour(i) + " \u2013 " + duration(v))]));
      if (i % 6 === 0) g.append(svg("text", { x: (i * w + 2).toFixed(1), y: H + pad - 3, "class": "axis" }, hour(i)));
    });
    box.append(g, el("div", "hint", "in all " + duration(total) + " of light in the last " + n + " hours"));
  }
  var SENSORS = [["temperature_c", "Temperature", " \u00b0C"], ["humidity_pct", "Humidity", " %"], ["pressure_hpa", "Pressure", " hPa"]];
  function renderTelemetry() {
    var box = set("telemetry", []), points = S.telemetry;
    if (!Array.isArray(points) || !points.length) return;
    box.append(el("h2", "", "Sensors, last 6 h"));
    SENSORS.forEach(function (sensor) {
      var key = sensor[0], label = sensor[1], unit = sensor[2];
      var pts = points.filter(function (p) { return typeof p[key] === "number"; });
      if (!pts.length) return;
      var vals = pts.map(function (p) { return p[key]; });
      var lo = Math.min.apply(null, vals), hi = Math.max.apply(null, vals), span = (hi - lo) || 1;
      var t0 = pts[0].ts, dt = (pts[pts.length - 1].ts - t0) || 1, W = 300, H = 40;
      var line = pts.map(function (p) {
        return ((p.ts - t0) / dt * (W - 4) + 2).toFixed(1) + "," + (H - 3 - (p[key] - lo) / span * (H - 6)).toFixed(1);
      });
      var chart = svg("svg", { viewBox: "0 0 " + W + " " + H, "class": "chart", role: "img", "data-sensor": key,
        "aria-label": label + " from " + lo.toFixed(1) + " to " + hi.toFixed(1) + unit },
        [svg("polyline", { "class": "line", points: line.join(" ") })]);
      var range = el("div", "hint", label + " (" + lo.toFixed(1) + "\u2013" + hi.toFixed(1) + unit + ")");
      box.append(el("div", "spark", [el("div", "", [range, chart]), el("div", "now", vals[vals.length - 1].toFixed(1) + unit)]));
    });
  }

  // -- messages ----------------------------------------------------------------
  function upsertDataTx(txs, ev) { return [ev].concat(txs.filter(function (t) { return t.id !== ev.id; })).slice(0, KEPT); }
  function applyState(m) {
    S = m;
    setLight(m.light);
    S.payments = list(m.payments);
    S.ignored = list(m.ignored);
    S.datatxs = list(m.data_txs).sort(function (a, b) { return (a.ts || 0) - (b.ts || 0); }).reduce(upsertDataTx, []);
    renderHeader(); renderStats(); renderMatrix(); renderPay(); renderLegend(); renderWarnings();
    renderPayments(); renderDataTxs(); renderSold(); renderTelemetry(); renderJoystick(m.joystick || null, false);
  }
  function onMessage(m) {
    if (typeof m.ts === "number") offset = m.ts - Date.now() / 1000;
    if (m.type === "state") return applyState(m);
    if (!S) return;
    switch (m.type) {
      case "light": setLight({ on: !!m.on, remaining: m.remaining, until: m.until }); break;
      case "matrix": S.matrix = m.pixels; renderMatrix(); break;
      case "payment":
        S.payments = [m].concat(S.payments).slice(0, KEPT); renderPayments();
        var sold = soldNow();
        if (sold && typeof m.seconds === "number") sold.seconds[sold.seconds.length - 1] += m.seconds;
        renderSold(); break;
      case "ignored": S.ignored = [m].concat(S.ignored).slice(0, KEPT); renderPayments(); break;
      case "data_tx": S.datatxs = upsertDataTx(S.datatxs, m); renderDataTxs(); break;
      case "refund":
        S.datatxs = upsertDataTx(S.datatxs, { id: m.id, status: m.status, error: m.error, ts: m.ts, kind: "refund" });
        renderDataTxs(); break;
      case "node": S.node = { url: m.url, ok: m.ok, height: m.height, error: m.error }; renderStats(); renderLegend(); break;
      case "outbox": S.outbox = { pending: m.pending, no_funds: m.no_funds }; renderStats(); renderLegend(); break;
      case "warnings": S.warnings = list(m.lines); renderWarnings(); break;
      case "token": S.token = { name: m.name, decimals: m.decimals }; renderHeader(); renderPay(); renderPayments(); break;
      case "pay": S.pay = list(m.presets); renderPay(); break;
      case "telemetry": S.telemetry = (S.telemetry || []).concat([m]).slice(-720); renderTelemetry(); break;
      case "balance":
        S.balance = { coin: m.coin, token: m.token, decimals: m.decimals }; renderStats(); renderPayments(); break;
      case "joystick": S.joystick = m; renderJoystick(m, true); break;
    }
  }

  // -- connection with back-off --------------------------------------------------
  var delay = 0.5, retryAt = 0, retryTimer = null;
  function showRetry() {
    set("conn", "offline \u00b7 retry in " + Math.max(0, Math.ceil((retryAt - Date.now()) / 1000)) + " s", "offline");
  }
  function connect() {
    clearInterval(retryTimer);
    set("conn", "connecting\u2026", "connecting");
    var ws;
    try { ws = new WebSocket(wsUrl); } catch (e) { schedule(); return; }
    ws.onmessage = function (ev) {
      var m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      if (!m || typeof m !== "object") return;
      if (m.type === "state") { delay = 0.5; set("conn", "live", "live"); document.body.classList.remove("stale"); }
      onMessage(m);
    };
    ws.onclose = function () { document.body.classList.add("stale"); schedule(); };
  }
  function schedule() {
    var wait = delay * (0.8 + 0.4 * Math.random());
    delay = Math.min(delay * 2, 10);
    retryAt = Date.now() + wait * 1000;
    showRetry();
    retryTimer = setInterval(showRetry, 500);
    setTimeout(connect, wait * 1000);
  }

  setInterval(tickAges, 1000);
  requestAnimationFrame(frame);
  connect();
})();
</script>
</body>
</html>
"""


if __name__ == "__main__":
    sys.exit(main())
