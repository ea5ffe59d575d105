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
    with pytest.raises(ValueError, match="thickness"):
        uv_grid_binding(grid_mesh(), thickness=0.0)


# ---- animation through the FLAME layer ------------------------------------------------------------

JAW_POSE = 6  # pose[6:9] is the jaw's axis-angle (FLAME order: global, neck, jaw, eyes)


def tiny_head(n=6, seed=0):
    """A valid FLAME-format HeadModel on the curved sheet: the lower rows are skinned to the jaw,
    expressions move only the x >= 0.5 half, pose correctives come only from the neck block."""
    from fairsplat.head.model import HeadModel

    m = grid_mesh(n, seed)
    rng = np.random.default_rng(seed)
    v = m.v_template.astype(np.float64)
    nv, nf = len(v), len(m.faces)
    feats = np.concatenate([v, v**2], 1)  # [V, 6] smooth fields
    shapedirs = np.einsum("vf,fck->vck", feats, rng.normal(0, 0.01, (6, 3, 4)))
    exprdirs = np.einsum("vf,fck->vck", feats, rng.normal(0, 0.01, (6, 3, 3))) * (v[:, 0] >= 0.5)[:, None, None]
    jaw = np.clip((0.45 - v[:, 1]) / 0.1, 0.0, 1.0)  # 1 on the lower rows, 0 on the upper, a blend between
    weights = np.zeros((nv, 5))
    weights[:, 2], weights[:, 1] = jaw, 1.0 - jaw
    posedirs = np.zeros((36, nv * 3))
    posedirs[:9] = rng.normal(0, 1e-3, (9, nv * 3))  # neck correctives only
    head = HeadModel(
        v_template=v, faces=m.faces, shapedirs=shapedirs, exprdirs=exprdirs, posedirs=posedirs,
        j_regressor=rng.dirichlet(np.ones(nv), 5), parents=np.array([-1, 0, 1, 1, 1]), lbs_weights=weights,
        uvs=m.uvs, uv_faces=m.uv_faces, face_regions=np.zeros(nf, np.int64),
        lmk_faces=rng.integers(0, nf, 68), lmk_bary=rng.dirichlet(np.ones(3), 68), source="test",
    )  # fmt: skip
    return head.validate()


def _jaw_pose(angle=0.3):
    pose = torch.zeros(1, 15)
    pose[0, JAW_POSE] = angle
    return pose


def test_uv_binding_follows_jaw_and_expression_through_flame():
    from fairsplat.head.flame import FlameLayer
    from fairsplat.head.lbs import rodrigues

    head = tiny_head()
    layer, faces = FlameLayer(head), torch.as_tensor(head.faces)
    b = uv_grid_binding(head, resolution=32)
    rest, rest_q, rest_s = bind_to_world(b, layer().vertices, faces)
    jaw_w = torch.as_tensor(head.lbs_weights[:, 2])[faces[b.face_idx]]  # [G, 3] per corner
    on_jaw, off_jaw = (jaw_w == 1).all(1), (jaw_w == 0).all(1)
    assert on_jaw.sum() > 50 and off_jaw.sum() > 50
    out = layer(pose=_jaw_pose())
    means, quats, scales = bind_to_world(b, out.vertices, faces)
    # jaw-bound Gaussians turn rigidly about the jaw joint; the rest do not move at all
    r, j = rodrigues(torch.tensor([0.3, 0.0, 0.0])), out.joints[0, 2]
    torch.testing.assert_close(means[0, on_jaw], (rest[0, on_jaw] - j) @ r.T + j, atol=1e-5, rtol=0)
    torch.testing.assert_close(quat_to_matrix(quats[0, on_jaw]), r @ quat_to_matrix(rest_q[0, on_jaw]), atol=1e-5, rtol=0)
    torch.testing.assert_close(scales[0, on_jaw], rest_s[0, on_jaw], atol=1e-6, rtol=1e-5)
    assert (means[0, on_jaw] - rest[0, on_jaw]).norm(dim=-1).min() > 1e-3
    torch.testing.assert_close(means[0, off_jaw], rest[0, off_jaw], atol=0, rtol=0)
    # an expression moves the half of the sheet that has expression blendshapes, and only that half
    moved = bind_to_world(b, layer(expr=torch.tensor([[2.0, -1.0, 1.0]])).vertices, faces)[0]
    corner_x = torch.as_tensor(head.v_template[:, 0])[faces[b.face_idx]]  # [G, 3]
    still = (corner_x < 0.5).all(1)
    torch.testing.assert_close(moved[0, still], rest[0, still], atol=0, rtol=0)
    assert (moved[0, (corner_x >= 0.5).all(1)] - rest[0, (corner_x >= 0.5).all(1)]).norm(dim=-1).min() > 1e-4


# ---- subdivided points (seed 002) ------------------------------------------------------------------


def test_subdivision_carries_flame_attributes():
    from fairsplat.head.flame import FlameLayer
    from fairsplat.splat.subdivide import subdivide_head

    head = tiny_head()
    sub = subdivide_head(head, levels=2).validate()
    edges = {tuple(sorted(e)) for f in head.faces for e in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0]))}
    assert sub.n_faces == 16 * head.n_faces and sub.n_vertices > head.n_vertices + len(edges)
    np.testing.assert_array_equal(sub.v_template[: head.n_vertices], head.v_template)
    np.testing.assert_allclose(sub.lbs_weights.sum(1), 1.0, atol=1e-6)
    g = torch.Generator().manual_seed(0)
    shape, expr, pose = torch.randn(1, 4, generator=g), torch.randn(1, 3, generator=g), 0.3 * torch.randn(1, 15, generator=g)
    a, b = FlameLayer(head)(shape, expr, pose), FlameLayer(sub)(shape, expr, pose)
    torch.testing.assert_close(b.joints, a.joints)  # new vertices carry no regressor weight: same skeleton
    torch.testing.assert_close(b.vertices[:, : head.n_vertices], a.vertices)  # old vertices pose as before
    # blendshapes are linear: at zero pose every new point is exactly the midpoint of its parents
    a0, b0 = FlameLayer(head)(shape, expr), FlameLayer(sub)(shape, expr)
    torch.testing.assert_close(b0.landmarks, a0.landmarks, atol=1e-6, rtol=0)
    one = subdivide_head(head, levels=1)
    (i, j), k = sorted(edges)[7], head.n_vertices + 7  # np.unique orders edges, so edge 7 -> vertex V + 7
    np.testing.assert_allclose(one.v_template[k], 0.5 * (head.v_template[i] + head.v_template[j]), atol=1e-7)


def test_points_pose_like_the_flame_layer():
    """Points = the subdivided head's own FLAME vertices, for any shape/expression/pose/translation."""
    from fairsplat.head.flame import FlameLayer
    from fairsplat.splat.points import points_to_world, subdivided_binding

    pb = subdivided_binding(tiny_head(), levels=1)
    layer = FlameLayer(pb.head)
    g = torch.Generator().manual_seed(1)
    args = {"shape": torch.randn(2, 4, generator=g), "expr": torch.randn(2, 3, generator=g),
            "pose": 0.3 * torch.randn(2, 15, generator=g), "transl": torch.randn(2, 3, generator=g)}  # fmt: skip
    means, quats, scales = points_to_world(pb, layer, **args)
    torch.testing.assert_close(means, layer(**args).vertices, atol=1e-6, rtol=1e-5)
    assert means.shape == quats.shape[:2] + (3,) == scales.shape == (2, len(pb), 3)
    torch.testing.assert_close(quats.norm(dim=-1), torch.ones(2, len(pb)))


def test_point_offsets_are_skinned_without_moving_the_skeleton():
    """Offsets on new (regressor-free) vertices == a FLAME layer whose template holds them."""
    import dataclasses

    from fairsplat.head.flame import FlameLayer
    from fairsplat.splat.points import points_to_world, subdivided_binding

    head = tiny_head()
    pb = subdivided_binding(head, levels=1)
    offsets = 0.01 * torch.randn(len(pb), 3, generator=torch.Generator().manual_seed(2))
    offsets[: head.n_vertices] = 0.0
    moved = dataclasses.replace(pb.head, v_template=pb.head.v_template + offsets.numpy())
    pose = _jaw_pose(0.25)
    pose[0, :3] = torch.tensor([0.1, -0.2, 0.05])
    means, _, _ = points_to_world(pb, FlameLayer(pb.head), pose=pose, offsets=offsets[None])
    torch.testing.assert_close(means, FlameLayer(moved)(pose=pose).vertices, atol=1e-6, rtol=1e-5)


def test_point_rotations_follow_the_joints():
    from fairsplat.head.flame import FlameLayer
    from fairsplat.head.lbs import rodrigues
    from fairsplat.splat.points import points_to_world, subdivided_binding

    head = tiny_head()
    pb = subdivided_binding(head, levels=1)
    layer = FlameLayer(pb.head)
    canon = quat_to_matrix(pb.local_quats)  # [G, 3, 3]
    normals = canon[:, :, 1]  # local y = vertex normal: sheet normals point mostly along +-z
    assert normals[:, 2].abs().mean() > 0.8
    glob = torch.zeros(1, 15)
    glob[0, :3] = torch.tensor([0.3, -0.5, 0.2])
    _, q, s = points_to_world(pb, layer, pose=glob)  # a global turn: every point turns with it, exactly
    torch.testing.assert_close(quat_to_matrix(q[0]), rodrigues(glob[0, :3]) @ canon, atol=1e-5, rtol=0)
    torch.testing.assert_close(s[0], pb.local_log_scales.exp())
    means_rest, q_rest, _ = points_to_world(pb, layer)
    means, q, _ = points_to_world(pb, layer, pose=_jaw_pose())
    w = torch.as_tensor(pb.head.lbs_weights[:, 2])
    jaw_r = rodrigues(torch.tensor([0.3, 0.0, 0.0]))
    torch.testing.assert_close(quat_to_matrix(q[0, w == 1]), jaw_r @ canon[w == 1], atol=1e-5, rtol=0)
    torch.testing.assert_close(q[0, w == 0], q_rest[0, w == 0])
    torch.testing.assert_close(means[0, w == 0], means_rest[0, w == 0])
    assert (means[0, w == 1] - means_rest[0, w == 1]).norm(dim=-1).min() > 1e-3


def test_points_are_differentiable_in_pose_and_expression():
    from fairsplat.head.flame import FlameLayer
    from fairsplat.splat.points import points_to_world, subdivided_binding

    pb = subdivided_binding(tiny_head(n=4), levels=1)
    pb.local_quats, pb.local_log_scales = pb.local_quats.double(), pb.local_log_scales.double()
    layer = FlameLayer(pb.head, dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    pose = (0.2 * torch.randn(1, 15, generator=g, dtype=torch.float64)).requires_grad_()
    expr = torch.randn(1, 3, generator=g, dtype=torch.float64).requires_grad_()

    def f(p, e):
        m, q, _ = points_to_world(pb, layer, expr=e, pose=p)
        return m, q

    assert torch.autograd.gradcheck(f, (pose, expr), atol=1e-6)


def test_subdivided_binding_validates():
    from fairsplat.splat.points import subdivided_binding

    with pytest.raises(ValueError, match="levels"):
        subdivided_binding(tiny_head(), levels=-1)
    with pytest.raises(ValueError, match="thickness"):
        subdivided_binding(tiny_head(), thickness=0.0)


def _rotations(n: int, seed: int = 0) -> torch.Tensor:  # [n + 12, 3, 3] float64, incl. near-180-degree turns
    from fairsplat.splat.frames import quat_to_matrix as q2m

    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, generator=g, dtype=torch.float64)
    near_pi = torch.tensor([[0.02, 1, 0, 0], [0.02, 0, 1, 0], [0.02, 0, 0, 1], [-0.03, 0.6, 0.8, 0]], dtype=torch.float64)
    q = torch.cat([q, near_pi, -near_pi, near_pi * torch.tensor([1.0, -1, 1, -1], dtype=torch.float64)])
    return q2m(q)


def test_matrix_to_quat_matches_kornia_and_round_trips():
    from kornia.geometry.conversions import rotation_matrix_to_quaternion

    rot = _rotations(200)
    q = matrix_to_quat(rot)
    ref = rotation_matrix_to_quaternion(rot, eps=1e-12)
    sign = torch.sign((q * ref).sum(-1, keepdim=True))  # q and -q are one rotation
    torch.testing.assert_close(q, sign * ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(quat_to_matrix(q), rot, atol=1e-10, rtol=0)


def test_matrix_to_quat_gradients_are_finite_and_exact():
    """Kornia's where-of-all-branches gives NaN gradients; ours must match finite differences."""
    rot = _rotations(8).requires_grad_(True)
    assert torch.autograd.gradcheck(matrix_to_quat, (rot,), eps=1e-7, atol=1e-5)
    # Posed float32 heads: kornia's version gave NaN pose/expression gradients here.
    from fairsplat.head.flame import FlameLayer
    from fairsplat.head.procedural import build_procedural_head

    head = build_procedural_head()
    g = torch.Generator().manual_seed(0)
    pose = (0.2 * torch.randn(8, 15, generator=g)).requires_grad_(True)
    expr = torch.randn(8, head.n_expr, generator=g).requires_grad_(True)
    rot = triangle_frames(FlameLayer(head)(expr=expr, pose=pose).vertices, torch.as_tensor(head.faces))[1]
    q = matrix_to_quat(rot)
    (q * torch.randn(q.shape, generator=g)).sum().backward()
    assert torch.isfinite(pose.grad).all() and torch.isfinite(expr.grad).all()
