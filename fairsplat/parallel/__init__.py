"""Map a function over deterministic shards, on local processes or a Dask cluster; results come back as files.

Why one layer: the data stages (synth, curate, degrade) each had their own
``multiprocessing.Pool``. At real scale (108K FairFace images, 35K CelebV-HQ
clips) one machine's pool is not enough, and a user with a cluster expects an
existing engine (Dask distributed; README "Beyond one machine" has the measured
comparison with Ray). Every stage now calls :func:`map_shards` and is the same
code whatever runs it:

- ``workers.engine: local`` (default): today's process pool on this machine
  (or in-process when the stage asks for one worker);
- ``workers.engine: dask``: a Dask ``LocalCluster`` on loopback, one worker
  process per stage worker, one thread each;
- ``workers.engine: dask`` + ``workers.address: tcp://host:8786``: a running
  Dask cluster. Its workers must import this checkout and see the stage's
  input and output paths (a shared filesystem), as the stage's own files are
  written by the workers.

Each shard's result is pickled by the worker into ``<scratch>/shard-<i>.pkl``
with an atomic write (fairsplat/io/atomic.py), never returned as one huge
object through the scheduler; the caller reads the files in shard order, so
the merge is the same whatever order shards finished in, and outputs are
byte-identical across engines (tests/test_parallel.py). The pickles are this
run's own, written into a fresh private directory and deleted after the merge.

A shard that raises, or whose worker dies (SIGKILL, out of memory), is run
again up to ``retries`` times; after that it comes back as an
:class:`Outcome` with its error, and the stage records its items as rejects
(or, where the stage has no rejects, fails naming the shard). Nothing is
dropped silently. A worker death charges one attempt to every shard that had
started and not finished on the lost pool (the local pool cannot tell which
of them killed it; Dask can, and charges only that worker's shard); shards
that had not started are re-queued free.
"""

from __future__ import annotations

import pickle
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from fairsplat.parallel.core import (
    ENGINE_NAMES, Failure, Outcome, Plan, Spec, WorkersConfig, in_worker, result_path, shards_of, started_path,
)  # fmt: skip
from fairsplat.parallel.engines import ENGINES, make_engine

__all__ = ["ENGINES", "ENGINE_NAMES", "Failure", "Outcome", "Plan", "ShardsFailed", "Spec", "WorkersConfig",
           "in_worker", "iter_values", "map_shards", "shards_of"]  # fmt: skip


def map_shards(
    fn: Callable[[Any], Any],
    shards: Sequence[Any],
    plan: Plan,
    cfg: WorkersConfig | None = None,
    init: Callable[..., None] | None = None,
    initargs: tuple = (),
    scratch_in: str | Path | None = None,
) -> list[Outcome]:
    """``fn(shard)`` for every shard on the configured engine -> one :class:`Outcome` per shard, in shard order.

    ``fn`` and ``init`` must be module-level functions; ``init(*initargs)``
    runs once per worker process before its first shard (and in this process
    when the local engine runs serially). ``scratch_in``: where the shard files
    go (a directory every worker can write; default the system temp dir, which
    a multi-machine cluster does not share, so stages pass their output dir).
    """
    cfg = cfg or WorkersConfig()
    if scratch_in is not None:
        Path(scratch_in).mkdir(parents=True, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".shards.", dir=scratch_in)
    spec = Spec(fn, init, tuple(initargs), scratch, uuid.uuid4().hex)
    try:
        engine = make_engine(cfg, plan, n_shards=len(shards))
        return _run(engine, spec, list(shards), plan, cfg.retries)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(engine, spec: Spec, shards: list, plan: Plan, retries: int) -> list[Outcome]:
    """Rounds of attempts until every shard has a file or has used ``1 + retries`` attempts."""
    attempts, unstarted_losses = [0] * len(shards), [0] * len(shards)
    errors: dict[int, str] = {}
    pending = list(range(len(shards)))
    bar = tqdm(total=sum(plan.weight(s) for s in shards), desc=plan.desc, unit=plan.unit, mininterval=1.0,
               disable=not plan.progress)  # fmt: skip
    with bar, engine:
        while pending:
            retry: list[int] = []
            for i, failure in engine.run(spec, [(i, shards[i]) for i in pending]):
                if failure is not None and failure.lost_worker and result_path(spec.scratch, i).exists():
                    failure = None  # it finished (the file is written atomically) before the pool broke
                if failure is None:
                    attempts[i] += 1
                    errors.pop(i, None)
                    bar.update(plan.weight(shards[i]))
                    continue
                if failure.lost_worker and not started_path(spec.scratch, i).exists():
                    unstarted_losses[i] += 1  # never ran: not charged, but bounded like a charge
                    if unstarted_losses[i] <= retries + 1:
                        retry.append(i)
                        continue
                attempts[i] += 1
                errors[i] = f"{type(failure.error).__name__}: {failure.error}"[:300]
                started_path(spec.scratch, i).unlink(missing_ok=True)
                if attempts[i] <= retries:
                    retry.append(i)
                    tqdm.write(f"{plan.desc}: shard {i} attempt {attempts[i]} failed ({errors[i]}); retrying", file=sys.stderr)
            pending = sorted(retry)
    return [_outcome(spec, i, s, attempts[i], errors.get(i)) for i, s in enumerate(shards)]


def _outcome(spec: Spec, i: int, shard: Any, attempts: int, error: str | None) -> Outcome:
    path = result_path(spec.scratch, i)
    if error is None and path.exists():
        return Outcome(i, shard, pickle.loads(path.read_bytes()), None, attempts)
    why = error or "no result file and no error (the engine lost the shard)"
    return Outcome(i, shard, None, f"{why} (after {attempts} attempt{'s' * (attempts != 1)})", attempts)


def iter_values(outcomes: Sequence[Outcome]) -> Iterator[Any]:
    """The results of every shard, in order; raises :class:`ShardsFailed` if any shard failed."""
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise ShardsFailed(failed)
    for o in outcomes:
        yield o.value


class ShardsFailed(RuntimeError):
    """Shards that failed every attempt, in a stage that has no rejects table to put them in."""

    def __init__(self, failed: Sequence[Outcome]):
        self.failed = list(failed)
        lines = [f"shard {o.index}: {o.error}" for o in self.failed[:10]]
        more = f"\n  ... and {len(self.failed) - 10} more" if len(self.failed) > 10 else ""
        super().__init__(f"{len(self.failed)} shard(s) failed:\n  " + "\n  ".join(lines) + more)
