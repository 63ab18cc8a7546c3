"""The monitor in-process: a Monitor on 127.0.0.1 port 0 with real websockets and HTTP clients, its
clock a VirtualClock where time matters; its deadlines (handshake, closing) made short where a test
waits for them, never slept through."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import sys
import time
import xml.etree.ElementTree as ET

import httpx
import pytest
import websockets.asyncio.server
from harness import eventually, free_port
from scenario import VirtualClock
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import iotlight

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

ADDRESS = "3MxTj9eVsYgxr1nMoKXG9FzqpTqRCwCcNho"
SENDER = "3N8cRUoLYz7n4PhcaUe6QbNhbi3kDLGmvTd"
ASSET = "85WwASooqPrjbaht3P14rWZsJNTW989RRUyHTtS58XAm"
WAIT = 30.0  # generous deadline for anything to arrive on a busy machine
SHORT = 0.2  # the monitor's closing deadline (5 s) in the tests that wait for it
HANDSHAKE = 0.5  # its opening handshake's deadline (5 s) where a test waits for it; a good client needs ms


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def clock():
    """The monitor's clock: a VirtualClock that moves only when the test advances it."""
    c = VirtualClock()
    try:
        yield c
    finally:
        c.loop.close()


@pytest.fixture
def short_close(monkeypatch):
    """The monitor gives a closing handshake SHORT seconds, not 5, before it cuts the socket."""
    monkeypatch.setattr(iotlight, "MONITOR_CLOSE_TIMEOUT", SHORT)


@pytest.fixture
def serve_options(monkeypatch):
    """What the Monitor asks websockets' serve() for (recorded); the opening handshake's deadline
    is made HANDSHAKE seconds instead of 5 so that a test can wait for it."""
    asked = []
    real = websockets.asyncio.server.serve

    def serve(*args, **kw):
        asked.append(dict(kw))
        kw["open_timeout"] = HANDSHAKE
        return real(*args, **kw)

    monkeypatch.setattr(websockets.asyncio.server, "serve", serve)
    return asked


def make_snapshot():
    return {
        "address": ADDRESS,
        "asset_id": ASSET,
        "light": {"on": True, "remaining": 42.5, "until": 1795000000.0},
        "node": {"url": "http://127.0.0.1:6869", "ok": True, "height": 123456},
        "outbox": {"pending": 0},
        "chain_id": "T",
        "version": iotlight.__version__,
        "backend": "none",
        "balance": {"coin": 100000000, "token": 12345, "decimals": 2},
        "matrix": [[0, 0, 0]] * 64,
        "payments": [],
        "data_txs": [],
        "joystick": None,
    }


@pytest.fixture
async def start_monitor():
    """Start Monitors on 127.0.0.1 (port 0 unless given) and close them all afterwards."""
    monitors = []

    async def start(**kw):
        kw.setdefault("host", "127.0.0.1")
        kw.setdefault("port", 0)
        kw.setdefault("token", "")
        kw.setdefault("snapshot", make_snapshot)
        monitor = iotlight.Monitor(**kw)
        await monitor.start()
        monitors.append(monitor)
        return monitor

    try:
        yield start
    finally:
        for monitor in monitors:
            await monitor.close()


async def recv_json(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT))


async def wait_closed_code(ws):
    """Read until the server closes the connection; return the close code it sent."""
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(ws.recv(), WAIT)
    return info.value.rcvd.code if info.value.rcvd else None


def http_client():
    return httpx.AsyncClient(timeout=WAIT, trust_env=False)


def url(monitor, path="/"):
    return "ws://127.0.0.1:%d%s" % (monitor.port, path)


# -- snapshot and events -------------------------------------------------------


async def test_first_message_is_the_state_snapshot_with_every_contract_field(start_monitor, clock):
    """A new client first gets {"type": "state", "ts", address, asset_id, light, node, outbox}, ts being
    the monitor clock's time when it connected."""
    monitor = await start_monitor(clock=clock)
    clock.advance(12.5)
    async with connect(url(monitor)) as ws:
        state = await recv_json(ws)
    assert state["type"] == "state"
    assert isinstance(state["ts"], float) and state["ts"] == clock.time()
    assert state["address"] == ADDRESS
    assert state["asset_id"] == ASSET
    assert state["light"] == {"on": True, "remaining": 42.5, "until": 1795000000.0}
    assert state["node"] == {"url": "http://127.0.0.1:6869", "ok": True, "height": 123456}
    assert state["outbox"] == {"pending": 0}
    assert state["balance"] == {"coin": 100000000, "token": 12345, "decimals": 2}
    assert len(state["matrix"]) == 64


async def test_the_ws_path_serves_the_same_endpoint(start_monitor):
    """ws://host:port/ws is accepted too and starts with the snapshot."""
    monitor = await start_monitor()
    async with connect(url(monitor, "/ws")) as ws:
        assert (await recv_json(ws))["type"] == "state"


async def test_every_event_type_arrives_with_its_fields_and_a_ts(start_monitor, clock):
    """Published events reach the client unchanged, in order, each with a float ts: the monitor
    clock's time when it was published."""
    monitor = await start_monitor(clock=clock)
    events = [
        {"type": "payment", "id": "Tx1", "sender": SENDER, "amount": 150, "seconds": 90.0, "height": 123},
        {"type": "light", "on": True, "remaining": 90.0, "until": 1795000090.0},
        {"type": "joystick", "direction": "up", "action": "pressed"},
        {"type": "joystick", "direction": "middle", "action": "released"},
        {"type": "data_tx", "id": "Dt1", "status": "queued"},
        {"type": "data_tx", "id": "Dt1", "status": "failed", "error": "fee too low"},
        {"type": "node", "url": "http://127.0.0.1:6869", "ok": True, "height": 123457},
        {"type": "node", "url": "http://127.0.0.1:6869", "ok": False, "height": None, "error": "timed out"},
        {"type": "matrix", "pixels": [[255, 255, 255]] * 64},
        {"type": "balance", "coin": 99900000, "token": 12195, "decimals": 2},
        {"type": "outbox", "pending": 2, "no_funds": True},
    ]
    async with connect(url(monitor)) as ws:
        await recv_json(ws)
        published_at = []
        for event in events:
            clock.advance(0.25)
            published_at.append(clock.time())
            monitor.publish(event)
        for event, when in zip(events, published_at):
            got = await recv_json(ws)
            ts = got.pop("ts")
            assert isinstance(ts, float) and ts == when
            assert got == event
    assert all("ts" not in e for e in events), "publish must not change the caller's dict"


async def test_publish_keeps_a_ts_the_daemon_set(start_monitor, clock):
    """An event that already has a ts keeps it (the monitor clock's own time is not put in)."""
    monitor = await start_monitor(clock=clock)
    async with connect(url(monitor)) as ws:
        await recv_json(ws)
        monitor.publish({"type": "light", "on": False, "remaining": 0.0, "until": None, "ts": 1700000000.5})
        assert (await recv_json(ws))["ts"] == 1700000000.5


async def test_publish_with_no_clients_does_nothing(start_monitor):
    """Publishing while nobody listens is fine, and a later client starts with the snapshot."""
    monitor = await start_monitor()
    monitor.publish({"type": "joystick", "direction": "up", "action": "pressed"})
    async with connect(url(monitor)) as ws:
        assert (await recv_json(ws))["type"] == "state"


async def test_an_unencodable_event_is_logged_and_skipped(start_monitor, caplog):
    """A NaN or an object JSON cannot carry is an ERROR in the log, not a crash or a bad frame."""
    monitor = await start_monitor()
    async with connect(url(monitor)) as ws:
        await recv_json(ws)
        with caplog.at_level(logging.ERROR, logger="iotlight.monitor"):
            monitor.publish({"type": "light", "on": True, "remaining": float("nan"), "until": None})
            monitor.publish({"type": "weird", "value": object()})
        monitor.publish({"type": "joystick", "direction": "left", "action": "held"})
        assert (await recv_json(ws))["type"] == "joystick"
    assert [r.getMessage() for r in caplog.records if r.name == "iotlight.monitor"] == [
        "monitor: cannot encode 'light' event",
        "monitor: cannot encode 'weird' event",
    ]


# -- slow clients ----------------------------------------------------------------


def open_stalled_client(port):
    """A raw WebSocket client with a tiny receive buffer that never reads a frame."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(WAIT)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        (
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" % port
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, "server closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def read_until_closed(sock):
    """Drain a raw socket until the server has closed it; True when it did."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


async def test_a_stalled_client_is_dropped_while_another_keeps_receiving(start_monitor, caplog, short_close):
    """A client that never reads is dropped (logged at INFO) and its socket cut once the closing
    handshake's deadline has passed; a reading client gets every event."""
    caplog.set_level(logging.INFO, logger="iotlight.monitor")
    monitor = await start_monitor(queue_size=8)
    stalled = await asyncio.to_thread(open_stalled_client, monitor.port)
    received = []
    async with connect(url(monitor), max_size=None) as good:
        await recv_json(good)

        async def reader():
            async for raw in good:
                received.append(json.loads(raw))

        reading = asyncio.ensure_future(reader())
        await eventually(lambda: monitor.client_count == 2, "both clients to be registered")
        pad = "x" * 32768
        sent = 0

        def dropped():
            return any("dropped" in r.getMessage() for r in caplog.records)

        deadline = time.monotonic() + 90
        while not dropped():
            assert time.monotonic() < deadline, "the stalled client was never dropped"
            for _ in range(4):  # half the queue: the reading client never falls that far behind
                monitor.publish({"type": "filler", "n": sent, "pad": pad})
                sent += 1
            await eventually(lambda sent=sent: len(received) == sent, "the reading client to catch up")
        await eventually(lambda: monitor.client_count == 1, "the stalled client's socket to be closed")
        monitor.publish({"type": "joystick", "direction": "down", "action": "pressed"})
        await eventually(lambda: len(received) == sent + 1, "the event after the drop")
        reading.cancel()
    assert [m["n"] for m in received[:-1]] == list(range(sent))
    assert received[-1]["type"] == "joystick"
    assert await asyncio.to_thread(read_until_closed, stalled)
    stalled.close()


async def test_close_finishes_while_a_stalled_client_is_being_dropped(start_monitor, caplog, short_close):
    """close() does not hang on a client whose socket is full and whose drop is under way: it ends
    once the closing deadline has cut that socket."""
    caplog.set_level(logging.INFO, logger="iotlight.monitor")
    monitor = await start_monitor(queue_size=4)
    stalled = await asyncio.to_thread(open_stalled_client, monitor.port)
    await eventually(lambda: monitor.client_count == 1, "the client to be registered")
    deadline = time.monotonic() + 90
    n = 0
    while not any("dropped" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "the stalled client was never dropped"
        monitor.publish({"type": "filler", "n": n, "pad": "x" * 32768})
        n += 1
        await asyncio.sleep(0)  # let the sender task run
    await asyncio.wait_for(monitor.close(), WAIT)
    assert monitor.client_count == 0
    stalled.close()


# -- token and origin ---------------------------------------------------------------


async def test_a_token_is_required_when_set(start_monitor):
    """With a token: no token is 401, a wrong one 403, the right one connects (ws, page and qr)."""
    monitor = await start_monitor(token="s3cret-token")
    for path, status in (("/", 401), ("/?token=wrong", 403), ("/ws?token=", 401)):
        with pytest.raises(InvalidStatus) as info:
            async with connect(url(monitor, path)):
                pass
        assert info.value.response.status_code == status, path
    async with connect(url(monitor, "/?token=s3cret-token")) as ws:
        assert (await recv_json(ws))["type"] == "state"
    base = "http://127.0.0.1:%d" % monitor.port
    async with http_client() as http:
        assert (await http.get(base + "/")).status_code == 401
        assert (await http.get(base + "/qr.svg")).status_code == 401
        assert (await http.get(base + "/?token=nope")).status_code == 403
        assert (await http.get(base + "/?token=s3cret-token")).status_code == 200
        assert (await http.get(base + "/qr.svg?token=s3cret-token")).status_code == 200


async def test_a_token_lets_other_origins_in(start_monitor):
    """With a token the Origin does not matter: the token is the credential."""
    monitor = await start_monitor(token="s3cret-token")
    async with connect(url(monitor, "/?token=s3cret-token"), origin="http://phone.example:9000") as ws:
        assert (await recv_json(ws))["type"] == "state"


async def test_without_token_a_cross_origin_websocket_is_refused(start_monitor):
    """Without a token, a page from another origin cannot open the WebSocket (403)."""
    monitor = await start_monitor()
    for origin in ("http://evil.example", "http://127.0.0.1:1", "http://localhost:%d" % monitor.port, "null"):
        with pytest.raises(InvalidStatus) as info:
            async with connect(url(monitor), origin=origin):
                pass
        assert info.value.response.status_code == 403, origin


async def test_without_token_same_origin_and_no_origin_are_accepted(start_monitor):
    """The dashboard's own origin and scripts without an Origin header connect."""
    monitor = await start_monitor()
    async with connect(url(monitor), origin="http://127.0.0.1:%d" % monitor.port) as ws:
        assert (await recv_json(ws))["type"] == "state"
    async with connect(url(monitor)) as ws:
        assert (await recv_json(ws))["type"] == "state"


def test_same_origin_compares_host_and_port():
    """The Origin check compares host names case-insensitively and fills in default ports."""
    assert iotlight.is_same_origin("http://127.0.0.1:8765", "127.0.0.1:8765")
    assert iotlight.is_same_origin("http://Pi.Local", "pi.local:80")
    assert iotlight.is_same_origin("http://[::1]:8765", "[::1]:8765")
    assert not iotlight.is_same_origin("http://127.0.0.1:8766", "127.0.0.1:8765")
    assert not iotlight.is_same_origin("https://pi.local", "pi.local:80")
    assert not iotlight.is_same_origin("null", "127.0.0.1:8765")
    assert not iotlight.is_same_origin("http://pi.local:bad", "pi.local:80")


# -- bad client frames -----------------------------------------------------------------


async def assert_bystander_still_served(monitor, bystander):
    monitor.publish({"type": "joystick", "direction": "right", "action": "pressed"})
    assert (await recv_json(bystander))["direction"] == "right"


@pytest.mark.parametrize(
    "frame, code",
    [
        ("y" * 5000, 1009),  # over max_frame
        ("{not json", 1007),
        ("[1, 2, 3]", 1008),
        ('"a string"', 1008),
        (b"\x00\x01", 1003),
    ],
)
async def test_a_bad_frame_closes_only_that_connection(start_monitor, frame, code):
    """Oversized, non-JSON, non-object and binary frames close the sender's connection only."""
    monitor = await start_monitor(max_frame=4096)
    async with connect(url(monitor)) as bystander, connect(url(monitor)) as culprit:
        await recv_json(bystander)
        await recv_json(culprit)
        await culprit.send(frame)
        assert await wait_closed_code(culprit) == code
        await assert_bystander_still_served(monitor, bystander)
        await eventually(lambda: monitor.client_count == 1, "the culprit to be unregistered")


async def test_well_formed_unknown_messages_are_ignored(start_monitor):
    """A JSON object the server does not know changes nothing; the client stays connected."""
    monitor = await start_monitor()
    async with connect(url(monitor)) as ws:
        await recv_json(ws)
        await ws.send(json.dumps({"type": "hello", "x": 1}))
        await ws.send(json.dumps({}))
        await assert_bystander_still_served(monitor, ws)


# -- capacity -------------------------------------------------------------------------


async def test_connections_over_the_cap_are_refused_with_503(start_monitor):
    """With max_clients=2 a third client gets HTTP 503; a slot frees when one leaves."""
    monitor = await start_monitor(max_clients=2)
    first = await connect(url(monitor))
    async with connect(url(monitor)) as second:
        await recv_json(first)
        await recv_json(second)
        with pytest.raises(InvalidStatus) as info:
            async with connect(url(monitor)):
                pass
        assert info.value.response.status_code == 503
        await first.close()
        await eventually(lambda: monitor.client_count == 1, "the first client to leave")
        async with connect(url(monitor)) as third:
            assert (await recv_json(third))["type"] == "state"


async def test_start_on_a_busy_port_is_one_line_error(start_monitor):
    """A port already in use gives an IotlightError naming host, port and the fix."""
    monitor = await start_monitor()
    other = iotlight.Monitor(host="127.0.0.1", port=monitor.port, token="", snapshot=make_snapshot)
    with pytest.raises(iotlight.IotlightError) as info:
        await other.start()
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("monitor cannot listen on 127.0.0.1:%d: " % monitor.port)
    assert text.endswith(
        "set monitor.port to a free port (0 turns the monitor off) or stop the program using it"
    )


async def test_close_sends_going_away_to_clients(start_monitor):
    """close() closes every client with 1001 and stops listening."""
    monitor = await start_monitor()
    port = monitor.port
    async with connect(url(monitor)) as ws:
        await recv_json(ws)
        await monitor.close()
        assert await wait_closed_code(ws) == 1001
    with pytest.raises(OSError):
        async with connect("ws://127.0.0.1:%d/" % port, open_timeout=WAIT):
            pass
    await monitor.close()  # idempotent


async def test_close_cuts_a_socket_that_never_sent_a_request(start_monitor):
    """A browser's spare pre-connected socket is closed too, not left open for the process's life.

    Left open, the next page load to that port (a restarted daemon on the same port) is sent
    down the dead socket and hangs until the browser gives up.
    """
    monitor = await start_monitor()
    idle = socket.create_connection(("127.0.0.1", monitor.port), timeout=WAIT)
    try:
        async with connect(url(monitor)) as ws:  # accepted after the idle socket: both are in
            await recv_json(ws)
            await asyncio.wait_for(monitor.close(), WAIT)
            # closed by close() itself, not left to the 5 s handshake timeout
            idle.settimeout(1.0)
            try:
                assert idle.recv(1) == b""
            except ConnectionResetError:
                pass
            except socket.timeout:
                raise AssertionError("close() returned with a connection still open") from None
            assert await wait_closed_code(ws) == 1001
    finally:
        idle.close()


# -- HTTP: page and QR ------------------------------------------------------------------


async def test_get_root_returns_the_dashboard_page(start_monitor):
    """GET / without an upgrade is the dashboard: HTML, UTF-8, not cached."""
    monitor = await start_monitor()
    async with http_client() as http:
        response = await http.get("http://127.0.0.1:%d/" % monitor.port)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.text == iotlight.DASHBOARD_HTML
    for element_id in (
        "address",
        "remaining",
        "lamp-state",
        "node-status",
        "payments",
        "datatxs",
        "matrix",
        "conn",
    ):
        assert 'id="%s"' % element_id in response.text


def test_the_page_fetches_nothing_from_the_internet():
    """The page is self-contained: no http(s) URLs, no external scripts, styles or fonts."""
    html = iotlight.DASHBOARD_HTML
    assert "http://" not in html and "https://" not in html
    assert "<script src" not in html and '<link rel="stylesheet"' not in html


async def test_other_paths_are_404_and_ws_without_upgrade_is_426(start_monitor):
    """Unknown paths answer 404 (HTTP and WebSocket); /ws as a plain GET says to upgrade."""
    monitor = await start_monitor()
    base = "http://127.0.0.1:%d" % monitor.port
    async with http_client() as http:
        assert (await http.get(base + "/favicon.ico")).status_code == 404
        assert (await http.get(base + "/ws")).status_code == 426
    with pytest.raises(InvalidStatus) as info:
        async with connect(url(monitor, "/other")):
            pass
    assert info.value.response.status_code == 404


async def test_qr_svg_is_an_svg_of_the_address(start_monitor):
    """GET /qr.svg is an SVG document (made by segno from the device address)."""
    segno = pytest.importorskip("segno")
    monitor = await start_monitor()
    async with http_client() as http:
        response = await http.get("http://127.0.0.1:%d/qr.svg" % monitor.port)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.headers["cache-control"] == "no-store"
    root = ET.fromstring(response.text)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    size = segno.make(ADDRESS, error="m", micro=False).symbol_size(scale=1, border=4)
    assert root.get("viewBox") == "0 0 %d %d" % size


async def test_qr_svg_is_404_without_segno(start_monitor, monkeypatch):
    """Without segno the QR is 404 (the page then shows the address text only)."""
    monkeypatch.setitem(sys.modules, "segno", None)
    monitor = await start_monitor()
    async with http_client() as http:
        response = await http.get("http://127.0.0.1:%d/qr.svg" % monitor.port)
    assert response.status_code == 404
    assert response.text == "no qr code: pip install segno to get one\n"


async def test_every_http_answer_says_no_referrer_no_store_and_nosniff(start_monitor, monkeypatch):
    """Every HTTP answer of the monitor (page, QR code, and 401, 403, 404, 421, 426, 429, 500, 503,
    over plain HTTP and to a WebSocket upgrade) carries Referrer-Policy: no-referrer (the token rides
    in the query, so no link may pass it on), Cache-Control: no-store and X-Content-Type-Options: nosniff."""
    token = "s3cret-token"
    monitor = await start_monitor(token=token, max_clients=2, max_clients_per_address=1)
    open_monitor = await start_monitor()
    failing = await start_monitor(snapshot=lambda: 1 / 0)
    answers = []  # (what, expected status, status, headers)

    async def http_get(what, status, m, path, **kw):
        async with http_client() as http:
            response = await http.get("http://127.0.0.1:%d%s" % (m.port, path), **kw)
        answers.append((what, status, response.status_code, response.headers))

    async def ws_refused(what, status, m, path, **kw):
        with pytest.raises(InvalidStatus) as info:
            async with connect(url(m, path), open_timeout=WAIT, **kw):
                pass
        answers.append((what, status, info.value.response.status_code, info.value.response.headers))

    t = "?token=" + token
    await http_get("page", 200, monitor, "/" + t)
    await http_get("qr code", 200, monitor, "/qr.svg" + t)
    await http_get("no token", 401, monitor, "/")
    await http_get("wrong token", 403, monitor, "/?token=wrong")
    await http_get("unknown path", 404, monitor, "/favicon.ico" + t)
    await http_get("another host name", 421, monitor, "/" + t, headers={"Host": "rebind.example"})
    await http_get("/ws without upgrade", 426, monitor, "/ws" + t)
    await http_get("the snapshot failed", 500, failing, "/qr.svg")
    await ws_refused("websocket without token", 401, monitor, "/")
    await ws_refused("websocket, wrong token", 403, monitor, "/?token=wrong")
    await ws_refused("websocket, unknown path", 404, monitor, "/other" + t)
    await ws_refused("websocket, another origin", 403, open_monitor, "/", origin="http://evil.example")
    async with connect(url(monitor, "/" + t)) as first:
        await recv_json(first)
        await ws_refused("websocket, address full", 429, monitor, "/" + t)
        async with connect(url(monitor, "/" + t), local_addr=("127.0.0.2", 0)) as second:
            await recv_json(second)
            await ws_refused("websocket, monitor full", 503, monitor, "/" + t, local_addr=("127.0.0.3", 0))
    monkeypatch.setitem(sys.modules, "segno", None)
    await http_get("no qr code without segno", 404, monitor, "/qr.svg" + t)
    assert [(what, status) for what, status, _, _ in answers] == [(a[0], a[2]) for a in answers]
    for what, _, _, headers in answers:
        got = [headers.get(k) for k in ("Referrer-Policy", "Cache-Control", "X-Content-Type-Options")]
        assert got == ["no-referrer", "no-store", "nosniff"], what


# -- terminal client ------------------------------------------------------------------------


TS = 1795000000.25
CLOCK = time.strftime("%H:%M:%S", time.localtime(TS))


@pytest.mark.parametrize(
    "message, decimals, line",
    [
        (
            {"type": "payment", "id": "T", "sender": SENDER, "amount": 150, "seconds": 90.0, "height": 123},
            2,
            "payment 3N8c..mvTd 1.50 tokens -> 90 s (height 123)",
        ),
        (
            {"type": "payment", "id": "T", "sender": SENDER, "amount": 150, "seconds": 1.5, "height": 7},
            None,
            "payment 3N8c..mvTd 150 units -> 1.5 s (height 7)",
        ),
        ({"type": "light", "on": True, "remaining": 41.6, "until": TS + 41.6}, None, "light on, 41.6 s left"),
        ({"type": "light", "on": False, "remaining": 0.0, "until": None}, None, "light off"),
        ({"type": "joystick", "direction": "up", "action": "pressed"}, None, "joystick up pressed"),
        (
            {"type": "data_tx", "id": "2KVs1zzjXCw7EUWM", "status": "confirmed"},
            None,
            "data_tx 2KVs..EUWM confirmed",
        ),
        (
            {"type": "data_tx", "id": "Dt1", "status": "failed", "error": "fee too low"},
            None,
            "data_tx Dt1 failed: fee too low",
        ),
        ({"type": "node", "url": "http://n", "ok": True, "height": 99}, None, "node ok height 99 (http://n)"),
        (
            {"type": "node", "url": "http://n", "ok": False, "height": None, "error": "timed out"},
            None,
            "node down http://n: timed out",
        ),
        ({"type": "outbox", "pending": 3, "no_funds": True}, None, "outbox 3 pending, no funds for fees"),
        ({"type": "outbox", "pending": 0, "no_funds": False}, None, "outbox 0 pending"),
        (
            {"type": "balance", "coin": 150000000, "token": 1005, "decimals": 2},
            None,
            "balance 10.05 tokens, 1.50000000 coin",
        ),
        ({"type": "matrix", "pixels": [[255, 0, 0]] * 3 + [[0, 0, 0]] * 61}, None, "matrix 3/64 pixels lit"),
        ({"type": "surprise", "a": 1, "b": [1, "x"]}, None, 'surprise a=1 b=[1,"x"]'),
    ],
)
def test_format_event_prints_one_readable_line(message, decimals, line):
    """Every message type is one line: the local time, the type, then what happened."""
    assert iotlight.format_event(dict(message, ts=TS), decimals=decimals) == CLOCK + " " + line


def test_format_event_state_line():
    """The snapshot line names the address, the lamp, the node and the outbox."""
    state = dict(make_snapshot(), type="state", ts=TS)
    assert iotlight.format_event(state) == (
        CLOCK + " state %s lamp on, 42.5 s left, node ok height 123456, outbox 0 pending" % ADDRESS
    )


async def run_client(url_, out, **kw):
    return asyncio.ensure_future(iotlight.run_monitor_client(url_, out=out, **kw))


async def stop(task):
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_client_prints_lines_and_reconnects_after_a_restart(start_monitor):
    """The terminal client prints each message and comes back when the monitor restarts."""
    monitor = await start_monitor()
    out = io.StringIO()
    task = await run_client(url(monitor), out, as_json=False)
    try:
        await eventually(lambda: " state " in out.getvalue(), "the state line")
        monitor.publish(
            {
                "type": "payment",
                "id": "T",
                "sender": SENDER,
                "amount": 250,
                "seconds": 2.5,
                "height": 5,
                "ts": TS,
            }
        )
        await eventually(lambda: "payment" in out.getvalue(), "the payment line")
        assert CLOCK + " payment 3N8c..mvTd 2.50 tokens -> 2.5 s (height 5)\n" in out.getvalue()
        port = monitor.port
        await monitor.close()
        await start_monitor(port=port)
        await eventually(lambda: out.getvalue().count(" state ") == 2, "the state after the restart")
    finally:
        await stop(task)
    assert task.cancelled()


async def test_client_json_mode_prints_raw_messages(start_monitor):
    """With as_json every line is the message as JSON."""
    monitor = await start_monitor()
    out = io.StringIO()
    task = await run_client(url(monitor), out, as_json=True)
    try:
        await eventually(lambda: out.getvalue().count("\n") >= 1, "the state line")
        monitor.publish({"type": "joystick", "direction": "up", "action": "held"})
        await eventually(lambda: out.getvalue().count("\n") >= 2, "the joystick line")
    finally:
        await stop(task)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [m["type"] for m in lines] == ["state", "joystick"]
    assert lines[1]["action"] == "held"


async def test_client_returns_1_when_nothing_listens_and_reconnect_is_off(capsys):
    """Connection refused on the first try without reconnect: one line on stderr, exit status 1."""
    port = free_port()
    code = await iotlight.run_monitor_client(
        "ws://127.0.0.1:%d/?token=abc" % port, as_json=False, reconnect=False
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("monitor: cannot connect to ws://127.0.0.1:%d/: " % port)
    assert "abc" not in err


async def test_client_returns_1_when_the_token_is_refused(start_monitor, capsys):
    """A 401/403 does not get better by retrying: one line, exit status 1."""
    monitor = await start_monitor(token="s3cret-token")
    code = await iotlight.run_monitor_client(url(monitor, "/?token=bad"), as_json=False, out=io.StringIO())
    assert code == 1
    assert capsys.readouterr().err == (
        "monitor: ws://127.0.0.1:%d/ refused the connection (HTTP 403): pass the right ?token=<monitor.token>\n"
        % monitor.port
    )


async def test_client_rejects_a_url_that_is_not_websocket():
    """An http:// URL is a usage error (ConfigError, exit 2)."""
    with pytest.raises(iotlight.ConfigError) as info:
        await iotlight.run_monitor_client("http://127.0.0.1:8765/", as_json=False)
    assert str(info.value) == (
        "monitor url 'http://127.0.0.1:8765/' must start with ws:// or wss://, e.g. ws://127.0.0.1:8765/"
    )


def send_and_read_to_the_end(port, payload, hang_up):
    """Send raw bytes on a new connection (then stop sending, FIN, when `hang_up`) and read until the
    server closes it; what it answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(payload)
        if hang_up:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return answer
                answer += chunk
        except ConnectionResetError:
            return answer


async def test_garbage_costs_one_line_without_a_traceback_even_at_debug(start_monitor, caplog):
    """Under -v websockets logs a client's bad bytes with a traceback: that becomes one line naming the error."""
    caplog.set_level(logging.DEBUG)
    monitor = await start_monitor()
    for payload in (
        b"\x16\x03\x01garbage\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: x\r\n\r\n",
    ):
        await asyncio.to_thread(send_and_read_to_the_end, monitor.port, payload, False)
    await monitor.close()
    ours = [r for r in caplog.records if r.name.startswith("iotlight")]
    assert [r.getMessage() for r in ours if r.exc_info] == []
    assert [
        r.getMessage() for r in ours if r.name == "iotlight.monitor.websockets" and r.levelno > logging.DEBUG
    ] == []
    # websockets 14+ "! no valid HTTP request: ...", 13 (Python 3.9's band) "... did not receive a valid HTTP request"
    named = [r.getMessage() for r in ours if "valid HTTP request" in r.getMessage()]
    assert len(named) == 1, named


async def test_garbage_and_half_open_clients_do_not_flood_the_log(start_monitor, caplog, serve_options):
    """Bytes that are no HTTP, and a request never finished, cost one DEBUG line each at most: nothing at
    all in the daemon's INFO log, no error; a socket that never sends is cut at the opening handshake's
    deadline (5 s, made short here) and the monitor goes on serving."""
    caplog.set_level(logging.INFO)
    monitor = await start_monitor()
    assert serve_options[0]["open_timeout"] == 5.0
    for payload in (b"\x16\x03\x01garbage\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\n", b"\xff" * 64):
        # gone at once, unread: whatever the server answers meets a closed socket
        with socket.create_connection(("127.0.0.1", monitor.port), timeout=WAIT) as sock:
            sock.sendall(payload)
        # hung up in the middle of a handshake: the server sees the end of the stream and closes
        await asyncio.to_thread(send_and_read_to_the_end, monitor.port, payload, True)
        # that one was accepted after the first: once no connection is left, both are done with
        await eventually(lambda: not monitor._accepted, "the server to be done with both connections")
    idle = await asyncio.to_thread(send_and_read_to_the_end, monitor.port, b"", False)
    assert idle == b"", "the server cut a socket that never sent a request, without answering"
    async with connect("ws://127.0.0.1:%d/" % monitor.port) as ws:
        first = await recv_json(ws)
    assert first["type"] == "state"
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert [r.getMessage() for r in caplog.records if r.name == "iotlight.monitor.websockets"] == []


# -- Host names (DNS rebinding) ------------------------------------------------------------


def raw_request(port, host_header, upgrade):
    """Send one raw HTTP request (a Host header of our choosing, or none) and return the status line."""
    lines = ["GET / HTTP/1.1"]
    if host_header is not None:
        lines.append("Host: %s" % host_header)
    if upgrade:
        lines += [
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
        ]
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(1024)
            if not chunk:
                break
            head += chunk
    return head.split(b"\r\n", 1)[0].decode()


async def test_a_host_name_that_is_not_this_device_gets_421_for_page_and_websocket(start_monitor):
    """A DNS-rebinding page (attacker.example now resolving to 127.0.0.1) sends its own Host: refused (421),
    for the page, the QR code and the WebSocket upgrade; no Host at all is refused too."""
    monitor = await start_monitor()
    for host in (
        "attacker.example",
        "attacker.example:%d" % monitor.port,
        "127.0.0.1.attacker.example",
        None,
    ):
        for upgrade in (False, True):
            status = await asyncio.to_thread(raw_request, monitor.port, host, upgrade)
            assert status.startswith("HTTP/1.1 421 "), (host, upgrade, status)
    async with http_client() as http:
        for path in ("/", "/qr.svg", "/ws"):
            response = await http.get(
                "http://127.0.0.1:%d%s" % (monitor.port, path),
                headers={"Host": "rebind.example:%d" % monitor.port},
            )
            assert response.status_code == 421, path
    assert monitor.client_count == 0


async def test_loopback_own_names_and_the_address_connected_to_are_served(start_monitor):
    """Loopback names and addresses, the machine's host name (and NAME.local), and the address the
    client connected to are this device: the page is served and the WebSocket opens."""
    monitor = await start_monitor()
    name = socket.gethostname()
    for host in (
        "127.0.0.1:%d" % monitor.port,
        "localhost:%d" % monitor.port,
        "LOCALHOST",
        "[::1]:%d" % monitor.port,
        "127.0.0.1",
        "app.localhost",
        name,
        name.split(".")[0] + ".local",
        "localhost.",
    ):
        assert (await asyncio.to_thread(raw_request, monitor.port, host, False)) == "HTTP/1.1 200 OK", host
        assert (await asyncio.to_thread(raw_request, monitor.port, host, True)).startswith("HTTP/1.1 101 "), (
            host
        )


def test_monitor_host_and_the_address_connected_to_are_served():
    """monitor.host (a name) is this device, and so is the address the client reached (a LAN address
    typed into the browser); another name reaching the same address is not."""
    from websockets.datastructures import Headers

    class Transport:
        def get_extra_info(self, key):
            return ("192.168.1.20", 8765) if key == "sockname" else None

    class Connection:
        transport = Transport()

    monitor = iotlight.Monitor(host="pi.example", port=0, token="t", snapshot=make_snapshot)
    monitor._names = iotlight._own_host_names("Pi.Example.")
    allowed = {
        h: monitor._host_allowed(Connection(), Headers([("Host", h)]))
        for h in (
            "pi.example:8765",
            "PI.EXAMPLE.",
            "192.168.1.20:8765",
            "192.168.1.21",
            "rebind.example",
            "user@pi.example",
            "",
        )
    }
    assert allowed == {
        "pi.example:8765": True,
        "PI.EXAMPLE.": True,
        "192.168.1.20:8765": True,
        "192.168.1.21": False,
        "rebind.example": False,
        "user@pi.example": False,
        "": False,
    }
    assert not monitor._host_allowed(Connection(), Headers([("Host", "pi.example"), ("Host", "pi.example")]))
    assert iotlight._same_address("10.1.2.3", "::ffff:10.1.2.3")
    assert not iotlight._same_address("pi.example", "10.1.2.4")
    assert "0.0.0.0" not in iotlight._own_host_names("0.0.0.0")


# -- one address cannot take every slot -------------------------------------------------------


async def test_one_address_cannot_hold_every_slot_while_another_gets_in(start_monitor):
    """Connections from 127.0.0.1 stop at the per-address cap (429); a client from 127.0.0.2 still gets in
    although the monitor's total would have been reached by the first address alone."""
    monitor = await start_monitor(max_clients=12, max_clients_per_address=5)
    held = []
    refused = 0
    try:
        for _ in range(12):
            try:
                ws = await connect(url(monitor), open_timeout=WAIT)
            except InvalidStatus as exc:
                assert exc.response.status_code == 429
                assert (
                    exc.response.body == b"too many monitor connections from your address, close one first\n"
                )
                refused += 1
                continue
            held.append(ws)
            await recv_json(ws)
        assert (len(held), refused) == (5, 7)
        async with connect(url(monitor), local_addr=("127.0.0.2", 0), open_timeout=WAIT) as other:
            assert (await recv_json(other))["type"] == "state"
        await held.pop().close()
        await eventually(lambda: monitor.client_count == 4, "a slot to free")
        async with connect(url(monitor), open_timeout=WAIT) as again:  # the address may use its freed slot
            assert (await recv_json(again))["type"] == "state"
    finally:
        for ws in held:
            await ws.close()


def test_the_per_address_cap_is_a_config_key(tmp_path):
    """monitor.max_clients_per_address: default 10, 1 to 1000."""
    base = {"payment": {"asset_id": ASSET}}
    assert iotlight.parse_config(base, str(tmp_path / "c.toml")).monitor_max_clients_per_address == 10
    config = iotlight.parse_config(
        dict(base, monitor={"max_clients_per_address": 3}), str(tmp_path / "c.toml")
    )
    assert config.monitor_max_clients_per_address == 3
    with pytest.raises(iotlight.ConfigError):
        iotlight.parse_config(dict(base, monitor={"max_clients_per_address": 0}), str(tmp_path / "c.toml"))


# -- what clients send: rate, malformed, log quiet ---------------------------------------------


async def test_a_client_that_sends_too_fast_is_closed_and_a_polite_one_is_not(start_monitor, clock, caplog):
    """Messages beyond the per-connection budget (message_burst at once, then message_rate a second of
    the monitor's clock) close that connection (1008, one DEBUG line); a client within it stays."""
    caplog.set_level(logging.DEBUG, logger="iotlight.monitor")
    monitor = await start_monitor(message_rate=5.0, message_burst=10, clock=clock)
    async with connect(url(monitor)) as polite, connect(url(monitor)) as flooder:
        await recv_json(polite)
        await recv_json(flooder)
        peers = {ws: "127.0.0.1:%d" % ws.local_address[1] for ws in (polite, flooder)}

        def lines(ws, what):
            start = "monitor client %s %s" % (peers[ws], what)
            return [r.getMessage() for r in caplog.records if r.getMessage().startswith(start)]

        async def send(ws, n):
            for i in range(n):
                await ws.send(json.dumps({"type": "hello", "n": i}))

        await send(polite, 10)  # the whole burst at one instant of the monitor's clock
        await eventually(lambda: len(lines(polite, "sent ")) == 10, "the polite burst to be read")
        await send(flooder, 11)  # one over the burst
        assert await wait_closed_code(flooder) == 1008
        assert len(lines(flooder, "sent ")) == 10
        assert lines(flooder, "closed: ") == ["monitor client %s closed: sending too fast" % peers[flooder]]
        clock.advance(1.0)  # a second at 5 a second: five more may come
        await send(polite, 5)
        await eventually(lambda: len(lines(polite, "sent ")) == 15, "the polite client's next five")
        await assert_bystander_still_served(monitor, polite)
        assert lines(polite, "closed: ") == []
        await send(polite, 1)  # the budget is spent: one more is too many
        assert await wait_closed_code(polite) == 1008


async def test_a_deeply_nested_message_closes_the_connection_with_one_debug_line(start_monitor, caplog):
    """JSON nested deeper than the parser goes is malformed: close 1007 and one DEBUG line, never a traceback."""
    caplog.set_level(logging.DEBUG)
    monitor = await start_monitor(max_frame=4096)
    async with connect(url(monitor)) as bystander, connect(url(monitor)) as culprit:
        await recv_json(bystander)
        await recv_json(culprit)
        for frame in ("[" * 4000, '{"a":' * 800):
            caplog.clear()
            await culprit.send(frame)
            assert await wait_closed_code(culprit) == 1007
            await eventually(lambda: monitor.client_count == 1, "the culprit to be unregistered")
            records = [r for r in caplog.records if r.name.startswith("iotlight")]
            assert [r for r in records if r.levelno > logging.DEBUG or r.exc_info] == []
            assert [r.getMessage() for r in records if "closed: " in r.getMessage()] == [
                "monitor client %s closed: malformed json" % ("127.0.0.1:%d" % culprit.local_address[1])
            ]
            culprit = await connect(url(monitor))
            await recv_json(culprit)
        await assert_bystander_still_served(monitor, bystander)
        await culprit.close()


async def test_connecting_and_leaving_log_nothing_above_debug(start_monitor, caplog):
    """Bare connects, disconnects, page loads and refusals are DEBUG chatter, from us and from websockets."""
    monitor = await start_monitor(max_clients=2, max_clients_per_address=1)
    caplog.set_level(logging.INFO)
    caplog.clear()
    for _ in range(3):
        async with connect(url(monitor)) as ws:
            await recv_json(ws)
            with pytest.raises(InvalidStatus):  # over the per-address cap
                async with connect(url(monitor)):
                    pass
    async with http_client() as http:
        await http.get("http://127.0.0.1:%d/" % monitor.port)
        await http.get("http://127.0.0.1:%d/" % monitor.port, headers={"Host": "evil.example"})
    await eventually(lambda: monitor.client_count == 0, "the clients to be gone")
    assert [(r.name, r.getMessage()) for r in caplog.records if r.name.startswith("iotlight")] == []


async def test_the_token_never_reaches_the_log_even_at_debug(start_monitor, caplog):
    """With everything at DEBUG (websockets' request line and headers included) the token is masked."""
    caplog.set_level(logging.DEBUG)
    secret = "s3cret-token-NOT-for-logs"
    monitor = await start_monitor(token=secret)
    async with connect(url(monitor, "/?token=" + secret)) as ws:
        await recv_json(ws)
    with pytest.raises(InvalidStatus):
        async with connect(url(monitor, "/ws?token=" + secret + "x")):
            pass
    async with http_client() as http:
        page = "http://127.0.0.1:%d/?token=%s" % (monitor.port, secret)
        await http.get(
            "http://127.0.0.1:%d/qr.svg?a=1&token=%s" % (monitor.port, secret), headers={"Referer": page}
        )
    await monitor.close()
    text = "\n".join(logging.Formatter().format(r) for r in caplog.records if r.name.startswith("iotlight"))
    assert "token=***" in text, "the request lines are logged under DEBUG, masked"
    assert secret not in text


def test_the_log_formatter_masks_urls_from_any_library():
    """What reaches the daemon's log handler passes through redact_url, whichever logger wrote it."""
    record = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        'HTTP Request: GET %s "200 OK"',
        ("http://user:s3cret@127.0.0.1:6869/blocks/height?apikey=k3y&x=1",),
        None,
    )
    line = iotlight._LogFormatter(False).format(record)
    assert (
        line
        == 'INFO httpx: HTTP Request: GET http://user:***@127.0.0.1:6869/blocks/height?apikey=***&x=1 "200 OK"'
    )


# -- terminal client: one line per meaningful event ------------------------------------------


async def test_client_prints_one_line_per_event_and_matrix_frames_only_when_verbose(start_monitor):
    """The lamp's state told twice is one line; the countdown's matrix frames show only with verbose."""
    monitor = await start_monitor()
    for verbose in (False, True):
        out = io.StringIO()
        task = await run_client(url(monitor), out, as_json=False, verbose=verbose)
        try:
            await eventually(lambda out=out: " state " in out.getvalue(), "the state line")
            events = [{"type": "light", "on": True, "remaining": 2.5, "until": TS + 2.5}]
            events += [
                {"type": "matrix", "pixels": [[255, 255, 255]] * (64 - k) + [[0, 0, 0]] * k} for k in range(8)
            ]
            events += [
                {"type": "light", "on": True, "remaining": 2.498, "until": TS + 2.5004},
                {"type": "light", "on": False, "remaining": 0.0, "until": None},
                {"type": "joystick", "direction": "up", "action": "pressed"},
            ]
            for event in events:
                monitor.publish(dict(event, ts=TS))
            await eventually(lambda out=out: "joystick" in out.getvalue(), "the last line")
        finally:
            await stop(task)
        lines = [line.split(" ", 1)[1] for line in out.getvalue().splitlines()[1:]]
        matrix = ["matrix %d/64 pixels lit" % (64 - k) for k in range(8)] if verbose else []
        assert lines == ["light on, 2.5 s left"] + matrix + ["light off", "joystick up pressed"], verbose


def test_is_news_keeps_real_changes():
    """A new end time (a second payment) or a switch is news; the same state again is not."""
    on = {"type": "light", "on": True, "remaining": 10.0, "until": 100.0}
    assert iotlight.is_news(on, None, verbose=False)
    assert not iotlight.is_news(on, (True, 100.3), verbose=False)
    assert iotlight.is_news(on, (True, 90.0), verbose=False)
    assert iotlight.is_news(on, (False, None), verbose=False)
    assert not iotlight.is_news({"type": "matrix", "pixels": []}, None, verbose=False)
    assert iotlight.is_news({"type": "matrix", "pixels": []}, None, verbose=True)


async def test_client_returns_1_when_the_host_name_is_refused(start_monitor, monkeypatch, capsys):
    """A 421 (a name the device does not answer to) does not get better by retrying: one line, exit status 1."""
    monitor = await start_monitor()
    monkeypatch.setattr(monitor, "_host_allowed", lambda connection, headers: False)
    code = await iotlight.run_monitor_client(url(monitor), as_json=False, out=io.StringIO())
    assert code == 1
    assert capsys.readouterr().err == (
        "monitor: ws://127.0.0.1:%d/ refused that host name (HTTP 421): use the device's own name or address\n"
        % monitor.port
    )
