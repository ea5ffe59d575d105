"""Gaussians bound to the head mesh, animated through the FLAME layer.

Two layouts share one world transform (``frames.py``):
- **UV grid** (seed 003): one Gaussian per valid texel of a res x res grid over
  the head's UV unwrap, bound to the triangle under the texel centre. Texels are
  the Gaussian slots, so a UV-space generator predicts one attribute map per
  slot and refinement never changes the count or layout.
- **Subdivided points** (seed 002, LAM): see ``subdivide.py``; every point is a
  vertex of the subdivided head and moves by LBS like FLAME's own vertices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fairsplat.splat.frames import matrix_to_quat, quat_multiply, triangle_frames


@dataclass
class UVBinding:
    face_idx: Tensor  # [G] long, parent triangle
    bary: Tensor  # [G, 3] barycentric position on the parent (UV-space weights)
    texel: Tensor  # [G, 2] long (row, col) in the res x res grid
    local_means: Tensor  # [G, 3] in the triangle frame, units of s_f
    local_quats: Tensor  # [G, 4] wxyz
    local_log_scales: Tensor  # [G, 3] log of scale in units of s_f
    resolution: int

    def __len__(self) -> int:
        return self.face_idx.shape[0]


def _rasterise_uv(uvs: np.ndarray, uv_faces: np.ndarray, res: int, chunk: int = 1024):
    """For each texel centre inside a UV triangle: (row, col, face, bary).

    Vectorised per chunk of faces over each face's texel bounding box. A texel
    on a shared edge goes to the lowest face index, so the result is
    deterministic. Returns numpy arrays sorted by texel (row-major).
    """
    tri = uvs[uv_faces].astype(np.float64) * res - 0.5  # [F, 3, 2] in texel-centre coords
    lo = np.floor(tri.min(axis=1)).astype(np.int64).clip(0, res - 1)  # [F, 2] (u, v)
    hi = np.ceil(tri.max(axis=1)).astype(np.int64).clip(0, res - 1)
    cell_chunks, bary_chunks = [], []
    order = np.argsort((hi - lo).prod(axis=1), kind="stable")
    for start in range(0, len(order), chunk):
        idx = order[start : start + chunk]
        size = (hi[idx] - lo[idx] + 1).max(axis=0)  # [2]
        du, dv = np.meshgrid(np.arange(size[0]), np.arange(size[1]), indexing="xy")
        u = lo[idx, 0, None] + du.reshape(1, -1)  # [f, P]
        v = lo[idx, 1, None] + dv.reshape(1, -1)
        a, b, c = tri[idx, 0], tri[idx, 1], tri[idx, 2]  # [f, 2]
        det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
        ok = np.abs(det) > 1e-12
        det = np.where(ok, det, 1.0)[:, None]
        px, py = u - a[:, 0, None], v - a[:, 1, None]
        l1 = (px * (c[:, 1, None] - a[:, 1, None]) - py * (c[:, 0, None] - a[:, 0, None])) / det
        l2 = (py * (b[:, 0, None] - a[:, 0, None]) - px * (b[:, 1, None] - a[:, 1, None])) / det
        l0 = 1 - l1 - l2
        inside = (l0 >= -1e-9) & (l1 >= -1e-9) & (l2 >= -1e-9) & ok[:, None] & (u <= hi[idx, 0, None]) & (v <= hi[idx, 1, None])
        fi, pi = np.nonzero(inside)
        cell_chunks.append(np.stack([v[fi, pi], u[fi, pi], idx[fi]], axis=1))
        bary_chunks.append(np.stack([l0[fi, pi], l1[fi, pi], l2[fi, pi]], axis=1))
    cells = np.concatenate(cell_chunks) if cell_chunks else np.zeros((0, 3), np.int64)
    bary = np.concatenate(bary_chunks) if bary_chunks else np.zeros((0, 3))
    key = (cells[:, 0] * res + cells[:, 1]) * (len(uv_faces) + 1) + cells[:, 2]
    order = np.argsort(key, kind="stable")
    cells, bary = cells[order], bary[order]
    first = np.ones(len(cells), bool)
    first[1:] = (cells[1:, 0] != cells[:-1, 0]) | (cells[1:, 1] != cells[:-1, 1])
    return cells[first], np.clip(bary[first], 0.0, 1.0)


def uv_grid_binding(head, resolution: int = 128, thickness: float = 0.1) -> UVBinding:
    """Bind one flat Gaussian per valid texel of the head's UV grid.

    The in-plane scale is the texel's footprint on the canonical surface, so
    neighbouring Gaussians just overlap; ``thickness`` sets the normal-axis
    scale as a fraction of it (flat, surfel-like Gaussians).
    """
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution}")
    if not 0 < thickness <= 1:
        raise ValueError(f"thickness must be in (0, 1], got {thickness}")
    cells, bary = _rasterise_uv(head.uvs, head.uv_faces, resolution)
    faces = torch.as_tensor(head.faces, dtype=torch.long)
    verts = torch.as_tensor(head.v_template, dtype=torch.float32)[None]  # [1, V, 3]
    centroid, rot, scale = (t[0] for t in triangle_frames(verts, faces))
    face_idx = torch.as_tensor(cells[:, 2], dtype=torch.long)
    bary_t = torch.as_tensor(bary, dtype=torch.float32)
    pos = (verts[0][faces[face_idx]] * bary_t[..., None]).sum(dim=1)  # [G, 3]
    s = scale[face_idx]  # [G]
    local = torch.einsum("gji,gj->gi", rot[face_idx], pos - centroid[face_idx]) / s[:, None]
    # texel footprint: sqrt(area_3d / area_uv) / res, in units of s_f
    tri3 = verts[0][faces]
    area3 = 0.5 * torch.cross(tri3[:, 1] - tri3[:, 0], tri3[:, 2] - tri3[:, 0], dim=-1).norm(dim=-1)
    uvt = torch.as_tensor(head.uvs, dtype=torch.float64)[torch.as_tensor(head.uv_faces, dtype=torch.long)]
    e1, e2 = uvt[:, 1] - uvt[:, 0], uvt[:, 2] - uvt[:, 0]
    area_uv = (0.5 * (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]).abs()).clamp_min(1e-16).float()
    foot = (area3 / area_uv).sqrt()[face_idx] / resolution / s  # [G]
    log_scales = torch.stack([foot, foot * thickness, foot], dim=-1).clamp_min(1e-8).log()
    quats = torch.zeros(len(face_idx), 4)
    quats[:, 0] = 1.0
    return UVBinding(face_idx, bary_t, torch.as_tensor(cells[:, :2], dtype=torch.long), local, quats, log_scales, resolution)


def bind_to_world(
    binding: UVBinding,
    vertices: Tensor,  # [B, V, 3] posed FLAME vertices
    faces: Tensor,  # [F, 3] long
    local_means: Tensor | None = None,  # [B?, G, 3] overrides (e.g. predicted by a generator)
    local_quats: Tensor | None = None,  # [B?, G, 4]
    local_log_scales: Tensor | None = None,  # [B?, G, 3]
) -> tuple[Tensor, Tensor, Tensor]:  # means [B, G, 3], quats [B, G, 4], scales [B, G, 3]
    """Seed 003's transform: x = R x_l s + c, q = q_f ⊗ q_l, s = s_l s_f."""
    lm = binding.local_means if local_means is None else local_means
    lq = binding.local_quats if local_quats is None else local_quats
    ls = binding.local_log_scales if local_log_scales is None else local_log_scales
    centroid, rot, scale = triangle_frames(vertices, faces)
    fi = binding.face_idx
    c, r, s = centroid[:, fi], rot[:, fi], scale[:, fi, None]  # [B, G, 3], [B, G, 3, 3], [B, G, 1]
    means = torch.einsum("bgij,bgj->bgi", r, lm.expand(r.shape[0], -1, -1)) * s + c
    quats = quat_multiply(matrix_to_quat(r), lq)
    scales = ls.exp() * s
    return means, quats, scales
