"""UV-grid binding (seed 003) against slow references, and its equivariances."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fairsplat.splat.binding import _rasterise_uv, bind_to_world, uv_grid_binding
from fairsplat.splat.frames import matrix_to_quat, quat_multiply, quat_to_matrix, triangle_frames


def grid_mesh(n=5, seed=0):
    """A curved, UV-mapped sheet: n x n vertices, 2(n-1)^2 triangles."""
    rng = np.random.default_rng(seed)
    u, v = np.meshgrid(np.linspace(0.05, 0.95, n), np.linspace(0.05, 0.95, n), indexing="xy")
    uvs = np.stack([u.ravel(), v.ravel()], 1) + rng.uniform(-0.02, 0.02, (n * n, 2))
    xyz = np.stack([u.ravel(), v.ravel(), 0.3 * np.sin(3 * u.ravel()) * np.cos(2 * v.ravel())], 1)
    faces = []
    for r in range(n - 1):
        for c in range(n - 1):
            a, b, d, e = r * n + c, r * n + c + 1, (r + 1) * n + c, (r + 1) * n + c + 1
            faces += [[a, b, e], [a, e, d]]
    faces = np.asarray(faces, np.int64)
    return SimpleNamespace(v_template=xyz.astype(np.float32), faces=faces, uvs=uvs.astype(np.float32), uv_faces=faces)


def slow_uv_raster(uvs, uv_faces, res):
    """Reference: every texel centre against every triangle, first face wins."""
    out = {}
    for row in range(res):
        for col in range(res):
            p = np.array([(col + 0.5) / res, (row + 0.5) / res])
            for f, tri in enumerate(uvs[uv_faces].astype(np.float64)):
                t = np.array([[tri[1, 0] - tri[0, 0], tri[2, 0] - tri[0, 0]], [tri[1, 1] - tri[0, 1], tri[2, 1] - tri[0, 1]]])
                l1, l2 = np.linalg.solve(t, p - tri[0])
                if min(1 - l1 - l2, l1, l2) >= -1e-9:
                    out[(row, col)] = (f, np.array([1 - l1 - l2, l1, l2]))
                    break
    return out


def test_uv_raster_matches_slow_reference():
    m = grid_mesh()
    cells, bary = _rasterise_uv(m.uvs, m.uv_faces, 24)
    ref = slow_uv_raster(m.uvs, m.uv_faces, 24)
    assert len(cells) == len(ref) > 300
    for (row, col, f), b in zip(cells, bary):
        rf, rb = ref[(row, col)]
        assert f == rf
        np.testing.assert_allclose(b, rb, atol=1e-9)


def test_rest_pose_puts_gaussians_on_the_surface():
    m = grid_mesh()
    b = uv_grid_binding(m, resolution=32)
    verts = torch.as_tensor(m.v_template)[None]
    means, quats, scales = bind_to_world(b, verts, torch.as_tensor(m.faces))
    expect = (verts[0][torch.as_tensor(m.faces)[b.face_idx]] * b.bary[..., None]).sum(1)
    torch.testing.assert_close(means[0], expect, atol=1e-5, rtol=0)
    # flat Gaussians: the normal axis (local y) is `thickness` of the in-plane ones
    torch.testing.assert_close(scales[0, :, 1], 0.1 * scales[0, :, 0])
    # neighbouring texels ~ one footprint apart: in-plane scale ~ texel spacing
    spacing = (means[0, 1:] - means[0, :-1]).norm(dim=-1)
    assert 0.3 < scales[0, :, 0].median() / spacing.median() < 3


def random_rotation(seed):
    q = torch.randn(4, generator=torch.Generator().manual_seed(seed))
    return quat_to_matrix(q)


def test_rigid_motion_and_scale_are_equivariant():
    m = grid_mesh()
    b = uv_grid_binding(m, resolution=16)
    faces = torch.as_tensor(m.faces)
    v = torch.as_tensor(m.v_template)[None]
    r, t, k = random_rotation(3), torch.tensor([0.1, -0.2, 0.3]), 1.7
    v2 = k * v @ r.T + t
    m1, q1, s1 = bind_to_world(b, v, faces)
    m2, q2, s2 = bind_to_world(b, v2, faces)
    torch.testing.assert_close(m2, k * m1 @ r.T + t, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s2, k * s1, atol=1e-6, rtol=1e-5)
    # orientation: R_world2 = r @ R_world1 (compare matrices, quats have a sign ambiguity)
    torch.testing.assert_close(quat_to_matrix(q2), r @ quat_to_matrix(q1), atol=1e-5, rtol=0)


def test_frames_are_orthonormal_and_quats_compose_like_matrices():
    v = torch.randn(2, 30, 3, generator=torch.Generator().manual_seed(1))
    faces = torch.randint(0, 30, (40, 3), generator=torch.Generator().manual_seed(2))
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    _, rot, scale = triangle_frames(v, faces)
    eye = torch.eye(3).expand_as(rot)
    torch.testing.assert_close(rot.transpose(-1, -2) @ rot, eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(rot.shape[:2]), atol=1e-5, rtol=0)
    assert (scale > 0).all()
    q = matrix_to_quat(rot)
    torch.testing.assert_close(quat_to_matrix(q), rot, atol=1e-5, rtol=0)
    a, c = torch.randn(5, 4), torch.randn(5, 4)
    a, c = a / a.norm(dim=-1, keepdim=True), c / c.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(quat_to_matrix(quat_multiply(a, c)), quat_to_matrix(a) @ quat_to_matrix(c), atol=1e-5, rtol=0)


def test_bind_to_world_is_differentiable_in_vertices_and_locals():
    m = grid_mesh(4)
    b = uv_grid_binding(m, resolution=12)
    v = torch.as_tensor(m.v_template)[None].clone().requires_grad_(True)
    lm = b.local_means.clone().requires_grad_(True)
    means, quats, scales = bind_to_world(b, v, torch.as_tensor(m.faces), local_means=lm)
    (means.sum() + quats.sum() + scales.sum()).backward()
    assert v.grad.abs().sum() > 0 and lm.grad.abs().sum() > 0
    assert math.isfinite(v.grad.sum().item())


def test_resolution_validated():
    with pytest.raises(ValueError, match="resolution"):
        uv_grid_binding(grid_mesh(), resolution=1)
