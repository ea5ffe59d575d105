"""Triangle frames and quaternion helpers shared by both bindings.

Seed 003 binds a Gaussian to its triangle f with
    x_world = R_f x_local s_f + c_f,   q_world = q_f ⊗ q_local,   s_world = s_local s_f.
R_f is the GaussianAvatars-style orthonormal frame (first edge, normal, their
cross product), c_f the centroid and s_f the mean edge length, so a uniform
stretch of a triangle by k stretches its Gaussians by k.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def triangle_frames(
    vertices: Tensor,  # [B, V, 3]
    faces: Tensor,  # [F, 3] long
) -> tuple[Tensor, Tensor, Tensor]:  # centroids [B, F, 3], rotations [B, F, 3, 3], scales [B, F]
    tri = vertices[:, faces]  # [B, F, 3, 3]
    v0, v1, v2 = tri.unbind(dim=2)
    e0, e1 = v1 - v0, v2 - v0
    a0 = F.normalize(e0, dim=-1)
    a1 = F.normalize(torch.cross(e0, e1, dim=-1), dim=-1)  # normal
    a2 = torch.cross(a0, a1, dim=-1)  # in-plane, right-handed
    rot = torch.stack([a0, a1, a2], dim=-1)  # columns
    lengths = torch.stack([e0.norm(dim=-1), (v2 - v1).norm(dim=-1), e1.norm(dim=-1)], dim=-1)
    return tri.mean(dim=2), rot, lengths.mean(dim=-1)


def quat_multiply(q: Tensor, r: Tensor) -> Tensor:
    """Hamilton product q ⊗ r for wxyz quaternions, broadcasting over leading dims."""
    w1, x1, y1, z1 = q.unbind(-1)
    w2, x2, y2, z2 = r.unbind(-1)
    return torch.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        dim=-1,
    )


def quat_to_matrix(q: Tensor) -> Tensor:  # [..., 4] wxyz -> [..., 3, 3]
    w, x, y, z = F.normalize(q, dim=-1).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quat(rot: Tensor) -> Tensor:  # [..., 3, 3] -> [..., 4] wxyz
    """Shepperd's method, with a gradient that is finite everywhere.

    Why not kornia's ``rotation_matrix_to_quaternion`` (the values agree, see
    the tests): it evaluates all four branches and picks one with
    ``torch.where``; an unpicked branch takes the square root of a negative
    number, and ``where``'s backward turns that NaN into NaN gradients for the
    vertices the frames come from. Here every branch's radicand is clamped
    positive first, so unpicked branches contribute exact zeros.
    """
    m = rot.reshape(*rot.shape[:-2], 9).unbind(-1)
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m
    tiny = torch.finfo(rot.dtype).tiny
    cands = []
    for diag, num in (
        (1.0 + m00 + m11 + m22, (None, m21 - m12, m02 - m20, m10 - m01)),  # w largest
        (1.0 + m00 - m11 - m22, (m21 - m12, None, m01 + m10, m02 + m20)),  # x largest
        (1.0 - m00 + m11 - m22, (m02 - m20, m01 + m10, None, m12 + m21)),  # y largest
        (1.0 - m00 - m11 + m22, (m10 - m01, m02 + m20, m12 + m21, None)),  # z largest
    ):
        sq = 2.0 * torch.sqrt(diag.clamp_min(tiny))  # 4 * the largest component
        cands.append(torch.stack([0.25 * sq if n is None else n / sq for n in num], dim=-1))
    trace = m00 + m11 + m22
    pick_y = (m11 > m22)[..., None]
    pick_x = ((m00 > m11) & (m00 > m22))[..., None]
    q = torch.where(pick_x, cands[1], torch.where(pick_y, cands[2], cands[3]))
    return torch.where((trace > 0.0)[..., None], cands[0], q)
