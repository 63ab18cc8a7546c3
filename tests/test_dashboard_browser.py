"""The dashboard page in a real headless Chromium (a process), fed by a real Monitor on 127.0.0.1 on its
own thread; the page runs under its Content-Security-Policy."""

from __future__ import annotations

import asyncio
import base64
import copy
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest
from harness import wait_until
from test_monitor import ADDRESS, SENDER, make_snapshot

import iotlight

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip(
        "chromium is not installed: apt-get install chromium chromium-driver to run the browser tests",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402  (only once we know there is a browser)
from selenium.webdriver.chrome.service import Service  # noqa: E402

pytestmark = [pytest.mark.timeout(180), pytest.mark.process]

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
WAIT = 60.0


def base_state():
    """The protocol tests' snapshot with the lamp off, as a freshly started daemon has it."""
    return dict(
        make_snapshot(),
        light={"on": False, "remaining": 0.0, "until": None},
        backend="sense-emu",
        balance={"coin": 99700000, "token": 12345, "decimals": 2},
    )


class MonitorThread:
    """A Monitor on its own event loop in a thread, so the synchronous browser test can drive it."""

    def __init__(self, token=""):
        self.token = token
        self.state = base_state()
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.monitor = None
        self.port = 0

    def snapshot(self):
        with self.lock:
            return copy.deepcopy(self.state)

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(WAIT)

    def start(self):
        self.monitor = iotlight.Monitor(
            host="127.0.0.1", port=self.port, token=self.token, snapshot=self.snapshot
        )
        self._call(self.monitor.start())
        self.port = self.monitor.port

    def stop(self):
        if self.monitor is not None:
            self._call(self.monitor.close())
            self.monitor = None

    def publish(self, message):
        async def publish():
            self.monitor.publish(message)

        self._call(publish())

    def url(self):
        return "http://127.0.0.1:%d/" % self.port + ("?token=%s" % self.token if self.token else "")

    def shutdown(self):
        self.stop()

        async def cancel_leftovers():
            # the loop ends here, so no task of it may be left pending (Monitor.close has
            # already cut the sockets a browser opened ahead and never used)
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._call(cancel_leftovers())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.close()


@pytest.fixture
def server():
    srv = MonitorThread()
    srv.start()
    try:
        yield srv
    finally:
        srv.shutdown()


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="iotlight-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--user-data-dir=" + profile,
        "--window-size=1280,900",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def js(driver, script, *args):
    return driver.execute_script(script, *args)


def text(driver, element_id):
    return js(
        driver, "var e = document.getElementById(arguments[0]); return e ? e.textContent : null;", element_id
    )


def attr(driver, element_id, name):
    return js(
        driver, "return document.getElementById(arguments[0]).getAttribute(arguments[1]);", element_id, name
    )


def blank_page(driver):
    """Leave the last test's page and drop what it logged.

    A page left open keeps retrying its WebSocket after its server is gone; when the next
    test's server is given the same free port, those retries are refused and logged as if
    they came from the new page.
    """
    driver.get("about:blank")
    driver.get_log("browser")


def open_live(driver, srv):
    """Load the page and wait until its WebSocket has delivered the snapshot."""
    blank_page(driver)
    driver.get(srv.url())
    wait_until(lambda: text(driver, "conn") == "live", WAIT, what="the page to connect")


def lit_light(seconds):
    until = time.time() + seconds
    return {"type": "light", "on": True, "remaining": float(seconds), "until": until}


# -- behaviour --------------------------------------------------------------------------


def test_page_loads_without_console_errors_and_shows_the_address(browser, server):
    """The page connects, shows the address and its QR code, and logs no console errors."""
    open_live(browser, server)
    assert text(browser, "address") == ADDRESS
    wait_until(
        lambda: js(
            browser, "var q = document.getElementById('qr'); return q.complete && q.naturalWidth > 0;"
        ),
        WAIT,
        what="the QR image to load",
    )
    assert text(browser, "node-status") == "online"
    assert text(browser, "node-height") == "123,456"
    assert text(browser, "balance-token") == "123.45"
    assert text(browser, "lamp-state") == "OFF"
    assert js(browser, "return document.querySelectorAll('#matrix [data-rgb]').length;") == 64
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []


def csp_messages(entries):
    return [e["message"] for e in entries if "Content Security Policy" in e["message"]]


def test_the_page_runs_under_its_content_security_policy_without_a_violation(browser, server):
    """The browser gets the page with its Content-Security-Policy and Referrer-Policy, runs its script and
    applies its style sheet under that policy, and logs no CSP violation (nor any error) while every card
    renders; an inline script injected afterwards is refused and logged, so the policy is in force and the
    console would have shown a violation."""
    selling_state(server)
    open_live(browser, server)
    js(
        browser,
        "window.violations = [];"
        "document.addEventListener('securitypolicyviolation', function (e) {"
        " window.violations.push(e.effectiveDirective); });",
    )
    for event in (
        lit_light(60),
        {"type": "matrix", "pixels": [[255, 200, 80]] * 64},
        {"type": "payment", "id": "Tx1", "sender": SENDER, "amount": 150, "seconds": 90.0, "height": 1},
        {"type": "data_tx", "id": "DataTx1", "status": "failed", "error": "fee too low"},
        {
            "type": "ignored",
            "id": "Tx2",
            "sender": SENDER,
            "amount": 1,
            "asset_id": None,
            "reason": "wrong_asset",
        },
        {"type": "refund", "payment_id": "Tx1", "id": "RefundTx1", "amount": 100, "status": "queued"},
        {"type": "node", "url": "http://127.0.0.1:6869", "ok": False, "height": None, "error": "timed out"},
        {"type": "balance", "coin": 99600000, "token": 12495, "decimals": 2},
        {"type": "outbox", "pending": 2, "no_funds": True},
        {"type": "warnings", "lines": [WARNING]},
        {"type": "joystick", "direction": "up", "action": "pressed"},
        {"type": "telemetry", "temperature_c": 25.5, "ts": time.time()},
    ):
        server.publish(event)
    wait_until(
        lambda: "25.5 \u00b0C" in (text(browser, "telemetry") or ""), WAIT, what="the last event shown"
    )
    assert text(browser, "warnings") == WARNING and text(browser, "lamp-state") == "ON"
    headers = browser.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "fetch(location.href).then(function (r) {"
        " done([r.headers.get('Content-Security-Policy'), r.headers.get('Referrer-Policy')]); });"
    )
    assert headers == [iotlight.dashboard_csp(), "no-referrer"]
    assert "unsafe-inline" not in headers[0]
    assert js(browser, "return getComputedStyle(document.body).backgroundColor;") == "rgb(11, 14, 20)"
    console = browser.get_log("browser")
    assert csp_messages(console) == [] and [e for e in console if e["level"] == "SEVERE"] == []
    assert js(browser, "return window.violations;") == []
    js(
        browser,
        "var s = document.createElement('script'); s.textContent = 'window.injected = true;';"
        "document.body.appendChild(s);",
    )
    wait_until(
        lambda: js(browser, "return window.violations.length;"),
        WAIT,
        what="the injected script to be refused",
    )
    assert js(browser, "return window.violations;") == ["script-src-elem"]
    assert not js(browser, "return !!window.injected;")
    assert wait_until(
        lambda: csp_messages(browser.get_log("browser")), WAIT, what="the violation in the console"
    )


def test_light_and_matrix_events_light_the_lamp_and_count_down(browser, server):
    """After light-on and matrix events the lamp shows ON, the cells the colour, the time falls."""
    open_live(browser, server)
    server.publish(lit_light(120))
    server.publish({"type": "matrix", "pixels": [[255, 200, 80]] * 64})
    wait_until(lambda: attr(browser, "lamp-state", "data-on") == "true", WAIT, what="the lamp to show ON")
    assert text(browser, "lamp-state") == "ON"
    wait_until(
        lambda: js(
            browser,
            "return Array.from(document.querySelectorAll('#matrix [data-rgb]'))"
            ".every(function (c) { return c.getAttribute('data-rgb') === '255,200,80'; });",
        ),
        WAIT,
        what="all 64 cells to take the colour",
    )
    first = float(attr(browser, "remaining", "data-seconds"))
    assert 100 < first <= 120
    wait_until(
        lambda: float(attr(browser, "remaining", "data-seconds")) < first - 0.3,
        WAIT,
        what="the countdown to go down",
    )
    first_text = text(browser, "remaining")
    wait_until(lambda: text(browser, "remaining") != first_text, WAIT, what="the displayed time to change")
    assert text(browser, "remaining") < first_text  # "1:57" < "1:58": same shape, later is smaller
    server.publish({"type": "light", "on": False, "remaining": 0.0, "until": None})
    wait_until(lambda: text(browser, "lamp-state") == "OFF", WAIT, what="the lamp to show OFF")
    assert text(browser, "remaining") == "0:00"


def test_events_fill_payments_data_txs_node_balance_and_joystick(browser, server):
    """Each event type updates its card: payments, Data txs, node, balance, outbox, the joystick pad."""
    open_live(browser, server)
    server.publish(
        {"type": "payment", "id": "Tx1", "sender": SENDER, "amount": 150, "seconds": 90.0, "height": 1}
    )
    server.publish({"type": "data_tx", "id": "DataTx1", "status": "queued"})
    server.publish({"type": "data_tx", "id": "DataTx1", "status": "failed", "error": "fee too low"})
    server.publish(
        {"type": "node", "url": "http://127.0.0.1:6869", "ok": False, "height": None, "error": "timed out"}
    )
    server.publish({"type": "balance", "coin": 99600000, "token": 12495, "decimals": 2})
    server.publish({"type": "outbox", "pending": 2, "no_funds": True})
    server.publish({"type": "joystick", "direction": "up", "action": "pressed"})
    wait_until(lambda: "1.5 tokens" in (text(browser, "payments") or ""), WAIT, what="the payment row")
    assert SENDER in text(browser, "payments")
    assert "1:30" in text(browser, "payments")
    wait_until(lambda: "failed" in text(browser, "datatxs"), WAIT, what="the Data tx row")
    assert js(browser, "return document.querySelectorAll('#datatxs li').length;") == 1
    assert "fee too low" in text(browser, "datatxs")
    wait_until(lambda: text(browser, "node-status") == "offline", WAIT, what="the node to show offline")
    assert text(browser, "node-url") == "timed out"
    wait_until(lambda: text(browser, "balance-token") == "124.95", WAIT, what="the new balance")
    assert text(browser, "balance-coin") == "0.996"
    wait_until(
        lambda: text(browser, "outbox") == "outbox 2 pending \u00b7 no funds for fees",
        WAIT,
        what="the outbox line",
    )
    wait_until(
        lambda: js(browser, "return document.getElementById('joy-up').classList.contains('on');"),
        WAIT,
        what="the up key to light",
    )
    server.publish({"type": "joystick", "direction": "up", "action": "released"})
    wait_until(
        lambda: not js(browser, "return document.getElementById('joy-up').classList.contains('on');"),
        WAIT,
        what="the up key to go dark on release",
    )


def test_page_reconnects_after_the_server_restarts(browser, server):
    """When the monitor goes away the page says so, retries, and takes the new snapshot."""
    open_live(browser, server)
    server.stop()
    wait_until(
        lambda: js(browser, "return document.getElementById('conn').className;") == "offline",
        WAIT,
        what="the page to notice the restart",
    )
    with server.lock:
        server.state["node"] = {"url": "http://127.0.0.1:6869", "ok": True, "height": 777}
    server.start()
    wait_until(lambda: text(browser, "conn") == "live", WAIT, what="the page to reconnect")
    wait_until(
        lambda: text(browser, "node-height") == "777", WAIT, what="the new snapshot to replace the old"
    )


def test_token_from_the_page_url_reaches_the_websocket_and_qr(browser):
    """With a token the page passes ?token= on to the WebSocket and the QR request."""
    srv = MonitorThread(token="s3cret-token")
    srv.start()
    try:
        open_live(browser, srv)
        assert text(browser, "address") == ADDRESS
        wait_until(
            lambda: js(
                browser, "var q = document.getElementById('qr'); return q.complete && q.naturalWidth > 0;"
            ),
            WAIT,
            what="the QR image to load with the token",
        )
    finally:
        srv.shutdown()


# -- selling: price, pay link, explorer links, ignored payments, warnings, legend, charts -----

EXPLORER = "https://wavesexplorer.com/testnet/tx/{id}"
PAY_ID = "5ZqkQ6CZUnTy1nHCp7Bq3xSYvUtmuiVXe5LRDUb6Y1R2"
DATA_ID = "2KVs1zzjXCw7EUWME5phMpV3moQ2rurpHscxqojzF2J7"
WARNING = (
    "The device cannot pay the fees of its Data transactions (it holds 0.00 coins): send it some WAVES, "
    "e.g. `sudo iotlight pay --seed-file FUNDED.seed --asset WAVES %s 0.1`." % ADDRESS
)


def selling_state(srv, *, telemetry=True):
    now = time.time()
    presets = iotlight.pay_presets(
        seconds_per_token=6.0,
        max_seconds=3600.0,
        decimals=2,
        template=iotlight.WALLET_URLS["T"],
        asset=srv.state["asset_id"],
        address=ADDRESS,
    )
    sold = [0.0] * 24
    sold[-1], sold[-5] = 120.0, 600.0
    with srv.lock:
        srv.state.update(
            token={"name": "IoT-Light", "decimals": 2},
            price={"seconds_per_token": 6.0, "max_seconds": 3600.0},
            links={"wallet": iotlight.WALLET_URLS["T"], "explorer": EXPLORER},
            pay=presets,
            status={
                "name": "ok",
                "legend": [
                    {"name": k, "rgb": list(iotlight.STATUS_COLORS[k]), "meaning": v}
                    for k, v in iotlight.STATUS_MEANINGS.items()
                ],
            },
            warnings=[],
            light_sold={"start_ms": int((now // 3600 - 23) * 3600 * 1000), "seconds": sold},
            payments=[
                {"id": PAY_ID, "sender": SENDER, "amount": 250, "seconds": 15.0, "height": 99, "ts": now - 30}
            ],
            data_txs=[{"id": DATA_ID, "status": "confirmed", "ts": now - 20}],
        )
        if telemetry:
            srv.state["telemetry"] = [
                {
                    "ts": now - 3600 + 60 * i,
                    "temperature_c": 20 + i / 30,
                    "humidity_pct": 40 + (i % 7),
                    "pressure_hpa": 1013 - i / 60,
                }
                for i in range(60)
            ]
    return presets


def test_the_pay_card_shows_token_price_and_a_wallet_link_with_the_amount_filled_in(browser, server):
    """The pay card shows the price, one button per preset, and the chosen preset's wallet link and QR code."""
    presets = selling_state(server)
    open_live(browser, server)
    price = text(browser, "price")
    assert "1 IoT-Light = 0:06 of light" in price and "at most 1:00:00 at a time" in price
    buttons = js(
        browser,
        "return Array.from(document.querySelectorAll('#presets button'))"
        ".map(function (b) { return b.textContent; });",
    )
    assert buttons == [
        "%s IoT-Light \u00b7 %s" % (p["amount"], d)
        for p, d in zip(presets, ["0:30", "1:00", "5:00", "15:00"])
    ]
    assert attr(browser, "pay-link", "href") == presets[1]["link"]  # 1 minute is the default choice
    js(browser, "document.querySelectorAll('#presets button')[2].click();")
    assert attr(browser, "pay-link", "href") == presets[2]["link"]
    assert "recipient=%s" % ADDRESS in presets[2]["link"] and "amount=50&" in presets[2]["link"]
    wait_until(
        lambda: "amount=50" in (attr(browser, "qr", "src") or ""),
        WAIT,
        what="the QR code of the chosen amount",
    )
    wait_until(
        lambda: js(
            browser, "var q = document.getElementById('qr'); return q.complete && q.naturalWidth > 0;"
        ),
        WAIT,
        what="the QR image to load",
    )
    assert "IoT-Light" in text(browser, "asset")


def test_every_transaction_id_links_to_the_explorer_and_ignored_payments_show_why(browser, server):
    """Every transaction id links to the explorer; an ignored payment is listed with why; a refund shows."""
    selling_state(server)
    open_live(browser, server)
    hrefs = js(
        browser,
        "return Array.from(document.querySelectorAll('a.txid')).map(function (a) { return a.href; });",
    )
    assert EXPLORER.replace("{id}", PAY_ID) in hrefs and EXPLORER.replace("{id}", DATA_ID) in hrefs
    forged = "3sXhNwbWXgqkv3fmZ6Hmng4uNJ3UJrKzRtBuXzERXvVG"
    server.publish(
        {
            "type": "ignored",
            "id": forged,
            "sender": SENDER,
            "amount": 500,
            "asset_id": "OtherToken",
            "reason": "wrong_asset",
            "ts": time.time(),
        }
    )
    row = "document.querySelector('#payments li[data-id=\"%s\"]')" % forged
    wait_until(lambda: js(browser, "return !!" + row + ";"), WAIT, what="the ignored payment in the list")
    assert "not counted: another token" in js(browser, "return %s.textContent;" % row)
    assert js(browser, "return %s.classList.contains('ignored');" % row)
    assert js(browser, "return %s.querySelector('a.txid').href;" % row) == EXPLORER.replace("{id}", forged)
    server.publish(
        {
            "type": "refund",
            "payment_id": PAY_ID,
            "id": "RefundTx1111111111111111111111111111111111",
            "amount": 100,
            "status": "broadcast",
            "ts": time.time(),
        }
    )
    wait_until(
        lambda: "refund" in (text(browser, "datatxs") or ""), WAIT, what="the refund in the transaction list"
    )


def test_warnings_show_in_full_and_the_legend_says_what_the_status_pixel_means(browser, server):
    """On a phone a warning shows in full, wrapped, and the legend marks what the status pixel means now."""
    selling_state(server)
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True},
    )
    try:
        open_live(browser, server)
        legend = text(browser, "legend")
        for meaning in iotlight.STATUS_MEANINGS.values():
            assert meaning in legend
        assert (
            js(browser, "return document.querySelector('#legend .current').getAttribute('data-status');")
            == "ok"
        )
        server.publish({"type": "outbox", "pending": 2, "no_funds": True})
        server.publish({"type": "warnings", "lines": [WARNING]})
        wait_until(lambda: text(browser, "warnings") == WARNING, WAIT, what="the warning, in full")
        assert (
            js(browser, "return document.querySelector('#legend .current').getAttribute('data-status');")
            == "no_funds"
        )
        box = js(
            browser,
            "var r = document.querySelector('#warnings div').getBoundingClientRect();"
            "return [r.left, r.right, document.querySelector('#warnings div').scrollWidth,"
            " document.querySelector('#warnings div').clientWidth];",
        )
        assert box[0] >= 0 and box[1] <= 390 and box[2] <= box[3]  # wrapped, not cut
        assert js(browser, "return document.documentElement.scrollWidth;") <= 390
        server.publish({"type": "warnings", "lines": []})
        wait_until(lambda: text(browser, "warnings") == "", WAIT, what="the warning to go")
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_charts_draw_light_sold_per_hour_and_the_sensors(browser, server):
    """The charts draw the light sold in each of 24 hours (a new payment counted) and the three sensors."""
    selling_state(server)
    open_live(browser, server)
    bars = "document.querySelectorAll('#chart-sold rect.sold-bar')"
    assert js(browser, "return %s.length;" % bars) == 24
    heights = js(
        browser, "return Array.from(%s).map(function (r) { return +r.getAttribute('height'); });" % bars
    )
    assert heights[-5] > heights[-1] > 0 and heights[0] == 0
    assert "12:00 of light" in text(browser, "chart-sold")
    server.publish(
        {
            "type": "payment",
            "id": "Tx9",
            "sender": SENDER,
            "amount": 1000,
            "seconds": 60.0,
            "height": 100,
            "ts": time.time(),
        }
    )
    wait_until(
        lambda: "13:00 of light" in (text(browser, "chart-sold") or ""),
        WAIT,
        what="the chart to count the new payment",
    )
    for sensor in ("temperature_c", "humidity_pct", "pressure_hpa"):
        assert js(
            browser, "return !!document.querySelector('#telemetry svg[data-sensor=%s] polyline');" % sensor
        )
    server.publish({"type": "telemetry", "temperature_c": 25.5, "ts": time.time()})
    wait_until(
        lambda: "25.5 \u00b0C" in (text(browser, "telemetry") or ""), WAIT, what="the newest temperature"
    )


# -- looks -----------------------------------------------------------------------------------


def fill_for_screenshot(srv):
    selling_state(srv)
    now = time.time()
    with srv.lock:
        srv.state["payments"] = [
            {
                "type": "payment",
                "id": "Tx%d" % i,
                "sender": s,
                "amount": a,
                "seconds": a / 100 * 60,
                "height": 1000 - i,
                "ts": now - 40 * i,
            }
            for i, (s, a) in enumerate(
                [
                    (SENDER, 250),
                    ("3N4ZKqQmeVh2eCMDhTW6oGSd8f1NHhLQRDy", 1000),
                    ("3MrDis17gyNSusZDg8Eo1PuFnm5SQMda3gu", 100),
                ]
            )
        ]
        srv.state["data_txs"] = [
            {
                "type": "data_tx",
                "id": "2KVs1zzjXCw7EUWME5phMpV3moQ2rurpHscxqojzF2J7",
                "status": "confirmed",
                "ts": now - 90,
            },
            {
                "type": "data_tx",
                "id": "4L8TKFDc2rSnxoDTXpVdy6FYrhqak6KDxemnCsF8evZW",
                "status": "broadcast",
                "ts": now - 20,
            },
            {
                "type": "data_tx",
                "id": "9hVn3rEmoSPQPJ5hKmCcrWPN1H2YTaBuGHEqqrtKxiBU",
                "status": "failed",
                "error": "insufficient fee: pay at least 0.001 WAVES",
                "ts": now - 5,
            },
        ]
        srv.state["light"] = {"on": True, "remaining": 95.0, "until": now + 95.0}
        warm = [255, 214, 120]
        srv.state["matrix"] = [
            warm if i < 56 else ([255, 140, 40] if i < 61 else [0, 0, 0]) for i in range(64)
        ]
        srv.state["joystick"] = {"type": "joystick", "direction": "left", "action": "pressed", "ts": now - 12}
        srv.state["ignored"] = [
            {
                "id": "3sXhNwbWXgqkv3fmZ6Hmng4uNJ3UJrKzRtBuXzERXvVG",
                "sender": SENDER,
                "amount": 1,
                "asset_id": srv.state["asset_id"],
                "reason": "below_minimum",
                "ts": now - 60,
            }
        ]


@pytest.mark.parametrize(
    "name, width, height, mobile",
    [("phone", 390, 844, True), ("desktop", 1920, 1080, False)],
)
def test_screenshots_at_phone_and_desktop_sizes(browser, server, name, width, height, mobile):
    """The page fits a phone without sideways scrolling and fills a projector; screenshots saved."""
    fill_for_screenshot(server)
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )
    try:
        open_live(browser, server)
        server.publish({"type": "joystick", "direction": "up", "action": "held"})
        wait_until(
            lambda: js(browser, "return document.getElementById('joy-up').classList.contains('on');"),
            WAIT,
            what="the joystick to light",
        )
        wait_until(
            lambda: js(
                browser, "var q = document.getElementById('qr'); return q.complete && q.naturalWidth > 0;"
            ),
            WAIT,
            what="the QR image to load",
        )
        wait_until(
            lambda: js(browser, "return getComputedStyle(document.querySelector('main')).opacity;") == "1",
            WAIT,
            what="the page to fade in",
        )
        wait_until(
            lambda: (
                js(browser, "return getComputedStyle(document.querySelector('#matrix .px')).backgroundColor;")
                == "rgb(255, 214, 120)"
            ),
            WAIT,
            what="the matrix colour transition to end",
        )
        assert js(browser, "return document.documentElement.scrollWidth;") <= width
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / ("dashboard-%s.png" % name)
        assert browser.save_screenshot(str(path))
        assert path.stat().st_size > 10000
        if mobile:
            full = browser.execute_cdp_cmd(
                "Page.captureScreenshot", {"captureBeyondViewport": True, "format": "png"}
            )
            (ARTIFACTS / ("dashboard-%s-full.png" % name)).write_bytes(base64.b64decode(full["data"]))
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_real_daemon_payment_lights_the_dashboard(browser, chain, device):
    """The real daemon against the fake node: after a payment the page shows the lamp lit and counting down."""
    blank_page(browser)  # before the port is chosen: the last test's page may retry on it
    port = device.start_with_monitor()
    browser.get("http://127.0.0.1:%d/" % port)
    wait_until(lambda: text(browser, "conn") == "live", WAIT, what="the page to connect to the daemon")
    assert text(browser, "address") == device.address
    assert text(browser, "lamp-state") == "OFF"
    chain.transfer(chain.treasury, device.address, 3000, asset_id=chain.asset)  # 30 tokens: 30 s
    wait_until(
        lambda: text(browser, "lamp-state") == "ON", WAIT, what="the lamp to show ON after the payment"
    )
    first = float(attr(browser, "remaining", "data-seconds"))
    assert 20 < first <= 30
    wait_until(
        lambda: float(attr(browser, "remaining", "data-seconds")) < first - 0.5,
        WAIT,
        what="the countdown to go down",
    )
    wait_until(
        lambda: (
            js(browser, "return document.querySelectorAll('#matrix [data-rgb=\"255,255,255\"]').length;")
            >= 56
        ),
        WAIT,
        what="the matrix cells to show the lit lamp",
    )
    wait_until(
        lambda: (
            device.address[:6] not in (text(browser, "payments") or "")
            and "30" in (text(browser, "payments") or "")
        ),
        WAIT,
        what="the payment in the list",
    )
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
