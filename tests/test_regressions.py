"""Regressions found by the fault campaign (tests/tools/faults.py): each failed before its fix."""

import collections
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time

import pytest
from harness import credited, read_state, wait_until

import iotlight

pytestmark = pytest.mark.timeout(240)

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def receipt_counts(chain, device):
    """served_<id> -> in how many distinct Data transactions of the device the node accepted it."""
    txs = {}
    for b in chain.broadcasts:
        r = b.response
        if (
            b.status == 200
            and isinstance(r, dict)
            and r.get("type") == 12
            and r.get("sender") == device.address
        ):
            txs[r["id"]] = r
    for tx in chain.all_transactions():
        if tx["type"] == 12 and tx["sender"] == device.address:
            txs[tx["id"]] = tx
    return collections.Counter(
        e["key"] for tx in txs.values() for e in tx["data"] if e["key"].startswith("served_")
    )


def wait_contact(device):
    wait_until(
        lambda: read_state(device.folder / "iotlight.db", "SELECT value FROM meta WHERE key = 'horizon'"),
        30,
        what="the daemon's first contact with the node",
    )


def test_payment_below_a_rolled_back_and_reincluded_payment_is_credited(chain, device):
    """A rollback puts a credited payment back into a block above a new payment: the new one
    still counts (the list read must not stop at the moved, already seen payment)."""
    chain.mine(2)
    device.start()
    wait_contact(device)
    chain.mine(2)
    first = chain.transfer(chain.treasury, device.address, 100, asset_id=chain.asset)["id"]
    wait_until(lambda: first in credited(device), 20, what="the first payment")
    device.stop()
    chain.rollback(1, to_utx=True)  # the block with the first payment is gone; it waits in the pool
    later = chain.transfer(chain.treasury, device.address, 200, asset_id=chain.asset)["id"]
    chain.include_utx()  # ...and comes back above the later payment
    device.start()
    wait_until(lambda: later in credited(device), 20, what="the payment below the re-included one")
    assert credited(device) == {first: 100, later: 200}


def test_payment_made_after_the_first_start_while_the_node_was_down_is_credited(chain, device):
    """First start with the node unreachable; a payment made then, mined before the daemon first
    reaches the node, is not history: it was made after the first start."""
    chain.fail("500")
    device.start()
    time.sleep(0.5)  # the daemon started; its first polls fail
    paid = chain.transfer(chain.treasury, device.address, 300, asset_id=chain.asset)["id"]
    chain.mine()
    chain.clear_faults()
    wait_until(lambda: paid in credited(device), 20, what="the payment made after the first start")


def test_a_locked_or_unwritable_state_file_is_not_taken_for_damaged(tmp_path):
    """An OperationalError at open (locked, disk full, I/O error) is not damage: the file stays
    where it is (a full disk at boot must not start the device over)."""
    path = tmp_path / "iotlight.db"
    store = iotlight.Store(str(path))
    store.set_meta("address", "3Mtest")
    store.close()
    holder = sqlite3.connect(str(path), isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(iotlight.StateError) as err:
            iotlight.Store(str(path))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert getattr(err.value, "exit_status", 1) != 3, str(err.value)
    assert not list(tmp_path.glob("iotlight.db.damaged-*")), "a healthy state file was moved aside"
    assert iotlight.Store(str(path)).get_meta("address") == "3Mtest"


def test_lost_wal_does_not_credit_payments_twice(chain, device):
    """The WAL lost at a power cut (an SD card that lied about fsync) takes recent credits with
    it; payments whose receipts are on chain already are not credited again."""
    device.start()
    wait_contact(device)
    device.stop()  # checkpointed: the credits below live only in the WAL
    device.start()
    sent = [chain.transfer(chain.treasury, device.address, 100, asset_id=chain.asset)["id"] for _ in range(3)]
    chain.mine()
    wait_until(
        lambda: all(receipt_counts(chain, device)["served_" + i] for i in sent),
        30,
        what="the receipts on chain",
    )
    device.kill(signal.SIGKILL)
    os.unlink(str(device.folder / "iotlight.db-wal"))
    device.start()
    later = chain.transfer(chain.treasury, device.address, 100, asset_id=chain.asset)["id"]
    wait_until(
        lambda: receipt_counts(chain, device)["served_" + later], 30, what="the later payment's receipt"
    )
    counts = receipt_counts(chain, device)
    assert {i: counts["served_" + i] for i in sent} == {i: 1 for i in sent}


@pytest.mark.skipif(not os.path.exists(FAKETIME), reason="needs libfaketime (apt-get install faketime)")
def test_restart_with_the_clock_set_back_does_not_extend_the_light(chain, device, hat, tmp_path):
    """SIGKILL while lit, the wall clock goes back 60 s, the daemon restarts (same boot): the lamp
    still goes dark at the paid end, not 60 s later."""
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    env = {
        "LD_PRELOAD": FAKETIME,
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    device.configure(hardware__backend="sense-emu", light__countdown=False)
    device.start(env=env)
    wait_contact(device)
    # 20 s paid: room for a slow restart under faketime, and far from the 60 s a clock set back
    # would add
    chain.transfer(chain.treasury, device.address, 2000, asset_id=chain.asset)
    wait_until(lambda: hat.lit_count() >= 56, 20, what="the lamp to light")
    on = time.monotonic()
    time.sleep(1.0)
    device.kill(signal.SIGKILL)
    offset.write_text("-60\n")
    device.start(env=env)
    wait_until(
        lambda: hat.lit_count() <= 1, 20 + 15, interval=0.05, what="the lamp to go dark at the paid end"
    )
    assert time.monotonic() - on <= 20 + 3.0


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="needs root to mount a tmpfs")
def test_presses_made_while_the_disk_is_full_survive_a_clean_stop(chain, tmp_path, hat):
    """Presses that wait in memory because the state folder is full are not dropped by a clean
    stop: once space is free they reach the chain."""
    from harness import Device

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)
    try:
        device = Device(
            mnt / "dev",
            chain.url,
            chain.asset,
            hardware__backend="sense-emu",
            device__seed_file=str(mnt / "dev" / "device.seed"),
            device__state_file=str(mnt / "dev" / "iotlight.db"),
        )
        device.config_path = tmp_path / "iotlight.toml"
        device.log_path = tmp_path / "daemon.log"
        chain.fund(device.address, waves=10**9)
        device.start()
        wait_contact(device)
        device.stop()
        device.start()  # fresh WAL that has to grow
        assert hat.wait_for_stick_client(10, pid=device.proc.pid)
        with open(mnt / "filler", "wb", buffering=0) as f:
            for chunk in (1 << 20, 4096, 512):
                while True:
                    try:
                        f.write(b"\0" * chunk)
                    except OSError:
                        break
        for d in ("up", "down", "left"):
            hat.click(d)
            time.sleep(0.3)
        wait_until(lambda: "cannot write the state file" in device.output(), 20, what="the full disk to show")
        device.stop()
        os.unlink(str(mnt / "filler"))
        device.start()
        wait_until(
            lambda: chain.data_entries(device.address).get("joystick_count", {}).get("value") == 3,
            30,
            what="all three presses on chain",
        )
        assert sorted(k for k in chain.data_entries(device.address) if k.startswith("joystick_")) == [
            "joystick_1",
            "joystick_2",
            "joystick_3",
            "joystick_count",
        ]
        device.stop()
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def test_events_a_damaged_log_shows_as_pending_are_not_sent_twice(chain, device):
    """A state file that lost the write tying a receipt and a press to their (sent) transaction
    shows them pending again: what the chain holds already is not sent a second time."""
    import json as json_module

    device.start()
    wait_contact(device)
    paid = chain.transfer(chain.treasury, device.address, 100, asset_id=chain.asset)["id"]
    wait_until(lambda: receipt_counts(chain, device)["served_" + paid], 30, what="the receipt on chain")
    device.kill(signal.SIGKILL)
    db = sqlite3.connect(str(device.folder / "iotlight.db"))
    with db:
        # the lost write: the receipt back to pending, and a press that went out as joystick_1
        db.execute("UPDATE events SET tx_id = NULL WHERE kind = 'receipt'")
        entry = iotlight.joystick_entry(1, "up", "pressed", 1700000000000)
        db.execute(
            "INSERT INTO events (kind, entries, press_n, created_ms) VALUES ('joystick', ?, 1, 0)",
            (json_module.dumps([entry]),),
        )
        db.execute("INSERT OR REPLACE INTO meta VALUES ('press_n', '1')")
    db.close()
    chain.data(device.keys, [entry, {"key": "joystick_count", "type": "integer", "value": 1}])
    device.start()
    later = chain.transfer(chain.treasury, device.address, 100, asset_id=chain.asset)["id"]
    wait_until(lambda: receipt_counts(chain, device)["served_" + later], 30, what="the later receipt")
    assert receipt_counts(chain, device)["served_" + paid] == 1
    assert "pending event(s) were on chain already" in device.output()
    keys = [
        e["key"]
        for tx in chain.all_transactions()
        if tx["type"] == 12 and tx["sender"] == device.address
        for e in tx["data"]
    ]
    assert keys.count("joystick_1") == 1


def test_payment_below_a_payment_that_came_back_at_its_old_height_is_credited(chain, device):
    """A rollback the daemon never saw (the node failing meanwhile) puts a credited payment back
    into a block at the very height it had, above a payment made in between: the list read must
    not stop at the returned one (chaos case of tests/tools/faults.py, seed 7: one payment never
    credited). Block ids below the last read's floor show the rollback."""
    chain.mine(6)
    device.start()
    wait_contact(device)
    first = chain.transfer(chain.treasury, device.address, 100, asset_id=chain.asset)["id"]
    at = chain.height
    wait_until(lambda: first in credited(device), 20, what="the first payment")
    chain.mine()
    time.sleep(1.5)  # a quiet read after the block: the first payment is seen at its height
    chain.fail("500", duration=30)  # the daemon sees nothing of what follows
    chain.rollback(2, to_utx=True)  # the first payment waits in the pool...
    between = chain.transfer(chain.treasury, device.address, 200, asset_id=chain.asset)["id"]
    chain.mine()
    assert first in chain.include_utx()  # ...and comes back at its old height, above the new one
    assert chain.transaction(first)["height"] == at
    chain.mine(4)
    chain.clear_faults()
    wait_until(lambda: between in credited(device), 40, what="the payment made while the first was away")
    assert credited(device) == {first: 100, between: 200}


def test_joystick_count_left_behind_by_a_reordering_rollback_is_written_again(chain, device, hat):
    """A rollback puts an older press transaction back into a block after a newer one, so the
    chain's joystick_count (last write wins) falls behind the presses written; the daemon sees it
    once all is confirmed and writes the count again (chaos case: 208 on chain for 235 presses)."""
    chain.mine(3)
    device.configure(hardware__backend="sense-emu")
    device.start()
    assert hat.wait_for_stick_client(10)

    def count():
        return chain.data_entries(device.address).get("joystick_count", {}).get("value")

    hat.click("up")
    wait_until(lambda: count() == 1, 20, what="the first press on chain")
    chain.rollback(1, to_utx=True)  # the first press transaction waits in the pool
    hat.click("down")
    wait_until(lambda: count() == 2, 20, what="the second press on chain")
    chain.include_utx()  # the first comes back after the second
    assert count() == 1
    wait_until(lambda: count() == 2, 90, what="joystick_count written again")
    entries = chain.data_entries(device.address)
    assert json.loads(entries["joystick_1"]["value"])["direction"] == "up"
    assert json.loads(entries["joystick_2"]["value"])["direction"] == "down"
    assert "joystick_count on chain is 1 but 2 presses were written" in device.output(whole=True)


def _write_bytes(pid: int) -> int:
    """Bytes the process caused to be written to storage so far (/proc/PID/io)."""
    with open("/proc/%d/io" % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith("write_bytes"))


def test_an_idle_daemon_writes_nothing_to_storage(chain, device):
    """Nothing happening (a payment credited, its receipt confirmed and both handled, the node's
    transactions still in its top blocks, sweeps every 5 s): the daemon writes (almost) nothing. Before,
    every sweep wrote the same seen ids again: about 45 KB in 16 s."""
    device.configure(node__sweep_interval=5.0, node__poll_interval=0.2)
    device.start()
    wait_contact(device)
    paid = chain.transfer(chain.treasury, device.address, 100, asset_id=chain.asset)["id"]
    wait_until(lambda: paid in credited(device), 30, what="the payment")
    receipt = wait_until(
        lambda: read_state(device.folder / "iotlight.db", "SELECT id FROM outbox WHERE status = 'confirmed'"),
        30,
        what="the receipt",
    )
    # the last write of that activity: the next sweep finds the receipt's transaction on chain, handled
    wait_until(
        lambda: read_state(device.folder / "iotlight.db", "SELECT 1 FROM seen WHERE id = ?", receipt[0]),
        30,
        what="the receipt's transaction marked handled",
    )
    time.sleep(1)
    before = _write_bytes(device.proc.pid)
    time.sleep(16)  # three sweeps and dozens of polls
    written = _write_bytes(device.proc.pid) - before
    assert device.alive()
    assert written <= 8192, "an idle daemon wrote %d bytes in 16 s" % written
    device.stop()
    assert credited(device) == {paid: 100}
