"""Square face crops (seed-000 centre crop or similarity-aligned) and grey compositing.

Every crop is one 2×3 affine matrix ``M`` that maps source pixel coordinates
to crop coordinates, ``[x', y'] = M @ [x, y, 1]``, with **pixel centres at
integer coordinates** (the convention of dlib landmarks and numpy indices).
Storing ``M`` (in the manifest) lets later stages map landmarks, label maps or
tracked geometry between the photo and the crop without re-detecting.

Two framings:

* ``"centre"`` (seed 000: "centre-cropped to square"): a square centred on the
  landmarks' bounding box, side ``margin`` × its larger side, moved up by
  ``shift_up`` × that side so forehead and hair fit. Rotation-free, so the
  photo's own head tilt is kept.
* ``"aligned"``: a similarity transform (rotation, uniform scale, shift) that
  puts the two eye centres and the mouth centre on canonical positions
  (:data:`ALIGN_TEMPLATE`, FFHQ-like framing: eyes 1/4 of the side apart).
  Least squares over 3 points, so it is exact up to face shape.

Parts of the square outside the photo are filled with grey and reported in
``Crop.valid`` (False there), so they are never mistaken for skin or head.

Resampling: bilinear after an integer box-filter pre-reduction whenever the
crop shrinks the photo by 2× or more (plain bilinear would alias).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from skimage.transform import SimilarityTransform

from fairsplat.labels import IBUG68_GROUPS

ALIGN_TEMPLATE: dict[str, tuple[float, float]] = {
    "r_eye": (0.375, 0.45),  # subject's right eye = image left
    "l_eye": (0.625, 0.45),
    "mouth": (0.5, 0.70),
}
"""Canonical positions in a unit square crop for ``mode="aligned"`` at margin 1."""


@dataclass(frozen=True)
class Crop:
    image: np.ndarray  # uint8 [S, S, 3]
    matrix: np.ndarray  # float [2, 3] source -> crop (pixel centres at integers)
    box: np.ndarray  # float [4] x0, y0, x1, y1: source-space bounding box of the crop square
    landmarks: np.ndarray  # float [68, 2] in crop pixels
    valid: np.ndarray  # bool [S, S]: True where the pixel came from the photo


def _group_mean(lm: np.ndarray, name: str) -> np.ndarray:
    a, b = IBUG68_GROUPS[name]
    return lm[a:b].mean(axis=0)


def apply_matrix(matrix: np.ndarray, pts: np.ndarray) -> np.ndarray:  # [2,3], [N,2] -> [N,2]
    return pts @ matrix[:, :2].T + matrix[:, 2]


def invert_matrix(matrix: np.ndarray) -> np.ndarray:  # [2,3] -> [2,3]
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def centre_matrix(
    landmarks: np.ndarray,  # [68, 2]
    size: int,
    margin: float = 2.0,
    shift_up: float = 0.15,
) -> np.ndarray:  # [2, 3]
    """Seed-000 framing: square around the landmarks' box, ``margin`` × its side."""
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    face = float(max(hi - lo))
    side = margin * face
    cx, cy = (lo + hi) / 2 - np.array([0.0, shift_up * face])
    s = size / side
    # corner (cx - side/2, cy - side/2) -> crop corner (-0.5, -0.5)
    return np.array([[s, 0.0, (size - 1) / 2 - s * cx], [0.0, s, (size - 1) / 2 - s * cy]])


def aligned_matrix(landmarks: np.ndarray, size: int, margin: float = 1.0) -> np.ndarray:  # [68,2] -> [2,3]
    """Similarity transform taking eye and mouth centres to :data:`ALIGN_TEMPLATE`;
    ``margin`` > 1 zooms out about the crop centre."""
    src = np.stack([_group_mean(landmarks, "r_eye"), _group_mean(landmarks, "l_eye"), _group_mean(landmarks, "outer_lip")])
    tpl = np.array([ALIGN_TEMPLATE["r_eye"], ALIGN_TEMPLATE["l_eye"], ALIGN_TEMPLATE["mouth"]])
    dst = ((tpl - 0.5) / margin + 0.5) * size - 0.5  # unit square -> pixel centres
    tf = SimilarityTransform()
    if not tf.estimate(src, dst):
        raise ValueError("degenerate landmarks: cannot estimate an alignment")
    return tf.params[:2].copy()


def crop_box(matrix: np.ndarray, size: int) -> np.ndarray:  # -> [4] x0, y0, x1, y1 in source
    corners = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [size - 0.5, size - 0.5], [-0.5, size - 0.5]])
    src = apply_matrix(invert_matrix(matrix), corners)
    return np.concatenate([src.min(axis=0), src.max(axis=0)])


def _pil_affine(matrix: np.ndarray) -> tuple[float, ...]:
    """Our centre-convention source->crop matrix as PIL's corner-convention crop->source data."""
    r, t = matrix[:, :2], matrix[:, 2]
    corner = np.hstack([r, (t + 0.5 - r @ np.array([0.5, 0.5]))[:, None]])
    return tuple(invert_matrix(corner).ravel())


def _prereduce(pil: Image.Image, matrix: np.ndarray) -> tuple[Image.Image, np.ndarray]:
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    factor = int(1.0 / scale) if scale < 0.5 else 1
    if factor < 2:
        return pil, matrix
    small = pil.reduce(factor)  # box filter: pixel i of small covers [i*f, (i+1)*f)
    # source centre x -> small centre (x + 0.5)/f - 0.5
    to_small = np.array([[1 / factor, 0, 0.5 / factor - 0.5], [0, 1 / factor, 0.5 / factor - 0.5]])
    # M' = M @ inverse(to_small)
    return small, matrix @ np.vstack([invert_matrix(to_small), [0, 0, 1]])


def warp(
    img: np.ndarray,  # uint8 [H, W] or [H, W, C]
    matrix: np.ndarray,  # [2, 3] source -> output
    size: int,
    *,
    nearest: bool = False,  # for label maps
    fill: int | tuple[int, ...] = 0,
) -> np.ndarray:  # uint8 [size, size(, C)]
    assert matrix.shape == (2, 3), matrix.shape
    pil = Image.fromarray(np.ascontiguousarray(img))
    if not nearest:
        pil, matrix = _prereduce(pil, matrix)
    resample = Image.NEAREST if nearest else Image.BILINEAR
    out = pil.transform((size, size), Image.AFFINE, _pil_affine(matrix), resample=resample, fillcolor=fill)
    return np.asarray(out)


def crop_face(
    img: np.ndarray,  # uint8 [H, W, 3]
    landmarks: np.ndarray,  # [68, 2] source pixels
    size: int = 512,
    *,
    mode: str = "centre",
    margin: float | None = None,
    grey: float = 0.5,
) -> Crop:
    """Square crop around a face, padded with grey where it leaves the photo."""
    assert img.ndim == 3 and img.shape[2] == 3, img.shape
    assert landmarks.shape == (68, 2), landmarks.shape
    if mode == "centre":
        matrix = centre_matrix(landmarks, size, margin=2.0 if margin is None else margin)
    elif mode == "aligned":
        matrix = aligned_matrix(landmarks, size, margin=1.0 if margin is None else margin)
    else:
        raise ValueError(f"crop mode {mode!r}; expected 'centre' or 'aligned'")
    g = int(round(grey * 255))
    image = warp(img, matrix, size, fill=(g, g, g))
    valid = warp(np.full(img.shape[:2], 255, np.uint8), matrix, size, fill=0) >= 128
    return Crop(image, matrix, crop_box(matrix, size), apply_matrix(matrix, landmarks), valid)


def composite_grey(
    img: np.ndarray,  # uint8 [H, W, 3]
    mask: np.ndarray,  # float [H, W] in [0, 1] (or bool): 1 = foreground
    grey: float = 0.5,
) -> np.ndarray:  # uint8 [H, W, 3]
    """Foreground over a flat grey (seed 000: mid-grey 0.5, i.e. 128 in 8-bit sRGB).

    Why grey, not black or white: a light or dark background leaves a halo of
    its colour along soft hair edges, and that halo is far more visible against
    very dark or very light skin; mid-grey is the least-biased compromise.
    """
    assert img.shape[:2] == mask.shape and img.shape[2] == 3, (img.shape, mask.shape)
    m = mask.astype(np.float32)[..., None]
    out = img.astype(np.float32) * m + (grey * 255.0) * (1.0 - m)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
