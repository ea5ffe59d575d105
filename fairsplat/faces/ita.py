"""Individual Typology Angle (ITA°) of facial skin.

ITA° = arctan((L* − 50) / b*) · 180/π, with L*, b* in CIELAB (D65, 2° observer),
converted from sRGB with ``skimage.color.rgb2lab``'s formulas (Chardon et al. 1991;
:func:`rgb_to_lab` computes them machine-independently). High ITA
is light skin, low (negative) ITA is dark skin.

**atan2-safe form.** We compute ``degrees(arctan2(L* − 50, max(b*, 0)))``. For
b* > 0 — every skin colour — this equals the published arctan form exactly
(arctan2(y, x) = arctan(y/x) for x > 0). For b* ≤ 0 (a neutral or bluish pixel,
not skin) the published form divides by zero or flips sign; we return its
b* → 0⁺ limit, ±90° by the sign of L* − 50, so the result always lies in
[−90°, 90°], the range every classification table in :mod:`skin_types` covers.

**Statistic.** A face gives one number: the ITA of the *median L\\* and median
b\\** of the kept skin pixels (``stat="median_lab"``, the default), not the
median of per-pixel ITA (``stat="median_pixel"``, kept for comparison). Why:
per-pixel ITA has a pole at b* = 0. Dark skin has small b* (the MST 9–10
swatches have b* ≈ 4–6), so a ±2 camera-noise wobble in b* swings a single
pixel's ITA by tens of degrees and the per-pixel distribution becomes
heavy-tailed and skewed. Medians of L* and b* are each robust (half the pixels
may be highlights or shadows before they move), and their ITA is the ITA of
one representative skin colour, so it is on the same footing as a swatch's
ITA — the Monk Skin Tone swatches reproduce their published ITA exactly.

**Pixels kept.** The skin mask (from CelebAMask-HQ labels when present, else
from the 68 landmarks) minus (a) clipped pixels (two or more channels ≥ 250:
specular highlights and blown exposure, but not very light skin whose red
alone saturates; all channels ≤ 5: crushed shadow), then (b) the
pixels outside the ``trim`` L* percentiles of what is left (shine on forehead
and nose tip, shadow under the jaw and in nostrils). Percentiles, not fixed L*
cut-offs, because a fixed "too dark" threshold would eat type VI skin (MST 10
has L* = 14.6).

**Speed.** At most ``max_samples`` masked pixels (an even stride through them)
are converted to Lab; the median of 20,000 samples is within ~0.1° of the
median of all of them, and a 512 px crop takes a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from PIL import Image, ImageDraw

from fairsplat import detmath as dm
from fairsplat.labels import IBUG68_GROUPS, LABEL

SKIN_LABELS: tuple[int, ...] = (LABEL["skin"], LABEL["nose"], LABEL["neck"])
"""CelebAMask-HQ classes whose pixels are bare skin. Ears are left out: they are
often under hair and translucent (reddish) in back-light; eyes, brows, lips,
mouth, hair, eyeglasses and cloth are excluded by not being listed."""


@dataclass(frozen=True)
class ItaResult:
    ita: float  # degrees, [-90, 90]
    L: float  # median L* of the kept pixels
    a: float  # median a*
    b: float  # median b*
    n_mask: int  # pixels in the skin mask
    n_used: int  # pixels left after clipping/trim (and sampling)


def ita_from_lab(L: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """ITA° from L*, b* (any broadcastable shapes), atan2-safe (see module doc)."""
    return np.degrees(dm.arctan2(np.asarray(L, np.float64) - 50.0, np.maximum(np.asarray(b, np.float64), 0.0)))


# scikit-image's sRGB (D65) <-> XYZ matrix and D65 / 2 degree white point; the conversions below
# are its formulas, written with fairsplat.detmath so that the bits do not depend on the CPU:
# skimage's np.power / np.cbrt run numpy's AVX512 loops where the CPU has them, its matrix
# products and its inverted matrix go through the per-CPU BLAS / LAPACK kernel.
XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]])
RGB_FROM_XYZ = dm.inv3(XYZ_FROM_RGB)
WHITE_D65 = np.array([0.95047, 1.0, 1.08883])


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0.04045, dm.power(np.maximum(x + 0.055, 0.0) / 1.055, 2.4), x / 12.92)


_LINEAR_OF_UINT8 = _srgb_to_linear(np.arange(256) / 255.0)  # [256]


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:  # uint8 [..., 3] -> float64 [..., 3]
    """sRGB (uint8 or float in [0,1]) to CIELAB D65 / 2 degrees: ``skimage.color.rgb2lab``, machine-independent."""
    assert rgb.shape[-1] == 3, rgb.shape
    if rgb.dtype == np.uint8:
        lin = _LINEAR_OF_UINT8[rgb]  # the same formula, evaluated once per 8-bit level
    else:
        lin = _srgb_to_linear(rgb.astype(np.float64))
    arr = dm.matvec3(XYZ_FROM_RGB, lin) / WHITE_D65
    f = np.where(arr > 0.008856, dm.cbrt(np.maximum(arr, 0.0)), 7.787 * arr + 16.0 / 116.0)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:  # float [..., 3] -> float64 sRGB [..., 3] in [0, 1]
    """CIELAB D65 / 2 degrees to sRGB: ``skimage.color.lab2rgb`` (negative Z clipped, gamut clipped), machine-independent."""
    lab = np.asarray(lab, np.float64)
    assert lab.shape[-1] == 3, lab.shape
    y = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([lab[..., 1] / 500.0 + y, y, np.maximum(y - lab[..., 2] / 200.0, 0.0)], axis=-1)
    xyz = np.where(f > 0.2068966, f * f * f, (f - 16.0 / 116.0) / 7.787) * WHITE_D65
    lin = dm.matvec3(RGB_FROM_XYZ, xyz)
    srgb = np.where(lin > 0.0031308, 1.055 * dm.power(np.maximum(lin, 0.0), 1 / 2.4) - 0.055, 12.92 * lin)
    return np.clip(srgb, 0.0, 1.0)


def ita_of_rgb(rgb: np.ndarray) -> np.ndarray:  # uint8 [..., 3] -> float [...]
    """Per-colour ITA, e.g. of swatches; the reference for the per-face statistic."""
    lab = rgb_to_lab(rgb)
    return ita_from_lab(lab[..., 0], lab[..., 2])


# ----------------------------------------------------------------------------- masks


def skin_mask_from_labels(labels: np.ndarray, erode_px: int = 2) -> np.ndarray:  # int [H,W] -> bool [H,W]
    """Skin pixels of a CelebAMask-HQ label map, eroded so that boundary pixels
    (hair strands, lip edges, anti-aliased label borders) do not leak in."""
    assert labels.ndim == 2, labels.shape
    mask = np.isin(labels, SKIN_LABELS)
    if erode_px > 0:
        mask = ndimage.binary_erosion(mask, iterations=erode_px)
    return mask


def _pts(lm: np.ndarray, group: str) -> np.ndarray:
    a, b = IBUG68_GROUPS[group]
    return lm[a:b]


def _scaled(poly: np.ndarray, factor: float) -> np.ndarray:
    c = poly.mean(axis=0)
    return c + (poly - c) * factor


def _fill(draw: ImageDraw.ImageDraw, poly: np.ndarray, value: int) -> None:
    draw.polygon([(float(x), float(y)) for x, y in poly], fill=value)


def _brow_band(lm: np.ndarray, group: str, half_width: float) -> np.ndarray:
    """A band around a brow polyline, ``half_width`` px above and below it."""
    brow = _pts(lm, group)
    eyes = _pts(lm, "r_eye").mean(0), _pts(lm, "l_eye").mean(0)
    across = eyes[1] - eyes[0]
    down = np.array([-across[1], across[0]]) / (np.linalg.norm(across) + 1e-9)  # image-down
    if down[1] < 0:
        down = -down
    return np.concatenate([brow - down * half_width, (brow + down * half_width)[::-1]])


def skin_mask_from_landmarks(
    landmarks: np.ndarray,  # [68, 2] (x, y) pixels, iBUG-68 order
    shape: tuple[int, int],  # (H, W)
    shrink: float = 0.88,
) -> np.ndarray:  # bool [H, W]
    """Face skin from landmarks: the face outline (jaw, then brows), shrunk
    towards its centre by ``shrink`` (our "erosion": drops the jaw-line edge where
    background, beard shadow and hair meet the cheek), minus enlarged eye
    polygons, brow bands and the enlarged outer-lip polygon."""
    assert landmarks.shape == (68, 2), landmarks.shape
    lm = np.asarray(landmarks, np.float64)
    canvas = Image.new("L", (shape[1], shape[0]), 0)  # PIL's C rasteriser: ~10x skimage.draw here
    draw = ImageDraw.Draw(canvas)
    outline = np.concatenate([_pts(lm, "jaw"), _pts(lm, "l_brow")[::-1], _pts(lm, "r_brow")[::-1]])
    _fill(draw, _scaled(outline, shrink), 1)
    iod = np.linalg.norm(_pts(lm, "l_eye").mean(0) - _pts(lm, "r_eye").mean(0))  # inter-ocular px
    for eye in ("r_eye", "l_eye"):
        _fill(draw, _scaled(_pts(lm, eye), 2.0), 0)
    for brow in ("r_brow", "l_brow"):
        _fill(draw, _brow_band(lm, brow, 0.12 * iod), 0)
    _fill(draw, _scaled(_pts(lm, "outer_lip"), 1.3), 0)
    return np.asarray(canvas, dtype=bool)


# ----------------------------------------------------------------------------- statistic


def _sample(pixels: np.ndarray, max_samples: int) -> np.ndarray:
    step = -(-len(pixels) // max_samples) if len(pixels) > max_samples else 1
    return pixels[::step]


def _keep(lab: np.ndarray, rgb: np.ndarray, trim: tuple[float, float]) -> np.ndarray:  # [N,3],[N,3] -> bool [N]
    # specular / blown: two or more channels clipped. One clipped channel alone
    # is not a highlight: very light skin (MST 1-3, R ~ 246) reaches R = 255
    # in a well-exposed photo while G and B stay lower, and dropping it would
    # push type I faces out of their own measurement.
    blown = (rgb >= 250).sum(axis=1) >= 2
    ok = ~blown & (rgb.max(axis=1) > 5)
    if ok.sum() < 2:
        return ok
    lo, hi = np.percentile(lab[ok, 0], trim)
    return ok & (lab[:, 0] >= lo) & (lab[:, 0] <= hi)


def measure_ita(
    rgb: np.ndarray,  # uint8 [H, W, 3]
    mask: np.ndarray,  # bool [H, W]
    *,
    stat: str = "median_lab",
    trim: tuple[float, float] = (5.0, 95.0),
    max_samples: int = 20_000,
    min_pixels: int = 50,
) -> ItaResult | None:
    """ITA of the skin under ``mask``; None when fewer than ``min_pixels`` survive."""
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and mask.shape == rgb.shape[:2], (rgb.shape, mask.shape)
    px = _sample(rgb[mask], max_samples)  # [N, 3] uint8
    n_mask = int(mask.sum())
    if len(px) < min_pixels:
        return None
    lab = rgb_to_lab(px[None])[0]  # [N, 3]
    keep = _keep(lab, px, trim)
    if keep.sum() < min_pixels:
        return None
    lab = lab[keep]
    L, a, b = np.median(lab, axis=0)
    if stat == "median_lab":
        ita = float(ita_from_lab(L, b))
    elif stat == "median_pixel":
        ita = float(np.median(ita_from_lab(lab[:, 0], lab[:, 2])))
    else:
        raise ValueError(f"stat={stat!r}; expected 'median_lab' or 'median_pixel'")
    return ItaResult(ita, float(L), float(a), float(b), n_mask, int(keep.sum()))


def face_ita(
    rgb: np.ndarray,  # uint8 [H, W, 3]
    *,
    labels: np.ndarray | None = None,  # int [H, W] CelebAMask-HQ ids, preferred when given
    landmarks: np.ndarray | None = None,  # [68, 2]
    valid: np.ndarray | None = None,  # bool [H, W]: pixels that came from the photo (not padding)
    **kw,
) -> tuple[ItaResult | None, str]:
    """ITA of a face and which mask it used (``"labels"`` or ``"landmarks"``)."""
    if labels is not None:
        mask, source = skin_mask_from_labels(labels), "labels"
    elif landmarks is not None:
        mask, source = skin_mask_from_landmarks(landmarks, rgb.shape[:2]), "landmarks"
    else:
        raise ValueError("face_ita needs labels or landmarks")
    if valid is not None:
        mask &= valid
    return measure_ita(rgb, mask, **kw), source
