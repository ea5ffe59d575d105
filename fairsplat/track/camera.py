"""Cameras for tracking: projection, rotations and a closed-form rigid start.

Conventions. The head lives in FLAME's frame (metres, +Y up, +Z out of the
face). Cameras are pinhole, OpenCV axes (x right, y down, z forward), pixel
centres at +0.5 (the convention of SynthHeads' landmarks). A fitted track
renders with ``viewmat = FLIP_VIEW`` (the fixed 180 degree turn about x that
makes a FLAME face look into an OpenCV camera) and the FLAME ``transl``, so
``FlameLayer(shape, expr, pose, transl)`` + ``viewmat`` + ``K`` reproduces the
image: downstream stages need no tracker-specific camera code.

Why a closed-form start: gradient descent from a frontal guess lands in the
wrong basin for yawed or pitched heads (a 30 degree turn plus 20 degree pitch
is common in SynthHeads' views). A weighted affine fit of the template
landmarks, refined by POSIT-style perspective corrections, gets the rotation
within a few degrees in a handful of tiny batched linear solves.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# FLAME frame -> OpenCV camera frame for a camera on +Z looking at the face.
FLIP = torch.diag(torch.tensor([1.0, -1.0, -1.0]))


def flip_viewmat(dtype: torch.dtype = torch.float32) -> Tensor:  # [4, 4]
    """The world-to-camera matrix every track is stored with (see module doc)."""
    view = torch.eye(4, dtype=dtype)
    view[:3, :3] = FLIP.to(dtype)
    return view


def default_K(width: int, height: int, fov_deg: float) -> Tensor:  # [3, 3]
    """Square pixels, centred principal point; ``fov_deg`` spans the image width."""
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2.0)
    return torch.tensor([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def project(
    points: Tensor,  # [B, N, 3] camera frame
    K: Tensor,  # [B, 3, 3]
) -> Tensor:  # [B, N, 2] pixels
    """Pinhole projection; depth is clamped away from 0 so a bad step cannot produce inf."""
    assert points.ndim == 3 and points.shape[-1] == 3 and K.shape == (points.shape[0], 3, 3), (points.shape, K.shape)
    z = points[..., 2:3].clamp_min(1e-4)  # [B, N, 1]
    xy = points[..., :2] / z  # [B, N, 2] normalised
    return xy * torch.stack([K[:, 0, 0], K[:, 1, 1]], -1)[:, None] + K[:, None, :2, 2]


def unproject_normalised(pixels: Tensor, K: Tensor) -> Tensor:  # [B, N, 2], [B, 3, 3] -> [B, N, 2]
    """Pixels -> normalised image coordinates (x/z, y/z)."""
    f = torch.stack([K[:, 0, 0], K[:, 1, 1]], -1)[:, None]  # [B, 1, 2]
    return (pixels - K[:, None, :2, 2]) / f


def matrix_to_axis_angle(rot: Tensor) -> Tensor:  # [..., 3, 3] -> [..., 3]
    """Rotation matrices to axis-angle through a unit quaternion (stable at 0 and pi)."""
    m = rot
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # Shepperd: pick the largest of 4w^2, 4x^2, 4y^2, 4z^2 for the square root.
    cand = torch.stack([1 + tr, 1 + 2 * m[..., 0, 0] - tr, 1 + 2 * m[..., 1, 1] - tr, 1 + 2 * m[..., 2, 2] - tr], -1)
    k = cand.argmax(-1, keepdim=True)  # [..., 1]
    d = cand  # [..., 4] = 4 q_i^2: each row below is 4 q_pivot q, normalised afterwards
    w = torch.stack([d[..., 0], m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1)
    x = torch.stack([m[..., 2, 1] - m[..., 1, 2], d[..., 1], m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1)
    y = torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], d[..., 2], m[..., 1, 2] + m[..., 2, 1]], -1)
    z = torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], d[..., 3]], -1)
    rows = torch.stack([w, x, y, z], -2)  # [..., 4 (which pivot), 4 (w,x,y,z) * 4 q_pivot]
    q = torch.gather(rows, -2, k[..., None].expand(*k.shape[:-1], 1, 4))[..., 0, :]
    q = torch.nn.functional.normalize(q, dim=-1)
    q = torch.where(q[..., :1] < 0, -q, q)  # w >= 0: angle in [0, pi]
    sin_half = q[..., 1:].norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(sin_half, q[..., :1])
    scale = torch.where(sin_half > 1e-8, angle / sin_half.clamp_min(1e-12), torch.full_like(angle, 2.0))
    return q[..., 1:] * scale


def rotation_angle_deg(a: Tensor, b: Tensor) -> Tensor:  # [..., 3, 3] x2 -> [...]
    """Geodesic angle between two rotations, degrees."""
    rel = a.transpose(-1, -2) @ b
    cos = ((rel[..., 0, 0] + rel[..., 1, 1] + rel[..., 2, 2] - 1) / 2).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.arccos(cos))


def rigid_init(
    points: Tensor,  # [B, N, 3] template landmarks, model frame
    pixels: Tensor,  # [B, N, 2] observed landmarks
    K: Tensor,  # [B, 3, 3]
    weights: Tensor,  # [B, N] >= 0 (0 = ignore)
    iters: int = 6,
) -> tuple[Tensor, Tensor]:  # R [B, 3, 3], t [B, 3]: pixels ~ project(points @ R^T + t)
    """Batched weighted POSIT: scaled-orthographic fits corrected for perspective.

    Each pass solves a weighted affine camera ``m_i (1 + eps_i) = A [X_i; 1]``
    (4x4 normal equations per sample), projects A's 3x3 part to the nearest
    scaled rotation (SVD), and updates ``eps_i = (r3 . X_i) / t_z``. Samples with
    fewer than 4 weighted points get an identity rotation at 1 m; the caller
    records them as failed or interpolates them.
    """
    b, n, _ = points.shape
    assert pixels.shape == (b, n, 2) and weights.shape == (b, n), (pixels.shape, weights.shape)
    dt = torch.float64  # tiny solves; double keeps POSIT stable for small faces
    w = weights.to(dt)
    wsum = w.sum(1, keepdim=True).clamp_min(1e-12)  # [B, 1]
    c = (w[..., None] * points.to(dt)).sum(1) / wsum  # [B, 3] weighted centroid
    X = points.to(dt) - c[:, None]  # [B, N, 3]
    m = unproject_normalised(pixels.to(dt), K.to(dt))  # [B, N, 2]
    Xh = torch.cat([X, torch.ones_like(X[..., :1])], -1)  # [B, N, 4]
    normal = Xh.transpose(1, 2) @ (w[..., None] * Xh) + 1e-9 * torch.eye(4, dtype=dt)  # [B, 4, 4]
    eps = torch.zeros(b, n, dtype=dt)
    for _ in range(iters):
        rhs = Xh.transpose(1, 2) @ (w[..., None] * m * (1 + eps)[..., None])  # [B, 4, 2]
        A = torch.linalg.solve(normal, rhs).transpose(1, 2)  # [B, 2, 4]
        u, s, vh = torch.linalg.svd(A[:, :, :3], full_matrices=False)  # [B,2,2], [B,2], [B,2,3]
        r12 = u @ vh  # [B, 2, 3] orthonormal rows
        scale = s.mean(-1).clamp_min(1e-9)  # [B] = 1 / t_z
        r3 = torch.linalg.cross(r12[:, 0], r12[:, 1], dim=-1)
        R = torch.cat([r12, r3[:, None]], 1)  # [B, 3, 3]
        tz = 1.0 / scale
        eps = (X @ r3[..., None])[..., 0] / tz[:, None]
    t = torch.cat([A[:, :, 3] * tz[:, None], tz[:, None]], -1)  # [B, 3] camera position of the centroid
    t = t - (R @ c[..., None])[..., 0]  # translation for un-centred points
    ok = (weights > 0).sum(1) >= 4
    R = torch.where(ok[:, None, None], R, torch.eye(3, dtype=dt))
    t = torch.where(ok[:, None], t, torch.tensor([0.0, 0.0, 1.0], dtype=dt))
    return R.to(points.dtype), t.to(points.dtype)
