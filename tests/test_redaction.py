"""Credentials in node URLs are masked wherever a URL is shown (log, errors, check, status, the monitor);
requests still use the real URL. The monitor token never reaches the daemon's log, even under -v."""

from __future__ import annotations

import json

import pytest
from clirun import run_cli
from harness import credited, free_port, wait_until, write_config
from websockets.sync.client import connect

import iotlight

PASSWORD = "s3cret-node-pass"  # throwaway: the fake node accepts any credentials
API_KEY = "k3y-in-the-query"
MONITOR_TOKEN = "t0ken-of-the-monitor"


@pytest.mark.parametrize(
    "text, shown",
    [
        ("https://user:pass@node.example/", "https://user:***@node.example/"),
        ("https://APIKEY123@node.example", "https://***@node.example"),
        ("http://node.example:6869/x?apikey=abc&limit=5", "http://node.example:6869/x?apikey=***&limit=5"),
        (
            "http://n/?api_key=a&access_token=b&Password=c&key=d&sig=e&page=2",
            "http://n/?api_key=***&access_token=***&Password=***&key=***&sig=***&page=2",
        ),
        ("http://n/?token=", "http://n/?token="),
        ("https://u:p@ss@n/a?secret=x#frag", "https://u:***@n/a?secret=***#frag"),
        ("< GET /ws?token=abc HTTP/1.1", "< GET /ws?token=*** HTTP/1.1"),
        (
            "node http://u:pw@10.0.0.1:6869 is failing: ConnectError",
            "node http://u:***@10.0.0.1:6869 is failing: ConnectError",
        ),
        ("https://nodes-testnet.wavesnodes.com", "https://nodes-testnet.wavesnodes.com"),
        ("mail me at a@b.example about 1=1", "mail me at a@b.example about 1=1"),
    ],
)
def test_redact_url_masks_passwords_and_key_like_query_values(text, shown):
    """The password (or a lone user part), and the value of every key-like query parameter, become ***."""
    assert iotlight.redact_url(text) == shown


def test_a_bad_node_url_is_named_masked_in_the_config_error(tmp_path):
    """The one-line configuration error names the URL without its password or key."""
    table = {"node": {"urls": ["ftp://user:%s@node.example/?apikey=%s" % (PASSWORD, API_KEY)]}}
    with pytest.raises(iotlight.ConfigError) as info:
        iotlight.parse_config(table, str(tmp_path / "c.toml"), require_asset=False)
    text = str(info.value)
    assert "ftp://user:***@node.example/?apikey=***" in text
    assert PASSWORD not in text and API_KEY not in text


@pytest.mark.timeout(180)
def test_node_credentials_and_the_monitor_token_are_shown_nowhere(chain, device):
    """A dead node with ?apikey= first, the live one with user:password@ second: check, status, the daemon's
    -v log and the monitor's state show them masked; the daemon still reads the live node through them."""
    dead_port = free_port()
    dead = "http://127.0.0.1:%d/api?apikey=%s" % (dead_port, API_KEY)
    live = chain.url.replace("http://", "http://user:%s@" % PASSWORD, 1)
    port = free_port()
    device.configure(node__urls=[dead, live], monitor__port=port, monitor__token=MONITOR_TOKEN)
    write_config(device.config_path, device.settings)

    check = run_cli("-c", str(device.config_path), "check", cwd=device.folder)
    assert check.status == 0, check.output
    assert (
        "nodes: http://127.0.0.1:%d/api?apikey=***, http://user:***@127.0.0.1:%d\n" % (dead_port, chain.port)
        in check.out
    )
    status = run_cli("-c", str(device.config_path), "-v", "status", cwd=device.folder)
    assert status.status == 0, status.output
    assert "node: http://user:***@127.0.0.1:%d, height " % chain.port in status.out

    port = device.start_with_monitor()
    with connect("ws://127.0.0.1:%d/?token=%s" % (port, MONITOR_TOKEN), open_timeout=30) as ws:
        state = json.loads(ws.recv(timeout=30))
        assert state["type"] == "state"
        while state["node"]["ok"] is not True:  # the first answer from the live node is a node event
            message = json.loads(ws.recv(timeout=30))
            if message["type"] == "node":
                state["node"] = message
    assert state["node"]["url"] == "http://user:***@127.0.0.1:%d" % chain.port
    chain.transfer(chain.treasury, device.address, 150, asset_id=chain.asset)
    wait_until(lambda: credited(device), 30, what="the payment read through the masked URLs")
    device.stop()
    log = device.output()
    assert "node http://127.0.0.1:%d/api?apikey=*** is failing" % dead_port in log
    assert "token=***" in log, "the -v log has the monitor's request line, masked"
    for result in (check, status):
        assert PASSWORD not in result.output and API_KEY not in result.output
    for secret in (PASSWORD, API_KEY, MONITOR_TOKEN):
        assert secret not in log
