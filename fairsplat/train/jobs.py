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

Workers die with their parent. ``kill <stage pid>`` (SIGTERM, what a
supervisor or ``kill`` of a stage sends) ends the stage process at once by
default, and its spawned workers, busy in a training run, would keep running
as orphans for minutes. So while the pool runs, a SIGTERM handler in the
parent kills its children first and then lets the signal do what it did
before (:func:`_kill_children_on_sigterm`); and each worker watches its
parent's pid and exits when it is gone (:func:`_die_with`), which also covers
a SIGKILL of the parent alone, where no handler can run. SIGKILL of the whole
process group (the fault sweep's kill) reaches the workers directly.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

J = TypeVar("J")
R = TypeVar("R")


def _init(threads: int, parent: int) -> None:
    _die_with(parent)
    import torch

    torch.set_num_threads(threads)


def _die_with(parent: int, period: float = 0.2) -> None:
    """End this worker (``os._exit``) within ``period`` seconds of ``parent`` ending, from a daemon thread.

    Why polling ``os.getppid()``: it is portable and needs nothing from the
    parent; an orphan is re-parented (to init or a subreaper), so its parent
    pid changes. The thread checks once before the worker does anything, in
    case the parent died while the worker started."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(period)
        os._exit(1)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


@contextmanager
def _kill_children_on_sigterm() -> Iterator[None]:
    """While inside: on SIGTERM, SIGKILL this process's multiprocessing children, then handle the signal as before.

    "As before": the previous handler is put back and the signal raised again,
    so a default-handled SIGTERM still ends the process with that signal (the
    caller, DVC or a shell, sees the same exit). Only in the main thread
    (Python handles signals there) and only if SIGTERM is not ignored."""
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or previous == signal.SIG_IGN:
        yield
        return

    def handler(signum, frame) -> None:
        for child in mp.active_children():
            child.kill()
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)
        else:
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_jobs(fn: Callable[[J], R], jobs: Sequence[J], workers: int, threads: int = 1) -> list[R]:
    """``[fn(job) for job in jobs]``, on up to ``workers`` spawned processes; results in job order.

    ``fn`` must be a module-level function and ``jobs`` picklable (spawn
    re-imports the module in each worker; nothing is inherited by fork).
    """
    if workers <= 1 or len(jobs) <= 1:
        return [fn(j) for j in jobs]
    ctx = mp.get_context("spawn")
    with _kill_children_on_sigterm(), ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx, initializer=_init,
                                                           initargs=(threads, os.getpid())) as pool:  # fmt: skip
        return list(pool.map(fn, jobs))


def to_arrays(state: dict) -> dict:
    """A state dict with every tensor as a plain numpy array (safe to return from a worker)."""
    return {k: v.detach().cpu().numpy() for k, v in state.items()}


def to_tensors(state: dict) -> dict:
    import torch

    return {k: torch.from_numpy(v) for k, v in state.items()}
