"""Atomic writes: a crash leaves the old output or nothing, never half a file.

Why: DVC trusts that an output which exists is complete. Every writer in the
project goes through these helpers: write to a temporary sibling on the same
filesystem, fsync, then ``os.replace`` (atomic on POSIX).

A process killed with SIGKILL runs no ``finally``: its temporary sibling stays
behind. Temporary names carry their writer (``.<name>.~<host>~<pid>~<random>``),
and the next atomic write into the same directory removes the ones whose
writer, on this host, is dead (:func:`sweep`). Why it matters beyond disk
space: stage ``report`` depends on the whole ``plots/`` directory, so a stray
``plots/.train_ff.~...`` left by a killed run changed its dependency hash and
re-ran it (found by the fault sweep, fairsplat/testing/faults.py). A writer on
another host (a shared filesystem) or alive here is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _plain_mode(path: Path, directory: bool) -> None:
    """mkstemp/mkdtemp create 0600/0700; give outputs the mode a plain open/mkdir would."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


_HOST = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64] or "host"
TEMP = re.compile(r"^\..+\.~(?P<host>[A-Za-z0-9._-]+)~(?P<pid>\d+)~")
"""A temporary sibling written by this module: ``.<name>.~<host>~<pid>~<random><suffix>``."""
_swept: set[str] = set()  # directories this process has swept (once each: a shard writer may fill one with 100K files)


def _prefix(name: str) -> str:
    return f".{name}.~{_HOST}~{os.getpid()}~"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep(directory: str | Path, force: bool = False) -> list[Path]:
    """Remove the temporaries in ``directory`` left by dead writers on this host. -> what was removed.

    Each directory is swept once per process (``force``: again), on its first
    atomic write: listing a directory costs as much as its entries.
    """
    directory = Path(directory)
    key = str(directory.resolve())
    if key in _swept and not force:
        return []
    _swept.add(key)
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    for e in entries:
        m = TEMP.match(e.name)
        if m is None or m["host"] != _HOST or _alive(int(m["pid"])):
            continue
        path = Path(e.path)
        if e.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary file path; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path.name), suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    _plain_mode(tmp_path, directory=False)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` when the block succeeds.

    The swap is rename-based: the old directory (if any) is moved aside, the new
    one renamed into place, then the old one deleted. A crash inside the block
    leaves the previous output untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(path.name), dir=path.parent))
    _plain_mode(tmp, directory=True)
    try:
        yield tmp
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=_prefix(path.name) + "old.", dir=path.parent))
            os.replace(path, old / "x")
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
