"""Task functions for tests/test_sweep.py: module-level, so Dask worker processes can import them.

Each call leaves a marker file (`calls` folder in the payload) so a test can count how often a task ran.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path


def square(payload):
    """The square of payload['x'] after payload.get('sleep', 0) seconds; fails when payload asks it to."""
    calls = Path(payload["calls"])
    (calls / f"{payload['x']}.{uuid.uuid4().hex}").touch()
    time.sleep(payload.get("sleep", 0.0))
    if payload.get("fail_unless") and not Path(payload["fail_unless"]).exists():
        raise ValueError(f"replicate {payload['x']} was asked to fail")
    return {"x": payload["x"], "square": payload["x"] ** 2, "pid": os.getpid()}


def calls_of(folder) -> dict[int, int]:
    """How often each x ran, from the marker files."""
    counts: dict[int, int] = {}
    for p in Path(folder).iterdir():
        x = int(p.name.split(".")[0])
        counts[x] = counts.get(x, 0) + 1
    return counts
