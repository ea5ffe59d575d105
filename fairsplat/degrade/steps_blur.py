"""Steps that lose detail: how too-few or too-large splats low-pass a face.

Five distinct failure modes, each a different kernel shape:
``region_blur`` (isotropic, oversized splats), ``splat_smear`` (elongated
splats at patch-wise orientations), ``detail_loss`` (a coarse sampling grid),
``texture_flatten`` (edge-preserving: shape kept, pores gone) and
``hair_clump`` (blur along the local strand direction, then posterised).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fairsplat.degrade import kernels as K
from fairsplat.degrade import resample as R
from fairsplat.degrade.core import Degradation, Range, StepParams, uniform
from fairsplat.degrade.masks import smooth_noise


@dataclass(frozen=True)
class RegionBlurParams(StepParams):
    prob: float = 0.8
    """The most common splat artifact (seed 001: "blurred facial features")."""
    sigma: Range = (0.8, 2.5)
    """Gaussian sigma in px at 512: from slightly soft to clearly blurred features."""


class RegionBlur(Degradation):
    """Isotropic blur: splats too large for the detail they cover."""

    Params = RegionBlurParams

    def sample(self, rng, ctx):
        return {"sigma": uniform(rng, self.params.sigma)}

    def render(self, img, ctx, s, rng):  # [3, H, W] -> [3, H, W]
        return K.gaussian_blur(img, ctx.px(s["sigma"]))


@dataclass(frozen=True)
class SplatSmearParams(StepParams):
    prob: float = 0.6
    """Frequent but not universal: stretched splats appear where views are sparse."""
    length: Range = (4.0, 14.0)
    """Streak length in px at 512: a stretched splat spans a few to ~15 px."""
    width: Range = (0.4, 1.0)
    """Cross-streak sigma in px at 512: splats are thin across their long axis."""
    patches: Range = (2.0, 5.0)
    """Orientation patches across the crop: splat orientation is locally coherent."""


class SplatSmear(Degradation):
    """Anisotropic smear: elongated Gaussian kernels at two random orientations.

    A smooth random field picks, patch by patch, which of the two orientations
    applies, so neighbouring areas streak in different directions.
    """

    Params = SplatSmearParams

    def sample(self, rng, ctx):
        p = self.params
        return {
            "length": uniform(rng, p.length),
            "width": uniform(rng, p.width),
            "theta": [float(rng.uniform(0, math.pi)), float(rng.uniform(0, math.pi))],
            "patches": uniform(rng, p.patches),
        }

    def render(self, img, ctx, s, rng):
        L = max(ctx.px(s["length"]), 1.5)
        sel = np.clip(0.5 + 2.0 * smooth_noise(ctx.shape, rng, s["patches"]), 0.0, 1.0)  # [H, W]
        taps = [K.line_taps(L, theta) for theta in s["theta"]]
        out = K.shift_sum2(img, taps[0], taps[1], sel)  # [3, H, W], orientation picked patch-wise
        w = ctx.px(s["width"])
        return K.gaussian_blur(out, w) if w >= 0.3 else out


@dataclass(frozen=True)
class DetailLossParams(StepParams):
    prob: float = 0.6
    """Often: low splat density is the rule away from the camera-facing centre."""
    factor: Range = (2.0, 4.0)
    """Sampling-grid coarsening at 512: 2-4x fewer samples per side."""


class DetailLoss(Degradation):
    """Down- then up-sampling: a sparse splat set cannot hold frequencies above its spacing.

    Distinct from ``region_blur``: a weak prefilter and bilinear reconstruction
    leave grid-aligned plateaus and a little aliasing, not a smooth Gaussian.
    """

    Params = DetailLossParams

    def sample(self, rng, ctx):
        return {"factor": uniform(rng, self.params.factor)}

    def render(self, img, ctx, s, rng):
        H, W = ctx.shape
        f = math.hypot(ctx.px(s["factor"]), 1.0)  # ~factor at 512; > 1 and still monotone on tiny crops
        pre = K.gaussian_blur(img, 0.35 * f)
        small = R.resize_bilinear(pre, max(2, round(H / f)), max(2, round(W / f)))
        return R.resize_bilinear(small, H, W)


@dataclass(frozen=True)
class TextureFlattenParams(StepParams):
    prob: float = 0.6
    """Often: seed 001's "inconsistent skin texture" is a dominant avatar artifact."""
    radius: Range = (3.0, 8.0)
    """Guided-filter window radius in px at 512: the size of pores and fine wrinkles."""
    eps: Range = (0.002, 0.02)
    """Regularisation (variance units): edges with contrast above ~sqrt(eps) survive."""


class TextureFlatten(Degradation):
    """Edge-preserving smoothing of luma (self-guided filter, He et al.): waxy, pore-less patches.

    Unlike a blur it keeps the broad shape (eyelids, lip lines, jaw) and only
    removes low-contrast texture, like splats that fit colour but not pores.
    Luma only, because skin texture is luminance; the per-pixel luma change is
    added to all channels, so chroma stays. The linear coefficients are fitted
    at half resolution ("fast guided filter", He & Sun 2015): they are smooth
    by construction, and it costs a quarter.
    """

    Params = TextureFlattenParams

    def sample(self, rng, ctx):
        p = self.params
        return {"radius": uniform(rng, p.radius), "eps": uniform(rng, p.eps)}

    def render(self, img, ctx, s, rng):
        g = K.luma(img)  # [H, W]
        flat = guided_filter(g, ctx.px(s["radius"]), s["eps"])
        return K.mix_planes(img, (flat - g)[None], np.ones((3, 1), np.float32))


def guided_filter(g: np.ndarray, radius: float, eps: float) -> np.ndarray:
    """Fast self-guided filter of a grey image. [H, W] -> [H, W]"""
    H, W = g.shape
    small = R.area_down(g, 2)  # [h, w]
    r = max(1, round(radius / 2))
    box = np.full(2 * r + 1, 1.0 / (2 * r + 1), np.float32)
    m, mm = K.sep_conv(np.stack([small, small * small]), box, box)  # [h, w] each
    a = (mm - m * m) / (mm - m * m + np.float32(eps))  # variance / (variance + eps)
    b = m - a * m
    ab = R.resize_bilinear(K.sep_conv(np.stack([a, b]), box, box), H, W)  # [2, H, W]
    return ab[0] * g + ab[1]


@dataclass(frozen=True)
class HairClumpParams(StepParams):
    prob: float = 0.5
    """Half the pairs: clumping is a hair artifact but reads as streaky texture elsewhere."""
    length: Range = (6.0, 16.0)
    """Clump length in px at 512 along the local strand direction."""
    levels: tuple[int, int] = (5, 10)
    """Posterisation levels per channel: merged strands render as a few flat tones."""
    posterize: Range = (0.3, 0.7)
    """How much of the posterised result is mixed in (full posterisation bands visibly)."""


class HairClump(Degradation):
    """Blur along the local orientation (structure tensor) then posterise: merged strands.

    Computed at half resolution: clumps are wider than single strands, so the
    lost octave is part of the artifact, and it costs a quarter of the time.
    """

    Params = HairClumpParams

    def sample(self, rng, ctx):
        p = self.params
        return {
            "length": uniform(rng, p.length),
            "levels": int(rng.integers(p.levels[0], p.levels[1] + 1)),
            "posterize": uniform(rng, p.posterize),
        }

    def render(self, img, ctx, s, rng):
        H, W = ctx.shape
        small = R.area_down(img, 2)  # [3, h, w]
        theta = strand_orientation(K.luma(small), sigma=max(ctx.px(6.0), 1.0))  # [h, w]
        L = max(ctx.px(s["length"]) / 2.0, 1.5)
        out = np.zeros_like(small)
        total = np.zeros(theta.shape, np.float32)
        for k in range(4):  # four orientation bins, soft-assigned
            phi = k * math.pi / 4
            wk = np.maximum(np.cos(2.0 * (theta - phi)), 0.0).astype(np.float32) ** 2  # [h, w]
            out += wk * K.shift_sum(small, *K.line_taps(L, phi))
            total += wk
        out /= np.maximum(total, 1e-6)
        q = np.round(out * s["levels"]) / s["levels"]
        out += np.float32(s["posterize"]) * (q - out)
        return R.resize_bilinear(out, H, W)


def strand_orientation(g: np.ndarray, sigma: float) -> np.ndarray:
    """Angle (radians, image x towards y) of least intensity change: the strand direction. [H, W]"""
    gy, gx = np.gradient(g)
    k = K.gaussian_kernel(sigma)
    jxx, jxy, jyy = K.sep_conv(np.stack([gx * gx, gx * gy, gy * gy]).astype(np.float32), k, k)
    grad_angle = 0.5 * np.arctan2(2.0 * jxy, jxx - jyy)
    return grad_angle + np.float32(math.pi / 2)
