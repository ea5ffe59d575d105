"""The local weights cache: where each registry file lives and whether it is usable.

Why a cache check apart from fetching: metrics and models ask "are the weights
here?" many times per run; ``available`` is one ``stat`` and ``verify`` hashes
the file once per process (keyed by path, size and mtime, so a re-fetched file
is hashed again) instead of re-hashing 59 MB on every call.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal

from fairsplat.weights.errors import WeightsError, WeightsMissing
from fairsplat.weights.registry import WEIGHTS, WeightFile

ENV_DIR = "FAIRSPLAT_WEIGHTS_DIR"
"""Environment variable that overrides the cache folder (CI caches, tests)."""
REPO_ROOT = Path(__file__).resolve().parents[2]

_VERIFIED: dict[tuple[str, int, int, str], bool] = {}


def weights_dir() -> Path:
    """``$FAIRSPLAT_WEIGHTS_DIR`` if set, else ``<repo root>/.weights`` (git- and dvc-ignored).

    Inside a DVC experiment workspace (``<repo>/.dvc/tmp/exps/...``: ``dvc exp run --temp`` or a queued run,
    which copy only tracked files) the root is the outer checkout, where ``make env`` fetched them.
    """
    return Path(os.environ.get(ENV_DIR) or _outer_repo(REPO_ROOT) / ".weights")


def _outer_repo(root: Path) -> Path:
    parts = root.parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return root


def entry(name: str) -> WeightFile:
    """The registry entry ``name``, or an error listing the known names."""
    try:
        return WEIGHTS[name]
    except KeyError:
        raise WeightsError(f"unknown weight file {name!r}; known: {', '.join(sorted(WEIGHTS))}") from None


def local_path(name: str) -> Path:
    """Cache path of ``name``: ``<weights dir>/<package>-<version>/<member base name>``."""
    e = entry(name)
    return weights_dir() / f"{e.package}-{e.version}" / e.filename


def fetch_command(*names: str) -> str:
    """The shell command that fetches ``names`` (all entries when empty)."""
    return " ".join(["python -m fairsplat.weights fetch", *names])


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def available(name: str) -> bool:
    """Cheap: the cached file exists (no hashing; see :func:`verify`)."""
    return local_path(name).is_file()


def verify(name: str) -> bool:
    """The cached file exists and matches its registry sha256 (hashed once per process per size+mtime)."""
    path = local_path(name)
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    key = (str(path), st.st_size, st.st_mtime_ns, entry(name).sha256)
    if key not in _VERIFIED:
        _VERIFIED[key] = sha256_file(path) == entry(name).sha256
    return _VERIFIED[key]


def state(name: str) -> Literal["present", "missing", "corrupt"]:
    """``present`` (sha256 matches), ``missing`` or ``corrupt`` (exists, wrong sha256)."""
    if not available(name):
        return "missing"
    return "present" if verify(name) else "corrupt"


def weight_path(name: str) -> Path:
    """Path of a verified cached file; :class:`WeightsMissing` names the file and the fetch command."""
    path = local_path(name)
    found = state(name)
    if found != "present":
        why = "is missing" if found == "missing" else f"does not match its sha256 {entry(name).sha256}"
        raise WeightsMissing(f"weight file {name!r} ({path}) {why}; fetch it with `{fetch_command(name)}` (or `make env`)")
    return path


def load(name: str) -> Any:
    """Read ``name`` with its registry loader (``WeightFile.loader``)."""
    return entry(name).loader(weight_path(name))
