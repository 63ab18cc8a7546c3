"""The node client: failover in order, back-off, Retry-After, 429s and bad answers per route
family, error bodies, one log line per outage, and a node of another network left aside and
re-checked. NodeClient on httpx.MockTransport and the virtual clock (scenario.VirtualClock: its
loop runs the requests)."""

import logging
import re

import httpx
import pytest
from scenario import Stamped, VirtualClock

import iotlight

T_GENERATOR = iotlight.keypair_from_seed("node client test generator").address("T")
W_GENERATOR = iotlight.keypair_from_seed("node client test generator").address("W")


@pytest.fixture
def clock():
    c = VirtualClock()
    yield c
    c.loop.close()


def client(handler, clock, urls=("http://a", "http://b"), **options):
    """A NodeClient on `handler`; what it tells the Daemon is in `c.events` ((kind, fields))."""
    events = []
    c = iotlight.NodeClient(
        list(urls),
        timeout=1.0,
        clock=clock,
        transport=httpx.MockTransport(handler),
        tell=lambda kind, **fields: events.append((kind, fields)),
        **options,
    )
    c.events = events
    return c


def run(clock, coro):
    return clock.loop.run_until_complete(coro)


def statuses(c):
    """The node_status events told: (url, ok)."""
    return [(f["url"], f["ok"]) for kind, f in c.events if kind == "node_status"]


def test_fails_over_to_the_next_node_and_logs_the_outage_once(clock, caplog):
    """A node that cannot be reached is left for the next; one warning however many requests fail."""
    calls = []

    def handler(request):
        calls.append(request.url.host)
        if request.url.host == "a":
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json={"height": 42})

    c = client(handler, clock)
    caplog.set_level(logging.INFO, "iotlight.node")

    async def go():
        heights = [await c.height() for _ in range(5)]
        await c.aclose()
        return heights

    assert run(clock, go()) == [42] * 5
    assert calls[:2] == ["a", "b"] and calls[2:] == ["b"] * 4, "a failing node is skipped while it backs off"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "node http://a is failing" in warnings[0].getMessage()
    assert c.current == "http://b" and c.ok is True
    assert statuses(c) == [("http://b", True)], (
        "the daemon hears of the node that answers, not of each failure"
    )


def test_a_recovered_node_is_used_again_with_one_info_line(clock, caplog):
    """After its back-off the first node is asked again; when it answers, one line says so."""
    state = {"a_up": False}

    def handler(request):
        if request.url.host == "a" and not state["a_up"]:
            return httpx.Response(503, text="slow")
        return httpx.Response(200, json={"height": 7 if request.url.host == "a" else 8})

    c = client(handler, clock)
    caplog.set_level(logging.INFO, "iotlight.node")

    async def go():
        assert await c.height() == 8
        state["a_up"] = True
        clock.advance(120)
        assert await c.height() == 7
        await c.aclose()

    run(clock, go())
    assert [r.getMessage() for r in caplog.records if "answers again" in r.getMessage()] == [
        "node http://a answers again"
    ]


def test_a_429_keeps_that_route_family_of_that_node_aside_for_its_retry_after(clock):
    """A 429 with Retry-After keeps that route family of that node aside for at least that long
    (NodeThrottled with the wait); the node is not down: its other routes are still asked, and the
    daemon hears of no outage."""
    calls = []
    throttling = {"on": True}

    def handler(request):
        calls.append(request.url.path)
        if request.url.path.startswith("/blocks/height") and throttling["on"]:
            return httpx.Response(429, headers={"Retry-After": "30"}, text="<html>429</html>")
        return httpx.Response(200, json={"height": 5, "balance": 9})

    c = client(handler, clock, urls=("http://a",))

    async def go():
        with pytest.raises(iotlight.NodeThrottled, match="HTTP 429") as e:
            await c.height()
        assert e.value.retry_after >= 30
        assert c.throttled[("http://a", "other")] - clock.monotonic() >= 30
        assert c.retry_in() == 0, "the node itself is not down"
        assert await c.balance("3M") == 9, "another route family of the same node is asked at once"
        clock.advance(29)
        with pytest.raises(iotlight.NodeThrottled):
            await c.height()  # still aside: not asked
        throttling["on"] = False
        clock.advance(2)
        assert await c.height() == 5
        await c.aclose()

    run(clock, go())
    assert calls.count("/blocks/height") == 2, "not asked while its Retry-After ran"
    assert statuses(c) == [("http://a", True)]


def test_a_503_with_retry_after_keeps_the_whole_node_aside_for_that_long(clock):
    """A 503 (the node itself is overloaded) with Retry-After keeps the node aside for at least that long."""

    def handler(request):
        return httpx.Response(503, headers={"Retry-After": "30"}, text="<html>503</html>")

    c = client(handler, clock, urls=("http://a",))

    async def go():
        with pytest.raises(iotlight.NodeThrottled, match="HTTP 503"):
            await c.height()
        assert c.retry_in() >= 30
        await c.aclose()

    run(clock, go())
    assert statuses(c) == [("http://a", False)]


def test_api_error_bodies_are_answers_not_outages(clock):
    """A 4xx with the node's error body raises NodeRejected with its code and its refusal; no failover."""
    calls = []

    def handler(request):
        calls.append(request.url.host)
        return httpx.Response(400, json={"error": 112, "message": "State check failed. Reason: no"})

    c = client(handler, clock)

    async def go():
        with pytest.raises(iotlight.NodeRejected) as e:
            await c.broadcast({"type": 12})
        await c.aclose()
        return e.value

    err = run(clock, go())
    assert (err.status, err.code, str(err)) == (400, 112, "State check failed. Reason: no")
    assert err.refusal == iotlight.Refusal("refused", "State check failed. Reason: no")
    assert calls == ["a"]
    assert c.retry_in() == 0


def test_garbage_and_shapes_are_node_errors(clock):
    """A body that is not JSON, or JSON of the wrong shape, is a clear NodeError, never a crash."""
    bodies = iter(
        [
            httpx.Response(200, text="<html>oops"),
            httpx.Response(200, json={"height": "x"}),
            httpx.Response(200, json={"nope": 1}),
        ]
    )

    def handler(request):
        return next(bodies)

    c = client(handler, clock, urls=("http://a",))

    async def go():
        with pytest.raises(iotlight.NodeError, match="not JSON"):
            await c.height()
        clock.advance(1.0)  # that route's first back-off (at most 1 s) ran out
        with pytest.raises(iotlight.NodeError, match="has no height \\(an integer"):
            await c.height()
        with pytest.raises(iotlight.NodeError, match="not a transaction list \\[\\[...\\]\\]"):
            await c.address_transactions("3M", 10)
        await c.aclose()

    run(clock, go())


def test_a_bad_answer_leaves_that_route_family_aside_on_a_growing_back_off_told_once_in_five_minutes(clock):
    """A node's bad answer (not JSON) leaves only that route family of that node aside, asked again on
    a growing back-off (meanwhile a NodeError says so, without asking); the node is not down, its
    other routes are asked at once and the daemon hears of no outage; the failing is one WARNING line
    (with its one "answers again") at most every five minutes however often it fails; a good answer
    brings the route back at once, its back-off restored."""
    calls = []
    bad = {"on": True}

    def handler(request):
        calls.append(request.url.path)
        if request.url.path == "/blocks/height" and bad["on"]:
            return httpx.Response(200, text="<html>oops")
        return httpx.Response(200, json={"height": 5, "balance": 9})

    c = client(handler, clock, urls=("http://a",))
    waits = []

    async def go():
        start = clock.monotonic()
        while clock.monotonic() - start < 1000:
            asked = len(calls)
            with pytest.raises(
                iotlight.NodeError, match="bad answer to /blocks/height: the answer is not JSON"
            ):
                await c.height()
            assert calls[asked:] == ["/blocks/height"]
            wait = c.throttled[("http://a", "other")] - clock.monotonic()
            waits.append(wait)
            assert c.retry_in() == 0, "the node itself is not down"
            with pytest.raises(iotlight.NodeError) as aside:
                await c.height()
            assert str(aside.value) == (
                "every node gave bad answers to /blocks/height lately: asked again in %.0f s" % wait
            )
            assert not isinstance(aside.value, iotlight.NodeThrottled), "bad answers, not a 429"
            assert calls[asked + 1 :] == [], "not asked while that route is aside"
            assert await c.balance("3M") == 9, "another route family of the same node is asked at once"
            clock.advance(wait)
        elapsed, told = clock.monotonic() - start, list(log.records)
        bad["on"] = False
        assert await c.height() == 5, "asked again once its back-off ran out"
        assert ("http://a", "other") not in c.throttled and ("http://a", "other") not in c.bad
        bad["on"] = True
        with pytest.raises(iotlight.NodeError, match="not JSON"):
            await c.height()
        assert c.throttled[("http://a", "other")] - clock.monotonic() <= 1.0, "its back-off restored"
        await c.aclose()
        return elapsed, told

    with Stamped(clock, "iotlight.node") as log:
        elapsed, told = run(clock, go())
    for k, wait in enumerate(waits):
        gap = min(300.0, 2.0**k)
        assert gap / 2 <= wait <= gap, "the k-th wait is within [gap/2, gap], the gap doubling to 300 s"
    assert len(waits) >= 8
    warnings = [(t, m) for t, level, m in told if level == logging.WARNING]
    again = [t for t, level, m in told if m == "node http://a answers again"]
    assert warnings[0][1] == (
        "node http://a is failing: bad answer to /blocks/height: the answer is not JSON "
        "(Expecting value: line 1 column 1 (char 0)) (that route is asked again less often)"
    )
    assert all(m == warnings[0][1] for _, m in warnings)
    times = [t for t, _ in warnings]
    assert all(b - a >= 300.0 for a, b in zip(times, times[1:])), "at most one line in five minutes"
    assert 2 <= len(times) <= 1 + elapsed // 300, "told again after the quiet, failing again"
    assert len(again) == len(times) and all(a >= t for a, t in zip(again, times)), (
        "each warning has its one 'answers again', none without"
    )
    assert statuses(c) == [("http://a", True)], "the daemon hears of no outage"


def test_a_bad_balance_answer_also_marks_the_node_down(clock):
    """A bad answer on the token balance route (the watcher's poll) leaves that route aside and marks
    the node down as well (the daemon hears the node is not ok: the lamp's red pixel). Its other routes
    are still asked, and their good answers leave it down (the status follows the polls' route); a good
    balance answer after the back-off tells the daemon it answers again."""
    calls, bad = [], [True]

    def handler(request):
        calls.append(request.url.path)
        if request.url.path.startswith("/assets/balance/"):
            return httpx.Response(200, json={"balance": "lots" if bad[0] else 7})
        return httpx.Response(200, json={"height": 5, "balance": 9})

    c = client(handler, clock, urls=("http://a",))

    async def go():
        with pytest.raises(
            iotlight.NodeError, match="bad answer to /assets/balance/3M/T: the answer has no balance"
        ):
            await c.asset_balance("3M", "T")
        assert ("http://a", "balance") in c.bad and c.retry_in() > 0, "the route aside and the node down"
        assert statuses(c) == [("http://a", False)]
        with pytest.raises(iotlight.NodeError, match="every node gave bad answers to /assets/balance/3M/T"):
            await c.asset_balance("3M", "T")
        assert calls == ["/assets/balance/3M/T"]
        assert await c.height() == 5, "its other routes are still asked"
        assert await c.balance("3M") == 9, "the coin balance is a route family of its own"
        assert statuses(c) == [("http://a", False)], "down while the polls' route is aside"
        bad[0] = False
        clock.advance(c.throttled[("http://a", "balance")] - clock.monotonic())
        assert await c.asset_balance("3M", "T") == 7
        assert statuses(c) == [("http://a", False), ("http://a", True)]
        await c.aclose()

    run(clock, go())


@pytest.mark.parametrize("status", [200, 429])
def test_when_every_node_has_the_route_aside_the_request_fails_without_asking(clock, status):
    """Both nodes' list answers bad (a page of the wrong shape): the next list read fails at once,
    asking no node, with NodeError "every node gave bad answers ... asked again in N s"; both
    throttling it (429): NodeThrottled with the wait instead; their other routes are still asked."""
    calls = []

    def handler(request):
        calls.append((request.url.host, request.url.path))
        if request.url.path.startswith("/transactions/address/"):
            if status == 429:
                return httpx.Response(429, headers={"Retry-After": "20"}, text="<html>429</html>")
            return httpx.Response(200, json={"not": "a list"})
        return httpx.Response(200, json={"height": 5})

    c = client(handler, clock)

    async def go():
        with pytest.raises(iotlight.NodeError) as first:
            await c.address_transactions("3M", 10)
        assert [h for h, _ in calls] == ["a", "b"]
        with pytest.raises(iotlight.NodeError) as again:
            await c.address_transactions("3M", 10)
        assert len(calls) == 2, "no node asked"
        assert await c.height() == 5
        await c.aclose()
        return first.value, again.value

    first, again = run(clock, go())
    if status == 429:
        assert isinstance(first, iotlight.NodeThrottled) and isinstance(again, iotlight.NodeThrottled)
        assert str(again) == "every node throttles /transactions/address/3M/limit/10: asked too often"
        assert 19 <= again.retry_after <= 20
    else:
        assert not isinstance(first, iotlight.NodeThrottled) and not isinstance(again, iotlight.NodeThrottled)
        assert "not a transaction list" in str(first)
        assert re.fullmatch(
            r"every node gave bad answers to /transactions/address/3M/limit/10 lately: asked again in [01] s",
            str(again),
        )


def test_statuses_fall_back_to_info_on_nodes_without_the_status_route(clock):
    """The 0bs fork has no /transactions/status: info and unconfirmed/info answer instead."""

    def handler(request):
        path = request.url.path
        if path == "/transactions/status":
            return httpx.Response(404, json={"status": "error", "details": "not found"})
        if path == "/transactions/info/A":
            return httpx.Response(200, json={"id": "A", "height": 5})
        if path == "/transactions/unconfirmed/info/B":
            return httpx.Response(200, json={"id": "B"})
        return httpx.Response(404, json={"status": "error", "details": "Transaction is not in blockchain"})

    c = client(handler, clock, urls=("http://a",))

    async def go():
        out = await c.statuses(["A", "B", "C"])
        await c.aclose()
        return out

    out = run(clock, go())
    assert out["A"]["status"] == "confirmed" and out["A"]["height"] == 5
    assert out["B"]["status"] == "unconfirmed"
    assert out["C"]["status"] == "not_found"


def test_credentials_in_node_urls_are_masked_in_log_lines_and_errors(clock, caplog):
    """A node URL with user:password@ or ?apikey= is logged masked, failing and answering again, and the
    error text of the exception (which may quote the URL) too; the request itself uses the real URL."""
    secret_url = "http://user:s3cret@a/api?apikey=k3y"
    seen = []

    def handler(request):
        seen.append((request.url.host, request.headers.get("Authorization")))
        if len(seen) == 1:
            raise httpx.ConnectError("cannot reach %s/blocks/height" % secret_url)
        return httpx.Response(200, json={"height": 7})

    c = client(handler, clock, urls=(secret_url,))
    caplog.set_level(logging.INFO, "iotlight.node")

    async def go():
        with pytest.raises(iotlight.NodeError) as info:
            await c.height()
        clock.advance(120)
        height = await c.height()
        await c.aclose()
        return str(info.value), height

    error, height = run(clock, go())
    assert height == 7
    assert seen[0] == ("a", "Basic dXNlcjpzM2NyZXQ="), "the request carries the real credentials"
    lines = [r.getMessage() for r in caplog.records] + [error]
    assert lines == [
        "node http://user:***@a/api?apikey=*** is failing: ConnectError: cannot reach "
        "http://user:***@a/api?apikey=***",  # a value runs to the next & or space: what follows is masked too
        "node http://user:***@a/api?apikey=*** answers again",
        "no node answered GET /blocks/height: ConnectError: cannot reach http://user:***@a/api?apikey=***",
    ]


# --- a node of another network ------------------------------------------------------------------


def networks(generators, answers=None, calls=None):
    """A handler: host -> the generator of its last block (None: the header route fails with a 503);
    every other request answers `answers(host, request)` (default: height 42 and balance 9)."""

    def handler(request):
        host, path = request.url.host, request.url.path
        if calls is not None:
            calls.append((host, request.method, path))
        if path == "/blocks/headers/last":
            generator = generators[host]
            if generator is None:
                return httpx.Response(503, text="<html>503</html>")
            return httpx.Response(200, json={"height": 42, "generator": generator, "id": "B" * 44})
        if answers is not None:
            return answers(host, request)
        return httpx.Response(200, json={"height": 42, "balance": 9, "id": "X" * 44})

    return handler


def test_each_nodes_network_is_learnt_once_from_its_last_header_before_it_is_first_asked(clock):
    """Before a node is first asked, the generator of its last block tells its network; a node of
    ours is not asked that again; without node.chain_id (the commands that need none) nothing is."""
    calls = []
    c = client(networks({"a": T_GENERATOR, "b": T_GENERATOR}, calls=calls), clock, chain_id="T")

    async def go():
        for _ in range(3):
            assert await c.height() == 42
        c.down_until["http://a"] = clock.monotonic() + 60  # a is down: b is asked, after its own check
        assert await c.balance("3M") == 9
        clock.advance(3600)
        assert await c.height() == 42
        await c.aclose()

    run(clock, go())
    assert calls == [
        ("a", "GET", "/blocks/headers/last"),
        ("a", "GET", "/blocks/height"),
        ("a", "GET", "/blocks/height"),
        ("a", "GET", "/blocks/height"),
        ("b", "GET", "/blocks/headers/last"),
        ("b", "GET", "/addresses/balance/3M"),
        ("a", "GET", "/blocks/height"),
    ]
    plain = []
    c = client(networks({"a": W_GENERATOR}, calls=plain), clock, urls=("http://a",))
    assert run(clock, c.height()) == 42
    run(clock, c.aclose())
    assert plain == [("a", "GET", "/blocks/height")]


@pytest.mark.parametrize("order", ["foreign first", "foreign second"])
def test_a_node_of_another_network_is_left_aside_with_one_warning_and_never_gets_a_broadcast(
    clock, caplog, order
):
    """A node whose last block a W address made is left aside for a T client: one warning line
    naming it, however many requests and however long; it gets no request but its last header (when
    first reached, then at most once each FOREIGN_RECHECK, still W) and no broadcast, also while the
    node of ours is down (then the request fails as an outage, never as a refusal)."""
    calls, times = [], []
    up = {"a": True}

    def answers(host, request):
        if host == "a" and not up["a"]:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json={"height": 42 if host == "a" else 4242, "id": "X" * 44})

    urls = ("http://w", "http://a") if order == "foreign first" else ("http://a", "http://w")
    handle = networks({"a": T_GENERATOR, "w": W_GENERATOR}, answers, calls)

    def handler(request):
        times.append(clock.monotonic())
        return handle(request)

    c = client(handler, clock, urls=urls, chain_id="T")
    caplog.set_level(logging.INFO, "iotlight.node")
    start = clock.monotonic()

    async def go():
        for _ in range(5):
            assert await c.height() == 42
            assert (await c.broadcast({"type": 12}))["id"] == "X" * 44
        up["a"] = False
        for _ in range(15):  # half an hour: W's re-check falls due three times, the warning's quiet six
            clock.advance(120)  # a's back-off ran out each time: asked again
            with pytest.raises(iotlight.NodeError) as e:
                await c.broadcast({"type": 12})
            assert not isinstance(e.value, iotlight.NodeRejected)
            with pytest.raises(iotlight.NodeError):
                await c.height()
        await c.aclose()

    run(clock, go())
    to_w = [(t - start, m, p) for t, (h, m, p) in zip(times, calls) if h == "w"]
    assert {(m, p) for _, m, p in to_w} == {("GET", "/blocks/headers/last")}, "asked nothing but its network"
    recheck = iotlight.NodeClient.FOREIGN_RECHECK
    first = 0.0 if order == "foreign first" else 120.0  # foreign second: first reached when a is down
    assert [t for t, _, _ in to_w] == [first + k * recheck for k in range(4) if first + k * recheck <= 1800]
    assert c.foreign == {"http://w": "W"}
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "http://w" in r.getMessage()
    ]
    assert lines == [
        "node http://w runs network 'W' (mainnet), not node.chain_id 'T' (testnet): it is left aside "
        "(fix node.urls or node.chain_id)"
    ]


@pytest.mark.parametrize(
    "route, answer",
    [
        ("broadcast", {"error": 404, "message": "Wrong chain-id. Expected - 87, provided - 84"}),
        ("balance", {"error": 102, "message": "invalid address"}),
    ],
)
def test_a_wrong_chain_id_or_invalid_address_refusal_leaves_the_node_aside(clock, caplog, route, answer):
    """A node whose network could not be learnt (its header route fails) that refuses with "Wrong
    chain-id" or "invalid address" runs another network: it is left aside (one warning), the request
    goes on to the next node, and no NodeRejected reaches the caller (nothing is failed for it);
    alone, it makes an outage (NodeError), never a refusal."""
    calls = []

    def answers(host, request):
        if host == "w":
            return httpx.Response(400, json=answer)
        return httpx.Response(200, json={"balance": 9, "id": "X" * 44})

    c = client(
        networks({"w": None, "a": T_GENERATOR}, answers, calls),
        clock,
        urls=("http://w", "http://a"),
        chain_id="T",
    )
    caplog.set_level(logging.INFO, "iotlight.node")
    ask = (lambda: c.broadcast({"type": 12})) if route == "broadcast" else (lambda: c.balance("3M"))

    async def go():
        first = await ask()
        later = [await ask() for _ in range(3)]
        await c.aclose()
        return first, later

    first, later = run(clock, go())
    assert first == (9 if route == "balance" else {"balance": 9, "id": "X" * 44}) and later == [first] * 3
    assert "http://w" in c.foreign
    to_w = [p for h, _, p in calls if h == "w"]
    assert to_w == [
        "/blocks/headers/last",
        "/transactions/broadcast" if route == "broadcast" else "/addresses/balance/3M",
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        "node http://w runs another network, not node.chain_id 'T' (testnet): it is left aside "
        "(fix node.urls or node.chain_id)"
    ]
    alone = client(networks({"w": None}, answers), clock, urls=("http://w",), chain_id="T")

    async def only_w():
        with pytest.raises(iotlight.NodeError) as e:
            await (alone.broadcast({"type": 12}) if route == "broadcast" else alone.balance("3M"))
        assert not isinstance(e.value, iotlight.NodeRejected), "not a refusal: nothing is failed for it"
        assert statuses(alone)[-1] == ("http://w", False)
        await alone.aclose()

    run(clock, only_w())


def test_a_node_left_aside_is_looked_at_again_and_used_once_it_runs_our_network(clock, caplog):
    """A node left aside for running another network is looked at again (one last header) once
    its FOREIGN_RECHECK is due, not before; once its last block is of our network it is used again,
    with one line saying so."""
    generators, calls = {"w": W_GENERATOR}, []
    c = client(networks(generators, calls=calls), clock, urls=("http://w",), chain_id="T")
    caplog.set_level(logging.INFO, "iotlight.node")

    async def go():
        with pytest.raises(iotlight.NodeError):
            await c.height()
        generators["w"] = T_GENERATOR  # the operator fixed that node
        clock.advance(iotlight.NodeClient.FOREIGN_RECHECK - 1)
        with pytest.raises(iotlight.NodeError, match="no node to ask"):
            await c.height()
        assert len(calls) == 1, "not looked at before its re-check is due"
        clock.advance(1)
        height = await c.height()
        await c.aclose()
        return height

    assert run(clock, go()) == 42
    assert [p for _, _, p in calls] == ["/blocks/headers/last", "/blocks/headers/last", "/blocks/height"]
    assert c.foreign == {}
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        "node http://w runs network 'T' now"
    ]
