"""Held-out self-reenactment of the generator and of the constant-avatar baseline, row by row.

Protocol (per held-out subject, its crops in curate's order, frame-major):
the sources are the first K crops (K = 1: frame 0, frontal; K = 2: + the next
view of frame 0); the targets are every crop after the first ``max(ks)``, so
K = 1 and K = 2 are scored on the same targets. Each target is rendered with
its own tracked FLAME parameters and camera over mid-grey, and scored against
the crop: PSNR, SSIM and LPIPS (AlexNet, real weights), on the whole crop and
masked to the foreground alpha; ΔITA compares the skin of the render (the
avatar's skin-region Gaussians) with the skin of the first source (the crop's
label map): positive = the avatar is lighter than the photo it came from.

One row per (variant, K, subject, target); ``fairsplat.metrics.fairness``
turns them into per-type tables with CIs over subjects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from fairsplat.avatar.binding import AvatarBinding
from fairsplat.ff.data import Frames, gather
from fairsplat.ff.render import render_targets
from fairsplat.ff.uv_context import predict as ff_predict
from fairsplat.metrics import colour
from fairsplat.metrics.registry import Absent, compute_all
from fairsplat.models.lam import Attributes

IMAGE_METRICS = ("psnr", "ssim", "lpips_alex")
Predict = Callable[[Tensor, Tensor], Attributes]  # (sources [B, K, 3, S, S], points [B, G, 3]) -> attributes
# (renders [T, 3, S, S] in [0, 1], target crops [T, 3, S, S], the T rows): adds columns to the rows in place
# (bench/uv_ablation.py's AKD), so a caller scores more without this module holding every image of a run
OnImages = Callable[[Tensor, Tensor, list[dict]], None]


def heldout_subjects(frames: Frames, splits: Sequence[str], ks: Sequence[int]) -> tuple[dict[str, list[int]], list[str]]:
    """Subjects of ``splits`` with enough crops for max(ks) sources and a target; and those without."""
    need = max(ks) + 1
    subjects = frames.by_subject(splits)
    keep = {s: rows for s, rows in subjects.items() if len(rows) >= need}
    return keep, sorted(set(subjects) - set(keep))


def _scores(rgb: Tensor, target: Tensor, mask: Tensor) -> dict[str, list[float | None]]:
    out: dict[str, list[float | None]] = {}
    for name, vals in compute_all(rgb.clamp(0, 1), target, mask, names=IMAGE_METRICS).items():
        out[name] = [None] * len(rgb) if isinstance(vals, Absent) else [float(v) for v in vals]
    return out


@torch.no_grad()
def score_subject(predict: Predict, frames: Frames, binding: AvatarBinding, rows: list[int], k: int, skip: int,
                  size: int, backend: str = "auto", on_images: OnImages | None = None) -> list[dict]:  # fmt: skip
    """Rows of one subject: sources ``rows[:k]``, targets ``rows[skip:]``; ``on_images`` sees its renders."""
    targets = rows[skip:]
    batch = gather(frames, [rows[:k]] * len(targets), targets)
    points = binding.canonical(batch["shape"][:1])
    one = {**batch, "sources": batch["sources"][:1], "source_rows": batch["source_rows"][:1], "shape": batch["shape"][:1]}
    # one avatar per subject, rendered at every target (the UV generator decodes it per target: view, expression)
    attrs = ff_predict(predict, binding, frames, one, points)
    attrs = Attributes(*(t.expand(len(targets), *t.shape[1:]) for t in attrs))
    rgb, alpha, skin = render_targets(binding, attrs, batch, size, backend, with_skin=True)
    scores = _scores(rgb, batch["target"], batch["alpha"])
    render_skin = (skin / alpha.clamp_min(1e-6) > 0.5) & (alpha > 0.5)  # [T, 1, S, S]
    ita_render = colour.ita(rgb.clamp(0, 1), render_skin[:, 0])
    ita_source = None
    if "source_skin" in batch:
        ita_source = colour.ita(batch["sources"][:1, 0], batch["source_skin"][:1, 0] > 0.5)[0]
    out = []
    for j, t in enumerate(targets):
        row = {"subject_id": frames.subject[t], "fitzpatrick": frames.fitzpatrick[t], "k": k,
               "target_id": frames.ids[t], "source_ids": [frames.ids[r] for r in rows[:k]]}  # fmt: skip
        for name, vals in scores.items():
            row[name] = vals[j]
        d = None if ita_source is None or ita_render[j] is None else ita_render[j] - ita_source
        row["delta_ita"] = d
        out.append(row)
    if on_images is not None:
        on_images(rgb.clamp(0, 1), batch["target"], out)
    return out


def score_heldout(predict: Predict, frames: Frames, binding: AvatarBinding, subjects: dict[str, list[int]],
                  ks: Sequence[int], size: int, backend: str = "auto", variant: str = "ff",
                  on_images: OnImages | None = None) -> list[dict]:  # fmt: skip
    """Every held-out subject at every K: one row per (K, subject, target), tagged with ``variant``."""
    skip = max(ks)
    rows = []
    for k in ks:
        for s in sorted(subjects):
            scored = score_subject(predict, frames, binding, subjects[s], k, skip, size, backend, on_images)
            rows += [{"variant": variant, **r} for r in scored]
    return rows


def mean_of(rows: Sequence[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])]
    return float(np.mean(vals)) if vals else None
