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
from kornia.geometry.conversions import rotation_matrix_to_quaternion
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
    return rotation_matrix_to_quaternion(rot.contiguous(), eps=1e-12)
