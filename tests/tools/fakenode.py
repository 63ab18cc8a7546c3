#!/usr/bin/env python3
"""A loopback Waves node for iotlight's tests and offline rehearsals.

FakeNode is a real HTTP server on 127.0.0.1 that answers the node REST API the
way a Waves 1.x node does (or, with fork="0bs", the 0bsnetwork/Zbs 0.16 fork):
the JSON shapes, field order and error bodies of
the Waves protocol notes (waves-protocol.md) sections 5-12 and
tests/vectors/api_examples/*.json. Transactions are real: broadcasts
are parsed, their ids recomputed, signatures verified, fees, timestamps and
balances checked; the test-side helpers (transfer, issue_asset, ...) sign with
throwaway keys through tests/reference.py (never iotlight's own code: the
fake node is an independent judge of what the daemon broadcasts).

The chain: sealed blocks and one liquid block on top (the last block, which
takes new transactions at once, like microblocks, at height = current height).
mine() seals it and opens the next one; rollback(n) removes the last n blocks.

Test use:

    with FakeNode(chain_id="T") as node:
        node.fund(address, waves=10 ** 8)
        asset = node.issue_asset(keys, "IoT-Light", 2, 1_000_000)
        node.transfer(keys, device_address, 150, asset_id=asset)
        ... point the client at node.url ...

Behind the public pool's limits (one IP, as a classroom behind one router sees them):

    with FakeNode(chain_id="T", pool=Pool()) as node: ...   # node.pool.counts: routes and 429s
    Pool(shared_zone=True, nodelay=True)   # stricter: all 20 r/s routes in one limit_req bucket

What a broken or hostile network does (each ends with clear_faults(), or its own undo):

    node.fail("503", count=2)            # 500, 503, 429, hang, garbage, truncated, reset answers
    node.hostile("forged", address)      # a lying node: bombs, forged/relabelled/other-chain items
    node.withhold(tx_id)                 # a lagging pool member hides a confirmed tx; release(tx_id)
    node.flood(address, 50, asset_id)    # 50 fresh made-up transfers on top of every listing read
    node.pad(r"^/transactions/address/", 2_800_000)  # right answers + 8 MiB of {} (gzip: ~8 KB sent)
    node.glitch_aliases(2)               # /alias/by-address answers [] twice (a member still syncing)
    node.set_rate_limit(r"^/transactions/address/", 17, 60)   # 429s, until clear_rate_limits()

A FakeNode("W") plays a node of another network for a "T" client: its block generator is a W
address, T addresses in a path are 400 error 102, a broadcast with chainId 84 is 400 error 404.

Standalone rehearsal (prints what it does):

    python tests/tools/fakenode.py --port 6869 --chain T --fund 3N...=100 --demo

Sections: 1. helpers and errors, 2. transaction JSON as the node writes it,
3. the node state (FakeNode), 4. the HTTP front (routes, faults), 5. main().
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import gzip
import hashlib
import json
import logging
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

_TESTS = Path(__file__).resolve().parent.parent  # tests/: reference.py, also when run as a script
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

import reference  # noqa: E402

log = logging.getLogger("iotlight.fakenode")

JSON_TYPE = "application/json; charset=UTF-8"
TEXT_TYPE = "text/plain; charset=UTF-8"
HTML_TYPE = "text/html"

TX_LIMIT_WAVES = 1000  # rest-api.transactions-by-address-limit (Waves default)
TX_LIMIT_ZBS = 10000  # the same key in the Zbs 0.16 config
MAX_FUTURE_MS = 90 * 60 * 1000  # disallowTxFromFuture
MAX_PAST_MS = 120 * 60 * 1000  # disallowTxFromPast
BLOCK_REWARD = 600_000_000
TRUE_SCRIPT = "base64:AQa3b8tH"  # a compiled Ride V1 expression `true`: makes an asset "scripted"

SUPPORTED_VERSIONS = {
    "waves": {3: (1, 2, 3), 4: (1, 2, 3), 11: (1, 2), 12: (1, 2)},
    "0bs": {3: (1, 2), 4: (1, 2), 11: (1,), 12: (1,)},
}
PROTOBUF_VERSIONS = {(3, 3), (4, 3), (11, 2), (12, 2)}
CHAIN_ID_IN_JSON = PROTOBUF_VERSIONS | {(3, 2)}  # Issue v2 signs its chain byte too
TX_NAMES = {
    3: "IssueTransaction",
    4: "TransferTransaction",
    11: "MassTransferTransaction",
    12: "DataTransaction",
}

NOT_FOUND_TEXT = "The requested resource could not be found but may be available again in the future."
SLOW_TEXT = (
    "The server was not able to produce a timely response to your request.\n"
    "Please try again in a short while!"
)
FAULT_KINDS = ("500", "503", "429", "hang", "garbage", "truncated", "reset", "gzip_bomb", "nesting_bomb")
# A lying node: lies put into an address's listing by FakeNode.hostile() (the bombs are faults)
LIE_KINDS = ("huge_numbers", "wrong_types", "forged", "relabelled", "other_chain")
HOSTILE_KINDS = ("gzip_bomb", "nesting_bomb") + LIE_KINDS
GZIP_BOMB_BYTES = 200 * 1024 * 1024  # what the gzip bomb inflates to (about 200 KB on the wire)
_gzip_bomb_cache: Dict[int, bytes] = {}
# Where pad() puts its padding: a string the node never writes, replaced once the answer is JSON text
PADDING_MARK = "\ue000fakenode padding\ue000"


def gzip_bomb(inflated: int = GZIP_BOMB_BYTES) -> bytes:
    """gzip of a JSON list opening followed by `inflated` spaces: small on the wire, huge inflated."""
    if inflated not in _gzip_bomb_cache:
        import zlib

        z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        block = b" " * (1024 * 1024)
        parts = [z.compress(b"[[")]
        for _ in range(inflated // len(block)):
            parts.append(z.compress(block))
        parts.append(z.compress(b"]]") + z.flush())
        _gzip_bomb_cache[inflated] = b"".join(parts)
    return _gzip_bomb_cache[inflated]


POOL_REASONS = {"429": "Too Many Requests", "503": "Service Temporarily Unavailable"}


def _nginx_page(status: int, reason: str) -> str:
    return (
        "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1></center>\r\n"
        "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n" % (status, reason, status, reason)
    )


# =============================================================================
# 1. Helpers and errors
# =============================================================================


class ApiError(Exception):
    """An HTTP answer other than 200: status, body (dict -> JSON, str -> text)."""

    def __init__(
        self, status: int, body: Any, content_type: str = JSON_TYPE, headers: Optional[Dict[str, str]] = None
    ):
        super().__init__("%d %s" % (status, body))
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


class FakeNodeError(Exception):
    """A test-side helper's transaction was rejected; .status and .body are the node's answer."""

    def __init__(self, status: int, body: Any):
        super().__init__("fake node rejected the transaction: %d %s" % (status, body))
        self.status = status
        self.body = body


def _err(status: int, error: int, message: str, **extra: Any) -> ApiError:
    body: Dict[str, Any] = {"error": error, "message": message}
    body.update(extra)
    return ApiError(status, body)


def _wrong_json(
    missing: Sequence[str] = (), cause: Optional[str] = None, expected: Optional[Dict[str, str]] = None
) -> ApiError:
    errors: Dict[str, Any] = {}
    for name in missing:
        errors["obj." + name] = [{"msg": ["error.path.missing"], "args": []}]
    for name, kind in (expected or {}).items():
        errors["obj." + name] = [{"msg": ["error.expected." + kind], "args": []}]
    return ApiError(
        400,
        {"error": 1, "message": "failed to parse json message", "cause": cause, "validationErrors": errors},
    )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _b58_ok(text: Any, length: int) -> bool:
    try:
        return len(reference.b58decode(text)) == length
    except (reference.Invalid, TypeError):
        return False


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _padded(answer: Any, items: int) -> bytes:
    """The compact JSON of an answer with a "padding" field of `items` empty objects at the end of
    its object, or of the first object in a list answer (an answer without one stays as it is)."""

    def mark(value: Any) -> Tuple[Any, bool]:
        if isinstance(value, dict):
            return dict(value, padding=PADDING_MARK), True
        if isinstance(value, list):
            for i, item in enumerate(value):
                marked, done = mark(item)
                if done:
                    return value[:i] + [marked] + value[i + 1 :], True
        return value, False

    dense = b"[" + b"{}," * (items - 1) + b"{}]" if items > 0 else b"[]"
    text = _compact(mark(answer)[0]).encode("utf-8")
    return text.replace(_compact(PADDING_MARK).encode("utf-8"), dense, 1)


def _accepts_gzip(accept_encoding: Optional[str]) -> bool:
    """Whether a request's Accept-Encoding takes gzip (a q=0 refuses it)."""
    for part in (accept_encoding or "").split(","):
        coding, _, params = part.partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip", "*"):
            return not re.fullmatch(r"\s*q\s*=\s*0(\.0*)?\s*", params)
    return False


# Values the node writes as strings when asked for large-significand-format=string
_LARGE_KEYS = frozenset(
    (
        "amount",
        "fee",
        "balance",
        "quantity",
        "totalAmount",
        "totalFee",
        "reward",
        "desiredReward",
        "regular",
        "available",
        "effective",
        "generating",
        "minSponsoredAssetFee",
        "sponsorBalance",
    )
)


def _stringify_large(obj: Any) -> Any:
    if isinstance(obj, list):
        return [_stringify_large(v) for v in obj]
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in _LARGE_KEYS and _is_int(v):
                out[k] = str(v)
            elif k == "value" and obj.get("type") == "integer" and _is_int(v):
                out[k] = str(v)
            else:
                out[k] = _stringify_large(v)
        return out
    return obj


# =============================================================================
# 2. Transaction JSON as the node writes it
# =============================================================================
#
# Field order from the node serializers (waves-protocol.md 5.4, 6.3, 7 and the
# node_json_expected of the vectors). Zbs 0.16 writes jsonBase (type, id,
# sender, senderPublicKey, fee, timestamp, proofs|signature) then the type's
# fields starting with version, and no chainId/applicationStatus.


def _data_entry_json(entry: Dict[str, Any]) -> Dict[str, Any]:
    if entry.get("type") is None and entry.get("value") is None:
        return {"key": entry["key"], "value": None}
    value = entry["value"]
    if entry["type"] == "binary" and not value.startswith("base64:"):
        value = "base64:" + value
    return {"key": entry["key"], "type": entry["type"], "value": value}


def _recipient_json(recipient: str) -> str:
    return recipient[len("address:") :] if recipient.startswith("address:") else recipient


def node_tx_json(tx: Dict[str, Any], sender: str, fork: str = "waves") -> Dict[str, Any]:
    """The JSON a node returns for a parsed transaction (without height and status)."""
    t, v = tx["type"], tx["version"]
    v1_signed = t in (3, 4) and v == 1
    sig = tx["proofs"][0] if tx.get("proofs") else tx.get("signature")
    proofs = list(tx.get("proofs") or [sig])
    fee_asset = tx.get("feeAssetId") or None
    if fork == "0bs":
        out: Dict[str, Any] = {
            "type": t,
            "id": tx["id"],
            "sender": sender,
            "senderPublicKey": tx["senderPublicKey"],
            "fee": tx["fee"],
            "timestamp": tx["timestamp"],
        }
        if v1_signed:
            out["signature"] = sig
        else:
            out["proofs"] = proofs
        out["version"] = v
        if t == 4:
            out.update(
                recipient=_recipient_json(tx["recipient"]),
                assetId=tx.get("assetId") or None,
                feeAssetId=fee_asset,
                feeAsset=fee_asset,
                amount=tx["amount"],
                attachment=tx.get("attachment") or "",
            )
        elif t == 11:
            items = [
                {"recipient": _recipient_json(i["recipient"]), "amount": i["amount"]} for i in tx["transfers"]
            ]
            out.update(
                assetId=tx.get("assetId") or None,
                attachment=tx.get("attachment") or "",
                transferCount=len(items),
                totalAmount=sum(i["amount"] for i in items),
                transfers=items,
            )
        elif t == 12:
            out["data"] = [_data_entry_json(e) for e in tx["data"]]
        elif t == 3:
            out.update(
                assetId=tx["id"],
                name=tx["name"],
                quantity=tx["quantity"],
                reissuable=bool(tx.get("reissuable")),
                decimals=tx.get("decimals", 0),
                description=tx.get("description", ""),
            )
            if v >= 2:
                out["script"] = tx.get("script") or None
        return out
    out = {
        "type": t,
        "id": tx["id"],
        "fee": tx["fee"],
        "feeAssetId": fee_asset,
        "timestamp": tx["timestamp"],
        "version": v,
    }
    if (t, v) in CHAIN_ID_IN_JSON:
        out["chainId"] = tx["chainId"]
    out.update(sender=sender, senderPublicKey=tx["senderPublicKey"], proofs=proofs)
    if v1_signed:
        out["signature"] = sig
    if t == 4:
        out.update(
            recipient=_recipient_json(tx["recipient"]),
            assetId=tx.get("assetId") or None,
            feeAsset=fee_asset,
            amount=tx["amount"],
            attachment=tx.get("attachment") or "",
        )
    elif t == 11:
        items = [
            {"recipient": _recipient_json(i["recipient"]), "amount": i["amount"]} for i in tx["transfers"]
        ]
        out.update(
            assetId=tx.get("assetId") or None,
            attachment=tx.get("attachment") or "",
            transferCount=len(items),
            totalAmount=sum(i["amount"] for i in items),
            transfers=items,
        )
    elif t == 12:
        out["data"] = [_data_entry_json(e) for e in tx["data"]]
    elif t == 3:
        out.update(
            assetId=tx["id"],
            name=tx["name"],
            quantity=tx["quantity"],
            reissuable=bool(tx.get("reissuable")),
            decimals=tx.get("decimals", 0),
            description=tx.get("description", ""),
            script=tx.get("script") or None,
        )
    return out


@dataclasses.dataclass
class Record:
    """A transaction in a block: the node's JSON, where it is and how it ended."""

    tx: Dict[str, Any]  # node_tx_json(), no height/status
    height: int
    position: int
    status: str = "succeeded"  # or "script_execution_failed"
    complexity: int = 0

    @property
    def id(self) -> str:
        return self.tx["id"]


@dataclasses.dataclass
class Block:
    height: int
    timestamp: int
    reference: str
    txs: List[str] = dataclasses.field(default_factory=list)
    generation_signature: str = ""
    vrf: str = ""


@dataclasses.dataclass
class Fault:
    kind: str
    count: Optional[int]
    until: Optional[float]
    paths: Optional[Tuple[str, ...]]
    retry_after: int
    hang_seconds: float
    items: int = 0  # pad(): empty objects in the "padding" field

    def matches(self, path: str, now: float) -> bool:
        if self.until is not None and now >= self.until:
            return False
        if self.count is not None and self.count <= 0:
            return False
        if self.paths is None:
            return True
        return any(re.search(p, path) if p.startswith("^") else path.startswith(p) for p in self.paths)


# The public pool's nginx (docs.waves.tech, API limitations of the pool of public nodes, mainnet
# table): per client IP, per route, first match wins. (name, path regex, simultaneous connections
# (None: no limit), requests per second, burst, seconds an answer is cached)
POOL_ROUTES: Tuple[Tuple[str, str, Optional[int], float, int, float], ...] = (
    ("list", r"^/transactions/address/", None, 17 / 60, 17, 1.0),
    ("data", r"^/addresses/data/[^/]+$", None, 17 / 60, 17, 1.0),
    ("assets-all", r"^/assets/balance/[^/]+$", None, 17 / 60, 17, 1.0),
    ("broadcast", r"^/transactions/broadcast", None, 2.0, 2, 0.0),
    ("info", r"^/transactions/info/", 15, 20.0, 50, 60.0),
    ("height", r"^/blocks/height$|^/transactions/unconfirmed$", 15, 20.0, 50, 15.0),
    ("balance", r"^/addresses/balance/|^/assets/balance/", 15, 100.0, 100, 3.0),
    ("heavy", r"^/blocks/last$|^/alias/", 100, 20.0, 50, 1.0),
    ("default", r"", 15, 20.0, 50, 1.0),
)
# A stricter reading of the same page (Pool(shared_zone=True)): every route limited to 20 requests a
# second takes its turn in one limit_req zone, one bucket for them all; caches stay per route.
SHARED_ZONE = "20r/s"
SHARED_ZONE_ROUTES = frozenset(name for name, _, _, rate, _, _ in POOL_ROUTES if rate == 20.0)


class Pool:
    """nginx in front of a public node pool, for one client IP (everything on 127.0.0.1 is one IP).

    limit_req per route: a leaky bucket at `rate` with a queue of `burst` requests; a request
    that finds the queue full gets 429 with nginx's HTML page, one that fits waits its turn
    (nginx's default, without `nodelay`; Pool(nodelay=True) answers at once). limit_conn: more
    simultaneous requests on a route than it allows get 503. proxy_cache: a GET answered 200
    is served from the cache for the route's seconds (the same URL, query included), so the
    data can lag; a padded answer (FakeNode.pad()) is kept as the node wrote it and gzipped on the
    way out, like nginx's gzip after its proxy_cache. `counts` holds (route, outcome) -> requests:
    outcome "ok", "cached", "429", "503".

    shared_zone=True: the routes of SHARED_ZONE_ROUTES (info, height, heavy, default: all at 20 r/s)
    count in one limit_req zone (one bucket, each route's own burst), as a stricter reading of the
    pool's page; connection limits, caches and counts stay per route.
    """

    def __init__(
        self,
        routes: Sequence[Tuple[str, str, Optional[int], float, int, float]] = POOL_ROUTES,
        *,
        nodelay: bool = False,
        shared_zone: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.routes = [
            (name, re.compile(rx), conns, rate, burst, ttl) for name, rx, conns, rate, burst, ttl in routes
        ]
        self.nodelay = nodelay
        self.shared_zone = shared_zone
        self.clock = clock
        self.lock = threading.Lock()
        self.excess: Dict[str, Tuple[float, float]] = {}  # zone -> (requests queued, when)
        self.active: Dict[str, int] = collections.Counter()
        self.cache: Dict[str, Tuple[float, int, bytes, str, bool]] = {}
        self.counts: "collections.Counter[Tuple[str, str]]" = collections.Counter()

    def route(self, path: str) -> Tuple[str, Optional[int], float, int, float]:
        for name, rx, conns, rate, burst, ttl in self.routes:
            if rx.search(path):
                return name, conns, rate, burst, ttl
        raise AssertionError("the last pool route matches every path")

    def admit(self, path: str) -> Tuple[str, Any]:
        """("503"|"429", None) when refused; else ("ok", seconds to wait in the queue). The caller
        calls leave(path) once an admitted request is answered."""
        name, conns, rate, burst, _ = self.route(path)
        with self.lock:
            if conns is not None and self.active[name] >= conns:
                self.counts[(name, "503")] += 1
                return "503", None
            now = self.clock()
            zone = SHARED_ZONE if self.shared_zone and name in SHARED_ZONE_ROUTES else name
            queued, when = self.excess.get(zone, (-1.0, now))
            # nginx: excess = previous - rate * elapsed + 1 (floored at 0); above burst: refused
            excess = 0.0 if queued < 0 else max(0.0, queued - rate * (now - when) + 1)
            if excess > burst:
                self.counts[(name, "429")] += 1
                return "429", None
            self.excess[zone] = (excess, now)
            self.active[name] += 1
            return "ok", 0.0 if self.nodelay else excess / rate

    def leave(self, path: str) -> None:
        with self.lock:
            self.active[self.route(path)[0]] -= 1

    def cached(self, path: str, full: str) -> Optional[Tuple[int, bytes, str, bool]]:
        """(status, body, content type, padded) of a cached answer to `full`, or None."""
        name = self.route(path)[0]
        with self.lock:
            hit = self.cache.get(full)
            if hit is not None and hit[0] > self.clock():
                self.counts[(name, "cached")] += 1
                return hit[1:]
            self.counts[(name, "ok")] += 1
        return None

    def keep(self, path: str, full: str, status: int, data: bytes, ctype: str, padded: bool = False) -> None:
        ttl = self.route(path)[4]
        if status == 200 and ttl > 0:
            with self.lock:
                if len(self.cache) > 10_000:
                    self.cache.clear()
                self.cache[full] = (self.clock() + ttl, status, data, ctype, padded)

    def refused(self) -> Dict[str, int]:
        """Route -> requests refused (429 or 503)."""
        out: Dict[str, int] = collections.Counter()
        for (name, outcome), n in self.counts.items():
            if outcome in ("429", "503"):
                out[name] += n
        return dict(out)


Request = collections.namedtuple("Request", "method path query time")
Broadcast = collections.namedtuple("Broadcast", "body status response time")


# =============================================================================
# 3. The node state
# =============================================================================


class FakeNode:
    """A Waves (or Zbs) node on 127.0.0.1 with a scriptable chain, UTX pool and faults."""

    def __init__(
        self,
        chain_id: str = "T",
        *,
        port: int = 0,
        fork: str = "waves",
        now_ms: Optional[Callable[[], int]] = None,
        auto_include: bool = True,
        after_unknown: Optional[str] = None,
        start_height: int = 1,
        hang_seconds: float = 30.0,
        tx_limit: Optional[int] = None,
        pool: Optional[Pool] = None,
    ):
        if fork not in ("waves", "0bs"):
            raise ValueError("fork must be 'waves' or '0bs', not %r" % (fork,))
        self.chain_id = chain_id
        self.fork = fork
        self.rules = "0bs" if fork == "0bs" else "waves"
        self.coin = "ZBS" if fork == "0bs" else "WAVES"
        self.now_ms: Callable[[], int] = now_ms or (lambda: int(time.time() * 1000))
        self.auto_include = auto_include
        self.after_unknown = after_unknown or ("zbs" if fork == "0bs" else "waves")
        self.tx_limit = tx_limit or (TX_LIMIT_ZBS if fork == "0bs" else TX_LIMIT_WAVES)
        self.hang_seconds = hang_seconds
        self.pool = pool  # a Pool: the public pool's per-IP limits and cache in front of this node
        self.port = port
        self.host = "127.0.0.1"
        self.broadcasts: List[Broadcast] = []
        self.requests: List[Request] = []
        self.flooded = 0  # made-up transfers flood() has served, in all
        self._lock = threading.RLock()
        self._generator = reference.keys_from_seed("fakenode generator %s" % chain_id)
        self._faucet = reference.keys_from_seed("fakenode faucet %s" % chain_id)
        self._liar = reference.keys_from_seed("fakenode liar %s" % chain_id)
        self._addr_cache: Dict[str, str] = {}
        self._credits: List[Tuple[str, Optional[str], int]] = []
        self._aliases: Dict[str, str] = {}  # bare name -> address
        self._records: Dict[str, Record] = {}
        self._utx: "collections.OrderedDict[str, Dict[str, Any]]" = collections.OrderedDict()
        self._utx_raw: Dict[str, Dict[str, Any]] = {}
        self._faults: List[Fault] = []
        self._lies: List[Tuple[str, Dict[str, Any]]] = []  # (address, item): hostile() listing items
        self._withheld: set = set()  # withhold(): ids hidden from every listing and lookup
        # flood(): address -> (made-up transfers per read, their asset, their amount)
        self._floods: Dict[str, Tuple[int, Optional[str], int]] = {}
        self._pads: List[Fault] = []  # pad(): matched like faults, played on the node's own answer
        self._alias_glitches = 0  # glitch_aliases(): /alias/by-address reads still to answer []
        self._rate_limits: List[Tuple[str, int, float, collections.deque]] = []
        self._sig_cache: Dict[str, str] = {}
        self._last_ts = 0
        self._blocks: List[Block] = []
        self._reset_state()
        genesis = Block(start_height, self.now_ms(), reference.b58encode(b"\0" * 32))
        self._seal_extras(genesis)
        self._blocks.append(genesis)
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._stopping = threading.Event()

    # --- lifecycle ---------------------------------------------------------------

    def start(self) -> "FakeNode":
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self.port), _Handler, self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            name="fakenode-%d" % self.port,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )
        self._thread.start()
        log.info("fake %s node (chain %s) listening on %s", self.fork, self.chain_id, self.url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_all_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        log.info("fake node on port %d stopped", self.port)

    def restart(self) -> None:
        """Stop and start again on the same port; the chain and balances are kept."""
        self.stop()
        self.start()

    def __enter__(self) -> "FakeNode":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return "http://%s:%d" % (self.host, self.port)

    # --- chain --------------------------------------------------------------------

    @property
    def height(self) -> int:
        with self._lock:
            return self._blocks[-1].height

    def mine(self, n: int = 1) -> int:
        """Seal the liquid block and open n new ones; returns the new height."""
        with self._lock:
            for _ in range(n):
                last = self._blocks[-1]
                block = Block(last.height + 1, max(self.now_ms(), last.timestamp + 1), self._block_id(last))
                self._seal_extras(block)
                self._blocks.append(block)
            log.info("mined %d block(s): height %d", n, self.height)
            return self._blocks[-1].height

    def set_height(self, height: int) -> None:
        """Jump to a height: re-bases an empty chain, else mines up to it (never goes back)."""
        with self._lock:
            if height < self.height:
                raise ValueError(
                    "set_height(%d) is below the current height %d: use rollback()" % (height, self.height)
                )
            if not self._records and len(self._blocks) == 1:
                self._blocks[0].height = height
            else:
                self.mine(height - self.height)

    def rollback(self, n: int = 1, *, to_utx: bool = False) -> List[str]:
        """Remove the last n blocks; their transactions vanish or (to_utx) go back to the UTX pool.

        The block below becomes the liquid block. Returns the removed transaction ids.
        """
        with self._lock:
            if n >= len(self._blocks):
                raise ValueError(
                    "cannot roll back %d blocks: only %d above genesis" % (n, len(self._blocks) - 1)
                )
            removed: List[str] = []
            for block in self._blocks[-n:]:
                removed.extend(block.txs)
            del self._blocks[-n:]
            raws = []
            for tx_id in removed:
                rec = self._records.pop(tx_id)
                raws.append(rec)
            self._replay()
            if to_utx:
                for rec in raws:
                    self._utx[rec.id] = rec.tx
            log.info(
                "rolled back %d block(s): height %d, %d transaction(s) %s",
                n,
                self.height,
                len(removed),
                "back in the UTX pool" if to_utx else "dropped",
            )
            return removed

    def include_utx(self) -> List[str]:
        """Move the UTX pool into the liquid block (a microblock); invalid ones are dropped."""
        with self._lock:
            done = []
            for tx_id, tx in list(self._utx.items()):
                del self._utx[tx_id]
                problem = self._state_problem(tx, check_signature=False, check_time=False)
                if problem is None:
                    self._include(tx)
                    done.append(tx_id)
                else:
                    log.info("dropped %s from the UTX pool: %s", tx_id, problem.body.get("message"))
            return done

    # --- accounts -----------------------------------------------------------------

    def fund(self, address: str, waves: int = 0, *, asset_id: Optional[str] = None, amount: int = 0) -> None:
        """Credit an address outside any transaction (like genesis); survives rollbacks."""
        reference.parse_address(address, self.chain_id)
        with self._lock:
            if waves:
                self._credits.append((address, None, waves))
                self._waves[address] = self._waves.get(address, 0) + waves
            if asset_id and amount:
                self._credits.append((address, asset_id, amount))
                key = (address, asset_id)
                self._asset_bal[key] = self._asset_bal.get(key, 0) + amount

    def add_alias(self, address: str, name: str) -> str:
        """Register an alias for an address (no transaction); returns 'alias:<chain>:<name>'."""
        reference.parse_address(address, self.chain_id)
        canonical = reference.parse_alias(name, self.chain_id)
        bare = canonical[8:]
        with self._lock:
            if bare in self._aliases and self._aliases[bare] != address:
                raise ValueError("alias %r already belongs to %s" % (bare, self._aliases[bare]))
            self._aliases[bare] = address
        return canonical

    def balance(self, address: str, asset_id: Optional[str] = None) -> int:
        with self._lock:
            if asset_id is None:
                return self._waves.get(address, 0)
            return self._asset_bal.get((address, asset_id), 0)

    def data_entries(self, address: str) -> Dict[str, Dict[str, Any]]:
        """The address's current data entries, key -> {"key", "type", "value"}."""
        with self._lock:
            return {k: dict(v) for k, v in self._data.get(address, {}).items()}

    def aliases_of(self, address: str) -> List[str]:
        with self._lock:
            return ["alias:%s:%s" % (self.chain_id, n) for n, a in self._aliases.items() if a == address]

    def transaction(self, tx_id: str) -> Optional[Dict[str, Any]]:
        """The node JSON of a transaction in a block (with height and status), or None."""
        with self._lock:
            rec = self._records.get(tx_id)
            return self._confirmed_json(rec) if rec else None

    def unconfirmed(self) -> List[Dict[str, Any]]:
        with self._lock:
            return [dict(tx) for tx in self._utx.values()]

    def all_transactions(self) -> List[Dict[str, Any]]:
        """Every transaction in the chain, oldest first, as the node serves it."""
        with self._lock:
            return [self._confirmed_json(self._records[i]) for b in self._blocks for i in b.txs]

    # --- test-side transactions ---------------------------------------------------

    def next_timestamp(self) -> int:
        """now_ms(), but strictly increasing, so equal helper calls make distinct transactions."""
        with self._lock:
            self._last_ts = max(self.now_ms(), self._last_ts + 1)
            return self._last_ts

    def issue_asset(
        self,
        keys: reference.KeyPair,
        name: str,
        decimals: int,
        quantity: int,
        *,
        description: str = "",
        reissuable: bool = False,
        scripted: bool = False,
        fee: Optional[int] = None,
    ) -> str:
        """A real signed Issue v2 applied to the chain; returns the asset id (= its tx id)."""
        tx = {
            "type": 3,
            "version": 2,
            "senderPublicKey": reference.b58encode(keys.public_key),
            "name": name,
            "description": description,
            "quantity": quantity,
            "decimals": decimals,
            "reissuable": reissuable,
            "script": TRUE_SCRIPT if scripted else None,
            "fee": fee or reference.issue_fee(self.rules),
            "timestamp": self.next_timestamp(),
            "chainId": ord(self.chain_id),
        }
        return self.submit(reference.sign_tx(tx, keys.private_key))["id"]

    def transfer(
        self,
        sender_keys: reference.KeyPair,
        recipient: str,
        amount: int,
        asset_id: Optional[str] = None,
        attachment: bytes = b"",
        fee: Optional[int] = None,
        version: int = 2,
    ) -> Dict[str, Any]:
        """A real signed Transfer (v1, v2 or v3), applied like a broadcast into the liquid block."""
        return self.submit(
            self.make_transfer(
                sender_keys,
                recipient,
                amount,
                asset_id=asset_id,
                attachment=attachment,
                fee=fee,
                version=version,
            )
        )

    def make_transfer(
        self,
        sender_keys: reference.KeyPair,
        recipient: str,
        amount: int,
        asset_id: Optional[str] = None,
        attachment: bytes = b"",
        fee: Optional[int] = None,
        version: int = 2,
        timestamp: Optional[int] = None,
    ) -> Dict[str, Any]:
        """A signed Transfer JSON as a client would POST it (not applied)."""
        if fee is None:
            fee = reference.transfer_fee(self.rules, smart_asset=self._is_scripted(asset_id))
        tx = {
            "type": 4,
            "version": version,
            "senderPublicKey": reference.b58encode(sender_keys.public_key),
            "assetId": asset_id,
            "recipient": recipient,
            "amount": amount,
            "attachment": reference.b58encode(attachment),
            "fee": fee,
            "feeAssetId": None,
            "timestamp": timestamp or self.next_timestamp(),
            "chainId": ord(self.chain_id),
        }
        signed = reference.sign_tx(tx, sender_keys.private_key)
        if version == 1:
            signed["signature"] = signed["proofs"][0]
        return signed

    def mass_transfer(
        self,
        sender_keys: reference.KeyPair,
        transfers: Sequence[Tuple[str, int]],
        asset_id: Optional[str] = None,
        attachment: bytes = b"",
        fee: Optional[int] = None,
        version: int = 1,
    ) -> Dict[str, Any]:
        """A real signed Mass Transfer (v1 or v2) applied into the liquid block."""
        if fee is None:
            fee = reference.mass_transfer_fee(
                len(transfers), self.rules, smart_asset=self._is_scripted(asset_id)
            )
        tx = {
            "type": 11,
            "version": version,
            "senderPublicKey": reference.b58encode(sender_keys.public_key),
            "assetId": asset_id,
            "transfers": [{"recipient": r, "amount": a} for r, a in transfers],
            "fee": fee,
            "timestamp": self.next_timestamp(),
            "attachment": reference.b58encode(attachment),
            "chainId": ord(self.chain_id),
        }
        return self.submit(reference.sign_tx(tx, sender_keys.private_key))

    def data(
        self, sender_keys: reference.KeyPair, entries: List[Dict[str, Any]], *, version: int = 1, fee: int = 0
    ) -> Dict[str, Any]:
        """A real signed Data transaction (v1 or v2), applied into the liquid block."""
        tx = reference.build_data_tx(
            sender_keys,
            entries,
            timestamp=self.next_timestamp(),
            chain_id=self.chain_id,
            fee=fee,
            rules=self.rules,
            version=version,
        )
        return self.submit(tx)

    def failed_transfer(
        self,
        sender_keys: reference.KeyPair,
        recipient: str,
        amount: int,
        asset_id: str,
        attachment: bytes = b"",
        fee: Optional[int] = None,
    ) -> Dict[str, Any]:
        """A transfer of a scripted asset included with applicationStatus "script_execution_failed".

        Only the fee is charged; the amount does not move. (Real Waves nodes only keep failed Invoke
        and Exchange transactions; this exists so clients' status filters get exercised.)
        """
        tx = self.make_transfer(
            sender_keys, recipient, amount, asset_id=asset_id, attachment=attachment, fee=fee
        )
        return self.submit(tx, status="script_execution_failed")

    def submit(self, tx: Dict[str, Any], *, status: str = "succeeded") -> Dict[str, Any]:
        """Validate a signed transaction like a broadcast and put it straight into the liquid block.

        Returns the node JSON with height and status; FakeNodeError if the node rejects it.
        """
        with self._lock:
            try:
                node_tx = self._accept(tx, trusted=True)
            except ApiError as e:
                raise FakeNodeError(e.status, e.body) from None
            self._utx.pop(node_tx["id"], None)
            rec = self._include(node_tx, status=status)
            return self._confirmed_json(rec)

    # --- faults and limits --------------------------------------------------------

    def fail(
        self,
        kind: str,
        count: Optional[int] = None,
        duration: Optional[float] = None,
        paths: Optional[Iterable[str]] = None,
        *,
        retry_after: int = 1,
        hang_seconds: Optional[float] = None,
    ) -> None:
        """Make the next requests fail.

        kind: "500" (nginx page), "503" (the node's slow-request text), "429" (nginx, Retry-After),
        "hang" (no answer for hang_seconds, then the connection closes), "garbage" (200 with a body
        that is not JSON), "truncated" (half the JSON body, then the connection closes), "reset"
        (the connection is reset). count: how many requests (None = all); duration: seconds from
        now (None = until clear_faults()); paths: path prefixes, or regexes starting with "^".
        """
        if kind not in FAULT_KINDS:
            raise ValueError("fault kind must be one of %s, not %r" % (", ".join(FAULT_KINDS), kind))
        until = time.monotonic() + duration if duration is not None else None
        fault = Fault(
            kind,
            count,
            until,
            tuple(paths) if paths is not None else None,
            retry_after,
            self.hang_seconds if hang_seconds is None else hang_seconds,
        )
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        """End fail() faults, hostile() lies, withheld transactions, floods, padding and alias glitches."""
        with self._lock:
            self._faults.clear()
            self._lies.clear()
            self._withheld.clear()
            self._floods.clear()
            self._pads.clear()
            self._alias_glitches = 0

    def hostile(
        self,
        kind: str,
        address: Optional[str] = None,
        *,
        asset_id: Optional[str] = None,
        amount: int = 500,
        count: Optional[int] = None,
        duration: Optional[float] = None,
        paths: Optional[Iterable[str]] = None,
    ) -> Optional[str]:
        """Play a lying node. Bombs answer like fail() (default: every /transactions/address read):
        "gzip_bomb" (a 200 OK gzip body of ~200 KB inflating to 200 MiB), "nesting_bomb" (JSON nested
        100,000 deep). Lies add one item on top of `address`'s listing (first page, every read) and
        return its id: "huge_numbers" (a transfer of `asset_id` to it with a 401-digit amount),
        "wrong_types" (amount a string, recipient an object), "forged" (a made-up id
        and a proof that signs nothing), "relabelled" (the newest real transfer to `address`
        relisted under a new id), "other_chain" (a transfer really signed for chain "W", listed as
        one to `address`). Nothing of it enters the chain state; clear_faults() ends it all."""
        if kind not in HOSTILE_KINDS:
            raise ValueError("hostile kind must be one of %s, not %r" % (", ".join(HOSTILE_KINDS), kind))
        if kind in ("gzip_bomb", "nesting_bomb"):
            self.fail(
                kind, count, duration, paths=paths if paths is not None else [r"^/transactions/address/"]
            )
            return None
        if address is None:
            raise ValueError("a lie needs the address whose listing it goes into")
        with self._lock:
            item = self._lie(kind, address, asset_id, amount)
            self._lies.append((address, item))
        log.info("hostile: %s item %s in the listing of %s", kind, item.get("id"), address)
        return item.get("id") if isinstance(item.get("id"), str) else None

    def _lie(self, kind: str, address: str, asset_id: Optional[str], amount: int) -> Dict[str, Any]:
        made_up = reference.b58encode(
            hashlib.sha256(("lie %s %d" % (kind, len(self._lies))).encode()).digest()
        )
        if kind == "relabelled":
            real = [
                r
                for b in reversed(self._blocks)
                for i in reversed(b.txs)
                for r in [self._records[i]]
                if r.tx["type"] == 4 and self._resolve(r.tx["recipient"]) == address
            ]
            if not real:
                raise ValueError("no real transfer to %s to relabel" % address)
            item = self._confirmed_json(real[0], compact_for=address)
            item["id"] = made_up
            return item
        if kind == "other_chain":
            liar, other = self._liar, "W" if self.chain_id != "W" else "T"
            tx = {
                "type": 4,
                "version": 3,
                "senderPublicKey": reference.b58encode(liar.public_key),
                "assetId": asset_id,
                "recipient": reference.address(liar.public_key, other),
                "amount": amount,
                "attachment": "",
                "fee": 100_000,
                "feeAssetId": None,
                "timestamp": self.next_timestamp(),
                "chainId": ord(other),
            }
            signed = reference.sign_tx(tx, liar.private_key)  # a real transaction of the other chain
            item = node_tx_json(signed, liar.address(other), self.fork)
            item["recipient"] = address  # ... listed as a payment to the device
            return self._listed_now(item)
        item = self._made_up_transfer(address, asset_id, amount, made_up, self.next_timestamp())
        if kind == "huge_numbers":
            item["amount"] = 10**400
        elif kind == "wrong_types":
            item["amount"] = str(amount)
            item["recipient"] = {"address": address}
        return item

    def _made_up_transfer(
        self, address: str, asset_id: Optional[str], amount: int, tx_id: str, timestamp: int
    ) -> Dict[str, Any]:
        """A transfer to `address` as a listing shows it, under a made-up id, with a proof that
        signs nothing."""
        tx = {
            "type": 4,
            "version": 2,
            "senderPublicKey": reference.b58encode(self._liar.public_key),
            "assetId": asset_id,
            "recipient": address,
            "amount": amount,
            "attachment": "",
            "fee": 100_000,
            "feeAssetId": None,
            "timestamp": timestamp,
        }
        signed = dict(tx, id=tx_id, proofs=[reference.b58encode(os.urandom(64))])
        return self._listed_now(node_tx_json(signed, self._address(tx["senderPublicKey"]), self.fork))

    def _listed_now(self, item: Dict[str, Any]) -> Dict[str, Any]:
        """A transaction's JSON with what a confirmed one carries, at the current height."""
        item["height"] = self.height
        if self.fork != "0bs":
            item["applicationStatus"] = "succeeded"
            item["spentComplexity"] = 0
        return item

    def withhold(self, tx_id: str) -> None:
        """Play a lagging pool member: a confirmed transaction vanishes from every listing and lookup
        (address pages, /blocks/at and /blocks/last, info 404, status not_found) while balances still
        count it, until release() or clear_faults()."""
        with self._lock:
            if tx_id not in self._records:
                raise ValueError("withhold(%s): no such transaction in a block" % tx_id)
            self._withheld.add(tx_id)
        log.info("withholding %s from listings and lookups", tx_id)

    def release(self, tx_id: str) -> None:
        """Show a withheld transaction again, at its own height and position."""
        with self._lock:
            self._withheld.discard(tx_id)

    def flood(self, address: str, per_read: int, asset_id: Optional[str] = None, *, amount: int = 1) -> None:
        """Play a spammer or a liar: every first-page read of `address`'s listing gets `per_read` fresh
        made-up transfers of `asset_id` to it on top (new ids each read, proofs that sign nothing, at
        the current height, counted in `flooded`, never in the chain state; per_read=0 stops it)."""
        reference.parse_address(address, self.chain_id)
        if per_read < 0:
            raise ValueError("flood(): per_read must be 0 or more, not %d" % per_read)
        with self._lock:
            if per_read:
                self._floods[address] = (per_read, asset_id, amount)
            else:
                self._floods.pop(address, None)

    def _flood_items(self, address: str, limit: int) -> List[Dict[str, Any]]:
        per_read, asset_id, amount = self._floods.get(address, (0, None, 0))
        now, n = self.now_ms(), min(per_read, limit)
        items = [
            self._made_up_transfer(address, asset_id, amount, reference.b58encode(os.urandom(32)), now - i)
            for i in range(n)
        ]
        self.flooded += n
        return items

    def pad(
        self,
        paths: Optional[Iterable[str]],
        items: int,
        *,
        count: Optional[int] = None,
        duration: Optional[float] = None,
    ) -> None:
        """Make the 200 JSON answers of matching paths (prefixes, or regexes starting with "^", as
        fail(); None: all) the right object plus a "padding" field of `items` empty objects (in the
        first object of a list answer), gzipped for a client that accepts it (2.8 million: 8 MiB
        inflated, 8 KB sent); count: answers, duration: seconds, None: until clear_faults()."""
        if items < 0:
            raise ValueError("pad(): items must be 0 or more, not %d" % items)
        if isinstance(paths, str):
            paths = [paths]
        until = time.monotonic() + duration if duration is not None else None
        with self._lock:
            self._pads.append(
                Fault("pad", count, until, tuple(paths) if paths is not None else None, 0, 0.0, items)
            )

    def glitch_aliases(self, times: int = 1) -> None:
        """Play a pool member still syncing: /alias/by-address answers [] to the next `times` reads,
        then the truth again."""
        with self._lock:
            self._alias_glitches = times

    def set_rate_limit(
        self, pattern: str = r"^/transactions/address/", count: int = 17, per_seconds: float = 60.0
    ) -> None:
        """Answer 429 (like the public pool's nginx) when more than count requests match in per_seconds."""
        with self._lock:
            self._rate_limits.append((pattern, count, per_seconds, collections.deque()))

    def clear_rate_limits(self) -> None:
        with self._lock:
            self._rate_limits.clear()

    def _take_fault(self, path: str) -> Optional[Fault]:
        return self._take(self._faults, path)

    def _take_pad(self, path: str) -> Optional[Fault]:
        return self._take(self._pads, path)

    def _take(self, faults: List[Fault], path: str) -> Optional[Fault]:
        """The first of `faults` that matches `path`, one of its count used; spent ones are dropped."""
        now = time.monotonic()
        with self._lock:
            for fault in faults:
                if fault.matches(path, now):
                    if fault.count is not None:
                        fault.count -= 1
                    return fault
            faults[:] = [
                f for f in faults if (f.count is None or f.count > 0) and (f.until is None or now < f.until)
            ]
        return None

    def _rate_limited(self, path: str) -> bool:
        now = time.monotonic()
        with self._lock:
            for pattern, count, per, times in self._rate_limits:
                if re.search(pattern, path):
                    while times and times[0] <= now - per:
                        times.popleft()
                    if len(times) >= count:
                        return True
                    times.append(now)
        return False

    # --- internals: state ---------------------------------------------------------

    def _reset_state(self) -> None:
        self._waves: Dict[str, int] = {}
        self._asset_bal: Dict[Tuple[str, str], int] = {}
        self._data: Dict[str, Dict[str, Dict[str, Any]]] = {}
        self._assets: Dict[str, Dict[str, Any]] = {}

    def _replay(self) -> None:
        """Rebuild balances, assets and data from the credits and the blocks left."""
        self._reset_state()
        for address, asset, amount in self._credits:
            if asset is None:
                self._waves[address] = self._waves.get(address, 0) + amount
            else:
                self._asset_bal[(address, asset)] = self._asset_bal.get((address, asset), 0) + amount
        for block in self._blocks:
            for tx_id in block.txs:
                rec = self._records[tx_id]
                self._apply(rec.tx, rec.status, rec.height, rec.position)

    def _address(self, public_key_b58: str) -> str:
        a = self._addr_cache.get(public_key_b58)
        if a is None:
            a = reference.address(reference.b58decode(public_key_b58), self.chain_id)
            self._addr_cache[public_key_b58] = a
        return a

    def _resolve(self, recipient: str) -> Optional[str]:
        """Recipient (address or alias) -> address, None for an unknown alias."""
        if recipient.startswith("alias:"):
            return self._aliases.get(recipient[8:])
        return _recipient_json(recipient)

    def _is_scripted(self, asset_id: Optional[str]) -> bool:
        return bool(asset_id and self._assets.get(asset_id, {}).get("scripted"))

    def _add(self, address: str, asset: Optional[str], delta: int) -> None:
        if asset is None:
            self._waves[address] = self._waves.get(address, 0) + delta
        else:
            self._asset_bal[(address, asset)] = self._asset_bal.get((address, asset), 0) + delta

    def _apply(self, tx: Dict[str, Any], status: str, height: int, position: int) -> None:
        sender = tx["sender"]
        self._add(sender, tx.get("feeAssetId"), -tx["fee"])
        if status != "succeeded":
            return
        t = tx["type"]
        if t == 4:
            asset = tx.get("assetId")
            self._add(sender, asset, -tx["amount"])
            self._add(self._resolve(tx["recipient"]) or tx["recipient"], asset, tx["amount"])
        elif t == 11:
            asset = tx.get("assetId")
            for item in tx["transfers"]:
                self._add(sender, asset, -item["amount"])
                self._add(self._resolve(item["recipient"]) or item["recipient"], asset, item["amount"])
        elif t == 12:
            store = self._data.setdefault(sender, {})
            for e in tx["data"]:
                if e.get("value") is None and e.get("type") is None:
                    store.pop(e["key"], None)
                else:
                    store[e["key"]] = dict(e)
        elif t == 3:
            self._assets[tx["id"]] = {
                "tx": tx,
                "height": height,
                "position": position,
                "scripted": bool(tx.get("script")),
            }
            self._add(sender, tx["id"], tx["quantity"])

    def _include(self, tx: Dict[str, Any], status: str = "succeeded") -> Record:
        block = self._blocks[-1]
        rec = Record(tx, block.height, len(block.txs), status, 0 if status == "succeeded" else 1)
        block.txs.append(tx["id"])
        self._records[tx["id"]] = rec
        self._apply(tx, status, rec.height, rec.position)
        return rec

    def _confirmed_json(self, rec: Record, compact_for: Optional[str] = None) -> Dict[str, Any]:
        out = dict(rec.tx)
        if compact_for is not None and out["type"] == 11 and out["sender"] != compact_for:
            out["transfers"] = [i for i in out["transfers"] if self._resolve(i["recipient"]) == compact_for]
        out["height"] = rec.height
        if self.fork != "0bs":
            out["applicationStatus"] = rec.status
            out["spentComplexity"] = rec.complexity
        return out

    def _involves(self, tx: Dict[str, Any], address: str) -> bool:
        if tx["sender"] == address:
            return True
        if tx["type"] == 4:
            return self._resolve(tx["recipient"]) == address
        if tx["type"] == 11:
            return any(self._resolve(i["recipient"]) == address for i in tx["transfers"])
        return False

    # --- internals: validation (the broadcast path) ---------------------------------

    def _accept(self, raw: Any, *, trusted: bool = False) -> Dict[str, Any]:
        """Parse and validate a posted transaction; put it in the UTX pool. Returns its node JSON."""
        tx = self._parse(raw)
        node_tx = node_tx_json(tx, self._address(tx["senderPublicKey"]), self.fork)
        if tx["id"] in self._utx:
            return self._utx[tx["id"]]
        problem = self._state_problem(node_tx, check_signature=not trusted, check_time=True, raw=tx)
        if problem is not None:
            raise problem
        self._utx[tx["id"]] = node_tx
        return node_tx

    def _parse(self, raw: Any) -> Dict[str, Any]:
        if not isinstance(raw, dict):
            raise _wrong_json(cause=None, expected={"": "jsobject"})
        t = raw.get("type")
        if t is None:
            raise _wrong_json(missing=["type"])
        if not _is_int(t):
            raise _wrong_json(expected={"type": "jsnumber"})
        if t not in SUPPORTED_VERSIONS[self.rules]:
            raise _err(501, 312, "transaction type not supported")
        v = raw.get("version")
        if v is None:
            if t != 4:
                raise _wrong_json(missing=["version"])
            v = 1
        if not _is_int(v):
            raise _wrong_json(expected={"version": "jsnumber"})
        if v not in SUPPORTED_VERSIONS[self.rules][t]:
            raise _err(
                400,
                199,
                "UnsupportedVersion(%d)" % v
                if self.fork == "waves"
                else "Unsupported transaction version %d" % v,
            )
        required = ["senderPublicKey", "fee", "timestamp"]
        required += {
            4: ["recipient", "amount"],
            11: ["transfers"],
            12: ["data"],
            3: ["name", "quantity", "decimals", "reissuable"],
        }[t]
        if t == 3:
            required.append("description")
        missing = [k for k in required if raw.get(k) is None]
        if not raw.get("proofs") and not raw.get("signature"):
            missing.append("proofs")
        if missing:
            raise _wrong_json(missing=missing)
        numbers = [
            k
            for k in ("fee", "timestamp", "amount", "quantity", "decimals")
            if k in raw and k in required and not _is_int(raw[k])
        ]
        if numbers:
            raise _wrong_json(expected={k: "jsnumber" for k in numbers})
        chain = raw.get("chainId")
        if chain is not None and chain != ord(self.chain_id):
            if self.fork == "0bs":
                raise _err(
                    400, 199, "Wrong chain-id. Expected - %d, provided - %s" % (ord(self.chain_id), chain)
                )
            raise _err(400, 404, "Wrong chain-id. Expected - %d, provided - %s" % (ord(self.chain_id), chain))
        tx = {k: v2 for k, v2 in raw.items() if k not in ("id", "sender")}
        tx["version"] = v
        tx["chainId"] = ord(self.chain_id)
        if not tx.get("proofs"):
            tx["proofs"] = [tx["signature"]]
        if not isinstance(tx["proofs"], list) or not all(isinstance(p, str) for p in tx["proofs"]):
            raise _wrong_json(expected={"proofs": "jsarray"})
        if not _b58_ok(tx.get("senderPublicKey"), 32):
            raise _err(400, 108, "invalid public key")
        if tx["fee"] <= 0:
            raise _err(400, 112, "insufficient fee")
        if t == 4:
            if tx["amount"] <= 0:
                raise _err(
                    400, 115, "non-positive amount: %d of %s" % (tx["amount"], tx.get("assetId") or self.coin)
                )
            self._check_recipient(tx["recipient"])
        if t == 11:
            if not isinstance(tx["transfers"], list):
                raise _wrong_json(expected={"transfers": "jsarray"})
            if len(tx["transfers"]) > 100:
                raise _err(400, 199, "Number of transfers %d is greater than 100" % len(tx["transfers"]))
            for item in tx["transfers"]:
                if not isinstance(item, dict) or not _is_int(item.get("amount")) or "recipient" not in item:
                    raise _wrong_json(expected={"transfers": "jsobject"})
                if item["amount"] < 0:
                    raise _err(400, 199, "One of the transfers has negative amount")
                self._check_recipient(item["recipient"])
        if t == 12:
            try:
                reference.validate_data_tx(tx, self.rules)
            except reference.Invalid as e:
                raise _err(400, 199, str(e)) from None
            tx["data"] = [_data_entry_json(e) for e in tx["data"]]
        try:
            tx["id"] = reference.tx_id(tx)
        except reference.Invalid as e:
            raise _err(400, 199, str(e)) from None
        except (KeyError, TypeError, ValueError, struct.error) as e:
            raise _err(400, 199, "invalid transaction: %s" % e) from None
        return tx

    def _check_recipient(self, recipient: Any) -> None:
        if not isinstance(recipient, str):
            raise _wrong_json(expected={"recipient": "jsstring"})
        try:
            if recipient.startswith("alias:"):
                reference.parse_alias(recipient, self.chain_id)
            else:
                reference.parse_address(recipient, self.chain_id)
        except reference.Invalid:
            raise _err(400, 102, "invalid address") from None

    def _state_failed(
        self,
        node_tx: Dict[str, Any],
        reason: str,
        *,
        details: Optional[Dict[str, str]] = None,
        error: int = 112,
    ) -> ApiError:
        if self.fork == "0bs":
            body: Dict[str, Any] = {
                "error": error,
                "message": "State check failed. Reason: %s" % reason,
                "tx": node_tx,
            }
            return ApiError(400, body)
        body = {}
        if details is not None:
            body["details"] = details
        body.update(error=112, message="State check failed. Reason: %s" % reason, transaction=node_tx)
        return ApiError(400, body)

    def _state_problem(
        self,
        node_tx: Dict[str, Any],
        *,
        check_signature: bool,
        check_time: bool,
        raw: Optional[Dict[str, Any]] = None,
    ) -> Optional[ApiError]:
        """The node's objection to a transaction against the current state, or None."""
        tx_id, t = node_tx["id"], node_tx["type"]
        rec = self._records.get(tx_id)
        if rec is not None:
            return self._state_failed(
                node_tx, "Transaction %s is already in the state on a height of %d" % (tx_id, rec.height)
            )
        if check_time:
            now, ts = self.now_ms(), node_tx["timestamp"]
            if ts - now > MAX_FUTURE_MS:
                return _err(
                    400,
                    303,
                    "Transaction timestamp %d is more than %dms in the future relative to "
                    "block timestamp %d" % (ts, MAX_FUTURE_MS, now),
                )
            if now - ts > MAX_PAST_MS:
                return _err(
                    400,
                    303,
                    "Transaction timestamp %d is more than %dms in the past relative to "
                    "previous block timestamp %d" % (ts, MAX_PAST_MS, now),
                )
        if check_signature and not reference.verify_tx(raw if raw is not None else node_tx):
            if self.fork == "0bs":
                return self._state_failed(
                    node_tx,
                    "Script doesn't exist and proof doesn't validate as signature for %s" % _compact(node_tx),
                )
            return self._state_failed(
                node_tx, "Proof doesn't validate as signature for %s" % _compact(node_tx)
            )
        fee_asset = node_tx.get("feeAssetId")
        if fee_asset:
            return self._state_failed(
                node_tx, "Asset %s is not sponsored, cannot be used to pay fees" % fee_asset
            )
        asset = node_tx.get("assetId") if t in (4, 11) else None
        if asset and asset not in self._assets:
            return self._state_failed(node_tx, "Unissued assets are not allowed")
        min_fee = self._min_fee(node_tx, raw)
        if node_tx["fee"] < min_fee:
            return self._state_failed(
                node_tx,
                "Fee for %s (%d in %s) does not exceed minimal value of %d %s."
                % (TX_NAMES[t], node_tx["fee"], self.coin, min_fee, self.coin),
            )
        recipients = (
            [node_tx["recipient"]]
            if t == 4
            else [i["recipient"] for i in node_tx["transfers"]]
            if t == 11
            else []
        )
        for r in recipients:
            if r.startswith("alias:") and self._resolve(r) is None:
                return self._state_failed(node_tx, "alias '%s' doesn't exist" % r)
        sender = node_tx["sender"]
        if t in (4, 11):
            amount = node_tx["amount"] if t == 4 else sum(i["amount"] for i in node_tx["transfers"])
            if asset is None:
                have, spend = self._waves.get(sender, 0), amount + node_tx["fee"]
                if have - spend < 0:
                    return self._state_failed(
                        node_tx,
                        "Attempt to transfer unavailable funds: Transaction application leads to negative "
                        "waves balance to (at least) temporary negative state, current balance equals %d, "
                        "spends equals %d, result is %d" % (have, -spend, have - spend),
                    )
            else:
                have = self._asset_bal.get((sender, asset), 0)
                if have - amount < 0:
                    return self._state_failed(
                        node_tx,
                        "Attempt to transfer unavailable funds: Transaction application leads to negative "
                        "asset '%s' balance to (at least) temporary negative state, current balance is %d, "
                        "spends equals %d, result is %d" % (asset, have, -amount, have - amount),
                    )
        spend = node_tx["fee"]
        if t in (4, 11) and asset is None:
            spend += node_tx["amount"] if t == 4 else sum(i["amount"] for i in node_tx["transfers"])
        have = self._waves.get(sender, 0)
        if have - spend < 0:
            return self._state_failed(
                node_tx,
                "Accounts balance errors",
                details={
                    sender: "negative waves balance: %s, old: %d, new: %d" % (sender, have, have - spend)
                },
            )
        return None

    def _min_fee(self, node_tx: Dict[str, Any], raw: Optional[Dict[str, Any]]) -> int:
        t = node_tx["type"]
        if t == 4:
            return reference.transfer_fee(self.rules, smart_asset=self._is_scripted(node_tx.get("assetId")))
        if t == 11:
            return reference.mass_transfer_fee(
                len(node_tx["transfers"]), self.rules, smart_asset=self._is_scripted(node_tx.get("assetId"))
            )
        if t == 12:
            src = dict(raw if raw is not None else node_tx)
            src["data"] = node_tx["data"]
            return reference.data_fee(src, self.rules)
        return reference.issue_fee(self.rules)

    # --- internals: blocks --------------------------------------------------------

    def _seal_extras(self, block: Block) -> None:
        block.generation_signature = reference.b58encode(os.urandom(32))
        block.vrf = reference.b58encode(os.urandom(32))

    def _block_id(self, block: Block) -> str:
        h = hashlib.blake2b(digest_size=32)
        h.update(block.reference.encode())
        h.update(struct.pack(">iq", block.height, block.timestamp))
        for tx_id in block.txs:
            h.update(tx_id.encode())
        return reference.b58encode(h.digest())

    def _block_json(self, block: Block) -> Dict[str, Any]:
        """A block as /blocks/at and /blocks/last write it: the header, then its transactions without
        height (withheld ones left out; the header still counts them)."""
        out = self._header_json(block)
        out["transactions"] = []
        for tx_id in block.txs:
            if tx_id not in self._withheld:
                tx = self._confirmed_json(self._records[tx_id])
                del tx["height"]
                out["transactions"].append(tx)
        return out

    def _header_json(self, block: Block) -> Dict[str, Any]:
        block_id = self._block_id(block)
        sig = self._sig_cache.get(block_id)
        if sig is None:
            sig = reference.b58encode(
                reference.sign(self._generator.private_key, reference.b58decode(block_id))
            )
            self._sig_cache[block_id] = sig
        generator = self._generator.address(self.chain_id)
        fees = sum(self._records[i].tx["fee"] for i in block.txs)
        root = hashlib.blake2b(b"".join(reference.b58decode(i) for i in block.txs), digest_size=32).digest()
        size = 300 + sum(len(_compact(self._records[i].tx)) // 2 for i in block.txs)
        return {
            "timestamp": block.timestamp,
            "version": 5,
            "height": block.height,
            "totalFee": fees,
            "reference": block.reference,
            "generator": generator,
            "generatorPublicKey": reference.b58encode(self._generator.public_key),
            "signature": sig,
            "id": block_id,
            "nxt-consensus": {"base-target": 100, "generation-signature": block.generation_signature},
            "blocksize": size,
            "transactionCount": len(block.txs),
            "features": [],
            "reward": BLOCK_REWARD,
            "rewardShares": {generator: BLOCK_REWARD},
            "desiredReward": BLOCK_REWARD,
            "VRF": block.vrf,
            "transactionsRoot": reference.b58encode(root),
        }

    def _balance_at(self, address: str, height: int) -> int:
        total = sum(a for addr, asset, a in self._credits if addr == address and asset is None)
        for block in self._blocks:
            if block.height > height:
                break
            for tx_id in block.txs:
                rec = self._records[tx_id]
                tx = rec.tx
                if tx["sender"] == address and not tx.get("feeAssetId"):
                    total -= tx["fee"]
                if rec.status != "succeeded":
                    continue
                if tx["type"] == 4 and not tx.get("assetId"):
                    if tx["sender"] == address:
                        total -= tx["amount"]
                    if self._resolve(tx["recipient"]) == address:
                        total += tx["amount"]
                elif tx["type"] == 11 and not tx.get("assetId"):
                    for item in tx["transfers"]:
                        if tx["sender"] == address:
                            total -= item["amount"]
                        if self._resolve(item["recipient"]) == address:
                            total += item["amount"]
        return total

    # --- internals: HTTP routes ---------------------------------------------------

    def _check_address(self, address: str) -> str:
        try:
            reference.parse_address(address, self.chain_id)
        except reference.Invalid:
            raise _err(400, 102, "invalid address") from None
        return address

    def _route(
        self,
        method: str,
        path: str,
        query: Dict[str, List[str]],
        body: Optional[bytes],
        large_as_string: bool,
    ) -> Any:
        parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
        with self._lock:
            result = self._dispatch(method, parts, query, body)
        return _stringify_large(result) if large_as_string else result

    def _dispatch(self, method: str, p: List[str], query: Dict[str, List[str]], body: Optional[bytes]) -> Any:
        n = len(p)
        get, post = method == "GET", method == "POST"

        def only(allowed: str) -> None:
            if method != allowed:
                raise ApiError(405, "HTTP method not allowed, supported methods: %s" % allowed, TEXT_TYPE)

        if p[:1] == ["blocks"]:
            if p == ["blocks", "height"]:
                only("GET")
                return {"height": self.height}
            if p == ["blocks", "headers", "last"]:
                only("GET")
                return self._header_json(self._blocks[-1])
            if p == ["blocks", "last"]:
                only("GET")
                return self._block_json(self._blocks[-1])
            if n == 3 and p[1] == "at":
                only("GET")
                return self._block_json(self._block_at(self._int(p[2])))
            if n == 4 and p[1:3] == ["headers", "at"]:
                only("GET")
                return self._header_json(self._block_at(self._int(p[3])))
        if p == ["utils", "time"]:
            only("GET")
            now = self.now_ms()
            return {"system": now, "NTP": now}
        if p[:1] == ["transactions"]:
            return self._transactions_route(method, p, query, body, only)
        if p[:2] == ["addresses", "balance"]:
            only("GET")
            if n == 3:
                a = self._check_address(p[2])
                return {"address": a, "confirmations": 0, "balance": self._waves.get(a, 0)}
            if n == 4 and p[2] == "details":
                a = self._check_address(p[3])
                bal = self._waves.get(a, 0)
                return {"address": a, "regular": bal, "generating": bal, "available": bal, "effective": bal}
            if n == 4:
                a = self._check_address(p[2])
                conf = self._int(p[3])
                return {
                    "address": a,
                    "confirmations": conf,
                    "balance": self._balance_at(a, self.height - conf) if conf else self._waves.get(a, 0),
                }
        if p[:2] == ["addresses", "data"] and n in (3, 4):
            a = self._check_address(p[2])
            store = self._data.get(a, {})
            if n == 4:
                only("GET")
                if p[3] not in store:
                    raise _err(404, 304, "no data for this key")
                return dict(store[p[3]])
            keys = query.get("key")
            if post:
                keys = self._post_list(body, "keys")
            elif not get:
                only("GET")
            if keys is not None:
                return [dict(store[k]) for k in keys if k in store]
            if "matches" in query:
                try:
                    rx = re.compile(query["matches"][0])
                except re.error:
                    raise _err(400, 199, "Cannot compile regex") from None
                return [dict(store[k]) for k in sorted(store) if rx.fullmatch(k)]
            return [dict(store[k]) for k in sorted(store)]
        if p[:2] == ["assets", "details"] and n == 3:
            only("GET")
            return self._asset_details(p[2])
        if p[:2] == ["assets", "balance"] and n in (3, 4):
            only("GET")
            a = self._check_address(p[2])
            if n == 4:
                if not _b58_ok(p[3], 32):
                    raise _err(400, 4007, "Invalid asset id")
                return {"address": a, "assetId": p[3], "balance": self._asset_bal.get((a, p[3]), 0)}
            balances = []
            for (addr, asset), bal in sorted(self._asset_bal.items()):
                if addr == a and bal > 0 and asset in self._assets:
                    info = self._assets[asset]["tx"]
                    balances.append(
                        {
                            "assetId": asset,
                            "balance": bal,
                            "reissuable": info["reissuable"],
                            "minSponsoredAssetFee": None,
                            "sponsorBalance": None,
                            "quantity": info["quantity"],
                            "issueTransaction": None,
                        }
                    )
            return {"address": a, "balances": balances}
        if p[:2] == ["alias", "by-alias"] and n == 3:
            only("GET")
            try:
                canonical = reference.parse_alias(p[2], self.chain_id)
            except reference.Invalid as e:
                raise _err(400, 199, str(e)) from None
            address = self._aliases.get(canonical[8:])
            if address is None:
                raise _err(404, 302, "alias '%s' doesn't exist" % canonical)
            return {"address": address}
        if p[:2] == ["alias", "by-address"] and n == 3:
            only("GET")
            address = self._check_address(p[2])
            if self._alias_glitches > 0:
                self._alias_glitches -= 1
                return []
            return self.aliases_of(address)
        raise ApiError(404, NOT_FOUND_TEXT, TEXT_TYPE)

    def _transactions_route(
        self,
        method: str,
        p: List[str],
        query: Dict[str, List[str]],
        body: Optional[bytes],
        only: Callable[[str], None],
    ) -> Any:
        n = len(p)
        if p == ["transactions", "broadcast"]:
            only("POST")
            return self._broadcast(body or b"")
        if n == 5 and p[1] == "address" and p[3] == "limit":
            only("GET")
            return self._by_address(p[2], p[4], query.get("after", [None])[0])
        if n == 3 and p[1] == "info":
            only("GET")
            return self._info(p[2])
        if p == ["transactions", "unconfirmed"]:
            only("GET")
            return [dict(tx) for tx in self._utx.values()]
        if p == ["transactions", "unconfirmed", "size"]:
            only("GET")
            return {"size": len(self._utx)}
        if n == 4 and p[1:3] == ["unconfirmed", "info"]:
            only("GET")
            tx = self._utx.get(p[3])
            if tx is None:
                if self.fork == "0bs":
                    raise ApiError(404, {"status": "error", "details": "Transaction is not in UTX"})
                raise _err(404, 311, "transactions does not exist")
            return dict(tx)
        if p == ["transactions", "status"] and self.fork != "0bs":
            if method not in ("GET", "POST"):
                only("GET")
            ids = self._post_list(body, "ids") if method == "POST" else query.get("id", [])
            return self._status(ids)
        raise ApiError(404, NOT_FOUND_TEXT, TEXT_TYPE)

    def _int(self, text: str) -> int:
        if not re.fullmatch(r"\d{1,9}", text):
            raise ApiError(404, NOT_FOUND_TEXT, TEXT_TYPE)
        return int(text)

    def _block_at(self, height: int) -> Block:
        for block in self._blocks:
            if block.height == height:
                return block
        raise _err(404, 301, "block does not exist")

    def _post_list(self, body: Optional[bytes], key: str) -> List[str]:
        try:
            obj = json.loads(body or b"")
        except ValueError as e:
            raise _wrong_json(cause=str(e)) from None
        if isinstance(obj, list):
            items = obj
        elif isinstance(obj, dict) and isinstance(obj.get(key), list):
            items = obj[key]
        else:
            raise _wrong_json(missing=[key])
        if not all(isinstance(i, str) for i in items):
            raise _wrong_json(expected={key: "jsstring"})
        return items

    def _broadcast(self, body: bytes) -> Dict[str, Any]:
        try:
            raw = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise _wrong_json(cause="com.fasterxml.jackson.core.JsonParseException: %s" % e) from None
        node_tx = self._accept(raw)
        if self.auto_include and node_tx["id"] in self._utx:
            del self._utx[node_tx["id"]]
            self._include(node_tx)
        log.info("broadcast accepted: type %d id %s", node_tx["type"], node_tx["id"])
        return node_tx

    def _by_address(self, address: str, limit_text: str, after: Optional[str]) -> List[List[Dict[str, Any]]]:
        self._check_address(address)
        limit = self._int(limit_text)
        if limit > self.tx_limit:
            raise _err(400, 10, "Too big sequence requested")
        if after is not None and not _b58_ok(after, 32):
            raise _err(400, 199, "Unable to decode transaction id %s" % after)
        records: Iterable[Record] = (
            self._records[i] for b in reversed(self._blocks) for i in reversed(b.txs)
        )
        if after is not None:
            anchor = self._shown(after)
            if anchor is not None:
                key = (anchor.height, anchor.position)
                records = (r for r in records if (r.height, r.position) < key)
            elif self.after_unknown == "zbs":
                raise _err(400, 199, "Transaction %s does not exist" % after)
            else:
                liquid = self._blocks[-1].height
                records = (r for r in records if r.height < liquid)
        out: List[Dict[str, Any]] = []
        if after is None:
            out.extend(self._flood_items(address, limit))
            out.extend(json.loads(json.dumps(item)) for a, item in reversed(self._lies) if a == address)
            del out[limit:]
        lied = {i["id"] for i in out}
        for rec in records:
            if len(out) >= limit:
                break
            if self._involves(rec.tx, address) and rec.id not in lied and rec.id not in self._withheld:
                out.append(self._confirmed_json(rec, compact_for=address))
        return [out]

    def _shown(self, tx_id: str) -> Optional[Record]:
        """The record of a transaction in a block, None for one unknown or withheld."""
        return None if tx_id in self._withheld else self._records.get(tx_id)

    def _info(self, tx_id: str) -> Dict[str, Any]:
        if not _b58_ok(tx_id, 32):
            raise _err(400, 4001, "invalid transaction id: %s" % tx_id)
        rec = self._shown(tx_id)
        if rec is None:
            if self.fork == "0bs":
                raise ApiError(404, {"status": "error", "details": "Transaction is not in blockchain"})
            raise _err(404, 311, "transactions does not exist")
        return self._confirmed_json(rec)

    def _status(self, ids: List[str]) -> List[Dict[str, Any]]:
        if not ids:
            raise _err(400, 199, "Empty request")
        if len(ids) > self.tx_limit:
            raise _err(400, 10, "Too big sequence requested")
        bad = [i for i in ids if not _b58_ok(i, 32)]
        if bad:
            raise _err(400, 116, "Request contains invalid IDs. %s" % ", ".join(bad), ids=bad)
        out = []
        for tx_id in ids:
            rec = self._shown(tx_id)
            if rec is not None:
                out.append(
                    {
                        "status": "confirmed",
                        "height": rec.height,
                        "confirmations": self.height - rec.height,
                        "applicationStatus": rec.status,
                        "spentComplexity": rec.complexity,
                        "id": tx_id,
                    }
                )
            elif tx_id in self._utx:
                out.append({"status": "unconfirmed", "id": tx_id})
            else:
                out.append({"status": "not_found", "id": tx_id})
        return out

    def _asset_details(self, asset_id: str) -> Dict[str, Any]:
        if not _b58_ok(asset_id, 32):
            raise _err(400, 4007, "Invalid asset id")
        info = self._assets.get(asset_id)
        if info is None:
            raise _err(404, 313, "Asset does not exist: %s" % asset_id)
        tx = info["tx"]
        if self.fork == "0bs":
            return {
                "assetId": asset_id,
                "issueHeight": info["height"],
                "issueTimestamp": tx["timestamp"],
                "issuer": tx["sender"],
                "name": tx["name"],
                "description": tx["description"],
                "decimals": tx["decimals"],
                "reissuable": tx["reissuable"],
                "quantity": tx["quantity"],
                "scripted": info["scripted"],
                "minSponsoredAssetFee": None,
            }
        return {
            "assetId": asset_id,
            "issueHeight": info["height"],
            "issueTimestamp": tx["timestamp"],
            "issuer": tx["sender"],
            "issuerPublicKey": tx["senderPublicKey"],
            "name": tx["name"],
            "description": tx["description"],
            "decimals": tx["decimals"],
            "reissuable": tx["reissuable"],
            "quantity": tx["quantity"],
            "scripted": info["scripted"],
            "minSponsoredAssetFee": None,
            "originTransactionId": asset_id,
            "sequenceInBlock": info["position"],
        }


# =============================================================================
# 4. The HTTP front
# =============================================================================


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: Tuple[str, int], handler: type, node: FakeNode):
        self.node = node
        self._conns: set = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up before its answer (a daemon stopping mid-request) is normal, not a traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("client %s:%s hung up before its answer: %s", *client_address, sys.exc_info()[1])
            return
        super().handle_error(request, client_address)

    def close_all_connections(self) -> None:
        """Cut kept-alive connections so a stopped node answers nothing."""
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # http.server sends an answer's headers and body in two writes; with Nagle on, the body waits
    # for the client's delayed ACK (up to 40 ms a request on Linux). A real node answers in one go.
    disable_nagle_algorithm = True
    server_version = "FakeWavesNode/1.0"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.info("%s", format % args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        node = self.server.node
        split = urlsplit(self.path)
        path = split.path
        query = parse_qs(split.query)
        body = None
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            body = self.rfile.read(length)
        node.requests.append(Request(method, path, split.query, time.time()))
        fault = node._take_fault(path)
        if fault is not None and self._play_fault(fault):
            return
        if node._rate_limited(path):
            self._send(429, _nginx_page(429, "Too Many Requests").encode(), HTML_TYPE)
            return
        pool = node.pool
        if pool is None or method != "GET":
            if pool is not None and path == "/transactions/broadcast":
                verdict, wait = pool.admit(path)
                if verdict != "ok":
                    self._send(
                        int(verdict), _nginx_page(int(verdict), POOL_REASONS[verdict]).encode(), HTML_TYPE
                    )
                    return
                try:
                    if wait:
                        node._stopping.wait(wait)
                    self._answer(node, method, path, query, body)
                finally:
                    pool.leave(path)
                return
            self._answer(node, method, path, query, body)
            return
        verdict, wait = pool.admit(path)
        if verdict != "ok":
            self._send(int(verdict), _nginx_page(int(verdict), POOL_REASONS[verdict]).encode(), HTML_TYPE)
            return
        try:
            if wait:
                node._stopping.wait(wait)  # nginx holds the request in its burst queue
            hit = pool.cached(path, self.path)
            if hit is not None:
                status, data, ctype, padded = hit
                self._send(status, data, ctype, compress=padded)
                return
            pool.keep(path, self.path, *self._answer(node, method, path, query, body))
        finally:
            pool.leave(path)

    def _answer(
        self, node: FakeNode, method: str, path: str, query: Dict[str, List[str]], body: Optional[bytes]
    ) -> Tuple[int, bytes, str, bool]:
        """The node's own answer to a request (what the pool forwards), sent; returned for its cache
        (status, body, content type, padded by pad())."""
        large = "large-significand-format=string" in (self.headers.get("Accept") or "")
        try:
            result = node._route(method, path, query, body, large)
            status, payload, ctype, headers = 200, result, JSON_TYPE, {}
        except ApiError as e:
            status, payload, ctype, headers = e.status, e.body, e.content_type, e.headers
        except Exception:  # a bug in the fake: answer like the node's unknown error, and say so
            log.exception("fake node failed on %s %s", method, self.path)
            status, payload, ctype, headers = 500, {"error": 0, "message": "Error is unknown"}, JSON_TYPE, {}
        if path == "/transactions/broadcast" and method == "POST":
            try:
                posted = json.loads(body or b"")
            except ValueError:
                posted = (body or b"").decode("utf-8", "replace")
            node.broadcasts.append(Broadcast(posted, status, payload, time.time()))
            if status != 200:
                log.info("broadcast rejected: %d %s", status, payload)
        pad = node._take_pad(path) if status == 200 and not isinstance(payload, str) else None
        if pad is not None:
            data = _padded(payload, pad.items)
            log.debug("padded %s with %d empty objects", self.path, pad.items)
        else:
            data = (_compact(payload) if not isinstance(payload, str) else payload).encode("utf-8")
        self._send(status, data, ctype, headers, compress=pad is not None)
        return status, data, ctype, pad is not None

    def _send(
        self,
        status: int,
        data: bytes,
        ctype: str,
        headers: Optional[Dict[str, str]] = None,
        *,
        compress: bool = False,
    ) -> None:
        """Answer; compress: gzip the body when the request's Accept-Encoding takes it."""
        if compress and _accepts_gzip(self.headers.get("Accept-Encoding")):
            data = gzip.compress(data, 6, mtime=0)
            headers = {**(headers or {}), "Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _play_fault(self, fault: Fault) -> bool:
        """Answer with the fault; True when the request is done."""
        kind = fault.kind
        log.info("fault %s on %s", kind, self.path)
        if kind == "500":
            self._send(500, _nginx_page(500, "Internal Server Error").encode(), HTML_TYPE)
        elif kind == "503":
            self._send(503, SLOW_TEXT.encode(), TEXT_TYPE)
        elif kind == "429":
            self._send(
                429,
                _nginx_page(429, "Too Many Requests").encode(),
                HTML_TYPE,
                {"Retry-After": str(fault.retry_after)},
            )
        elif kind == "garbage":
            self._send(200, b'{"height": 12,, <html>oops', JSON_TYPE)
        elif kind == "truncated":
            data = _compact({"height": self.server.node.height, "padding": "x" * 64}).encode()
            self.send_response(200)
            self.send_header("Content-Type", JSON_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self._close()
        elif kind == "hang":
            self.server.node._stopping.wait(fault.hang_seconds)
            self._close()
        elif kind == "reset":
            self._abort()
        elif kind == "gzip_bomb":
            self._send(200, gzip_bomb(), JSON_TYPE, {"Content-Encoding": "gzip"})
        elif kind == "nesting_bomb":
            self._send(200, b"[" * 100_000 + b"]" * 100_000, JSON_TYPE)
        return True

    def _close(self) -> None:
        """Close the connection in order (FIN), answering nothing more."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _abort(self) -> None:
        """Close the connection with a TCP reset, answering nothing more."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


# =============================================================================
# 5. Standalone: an offline rehearsal node
# =============================================================================


def _parse_fund(text: str, chain_id: str) -> Tuple[str, int]:
    address, sep, amount = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError("--fund takes ADDRESS=AMOUNT (AMOUNT in whole WAVES), not %r" % text)
    try:
        reference.parse_address(address, chain_id)
    except reference.Invalid as e:
        raise argparse.ArgumentTypeError("--fund %s: %s" % (address, e)) from None
    try:
        wavelets = round(float(amount) * 10**8)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "--fund %s: amount %r is not a number of WAVES" % (address, amount)
        ) from None
    return address, wavelets


def _throwaway_seed_phrase() -> str:
    """15 random words of the BIP-39 English list (what Waves wallets use), for the demo treasury."""
    import random

    from mnemonic import Mnemonic

    words = Mnemonic("english").wordlist
    rng = random.SystemRandom()
    return " ".join(rng.choice(words) for _ in range(15))


def _ticker(stop: threading.Event, interval: float, action: Callable[[], Any]) -> threading.Thread:
    def run() -> None:
        while not stop.wait(interval):
            try:
                action()
            except Exception:
                log.exception("fake node timer failed")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="A loopback Waves node for offline rehearsals (127.0.0.1 only).")
    ap.add_argument("--port", type=int, default=6869, help="port on 127.0.0.1 (default 6869, 0 = any)")
    ap.add_argument("--chain", default="T", help="chain id character (default T)")
    ap.add_argument("--fork", choices=("waves", "0bs"), default="waves", help="which node to play")
    ap.add_argument(
        "--fund",
        action="append",
        default=[],
        metavar="ADDRESS=AMOUNT",
        help="credit ADDRESS with AMOUNT whole WAVES at start (repeatable)",
    )
    ap.add_argument(
        "--block-interval", type=float, default=60.0, help="seconds between key blocks (0 = never)"
    )
    ap.add_argument(
        "--micro-interval",
        type=float,
        default=2.0,
        help="seconds between microblocks taking the UTX pool (0 = include at once)",
    )
    ap.add_argument(
        "--after-unknown",
        choices=("waves", "zbs"),
        default=None,
        help="answer to an unknown ?after= id (default: as the fork does)",
    )
    ap.add_argument(
        "--demo",
        action="store_true",
        help="issue an IoT-Light token from a throwaway treasury seed and print it",
    )
    ap.add_argument(
        "--demo-seed-file", metavar="PATH", help="with --demo: also write the treasury seed there (0600)"
    )
    ap.add_argument(
        "--pool",
        action="store_true",
        help="play the public mainnet pool in front of the node: its per-IP rate and connection "
        "limits (429/503 like nginx) and its answer cache",
    )
    ap.add_argument(
        "--pool-shared-zone",
        action="store_true",
        help="with or without --pool: play the pool's stricter reading, every 20 r/s route in one "
        "shared limit_req zone, answered without queueing (nodelay)",
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="also log debug details")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        funds = [_parse_fund(f, args.chain) for f in args.fund]
    except argparse.ArgumentTypeError as e:
        ap.error(str(e))
    node = FakeNode(
        args.chain,
        port=args.port,
        fork=args.fork,
        auto_include=args.micro_interval <= 0,
        after_unknown=args.after_unknown,
        pool=Pool(shared_zone=True, nodelay=True) if args.pool_shared_zone else Pool() if args.pool else None,
    )
    for address, wavelets in funds:
        node.fund(address, waves=wavelets)
        print("funded %s with %d wavelets" % (address, wavelets), flush=True)
    if args.demo:
        seed = _throwaway_seed_phrase()
        keys = reference.keys_from_seed(seed)
        treasury = keys.address(args.chain)
        node.fund(treasury, waves=1000 * 10**8)
        asset = node.issue_asset(
            keys, "IoT-Light", 2, 100_000_000, description="Light for the fake node demo"
        )
        print("demo treasury (THROWAWAY seed, for this fake node only): %s" % seed, flush=True)
        print("demo treasury address: %s (1000 WAVES, 1000000.00 IoT-Light)" % treasury, flush=True)
        print("demo asset id: %s" % asset, flush=True)
        if args.demo_seed_file:
            fd = os.open(args.demo_seed_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(seed + "\n")
            print("demo treasury seed written to %s" % args.demo_seed_file, flush=True)
    node.start()
    print(
        "fake %s node for chain %s at %s (height %d)" % (args.fork, args.chain, node.url, node.height),
        flush=True,
    )
    stop = threading.Event()

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    if args.block_interval > 0:
        _ticker(stop, args.block_interval, node.mine)
    if args.micro_interval > 0:
        _ticker(stop, args.micro_interval, node.include_utx)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
