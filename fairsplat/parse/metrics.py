"""Segmentation scores of the parsing stages, overall and per Fitzpatrick type.

The measures (confusion, IoU, mIoU, pixel accuracy) live in
:mod:`fairsplat.metrics.segmentation`; the per-type table is
:func:`fairsplat.metrics.fairness.per_fitzpatrick`. Per-type mIoU keeps its
pooled definition (the mIoU of the type's pooled confusion matrix); its
interval re-pools the confusions of each bootstrap draw of subjects.

A scored row is ``{"fitzpatrick", "subject_id", "confusion": [C, C] int64}``,
one per scored crop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fairsplat.labels import CELEBAMASK_CLASSES
from fairsplat.metrics.fairness import Stat, per_fitzpatrick
from fairsplat.metrics.segmentation import iou_per_class, miou, pixel_accuracy


def pooled_confusion(rows: Sequence[Mapping]) -> np.ndarray | None:  # -> [C, C] or None when nothing is scored
    confs = [r["confusion"] for r in rows if r.get("confusion") is not None]
    return np.sum(confs, axis=0) if confs else None


def pooled_miou(rows: Sequence[Mapping]) -> float | None:
    conf = pooled_confusion(rows)
    return None if conf is None else miou(conf)


def pooled_pixel_accuracy(rows: Sequence[Mapping]) -> float | None:
    conf = pooled_confusion(rows)
    return None if conf is None else pixel_accuracy(conf)


def pixels(rows: Sequence[Mapping]) -> int:
    conf = pooled_confusion(rows)
    return 0 if conf is None else int(conf.sum())


SEGMENTATION_STATS: dict[str, Stat] = {
    "miou": Stat(reduce=pooled_miou, higher_is_better=True),
    "pixel_accuracy": Stat(reduce=pooled_pixel_accuracy, higher_is_better=True),
    "pixels": Stat(reduce=pixels, ci=False),
}


def rounded(v: float | None, digits: int = 4) -> float | None:
    return None if v is None else round(float(v), digits)


def summarise(rows: Sequence[Mapping], digits: int = 4, n_boot: int = 1000, seed: int = 0) -> dict:
    """The metrics-JSON view: overall mIoU and pixel accuracy, IoU per present class, and the
    per-type table (``miou``, ``pixel_accuracy`` with intervals, ``pixels``; ``miou_gap`` etc.).

    ``miou_gap`` is best minus worst per-type mIoU (None with fewer than 2 scored types),
    as before; ``n_boot=0`` skips the intervals (progress evaluations).
    """
    conf = pooled_confusion(rows)
    out: dict = {"miou": None, "pixel_accuracy": None, "per_class_iou": {}}
    if conf is not None:
        ious = iou_per_class(conf)
        out = {
            "miou": rounded(miou(conf), digits),
            "pixel_accuracy": rounded(pixel_accuracy(conf), digits),
            "per_class_iou": {CELEBAMASK_CLASSES[i]: rounded(v, digits) for i, v in enumerate(ious) if np.isfinite(v)},
        }
    return out | per_fitzpatrick(rows, SEGMENTATION_STATS, n_boot=n_boot, seed=seed, digits=digits)
