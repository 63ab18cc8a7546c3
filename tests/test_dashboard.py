"""The dashboard without a browser: pay presets, payment links, explorer links, the light-sold chart's
data, telemetry history, the QR code of a pay link, the real Daemon's snapshot (on the virtual clock)
and the page's Content-Security-Policy."""

from __future__ import annotations

import base64
import hashlib
import html.parser
import io
import json

import pytest
from scenario import Scenario, VirtualClock
from test_monitor import (  # noqa: F401 (fixtures)
    ADDRESS,
    ASSET,
    anyio_backend,
    http_client,
    make_snapshot,
    start_monitor,
)

import iotlight

TESTNET_WALLET = iotlight.WALLET_URLS["T"]


def presets(**kw):
    args = dict(
        seconds_per_token=1.0,
        max_seconds=3600.0,
        decimals=2,
        template=TESTNET_WALLET,
        asset=ASSET,
        address=ADDRESS,
    )
    args.update(kw)
    return iotlight.pay_presets(**args)


def test_pay_presets_buy_at_least_their_light_time_in_the_tokens_decimals():
    """Each preset's amount, rounded up to the token's decimals, buys at least its light time and not a unit more."""
    got = presets(seconds_per_token=7.0, decimals=2)
    assert [p["amount"] for p in got] == ["4.29", "8.58", "42.86", "128.58"]
    for p, wanted in zip(got, iotlight.PAY_PRESET_SECONDS):
        assert p["units"] == int(p["amount"].replace(".", ""))
        assert p["seconds"] >= wanted  # rounding up never sells less than the button says
        assert iotlight.payment_seconds(p["units"] - 1, 2, 7.0) < wanted  # and not a unit more than needed


def test_pay_presets_stop_at_the_cap_and_respect_a_minimum():
    """Presets stop at payment.max_seconds, never go under the minimum, and are whole tokens when the decimals are unknown."""
    got = presets(max_seconds=45.0, decimals=0)
    assert [(p["amount"], p["seconds"]) for p in got] == [("30", 30.0), ("45", 45.0)]
    got = presets(decimals=0, min_units=100)
    assert [p["amount"] for p in got] == ["100", "300", "900"]  # 30 s and 60 s both round up to the minimum
    assert (
        presets(decimals=None, seconds_per_token=0.5)[0]["amount"] == "60"
    )  # unknown decimals: whole tokens


def test_pay_presets_carry_the_wallet_link_with_token_device_and_amount():
    """Each preset links to the wallet with the token, the device and its amount filled in; no template, no link."""
    link = presets(decimals=2)[0]["link"]
    assert link == (
        "https://testnet.waves.exchange/#send/%s?recipient=%s&amount=30&strict" % (ASSET, ADDRESS)
    )
    assert all(p["link"] == "" for p in presets(template=""))


def test_payment_link_quotes_what_it_fills_in():
    """What payment_link fills into the template is URL-quoted."""
    link = iotlight.payment_link(
        "https://w.example/pay?to={address}&a={amount}&t={asset}",
        asset="a b",
        address="alias:T:x&y",
        amount="1.5",
    )
    assert link == "https://w.example/pay?to=alias%3AT%3Ax%26y&a=1.5&t=a%20b"


def test_tokens_text():
    """tokens_text turns smallest units into a trimmed decimal amount."""
    assert iotlight.tokens_text(150, 2) == "1.5"
    assert iotlight.tokens_text(100, 2) == "1"
    assert iotlight.tokens_text(7, 8) == "0.00000007"
    assert iotlight.tokens_text(42, 0) == "42"


def test_tokens_text_is_the_one_amount_formatter():
    """With and without a name, trimmed or with every decimal, signed; the CLI's coins, the terminal
    monitor's amounts and balances and the dashboard's presets all say it the same way."""
    assert iotlight.tokens_text(150, 2, trim=False) == "1.50"
    assert iotlight.tokens_text(500, 2, "IoT-Light", trim=False) == "5.00 IoT-Light"
    assert iotlight.tokens_text(42, 0, "IoT-Light", trim=False) == "42 IoT-Light"
    assert iotlight.tokens_text(-150, 2, trim=False) == "-1.50"
    assert iotlight.tokens_text(-100000, 8, "WAVES") == "-0.001 WAVES"
    assert iotlight.tokens_text(0, 8, "WAVES") == "0 WAVES"
    assert iotlight.format_coins(100000, "0bs") == iotlight.tokens_text(100000, 8, "ZBS") == "0.001 ZBS"
    line = iotlight.format_event({"type": "balance", "token": 1234, "decimals": 2, "coin": 150000000})
    assert line.endswith("balance 12.34 tokens, 1.50000000 coin")
    line = iotlight.format_event({"type": "payment", "sender": "3Mx", "amount": -5, "seconds": 1}, decimals=1)
    assert "-0.5 tokens" in line
    line = iotlight.format_event({"type": "balance", "token": 7, "decimals": None})
    assert line[9:] == "balance 7 units, ? coin"


# -- configuration ------------------------------------------------------------------------


def config(tmp_path, chain="T", **monitor):
    table = {"node": {"chain_id": chain}, "payment": {"asset_id": ASSET}, "monitor": monitor}
    return iotlight.parse_config(table, str(tmp_path / "iotlight.toml"))


@pytest.mark.parametrize("chain", ["W", "T", "S"])
def test_wallet_and_explorer_default_to_the_chains_public_ones(tmp_path, chain):
    """On W, T and S the wallet and explorer links default to the chain's public ones."""
    c = config(tmp_path, chain)
    assert c.wallet_url == iotlight.WALLET_URLS[chain]
    assert c.explorer_url == iotlight.EXPLORER_URLS[chain]


def test_a_custom_chain_has_no_default_links_and_empty_turns_them_off(tmp_path):
    """A custom chain has no default links, "" turns them off, and a custom explorer is kept."""
    c = config(tmp_path, "R")
    assert (c.wallet_url, c.explorer_url) == ("", "")
    c = config(tmp_path, "T", wallet_url="", explorer_url="")
    assert (c.wallet_url, c.explorer_url) == ("", "")
    c = config(tmp_path, "R", explorer_url="http://explorer.lan/tx/{id}")
    assert c.explorer_url == "http://explorer.lan/tx/{id}"


@pytest.mark.parametrize(
    "key, value",
    [
        ("wallet_url", "javascript:alert(1)//{address}"),
        ("wallet_url", "https://wallet.example/#send"),  # pays nobody: no {address}
        ("explorer_url", "https://explorer.example/tx/"),  # no {id}
        ("explorer_url", "ftp://explorer.example/{id}"),
    ],
)
def test_bad_links_are_a_config_error_naming_the_key(tmp_path, key, value):
    """A link that is no http(s) URL or lacks its placeholder is a ConfigError naming the key."""
    with pytest.raises(iotlight.ConfigError, match="monitor.%s" % key):
        config(tmp_path, "T", **{key: value})


# -- the state file's history for the charts -------------------------------------------------


def test_light_sold_by_hour_sums_each_hour_of_the_last_day(tmp_path):
    """light_sold_by_hour sums the light sold in each of the last 24 hours, older payments left out."""
    store = iotlight.Store(str(tmp_path / "s.db"))
    try:
        hour = 3_600_000
        now_ms = 1_000 * hour + 1_234_567  # 20 min into hour 1000
        rows = [
            ("a", 10.0, now_ms),
            ("b", 5.5, now_ms - 60_000),
            ("c", 30.0, now_ms - 2 * hour),
            ("d", 99.0, now_ms - 30 * hour),
        ]  # d: older than a day, left out
        with store.transaction() as db:
            for txid, secs, ms in rows:
                db.execute("INSERT INTO payments VALUES (?, 'S', 100, 1, ?, 0, 0, ?)", (txid, secs, ms))
        sold = store.light_sold_by_hour(now_ms)
        assert sold["start_ms"] == (1000 - 23) * hour
        assert len(sold["seconds"]) == 24
        assert sold["seconds"][-1] == 15.5 and sold["seconds"][-3] == 30.0
        assert sum(sold["seconds"]) == 45.5
    finally:
        store.close()


def test_telemetry_history_reads_back_the_readings_oldest_first(tmp_path):
    """telemetry_history gives the readings stored since a time, oldest first, a failed sensor left out."""
    clock = VirtualClock(wall_start=1_700_000_000.0)
    store = iotlight.Store(str(tmp_path / "s.db"), clock)
    try:
        for reading in (
            {"temperature_c": 21.25, "humidity_pct": 40.0, "pressure_hpa": 1013.2},
            {"temperature_c": 21.5, "humidity_pct": None, "pressure_hpa": 1013.0},
        ):
            store.add_event("telemetry", iotlight.telemetry_entries(reading, clock.ms()))
            clock.advance(60)
        got = store.telemetry_history(0)
        assert got == [
            {"ts": 1_700_000_000.0, "temperature_c": 21.25, "humidity_pct": 40.0, "pressure_hpa": 1013.2},
            {"ts": 1_700_000_060.0, "temperature_c": 21.5, "pressure_hpa": 1013.0},
        ]
        assert store.telemetry_history(1_700_000_030_000) == got[1:]
    finally:
        store.close()
        clock.loop.close()


# -- the QR code of a pay link ----------------------------------------------------------------


def qr_svg(text):
    segno = pytest.importorskip("segno")
    buf = io.BytesIO()
    segno.make(text, error="m", micro=False).save(
        buf, kind="svg", scale=1, border=4, omitsize=True, xmldecl=False, dark="#000", light="#fff"
    )
    return buf.getvalue().decode()


@pytest.mark.anyio
async def test_qr_code_holds_the_pay_link_of_a_preset_and_nothing_else(start_monitor):  # noqa: F811 (a fixture)
    """/qr.svg?amount=A is the QR code of that preset's wallet link; without one, or with an amount the
    daemon did not offer, it is the bare address."""
    snap = make_snapshot()
    snap["pay"] = presets(decimals=2)
    monitor = await start_monitor(snapshot=lambda: snap)
    base = "http://127.0.0.1:%d/qr.svg" % monitor.port
    async with http_client() as http:
        plain = (await http.get(base)).text
        paid = (await http.get(base, params={"amount": snap["pay"][1]["amount"]})).text
        forged = (await http.get(base, params={"amount": "1000000"})).text
    assert plain == qr_svg(ADDRESS)
    assert paid == qr_svg(snap["pay"][1]["link"])
    assert forged == plain  # an amount the daemon did not offer gets the bare address


def test_the_snapshot_is_json_with_the_selling_fields(tmp_path):
    """The real Daemon's snapshot carries what the page sells with (token, price, links, presets,
    legend, warnings, the chart's hours) and stays plain JSON."""
    s = Scenario(tmp_path, payment__max_seconds=3600.0)
    s.node.refuse(503)  # no node answers from the start: the token's decimals stay unknown
    s.start()
    try:
        s.run_until(lambda: s.daemon.node_state["ok"] is False, 300, "the node to be seen down")
        snap = json.loads(json.dumps(s.daemon.snapshot()))
        assert snap["price"] == {
            "seconds_per_token": 1.0,
            "max_seconds": 3600.0,
            "min_tokens": 0.0,
            "refund": "none",
        }
        assert snap["links"] == {"wallet": iotlight.WALLET_URLS["T"], "explorer": iotlight.EXPLORER_URLS["T"]}
        assert [p["amount"] for p in snap["pay"]] == ["30", "60", "300", "900"]  # decimals not known yet
        assert all(p["link"].startswith("https://testnet.waves.exchange/#send/") for p in snap["pay"])
        assert {i["name"] for i in snap["status"]["legend"]} == set(iotlight.STATUS_COLORS)
        assert snap["status"]["name"] == "node_down"
        error = snap["node"]["error"]
        assert "503" in error
        assert any(("No node answers (%s)" % error) in w for w in snap["warnings"]), snap["warnings"]
        assert len(snap["light_sold"]["seconds"]) == 24
        s.daemon.tell("balance", token=None, coin=50000)  # what the watcher and the outbox tell
        s.daemon.tell("funds", ok=False)
        snap = json.loads(json.dumps(s.daemon.snapshot()))
        assert snap["status"]["name"] == "no_funds"
        fee_warning = snap["warnings"][0]
        assert "(it holds 0.0005 WAVES)" in fee_warning
        assert "`sudo iotlight pay --seed-file FUNDED.seed --asset WAVES %s 0.1`" % s.address in fee_warning
    finally:
        s.close()


# -- the page's Content-Security-Policy -----------------------------------------------------------


class PageParts(html.parser.HTMLParser):
    """The page's <script> and <style> elements (attributes and text as served) and every attribute
    that only 'unsafe-inline' would let run: on* handlers, style="...", javascript: URLs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.elements = {"script": [], "style": []}
        self.inline = []
        self.inside = None

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if (
                name.startswith("on")
                or name == "style"
                or (value or "").strip().lower().startswith("javascript:")
            ):
                self.inline.append((tag, name, value))
        if tag in self.elements:
            self.elements[tag].append([dict(attrs), ""])
            self.inside = tag

    def handle_endtag(self, tag):
        if tag == self.inside:
            self.inside = None

    def handle_data(self, data):
        if self.inside:
            self.elements[self.inside][-1][1] += data


def sha256_source(text):
    return "'sha256-%s'" % base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()


@pytest.mark.anyio
async def test_the_page_allows_its_one_script_and_style_by_hash_and_nothing_inline(start_monitor):  # noqa: F811
    """The page's Content-Security-Policy allows its one <script> and one <style> by their SHA-256 hashes
    (the hashes of exactly the text served), never 'unsafe-inline' or 'unsafe-eval', and nothing from
    elsewhere; the page has no handler or style attribute the policy would block."""
    monitor = await start_monitor()
    async with http_client() as http:
        response = await http.get("http://127.0.0.1:%d/" % monitor.port)
    assert response.status_code == 200
    page = PageParts()
    page.feed(response.content.decode("utf-8"))
    page.close()
    assert [len(page.elements["script"]), len(page.elements["style"])] == [1, 1]
    ((script_attrs, script),), ((style_attrs, style),) = page.elements["script"], page.elements["style"]
    assert script_attrs == {} and style_attrs == {}, "inline, no src"
    assert script.strip() and style.strip()
    header = response.headers["Content-Security-Policy"]
    assert header == iotlight.dashboard_csp()
    policy = {}
    for directive in header.split(";"):
        name, *sources = directive.split()
        assert name not in policy, name
        policy[name] = sources
    assert policy == {
        "default-src": ["'none'"],
        "script-src": [sha256_source(script)],
        "style-src": [sha256_source(style)],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'", "ws:", "wss:"],
        "base-uri": ["'none'"],
        "form-action": ["'none'"],
        "frame-ancestors": ["'none'"],
    }
    assert "unsafe" not in header
    assert page.inline == []
    assert response.headers["Referrer-Policy"] == "no-referrer"
