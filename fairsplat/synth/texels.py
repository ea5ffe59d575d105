"""Anisotropic texel footprints for UV-bound Gaussians.

Why: the UV binding gives each Gaussian an isotropic in-plane scale, the
square root of its triangle's 3D-to-UV area ratio. Where the UV chart is
stretched (the head grid's rows are 1 cm apart on the neck but 3 mm apart on
the face, while every row gets the same height in UV) texels are longer in 3D
one way than the other, and isotropic splats leave visible stripes of
see-through gaps between texel rows. Here each Gaussian's in-plane covariance
is its texel's true footprint, ``sigma^2 J J^T / res^2`` with ``J`` the
triangle's 3D-per-UV Jacobian, written as a rotation about the triangle normal
and two scales in the binding's local frame (seed 003's ``q_l``, ``s_l``).
"""

from __future__ import annotations

import math

import torch

from fairsplat.splat.binding import UVBinding
from fairsplat.splat.frames import triangle_frames


MAX_ANISOTROPY = 2.0
"""Cap on major/minor sigma: sliver triangles (pole fans, the neck's last row) would
otherwise get needle splats. The cut edge of the neck still frays a little at the
bottom of the frame (the last row band spans 3 cm); the face is unaffected."""


def texel_shapes(
    head, binding: UVBinding, sigma: float, thickness: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:  # local quats [G, 4] wxyz, local log-scales [G, 3]
    """Rotation about the local normal (y) and scales (major, normal, minor) per Gaussian."""
    verts = torch.as_tensor(head.v_template, dtype=torch.float64)[None]  # [1, V, 3]
    faces = torch.as_tensor(head.faces, dtype=torch.long)
    _, rot, s = (t[0] for t in triangle_frames(verts, faces))  # [F, 3, 3] columns (x, normal, z), [F]
    tri = verts[0, faces]  # [F, 3, 3]
    edges = torch.stack([tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]], dim=-1)  # [F, 3, 2]
    a = rot[:, :, [0, 2]].transpose(1, 2) @ edges  # [F, 2, 2] in-plane (x, z), metres
    uv = torch.as_tensor(head.uvs, dtype=torch.float64)[torch.as_tensor(head.uv_faces, dtype=torch.long)]  # [F, 3, 2]
    d = torch.stack([uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]], dim=-1)  # [F, 2, 2]
    det = torch.linalg.det(d)
    ok = det.abs() > 1e-14
    d = torch.where(ok[:, None, None], d, torch.eye(2, dtype=d.dtype))
    jac = a @ torch.linalg.inv(d) / (binding.resolution * s[:, None, None])  # [F, 2, 2] local units per texel
    cov = sigma**2 * jac @ jac.transpose(1, 2)  # [F, 2, 2]
    lam, vec = torch.linalg.eigh(cov)  # ascending
    lam = lam.clamp_min(1e-16)
    lam = torch.stack([torch.maximum(lam[:, 0], lam[:, 1] / MAX_ANISOTROPY**2), lam[:, 1]], dim=-1)
    major = vec[:, :, 1]  # [F, 2] (x, z)
    theta = torch.atan2(-major[:, 1], major[:, 0])  # rotation about y taking local x onto the major axis
    quats = torch.stack([torch.cos(theta / 2), torch.zeros_like(theta), torch.sin(theta / 2), torch.zeros_like(theta)], -1)
    log_major, log_minor = 0.5 * lam[:, 1].log(), 0.5 * lam[:, 0].log()
    log_scales = torch.stack([log_major, 0.5 * (log_major + log_minor) + math.log(thickness), log_minor], dim=-1)
    fi = binding.face_idx
    q, ls = quats[fi].float(), log_scales[fi].float()
    bad = ~ok[fi]  # degenerate UV triangle: keep the binding's isotropic footprint
    q[bad] = binding.local_quats[bad]
    ls[bad] = binding.local_log_scales[bad] + math.log(sigma)
    return q, ls
