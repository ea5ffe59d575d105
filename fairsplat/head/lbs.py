"""Linear blend skinning for FLAME-format heads, plus a slow per-vertex twin.

Why both: :func:`lbs` is the batched, differentiable path every stage runs
(tracking fits through it, synth animates with it). :func:`lbs_reference` is a
deliberately naive loop over vertices that uses a different rotation formula
(matrix exponential) so tests can check values and gradients of the fast path
against something obviously correct (STYLE.md: a slow reference beside every
fast op).

Conventions follow smplx/FLAME: joints are regressed from the shaped (not
pose-corrected) vertices; the pose feature is ``(R_j - I)`` of the non-root
joints, flattened row-major, and multiplies ``posedirs [P, V*3]``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def rodrigues(rotvec: Tensor) -> Tensor:
    """Axis-angle [..., 3] -> rotation matrices [..., 3, 3].

    Uses sin(t)/t and 0.5*(sin(t/2)/(t/2))^2, which stay accurate in float32
    near zero (unlike (1 - cos t)/t^2), with a Taylor branch at exactly zero so
    gradients at the rest pose are finite.
    """
    theta2 = (rotvec * rotvec).sum(-1, keepdim=True)  # [..., 1]
    small = theta2 < 1e-12
    safe2 = torch.where(small, torch.ones_like(theta2), theta2)
    theta = safe2.sqrt()
    half = 0.5 * theta
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)  # [..., 1]
    b = torch.where(small, 0.5 - theta2 / 24.0, 0.5 * (torch.sin(half) / half) ** 2)  # [..., 1]
    k = skew(rotvec)  # [..., 3, 3]
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye + a[..., None] * k + b[..., None] * (k @ k)


def skew(v: Tensor) -> Tensor:
    """[..., 3] -> cross-product matrices [..., 3, 3]."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    rows = (zero, -z, y, z, zero, -x, -y, x, zero)
    return torch.stack(rows, dim=-1).reshape(*v.shape[:-1], 3, 3)


def blend_shapes(coeffs: Tensor, dirs: Tensor) -> Tensor:
    """coeffs [B, K] x dirs [V, 3, K] -> offsets [B, V, 3]."""
    return torch.einsum("bk,vck->bvc", coeffs, dirs)


def rigid_transforms(rots: Tensor, joints: Tensor, parents: list[int]) -> tuple[Tensor, Tensor]:
    """Walk the kinematic chain.

    rots [B, J, 3, 3] local rotations, joints [B, J, 3] rest joint positions.
    Returns posed joints [B, J, 3] and the skinning transforms [B, J, 4, 4]
    that map a rest-pose point to its posed position for each joint.
    """
    b, nj = joints.shape[:2]
    rel = joints.clone()
    rel[:, 1:] = joints[:, 1:] - joints[:, parents[1:]]  # [B, J, 3] offsets from parents
    local = _homogeneous(rots, rel)  # [B, J, 4, 4]
    chain = [local[:, 0]]
    for j in range(1, nj):
        chain.append(chain[parents[j]] @ local[:, j])
    world = torch.stack(chain, dim=1)  # [B, J, 4, 4]
    posed_joints = world[:, :, :3, 3]
    # Remove the rest position so the transform applies to rest-space points.
    shift = (world[:, :, :3, :3] @ joints[..., None])[..., 0]  # [B, J, 3]
    skin = torch.cat([world[:, :, :3, :3], (posed_joints - shift)[..., None]], dim=-1)  # [B, J, 3, 4]
    bottom = world[:, :, 3:, :]  # [B, J, 1, 4] = [0, 0, 0, 1]
    return posed_joints, torch.cat([skin, bottom], dim=-2)


def _homogeneous(rots: Tensor, t: Tensor) -> Tensor:
    """rots [..., 3, 3], t [..., 3] -> [..., 4, 4]."""
    top = torch.cat([rots, t[..., None]], dim=-1)  # [..., 3, 4]
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)


def lbs(
    coeffs: Tensor,  # [B, K] shape then expression coefficients
    pose: Tensor,  # [B, J*3] axis-angle per joint
    v_template: Tensor,  # [V, 3]
    dirs: Tensor,  # [V, 3, K] shapedirs then exprdirs
    posedirs: Tensor,  # [P, V*3]
    j_regressor: Tensor,  # [J, V]
    parents: list[int],  # [J]
    weights: Tensor,  # [V, J]
) -> tuple[Tensor, Tensor]:  # vertices [B, V, 3], joints [B, J, 3]
    """Batched FLAME/SMPL skinning: blendshapes, pose correctives, chain, LBS."""
    b, nv, nj = coeffs.shape[0], v_template.shape[0], j_regressor.shape[0]
    assert dirs.shape[:2] == (nv, 3) and dirs.shape[2] == coeffs.shape[1], (dirs.shape, coeffs.shape)
    assert pose.shape == (b, nj * 3), (pose.shape, nj)
    v_shaped = v_template + blend_shapes(coeffs, dirs)  # [B, V, 3]
    joints = torch.einsum("jv,bvc->bjc", j_regressor, v_shaped)  # [B, J, 3]
    rots = rodrigues(pose.reshape(b, nj, 3))  # [B, J, 3, 3]
    eye = torch.eye(3, dtype=pose.dtype, device=pose.device)
    pose_feature = (rots[:, 1:] - eye).reshape(b, -1)  # [B, P]
    v_posed = v_shaped + (pose_feature @ posedirs).reshape(b, nv, 3)  # [B, V, 3]
    posed_joints, skin = rigid_transforms(rots, joints, parents)  # [B, J, 3], [B, J, 4, 4]
    per_vertex = torch.einsum("vj,bjrc->bvrc", weights, skin[:, :, :3, :])  # [B, V, 3, 4]
    verts = (per_vertex[..., :3] @ v_posed[..., None])[..., 0] + per_vertex[..., 3]  # [B, V, 3]
    return verts, posed_joints


def lbs_reference(
    coeffs: Tensor,  # [K] one sample
    pose: Tensor,  # [J*3]
    v_template: Tensor,  # [V, 3]
    dirs: Tensor,  # [V, 3, K]
    posedirs: Tensor,  # [P, V*3]
    j_regressor: Tensor,  # [J, V]
    parents: list[int],
    weights: Tensor,  # [V, J]
    vertex_ids: list[int] | None = None,
) -> tuple[Tensor, Tensor]:  # vertices [len(vertex_ids), 3], joints [J, 3]
    """Slow, obviously-correct skinning of one sample, one vertex at a time.

    Independent of :func:`lbs` where it matters: rotations come from
    ``torch.linalg.matrix_exp`` of the skew matrix, the chain is composed with
    explicit 4x4 matrices, and blending is a Python sum over joints.
    """
    nv, nj = v_template.shape[0], len(parents)
    shaped = [v_template[v] + sum(dirs[v, :, k] * coeffs[k] for k in range(coeffs.shape[0])) for v in range(nv)]
    joints = [sum(j_regressor[j, v] * shaped[v] for v in range(nv)) for j in range(nj)]
    rots = [torch.linalg.matrix_exp(skew(pose[3 * j : 3 * j + 3])) for j in range(nj)]
    world = []
    for j in range(nj):
        offset = joints[j] - (joints[parents[j]] if j > 0 else 0.0)
        local = _homogeneous(rots[j], offset)
        world.append(local if j == 0 else world[parents[j]] @ local)
    eye = torch.eye(3, dtype=pose.dtype)
    feature = torch.cat([(rots[j] - eye).reshape(-1) for j in range(1, nj)])  # [P]
    out = []
    for v in vertex_ids if vertex_ids is not None else range(nv):
        corrective = torch.stack([(feature * posedirs[:, 3 * v + c]).sum() for c in range(3)])
        rest = torch.cat([shaped[v] + corrective, torch.ones(1, dtype=pose.dtype)])  # [4]
        blended = sum(weights[v, j] * (world[j] @ _unpose(joints[j])) for j in range(nj))  # [4, 4]
        out.append((blended @ rest)[:3])
    posed_joints = torch.stack([world[j][:3, 3] for j in range(nj)])
    return torch.stack(out), posed_joints


def _unpose(joint: Tensor) -> Tensor:
    """Translation by -joint as a 4x4 matrix."""
    m = torch.eye(4, dtype=joint.dtype)
    m = m.clone()
    m[:3, 3] = -joint
    return m
