"""Region labels of the procedural head, one CelebAMask-HQ id per face.

Why analytic rules on the rest-pose face centroids: every feature of the head
was placed by a formula (``procedural_surface``), so its extent is known
exactly and the labels can follow the same anchors (lip heights, brow arch,
hairline) instead of being painted. Parts that are separate meshes take their
label from the part: eyeballs are ``l_eye`` / ``r_eye``, the mouth bag is
``mouth``. The lid skin inside the eye opening is ``skin``: it lies behind the
eyeball while the eye is open and covers it when the eye closes, so a blink
removes the eye label from a render, as in CelebAMask-HQ. ``l_``/``r_`` are
the subject's left/right: left is +X.
"""

from __future__ import annotations

import numpy as np

from fairsplat import detmath as dm
from fairsplat.head import procedural_surface as surf
from fairsplat.head.procedural_surface import LAYOUT
from fairsplat.labels import LABEL

# Hairline height (m) against azimuth |atan2(x, z + 0.012)| (0 = the forehead, pi = the nape).
HAIRLINE_AZ = np.array([0.0, 0.7, 1.1, 1.5, 2.0, np.pi])
HAIRLINE_Y = np.array([0.070, 0.064, 0.045, 0.030, -0.020, -0.062])


def brow_centre_y(ax: np.ndarray) -> np.ndarray:
    """Arch of the brow's centre line against |x|: inner end low, peak at 2/3 of the way out."""
    return LAYOUT.brow_y + 0.0045 - 0.0075 * ((ax - 0.034) / 0.02) ** 2


def brow_half_height(ax: np.ndarray) -> np.ndarray:
    """Brows are thicker at the inner end (4 mm) than at the tail (2.5 mm)."""
    return 0.0040 - 0.0015 * np.clip((ax - 0.014) / 0.036, 0.0, 1.0)


BROW_X = (0.013, 0.052)  # |x| span of a brow, m


def lip_heights(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vermilion height above / below the mouth line at x, thinning to 1 mm at the corners."""
    q = dm.power(np.clip(1.0 - (x / LAYOUT.mouth_half_width) ** 2, 0.0, None), 0.4)
    return 0.0085 * q + 0.001, 0.0105 * q + 0.001


def hairline_y(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    return np.interp(np.abs(dm.arctan2(x, z + 0.012)), HAIRLINE_AZ, HAIRLINE_Y)


def neck_line_y(z: np.ndarray) -> np.ndarray:
    """Below this is neck: the jaw line from under the chin (z 7 cm) back to the jaw angle."""
    t = np.clip((z + 0.005) / 0.075, 0.0, 1.0)
    return np.where(z < -0.005, HAIRLINE_Y[-1] - 0.002, -0.070 - 0.023 * t)


def ear_mask(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Where the side of the head was pushed out into an ear (more than 0.8 mm)."""
    return (np.abs(x) > 0.05) & (surf.smoothstep(0.045, 0.065, np.abs(x)) * surf.ear_dx(y, z) > 0.0008)


def grid_regions(centroids: np.ndarray, lower_side: np.ndarray) -> np.ndarray:
    """Labels of head-grid faces from their rest centroids [F, 3].

    ``lower_side`` [F] marks faces below the mouth cut (they use the lower-lip
    duplicates or lie under the mouth row), so the lips split exactly at the cut.
    """
    x, y, z = centroids.T
    ax = np.abs(x)
    front = surf.front_gate(z) > 0.5
    lab = np.full(len(x), LABEL["skin"], np.int64)
    lab[y > hairline_y(x, z)] = LABEL["hair"]
    lab[y < neck_line_y(z)] = LABEL["neck"]
    nose = front & (surf.nose_z(x, y, nostrils=False) > 0.0012) & (y > LAYOUT.subnasale_y - 0.002) & (ax < 0.025)
    lab[nose] = LABEL["nose"]
    brow = front & (ax > BROW_X[0]) & (ax < BROW_X[1]) & (np.abs(y - brow_centre_y(ax)) < brow_half_height(ax))
    lab[brow & (x > 0)] = LABEL["l_brow"]
    lab[brow & (x < 0)] = LABEL["r_brow"]
    up_h, lo_h = lip_heights(x)
    in_mouth = front & (ax < LAYOUT.mouth_half_width)
    dy = y - LAYOUT.mouth_y
    lab[in_mouth & ~lower_side & (dy >= -0.0005) & (dy < up_h)] = LABEL["u_lip"]
    lab[in_mouth & lower_side & (dy < 0.0005) & (-dy < lo_h)] = LABEL["l_lip"]
    ear = ear_mask(x, y, z)
    lab[ear & (x > 0)] = LABEL["l_ear"]
    lab[ear & (x < 0)] = LABEL["r_ear"]
    return lab


def face_regions(centroids: np.ndarray, face_part: np.ndarray, lower_side: np.ndarray) -> np.ndarray:
    """All faces: part 0 = head grid (rules above), 1/2 = left/right eyeball, 3 = mouth bag."""
    lab = np.empty(len(face_part), np.int64)
    grid = face_part == 0
    lab[grid] = grid_regions(centroids[grid], lower_side[grid])
    lab[face_part == 1] = LABEL["l_eye"]
    lab[face_part == 2] = LABEL["r_eye"]
    lab[face_part == 3] = LABEL["mouth"]
    return lab
