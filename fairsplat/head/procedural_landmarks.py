"""The 68-point iBUG 300-W landmark embedding of the procedural head.

Why frontal picking: each landmark's (x, y) in the frontal view is written
down from the same anchors that built the features (eye almonds, brow arch,
lip heights, nose layout), then embedded on the front-most head-grid face
under that point, as a face id plus barycentric coordinates (FLAME's static
embedding format). Eyeballs and the mouth bag are excluded: eye landmarks sit
on the lid skin at the lid margin, so a blink moves them, and inner-lip points
sit on the lip faces just above / below the mouth cut, so opening the jaw
separates them.

Order (300-W): 0-16 jaw from the subject's right (-X), 17-21 right brow
outer->inner, 22-26 left brow inner->outer, 27-30 nose bridge to tip, 31-35
nostrils right->left, 36-41 right eye from the outer corner clockwise in the
image, 42-47 left eye from the inner corner, 48-59 outer lip from the right
corner, 60-67 inner lip from the right corner.
"""

from __future__ import annotations

import numpy as np

from fairsplat.head.procedural_regions import BROW_X, brow_centre_y, lip_heights
from fairsplat.head.procedural_surface import LAYOUT

MARGIN_R = 0.9  # eye landmarks on the lid margin (almond radius 1 is where the lid meets the eyeball;
# a little inside it, as lid splats overlap the eyeball by about that much in renders)


def _jaw() -> np.ndarray:  # [17, 2] right ear -> chin -> left ear
    half = np.array([[-0.0685, 0.006], [-0.0665, -0.010], [-0.0625, -0.026], [-0.0585, -0.042], [-0.0525, -0.057],
                     [-0.0435, -0.069], [-0.031, -0.079], [-0.016, -0.086], [0.0, -0.0885]])
    return np.concatenate([half, half[-2::-1] * [-1.0, 1.0]])


def _brows() -> np.ndarray:  # [10, 2]
    ax = np.linspace(BROW_X[1] - 0.003, BROW_X[0] + 0.002, 5)  # outer -> inner
    right = np.stack([-ax, brow_centre_y(ax) + 0.001], 1)
    left = np.stack([ax[::-1], brow_centre_y(ax[::-1]) + 0.001], 1)
    return np.concatenate([right, left])


def _nose() -> np.ndarray:  # [9, 2]: bridge 27-30 then nostrils 31-35
    bridge = np.stack([np.zeros(4), np.linspace(LAYOUT.nasion_y - 0.001, LAYOUT.nose_tip_y, 4)], 1)
    base_y = LAYOUT.subnasale_y + 0.0025
    nostrils = np.array([[-0.0125, base_y + 0.003], [-0.0065, base_y + 0.0005], [0.0, base_y],
                         [0.0065, base_y + 0.0005], [0.0125, base_y + 0.003]])
    return np.concatenate([bridge, nostrils])


def _almond(dx: np.ndarray, upper: bool) -> np.ndarray:
    """y offset from the eye centre of the almond at radius MARGIN_R (inverse of surf.almond_radius)."""
    hw = LAYOUT.almond_half_width
    taper = np.clip(1.0 - 0.25 * dx / hw, 0.5, 1.5)
    q = np.sqrt(np.clip(MARGIN_R**2 - (dx / hw) ** 2, 0.0, None))
    h = (LAYOUT.almond_up if upper else -LAYOUT.almond_down) * taper * q
    return h + 0.10 * dx


def _eye(sign: float) -> np.ndarray:  # [6, 2] 300-W order for that eye
    """dx is measured outwards from the eye centre; the right eye starts at its outer corner."""
    # Corners: the almond tapers to nothing, so they sit where the eyeball still shows, the
    # inner one further in (the caruncle and the nose's shadow side cover the medial end).
    hw = LAYOUT.almond_half_width
    outer, inner, third = 0.9 * hw, -0.82 * hw, 0.38 * hw
    if sign < 0:  # right eye: outer corner, upper outer, upper inner, inner corner, lower inner, lower outer
        seq = [(outer, None), (third, True), (-third, True), (inner, None), (-third, False), (third, False)]
    else:  # left eye: inner corner, upper inner, upper outer, outer corner, lower outer, lower inner
        seq = [(inner, None), (-third, True), (third, True), (outer, None), (third, False), (-third, False)]
    pts = []
    for dx, upper in seq:
        dy = 0.10 * dx if upper is None else _almond(np.array([dx]), upper)[0]  # corners: on the tilt line
        pts.append((sign * (LAYOUT.eye_x + dx), LAYOUT.eye_y + dy))
    return np.array(pts)


def _lips() -> np.ndarray:  # [20, 2]: outer 48-59 then inner 60-67
    m, w = LAYOUT.mouth_y, LAYOUT.mouth_half_width
    up = lambda x: m + 0.7 * lip_heights(np.array([x]))[0][0]  # noqa: E731
    lo = lambda x: m - 0.7 * lip_heights(np.array([x]))[1][0]  # noqa: E731
    c = w - 0.0012
    outer = [(-c, m + 0.0004), (-0.6 * w, up(0.6 * w)), (-0.22 * w, up(0.22 * w)), (0.0, up(0.0)),
             (0.22 * w, up(0.22 * w)), (0.6 * w, up(0.6 * w)), (c, m + 0.0004),
             (0.6 * w, lo(0.6 * w)), (0.3 * w, lo(0.3 * w)), (0.0, lo(0.0)), (-0.3 * w, lo(0.3 * w)), (-0.6 * w, lo(0.6 * w))]
    ci = w - 0.004
    inner = [(-ci, m + 0.0006), (-0.45 * w, m + 0.0008), (0.0, m + 0.0008), (0.45 * w, m + 0.0008),
             (ci, m + 0.0006), (0.45 * w, m - 0.0008), (0.0, m - 0.0008), (-0.45 * w, m - 0.0008)]
    return np.array(outer + inner)


def landmark_targets() -> np.ndarray:  # [68, 2] frontal (x, y), metres
    pts = np.concatenate([_jaw(), _brows(), _nose(), _eye(-1.0), _eye(1.0), _lips()])
    assert pts.shape == (68, 2), pts.shape
    return pts


def frontal_pick(
    verts: np.ndarray,  # [V, 3]
    faces: np.ndarray,  # [F, 3] candidate faces
    targets: np.ndarray,  # [L, 2] (x, y)
) -> tuple[np.ndarray, np.ndarray]:  # face index into ``faces`` [L], barycentric [L, 3]
    """Front-most face (largest z) whose xy projection contains each target."""
    tri = verts[faces]  # [F, 3, 3]
    a, b, c = tri[:, 0, :2], tri[:, 1, :2], tri[:, 2, :2]
    det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])  # [F]
    ok = np.abs(det) > 1e-14
    out_f, out_b = np.empty(len(targets), np.int64), np.empty((len(targets), 3))
    for k, (px, py) in enumerate(targets):
        with np.errstate(divide="ignore", invalid="ignore"):
            l1 = ((px - a[:, 0]) * (c[:, 1] - a[:, 1]) - (py - a[:, 1]) * (c[:, 0] - a[:, 0])) / det
            l2 = ((py - a[:, 1]) * (b[:, 0] - a[:, 0]) - (px - a[:, 0]) * (b[:, 1] - a[:, 1])) / det
        l0 = 1.0 - l1 - l2
        inside = ok & (l0 >= -1e-9) & (l1 >= -1e-9) & (l2 >= -1e-9)
        if not inside.any():
            raise RuntimeError(f"procedural landmarks: landmark {k} at {(px, py)} is off the head")
        bary = np.stack([l0, l1, l2], 1)
        z = (bary * tri[:, :, 2]).sum(1)
        f = int(np.flatnonzero(inside)[np.argmax(z[inside])])
        out_f[k] = f
        out_b[k] = np.clip(bary[f], 0.0, 1.0) / np.clip(bary[f], 0.0, 1.0).sum()
    return out_f, out_b


def embed_landmarks(verts: np.ndarray, faces: np.ndarray, grid_faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """lmk_faces [68] (ids into ``faces``) and lmk_bary [68, 3], picked among ``grid_faces`` ids."""
    f, bary = frontal_pick(verts, faces[grid_faces], landmark_targets())
    return grid_faces[f], bary
