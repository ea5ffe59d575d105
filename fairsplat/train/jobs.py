"""Independent training runs side by side: one process per run, one torch thread each.

Why: a stage that trains two models (the generator and its balanced
reference; an adapter and a full fine-tune) on a 2-core machine gets them
both for the wall time of one, where two OpenMP threads in one process would
lose most of the second core to barrier spinning (bench/README.md). Results
come back pickled (state dicts, histories): small next to the data each
worker reads itself. With ``workers == 1`` (or under ``accelerate launch``,
where every process is already one rank of a DDP run) the runs go one after
the other in this process, through the same function, so the two paths
cannot drift apart.

``concurrent.futures`` rather than ``multiprocessing.Pool``: a worker that
dies (killed, out of memory) raises ``BrokenProcessPool`` here instead of
leaving the stage waiting forever for a result that will never come. Tensors
cross as numpy arrays (:func:`to_arrays` / :func:`to_tensors`): torch pickles
tensors between processes as shared-memory handles, which are dead once the
worker that made them exits.

Workers die with their parent (fairsplat/parallel/lifeline.py): while the
pool runs, a SIGTERM of the stage kills them first, and each worker exits
once the stage is gone (a SIGKILL of the stage alone); without this, a
``kill`` of a stage left its workers training on as orphans for minutes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from fairsplat.parallel.lifeline import die_with, kill_children_on_sigterm

J = TypeVar("J")
R = TypeVar("R")


def _init(threads: int, parent: int) -> None:
    die_with(parent)
    import torch

    torch.set_num_threads(threads)


def run_jobs(fn: Callable[[J], R], jobs: Sequence[J], workers: int, threads: int = 1) -> list[R]:
    """``[fn(job) for job in jobs]``, on up to ``workers`` spawned processes; results in job order.

    ``fn`` must be a module-level function and ``jobs`` picklable (spawn
    re-imports the module in each worker; nothing is inherited by fork).
    """
    if workers <= 1 or len(jobs) <= 1:
        return [fn(j) for j in jobs]
    ctx = mp.get_context("spawn")
    with kill_children_on_sigterm(), ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx, initializer=_init,
                                                           initargs=(threads, os.getpid())) as pool:  # fmt: skip
        return list(pool.map(fn, jobs))


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """A block run with ``n`` torch threads, the count restored after (``n <= 0``: unchanged).

    Why: a stage whose trainers ran one thread per process (above) is alone on the machine once they are
    done; its main process then scores, fits and plots with every core instead of one.
    """
    import torch

    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def to_arrays(state: dict) -> dict:
    """A state dict with every tensor as a plain numpy array (safe to return from a worker)."""
    return {k: v.detach().cpu().numpy() for k, v in state.items()}


def to_tensors(state: dict) -> dict:
    import torch

    return {k: torch.from_numpy(v) for k, v in state.items()}
