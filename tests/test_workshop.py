"""The workshop commands issue, pay and status against the fake node, including refusals."""

import os
import subprocess
import sys

import pytest
from harness import DEVICE_SEED, IOTLIGHT, STRANGER_SEED, TREASURY_SEED, Device, write_config

import iotlight

pytestmark = pytest.mark.timeout(120)


def run(cfg, *args):
    proc = subprocess.run(
        [sys.executable, str(IOTLIGHT), "-c", str(cfg), *args], capture_output=True, text=True, timeout=60
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


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
    proc = run(
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
    assert proc.returncode == 0, proc.stderr
    asset = proc.stdout.split("asset id: ")[1].split()[0]
    assert 'asset_id = "%s"' % asset in proc.stdout
    import httpx

    details = httpx.get(chain.url + "/assets/details/" + asset).json()
    assert details["decimals"] == 2 and details["quantity"] == 100000 and details["name"] == "IoT-Light"
    assert TREASURY_SEED not in proc.stdout + proc.stderr


def test_pay_sends_whole_tokens_to_an_address_or_alias(chain, workshop):
    """pay converts 2.5 tokens to 250 units and sends them; an alias recipient works too."""
    cfg, treasury = workshop
    device = iotlight.keypair_from_seed(DEVICE_SEED).address("T")
    proc = run(cfg, "pay", "--seed-file", str(treasury), "--asset", chain.asset, device, "2.5")
    assert proc.returncode == 0, proc.stderr
    assert chain.balance(device, chain.asset) == 250
    assert proc.stdout.startswith(
        "sent 2.50 IoT-Light (250 units of %s) to %s; fee 0.001 WAVES\n" % (chain.asset, device)
    )
    chain.add_alias(device, "lamp-one")
    proc = run(cfg, "pay", "--seed-file", str(treasury), "--asset", chain.asset, "lamp-one", "1")
    assert proc.returncode == 0, proc.stderr
    assert chain.balance(device, chain.asset) == 350


def test_pay_refuses_bad_input_before_asking_the_node(chain, workshop):
    """Bad addresses and amounts are usage errors (exit 2) with a clear line."""
    cfg, treasury = workshop
    device = iotlight.keypair_from_seed(DEVICE_SEED).address("T")
    bad_address = device[:-1] + ("1" if device[-1] != "1" else "2")
    proc = run(cfg, "pay", "--seed-file", str(treasury), "--asset", chain.asset, bad_address, "1")
    assert proc.returncode == 2 and "checksum" in proc.stderr
    proc = run(cfg, "pay", "--seed-file", str(treasury), "--asset", chain.asset, device, "0.001")
    assert proc.returncode == 2 and "more decimals than the token's 2" in proc.stderr
    proc = run(cfg, "pay", "--seed-file", str(treasury), "--asset", chain.asset, device, "-1")
    assert proc.returncode == 2 and "positive" in proc.stderr
    proc = run(cfg, "pay", "--seed-file", str(treasury), device, "1")
    assert proc.returncode == 2 and "--asset" in proc.stderr


def test_pay_with_asset_waves_funds_the_device(chain, workshop):
    """--asset WAVES sends the chain's own coin: how the device gets the money for its fees."""
    cfg, treasury = workshop
    device = iotlight.keypair_from_seed(DEVICE_SEED).address("T")
    proc = run(cfg, "pay", "--seed-file", str(treasury), "--asset", "WAVES", device, "1.5")
    assert proc.returncode == 0, proc.stderr
    assert chain.balance(device) == 150000000
    assert proc.stdout.startswith("sent 1.5 WAVES to %s; fee 0.001 WAVES\n" % device)
    tx = chain.transaction(proc.stdout.split("transaction id: ")[1].split()[0])
    assert tx["assetId"] is None and tx["amount"] == 150000000


def test_pay_in_plain_words_when_the_sender_has_no_coins(chain, workshop, tmp_path):
    """An account without coins for the fee: one plain line with the fix, exit 1; the node's text at debug level."""
    cfg, _ = workshop
    poor = seed_file(tmp_path / "poor.seed", STRANGER_SEED)
    chain.fund(iotlight.keypair_from_seed(STRANGER_SEED).address("T"), asset_id=chain.asset, amount=1000)
    device = iotlight.keypair_from_seed(DEVICE_SEED).address("T")
    proc = run(cfg, "pay", "--seed-file", str(poor), "--asset", chain.asset, device, "1")
    assert proc.returncode == 1
    assert proc.stderr == (
        "iotlight: the node refused the transfer: the sender has too few WAVES to pay for it "
        "(fees are paid in WAVES); send it some: iotlight.py pay --seed-file FUNDED.seed "
        "--asset WAVES ADDRESS 1\n"
    )
    proc = run(cfg, "-v", "pay", "--seed-file", str(poor), "--asset", chain.asset, device, "1")
    assert "DEBUG iotlight.node: the node said: State check failed. Reason: " in proc.stderr


def test_status_exits_1_when_no_node_answers(tmp_path):
    """No node answers: status says so and exits 1 (the state file part still shows)."""
    seed_file(tmp_path / "device.seed", DEVICE_SEED)
    cfg = write_config(tmp_path / "iotlight.toml", {"node.urls": ["http://127.0.0.1:9"], "node.timeout": 3.0})
    proc = run(cfg, "status")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "node: cannot ask it: no node answered" in proc.stdout
    assert "no state yet" in proc.stdout


def test_status_warns_when_the_device_cannot_pay_its_fees(chain, tmp_path):
    """A payment credited by an unfunded device: its receipt waits in the outbox, status prints a warning line."""
    from harness import credited, read_state, wait_until

    d = Device(tmp_path / "dev", chain.url, chain.asset)
    d.start()
    try:
        chain.transfer(chain.treasury, d.address, 500, asset_id=chain.asset)
        wait_until(lambda: credited(d), 20, what="the payment")
        wait_until(
            lambda: read_state(
                d.folder / "iotlight.db", "SELECT COUNT(*) FROM outbox WHERE status = 'queued'"
            )[0][0],
            20,
            what="the receipt's Data transaction to wait in the outbox",
        )
        proc = run(d.config_path, "status")
    finally:
        d.stop()
    assert proc.returncode == 0, proc.stderr
    assert (
        "warning: the device cannot pay its fees: it holds 0 WAVES, 1 Data transaction(s) wait at 0.001 WAVES "
        "or more each; send it coins: iotlight.py pay --seed-file FUNDED.seed --asset WAVES %s 1\n"
        % d.address
    ) in proc.stdout
    assert "token: 5.00 IoT-Light (500 units of %s)" % chain.asset in proc.stdout


def test_status_before_the_first_run_and_after(chain, tmp_path):
    """status works before any state exists (exit 0) and then shows lamp, outbox and payments."""
    d = Device(tmp_path / "dev", chain.url, chain.asset)
    chain.fund(d.address, waves=5 * 10**8)
    write_config(d.config_path, d.settings)
    proc = run(d.config_path, "status")
    assert proc.returncode == 0, proc.stderr
    assert "no state yet" in proc.stdout
    assert "coins: 5 WAVES (500000000 units)" in proc.stdout
    assert "warning" not in proc.stdout
    d.start()
    try:
        from harness import credited, wait_until

        chain.transfer(chain.treasury, d.address, 500, asset_id=chain.asset)
        wait_until(lambda: credited(d), 10, what="the payment")
        proc = run(d.config_path, "status")
        assert proc.returncode == 0, proc.stderr
        assert "lamp: on for" in proc.stdout
        assert "payments: 1 credited" in proc.stdout
        assert " from %s: 5.00 IoT-Light, 5.0 s\n" % chain.treasury.address("T") in proc.stdout
        assert "token: 5.00 IoT-Light (500 units of %s)" % chain.asset in proc.stdout
        assert "warning" not in proc.stdout
    finally:
        d.stop()


def test_one_daemon_per_state_file(chain, tmp_path):
    """A second run on the same state file exits 2 naming the first's pid; after a SIGKILL of the first
    (no clean-up at all) a new one starts: the lock is the kernel's, never a stale file."""
    import signal

    d = Device(tmp_path / "dev", chain.url, chain.asset)
    chain.fund(d.address, waves=10**8)
    d.start()
    try:
        first = d.proc.pid
        second = run(d.config_path, "run")
        assert second.returncode == 2, second.stdout + second.stderr
        assert second.stdout == ""
        assert second.stderr == (
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
    proc = run(cfg, "status")
    device = iotlight.keypair_from_seed(DEVICE_SEED).address("T")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (
        "token %s: the token does not exist on the node's chain; check the asset id and node.urls\n" % typo
        in proc.stdout
    )
    assert proc.stdout.endswith(
        "warning: the device holds 0 WAVES, less than one Data transaction's fee "
        "(0.001 WAVES); send it coins: iotlight.py pay --seed-file FUNDED.seed --asset "
        "WAVES %s 1\n" % device
    )
