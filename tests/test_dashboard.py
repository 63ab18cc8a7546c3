"""The dashboard's selling parts without a browser: pay presets, payment links, explorer links,
the light-sold chart's data, telemetry history and the QR code of a pay link."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from test_monitor import ADDRESS, ASSET, anyio_backend, make_snapshot, start_monitor  # noqa: F401 (fixtures)

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
    got = presets(seconds_per_token=7.0, decimals=2)
    assert [p["amount"] for p in got] == ["4.29", "8.58", "42.86", "128.58"]
    for p, wanted in zip(got, iotlight.PAY_PRESET_SECONDS):
        assert p["units"] == int(p["amount"].replace(".", ""))
        assert p["seconds"] >= wanted  # rounding up never sells less than the button says
        assert iotlight.payment_seconds(p["units"] - 1, 2, 7.0) < wanted  # and not a unit more than needed


def test_pay_presets_stop_at_the_cap_and_respect_a_minimum():
    got = presets(max_seconds=45.0, decimals=0)
    assert [(p["amount"], p["seconds"]) for p in got] == [("30", 30.0), ("45", 45.0)]
    got = presets(decimals=0, min_units=100)
    assert [p["amount"] for p in got] == ["100", "300", "900"]  # 30 s and 60 s both round up to the minimum
    assert (
        presets(decimals=None, seconds_per_token=0.5)[0]["amount"] == "60"
    )  # unknown decimals: whole tokens


def test_pay_presets_carry_the_wallet_link_with_token_device_and_amount():
    link = presets(decimals=2)[0]["link"]
    assert link == (
        "https://testnet.waves.exchange/#send/%s?recipient=%s&amount=30&strict" % (ASSET, ADDRESS)
    )
    assert all(p["link"] == "" for p in presets(template=""))


def test_payment_link_quotes_what_it_fills_in():
    link = iotlight.payment_link(
        "https://w.example/pay?to={address}&a={amount}&t={asset}",
        asset="a b",
        address="alias:T:x&y",
        amount="1.5",
    )
    assert link == "https://w.example/pay?to=alias%3AT%3Ax%26y&a=1.5&t=a%20b"


def test_tokens_text():
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
    c = config(tmp_path, chain)
    assert c.wallet_url == iotlight.WALLET_URLS[chain]
    assert c.explorer_url == iotlight.EXPLORER_URLS[chain]


def test_a_custom_chain_has_no_default_links_and_empty_turns_them_off(tmp_path):
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
    with pytest.raises(iotlight.ConfigError, match="monitor.%s" % key):
        config(tmp_path, "T", **{key: value})


# -- the state file's history for the charts -------------------------------------------------


def test_light_sold_by_hour_sums_each_hour_of_the_last_day(tmp_path):
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
    store = iotlight.Store(str(tmp_path / "s.db"))
    try:
        for i, reading in enumerate(
            [
                {"temperature_c": 21.25, "humidity_pct": 40.0, "pressure_hpa": 1013.2},
                {"temperature_c": 21.5, "humidity_pct": None, "pressure_hpa": 1013.0},
            ]
        ):
            ts = 1_700_000_000_000 + i * 60_000
            store.add_event("telemetry", iotlight.telemetry_entries(reading, ts), ts)
        got = store.telemetry_history(0)
        assert got == [
            {"ts": 1_700_000_000.0, "temperature_c": 21.25, "humidity_pct": 40.0, "pressure_hpa": 1013.2},
            {"ts": 1_700_000_060.0, "temperature_c": 21.5, "pressure_hpa": 1013.0},
        ]
        assert store.telemetry_history(1_700_000_030_000) == got[1:]
    finally:
        store.close()


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
    snap = make_snapshot()
    snap["pay"] = presets(decimals=2)
    monitor = await start_monitor(snapshot=lambda: snap)
    base = "http://127.0.0.1:%d/qr.svg" % monitor.port
    async with httpx.AsyncClient() as http:
        plain = (await http.get(base)).text
        paid = (await http.get(base, params={"amount": snap["pay"][1]["amount"]})).text
        forged = (await http.get(base, params={"amount": "1000000"})).text
    assert plain == qr_svg(ADDRESS)
    assert paid == qr_svg(snap["pay"][1]["link"])
    assert forged == plain  # an amount the daemon did not offer gets the bare address


def test_the_snapshot_is_json_with_the_selling_fields(tmp_path):
    """The real Daemon's snapshot carries what the page sells with (token, price, links, presets,
    legend, warnings, the chart's hours) and stays plain JSON."""
    import asyncio

    c = config(tmp_path, "T")
    keys = iotlight.keypair_from_seed("dashboard test throwaway seed")
    store = iotlight.Store(c.state_file)
    asyncio.set_event_loop(asyncio.new_event_loop())  # the Daemon's events need a loop on Python 3.9
    try:
        node = iotlight.NodeClient(
            list(c.node_urls), timeout=1.0, transport=httpx.MockTransport(lambda r: httpx.Response(503))
        )
        daemon = iotlight.Daemon(c, keys, node=node, store=store, hardware=None, clock=iotlight.Clock())
        daemon.node_status(c.node_urls[0], False, "connection refused")
        snap = json.loads(json.dumps(daemon.snapshot()))
        assert snap["price"] == {
            "seconds_per_token": 1.0,
            "max_seconds": 3600.0,
            "min_tokens": 0.0,
            "refund": "none",
        }
        assert snap["links"] == {"wallet": iotlight.WALLET_URLS["T"], "explorer": iotlight.EXPLORER_URLS["T"]}
        assert [p["amount"] for p in snap["pay"]] == ["30", "60", "300", "900"]  # decimals not known yet
        assert {i["name"] for i in snap["status"]["legend"]} == set(iotlight.STATUS_COLORS)
        assert snap["status"]["name"] == "node_down"
        assert any("No node answers (connection refused)" in w for w in snap["warnings"])
        assert len(snap["light_sold"]["seconds"]) == 24
        daemon.balance["coin"] = 50000
        daemon.funds(False)
        fee_warning = daemon.snapshot()["warnings"][0]
        assert "(it holds 0.0005 WAVES)" in fee_warning
        assert (
            "`sudo iotlight pay --seed-file FUNDED.seed --asset WAVES %s 0.1`" % daemon.address in fee_warning
        )
        asyncio.get_event_loop().run_until_complete(node.aclose())
    finally:
        store.close()
        asyncio.get_event_loop().close()
        asyncio.set_event_loop(None)
