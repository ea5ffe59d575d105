"""Shard functions for tests/test_parallel.py: module-level, so pool and cluster workers can import them.

Why here and not in the test file: a Dask worker or a spawned process
unpickles functions by module name, and ``fairsplat.testing`` is importable
wherever fairsplat is; a test module is not. Per-call state (a tag, the test's
directory) comes through ``init``, which every worker runs again for each
``map_shards`` call: environment variables would reach a long-lived cluster's
workers only once, at their start.
"""

from __future__ import annotations

import time
from pathlib import Path

from fairsplat.parallel.core import in_worker

_SEEN: dict = {}


def remember(tag: str, test_dir: str = "") -> None:
    """An ``init``: records, per process, that set-up ran, in which kind of process, and the test's directory."""
    _SEEN.update(tag=tag, in_worker=in_worker(), dir=test_dir)


def square(shard: list[int]) -> list[tuple[int, int, str]]:
    """(x, x * x, init tag) per item: the tag proves ``init`` ran in this process before the shard."""
    return [(x, x * x, _SEEN.get("tag", "")) for x in shard]


def slow_on_three(shard: list[int]) -> list[tuple[int, int, str]]:
    """:func:`square`, one second slower for the shard holding 3: time for a test to SIGKILL its worker mid-shard."""
    if 3 in shard:
        time.sleep(1.0)
    return square(shard)


def fail_on_five(shard: list[int]) -> list[tuple[int, int, str]]:
    """Raises on every attempt for the shard holding 5; appends one ``x`` per attempt to <test dir>/attempts-5."""
    if 5 in shard:
        with open(Path(_SEEN["dir"]) / "attempts-5", "a") as fh:
            fh.write("x")
        raise ValueError("five is not allowed")
    return square(shard)


def pid_then_sleep(job: tuple[str, float]) -> int:
    """A job for fairsplat/train/jobs.py's pool (tests/test_jobs_signals.py): writes this worker's pid into
    ``<dir>/<pid>.pid``, then sleeps ``seconds`` (a training run that is still busy when its parent is stopped)."""
    import os

    folder, seconds = job
    (Path(folder) / f"{os.getpid()}.pid").write_text(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()
