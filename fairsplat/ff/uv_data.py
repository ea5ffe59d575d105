"""Seed 003's two training phases as step-indexed samplers over curated SynthHeads crops.

Crops are grouped by (subject, frame, view): SynthHeads ids end in
``_f<frame>_v<view>``; a crop without that pattern is its own frame and view.

- **Phase 1, monocular-temporal** (``TemporalBatches``): each identity is seen
  from ONE camera (a fixed, seeded view per identity, so the phase never sees
  an identity from two cameras); K ~ U{1..max_k} sources and a target at
  another frame of that camera. The first source is drawn with probability
  proportional to its dissimilarity to the target (expression distance plus
  camera-direction angle, each over its batch median), as the seed biases it
  away from easy near-identity pairs.
- **Phase 2, multi-view** (``MultiViewBatches``): a smaller, disjoint set of
  identities seen by several cameras at one time: sources at one frame, the
  target at the same frame from another camera; ``round(mix · B)`` samples of
  every micro-batch are cross-time instead (the target at another frame, any
  camera): seed 003's 25 %.

Batch ``i`` is a pure function of (seed, i), as ``StepBatches``: a resumed run
replays the data an uninterrupted one would have seen.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from fairsplat.ff.data import Frames, gather

_ID = re.compile(r"_f(\d+)_v(\d+)$")


def frame_view(frames: Frames) -> tuple[list[int], list[int]]:
    """(frame, view) per row; rows without the SynthHeads pattern get unique negative ids."""
    fs, vs = [], []
    for i, name in enumerate(frames.ids):
        m = _ID.search(name)
        fs.append(int(m.group(1)) if m else -1 - i)
        vs.append(int(m.group(2)) if m else -1 - i)
    return fs, vs


def split_phases(subjects: Sequence[str], phase2_share: float, seed: int) -> tuple[list[str], list[str]]:
    """Disjoint (phase-1, phase-2) identities: phase 2 gets ``round(share · n)`` of them (at least 1)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 17]))
    order = [subjects[i] for i in rng.permutation(len(subjects))]
    n2 = max(1, int(round(phase2_share * len(order))))
    return sorted(order[n2:]), sorted(order[:n2])


class _Base(torch.utils.data.Dataset):
    def __init__(self, frames: Frames, subjects: Sequence[str], batch: int, max_k: int, n: int, seed: int, tag: int) -> None:
        if not subjects:
            raise ValueError("no training subjects for this phase")
        self.frames, self.batch, self.max_k, self.n, self.seed, self.tag = frames, batch, max_k, n, seed, tag
        self.frame, self.view = frame_view(frames)
        rows = frames.by_subject()
        self.rows = [rows[s] for s in subjects]

    def __len__(self) -> int:
        return self.n

    def rng(self, i: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, self.tag, i]))

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        sources, targets = self.pick(i)
        return gather(self.frames, sources, targets)


def _fill(picked: list[int], k: int) -> list[int]:
    """K sources from ``picked`` (repeating the first when a subject has fewer distinct crops)."""
    return (picked + [picked[0]] * k)[:k]


class TemporalBatches(_Base):
    def __init__(self, frames: Frames, subjects: Sequence[str], batch: int, max_k: int, n: int, seed: int) -> None:
        super().__init__(frames, subjects, batch, max_k, n, seed, tag=31)
        rng = np.random.default_rng(np.random.SeedSequence([seed, 37]))
        self.mono: list[list[int]] = []  # per identity: the rows of its one camera (>= 2 frames)
        for rows in self.rows:
            by_view = defaultdict(list)
            for r in rows:
                by_view[self.view[r]].append(r)
            views = sorted(v for v, rs in by_view.items() if len(rs) >= 2)
            if views:
                self.mono.append(by_view[views[int(rng.integers(len(views)))]])
        if not self.mono:
            raise ValueError("phase 1: no identity has two frames from one camera")
        tr = frames.track
        self.expr = tr["expr"].numpy()
        from fairsplat.ff.uv_context import view_direction

        self.dir = view_direction(tr["viewmat"], tr["pose"], tr["transl"]).numpy()

    def dissimilarity(self, cands: list[int], target: int) -> np.ndarray:
        e = np.linalg.norm(self.expr[cands] - self.expr[target], axis=1)
        a = np.arccos(np.clip(self.dir[cands] @ self.dir[target], -1.0, 1.0))
        return e / (np.median(e) + 1e-6) + a / (np.median(a) + 1e-6)

    def pick(self, i: int) -> tuple[list[list[int]], list[int]]:
        rng = self.rng(i)
        k = int(rng.integers(1, self.max_k + 1))
        sources, targets = [], []
        for s in rng.integers(0, len(self.mono), self.batch):
            rows = self.mono[s]
            t = rows[int(rng.integers(len(rows)))]
            cands = [r for r in rows if r != t]
            w = self.dissimilarity(cands, t) + 1e-3
            first = cands[int(rng.choice(len(cands), p=w / w.sum()))]  # biased away from the target
            rest = [cands[j] for j in rng.permutation(len(cands)) if cands[j] != first]
            sources.append(_fill([first, *rest], k))
            targets.append(t)
        return sources, targets


class MultiViewBatches(_Base):
    def __init__(self, frames: Frames, subjects: Sequence[str], batch: int, max_k: int, n: int, seed: int,
                 mix: float) -> None:  # fmt: skip
        super().__init__(frames, subjects, batch, max_k, n, seed, tag=41)
        if not 0 <= mix <= 1:
            raise ValueError(f"cross-time mix {mix}: a share in [0, 1]")
        self.mix = mix
        self.by_time: list[dict[int, list[int]]] = []
        for rows in self.rows:
            d = defaultdict(list)
            for r in rows:
                d[self.frame[r]].append(r)
            self.by_time.append(dict(d))

    def pick(self, i: int) -> tuple[list[list[int]], list[int]]:
        rng = self.rng(i)
        k = int(rng.integers(1, self.max_k + 1))
        n_cross = int(round(self.mix * self.batch))
        sources, targets = [], []
        for j, s in enumerate(rng.integers(0, len(self.rows), self.batch)):
            times = self.by_time[s]
            multi = sorted(f for f, rs in times.items() if len(rs) >= 2)
            f = multi[int(rng.integers(len(multi)))] if multi else sorted(times)[int(rng.integers(len(times)))]
            at = [times[f][x] for x in rng.permutation(len(times[f]))]
            if j < n_cross and len(times) > 1:  # cross-time: the target at another frame, any camera
                others = [r for g, rs in times.items() if g != f for r in rs]
                t, pool = others[int(rng.integers(len(others)))], at
            else:  # cross-camera: same frame, another view
                t, pool = at[0], at[1:] or at
            sources.append(_fill(pool, k))
            targets.append(t)
        return sources, targets
