"""Shared pytest setup: make the repository root importable."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import iotlight  # noqa: E402

# Development aid while parts are written beside the file: exec them into the module.
_parts = os.environ.get("IOTLIGHT_PARTS")
if _parts:
    for _p in sorted(Path(_parts).glob("*.py")):
        exec(compile(_p.read_text(), str(_p), "exec"), iotlight.__dict__)
