"""Landmark problems with known answers: random FLAME parameters and smooth clips, projected.

Why in ``fairsplat.testing`` (importable, not under tests/): tests (recover known parameters, smoothing) and
``bench/track.py`` (frames per second) need the same problems, and both must
work for any FLAME-format head without rendering a pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from fairsplat.track.camera import default_K
from fairsplat.track.fit import flame_landmarks_2d
from fairsplat.track.landmarks import LandmarkFlame


@dataclass
class Problem:
    shape: Tensor  # [B, S]
    expr: Tensor  # [B, E]
    pose: Tensor  # [B, 15]
    transl: Tensor  # [B, 3] FLAME translation for the track camera (flip_viewmat)
    K: Tensor  # [B, 3, 3]
    landmarks: Tensor  # [B, 68, 2] exact projections, pixels

    def __len__(self) -> int:
        return self.shape.shape[0]


def _distance(model: LandmarkFlame, size: int, fov_deg: float, fill: float) -> float:
    """Camera distance at which the template's landmarks span ``fill`` of the image width."""
    lmk = model(torch.zeros(1, 0), torch.zeros(1, 0), torch.zeros(1, 3 * model.n_joints))[0][0]
    width = float(lmk[:, 0].max() - lmk[:, 0].min())
    return width / fill / (2 * math.tan(math.radians(fov_deg) / 2))


def project_problem(model: LandmarkFlame, shape, expr, pose, transl, K) -> Problem:
    with torch.no_grad():
        return Problem(shape, expr, pose, transl, K, flame_landmarks_2d(model, shape, expr, pose, transl, K))


def random_problem(model: LandmarkFlame, b: int, seed: int = 0, size: int = 256, fov_deg: float = 18.0,
                   rot_deg: float = 25.0, jaw_max: float = 0.3, expr_std: float = 1.0) -> Problem:  # fmt: skip
    """``b`` independent heads: shape, expression ~ N(0, 1), head turned up to ``rot_deg``, jaw open."""
    g = torch.Generator().manual_seed(seed)
    u = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    shape = torch.randn(b, model.n_shape, generator=g)
    expr = expr_std * torch.randn(b, model.n_expr, generator=g)
    pose = torch.zeros(b, 15)
    pose[:, 0:3] = math.radians(rot_deg) * (2 * u(b, 3) - 1) * torch.tensor([0.6, 1.0, 0.3])
    pose[:, 6] = jaw_max * u(b)
    dist = _distance(model, size, fov_deg, 0.45)
    transl = torch.stack([0.01 * (2 * u(b) - 1), 0.01 * (2 * u(b) - 1), -dist * (1 + 0.1 * (2 * u(b) - 1))], 1)
    return project_problem(model, shape, expr, pose, transl, default_K(size, size, fov_deg).expand(b, 3, 3).clone())


def smooth_clip(model: LandmarkFlame, t: int, seed: int = 0, size: int = 256, fov_deg: float = 18.0) -> Problem:
    """One person talking for ``t`` frames: one shape, slow sinusoidal head, jaw and expression motion."""
    g = torch.Generator().manual_seed(seed)
    time = torch.arange(t, dtype=torch.float32)[:, None] / 10.0  # [T, 1] ~10 frames per cycle
    phase = 2 * math.pi * torch.rand(1, 8, generator=g)
    shape = torch.randn(1, model.n_shape, generator=g).expand(t, -1).clone()
    expr = 0.8 * torch.sin(2 * math.pi * 0.5 * time + 2 * math.pi * torch.rand(1, model.n_expr, generator=g))
    pose = torch.zeros(t, 15)
    wave = torch.sin(2 * math.pi * 0.4 * time + phase[:, :3])  # [T, 3]
    pose[:, 0:3] = math.radians(15.0) * wave * torch.tensor([0.5, 1.0, 0.2])
    pose[:, 6] = 0.15 * (1 + torch.sin(2 * math.pi * 0.6 * time[:, 0] + phase[0, 3]))
    dist = _distance(model, size, fov_deg, 0.45)
    transl = torch.cat([0.005 * torch.sin(2 * math.pi * 0.3 * time + phase[:, 4:6]), torch.full((t, 1), -dist)], 1)
    return project_problem(model, shape, expr, pose, transl, default_K(size, size, fov_deg).expand(t, 3, 3).clone())


def problem_items(p: Problem, clip: str | None = None, status: list[str] | None = None, subject: str | None = None):
    """A problem as tracker ``Items`` (one clip ``clip`` in frame order, or stills); ``status`` marks failed rows."""
    import numpy as np

    from fairsplat.track.sources import OK, Items

    n = len(p)
    status = list(status or [OK] * n)
    targets = p.landmarks.numpy().astype(np.float32).copy()
    bad = np.array([s != OK for s in status])
    targets[bad] = np.nan
    ids = [f"{clip or 'img'}_{i:03d}" for i in range(n)]
    return Items(
        ids=ids, source="synthetic", subject=[subject or clip or i for i in ids], sequence=[clip] * n,
        frame=np.arange(n, dtype=np.int64), targets=targets, visible=~bad[:, None].repeat(68, 1),
        K=p.K.numpy().astype(np.float32), status=status, n_faces=np.where(bad, 0, 1).astype(np.int64),
        fitzpatrick=[None] * n, paths=[None] * n,
    )  # fmt: skip
