"""Landmark accuracy: NME, the normalised mean error of 68-point landmarks, and AKD.

NME of one image is the mean over its landmarks of the pixel distance between
predicted and reference points, divided by the reference's inter-ocular
distance (outer eye corners 36 and 45: the 300-W convention), so it does not
depend on face size. ``nme_reference`` is the slow, obviously correct twin for
tests.

AKD (average keypoint distance, the reenactment literature's motion metric) of
one image is the same mean pixel distance *without* the normalisation: pixels
at the evaluation size, so it is only comparable between runs at one size
(GAGAvatar reports it at 512 px). ``akd_reference`` is its loop twin.
"""

from __future__ import annotations

import numpy as np


def inter_ocular(lmk: np.ndarray) -> np.ndarray:  # [N, 68, 2] -> [N]
    return np.linalg.norm(lmk[:, 36] - lmk[:, 45], axis=-1)


def nme(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:  # [N, 68, 2] x2 -> [N]
    """Per-row NME over landmarks in ``mask`` [N, 68] (all when None); NaN where undefined."""
    d = np.linalg.norm(pred - ref, axis=-1)  # [N, 68]
    m = np.ones(d.shape, bool) if mask is None else mask.astype(bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        per = np.where(m, d, 0.0).sum(1) / m.sum(1) / inter_ocular(ref)
    return np.where(m.sum(1) > 0, per, np.nan)


def nme_reference(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:  # -> [N]
    """A loop over rows and landmarks: the definition, written out."""
    out = []
    for i in range(len(pred)):
        iod = float(np.hypot(*(ref[i, 36] - ref[i, 45])))
        used = [k for k in range(pred.shape[1]) if mask is None or mask[i, k]]
        dists = [float(np.hypot(*(pred[i, k] - ref[i, k]))) for k in used]
        out.append(sum(dists) / len(dists) / iod if dists and iod > 0 else np.nan)
    return np.array(out)


def akd(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:  # [N, K, 2] x2 -> [N]
    """Mean Euclidean distance in pixels over the K landmarks of each row; NaN where a row has a NaN point."""
    assert pred.shape == ref.shape and pred.ndim == 3 and pred.shape[-1] == 2, (pred.shape, ref.shape)
    return np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(ref, np.float64), axis=-1).mean(1)


def akd_reference(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:  # -> [N]
    """A loop over rows and landmarks: the definition, written out."""
    return np.array([sum(float(np.hypot(*(p - r))) for p, r in zip(pr, rf)) / len(pr) for pr, rf in zip(pred, ref)])
