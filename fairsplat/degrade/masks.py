"""Where damage goes: per-region strengths and patchy, anisotropic variation masks.

Every step is blended per pixel with ``weight = strength[region] * mask``.
The strength map encodes seed 001's calibration (how badly splats fail per
facial region); the variation mask makes the damage patchy, the way individual
3D Gaussians project differently with position, orientation and scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fairsplat.degrade import kernels as K
from fairsplat.degrade import resample as R
from fairsplat.degrade.core import Range
from fairsplat.labels import LABEL, REGION_GROUPS


@dataclass(frozen=True)
class RegionStrengths:
    """Blend strength per coarse region (seed 001's table, in its order)."""

    mouth: float = 0.9
    """Depth discontinuities between teeth, lips and tongue: splats fail worst here."""
    eyes: float = 0.7
    """Fine detail lost to competing splats in small areas (eyes and brows)."""
    hair: float = 0.6
    """Strand clumping from splat merging."""
    nose: float = 0.5
    """Moderate geometric simplification."""
    skin: float = 0.4
    """Texture loss with broad shape kept (skin, ears, neck)."""
    other: float = 0.3
    """Ids outside REGION_GROUPS (glasses, hat, earrings, necklace, cloth): not
    in seed 001's table; below skin because they are not what the enhancer is for."""
    background: float = 0.1
    """Light: a splat render's backdrop is mostly clean, but halos and floaters
    reach into it; 0 would teach the enhancer that background is never touched."""

    def __post_init__(self) -> None:
        for name, v in vars(self).items():
            if not (0.0 <= v <= 1.0):
                raise ValueError(f"RegionStrengths.{name}: {v} is not in [0, 1]")

    def lut(self) -> np.ndarray:  # [256] float32: label id -> strength
        t = np.full(256, self.other, np.float32)
        t[LABEL["background"]] = self.background
        for region, ids in REGION_GROUPS.items():
            t[list(ids)] = getattr(self, region)
        return t


@dataclass(frozen=True)
class MaskParams:
    """Variation masks: sums of randomly oriented, elongated Gaussian blobs."""

    blobs: tuple[int, int] = (3, 9)
    """Blob count range per mask; a handful gives distinct damaged patches, not noise."""
    major: Range = (0.10, 0.35)
    """Blob sigma along its long axis, as a fraction of the crop side: patches the
    size of a cheek or an eye region, like clusters of badly fitted splats."""
    aspect: Range = (1.5, 5.0)
    """Long/short axis ratio: anisotropic, as projected Gaussians are."""
    gain: float = 1.6
    """Soft saturation 1 - exp(-gain * sum); ~1.6 gives a mean near 0.55."""
    floor: float = 0.25
    """Minimum weight everywhere: no region is ever perfectly clean, and each
    region's expected damage stays proportional to its strength."""
    grid: int = 8
    """Masks are drawn on a grid `grid` times coarser and upsampled: they are
    low-frequency by design, so full resolution would only cost time."""
    calibrate: float = 1.0
    """Pull each region's mean mask to the image's mean (0 = off, 1 = exact).
    1 makes measured damage follow the strengths on every image; patchiness
    remains within regions and between steps. See ``RegionLayout.weight``."""

    def __post_init__(self) -> None:
        if not (1 <= self.blobs[0] <= self.blobs[1]):
            raise ValueError(f"MaskParams.blobs: {self.blobs} must satisfy 1 <= lo <= hi")
        for name in ("major", "aspect"):
            lo, hi = getattr(self, name)
            if not (0 < lo <= hi):
                raise ValueError(f"MaskParams.{name}: {(lo, hi)} must satisfy 0 < lo <= hi")
        if not (0.0 <= self.floor <= 1.0):
            raise ValueError(f"MaskParams.floor: {self.floor} is not in [0, 1]")
        if self.gain <= 0 or self.grid < 1:
            raise ValueError("MaskParams.gain must be > 0 and MaskParams.grid >= 1")
        if not (0.0 <= self.calibrate <= 1.0):
            raise ValueError(f"MaskParams.calibrate: {self.calibrate} is not in [0, 1]")


def mask_grid(shape: tuple[int, int], p: MaskParams, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A patchy, anisotropic mask in [floor, 1] on the coarse grid. -> ([h, w] float32, record summary)"""
    H, W = shape
    h, w = max(2, math.ceil(H / p.grid)), max(2, math.ceil(W / p.grid))
    n = int(rng.integers(p.blobs[0], p.blobs[1] + 1))
    f32 = np.float32
    cy = rng.uniform(0, h, n).astype(f32)[:, None, None]
    cx = rng.uniform(0, w, n).astype(f32)[:, None, None]
    major = rng.uniform(*p.major, n).astype(f32)[:, None, None] * f32(min(h, w))
    minor = major / rng.uniform(*p.aspect, n).astype(f32)[:, None, None]
    theta = rng.uniform(0, math.pi, n)
    cos, sin = np.cos(theta).astype(f32)[:, None, None], np.sin(theta).astype(f32)[:, None, None]
    amp = rng.uniform(0.5, 1.0, n).astype(f32)[:, None, None]
    dy = np.arange(h, dtype=f32)[None, :, None] + f32(0.5) - cy  # [n, h, 1]
    dx = np.arange(w, dtype=f32)[None, None, :] + f32(0.5) - cx  # [n, 1, w]
    a = (dx * cos + dy * sin) / major  # [n, h, w] along the major axis
    b = (dy * cos - dx * sin) / minor
    total = (amp * np.exp(f32(-0.5) * (a * a + b * b))).sum(0)  # [h, w]
    small = f32(p.floor) + f32(1.0 - p.floor) * (1.0 - np.exp(f32(-p.gain) * total))
    return small, {"blobs": n, "mean": round(float(small.mean()), 4)}


def variation_mask(shape: tuple[int, int], p: MaskParams, rng: np.random.Generator) -> np.ndarray:
    """The full-resolution variation mask (uncalibrated), for inspection and tests. -> [H, W]"""
    return R.resize_bilinear(mask_grid(shape, p, rng)[0], *shape)


def spill(strength: np.ndarray, px: float) -> np.ndarray:
    """Let each region's strength spill ~``px`` into weaker neighbours, then feather. [H, W] -> [H, W]

    Why outward (max filter, then a blur of half the width) rather than a
    symmetric feather: a badly fitted mouth splat also covers the skin rim
    around the lips, not the other way round; and it keeps every pixel of a
    small region (a 12 px brow) at its own strength, so calibration holds there.
    """
    if px < 0.5:
        return strength
    r = max(1, round(px))
    grown = K.max_filter(strength, r)
    k = K.gaussian_kernel(r / 2.0)
    return np.maximum(K.sep_conv(grown, k, k), strength)


REGION_ORDER: tuple[str, ...] = (*REGION_GROUPS, "other", "background")  # region index -> name


class RegionLayout:
    """One image's regions, prepared once and shared by every step's weight map.

    Holds the feathered strength map, each pixel's region index and the
    fraction of each coarse mask cell that every region covers (to compute
    per-region mask means on the coarse grid, ~4000 cells instead of 262K px).
    """

    def __init__(self, labels: np.ndarray, strengths: RegionStrengths, spill_px: float, p: MaskParams):
        H, W = labels.shape
        self.strength = spill(np.take(strengths.lut(), labels), spill_px * min(H, W) / 512)  # [H, W]
        lut = np.full(256, REGION_ORDER.index("other"), np.uint8)
        lut[LABEL["background"]] = REGION_ORDER.index("background")
        for i, ids in enumerate(REGION_GROUPS.values()):
            lut[list(ids)] = i
        self.ridx = np.take(lut, labels)  # [H, W] region index
        h, w = max(2, math.ceil(H / p.grid)), max(2, math.ceil(W / p.grid))
        cells = (np.arange(H) * h // H)[:, None] * w + (np.arange(W) * w // W)[None, :]  # [H, W] cell id
        key = (self.ridx.astype(np.int64) * (h * w) + cells).ravel()  # (region, cell) pairs
        counts = np.bincount(key, minlength=len(REGION_ORDER) * h * w)
        cover = counts.reshape(len(REGION_ORDER), h * w).astype(np.float64)  # [R, h*w] pixel counts
        self.present = cover.sum(1) > 0  # [R]
        self.cover = cover / np.maximum(cover.sum(1, keepdims=True), 1.0)  # rows: region's distribution over cells

    def weight(self, small: np.ndarray, calibrate: float) -> np.ndarray:
        """strength x upsampled mask, each region's mask mean pulled towards the image mean. -> [H, W]

        With ``calibrate = 1`` every region gets exactly the image's mean mask
        (on the coarse grid): the mask then only moves damage around *within*
        a region, so a region's damage follows its strength on every image,
        not only on average. 0 leaves the raw patchy mask.
        """
        region_mean = self.cover @ small.ravel().astype(np.float64)  # [R]
        factor = np.ones(len(REGION_ORDER), np.float32)
        ok = self.present & (region_mean > 0)
        factor[ok] = (float(small.mean()) / region_mean[ok]) ** calibrate
        return R.upsample_weight(small, self.strength, self.ridx, factor)


def smooth_noise(shape: tuple[int, int], rng: np.random.Generator, cells: float) -> np.ndarray:
    """Unit-variance-ish random field with ~``cells`` features across the short side. -> [H, W]

    Why bilinear from a coarse normal grid: the steps only need "which patch
    gets which orientation/hole", and this costs one upsample.
    """
    H, W = shape
    n = max(2, int(round(cells)))
    h, w = max(2, round(n * H / min(H, W))), max(2, round(n * W / min(H, W)))
    coarse = rng.standard_normal((h, w)).astype(np.float32)
    return R.resize_bilinear(coarse, H, W)
