"""Credentials in node URLs are masked wherever a URL is shown (log, errors, check, status, the monitor);
requests still use the real URL. The monitor token never reaches the daemon's log, even under -v.

All in this process: check and status through test_cli.run_main, the daemon on an event loop in a
thread with the log set up as `-v run` sets it, the fake node in a thread of its own."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import threading

import pytest
from harness import DEVICE_SEED, free_port, read_state, wait_until, write_config
from scenario import FakeHardware
from test_cli import run_main
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


class DaemonThread:
    """The Daemon as `iotlight.py -v run` builds it (a real clock, the node client, the state file, the
    monitor), on an event loop in a thread of this process; the hardware is scenario.FakeHardware. Its log
    is what setup_logging(verbose=True) writes to stderr."""

    def __init__(self, config, keys):
        self.config, self.keys = config, keys
        self.stderr = io.StringIO()
        self.status = None
        self.daemon = None
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._run(),), daemon=True)

    async def _run(self):
        clock = iotlight.Clock()
        store = iotlight.Store(self.config.state_file, clock)
        store.bind_device(self.keys.address(self.config.chain_id), self.config.asset_id)
        node = iotlight.NodeClient(
            self.config.node_urls, timeout=self.config.timeout, chain_id=self.config.chain_id, clock=clock
        )
        try:
            self.daemon = iotlight.Daemon(
                self.config,
                self.keys,
                node=node,
                store=store,
                hardware=FakeHardware(clock),
                clock=clock,
                monitor_factory=lambda **kw: iotlight.Monitor(**dict(kw, port=0)),  # a free port
                notify=lambda message: True,
            )
            self.ready.set()
            self.status = await self.daemon.run()
        finally:
            self.ready.set()
            await node.aclose()
            store.close()

    def __enter__(self):
        with contextlib.redirect_stderr(self.stderr):
            iotlight.setup_logging(True)  # its handler writes to the stderr of this moment
        self.thread.start()
        assert self.ready.wait(30) and self.daemon is not None, "the daemon was not built"
        return self

    def stop(self) -> int:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.daemon.stop.set)
            self.thread.join(60)
        assert not self.thread.is_alive(), "the daemon did not stop"
        return self.status

    def __exit__(self, *exc):
        try:
            self.stop()
        finally:
            self.loop.close()

    def log(self) -> str:
        return self.stderr.getvalue()


@pytest.fixture
def restored_logging():
    """The root logger and the noisy libraries' levels as they were, after setup_logging changed them; the
    fake node's own log kept out of the daemon's."""
    root = logging.getLogger()
    names = ("httpx", "httpcore", "websockets", "asyncio", "PIL")
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in names}
    fake_node_log = logging.getLogger("iotlight.fakenode")
    fake_propagates, fake_node_log.propagate = fake_node_log.propagate, False
    try:
        yield
    finally:
        fake_node_log.propagate = fake_propagates
        root.handlers[:], level, levels = saved
        root.setLevel(level)
        for name, noisy in levels.items():
            logging.getLogger(name).setLevel(noisy)


def test_check_and_status_show_node_credentials_masked(chain, device):
    """A dead node with ?apikey= first, the live one with user:password@ second: check and status name them
    masked, and still read the live node through the real URL."""
    dead_port = free_port()
    dead = "http://127.0.0.1:%d/api?apikey=%s" % (dead_port, API_KEY)
    live = chain.url.replace("http://", "http://user:%s@" % PASSWORD, 1)
    device.configure(node__urls=[dead, live])
    write_config(device.config_path, device.settings)

    check = run_main("-c", str(device.config_path), "check", cwd=device.folder)
    assert check.status == 0, check.output
    assert (
        "nodes: http://127.0.0.1:%d/api?apikey=***, http://user:***@127.0.0.1:%d\n" % (dead_port, chain.port)
        in check.out
    )
    status = run_main("-c", str(device.config_path), "-v", "status", cwd=device.folder)
    assert status.status == 0, status.output
    assert "node: http://user:***@127.0.0.1:%d, height " % chain.port in status.out
    assert "node http://127.0.0.1:%d/api?apikey=*** is failing" % dead_port in status.err, (
        "-v logs the outage"
    )
    for result in (check, status):
        assert PASSWORD not in result.output and API_KEY not in result.output


def test_the_daemon_log_and_the_monitor_show_no_credentials_or_token(chain, tmp_path, restored_logging):
    """The daemon with the same two nodes and a monitor token, logging as under -v: the monitor's state names
    the live node masked, the payment is read through the masked URL, and the log shows the dead node and the
    monitor's request line masked; neither password, key nor token appears in it."""
    keys = iotlight.keypair_from_seed(DEVICE_SEED)
    chain.fund(keys.address("T"), waves=10**9)
    dead_port = free_port()
    dead = "http://127.0.0.1:%d/api?apikey=%s" % (dead_port, API_KEY)
    live = chain.url.replace("http://", "http://user:%s@" % PASSWORD, 1)
    table = {
        "node": {"urls": [dead, live], "poll_interval": 0.2, "timeout": 3.0, "list_rate": 0},
        "device": {"state_file": str(tmp_path / "iotlight.db")},
        "payment": {"asset_id": chain.asset},
        "hardware": {"backend": "none"},
        "monitor": {
            "port": 8765,
            "token": MONITOR_TOKEN,
        },  # the daemon's factory below listens on a free port
        "data": {"coalesce_window": 0.0},
    }
    config = iotlight.parse_config(table, str(tmp_path / "iotlight.toml"))
    with DaemonThread(config, keys) as d:
        wait_until(lambda: "monitor listening on" in d.log(), 30, what="the monitor to listen")
        url = "ws://127.0.0.1:%d/?token=%s" % (d.daemon.monitor.port, MONITOR_TOKEN)
        with connect(url, open_timeout=30) as ws:
            state = json.loads(ws.recv(timeout=30))
            assert state["type"] == "state"
            while state["node"]["ok"] is not True:  # the first answer from the live node is a node event
                message = json.loads(ws.recv(timeout=30))
                if message["type"] == "node":
                    state["node"] = message
        assert state["node"]["url"] == "http://user:***@127.0.0.1:%d" % chain.port
        chain.transfer(chain.treasury, keys.address("T"), 150, asset_id=chain.asset)
        wait_until(
            lambda: read_state(tmp_path / "iotlight.db", "SELECT amount FROM payments") == [(150,)],
            30,
            what="the payment read through the masked URLs",
        )
        assert d.stop() == 0
    log = d.log()
    assert "node http://127.0.0.1:%d/api?apikey=*** is failing" % dead_port in log
    assert "token=***" in log, "the -v log has the monitor's request line, masked"
    assert "DEBUG " in log
    for secret in (PASSWORD, API_KEY, MONITOR_TOKEN):
        assert secret not in log
