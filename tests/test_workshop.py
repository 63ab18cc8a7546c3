"""The workshop commands issue, pay and status against the fake node, including refusals."""

import os
import subprocess
import sys

import pytest

import iotlight
from harness import DEVICE_SEED, IOTLIGHT, STRANGER_SEED, TREASURY_SEED, Device, write_config

pytestmark = pytest.mark.timeout(120)


def run(cfg, *args):
    proc = subprocess.run([sys.executable, str(IOTLIGHT), "-c", str(cfg), *args], capture_output=True, text=True,
                          timeout=60)
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
    cfg = write_config(tmp_path / "iotlight.toml", {"node.urls": [chain.url], "node.chain_id": "T",
                                                    "node.timeout": 3.0})
    return cfg, treasury


def test_issue_creates_the_token_and_prints_the_line_to_paste(chain, workshop):
    """issue signs an Issue transaction, the node creates the asset, the TOML line names its id."""
    cfg, treasury = workshop
    proc = run(cfg, "issue", "--seed-file", str(treasury), "--name", "IoT-Light", "--quantity", "1000",
               "--decimals", "2", "--description", "light for a workshop")
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


def test_pay_prints_the_nodes_refusal(chain, workshop, tmp_path):
    """An account without coins for the fee: the node's own message, exit 1."""
    cfg, _ = workshop
    poor = seed_file(tmp_path / "poor.seed", STRANGER_SEED)
    device = iotlight.keypair_from_seed(DEVICE_SEED).address("T")
    proc = run(cfg, "pay", "--seed-file", str(poor), "--asset", chain.asset, device, "1")
    assert proc.returncode == 1
    assert proc.stderr.startswith("iotlight: the node refused the transfer: ")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_status_before_the_first_run_and_after(chain, tmp_path):
    """status works before any state exists (exit 0) and then shows lamp, outbox and payments."""
    d = Device(tmp_path / "dev", chain.url, chain.asset)
    chain.fund(d.address, waves=5 * 10 ** 8)
    write_config(d.config_path, d.settings)
    proc = run(d.config_path, "status")
    assert proc.returncode == 0, proc.stderr
    assert "no state yet" in proc.stdout
    assert "coin balance: 5.00000000" in proc.stdout
    d.start()
    try:
        from harness import credited, wait_until
        chain.transfer(chain.treasury, d.address, 500, asset_id=chain.asset)
        wait_until(lambda: credited(d), 10, what="the payment")
        proc = run(d.config_path, "status")
        assert proc.returncode == 0, proc.stderr
        assert "lamp: on for" in proc.stdout
        assert "payments: 1 credited" in proc.stdout
        assert "token balance: 5.00" in proc.stdout
    finally:
        d.stop()
