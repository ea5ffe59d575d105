"""Who is scored on what: held-out subjects, their source, self-reenactment targets and cross-reenactment pairs.

Per held-out subject (curate's crops of ``evaluate.splits`` that have a track,
in curate's order: frame-major, then view):

- **source**: its first crop (first frame, first view: frontal on
  SynthHeads), the one photo the generator sees (K = 1), as in stage
  train_ff's protocol (``fairsplat.ff.evaluate``);
- **self-reenactment targets**: every crop of its *other* frames, every
  view, each rendered at its own tracked FLAME parameters and camera. A
  subject with a single frame (a photo set: each photo is a frame 0) takes
  its other crops instead. At most ``self_targets`` per subject, the first
  ones. A variant that was fitted on some of these crops (refinement trains on
  a subject's early frames) is scored only on the ones it never saw;
- **driver crops**: the first-view crop of each of its other frames (at most
  ``cross_frames``): the expression and pose it lends in cross-reenactment.

**Cross-reenactment pairs, a fixed rule**: with the subjects sorted by id,
subject i is driven by subject i + 1 (the last by the first). Every subject
is driven exactly once and drives exactly once; pairs cross types wherever
sorted ids do. Identity A keeps its own shape; B lends expression, pose,
translation and camera (``gather``'s batch with A's source and B's crops).

Subjects with no target are listed (``unscored``) with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from fairsplat.ff.data import Frames


@dataclass(frozen=True)
class SubjectPlan:
    subject: str
    fitzpatrick: str | None
    source: int  # Frames row
    targets: list[int]  # self-reenactment target rows
    drivers: list[int]  # rows this subject lends to the subject it drives
    driven_by: str | None = None  # the subject whose drivers drive this one (None: fewer than 2 subjects)


@dataclass
class Plan:
    subjects: dict[str, SubjectPlan]  # scored subjects, sorted by id
    unscored: list[dict] = field(default_factory=list)  # {"subject_id", "fitzpatrick", "reason"}

    def pairs(self) -> list[tuple[str, str]]:
        """(A, B): A driven by B, the fixed rule's pairs."""
        return [(s, p.driven_by) for s, p in self.subjects.items() if p.driven_by is not None]


def frame_index(tracks: str | Path) -> dict[str, int]:
    """image id -> frame index of each curated crop (tracks.parquet; 0 where unknown)."""
    rows = pq.read_table(Path(tracks) / "tracks.parquet", columns=["image_id", "source", "frame"]).to_pylist()
    return {r["image_id"]: int(r["frame"] or 0) for r in rows if r["source"] == "curated"}


def plan_subjects(frames: Frames, frame_of: dict[str, int], splits: Sequence[str], self_targets: int | None,
                  cross_frames: int) -> Plan:  # fmt: skip
    """The plan of module docstring for every subject of ``splits``."""
    plans: dict[str, SubjectPlan] = {}
    unscored = []
    for subject, rows in sorted(frames.by_subject(list(splits)).items()):
        t = frames.subject_type(subject)
        src = rows[0]
        f0 = frame_of.get(frames.ids[src], 0)
        others = [r for r in rows[1:] if frame_of.get(frames.ids[r], 0) != f0]
        single_frame = not others
        targets = rows[1:] if single_frame else others
        if not targets:
            unscored.append({"subject_id": subject, "fitzpatrick": t, "reason": "one_crop: a source and no target"})
            continue
        if self_targets is not None:
            targets = targets[:self_targets]
        firsts: dict[int, int] = {}
        for r in targets:
            firsts.setdefault(frame_of.get(frames.ids[r], 0) if not single_frame else r, r)
        plans[subject] = SubjectPlan(subject, t, src, list(targets), list(firsts.values())[:cross_frames])
    order = sorted(plans)
    if len(order) >= 2:
        for i, s in enumerate(order):
            p = plans[s]
            plans[s] = SubjectPlan(p.subject, p.fitzpatrick, p.source, p.targets, p.drivers, order[(i + 1) % len(order)])
    return Plan(plans, unscored)
