"""The enhancer's data: stage ``degrade``'s pairs in memory, step-indexed training batches, on-the-fly augmentation.

Pairs are read once (uint8: ~100 KB a pair at 128 px) with their parsed label
maps; subjects come from curate's manifest (the pairs manifest has no
``subject_id``), so held-out scores bootstrap over people. Splits are curate's
subject-disjoint ones.

Training batch ``i`` is a pure function of (seed, i) (:class:`StepPairs`, the
generator's ``StepBatches`` pattern), so a resumed run sees exactly the data an
uninterrupted one would. Seed 001's four augmentations (blur blobs, noise
boost, brightness shift, extra desaturation; ``fairsplat.degrade.augment``,
params from ``degrade.augmentations``) are applied to the degraded input only,
each with its own probability, freshly drawn at every use, except on pairs
whose stored input already carries a draw (``degrade.augment: true`` bakes one
into about a third of the pairs; a second would over-represent them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from fairsplat.degrade.core import Context, StepParams, rng_for
from fairsplat.degrade.registry import AUGMENTATIONS, STEPS
from fairsplat.io.images import load_labels, load_rgb
from fairsplat.io.tables import read_table

_FAMILY_OF_MODULE = {"steps_blur": "blur", "steps_colour": "colour", "steps_geometry": "geometry",
                     "steps_splats": "splat"}  # fmt: skip
FAMILIES: dict[str, str] = {name: _FAMILY_OF_MODULE[cls.__module__.rpartition(".")[2]] for name, cls in STEPS.items()}
"""Step name -> family (blur, colour, geometry, splat): the module of ``fairsplat/degrade`` that holds it."""


@dataclass
class Pairs:
    """Pairs of some splits, row-aligned; images uint8 [N, 3, S, S], labels uint8 [N, S, S]."""

    pair_ids: list[str]
    image_ids: list[str]
    subject: list[str | None]
    split: list[str]
    fitzpatrick: list[str | None]
    steps: list[list[str]]
    augmented: list[bool]  # the stored input already carries seed 001's augmentations
    clean: Tensor
    degraded: Tensor
    labels: Tensor
    stored_augmentations: list[list[str]] = field(default_factory=list)  # names of the stored draw, per pair

    def __len__(self) -> int:
        return len(self.pair_ids)

    def rows(self, splits: Sequence[str]) -> list[int]:
        return [i for i, s in enumerate(self.split) if s in splits]

    def families(self, i: int) -> list[str]:
        return sorted({FAMILIES[s] for s in self.steps[i] if s in FAMILIES})


def load_pairs(pairs_dir: str | Path, curated: str | Path, splits: Sequence[str]) -> Pairs:
    """Pairs of ``splits`` from ``<pairs_dir>/manifest.parquet``, subjects joined from curate's manifest."""
    pairs_dir = Path(pairs_dir)
    rows = [r for r in read_table(pairs_dir / "manifest.parquet") if r["split"] in splits]
    if not rows:
        raise ValueError(f"{pairs_dir}/manifest.parquet: no pair of splits {list(splits)} (run stage degrade)")
    subject = {r["image_id"]: r.get("subject_id") for r in read_table(Path(curated) / "manifest.parquet",
                                                                      columns=["image_id", "subject_id"])}  # fmt: skip
    clean_cache: dict[str, np.ndarray] = {}
    label_cache: dict[str, np.ndarray] = {}
    clean, degraded, labels = [], [], []
    for r in rows:
        if r["clean_path"] not in clean_cache:
            clean_cache[r["clean_path"]] = load_rgb(pairs_dir / r["clean_path"])
            label_cache[r["clean_path"]] = load_labels(pairs_dir / r["mask_path"])
        clean.append(clean_cache[r["clean_path"]])
        labels.append(label_cache[r["clean_path"]])
        degraded.append(load_rgb(pairs_dir / r["degraded_path"]))
    shapes = {c.shape for c in clean} | {d.shape for d in degraded}
    if len(shapes) != 1:
        raise ValueError(f"{pairs_dir}: pairs differ in size {sorted(shapes)}; the enhancer trains on one crop size")
    chw = lambda a: torch.from_numpy(np.ascontiguousarray(np.stack(a).transpose(0, 3, 1, 2)))  # noqa: E731
    return Pairs(
        pair_ids=[r["pair_id"] for r in rows], image_ids=[r["image_id"] for r in rows],
        subject=[subject.get(r["image_id"]) for r in rows], split=[r["split"] for r in rows],
        fitzpatrick=[r.get("fitzpatrick") for r in rows], steps=[list(r["steps"] or []) for r in rows],
        augmented=[bool(r.get("augmentations")) for r in rows], clean=chw(clean), degraded=chw(degraded),
        labels=torch.from_numpy(np.stack(labels)),
        stored_augmentations=[[_aug_name(a) for a in r.get("augmentations") or []] for r in rows],
    )  # fmt: skip


def _aug_name(record) -> str:
    """A stored augmentation's registry name (degrade records {"name": ..., "params": ...})."""
    return str(record["name"] if isinstance(record, Mapping) else record)


def on_the_fly_augmentations(cfg) -> dict[str, StepParams] | None:
    """What :class:`StepPairs` draws on the fly for an EnhancerTrainConfig: degrade's params (seed 001's
    defaults where absent) at ``augment_rate`` x their probability; None when ``augment`` is off."""
    if not cfg.augment:
        return None
    base = {name: (cfg.augmentations or {}).get(name) or cls.Params() for name, cls in AUGMENTATIONS.items()}
    return scaled_augmentations(base, cfg.augment_rate)


def scaled_augmentations(params: Mapping[str, StepParams], rate: float) -> dict[str, StepParams]:
    """Each augmentation's params with its firing probability times ``rate`` (capped at 1)."""
    return {name: replace(p, prob=min(1.0, rate * p.prob)) for name, p in params.items()}


def augmentation_rates(pairs: Pairs, rows: Sequence[int], on_the_fly: Mapping[str, StepParams] | None
                       ) -> dict[str, float]:  # fmt: skip
    """Expected share of training samples each augmentation is in: stored draw or on-the-fly draw.

    Training picks rows uniformly, so a row's stored draw is seen in its share
    of samples; a row without one gets a fresh draw firing with the on-the-fly
    probability. Per name: ``stored share + (share without a stored draw) x
    on-the-fly prob``. Seed 001 draws every augmentation once per sample at its
    own ``prob``: these numbers are what to compare with it.
    """
    rows = list(rows)
    if not rows:
        return {}
    bare = sum(not pairs.augmented[r] for r in rows) / len(rows)
    out = {}
    for name in AUGMENTATIONS:
        stored = sum(name in (pairs.stored_augmentations[r] if pairs.stored_augmentations else []) for r in rows)
        q = on_the_fly[name].prob if on_the_fly and name in on_the_fly else 0.0
        out[name] = round(stored / len(rows) + bare * q, 4)
    return out


def augment(image: np.ndarray, labels: np.ndarray, params: Mapping[str, StepParams], seed: np.random.SeedSequence
            ) -> tuple[np.ndarray, list[str]]:  # fmt: skip
    """Seed 001's augmentations on one degraded input: uint8 [H, W, 3] -> (float32 [3, H, W] in [0, 1], fired).

    Each augmentation fires with its own ``prob`` from its own named stream, as
    ``fairsplat.degrade.pipeline`` applies them (whole crop, weight 1).
    """
    img = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)
    ctx, ones, fired = Context(labels), np.ones(labels.shape, np.float32), []
    for name, cls in AUGMENTATIONS.items():
        p = params.get(name) or cls.Params()
        rng = rng_for(seed, "aug:" + name)
        if rng.random() < p.prob:
            img, _ = cls(p).apply(img, ones, ctx, rng)
            fired.append(name)
    return np.clip(img, 0.0, 1.0), fired


class StepPairs(torch.utils.data.Dataset):
    """Micro-batch ``i``: ``batch`` training pairs drawn uniformly by (seed, i), inputs augmented on the fly."""

    def __init__(self, pairs: Pairs, rows: Sequence[int], batch: int, n: int, seed: int,
                 augmentations: Mapping[str, StepParams] | None, patch: int | None = None) -> None:  # fmt: skip
        """``augmentations``: name -> params (None: no augmentation). ``patch``: train on a random
        ``patch`` x ``patch`` window of each pair (same window in input and target); None: whole crops."""
        if not rows:
            raise ValueError("no training pairs")
        side = int(pairs.clean.shape[-1])
        if patch is not None and not 0 < patch <= side:
            raise ValueError(f"patch {patch} px: must be in (0, {side}] (the crop side)")
        self.pairs, self.rows, self.batch, self.n, self.seed = pairs, list(rows), batch, n, seed
        self.augmentations, self.patch = augmentations, None if patch == side else patch

    def __len__(self) -> int:
        return self.n

    def pick(self, i: int) -> tuple[list[int], np.ndarray]:
        """(pair rows, window corners [B, 2] (y, x)) of micro-batch ``i``."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 31, i]))
        rows = [self.rows[j] for j in rng.integers(0, len(self.rows), self.batch)]
        room = int(self.pairs.clean.shape[-1]) - (self.patch or 0)
        corners = rng.integers(0, room + 1, (self.batch, 2)) if self.patch else np.zeros((self.batch, 2), np.int64)
        return rows, corners

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        picks, corners = self.pick(i)
        p = self.pairs
        degraded = p.degraded[picks].float() / 255
        fired = 0
        if self.augmentations is not None:
            for j, row in enumerate(picks):
                if p.augmented[row]:
                    continue
                hwc = p.degraded[row].permute(1, 2, 0).numpy()
                img, names = augment(hwc, p.labels[row].numpy(), self.augmentations,
                                     np.random.SeedSequence([self.seed, 37, i, j]))  # fmt: skip
                degraded[j] = torch.from_numpy(img)
                fired += bool(names)
        clean = p.clean[picks].float() / 255
        if self.patch:  # augment the whole crop first (blur blobs are placed on the crop), then cut the window
            k = self.patch
            degraded = torch.stack([d[:, y : y + k, x : x + k] for d, (y, x) in zip(degraded, corners)])
            clean = torch.stack([c[:, y : y + k, x : x + k] for c, (y, x) in zip(clean, corners)])
        return {"degraded": degraded, "clean": clean, "rows": torch.tensor(picks), "augmented": torch.tensor(float(fired))}


def batch_of(pairs: Pairs, rows: Sequence[int]) -> dict[str, Tensor]:
    """Stored pairs as float batches (no augmentation): degraded, clean [B, 3, S, S], labels [B, S, S]."""
    idx = torch.as_tensor(list(rows), dtype=torch.long)
    return {"degraded": pairs.degraded[idx].float() / 255, "clean": pairs.clean[idx].float() / 255,
            "labels": pairs.labels[idx]}  # fmt: skip


def by_subject(pairs: Pairs, rows: Sequence[int]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for i in rows:
        out[str(pairs.subject[i] or pairs.image_ids[i])].append(i)
    return dict(out)
