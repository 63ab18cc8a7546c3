"""The node client: failover in order, back-off, Retry-After, error bodies, one log line per outage."""

import asyncio
import logging

import httpx
import pytest
from harness import FakeClock

import iotlight


def client(handler, urls=("http://a", "http://b"), clock=None):
    events = []
    c = iotlight.NodeClient(
        list(urls),
        timeout=1.0,
        clock=clock or FakeClock(),
        transport=httpx.MockTransport(handler),
        on_status=lambda url, ok, err: events.append((url, ok)),
    )
    c.events = events
    return c


def run(coro):
    return asyncio.run(coro)


def test_fails_over_to_the_next_node_and_logs_the_outage_once(caplog):
    """A node that cannot be reached is left for the next; one warning however many requests fail."""
    calls = []

    def handler(request):
        calls.append(request.url.host)
        if request.url.host == "a":
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json={"height": 42})

    c = client(handler)
    caplog.set_level(logging.INFO, "iotlight.node")

    async def go():
        heights = [await c.height() for _ in range(5)]
        await c.aclose()
        return heights

    assert run(go()) == [42] * 5
    assert calls[:2] == ["a", "b"] and calls[2:] == ["b"] * 4, "a failing node is skipped while it backs off"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "node http://a is failing" in warnings[0].getMessage()
    assert c.current == "http://b" and c.ok is True


def test_a_recovered_node_is_used_again_with_one_info_line(caplog):
    """After its back-off the first node is asked again; when it answers, one line says so."""
    clock = FakeClock()
    state = {"a_up": False}

    def handler(request):
        if request.url.host == "a" and not state["a_up"]:
            return httpx.Response(503, text="slow")
        return httpx.Response(200, json={"height": 7 if request.url.host == "a" else 8})

    c = client(handler, clock=clock)
    caplog.set_level(logging.INFO, "iotlight.node")

    async def go():
        assert await c.height() == 8
        state["a_up"] = True
        clock.mono += 120
        assert await c.height() == 7
        await c.aclose()

    run(go())
    assert [r.getMessage() for r in caplog.records if "answers again" in r.getMessage()] == [
        "node http://a answers again"
    ]


def test_retry_after_is_honoured():
    """A 429 with Retry-After keeps that node aside for at least that long."""
    clock = FakeClock()

    def handler(request):
        return httpx.Response(429, headers={"Retry-After": "30"}, text="<html>429</html>")

    c = client(handler, urls=("http://a",), clock=clock)

    async def go():
        with pytest.raises(iotlight.NodeError, match="HTTP 429"):
            await c.height()
        assert c.retry_in() >= 30
        await c.aclose()

    run(go())
    assert c.events == [("http://a", False)]


def test_api_error_bodies_are_answers_not_outages():
    """A 4xx with the node's error body raises NodeRejected with its code; no failover."""
    calls = []

    def handler(request):
        calls.append(request.url.host)
        return httpx.Response(400, json={"error": 112, "message": "State check failed. Reason: no"})

    c = client(handler)

    async def go():
        with pytest.raises(iotlight.NodeRejected) as e:
            await c.broadcast({"type": 12})
        await c.aclose()
        return e.value

    err = run(go())
    assert (err.status, err.code, str(err)) == (400, 112, "State check failed. Reason: no")
    assert calls == ["a"]


def test_garbage_and_shapes_are_node_errors():
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

    c = client(handler, urls=("http://a",))

    async def go():
        with pytest.raises(iotlight.NodeError, match="not JSON"):
            await c.height()
        c.down_until.clear()
        with pytest.raises(iotlight.NodeError, match="without an integer height"):
            await c.height()
        with pytest.raises(iotlight.NodeError, match="not \\[\\[...\\]\\]"):
            await c.address_transactions("3M", 10)
        await c.aclose()

    run(go())


def test_statuses_fall_back_to_info_on_nodes_without_the_status_route():
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

    c = client(handler, urls=("http://a",))

    async def go():
        out = await c.statuses(["A", "B", "C"])
        await c.aclose()
        return out

    out = run(go())
    assert out["A"]["status"] == "confirmed" and out["A"]["height"] == 5
    assert out["B"]["status"] == "unconfirmed"
    assert out["C"]["status"] == "not_found"


def test_credentials_in_node_urls_are_masked_in_log_lines_and_errors(caplog):
    """A node URL with user:password@ or ?apikey= is logged masked, failing and answering again, and the
    error text of the exception (which may quote the URL) too; the request itself uses the real URL."""
    secret_url = "http://user:s3cret@a/api?apikey=k3y"
    seen = []

    def handler(request):
        seen.append((request.url.host, request.headers.get("Authorization")))
        if len(seen) == 1:
            raise httpx.ConnectError("cannot reach %s/blocks/height" % secret_url)
        return httpx.Response(200, json={"height": 7})

    clock = FakeClock()
    c = client(handler, urls=(secret_url,), clock=clock)
    caplog.set_level(logging.INFO, "iotlight.node")

    async def go():
        with pytest.raises(iotlight.NodeError) as info:
            await c.height()
        clock.mono += 120
        height = await c.height()
        await c.aclose()
        return str(info.value), height

    error, height = run(go())
    assert height == 7
    assert seen[0] == ("a", "Basic dXNlcjpzM2NyZXQ="), "the request carries the real credentials"
    lines = [r.getMessage() for r in caplog.records] + [error]
    assert lines == [
        "node http://user:***@a/api?apikey=*** is failing: ConnectError: cannot reach "
        "http://user:***@a/api?apikey=***",  # a value runs to the next & or space: what follows is masked too
        "node http://user:***@a/api?apikey=*** answers again",
        "no node answered GET /blocks/height: ConnectError: cannot reach http://user:***@a/api?apikey=***",
    ]
