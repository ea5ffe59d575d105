"""Landmark accuracy: NME, the normalised mean error of 68-point landmarks.

NME of one image is the mean over its landmarks of the pixel distance between
predicted and reference points, divided by the reference's inter-ocular
distance (outer eye corners 36 and 45: the 300-W convention), so it does not
depend on face size. ``nme_reference`` is the slow, obviously correct twin for
tests.
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
