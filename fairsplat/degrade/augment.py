"""Seed 001's training-time augmentations of the degraded input (never the target).

They run after the 14 steps, over the whole crop (weight 1 everywhere), each
with its own firing probability, exactly as seed 001's table:

| augmentation | probability | details |
|---|---|---|
| catastrophic blur blobs | 10% | 1-4 large blur patches (total geometry failure) |
| noise boost | 15% | extra Gaussian noise, std 5-10 on 0-255 |
| brightness shift | 10% | +-10 on 0-255 |
| extra desaturation | 10% | another 5-15% towards grey |
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fairsplat.degrade import kernels as K
from fairsplat.degrade.core import Degradation, Range, StepParams, uniform


@dataclass(frozen=True)
class BlurBlobsParams(StepParams):
    prob: float = 0.10
    """Seed 001: 10%."""
    count: tuple[int, int] = (1, 4)
    """Seed 001: 1-4 large blur patches."""
    radius: Range = (0.08, 0.2)
    """Patch sigma (long axis) as a fraction of the crop side: 'large' = a feature or more."""
    sigma: Range = (8.0, 16.0)
    """Blur sigma in px at 512 inside a patch: detail is gone, only colour remains."""


class BlurBlobs(Degradation):
    """A few large soft-edged patches of heavy blur: total local geometry failure."""

    Params = BlurBlobsParams

    def sample(self, rng, ctx):
        p = self.params
        H, W = ctx.shape
        n = int(rng.integers(p.count[0], p.count[1] + 1))
        patches = [
            {
                "y": float(rng.uniform(0, H)), "x": float(rng.uniform(0, W)),  # anywhere: region-blind
                "r": uniform(rng, p.radius), "aspect": float(rng.uniform(1.0, 2.0)),
                "theta": float(rng.uniform(0, math.pi)),
            }
            for _ in range(n)
        ]  # fmt: skip
        return {"count": n, "sigma": uniform(rng, p.sigma), "patches": patches}

    def render(self, img, ctx, s, rng):
        blurred = K.gaussian_blur(img, ctx.px(s["sigma"]))  # [3, H, W]
        side = min(ctx.shape)
        ell = [(b["y"], b["x"], b["r"] * side, b["r"] * side / b["aspect"], b["theta"], 1.0) for b in s["patches"]]
        alpha = np.zeros((1,) + ctx.shape, np.float32)  # [1, H, W] patch coverage
        K.composite_ellipses(alpha, np.asarray(ell), np.ones((len(ell), 1)))
        alpha = np.minimum(alpha[0] * 1.6, 1.0)  # flat-topped: the core of a patch is fully blurred
        return img + alpha * (blurred - img)


@dataclass(frozen=True)
class NoiseBoostParams(StepParams):
    prob: float = 0.15
    """Seed 001: 15%."""
    sigma: Range = (5.0, 10.0)
    """Seed 001: strength 5-10, read as Gaussian std on the 0-255 scale, per channel."""


class NoiseBoost(Degradation):
    """Extra i.i.d. Gaussian noise on top of the step noise."""

    Params = NoiseBoostParams

    def sample(self, rng, ctx):
        return {"sigma": uniform(rng, self.params.sigma)}

    def render(self, img, ctx, s, rng):
        n = K.normal_f32(rng, img.shape)  # [3, H, W]
        return img + np.float32(s["sigma"] / 255.0) * n


@dataclass(frozen=True)
class BrightnessShiftParams(StepParams):
    prob: float = 0.10
    """Seed 001: 10%."""
    shift: Range = (-10.0, 10.0)
    """Seed 001: +-10 values on the 0-255 scale, uniform."""

    _signed = ("shift",)


class BrightnessShift(Degradation):
    """A global additive brightness offset."""

    Params = BrightnessShiftParams

    def sample(self, rng, ctx):
        return {"shift": uniform(rng, self.params.shift)}

    def render(self, img, ctx, s, rng):
        return img + np.float32(s["shift"] / 255.0)


@dataclass(frozen=True)
class ExtraDesaturationParams(StepParams):
    prob: float = 0.10
    """Seed 001: 10%."""
    amount: Range = (0.05, 0.15)
    """Seed 001: an additional 5-15% colour washout."""


class ExtraDesaturation(Degradation):
    """Another lerp towards luma, over the whole crop."""

    Params = ExtraDesaturationParams

    def sample(self, rng, ctx):
        return {"amount": uniform(rng, self.params.amount)}

    def render(self, img, ctx, s, rng):
        return img + np.float32(s["amount"]) * (K.luma(img) - img)
