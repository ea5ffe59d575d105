"""Training and held-out data of the generator: curated crops + their tracks, grouped by subject.

A sample is K source crops of one subject and one target crop of the same
subject at another frame and/or view; the target is rendered with its own
tracked FLAME parameters and camera (``tracks.parquet``, crop pixels), so the
loss compares like with like. Crops live in memory as uint8 (a few hundred MB
at the default size), so a training step never touches the disk.

Splits are curate's subject-disjoint ones. ``type_mix`` sets the share of
each Fitzpatrick type among the *training identities* (how many different
faces of a type the model sees, not how often it sees them), a stand-in for
the skew of the web datasets LAM-like bases are trained on.

Crops whose track is missing (the tracker rejected them) are skipped and
counted per reason, never fed in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from torch import Tensor

from fairsplat.io.images import load_grey, load_labels, load_rgb
from fairsplat.labels import FITZPATRICK, LABEL

TRACK_COLUMNS = ("shape", "expr", "pose", "transl", "viewmat", "K")


@dataclass
class Frames:
    """Curated crops with tracks, row-aligned; ``images`` [N, 3, S, S] and masks [N, 1, S, S] are uint8."""

    ids: list[str]
    subject: list[str]
    split: list[str]
    fitzpatrick: list[str | None]
    images: Tensor
    alpha: Tensor
    skin: Tensor | None  # 255 where the crop's label map says skin; None without label maps
    track: dict[str, Tensor]  # shape [N, S], expr [N, E], pose [N, 15], transl [N, 3], viewmat [N, 4, 4], K [N, 3, 3]
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def by_subject(self, splits: Sequence[str] | None = None) -> dict[str, list[int]]:
        """Subject -> row indices (input order), for rows in ``splits`` (all when None)."""
        out: dict[str, list[int]] = defaultdict(list)
        for i, (s, sp) in enumerate(zip(self.subject, self.split)):
            if splits is None or sp in splits:
                out[s].append(i)
        return dict(out)

    def subject_type(self, subject: str) -> str | None:
        return self.fitzpatrick[self.subject.index(subject)]


def load_frames(curated: str | Path, tracks: str | Path, splits: Sequence[str]) -> Frames:
    """Crops of ``splits`` from curate's manifest joined with track's ``curated`` rows."""
    curated = Path(curated)
    man = [r for r in pq.read_table(curated / "manifest.parquet").to_pylist() if r["split"] in splits]
    cols = ["image_id", "source", *TRACK_COLUMNS]
    tr = {r["image_id"]: r for r in pq.read_table(Path(tracks) / "tracks.parquet", columns=cols).to_pylist()
          if r["source"] == "curated"}  # fmt: skip
    keep, skipped = [], defaultdict(int)
    for r in man:
        if r["image_id"] not in tr:
            skipped["no_track"] += 1
        else:
            keep.append(r)
    if not keep:
        raise ValueError(f"no curated crop of splits {list(splits)} has a track (skipped: {dict(skipped)})")
    images = np.stack([load_rgb(curated / r["path"]) for r in keep]).transpose(0, 3, 1, 2)
    alpha = np.stack([load_grey(curated / r["alpha_path"]) for r in keep])[:, None]
    skin = None
    if all(r.get("mask_path") for r in keep):
        skin = np.stack([(load_labels(curated / r["mask_path"]) == LABEL["skin"]) * 255 for r in keep]).astype(np.uint8)[:, None]
    track = {c: torch.tensor(np.array([tr[r["image_id"]][c] for r in keep], np.float32)) for c in TRACK_COLUMNS}
    track["viewmat"], track["K"] = track["viewmat"].view(-1, 4, 4), track["K"].view(-1, 3, 3)
    return Frames(
        ids=[r["image_id"] for r in keep], subject=[r["subject_id"] for r in keep], split=[r["split"] for r in keep],
        fitzpatrick=[r.get("fitzpatrick_gt") or r.get("fitzpatrick") for r in keep],
        images=torch.from_numpy(np.ascontiguousarray(images)), alpha=torch.from_numpy(alpha),
        skin=None if skin is None else torch.from_numpy(skin), track=track, skipped=dict(skipped),
    )  # fmt: skip


def mix_identities(frames: Frames, split: str, mix: Mapping[str, float], seed: int, min_images: int = 2) -> list[str]:
    """Training identities whose types follow the shares ``mix`` (as many as the rarest allows).

    With ``a_t`` identities available of type ``t`` and share ``p_t``, the
    largest mix that respects every share has ``T = min_t a_t / p_t``
    identities, ``round(p_t T)`` of type ``t``, drawn with a fixed seed. A
    uniform mix keeps every identity. Subjects with fewer than ``min_images``
    usable crops cannot give a source and a different target, and are left out.
    """
    subjects = {s: ix for s, ix in frames.by_subject([split]).items() if len(ix) >= min_images}
    by_type: dict[str, list[str]] = {t: [] for t in FITZPATRICK}
    for s in sorted(subjects):
        t = frames.subject_type(s)
        if t in by_type:
            by_type[t].append(s)
    shares = {t: float(mix.get(t, 0.0)) for t in FITZPATRICK}
    total = sum(shares.values())
    if total <= 0:
        raise ValueError("type-mix: every share is 0")
    shares = {t: p / total for t, p in shares.items()}
    room = min(len(by_type[t]) / p for t, p in shares.items() if p > 0)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    out = []
    for t in FITZPATRICK:
        n = min(len(by_type[t]), int(round(shares[t] * room)))
        out += sorted(rng.permutation(by_type[t])[:n].tolist()) if n else []
    return out


class StepBatches(torch.utils.data.Dataset):
    """Micro-batch ``i`` is a pure function of (seed, i): resuming at any step replays the same data.

    Each item: B subjects drawn uniformly from ``subjects`` (so the type mix is
    the identity mix), one K ~ Uniform{1..max_k} for the whole micro-batch, and
    per subject K distinct source crops and one target crop different from them.
    """

    def __init__(self, frames: Frames, subjects: Sequence[str], batch: int, max_k: int, n: int, seed: int) -> None:
        rows = frames.by_subject()
        self.rows = [rows[s] for s in subjects]
        if not self.rows:
            raise ValueError("no training subjects")
        self.frames, self.batch, self.max_k, self.n, self.seed = frames, batch, max_k, n, seed

    def __len__(self) -> int:
        return self.n

    def pick(self, i: int) -> tuple[list[list[int]], list[int]]:
        """(sources per sample, target per sample) as frame rows."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 13, i]))
        k = int(rng.integers(1, self.max_k + 1))
        sources, targets = [], []
        for s in rng.integers(0, len(self.rows), self.batch):
            rows = self.rows[s]
            order = rng.permutation(len(rows))
            kk = min(k, len(rows) - 1)  # always leave a target
            sources.append([rows[j] for j in order[:kk]] + [rows[order[0]]] * (k - kk))
            targets.append(rows[order[kk]])
        return sources, targets

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        sources, targets = self.pick(i)
        return gather(self.frames, sources, targets)


def gather(frames: Frames, sources: Sequence[Sequence[int]], targets: Sequence[int]) -> dict[str, Tensor]:
    """Tensors of a batch: sources [B, K, 3, S, S], target [B, 3, S, S], masks [B, 1, S, S] in [0, 1], tracks."""
    src = torch.as_tensor(np.asarray(sources))  # [B, K]
    tgt = torch.as_tensor(np.asarray(targets))  # [B]
    out = {
        "sources": frames.images[src].float() / 255, "target": frames.images[tgt].float() / 255,
        "alpha": frames.alpha[tgt].float() / 255, "source_rows": src, "target_rows": tgt,
        **{f"target_{c}": v[tgt] for c, v in frames.track.items()},
        "shape": frames.track["shape"][src[:, 0]],  # one shape per subject (track shares it)
    }  # fmt: skip
    if frames.skin is not None:
        out["source_skin"] = frames.skin[src[:, 0]].float() / 255
    return out
