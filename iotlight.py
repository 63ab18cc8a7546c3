#!/usr/bin/env python3
"""iotlight: a Raspberry Pi Sense HAT that sells light for tokens on a Waves chain.

Someone sends "IoT-Light" tokens to the device's address; the daemon sees the
transfer on the chain and lights the LED matrix for the time the payment bought.
Joystick presses (and, if enabled, temperature, humidity and pressure) go back
onto the chain as Data transactions signed with the device's own key. A local
WebSocket endpoint and a small web page show it all live.

Run it:   python3 iotlight.py [-c iotlight.toml] [-v] [run|keygen|address|check|
                                                  status|issue|pay|monitor]

Sections, lowest layer first (each uses only what stands above it; the one exception
is section 11, the page's assets, which the monitor reads when a browser asks):
   1. imports and constants
   2. errors (the error tree and the exit status of each class)
   3. configuration (CONFIG_SCHEMA: every key once; parse_config, load_config)
   4. Waves cryptography (base58, hashes, keys, addresses, signatures)
   5. transaction bytes (legacy binary and protobuf), JSON, fees, limits
   6. core logic, pure: pricing, the light timer, the ledger rules, Data entries,
      back-off, rate limits, log-once
   7. edges: clock, store (7a, SQLite), node client (7b, httpx), sd_notify (7c),
      hardware (7d)
   8. services: what every loop uses (8a), liveness for the systemd watchdog (8b,
      Pulse), watcher (8c), lamp (8d), outbox (8e), telemetry (8f), monitor (8g:
      WebSocket server, terminal client)
   9. the daemon: wiring and shutdown
  10. command line and main()
  11. the dashboard page's assets (HTML, CSS, script), kept last like a template

Banners: "# ===" a section, "# --- 7a." a part of one, "# --" a piece of a part.

Who calls whom. main() (10) parses the command line and load_config() (3), then
runs one cmd_* function. cmd_run builds the edges (Store, NodeClient, a Hardware
backend behind HardwareRunner, the Clock) and hands them to Daemon (9), which
builds the services and runs each one's run(stop) loop as a task, plus its
watchdog. Watcher asks the NodeClient, checks each transfer (check_transfer_proof,
5-6), credits it through Store.credit_payments and tells the Daemon, which wakes
the Lamp and the Outbox. Lamp draws render_matrix() (7d, pure) through the hardware;
Outbox packs pending events into Data transactions (6), signs them (4-5), stores
them, then broadcasts. Every service waits through its Pulse (8b), which the
Daemon's watchdog reads. The Monitor (8g) only reads: Daemon.snapshot() for a new
client, Daemon.publish() for events. The pure sections (4-6) read no clock and do
no I/O: tests call them directly; tests/scenario.py runs the whole Daemon on a
virtual clock with the fake node behind httpx.MockTransport.

The user-facing contract (configuration keys, commands, monitor messages, Data
entries) is documented in README.md.
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
import glob
import hashlib
import hmac
import http
import importlib.util
import io
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
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    NoReturn,
    Optional,
    Sequence,
    Tuple,
)

if TYPE_CHECKING:  # websockets itself is imported where the monitor starts: less memory when it is off
    from websockets.asyncio.server import ServerConnection  # noqa: F401

__version__ = "0.1.0"

log = logging.getLogger("iotlight")


# =============================================================================
# 2. Errors
# =============================================================================
#
# Each class says its exit status (exit_status, a class attribute; never set on an instance):
#
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


class NodeThrottled(NodeError):
    """The node (a public pool's nginx) answered 429 or 503: asked too often or too many at once."""

    def __init__(self, message: str, *, retry_after: Optional[float] = None):
        super().__init__(message)
        self.retry_after = retry_after


class NodeRejected(NodeError):
    """The node answered with an API error body ({"error": n, "message": ...})."""

    def __init__(self, message: str, *, status: int = 0, code: Optional[int] = None):
        super().__init__(message)
        self.status = status
        self.code = code


class StateError(IotlightError):
    """The state file cannot be opened or written (locked, a full disk); the file may be fine."""


class StateDamaged(StateError):
    """The state file is damaged and was moved aside (exit status 3)."""

    exit_status = 3


# =============================================================================
# 3. Configuration
# =============================================================================
#
# The keys of the user-facing contract (README.md documents them) plus a few of our own
# (marked "ours"). CONFIG_SCHEMA is the one list of them: each key names its check, default,
# what is expected, and the Config attribute it fills (with the conversion). To add a key:
# one ConfigKey line in CONFIG_SCHEMA and one typed attribute in Config (a test holds the two
# lists equal); parse_config builds Config from the schema and names a key only to check it
# against another or to resolve it (paths, links).

DEFAULT_CONFIG_PATHS = ("./iotlight.toml", "/etc/iotlight/iotlight.toml")

HARDWARE_BACKENDS = ("auto", "sense-hat", "sense-emu", "terminal", "none")
FORKS = ("auto", "waves", "0bs")
REFUND_POLICIES = ("none", "excess")


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


def _as_is(v: Any) -> Any:
    return v


def _url_tuple(v: List[str]) -> Tuple[str, ...]:
    return tuple(u.rstrip("/") for u in v)


@dataclasses.dataclass(frozen=True)
class ConfigKey:
    """One configuration key: its check, default (None: required), what is expected (for the
    error line), the Config attribute it fills and how the TOML value becomes that attribute."""

    check: Callable[[Any], bool]
    default: Any
    expected: str
    attr: str
    convert: Callable[[Any], Any] = _as_is


CONFIG_SCHEMA: Dict[str, ConfigKey] = {
    "node.urls": ConfigKey(
        lambda v: _is_str_list(v) and len(v) > 0,
        ["https://nodes-testnet.wavesnodes.com"],
        "a non-empty list of http(s) URLs",
        "node_urls",
        _url_tuple,
    ),
    "node.chain_id": ConfigKey(
        lambda v: _is_str(v) and len(v) == 1 and 33 <= ord(v) <= 126,
        "T",
        'one character, e.g. "W" mainnet, "T" testnet, "S" stagenet, "Z" 0bsnetwork',
        "chain_id",
    ),
    "node.poll_interval": ConfigKey(
        _in_range(0.1, 60), 1.0, "a number of seconds from 0.1 to 60", "poll_interval", float
    ),
    "node.confirmations": ConfigKey(_int_range(0, 100), 0, "an integer from 0 to 100", "confirmations"),
    "node.timeout": ConfigKey(
        _in_range(0.5, 300), 10.0, "a number of seconds from 0.5 to 300", "timeout", float
    ),
    "node.fork": ConfigKey(
        _one_of(*FORKS),
        "auto",
        '"auto" (0bs rules on chain "Z", Waves rules elsewhere), "waves" or "0bs"',
        "fork",
    ),  # ours
    "node.sweep_interval": ConfigKey(
        _in_range(5, 3600), 300.0, "a number of seconds from 5 to 3600", "sweep_interval", float
    ),  # ours
    "node.list_rate": ConfigKey(
        _in_range(0, 600),
        15.0,
        "requests per minute from 0 (unlimited, for an own node) to 600",
        "list_rate",
        float,
    ),  # ours
    "node.max_answer_bytes": ConfigKey(
        _int_range(64 * 1024, 256 * 1024 * 1024),
        8 * 1024 * 1024,
        "an integer from 65536 to 268435456 (bytes)",
        "max_answer_bytes",
    ),  # ours
    "device.seed_file": ConfigKey(_is_str, "device.seed", "a path", "seed_file"),  # made absolute
    "device.address": ConfigKey(_is_str, "", 'a base58 address or ""', "address"),
    "device.state_file": ConfigKey(_is_str, "iotlight.db", "a path", "state_file"),  # made absolute
    "payment.asset_id": ConfigKey(_is_str, None, "the base58 id of the token that buys light", "asset_id"),
    "payment.seconds_per_token": ConfigKey(
        _positive, 1.0, "a number greater than 0", "seconds_per_token", float
    ),
    "payment.max_seconds": ConfigKey(_positive, 3600.0, "a number greater than 0", "max_seconds", float),
    "payment.count_history": ConfigKey(_is_bool, False, "true or false", "count_history"),
    "payment.min_tokens": ConfigKey(
        lambda v: _is_number(v) and 0 <= v < 1e15,
        0.0,
        "a number of whole tokens, 0 or more",
        "min_tokens",
        float,
    ),
    "payment.refund": ConfigKey(_one_of(*REFUND_POLICIES), "none", '"none" or "excess"', "refund"),
    "light.color": ConfigKey(
        _is_color, [255, 255, 255], "[r, g, b] with integers from 0 to 255", "color", tuple
    ),
    "light.countdown": ConfigKey(_is_bool, True, "true or false", "countdown"),
    "light.gpio_pin": ConfigKey(
        lambda v: _is_int(v) and (v == -1 or 0 <= v <= 27),
        -1,
        "a BCM pin number from 0 to 27, or -1 (off)",
        "gpio_pin",
    ),
    "light.gpio_active_high": ConfigKey(
        _is_bool, True, "true or false (false for relay boards that switch on low)", "gpio_active_high"
    ),
    "data.joystick": ConfigKey(_is_bool, True, "true or false", "joystick"),
    "data.telemetry_interval": ConfigKey(
        lambda v: _is_number(v) and (v == 0 or 1 <= v <= 86400),
        0.0,
        "0 (off) or a number of seconds from 1 to 86400",
        "telemetry_interval",
        float,
    ),
    "data.fee": ConfigKey(
        _int_range(0, 10**12), 0, "0 (automatic) or a fee in the smallest coin unit", "fee"
    ),
    "data.coalesce_window": ConfigKey(
        _in_range(0, 60), 1.0, "a number of seconds from 0 to 60", "coalesce_window", float
    ),  # ours
    "data.max_tx_per_minute": ConfigKey(
        _int_range(1, 120), 20, "an integer from 1 to 120", "max_tx_per_minute"
    ),  # ours
    "hardware.backend": ConfigKey(
        _one_of(*HARDWARE_BACKENDS),
        "auto",
        "one of " + ", ".join('"%s"' % b for b in HARDWARE_BACKENDS),
        "backend",
    ),
    "monitor.host": ConfigKey(_is_str, "127.0.0.1", "a host name or IP address", "monitor_host", str.strip),
    "monitor.port": ConfigKey(_int_range(0, 65535), 8765, "an integer from 0 (off) to 65535", "monitor_port"),
    "monitor.token": ConfigKey(_is_str, "", "a string", "monitor_token"),
    "monitor.max_clients_per_address": ConfigKey(
        _int_range(1, 1000), 10, "an integer from 1 to 1000", "monitor_max_clients_per_address"
    ),  # ours
    "monitor.wallet_url": ConfigKey(
        _is_str,
        "auto",
        '"auto" (the public web wallet of node.chain_id), '
        '"" (none) or an https:// link with {asset}, {address} and {amount}',
        "wallet_url",
    ),  # "auto" resolved
    "monitor.explorer_url": ConfigKey(
        _is_str,
        "auto",
        '"auto" (the public explorer of node.chain_id), "" (none) or an https:// link with {id}',
        "explorer_url",
    ),  # "auto" resolved
}

# The public web wallet's payment link and the public explorer of each Waves network
# ("auto" above). The payment link is the WX Network (waves.exchange) Payment API:
# /#send/{assetId}?recipient=...&amount=<whole tokens>&strict (strict: the wallet shows the
# amount as given). Explorer: wavesexplorer.com, with the network in the path.
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


@dataclasses.dataclass(frozen=True)
class Config:
    """A validated configuration; paths are absolute. One attribute per CONFIG_SCHEMA key
    (ConfigKey.attr), plus `path`."""

    path: str
    node_urls: Tuple[str, ...]
    chain_id: str
    poll_interval: float
    confirmations: int
    timeout: float
    fork: str
    sweep_interval: float
    list_rate: float
    max_answer_bytes: int
    seed_file: str
    address: str
    state_file: str
    asset_id: str
    seconds_per_token: float
    max_seconds: float
    count_history: bool
    min_tokens: float
    refund: str
    color: Tuple[int, int, int]
    countdown: bool
    gpio_pin: int
    gpio_active_high: bool
    joystick: bool
    telemetry_interval: float
    fee: int
    coalesce_window: float
    max_tx_per_minute: int
    backend: str
    monitor_host: str
    monitor_port: int
    monitor_token: str
    wallet_url: str = ""  # "auto" resolved; "" = no payment link
    explorer_url: str = ""  # "auto" resolved; "" = no explorer links
    monitor_max_clients_per_address: int = 10

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
        if isinstance(v, dict) and v:
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


# --- secrets in URLs ---------------------------------------------------------
# A node URL may carry credentials (https://user:pass@host/, ?apikey=...). Whatever shows a URL
# (log lines, error messages, check, status, the monitor and its dashboard) shows redact_url(url);
# requests use the real one. The log formatter passes every line through it too, which keeps
# the monitor's ?token= out of the access log of any library.

REDACTED = "***"
# a query parameter whose name contains one of these carries a secret
_SECRET_PARAM = re.compile(r"key|token|secret|pass|pwd|auth|sig|session|cred", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s?#]*)@")
_QUERY_PARAM = re.compile(r"(?P<head>[?&;](?P<name>[A-Za-z0-9_.\-\[\]]+)=)(?P<value>[^&;#\s\"'<>]*)")


def _mask_userinfo(m: "re.Match") -> str:
    user, colon, _ = m.group("userinfo").partition(":")
    # user:password keeps the user; a lone user part is often the key itself (https://KEY@host)
    return "%s%s@" % (m.group("scheme"), "%s:%s" % (user, REDACTED) if colon else REDACTED)


def _mask_param(m: "re.Match") -> str:
    if m.group("value") and _SECRET_PARAM.search(m.group("name")):
        return m.group("head") + REDACTED
    return m.group(0)


def redact_url(text: str) -> str:
    """A URL (or any text with URLs or a request path in it) fit to show: the password of
    user:password@ and the values of key-like query parameters (apikey, token, key, password,
    secret, auth, sig, ...) become ***. "https://u:pw@n/x?apikey=k&a=1" -> "https://u:***@n/x?apikey=***&a=1"."""
    if "@" in text:
        text = _URL_USERINFO.sub(_mask_userinfo, text)
    if "=" in text:
        text = _QUERY_PARAM.sub(_mask_param, text)
    return text


def parse_config(table: Dict[str, Any], path: str, *, require_asset: bool = True) -> Config:
    """Validate a parsed TOML table and return a Config; ConfigError names file and key."""
    name = path

    def fail(key: str, msg: str) -> ConfigError:
        return ConfigError("%s: %s: %s" % (name, key, msg))

    flat: Dict[str, Any] = {}
    known_sections = sorted({k.split(".")[0] for k in CONFIG_SCHEMA})
    for section, value in table.items():
        if not isinstance(value, dict):
            hint = difflib.get_close_matches(section, known_sections, 1)
            raise fail(
                section,
                "unknown key at top level; keys live in sections [%s]%s"
                % ("], [".join(known_sections), (" (did you mean [%s]?)" % hint[0]) if hint else ""),
            )
        if section not in known_sections:
            hint = difflib.get_close_matches(section, known_sections, 1)
            raise fail(
                "[%s]" % section,
                "unknown section%s"
                % (
                    (" (did you mean [%s]?)" % hint[0])
                    if hint
                    else "; sections are [%s]" % "], [".join(known_sections)
                ),
            )
        flat.update(_flatten(value, section + "."))
    for key in flat:
        if key not in CONFIG_SCHEMA:
            hint = difflib.get_close_matches(key, list(CONFIG_SCHEMA), 1, 0.6)
            raise fail(key, "unknown key%s" % ((" (did you mean %s?)" % hint[0]) if hint else ""))
    values: Dict[str, Any] = {}
    for key, spec in CONFIG_SCHEMA.items():
        if key in flat:
            v = flat[key]
            if not spec.check(v):
                raise fail(key, "%s is not valid: expected %s" % (_toml_repr(v), spec.expected))
            values[key] = v
        elif spec.default is None:
            if require_asset:
                raise fail(key, "missing: expected %s (set it in [%s])" % (spec.expected, key.split(".")[0]))
            values[key] = ""
        else:
            values[key] = spec.default
    base = Path(path).resolve().parent

    for url in values["node.urls"]:
        if not (url.startswith("http://") or url.startswith("https://")) or len(url) < 10:
            raise fail(
                "node.urls",
                "%s is not valid: expected http:// or https:// URLs" % _toml_repr(redact_url(url)),
            )
    chain = values["node.chain_id"]
    if values["device.address"]:
        try:
            parse_address(values["device.address"], chain)
        except EncodingError as e:
            raise fail(
                "device.address", "%s is not valid: %s" % (_toml_repr(values["device.address"]), e)
            ) from None
    asset = values["payment.asset_id"]
    if asset:
        try:
            parse_asset_id(asset, coin=None)
        except EncodingError as e:
            raise fail(
                "payment.asset_id",
                "%s is not valid: %s (expected %s)"
                % (_toml_repr(asset), e, CONFIG_SCHEMA["payment.asset_id"].expected),
            ) from None
    for key in ("device.seed_file", "device.state_file"):
        if not values[key].strip():
            raise fail(key, "must not be empty: expected a path")
        values[key] = str(base / values[key])
    host = values["monitor.host"].strip()
    if not host:
        raise fail("monitor.host", "must not be empty")
    if values["monitor.port"] and not _is_loopback(host) and not values["monitor.token"]:
        raise fail(
            "monitor.token",
            "required when monitor.host (%s) is not a loopback address: "
            "set a secret token, clients then pass ?token=..." % _toml_repr(host),
        )
    for key, table, needs in (
        ("monitor.wallet_url", WALLET_URLS, ("{address}",)),
        ("monitor.explorer_url", EXPLORER_URLS, ("{id}",)),
    ):
        v = values[key].strip()
        if v == "auto":
            v = table.get(chain, "")
        elif v and (not v.startswith(("https://", "http://")) or any(n not in v for n in needs)):
            raise fail(
                key, "%s is not valid: expected %s" % (_toml_repr(values[key]), CONFIG_SCHEMA[key].expected)
            )
        values[key] = v
    return Config(
        path=str(Path(path).resolve()),
        **{spec.attr: spec.convert(values[key]) for key, spec in CONFIG_SCHEMA.items()},
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
        import tomllib  # novermin (3.11+, guarded)
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
# Keys, addresses and signatures as in the Waves protocol notes (waves-protocol.md), sections
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
    if isinstance(address, str) and address.startswith("address:"):
        address = address[len("address:") :]
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
    chain_byte(chain_id)
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
        raise EncodingError("alias name %r has characters outside a-z 0-9 - . @ _: %s" % (name, "".join(bad)))
    return "alias:%s:%s" % (chain_id, name)


def parse_recipient(text: str, chain_id: str) -> str:
    """An address (checked) or an alias (canonical form) as typed by a user."""
    if not isinstance(text, str):
        raise EncodingError("a recipient is an address or an alias, not %r" % (text,))
    if text.startswith("alias:"):
        return parse_alias(text, chain_id)
    if len(text) >= 34 and all(c in _B58_INDEX for c in text.replace("address:", "", 1)):
        parse_address(text, chain_id)
        return text.replace("address:", "", 1)
    return parse_alias(text, chain_id)


def parse_asset_id(asset_id: Optional[str], *, coin: Optional[str] = "WAVES", what: str = "") -> bytes:
    """The one check of an asset id: a token's base58 id -> its 32 bytes; the chain's own coin
    (None, "", "WAVES" or `coin` such as "ZBS", any case) -> b"". coin=None: only a token will do.
    EncodingError otherwise ("an asset id is 32 bytes, not 26"), after "`what`: " when given."""
    if coin is not None and (not asset_id or asset_id.upper() in ("WAVES", coin.upper())):
        return b""
    try:
        raw = b58decode(asset_id)  # type: ignore[arg-type]
        if len(raw) != 32:
            raise EncodingError("an asset id is 32 bytes, not %d" % len(raw))
    except EncodingError as e:
        raise EncodingError("%s: %s" % (what, e) if what else str(e)) from None
    return raw


_ED25519_L = 2**252 + 27742317777372353535851937790883648493
_P25519 = 2**255 - 19


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
        hashlib.sha512(b"\xfe" + b"\xff" * 31 + a_bytes + message + z).digest()
    )
    big_r = nb.crypto_scalarmult_ed25519_base_noclamp(r)
    h = nb.crypto_core_ed25519_scalar_reduce(hashlib.sha512(big_r + ed_pub + message).digest())
    s = bytearray(nb.crypto_core_ed25519_scalar_add(nb.crypto_core_ed25519_scalar_mul(h, a_red), r))
    s[31] |= sign_bit
    return big_r + bytes(s)


def ed25519_public_key(public_key: bytes, sign_bit: int) -> bytes:
    """The Edwards form of an X25519 public key, with the given sign bit."""
    u = int.from_bytes(public_key, "little") & ((1 << 255) - 1)
    inverse = pow(u + 1, -1, _P25519) if (u + 1) % _P25519 else 0  # u = -1: a degenerate key
    y = (u - 1) * inverse % _P25519
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
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FEE_UNIT = 100_000
MAX_ATTACHMENT = 140
DATA_MAX_ENTRIES = 100
DATA_MAX_VALUE = 32_767
DATA_MAX_PAYLOAD = 165_835  # Waves with feature 17: sum of key and value sizes
DATA_MAX_V1_BYTES = 153_600  # Waves before feature 17 and 0bs: full signed v1 bytes
DATA_ENTRY_TYPES = {"integer": 0, "boolean": 1, "binary": 2, "string": 3}


def _i64(v: Any, what: str) -> bytes:
    if not _is_int(v) or not INT64_MIN <= v <= INT64_MAX:
        raise EncodingError("%s must be a 64-bit integer, not %r" % (what, v))
    return struct.pack(">q", v)


def _utf8(text: str, what: str) -> bytes:
    """UTF-8 bytes of a text the node stores; a lone surrogate has none."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise EncodingError("%s is not valid Unicode (a lone surrogate?)" % what) from None


# The node reads base64 with java.util.Base64's basic decoder: the standard alphabet, nothing else;
# the final unit may leave its padding out, but padding that is there is complete and comes last
# ("AAAA=", "AA=", "AAA==" and "A" are refused; "AA" and "AAA" are read as "AA==" and "AAA=").
_NODE_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?")


def base64_node_decode(text: str) -> bytes:
    """Bytes of a base64 string (with or without the `base64:` prefix) exactly as the node decodes
    them; EncodingError for what the node refuses."""
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


def _pk(tx: Dict[str, Any]) -> bytes:
    pk = b58decode(tx.get("senderPublicKey", ""))
    if len(pk) != 32:
        raise EncodingError("senderPublicKey must be 32 bytes, not %d" % len(pk))
    return pk


def _asset_json(asset_id: Optional[str]) -> Optional[str]:
    """An asset id as the node's JSON has it: the chain's own coin is null, not "" or "WAVES"."""
    return None if asset_id in (None, "", "WAVES") else asset_id


def _legacy_asset(asset_id: Optional[str], what: str = "assetId") -> bytes:
    raw = parse_asset_id(asset_id, what=what)
    return b"\x01" + raw if raw else b"\x00"


def _tx_chain(tx: Dict[str, Any]) -> str:
    c = tx.get("chainId")
    if _is_int(c):
        if not 0 < c < 128:
            raise EncodingError("chainId must be the byte of one ASCII character, not %r" % (c,))
        return chr(c)
    if isinstance(c, str) and len(c) == 1:
        chain_byte(c)
        return c
    rec = tx.get("recipient") or ""
    items = tx.get("transfers")
    if not rec and isinstance(items, list) and items and isinstance(items[0], dict):
        rec = items[0].get("recipient") or ""
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
    return _pb_bytes(1, parse_asset_id(asset_id, what="assetId")) + _pb_int(2, amount)


def _pb_recipient(recipient: str, chain_id: str) -> bytes:
    if recipient.startswith("alias:"):
        return _pb_bytes(2, parse_alias(recipient, chain_id).split(":", 2)[2].encode())
    return _pb_bytes(1, parse_address(recipient, chain_id)[2:22])


def _pb_transaction(tx: Dict[str, Any], field: int, data: bytes) -> bytes:
    fee = tx.get("fee")
    _i64(fee, "fee")
    _i64(tx.get("timestamp"), "timestamp")
    return (
        _pb_int(1, chain_byte(_tx_chain(tx)))
        + _pb_bytes(2, _pk(tx))
        + _pb_bytes(3, _pb_amount(tx.get("feeAssetId"), fee), force=True)
        + _pb_int(4, tx["timestamp"])
        + _pb_int(5, tx["version"])
        + _pb_bytes(field, data, force=True)
    )


def _data_value(entry: Dict[str, Any]) -> Tuple[Optional[str], Any]:
    """(type, python value) of a JSON data entry; binary decoded to bytes."""
    key = entry.get("key")
    if not isinstance(key, str) or not key:
        raise EncodingError("a data entry needs a non-empty string key")
    _utf8(key, "data key %r" % key)
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
        _utf8(value, "data entry %r: string value" % key)
    elif kind == "binary":
        if not isinstance(value, str):
            raise EncodingError("data entry %r: binary value must be a base64: string" % key)
        try:
            value = base64_node_decode(value)
        except EncodingError:
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


def _decimals(tx: Dict[str, Any]) -> int:
    d = tx.get("decimals", 0)
    if not _is_int(d) or not 0 <= d <= 8:
        raise EncodingError("decimals must be from 0 to 8, not %r" % (d,))
    return d


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
        return (
            head
            + _pk(tx)
            + _legacy_asset(tx.get("assetId"))
            + _legacy_asset(tx.get("feeAssetId"), "feeAssetId")
            + _i64(tx.get("timestamp"), "timestamp")
            + _i64(tx.get("amount"), "amount")
            + _i64(tx.get("fee"), "fee")
            + _legacy_recipient(tx.get("recipient"), chain)
            + _short(_attachment(tx), "attachment")
        )
    if t == TX_TRANSFER and v == 3:
        chain = _tx_chain(tx)
        data = (
            _pb_bytes(1, _pb_recipient(tx["recipient"], chain), force=True)
            + _pb_bytes(2, _pb_amount(tx.get("assetId"), tx.get("amount")), force=True)
            + _pb_bytes(3, _attachment(tx))
        )
        return _pb_transaction(tx, 104, data)
    if t == TX_DATA and v == 1:
        entries = tx.get("data", [])
        return (
            b"\x0c\x01"
            + _pk(tx)
            + struct.pack(">H", len(entries))
            + b"".join(_legacy_data_entry(e) for e in entries)
            + _i64(tx.get("timestamp"), "timestamp")
            + _i64(tx.get("fee"), "fee")
        )
    if t == TX_DATA and v == 2:
        return _pb_transaction(tx, 112, _data_payload(tx))
    if t == TX_ISSUE and v in (1, 2):
        head = b"\x03" if v == 1 else b"\x03\x02" + bytes([chain_byte(_tx_chain(tx))])
        body = (
            head
            + _pk(tx)
            + _short(_utf8(str(tx.get("name", "")), "name"), "name")
            + _short(_utf8(str(tx.get("description", "")), "description"), "description")
            + _i64(tx.get("quantity"), "quantity")
            + bytes([_decimals(tx)])
            + bytes([1 if tx.get("reissuable") else 0])
        )
        if v == 1:
            return body + _i64(tx.get("fee"), "fee") + _i64(tx.get("timestamp"), "timestamp")
        script = tx.get("script")
        script_bytes = b"\x00"
        if script:
            script_bytes = b"\x01" + _short(base64_node_decode(script), "script")
        return body + _i64(tx.get("fee"), "fee") + _i64(tx.get("timestamp"), "timestamp") + script_bytes
    if t == TX_ISSUE and v == 3:
        script = tx.get("script")
        data = (
            _pb_bytes(1, _utf8(str(tx.get("name", "")), "name"))
            + _pb_bytes(2, _utf8(str(tx.get("description", "")), "description"))
            + _pb_int(3, tx.get("quantity"))
            + _pb_int(4, _decimals(tx))
            + _pb_int(5, 1 if tx.get("reissuable") else 0)
            + _pb_bytes(6, base64_node_decode(script) if script else b"")
        )
        return _pb_transaction(tx, 103, data)
    if t == TX_MASS_TRANSFER and v == 1:
        chain = _tx_chain(tx)
        items = _mass_items(tx)
        return (
            b"\x0b\x01"
            + _pk(tx)
            + _legacy_asset(tx.get("assetId"))
            + struct.pack(">H", len(items))
            + b"".join(_legacy_recipient(i["recipient"], chain) + _i64(i["amount"], "amount") for i in items)
            + _i64(tx.get("timestamp"), "timestamp")
            + _i64(tx.get("fee"), "fee")
            + _short(_attachment(tx), "attachment")
        )
    if t == TX_MASS_TRANSFER and v == 2:
        chain = _tx_chain(tx)
        items = b"".join(
            _pb_bytes(
                2,
                _pb_bytes(1, _pb_recipient(i["recipient"], chain), force=True) + _pb_int(2, i["amount"]),
                force=True,
            )
            for i in _mass_items(tx)
        )
        data = (
            _pb_bytes(1, parse_asset_id(tx.get("assetId"), what="assetId"))
            + items
            + _pb_bytes(3, _attachment(tx))
        )
        return _pb_transaction(tx, 111, data)
    raise EncodingError("unsupported transaction type %r version %r" % (t, v))


def tx_id(tx: Dict[str, Any]) -> str:
    return b58encode(blake2b256(tx_body_bytes(tx)))


def tx_signed_bytes(tx: Dict[str, Any]) -> bytes:
    """The wire form: legacy `[0x00] body proofs`, v1 `type sig body`, protobuf SignedTransaction."""
    body = tx_body_bytes(tx)
    proofs = [b58decode(p) for p in tx.get("proofs", [])]
    t, v = tx["type"], tx.get("version", 1)
    if t in (TX_TRANSFER, TX_ISSUE) and v == 1:
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


# --- Data entries: limits and fees -------------------------------------------


def data_payload_size(entries: Sequence[Dict[str, Any]]) -> int:
    """Sum of UTF-8 key lengths and value sizes (integer 8, boolean 1, bytes, delete 0)."""
    total = 0
    for e in entries:
        kind, value = _data_value(e)
        total += len(e["key"].encode("utf-8"))
        if kind is not None:
            total += len(_data_value_bytes(kind, value))
    return total


def validate_data_entries(
    entries: Sequence[Dict[str, Any]], *, version: int = 1, rules: str = "waves"
) -> None:
    """Refuse entries the node would reject: count, keys, value and total size."""
    if not entries:
        raise EncodingError("a Data transaction needs at least one entry")
    if len(entries) > DATA_MAX_ENTRIES:
        raise EncodingError(
            "a Data transaction holds at most %d entries, not %d" % (DATA_MAX_ENTRIES, len(entries))
        )
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
        raise EncodingError(
            "data entries total %d bytes, more than %d" % (data_payload_size(entries), DATA_MAX_PAYLOAD)
        )


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
        return max(5_000_000, FEE_UNIT * (1 + (n + 1) // 2))
    return FEE_UNIT * (1 + (n + 1) // 2) + (400_000 if smart_asset else 0)


def issue_fee(rules: str = "waves", *, nft: bool = False) -> int:
    if rules == "0bs":
        return 500 * 10**8
    return FEE_UNIT if nft else 1000 * FEE_UNIT


def build_data_tx(
    keys: KeyPair,
    entries: List[Dict[str, Any]],
    *,
    timestamp: int,
    chain_id: str,
    fee: int = 0,
    rules: str = "waves",
    version: int = 1,
    random_z: Optional[bytes] = None,
) -> Dict[str, Any]:
    """A signed Data transaction; fee 0 computes the minimum for its size, and a fee below that
    minimum (which the node would refuse for ever) is raised to it."""
    if rules == "0bs" and version != 1:
        raise EncodingError("0bs nodes accept Data version 1 only, not %r" % (version,))
    if not _is_int(fee) or not 0 <= fee <= INT64_MAX:
        raise EncodingError(
            "fee must be 0 (automatic) or a positive integer of the smallest unit, not %r" % (fee,)
        )
    validate_data_entries(entries, version=version, rules=rules)
    tx: Dict[str, Any] = {
        "type": TX_DATA,
        "version": version,
        "senderPublicKey": b58encode(keys.public_key),
        "fee": fee or 1,
        "timestamp": timestamp,
        "chainId": chain_byte(chain_id),
        "data": list(entries),
    }
    tx["fee"] = max(fee, data_fee(tx, rules))
    if rules == "0bs" or version == 1:
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
) -> Dict[str, Any]:
    """A signed Transfer v2 (legacy binary: accepted by Waves and 0bs nodes). The chain's own
    coin (asset_id None, "" or "WAVES") is null in the JSON, as the node wants it."""
    if not _is_int(amount) or amount <= 0:
        raise EncodingError("amount must be a positive integer of the smallest unit, not %r" % (amount,))
    if not _is_int(fee) or fee <= 0:
        raise EncodingError("fee must be a positive integer of the smallest unit, not %r" % (fee,))
    if not isinstance(attachment, bytes):
        raise EncodingError("attachment must be bytes, not %r" % (attachment,))
    if len(attachment) > MAX_ATTACHMENT:
        raise EncodingError("attachment is %d bytes, more than %d" % (len(attachment), MAX_ATTACHMENT))
    tx = {
        "type": TX_TRANSFER,
        "version": 2,
        "senderPublicKey": b58encode(keys.public_key),
        "assetId": _asset_json(asset_id) if parse_asset_id(asset_id, what="assetId") else None,
        "recipient": parse_recipient(recipient, chain_id),
        "amount": amount,
        "attachment": b58encode(attachment),
        "fee": fee,
        "feeAssetId": _asset_json(fee_asset_id) if parse_asset_id(fee_asset_id, what="feeAssetId") else None,
        "timestamp": timestamp,
        "chainId": chain_byte(chain_id),
    }
    return sign_tx(tx, keys.private_key, random_z)


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
) -> Dict[str, Any]:
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
    if not _is_int(fee) or fee <= 0:
        raise EncodingError("fee must be a positive integer of the smallest unit, not %r" % (fee,))
    tx = {
        "type": TX_ISSUE,
        "version": 2,
        "senderPublicKey": b58encode(keys.public_key),
        "name": name,
        "description": description,
        "quantity": quantity,
        "decimals": decimals,
        "reissuable": reissuable,
        "script": None,
        "fee": fee,
        "timestamp": timestamp,
        "chainId": chain_byte(chain_id),
    }
    return sign_tx(tx, keys.private_key, random_z)


# =============================================================================
# 6. Core logic: pricing, the light timer, the ledger rules, Data entries
# =============================================================================
#
# Pure functions and small value objects: they take values (transactions,
# `now`) and return values; no clock reads, no I/O, no logging.


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
    """Add `seconds` to a light that ends at `until` (in the past when dark), capped at now + max_seconds.
    A payment that fits under the cap is granted whole (excess exactly 0: no float dust to refund)."""
    start = max(until, now)
    cap_end = now + max_seconds
    if start + seconds <= cap_end:
        return Grant(start=start, until=max(start + seconds, until), seconds=seconds, excess=0.0)
    granted = max(0.0, cap_end - start)
    return Grant(start=start, until=max(cap_end, until), seconds=granted, excess=seconds - granted)


def refund_units(amount: int, seconds: float, excess: float) -> int:
    """The part of a payment of `amount` smallest units (that bought `seconds`) to give back when
    `excess` of those seconds were cut by the cap: the floor of the unused fraction, never more
    than was paid (exact rational arithmetic on the float inputs, so no rounding up)."""
    if amount <= 0 or seconds <= 0 or excess <= 0:
        return 0
    if excess >= seconds:
        return amount
    return min(amount, math.floor(amount * fractions.Fraction(excess) / fractions.Fraction(seconds)))


def below_minimum(amount: int, decimals: int, min_tokens: float) -> bool:
    """Whether a payment of `amount` smallest units is fewer than `min_tokens` whole tokens
    (compared exactly: 0.1 in the TOML means 0.1, not 0.1000000000000000055...)."""
    return amount < fractions.Fraction(repr(float(min_tokens))) * 10**decimals


def tokens_text(amount: int, decimals: int, name: str = "", *, trim: bool = True) -> str:
    """The one amount formatter: smallest units as whole tokens (or coins, 8 decimals), exact.
    (150, 2) -> "1.5"; trim=False keeps every decimal: "1.50"; with a name: "1.5 IoT-Light".
    A negative amount keeps its sign: (-150, 2) -> "-1.5"."""
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
    return (
        template.replace("{asset}", quote(asset, safe=""))
        .replace("{address}", quote(address, safe=""))
        .replace("{amount}", quote(amount, safe="."))
    )


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
    """The dashboard's "pay" buttons: for a few light times up to the cap, the token amount that
    buys at least that long (rounded up to the token's decimals, at least the minimum payment)
    and the wallet link for it. Unknown decimals: whole tokens."""
    places = 0 if decimals is None else decimals
    out, seen = [], set()
    for preset in PAY_PRESET_SECONDS:
        seconds = min(preset, max_seconds)  # the last button buys the cap
        units = max(math.ceil(seconds / seconds_per_token * 10**places - 1e-9), min_units, 1)
        if units not in seen:
            seen.add(units)
            amount = tokens_text(units, places)
            out.append(
                {
                    "amount": amount,
                    "units": units,
                    "seconds": round(payment_seconds(units, places, seconds_per_token), 3),
                    "link": payment_link(template, asset=asset, address=address, amount=amount),
                }
            )
        if preset >= max_seconds:
            break
    return out


@dataclasses.dataclass
class LightTimer:
    """The lamp's end time on a monotonic clock, so wall-clock jumps neither extend nor cut it.

    `deadline` and `span_start` are monotonic seconds; `wall_offset` converts them
    to Unix time for storage and display (wall = monotonic + wall_offset).
    """

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


def _recipient_matches(recipient: Any, mine: Iterable[str]) -> bool:
    if not isinstance(recipient, str):
        return False
    return recipient.replace("address:", "", 1) in mine


def classify_transfer(tx: Dict[str, Any], *, asset_id: str, mine: Iterable[str]) -> Tuple[int, Optional[str]]:
    """What a transfer or mass transfer sends to one of `mine` (the address and its aliases):
    (amount, None) for a payment in `asset_id`; (amount, reason) for one that lights nothing,
    reason `failed` (applicationStatus other than succeeded) or `wrong_asset` (another token,
    or the chain's coin); (0, None) when it sends the device nothing."""
    kind = tx.get("type")
    to_me = 0
    if kind == TX_TRANSFER:
        amount = tx.get("amount")
        if _recipient_matches(tx.get("recipient"), mine) and _is_int(amount) and amount > 0:
            to_me = amount
    elif kind == TX_MASS_TRANSFER:
        for item in tx.get("transfers") or []:
            if not isinstance(item, dict):
                raise ValueError("mass transfer item is not an object")
            amount = item.get("amount")
            if _recipient_matches(item.get("recipient"), mine) and _is_int(amount) and amount > 0:
                to_me += amount
    if to_me <= 0:
        return 0, None
    status = tx.get("applicationStatus")
    if status is not None and status != "succeeded":
        return to_me, "failed"
    if tx.get("assetId") != asset_id:
        return to_me, "wrong_asset"
    return to_me, None


def payment_amount(tx: Dict[str, Any], *, asset_id: str, mine: Iterable[str]) -> int:
    """Amount of `asset_id` that a transfer or mass transfer sends to one of `mine`
    (the address and its aliases); 0 when it is no such payment or did not succeed."""
    amount, reason = classify_transfer(tx, asset_id=asset_id, mine=mine)
    return 0 if reason else amount


def _int_within(v: Any, lo: int, hi: int) -> bool:
    return _is_int(v) and lo <= v <= hi


def _str_or_none(v: Any, longest: int = 200) -> bool:
    return v is None or (isinstance(v, str) and len(v) <= longest)


def check_tx_shape(tx: Any) -> Dict[str, Any]:
    """A transaction from a node listing, or ValueError naming what is malformed: the fields the
    watcher reads have their documented JSON types and ranges (amounts and fees 0 to 2^63-1,
    at most 100 mass-transfer items), so one bad item can be skipped without stopping the rest."""
    if not isinstance(tx, dict):
        raise ValueError("transaction is not an object")
    txid = tx.get("id")
    if not isinstance(txid, str) or not 30 <= len(txid) <= 50:
        raise ValueError(
            "transaction id %r is not valid" % (txid if not isinstance(txid, str) else txid[:60],)
        )
    kind = tx.get("type")
    if not _int_within(kind, 1, 255):
        raise ValueError("transaction %s has no integer type" % txid)
    h = tx.get("height")
    if h is not None and not _int_within(h, 0, 2**31 - 1):
        raise ValueError("transaction %s has a non-integer height" % txid)
    for key in ("timestamp", "fee"):
        if tx.get(key) is not None and not _int_within(tx[key], 0, INT64_MAX):
            raise ValueError("transaction %s: %s is not an integer from 0 to 2^63-1" % (txid, key))
    for key in ("sender", "applicationStatus", "senderPublicKey"):
        if not _str_or_none(tx.get(key)):
            raise ValueError("transaction %s: %s is not a string" % (txid, key))
    if kind not in (TX_TRANSFER, TX_MASS_TRANSFER):
        return tx
    v, chain = tx.get("version"), tx.get("chainId")
    if v is not None and not _int_within(v, 1, 255):
        raise ValueError("transaction %s: version is not a small integer" % txid)
    if chain is not None and not (_int_within(chain, 0, 255) or (isinstance(chain, str) and len(chain) == 1)):
        raise ValueError("transaction %s: chainId is not a network byte" % txid)
    for key in ("assetId", "feeAssetId", "attachment", "signature"):
        if not _str_or_none(tx.get(key)):
            raise ValueError("transaction %s: %s is not a string or null" % (txid, key))
    proofs = tx.get("proofs")
    if proofs is not None and not (
        isinstance(proofs, list)
        and len(proofs) <= 8
        and all(isinstance(p, str) and len(p) <= 100 for p in proofs)
    ):
        raise ValueError("transaction %s: proofs is not a list of at most 8 strings" % txid)
    if kind == TX_TRANSFER:
        items = [tx]
    else:
        items = tx.get("transfers")
        if not isinstance(items, list) or len(items) > 100 or not all(isinstance(i, dict) for i in items):
            raise ValueError("transaction %s: transfers is not a list of at most 100 objects" % txid)
    for item in items:
        if not _int_within(item.get("amount"), 0, INT64_MAX):
            raise ValueError(
                "transaction %s: amount %s is not an integer from 0 to 2^63-1"
                % (txid, str(item.get("amount"))[:30])
            )
        if not isinstance(item.get("recipient"), str) or len(item["recipient"]) > 64:
            raise ValueError("transaction %s: recipient is not a string" % txid)
    return tx


def check_transfer_proof(tx: Dict[str, Any], chain_id: str) -> Optional[str]:
    """Why the node's JSON of a transfer or mass transfer is not a transaction its sender signed
    for `chain_id`; None when it is. The body is rebuilt from the JSON with the encoders of section
    5 (every version the watcher accepts: Transfer v1-v3, Mass Transfer v1-v2): its hash must be
    the id, its first proof (or v1 signature) the signature of senderPublicKey, and `sender` the
    address of that key on `chain_id`. Needs the full mass transfer, not the compact form."""
    try:
        if tx.get("type") not in (TX_TRANSFER, TX_MASS_TRANSFER):
            return "not a transfer"
        if _tx_chain(tx) != chain_id:
            return "made for another network"
        body = tx_body_bytes(tx)
        pk = _pk(tx)
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


# --- Data entries the device writes (the contract's table) -------------------


def joystick_entry(n: int, direction: str, action: str, ts_ms: int) -> Dict[str, Any]:
    value = json.dumps({"direction": direction, "action": action, "ts": ts_ms}, separators=(",", ":"))
    return {"key": "joystick_%d" % n, "type": "string", "value": value}


def receipt_span(text: Any) -> Dict[str, Any]:
    """The span a served_<id> receipt on chain records: {"seconds", "from", "until"} from its JSON
    text (KeyError, TypeError or ValueError when it is not one of ours)."""
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


# Data entry key -> reading field, for the three sensors.
TELEMETRY_FIELDS = (
    ("temperature_c100", "temperature_c"),
    ("humidity_pct100", "humidity_pct"),
    ("pressure_hpa100", "pressure_hpa"),
)


def telemetry_entries(reading: Dict[str, Optional[float]], ts_ms: int) -> List[Dict[str, Any]]:
    """The telemetry entries of a reading (failed sensors left out); EncodingError for a value
    whose hundredths do not fit a Data integer (64 bits)."""
    out = []
    for key, field in TELEMETRY_FIELDS:
        v = reading.get(field)
        if v is not None and math.isfinite(v):
            scaled = v * 100
            if not math.isfinite(scaled) or not INT64_MIN <= round(scaled) <= INT64_MAX:
                raise EncodingError("telemetry %s = %r does not fit a 64-bit Data integer" % (field, v))
            out.append({"key": key, "type": "integer", "value": int(round(scaled))})
    if out:
        out.append({"key": "telemetry_ts", "type": "integer", "value": ts_ms})
    return out


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
    """The longest prefix of `events` that fits one Data transaction: at most
    `max_entries` entries (counting the joystick_count entry), one telemetry set,
    and a payload of at most `max_payload` bytes."""
    taken: List[PendingEvent] = []
    entries = 0
    payload = 0
    has_press = has_telemetry = False
    for ev in events:
        counted = ev.kind in ("joystick", "count") and not has_press
        extra = len(ev.entries) + (1 if counted else 0)
        size = data_payload_size(ev.entries) + (len("joystick_count") + 8 if counted else 0)
        if ev.kind == "telemetry" and has_telemetry:
            break
        if taken and (entries + extra > max_entries or payload + size > max_payload):
            break
        taken.append(ev)
        entries += extra
        payload += size
        has_press = has_press or counted
        has_telemetry = has_telemetry or ev.kind == "telemetry"
    return taken


def events_to_entries(events: Sequence[PendingEvent]) -> List[Dict[str, Any]]:
    """The Data entries for a batch of events, with joystick_count when it has presses."""
    entries: List[Dict[str, Any]] = []
    top = 0
    for ev in events:
        entries.extend(ev.entries)
        top = max(top, ev.press_n)
    if top:
        entries.append({"key": "joystick_count", "type": "integer", "value": top})
    return entries


class Backoff:
    """The one back-off of this file (node client, service loops, the watcher's poll pace,
    monitor reconnects): AIMD on the rate of attempts, with jitter.

    failure() (an error, a 429/503) halves the rate: it returns the wait before the next
    attempt, drawn from [gap/2, gap], never less than a Retry-After the server sent, and then
    doubles the gap (up to `cap`). success() adds the rate back: at once to `base` when
    `recover` is 0, else by 1/(base*recover) per success (additive increase: `recover`
    good answers from a standstill back to full speed). interval() is the current gap shortened
    by up to `spread` at random, so that devices sharing one pool drift apart instead of asking
    in lockstep, while no gap is ever longer than asked (node.poll_interval is a promise about
    how soon a payment is seen)."""

    def __init__(
        self,
        base: float,
        cap: float,
        rng: Optional[random.Random] = None,
        *,
        recover: int = 0,
        spread: float = 0.1,
    ):
        self.base = base
        self.cap = max(cap, base)
        self.rng = rng or random.Random()
        self.recover = recover
        self.spread = spread
        self.gap = base  # seconds between attempts, before jitter
        self.failures = 0  # in a row

    def failure(self, retry_after: Optional[float] = None) -> float:
        wait = self.gap / 2 + self.rng.uniform(0, self.gap / 2)
        self.failures += 1
        self.gap = min(self.cap, self.gap * 2)
        return max(wait, retry_after or 0.0)

    def success(self) -> None:
        self.failures = 0
        if self.recover <= 0 or self.gap <= self.base:
            self.gap = self.base
        else:
            self.gap = max(self.base, 1.0 / (1.0 / self.gap + 1.0 / (self.base * self.recover)))

    def interval(self) -> float:
        return self.gap * (1 - self.rng.uniform(0, self.spread))


def backoff_delays(
    base: float = 1.0, cap: float = 60.0, rng: Optional[random.Random] = None
) -> Iterator[float]:
    """Successive waits of a Backoff after failure upon failure: base, 2 base, 4 base ... capped,
    each randomised (for loops that restart the sequence after a success)."""
    backoff = Backoff(base, cap, rng)
    while True:
        yield backoff.failure()


class RateLimiter:
    """A token bucket: `rate` tokens per `per` seconds, holding at most `burst`. Clock passed in."""

    def __init__(self, rate: float, per: float, burst: float, now: float):
        self.rate = rate / per if rate else 0.0
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def _refill(self, now: float) -> None:
        if self.rate:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def delay(self, now: float) -> float:
        """Seconds to wait before one more token is there (0 = now). Unlimited when rate is 0."""
        if not self.rate:
            return 0.0
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self, now: float) -> None:
        if self.rate:
            self._refill(now)
            self.tokens -= 1


class LogOnce:
    """The one "log this once" mechanism: which troubles were told, so that each is logged once
    until it is over. first(topic, detail) is True the first time a trouble is seen (log it then);
    over(topic) ends all the topic's troubles and is True when one had been told (log the recovery
    then). With `quiet` seconds a topic is told at most once in `quiet` seconds, even across an
    over() (a disk that flips between full and not: one line a minute). At most `limit`
    troubles are kept (a node sending endless garbage must not grow memory); past that all are
    forgotten. Pure: the caller passes `now`."""

    def __init__(self, *, limit: int = 1000, quiet: float = 0.0):
        self.limit = limit
        self.quiet = quiet
        self.told: Dict[Any, set] = {}  # topic -> the details told
        self.size = 0  # details told, all topics
        self.last: Dict[Any, float] = {}  # topic -> when it was last told (with `quiet`)

    def first(self, topic: Any, detail: Any = None, *, now: float = 0.0) -> bool:
        """True the first time this trouble (topic and detail) is seen since its topic was over."""
        if detail in self.told.get(topic, ()):
            return False
        if self.quiet and now - self.last.get(topic, -math.inf) < self.quiet:
            return False
        if self.size >= self.limit:
            self.told, self.last, self.size = {}, {}, 0
        self.told.setdefault(topic, set()).add(detail)
        self.size += 1
        if self.quiet:
            self.last[topic] = now
        return True

    def over(self, topic: Any) -> bool:
        """The topic's troubles are over; True when one of them had been told."""
        details = self.told.pop(topic, None)
        self.size -= len(details or ())
        return bool(details)


# =============================================================================
# 7. Edges: clock, store, node client, sd_notify, hardware
# =============================================================================


class Clock:
    """Wall time (Unix seconds) and monotonic time; tests pass their own."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


# --- 7a. Store: the SQLite state file ----------------------------------------

STATE_SCHEMA = 1
_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS payments (
    id TEXT PRIMARY KEY, sender TEXT, amount INTEGER NOT NULL, height INTEGER,
    seconds REAL NOT NULL, start_ms INTEGER NOT NULL, until_ms INTEGER NOT NULL, credited_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, height INTEGER);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, entries TEXT NOT NULL,
    press_n INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL, tx_id TEXT);
CREATE INDEX IF NOT EXISTS events_tx ON events (tx_id);
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY, tx TEXT NOT NULL, status TEXT NOT NULL, created_ms INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL, height INTEGER, error TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    updated_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_status ON outbox (status);
CREATE TABLE IF NOT EXISTS ignored (id TEXT PRIMARY KEY, reason TEXT NOT NULL, reported_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS refunds (
    payment_id TEXT PRIMARY KEY, tx_id TEXT NOT NULL, recipient TEXT NOT NULL, amount INTEGER NOT NULL,
    receipt TEXT NOT NULL, created_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS refunds_tx ON refunds (tx_id);
"""

OUTBOX_OPEN = ("queued", "broadcast")
STATE_CACHE_KIB = 1024
# What the state file keeps (see Store.prune): every handled transaction id, credited payment and
# confirmed Data transaction of the last PRUNE_KEEP_BLOCKS blocks below the final height, far more
# than the deepest rollback (100 blocks) and the watcher's stop rule need; the newest PRUNE_KEEP_RECENT
# payments and Data transactions whatever their age (for `status` and the monitor); everything still
# pending or open. Re-signed-away transactions and events found on chain by a reconcile go after
# PRUNE_DONE_AGE_MS.
PRUNE_KEEP_BLOCKS = 1440  # a day of Waves blocks
PRUNE_KEEP_RECENT = 50
PRUNE_DONE_AGE_MS = 7 * 86_400_000
PRUNE_BATCH = 5000  # rows per table and prune: a year-old file is cut down in steps


@dataclasses.dataclass(frozen=True)
class Credit:
    """A payment credited by Store.credit_payments, with what it bought."""

    id: str
    sender: str
    amount: int
    height: Optional[int]
    grant: Grant
    refund: Optional[Tuple[str, int]] = None  # (transfer id, amount) signed and queued with the credit


class Store:
    """The state file: payments credited, light end time, pending events, outbox.

    Every change that must survive a power cut is one SQLite transaction
    (WAL journal, synchronous=FULL): crediting a payment, moving the light's
    end time and queuing its receipt happen together or not at all.
    """

    RESERVE_BYTES = 1024 * 1024

    def __init__(self, path: str):
        self.path = path
        self.log = logging.getLogger("iotlight.store")
        self.failing: Optional[str] = None  # the write error of a trouble episode, logged once
        self.complaints = LogOnce(quiet=60.0)  # a disk that flips between full and not: one line a minute
        size = os.path.getsize(path) if os.path.exists(path) else 0
        if (
            os.path.exists(path)
            and size == 0
            and (
                os.path.exists(path + ".reserve")
                or (os.path.exists(path + "-wal") and os.path.getsize(path + "-wal") > 0)
            )
        ):
            # an empty database that was in use before (its reserve file or a non-empty WAL beside
            # it): cut short, say by a power cut on an SD card
            raise _damaged_state(path, "the database file is empty but was in use before")
        try:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA busy_timeout=5000")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            # the page cache is SQLite's only growing memory (default about 2 MB): 1 MiB holds the
            # indexes the daemon reads (a 10,000-payment catch-up included) on a 512 MB Pi
            self.db.execute("PRAGMA cache_size=-%d" % STATE_CACHE_KIB)
            if size > 0:
                row = self.db.execute("PRAGMA quick_check").fetchone()
                if not row or row[0] != "ok":
                    raise sqlite3.DatabaseError(row[0] if row else "integrity check failed")
            self.db.executescript(_SCHEMA_SQL)
        except sqlite3.OperationalError as e:
            # locked, disk full, an I/O error: the file may be fine, so it stays where it is
            with contextlib.suppress(Exception):
                self.db.close()
            raise StateError(
                "%s: cannot open the state file: %s (free some space, or stop the other "
                "process using it)" % (path, e)
            ) from None
        except sqlite3.DatabaseError as e:  # "not a database", "malformed", a failed quick_check
            with contextlib.suppress(Exception):
                self.db.close()
            raise _damaged_state(path, str(e)) from None
        except sqlite3.Error as e:
            raise StateError("%s: cannot open the state file: %s" % (path, e)) from None
        damaged = sorted(glob.glob(glob.escape(path) + ".damaged-*"))
        if damaged and self.get_meta("schema") is None:
            self.log.warning(
                "starting a fresh state file beside the damaged %s: payments made before now "
                "are not credited again",
                damaged[-1],
            )
        schema = self.get_meta("schema")
        if schema is None:
            self.set_meta("schema", str(STATE_SCHEMA))
        elif schema != str(STATE_SCHEMA):
            raise StateError(
                "%s: state file schema %s is not the supported %d" % (path, schema, STATE_SCHEMA)
            )
        self.keep_reserve()

    def keep_reserve(self) -> None:
        """Keep a small file of free space beside the state file: when the disk fills up, deleting it
        lets the pending writes through (see write_failed)."""
        reserve = self.path + ".reserve"
        if os.path.exists(reserve):
            return
        try:
            with open(reserve, "wb") as f:
                f.write(b"\0" * self.RESERVE_BYTES)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(reserve)

    def free_reserve(self) -> bool:
        """Delete the reserve file to make room; True when there was one."""
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
        except sqlite3.Error as e:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            raise self._write_failed(e) from None
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            raise
        if self.failing is not None and self.has_room():
            self.failing = None
            self.complaints.over("write")
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
        """While writes fail (a full disk): StateError until there is room and a write works.
        Services call it instead of writing, so the reserve stays for what must be saved."""
        if not self.has_room():
            raise StateError("%s: no room on its disk yet" % self.path)
        self.set_meta("probe", int(time.time()))

    def _write_failed(self, e: sqlite3.Error) -> StateError:
        """A StateError for a failed write, logged once per trouble episode (not per attempt)."""
        err = StateError("%s: cannot write the state file: %s" % (self.path, e))
        if self.failing is None:
            self.failing = str(e)
            if self.complaints.first("write", now=time.monotonic()):
                self.log.error("%s; what is pending is kept in memory and retried (free some space?)", err)
        return err

    # -- meta
    def get_meta(self, key: str, default: Optional[str] = None) -> Optional[str]:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: Any) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(value)))

    def bind_device(self, address: str, asset_id: str) -> None:
        """Tie the state file to one address; refuse another device's state."""
        known = self.get_meta("address")
        if known is None:
            self.set_meta("address", address)
            self.set_meta("first_start_ms", int(time.time() * 1000))
        elif known != address:
            raise StateError(
                "%s: this state file belongs to address %s, not %s; point device.state_file "
                "at another file" % (self.path, known, address)
            )
        if self.get_meta("asset_id") not in (None, asset_id):
            self.log.warning(
                "payment.asset_id changed from %s to %s; payments already credited stay credited",
                self.get_meta("asset_id"),
                asset_id,
            )
        self.set_meta("asset_id", asset_id)

    # -- what the node told us once about the payment token
    _TOKEN_FACT_KEYS = {"decimals": "decimals:%s", "name": "asset_name:%s", "scripted": "asset_scripted:%s"}

    def token_fact(self, asset_id: str, fact: str) -> Optional[str]:
        """A kept fact about a token ("decimals", "name" or "scripted"); None when not learnt."""
        return self.get_meta(self._TOKEN_FACT_KEYS[fact] % asset_id)

    def set_token_fact(self, asset_id: str, fact: str, value: Any) -> None:
        self.set_meta(self._TOKEN_FACT_KEYS[fact] % asset_id, value)

    # -- light
    def light(self) -> Tuple[float, float]:
        """(start, until) of the current or last lit span, Unix seconds."""
        return float(self.get_meta("light_start", "0")), float(self.get_meta("light_until", "0"))

    # -- payments
    def _rows_by_id(self, select: str, ids: Sequence[str]) -> List[Tuple[Any, ...]]:
        """Rows of `select` ("SELECT ... FROM t WHERE id IN (%s)") for the ids, in chunks SQLite takes.
        Each chunk is padded (repeating an id) to a power of two, so that a handful of statement
        texts serve every length: each distinct text is a prepared statement SQLite keeps in memory."""
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
        """Record handled ids with their heights; only what is new or moved is written (a sweep that
        finds the same transactions again writes nothing)."""
        known = self.seen_heights([i for i, _ in items]) if items else {}
        changed = [(i, h) for i, h in dict(items).items() if i not in known or known[i] != h]
        if not changed:
            return
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO seen (id, height) VALUES (?, ?)", changed)

    def mark_ignored(self, key: str, reason: str, now_ms: int) -> bool:
        """Remember that the ignored transfer `key` was reported; False when it was already."""
        with self.transaction() as db:
            return (
                db.execute(
                    "INSERT OR IGNORE INTO ignored (id, reason, reported_ms) VALUES (?, ?, ?)",
                    (key, reason, now_ms),
                ).rowcount
                == 1
            )

    def credited_ids(self, ids: Sequence[str]) -> set:
        return {r[0] for r in self._rows_by_id("SELECT id FROM payments WHERE id IN (%s)", ids)}

    def outbox_ids(self, ids: Sequence[str]) -> set:
        """The ids among `ids` of transactions this device signed and stored."""
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
    ) -> List[Credit]:
        """Credit (id, sender, amount, height, seconds) payments not credited before, in one
        transaction with the light's new end time and a receipt event each. `light` is the
        current (start, until) span as the running lamp sees it; the stored one otherwise.
        With `sign_refund` (payment.refund = "excess"), the part a payment's cap cut off goes
        back: sign_refund(payment_id, sender, amount) returns the signed transfer, stored in the outbox in
        the same transaction as the credit and the receipt that names it (exactly once)."""
        credits: List[Credit] = []
        with self.transaction() as db:
            if light is None:
                start_row = db.execute("SELECT value FROM meta WHERE key='light_start'").fetchone()
                until_row = db.execute("SELECT value FROM meta WHERE key='light_until'").fetchone()
                light = (float(start_row[0]) if start_row else 0.0, float(until_row[0]) if until_row else 0.0)
            span_start, until = light
            pruned_row = db.execute("SELECT value FROM meta WHERE key='pruned_height'").fetchone()
            pruned = int(pruned_row[0]) if pruned_row else 0
            for txid, sender, amount, height, seconds in payments:
                if db.execute("SELECT 1 FROM payments WHERE id = ?", (txid,)).fetchone():
                    continue
                if pruned and height is not None and height <= pruned:
                    continue  # at or below the pruned horizon: handled long ago, its row is gone
                receipt = (served or {}).get(txid)
                if receipt is not None:
                    # served before (its receipt is on chain): record it; the light only resumes
                    # up to the end that receipt gave, never beyond
                    start_ms, until_ms = receipt["from"], receipt["until"]
                    db.execute(
                        "INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            txid,
                            sender,
                            amount,
                            height,
                            receipt["seconds"],
                            start_ms,
                            until_ms,
                            int(now * 1000),
                        ),
                    )
                    if until_ms / 1000 > max(until, now):
                        if until <= now:
                            span_start = start_ms / 1000
                        until = until_ms / 1000
                    continue
                grant = extend_light(until, now, seconds, max_seconds)
                if until <= now:
                    span_start = now
                until = grant.until
                start_ms, until_ms = int(grant.start * 1000), int(grant.until * 1000)
                db.execute(
                    "INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (txid, sender, amount, height, grant.seconds, start_ms, until_ms, int(now * 1000)),
                )
                refund = (
                    self._queue_refund(
                        db,
                        txid,
                        sender,
                        refund_units(amount, seconds, grant.excess),
                        sign_refund,
                        grant,
                        int(now * 1000),
                    )
                    if sign_refund
                    else None
                )
                db.execute(
                    "INSERT INTO events (kind, entries, created_ms) VALUES ('receipt', ?, ?)",
                    (
                        json.dumps([receipt_entry(txid, grant.seconds, start_ms, until_ms, refund)]),
                        int(now * 1000),
                    ),
                )
                credits.append(Credit(txid, sender, amount, height, grant, refund))
            if (span_start, until) != tuple(light):
                db.execute("INSERT OR REPLACE INTO meta VALUES ('light_start', ?)", (repr(span_start),))
                db.execute("INSERT OR REPLACE INTO meta VALUES ('light_until', ?)", (repr(until),))
        return credits

    @staticmethod
    def _queue_refund(
        db: sqlite3.Connection,
        payment_id: str,
        sender: str,
        amount: int,
        sign_refund: Callable[[str, str, int], Dict[str, Any]],
        grant: Grant,
        now_ms: int,
    ) -> Optional[Tuple[str, int]]:
        """Inside credit_payments' transaction: sign the refund transfer and store it in the outbox
        (status queued) and in `refunds` with its receipt's span (for a re-signed refund's receipt)."""
        if amount <= 0 or not sender:
            return None
        tx = sign_refund(payment_id, sender, amount)
        db.execute(
            "INSERT INTO outbox (id, tx, status, created_ms, timestamp_ms, updated_ms) "
            "VALUES (?, ?, 'queued', ?, ?, ?)",
            (tx["id"], json.dumps(tx), now_ms, tx["timestamp"], now_ms),
        )
        span = {"seconds": grant.seconds, "from": int(grant.start * 1000), "until": int(grant.until * 1000)}
        db.execute(
            "INSERT INTO refunds VALUES (?, ?, ?, ?, ?, ?)",
            (payment_id, tx["id"], sender, amount, json.dumps(span), now_ms),
        )
        return tx["id"], amount

    # -- refunds and ignored transfers
    def refund_of(self, txid: str) -> Optional[Dict[str, Any]]:
        """The refund that transfer `txid` carries: payment_id, recipient, amount, receipt span; None if none."""
        row = self.db.execute(
            "SELECT payment_id, recipient, amount, receipt FROM refunds WHERE tx_id = ?", (txid,)
        ).fetchone()
        if row is None:
            return None
        return {"payment_id": row[0], "recipient": row[1], "amount": row[2], "receipt": json.loads(row[3])}

    def replace_refund(self, old_txid: str, tx: Dict[str, Any], receipt: Dict[str, Any], now_ms: int) -> None:
        """A refund re-signed (the old transfer can never land): store the new transfer, mark the old
        replaced, and queue the receipt again naming the new id (a later Data entry of the same key
        overwrites the old value on chain); one SQLite transaction."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO outbox (id, tx, status, created_ms, timestamp_ms, updated_ms) "
                "VALUES (?, ?, 'queued', ?, ?, ?)",
                (tx["id"], json.dumps(tx), now_ms, tx["timestamp"], now_ms),
            )
            db.execute(
                "UPDATE outbox SET status = 'replaced', error = ?, updated_ms = ? WHERE id = ?",
                ("re-signed as %s" % tx["id"], now_ms, old_txid),
            )
            db.execute("UPDATE refunds SET tx_id = ? WHERE tx_id = ?", (tx["id"], old_txid))
            db.execute(
                "INSERT INTO events (kind, entries, created_ms) VALUES ('receipt', ?, ?)",
                (json.dumps([receipt]), now_ms),
            )

    def reopen_refunds(self, from_height: int, now_ms: int) -> int:
        """After a rollback: refunds confirmed at `from_height` or above are asked about again
        (status broadcast); the same signed transfer is re-posted if the chain lost it."""
        with self.transaction() as db:
            return db.execute(
                "UPDATE outbox SET status = 'broadcast', updated_ms = ? WHERE status = 'confirmed' "
                "AND height >= ? AND id IN (SELECT tx_id FROM refunds)",
                (now_ms, from_height),
            ).rowcount

    def recent_payments(self, limit: int = 10) -> List[Dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, sender, amount, height, seconds, credited_ms FROM payments "
            "ORDER BY credited_ms DESC, rowid DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            {"id": r[0], "sender": r[1], "amount": r[2], "height": r[3], "seconds": r[4], "ts": r[5] / 1000}
            for r in rows
        ]

    def light_sold_by_hour(self, now_ms: int, hours: int = 24) -> Dict[str, Any]:
        """Seconds of light credited in each of the last `hours` whole hours (the last one is the
        current hour so far): {"start_ms": start of the first hour, "seconds": [...]}, for the chart."""
        first = (now_ms // 3_600_000 - hours + 1) * 3_600_000
        seconds = [0.0] * hours
        for credited, secs in self.db.execute(
            "SELECT credited_ms, seconds FROM payments WHERE credited_ms >= ?", (first,)
        ):
            i = (credited - first) // 3_600_000
            if 0 <= i < hours:
                seconds[i] += secs
        return {"start_ms": first, "seconds": [round(x, 3) for x in seconds]}

    def telemetry_history(self, since_ms: int, limit: int = 720) -> List[Dict[str, Any]]:
        """The newest `limit` readings since `since_ms`, oldest first: {"ts", "temperature_c",
        "humidity_pct", "pressure_hpa"} with a field left out where its reading failed."""
        rows = self.db.execute(
            "SELECT entries FROM events WHERE kind = 'telemetry' AND created_ms >= ? "
            "ORDER BY seq DESC LIMIT ?",
            (since_ms, limit),
        ).fetchall()
        out = []
        for (text,) in reversed(rows):
            values = {e["key"]: e["value"] for e in json.loads(text)}
            point: Dict[str, Any] = {"ts": values.get("telemetry_ts", 0) / 1000}
            for key, field in TELEMETRY_FIELDS:
                if key in values:
                    point[field] = values[key] / 100
            out.append(point)
        return out

    def payment_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM payments").fetchone()[0]

    def credited_ever(self) -> int:
        """Payments credited since the state file began, the pruned ones included (for `status`)."""
        return self.payment_count() + int(self.get_meta("pruned_payments") or 0)

    # -- events waiting for a Data transaction
    def add_press(self, direction: str, action: str, ts_ms: int, now_ms: int) -> int:
        """Store a joystick press with the next press number; returns that number."""
        with self.transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key='press_n'").fetchone()
            n = int(row[0]) + 1 if row else 1
            db.execute("INSERT OR REPLACE INTO meta VALUES ('press_n', ?)", (str(n),))
            db.execute(
                "INSERT INTO events (kind, entries, press_n, created_ms) VALUES ('joystick', ?, ?, ?)",
                (json.dumps([joystick_entry(n, direction, action, ts_ms)]), n, now_ms),
            )
        return n

    def raise_press_count(self, count: int, on_chain: Sequence[int] = ()) -> bool:
        """Make the next press number at least count + 1; True when that changed anything.
        Pending presses numbered at or below count are renumbered after it, except those
        (by seq) found on chain already, which are marked sent."""
        with self.transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key='press_n'").fetchone()
            current = int(row[0]) if row else 0
            db.executemany("UPDATE events SET tx_id = 'on-chain' WHERE seq = ?", [(seq,) for seq in on_chain])
            stale = db.execute(
                "SELECT seq, entries FROM events WHERE kind='joystick' AND tx_id IS NULL "
                "AND press_n <= ? ORDER BY seq",
                (count,),
            ).fetchall()
            if current >= count and not stale and not on_chain:
                return False
            n = max(current, count)
            for seq, entries in stale:
                n += 1
                value = json.loads(json.loads(entries)[0]["value"])
                entry = joystick_entry(n, value["direction"], value["action"], value["ts"])
                db.execute(
                    "UPDATE events SET entries = ?, press_n = ? WHERE seq = ?", (json.dumps([entry]), n, seq)
                )
            db.execute("INSERT OR REPLACE INTO meta VALUES ('press_n', ?)", (str(n),))
            return True

    def press_count(self) -> int:
        """The highest press number handed out so far (0: none yet)."""
        return int(self.get_meta("press_n") or 0)

    def add_count_event(self, now_ms: int) -> None:
        """Queue joystick_count alone (the current press count), to put the chain's value right."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO events (kind, entries, press_n, created_ms) "
                "SELECT 'count', '[]', CAST(value AS INTEGER), ? FROM meta WHERE key = 'press_n'",
                (now_ms,),
            )

    def add_event(self, kind: str, entries: List[Dict[str, Any]], now_ms: int) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO events (kind, entries, created_ms) VALUES (?, ?, ?)",
                (kind, json.dumps(entries), now_ms),
            )

    def pending_events(self, limit: int = 200) -> List[PendingEvent]:
        rows = self.db.execute(
            "SELECT seq, kind, entries, press_n FROM events WHERE tx_id IS NULL ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [PendingEvent(r[0], r[1], tuple(json.loads(r[2])), r[3]) for r in rows]

    def pending_event_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM events WHERE tx_id IS NULL").fetchone()[0]

    def events_of(self, txid: str) -> List[PendingEvent]:
        rows = self.db.execute(
            "SELECT seq, kind, entries, press_n FROM events WHERE tx_id = ? ORDER BY seq", (txid,)
        ).fetchall()
        return [PendingEvent(r[0], r[1], tuple(json.loads(r[2])), r[3]) for r in rows]

    # -- outbox
    def queue_tx(
        self, tx: Dict[str, Any], events: Sequence[PendingEvent], now_ms: int, replaces: Optional[str] = None
    ) -> None:
        """Store a signed transaction and tie its events to it; with `replaces`, the
        old transaction is marked replaced in the same SQLite transaction."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO outbox (id, tx, status, created_ms, timestamp_ms, updated_ms) "
                "VALUES (?, ?, 'queued', ?, ?, ?)",
                (tx["id"], json.dumps(tx), now_ms, tx["timestamp"], now_ms),
            )
            db.executemany("UPDATE events SET tx_id = ? WHERE seq = ?", [(tx["id"], e.seq) for e in events])
            if replaces:
                db.execute(
                    "UPDATE outbox SET status = 'replaced', error = ?, updated_ms = ? WHERE id = ?",
                    ("re-signed as %s" % tx["id"], now_ms, replaces),
                )

    def set_tx_status(
        self,
        txid: str,
        status: str,
        now_ms: int,
        *,
        height: Optional[int] = None,
        error: Optional[str] = None,
        attempt: bool = False,
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET status = ?, height = COALESCE(?, height), error = ?, updated_ms = ?, "
                "attempts = attempts + ? WHERE id = ?",
                (status, height, error, now_ms, int(attempt), txid),
            )

    def open_txs(self) -> List[Dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, tx, status, created_ms, timestamp_ms, attempts FROM outbox "
            "WHERE status IN ('queued', 'broadcast') ORDER BY created_ms, rowid"
        ).fetchall()
        return [
            {
                "id": r[0],
                "tx": json.loads(r[1]),
                "status": r[2],
                "created_ms": r[3],
                "timestamp_ms": r[4],
                "attempts": r[5],
            }
            for r in rows
        ]

    def recent_txs(self, limit: int = 10) -> List[Dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, status, height, error, updated_ms, "
            "EXISTS (SELECT 1 FROM refunds WHERE tx_id = outbox.id) FROM outbox "
            "WHERE status != 'replaced' ORDER BY created_ms DESC, rowid DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            {
                "id": r[0],
                "status": r[1],
                "height": r[2],
                "error": r[3],
                "ts": r[4] / 1000,
                "kind": "refund" if r[5] else "data",
            }
            for r in rows
        ]

    def outbox_counts(self) -> Dict[str, int]:
        return dict(self.db.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())

    # -- pruning: forget what exactly-once and catch-up no longer need
    def pruned_height(self) -> int:
        """Rows of transactions at or below this height may be gone: a transaction listed there was
        handled by a complete read long ago, and is never credited again (0: nothing pruned yet)."""
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
        """Delete the rows of transactions at or below height `floor`, which the caller vouches a
        complete read handled and no rollback can reach, keeping the newest `keep_recent` payments
        and Data transactions; raise the pruned height to `floor` in the same transaction. Pending
        events and open transactions are never touched. At most `batch` rows of each table go at a
        time (a count of `batch` means call again). Reads a little and writes nothing when there is
        nothing to delete. Returns rows deleted per table."""
        args = {"floor": floor, "recent": keep_recent, "old": now_ms - done_age_ms, "batch": batch}
        seen = "FROM seen WHERE height <= :floor"
        # a payment re-included higher up after a rollback keeps its row while its new height is kept
        payments = (
            "FROM payments WHERE height <= :floor AND id NOT IN (SELECT id FROM payments "
            "ORDER BY credited_ms DESC, rowid DESC LIMIT :recent) AND NOT EXISTS "
            "(SELECT 1 FROM seen WHERE seen.id = payments.id AND seen.height > :floor)"
        )
        # confirmed Data transactions deep enough (with their events); re-signed-away ones after a while
        outbox = (
            "FROM outbox WHERE (status = 'confirmed' AND (height <= :floor OR (height IS NULL AND "
            "updated_ms < :old)) AND id NOT IN (SELECT id FROM outbox WHERE status != 'replaced' "
            "ORDER BY created_ms DESC, rowid DESC LIMIT :recent)) OR (status = 'replaced' AND updated_ms < :old)"
        )
        events = "FROM events WHERE tx_id = 'on-chain' AND created_ms < :old"
        if not any(
            self.db.execute("SELECT 1 %s LIMIT 1" % part, args).fetchone()
            for part in (seen, payments, outbox, events)
        ):
            return {}
        with self.transaction() as db:
            gone = [r[0] for r in db.execute("SELECT id %s LIMIT :batch" % outbox, args).fetchall()]
            deleted = {
                table: db.execute(
                    "DELETE FROM %s WHERE rowid IN (SELECT rowid %s LIMIT :batch)" % (table, part), args
                ).rowcount
                for table, part in (("seen", seen), ("payments", payments), ("events", events))
            }
            for i in range(0, len(gone), 500):
                chunk = gone[i : i + 500]
                marks = ",".join("?" * len(chunk))
                deleted["events"] += db.execute(
                    "DELETE FROM events WHERE tx_id IN (%s)" % marks, chunk
                ).rowcount
                db.execute("DELETE FROM outbox WHERE id IN (%s)" % marks, chunk)
                # a refund confirmed that deep is final: its bookkeeping (re-sign, rollback re-check) goes too
                db.execute("DELETE FROM refunds WHERE tx_id IN (%s)" % marks, chunk)
            deleted["outbox"] = len(gone)
            db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('pruned_height', ?)",
                (str(max(floor, self.pruned_height())),),
            )
            if deleted["payments"]:  # `status` still counts every payment ever credited
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('pruned_payments', "
                    "COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'pruned_payments'), 0) + ?)",
                    (deleted["payments"],),
                )
        return deleted

    # -- read-only use: `iotlight status`, beside a running daemon
    @classmethod
    def open_read_only(cls, path: str) -> "Store":
        """The state file opened read-only (SQLite mode=ro): only the read methods work. It skips
        the constructor, which creates, checks, migrates and writes: what `status` must never do.
        sqlite3.Error when the file cannot be read."""
        store = cls.__new__(cls)
        store.path = path
        store.log = logging.getLogger("iotlight.store")
        store.failing = None
        store.complaints = LogOnce(quiet=60.0)
        store.db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
        return store


def _damaged_state(path: str, reason: str) -> StateDamaged:
    """Keep a damaged state file aside and say how to recover (never start over silently)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = "%s.damaged-%s" % (path, stamp)
    try:
        os.replace(path, aside)
        for suffix in ("-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.replace(path + suffix, aside + suffix)
        where = "it was moved to %s" % aside
    except OSError as e:
        where = "it could not be moved aside (%s)" % e.strerror
    return StateDamaged(
        "%s: the state file is damaged (%s); %s. To start with a fresh state, run the daemon "
        "again: payments made before then are not credited again, pending presses in the "
        "damaged file are lost unless you restore it" % (path, reason, where)
    )


# --- 7b. Node client ---------------------------------------------------------

NODE_MAX_ANSWER = 8 * 1024 * 1024  # default node.max_answer_bytes: a 1,000-item page of mass transfers fits
NODE_MAX_DEPTH = 32  # JSON nesting; the deepest documented answer (a transaction list) is 5


class BadAnswer(ValueError):
    """A node answer that is too large, does not parse or does not have the documented shape."""


def _no_constant(name: str) -> Any:
    raise BadAnswer("the answer holds %s, which is not JSON" % name)


def parse_answer(body: bytes, max_depth: int = NODE_MAX_DEPTH) -> Any:
    """The JSON of a node answer, or BadAnswer: not UTF-8 JSON, NaN/Infinity, or nested deeper than max_depth."""
    try:
        data = json.loads(body, parse_constant=_no_constant)
    except RecursionError:
        raise BadAnswer("the answer is nested too deep to parse") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise BadAnswer("the answer is not JSON (%s)" % str(e)[:80]) from None
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            raise BadAnswer("the answer is nested deeper than %d levels" % max_depth)
        children = value.values() if isinstance(value, dict) else value
        stack.extend((v, depth + 1) for v in children if isinstance(v, (dict, list)))
    return data


class BodyReader:
    """Collects an answer body chunk by chunk, decompressing gzip/deflate as it goes, and stops
    with BadAnswer as soon as the raw or the decompressed size passes `cap`: a gzip bomb never
    inflates past it."""

    def __init__(self, cap: int, encoding: Optional[str]):
        self.cap = cap
        self.raw = 0
        self.out = bytearray()
        enc = (encoding or "identity").strip().lower()
        if enc in ("", "identity"):
            self.inflater = None
        elif enc in ("gzip", "x-gzip"):
            self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            self.inflater = zlib.decompressobj()
        else:
            raise BadAnswer("the answer has Content-Encoding %r, which was not asked for" % enc[:40])

    def _too_large(self, what: str) -> BadAnswer:
        return BadAnswer("the answer is larger than %d bytes%s (node.max_answer_bytes)" % (self.cap, what))

    def feed(self, chunk: bytes) -> None:
        self.raw += len(chunk)
        if self.raw > self.cap:
            raise self._too_large("")
        if self.inflater is None:
            self.out += chunk
            return
        data = chunk
        try:
            while data:
                # in pieces of at most 64 KiB: never a second copy of a large answer in memory
                self.out += self.inflater.decompress(data, min(65536, self.cap + 1 - len(self.out)))
                if len(self.out) > self.cap:
                    raise self._too_large(" decompressed")
                data = self.inflater.unconsumed_tail
        except zlib.error as e:
            raise BadAnswer("the compressed answer is damaged (%s)" % e) from None

    def body(self) -> bytes:
        if self.inflater is not None:
            try:
                self.out += self.inflater.flush()
            except zlib.error as e:
                raise BadAnswer("the compressed answer is damaged (%s)" % e) from None
            if len(self.out) > self.cap:
                raise self._too_large(" decompressed")
            if not self.inflater.eof:
                raise BadAnswer("the compressed answer is cut short")
        return bytes(self.out)


class NodeClient:
    """The node REST API over one httpx client: failover across `urls` in order,
    per-request timeout, back-off with jitter for a failing node, Retry-After
    honoured, one log line when a node goes down and one when it comes back.
    Every answer is read as a stream up to `max_answer_bytes` (raw and decompressed) and
    checked: one that is too large, does not parse, or fails the endpoint's shape check
    counts as that node failing, like a refused connection."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout: float,
        clock: Optional[Clock] = None,
        transport: Any = None,
        rng: Optional[random.Random] = None,
        on_status: Optional[Callable[[str, bool, Optional[str]], None]] = None,
        max_answer_bytes: int = NODE_MAX_ANSWER,
    ):
        import httpx

        self.max_answer_bytes = max_answer_bytes
        self.timeout = timeout
        self.urls = list(urls)
        self.clock = clock or Clock()
        self.rng = rng or random.Random()
        self.log = logging.getLogger("iotlight.node")
        self.on_status = on_status
        # with only http:// nodes (an own node) no TLS is ever used: skip loading the CA bundle (~4 MB)
        tls = any(u.startswith("https://") for u in self.urls)
        self.client = httpx.AsyncClient(
            timeout=timeout,
            transport=transport,
            verify=True if tls else False,
            headers={
                "Accept": "application/json",
                "Accept-Encoding": "gzip, deflate",
                "User-Agent": "iotlight/%s" % __version__,
            },
        )
        self.down_until: Dict[str, float] = {}
        self.backoffs: Dict[str, Backoff] = {}  # per node: how long it is left aside after failures
        self.failing: set = set()  # nodes that failed (not only throttled) since they last answered
        self.errors: Dict[str, str] = {}
        self.current = self.urls[0]
        self.ok: Optional[bool] = None

    async def aclose(self) -> None:
        await self.client.aclose()

    def _order(self) -> List[str]:
        now = self.clock.monotonic()
        up = [u for u in self.urls if self.down_until.get(u, 0) <= now]
        if up:
            return up
        return sorted(self.urls, key=lambda u: self.down_until.get(u, 0))[:1]

    def retry_in(self) -> float:
        """Seconds until some node may be asked again (0 when one is up)."""
        now = self.clock.monotonic()
        return max(0.0, min(self.down_until.get(u, 0) for u in self.urls) - now)

    def _mark_down(
        self, url: str, error: str, retry_after: Optional[float] = None, *, throttled: bool = False
    ) -> None:
        """Leave `url` aside for a while. A 429 (`throttled`: a pool asked too often) is logged
        at debug level only: the callers slow down, the node is not down."""
        backoff = self.backoffs.setdefault(url, Backoff(1.0, 60.0, self.rng))
        first = backoff.failures == 0
        self.down_until[url] = self.clock.monotonic() + backoff.failure(retry_after)
        if throttled:
            self.log.debug("node %s throttles: %s", redact_url(url), error)
        else:
            self.failing.add(url)
            if first:
                self.log.warning("node %s is failing: %s", redact_url(url), error)
        self.errors[url] = error
        if (
            url == self.current
            and self.ok is not False
            and all(self.down_until.get(u, 0) > self.clock.monotonic() for u in self.urls)
        ):
            self.ok = False
            if self.on_status:
                self.on_status(url, False, error)

    def _mark_up(self, url: str) -> None:
        backoff = self.backoffs.get(url)
        if url in self.failing:
            self.failing.discard(url)
            self.log.info("node %s answers again", redact_url(url))
        if backoff is not None and backoff.failures:
            backoff.success()
        self.down_until.pop(url, None)
        changed = self.current != url or self.ok is not True
        self.current = url
        self.ok = True
        if changed and self.on_status:
            self.on_status(url, True, None)

    async def _fetch(self, method: str, url: str, params: Any, body: Any) -> Tuple[int, Any, bytes]:
        """(status, headers, body) of one request, the body read as a bounded stream."""
        request = self.client.build_request(
            method,
            url,
            params=params,
            content=None if body is None else json.dumps(body),
            headers=None if body is None else {"Content-Type": "application/json"},
        )
        resp = await self.client.send(request, stream=True)
        try:
            declared = resp.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self.max_answer_bytes:
                raise BadAnswer(
                    "the answer is larger than %d bytes (node.max_answer_bytes)" % self.max_answer_bytes
                )
            if resp.is_stream_consumed:
                # an answer httpx already holds in memory, decoded (an in-process transport)
                reader = BodyReader(self.max_answer_bytes, None)
                reader.feed(resp.content)
            else:
                reader = BodyReader(self.max_answer_bytes, resp.headers.get("Content-Encoding"))
                async for chunk in resp.aiter_raw():
                    reader.feed(chunk)
            return resp.status_code, resp.headers, reader.body()
        finally:
            await resp.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        body: Any = None,
        check: Optional[Callable[[Any], Any]] = None,
    ) -> Any:
        """JSON of the first node that answers; NodeRejected for an API error body,
        NodeError when no node gave a usable answer. `check` raises ValueError for a
        successful answer without the documented shape: that node counts as failing."""
        import httpx

        last_error = "no node configured"
        throttled: Optional[float] = None  # Retry-After (or 0) when the last failure was a 429/503
        for url in self._order():
            throttled = None
            try:
                # per-read timeouts alone let a node drip an answer forever: the whole answer is bounded too
                status, headers, raw = await asyncio.wait_for(
                    self._fetch(method, url + path, params, body), self.timeout * 3
                )
            except (httpx.TimeoutException, asyncio.TimeoutError):
                last_error = "timed out"
                self._mark_down(url, last_error)
                continue
            except httpx.HTTPError as e:  # its text may name the URL: shown masked
                last_error = redact_url("%s: %s" % (type(e).__name__, e) if str(e) else type(e).__name__)
                self._mark_down(url, last_error)
                continue
            except BadAnswer as e:
                last_error = "bad answer to %s: %s" % (path, e)
                self._mark_down(url, last_error)
                continue
            if status == 429 or status >= 500:
                retry_after = _retry_after(headers.get("Retry-After"))
                last_error = "HTTP %d%s" % (status, " (retry after %gs)" % retry_after if retry_after else "")
                if status in (429, 503):
                    throttled = retry_after or 0.0
                self._mark_down(url, last_error, retry_after, throttled=status == 429)
                continue
            try:
                data = parse_answer(raw)
                if check is not None and status < 400:
                    check(data)
            except BadAnswer as e:
                last_error = (
                    "HTTP %d with a body that is not JSON" % status
                    if status >= 400
                    else "bad answer to %s: %s" % (path, e)
                )
                self._mark_down(url, last_error)
                continue
            except ValueError as e:
                last_error = "bad answer to %s: %s" % (path, e)
                self._mark_down(url, last_error)
                continue
            self._mark_up(url)
            if status >= 400:
                if isinstance(data, dict):
                    message = data.get("message") or data.get("details") or json.dumps(data)[:200]
                    code = data.get("error") if _is_int(data.get("error")) else None
                else:
                    message, code = json.dumps(data)[:200], None
                raise NodeRejected(str(message), status=status, code=code)
            return data
        if throttled is not None:
            raise NodeThrottled(
                "no node answered %s %s: %s" % (method, path, last_error), retry_after=throttled or None
            )
        raise NodeError("no node answered %s %s: %s" % (method, path, last_error))

    async def get(self, path: str, params: Any = None, check: Optional[Callable[[Any], Any]] = None) -> Any:
        return await self.request("GET", path, params=params, check=check)

    # -- endpoints
    async def _int_field(
        self,
        route: str,
        path: str,
        field: str,
        what: str,
        ok: Callable[[int], bool] = lambda v: 0 <= v <= INT64_MAX,
    ) -> int:
        """One integer field of a JSON object answer; a node answering without it counts as failing."""

        def check(data: Any) -> None:
            value = data.get(field) if isinstance(data, dict) else None
            if not _is_int(value) or not ok(value):
                raise BadAnswer("node answered %s without %s" % (route, what))

        data = await self.get(path, check=check)
        return data[field]

    async def height(self) -> int:
        return await self._int_field(
            "/blocks/height", "/blocks/height", "height", "an integer height", lambda v: 0 <= v < 2**31
        )

    async def address_transactions(self, address: str, limit: int, after: Optional[str] = None) -> List[Any]:
        """One page of the address's transactions, as the node listed them: the page itself must be
        [[...]] of at most `limit` items; each item is checked by the caller (check_tx_shape)."""

        def check(data: Any) -> None:
            if not isinstance(data, list) or len(data) > 1 or (data and not isinstance(data[0], list)):
                raise BadAnswer("node answered /transactions/address with something that is not [[...]]")
            if data and len(data[0]) > limit:
                raise BadAnswer(
                    "node answered /transactions/address with %d items, more than the %d asked for"
                    % (len(data[0]), limit)
                )

        data = await self.get(
            "/transactions/address/%s/limit/%d" % (address, limit),
            {"after": after} if after else None,
            check=check,
        )
        return data[0] if data else []

    async def block(self, height: Optional[int] = None) -> Dict[str, Any]:
        """A block with its transactions: the last one (the liquid block, microblocks included)
        or the one at `height`. NodeRejected 404 when there is no block at that height."""
        path = "/blocks/last" if height is None else "/blocks/at/%d" % height
        data = await self.get(path)
        if (
            not isinstance(data, dict)
            or not _is_int(data.get("height"))
            or not isinstance(data.get("transactions"), list)
        ):
            raise NodeError("node answered %s without a height and a transaction list" % path)
        return data

    async def asset_balance(self, address: str, asset_id: str) -> int:
        return await self._int_field(
            "/assets/balance", "/assets/balance/%s/%s" % (address, asset_id), "balance", "an integer balance"
        )

    async def balance(self, address: str) -> int:
        return await self._int_field(
            "/addresses/balance", "/addresses/balance/%s" % address, "balance", "an integer balance"
        )

    async def asset_decimals(self, asset_id: str) -> int:
        return await self._int_field(
            "/assets/details",
            "/assets/details/%s" % asset_id,
            "decimals",
            "decimals from 0 to 8",
            lambda v: 0 <= v <= 8,
        )

    async def aliases(self, address: str) -> List[str]:
        def check(data: Any) -> None:
            if not isinstance(data, list):
                raise BadAnswer("node answered /alias/by-address with something that is not a list")

        data = await self.get("/alias/by-address/%s" % address, check=check)
        return [a for a in data if isinstance(a, str) and a.startswith("alias:") and len(a) <= 64]

    async def alias_address(self, name: str) -> str:
        def check(data: Any) -> None:
            if not isinstance(data, dict) or not isinstance(data.get("address"), str):
                raise BadAnswer("node answered /alias/by-alias without an address")

        data = await self.get("/alias/by-alias/%s" % name, check=check)
        return data["address"].replace("address:", "", 1)

    async def statuses(self, ids: Sequence[str]) -> Dict[str, Dict[str, Any]]:
        """Status of transactions by id: {"status": confirmed|unconfirmed|not_found, "height": ...}.
        Uses /transactions/status; on nodes without it (the 0bs fork), info + unconfirmed/info."""
        out: Dict[str, Dict[str, Any]] = {}
        if not ids:
            return out
        try:
            data = await self.get(
                "/transactions/status", [("id", i) for i in ids], check=_check_list("/transactions/status")
            )
            for item in data:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    out[item["id"]] = item
            return out
        except NodeRejected as e:
            if e.status not in (404, 405):
                raise
        for i in ids:
            try:
                info = await self.get("/transactions/info/%s" % i, check=_check_object("/transactions/info"))
                out[i] = {"id": i, "status": "confirmed", "height": info.get("height")}
                continue
            except NodeRejected as e:
                if e.status != 404:
                    raise
            try:
                await self.get("/transactions/unconfirmed/info/%s" % i)
                out[i] = {"id": i, "status": "unconfirmed"}
            except NodeRejected as e:
                if e.status != 404:
                    raise
                out[i] = {"id": i, "status": "not_found"}
        return out

    async def broadcast(self, tx: Dict[str, Any]) -> Dict[str, Any]:
        return await self.request("POST", "/transactions/broadcast", body=tx)

    async def node_time_ms(self) -> int:
        def when(data: Any) -> Optional[int]:
            for key in ("NTP", "system"):
                t = data.get(key) if isinstance(data, dict) else None
                if _is_int(t) and 0 <= t <= INT64_MAX:
                    return t
            return None

        def check(data: Any) -> None:
            if when(data) is None:
                raise BadAnswer("node answered /utils/time without a time")

        return when(await self.get("/utils/time", check=check))  # type: ignore[return-value]


def _check_object(route: str) -> Callable[[Any], None]:
    """A shape check: the answer to `route` must be a JSON object."""

    def check(data: Any) -> None:
        if not isinstance(data, dict):
            raise BadAnswer("node answered %s with something that is not an object" % route)

    return check


def _check_list(route: str) -> Callable[[Any], None]:
    """A shape check: the answer to `route` must be a JSON list."""

    def check(data: Any) -> None:
        if not isinstance(data, list):
            raise BadAnswer("node answered %s with something that is not a list" % route)

    return check


def coin_name(rules: str) -> str:
    """The name of the chain's own coin (the one fees are paid in)."""
    return "ZBS" if rules == "0bs" else "WAVES"


# The node's refusals people meet, as (words in the node's text, plain message with the fix).
# Checked in order, lower-case; the first whose words all occur wins.
_NO_COINS = (
    "the sender has too few {coin} to pay for it (fees are paid in {coin}); send it some: "
    "iotlight.py pay --seed-file FUNDED.seed --asset {coin} ADDRESS 1"
)
_CLOCK = "set this machine's clock (e.g. sudo timedatectl set-ntp true)"
_REFUSALS: Tuple[Tuple[Tuple[str, ...], str], ...] = (
    (("negative asset",), "the sender holds too few of the token for this transfer"),
    (("negative waves balance",), _NO_COINS),
    (("accounts balance errors",), _NO_COINS),
    (("negative", "balance"), _NO_COINS),
    (("timestamp", "in the future"), "the transaction's time is ahead of the node's clock; " + _CLOCK),
    (("timestamp", "in the past"), "the transaction's time is behind the node's clock; " + _CLOCK),
    (("wrong chain-id",), "the node runs another network than node.chain_id; fix node.chain_id or node.urls"),
    (("invalid address",), "the address is not one of the node's network; check it and node.chain_id"),
    (("unissued asset",), "the token does not exist on the node's chain; check the asset id and node.urls"),
    (
        ("asset does not exist",),
        "the token does not exist on the node's chain; check the asset id and node.urls",
    ),
    (("invalid asset id",), "that is not an asset id; check the asset id"),
    (("does not exceed minimal value",), "the fee is below the node's minimum; set data.fee = 0 (automatic)"),
    (("alias", "doesn't exist"), "no such alias on the node's chain; check the recipient"),
)


def explain_refusal(message: str, *, rules: str = "waves") -> Optional[str]:
    """A node's refusal text as one plain line with the fix, or None when it is not a common case. Pure."""
    text = message.lower()
    for words, plain in _REFUSALS:
        if all(w in text for w in words):
            return plain.format(coin=coin_name(rules))
    return None


def describe_refusal(e: NodeError, *, rules: str = "waves") -> str:
    """What to tell a person about a NodeError: the plain line for a common refusal (the node's own
    text goes to the debug log), else the node's text."""
    if isinstance(e, NodeRejected):
        plain = explain_refusal(str(e), rules=rules)
        if plain is not None:
            logging.getLogger("iotlight.node").debug("the node said: %s", e)
            return plain
    return str(e)


def _retry_after(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    try:
        return max(0.0, min(3600.0, float(value)))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, min(3600.0, parsedate_to_datetime(value).timestamp() - time.time()))
        except (TypeError, ValueError):
            return None


# --- 7c. systemd notification ------------------------------------------------


def sd_notify(message: str, environ: Optional[Dict[str, str]] = None) -> bool:
    """Send a notification (READY=1, WATCHDOG=1, STOPPING=1) to systemd; a no-op outside it."""
    addr = (environ if environ is not None else os.environ).get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(addr)
            s.sendall(message.encode())
        return True
    except OSError:
        return False


def systemd_watchdog_period(environ: Optional[Dict[str, str]] = None) -> Optional[float]:
    """systemd's watchdog period in seconds (WATCHDOG_USEC), or None when this process has none
    (unset, 0, or WATCHDOG_PID names another process)."""
    env = environ if environ is not None else os.environ
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 1e6


# --- 7d. Hardware: LED matrix, joystick, environment sensors -----------------
#
# Backends by mechanism, one API (class Hardware):
#   SenseHatHardware   the real Sense HAT through the sense_hat library
#   SenseEmuHardware   the Sense HAT emulator through sense_emu (same API)
#   TerminalHardware   an ANSI truecolour 8x8 preview on stdout, arrow keys
#   NullHardware       nothing to show, nothing to read
# Every Hardware method blocks; HardwareRunner is the asyncio face the daemon
# uses: one worker thread for the matrix and sensors, one thread for the stick.
# render_matrix() is the pure picture of the lamp state.

hardware_log = logging.getLogger("iotlight.hardware")

JOYSTICK_DIRECTIONS = ("up", "down", "left", "right", "middle")
JOYSTICK_ACTIONS = ("pressed", "released", "held")
SENSE_HAT_FB_NAME = "RPi-Sense FB"
INSTALL_SENSE_HAT = "install sense-hat: sudo apt install sense-hat"
INSTALL_SENSE_EMU = "install the emulator: sudo apt install python3-sense-emu sense-emu-tools"

BLACK = (0, 0, 0)
# Dim enough to be a hint in the dark, bright enough to survive the HAT's
# gamma table (5-bit values below 6 are off on the real LEDs).
STATUS_COLORS = {
    "ok": (0, 64, 0),  # dim green: all well, waiting for a payment
    "node_down": (64, 0, 0),  # dim red: the node cannot be reached
    "no_funds": (96, 48, 0),  # dim amber: the device cannot pay its fees
    "starting": (0, 0, 64),  # dim blue: starting up
}
# What each status pixel colour says, for the dashboard's legend and the README.
STATUS_MEANINGS = {
    "ok": "all well, waiting for a payment",
    "node_down": "no node answers",
    "no_funds": "no coins left for the fees of its Data transactions",
    "starting": "starting up",
}

JoystickEvent = collections.namedtuple("JoystickEvent", "direction action ts_ms")
JoystickEvent.__doc__ = """One joystick event: direction (up/down/left/right/middle), action
(pressed/released/held), ts_ms (Unix ms, from the event's own timestamp)."""


def render_matrix(
    *, on: bool, fraction: float, color: Tuple[int, int, int], countdown: bool, status: str
) -> List[Tuple[int, int, int]]:
    """Return the 64 (r, g, b) pixels of the lamp, row-major from the top-left.

    Lit (``on``): the whole matrix in ``color``. With ``countdown`` the bottom
    row is a bar of the time left: ``fraction`` (remaining / total of the current
    lit span, clamped to 0..1) lights the first ceil(8 * fraction) pixels of the
    bottom row from the left in ``color``; the rest of that row shows ``color``
    at 1/8 brightness (each channel (c + 4) // 8).

    Dark: all black except one dim status pixel at the bottom-right (index 63):
    "ok" dim green, "node_down" dim red, "no_funds" dim amber, "starting" dim
    blue (STATUS_COLORS). An unknown status or a bad colour is a ValueError.
    """
    if status not in STATUS_COLORS:
        raise ValueError("unknown lamp status %r: expected one of %s" % (status, ", ".join(STATUS_COLORS)))
    color = _check_color(color)
    if not on:
        pixels = [BLACK] * 64
        pixels[63] = STATUS_COLORS[status]
        return pixels
    pixels = [color] * 64
    if countdown:
        if not fraction > 0:  # also NaN
            lit = 0
        else:
            lit = max(0, min(8, math.ceil(8 * min(float(fraction), 1.0) - 1e-9)))
        dim = tuple((c + 4) // 8 for c in color)
        for x in range(8):
            pixels[56 + x] = color if x < lit else dim
    return pixels


def _check_color(color) -> Tuple[int, int, int]:
    try:
        rgb = tuple(int(c) for c in color)
    except (TypeError, ValueError):
        rgb = ()
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise ValueError("bad colour %r: expected [r, g, b] with each 0-255" % (color,))
    return rgb  # type: ignore[return-value]


def _check_pixels(pixels) -> List[Tuple[int, int, int]]:
    frame = [_check_color(p) for p in pixels]
    if len(frame) != 64:
        raise ValueError("a frame has 64 pixels, got %d" % len(frame))
    return frame


def _empty_environment() -> Dict[str, Optional[float]]:
    return {"temperature_c": None, "humidity_pct": None, "pressure_hpa": None}


class Hardware:
    """Blocking hardware API: matrix, sensors, joystick. Used from one thread
    (HardwareRunner's worker) plus read_joystick() from the stick thread."""

    name = "none"
    has_joystick = False

    def set_pixels(self, pixels: Sequence[Tuple[int, int, int]]) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        self.set_pixels([BLACK] * 64)

    def read_environment(self) -> Dict[str, Optional[float]]:
        """temperature_c (from the humidity sensor), humidity_pct, pressure_hpa;
        None for a sensor that failed or is absent."""
        return _empty_environment()

    def read_joystick(self, timeout: float) -> List[JoystickEvent]:
        """Wait up to ``timeout`` seconds for joystick events and return those
        that are ready (maybe none). Without a joystick this just waits."""
        time.sleep(timeout)
        return []

    def close(self) -> None:
        pass


class NullHardware(Hardware):
    """No matrix, no sensors, no joystick; keeps the last frame it was given."""

    name = "none"

    def __init__(self):
        self.frame = [BLACK] * 64
        self._closed = threading.Event()

    def set_pixels(self, pixels):
        self.frame = _check_pixels(pixels)

    def read_joystick(self, timeout):
        self._closed.wait(timeout)
        return []

    def close(self):
        self._closed.set()


# -- Sense HAT and its emulator: the same library API -------------------------


class SenseHatHardware(Hardware):
    """The real Sense HAT through the sense_hat library (or sense_emu's twin)."""

    name = "sense-hat"
    has_joystick = True

    def __init__(self, hat=None):
        if hat is None:
            from sense_hat import SenseHat  # only on a Pi with sense-hat installed

            hat = SenseHat()
        self._hat = hat

    def set_pixels(self, pixels):
        self._hat.set_pixels(_check_pixels(pixels))

    def clear(self):
        self._hat.clear()

    def read_environment(self):
        env = _empty_environment()
        hat = self._hat
        # The libraries report 0 for an invalid reading; their RTIMU readers
        # (same shape in sense_hat and sense_emu) carry the validity flags.
        try:
            hat.get_humidity()  # initialises the sensor, OSError when absent
            h_valid, humidity, t_valid, temperature = hat._humidity.humidityRead()
            if h_valid:
                env["humidity_pct"] = float(humidity)
            if t_valid:
                env["temperature_c"] = float(temperature)
        except Exception as exc:  # sensor absent or I2C failure: leave None
            hardware_log.debug("humidity sensor: %s", exc)
        try:
            hat.get_pressure()
            p_valid, pressure, _, _ = hat._pressure.pressureRead()
            if p_valid and pressure > 0:
                env["pressure_hpa"] = float(pressure)
        except Exception as exc:
            hardware_log.debug("pressure sensor: %s", exc)
        return env

    def read_joystick(self, timeout):
        stick = self._hat.stick
        if not stick._wait(timeout):  # select() on the evdev file / socket
            return []
        return [
            JoystickEvent(e.direction, e.action, int(round(e.timestamp * 1000))) for e in stick.get_events()
        ]

    def close(self):
        try:
            self._hat.stick.close()
        except Exception as exc:
            hardware_log.debug("closing the joystick: %s", exc)


class SenseEmuHardware(SenseHatHardware):
    """The Sense HAT emulator (sense_emu): files and a socket in /dev/shm."""

    name = "sense-emu"

    def __init__(self, hat=None):
        if hat is None:
            from sense_emu import SenseHat  # spawns sense_emu_gui if none runs

            hat = SenseHat()
        super().__init__(hat)


def _sense_hat_framebuffer_present(pattern: str = "/sys/class/graphics/fb*/name") -> bool:
    for path in glob.glob(pattern):
        try:
            with open(path) as f:
                if f.read().strip() == SENSE_HAT_FB_NAME:
                    return True
        except OSError:
            continue
    return False


def _module_installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _emulator_running() -> bool:
    """True when a live process holds sense_emu's EmulatorLock('sense_emu')."""
    try:
        from sense_emu.lock import lock_filename, pid_exists

        with open(lock_filename(), "rb") as f:
            pid = int(f.readline().decode("ascii").strip())
        return pid_exists(pid)
    except Exception:  # no lock file, garbage in it, or sense_emu unusable
        return False


def probe_sense_hat() -> Optional[str]:
    """None when the real Sense HAT can be used, else why not (with the fix)."""
    if not _module_installed("sense_hat"):
        return "the python module sense_hat is not installed (%s)" % INSTALL_SENSE_HAT
    if not _sense_hat_framebuffer_present():
        return (
            'no "%s" framebuffer in /sys/class/graphics (is the HAT seated? '
            "check dtoverlay=rpi-sense in /boot/config.txt, then reboot)" % SENSE_HAT_FB_NAME
        )
    return None


def probe_sense_emu(environ) -> Optional[str]:
    """None when the emulator can be used without spawning a GUI nobody sees."""
    if not _module_installed("sense_emu"):
        return "the python module sense_emu is not installed (%s)" % INSTALL_SENSE_EMU
    if _emulator_running():
        return None
    if not (environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")):
        return (
            "no desktop session (DISPLAY and WAYLAND_DISPLAY unset) and no emulator "
            "running (start sense_emu_gui on a desktop)"
        )
    if not shutil.which("sense_emu_gui", path=environ.get("PATH")) or not _module_installed("gi"):
        return (
            "no emulator running, and its window cannot be started here (sense_emu_gui and "
            "PyGObject are needed: %s)" % INSTALL_SENSE_EMU
        )
    return None


# -- Terminal preview ---------------------------------------------------------

_KEYS = {
    b"\x1b[A": "up",
    b"\x1b[B": "down",
    b"\x1b[C": "right",
    b"\x1b[D": "left",
    b"\x1bOA": "up",
    b"\x1bOB": "down",
    b"\x1bOC": "right",
    b"\x1bOD": "left",
    b"\r": "middle",
    b"\n": "middle",
}


def parse_keys(buf: bytes) -> Tuple[List[str], bytes]:
    """Split terminal input into joystick directions (arrow keys, Enter);
    return them and the unfinished tail of an escape sequence. Pure."""
    directions = []
    i = 0
    while i < len(buf):
        for seq, direction in _KEYS.items():
            if buf.startswith(seq, i):
                directions.append(direction)
                i += len(seq)
                break
        else:
            rest = buf[i:]
            if any(len(rest) < len(seq) and seq.startswith(rest) for seq in _KEYS):
                return directions, rest  # wait for the rest of the sequence
            i += 1  # any other key: ignored
    return directions, b""


class TerminalHardware(Hardware):
    """An ANSI truecolour 8x8 preview redrawn in place on ``stdout``; arrow keys
    and Enter on ``stdin`` (a terminal, put in cbreak mode until close())."""

    name = "terminal"

    def __init__(self, stdout=None, stdin=None, *, clock=time.time):
        self._out = stdout if stdout is not None else sys.stdout
        self._in = stdin if stdin is not None else sys.stdin
        self._clock = clock
        self._drawn = False
        self._frame = [BLACK] * 64
        self._lock = threading.Lock()  # frames (worker thread) and log lines (any thread)
        self._pending = b""
        self._saved_tty = None
        self._fd = None
        try:
            is_tty = self._in is not None and self._in.isatty()
        except (ValueError, OSError):
            is_tty = False
        if is_tty:
            import termios
            import tty

            self._fd = self._in.fileno()
            self._saved_tty = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd)  # keys arrive at once, no echo; Ctrl-C still works
            self.has_joystick = True

    def set_pixels(self, pixels):
        frame = _check_pixels(pixels)
        with self._lock:
            self._out.write(("\x1b[8A" if self._drawn else "") + self._frame_text(frame))
            self._out.flush()
            self._frame = frame
            self._drawn = True

    @staticmethod
    def _frame_text(frame) -> str:
        lines = []
        for y in range(8):
            cells = "".join("\x1b[48;2;%d;%d;%dm  " % frame[y * 8 + x] for x in range(8))
            lines.append("\r" + cells + "\x1b[0m\x1b[K\n")
        return "".join(lines)

    def write_above(self, text: str) -> None:
        """Print text (log lines) above the drawn matrix, which is drawn again below it."""
        with self._lock:
            if self._drawn:
                self._out.write("\x1b[8A\r\x1b[J")
            self._out.write(text if text.endswith("\n") else text + "\n")
            if self._drawn:
                self._out.write(self._frame_text(self._frame))
            self._out.flush()

    def read_joystick(self, timeout):
        if self._fd is None:
            time.sleep(timeout)
            return []
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return []
        data = os.read(self._fd, 64)
        ts_ms = int(round(self._clock() * 1000))
        directions, self._pending = parse_keys(self._pending + data)
        events = []
        for direction in directions:  # a key has no release: press and release
            events.append(JoystickEvent(direction, "pressed", ts_ms))
            events.append(JoystickEvent(direction, "released", ts_ms))
        return events

    def close(self):
        if self._saved_tty is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved_tty)
            self._saved_tty = None
        try:
            self._out.write("\x1b[0m")
            self._out.flush()
        except (OSError, ValueError):
            pass


# -- Choosing a backend -------------------------------------------------------


def _open_backend(name: str):
    if name == "sense-hat":
        return SenseHatHardware()
    if name == "sense-emu":
        return SenseEmuHardware()
    if name == "terminal":
        return TerminalHardware()
    return NullHardware()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text


def open_hardware(choice: str, *, environ=os.environ, stdout_isatty: bool) -> Hardware:
    """Open the backend ``choice`` (hardware.backend). ``auto`` takes the real
    Sense HAT if present, else the emulator if installed and a desktop (or a
    running emulator) is there, else the terminal if stdout is one, else none;
    it logs the choice and why the others were passed. An explicit backend
    that cannot open raises IotlightError."""
    if choice not in HARDWARE_BACKENDS:
        raise ConfigError(
            'hardware.backend = "%s": expected one of %s'
            % (choice, ", ".join('"%s"' % b for b in HARDWARE_BACKENDS))
        )
    if choice != "auto":
        why = None
        if choice == "sense-hat" and not _module_installed("sense_hat"):
            why = "the python module sense_hat is not installed: " + INSTALL_SENSE_HAT
        elif choice == "sense-emu":
            why = probe_sense_emu(environ)
            if why:
                why += ', or set hardware.backend = "terminal"'
        if why:
            raise IotlightError('hardware.backend = "%s": %s' % (choice, why))
        try:
            hardware = _open_backend(choice)
        except Exception as exc:
            raise IotlightError(
                'hardware.backend = "%s": cannot open it: %s' % (choice, _one_line(exc))
            ) from None
        hardware_log.info("hardware: %s", hardware.name)
        return hardware

    passed = []
    for name, probe in (("sense-hat", probe_sense_hat), ("sense-emu", lambda: probe_sense_emu(environ))):
        why = probe()
        if why is None:
            try:
                hardware = _open_backend(name)
            except Exception as exc:
                why = "failed to open: %s" % _one_line(exc)
            else:
                if passed:
                    hardware_log.warning("hardware: using %s; %s", name, "; ".join(passed))
                else:
                    hardware_log.info("hardware: using %s", name)
                return hardware
        passed.append("not %s: %s" % (name, why))
    if stdout_isatty:
        hardware = TerminalHardware()
    else:
        passed.append("not terminal: standard output is not a terminal")
        hardware = NullHardware()
    hardware_log.warning("hardware: using %s; %s", hardware.name, "; ".join(passed))
    return hardware


# -- The asyncio face ---------------------------------------------------------


class HardwareRunner:
    """Runs a Hardware for the event loop: every blocking call on ONE worker
    thread, the joystick on its own thread waiting in select() with a timeout.

    show() and read_environment() never raise for hardware faults: each kind
    of fault is logged once (again only after a recovery)."""

    JOYSTICK_POLL = 0.25  # seconds a joystick wait may last: bounds close()

    def __init__(self, hardware: Hardware):
        self.hardware = hardware
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="iotlight-hardware"
        )
        self._last_frame: Optional[List[Tuple[int, int, int]]] = None
        self._faults = LogOnce()  # topic: what failed; detail: the exception's type
        self._stop = threading.Event()
        self._stick_thread: Optional[threading.Thread] = None
        self._closed = False

    async def _call(self, fn, *args):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _fault(self, what: str, exc: BaseException) -> None:
        if not self._faults.first(what, type(exc).__name__):
            hardware_log.debug("%s failed again: %s", what, exc)
            return
        hardware_log.warning(
            "%s: %s failed: %s (logged once)",
            self.hardware.name,
            what,
            _one_line(exc),
            exc_info=hardware_log.isEnabledFor(logging.DEBUG),
        )

    def _ok(self, what: str) -> None:
        if self._faults.over(what):
            hardware_log.info("%s: %s works again", self.hardware.name, what)

    async def show(self, pixels: Sequence[Tuple[int, int, int]]) -> bool:
        """Show a frame; skip it if it equals the last one shown. True if drawn."""
        frame = _check_pixels(pixels)
        if self._closed or frame == self._last_frame:
            return False
        try:
            await self._call(self.hardware.set_pixels, frame)
        except Exception as exc:
            self._last_frame = None
            self._fault("show", exc)
            return False
        self._last_frame = frame
        self._ok("show")
        return True

    async def read_environment(self) -> Dict[str, Optional[float]]:
        if self._closed:
            return _empty_environment()
        try:
            env = await self._call(self.hardware.read_environment)
        except Exception as exc:
            self._fault("read_environment", exc)
            return _empty_environment()
        self._ok("read_environment")
        return env

    def start_joystick(self, callback: Callable[[JoystickEvent], Any]) -> bool:
        """Call ``callback(event)`` on the running loop for every joystick
        event. Call from the loop. False when the hardware has no joystick."""
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
        """Stop the joystick thread, blank the matrix, close the hardware.
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        loop = asyncio.get_running_loop()
        if self._stick_thread is not None:
            await loop.run_in_executor(None, self._stick_thread.join)
            self._stick_thread = None
        try:
            await self._call(self.hardware.clear)
        except Exception as exc:
            self._fault("clear", exc)
        try:
            await self._call(self.hardware.close)
        except Exception as exc:
            self._fault("close", exc)
        self._executor.shutdown(wait=False)


# --- 7d. GPIO output: a relay or an LED switched with the light --------------


class GpioSwitch:
    """A GPIO output (light.gpio_pin, BCM numbering) on while the lamp is lit, through gpiozero.

    gpiozero is imported here only, so the file runs where it is not installed. The pin starts
    off; the Lamp switches it at every change of the light, and the daemon switches it off and
    releases it at a clean stop. When the process dies instead, gpiozero's pin factory cannot
    run: what the pin does then is the kernel's and the wiring's business (README, "Wiring a
    relay"). GPIOZERO_PIN_FACTORY=mock (gpiozero's own mock pins) runs it anywhere.
    """

    def __init__(self, pin: int, *, active_high: bool, pin_factory: Any = None):
        try:
            from gpiozero import DigitalOutputDevice
            from gpiozero.exc import GPIOZeroError
        except ImportError:
            raise IotlightError(
                "light.gpio_pin = %d needs the gpiozero library: on Raspberry Pi OS "
                "sudo apt install python3-gpiozero (or pip install gpiozero)" % pin
            ) from None
        try:
            self.device = DigitalOutputDevice(
                pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
            )
        except (GPIOZeroError, OSError, RuntimeError) as e:
            raise IotlightError("light.gpio_pin = %d cannot be used: %s" % (pin, _one_line(e))) from None
        self.pin = pin
        self.active_high = active_high

    def switch(self, on: bool) -> bool:
        """Switch the output on or off; returns the electrical level read back from the pin (True high)."""
        if on:
            self.device.on()
        else:
            self.device.off()
        return bool(self.device.pin.state)

    def close(self) -> None:
        """Off, then release the pin (a clean stop never leaves the relay on)."""
        with contextlib.suppress(Exception):
            self.device.off()
        with contextlib.suppress(Exception):
            self.device.close()


def open_gpio(config: Config) -> Optional[GpioSwitch]:
    """The GPIO switch that light.gpio_pin asks for; None when it is -1 (off)."""
    if config.gpio_pin < 0:
        return None
    return GpioSwitch(config.gpio_pin, active_high=config.gpio_active_high)


# =============================================================================
# 8. Services: watcher, lamp, outbox, telemetry, monitor
# =============================================================================

LIST_FIRST_PAGE = 50  # first page of a transaction-list read
REORG_MARGIN = 3  # blocks a microblock fork or a short reorg may rewrite
DEEP_MARGIN = 100  # the node's deepest automatic rollback: how far the first read after start looks
LIST_PAGE = 1000  # further pages (the node's default cap)
RESIGN_AFTER_MS = 125 * 60_000  # a tx older than the node's 120-minute window can never land
STATUS_CHECK_INTERVAL = 3.0
SINGLE_KEY_READS = 4  # up to this many Data keys are read one per request (Outbox._written)
COUNT_CHECK_INTERVAL = 20.0  # how often an idle outbox may compare joystick_count on chain with its own
COIN_BALANCE_INTERVAL = 30.0
PRUNE_INTERVAL = 3600.0  # how often a complete read may prune the state file (Store.prune)
HEIGHT_INTERVAL = 15.0  # how often an idle watcher asks the height (public pools cache it 15 s)
SCAN_DEPTH = 5  # newest blocks searched for what raised the balance; deeper: the list read
UNEXPLAINED_GRACE = 6.0  # seconds the balance may run ahead of the blocks (pool caches: 3 s and 1 s)
SWEEP_SPREAD = 0.2  # +-20 % on each sweep's time, so that a class's devices spread their list reads


def _check_block_header(data: Any) -> None:
    ident = (data.get("id") or data.get("signature")) if isinstance(data, dict) else None
    if not isinstance(ident, str) or not 0 < len(ident) <= 100:
        raise BadAnswer("node answered /blocks/headers/at without a block id")


# --- 8a. What every service loop uses: waits, retries, trouble ---------------

STATE_RETRY = 5.0


_unexpected_seen = LogOnce()


def _unexpected(log: logging.Logger, where: str, e: Exception) -> None:
    """Log an unforeseen error with its traceback, once per kind and place; the loop goes on."""
    if _unexpected_seen.first((where, type(e).__name__, str(e)[:100])):
        log.error("unexpected error in %s (the loop goes on): %s", where, e, exc_info=e)


def _retry_delay(
    log: logging.Logger, where: str, e: Exception, delays: Iterator[float], node: NodeClient
) -> float:
    """After an error in one round of a service loop: log it the way its kind deserves and say
    how long to wait. The loop itself goes on (CancelledError is no Exception and passes)."""
    if isinstance(e, NodeError):
        log.debug("%s: %s", where, e)
        return max(next(delays), node.retry_in())
    if isinstance(e, StateError):
        _state_trouble(log)
        return STATE_RETRY
    _unexpected(log, where, e)  # a bug or an answer we did not foresee
    return next(delays)


def _state_trouble(log: logging.Logger) -> None:
    """A state-file write failed (a full disk, say): the Store logged what went wrong, once for the
    episode (Store._write_failed); the caller keeps what it had and retries after STATE_RETRY
    seconds. No error here: repeating it on every retry is the flood the Store avoids."""
    log.debug("state file busy or full: will retry in %g s", STATE_RETRY)


def release_free_memory() -> None:
    """Hand back to the OS the memory that start-up used and freed (glibc keeps it otherwise);
    2-3 MB on a device where every one counts. Elsewhere a no-op."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def boot_id() -> str:
    """This boot's id (Linux): monotonic clock readings compare only within one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or "-"
    except OSError:
        return "-"


async def _wait_or_stop(stop: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout)


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waits, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


# --- 8b. Liveness: how a service shows the systemd watchdog it is alive ------

WATCHDOG_GRACE = 60.0  # seconds a round of work may take on top of one node request tried on every URL


class Pulse:
    """When a service loop will next show life: liveness by deadline, not by heartbeat age.

    A service loop does a round of work, then waits (for its timer, a wake-up or the stop).
    A quiet service is not a dead one: a lamp lit for hours with light.countdown = false has
    nothing to do until the light goes off, a one-day data.telemetry_interval sleeps a day.
    So every wait of a service goes through its Pulse (wait() between rounds, sleep() within
    one), which records until when the service is quiet (`quiet_until`); once the wait is
    over the service is busy, and its round must reach the next wait within the daemon's
    budget: node.timeout x the node URLs (one request tried on every node) + WATCHDOG_GRACE.
    Daemon.watchdog withholds WATCHDOG=1 from systemd when a service is past quiet_until +
    budget (stuck in a request, a hardware call or a bug), or when the event loop itself stood
    still (it measures its own lag). The monitor has no loop of its own: it runs as long as
    the event loop does.
    """

    def __init__(self, clock: Clock):
        self.clock = clock
        self.quiet_until = clock.monotonic()  # the current wait's end; in the past: busy since then

    def late_by(self, mono: float, budget: float) -> float:
        """Seconds past the service's deadline (quiet_until + budget); 0 or less while it lives."""
        return mono - self.quiet_until - budget

    async def wait(self, stop: asyncio.Event, timeout: float, wake: Optional[asyncio.Event] = None) -> None:
        """Wait between rounds: `timeout` seconds, or until `stop` (or `wake`, if given) is set."""
        self.quiet_until = self.clock.monotonic() + max(0.0, timeout)
        try:
            if wake is None:
                await _wait_or_stop(stop, timeout)
            else:
                await _wait_any(stop, wake, timeout)
        finally:
            self.quiet_until = self.clock.monotonic()

    async def sleep(self, seconds: float) -> None:
        """A planned pause within a round (a rate limit): the round's budget starts again after it."""
        self.quiet_until = self.clock.monotonic() + max(0.0, seconds)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.quiet_until = self.clock.monotonic()


# --- 8c. Watcher: finds payments and credits them ----------------------------


class Watcher:
    """Finds payments to the device on the chain and credits them exactly once.

    Each poll asks the token balance (the pools' most generous route), plus the
    height when something needs it (pending confirmations, a list read, or every
    HEIGHT_INTERVAL), all at once: one round trip. A balance above what is
    accounted for is looked up in the newest blocks (/blocks/last, /blocks/at/h:
    routes a whole class behind one IP shares at 20 r/s, not 17 a minute); the
    payments found there are credited at once. The address's transaction list,
    which public pools limit hardest, stays the complete record: it is read at
    start, after a rollback, when the blocks do not explain the balance within
    UNEXPLAINED_GRACE, when payments wait for confirmations, and on the safety
    sweep (node.sweep_interval, jittered). A 429/503 slows the polls down (AIMD with
    jitter, Retry-After honoured); one on the list read only defers the list read.
    A block read never marks anything as handled: only a complete list read
    does, so a payment the blocks missed is still found by the list. A list read pages back with `after` until it meets a
    transaction already handled in a block deep enough to be final and checked
    unchanged (by its id) since the last read; only a read that got there marks
    what it found as seen, so a read cut short by an error or a rollback leaves
    no gap. Crediting is keyed by transaction id in the
    store, so reading a transaction twice never credits it twice.
    """

    def __init__(
        self,
        config: Config,
        address: str,
        *,
        node: NodeClient,
        store: Store,
        clock: Clock,
        on_credit: Callable[[List[Credit]], None],
        on_height: Callable[[int], None],
        on_balance: Callable[[Optional[int], Optional[int]], None],
        light_span: Callable[[], Tuple[float, float]],
        on_ignored: Optional[Callable[[Dict[str, Any]], None]] = None,
        sign_refund: Optional[Callable[[str, str, int], Dict[str, Any]]] = None,
    ):
        self.config = config
        self.on_ignored = on_ignored
        self.sign_refund = sign_refund if config.refund == "excess" else None
        self.address = address
        self.node = node
        self.store = store
        self.clock = clock
        self.on_credit = on_credit
        self.on_height = on_height
        self.on_balance = on_balance
        self.light_span = light_span
        self.log = logging.getLogger("iotlight.watcher")
        self.mine = {address}
        self.decimals: Optional[int] = None
        self.height: Optional[int] = None
        self.token_balance: Optional[int] = None
        self.coin_balance: Optional[int] = None
        self.pending: Dict[str, int] = {}  # payment id -> height, waiting for confirmations
        self.deep = True  # the next complete read looks DEEP_MARGIN blocks back (start, rollback)
        self.verify_receipts = True  # until a complete read after start: trust on-chain receipts too
        self.witness: Optional[Tuple[int, str]] = None  # (height, block id) at the last complete read's floor
        self.next_sweep = 0.0
        self.next_coin_check = 0.0
        self.next_prune = 0.0
        self.next_height = 0.0
        self.route_height: Optional[int] = None  # the last answer of the height route
        self.dirty = True
        self.asked = 0  # list reads asked for; one asked during a read makes another
        self.list_task: Optional["asyncio.Future[None]"] = None
        self.accounted: Optional[int] = None  # token balance the credited/pending payments explain
        self.absorbed: set = set()  # ids of payments whose amount is inside `accounted`
        self.ahead: set = set()  # ids credited from blocks whose amount the balance did not show yet
        self.quiet_height: Optional[int] = None  # height when the balance was last fully explained
        self.unexplained_since: Optional[float] = None
        self.pace = Backoff(config.poll_interval, 60.0, recover=10, spread=0.2)  # poll gap, AIMD: 80-100 %
        self.list_backoff = Backoff(10.0, 120.0)  # list reads after a 429/503 on them
        self.list_not_before = 0.0
        self.limiter = RateLimiter(
            config.list_rate, 60.0, max(1.0, min(15.0, config.list_rate)), clock.monotonic()
        )
        self.complained = LogOnce()  # bounded: a node sending endless garbage must not grow memory
        self.full_txs: Dict[str, Dict[str, Any]] = {}  # checked full forms of compact mass transfers
        self.reported: set = (
            set()
        )  # keys of ignored transfers already reported (the store remembers them all)
        self.pulse = Pulse(clock)

    def _complain_once(self, key: str, msg: str, *args: Any) -> None:
        if self.complained.first(key):
            self.log.warning(msg, *args)

    def report_ignored(
        self,
        tx_id: Optional[str],
        *,
        reason: str,
        sender: Any = None,
        amount: Any = None,
        asset_id: Any = None,
        detail: str = "",
        key: Optional[str] = None,
    ) -> bool:
        """Tell once that a transfer to the device lights nothing: one log line (WARNING for
        `not_verified`, INFO otherwise) and one `ignored` monitor event, never again for the same
        `key` (default `tx_id`), across restarts (the state file remembers it). `reason` is a word
        of the monitor protocol (wrong_asset, failed, not_verified, malformed, ...), `detail` a
        few words for the log. True when it was news; False when reported before or when the
        state file cannot be written (it is tried again on a later read)."""
        key = key or tx_id or "?"
        if key in self.reported:
            return False
        try:
            fresh = self.store.mark_ignored(key, reason, int(self.clock.time() * 1000))
        except StateError:
            _state_trouble(self.log)
            return False
        if len(self.reported) >= 10000:
            self.reported.clear()
        self.reported.add(key)
        if not fresh:
            return False
        self.log.log(
            logging.WARNING if reason == "not_verified" else logging.INFO,
            "transfer %s from %s (%s units of %s) lights nothing: %s%s",
            tx_id or "(no id)",
            sender or "?",
            amount if amount is not None else "?",
            asset_id or "the chain's coin",
            reason,
            ": " + detail if detail else "",
        )
        if self.on_ignored is not None:
            self.on_ignored(
                {
                    "type": "ignored",
                    "id": tx_id,
                    "sender": sender,
                    "amount": amount,
                    "asset_id": asset_id,
                    "reason": reason,
                }
            )
        return True

    def _malformed(self, raw: Any, why: str) -> None:
        """A listed item without the documented shape: skipped, reported once as `malformed`."""

        def field(name: str, ok: Callable[[Any], bool]) -> Any:
            value = raw.get(name) if isinstance(raw, dict) else None
            return value if ok(value) else None

        def short_str(v: Any) -> bool:
            return isinstance(v, str) and len(v) <= 64

        txid = field("id", short_str)
        key = (
            txid
            or "malformed:"
            + hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:40]
        )
        self.report_ignored(
            txid,
            reason="malformed",
            sender=field("sender", short_str),
            amount=field("amount", lambda v: _int_within(v, 0, INT64_MAX)),
            asset_id=field("assetId", short_str),
            detail=why,
            key=key,
        )

    async def prepare(self) -> None:
        """Token decimals (cached in the state file) and the device's aliases."""
        if self.decimals is None:
            cached = self.store.token_fact(self.config.asset_id, "decimals")
            if cached is not None:
                self.decimals = int(cached)
            else:
                self.decimals = await self.node.asset_decimals(self.config.asset_id)
                self.store.set_token_fact(self.config.asset_id, "decimals", self.decimals)
                self.log.info("token %s has %d decimals", self.config.asset_id, self.decimals)
        aliases = await self.node.aliases(self.address)
        new = set(aliases) - self.mine
        if new:
            self.log.info("device aliases: %s", ", ".join(sorted(new)))
        self.mine = {self.address} | set(aliases)

    async def poll_once(self) -> None:
        """One poll: the balance (and the height when needed) in one round trip; new payments
        looked up in the newest blocks; a list read when something is left to explain."""
        if self.store.failing:
            self.store.probe()  # credits wait until the state file has room again
        mono = self.clock.monotonic()
        sweep = mono >= self.next_sweep
        if sweep:  # due from when it was due, not from when a (perhaps deferred) list read got through
            self.next_sweep = mono + self.config.sweep_interval * (
                1 + self.pace.rng.uniform(-SWEEP_SPREAD, SWEEP_SPREAD)
            )
            self._want_list()
            release_free_memory()  # what answers and bursts of work freed goes back to the OS, once a sweep
        if self.decimals is None or sweep:
            await self.prepare()
        list_due = (
            self.dirty
            and self.list_task is None
            and mono >= self.list_not_before
            and self.limiter.delay(mono) <= 0
        )
        want_height = self.height is None or bool(self.pending) or list_due or mono >= self.next_height
        want_coin = mono >= self.next_coin_check
        asks = [self.node.asset_balance(self.address, self.config.asset_id)]
        if want_height:
            asks.append(self.node.height())
        if want_coin:
            asks.append(self.node.balance(self.address))
        answers = await asyncio.gather(*asks, return_exceptions=True)  # independent: asked together
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        balance = answers[0]
        if want_height:
            self.next_height = mono + HEIGHT_INTERVAL
            self._seen_height(answers[1])
        if want_coin:
            self.next_coin_check = mono + COIN_BALANCE_INTERVAL
            coin = answers[-1]
            if coin != self.coin_balance:
                self.coin_balance = coin
                self.on_balance(self.token_balance, coin)
        if balance != self.token_balance:
            self.token_balance = balance
            self.on_balance(balance, self.coin_balance)
        await self.explain_balance(balance)
        await self._list_read(mono, want_height)

    def _want_list(self) -> None:
        """Something only a list read can settle: ask for one (also while one is under way)."""
        self.dirty = True
        self.asked += 1

    async def _list_read(self, mono: float, fresh_height: bool) -> None:
        """Start the list read when one is asked for, and wait for it at most a poll interval
        (1 s at least): a read the pool holds in its queue (17 a minute per IP) goes on in the
        background while the next polls keep finding payments in the blocks. Its failure
        surfaces in a later poll."""
        self.take_list_result()
        if self.list_task is None:
            if not self.dirty:
                return
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

    def _seen_height(self, height: int, *, route: bool = True) -> None:
        """A height from the node: first contact, a rollback (it went back), news for pending
        payments. Only answers of the height route are compared for a rollback (`route`): a
        pool caches /blocks/height 15 s and blocks 1 s, so a block read's height may be ahead."""
        if self.store.get_meta("horizon") is None:
            self.store.set_meta("horizon", height)  # the node's height at the very first start
        before = self.route_height
        went_back = route and before is not None and height < before
        if route:
            self.route_height = height
        if went_back or self.height is None or height > self.height:
            if went_back:
                self.log.info(
                    "the node's height went back from %d to %d (a rollback): reading deeper", before, height
                )
                self.deep = True
                self._want_list()
            self.height = height
            self.on_height(height)
            if self.pending:
                self._want_list()

    async def _list_read_due(self, mono: float, fresh_height: bool) -> None:
        """The list read, when its rate limit and its back-off allow; a 429/503 on it defers it
        (with a growing, jittered wait) without slowing the polls down."""
        if mono < self.list_not_before:
            return
        wait = self.limiter.delay(mono)
        if wait > 0:
            self.log.debug("transaction list read deferred %.1fs by the rate limit", wait)
            return
        try:
            if not fresh_height:
                self._seen_height(await self.node.height())
            await self.read_list(self.height)
        except NodeRejected:
            raise
        except NodeThrottled as e:  # a 429/503 from the pool: its per-IP budget for the list is spent
            delay = self.list_backoff.failure(e.retry_after)
            self.list_not_before = self.clock.monotonic() + delay
            self._complain_once(
                "list-throttled",
                "the node throttles the transaction list (%s): reading it "
                "less often; payments are still found in the newest blocks" % e,
            )
            self.log.debug("transaction list read throttled: again in %.1fs", delay)
            return
        except NodeError as e:  # a bad answer or a timeout (also in a pool's queue): the node client's
            delay = max(self.node.retry_in(), self.config.poll_interval)  # back-off decides when
            self.list_not_before = self.clock.monotonic() + delay
            self.log.debug("transaction list read failed (%s): again in %.1fs", e, delay)
            return
        self.list_backoff.success()
        if not self.dirty:  # complete, nothing asked meanwhile: the balance is accounted for
            self.accounted, self.absorbed, self.ahead = self.token_balance, set(), set()
            self.quiet_height, self.unexplained_since = self.height, None

    async def explain_balance(self, balance: int) -> None:
        """Account for a balance change: a rise is looked up in the newest blocks (the payments
        found there are credited at once); what stays unexplained for UNEXPLAINED_GRACE, or a
        fall (a rollback took a payment back), is left to the list read."""
        if self.accounted is None or balance == self.accounted:
            self.accounted = balance if self.accounted is None else self.accounted
            self.quiet_height, self.unexplained_since = self.height, None
            return
        if balance < self.accounted:
            self.log.info(
                "the token balance fell from %d to %d: reading the transaction list", self.accounted, balance
            )
            self.accounted = None
            self._want_list()
            return
        await self.scan_blocks(balance)
        if self.accounted == balance:
            self.quiet_height, self.unexplained_since = self.height, None
            return
        mono = self.clock.monotonic()
        if self.unexplained_since is None:
            self.unexplained_since = mono
        elif mono - self.unexplained_since >= UNEXPLAINED_GRACE and not self.dirty:
            self.log.info(
                "the newest blocks do not explain the token balance %d (%d accounted for): "
                "reading the transaction list",
                balance,
                self.accounted,
            )
            self._want_list()

    async def scan_blocks(self, balance: int) -> None:
        """Read blocks from the newest down until the payments in them explain `balance` (at most
        SCAN_DEPTH, and not below the height where it was last explained); credit the final ones."""
        top = await self.node.block()
        height = top["height"]
        self._seen_height(height, route=False)
        floor = max(1, height - SCAN_DEPTH, (self.quiet_height or height) - 1)
        block: Optional[Dict[str, Any]] = top
        at = height
        while True:
            txs = []
            for raw in block["transactions"] if block is not None else []:
                try:
                    txs.append(dict(check_tx_shape(raw), height=at))
                except ValueError as e:
                    self._complain_once(
                        "shape:%s" % e, "skipping a malformed transaction from the node: %s", e
                    )
            if txs:
                await self._account(txs[::-1], height)  # newest first, as the list gives them
            if self.accounted == balance or at <= floor:
                return
            at -= 1
            try:
                block = await self.node.block(at)
            except NodeRejected as e:
                if e.status != 404:
                    raise
                block = None  # gone meanwhile (a rollback): the next poll sees the new height

    async def _account(self, txs: List[Dict[str, Any]], height: int) -> None:
        """Credit the final payments among one block's `txs` (newest first, as in the list) and
        take the amounts the balance shows into `accounted`, oldest first. Before the first
        complete list read after a start, a payment the state file does not hold is credited only
        after its served_<id> receipt is looked up on chain (a state file that lost writes)."""
        payments = []
        for tx in txs:
            try:
                amount = payment_amount(tx, asset_id=self.config.asset_id, mine=self.mine)
            except ValueError:
                continue
            if amount > 0:
                payments.append((tx["id"], amount))
        if not payments:
            return
        ids = [i for i, _ in payments]
        known = self.store.credited_ids(ids)
        before = known - self.ahead
        served = await self._receipts([i for i in ids if i not in known]) if self.verify_receipts else {}
        self.process([tx for tx in txs if tx["id"] in set(ids)], height, served or None, merge_pending=True)
        self.ahead |= self.store.credited_ids(ids) - before
        for txid, amount in reversed(payments):
            if txid in self.absorbed or txid in before:
                continue
            if self.accounted is not None and self.accounted + amount <= (self.token_balance or 0):
                self.accounted += amount
                self.absorbed.add(txid)
                self.ahead.discard(txid)

    async def _list_token(self) -> None:
        """Wait until the rate limit of the public pools' most limited routes allows a request."""
        wait = self.limiter.delay(self.clock.monotonic())
        if wait > 0:
            self.log.debug("next limited request in %.1fs (node.list_rate)", wait)
            await self.pulse.sleep(wait)
        self.limiter.take(self.clock.monotonic())

    async def _list_page(self, limit: int, after: Optional[str]) -> List[Any]:
        """One page of the address's transactions, waiting for the rate limit first."""
        await self._list_token()
        return await self.node.address_transactions(self.address, limit, after)

    def _final(self, tx_height: Optional[int], height: int) -> bool:
        return tx_height is not None and height - tx_height >= self.config.confirmations

    async def read_list(self, height: int) -> None:
        """Page through the address's transactions down to what is already handled.
        Payments found are credited even when the read is cut short; what it found is
        marked handled only when it got all the way down."""
        found: List[Dict[str, Any]] = []
        handled: List[Tuple[str, Optional[int]]] = []
        complete = False
        deep = self.deep
        asked = self.asked
        self.dirty = True
        try:
            complete = await self._read_pages(height, found)
            await self._complete_mass_transfers(found)
        finally:
            # a pool caches the height longer than the list: the list may be ahead of it
            top = max([height] + [tx["height"] for tx in found if _is_int(tx.get("height"))])
            if not self.verify_receipts:
                handled = self.process(found, top)  # the light goes on before the checks below
        if self.verify_receipts:
            # the first read after a start: a state file that lost its newest writes (a damaged
            # write-ahead log) must not credit again what the chain shows as served. It lost
            # writes if the chain holds Data transactions of ours that the outbox does not know.
            own = [tx["id"] for tx in found if tx.get("type") == TX_DATA and tx.get("sender") == self.address]
            lost = bool(set(own) - self.store.outbox_ids(own))
            handled = self.process(found, top, await self._served_on_chain(found) if lost else {})
        if complete and await self._chain_below_unchanged(height):
            self.store.mark_seen(handled)
            self.verify_receipts = False
            self.deep = False
            self.dirty = self.asked != asked  # asked again while it read: read again
            self.prune(height)
        if len(found) > LIST_PAGE or deep:
            release_free_memory()  # a catch-up or deep read held many transactions

    async def _complete_mass_transfers(self, txs: List[Dict[str, Any]]) -> None:
        """A mass transfer to the device with other recipients comes in the listing in compact form
        (only the device's items), which cannot be checked against its id and proof: its full form
        is read from /transactions/info (the listing's height and status kept). Ones credited
        already are not read again."""
        wanted = []
        for i, tx in enumerate(txs):
            count = tx.get("transferCount")
            if (
                tx.get("type") != TX_MASS_TRANSFER
                or tx.get("sender") == self.address
                or not _is_int(count)
                or count == len(tx["transfers"])
            ):
                continue
            try:
                if classify_transfer(tx, asset_id=self.config.asset_id, mine=self.mine)[0] > 0:
                    wanted.append(i)
            except ValueError:
                continue
        credited = self.store.credited_ids([txs[i]["id"] for i in wanted]) if wanted else set()
        for i in wanted:
            tx = txs[i]
            if tx["id"] in credited:
                continue
            full = self.full_txs.get(tx["id"])
            if full is None:
                try:
                    full = await self.node.get(
                        "/transactions/info/%s" % tx["id"], check=_check_object("/transactions/info")
                    )
                except NodeRejected as e:
                    if e.status != 404:
                        raise
                    continue  # the node lists what it cannot show: the compact form fails the check
                try:
                    check_tx_shape(full)
                except ValueError:
                    continue
                if full["id"] != tx["id"]:
                    continue
                if check_transfer_proof(full, self.config.chain_id) is None:
                    if len(self.full_txs) >= 256:
                        self.full_txs.clear()
                    self.full_txs[tx["id"]] = full  # checked: an id has only this body
            merged = dict(full)
            merged["height"] = tx.get("height")
            if "applicationStatus" in tx:
                merged["applicationStatus"] = tx["applicationStatus"]
            txs[i] = merged

    async def _receipts(self, ids: Sequence[str]) -> Dict[str, Dict[str, Any]]:
        """The device's served_<id> receipts on chain for `ids`, one key per request (the single-key
        route, which public pools do not hold to 17 a minute): payment id -> the receipt's value."""
        served: Dict[str, Dict[str, Any]] = {}
        for txid in ids:
            try:
                entry = await self.node.get("/addresses/data/%s/served_%s" % (self.address, txid))
                served[txid] = receipt_span(entry["value"])
            except NodeRejected as e:
                if e.status != 404:
                    raise
            except (KeyError, TypeError, ValueError):
                continue
        return self._served_found(served)

    def _served_found(self, served: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
        if served:
            self.log.warning(
                "%d payment(s) missing from the state file were served already (receipts on "
                "chain): recorded without lighting again",
                len(served),
            )
        return served

    async def _served_on_chain(self, txs: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
        """Receipts (served_<id>) the device wrote on chain for payments among `txs` that the
        state file does not hold: payment id -> the receipt's value."""
        ids = []
        for tx in txs:
            try:
                if payment_amount(tx, asset_id=self.config.asset_id, mine=self.mine) > 0:
                    ids.append(tx["id"])
            except ValueError:
                continue
        ids = [i for i in ids if i not in self.store.credited_ids(ids)]
        served: Dict[str, Dict[str, Any]] = {}
        wanted = set(ids)
        # a few receipts by key; many in one request by pattern
        queries = (
            [[("key", "served_" + x) for x in ids[i : i + 25]] for i in range(0, len(ids), 25)]
            if len(ids) <= 50
            else [[("matches", "served_.*")]]
        )
        for params in queries if ids else []:
            await self._list_token()
            entries = await self.node.get(
                "/addresses/data/%s" % self.address, params, check=_check_list("/addresses/data")
            )
            for entry in entries if isinstance(entries, list) else []:
                if not isinstance(entry, dict) or entry.get("key", "")[len("served_") :] not in wanted:
                    continue
                try:
                    served[entry["key"][len("served_") :]] = receipt_span(entry["value"])
                except (KeyError, TypeError, ValueError):
                    continue
        return self._served_found(served)

    async def _block_id(self, height: int) -> Optional[str]:
        """The id of the block at `height`; None when there is none (a rollback took it)."""
        try:
            header = await self.node.get("/blocks/headers/at/%d" % height, check=_check_block_header)
        except NodeRejected as e:
            if e.status == 404:
                return None
            raise
        return header.get("id") or header.get("signature")

    async def _chain_below_unchanged(self, height: int) -> bool:
        """After a read got down to its stop: were the blocks up to the witness (the block at the
        previous read's floor) left alone meanwhile? A block's id covers every block below it.
        If a rollback went that deep, the read may have stopped at a transaction that came back
        at its old height above newer ones: it does not count, and the next one reads deep.
        Then the witness moves up to this read's floor."""
        if self.witness is not None and not self.deep:
            at, ident = self.witness
            if await self._block_id(at) != ident:
                return self._went_back("block %d changed since the last read" % at)
        at = height - self.config.confirmations - REORG_MARGIN
        ident = await self._block_id(at) if at >= 1 else None
        if ident is None and at >= 1:
            return self._went_back("block %d is gone" % at)  # went back below it during the read
        self.witness = (at, ident) if ident is not None else None
        return True

    def _went_back(self, what: str) -> bool:
        """The chain below the stop changed during or since the last read: this read does not
        count, and the next one reads DEEP_MARGIN blocks back."""
        self.log.info("%s (a rollback): reading again, deeper", what)
        self.witness = None
        self.deep = True
        return False

    async def _read_pages(self, height: int, found: List[Dict[str, Any]]) -> bool:
        ids_this_read: set = set()
        after: Optional[str] = None
        limit = LIST_FIRST_PAGE
        complete = False
        restarts = 0
        while True:
            try:
                page = await self._list_page(limit, after)
            except NodeRejected as e:
                if after and e.code == 199 and restarts < 3:
                    # the 0bs fork refuses an `after` id that vanished (rolled back): start again at the top
                    self.log.info(
                        "node no longer knows transaction %s (rolled back?); reading from the top", after
                    )
                    restarts += 1
                    after, limit = None, LIST_FIRST_PAGE
                    continue
                raise
            good: List[Dict[str, Any]] = []
            for raw in page:
                try:
                    good.append(check_tx_shape(raw))
                except ValueError as e:
                    self._malformed(raw, str(e))
            seen = self.store.seen_heights([t["id"] for t in good])
            # Everything below a handled transaction that has not moved and lies deeper than a reorg
            # can reach, in blocks checked unchanged since the last complete read (the witness), was
            # handled by an earlier complete read. A rollback can put a handled transaction back
            # above newer ones, so a moved one, or one in the last blocks, is no stop.
            margin = DEEP_MARGIN if self.deep else REORG_MARGIN
            floor = height - self.config.confirmations - margin
            if self.witness is not None and not self.deep:
                floor = min(floor, self.witness[0])  # below it, the chain is checked unchanged
            history_floor = None if self.config.count_history else self.horizon() - DEEP_MARGIN
            pruned = self.store.pruned_height()  # everything at or below it was handled, its rows are gone
            stop = False
            for tx in good:
                if tx["id"] in ids_this_read:
                    stop = True  # Waves answers a vanished `after` with the newest page again
                    break
                ids_this_read.add(tx["id"])
                h = tx.get("height")
                if h is not None and (
                    (tx["id"] in seen and seen[tx["id"]] == h and h <= floor)
                    or (history_floor is not None and h < history_floor)
                    or (pruned and h <= pruned)
                ):
                    stop = complete = True
                    break
                found.append(tx)
            if stop:
                break
            if len(page) < limit:
                complete = True
                break
            last = page[-1].get("id") if isinstance(page[-1], dict) else None
            if not isinstance(last, str):
                break
            after, limit = last, LIST_PAGE
        return complete

    def prune(self, height: int) -> None:
        """After a complete read at `height`, at most every PRUNE_INTERVAL: forget what lies
        PRUNE_KEEP_BLOCKS below the final height. That read handled everything at or below
        height - confirmations; no rollback goes 100 blocks deep; the pruned height left behind
        stops later reads and refuses to credit anything listed at or below it."""
        mono = self.clock.monotonic()
        if mono < self.next_prune:
            return
        self.next_prune = mono + PRUNE_INTERVAL
        floor = height - self.config.confirmations - PRUNE_KEEP_BLOCKS
        if floor <= 0:
            return
        deleted = self.store.prune(floor, now_ms=int(self.clock.time() * 1000))
        if any(n >= PRUNE_BATCH for n in deleted.values()):
            self.next_prune = mono  # a backlog (a state file from before pruning): more on the next read
        if deleted:
            self.log.debug(
                "state file pruned at height %d: %s",
                floor,
                ", ".join("%d %s" % (n, t) for t, n in sorted(deleted.items()) if n) or "nothing",
            )

    def horizon(self) -> int:
        """The node's height at the very first start (first contact)."""
        return int(self.store.get_meta("horizon") or 0)

    def process(
        self,
        txs: List[Dict[str, Any]],
        height: int,
        served: Optional[Dict[str, Dict[str, Any]]] = None,
        *,
        merge_pending: bool = False,
    ) -> List[Tuple[str, Optional[int]]]:
        """Credit the final payments among `txs` (oldest first); return the handled ones (id,
        height), for the caller to mark seen once the read proved complete. `served` holds
        payments whose receipts are on chain already: recorded, not lit again."""
        horizon = self.horizon() or height
        pruned = self.store.pruned_height()
        first_start_ms = int(self.store.get_meta("first_start_ms") or 0)
        payments: List[Tuple[str, str, int, Optional[int], float]] = []
        handled: List[Tuple[str, Optional[int]]] = []
        pending: Dict[str, int] = {}
        for tx in reversed(txs):
            txid, tx_height = tx["id"], tx.get("height")
            try:
                amount, reason = classify_transfer(tx, asset_id=self.config.asset_id, mine=self.mine)
            except ValueError as e:
                self._malformed(tx, str(e))
                continue
            if amount <= 0:
                handled.append((txid, tx_height))
                continue
            if pruned and tx_height is not None and tx_height <= pruned:
                self._complain_once(
                    "pruned:%s" % txid,
                    "payment %s at height %d lies at or below the pruned "
                    "height %d: handled long ago, not credited again",
                    txid,
                    tx_height,
                    pruned,
                )
                continue
            sender = tx.get("sender") if isinstance(tx.get("sender"), str) else ""
            # nothing the node says about a transfer to the device counts before it checks out: a
            # made-up or relabelled one is not handled either, so the real one still lights later
            why = check_transfer_proof(tx, self.config.chain_id)
            if why is not None:
                self.report_ignored(
                    txid,
                    reason="not_verified",
                    sender=sender,
                    amount=amount,
                    asset_id=tx.get("assetId"),
                    detail=why,
                )
                continue
            if reason is not None:
                self.report_ignored(
                    txid,
                    reason=reason,
                    sender=sender,
                    amount=amount,
                    asset_id=tx.get("assetId"),
                    detail="applicationStatus %s" % tx.get("applicationStatus") if reason == "failed" else "",
                )
                handled.append((txid, tx_height))
                continue
            # "made before the very first start": signed before it and mined no later than the
            # node's height at first contact (a node down at the first start does not turn later
            # payments into history)
            if _is_int(tx.get("timestamp")):
                history = tx["timestamp"] < first_start_ms and (tx_height is None or tx_height <= horizon)
            else:
                history = tx_height is not None and tx_height < horizon
            if history and not self.config.count_history:
                self.log.info(
                    "payment %s of %d made before the first start: not counted "
                    "(payment.count_history = false)",
                    txid,
                    amount,
                )
                handled.append((txid, tx_height))
                continue
            if not self._final(tx_height, height):
                pending[txid] = tx_height if tx_height is not None else height
                continue
            if below_minimum(amount, self.decimals or 0, self.config.min_tokens):
                # dust: no light, no receipt (no fee)
                self.report_ignored(
                    txid,
                    reason="below_minimum",
                    sender=sender,
                    amount=amount,
                    asset_id=tx.get("assetId"),
                    detail="under payment.min_tokens (%g)" % self.config.min_tokens,
                )
                handled.append((txid, tx_height))
                continue
            payments.append(
                (
                    txid,
                    sender,
                    amount,
                    tx_height,
                    payment_seconds(amount, self.decimals or 0, self.config.seconds_per_token),
                )
            )
            handled.append((txid, tx_height))
        if payments:
            start, until = self.light_span()
            credits = self.store.credit_payments(
                payments,
                now=self.clock.time(),
                max_seconds=self.config.max_seconds,
                light=(start, until),
                served=served,
                sign_refund=self.sign_refund,
            )
            if credits or served:
                self.on_credit(credits)
        for txid in pending:
            if txid not in self.pending:
                self.log.info(
                    "payment %s seen at height %d; waiting for %d confirmation(s)",
                    txid,
                    pending[txid],
                    self.config.confirmations,
                )
        self.pending = dict(self.pending, **pending) if merge_pending else pending
        return handled

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every node.poll_interval (jittered); on a 429/503 or an error the gap doubles
        (at least Retry-After), and comes back a step per good poll (self.pace)."""
        delays = iter(self.pace.failure, None)
        try:
            await self._run(stop, delays)
        finally:
            self.cancel_list_read()

    async def _run(self, stop: asyncio.Event, delays: Iterator[float]) -> None:
        while not stop.is_set():
            try:
                await self.poll_once()
                self.pace.success()
                wait = self.pace.interval()
            except NodeThrottled as e:
                wait = max(self.pace.failure(e.retry_after), self.node.retry_in())
                self._complain_once(
                    "throttled",
                    "the node throttles the polls (%s): polling less often, "
                    "back to every %gs when it allows" % (e, self.config.poll_interval),
                )
                self.log.debug("poll throttled: next in %.1fs", wait)
            except NodeRejected as e:
                self._complain_once("rej:%s" % e, "the node refused a request: %s", e)
                wait = next(delays)
            except Exception as e:
                wait = _retry_delay(self.log, "poll", e, delays, self.node)
            await self.pulse.wait(stop, wait)


# --- 8d. Lamp: the light on the matrix (and a GPIO pin) ----------------------


class Lamp:
    """Drives the LED matrix from the light timer and tells the monitor."""

    def __init__(
        self,
        config: Config,
        hardware: Any,
        clock: Clock,
        *,
        store: Store,
        publish: Callable[[Dict[str, Any]], None],
        status: Callable[[], str],
        gpio: Optional[GpioSwitch] = None,
    ):
        self.config = config
        self.hw = hardware
        self.gpio = gpio
        self.clock = clock
        self.store = store
        self.publish = publish
        self.status = status
        self.timer = LightTimer()
        self.wake = asyncio.Event()
        self.pixels: List[Tuple[int, int, int]] = [(0, 0, 0)] * 64
        self.log = logging.getLogger("iotlight.lamp")
        self.offset = clock.time() - clock.monotonic()
        self.pulse = Pulse(clock)

    def load(self, start: float, until: float) -> None:
        """Resume a lit span stored before a restart (Unix seconds). Within the same boot the
        stored monotonic deadline holds whatever the wall clock did meanwhile; after a reboot
        the wall clock is all there is, and the light never runs longer than its whole span."""
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
        """Store the monotonic deadline that goes with the stored end time `until`."""
        try:
            self.store.set_meta("light_mono", "%r %r %s" % (until, self.timer.deadline, boot_id()))
        except StateError:
            _state_trouble(self.log)

    def span(self) -> Tuple[float, float]:
        """(start, until) of the current span in Unix seconds, from the monotonic timer."""
        wall, mono = self.clock.time(), self.clock.monotonic()
        if not self.timer.is_on(mono):
            return wall, wall
        return wall - (mono - self.timer.span_start), wall + self.timer.remaining(mono)

    def credited(self, until: float) -> None:
        wall, mono = self.clock.time(), self.clock.monotonic()
        self.timer.set_until(until, mono=mono, wall=wall)
        self._mark(until)
        self.publish(dict(type="light", **self.state()))
        self.wake.set()

    def state(self) -> Dict[str, Any]:
        wall, mono = self.clock.time(), self.clock.monotonic()
        rem = self.timer.remaining(mono)
        return {"on": rem > 0, "remaining": round(rem, 3), "until": round(wall + rem, 3) if rem > 0 else None}

    def switch_gpio(self, on: bool) -> None:
        """The GPIO output follows the light (before the matrix is drawn: the relay is the real lamp)."""
        if self.gpio is None:
            return
        try:
            level = self.gpio.switch(on)
        except Exception as e:  # a pin fault must not stop the matrix or the ledger
            self.log.warning(
                "gpio pin %d: switching %s failed: %s", self.gpio.pin, "on" if on else "off", _one_line(e)
            )
            return
        self.log.info(
            "gpio pin %d %s (level %s)", self.gpio.pin, "on" if on else "off", "high" if level else "low"
        )
        self.publish({"type": "gpio", "pin": self.gpio.pin, "on": on, "level": int(level)})

    def _next_change(self, mono: float) -> float:
        rem = self.timer.remaining(mono)
        if rem <= 0:
            return 1.0
        total = self.timer.deadline - self.timer.span_start
        if not self.config.countdown or total <= 0:
            return rem
        k = math.ceil(8 * rem / total - 1e-9)
        return max(0.01, min(rem, rem - (k - 1) / 8 * total))

    async def run(self, stop: asyncio.Event) -> None:
        was_on = None
        while not stop.is_set():
            self.wake.clear()
            mono = self.clock.monotonic()
            wall = self.clock.time()
            if abs((wall - mono) - self.offset) > 1.0:
                self.log.warning(
                    "the wall clock jumped by %+.1f s; the light keeps its paid duration",
                    (wall - mono) - self.offset,
                )
                self.offset = wall - mono
                start, until = self.span()
                try:
                    self.store.set_meta("light_until", repr(until if self.timer.is_on(mono) else 0.0))
                except StateError:
                    _state_trouble(self.log)
                self._mark(until if self.timer.is_on(mono) else 0.0)
                if self.timer.is_on(mono):
                    self.publish(dict(type="light", **self.state()))
            on = self.timer.is_on(mono)
            if on != was_on:
                self.switch_gpio(on)
            pixels = render_matrix(
                on=on,
                fraction=self.timer.fraction(mono),
                color=self.config.color,
                countdown=self.config.countdown,
                status="ok" if on else self.status(),
            )
            if await self.hw.show(pixels):
                self.pixels = pixels
                self.publish({"type": "matrix", "pixels": [list(p) for p in pixels]})
            if on != was_on:
                if was_on is not None:
                    self.log.info("light %s", "on" if on else "off")
                    self.publish(dict(type="light", **self.state()))
                was_on = on
            await self.pulse.wait(stop, self._next_change(self.clock.monotonic()), self.wake)


# --- 8e. Outbox: signed Data transactions, stored before they are sent -------


class Outbox:
    """Turns stored events into signed Data transactions and gets them onto the chain.

    Every transaction is stored before its first broadcast; it is re-posted
    unchanged until the node knows it, and re-signed (same entries, new
    timestamp) only once it is too old ever to be accepted or the node refused
    its timestamp. Rejections that retrying cannot fix mark it failed.
    """

    def __init__(
        self,
        config: Config,
        keys: KeyPair,
        *,
        node: NodeClient,
        store: Store,
        clock: Clock,
        publish: Callable[[Dict[str, Any]], None],
        on_funds: Callable[[bool], None],
    ):
        self.config = config
        self.keys = keys
        self.address = keys.address(config.chain_id)
        self.node = node
        self.store = store
        self.clock = clock
        self.publish = publish
        self.on_funds = on_funds
        self.log = logging.getLogger("iotlight.outbox")
        self.wake = asyncio.Event()
        now = clock.monotonic()
        self.tx_limiter = RateLimiter(
            config.max_tx_per_minute, 60.0, max(1, min(5, config.max_tx_per_minute)), now
        )
        self.broadcast_limiter = RateLimiter(2, 1.0, 2, now)
        self.last_build = -1e9
        self.no_funds = False
        self.told = LogOnce()  # the no-coins warning, once until coins arrive
        self.next_funds_check = 0.0
        self.node_offset_ms = 0
        self.retry_at: Dict[str, float] = {}
        self.retry_delays: Dict[str, Iterator[float]] = {}
        self.next_status_check = 0.0
        self.reconciled = False
        self.count_ok = 0  # the press count last found on chain as joystick_count
        # a scripted (smart) token costs 0.004 more fee per transfer: learnt from /assets/details
        # (Daemon.learn_token) or from the node refusing a refund's fee, kept in the state file
        self.smart_asset = store.token_fact(config.asset_id, "scripted") == "1"
        self.paid_on_chain: set = set()  # payment ids found in a block: their refunds may go out
        self.next_count_check = now + COUNT_CHECK_INTERVAL
        self.pulse = Pulse(clock)
        self.fee_warned = False

    def now_ms(self) -> int:
        return int(self.clock.time() * 1000) + self.node_offset_ms

    async def reconcile_with_chain(self) -> None:
        """Before the first transaction of a run, square the pending events with the chain. A state
        file that lost its newest writes (a damaged write-ahead log) may hold as pending a press or
        a receipt that went out already: those, found on chain with the same value, are marked sent.
        Presses are numbered 1, 2, 3 ... never reused: numbering continues after the chain's
        joystick_count, and a pending press whose number the chain holds for another press is
        numbered anew."""
        pending = [e for e in self.store.pending_events(10_000) if e.kind in ("joystick", "receipt")]
        written = await self._written(
            [entry["key"] for e in pending for entry in e.entries] + ["joystick_count"]
        )
        done = [e.seq for e in pending if all(written.get(x["key"]) == x["value"] for x in e.entries)]
        on_chain = written.get("joystick_count")
        if self.store.raise_press_count(on_chain if _is_int(on_chain) else 0, done):
            self.log.warning(
                "the state file was behind the chain (joystick_count %s): %d pending event(s) "
                "were on chain already; press numbers continue after the chain's",
                on_chain,
                len(done),
            )
        self.reconciled = True

    async def _written(self, keys: Sequence[str]) -> Dict[str, Any]:
        """The device's Data entries on chain for these keys: key -> value (absent keys left out).
        A few keys (the usual start, the joystick_count check) are asked one per request on the
        single-key route, which public pools allow 20 a second; more go 25 to a request on the
        address's data route, which they hold to 17 a minute per IP (a class sharing one IP)."""
        written: Dict[str, Any] = {}
        if len(keys) <= SINGLE_KEY_READS:
            for key in keys:
                try:
                    item = await self.node.get(
                        "/addresses/data/%s/%s" % (self.address, urllib.parse.quote(key, safe=""))
                    )
                except NodeRejected as e:
                    if e.status != 404 or e.code not in (None, 304):  # 304: no data for this key
                        raise
                    continue
                if isinstance(item, dict) and item.get("key") == key:
                    written[key] = item.get("value")
            return written
        for i in range(0, len(keys), 25):
            answer = await self.node.get(
                "/addresses/data/%s" % self.address, [("key", k) for k in keys[i : i + 25]]
            )
            for item in answer if isinstance(answer, list) else []:
                if isinstance(item, dict) and isinstance(item.get("key"), str):
                    written[item["key"]] = item.get("value")
        return written

    def pending_count(self) -> int:
        return self.store.pending_event_count() + len(self.store.open_txs())

    # -- building
    def build_due(self) -> float:
        """Seconds until the next transaction may be built (0 = now)."""
        mono = self.clock.monotonic()
        return max(self.last_build + self.config.coalesce_window - mono, self.tx_limiter.delay(mono), 0.0)

    def build(
        self, events: Sequence[PendingEvent], replaces: Optional[str] = None
    ) -> Optional[Dict[str, Any]]:
        entries = events_to_entries(events)
        try:
            tx = build_data_tx(
                self.keys,
                entries,
                timestamp=self.now_ms(),
                chain_id=self.config.chain_id,
                fee=self.config.fee,
                rules=self.config.rules,
            )
        except EncodingError as e:
            self.log.error("cannot build a Data transaction from %d event(s): %s", len(events), e)
            return None
        if self.config.fee and tx["fee"] > self.config.fee and not self.fee_warned:
            self.fee_warned = True
            self.log.warning(
                "data.fee = %d is below the node's minimum for this transaction's size: sent with "
                "%d instead (this and later ones); set data.fee = 0 for automatic fees",
                self.config.fee,
                tx["fee"],
            )
        self.store.queue_tx(tx, events, int(self.clock.time() * 1000), replaces=replaces)
        self.publish({"type": "data_tx", "id": tx["id"], "status": "queued", "entries": len(entries)})
        self.log.info(
            "queued Data transaction %s with %d entries (fee %d)%s",
            tx["id"],
            len(entries),
            tx["fee"],
            " replacing %s" % replaces if replaces else "",
        )
        return tx

    def build_pending(self) -> None:
        while self.build_due() <= 0:
            events = pack_events(self.store.pending_events())
            if not events:
                return
            mono = self.clock.monotonic()
            self.tx_limiter.take(mono)
            self.last_build = mono
            if self.build(events) is None:
                return

    def sign_refund(self, payment_id: str, recipient: str, amount: int) -> Dict[str, Any]:
        """A signed transfer of `amount` of the payment token back to `recipient` (the fee in the
        chain's coin, from the device's balance); Store.credit_payments stores it with the credit.
        Its attachment is the payment's id: it names what it refunds on chain, and two refunds of
        the same amount to the same sender signed in the same millisecond are still two
        transactions (a transfer's id covers its fields, not its signature)."""
        return build_transfer_tx(
            self.keys,
            recipient=recipient,
            amount=amount,
            asset_id=self.config.asset_id,
            timestamp=self.now_ms(),
            chain_id=self.config.chain_id,
            fee=transfer_fee(self.config.rules, smart_asset=self.smart_asset),
            attachment=b58decode(payment_id),
        )

    def _kind(self, txid: str) -> str:
        return "refund transfer" if self.store.refund_of(txid) else "Data transaction"

    def _publish_status(self, txid: str, status: str, **extra: Any) -> None:
        """A data_tx event, or a refund event when the transaction is a refund."""
        refund = self.store.refund_of(txid)
        if refund is None:
            self.publish(dict({"type": "data_tx", "id": txid, "status": status}, **extra))
        else:
            self.publish(
                dict(
                    {
                        "type": "refund",
                        "payment_id": refund["payment_id"],
                        "id": txid,
                        "amount": refund["amount"],
                        "status": status,
                    },
                    **extra,
                )
            )

    # -- broadcasting
    async def broadcast_open(self) -> None:
        mono = self.clock.monotonic()
        for row in self.store.open_txs():
            if self.no_funds:
                return
            txid = row["id"]
            if row["status"] == "broadcast" or self.retry_at.get(txid, 0) > mono:
                continue
            refund = self.store.refund_of(txid) if row["tx"].get("type") == TX_TRANSFER else None
            if refund is not None and refund["payment_id"] not in self.paid_on_chain:
                continue  # a refund goes out only once its payment is seen in a block (check_statuses)
            wait = self.broadcast_limiter.delay(self.clock.monotonic())
            if wait > 0:
                self.wake_in(wait)
                return
            self.broadcast_limiter.take(self.clock.monotonic())
            if not await self.broadcast_one(row):
                return  # no node answers: the others wait for their own retry time

    def wake_in(self, seconds: float) -> None:
        asyncio.get_running_loop().call_later(seconds, self.wake.set)

    def set_smart_asset(self, scripted: bool) -> None:
        """Whether the payment token is scripted (its transfers, so refunds, pay the extra fee)."""
        if scripted != self.smart_asset:
            self.log.info(
                "the payment token is %sscripted: refunds pay %s fee",
                "" if scripted else "not ",
                "the smart-asset" if scripted else "the plain",
            )
        self.smart_asset = scripted
        try:
            self.store.set_token_fact(self.config.asset_id, "scripted", "1" if scripted else "0")
        except StateError:
            _state_trouble(self.log)

    async def broadcast_one(self, row: Dict[str, Any]) -> bool:
        """Post one stored transaction; False when no node could be asked."""
        txid, tx = row["id"], row["tx"]
        now_ms = int(self.clock.time() * 1000)
        try:
            await self.node.broadcast(tx)
        except NodeRejected as e:
            msg = str(e)
            low = msg.lower()
            if "already in the state" in low:
                self._set(txid, "broadcast", attempt=True)
                self.next_status_check = 0.0
            elif (
                "unavailable funds" in low
                or "balance" in low
                and ("negative" in low or "not enough" in low or "insufficient" in low or "errors" in low)
            ):
                if self.told.first("funds"):
                    self.log.warning(
                        "not enough coins for the fee of %s: %s; entries wait until funds arrive",
                        txid,
                        describe_refusal(e, rules=self.config.rules),
                    )
                self.no_funds = True
                self.next_funds_check = self.clock.monotonic() + 10.0
                self.on_funds(False)
            elif e.code == 303 or "timestamp" in low:
                await self.resync_clock(msg)
                self.resign(txid, "the node refused its timestamp: %s" % msg)
            elif (
                "does not exceed minimal value" in low
                and self.store.refund_of(txid) is not None
                and int(tx.get("fee") or 0) < transfer_fee(self.config.rules, smart_asset=True)
            ):
                # a refund of a scripted token signed before its script was known: once more with
                # the smart-asset fee (never a third time: that fee is the highest a transfer needs)
                self.set_smart_asset(True)
                self.resign(txid, "the token is scripted and its transfers cost 0.004 more: %s" % msg)
            else:
                self.log.error(
                    "the node rejected %s %s: %s",
                    self._kind(txid),
                    txid,
                    describe_refusal(e, rules=self.config.rules),
                )
                self.store.set_tx_status(txid, "failed", now_ms, error=msg)  # its events stay with it
                self._forget(txid)
                self._publish_status(txid, "failed", error=msg)
            return True
        except NodeError as e:
            delays = self.retry_delays.setdefault(txid, backoff_delays(1.0, 60.0))
            delay = max(next(delays), self.node.retry_in())
            self.retry_at[txid] = self.clock.monotonic() + delay
            self.store.set_tx_status(txid, "queued", now_ms, attempt=True)
            self.log.debug("broadcast of %s failed (%s); again in %.1fs", txid, e, delay)
            self.wake_in(delay)
            return False
        self.retry_delays.pop(txid, None)
        self.retry_at.pop(txid, None)
        self._set(txid, "broadcast", attempt=True)
        return True

    def _set(self, txid: str, status: str, *, height: Optional[int] = None, attempt: bool = False) -> None:
        self.store.set_tx_status(txid, status, int(self.clock.time() * 1000), height=height, attempt=attempt)
        if status not in OUTBOX_OPEN:
            self._forget(txid)
        self._publish_status(txid, status, **({"height": height} if height is not None else {}))
        self.log.info(
            "%s %s %s%s", self._kind(txid), txid, status, " at height %d" % height if height else ""
        )

    def _forget(self, txid: str) -> None:
        """No more broadcasts of this one: drop its retry bookkeeping."""
        self.retry_at.pop(txid, None)
        self.retry_delays.pop(txid, None)

    async def resync_clock(self, why: str) -> None:
        try:
            node_ms = await self.node.node_time_ms()
        except NodeError:
            return
        offset = node_ms - int(self.clock.time() * 1000)
        if abs(offset) > 60_000:
            self.log.warning(
                "this clock is %+.0f s off the node's (%s); signing with the node's time "
                "(set the clock: a Pi without RTC needs network time)",
                offset / 1000,
                why,
            )
            self.node_offset_ms = offset
        else:
            self.node_offset_ms = 0

    def resign(self, txid: str, why: str) -> None:
        self._forget(txid)
        refund = self.store.refund_of(txid)
        if refund is not None:
            self.resign_refund(txid, refund, why)
            return
        events = self.store.events_of(txid)
        if not events:
            self.store.set_tx_status(txid, "replaced", int(self.clock.time() * 1000), error=why)
            return
        self.log.info("re-signing Data transaction %s: %s", txid, why)
        self.build(events, replaces=txid)

    def resign_refund(self, txid: str, refund: Dict[str, Any], why: str) -> None:
        """Re-sign a refund that can never land as it is (too old, or its timestamp refused): same
        recipient and amount, a new timestamp; its receipt is written again with the new id."""
        try:
            tx = self.sign_refund(refund["payment_id"], refund["recipient"], refund["amount"])
        except EncodingError as e:
            self.log.error("cannot re-sign refund transfer %s: %s", txid, e)
            return
        span = refund["receipt"]
        receipt = receipt_entry(
            refund["payment_id"], span["seconds"], span["from"], span["until"], (tx["id"], refund["amount"])
        )
        self.store.replace_refund(txid, tx, receipt, int(self.clock.time() * 1000))
        self.log.info("re-signed refund transfer %s as %s: %s", txid, tx["id"], why)
        self._publish_status(tx["id"], "queued")

    def refund_payments(self, rows: List[Dict[str, Any]]) -> Dict[str, str]:
        """Refund transaction id -> its payment's id, for the open refunds among `rows`."""
        out = {}
        for row in rows:
            if row["tx"].get("type") == TX_TRANSFER:
                refund = self.store.refund_of(row["id"])
                if refund is not None:
                    out[row["id"]] = refund["payment_id"]
        return out

    # -- confirming
    async def check_statuses(self) -> None:
        rows = self.store.open_txs()
        if not rows:
            return
        rows = rows[:100]
        refunds = self.refund_payments(rows)
        statuses = await self.node.statuses([r["id"] for r in rows] + sorted(set(refunds.values())))
        for payment_id in set(refunds.values()):
            if (statuses.get(payment_id) or {}).get("status") == "confirmed":
                if payment_id not in self.paid_on_chain:
                    self.wake.set()  # its refund may go out now
                self.paid_on_chain.add(payment_id)
            else:
                self.paid_on_chain.discard(payment_id)
        now_ms = self.now_ms()
        for row in rows:
            st = statuses.get(row["id"])
            if not st:
                continue
            status = st.get("status")
            payment_id = refunds.get(row["id"])
            if (
                payment_id is not None
                and payment_id not in self.paid_on_chain
                and status == "not_found"
                and now_ms - row["timestamp_ms"] > RESIGN_AFTER_MS
            ):
                # the payment left the chain (a rollback) before its refund went out, and stayed away
                # longer than a transaction may wait: no refund for a payment the chain does not hold
                why = "its payment %s is no longer on chain" % payment_id
                self.log.warning("refund transfer %s dropped: %s", row["id"], why)
                self.store.set_tx_status(row["id"], "failed", int(self.clock.time() * 1000), error=why)
                self._forget(row["id"])
                self._publish_status(row["id"], "failed", error=why)
                continue
            if status == "confirmed":
                h = st.get("height")
                self._set(row["id"], "confirmed", height=h if _is_int(h) else None)
            elif status == "unconfirmed" and row["status"] == "queued":
                self._set(row["id"], "broadcast")  # the node has it (an earlier post got through)
            elif status == "not_found" and row["status"] == "broadcast":
                if now_ms - row["timestamp_ms"] > RESIGN_AFTER_MS:
                    self.resign(
                        row["id"], "it is too old for the node to accept and the node does not know it"
                    )
                else:
                    # dropped from the pool (node restart, expiry): post the same signed JSON again
                    self.store.set_tx_status(row["id"], "queued", int(self.clock.time() * 1000))
            elif status == "not_found" and now_ms - row["timestamp_ms"] > RESIGN_AFTER_MS:
                self.resign(row["id"], "it is too old for the node to accept and the node does not know it")

    def recheck_count(self) -> None:
        """After a rollback: look at the chain's joystick_count again once all is confirmed."""
        self.count_ok = 0

    def recheck_refunds(self, height: int) -> None:
        """After a rollback to `height`: a refund confirmed in a block that may be gone is checked
        again; if the chain lost it, the same signed transfer goes out again (its id can land once)."""
        try:
            n = self.store.reopen_refunds(height - REORG_MARGIN, int(self.clock.time() * 1000))
        except StateError:
            _state_trouble(self.log)
            return
        if n:
            self.log.info("the chain went back to height %d: checking %d refund transfer(s) again", height, n)
            self.next_status_check = 0.0
            self.wake.set()

    async def check_press_count(self) -> None:
        """joystick_count on chain is whichever transaction came last: a rollback that puts an older
        press transaction back into a block after a newer one leaves the chain's count behind. Once
        everything is confirmed, compare it with the presses written and, if behind, write it again."""
        own = self.store.press_count()
        mono = self.clock.monotonic()
        if own == self.count_ok or mono < self.next_count_check:
            return
        self.next_count_check = mono + COUNT_CHECK_INTERVAL
        value = (await self._written(["joystick_count"])).get("joystick_count")
        if _is_int(value) and value >= own:
            self.count_ok = own
            return
        self.log.warning(
            "joystick_count on chain is %s but %d presses were written (a rollback put an older "
            "transaction last): writing the count again",
            value,
            own,
        )
        self.store.add_count_event(int(self.clock.time() * 1000))
        self.wake.set()

    async def check_funds(self) -> None:
        if not self.no_funds or self.clock.monotonic() < self.next_funds_check:
            return
        self.next_funds_check = self.clock.monotonic() + 10.0
        balance = await self.node.balance(self.address)
        need = max((r["tx"].get("fee", 0) for r in self.store.open_txs()), default=0)
        if balance >= need:
            self.log.info(
                "coins for fees arrived (%s); sending the waiting entries",
                format_coins(balance, self.config.rules),
            )
            self.told.over("funds")
            self.no_funds = False
            self.on_funds(True)

    async def run(self, stop: asyncio.Event) -> None:
        delays = backoff_delays(1.0, 60.0)
        while not stop.is_set():
            self.wake.clear()
            try:
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
                if not self.store.open_txs() and not self.store.pending_event_count():
                    await self.check_press_count()
                delays = backoff_delays(1.0, 60.0)
                timeout = STATUS_CHECK_INTERVAL if self.store.open_txs() else 30.0
                if self.store.pending_event_count():
                    timeout = min(timeout, max(0.01, self.build_due()))
                elif self.count_ok != self.store.press_count():
                    timeout = min(timeout, max(0.5, self.next_count_check - self.clock.monotonic()))
            except Exception as e:
                timeout = _retry_delay(self.log, "outbox", e, delays, self.node)
            await self.pulse.wait(stop, timeout, self.wake)


# --- 8f. Telemetry: the sensors, every data.telemetry_interval ---------------


class Telemetry:
    """Reads temperature, humidity and pressure every `data.telemetry_interval` seconds."""

    def __init__(
        self,
        config: Config,
        hardware: Any,
        store: Store,
        clock: Clock,
        wake: Callable[[], None],
        publish: Callable[[Dict[str, Any]], None] = lambda message: None,
    ):
        self.config = config
        self.hw = hardware
        self.store = store
        self.clock = clock
        self.wake = wake
        self.publish = publish
        self.log = logging.getLogger("iotlight.telemetry")
        self.failed = LogOnce()  # topic: a reading that failed
        self.pulse = Pulse(clock)

    async def read_once(self) -> None:
        reading = await self.hw.read_environment()
        for field in ("temperature_c", "humidity_pct", "pressure_hpa"):
            if reading.get(field) is None:
                if self.failed.first(field):
                    self.log.warning("sensor reading %s failed; it is left out until it works again", field)
            else:
                self.failed.over(field)
        now_ms = int(self.clock.time() * 1000)
        try:
            entries = telemetry_entries(reading, now_ms)
        except EncodingError as e:
            self.log.warning("sensor reading left out: %s", e)
            return
        if entries:
            try:
                self.store.add_event("telemetry", entries, now_ms)
            except StateError:
                _state_trouble(self.log)
                return
            self.wake()
            message: Dict[str, Any] = {"type": "telemetry"}
            message.update(
                (field, round(reading[field], 2))
                for key, field in TELEMETRY_FIELDS
                if reading.get(field) is not None and math.isfinite(reading[field])
            )
            self.publish(message)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.read_once()
            await self.pulse.wait(stop, self.config.telemetry_interval)


# --- 8g. Monitor: WebSocket server, dashboard page, terminal client ----------
#
# One port serves three things: the WebSocket endpoint (`/` and `/ws`), the
# dashboard page (`GET /` without an upgrade) and the device address as a QR
# code (`GET /qr.svg`). Every client gets the state snapshot first, then the
# events the daemon publishes. publish() never waits: each client has its own
# bounded queue drained by its own sender task, and a client whose queue is
# full is dropped, so a stalled browser never slows the daemon or the others.

monitor_log = logging.getLogger("iotlight.monitor")

# Close codes (RFC 6455 section 7.4.1).
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY_VIOLATION = 1008
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013

MONITOR_CLOSE_TIMEOUT = 5.0  # seconds a closing handshake may take before the socket is cut
MONITOR_MESSAGE_RATE = 10.0  # messages a second a client may send on average (it need send none) ...
MONITOR_MESSAGE_BURST = 20  # ... and at once; a client that sends faster is closed (1008)


def _http_port(scheme: str, port: Optional[int]) -> int:
    """The port a URL means, with the scheme's default when none is written."""
    if port is not None:
        return port
    return 443 if scheme in ("https", "wss") else 80


def is_same_origin(origin: str, host: str) -> bool:
    """Whether an Origin header (scheme://host[:port]) names the Host header's host:port."""
    try:
        o = urllib.parse.urlsplit(origin)
        h = urllib.parse.urlsplit("//" + host)
        if not o.hostname or not h.hostname:
            return False
        return (o.hostname.lower(), _http_port(o.scheme, o.port)) == (
            h.hostname.lower(),
            _http_port(o.scheme, h.port),
        )
    except ValueError:  # a port that is not a number
        return False


def _peer_ip(connection: Any) -> str:
    """The client's IP address: what the per-address cap counts."""
    addr = connection.remote_address
    return str(addr[0]) if addr else "?"


def _own_host_names(host: str) -> set:
    """Names a Host header may carry besides loopback names and addresses: monitor.host, the
    machine's host name and its mDNS name (NAME.local). The fully qualified name is added by a
    thread once the resolver answers (without a network it may take long)."""
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
    import ipaddress

    try:
        a = ipaddress.ip_address(name)
        b = ipaddress.ip_address(local.split("%")[0])
    except ValueError:
        return False
    if isinstance(b, ipaddress.IPv6Address) and b.ipv4_mapped is not None:
        b = b.ipv4_mapped
    return a == b


class _MonitorClient:
    """One connected WebSocket client: its queue, the task that drains it, its message budget."""

    def __init__(self, ws: ServerConnection, queue_size: int, rate: float, burst: int):
        self.ws = ws
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=queue_size)
        self.sender: Optional[asyncio.Task] = None
        self.dropped = False
        addr = ws.remote_address
        self.peer = "%s:%s" % (addr[0], addr[1]) if addr else "?"
        self.ip = _peer_ip(ws)
        self.limiter = RateLimiter(rate, 1.0, burst, time.monotonic())


class Monitor:
    """The live monitor: WebSocket events, the dashboard page and the address QR code."""

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
    ):
        self.host = host
        self.port = port
        self._token = token
        self._snapshot = snapshot
        self._max_clients = max_clients
        self._max_per_address = max_clients_per_address
        self._message_rate = message_rate
        self._message_burst = message_burst
        self._per_address: Dict[str, int] = {}  # open clients by IP address
        self._names: set = set()  # host names this device answers to (filled by start)
        self._queue_size = queue_size
        self._max_frame = max_frame
        self._ping_interval = ping_interval
        self._server: Any = None
        self._clients: Dict[ServerConnection, _MonitorClient] = {}
        self._closing: set = set()  # tasks closing dropped clients
        self._accepted: set = set()  # every TCP connection from accept until its socket is gone

    @property
    def client_count(self) -> int:
        """How many WebSocket clients are connected (dropped ones until their socket is gone)."""
        return len(self._clients)

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Listen on host:port (port 0 picks a free one, then self.port tells which)."""
        ping = self._ping_interval if self._ping_interval > 0 else None
        self._names = _own_host_names(self.host)
        try:
            from websockets.asyncio.server import ServerConnection
            from websockets.asyncio.server import serve as ws_serve

            accepted = self._accepted

            class TrackedConnection(ServerConnection):  # type: ignore[misc]
                """A connection the monitor can still find when it never finished its handshake."""

                def connection_made(self, transport: Any) -> None:
                    super().connection_made(transport)
                    accepted.add(self)

                def connection_lost(self, exc: Optional[Exception]) -> None:
                    accepted.discard(self)
                    super().connection_lost(exc)

            self._server = await ws_serve(
                self._handle,
                self.host,
                self.port,
                create_connection=TrackedConnection,
                logger=_handshake_logger(),
                open_timeout=5.0,  # slowloris: a handshake not done in 5 s is dropped
                process_request=self._process_request,
                max_size=self._max_frame,
                ping_interval=ping,
                ping_timeout=ping,
                close_timeout=MONITOR_CLOSE_TIMEOUT,
            )
        except OSError as exc:
            raise IotlightError(
                "monitor cannot listen on %s:%s: %s; set monitor.port to a free port "
                "(0 turns the monitor off) or stop the program using it"
                % (self.host, self.port, exc.strerror or exc)
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]
        shown = "[%s]" % self.host if ":" in self.host else self.host
        monitor_log.info("monitor listening on http://%s:%d/", shown, self.port)

    async def close(self) -> None:
        """Stop listening, close every client (1001) and wait until all are gone."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        clients = list(self._clients.values())
        await asyncio.gather(
            *(self._close_client(c, CLOSE_GOING_AWAY, "monitor shutting down") for c in clients),
            *self._closing,
        )
        # A browser opens spare sockets ahead of need and may never send on them. Left open, such
        # a socket keeps the closed server waiting, and a browser later sends its next request
        # for this host and port down it, where nothing will ever answer: cut them all.
        for connection in list(self._accepted):
            if connection.transport is not None:
                connection.transport.abort()
        try:
            await asyncio.wait_for(server.wait_closed(), MONITOR_CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            monitor_log.debug("monitor: a connection's handler had not ended; left to end with the process")
        monitor_log.info("monitor stopped")

    # -- publishing -----------------------------------------------------------

    def publish(self, message: Dict[str, Any]) -> None:
        """Queue one event for every client; never waits, drops clients that lag behind."""
        event = dict(message)
        event.setdefault("ts", time.time())
        try:
            text = json.dumps(event, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError):
            monitor_log.exception("monitor: cannot encode %r event", event.get("type"))
            return
        for client in list(self._clients.values()):
            if client.dropped:
                continue
            try:
                client.queue.put_nowait(text)
            except asyncio.QueueFull:
                self._drop(client)

    def _state_message(self) -> str:
        state: Dict[str, Any] = {"type": "state", "ts": time.time()}
        state.update(self._snapshot())
        state["type"] = "state"
        return json.dumps(state, separators=(",", ":"), allow_nan=False)

    def _drop(self, client: _MonitorClient) -> None:
        client.dropped = True
        monitor_log.info(
            "monitor client %s dropped: it left %d messages unread", client.peer, client.queue.qsize()
        )
        task = asyncio.ensure_future(
            self._close_client(client, CLOSE_TRY_AGAIN_LATER, "too slow: messages were piling up")
        )
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

    # -- HTTP: page, QR code, checks before the WebSocket handshake -----------

    def _process_request(self, connection: ServerConnection, request: Any) -> Any:
        url = urllib.parse.urlsplit(request.path)
        path = url.path
        if not self._host_allowed(connection, request.headers):
            monitor_log.debug(
                "monitor refused host %.80r from %s (DNS rebinding?)",
                ",".join(request.headers.get_all("Host")),
                _peer_ip(connection),
            )
            return self._text(
                connection,
                421,
                "this device does not answer to that host name: open it by its own name or address\n",
            )
        if self._token:
            given = urllib.parse.parse_qs(url.query).get("token", [""])[-1]
            if not given:
                return self._text(
                    connection, 401, "monitor token required: add ?token=<monitor.token> to the url\n"
                )
            if not hmac.compare_digest(given.encode(), self._token.encode()):
                return self._text(
                    connection, 403, "monitor token is wrong: use monitor.token from the configuration\n"
                )
        upgrade = "websocket" in ",".join(request.headers.get_all("Upgrade")).lower()
        if upgrade:
            if path not in ("/", "/ws"):
                return self._text(connection, 404, "not found: the websocket endpoint is / or /ws\n")
            if not self._token and not self._origin_allowed(request.headers):
                monitor_log.debug(
                    "monitor refused a cross-origin websocket from %s", connection.remote_address
                )
                return self._text(
                    connection,
                    403,
                    "cross-origin websocket refused: set monitor.token to allow other origins\n",
                )
            ip = _peer_ip(connection)
            if self._per_address.get(ip, 0) >= self._max_per_address:
                monitor_log.debug(
                    "monitor refused a client from %s: %d connected from there already",
                    ip,
                    self._per_address[ip],
                )
                return self._text(
                    connection, 429, "too many monitor connections from your address, close one first\n"
                )
            if len(self._clients) >= self._max_clients:
                monitor_log.debug("monitor refused a client: %d connected already", len(self._clients))
                return self._text(connection, 503, "too many monitor clients, try again later\n")
            return None  # go on with the WebSocket handshake
        if path == "/":
            return self._text(connection, 200, DASHBOARD_HTML, "text/html; charset=utf-8", DASHBOARD_CSP)
        if path == "/qr.svg":
            return self._qr_svg(connection, url.query)
        if path == "/ws":
            return self._text(connection, 426, "this is the websocket endpoint; open / for the dashboard\n")
        return self._text(connection, 404, "not found: the dashboard is at /\n")

    def _host_allowed(self, connection: ServerConnection, headers: Any) -> bool:
        """Whether the Host header names this device: a loopback name or address, monitor.host,
        the machine's own name, or the address the client connected to. A DNS-rebinding page
        (attacker.example now pointing here) carries its own name and is refused."""
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

    def _origin_allowed(self, headers: Any) -> bool:
        """No Origin (a script) or an Origin equal to the Host header (the page itself)."""
        origins = headers.get_all("Origin")
        if not origins:
            return True
        hosts = headers.get_all("Host")
        return len(origins) == 1 and len(hosts) == 1 and is_same_origin(origins[0], hosts[0])

    @staticmethod
    def _text(
        connection: ServerConnection,
        status: int,
        body: str,
        content_type: str = "text/plain; charset=utf-8",
        csp: str = "",
    ) -> Any:
        response = connection.respond(http.HTTPStatus(status), body)
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = content_type
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        if csp:
            response.headers["Content-Security-Policy"] = csp
        return response

    def _qr_svg(self, connection: ServerConnection, query: str = "") -> Any:
        try:
            import segno
        except ImportError:
            return self._text(connection, 404, "no qr code: pip install segno to get one\n")
        try:
            snapshot = self._snapshot()
        except Exception:
            monitor_log.exception("monitor: the state snapshot failed")
            return self._text(connection, 500, "the state snapshot failed, see the daemon log\n")
        address = str(snapshot.get("address") or "")
        if not address:
            return self._text(connection, 404, "no device address yet\n")
        # ?amount=A: the wallet link of that "pay" preset (only links the daemon made itself)
        amount = urllib.parse.parse_qs(query).get("amount", [""])[-1]
        text = address
        for preset in snapshot.get("pay") or ():
            if amount and preset.get("amount") == amount and preset.get("link"):
                text = preset["link"]
        buf = io.BytesIO()
        segno.make(text, error="m", micro=False).save(
            buf, kind="svg", scale=1, border=4, omitsize=True, xmldecl=False, dark="#000", light="#fff"
        )
        return self._text(connection, 200, buf.getvalue().decode("utf-8"), "image/svg+xml")

    # -- one WebSocket connection ---------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        if len(self._clients) >= self._max_clients:  # raced past the check in _process_request
            await ws.close(CLOSE_TRY_AGAIN_LATER, "too many monitor clients")
            return
        if self._per_address.get(_peer_ip(ws), 0) >= self._max_per_address:  # the same race
            await ws.close(CLOSE_TRY_AGAIN_LATER, "too many monitor connections from your address")
            return
        try:
            state = self._state_message()
        except Exception:
            monitor_log.exception("monitor: the state snapshot failed")
            await ws.close(CLOSE_INTERNAL_ERROR, "state snapshot failed")
            return
        client = _MonitorClient(ws, self._queue_size, self._message_rate, self._message_burst)
        client.queue.put_nowait(state)  # first in the queue: no event can come before it
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
            left = self._per_address.pop(client.ip, 1) - 1
            if left:
                self._per_address[client.ip] = left
            monitor_log.debug(
                "monitor client %s disconnected (code %s, %d open)",
                client.peer,
                ws.close_code,
                len(self._clients),
            )

    async def _send_loop(self, client: _MonitorClient) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                text = await client.queue.get()
                await client.ws.send(text)
        except ConnectionClosed:
            pass

    async def _receive_loop(self, client: _MonitorClient) -> None:
        """Read what the client sends: ignore known-shaped messages, close on garbage or on
        messages faster than the client's budget; one DEBUG line each, never a traceback."""
        from websockets.exceptions import ConnectionClosed

        ws = client.ws
        try:
            async for raw in ws:
                now = time.monotonic()
                too_fast = client.limiter.delay(now) > 0
                client.limiter.take(now)
                if too_fast:
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
                            monitor_log.debug(
                                "monitor client %s sent %r, ignored", client.peer, message.get("type")
                            )
                            continue
                        problem = (CLOSE_POLICY_VIOLATION, "messages must be json objects")
                monitor_log.debug("monitor client %s closed: %s", client.peer, problem[1])
                await self._close_client(client, *problem)
                return
        except ConnectionClosed:
            pass


class _QuietHandshakeFailures(logging.Filter):
    """A client that sends garbage or never finishes its handshake is that client's problem:
    one DEBUG line, not an ERROR with a traceback per attempt (a flood under attack)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and "handshake failed" in record.getMessage():
            exc = record.exc_info[1] if record.exc_info else None
            record.msg, record.args, record.exc_info, record.exc_text = (
                "monitor: a client's handshake failed: %s",
                (exc or "unknown",),
                None,
                None,
            )
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


class _QuietAccessLog(logging.Filter):
    """websockets' own lines: the request line and headers it logs under -v lose their ?token=
    (redact_url), its DEBUG lines about a client's bad bytes lose their traceback (one line
    each), and its INFO line per connection (connection open, connection closed, HTTP response
    sent) becomes DEBUG: a client that connects in a loop or sends garbage cannot flood the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a line websockets itself formats wrongly: let logging report it
            return True
        if record.exc_info and record.levelno < logging.WARNING:
            exc = record.exc_info[1]
            text = "%s: %s: %s" % (text, type(exc).__name__, exc) if exc is not None else text
            record.msg, record.args, record.exc_info, record.exc_text = text, (), None, None
        clean = redact_url(text)
        if clean != text:
            record.msg, record.args = clean, ()
        if record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def _handshake_logger() -> logging.Logger:
    logger = logging.getLogger("iotlight.monitor.websockets")
    if not any(isinstance(f, _QuietHandshakeFailures) for f in logger.filters):
        logger.addFilter(_QuietHandshakeFailures())
    if not any(isinstance(f, _QuietAccessLog) for f in logger.filters):
        logger.addFilter(_QuietAccessLog())
    return logger


# -- terminal client ----------------------------------------------------------


def _short_id(value: Any) -> str:
    text = str(value if value is not None else "?")
    return text if len(text) <= 12 else "%s..%s" % (text[:4], text[-4:])


def _format_units(amount: Any, decimals: Optional[int]) -> str:
    """A monitor message's amount as whole tokens when the decimals are known: 150, 2 -> "1.50 tokens"."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        return "%s units" % (amount,)
    if not _is_int(decimals):
        return "%d units" % amount
    return tokens_text(amount, decimals, "tokens", trim=False)


def _format_seconds(value: Any) -> str:
    """90.0 -> "90 s", 2.54 -> "2.5 s"."""
    if not isinstance(value, (int, float)):
        return "? s"
    return "%.0f s" % value if float(value).is_integer() else "%.1f s" % value


def format_event(message: Dict[str, Any], *, decimals: Optional[int] = None) -> str:
    """One readable line for a monitor message; `decimals` turns amounts into tokens."""
    ts = message.get("ts")
    clock = time.strftime("%H:%M:%S", time.localtime(ts)) if isinstance(ts, (int, float)) else "--:--:--"
    kind = message.get("type")
    m = message
    if kind == "state":
        light = m.get("light") or {}
        node = m.get("node") or {}
        lamp = "on, %s left" % _format_seconds(light.get("remaining")) if light.get("on") else "off"
        text = "state %s lamp %s, node %s height %s, outbox %s pending" % (
            m.get("address"),
            lamp,
            "ok" if node.get("ok") else "down",
            node.get("height"),
            (m.get("outbox") or {}).get("pending"),
        )
    elif kind == "payment":
        text = "payment %s %s -> %s (height %s)" % (
            _short_id(m.get("sender")),
            _format_units(m.get("amount"), decimals),
            _format_seconds(m.get("seconds")),
            m.get("height"),
        )
    elif kind == "ignored":
        text = "ignored %s from %s: %s of %s, %s" % (
            _short_id(m.get("id")),
            _short_id(m.get("sender")),
            _format_units(m.get("amount"), None),
            _short_id(m.get("asset_id")) if m.get("asset_id") else "the chain's coin",
            m.get("reason"),
        )
    elif kind == "light":
        text = "light on, %s left" % _format_seconds(m.get("remaining")) if m.get("on") else "light off"
    elif kind == "joystick":
        text = "joystick %s %s" % (m.get("direction"), m.get("action"))
    elif kind == "data_tx":
        text = "data_tx %s %s" % (_short_id(m.get("id")), m.get("status"))
        if m.get("error"):
            text += ": %s" % m["error"]
    elif kind == "node":
        if m.get("ok"):
            text = "node ok height %s (%s)" % (m.get("height"), m.get("url"))
        else:
            text = "node down %s: %s" % (m.get("url"), m.get("error") or "no answer")
    elif kind == "outbox":
        text = "outbox %s pending" % m.get("pending")
        if m.get("no_funds"):
            text += ", no funds for fees"
    elif kind == "balance":
        coin = m.get("coin")
        coin_text = tokens_text(coin, 8, "coin", trim=False) if _is_int(coin) else "? coin"
        text = "balance %s, %s" % (_format_units(m.get("token"), m.get("decimals")), coin_text)
    elif kind == "matrix":
        pixels = m.get("pixels") or []
        lit = sum(1 for p in pixels if isinstance(p, (list, tuple)) and any(p))
        text = "matrix %d/%d pixels lit" % (lit, len(pixels))
    else:
        fields = " ".join(
            "%s=%s" % (k, json.dumps(v, separators=(",", ":")))
            for k, v in m.items()
            if k not in ("type", "ts")
        )
        text = ("%s %s" % (kind, fields)).rstrip()
    return "%s %s" % (clock, text)


def _url_for_humans(url: str) -> str:
    """The URL without its query string, so a token never reaches the terminal."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def is_news(message: Dict[str, Any], last_light: Optional[Tuple[Any, Any]], *, verbose: bool) -> bool:
    """Whether the terminal client prints this message: matrix frames (8 per countdown) only
    when verbose, and a `light` event only when it changes what the last light line said
    (the daemon tells the lamp's state both when a payment lands and when the lamp switches)."""
    kind = message.get("type")
    if kind == "matrix":
        return verbose
    if kind == "light" and last_light is not None:
        (on, until), (was_on, was_until) = _light_key(message), last_light
        if on != was_on:
            return True
        if until is None or was_until is None:
            return until != was_until
        return abs(until - was_until) >= 1.0
    return True


def _light_key(message: Dict[str, Any]) -> Tuple[Any, Any]:
    """A light state as the terminal shows it: on or off, and its end time (Unix seconds)."""
    light = message.get("light") if message.get("type") == "state" else message
    light = light if isinstance(light, dict) else {}
    until = light.get("until")
    return (bool(light.get("on")), float(until) if isinstance(until, (int, float)) else None)


async def run_monitor_client(
    url: str, *, as_json: bool, out: Any = None, reconnect: bool = True, verbose: bool = False
) -> int:
    """Print monitor messages until cancelled; reconnect with back-off when the daemon goes away.
    Readable lines are one per meaningful event (is_news); `as_json` prints every message raw.

    Returns 1 when the first connection fails and `reconnect` is off, or when the
    server refuses the token (401/403) or the host name (421); 0 when the server closes and `reconnect`
    is off. Cancellation (Ctrl-C in asyncio.run) closes the connection and propagates.
    """
    from websockets.asyncio.client import connect as ws_connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

    out = out if out is not None else sys.stdout
    where = _url_for_humans(url)
    if urllib.parse.urlsplit(url).scheme not in ("ws", "wss"):
        raise ConfigError("monitor url %r must start with ws:// or wss://, e.g. ws://127.0.0.1:8765/" % where)
    delays = iter(backoff_delays(0.5, 10.0))
    decimals: Optional[int] = None
    last_light: Optional[Tuple[Any, Any]] = None
    connected = False
    while True:
        try:
            async with ws_connect(url, open_timeout=10) as ws:
                connected = True
                delays = iter(backoff_delays(0.5, 10.0))
                print("monitor: connected to %s" % where, file=sys.stderr, flush=True)
                async for raw in ws:
                    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
                    if as_json:
                        print(text, file=out, flush=True)
                        continue
                    try:
                        message = json.loads(text)
                    except ValueError:
                        message = None
                    if not isinstance(message, dict):
                        print("unreadable message: %s" % text[:200], file=out, flush=True)
                        continue
                    if message.get("type") == "balance":
                        decimals = message.get("decimals")
                    elif message.get("type") == "state":
                        decimals = (message.get("balance") or {}).get("decimals")
                    if not is_news(message, last_light, verbose=verbose):
                        continue
                    if message.get("type") in ("state", "light"):
                        last_light = _light_key(message)
                    print(format_event(message, decimals=decimals), file=out, flush=True)
            problem = "the monitor closed the connection"
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                print(
                    "monitor: %s refused the connection (HTTP %d): pass the right ?token=<monitor.token>"
                    % (where, status),
                    file=sys.stderr,
                    flush=True,
                )
                return 1
            if status == 421:  # a name the device does not answer to: retrying cannot help either
                print(
                    "monitor: %s refused that host name (HTTP 421): use the device's own name or address"
                    % where,
                    file=sys.stderr,
                    flush=True,
                )
                return 1
            problem = "HTTP %d" % status
        except InvalidURI as exc:
            raise ConfigError("monitor url %r is not valid: %s" % (where, exc)) from None
        except (OSError, asyncio.TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
            problem = str(exc) or type(exc).__name__
        if not reconnect:
            if connected:
                print("monitor: %s: %s" % (where, problem), file=sys.stderr, flush=True)
                return 0
            print(
                "monitor: cannot connect to %s: %s; is the daemon running with monitor.port set?"
                % (where, problem),
                file=sys.stderr,
                flush=True,
            )
            return 1
        delay = next(delays)
        print(
            "monitor: %s: %s; reconnecting in %.1f s" % (where, problem, delay),
            file=sys.stderr,
            flush=True,
        )
        await asyncio.sleep(delay)


# =============================================================================
# 9. The daemon: wiring and shutdown
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
        notify: Callable[[str], Any] = sd_notify,
        gpio: Optional[GpioSwitch] = None,
    ):
        self.config = config
        self.gpio = gpio
        self.watchdog_period = watchdog_period
        self.notify = notify
        self.keys = keys
        self.address = keys.address(config.chain_id)
        self.node = node
        self.store = store
        self.hw = hardware
        self.clock = clock
        self.log = logging.getLogger("iotlight")
        self.stop = asyncio.Event()
        self.node_state: Dict[str, Any] = {"url": redact_url(config.node_urls[0]), "ok": None, "height": None}
        self.balance: Dict[str, Any] = {"coin": None, "token": None, "decimals": None}
        self.joystick: Optional[Dict[str, Any]] = None
        self.unsaved: "collections.deque" = collections.deque()
        self.funds_ok = True
        self.token_name: Optional[str] = store.token_fact(config.asset_id, "name")
        self.recent_ignored: "collections.deque" = collections.deque(maxlen=20)  # for the dashboard
        self.monitor = None
        node.on_status = self.node_status
        self.lamp = Lamp(
            config, hardware, clock, store=store, publish=self.publish, status=self.status_name, gpio=gpio
        )
        self.outbox = Outbox(
            config, keys, node=node, store=store, clock=clock, publish=self.publish, on_funds=self.funds
        )
        self.watcher = Watcher(
            config,
            self.address,
            node=node,
            store=store,
            clock=clock,
            on_credit=self.credited,
            on_height=self.height_changed,
            on_balance=self.balance_changed,
            light_span=self.lamp.span,
            on_ignored=self.ignored,
            sign_refund=self.outbox.sign_refund,
        )
        self.telemetry = (
            Telemetry(config, hardware, store, clock, self.outbox.wake.set, self.publish)
            if config.telemetry_interval > 0
            else None
        )
        if config.monitor_port and monitor_factory is not None:
            self.monitor = monitor_factory(
                host=config.monitor_host,
                port=config.monitor_port,
                token=config.monitor_token,
                snapshot=self.snapshot,
                max_clients_per_address=config.monitor_max_clients_per_address,
            )

    # -- state for the monitor
    def publish(self, message: Dict[str, Any]) -> None:
        if self.monitor is not None:
            self.monitor.publish(message)

    def status_name(self) -> str:
        if not self.funds_ok:
            return "no_funds"
        if self.node_state["ok"] is False:
            return "node_down"
        return "ok" if self.node_state["ok"] else "starting"

    def snapshot(self) -> Dict[str, Any]:
        now = self.clock.time()
        out = {
            "address": self.address,
            "asset_id": self.config.asset_id,
            "chain_id": self.config.chain_id,
            "version": __version__,
            "backend": getattr(getattr(self.hw, "hardware", None), "name", None),
            "price": {
                "seconds_per_token": self.config.seconds_per_token,
                "min_tokens": self.config.min_tokens,
                "max_seconds": self.config.max_seconds,
                "refund": self.config.refund,
            },
            "gpio": None
            if self.gpio is None
            else {"pin": self.gpio.pin, "active_high": self.gpio.active_high},
            "light": self.lamp.state(),
            "node": dict(self.node_state),
            "outbox": {"pending": self.outbox.pending_count(), "no_funds": not self.funds_ok},
            "balance": dict(self.balance),
            "matrix": [list(p) for p in self.lamp.pixels],
            "payments": self.store.recent_payments(10),
            "data_txs": self.store.recent_txs(10),
            "ignored": list(self.recent_ignored),
            "joystick": self.joystick,
            "token": {"name": self.token_name, "decimals": self.watcher.decimals},
            "links": {"wallet": self.config.wallet_url, "explorer": self.config.explorer_url},
            "pay": self.pay_presets(),
            "status": {
                "name": self.status_name(),
                "legend": [
                    {"name": k, "rgb": list(STATUS_COLORS[k]), "meaning": v}
                    for k, v in STATUS_MEANINGS.items()
                ],
            },
            "warnings": self.warnings(),
            "light_sold": self.store.light_sold_by_hour(int(now * 1000)),
        }
        if self.telemetry is not None:
            out["telemetry"] = self.store.telemetry_history(int((now - 6 * 3600) * 1000))
        return out

    def pay_presets(self) -> List[Dict[str, Any]]:
        minimum = fractions.Fraction(repr(float(self.config.min_tokens))) * 10 ** (self.watcher.decimals or 0)
        return pay_presets(
            seconds_per_token=self.config.seconds_per_token,
            max_seconds=self.config.max_seconds,
            decimals=self.watcher.decimals,
            min_units=math.ceil(minimum),
            template=self.config.wallet_url,
            asset=self.config.asset_id,
            address=self.address,
        )

    def warnings(self) -> List[str]:
        """What the owner must act on, one full sentence each (dashboard, monitor)."""
        out = []
        if not self.funds_ok:
            coin, rules = self.balance.get("coin"), self.config.rules
            out.append(
                "The device cannot pay the fees of its Data transactions%s: send it some %s, e.g. "
                "`sudo iotlight pay --seed-file FUNDED.seed --asset %s %s 0.1`."
                % (
                    " (it holds %s)" % format_coins(coin, rules) if isinstance(coin, int) else "",
                    coin_name(rules),
                    coin_name(rules),
                    self.address,
                )
            )
        if self.node_state.get("ok") is False:
            out.append(
                "No node answers (%s): payments are seen again as soon as one does; check the network "
                "and node.urls." % (self.node_state.get("error") or "unreachable")
            )
        return out

    async def learn_token(self) -> None:
        """The token's name (for the dashboard) and whether it is scripted (a refund's fee) from
        the node, once: both are kept in the state file."""
        asset = self.config.asset_id
        if not asset or (self.token_name and self.store.token_fact(asset, "scripted") is not None):
            return
        while not self.stop.is_set():
            try:
                details = await self.node.get("/assets/details/%s" % asset)
                if not isinstance(details, dict) or details.get("assetId") != asset:
                    return  # not this token's details: learn nothing from them
                if isinstance(details.get("scripted"), bool):
                    self.outbox.set_smart_asset(details["scripted"])
                name = details.get("name")
                if (
                    not self.token_name
                    and isinstance(name, str)
                    and 0 < len(name) <= 64
                    and name.isprintable()
                ):
                    self.token_name = name
                    self.store.set_token_fact(asset, "name", name)
                    self.publish({"type": "token", "name": name, "decimals": self.watcher.decimals})
                return
            except (NodeError, StateError) as e:
                self.log.debug("token name not known yet: %s", e)
            await _wait_or_stop(self.stop, 60.0)

    # -- callbacks from the services
    def node_status(self, url: str, ok: bool, error: Optional[str]) -> None:
        self.node_state.update(
            url=redact_url(url), ok=ok, error=None if ok else redact_url(error or "unreachable")
        )
        msg = {"type": "node", "url": self.node_state["url"], "ok": ok, "height": self.node_state["height"]}
        if not ok:
            msg["error"] = redact_url(error or "unreachable")
        self.publish(msg)
        self.publish({"type": "warnings", "lines": self.warnings()})
        self.lamp.wake.set()

    def height_changed(self, height: int) -> None:
        if height < (self.node_state.get("height") or 0):
            self.outbox.recheck_count()
            self.outbox.recheck_refunds(height)
        self.node_state["height"] = height
        self.publish({"type": "node", "url": redact_url(self.node.current), "ok": True, "height": height})

    def balance_changed(self, token: Optional[int], coin: Optional[int]) -> None:
        known = self.balance.get("decimals")
        self.balance.update(token=token, coin=coin, decimals=self.watcher.decimals)
        self.publish(dict(type="balance", **self.balance))
        if known != self.watcher.decimals:  # the pay buttons' amounts depend on the decimals
            self.publish({"type": "pay", "presets": self.pay_presets()})

    def ignored(self, message: Dict[str, Any]) -> None:
        """A transfer to the device that lights nothing (reported once by the watcher)."""
        self.recent_ignored.appendleft(dict(message, ts=self.clock.time()))
        self.publish(message)

    def funds(self, ok: bool) -> None:
        self.funds_ok = ok
        self.publish({"type": "outbox", "pending": self.outbox.pending_count(), "no_funds": not ok})
        self.publish({"type": "warnings", "lines": self.warnings()})
        self.lamp.wake.set()

    def tokens(self, units: int) -> str:
        """An amount of the payment token for a log line: "2.50 IoT-Light", raw units while the
        decimals are not known yet."""
        if self.watcher.decimals is None:
            return "%d units" % units
        return tokens_text(units, self.watcher.decimals, self.token_name or "tokens", trim=False)

    def credited(self, credits: List[Credit]) -> None:
        for c in credits:
            self.log.info(
                "payment %s from %s: %s -> %.1f s of light%s%s",
                c.id,
                c.sender,
                self.tokens(c.amount),
                c.grant.seconds,
                " (%.1f s over payment.max_seconds not granted)" % c.grant.excess
                if c.grant.excess > 0
                else "",
                "; refund of %s queued as transfer %s" % (self.tokens(c.refund[1]), c.refund[0])
                if c.refund
                else "",
            )
            self.publish(
                {
                    "type": "payment",
                    "id": c.id,
                    "sender": c.sender,
                    "amount": c.amount,
                    "seconds": round(c.grant.seconds, 3),
                    "height": c.height,
                }
            )
            if c.grant.seconds <= 0:  # the light was at its cap: credited (and refunded), but no light
                self.ignored(
                    {
                        "type": "ignored",
                        "id": c.id,
                        "sender": c.sender,
                        "amount": c.amount,
                        "asset_id": self.config.asset_id,
                        "reason": "cut_by_cap",
                    }
                )
            if c.refund:
                self.publish(
                    {
                        "type": "refund",
                        "payment_id": c.id,
                        "id": c.refund[0],
                        "amount": c.refund[1],
                        "status": "queued",
                    }
                )
        start, until = self.store.light()
        if until > self.clock.time():
            self.lamp.credited(until)
        self.outbox.wake.set()

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
                n = self.store.add_press(ev.direction, ev.action, ev.ts_ms, int(self.clock.time() * 1000))
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
        out: Dict[str, Any] = {"watcher": self.watcher, "lamp": self.lamp, "outbox": self.outbox}
        if self.telemetry:
            out["telemetry"] = self.telemetry
        return out

    async def watchdog(self) -> None:
        """Tell systemd WATCHDOG=1 every quarter period while the daemon lives: no service is past
        its deadline (see Pulse) and the event loop runs on time. A tick that comes more than half
        a period late means the loop stood still (a blocking call): that tick says nothing."""
        period = self.watchdog_period
        if not period:
            await self.stop.wait()
            return
        tick = period / 4
        budget = max(period, self.config.timeout * len(self.config.node_urls) + WATCHDOG_GRACE)
        due = self.clock.monotonic()
        trouble = ""
        while not self.stop.is_set():
            mono = self.clock.monotonic()
            lag = mono - due
            late = [
                "%s (%.0f s late)" % (name, svc.pulse.late_by(mono, budget))
                for name, svc in self.services().items()
                if svc.pulse.late_by(mono, budget) > 0
            ]
            if lag > period / 2:
                trouble = "the event loop stood still for %.1f s or more" % lag
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
            await _wait_or_stop(self.stop, tick)

    async def run(self) -> int:
        """Run until stop is set or a service crashes; returns the exit status."""
        start, until = self.store.light()
        self.lamp.load(start, until)
        if self.monitor is not None:
            await self.monitor.start()
        self.hw.start_joystick(self.joystick_event)
        self.notify("READY=1\nSTATUS=watching %s" % self.address)
        self.log.info(
            "iotlight %s running: address %s on chain %r, token %s, node %s",
            __version__,
            self.address,
            self.config.chain_id,
            self.config.asset_id,
            redact_url(self.config.node_urls[0]),
        )
        tasks = [
            asyncio.ensure_future(
                svc.run(self.stop),
            )
            for svc in self.services().values()
        ]
        tasks.append(asyncio.ensure_future(self.watchdog()))
        naming = asyncio.ensure_future(self.learn_token())  # may end early: not a service
        asyncio.get_running_loop().call_later(10.0, release_free_memory)
        stopper = asyncio.ensure_future(self.stop.wait())
        status = 0
        try:
            done, _ = await asyncio.wait(tasks + [stopper], return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not stopper and not t.cancelled() and t.exception() is not None:
                    exc = t.exception()
                    if isinstance(exc, IotlightError):
                        self.log.error("%s", exc)
                        status = exc.exit_status
                    else:
                        self.log.error("a service crashed", exc_info=exc)
                        status = 1
        finally:
            self.notify("STOPPING=1")
            self.stop.set()
            for t in tasks + [stopper, naming]:
                t.cancel()
            await asyncio.gather(*tasks, stopper, naming, return_exceptions=True)
            if self.monitor is not None:
                await self.monitor.close()
            await self.hw.close()
            if self.gpio is not None:
                self.lamp.switch_gpio(False)
                self.gpio.close()
        self.save_presses()
        if self.unsaved:
            self.log.error(
                "stopped with %d joystick press(es) that could not be saved (%s): they are lost",
                len(self.unsaved),
                self.store.failing or "the state file cannot be written",
            )
            return status or 1
        self.log.info("stopped; light state and outbox saved")
        return status


class _AboveMatrixHandler(logging.Handler):
    """Log lines printed above the terminal backend's matrix instead of through it."""

    def __init__(self, terminal: TerminalHardware):
        super().__init__()
        self.terminal = terminal

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.terminal.write_above(self.format(record))
        except Exception:
            self.handleError(record)


def _log_above_matrix(terminal: TerminalHardware) -> None:
    root = logging.getLogger()
    for old in list(root.handlers):
        handler = _AboveMatrixHandler(terminal)
        handler.setFormatter(old.formatter)
        root.removeHandler(old)
        root.addHandler(handler)


async def run_daemon(config: Config, keys: KeyPair) -> int:
    """Build the real edges and run the daemon until SIGINT or SIGTERM."""
    store = Store(config.state_file)
    address = keys.address(config.chain_id)
    try:
        store.bind_device(address, config.asset_id)
        gpio = open_gpio(config)
        device = open_hardware(config.backend, stdout_isatty=sys.stdout.isatty())
        if isinstance(device, TerminalHardware) and sys.stderr.isatty():
            _log_above_matrix(device)
        hardware = HardwareRunner(device)
        node = NodeClient(config.node_urls, timeout=config.timeout, max_answer_bytes=config.max_answer_bytes)
        try:
            daemon = Daemon(
                config,
                keys,
                node=node,
                store=store,
                hardware=hardware,
                clock=Clock(),
                monitor_factory=Monitor,
                watchdog_period=systemd_watchdog_period(),
                gpio=gpio,
            )
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, daemon.stop.set)
            return await daemon.run()
        finally:
            await node.aclose()
    finally:
        store.close()


def cmd_run(config: Config, args: argparse.Namespace) -> int:
    keys = device_keys(config)
    lock = lock_state_file(config.state_file)
    try:
        return asyncio.run(run_daemon(config, keys))
    finally:
        os.close(lock)


# =============================================================================
# 10. Command line and main()
# =============================================================================

SEED_WORDS = 15


def _refuse_open_seed(path: str, st: os.stat_result) -> None:
    if st.st_mode & 0o077:
        raise SeedFileError(
            "%s: the seed file is readable by group or others (mode %03o); fix it with: chmod 600 %s"
            % (path, st.st_mode & 0o777, path)
        )


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
    _refuse_open_seed(path, st)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SeedFileError(
            "%s: cannot read the seed file: %s" % (path, getattr(e, "strerror", None) or "not UTF-8")
        ) from None
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
        _refuse_open_seed(path, os.stat(path))
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
            raise ConfigError(
                "%s: device.address: the seed file %s gives %s on chain %r, not %s "
                "(wrong seed file or wrong network?)"
                % (config.path, config.seed_file, address, config.chain_id, config.address)
            )
    return keys


def lock_state_file(state_file: str, *, claim: bool = True) -> int:
    """Hold an OS lock (flock) on STATE_FILE.lock for the life of this process, so that one daemon
    at a time runs on a state file; the kernel drops the lock when the process ends, however it
    ends (SIGKILL, power cut), so a leftover lock file never blocks. Returns the file descriptor.
    claim=False (gpio-off) holds it without writing this pid into it, opened read-only: a `run`
    refused meanwhile must not name a short-lived process; flock needs no more."""
    import fcntl

    path = state_file + ".lock"
    try:
        fd = os.open(path, (os.O_RDWR if claim else os.O_RDONLY) | os.O_CREAT, 0o644)
    except OSError as e:
        raise StateError("%s: cannot create the lock file: %s" % (path, e.strerror)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if not isinstance(e, BlockingIOError):
            os.close(fd)
            raise StateError("%s: cannot lock the lock file: %s" % (path, e.strerror)) from None
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        raise ConfigError(
            "%s: iotlight is already running on this state file (pid %s); stop it first "
            "(sudo systemctl stop iotlight, or kill %s), or give this one another "
            "device.state_file" % (state_file, holder or "unknown", holder or "PID")
        ) from None
    if not claim:
        return fd
    try:  # the pid is for the message of a second daemon; written in place, so a full disk rarely stops it
        mine = b"%-10d\n" % os.getpid()
        os.pwrite(fd, mine, 0)
        os.ftruncate(fd, len(mine))
    except OSError as e:
        log.warning(
            "%s: cannot write this daemon's pid into the lock file (%s); the lock holds all the same",
            path,
            e.strerror,
        )
    return fd


def cmd_gpio_off(config: Config, args: argparse.Namespace) -> int:
    """Switch light.gpio_pin off and release it, as a clean stop does: the unit's ExecStopPost, so
    that a daemon that crashed (or was killed, or stopped restarting) does not leave a relay on.
    Refused while a daemon runs on the state file: that one drives the pin."""
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
    print(
        "gpio pin %d off (level %s), released"
        % (config.gpio_pin, "low" if config.gpio_active_high else "high")
    )
    return 0


def cmd_keygen(config: Config, args: argparse.Namespace) -> int:
    if os.path.lexists(config.seed_file):
        keys = keypair_from_seed(read_seed_file(config.seed_file))  # refuses an open or broken one
        print("address: %s" % keys.address(config.chain_id))
        raise SeedFileError(
            "%s: a seed file exists already; keygen never overwrites one (its address is above)"
            % config.seed_file
        )
    seed = generate_seed_phrase(SEED_WORDS)
    write_seed_file(config.seed_file, seed)
    keys = keypair_from_seed(seed)
    print(
        "wrote a new %d-word seed phrase to %s (mode 0600); keep a copy offline"
        % (SEED_WORDS, config.seed_file)
    )
    print("address: %s" % keys.address(config.chain_id))
    return 0


def cmd_address(config: Config, args: argparse.Namespace) -> int:
    keys = device_keys(config)
    print("address: %s" % keys.address(config.chain_id))
    print("public key: %s" % b58encode(keys.public_key))
    return 0


def cmd_check(config: Config, args: argparse.Namespace) -> int:
    keys = device_keys(config)
    address = keys.address(config.chain_id)
    print("configuration %s is valid" % config.path)
    print(
        "  chain: %s (%s rules), nodes: %s"
        % (config.chain_id, config.rules, ", ".join(redact_url(u) for u in config.node_urls))
    )
    print("  device address: %s" % address)
    print(
        "  token: %s, %g s per token, at most %g s"
        % (config.asset_id, config.seconds_per_token, config.max_seconds)
    )
    print("  state file: %s" % config.state_file)
    print(
        "  hardware: %s, monitor: %s"
        % (
            config.backend,
            "off" if not config.monitor_port else "%s:%d" % (config.monitor_host, config.monitor_port),
        )
    )
    status = 0
    if config.fee:
        smallest = build_data_tx(
            keys,
            [{"key": "joystick_count", "type": "integer", "value": 1}],
            timestamp=0,
            chain_id=config.chain_id,
            rules=config.rules,
        )["fee"]
        if config.fee < smallest:
            print(
                "problem: data.fee = %d is below the node's minimum fee of %d for even the smallest Data "
                "transaction: each one is sent with the minimum for its size instead. Fix: set data.fee = 0 "
                "(automatic) or at least %d" % (config.fee, smallest, smallest)
            )
            status = 1
        else:
            print(
                "  data fee: %d (a transaction whose size needs more is sent with its minimum)" % config.fee
            )
    print(
        "  minimum payment: %g tokens, refund of what max_seconds cuts off: %s"
        % (config.min_tokens, 'yes (payment.refund = "excess")' if config.refund == "excess" else "no")
    )
    status += check_gpio(config)
    if args.offline:
        print("the node was not asked (--offline)")
        return min(status, 1)
    facts, problems = asyncio.run(_with_node(config, lambda node: inspect_chain(node, config, keys)))
    for line in facts:
        print("  %s" % redact_url(line))
    for line in problems:
        print("problem: %s" % redact_url(line))
    if problems or status:
        print("check found %d problem(s)" % (len(problems) + status))
        return 1
    print("the node agrees: all good")
    return 0


def check_gpio(config: Config) -> int:
    """The `check` line for light.gpio_pin: 0 when off or gpiozero is there, 1 (with the fix) when not."""
    if config.gpio_pin < 0:
        print("  gpio: off (light.gpio_pin = -1)")
        return 0
    level = "high" if config.gpio_active_high else "low"
    if not _module_installed("gpiozero"):
        print(
            "  problem: light.gpio_pin = %d needs the gpiozero library, which is not installed: "
            "sudo apt install python3-gpiozero (or pip install gpiozero in the venv)" % config.gpio_pin
        )
        return 1
    print(
        "  gpio: BCM pin %d switched with the light, on = %s level (gpiozero found)"
        % (config.gpio_pin, level)
    )
    return 0


# --- what only the chain can tell --------------------------------------------

CLOCK_SKEW_LIMIT = 60.0  # seconds; the outbox signs with the node's time beyond this (Outbox.resync_clock)
NETWORKS = {"W": "mainnet", "T": "testnet", "S": "stagenet", "Z": "0bsnetwork"}


def network_name(chain_id: str) -> str:
    return "%r (%s)" % (chain_id, NETWORKS.get(chain_id, "a fork"))


def format_coins(units: int, rules: str) -> str:
    """Smallest units of the chain's coin as coins with the name: 100000 -> "0.001 WAVES"."""
    return tokens_text(units, 8, coin_name(rules))


def data_tx_fee(config: Config, keys: KeyPair) -> int:
    """What one of the device's smallest Data transactions (one press) costs: data.fee or the minimum."""
    if config.fee:
        return config.fee
    tx = {
        "type": TX_DATA,
        "version": 1,
        "senderPublicKey": b58encode(keys.public_key),
        "fee": 1,
        "timestamp": 0,
        "chainId": chain_byte(config.chain_id),
        "data": [joystick_entry(1, "up", "pressed", 0)],
    }
    return data_fee(tx, config.rules)


def chain_of_address(address: Any) -> Optional[str]:
    """The network byte of a base58 address as a character, or None when it is not an address. Pure."""
    if not isinstance(address, str):
        return None
    try:
        raw = b58decode(address.replace("address:", "", 1))
    except EncodingError:
        return None
    return chr(raw[1]) if len(raw) == 26 and raw[0] == 1 else None


async def node_network(node: NodeClient) -> Tuple[Optional[str], Optional[int]]:
    """The node's network byte (from the address of the last block's generator) and its height."""
    header = await node.get("/blocks/headers/last")
    if not isinstance(header, dict):
        raise NodeError("node answered /blocks/headers/last with something that is not an object")
    height = header.get("height")
    return chain_of_address(header.get("generator")), height if _is_int(height) else None


async def inspect_chain(node: NodeClient, config: Config, keys: KeyPair) -> Tuple[List[str], List[str]]:
    """Ask the node what only the chain can tell: its network, the token, the device's coins for fees,
    the clock. Returns (facts, problems), every problem with its fix."""
    facts: List[str] = []
    problems: List[str] = []
    address = keys.address(config.chain_id)
    try:
        chain, height = await node_network(node)
    except NodeRejected:
        chain, height = (
            None,
            None,
        )  # a node without /blocks/headers: the balance below still tells a wrong network
    except NodeError as e:
        problems.append(
            "no node answered (%s): %s; check node.urls and this machine's network"
            % (", ".join(config.node_urls), e)
        )
        return facts, problems
    facts.append(
        "node %s: network %s, height %s"
        % (
            node.current,
            network_name(chain) if chain else "unknown",
            height if height is not None else "unknown",
        )
    )
    if chain is not None and chain != config.chain_id:
        problems.append(
            'the node %s runs network %s, not node.chain_id = %s: set chain_id = "%s" in [node], '
            "or point node.urls at a %s node (then run keygen for that network's address)"
            % (
                node.current,
                network_name(chain),
                network_name(config.chain_id),
                chain,
                network_name(config.chain_id),
            )
        )
        return facts, problems  # nothing else the node says is about our network
    try:
        details = await node.get("/assets/details/%s" % config.asset_id)
        decimals = details.get("decimals") if isinstance(details, dict) else None
        if not _is_int(decimals) or not 0 <= decimals <= 8:
            raise NodeError("the node gave no decimals for %s" % config.asset_id)
        facts.append(
            "token %s: %s, %d decimals, issued by %s"
            % (config.asset_id, details.get("name"), decimals, details.get("issuer"))
        )
        token = await node.asset_balance(address, config.asset_id)
        facts.append("device holds %s" % tokens_text(token, decimals, str(details.get("name")), trim=False))
    except NodeRejected as e:
        if e.status in (400, 404):
            problems.append(
                'payment.asset_id = "%s": no such token on the node\'s chain (%s); copy the id '
                "from the output of issue or from an explorer" % (config.asset_id, e)
            )
        else:
            problems.append(
                "the node refused to tell the token: %s" % describe_refusal(e, rules=config.rules)
            )
    except NodeError as e:
        problems.append("the node did not tell the token: %s" % e)
    try:
        coins = await node.balance(address)
        fee = data_tx_fee(config, keys)
        facts.append(
            "device holds %s: fees for %d Data transaction(s) at %s each"
            % (format_coins(coins, config.rules), coins // fee, format_coins(fee, config.rules))
        )
        if coins < fee:
            problems.append(
                "the device %s holds %s, less than one Data transaction's fee (%s): presses and "
                "receipts cannot be written; send it coins: iotlight.py pay --seed-file FUNDED.seed "
                "--asset %s %s 1"
                % (
                    address,
                    format_coins(coins, config.rules),
                    format_coins(fee, config.rules),
                    coin_name(config.rules),
                    address,
                )
            )
    except NodeRejected as e:
        plain = explain_refusal(str(e), rules=config.rules)
        if "invalid address" in str(e).lower():
            problems.append(
                "the node does not take the device address %s as one of its network: node.chain_id "
                "= %s is not the node's network; fix node.chain_id or node.urls"
                % (address, network_name(config.chain_id))
            )
        else:
            problems.append("the node refused the device's balance: %s" % (plain or e))
    except NodeError as e:
        problems.append("the node did not tell the device's balance: %s" % e)
    try:
        before = time.time()
        node_ms = await node.node_time_ms()
        skew = node_ms / 1000 - (before + time.time()) / 2
        facts.append("clock: %+.1f s from the node's" % -skew)
        if abs(skew) > CLOCK_SKEW_LIMIT:
            problems.append(
                "this machine's clock is %.0f s %s the node's: set it (sudo timedatectl set-ntp true; "
                "a Pi without a real-time clock needs network time)"
                % (abs(skew), "behind" if skew > 0 else "ahead of")
            )
    except NodeError as e:
        problems.append("the node did not tell its time (/utils/time): %s" % e)
    return facts, problems


# --- workshop commands: issue, pay, status -----------------------------------


def _seed_keys(path: str) -> KeyPair:
    return keypair_from_seed(read_seed_file(path))


async def _with_node(config: Config, action: Callable[[NodeClient], Any]) -> Any:
    node = NodeClient(config.node_urls, timeout=config.timeout, max_answer_bytes=config.max_answer_bytes)
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
    keys = _seed_keys(args.seed_file)
    if not 0 <= args.decimals <= 8:
        raise ConfigError("--decimals must be from 0 to 8, not %d" % args.decimals)
    quantity = parse_token_amount(args.quantity, args.decimals)
    try:
        tx = build_issue_tx(
            keys,
            name=args.name,
            description=args.description,
            quantity=quantity,
            decimals=args.decimals,
            reissuable=False,
            timestamp=int(time.time() * 1000),
            chain_id=config.chain_id,
            fee=issue_fee(config.rules),
        )
    except EncodingError as e:
        raise ConfigError(str(e)) from None

    async def go(node: NodeClient) -> None:
        try:
            await node.broadcast(tx)
        except NodeError as e:
            raise _refused("token", e, config.rules) from None

    asyncio.run(_with_node(config, go))
    print(
        "issued %s from %s; fee %s"
        % (
            tokens_text(quantity, args.decimals, args.name, trim=False),
            keys.address(config.chain_id),
            format_coins(tx["fee"], config.rules),
        )
    )
    print("asset id: %s" % tx["id"])
    print("paste into [payment] of %s:" % config.path)
    print('asset_id = "%s"' % tx["id"])
    return 0


def cmd_pay(config: Config, args: argparse.Namespace) -> int:
    keys = _seed_keys(args.seed_file)
    coin = coin_name(config.rules)
    asset = args.asset or config.asset_id
    if not asset:
        raise ConfigError(
            "no token to pay with: pass --asset ID (or --asset %s for coins) or set "
            "payment.asset_id in %s" % (coin, config.path)
        )
    try:
        own_coin = not parse_asset_id(asset, coin=coin, what="--asset %s" % asset)
    except EncodingError as e:
        raise ConfigError("%s (or --asset %s for the chain's coin)" % (e, coin)) from None
    try:
        recipient = parse_recipient(args.recipient, config.chain_id)
    except EncodingError as e:
        raise ConfigError(str(e)) from None

    async def go(node: NodeClient) -> Tuple[Dict[str, Any], str]:
        try:
            if own_coin:
                decimals, name, scripted = 8, coin, False
            else:
                details = await node.get("/assets/details/%s" % asset)
                decimals = details.get("decimals")
                if not _is_int(decimals):
                    raise NodeError("the node gave no decimals for %s" % asset)
                name, scripted = str(details.get("name") or asset), bool(details.get("scripted"))
            amount = parse_token_amount(args.amount, decimals)
            tx = build_transfer_tx(
                keys,
                recipient=recipient,
                amount=amount,
                asset_id=None if own_coin else asset,
                timestamp=int(time.time() * 1000),
                chain_id=config.chain_id,
                fee=transfer_fee(config.rules, smart_asset=scripted),
            )
            await node.broadcast(tx)
            if own_coin:
                return tx, format_coins(amount, config.rules)
            return tx, "%s (%d units of %s)" % (
                tokens_text(amount, decimals, name, trim=False),
                amount,
                asset,
            )
        except NodeError as e:
            raise _refused("transfer", e, config.rules) from None

    tx, sent = asyncio.run(_with_node(config, go))
    print("sent %s to %s; fee %s" % (sent, recipient, format_coins(tx["fee"], config.rules)))
    print("transaction id: %s" % tx["id"])
    return 0


def cmd_status(config: Config, args: argparse.Namespace) -> int:
    keys = device_keys(config)
    address = keys.address(config.chain_id)
    print("device %s on chain %r" % (address, config.chain_id))

    token_name: Dict[str, Any] = {}

    async def ask(node: NodeClient) -> Optional[int]:
        """The device's coins, or None when no node answered; the token's name and decimals in token_name."""
        try:
            height = await node.height()
            print("node: %s, height %d" % (redact_url(node.current), height))
            coin = await node.balance(address)
            print("coins: %s (%d units)" % (format_coins(coin, config.rules), coin))
        except NodeError as e:
            text = describe_refusal(e, rules=config.rules) if isinstance(e, NodeRejected) else str(e)
            print("node: cannot ask it: %s" % redact_url(text))
            return None
        if config.asset_id:
            try:
                details = await node.get("/assets/details/%s" % config.asset_id)
                decimals = details.get("decimals") if isinstance(details, dict) else None
                if not _is_int(decimals):
                    raise NodeError("the node gave no decimals for %s" % config.asset_id)
                token = await node.asset_balance(address, config.asset_id)
                token_name.update(name=str(details.get("name")), decimals=decimals)
                name = str(details.get("name"))
                print(
                    "token: %s (%d units of %s)"
                    % (tokens_text(token, decimals, name, trim=False), token, config.asset_id)
                )
            except NodeError as e:  # the node answered the rest: not a reason for exit status 1
                text = describe_refusal(e, rules=config.rules) if isinstance(e, NodeRejected) else str(e)
                print("token %s: %s" % (config.asset_id, text))
        return coin

    coins = asyncio.run(_with_node(config, ask))
    status = 0 if coins is not None else 1
    fee = data_tx_fee(config, keys)
    if not os.path.exists(config.state_file):
        print("state: no state yet (%s appears on the first run)" % config.state_file)
        if coins is not None and coins < fee:
            print(
                "warning: the device holds %s, less than one Data transaction's fee (%s); send it coins: "
                "iotlight.py pay --seed-file FUNDED.seed --asset %s %s 1"
                % (
                    format_coins(coins, config.rules),
                    format_coins(fee, config.rules),
                    coin_name(config.rules),
                    address,
                )
            )
        return status
    try:
        store = Store.open_read_only(config.state_file)
        try:
            until = store.light()[1]
            now = time.time()
            print(
                "lamp: %s"
                % (
                    "on for %.1f s more (until %s)"
                    % (until - now, time.strftime("%H:%M:%S", time.localtime(until)))
                    if until > now
                    else "off"
                )
            )
            queued = store.pending_event_count()
            open_txs = [(s, n) for s, n in store.outbox_counts().items() if s in OUTBOX_OPEN]
            print(
                "outbox: %d event(s) waiting, %s"
                % (queued, ", ".join("%d %s" % (n, s) for s, n in open_txs) or "no transaction pending")
            )
            rows = store.recent_payments(5)
            print("payments: %d credited%s" % (store.credited_ever(), ", the last:" if rows else ""))
            for p in rows:
                paid = (
                    tokens_text(p["amount"], token_name["decimals"], token_name["name"], trim=False)
                    if token_name
                    else "%d units of the token" % p["amount"]
                )
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p["ts"]))
                print("  %s  %s from %s: %s, %.1f s" % (when, p["id"], p["sender"], paid, p["seconds"]))
        finally:
            store.close()
    except sqlite3.Error as e:
        raise StateError("%s: cannot read the state file: %s" % (config.state_file, e)) from None
    waiting = dict(open_txs).get("queued", 0) + (1 if queued else 0)
    if coins is not None and (coins < fee or coins < waiting * fee):
        print(
            "warning: the device cannot pay its fees: it holds %s, %d Data transaction(s) wait at %s or more "
            "each; send it coins: iotlight.py pay --seed-file FUNDED.seed --asset %s %s 1"
            % (
                format_coins(coins, config.rules),
                waiting,
                format_coins(fee, config.rules),
                coin_name(config.rules),
                address,
            )
        )
    return status


def cmd_monitor(config: Config, args: argparse.Namespace) -> int:
    if not config.monitor_port:
        raise ConfigError("%s: monitor.port is 0: the monitor is off" % config.path)
    host = config.monitor_host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = "[%s]" % host
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


def build_parser() -> argparse.ArgumentParser:
    p = _ArgumentParser(prog="iotlight.py", description="Sells light for tokens on a Waves chain.")
    p.add_argument(
        "-c",
        "--config",
        help="configuration file (default ./iotlight.toml, then /etc/iotlight/iotlight.toml)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    p.add_argument("--version", action="version", version="iotlight %s" % __version__)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser(
        "run",
        help="run the daemon (the default)",
        description=(
            "Run the daemon until SIGINT or SIGTERM: watch the chain for payments of payment.asset_id to the "
            "device, light the matrix for the time they bought, write joystick presses, receipts and telemetry "
            "as Data transactions, serve the monitor. One daemon per state file: a second one exits with "
            "status 2 naming the first one's pid."
        ),
    )
    sub.add_parser(
        "keygen",
        help="write a new seed phrase to device.seed_file and print the address",
        description=(
            "Write a new 15-word seed phrase to device.seed_file (mode 0600) and print the device's address. "
            "An existing seed file is never overwritten: keygen then prints that seed's address and exits "
            "with status 2."
        ),
    )
    sub.add_parser(
        "address",
        help="print the device address and public key",
        description=("Print the device's address on node.chain_id and its public key (never the seed)."),
    )
    p_check = sub.add_parser(
        "check",
        help="validate the configuration and the seed file, then ask the node",
        description=(
            "Validate the configuration and the seed file, then ask the node what only the chain can tell: "
            "that it runs the network node.chain_id, that payment.asset_id is a token there (its name, "
            "decimals and issuer), how many Data transactions the device's coins pay for, and that this "
            "machine's clock agrees with the node's. Exit status 0: all good; 1: a problem found (each named "
            "with its fix) or no node answered; 2: bad configuration or seed file."
        ),
    )
    p_check.add_argument(
        "--offline",
        action="store_true",
        help="validate the configuration and the seed file only; ask no node",
    )
    sub.add_parser(
        "status",
        help="node height, balances, lamp, outbox and recent payments",
        description=(
            "Ask the node and the state file: height, the device's coins and tokens, the lamp, the pending "
            "outbox, the recent payments, and a warning line when the device cannot pay its fees. Exit "
            "status 1 when no node answers."
        ),
    )
    sub.add_parser(
        "gpio-off",
        help="switch light.gpio_pin off (after a crash; the unit runs it when the daemon stops)",
        description=(
            "Switch the light.gpio_pin output off and release the pin, as a clean stop does. The installed "
            "unit runs it after every stop (ExecStopPost), so a daemon that crashed or was killed does not "
            "leave a relay on. Refused (exit status 2) while a daemon runs on the state file."
        ),
    )
    p_issue = sub.add_parser(
        "issue",
        help="create the light token, signed by a seed file",
        description=(
            "Create a token with an Issue transaction signed by --seed-file (the account pays the fee); print "
            "its asset id and the payment.asset_id line to paste."
        ),
    )
    p_issue.add_argument("--seed-file", required=True, help="seed file of the issuing account (mode 0600)")
    p_issue.add_argument("--name", required=True, help="token name, 4 to 16 bytes")
    p_issue.add_argument("--quantity", required=True, help="supply in whole tokens")
    p_issue.add_argument("--decimals", required=True, type=int, help="decimals, 0 to 8")
    p_issue.add_argument("--description", default="", help="token description")
    p_mon = sub.add_parser(
        "monitor",
        help="print the daemon's live events (the monitor stream)",
        description=(
            "Connect to the running daemon's monitor and print its events (payments, light, joystick, Data "
            "transactions, node) as they happen, until Ctrl-C."
        ),
    )
    p_mon.add_argument("--json", action="store_true", help="print the raw JSON messages, one per line")
    p_pay = sub.add_parser(
        "pay",
        help="send tokens or coins, signed by a seed file",
        description=(
            "Send AMOUNT whole tokens (or, with --asset WAVES, coins of the chain: how a device gets the "
            "money for its fees) to RECIPIENT in a Transfer transaction signed by --seed-file."
        ),
    )
    p_pay.add_argument("--seed-file", required=True, help="seed file of the paying account (mode 0600)")
    p_pay.add_argument("--asset", help="token id (default: payment.asset_id), or WAVES for the chain's coin")
    p_pay.add_argument("recipient", help="address, alias:<chain>:<name> or a bare alias name")
    p_pay.add_argument("amount", help="whole tokens, decimals allowed (e.g. 2.5)")
    return p


COMMANDS: Dict[str, Callable[[Config, argparse.Namespace], int]] = {
    "run": cmd_run,
    "keygen": cmd_keygen,
    "address": cmd_address,
    "check": cmd_check,
    "status": cmd_status,
    "issue": cmd_issue,
    "pay": cmd_pay,
    "monitor": cmd_monitor,
    "gpio-off": cmd_gpio_off,
}

# commands that work before payment.asset_id is set
_NO_ASSET_NEEDED = {"keygen", "address", "status", "issue", "pay", "monitor", "gpio-off"}


class _LogFormatter(logging.Formatter):
    """One line per event; timestamps only on a terminal (journald adds its own); credentials and
    tokens in URLs masked, whichever library logged them (redact_url)."""

    def __init__(self, tty: bool):
        fmt = (
            "%(asctime)s %(levelname)s %(name)s: %(message)s"
            if tty
            else "%(levelname)s %(name)s: %(message)s"
        )
        super().__init__(fmt, "%H:%M:%S")

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
        return COMMANDS[command](config, args)
    except IotlightError as e:
        print("iotlight: %s" % e, file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:
        return 130


# =============================================================================
# 11. The dashboard page's assets
# =============================================================================
#
# The page Monitor serves at GET / (HTML, CSS and script in one string, no CDN: it works
# offline) and its Content-Security-Policy. Kept last, as a template is kept beside the
# code that fills it: the Monitor (section 8g) reads them only when a browser asks.

DASHBOARD_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self' ws: wss:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

DASHBOARD_HTML = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="dark">
<title>iotlight</title>
<link rel="icon" href="data:,">
<style>
:root {
  --bg: #0b0e14; --card: #141924; --card2: #1b2130; --line: #262e40;
  --text: #e8ebf2; --muted: #98a1b6; --amber: #ffc94d; --green: #3ddc84;
  --red: #ff6b6b; --blue: #6cb6ff; --radius: 16px;
}
* { box-sizing: border-box; }
html, body { margin: 0; background: var(--bg); color: var(--text);
  font: 16px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, Ubuntu, sans-serif; }
.num { font-variant-numeric: tabular-nums; }
.mono { font-family: ui-monospace, "SF Mono", Menlo, Consolas, "DejaVu Sans Mono", monospace; }
header { display: flex; align-items: center; gap: 12px; flex-wrap: wrap;
  padding: 14px clamp(12px, 2vw, 28px); border-bottom: 1px solid var(--line); }
.brand { font-weight: 700; font-size: clamp(1.2rem, 1.6vw, 1.7rem); letter-spacing: .02em; }
.brand span { color: var(--amber); }
#meta { color: var(--muted); font-size: .9rem; order: 3; flex: 1 1 100%; }
#conn { margin-left: auto; padding: 5px 12px; border-radius: 999px; font-size: .85rem; font-weight: 600;
  background: var(--card2); color: var(--muted); border: 1px solid var(--line); white-space: nowrap; }
#conn::before { content: ""; display: inline-block; width: 8px; height: 8px; border-radius: 50%;
  margin-right: 7px; background: currentColor; vertical-align: 1px; }
#conn.live { color: var(--green); }
#conn.offline { color: var(--red); }
main { display: grid; gap: clamp(12px, 1.4vw, 22px); padding: clamp(12px, 1.6vw, 28px);
  grid-template-columns: minmax(0, 1fr);
  grid-template-areas: "warn" "lamp" "pay" "stats" "pays" "charts" "joy" "txs"; }
#warnings { grid-area: warn; display: flex; flex-direction: column; gap: 8px; }
#warnings:empty { display: none; }
#warnings div { background: #3a2a08; border: 1px solid var(--amber); color: var(--amber); border-radius: 12px;
  padding: 10px 14px; white-space: normal; word-break: break-word; }
#card-charts { grid-area: charts; }
a { color: var(--blue); }
a.txid { font-size: .82rem; text-decoration: none; }
a.txid:hover { text-decoration: underline; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 14px; font-size: .82rem; color: var(--muted); }
.legend span { display: inline-flex; align-items: center; gap: 6px; }
.legend i { width: 12px; height: 12px; border-radius: 3px; display: inline-block; }
.legend span.current { color: var(--text); font-weight: 600; }
#price { font-size: 1.05rem; }
#price b { color: var(--amber); }
.presets { display: flex; flex-wrap: wrap; gap: 8px; justify-content: center; }
.presets button { font: inherit; font-size: .9rem; padding: 8px 12px; border-radius: 10px; cursor: pointer;
  background: var(--card2); color: var(--text); border: 1px solid var(--line); min-height: 44px; }
.presets button.on { background: var(--amber); color: #1d1500; border-color: var(--amber); font-weight: 700; }
#pay-link { display: inline-block; padding: 10px 18px; border-radius: 10px; background: var(--amber); color: #1d1500;
  font-weight: 700; text-decoration: none; min-height: 44px; }
#pay-link.missing { display: none; }
ul.list li.ignored { opacity: .75; border: 1px dashed var(--line); }
ul.list li.ignored .amount { color: var(--muted); text-decoration: line-through; }
.chart { width: 100%; height: auto; display: block; }
.chart .sold-bar { fill: var(--amber); }
.chart .axis { fill: var(--muted); font-size: 10px; }
.chart .line { fill: none; stroke: var(--blue); stroke-width: 2; }
.spark { display: grid; grid-template-columns: minmax(0, 1fr) auto; gap: 4px 10px; align-items: center; margin-top: 10px; }
.spark .now { font-weight: 700; white-space: nowrap; }
body.stale main { opacity: .55; transition: opacity .4s; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: var(--radius);
  padding: clamp(14px, 1.4vw, 24px); min-width: 0; }
.card h2 { margin: 0 0 12px; font-size: .8rem; font-weight: 600; text-transform: uppercase;
  letter-spacing: .12em; color: var(--muted); }
#card-lamp { grid-area: lamp; display: flex; flex-direction: column; gap: 18px; }
#card-pay { grid-area: pay; }
#card-stats { grid-area: stats; }
#card-joy { grid-area: joy; }
#card-pays { grid-area: pays; }
#card-txs { grid-area: txs; }
.lamp-body { display: flex; flex-direction: column; gap: 18px; align-items: stretch; }
#matrix { display: grid; grid-template-columns: repeat(8, 1fr); gap: 5px; padding: 10px;
  background: #07090d; border-radius: 14px; border: 1px solid var(--line);
  width: 100%; max-width: 560px; margin: 0 auto; aspect-ratio: 1 / 1; }
#matrix .px { border-radius: 22%; background: #161b26; transition: background-color .25s, box-shadow .25s; }
.lamp-info { display: flex; flex-direction: column; gap: 10px; justify-content: center; }
.lamp-row { display: flex; align-items: center; gap: 14px; flex-wrap: wrap; }
#lamp-state { font-weight: 800; font-size: clamp(1.1rem, 2vw, 1.6rem); padding: 4px 14px; border-radius: 10px;
  background: var(--card2); color: var(--muted); letter-spacing: .08em; }
#lamp-state.on { background: var(--amber); color: #1d1500; box-shadow: 0 0 24px rgba(255, 201, 77, .45); }
#remaining { font-size: clamp(3rem, 7vw, 6.5rem); font-weight: 800; line-height: 1; letter-spacing: -.02em; }
#remaining.on { color: var(--amber); }
.bar { height: 10px; background: var(--card2); border-radius: 99px; overflow: hidden; }
#remaining-bar { height: 100%; width: 0; background: linear-gradient(90deg, #ff9f1c, var(--amber)); border-radius: 99px; }
.hint { color: var(--muted); font-size: .9rem; }
.pay-body { display: flex; flex-direction: column; align-items: center; gap: 14px; text-align: center; }
#qr { width: min(100%, 260px); aspect-ratio: 1 / 1; background: #fff; border-radius: 12px; padding: 6px; }
#qr.missing { display: none; }
#address { font-size: clamp(.95rem, 1.1vw, 1.2rem); word-break: break-all; text-wrap: balance; user-select: all;
  background: var(--card2); padding: 10px 12px; border-radius: 10px; width: 100%; }
#asset { font-size: .8rem; color: var(--muted); word-break: break-all; }
.tiles { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 12px; }
.tile { background: var(--card2); border-radius: 12px; padding: 12px 14px; min-width: 0; }
.tile .label { color: var(--muted); font-size: .78rem; text-transform: uppercase; letter-spacing: .08em; }
.tile .value { font-size: clamp(1.35rem, 2.1vw, 2.2rem); font-weight: 700; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.tile .sub { color: var(--muted); font-size: .82rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
#node-status.ok { color: var(--green); }
#node-status.down { color: var(--red); }
.pad { display: grid; grid-template-columns: repeat(3, 1fr); gap: 8px; width: min(100%, 220px); margin: 0 auto; aspect-ratio: 1 / 1; }
.pad div { border-radius: 14px; background: var(--card2); border: 1px solid var(--line);
  display: flex; align-items: center; justify-content: center; color: var(--muted); font-size: 1.4rem;
  transition: background-color .12s, color .12s, transform .12s; }
.pad div.on { background: var(--blue); color: #06121f; border-color: var(--blue); transform: scale(.94);
  box-shadow: 0 0 22px rgba(108, 182, 255, .55); }
.pad .gap { visibility: hidden; }
#joy-last { text-align: center; margin-top: 10px; }
ul.list { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 8px; }
ul.list li { display: flex; align-items: center; justify-content: space-between; gap: 12px;
  background: var(--card2); border-radius: 12px; padding: 10px 14px; min-width: 0; }
ul.list li.empty { justify-content: center; color: var(--muted); background: transparent; border: 1px dashed var(--line); }
.who { min-width: 0; overflow: hidden; }
.who .mono { display: block; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.who .when { color: var(--muted); font-size: .82rem; }
.what { text-align: right; white-space: nowrap; }
.what .amount { font-weight: 700; font-size: 1.15rem; color: var(--amber); }
.what .secs { color: var(--muted); font-size: .85rem; }
.badge { font-size: .78rem; font-weight: 700; padding: 3px 10px; border-radius: 99px; text-transform: uppercase; letter-spacing: .06em; }
.badge.queued { background: #2a3142; color: var(--muted); }
.badge.broadcast { background: #173152; color: var(--blue); }
.badge.confirmed { background: #123a25; color: var(--green); }
.badge.failed { background: #451b1f; color: var(--red); }
.err { color: var(--red); font-size: .82rem; white-space: normal; word-break: break-word; }
@media (min-width: 760px) {
  header { flex-wrap: nowrap; }
  #meta { order: 0; flex: 1 1 auto; }
  main { grid-template-columns: repeat(2, minmax(0, 1fr));
    grid-template-areas: "warn warn" "lamp lamp" "pay stats" "pay joy" "pays txs" "charts charts"; }
  .lamp-body { flex-direction: row; align-items: center; gap: clamp(18px, 3vw, 48px); }
  #matrix { flex: 0 0 auto; width: min(52%, 460px); margin: 0; }
  .lamp-info { flex: 1 1 auto; }
}
@media (min-width: 1280px) {
  main { grid-template-columns: repeat(4, minmax(0, 1fr));
    grid-template-areas: "warn warn warn warn" "lamp lamp pay stats" "lamp lamp pay joy" "pays pays txs charts"; }
  #matrix { width: min(52%, 46vh); }
  .lamp-body { flex: 1 1 auto; }
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
  var MAX_ROWS = 8;
  var $ = function (id) { return document.getElementById(id); };
  var token = new URLSearchParams(location.search).get("token") || "";
  var tokenQuery = token ? "?token=" + encodeURIComponent(token) : "";
  var wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" + tokenQuery;

  var S = null;          // the last state, updated by events
  var offset = 0;        // server clock minus this clock, seconds
  var lightSpan = 0;     // remaining time when the lamp was last (re)lit, for the bar
  var joyTimer = null;

  function now() { return Date.now() / 1000 + offset; }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function short(s) { s = String(s == null ? "?" : s); return s.length > 14 ? s.slice(0, 6) + "\u2026" + s.slice(-5) : s; }
  function group(intText) { return intText.replace(/\B(?=(\d{3})+(?!\d))/g, ","); }
  function units(amount, decimals, maxFrac) {
    if (typeof amount !== "number") return "\u2013";
    if (typeof decimals !== "number") return group(String(amount)) + " units";
    var v = amount / Math.pow(10, decimals);
    var text = v.toFixed(Math.min(decimals, maxFrac));
    if (text.indexOf(".") >= 0) text = text.replace(/0+$/, "").replace(/\.$/, "");
    var parts = text.split(".");
    return group(parts[0]) + (parts.length > 1 ? "." + parts[1] : "");
  }
  function duration(s) {
    s = Math.max(0, Math.ceil(s));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    var mm = (h ? String(m).padStart(2, "0") : String(m)), ss = String(sec).padStart(2, "0");
    return (h ? h + ":" : "") + mm + ":" + ss;
  }
  function ago(ts) {
    if (typeof ts !== "number") return "";
    var d = Math.max(0, now() - ts);
    if (d < 5) return "just now";
    if (d < 90) return Math.round(d) + " s ago";
    if (d < 5400) return Math.round(d / 60) + " min ago";
    if (d < 172800) return Math.round(d / 3600) + " h ago";
    return new Date(ts * 1000).toLocaleDateString();
  }
  function coinName(chain) { return (chain === "W" || chain === "T" || chain === "S") ? "WAVES" : "coin"; }
  function tokenName() { return (S && S.token && S.token.name) ? S.token.name : "tokens"; }
  function decimals() {
    if (S && S.token && typeof S.token.decimals === "number") return S.token.decimals;
    return S && S.balance ? S.balance.decimals : null;
  }
  function template(kind) {
    var t = S && S.links ? S.links[kind] : "";
    return (typeof t === "string" && /^https?:\/\//.test(t)) ? t : "";
  }
  // a transaction id: a link to the explorer (monitor.explorer_url) when there is one
  function txLink(id, label) {
    var t = template("explorer");
    if (!id || !t) return el("span", "mono txid", label || short(id));
    var a = el("a", "mono txid", label || short(id));
    a.href = t.split("{id}").join(encodeURIComponent(id));
    a.target = "_blank"; a.rel = "noopener noreferrer"; a.title = id;
    return a;
  }
  var REASONS = { wrong_asset: "another token", below_minimum: "below the minimum payment",
    failed: "failed on chain", not_verified: "signature does not verify", malformed: "malformed transaction",
    cut_by_cap: "the light was already at its cap" };

  // -- matrix ----------------------------------------------------------------
  var cells = [];
  (function buildMatrix() {
    var m = $("matrix");
    for (var i = 0; i < 64; i++) {
      var c = el("div", "px");
      c.setAttribute("data-rgb", "0,0,0");
      m.appendChild(c);
      cells.push(c);
    }
  })();
  function renderMatrix() {
    var px = (S && Array.isArray(S.matrix)) ? S.matrix : [];
    for (var i = 0; i < 64; i++) {
      var p = Array.isArray(px[i]) ? px[i] : [0, 0, 0];
      var r = p[0] | 0, g = p[1] | 0, b = p[2] | 0, rgb = r + "," + g + "," + b;
      var c = cells[i];
      if (c.getAttribute("data-rgb") === rgb) continue;
      c.setAttribute("data-rgb", rgb);
      if (r || g || b) {
        c.style.backgroundColor = "rgb(" + rgb + ")";
        c.style.boxShadow = "0 0 14px rgba(" + rgb + ",.55)";
      } else {
        c.style.backgroundColor = "";
        c.style.boxShadow = "";
      }
    }
  }

  // -- light and countdown -----------------------------------------------------
  function remainingNow() {
    if (!S || !S.light || !S.light.on) return 0;
    var l = S.light;
    if (typeof l.until === "number") return Math.max(0, l.until - now());
    if (typeof l.remaining === "number") return Math.max(0, l.remaining - (now() - (l._at || now())));
    return 0;
  }
  function renderLight() {
    var rem = remainingNow(), on = rem > 0;
    var st = $("lamp-state");
    st.textContent = on ? "ON" : "OFF";
    st.className = on ? "on" : "";
    st.setAttribute("data-on", on ? "true" : "false");
    var r = $("remaining");
    var text = duration(rem);
    if (r.textContent !== text) r.textContent = text;
    r.className = "num" + (on ? " on" : "");
    r.setAttribute("data-seconds", rem.toFixed(1));
    if (rem > lightSpan) lightSpan = rem;
    $("remaining-bar").style.width = (on && lightSpan > 0 ? Math.min(100, 100 * rem / lightSpan) : 0) + "%";
    var hint = on ? "until " + new Date((now() + rem - offset) * 1000).toLocaleTimeString()
                  : "send tokens to light it";
    if ($("lamp-hint").textContent !== hint) $("lamp-hint").textContent = hint;
  }
  function frame() { renderLight(); requestAnimationFrame(frame); }

  // -- the other cards ---------------------------------------------------------
  function renderHeader() {
    var parts = [];
    if (S.version) parts.push("v" + S.version);
    if (S.chain_id) parts.push("chain " + S.chain_id);
    if (S.backend) parts.push(S.backend);
    $("meta").textContent = parts.join(" \u00b7 ");
  }
  var qrFor = null;
  function renderAddress() {
    var a = S.address || "";
    $("address").textContent = a || "\u2013";
    $("asset").textContent = S.asset_id ? (S.token && S.token.name ? S.token.name + " \u00b7 " : "token ")
                                          + S.asset_id : "";
  }
  function renderStats() {
    var b = S.balance || {};
    $("balance-token").textContent = units(b.token, b.decimals, 8);
    $("balance-coin").textContent = units(b.coin, 8, 4);
    $("coin-name").textContent = coinName(S.chain_id) + " for fees";
    var n = S.node || {};
    var ns = $("node-status");
    ns.textContent = n.ok === true ? "online" : (n.ok === false ? "offline" : "\u2013");
    ns.className = "value " + (n.ok === true ? "ok" : (n.ok === false ? "down" : ""));
    $("node-url").textContent = n.ok === false && n.error ? n.error : (n.url || "");
    $("node-url").title = n.url || "";
    $("node-height").textContent = typeof n.height === "number" ? group(String(n.height)) : "\u2013";
    var ob = S.outbox || {};
    var pending = typeof ob.pending === "number" ? ob.pending : null;
    $("outbox").textContent = (pending === null ? "outbox \u2013" : "outbox " + pending + " pending")
                              + (ob.no_funds ? " \u00b7 no funds for fees" : "");   // in full: the warnings
    $("outbox").className = "sub" + (ob.no_funds ? " err" : "");
  }
  function renderPayments() {
    var ul = $("payments");
    ul.textContent = "";
    var list = (S.payments || []).concat(S.ignored || []);
    list.sort(function (a, b) { return (b.ts || 0) - (a.ts || 0); });
    if (!list.length) { ul.appendChild(el("li", "empty", "No payments yet")); return; }
    var dec = decimals();
    list.slice(0, MAX_ROWS).forEach(function (p) {
      var ignored = typeof p.reason === "string";
      var li = el("li", ignored ? "ignored" : "");
      li.setAttribute("data-id", p.id || "");
      var who = el("div", "who");
      var s = el("span", "mono", p.sender || "?");
      s.title = p.sender || "";
      who.appendChild(s);
      who.appendChild(txLink(p.id));
      var w = el("span", "when", ago(p.ts));
      w.setAttribute("data-ts", String(p.ts));
      who.appendChild(w);
      var what = el("div", "what");
      var own = !ignored || !p.asset_id || p.asset_id === S.asset_id;
      var amount = own ? units(p.amount, dec, 8) : group(String(p.amount)) + " units";
      if (own && typeof dec === "number") amount += " " + tokenName();
      what.appendChild(el("div", "amount", amount));
      what.appendChild(el("div", "secs", ignored ? "not counted: " + (REASONS[p.reason] || p.reason)
                                                 : "+" + duration(p.seconds || 0) + " light"));
      li.appendChild(who); li.appendChild(what);
      ul.appendChild(li);
    });
  }
  function renderDataTxs() {
    var ul = $("datatxs");
    ul.textContent = "";
    var list = S.datatxs || [];
    if (!list.length) { ul.appendChild(el("li", "empty", "No Data transactions yet")); return; }
    list.slice(0, MAX_ROWS).forEach(function (t) {
      var li = el("li");
      li.setAttribute("data-status", t.status || "");
      var who = el("div", "who");
      who.appendChild(txLink(t.id, (t.kind === "refund" ? "refund " : "") + short(t.id)));
      if (t.status === "failed" && t.error) who.appendChild(el("span", "err", t.error));
      else { var w = el("span", "when", ago(t.ts)); w.setAttribute("data-ts", String(t.ts)); who.appendChild(w); }
      li.appendChild(who);
      li.appendChild(el("span", "badge " + (t.status || ""), t.status || "?"));
      ul.appendChild(li);
    });
  }
  function renderJoystick(ev, live) {
    ["up", "down", "left", "right", "middle"].forEach(function (d) { $("joy-" + d).classList.remove("on"); });
    if (joyTimer) { clearTimeout(joyTimer); joyTimer = null; }
    if (!ev) { $("joy-last").textContent = "no presses yet"; return; }
    $("joy-last").textContent = (ev.direction || "?") + " " + (ev.action || "") + (live ? "" : " \u00b7 " + ago(ev.ts));
    var cell = $("joy-" + ev.direction);
    if (live && cell && ev.action !== "released") {
      cell.classList.add("on");
      joyTimer = setTimeout(function () { cell.classList.remove("on"); }, 1500);
    }
  }
  function tickAges() {
    var spans = document.querySelectorAll("[data-ts]");
    for (var i = 0; i < spans.length; i++) {
      var ts = parseFloat(spans[i].getAttribute("data-ts"));
      if (!isNaN(ts)) spans[i].textContent = ago(ts);
    }
  }

  function statusName() {
    if (S.outbox && S.outbox.no_funds) return "no_funds";
    if (S.node && S.node.ok === false) return "node_down";
    return S.node && S.node.ok ? "ok" : "starting";
  }
  function renderLegend() {
    var box = $("legend");
    box.textContent = "";
    var legend = (S.status && S.status.legend) || [];
    if (!legend.length) return;
    box.appendChild(el("span", "", "status pixel:"));
    var current = statusName();
    legend.forEach(function (item) {
      var span = el("span", item.name === current ? "current" : "");
      span.setAttribute("data-status", item.name);
      var dot = el("i");
      var rgb = (item.rgb || [0, 0, 0]).map(function (c) { return Math.min(255, c * 3); });
      dot.style.backgroundColor = "rgb(" + rgb.join(",") + ")";
      span.appendChild(dot);
      span.appendChild(document.createTextNode(item.meaning));
      box.appendChild(span);
    });
  }
  function renderWarnings() {
    var box = $("warnings");
    box.textContent = "";
    (S.warnings || []).forEach(function (line) { box.appendChild(el("div", "", line)); });
  }
  var chosen = 1;          // index of the chosen "pay" preset
  function renderPay() {
    var p = S.price || {};
    var price = $("price");
    price.textContent = "";
    if (typeof p.seconds_per_token === "number") {
      price.appendChild(document.createTextNode("1 " + tokenName() + " = "));
      price.appendChild(el("b", "", duration(p.seconds_per_token) + " of light"));
      var extra = [];
      if (typeof p.max_seconds === "number") extra.push("at most " + duration(p.max_seconds) + " at a time");
      if (typeof p.min_tokens === "number" && p.min_tokens > 0) extra.push("minimum " + p.min_tokens + " " + tokenName());
      if (p.refund === "excess") extra.push("what the cap cuts off is refunded");
      if (extra.length) price.appendChild(el("div", "hint", extra.join(" \u00b7 ")));
    }
    var presets = S.pay || [];
    var box = $("presets");
    box.textContent = "";
    if (chosen >= presets.length) chosen = Math.max(0, presets.length - 1);
    presets.forEach(function (preset, i) {
      var b = el("button", i === chosen ? "on" : "", preset.amount + " " + tokenName() + " \u00b7 " + duration(preset.seconds));
      b.type = "button";
      b.setAttribute("data-amount", preset.amount);
      b.onclick = function () { chosen = i; renderPay(); };
      box.appendChild(b);
    });
    var preset = presets[chosen];
    var link = $("pay-link");
    if (preset && preset.link) {
      link.href = preset.link;
      link.textContent = "Pay " + preset.amount + " " + tokenName() + " in the wallet";
      link.className = "";
    } else {
      link.removeAttribute("href");
      link.className = "missing";
    }
    var a = S.address || "";
    var src = a ? "/qr.svg" + (tokenQuery ? tokenQuery + "&" : "?") + "a=" + encodeURIComponent(a)
                  + (preset && preset.link ? "&amount=" + encodeURIComponent(preset.amount) : "") : "";
    if (src && src !== qrFor) {
      qrFor = src;
      var img = $("qr");
      img.onload = function () { img.className = ""; };
      img.onerror = function () { img.className = "missing"; };
      img.src = src;
      img.alt = preset && preset.link ? "QR code: pay " + preset.amount + " " + tokenName() + " in a wallet"
                                      : "QR code of the device address";
    }
  }
  var SVG = $("svg-ns").namespaceURI;   // the SVG namespace, from an inline <svg> (no URL in the page)
  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, attrs[k]);
    return e;
  }
  function soldNow() {
    // move the 24 hourly buckets on when the hour changed since the snapshot
    var sold = S.light_sold;
    if (!sold || !Array.isArray(sold.seconds)) return null;
    var hourMs = 3600000, current = Math.floor(now() * 1000 / hourMs) * hourMs;
    var last = sold.start_ms + (sold.seconds.length - 1) * hourMs;
    while (last < current) { sold.seconds.shift(); sold.seconds.push(0); sold.start_ms += hourMs; last += hourMs; }
    return sold;
  }
  function renderSold() {
    var box = $("chart-sold");
    box.textContent = "";
    var sold = soldNow();
    if (!sold) return;
    var n = sold.seconds.length, W = 480, H = 120, pad = 16;
    var max = Math.max.apply(null, sold.seconds.concat([60]));
    var g = svg("svg", { viewBox: "0 0 " + W + " " + (H + pad), "class": "chart", role: "img",
      "aria-label": "seconds of light sold in each of the last " + n + " hours" });
    var total = 0;
    sold.seconds.forEach(function (v, i) {
      total += v;
      var h = Math.round((H - 4) * v / max), w = W / n;
      var r = svg("rect", { x: (i * w + 1).toFixed(1), y: H - h, width: (w - 2).toFixed(1), height: h, "class": "sold-bar" });
      var t = svg("title", {});
      t.textContent = new Date(sold.start_ms + i * 3600000).getHours() + ":00 \u2013 " + duration(v);
      r.appendChild(t);
      g.appendChild(r);
      if (i % 6 === 0) {
        var label = svg("text", { x: (i * w + 2).toFixed(1), y: H + pad - 3, "class": "axis" });
        label.textContent = new Date(sold.start_ms + i * 3600000).getHours() + ":00";
        g.appendChild(label);
      }
    });
    box.appendChild(g);
    box.appendChild(el("div", "hint", "in all " + duration(total) + " of light in the last " + n + " hours"));
  }
  var SENSORS = [["temperature_c", "Temperature", " \u00b0C"], ["humidity_pct", "Humidity", " %"],
                 ["pressure_hpa", "Pressure", " hPa"]];
  function renderTelemetry() {
    var box = $("telemetry");
    box.textContent = "";
    var points = S.telemetry;
    if (!Array.isArray(points) || !points.length) return;
    box.appendChild(el("h2", "", "Sensors, last 6 h"));
    SENSORS.forEach(function (sensor) {
      var pts = points.filter(function (p) { return typeof p[sensor[0]] === "number"; });
      if (!pts.length) return;
      var vals = pts.map(function (p) { return p[sensor[0]]; });
      var lo = Math.min.apply(null, vals), hi = Math.max.apply(null, vals), span = (hi - lo) || 1;
      var t0 = pts[0].ts, t1 = pts[pts.length - 1].ts, dt = (t1 - t0) || 1, W = 300, H = 40;
      var g = svg("svg", { viewBox: "0 0 " + W + " " + H, "class": "chart", role: "img", "data-sensor": sensor[0],
        "aria-label": sensor[1] + " from " + lo.toFixed(1) + " to " + hi.toFixed(1) + sensor[2] });
      g.appendChild(svg("polyline", { "class": "line", points: pts.map(function (p) {
        return ((p.ts - t0) / dt * (W - 4) + 2).toFixed(1) + "," + (H - 3 - (p[sensor[0]] - lo) / span * (H - 6)).toFixed(1);
      }).join(" ") }));
      var row = el("div", "spark");
      var left = el("div");
      left.appendChild(el("div", "hint", sensor[1] + " (" + lo.toFixed(1) + "\u2013" + hi.toFixed(1) + sensor[2] + ")"));
      left.appendChild(g);
      row.appendChild(left);
      row.appendChild(el("div", "now", vals[vals.length - 1].toFixed(1) + sensor[2]));
      box.appendChild(row);
    });
  }
  function renderCharts() { renderSold(); renderTelemetry(); }

  // -- messages ----------------------------------------------------------------
  function upsertDataTx(list, ev) {
    var out = [ev];
    for (var i = 0; i < list.length; i++) if (list[i].id !== ev.id) out.push(list[i]);
    return out;
  }
  function applyState(m) {
    S = m;
    S.light = S.light || { on: false };
    S.light._at = now();
    lightSpan = remainingNow();
    S.payments = Array.isArray(m.payments) ? m.payments.slice() : [];
    var txs = Array.isArray(m.data_txs) ? m.data_txs.slice() : [];
    txs.sort(function (a, b) { return (a.ts || 0) - (b.ts || 0); });
    S.datatxs = [];
    txs.forEach(function (t) { S.datatxs = upsertDataTx(S.datatxs, t); });
    S.ignored = Array.isArray(m.ignored) ? m.ignored.slice() : [];
    renderHeader(); renderAddress(); renderStats(); renderMatrix(); renderPay(); renderLegend();
    renderWarnings(); renderPayments(); renderDataTxs(); renderCharts(); renderJoystick(m.joystick || null, false);
  }
  function onMessage(m) {
    if (typeof m.ts === "number") offset = m.ts - Date.now() / 1000;
    if (m.type === "state") { applyState(m); return; }
    if (!S) return;
    switch (m.type) {
      case "light":
        S.light = { on: !!m.on, remaining: m.remaining, until: m.until, _at: now() };
        lightSpan = remainingNow();
        break;
      case "matrix": S.matrix = m.pixels; renderMatrix(); break;
      case "payment":
        S.payments.unshift(m); S.payments = S.payments.slice(0, 50); renderPayments();
        var sold = soldNow();
        if (sold && typeof m.seconds === "number") sold.seconds[sold.seconds.length - 1] += m.seconds;
        renderSold(); break;
      case "ignored": S.ignored.unshift(m); S.ignored = S.ignored.slice(0, 50); renderPayments(); break;
      case "data_tx": S.datatxs = upsertDataTx(S.datatxs, m).slice(0, 50); renderDataTxs(); break;
      case "refund":
        S.datatxs = upsertDataTx(S.datatxs, { id: m.id, status: m.status, error: m.error, ts: m.ts, kind: "refund" })
          .slice(0, 50);
        renderDataTxs(); break;
      case "node":
        S.node = { url: m.url, ok: m.ok, height: m.height, error: m.error };
        renderStats(); renderLegend(); break;
      case "outbox": S.outbox = { pending: m.pending, no_funds: m.no_funds }; renderStats(); renderLegend(); break;
      case "warnings": S.warnings = Array.isArray(m.lines) ? m.lines : []; renderWarnings(); break;
      case "token": S.token = { name: m.name, decimals: m.decimals }; renderAddress(); renderPay(); renderPayments(); break;
      case "pay": S.pay = Array.isArray(m.presets) ? m.presets : []; renderPay(); break;
      case "telemetry":
        S.telemetry = (S.telemetry || []).concat([m]).slice(-720); renderTelemetry(); break;
      case "balance":
        S.balance = { coin: m.coin, token: m.token, decimals: m.decimals };
        renderStats(); renderPayments(); break;
      case "joystick": S.joystick = m; renderJoystick(m, true); break;
      default: break;
    }
  }

  // -- connection with back-off --------------------------------------------------
  var delay = 0.5, retryAt = 0, retryTimer = null;
  function setConn(cls, text) { var c = $("conn"); c.className = cls; c.textContent = text; }
  function showRetry() {
    var s = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
    setConn("offline", "offline \u00b7 retry in " + s + " s");
  }
  function connect() {
    if (retryTimer) { clearInterval(retryTimer); retryTimer = null; }
    setConn("connecting", "connecting\u2026");
    var ws;
    try { ws = new WebSocket(wsUrl); } catch (e) { schedule(); return; }
    ws.onmessage = function (ev) {
      var m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      if (!m || typeof m !== "object") return;
      if (m.type === "state") {
        delay = 0.5;
        setConn("live", "live");
        document.body.classList.remove("stale");
      }
      onMessage(m);
    };
    ws.onclose = function () {
      document.body.classList.add("stale");
      schedule();
    };
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
