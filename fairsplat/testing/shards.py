"""Shard functions for tests/test_parallel.py: module-level, so pool and cluster workers can import them.

Why here and not in the test file: a Dask worker or a spawned process
unpickles functions by module name, and ``fairsplat.testing`` is importable
wherever fairsplat is; a test module is not.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from fairsplat.parallel.core import in_worker

_SEEN: dict = {}


def remember(tag: str) -> None:
    """An ``init``: records, per process, that set-up ran (and whether it ran in a worker)."""
    _SEEN["tag"], _SEEN["in_worker"] = tag, in_worker()


def square(shard: list[int]) -> list[tuple[int, int, str]]:
    """(x, x * x, init tag) per item: the tag proves ``init`` ran in this process before the shard."""
    return [(x, x * x, _SEEN.get("tag", "")) for x in shard]


def kill_once(shard: list[int]) -> list[tuple[int, int, str]]:
    """SIGKILLs its own worker the first time it sees a shard holding 3 (marker file in $FAIRSPLAT_TEST_DIR)."""
    marker = Path(os.environ["FAIRSPLAT_TEST_DIR"]) / f"killed-{shard[0]}"
    if 3 in shard and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return square(shard)


def fail_on_five(shard: list[int]) -> list[tuple[int, int, str]]:
    """Raises on every attempt for the shard holding 5; counts attempts in $FAIRSPLAT_TEST_DIR."""
    if 5 in shard:
        with open(Path(os.environ["FAIRSPLAT_TEST_DIR"]) / "attempts-5", "a") as fh:
            fh.write("x")
        raise ValueError("five is not allowed")
    return square(shard)
