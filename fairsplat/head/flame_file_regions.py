"""Per-face CelebAMask-HQ region labels for a FLAME mesh.

Why two sources: FLAME's optional ``FLAME_masks.pkl`` lists vertex ids per
region (face, forehead, eye_region, left/right_eyeball, lips, nose, scalp, neck,
boundary, left/right_ear...), but it has no brows, no mouth interior and no
upper/lower lip split, which parsing ground truth needs. Those always come from
the 68-landmark embedding (iBUG polygons on front-facing triangles). Without the
masks file every class comes from the landmarks and the rest of the head
(scalp, ears, neck) stays ``skin``: set ``head.masks-path`` to get them.

Left/right is decided from geometry, not region names: +X is the subject's
left (model.py), so an ear or eye with centroid x > 0 is ``l_ear``/``l_eye``.
"""

from __future__ import annotations

import numpy as np
from skimage.measure import points_in_poly

from fairsplat.labels import LABEL

# FLAME_masks.pkl region -> class, painted in this order (later wins). "ear"/"eye"
# become l_/r_ by side and "lips" u_lip/l_lip by the mouth line.
MASK_CLASSES: dict[str, str] = {
    "face": "skin",
    "forehead": "skin",
    "eye_region": "skin",
    "left_eye_region": "skin",
    "right_eye_region": "skin",
    "neck": "neck",
    "boundary": "neck",
    "scalp": "hair",
    "left_ear": "ear",
    "right_ear": "ear",
    "nose": "nose",
    "lips": "lips",
    "left_eyeball": "eye",
    "right_eyeball": "eye",
}
DEPTH_TOL = 0.025  # m: a face this far behind a feature's landmarks is not on it (back of head)
BROW_HALF_WIDTH = 0.005  # m: brows are ~1 cm tall around the iBUG brow line
NOSE_MARGIN = 0.006  # m: the alae reach a few mm past landmarks 31/35


def face_regions(
    v: np.ndarray,  # [V, 3] template, metres
    faces: np.ndarray,  # [F, 3]
    lmk: np.ndarray,  # [68, 3] landmark positions on the template
    masks: dict[str, np.ndarray] | None = None,  # region -> vertex ids
) -> np.ndarray:  # [F] CelebAMask-HQ ids
    cen = v[faces].mean(1)  # [F, 3]
    labels = np.full(len(faces), LABEL["skin"], np.int64)
    if masks is None:
        _paint(labels, cen, _landmark_regions(cen, lmk, nose=True, lips=True, eyes=True))
    else:
        _paint(labels, cen, _mask_regions(faces, masks))
        _paint(labels, cen, _landmark_regions(cen, lmk, nose=False, lips=False, eyes=False))
    _split_lips(labels, cen, lmk)
    return labels


def _paint(labels: np.ndarray, cen: np.ndarray, regions: list[tuple[str, np.ndarray]]) -> None:
    """Apply (class, [F] mask) pairs in order; sided classes pick l_/r_ by x."""
    for cls, sel in regions:
        if cls in ("ear", "eye", "brow"):
            labels[sel & (cen[:, 0] > 0)] = LABEL[f"l_{cls}"]
            labels[sel & (cen[:, 0] <= 0)] = LABEL[f"r_{cls}"]
        else:
            labels[sel] = LABEL["u_lip"] if cls == "lips" else LABEL[cls]  # lips are split afterwards


def _mask_regions(faces: np.ndarray, masks: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """A face belongs to a region when at least 2 of its 3 vertices do."""
    nv = int(faces.max()) + 1
    out = []
    for name, cls in MASK_CLASSES.items():
        if name not in masks:
            continue
        member = np.zeros(max(nv, int(masks[name].max(initial=-1)) + 1), bool)
        member[masks[name]] = True
        out.append((cls, member[faces].sum(1) >= 2))
    return out


def _landmark_regions(cen: np.ndarray, lmk: np.ndarray, nose: bool, lips: bool, eyes: bool) -> list[tuple[str, np.ndarray]]:
    """iBUG-68 features as (class, [F] mask), lowest priority first."""
    out = [("brow", _near_polyline(cen, lmk[17:22]) | _near_polyline(cen, lmk[22:27]))]
    if nose:
        out.append(("nose", _inside(cen, lmk[[27, 31, 32, 33, 34, 35]], NOSE_MARGIN, hull=True)))
    if eyes:
        out.append(("eye", _inside(cen, lmk[36:42], 0.0) | _inside(cen, lmk[42:48], 0.0)))
    if lips:
        out.append(("lips", _inside(cen, lmk[48:60], 0.0)))
    out.append(("mouth", _inside(cen, lmk[60:68], 0.0)))
    return out


def _front(cen: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """[F] faces not behind the landmarks (so the back of the head is excluded)."""
    return cen[:, 2] > pts[:, 2].min() - DEPTH_TOL


def _inside(cen: np.ndarray, pts: np.ndarray, margin: float, hull: bool = False) -> np.ndarray:
    """[F] centroids inside the xy polygon of ``pts`` (or its convex hull), grown by ``margin``."""
    poly = pts[:, :2]
    if hull:
        from scipy.spatial import ConvexHull

        poly = poly[ConvexHull(poly).vertices]
    xy = cen[:, :2]
    inside = points_in_poly(xy, poly)
    if margin > 0:
        inside |= _segment_distance(xy, np.concatenate([poly, poly[:1]])) < margin
    return inside & _front(cen, pts)


def _near_polyline(cen: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return (_segment_distance(cen[:, :2], pts[:, :2]) < BROW_HALF_WIDTH) & _front(cen, pts)


def _segment_distance(xy: np.ndarray, line: np.ndarray) -> np.ndarray:
    """xy [N, 2], polyline [K, 2] -> [N] distance to the nearest segment."""
    a, b = line[:-1], line[1:]  # [K-1, 2]
    ab = b - a
    t = ((xy[:, None] - a[None]) * ab[None]).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-18)  # [N, K-1]
    closest = a[None] + t.clip(0.0, 1.0)[..., None] * ab[None]  # [N, K-1, 2]
    return np.linalg.norm(xy[:, None] - closest, axis=-1).min(1)


def _split_lips(labels: np.ndarray, cen: np.ndarray, lmk: np.ndarray) -> None:
    """Lip faces above the mouth line are u_lip, below it l_lip.

    The mouth line runs through the corners (60, 64) and the midpoints of the
    facing inner-lip points (61-67, 62-66, 63-65), interpolated along x.
    """
    mid = np.stack([lmk[60], (lmk[61] + lmk[67]) / 2, (lmk[62] + lmk[66]) / 2, (lmk[63] + lmk[65]) / 2, lmk[64]])
    order = np.argsort(mid[:, 0])
    lips = labels == LABEL["u_lip"]
    line_y = np.interp(cen[lips, 0], mid[order, 0], mid[order, 1])
    labels[np.flatnonzero(lips)[cen[lips, 1] < line_y]] = LABEL["l_lip"]
