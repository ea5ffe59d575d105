"""Inputs of the parsing stages: curated crops, their label maps, and a torch dataset.

The curated manifest (``fairsplat/curate/tables.py``) gives one row per crop:
``image_id``, ``split``, ``path`` (crop PNG, relative to the curate output),
``mask_path`` (cropped CelebAMask-HQ label map, when the source had labels:
SynthHeads ground truth or a user's CelebAMask-HQ masks), ``fitzpatrick``
(estimated from ITA) and ``fitzpatrick_gt`` (ground truth, SynthHeads only).

Per-type metrics use the ground-truth type when it exists, else the ITA
estimate; :func:`read_items` records which in ``Item.type_source``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image

from fairsplat.io.images import load_labels, load_rgb
from fairsplat.labels import LABEL

# Horizontal flip swaps the subject's left and right: id -> id after a flip.
FLIP_LUT = np.arange(256, dtype=np.uint8)
for _a, _b in (("l_eye", "r_eye"), ("l_brow", "r_brow"), ("l_ear", "r_ear")):
    FLIP_LUT[LABEL[_a]], FLIP_LUT[LABEL[_b]] = LABEL[_b], LABEL[_a]


@dataclass(frozen=True)
class Item:
    """One curated crop, with absolute paths."""

    image_id: str
    split: str
    fitzpatrick: str | None  # ground truth if known, else the ITA estimate
    type_source: str  # "gt", "ita" or "none"
    crop: Path
    mask: Path | None  # curated label map, if the source had one
    subject_id: str | None = None  # the person: per-type intervals resample subjects (metrics/fairness.py)

    @property
    def stem(self) -> str:
        """File stem shared by this crop's outputs downstream (curate made it filesystem-safe)."""
        return self.crop.stem


def read_items(curated: Path) -> list[Item]:
    """Rows of ``<curated>/manifest.parquet`` as Items, in manifest order."""
    path = Path(curated) / "manifest.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no curated manifest (run stage curate first)")
    cols = pq.read_schema(path).names
    need = {"image_id", "split", "path"}
    if need - set(cols):
        raise ValueError(f"{path}: missing columns {sorted(need - set(cols))}")
    rows = pq.read_table(path).to_pylist()
    items = []
    for r in rows:
        gt, est = r.get("fitzpatrick_gt"), r.get("fitzpatrick")
        mask = r.get("mask_path")
        items.append(
            Item(
                image_id=str(r["image_id"]),
                split=str(r["split"]),
                fitzpatrick=gt or est,
                type_source="gt" if gt else ("ita" if est else "none"),
                crop=Path(curated) / r["path"],
                mask=(Path(curated) / mask) if mask else None,
                subject_id=r.get("subject_id"),
            )
        )
    return items


def resize_rgb(img: np.ndarray, size: int) -> np.ndarray:
    """[H, W, 3] uint8 -> [size, size, 3] uint8 (bilinear with antialiasing); no-op at that size."""
    if img.shape[:2] == (size, size):
        return img
    return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))


def resize_labels(lab: np.ndarray, size: int) -> np.ndarray:
    """[H, W] uint8 -> [size, size] uint8 (nearest: ids must not be interpolated)."""
    if lab.shape == (size, size):
        return lab
    return np.asarray(Image.fromarray(lab, mode="L").resize((size, size), Image.NEAREST))


def random_affine(rng: np.random.Generator, strength: float, size: int) -> tuple[float, ...]:
    """PIL's inverse affine coefficients (a, b, c, d, e, f) for a random similarity about the centre.

    ``strength`` 1 means scale x[0.9, 1.1], rotation +-10 degrees, shift +-5% of the side;
    it scales all three. Output pixel (x, y) samples the input at (a x + b y + c, d x + e y + f).
    """
    s = 1.0 + strength * rng.uniform(-0.1, 0.1)
    th = np.deg2rad(strength * rng.uniform(-10.0, 10.0))
    tx, ty = strength * rng.uniform(-0.05, 0.05, 2) * size
    c0 = (size - 1) / 2.0
    cos, sin = np.cos(th) / s, np.sin(th) / s  # inverse of (rotate by th, scale by s)
    a, b, d, e = cos, sin, -sin, cos
    return (a, b, c0 - a * (c0 + tx) - b * (c0 + ty), d, e, c0 - d * (c0 + tx) - e * (c0 + ty))


class LabelledCrops(torch.utils.data.Dataset):
    """(image [3, S, S] float in [0, 1], labels [S, S] int64) from curated crops and label maps.

    Augmentation (train only): ``flip``, random horizontal flips with
    left/right ids swapped; ``affine``, a random similarity (scale, rotation,
    shift; see ``random_affine``), bilinear for the image over curate's mid-grey
    and nearest for the ids over background, so head shapes and framings the
    12-odd training identities do not show are still seen. Colour
    augmentation runs batched on the model side (``parse.train``). Draws come
    from a generator seeded per (seed, epoch, index): an epoch is reproducible
    whatever the loader order.
    """

    def __init__(self, items: list[Item], size: int, flip: bool = False, seed: int = 0, affine: float = 0.0):
        missing = [it.image_id for it in items if it.mask is None]
        assert not missing, f"items without label maps: {missing[:3]}"
        self.items, self.size, self.flip, self.seed, self.affine = items, size, flip, seed, affine
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        it = self.items[i]
        img = resize_rgb(load_rgb(it.crop), self.size)  # [S, S, 3]
        lab = resize_labels(load_labels(it.mask), self.size)  # [S, S]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        if self.flip and rng.random() < 0.5:
            img, lab = img[:, ::-1], FLIP_LUT[lab[:, ::-1]]
        if self.affine > 0:
            coef = random_affine(rng, self.affine, self.size)
            img = np.array(Image.fromarray(np.ascontiguousarray(img)).transform(
                (self.size, self.size), Image.AFFINE, coef, Image.BILINEAR, fillcolor=(128, 128, 128)))
            lab = np.array(Image.fromarray(np.ascontiguousarray(lab), mode="L").transform(
                (self.size, self.size), Image.AFFINE, coef, Image.NEAREST, fillcolor=0))  # fmt: skip
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255.0  # [3, S, S]
        return x, torch.from_numpy(np.ascontiguousarray(lab)).long()  # [S, S]
