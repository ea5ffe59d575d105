"""Cameras, lighting and backgrounds of SynthHeads.

Lighting is ambient plus one directional light, evaluated per Gaussian from the
normal of its bound triangle (Lambert). Presets (``LIGHTING``):

``default``  the key light near the camera axis, the sum normalised so a surface
             facing the light gets its albedo back: the measured skin ITA then
             matches the ground truth (see ``ita_gt_consistency``). Colour
             temperature varies mildly (a few % R/B gain); exposure is metered on
             the face.
``hard``     what uncontrolled photos do to skin colour, with the albedo (and so the
             ground-truth ITA) unchanged: a coloured illuminant, a blackbody from
             2,700 K (tungsten) to 7,500 K (shade) against a camera white-balanced
             for D65 (no auto white balance); an exposure error of -1.5 to +1.5 EV
             after the face metering; a strong side light, 40-85 degrees off the
             camera axis, over a weak ambient (0.15-0.35). Issue 16's test of
             illumination-normalised ITA.
``studio``   the ``hard`` preset's light drawn ONCE per identity (a capture session: every frame and camera
             of the identity under the same light, as in a multi-view rig), so cross-camera pairs agree on
             the light while identities differ from the default look. bench/uv_ablation.py's phase 2
             from another domain (seed 003's NeRSemble stage).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from fairsplat.faces.light import illuminant_gains, planck_xy  # noqa: F401  (planck_xy re-exported)


@dataclass(frozen=True)
class Light:
    ambient: float  # fraction of albedo lit by the ambient term
    direction: tuple[float, float, float]  # unit vector towards the light, head frame
    tint: tuple[float, float, float]  # RGB gain of the light colour (colour temperature)
    exposure: float = 1.0  # linear gain after the face metering (2 ** EV); 1 = metered exactly
    cct: float | None = None  # the illuminant's colour temperature, K (hard preset), for the manifest

    def shade(self, normals: torch.Tensor) -> torch.Tensor:  # [G, 3] -> [G, 3] RGB gain
        d = torch.tensor(self.direction, dtype=normals.dtype)
        lambert = (normals @ d).clamp_min(0.0)  # [G]
        gain = self.ambient + (1.0 - self.ambient) * lambert
        return gain[:, None] * torch.tensor(self.tint, dtype=normals.dtype)


def sample_light(rng: np.random.Generator, max_angle_deg: float, temperature_jitter: float) -> Light:
    """Key light within ``max_angle_deg`` of frontal; tint = (1+t, 1, 1-t)."""
    theta = math.radians(rng.uniform(0.0, max_angle_deg))
    phi = rng.uniform(0.0, 2 * math.pi)
    direction = (math.sin(theta) * math.cos(phi), math.sin(theta) * math.sin(phi), math.cos(theta))
    t = float(rng.uniform(-temperature_jitter, temperature_jitter))
    return Light(ambient=float(rng.uniform(0.55, 0.7)), direction=direction, tint=(1.0 + t, 1.0, 1.0 - t))


LIGHTING = ("default", "hard", "studio")
HARD_CCT = (2700.0, 7500.0)  # K: tungsten .. shade
HARD_EV = (-1.5, 1.5)
HARD_ANGLE = (40.0, 85.0)  # degrees off the camera axis
HARD_AMBIENT = (0.15, 0.35)


def sample_hard_light(rng: np.random.Generator) -> Light:
    """The ``hard`` preset (module doc): CCT log-uniform, EV uniform, key light 40-85 deg off axis."""
    cct = float(np.exp(rng.uniform(np.log(HARD_CCT[0]), np.log(HARD_CCT[1]))))
    theta = math.radians(rng.uniform(*HARD_ANGLE))
    phi = rng.uniform(0.0, 2 * math.pi)
    direction = (math.sin(theta) * math.cos(phi), math.sin(theta) * math.sin(phi), math.cos(theta))
    ev = float(rng.uniform(*HARD_EV))
    return Light(ambient=float(rng.uniform(*HARD_AMBIENT)), direction=direction, tint=illuminant_gains(cct),
                 exposure=float(2.0**ev), cct=cct)  # fmt: skip


def light_for(preset: str, rng: np.random.Generator, max_angle_deg: float, temperature_jitter: float) -> Light:
    """The preset's light; ``default`` draws exactly what :func:`sample_light` always drew (same bytes)."""
    if preset == "default":
        return sample_light(rng, max_angle_deg, temperature_jitter)
    if preset in ("hard", "studio"):  # studio: the caller passes the identity's stream (dataset.render_light)
        return sample_hard_light(rng)
    raise ValueError(f"unknown lighting preset {preset!r} ({', '.join(LIGHTING)})")


def orbit_eye(centre: torch.Tensor, distance: float, yaw_deg: float, pitch_deg: float) -> torch.Tensor:
    """Camera position on a sphere around ``centre`` (+Z = frontal, +Y = up)."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    offset = torch.tensor([math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)])
    return centre + distance * offset


def background(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:  # [H, W, 3] float32
    """Flat, gradient or textured (smooth noise) background."""
    base = rng.uniform(0.15, 0.85, 3)
    if kind == "flat":
        return np.broadcast_to(base, (size, size, 3)).astype(np.float32).copy()
    if kind == "gradient":
        other = rng.uniform(0.15, 0.85, 3)
        angle = rng.uniform(0, 2 * math.pi)
        y, x = np.mgrid[0:size, 0:size] / max(size - 1, 1)
        t = ((x - 0.5) * math.cos(angle) + (y - 0.5) * math.sin(angle)) / math.sqrt(0.5) + 0.5
        return (base * (1 - t[..., None]) + other * t[..., None]).clip(0, 1).astype(np.float32)
    if kind == "textured":
        from scipy.ndimage import gaussian_filter, zoom

        coarse = rng.normal(0.0, 1.0, (max(size // 8, 2), max(size // 8, 2), 3))
        noise = zoom(gaussian_filter(coarse, (1.0, 1.0, 0)), (size / coarse.shape[0], size / coarse.shape[1], 1), order=1)
        return (base + 0.12 * noise[:size, :size]).clip(0, 1).astype(np.float32)
    raise ValueError(f"unknown background kind {kind!r} (flat, gradient, textured)")
