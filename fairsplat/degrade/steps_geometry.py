"""Steps that break geometry: where splats sit at the wrong depth, shape or opacity.

``depth_tear`` (parts shifted by their own parallax: teeth/lips/tongue tear
apart), ``facet`` (a coarse triangulated surface: the simplified nose) and
``alpha_holes`` (transparent splats let the backdrop through, halos at the
silhouette).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fairsplat.degrade import resample as R
from fairsplat.degrade.core import Context, Degradation, Range, StepParams, uniform
from fairsplat.degrade.masks import smooth_noise
from fairsplat.labels import NUM_CLASSES


@dataclass(frozen=True)
class DepthTearParams(StepParams):
    prob: float = 0.4
    """Less often than blur: depth errors need a view away from the training views."""
    shift: Range = (1.0, 4.0)
    """Parallax in px at 512 per parsed part: a few px, like a small depth error."""
    wobble: Range = (0.2, 0.6)
    """Smooth within-part displacement, relative to ``shift``: parts are not rigid."""
    patches: Range = (3.0, 8.0)
    """Features of the wobble field across the crop."""


class DepthTear(Degradation):
    """Each parsed part is displaced by its own parallax vector, plus a smooth wobble.

    The displacement is discontinuous at label borders, so content is torn or
    doubled exactly where depth jumps: teeth against lips, lids against eyes.
    """

    Params = DepthTearParams

    def sample(self, rng, ctx):
        p = self.params
        ang = rng.uniform(0, 2 * math.pi, NUM_CLASSES)
        mag = rng.uniform(0.5, 1.0, NUM_CLASSES)
        return {
            "shift": uniform(rng, p.shift),
            "wobble": uniform(rng, p.wobble),
            "patches": uniform(rng, p.patches),
            "part_dir": [[round(float(m * math.sin(a)), 4), round(float(m * math.cos(a)), 4)]
                         for a, m in zip(ang, mag)],  # (dy, dx) per label id
        }

    def render(self, img, ctx, s, rng):
        A = max(ctx.px(s["shift"]), 0.75)
        v = np.asarray(s["part_dir"], np.float32)  # [NUM_CLASSES, 2] unit-ish (dy, dx) per label
        lab = ctx.labels  # ids < NUM_CLASSES (checked on input)
        wy = smooth_noise(ctx.shape, rng, s["patches"])  # [H, W]
        wx = smooth_noise(ctx.shape, rng, s["patches"])
        return R.warp_parts(img, lab, v, wy, wx, A, s["wobble"])


@dataclass(frozen=True)
class FacetParams(StepParams):
    prob: float = 0.4
    """Geometric simplification is a steady artifact but weaker than blur overall."""
    cell: Range = (6.0, 16.0)
    """Triangle size in px at 512: a low-poly nose (~60 px tall) has a few dozen facets."""


class Facet(Degradation):
    """Low-poly shading: the image re-rendered as a rotated, jittered triangle mesh.

    Vertex colours come from a prefiltered copy and are interpolated linearly
    per triangle, so smooth curvature becomes flat facets with crease lines:
    seed 001's "geometric simplification" of the nose.
    """

    Params = FacetParams

    def sample(self, rng, ctx):
        return {
            "cell": uniform(rng, self.params.cell),
            "theta": float(rng.uniform(0, math.pi / 2)),
            "jitter": [float(rng.uniform()), float(rng.uniform())],
        }

    def render(self, img, ctx, s, rng):
        H, W = ctx.shape
        cell = max(ctx.px(s["cell"]), 4.0)
        f = max(1, int(cell // 3))
        small = R.area_down(img, f)  # [3, h, w] prefiltered vertex source
        # Rasterised at half resolution: facets are >= 2 px there, and the
        # upsample only softens crease lines by half a pixel, at a quarter of the cost.
        h, w = (H + 1) // 2, (W + 1) // 2
        ys, xs, oy, ox = R.facet_grid(h, w, cell / 2, s["theta"], *s["jitter"])  # [gh, gw] each
        ys, xs = 2 * ys + 0.5, 2 * xs + 0.5  # vertex positions in full-resolution pixels
        verts = R.sample_bilinear(small, (ys + 0.5) / f - 0.5, (xs + 0.5) / f - 0.5)  # [3, gh, gw]
        return R.resize_bilinear(R.facet(verts, h, w, cell / 2, s["theta"], oy, ox), H, W)


@dataclass(frozen=True)
class AlphaHolesParams(StepParams):
    prob: float = 0.4
    """Transparency errors show in some renders, mostly at the silhouette."""
    halo: Range = (0.3, 0.8)
    """Opacity lost right at the head/background border (the halo)."""
    holes: Range = (0.03, 0.25)
    """Fraction of the crop covered by interior holes."""
    hole_opacity: Range = (0.3, 0.8)
    """How much backdrop shows through a hole: splats thin out, rarely vanish."""
    patches: Range = (4.0, 12.0)
    """Features of the hole field across the crop: holes are blotches, not pinpricks."""


class AlphaHoles(Degradation):
    """Missing/under-opaque splats reveal the backdrop: silhouette halo plus interior holes."""

    Params = AlphaHolesParams

    def sample(self, rng, ctx):
        p = self.params
        return {
            "halo": uniform(rng, p.halo),
            "holes": uniform(rng, p.holes),
            "hole_opacity": uniform(rng, p.hole_opacity),
            "patches": uniform(rng, p.patches),
        }

    def render(self, img, ctx, s, rng):
        bg = backdrop_colour(img, ctx)  # [3, 1, 1]
        field = smooth_noise(ctx.shape, rng, s["patches"])  # [H, W]
        thresh = np.quantile(field[::4, ::4], 1.0 - s["holes"])
        soft = 0.15 * float(field[::4, ::4].std()) + 1e-6
        holes = np.clip((field - thresh) / soft, 0.0, 1.0) * np.float32(s["hole_opacity"])
        alpha = np.maximum(holes, np.float32(s["halo"]) * ctx.silhouette)  # [H, W]
        return img + alpha * (bg - img)


def backdrop_colour(img: np.ndarray, ctx: Context) -> np.ndarray:
    """Mean background colour of this crop; curate's mid-grey if it has none. -> [3, 1, 1]

    Averaged on a 4x coarser grid (cells fully background only): a mean does
    not need every pixel, and boolean indexing of a 512 px crop costs ~3 ms.
    """
    bg = R.area_down((~ctx.foreground).astype(np.float32), 4) >= 1.0  # [h, w]
    if bg.sum() < 4:
        return np.full((3, 1, 1), 0.5, np.float32)
    return R.area_down(img, 4)[:, bg].mean(axis=1).astype(np.float32)[:, None, None]
