"""The workshop commands issue, pay and status against the fake node, including refusals.

The commands run in this process (test_cli.run_main) against the fake node answering from a thread.
The state files `status` reads are the daemon's own, made by it on the virtual clock
(tests/scenario.py) and read at the daemon's time. One daemon per state file is shown with real
processes (marked process): what it is about is a daemon killed without any clean-up.
"""

import os
import re
from unittest import mock

import pytest
from harness import DEVICE_SEED, STRANGER_SEED, TREASURY_SEED, Device, write_config
from scenario import Scenario
from test_cli import run_main

import iotlight

pytestmark = pytest.mark.timeout(120)


def run(cfg, *args):
    """`iotlight.py -c CFG ARGS` in this process; no traceback in its output."""
    result = run_main("-c", str(cfg), *args, cwd=cfg.parent)
    assert "Traceback" not in result.output, result.err
    return result


def seed_file(path, seed):
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, (seed + "\n").encode())
    os.close(fd)
    return path


@pytest.fixture
def workshop(chain, tmp_path):
    treasury = seed_file(tmp_path / "treasury.seed", TREASURY_SEED)
    seed_file(tmp_path / "device.seed", DEVICE_SEED)
    cfg = write_config(
        tmp_path / "iotlight.toml", {"node.urls": [chain.url], "node.chain_id": "T", "node.timeout": 3.0}
    )
    return cfg, treasury


def test_issue_creates_the_token_and_prints_the_line_to_paste(chain, workshop):
    """issue signs an Issue transaction, the node creates the asset, the TOML line names its id."""
    cfg, treasury = workshop
    result = run(
        cfg,
        "issue",
        "--seed-file",
        str(treasury),
        "--name",
        "IoT-Light",
        "--quantity",
        "1000",
        "--decimals",
        "2",
        "--description",
        "light for a workshop",
    )
    assert result.status == 0, result.err
    asset = result.out.split("asset id: ")[1].split()[0]
    assert 'asset_id = "%s"' % asset in result.out
    import httpx

    details = httpx.get(chain.url + "/assets/details/" + asset).json()
    assert details["decimals"] == 2 and details["quantity"] == 100000 and details["name"] == "IoT-Light"
    assert chain.balance(chain.treasury.address("T"), asset) == 100000
    assert TREASURY_SEED not in result.output


def test_pay_sends_whole_tokens_to_an_address_or_alias(chain, workshop):
    """pay converts 2.5 tokens to 250 units and sends them; an alias recipient works too."""
    cfg, treasury = workshop
    device = iotlight.keypair_from_seed(DEVICE_SEED).address("T")
    result = run(cfg, "pay", "--seed-file", str(treasury), "--asset", chain.asset, device, "2.5")
    assert result.status == 0, result.err
    assert chain.balance(device, chain.asset) == 250
    assert result.out.startswith(
        "sent 2.50 IoT-Light (250 units of %s) to %s; fee 0.001 WAVES\n" % (chain.asset, device)
    )
    chain.add_alias(device, "lamp-one")
    result = run(cfg, "pay", "--seed-file", str(treasury), "--asset", chain.asset, "lamp-one", "1")
    assert result.status == 0, result.err
    assert chain.balance(device, chain.asset) == 350


def test_pay_refuses_bad_input_before_asking_the_node(chain, workshop):
    """Bad addresses and amounts are usage errors (exit 2) with a clear line; nothing is broadcast."""
    cfg, treasury = workshop
    device = iotlight.keypair_from_seed(DEVICE_SEED).address("T")
    bad_address = device[:-1] + ("1" if device[-1] != "1" else "2")
    cases = [
        ((chain.asset, bad_address, "1"), "checksum"),
        ((chain.asset, device, "0.001"), "more decimals than the token's 2"),
        ((chain.asset, device, "-1"), "positive"),
    ]
    for (asset, recipient, amount), words in cases:
        result = run(cfg, "pay", "--seed-file", str(treasury), "--asset", asset, recipient, amount)
        assert result.status == 2 and words in result.err and result.err.count("\n") == 1, result.err
    result = run(cfg, "pay", "--seed-file", str(treasury), device, "1")
    assert result.status == 2 and "--asset" in result.err
    assert chain.broadcasts == []


def test_pay_with_asset_waves_funds_the_device(chain, workshop):
    """--asset WAVES sends the chain's own coin: how the device gets the money for its fees."""
    cfg, treasury = workshop
    device = iotlight.keypair_from_seed(DEVICE_SEED).address("T")
    result = run(cfg, "pay", "--seed-file", str(treasury), "--asset", "WAVES", device, "1.5")
    assert result.status == 0, result.err
    assert chain.balance(device) == 150000000
    assert result.out.startswith("sent 1.5 WAVES to %s; fee 0.001 WAVES\n" % device)
    tx = chain.transaction(result.out.split("transaction id: ")[1].split()[0])
    assert tx["assetId"] is None and tx["amount"] == 150000000


def test_pay_in_plain_words_when_the_sender_has_no_coins(chain, workshop, tmp_path):
    """An account without coins for the fee: one plain line with the fix, exit 1; the node's text at debug level."""
    cfg, _ = workshop
    poor = seed_file(tmp_path / "poor.seed", STRANGER_SEED)
    chain.fund(iotlight.keypair_from_seed(STRANGER_SEED).address("T"), asset_id=chain.asset, amount=1000)
    device = iotlight.keypair_from_seed(DEVICE_SEED).address("T")
    result = run(cfg, "pay", "--seed-file", str(poor), "--asset", chain.asset, device, "1")
    assert (result.status, result.out) == (1, "")
    assert result.err == (
        "iotlight: the node refused the transfer: the sender has too few WAVES to pay for it "
        "(fees are paid in WAVES); send it some: iotlight.py pay --seed-file FUNDED.seed "
        "--asset WAVES ADDRESS 1\n"
    )
    result = run(cfg, "-v", "pay", "--seed-file", str(poor), "--asset", chain.asset, device, "1")
    assert "DEBUG iotlight.node: the node said: State check failed. Reason: " in result.err


def test_status_exits_1_when_no_node_answers(tmp_path):
    """No node answers: status says so and exits 1 (the state file part still shows)."""
    seed_file(tmp_path / "device.seed", DEVICE_SEED)
    cfg = write_config(tmp_path / "iotlight.toml", {"node.urls": ["http://127.0.0.1:9"], "node.timeout": 3.0})
    result = run(cfg, "status")
    assert result.status == 1, result.output
    assert "node: cannot ask it: no node answered" in result.out
    assert "no state yet" in result.out


def status_of(s: Scenario, folder):
    """`status` in this process on the scenario's device and state file, asking the scenario's chain (served
    over HTTP for it), at the scenario's wall-clock time."""
    seed_file(folder / "device.seed", DEVICE_SEED)
    chain = s.node.chain.start()
    try:
        settings = {"node.urls": [chain.url], "node.chain_id": "T", "node.timeout": 3.0}
        settings.update({"payment.asset_id": s.asset, "device.state_file": s.config.state_file})
        path = write_config(folder / "iotlight.toml", settings)
        with mock.patch.object(iotlight.Clock, "time", lambda self: s.clock.time()):
            return run(path, "status")
    finally:
        chain.stop()


def test_status_warns_when_the_device_cannot_pay_its_fees(tmp_path):
    """A payment credited by an unfunded device: its receipt waits in the outbox, status prints a warning line."""
    with Scenario(tmp_path / "dev") as s:
        s.node.chain.fund(s.address, waves=-s.node.chain.balance(s.address))  # the device holds no coins
        s.pay(5)
        s.run_until(lambda: s.credited(), 60, "the payment")
        s.run_until(
            lambda: s.store.outbox_counts().get("queued"),
            60,
            "the receipt's Data transaction to wait in the outbox",
        )
        s.run_for(30)  # it keeps waiting: the node refuses it for want of coins
        assert s.store.outbox_counts().get("queued") == 1 and s.node.chain.unconfirmed() == []
        result = status_of(s, tmp_path)
    assert result.status == 0, result.err
    assert (
        "warning: the device cannot pay its fees: it holds 0 WAVES, 1 Data transaction(s) wait at 0.001 WAVES "
        "or more each; send it coins: iotlight.py pay --seed-file FUNDED.seed --asset WAVES %s 1\n"
        % s.address
    ) in result.out
    assert "token: 5.00 IoT-Light (500 units of %s)" % s.asset in result.out


def test_status_before_the_first_run(chain, tmp_path):
    """status works before any state exists: exit 0, the node's height and the device's coins, no warning."""
    d = Device(tmp_path / "dev", chain.url, chain.asset)
    chain.fund(d.address, waves=5 * 10**8)
    write_config(d.config_path, d.settings)
    result = run(d.config_path, "status")
    assert result.status == 0, result.err
    assert "state: no state yet (%s appears on the first run)" % (d.folder / "iotlight.db") in result.out
    assert "coins: 5 WAVES (500000000 units)" in result.out
    assert "token: 0.00 IoT-Light (0 units of %s)" % chain.asset in result.out
    assert "warning" not in result.out
    assert not (d.folder / "iotlight.db").exists()


def test_status_after_a_payment_shows_lamp_outbox_and_payments(tmp_path):
    """After the daemon credited a payment and wrote its receipt, status shows the lamp's remaining time, an
    empty outbox, the payment (when, from whom, how much, how long) and the device's tokens."""
    with Scenario(tmp_path / "dev") as s:
        s.pay(5)
        s.run_until(lambda: s.credited(), 60, "the payment")
        s.run_until(lambda: not {"queued", "broadcast"} & set(s.store.outbox_counts()), 60, "the receipt")
        remaining = s.store.light()[1] - s.clock.time()
        result = status_of(s, tmp_path)
    assert result.status == 0, result.err
    assert 0 < remaining <= 5
    assert re.search(r"^lamp: on for %.1f s more \(until \d\d:\d\d:\d\d\)$" % remaining, result.out, re.M)
    assert "outbox: 0 event(s) waiting, no transaction pending\n" in result.out
    assert "payments: 1 credited, the last:\n" in result.out
    assert " from %s: 5.00 IoT-Light, 5.0 s\n" % s.treasury.address("T") in result.out
    assert "token: 5.00 IoT-Light (500 units of %s)" % s.asset in result.out
    assert "warning" not in result.out


@pytest.mark.process
def test_one_daemon_per_state_file(chain, tmp_path):
    """A second run on the same state file exits 2 naming the first's pid; after a SIGKILL of the first
    (no clean-up at all) a new one starts: the lock is the kernel's, never a stale file."""
    import signal

    d = Device(tmp_path / "dev", chain.url, chain.asset)
    chain.fund(d.address, waves=10**8)
    d.start()
    try:
        first = d.proc.pid
        second = run_main("-c", str(d.config_path), "run", cwd=d.folder)
        assert (second.status, second.out) == (2, "")
        assert second.err == (
            "iotlight: %s: iotlight is already running on this state file (pid %d); stop it "
            "first (sudo systemctl stop iotlight, or kill %d), or give this one another "
            "device.state_file\n" % (d.folder / "iotlight.db", first, first)
        )
        assert d.alive()
        d.kill(signal.SIGKILL)
        assert (d.folder / "iotlight.db.lock").exists()  # left behind by the kill, and no obstacle
        d.start()
        assert d.alive() and d.proc.pid != first
        assert "already running" not in d.output()
    finally:
        d.stop()


def test_status_with_an_unknown_token_and_no_coins_before_the_first_run(chain, tmp_path):
    """The node answers (exit 0) but knows no such token: said in plain words; no coins: the warning line."""
    seed_file(tmp_path / "device.seed", DEVICE_SEED)
    typo = "5FKsurYZCD1FMdjij1u6MJ2yzCcLFs65Mak583TeNdQV"
    cfg = write_config(
        tmp_path / "iotlight.toml", {"node.urls": [chain.url], "node.timeout": 3.0, "payment.asset_id": typo}
    )
    result = run(cfg, "status")
    device = iotlight.keypair_from_seed(DEVICE_SEED).address("T")
    assert result.status == 0, result.output
    assert (
        "token %s: the token does not exist on the node's chain; check the asset id and node.urls\n" % typo
        in result.out
    )
    assert result.out.endswith(
        "warning: the device holds 0 WAVES, less than one Data transaction's fee "
        "(0.001 WAVES); send it coins: iotlight.py pay --seed-file FUNDED.seed --asset "
        "WAVES %s 1\n" % device
    )
