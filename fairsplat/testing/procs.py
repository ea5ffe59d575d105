"""Processes seen through ``/proc`` (Linux): is one alive, which one is a stage, freeze it before a kill.

Why: the fault sweep (fairsplat/testing/faults.py) must kill a stage while
the stage's own process runs, never while DVC, after the stage exited, writes
``dvc.lock`` (DVC 3.67 writes it in place: a kill there truncates it, README
"Fault sweep"). So the sweep finds the stage's process in DVC's session and
stops it (SIGSTOP) before it SIGKILLs the group: a stopped process cannot
finish in between, so the kill lands inside the stage or not at all.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def _stat(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` after the command name: [state, ppid, pgrp, session, ...]; None when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """Running or stopped; a zombie (exited, not yet reaped) counts as gone. Without /proc: ``kill(pid, 0)``."""
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) ``pid`` has used so far; 0 when gone. Why: a clock that a loaded machine does
    not stretch, so a kill "after 2 s of the stage's own work" lands at the same point of its work at any load."""
    st = _stat(pid)
    return 0.0 if st is None else (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")


def stage_pid(session: int, stage: str) -> int | None:
    """The live process of ``python -m stages.<stage>`` in ``session`` (DVC's, started with a new session).

    Its forked pool workers carry the same command line; the stage is the one
    whose parent is not one of them."""
    want, found = f"stages.{stage}".encode(), {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = _stat(int(name))
        if st is None or st[0] in ("Z", "X") or int(st[3]) != session:
            continue
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if want in argv:
            found[int(name)] = int(st[1])
    roots = [pid for pid, ppid in found.items() if ppid not in found]
    return min(roots) if roots else None


def freeze(pid: int) -> bool:
    """SIGSTOP ``pid`` and wait until it is stopped. -> False when it had already exited (or was a zombie)."""
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        return False
    for _ in range(200):  # the stop is asynchronous: at most ~1 s
        st = _stat(pid)
        if st is None or st[0] in ("Z", "X"):
            return False
        if st[0] in ("T", "t"):
            return True
        time.sleep(0.005)
    return alive(pid)
