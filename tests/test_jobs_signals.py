"""fairsplat/train/jobs.py: the spawned workers of ``run_jobs`` die with their parent.

A parent process runs two jobs that sleep for a minute on two spawned workers;
once both have started, the parent alone is stopped: with SIGTERM (what
``kill <pid>`` sends; the handler kills the workers, then the parent ends with
that signal as before) or with SIGKILL (no handler runs; each worker sees its
parent gone and exits). No worker may survive either way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fairsplat.testing.procs import alive

PARENT = """
import sys
from fairsplat.testing.shards import pid_then_sleep
from fairsplat.train.jobs import run_jobs
run_jobs(pid_then_sleep, [(sys.argv[1], 60.0), (sys.argv[1], 60.0)], workers=2)
"""


def _wait(cond, timeout: float) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to tell a live worker from a zombie")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_workers_do_not_outlive_a_stopped_parent(sig, tmp_path: Path):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path)], env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert _wait(lambda: len(list(tmp_path.glob("*.pid"))) == 2, 180), "both jobs started on workers"
        workers = [int(p.stem) for p in tmp_path.glob("*.pid")]
        assert parent.pid not in workers and all(alive(w) for w in workers)
        parent.send_signal(sig)
        assert parent.wait(30) == -sig, "the parent ends with the signal, as it would without the handler"
        assert _wait(lambda: not any(alive(w) for w in workers), 15), f"orphaned workers: {[w for w in workers if alive(w)]}"
    finally:
        parent.kill()
        for p in tmp_path.glob("*.pid"):
            try:
                os.kill(int(p.stem), signal.SIGKILL)
            except ProcessLookupError:
                pass
