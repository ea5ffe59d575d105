"""Subdivided-point binding (seed 002, LAM): one Gaussian per vertex of the subdivided head.

Why this shape: LAM queries image features with the points of a subdivided
FLAME mesh and animates the predicted Gaussians with FLAME's own blendshapes,
pose correctives and LBS, so an avatar plays back any FLAME sequence with no
extra network. ``subdivide_head`` carries every FLAME attribute to the new
vertices, so the points are simply the vertices of a finer FLAME-format head;
here they get a canonical orientation and size, and :func:`points_to_world`
poses them:

    x = sum_j w_j G_j (v_shaped + posedirs(pose) + offset)        (FLAME's LBS)
    q = normalise(sum_j w_j q_j) ⊗ q_canonical,   s = s_canonical

``max_points`` keeps a farthest-point subset of the vertices (a CPU-sized
LAM: query tokens and Gaussians scale with the point count). The skeleton is
still regressed from the whole shaped mesh, so a subset poses exactly as the
same vertices of the full head do; only the point spacing, and with it the
canonical size, grows.

``offset`` is a canonical-space displacement (LAM predicts one per point); it
rides along with the skinning but does not move the skeleton. The rotation of
a point is the linear blend of its joints' rotations as quaternions (all in
one hemisphere), normalised: smooth and differentiable, and exactly the joint
rotation wherever one joint (or one rotation, e.g. the global pose) dominates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fairsplat.head.lbs import blend_shapes, rigid_transforms, rodrigues
from fairsplat.splat.frames import matrix_to_quat, quat_multiply
from fairsplat.splat.subdivide import subdivide_head


@dataclass
class PointBinding:
    """Canonical Gaussians at the vertices of ``head`` (a subdivided FLAME-format head)."""

    head: object  # HeadModel whose vertices are the Gaussian points
    local_quats: Tensor  # [G, 4] wxyz canonical orientation: local y is the vertex normal
    local_log_scales: Tensor  # [G, 3] log std in metres (x, z in-plane, y along the normal)
    levels: int
    point_ids: Tensor | None = None  # [G] long: the head vertices kept; None = all of them

    def __len__(self) -> int:
        return self.local_quats.shape[0]


def _vertex_frames(verts: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted vertex normals [V, 3] and mean incident edge length [V] (float64)."""
    tri = verts[faces]  # [F, 3, 3]
    n_face = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # [F, 3], |.| = 2 area
    normals = np.zeros_like(verts)
    np.add.at(normals, faces.reshape(-1), np.repeat(n_face, 3, axis=0))
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])  # [3F, 2]
    length = np.linalg.norm(verts[edges[:, 0]] - verts[edges[:, 1]], axis=1)
    total, count = np.zeros(len(verts)), np.zeros(len(verts))
    for k in (0, 1):
        np.add.at(total, edges[:, k], length)
        np.add.at(count, edges[:, k], 1.0)
    return normals, total / np.maximum(count, 1.0)


def farthest_points(points: np.ndarray, k: int) -> np.ndarray:  # [V, 3] -> [k] indices, sorted
    """Deterministic farthest-point sampling from vertex 0: an even spread over the surface."""
    k = min(k, len(points))
    chosen = np.zeros(k, np.int64)
    dist = np.full(len(points), np.inf)
    for i in range(1, k):
        dist = np.minimum(dist, np.linalg.norm(points - points[chosen[i - 1]], axis=1))
        chosen[i] = int(np.argmax(dist))
    return np.sort(chosen)


def _subset_spacing(points: np.ndarray, neighbours: int = 4) -> np.ndarray:  # [G, 3] -> [G]
    """Mean distance to the nearest kept points: the edge length a subset's Gaussians must bridge."""
    from scipy.spatial import cKDTree

    d, _ = cKDTree(points).query(points, k=neighbours + 1)
    return d[:, 1:].mean(axis=1)


def subdivided_binding(head, levels: int = 1, thickness: float = 0.1, max_points: int | None = None) -> PointBinding:
    """Subdivide ``head`` ``levels`` times and give every vertex a flat, surface-aligned Gaussian.

    In-plane std = half the mean incident edge length (of the kept subset's
    spacing when ``max_points`` thins the vertices), so neighbours overlap at
    about 2 sigma and the surface reads as closed; ``thickness`` sets the
    normal-axis std as a fraction of it (surfel-like, as the UV binding).
    """
    if levels < 0:
        raise ValueError(f"levels must be >= 0, got {levels}")
    if not 0 < thickness <= 1:
        raise ValueError(f"thickness must be in (0, 1], got {thickness}")
    if max_points is not None and max_points < 8:
        raise ValueError(f"max_points must be >= 8 or None, got {max_points}")
    sub = subdivide_head(head, levels)
    verts = sub.v_template.astype(np.float64)
    normals, edge = _vertex_frames(verts, sub.faces)
    ids = None
    if max_points is not None and max_points < len(verts):
        ids = farthest_points(verts, max_points)
        verts, normals, edge = verts[ids], normals[ids], _subset_spacing(verts[ids])
    n = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-30)
    n[np.linalg.norm(normals, axis=1) < 1e-30] = (0.0, 0.0, 1.0)  # isolated vertices: any frame
    helper = np.where(np.abs(n[:, [0]]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    t = np.cross(helper, n)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    rot = np.stack([t, n, np.cross(t, n)], axis=-1)  # [G, 3, 3] columns: tangent, normal, bitangent
    quats = matrix_to_quat(torch.as_tensor(rot, dtype=torch.float32))
    std = np.maximum(0.5 * edge, 1e-8)
    log_scales = np.log(np.stack([std, thickness * std, std], axis=1))
    point_ids = None if ids is None else torch.as_tensor(ids)
    return PointBinding(sub, quats, torch.as_tensor(log_scales, dtype=torch.float32), levels, point_ids)


def _joint_quats(rot: Tensor) -> Tensor:  # [B, J, 3, 3] -> [B, J, 4] wxyz with w >= 0
    q = matrix_to_quat(rot)
    return torch.where(q[..., :1] < 0, -q, q)


def _pad(x: Tensor | None, b: int, n: int, name: str, like: Tensor, exact: bool = False) -> Tensor:
    """FlameLayer's argument rule: missing tensors are zeros, missing trailing coefficients too."""
    if x is None:
        return like.new_zeros(b, n)
    if x.ndim != 2 or x.shape[0] != b or x.shape[1] > n or (exact and x.shape[1] != n):
        raise ValueError(f"{name}: shape {tuple(x.shape)}, expected [{b}, {'' if exact else '<='}{n}]")
    x = x.to(like)
    return torch.cat([x, x.new_zeros(b, n - x.shape[1])], 1) if x.shape[1] < n else x


def points_to_world(
    binding: PointBinding,
    layer,  # FlameLayer built on binding.head
    shape: Tensor | None = None,  # [B, <=S]
    expr: Tensor | None = None,  # [B, <=E]
    pose: Tensor | None = None,  # [B, 3J]
    transl: Tensor | None = None,  # [B, 3]
    offsets: Tensor | None = None,  # [B?, G, 3] canonical displacements
    local_quats: Tensor | None = None,  # [B?, G, 4] overrides (e.g. predicted)
    local_log_scales: Tensor | None = None,  # [B?, G, 3]
) -> tuple[Tensor, Tensor, Tensor]:  # means [B, G, 3], quats [B, G, 4], scales [B, G, 3]
    """Pose the points with the FLAME layer's own blendshapes, correctives and skinning weights."""
    n_layer = layer.v_template.shape[0]
    if n_layer != len(binding.head.v_template):
        raise ValueError(f"layer: has {n_layer} vertices, the binding's head {len(binding.head.v_template)}")
    b = next((x.shape[0] for x in (shape, expr, pose, transl) if x is not None), 1)
    like = layer.v_template
    coeffs = torch.cat([_pad(shape, b, layer.n_shape, "shape", like), _pad(expr, b, layer.n_expr, "expr", like)], 1)
    pose = _pad(pose, b, 3 * layer.n_joints, "pose", like, exact=True)
    v_full = layer.v_template + blend_shapes(coeffs, layer.dirs)  # [B, V, 3]
    joints = torch.einsum("jv,bvc->bjc", layer.j_regressor, v_full)  # [B, J, 3] skeleton ignores offsets
    ids = binding.point_ids
    v_shaped = v_full if ids is None else v_full[:, ids]  # [B, G, 3]
    posedirs = layer.posedirs if ids is None else layer.posedirs.reshape(-1, n_layer, 3)[:, ids].reshape(-1, 3 * len(ids))
    weights = layer.lbs_weights if ids is None else layer.lbs_weights[ids]  # [G, J]
    rots = rodrigues(pose.reshape(b, layer.n_joints, 3))  # [B, J, 3, 3]
    eye = torch.eye(3, dtype=pose.dtype, device=pose.device)
    v_posed = v_shaped + ((rots[:, 1:] - eye).reshape(b, -1) @ posedirs).reshape(v_shaped.shape)
    if offsets is not None:
        v_posed = v_posed + offsets
    _, skin = rigid_transforms(rots, joints, layer.parents)  # [B, J, 4, 4]
    blend = torch.einsum("vj,bjrc->bvrc", weights, skin[:, :, :3, :])  # [B, G, 3, 4]
    means = (blend[..., :3] @ v_posed[..., None])[..., 0] + blend[..., 3]  # [B, G, 3]
    if transl is not None:
        means = means + _pad(transl, b, 3, "transl", like, exact=True)[:, None]
    q_joint = _joint_quats(skin[:, :, :3, :3])  # [B, J, 4]
    q_point = F.normalize(torch.einsum("vj,bjk->bvk", weights, q_joint), dim=-1)  # [B, G, 4]
    lq = binding.local_quats if local_quats is None else local_quats
    ls = binding.local_log_scales if local_log_scales is None else local_log_scales
    quats = quat_multiply(q_point, lq.to(q_point))
    scales = ls.to(means).exp().expand(b, -1, -1)
    return means, quats, scales
