"""Shared pytest setup: make the repository root importable."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
TESTS = Path(__file__).resolve().parent
for _p in (str(TESTS), str(TESTS / "tools")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import pytest  # noqa: E402


@pytest.fixture
def chain():
    """A running fake node with a treasury that issued an IoT-Light token (2 decimals)."""
    from harness import start_chain

    node = start_chain("T")
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def device(chain, tmp_path):
    """A device (config, seed, state folder) funded for fees on the fake chain; not started."""
    from harness import funded_device

    with funded_device(chain, tmp_path / "device") as d:
        yield d


@pytest.fixture
def hat():
    """The Sense HAT emulator's screen, joystick and sensors, played by the test."""
    from emulator import EmulatedHat

    with EmulatedHat() as h:
        yield h
