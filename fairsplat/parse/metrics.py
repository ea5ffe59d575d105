"""Segmentation accuracy: confusion matrices and (m)IoU, overall and per Fitzpatrick type.

Why a confusion matrix and not per-image IoU averages: IoU of a tiny class on
one image is noisy (a 6 px eye), so every number here is pooled over pixels of
the whole evaluation set, as the CelebAMask-HQ / face-parsing literature
reports it. mIoU averages over the classes that occur in the ground truth of
the set being scored; a class the set never shows (hat, earring) would be
0/0, not a failure, and is left out rather than counted as 0 or 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from fairsplat.labels import CELEBAMASK_CLASSES, FITZPATRICK, NUM_CLASSES


def confusion(gt: np.ndarray, pred: np.ndarray, n: int = NUM_CLASSES) -> np.ndarray:
    """Pixel confusion counts, rows = ground truth, columns = prediction. -> [n, n] int64

    ``gt`` and ``pred`` are integer label maps of one shape ([H, W] or [B, H, W]).
    """
    assert gt.shape == pred.shape, (gt.shape, pred.shape)
    g = np.asarray(gt, np.int64).ravel()
    p = np.asarray(pred, np.int64).ravel()
    assert g.size == 0 or (g.min() >= 0 and g.max() < n and p.min() >= 0 and p.max() < n), "label ids out of range"
    return np.bincount(g * n + p, minlength=n * n).reshape(n, n)


def confusion_reference(gt: np.ndarray, pred: np.ndarray, n: int = NUM_CLASSES) -> np.ndarray:
    """Slow, obviously correct twin of :func:`confusion` (a loop over pixels), for tests."""
    out = np.zeros((n, n), np.int64)
    for g, p in zip(np.asarray(gt).ravel().tolist(), np.asarray(pred).ravel().tolist()):
        out[g, p] += 1
    return out


def iou_per_class(conf: np.ndarray) -> np.ndarray:
    """IoU = TP / (TP + FP + FN) per class; NaN where the class is absent from the ground truth. -> [n]"""
    conf = np.asarray(conf, np.float64)
    tp = np.diag(conf)
    gt = conf.sum(1)
    union = gt + conf.sum(0) - tp
    iou = np.full(len(conf), np.nan)
    present = gt > 0
    iou[present] = tp[present] / union[present]
    return iou


def miou(conf: np.ndarray) -> float | None:
    """Mean IoU over classes present in the ground truth; None if there is no ground truth at all."""
    iou = iou_per_class(conf)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else None


def pixel_accuracy(conf: np.ndarray) -> float | None:
    total = conf.sum()
    return float(np.trace(conf) / total) if total else None


def summarise(conf: np.ndarray, per_type: Mapping[str, np.ndarray], digits: int = 4) -> dict:
    """The metrics-JSON view: overall mIoU and pixel accuracy, IoU per present class, per-type mIoU and gap.

    ``per_type`` maps Fitzpatrick type -> that type's confusion matrix. The gap
    is best minus worst mIoU over the types that were scored (None if < 2).
    """
    r = (lambda v: None if v is None else round(float(v), digits))  # noqa: E731
    ious = iou_per_class(conf)
    per_class = {CELEBAMASK_CLASSES[i]: r(v) for i, v in enumerate(ious) if np.isfinite(v)}
    per_fitz = {}
    for t in FITZPATRICK:
        c = per_type.get(t)
        if c is not None and c.sum():
            per_fitz[t] = {"miou": r(miou(c)), "pixel_accuracy": r(pixel_accuracy(c)), "pixels": int(c.sum())}
    scored = [v["miou"] for v in per_fitz.values() if v["miou"] is not None]
    return {
        "miou": r(miou(conf)),
        "pixel_accuracy": r(pixel_accuracy(conf)),
        "miou_gap": r(max(scored) - min(scored)) if len(scored) >= 2 else None,
        "per_class_iou": per_class,
        "per_fitzpatrick": per_fitz,
    }


def pooled(items: Iterable[tuple[str | None, np.ndarray]]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Sum (type, confusion) pairs into an overall and a per-type confusion matrix."""
    total = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    per: dict[str, np.ndarray] = {}
    for t, c in items:
        total += c
        if t is not None:
            per[t] = per.get(t, 0) + c
    return total, per
