"""Which subjects are refined, on which images, from which reference frame; and who is rejected, and why.

Per subject (curated crops of ``refine.splits`` that have a track, in frame
order; SynthHeads: frames x views, CelebV-HQ: a clip's frames):

- **held out**: every crop of the last ``n = max(1, round(heldout_frac x F))``
  of its F usable frames (seed 003 holds out the last 350 frames of each
  video; a proportion fits any length: 3 frames and 0.3 hold out frame 2).
  The rest are the training images.
- **watched** (only when ``adaptive-tto`` is on): up to ``tto.watch`` crops
  of the latest training frame, left out of the loss; the adaptive budget
  watches their loss. Only a crop whose viewpoint stays covered is watched:
  another training crop must have a head orientation (tracked global pose,
  relative to the camera) within ``WATCH_MAX_DEG``, so watching never takes
  the only look at one side of the head out of training (with 2-6 training
  crops that costs more than TTO can win). Never the held-out crops: those
  are scored, not selected on.
- **reference frame** (seed 003): among the training frames, the one with the
  smallest jaw-pose magnitude (median |jaw| over its views with a good
  track); when the jaw range over those frames is below ``jaw_min_range``
  (it hardly moves, so the minimum is noise) or no frame has a jaw track, the
  first training frame with a good track (else the first). "Good" = fitted
  from landmarks, not interpolated, with a landmark NME under
  ``max_track_nme``. The generator's sources are the first ``sources`` good
  crops of that frame (frontal first, curate's view order).

Which subjects: per Fitzpatrick type, at most ``subjects_per_type``, those
with the most usable crops first (then by id): a choice on data, never on
results, that refines the subjects whose training crops cover the held-out
viewpoints when curation dropped some crops.

Rejects (``data/refined/rejects.parquet``): ``too_few_frames`` (fewer usable
frames than the held-out count plus one training frame); ``not_selected``
(the per-type cap ``subjects_per_type`` was reached: the stage is sized to
its time budget); ``diverged`` (added by the loop: NaN at a named
iteration). Accepted + rejected = every subject of the splits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from fairsplat.ff.data import Frames
from fairsplat.head.model import JOINT_NAMES
from fairsplat.labels import FITZPATRICK
from fairsplat.refine.config import RefineConfig

JAW = slice(3 * JOINT_NAMES.index("jaw"), 3 * JOINT_NAMES.index("jaw") + 3)
GLOBAL = slice(0, 3)
WATCH_MAX_DEG = 15.0
"""A watched crop needs another training crop whose head orientation is this close (SynthHeads: views 30 deg
apart, head motion within +-10 deg; a video's neighbouring frames are within a few degrees)."""


@dataclass(frozen=True)
class TrackInfo:
    """Per curated crop: its frame index and whether its track is good (from tracks.parquet)."""

    frame: dict[str, int]
    good: dict[str, bool]


def load_track_info(tracks: str | Path, max_nme: float) -> TrackInfo:
    cols = ["image_id", "source", "frame", "status", "nme_target"]
    rows = [r for r in pq.read_table(Path(tracks) / "tracks.parquet", columns=cols).to_pylist() if r["source"] == "curated"]
    frame = {r["image_id"]: int(r["frame"] or 0) for r in rows}
    good = {r["image_id"]: r["status"] == "fitted" and (r["nme_target"] is None or r["nme_target"] <= max_nme) for r in rows}
    return TrackInfo(frame, good)


def reference_frame(frames: Sequence[int], jaw: Sequence[float], good: Sequence[bool], min_range: float) -> tuple[int, str]:
    """(frame, why) from per-frame jaw magnitudes (NaN = no jaw track) and track quality, frames in time order."""
    assert len(frames) == len(jaw) == len(good) and len(frames) > 0
    jaw_a = np.asarray(jaw, np.float64)
    has = np.isfinite(jaw_a)
    first_good = next((f for f, g in zip(frames, good) if g), frames[0])
    if not has.any():
        return first_good, "no_jaw_track"
    if jaw_a[has].max() - jaw_a[has].min() < min_range:
        return first_good, "jaw_static"
    return int(np.asarray(frames)[has][np.argmin(jaw_a[has])]), "min_jaw"


@dataclass
class SubjectPlan:
    subject: str
    fitzpatrick: str | None
    train: list[int]  # Frames rows in the loss
    watch: list[int]  # Frames rows watched by adaptive TTO (never in the loss)
    heldout: list[int]  # Frames rows scored
    sources: list[int]  # Frames rows the generator is fed (the reference frame's)
    reference_frame: int
    reference_reason: str
    frames: list[int] = field(default_factory=list)  # the usable frame indices, in order
    heldout_frames: list[int] = field(default_factory=list)
    every: list[int] = field(default_factory=list)  # all rows in time order (frame, then curate's view order)


def view_angle(frames: Frames, a: int, b: int) -> float:
    """Degrees between the tracked head orientations (global pose) of two crops."""
    from fairsplat.head.lbs import rodrigues

    rot = rodrigues(frames.track["pose"][[a, b], GLOBAL].double())
    cos = ((rot[0].T @ rot[1]).trace() - 1) / 2
    return math.degrees(math.acos(float(cos.clamp(-1.0, 1.0))))


def heldout_count(n_frames: int, frac: float) -> int:
    return max(1, int(math.floor(frac * n_frames + 0.5)))


def plan_subject(frames: Frames, info: TrackInfo, subject: str, rows: list[int], cfg: RefineConfig) -> SubjectPlan | str:
    """A plan, or the reason the subject cannot be refined."""
    rows = sorted(rows, key=lambda r: (info.frame.get(frames.ids[r], 0), r))
    by_frame: dict[int, list[int]] = {}
    for r in rows:
        by_frame.setdefault(info.frame.get(frames.ids[r], 0), []).append(r)
    order = sorted(by_frame)
    n_held = heldout_count(len(order), cfg.heldout_frac)
    if len(order) < n_held + 1:
        return f"too_few_frames: {len(order)} usable frame(s), {n_held} held out + 1 to train on needed"
    train_frames, held_frames = order[:-n_held], order[-n_held:]
    good = [[info.good.get(frames.ids[r], False) for r in by_frame[f]] for f in train_frames]
    jaw = []
    for f, g in zip(train_frames, good):
        mags = [float(np.linalg.norm(frames.track["pose"][r, JAW].numpy())) for r, ok in zip(by_frame[f], g) if ok]
        jaw.append(float(np.median(mags)) if mags else math.nan)
    ref, why = reference_frame(train_frames, jaw, [any(g) for g in good], cfg.jaw_min_range)
    cand = by_frame[ref]
    sources = ([r for r in cand if info.good.get(frames.ids[r], False)] or cand)[: cfg.sources]
    train = [r for f in train_frames for r in by_frame[f]]
    watch: list[int] = []
    if "adaptive-tto" in cfg.strategies:
        for r in reversed([r for r in by_frame[train_frames[-1]] if r not in sources]):
            rest = [q for q in train if q != r and q not in watch]
            if len(watch) < cfg.tto.watch and rest and min(view_angle(frames, r, q) for q in rest) <= WATCH_MAX_DEG:
                watch.append(r)
        train = [r for r in train if r not in watch]
    held = [r for f in held_frames for r in by_frame[f]]
    return SubjectPlan(subject, frames.subject_type(subject), train, watch, held, sources, ref, why, order, held_frames, rows)


def plan_subjects(frames: Frames, info: TrackInfo, cfg: RefineConfig) -> tuple[list[SubjectPlan], list[dict]]:
    """Plans of the subjects refined (at most ``subjects_per_type`` per type, by subject id) and reject rows."""
    plans, rejects = [], []
    taken: dict[str | None, int] = {}
    groups = frames.by_subject(list(cfg.splits))
    rank = lambda s: (FITZPATRICK.index(t) if (t := frames.subject_type(s)) in FITZPATRICK else 99, -len(groups[s]), s)  # noqa: E731
    for subject in sorted(groups, key=rank):
        t = frames.subject_type(subject)
        plan = plan_subject(frames, info, subject, groups[subject], cfg)
        if isinstance(plan, str):
            rejects.append(reject_row(subject, t, plan, len(groups[subject])))
        elif cfg.subjects_per_type is not None and taken.get(t, 0) >= cfg.subjects_per_type:
            rejects.append(reject_row(subject, t, f"not_selected: refine.subjects-per-type = {cfg.subjects_per_type} "
                                                  f"reached for type {t}", len(groups[subject])))  # fmt: skip
        else:
            taken[t] = taken.get(t, 0) + 1
            plans.append(plan)
    return plans, rejects


def reject_row(subject: str, fitzpatrick: str | None, reason: str, n_images: int) -> dict:
    return {"subject_id": subject, "fitzpatrick": fitzpatrick, "reason": reason.split(":")[0], "detail": reason,
            "n_images": n_images}  # fmt: skip
