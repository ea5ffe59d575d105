"""The contract every degradation step and augmentation follows.

A degradation is a class with a typed ``Params`` dataclass and three methods:
``sample`` draws this image's random parameters (JSON-able, they go into the
pairs manifest), ``render`` produces the *full-strength* degraded image, and
``apply`` lerps the two per pixel by a weight map. Keeping the blend outside
``render`` is what lets one image carry region strengths (mouth 0.9 ... skin
0.4) and patchy variation masks without any step knowing about regions.

Images inside the package are planar float32 ``[3, H, W]`` in [0, 1] (see
``kernels.py`` for why); ``pipeline.degrade`` converts from ``[H, W, 3]``.
Pixel sizes in params are for a 512 px crop and scale with ``ctx.scale``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from fairsplat.degrade import kernels as K
from fairsplat.labels import LABEL

Range = tuple[float, float]
REFERENCE_SIZE = 512  # px; every pixel-valued param is given at this crop size


class DegradeInputError(ValueError):
    """An input the degrade stage must reject and record, not crash on.

    ``reason`` is a stable short code for the rejects table: ``no_mask``,
    ``mask_size_mismatch``, ``bad_image`` or ``bad_labels``.
    """

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class StepParams:
    """Base of every step/augmentation params dataclass.

    Validation is generic: ``prob`` must be a probability and every
    ``tuple[float, float]`` field an ordered, finite (lo, hi) range. A bad value
    raises ValueError naming ``Class.field`` (PEFT-style ``__post_init__``).
    """

    prob: float = 1.0
    """Probability the step fires on a given pair; subclasses set their own."""

    def __post_init__(self) -> None:
        name = type(self).__name__
        if not (0.0 <= self.prob <= 1.0):
            raise ValueError(f"{name}.prob: {self.prob} is not in [0, 1]")
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple) and len(v) == 2 and all(isinstance(a, (int, float)) for a in v):
                lo, hi = v
                if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                    raise ValueError(f"{name}.{f.name}: range {v} must be finite with lo <= hi")
                if lo < 0 and f.name not in self._signed:
                    raise ValueError(f"{name}.{f.name}: range {v} must be >= 0")

    _signed: ClassVar[tuple[str, ...]] = ()  # range fields allowed to go negative


def uniform(rng: np.random.Generator, r: Range) -> float:
    """One draw from a (lo, hi) range as a plain float (JSON-able for the manifest)."""
    return float(rng.uniform(r[0], r[1])) if r[1] > r[0] else float(r[0])


@dataclass
class Context:
    """Per-image facts derived from the label map, shared by all steps.

    Why cached properties: only some steps need the silhouette, and it costs
    a blur over the full image; ``make_pairs`` shares one Context across pairs.
    """

    labels: np.ndarray  # [H, W] uint8 CelebAMask-HQ ids
    scale: float = field(init=False)  # crop size / 512

    def __post_init__(self) -> None:
        self.scale = min(self.labels.shape) / REFERENCE_SIZE

    @property
    def shape(self) -> tuple[int, int]:
        return self.labels.shape  # (H, W)

    def px(self, v: float) -> float:
        """A 512-px-reference length in this crop's pixels."""
        return v * self.scale

    @cached_property
    def foreground(self) -> np.ndarray:  # [H, W] bool, anything but background
        return self.labels != LABEL["background"]

    @cached_property
    def silhouette(self) -> np.ndarray:  # [H, W] float32 in [0, 1]
        """Proximity to the head/background border, where splat halos live."""
        return _proximity(_boundary(self.foreground.astype(np.uint8)), self.px(4.0))


def _boundary(lab: np.ndarray) -> np.ndarray:  # [H, W] -> [H, W] float32 {0, 1}
    b = np.zeros(lab.shape, np.float32)
    dv = lab[1:] != lab[:-1]
    dh = lab[:, 1:] != lab[:, :-1]
    b[1:] += dv
    b[:-1] += dv
    b[:, 1:] += dh
    b[:, :-1] += dh
    return np.minimum(b, 1.0)


def _proximity(boundary: np.ndarray, sigma: float) -> np.ndarray:
    """Blurred boundary normalised so a pixel on a straight edge reads ~1."""
    k = K.gaussian_kernel(max(sigma, 0.5))
    # A straight 2-px-wide edge blurred across keeps about 2 * k.max() of its mass.
    p = K.sep_conv(boundary, k, k) / min(1.0, 2.0 * float(k.max()))
    return np.clip(p, 0.0, 1.0)


class Degradation:
    """Base class: subclasses set ``Params`` and implement ``sample`` and ``render``."""

    Params: ClassVar[type[StepParams]] = StepParams

    def __init__(self, params: StepParams | None = None):
        self.params = params if params is not None else self.Params()
        if not isinstance(self.params, self.Params):
            raise TypeError(f"{type(self).__name__}: params must be {self.Params.__name__}")

    def sample(self, rng: np.random.Generator, ctx: Context) -> dict[str, Any]:
        """Draw this application's parameters (plain Python values)."""
        raise NotImplementedError

    def render(self, img: np.ndarray, ctx: Context, s: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        """Full-strength degraded image. [3, H, W] -> [3, H, W], may leave [0, 1]."""
        raise NotImplementedError

    def summary(self, s: dict[str, Any]) -> dict[str, Any]:
        """The manifest's view of sampled params: scalars and short lists only.

        Why drop per-blob/per-part lists: they would make each manifest row
        kilobytes long, and the seed already reproduces them exactly.
        """
        keep = {}
        for k, v in s.items():
            if isinstance(v, list) and (len(v) > 3 or any(isinstance(e, (dict, list)) for e in v)):
                continue
            keep[k] = v
        return keep

    def apply(
        self,
        img: np.ndarray,  # [3, H, W] float32 in [0, 1]
        weight: np.ndarray,  # [H, W] float32 in [0, 1]
        ctx: Context,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, dict[str, Any]]:  # ([3, H, W] float32 in [0, 1], sampled params)
        """Sample, render and blend by ``weight``; weight 0 everywhere is an exact no-op."""
        assert img.ndim == 3 and img.shape[0] == 3 and img.dtype == np.float32, (img.shape, img.dtype)
        assert weight.shape == img.shape[1:], (weight.shape, img.shape)
        s = self.sample(rng, ctx)
        if not weight.max() > 0:
            return img.copy(), s
        y = self.render(img, ctx, s, rng)
        if y.dtype != np.float32 or not y.flags.c_contiguous or np.shares_memory(y, img):
            y = np.array(y, np.float32, order="C")  # never blend into the caller's image
        return K.blend(img, y, weight, out=y), s


def image_seed(image_id: str, global_seed: int) -> np.random.SeedSequence:
    """The seed of one clean image: stable across runs, machines and shard layouts.

    Why a hash of the id (not a running counter): resharding or filtering the
    dataset must not change any other image's pairs.
    """
    digest = hashlib.blake2b(image_id.encode("utf-8"), digest_size=16).digest()
    return np.random.SeedSequence([int(global_seed), int.from_bytes(digest, "little")])


def child_seed(parent: np.random.SeedSequence, key: int | str) -> np.random.SeedSequence:
    """A named child stream: pair index or step name. Independent of siblings' use.

    Why not ``spawn``: spawn is stateful (the n-th call differs), while a step
    keyed by its name draws the same numbers whether or not other steps fired.
    """
    if isinstance(key, str):
        key = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    return np.random.SeedSequence(parent.entropy, spawn_key=tuple(parent.spawn_key) + (int(key),))


def as_seed(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    return seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(int(seed))


def rng_for(parent: np.random.SeedSequence, key: int | str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(child_seed(parent, key)))
