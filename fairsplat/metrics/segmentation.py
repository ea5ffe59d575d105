"""Segmentation accuracy: pixel confusion matrices, IoU per class, mIoU, pixel accuracy.

Why a confusion matrix and not per-image IoU averages: IoU of a tiny class on
one image is noisy (a 6 px eye), so every number here is pooled over pixels of
the whole evaluation set, as the CelebAMask-HQ / face-parsing literature
reports it. mIoU averages over the classes that occur in the ground truth of
the set being scored; a class the set never shows (hat, earring) would be
0/0, not a failure, and is left out rather than counted as 0 or 1. Per-type
tables re-pool per bootstrap draw (``parse/metrics.py`` through
``metrics/fairness.py``), so their intervals keep this pooled definition.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from fairsplat.labels import NUM_CLASSES


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


def pooled(items: Iterable[tuple[str | None, np.ndarray]]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Sum (type, confusion) pairs into an overall and a per-type confusion matrix."""
    total = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    per: dict[str, np.ndarray] = {}
    for t, c in items:
        total += c
        if t is not None:
            per[t] = per.get(t, 0) + c
    return total, per
