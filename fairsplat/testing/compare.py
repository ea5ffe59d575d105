"""Compare a stage's outputs with a reference run's: bytes first, then by value (fault sweep, e2e determinism).

Why by value: a rerun that resumed, or simply ran at another time, writes the
same results with other timings (``seconds``, ``fps``, ``resumed_*``) in its
metrics and tables; those keys (:data:`VOLATILE`) are skipped, everything else
must be equal, and a trainer's tensors within :data:`TRAIN_TOL`. Split from
fairsplat/testing/faults.py, which re-exports :func:`compare`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

VOLATILE = re.compile(r"seconds|_per_s$|fps|(^|_)ms($|_)|^wall|resumed|^timestamp$|^features_computed$")
"""Keys (JSON, dvclive) and columns (Parquet, TSV) that time the run, say it resumed, or count what the feature
store (fairsplat/models/feature_store.py) had to compute because an earlier run had not: never compared."""
TRAIN_TOL = {"rtol": 1e-5, "atol": 1e-6}
"""Tensors and numbers of a resumed trainer against the uninterrupted run."""


def _close(a, b, tol: dict | None, path: str, out: list[str], worst: list[float]) -> None:
    """Compare JSON-like values; numbers within ``tol`` (None: exactly); volatile keys skipped."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = {k for k in set(a) | set(b) if not VOLATILE.search(str(k))}
        for k in sorted(keys, key=str):
            if k not in a or k not in b:
                out.append(f"{path}: key {k!r} only in {'the rerun' if k in b else 'the reference'}")
            else:
                _close(a[k], b[k], tol, f"{path}.{k}", out, worst)
    elif isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        if a.shape != b.shape or a.dtype != b.dtype:
            out.append(f"{path}: {a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)}")
        elif not np.array_equal(a, b):
            d = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())
            if tol is None or not np.allclose(b, a, rtol=tol["rtol"], atol=tol["atol"]):
                out.append(f"{path}: max abs diff {d:.3g}")
            else:
                worst.append(d)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, tol, f"{path}[{i}]", out, worst)
    elif isinstance(a, float) and isinstance(b, (int, float)) and tol is not None and a != b:
        d = abs(a - b)
        if d > tol["atol"] + tol["rtol"] * abs(a):
            out.append(f"{path}: {a} vs {b}")
        else:
            worst.append(d)
    elif a != b:
        out.append(f"{path}: {str(a)[:60]} vs {str(b)[:60]}")


def _load(path: Path):
    """A file as comparable values: JSON, a Parquet table's rows, a TSV's rows, safetensors' or a torch-saved dict's
    arrays; else None (compared by bytes)."""
    suffix = path.suffix
    if suffix == ".json":
        return json.loads(path.read_text())
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if suffix == ".tsv":
        lines = [ln.split("\t") for ln in path.read_text().splitlines()]
        return [dict(zip(lines[0], (float(v) for v in r))) for r in lines[1:]] if lines else []
    if suffix == ".safetensors":
        from safetensors.numpy import load_file

        return load_file(str(path))  # name -> numpy array
    if suffix == ".pt":  # torch.save of tensors (the SoulSplats adapter): weights only, no code runs
        import torch

        return {k: v.numpy() for k, v in torch.load(path, map_location="cpu", weights_only=True).items()}
    return None


def compare(ref: Path, got: Path, tol: dict | None) -> tuple[list[str], float]:
    """Differences between two outputs (files or trees): byte-equal files pass; a JSON, Parquet, TSV or
    safetensors file that differs is compared by value (volatile keys skipped; numbers within ``tol``,
    None: exactly). -> (differences, the largest difference accepted)"""
    diffs: list[str] = []
    worst: list[float] = [0.0]
    if ref.is_file() or got.is_file():
        pairs = [(ref, got, ref.name)]
    else:
        names = {str(p.relative_to(ref)) for p in ref.rglob("*") if p.is_file()}
        mine = {str(p.relative_to(got)) for p in got.rglob("*") if p.is_file()} if got.is_dir() else set()
        diffs += [f"{n}: missing in the rerun" for n in sorted(names - mine)]
        diffs += [f"{n}: not in the reference" for n in sorted(mine - names)]
        pairs = [(ref / n, got / n, n) for n in sorted(names & mine)]
    for a, b, name in pairs:
        if not b.exists():
            diffs.append(f"{name}: missing in the rerun")
            continue
        if a.read_bytes() == b.read_bytes():
            continue
        try:
            va, vb = _load(a), _load(b)
        except Exception as e:  # an unreadable file is a difference, not a crash of the sweep
            diffs.append(f"{name}: unreadable ({e})")
            continue
        if va is None:
            diffs.append(f"{name}: bytes differ")
            continue
        _close(va, vb, tol, name, diffs, worst)
    return diffs, max(worst)


def tree_bytes(root: Path) -> dict[str, bytes]:
    """A file or a tree as {relative path: bytes} ({} when absent)."""
    if root.is_file():
        return {"": root.read_bytes()}
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()} if root.is_dir() else {}
