"""Pinhole cameras in the OpenCV convention (x right, y down, z forward), as gsplat expects.

Why OpenCV: gsplat's ``viewmats`` are world-to-camera matrices in this
convention, and so are COLMAP's and most face trackers'. Everything here is
batched over leading dimensions so a whole orbit is one call.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _as_tensor(x: Tensor | tuple | list, like: Tensor | None = None) -> Tensor:
    if isinstance(x, Tensor):
        return x.to(torch.float32) if like is None else x.to(like)
    return torch.as_tensor(x, dtype=torch.float32 if like is None else like.dtype)


def look_at(
    eye: Tensor | tuple,  # [..., 3] camera centre in world
    target: Tensor | tuple,  # [..., 3] point the optical axis passes through
    up: Tensor | tuple = (0.0, 1.0, 0.0),  # [..., 3] world "up"; the image y axis points opposite to it
) -> Tensor:  # [..., 4, 4] world-to-camera
    """World-to-camera matrix looking from ``eye`` at ``target``, OpenCV axes.

    Rows of the rotation are the camera axes in world coordinates: right =
    forward x up, down = forward x right, forward = normalised (target - eye).
    """
    eye = _as_tensor(eye)
    target, up = _as_tensor(target, eye), _as_tensor(up, eye)
    eye, target, up = torch.broadcast_tensors(eye, target, up)
    fwd = torch.nn.functional.normalize(target - eye, dim=-1)
    right = torch.linalg.cross(fwd, up, dim=-1)
    if bool((right.norm(dim=-1) < 1e-8).any()):
        raise ValueError("look_at: `up` is parallel to the viewing direction")
    right = torch.nn.functional.normalize(right, dim=-1)
    down = torch.linalg.cross(fwd, right, dim=-1)
    rot = torch.stack([right, down, fwd], dim=-2)  # [..., 3, 3] world -> camera
    view = torch.zeros(eye.shape[:-1] + (4, 4), dtype=eye.dtype)
    view[..., :3, :3] = rot
    view[..., :3, 3] = -(rot @ eye[..., None])[..., 0]
    view[..., 3, 3] = 1.0
    return view


def focal_from_fov(fov_deg: float, size: int) -> float:
    """Focal length in pixels for a field of view spanning ``size`` pixels."""
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"fov_deg: expected in (0, 180), got {fov_deg}")
    return 0.5 * size / math.tan(math.radians(fov_deg) / 2.0)


def intrinsics(width: int, height: int, *, fov_deg: float | None = None, focal: float | None = None) -> Tensor:
    """K [3, 3] with square pixels and the principal point at the image centre.

    Give exactly one of ``fov_deg`` (horizontal field of view) or ``focal``
    (pixels). Keyword-only, because the two are easy to confuse.
    """
    if (fov_deg is None) == (focal is None):
        raise ValueError("intrinsics: give exactly one of fov_deg or focal")
    f = focal_from_fov(fov_deg, width) if fov_deg is not None else float(focal)
    if f <= 0:
        raise ValueError(f"focal: expected > 0, got {f}")
    return torch.tensor([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def orbit(
    n: int,
    radius: float,
    target: tuple = (0.0, 0.0, 0.0),
    elevation_deg: float = 0.0,
    span_deg: float = 360.0,
    start_deg: float = 0.0,
) -> Tensor:  # [n, 4, 4]
    """n cameras on a horizontal circle around ``target`` (world y up), all looking at it.

    Azimuth 0 puts the camera on +z looking towards -z (a face looking along
    +z is seen frontally).
    """
    az = torch.deg2rad(start_deg + torch.arange(n, dtype=torch.float32) * (span_deg / max(n, 1)))  # [n]
    el = math.radians(elevation_deg)
    offset = torch.stack([torch.sin(az) * math.cos(el), torch.full_like(az, math.sin(el)), torch.cos(az) * math.cos(el)], -1)
    tgt = torch.tensor(target, dtype=torch.float32)
    return look_at(tgt + radius * offset, tgt.expand(n, 3))
