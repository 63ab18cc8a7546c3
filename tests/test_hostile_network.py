"""What a lying node, a spammer and a node of another network still do to the daemon.

A node of another network among node.urls is left aside with one warning line and never gets a
broadcast; its refusals fail nothing. An answer denser than its route needs is refused before it
is parsed. A flood of made-up transfers costs a bounded number of log lines, events and rows, and
a real payment is still credited. An alias once known is never forgotten. All in-process, on the
virtual clock (tests/scenario.py), with the fake node's switches (tests/tools/fakenode.py) played
through httpx.MockTransport by Network below.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from typing import Any, Dict, List

import httpx
import pytest
from fakenode import (
    HTML_TYPE,
    JSON_TYPE,
    SLOW_TEXT,
    TEXT_TYPE,
    Request,
    _compact,
    _nginx_page,
    _padded,
    gzip_bomb,
)
from harness import read_state
from scenario import InProcessNode, Scenario, Stamped

import iotlight

T_URL, W_URL = "http://node-a.invalid", "http://node-w.invalid"
BOMB_BYTES = 32 * 1024 * 1024  # what a gzip bomb inflates to here: far past every answer cap


# --- the fake nodes' HTTP-front switches, in-process ----------------------------------------------
# (a helper for this group's files; tests/scenario.py's InProcessNode plays no fail()/hostile()
# faults and no pad(), and answers one host)


class Chunks(httpx.AsyncByteStream):
    """A body httpx streams chunk by chunk, as from the network; `sent` counts what was handed out."""

    def __init__(self, data: bytes, size: int = 16384, kind: str = ""):
        self.data, self.size, self.sent, self.kind = data, size, 0, kind

    async def __aiter__(self):
        for i in range(0, len(self.data), self.size):
            self.sent += self.size
            yield self.data[i : i + self.size]


class Network:
    """In-process fake nodes by host name for one NodeClient (httpx.MockTransport), with the fake
    node's HTTP-front switches played as its real server plays them: fail() and hostile() faults
    (500, 503, 429, garbage, the gzip and nesting bombs) and pad() (gzipped, streamed). The
    InProcessNode's own hang()/refuse() still apply. `streams`: the bodies sent as streams (their
    `kind`: the fault's, or "pad")."""

    def __init__(self, nodes: Dict[str, InProcessNode]):
        self.nodes = nodes
        self.streams: List[Chunks] = []
        self.packed: Dict[Any, bytes] = {}  # (answer, items) -> the padded answer gzipped: made once

    @classmethod
    def around(cls, s: Scenario, **others: InProcessNode) -> "Network":
        """The Scenario's node at every host of its node.urls but those named in `others`
        (host -> node); to be called before the Scenario starts."""
        nodes = {httpx.URL(u).host: s.node for u in s.config.node_urls}
        nodes.update(others)
        net = cls(nodes)
        s.node.transport = net.transport  # the Scenario builds its client from this
        return net

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def _stream(self, kind: str, data: bytes, headers: Dict[str, str]) -> httpx.Response:
        body = Chunks(data, kind=kind)
        self.streams.append(body)
        return httpx.Response(200, headers=headers, stream=body)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        node = self.nodes[request.url.host]
        chain, path = node.chain, request.url.path
        fault = chain._take_fault(path)
        if fault is not None:
            chain.requests.append(
                Request(request.method, path, request.url.query.decode(), node.clock.time())
            )
            return self._fault(fault)
        response = await node._handle(request)
        if response.status_code == 200 and response.headers.get("Content-Type") == JSON_TYPE:
            pad = chain._take_pad(path)
            if pad is not None:
                key = (response.content, pad.items)
                if key not in self.packed:
                    self.packed.clear()
                    self.packed[key] = gzip.compress(
                        _padded(json.loads(response.content), pad.items), 1, mtime=0
                    )
                data = self.packed[key]
                return self._stream("pad", data, {"Content-Type": JSON_TYPE, "Content-Encoding": "gzip"})
        return response

    def _fault(self, fault: Any) -> httpx.Response:
        kind = fault.kind
        if kind == "503":
            return httpx.Response(503, content=SLOW_TEXT.encode(), headers={"Content-Type": TEXT_TYPE})
        if kind in ("500", "429"):
            headers = {"Retry-After": str(fault.retry_after)} if kind == "429" else {}
            page = _nginx_page(int(kind), "Error").encode()
            return httpx.Response(
                int(kind), content=page, headers=dict(headers, **{"Content-Type": HTML_TYPE})
            )
        if kind == "garbage":
            return httpx.Response(
                200, content=b'{"height": 12,, <html>oops', headers={"Content-Type": JSON_TYPE}
            )
        if kind == "gzip_bomb":
            return self._stream(
                kind, gzip_bomb(BOMB_BYTES), {"Content-Type": JSON_TYPE, "Content-Encoding": "gzip"}
            )
        if kind == "nesting_bomb":
            return self._stream(kind, b"[" * 100_000 + b"]" * 100_000, {"Content-Type": JSON_TYPE})
        raise NotImplementedError("fault %r is not played in-process" % kind)


def ignored_rows(s: Scenario) -> List[Any]:
    """The state file's `ignored` table: (id, reason)."""
    return read_state(s.folder / "iotlight.db", "SELECT id, reason FROM ignored")


def lines(caplog: Any, text: str, level: int = logging.INFO) -> List[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level and text in r.getMessage()]


@pytest.fixture(autouse=True)
def quiet_httpx():
    logging.getLogger("httpx").setLevel(logging.WARNING)


# --- 1. a node of another network among node.urls --------------------------------------------------


@pytest.mark.parametrize("header", ["answers", "fails"])
def test_a_node_of_another_network_is_named_once_gets_no_broadcast_and_fails_nothing(
    tmp_path, caplog, header
):
    """node.urls = [a T node, a W node], the T node down for ten minutes while a payment (with a
    refund) and a press wait: the W node is named in one warning line; it gets no broadcast and
    nothing but its last header, looked at again at most every FOREIGN_RECHECK (when its last block
    tells its network), or is left aside at its first refusal (when that route fails); nothing is
    marked failed, the receipt, the press and the refund all land on the T chain once it is back,
    and the T node is asked again on its own back-off meanwhile and after."""
    caplog.set_level(logging.INFO)
    s = Scenario(
        tmp_path,
        node__urls=[T_URL, W_URL],
        node__poll_interval=1.0,
        payment__refund="excess",
        payment__max_seconds=60,
    )
    w = InProcessNode(s.clock, "W")
    if header == "fails":
        w.refuse(503, "/blocks/headers/last")  # its network cannot be learnt: it is asked, and refuses
    Network.around(s, **{"node-w.invalid": w})
    t = s.node.chain
    with s:
        s.run_for(30)
        down_from = s.clock.time()
        s.node.refuse(503, seconds=600)
        paid = s.pay(120)  # 60 s over payment.max_seconds: 60 s of tokens go back
        s.hw.press("up")
        s.run_for(600)
        back = s.clock.time()
        s.run_until(
            lambda: any(tx["type"] == 4 and tx["sender"] == s.address for tx in t.all_transactions()),
            300,
            "the refund in a block",
        )
        t.mine(iotlight.REORG_MARGIN)  # a refund counts as confirmed once a fork cannot replace its block
        s.run_until(
            lambda: paid in s.credited() and s.store.outbox_counts() == {"confirmed": 3},
            300,
            "the receipt, the press and the refund confirmed",
        )
        s.run_for(300)
        assert s.store.outbox_counts() == {"confirmed": 3}, "nothing failed, nothing sent twice"
        entries = t.data_entries(s.address)
        assert "served_" + paid in entries and entries["joystick_count"]["value"] == 1
        refunds = [tx for tx in t.all_transactions() if tx["type"] == 4 and tx["sender"] == s.address]
        assert [(r["recipient"], r["amount"]) for r in refunds] == [(s.treasury.address("T"), 6000)]
        end = s.clock.time()
    asked_w = [r for r in w.chain.requests if r.path != "/blocks/headers/last"]
    if header == "answers":
        assert asked_w == [] and w.chain.broadcasts == [], "asked nothing but its network"
        looks = [r.time for r in w.chain.requests]
        recheck = iotlight.NodeClient.FOREIGN_RECHECK
        assert looks[0] - down_from <= 2.0, "its network learnt when it was first reached"
        assert all(b - a >= recheck for a, b in zip(looks, looks[1:])), (
            "looked at again at most every recheck"
        )
        assert len(looks) <= 1 + (end - looks[0]) / recheck
    else:
        assert asked_w, "this variant makes the W node refuse"
        assert asked_w[-1].time - asked_w[0].time <= 1.0, "left aside at its first refusal"
        assert all(b.status == 400 for b in w.chain.broadcasts) and len(w.chain.broadcasts) <= 1
    assert len(lines(caplog, "node-w.invalid", logging.WARNING)) == 1
    assert "left aside" in lines(caplog, "node-w.invalid", logging.WARNING)[0]
    asked_t = [r.time for r in t.requests if r.time >= down_from]
    gaps = [b - a for a, b in zip(asked_t, asked_t[1:])]
    assert max(gaps) <= 61.0, "the T node is asked again on its own back-off (at most 60 s)"
    assert min(x for x in asked_t if x >= back) - back <= 61.0, "asked again within its back-off once back"


# --- 2. dense answers ------------------------------------------------------------------------------


class JsonSpy:
    """iotlight's json module, with what json.loads was given kept (`dense`: held the padding)."""

    def __init__(self):
        self.dense: List[bool] = []

    def loads(self, s: Any, **kw: Any) -> Any:
        self.dense.append((b"{},{}" if isinstance(s, bytes) else "{},{}") in s)
        return json.loads(s, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(json, name)


@pytest.fixture
def spy(monkeypatch):
    spy = JsonSpy()
    monkeypatch.setattr(iotlight, "json", spy)
    return spy


def test_parse_answer_counts_containers_and_values_on_the_bytes_before_parsing(spy):
    """parse_answer refuses an answer with more containers or values than its cap allows before
    json.loads sees it; one at the cap parses."""
    cap = iotlight.AnswerCap(1 << 20, 10, 30)
    assert iotlight.parse_answer(b"[" + b"{}," * 8 + b"{}]", cap) == [{}] * 9  # 10 containers
    with pytest.raises(iotlight.BadAnswer, match="more JSON values than its route needs"):
        iotlight.parse_answer(b"[" + b"{}," * 9 + b"{}]", cap)
    assert iotlight.parse_answer(b"[" + b"1," * 29 + b"1]", cap) == [1] * 30  # 1 container, 29 commas
    with pytest.raises(iotlight.BadAnswer, match="more JSON values than its route needs"):
        iotlight.parse_answer(b"[" + b"1," * 30 + b"1]", cap)
    assert spy.dense == [True, False], "only the two answers at the cap were parsed"
    for cap in (iotlight.TINY, iotlight.SMALL):
        with pytest.raises(iotlight.BadAnswer, match="more JSON values"):
            iotlight.parse_answer(b'{"balance": 1, "padding": [' + b"{}," * cap.values + b"{}]}", cap)
    assert len(spy.dense) == 2


def dense_answer(body: bytes, items: int) -> bytes:
    """A right answer with `items` empty objects added: in its (first) object, as the fake node's
    pad() does, or, in a list of strings (the aliases), as a first element."""
    answer = json.loads(body)
    padded = _padded(answer, items)
    if padded == _compact(answer).encode():
        padded = b"[[" + b"{}," * (items - 1) + b"{}]," + body[1:]
    return padded


ROUTES = {  # the typed method, the cap its answer gets ("large": node.max_answer_bytes)
    "height": ("TINY", lambda c, f: c.height()),
    "asset_balance": ("TINY", lambda c, f: c.asset_balance(f["address"], f["asset"])),
    "balance": ("TINY", lambda c, f: c.balance(f["address"])),
    "address_transactions": ("large", lambda c, f: c.address_transactions(f["address"], 50)),
    "block (last)": ("large", lambda c, f: c.block()),
    "block (at)": ("large", lambda c, f: c.block(2)),
    "block_id": ("TINY", lambda c, f: c.block_id(2)),
    "last_header": ("TINY", lambda c, f: c.last_header()),
    "asset_details": ("TINY", lambda c, f: c.asset_details(f["asset"])),
    "aliases": ("SMALL", lambda c, f: c.aliases(f["address"])),
    "alias_address": ("TINY", lambda c, f: c.alias_address("lamp")),
    "data_entry": ("SMALL", lambda c, f: c.data_entry(f["address"], "k")),
    "data_entries (keys)": ("SMALL", lambda c, f: c.data_entries(f["address"], ["k"])),
    "data_entries (matches)": ("large", lambda c, f: c.data_entries(f["address"], matches="k.*")),
    "transaction": ("SMALL", lambda c, f: c.transaction(f["paid"])),
    "statuses": ("SMALL", lambda c, f: c.statuses([f["paid"]])),
    "broadcast": ("SMALL", lambda c, f: c.broadcast(f["txs"].pop())),
    "node_time_ms": ("TINY", lambda c, f: c.node_time_ms()),
}


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_each_typed_route_refuses_an_answer_denser_than_its_cap_before_parsing(tmp_path, spy, route):
    """Each typed NodeClient method takes the node's right answer, and refuses the same answer padded
    past its route's AnswerCap value count (empty objects added, under its byte cap) as a bad
    answer, without parsing it."""
    s = Scenario(tmp_path, node__urls=[T_URL])
    try:
        chain = s.node.chain
        chain.add_alias(s.address, "lamp")
        chain.data(s.keys, [{"key": "k", "type": "integer", "value": 1}])
        paid = s.pay(1)
        txs = [chain.make_transfer(s.treasury, s.address, n, asset_id=s.asset) for n in (1, 2)]
        chain.mine()
        facts = {"address": s.address, "asset": s.asset, "paid": paid, "txs": txs}
        padding = {"on": 0}

        async def handler(request):
            response = await s.node._handle(request)
            if padding["on"] and response.status_code == 200:
                return httpx.Response(200, content=dense_answer(response.content, padding["on"]))
            return response

        c = iotlight.NodeClient(
            [T_URL], timeout=10.0, chain_id="T", clock=s.clock, transport=httpx.MockTransport(handler)
        )
        name, call = ROUTES[route]
        cap = c.large if name == "large" else getattr(iotlight, name)

        async def go():
            right = await call(c, facts)
            assert right not in (None, [], {}), "the right answer is taken"
            padding["on"] = cap.values + 1
            assert len(dense_answer(b'{"a":1}', padding["on"])) < cap.size
            with pytest.raises(iotlight.NodeError, match="more JSON values than its route needs"):
                await call(c, facts)
            await c.aclose()

        s.loop.run_until_complete(go())
        assert spy.dense and not any(spy.dense), "the dense answer never reached json.loads"
    finally:
        s.close()


def padded_client(tmp_path, **options):
    """(Scenario not started, its Network, a NodeClient of it at T_URL)."""
    s = Scenario(tmp_path, node__urls=[T_URL])
    net = Network.around(s)
    c = iotlight.NodeClient(
        [T_URL], timeout=10.0, chain_id="T", clock=s.clock, transport=net.transport(), **options
    )
    return s, net, c


def test_the_balance_route_refuses_8_MiB_of_padding_by_its_size_and_reads_no_further(tmp_path, spy, caplog):
    """The balance answer padded with 8 MiB of empty objects (gzipped: a few KB sent) is refused
    once it inflates past the balance route's 16 KiB, after its first chunks, never parsed."""
    s, net, c = padded_client(tmp_path)
    try:
        s.node.chain.pad(r"^/assets/balance/", 2_800_000)

        async def go():
            with pytest.raises(iotlight.NodeError, match="larger than 16384 bytes decompressed"):
                await c.asset_balance(s.address, s.asset)
            await c.aclose()

        s.loop.run_until_complete(go())
        assert [b.kind for b in net.streams] == ["pad"] and net.streams[0].sent <= 2 * 16384
        assert not any(spy.dense)
        assert len(lines(caplog, "is failing: bad answer to /assets/balance/", logging.WARNING)) == 1
    finally:
        s.close()


@pytest.mark.parametrize(
    "max_bytes, refused", [(16 << 20, "more JSON values"), (8 << 20, "larger than 8388608 bytes")]
)
def test_the_list_route_refuses_2_8_million_empty_objects(tmp_path, spy, max_bytes, refused):
    """A listing page padded with 2.8 million empty objects is refused by its value count (with
    node.max_answer_bytes raised to 16 MiB) or by its size (the default 8 MiB), never parsed; the
    list route is left aside on its back-off (not asked meanwhile), and once that ran out the same
    page unpadded is read."""
    s, net, c = padded_client(tmp_path, max_answer_bytes=max_bytes)
    try:
        paid = s.pay(1)
        s.node.chain.pad(r"^/transactions/address/", 2_800_000, count=1)

        async def go():
            with pytest.raises(iotlight.NodeError, match=refused):
                await c.address_transactions(s.address, 50)
            asked = len(s.node.chain.requests)
            with pytest.raises(
                iotlight.NodeError, match="every node gave bad answers to /transactions/address/"
            ):
                await c.address_transactions(s.address, 50)
            assert len(s.node.chain.requests) == asked, "not asked while its route is aside"
            s.clock.advance(c.throttled[(T_URL, "list")] - s.clock.monotonic())
            page = await c.address_transactions(s.address, 50)
            await c.aclose()
            return page

        assert paid in [tx["id"] for tx in s.loop.run_until_complete(go())]
        assert [b.kind for b in net.streams] == ["pad"]
        assert spy.dense and not any(spy.dense)
    finally:
        s.close()


RED, GREEN = iotlight.STATUS_COLORS["node_down"], iotlight.STATUS_COLORS["ok"]


def padded_balance(tmp_path):
    """A Scenario on T_URL (its Network played) polling every second; not started."""
    s = Scenario(tmp_path, node__poll_interval=1.0, node__urls=[T_URL])
    Network.around(s)
    return s


def test_bad_balance_answers_tell_the_node_not_ok_and_the_other_routes_go_on(tmp_path):
    """Every token balance answer padded past its cap for nearly seven minutes: the daemon hears the
    node is not ok, the balance is asked far less than every poll, the node's other routes go on (a
    press's Data transaction lands), and its failing is one WARNING line (with one "answers again")
    at most every five minutes; once the answers are right the polls go on every second."""
    s = padded_balance(tmp_path)
    chain = s.node.chain
    with s, Stamped(s.clock, "iotlight.node") as log:
        s.run_for(30)
        assert s.hw.frames[-1][1][63] == GREEN
        first, told = len(chain.requests), len(s.told)
        chain.pad(r"^/assets/balance/", 2_800_000)
        s.hw.press("up")
        s.run_until(lambda: s.store.outbox_counts() == {"confirmed": 1}, 60, "the press's Data transaction")
        s.run_for(400)
        polls = [r for r in chain.requests[first:] if r.path.startswith("/assets/balance/")]
        assert polls and len(polls) <= 30, "the balance is asked far less than every poll: %d" % len(polls)
        down = [f for _, kind, f in s.told[told:] if kind == "node_status" and not f["ok"]]
        assert down and down[0]["error"].startswith("bad answer to /assets/balance/"), "told not ok"
        failing = [t for t, m in log.lines if "is failing: bad answer to /assets/balance/" in m]
        again = [t for t, m in log.lines if m.endswith(" answers again")]
        assert 1 <= len(failing) <= 2 and all(b - a >= 300.0 for a, b in zip(failing, failing[1:]))
        assert len(again) <= len(failing)
        assert [m for _, m in log.lines if "is failing" in m and "/assets/balance/" not in m] == []
        chain.clear_faults()
        mark = len(chain.requests)
        s.run_for(400)
        polls = [r for r in chain.requests[mark:] if r.path.startswith("/assets/balance/")]
        assert len(polls) >= 100, "polled about every second again once the answers are right"
        assert s.hw.frames[-1][1][63] == GREEN and s.daemon.node_state["ok"] is True


def test_bad_token_balance_answers_are_asked_again_on_a_growing_back_off(tmp_path):
    """Every token balance answer padded past its cap (the coin balance right): the token balance is
    asked again on a growing back-off, each wait at least half a gap that doubles from 1 s to 300 s."""
    s = padded_balance(tmp_path)
    chain = s.node.chain
    with s:
        s.run_for(30)
        since, first = s.clock.time(), len(chain.requests)
        chain.pad(r"^/assets/balance/", 2_800_000)
        s.run_for(600)
        polls = [r.time - since for r in chain.requests[first:] if r.path.startswith("/assets/balance/")]
    assert len(polls) >= 8
    for k, (a, b) in enumerate(zip(polls, polls[1:])):
        assert b - a >= min(300.0, 2.0**k) / 2, "the k-th wait: at least half of a gap doubling from 1 s"


def test_bad_balance_answers_show_the_red_status_pixel(tmp_path):
    """Every balance answer padded past its cap: the node is marked down, and the dark lamp shows the
    red node_down pixel while the balance answers are bad; green again once they are right."""
    s = padded_balance(tmp_path)
    chain = s.node.chain
    with s:
        s.run_for(30)
        assert s.hw.frames[-1][1][63] == GREEN
        chain.pad(r"^/assets/balance/", 2_800_000)
        s.run_until(lambda: s.hw.frames[-1][1][63] == RED, 120, "the red status pixel")
        chain.clear_faults()
        s.run_until(lambda: s.hw.frames[-1][1][63] == GREEN, 300, "the green status pixel again")


def test_the_daemon_keeps_polling_and_crediting_while_the_list_answers_are_padded(tmp_path, caplog):
    """The node pads every listing with 2.8 million empty objects: the list reads fail (the node is
    told failing), and the daemon still polls every second and credits each payment from the
    newest blocks within a few polls."""
    caplog.set_level(logging.INFO)
    s = Scenario(tmp_path, node__poll_interval=1.0, node__sweep_interval=5.0, node__urls=[T_URL])
    net = Network.around(s)
    chain = s.node.chain
    with s:
        before = s.pay(5)  # the listing holds an object to pad
        chain.mine()
        s.run_until(lambda: before in s.credited(), 30, "the payment before")
        s.run_for(30)
        chain.pad(r"^/transactions/address/", 2_800_000)
        since, first = s.clock.time(), len(chain.requests)
        for _ in range(3):
            paid = s.pay(5)
            chain.mine()
            assert s.run_until(lambda paid=paid: paid in s.credited(), 30, "the payment") <= 5.0
            s.run_for(20)
        window = s.clock.time() - since
        asked = chain.requests[first:]
        polls = [r for r in asked if r.path.startswith("/assets/balance/")]
        assert len(polls) >= 0.8 * window, "polled about every second"
        reads = [r for r in asked if r.path.startswith("/transactions/address/")]
        assert reads and len([b for b in net.streams if b.kind == "pad"]) == len(reads)
        assert lines(caplog, "is failing: bad answer to /transactions/address/", logging.WARNING)
        assert len(s.credited()) == 4


def test_a_list_route_whose_answers_keep_failing_is_read_less_often_and_told_once(tmp_path, caplog):
    """A node whose every listing is too dense (the other routes fine) backs off on that read, its
    waits growing (each at least half a gap that doubles from 1 s): over ten minutes the list is read
    far less than every few seconds, and the node's failing is told at most once every five minutes
    (each time with at most one "answers again"), not once per read."""
    caplog.set_level(logging.INFO)
    s = Scenario(tmp_path, node__poll_interval=1.0, node__list_rate=15.0, node__urls=[T_URL])
    Network.around(s)
    chain = s.node.chain
    with s:
        # node.max_answer_bytes = 65536 (Scenario builds its client with the default 8 MiB)
        s.client.large = iotlight.AnswerCap(65536, iotlight.LARGE_CONTAINERS, iotlight.LARGE_VALUES)
        paid = s.pay(1)  # the listing holds an object to pad
        chain.mine()
        s.run_until(lambda: paid in s.credited(), 30, "the payment")
        s.run_for(30)
        chain.pad(r"^/transactions/address/", 30_000)  # 90 KB: past node.max_answer_bytes 64 KiB
        s.daemon.watcher._want_list()  # what a sweep does
        first = len(chain.requests)
        with Stamped(s.clock, "iotlight.node") as log:
            s.run_for(600)
        reads = [r.time for r in chain.requests[first:] if r.path.startswith("/transactions/address/")]
        failing = [t for t, m in log.lines if "is failing: bad answer to /transactions/address/" in m]
        again = [t for t, m in log.lines if m.endswith(" answers again")]
        assert reads and failing, "the padded list reads failed"
        assert len(reads) <= 30, reads
        for k, (a, b) in enumerate(zip(reads, reads[1:])):
            assert b - a >= min(300.0, 2.0**k) / 2, "the k-th wait: at least half of a gap doubling from 1 s"
        assert [m for _, m in log.lines if "is failing" in m and "/transactions/address/" not in m] == []
        assert len(failing) <= 2 and all(b - a >= 300.0 for a, b in zip(failing, failing[1:])), failing
        assert len(again) <= len(failing), "one 'answers again' per line telling it failing, at most"


# --- 3. floods -------------------------------------------------------------------------------------


@pytest.mark.parametrize("list_rate", [15.0, 0.0])
def test_a_flood_of_made_up_payments_is_reported_within_the_budget_and_a_real_payment_still_lights(
    tmp_path, caplog, list_rate
):
    """Every listing topped with 50 fresh made-up payments for three and a half minutes: at most REPORT_BURST +
    REPORT_RATE a minute of them are reported one by one (a WARNING line, an `ignored` event to
    the Daemon, a row in the state file's `ignored` table, the same ones), the rest summed up in
    one line a minute that together count every one; a real payment made during the flood is
    credited within a few polls. With node.list_rate 15 (the default) and 0 (unlimited)."""
    caplog.set_level(logging.INFO)
    s = Scenario(tmp_path, node__poll_interval=1.0, node__sweep_interval=5.0, node__list_rate=list_rate)
    chain = s.node.chain
    with s, Stamped(s.clock, "iotlight.watcher") as log:
        told = []
        tell_ignored = s.daemon._on_ignored
        s.daemon._on_ignored = lambda **m: (told.append(m), tell_ignored(**m))
        s.run_for(30)
        flood_from = s.clock.monotonic()
        chain.flood(s.address, 50, s.asset)
        s.run_for(90)
        paid = s.pay(10)
        chain.mine()
        assert s.run_until(lambda: paid in s.credited(), 30, "the real payment") <= 5.0
        s.run_for(120)
        chain.flood(s.address, 0)
        s.run_until(lambda: s.daemon.watcher.list_task is None, 60, "the end of the read under way")
        # what the daemon did up to now (a read may still report while it stops)
        minutes = (s.clock.monotonic() - s.started) / 60
        flooded, flood_minutes = chain.flooded, (s.clock.monotonic() - flood_from) / 60
        unsummed = sum(s.daemon.watcher.ledger.unreported.values())
        rows, events = ignored_rows(s), list(told)
        one_by_one = lines(caplog, "lights nothing: not_verified", logging.WARNING)
        summaries = [(t, m) for t, m in log.lines if "too many to report one by one" in m]
        assert s.credited() == {paid: 1000}
    assert iotlight.REPORT_BURST + iotlight.REPORT_RATE * (flood_minutes - 1) <= len(one_by_one)
    assert len(one_by_one) <= iotlight.REPORT_BURST + iotlight.REPORT_RATE * minutes
    assert flooded >= 10 * len(one_by_one), "most were not reported one by one"
    assert len(events) == len(rows) == len(one_by_one) and {r[1] for r in rows} == {"not_verified"}
    assert sorted(m["id"] for m in events) == sorted(r[0] for r in rows)
    assert all(m["id"] in line for m, line in zip(events, one_by_one))
    assert flood_minutes - 1 <= len(summaries) <= flood_minutes + 1
    assert all(b[0] - a[0] >= 60.0 for a, b in zip(summaries, summaries[1:])), "one a minute"
    summed = sum(int(re.match(r"(\d+) more transfers", m).group(1)) for _, m in summaries)
    assert len(one_by_one) + summed + unsummed == flooded, "every made-up payment is told or counted"


# --- 4. aliases ------------------------------------------------------------------------------------


def test_an_empty_alias_answer_never_makes_the_daemon_forget_an_alias(tmp_path):
    """/alias/by-address answers [] once (a pool member still syncing): the alias learnt before is
    kept, and a payment to it right after is credited from the newest blocks, before a list read
    could have looked it up."""
    s = Scenario(tmp_path, node__poll_interval=1.0, node__sweep_interval=60.0)
    chain = s.node.chain
    alias = chain.add_alias(s.address, "lamp-one")
    with s:
        mine = s.daemon.watcher.ledger.mine
        s.run_until(lambda: alias in mine, 30, "the alias learnt")
        first = len(chain.requests)
        chain.glitch_aliases(1)
        s.run_until(
            lambda: any(r.path.startswith("/alias/by-address/") for r in chain.requests[first:]),
            120,
            "the empty alias answer",
        )
        assert alias in s.daemon.watcher.ledger.mine and s.store.aliases() == [alias]
        first = len(chain.requests)
        paid = chain.transfer(s.treasury, alias, 500, asset_id=s.asset)["id"]
        assert (
            s.run_until(lambda: paid in s.credited(), 30, "the payment to the alias")
            < iotlight.UNEXPLAINED_GRACE
        )
        assert not [r for r in chain.requests[first:] if r.path.startswith("/alias/by-alias/")]


def test_an_unknown_alias_of_ours_in_the_listing_is_resolved_and_its_payment_credited(tmp_path):
    """A payment to an alias the device got after it last read its aliases: the list read (the
    newest blocks leave the balance unexplained) asks /alias/by-alias for it, learns it is ours,
    keeps it in the state file and credits the payment, once."""
    s = Scenario(tmp_path, node__poll_interval=1.0)
    chain = s.node.chain
    with s:
        s.run_for(30)
        alias = chain.add_alias(s.address, "lamp-two")
        paid = chain.transfer(s.treasury, alias, 700, asset_id=s.asset)["id"]
        chain.mine()
        first = len(chain.requests)
        s.run_until(lambda: paid in s.credited(), 120, "the payment to the new alias")
        asked = [r.path for r in chain.requests[first:] if r.path.startswith("/alias/")]
        assert asked == ["/alias/by-alias/lamp-two"]
        assert alias in s.daemon.watcher.ledger.mine and s.store.aliases() == [alias]
        s.run_for(300)
        assert s.credited() == {paid: 700}


def test_a_known_alias_survives_a_restart(tmp_path):
    """An alias learnt once is kept in the state file: after a restart with /alias/by-address
    answering [] every time, a payment to it is credited from the newest blocks without asking
    the node about it."""
    s = Scenario(tmp_path, node__poll_interval=1.0)
    chain = s.node.chain
    alias = chain.add_alias(s.address, "lamp-three")
    with s:
        s.run_until(lambda: alias in s.daemon.watcher.ledger.mine, 30, "the alias learnt")
        s.run_for(30)
        chain.glitch_aliases(10**6)
        s.restart(after=60)
        assert alias in s.daemon.watcher.ledger.mine, "read from the state file at start"
        restarted = len(chain.requests)
        s.run_for(30)
        first = len(chain.requests)
        assert any(r.path.startswith("/alias/by-address/") for r in chain.requests[restarted:first])
        paid = chain.transfer(s.treasury, alias, 300, asset_id=s.asset)["id"]
        assert (
            s.run_until(lambda: paid in s.credited(), 30, "the payment to the alias")
            < iotlight.UNEXPLAINED_GRACE
        )
        assert not [r for r in chain.requests[first:] if r.path.startswith("/alias/by-alias/")]
        assert s.store.aliases() == [alias]
