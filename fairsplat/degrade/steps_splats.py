"""Steps that add stray splats: individual Gaussians that are visible as themselves.

``splat_blobs`` draws soft elliptical blobs: "popping" splats in the local
colour and translucent "floaters" in a colour from elsewhere. ``needles``
draws the thin, long spikes that degenerate (near-1-D) Gaussians render as.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fairsplat.degrade import kernels as K
from fairsplat.degrade import resample as R
from fairsplat.degrade.core import Degradation, Range, StepParams, uniform


@dataclass(frozen=True)
class SplatBlobsParams(StepParams):
    prob: float = 0.5
    """Popping splats are common in novel views but not in every frame."""
    count: tuple[int, int] = (20, 70)
    """Blobs per crop (resolution-independent: their radius scales with the crop)."""
    radius: Range = (3.0, 12.0)
    """Blob sigma along its long axis in px at 512: single large splats."""
    aspect: Range = (1.0, 3.0)
    """Long/short axis ratio of a blob."""
    opacity: Range = (0.4, 0.9)
    """Peak opacity of a popping blob; splats are rarely fully opaque at the rim."""
    foreign: float = 0.3
    """Fraction of blobs that are floaters: colour from a random other place, half opacity."""
    tint: float = 0.08
    """Std of a per-blob colour offset: a popping splat's SH colour is fitted for
    other views, so it is rarely exactly the local colour."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (0.0 <= self.foreign <= 1.0) or not (1 <= self.count[0] <= self.count[1]) or self.tint < 0:
            raise ValueError("SplatBlobsParams: foreign must be in [0, 1], count 1 <= lo <= hi, tint >= 0")


class SplatBlobs(Degradation):
    """Soft elliptical colour blobs composited over the image (popping splats and floaters)."""

    Params = SplatBlobsParams

    def sample(self, rng, ctx):
        p = self.params
        n = int(rng.integers(p.count[0], p.count[1] + 1))
        H, W = ctx.shape
        blobs = []
        for _ in range(n):
            floater = bool(rng.random() < p.foreign)
            src = [float(rng.uniform(0, H)), float(rng.uniform(0, W))] if floater else None
            blobs.append({
                "y": float(rng.uniform(0, H)), "x": float(rng.uniform(0, W)),
                "r": uniform(rng, p.radius), "aspect": uniform(rng, p.aspect),
                "theta": float(rng.uniform(0, math.pi)),
                "opacity": uniform(rng, p.opacity) * (0.5 if floater else 1.0),
                "src": src, "tint": [float(v) for v in rng.normal(0.0, p.tint, 3)],
            })  # fmt: skip
        return {"count": n, "blobs": blobs}

    def render(self, img, ctx, s, rng):
        out = img.copy()
        f = max(1, round(ctx.px(8.0)))
        small = R.area_down(img, f)  # [3, h, w] local mean colour
        src = np.array([b["src"] if b["src"] is not None else (b["y"], b["x"]) for b in s["blobs"]])  # [n, 2]
        cols = R.sample_bilinear(small, (src[:, 0] + 0.5) / f - 0.5, (src[:, 1] + 0.5) / f - 0.5)  # [3, n]
        cols = cols + np.asarray([b["tint"] for b in s["blobs"]], np.float32).T  # [3, n]
        major = np.maximum([ctx.px(b["r"]) for b in s["blobs"]], 0.7)
        ell = [(b["y"], b["x"], m, m / b["aspect"], b["theta"], b["opacity"]) for b, m in zip(s["blobs"], major)]
        return K.composite_ellipses(out, np.asarray(ell), cols.T)


@dataclass(frozen=True)
class NeedlesParams(StepParams):
    prob: float = 0.3
    """Needles need degenerate Gaussians; anti-spike regularisers make them rarer."""
    count: tuple[int, int] = (6, 24)
    """Needles per crop: a few dozen degenerate splats at most survive training."""
    length: Range = (12.0, 48.0)
    """Spike length in px at 512: needles are long compared with their width."""
    width: Range = (0.35, 0.9)
    """Cross-profile sigma in px at 512: about a pixel wide."""
    opacity: Range = (0.5, 1.0)
    """Peak opacity at the anchor; a needle fades towards its tip."""
    tint: Range = (-0.25, 0.35)
    """Brightness offset of the needle's colour against the anchor: a spike's SH
    colour is fitted edge-on, so it is visibly off, more often brighter."""

    _signed = ("tint",)


class Needles(Degradation):
    """Thin spikes anchored on the surface, in the anchor's (tinted) colour."""

    Params = NeedlesParams

    def sample(self, rng, ctx):
        p = self.params
        n = int(rng.integers(p.count[0], p.count[1] + 1))
        H, W = ctx.shape
        return {
            "count": n,
            "needles": [
                {
                    "y": float(rng.uniform(0, H)), "x": float(rng.uniform(0, W)),
                    "length": uniform(rng, p.length), "width": uniform(rng, p.width),
                    "theta": float(rng.uniform(0, 2 * math.pi)),
                    "opacity": uniform(rng, p.opacity), "tint": uniform(rng, p.tint),
                }
                for _ in range(n)
            ],
        }  # fmt: skip

    def render(self, img, ctx, s, rng):
        out = img.copy()
        for nd in s["needles"]:
            col = np.clip(R.sample_bilinear(img, np.array([nd["y"]]), np.array([nd["x"]])) + nd["tint"], 0, 1)
            _needle(out, nd["y"], nd["x"], ctx.px(nd["length"]), max(ctx.px(nd["width"]), 0.35),
                    nd["theta"], nd["opacity"], col)  # fmt: skip
        return out


def _needle(out, y, x, length, width, theta, opacity, col):
    """Composite one tapered, anti-aliased segment from (y, x) along theta, in place."""
    C, H, W = out.shape
    ey, ex = y + length * math.sin(theta), x + length * math.cos(theta)
    pad = 3.0 * width + 1.0
    y0, y1 = max(0, int(min(y, ey) - pad)), min(H, int(max(y, ey) + pad) + 1)
    x0, x1 = max(0, int(min(x, ex) - pad)), min(W, int(max(x, ex) + pad) + 1)
    if y0 >= y1 or x0 >= x1:
        return
    py = np.arange(y0, y1, dtype=np.float32)[:, None] + np.float32(0.5 - y)  # [h, 1]
    px = np.arange(x0, x1, dtype=np.float32)[None, :] + np.float32(0.5 - x)  # [1, w]
    dy, dx = np.float32(ey - y), np.float32(ex - x)
    t = np.clip((py * dy + px * dx) * np.float32(1.0 / max(dy * dy + dx * dx, 1e-6)), 0.0, 1.0)  # [h, w]
    d2 = (py - t * dy) ** 2 + (px - t * dx) ** 2
    alpha = np.float32(opacity) * (1.0 - np.float32(0.8) * t) * np.exp(d2 * np.float32(-0.5 / width**2))
    patch = out[:, y0:y1, x0:x1]
    patch += alpha * (col.reshape(C, 1, 1) - patch)
