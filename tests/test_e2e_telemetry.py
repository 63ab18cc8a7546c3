"""End to end (marked process): sensor readings from the Sense HAT emulator become integer Data
entries with unit and scale in the key, from the real daemon on the fake node."""

import time

import pytest
from harness import wait_until

pytestmark = [pytest.mark.timeout(120), pytest.mark.process]


def test_telemetry_is_written_as_scaled_integers(chain, device, hat):
    """Temperature, humidity and pressure go on chain x100 with their reading time."""
    hat.set_environment(temperature=21.37, humidity=48.5, pressure=1002.25)
    device.configure(hardware__backend="sense-emu", data__telemetry_interval=1.0)
    device.start()
    entries = wait_until(
        lambda: (
            chain.data_entries(device.address)
            if "telemetry_ts" in chain.data_entries(device.address)
            else None
        ),
        60,
        what="telemetry on chain",
    )
    assert abs(entries["temperature_c100"]["value"] - 2137) <= 2
    assert abs(entries["humidity_pct100"]["value"] - 4850) <= 5
    assert abs(entries["pressure_hpa100"]["value"] - 100225) <= 5
    assert abs(entries["telemetry_ts"]["value"] - time.time() * 1000) < 60_000, "the reading's own time"
    assert all(
        entries[k]["type"] == "integer"
        for k in ("temperature_c100", "humidity_pct100", "pressure_hpa100", "telemetry_ts")
    )
    # at most one set of readings per transaction
    for b in chain.broadcasts:
        if b.status == 200 and isinstance(b.body, dict) and b.body.get("type") == 12:
            assert sum(e["key"] == "telemetry_ts" for e in b.body["data"]) <= 1
