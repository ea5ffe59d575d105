"""Steps that get colour wrong while geometry is fine.

``colour_bleed`` (chroma smeared across region borders), ``noise`` (render
noise), ``desaturate`` (washed-out colour) and ``shading_shift`` (brightness
plus a view-dependent, low-order colour ramp, as from badly fitted SH).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fairsplat.degrade import kernels as K
from fairsplat.degrade import resample as R
from fairsplat.degrade.core import Degradation, Range, StepParams, uniform

# Opponent chroma axes (orthogonal to luma in RGB): how chroma noise is coloured.
_CHROMA_AXES = np.array([[1.0, -0.5, -0.5], [0.0, 0.866, -0.866]], np.float32)  # [2, 3]


@dataclass(frozen=True)
class ColourBleedParams(StepParams):
    prob: float = 0.5
    """Splats straddling a border take one colour for both sides: common at lips and hairline."""
    sigma: Range = (4.0, 16.0)
    """Chroma blur sigma in px at 512: colour travels a few to ~15 px over a border."""
    amount: Range = (0.5, 1.0)
    """Mix of blurred chroma into the original chroma."""


class ColourBleed(Degradation):
    """Blur chroma only (luma kept): lip red onto skin, hair colour into the forehead."""

    Params = ColourBleedParams

    def sample(self, rng, ctx):
        p = self.params
        return {"sigma": uniform(rng, p.sigma), "amount": uniform(rng, p.amount)}

    def render(self, img, ctx, s, rng):
        H, W = ctx.shape
        sigma = max(ctx.px(s["sigma"]), 0.5)
        f = max(1, int(sigma // 2))  # chroma is low-frequency: blur it on a coarser grid
        small = R.area_down(img, f)  # [3, h, w]
        k = K.gaussian_kernel(sigma / f)
        chroma = R.resize_bilinear(K.sep_conv(small - K.luma(small), k, k), H, W)  # [3, H, W]
        chroma += K.luma(img)  # original luma + blurred chroma (LUMA sums to 1: luma is kept)
        return K.blend(img, chroma, np.full((H, W), s["amount"], np.float32))


@dataclass(frozen=True)
class NoiseParams(StepParams):
    prob: float = 0.8
    """Nearly always: sorting/alpha-blending errors leave fine noise in most renders."""
    sigma: Range = (2.0, 8.0)
    """Luma noise std on the 0-255 scale: visible but below the augmentation's 5-10 boost."""
    chroma: Range = (0.2, 0.6)
    """Chroma noise std relative to luma noise (at half resolution: coarser blotches)."""
    grain: Range = (0.0, 0.8)
    """Noise correlation sigma in px at 512: sub-pixel splats give slightly clumped grain."""


class Noise(Degradation):
    """Gaussian luma grain plus coarser chroma noise, std kept after the grain blur."""

    Params = NoiseParams

    def sample(self, rng, ctx):
        p = self.params
        return {"sigma": uniform(rng, p.sigma), "chroma": uniform(rng, p.chroma), "grain": uniform(rng, p.grain)}

    def render(self, img, ctx, s, rng):
        H, W = ctx.shape
        n = K.normal_f32(rng, (H, W))  # [H, W] luma grain
        g = ctx.px(s["grain"])
        if g >= 0.3:
            k = K.gaussian_kernel(g)
            n = K.sep_conv(n, k, k) / np.float32(np.square(k).sum())  # restore unit std
        c = R.resize_bilinear(K.normal_f32(rng, (2, max(2, H // 2), max(2, W // 2))), H, W)  # [2, H, W]
        sig = s["sigma"] / 255.0
        coef = np.concatenate([np.ones((3, 1)), s["chroma"] * _CHROMA_AXES.T], axis=1) * sig  # [3, 3]
        return K.mix_planes(img, np.concatenate([n[None], c]), coef)


@dataclass(frozen=True)
class DesaturateParams(StepParams):
    prob: float = 0.5
    """Half the pairs: low-order SH underfits saturated colour (lips, irises)."""
    amount: Range = (0.1, 0.4)
    """Fraction of the way to grey; the augmentation adds another 5-15% on top."""


class Desaturate(Degradation):
    """Lerp towards luma: washed-out colour."""

    Params = DesaturateParams

    def sample(self, rng, ctx):
        return {"amount": uniform(rng, self.params.amount)}

    def render(self, img, ctx, s, rng):
        g = K.luma(img)
        return img + np.float32(s["amount"]) * (g - img)


@dataclass(frozen=True)
class ShadingShiftParams(StepParams):
    prob: float = 0.5
    """Half the pairs: view-dependent colour is only wrong away from training views."""
    brightness: Range = (-0.06, 0.06)
    """Global offset (about +-15 on 0-255): exposure mismatch of the splat fit."""
    gain: Range = (0.92, 1.08)
    """Per-channel gain: a colour cast."""
    ramp: Range = (0.0, 0.10)
    """Relative gain change across the crop along a random direction, per channel:
    a degree-1 spherical-harmonic error seen through the face's normals."""

    _signed = ("brightness",)


class ShadingShift(Degradation):
    """Brightness offset plus per-channel gain with a linear spatial ramp."""

    Params = ShadingShiftParams

    def sample(self, rng, ctx):
        p = self.params
        return {
            "brightness": uniform(rng, p.brightness),
            "gain": [uniform(rng, p.gain) for _ in range(3)],
            "ramp": [uniform(rng, p.ramp) for _ in range(3)],
            "phi": float(rng.uniform(0, 2 * math.pi)),
        }

    def render(self, img, ctx, s, rng):
        H, W = ctx.shape
        half = 0.5 * min(H, W)
        ry = (np.arange(H, dtype=np.float32) + 0.5 - H / 2) * np.float32(math.sin(s["phi"]) / half)
        rx = (np.arange(W, dtype=np.float32) + 0.5 - W / 2) * np.float32(math.cos(s["phi"]) / half)
        ramp = ry[:, None] + rx[None, :]  # [H, W], about [-1.4, 1.4]
        out = np.empty_like(img)
        for c in range(3):
            gain_map = np.float32(s["gain"][c]) * (1.0 + np.float32(s["ramp"][c]) * ramp)
            out[c] = img[c] * gain_map + np.float32(s["brightness"])
        return out
