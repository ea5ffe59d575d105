"""The pieces of fairsplat/parallel that workers need: config, task spec, shard files, :func:`execute`.

Separate from ``fairsplat.parallel`` (the driver: retry loop and merge) so the
engines can import them without an import cycle.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairsplat.io.atomic import write_bytes


@dataclass(frozen=True)
class WorkersConfig:
    """Where shards run (params.yaml ``workers``; validated by fairsplat/sections/workers.py)."""

    engine: str = "local"  # a key of fairsplat.parallel.engines.ENGINES
    address: str | None = None  # a running cluster's scheduler; None: start the engine's local cluster
    retries: int = 2  # extra attempts per shard before it becomes a reject

    def __post_init__(self) -> None:
        if self.engine not in ENGINE_NAMES:
            raise ValueError(f"workers.engine: {self.engine!r} is not one of {', '.join(ENGINE_NAMES)}")
        if self.address is not None and self.engine == "local":
            raise ValueError("workers.address: the local process pool has no address; set workers.engine: dask")
        if self.retries < 0:
            raise ValueError(f"workers.retries: must be >= 0 (got {self.retries})")


@dataclass(frozen=True)
class Spec:
    """What every task needs besides its shard: sent once per worker process, not once per task."""

    fn: Callable[[Any], Any]  # shard -> result, module-level (pickled by reference)
    init: Callable[..., None] | None  # per-process set-up (load models, set thread counts), run before the first shard
    initargs: tuple
    scratch: str  # directory of this call's shard files
    token: str  # this call's id: a worker reused by a later call runs that call's init again


@dataclass
class Outcome:
    """One shard's fate: its result, or the error that rejected it after every attempt."""

    index: int
    shard: Any
    value: Any = None
    error: str | None = None  # "<Type>: <message> (after N attempts)"; None when value is the result
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Failure:
    """An attempt that did not produce a shard file, as an engine reports it."""

    error: BaseException
    lost_worker: bool = False  # the worker died (pool broke / KilledWorker), rather than fn raising


_STATE: dict[str, Any] = {}
"""Per process: the token of the call whose ``init`` ran here last."""


def result_path(scratch: str | Path, index: int) -> Path:
    return Path(scratch) / f"shard-{index:06d}.pkl"


def started_path(scratch: str | Path, index: int) -> Path:
    return Path(scratch) / f"shard-{index:06d}.started"


def execute(spec: Spec, index: int, shard: Any) -> int:
    """Run one shard where the engine put it; its result goes to a file (atomically). -> ``index``."""
    started_path(spec.scratch, index).write_text(str(os.getpid()))  # who runs it: for diagnosis, and tests kill it
    if _STATE.get("token") != spec.token:
        if spec.init is not None:
            spec.init(*spec.initargs)
        _STATE["token"] = spec.token
    value = spec.fn(shard)
    write_bytes(result_path(spec.scratch, index), pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    return index


def shards_of(items: Sequence, size: int) -> list[list]:
    """Consecutive shards of ``size`` items, in order: a pure function of the input, so runs are repeatable."""
    if size < 1:
        raise ValueError(f"shard size must be >= 1 (got {size})")
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


@dataclass
class Plan:
    """How one stage wants its shards run (everything but the engine choice)."""

    workers: int = 1  # processes (local) or local-cluster workers (dask); one thread each
    context: str | None = None  # multiprocessing start method of the local pool (None: the platform default)
    preload: Sequence[str] = ()  # modules a forkserver imports once, so workers fork warm
    desc: str = "shards"
    unit: str = "item"
    progress: bool = True
    weight: Callable[[Any], int] = len  # progress units per shard


ENGINE_NAMES = ("local", "dask")
"""Keys of ``fairsplat.parallel.engines.ENGINES`` (here too so the config checks without importing engines)."""


def in_worker() -> bool:
    """True in a pool or cluster worker process (set by the engines); False in the stage's own process.

    Why: per-process set-up such as one numba thread per worker must not leak
    into the caller when the local engine runs shards serially in-process.
    """
    return bool(_STATE.get("in_worker"))
