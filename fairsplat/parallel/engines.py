"""The engines behind :func:`fairsplat.parallel.map_shards`: ``ENGINES``, a plain dict by name.

An engine runs a batch of ``(index, shard)`` tasks and yields ``(index,
Failure | None)`` as each one ends; the retry loop, the shard files and the
merge are shared (fairsplat/parallel/__init__.py), so the engines differ only
in where :func:`~fairsplat.parallel.core.execute` runs. Both hand the worker the
call's :class:`~fairsplat.parallel.core.Spec` through a file in the scratch
directory, read once per worker process: the spec can be large (synth sends
the head model), and a file survives a worker restart, unlike data scattered
into a worker's memory.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import pickle
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from fairsplat.io.atomic import write_bytes
from fairsplat.parallel.lifeline import die_with, kill_children_on_sigterm
from fairsplat.parallel.core import _STATE, Failure, Plan, Spec, WorkersConfig, execute

Task = tuple[int, Any]  # (shard index, shard)


def _spec_path(scratch: str) -> Path:
    return Path(scratch) / "spec.pkl"


def write_spec(spec: Spec) -> None:
    write_bytes(_spec_path(spec.scratch), pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL))


def file_task(scratch: str, token: str, index: int, shard: Any) -> int:
    """A worker's entry point: this call's spec from its file (once per process), then the shard."""
    _STATE["in_worker"] = True
    spec = _STATE.get("spec")
    if spec is None or spec.token != token:
        spec = _STATE["spec"] = pickle.loads(_spec_path(scratch).read_bytes())
    return execute(spec, index, shard)


class LocalEngine:
    """Today's behaviour: a process pool on this machine, or this process when one worker is asked for.

    ``concurrent.futures`` rather than ``multiprocessing.Pool``: a killed
    worker breaks the pool (``BrokenProcessPool``) instead of leaving the
    stage waiting forever for a result that will never come; the pool is then
    rebuilt for the next round. Workers die with the stage
    (fairsplat/parallel/lifeline.py: a SIGTERM of the stage kills them, and
    each exits once the stage is gone).
    """

    def __init__(self, cfg: WorkersConfig, plan: Plan, n_shards: int):
        self.plan, self.n = plan, max(1, min(plan.workers, n_shards))
        self.pool: ProcessPoolExecutor | None = None
        self.guard = kill_children_on_sigterm()

    def __enter__(self) -> LocalEngine:
        self.guard.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._close()
        finally:
            self.guard.__exit__(None, None, None)

    def _close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def _pool(self, spec: Spec) -> ProcessPoolExecutor:
        if self.pool is None:
            ctx = mp.get_context(self.plan.context)
            if self.plan.context == "forkserver" and self.plan.preload:
                ctx.set_forkserver_preload(list(self.plan.preload))
            write_spec(spec)
            self.pool = ProcessPoolExecutor(self.n, mp_context=ctx, initializer=die_with, initargs=(os.getpid(),))
        return self.pool

    def run(self, spec: Spec, tasks: list[Task]) -> Iterator[tuple[int, Failure | None]]:
        if self.n == 1:  # in this process, exactly as the stages ran with one worker before
            for i, shard in tasks:
                try:
                    execute(spec, i, shard)
                except Exception as err:  # noqa: BLE001  (recorded per shard, retried, then a reject)
                    yield i, Failure(err)
                else:
                    yield i, None
            return
        pool = self._pool(spec)
        futures = {pool.submit(file_task, spec.scratch, spec.token, i, shard): i for i, shard in tasks}
        broken = False
        for f in as_completed(futures):
            err = f.exception()
            broken |= isinstance(err, BrokenProcessPool)
            yield futures[f], None if err is None else Failure(err, lost_worker=isinstance(err, BrokenProcessPool))
        if broken:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


_CLIENTS: dict[tuple, Any] = {}
"""Dask clients (and the local clusters they own) by (address or 'local', workers): reused by later calls."""


def dask_client(address: str | None, workers: int):
    """A client of the cluster at ``address``, or of a loopback ``LocalCluster`` started on first use.

    The local cluster: ``workers`` processes with one thread each (the stages'
    kernels are single-threaded per worker, as in the local pool), no
    dashboard, and ``allowed-failures: 0`` so a worker death reaches our retry
    loop at once and counts as one attempt (Dask's own default would rerun the
    task three times first). A running cluster keeps its own setting.
    """
    key = (address or "local", None if address else workers)
    client = _CLIENTS.get(key)
    if client is not None and client.status == "running":
        return client
    import logging

    import dask
    from distributed import Client, LocalCluster

    if address:
        client = Client(address, set_as_default=False)
    else:
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None, silence_logs=logging.ERROR)  # fmt: skip
        client = Client(cluster, set_as_default=False)
    _CLIENTS[key] = client
    return client


def close_clients() -> None:
    """Close every client and the local clusters they started (at exit; tests call it too)."""
    while _CLIENTS:
        _, client = _CLIENTS.popitem()
        cluster = client.cluster
        client.close()
        if cluster is not None:
            cluster.close()


atexit.register(close_clients)


class DaskEngine:
    """Shards as Dask tasks: the scheduler places each on a free worker (work stealing evens out slow shards)."""

    def __init__(self, cfg: WorkersConfig, plan: Plan, n_shards: int):
        self.client = dask_client(cfg.address, max(1, plan.workers))

    def __enter__(self) -> DaskEngine:
        return self

    def __exit__(self, *exc) -> None:
        pass  # the client is cached for the next stage call; closed at exit

    def run(self, spec: Spec, tasks: list[Task]) -> Iterator[tuple[int, Failure | None]]:
        import uuid

        from distributed import as_completed as dask_completed
        from distributed.scheduler import KilledWorker

        write_spec(spec)
        attempt = uuid.uuid4().hex[:8]
        futures = {
            self.client.submit(file_task, spec.scratch, spec.token, i, shard, key=f"shard-{spec.token}-{i}-{attempt}",
                               pure=False, retries=0): i
            for i, shard in tasks
        }  # fmt: skip
        for f in dask_completed(list(futures), loop=self.client.loop):
            err = None
            if f.status != "finished":
                try:
                    err = f.exception() or RuntimeError(f"task {f.key} ended as {f.status}")
                except BaseException as cancelled:  # noqa: BLE001  (a cancelled future raises instead of returning)
                    err = cancelled
            f.release()
            yield futures[f], None if err is None else Failure(err, lost_worker=isinstance(err, KilledWorker))


ENGINES: dict[str, type] = {"local": LocalEngine, "dask": DaskEngine}
"""Engines by name; ``fairsplat.parallel.core.ENGINE_NAMES`` lists the same keys (tests check)."""


def make_engine(cfg: WorkersConfig, plan: Plan, n_shards: int):
    return ENGINES[cfg.engine](cfg, plan, n_shards)
