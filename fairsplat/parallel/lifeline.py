"""Worker processes die with the stage that started them: a SIGTERM handler in the stage, a watch in the worker.

Why: ``kill <stage pid>`` (SIGTERM, what a supervisor or ``kill`` sends) ends
a Python process at once by default, and its pool workers, busy with a shard
or a training run, would keep running as orphans, for minutes, holding CPU
and memory. Two guards, used by the local pool (fairsplat/parallel/engines.py)
and the training jobs (fairsplat/train/jobs.py):

- :func:`kill_children_on_sigterm`, in the stage's process while its pool
  runs: on SIGTERM it SIGKILLs its multiprocessing children, then lets the
  signal do what it did before (the caller, DVC or a shell, sees the same
  exit);
- :func:`die_with`, in each worker: a daemon thread that ends the worker
  once the stage is gone, which also covers a SIGKILL of the stage alone,
  where no handler can run.

SIGKILL of the whole process group (the fault sweep's kill) and Ctrl-C in a
terminal (SIGINT to the whole foreground group) reach the workers directly.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process now: ours is gone
        return False
    return True


def die_with(stage: int, period: float = 0.2) -> None:
    """End this worker (``os._exit``) within ``period`` s of ``stage`` (the pid that started the pool) ending.

    Watches both the worker's parent pid as it is now (the stage; under a
    forkserver, the forkserver, which exits with the stage) and ``stage``
    itself: an orphan is re-parented (to init or a subreaper), so its parent
    pid changes. Checked once before the worker does anything, in case the
    stage died while the worker started."""
    parent = os.getppid()

    def gone() -> bool:
        return os.getppid() != parent or not _exists(stage)

    def watch() -> None:
        while not gone():
            time.sleep(period)
        os._exit(1)

    if gone():
        os._exit(1)
    threading.Thread(target=watch, name="die-with-stage", daemon=True).start()


@contextmanager
def kill_children_on_sigterm() -> Iterator[None]:
    """While inside: on SIGTERM, SIGKILL this process's multiprocessing children, then handle the signal as before.

    "As before": the previous handler is put back and the signal raised again,
    so a default-handled SIGTERM still ends the process with that signal. Only
    in the main thread (Python handles signals there) and only if SIGTERM is
    not ignored; nested uses chain."""
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
