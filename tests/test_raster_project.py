"""Projection, tile binning and cameras, each against an independent formula or brute force."""

from __future__ import annotations

import math

import pytest
import torch

from fairsplat.splat import camera, project, tiles

W, H = 64, 48


def _gaussians(n: int, seed: int = 0, z: float = 3.0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "means": torch.randn(n, 3, generator=g) * torch.tensor([0.6, 0.5, 0.3]) + torch.tensor([0.0, 0.0, z]),
        "quats": torch.randn(n, 4, generator=g),
        "scales": torch.rand(n, 3, generator=g) * 0.1 + 0.01,
        "opacities": torch.rand(n, generator=g) * 0.95 + 0.04,
    }


def _cams() -> tuple[torch.Tensor, torch.Tensor]:  # [2, 4, 4], [2, 3, 3]
    views = torch.stack([torch.eye(4), camera.look_at((0.5, 0.3, -0.2), (0.0, 0.0, 3.0))])
    K = torch.tensor([[70.0, 0, 30.0], [0, 75.0, 25.0], [0, 0, 1]])  # non-square, off-centre
    return views, K.expand(2, 3, 3).contiguous()


def test_quat_to_rotmat() -> None:
    q = torch.randn(100, 4)
    R = project.quat_to_rotmat(q)
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3).expand(100, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(100))
    torch.testing.assert_close(project.quat_to_rotmat(3.7 * q), R)  # scale-invariant
    half = math.pi / 4
    rz90 = project.quat_to_rotmat(torch.tensor([[math.cos(half), 0.0, 0.0, math.sin(half)]]))[0]
    torch.testing.assert_close(rz90 @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]))


def test_covariance_from_quat_scale() -> None:
    q, s = torch.randn(10, 4), torch.rand(10, 3)
    cov = project.quat_scale_to_covar(q, s)
    R = project.quat_to_rotmat(q)
    torch.testing.assert_close(cov, R @ torch.diag_embed(s**2) @ R.transpose(-1, -2))
    assert (torch.linalg.eigvalsh(cov) > 0).all()


def test_means2d_is_pinhole() -> None:
    g = _gaussians(20)
    views, Ks = _cams()
    p = project.project_gaussians(*g.values(), views, Ks, W, H)
    x, y, z = g["means"].unbind(-1)  # camera 0 is the identity
    torch.testing.assert_close(p.means2d[0], torch.stack([70 * x / z + 30, 75 * y / z + 25], -1))
    torch.testing.assert_close(p.depths[0], z)


def _cov2d_by_autograd(mean: torch.Tensor, cov3: torch.Tensor, view: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """J Sigma J^T with J the exact Jacobian of world point -> pixel (no clamp), by autograd."""

    def pix(p: torch.Tensor) -> torch.Tensor:
        pc = view[:3, :3] @ p + view[:3, 3]
        return (K[:2, :2] @ pc[:2]) / pc[2] + K[:2, 2]

    J = torch.autograd.functional.jacobian(pix, mean.double()).double()  # [2, 3]
    return J @ cov3.double() @ J.T


def test_cov2d_matches_ewa_jacobian() -> None:
    """Inside the clamp limits, cov2d = J Sigma J^T + eps2d I with the exact projection Jacobian."""
    g = _gaussians(12, seed=1)
    views, Ks = _cams()
    eps = 0.3
    p = project.project_gaussians(*g.values(), views, Ks, W, H, eps2d=eps)
    cov3 = project.quat_scale_to_covar(g["quats"], g["scales"])
    checked = 0
    for c in range(2):
        pc = g["means"] @ views[c, :3, :3].T + views[c, :3, 3]  # [N, 3]
        uv = (pc[:, :2] / pc[:, 2:]) * Ks[c, [0, 1], [0, 1]] + Ks[c, :2, 2]  # pixels
        inside = ((uv > -0.3 * torch.tensor([W, H]) / 2) & (uv < torch.tensor([W, H]) * 1.15)).all(-1)
        for i in torch.nonzero(inside).flatten().tolist():
            a, b, cc = p.conics[c, i].double()
            got = torch.linalg.inv(torch.stack([torch.stack([a, b]), torch.stack([b, cc])]))
            want = _cov2d_by_autograd(g["means"][i], cov3[i], views[c].double(), Ks[c].double()) + eps * torch.eye(2)
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
            checked += 1
    assert checked >= 16


def test_fov_clamp_uses_jacobian_at_the_limit() -> None:
    """Far off-axis, J is evaluated at x/z clamped to 1.3x the half-FOV (gsplat), not at the true x."""
    fx, cx, z = 70.0, 30.0, 3.0
    K = torch.tensor([[fx, 0, cx], [0, 75.0, 25.0], [0, 0, 1]])
    lim = (W - cx) / fx + 0.3 * 0.5 * W / fx
    g = {"means": torch.tensor([[5.0 * lim * z, 0.0, z]]), "quats": torch.tensor([[1.0, 0.2, -0.3, 0.1]]),
         "scales": torch.tensor([[0.3, 0.2, 0.1]]), "opacities": torch.tensor([0.9])}  # fmt: skip
    p = project.project_gaussians(*g.values(), torch.eye(4)[None], K[None], W, H, eps2d=0.0)
    a, b, c = p.conics[0, 0].double()
    got = torch.linalg.inv(torch.stack([torch.stack([a, b]), torch.stack([b, c])]))
    at_limit = torch.tensor([lim * z, 0.0, z])
    cov3 = project.quat_scale_to_covar(g["quats"], g["scales"])[0]
    torch.testing.assert_close(got, _cov2d_by_autograd(at_limit, cov3, torch.eye(4).double(), K.double()), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(p.means2d[0, 0, 0], torch.tensor(fx * 5.0 * lim + cx))  # the mean is not clamped


def test_radii_formula_and_culling() -> None:
    g = _gaussians(200, seed=2)
    g["means"][:10, 2] = 0.005  # nearer than near_plane
    g["means"][10:20, 2] = 50.0  # beyond far_plane below
    g["opacities"][20:30] = 0.003  # < 1/255
    g["means"][30:40, 0] = -40.0  # off-image (left)
    views, Ks = _cams()
    p = project.project_gaussians(*g.values(), views[:1], Ks[:1], W, H, far_plane=20.0)
    assert (p.radii[0, :40] == 0).all()
    a, b, c = p.conics[0].unbind(-1)
    cov_xx, cov_yy = c / (a * c - b * b), a / (a * c - b * b)
    o = g["opacities"]
    extend = torch.clamp(torch.sqrt(2 * torch.log(255 * o)), max=3.33)
    want = torch.stack([torch.ceil(extend * cov_xx.sqrt()), torch.ceil(extend * cov_yy.sqrt())], -1)
    live = p.radii[0, :, 0] > 0
    assert live[40:].float().mean() > 0.9
    assert (p.radii[0][live].float() - want[live]).abs().max() <= 1  # ceil of values computed two ways


def test_projection_gradcheck() -> None:
    """Autograd through projection is smooth and complete (nothing detached that should not be)."""
    g = {k: v.double() for k, v in _gaussians(4, seed=3).items()}
    views, Ks = (t.double() for t in _cams())

    def f(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor) -> tuple[torch.Tensor, ...]:
        p = project.project_gaussians(means, quats, scales, g["opacities"], views, Ks, W, H)
        return p.means2d, p.conics, p.depths

    args = tuple(g[k].requires_grad_() for k in ("means", "quats", "scales"))
    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-5)


def test_alpha_below_threshold_outside_box() -> None:
    """The claim behind tiling: outside a Gaussian's box every pixel centre has alpha < 1/255."""
    g = _gaussians(300, seed=4)
    views, Ks = _cams()
    p = project.project_gaussians(*g.values(), views, Ks, W, H)
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    dx = p.means2d[..., 0, None, None] - xs  # [C, N, H, W]
    dy = p.means2d[..., 1, None, None] - ys
    a, b, c = (t[..., None, None] for t in p.conics.unbind(-1))
    alpha = p.opacities[..., None, None] * torch.exp(-(0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy))
    r = p.radii[..., None, None, :].float()
    outside = (dx.abs() > r[..., 0]) | (dy.abs() > r[..., 1])
    live = (p.radii[..., 0] > 0)[..., None, None]
    assert (outside & live).sum() > 10_000
    assert alpha[outside & live].max() < project.ALPHA_THRESHOLD


@pytest.mark.parametrize("n_cams", [1, 2])
def test_numba_binning_equals_torch_binning(n_cams: int) -> None:
    g = _gaussians(500, seed=5)
    views, Ks = _cams()
    p = project.project_gaussians(*g.values(), views[:n_cams], Ks[:n_cams], W, H)
    a = tiles.bin_tiles(p.means2d, p.radii, p.depths, W, H, impl="torch")
    b = tiles.bin_tiles(p.means2d, p.radii, p.depths, W, H, impl="numba")
    assert a.flatten_ids.numel() > 1000
    for name in ("tiles_per_gauss", "isect_ids", "flatten_ids", "offsets"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize("impl", ["torch", "numba"])
def test_binning_empty(impl: str) -> None:
    b = tiles.bin_tiles(torch.zeros(2, 0, 2), torch.zeros(2, 0, 2, dtype=torch.int32), torch.zeros(2, 0), W, H, impl=impl)
    assert b.flatten_ids.numel() == 0 and b.offsets.shape == (2 * 4 * 3 + 1,) and (b.offsets == 0).all()


@pytest.mark.parametrize("impl", ["torch", "numba"])
def test_binning_lists_and_order(impl: str) -> None:
    """A Gaussian on a tile corner lands in its 4 tiles; lists are sorted front to back."""
    means2d = torch.tensor([[[16.0, 16.0], [40.0, 8.0], [17.0, 15.0]]])  # [1, 3, 2]
    radii = torch.tensor([[[3, 3], [2, 2], [5, 2]]], dtype=torch.int32)
    depths = torch.tensor([[2.0, 1.0, 1.5]])
    b = tiles.bin_tiles(means2d, radii, depths, W, H, 16, impl=impl)
    assert b.tiles_per_gauss.tolist() == [[4, 1, 4]]
    assert b.isect_offsets.shape == (1, 3, 4)
    lists = {t: b.flatten_ids[b.offsets[t] : b.offsets[t + 1]].tolist() for t in range(12)}
    assert lists[0] == [2, 0] and lists[1] == [2, 0] and lists[4] == [2, 0] and lists[5] == [2, 0]
    assert lists[2] == [1]
    assert sum(len(v) for v in lists.values()) == 9


def test_look_at_opencv() -> None:
    eye, target = torch.tensor([0.3, 0.5, 2.0]), torch.tensor([0.1, -0.2, 0.0])
    V = camera.look_at(eye, target)
    R = V[:3, :3]
    torch.testing.assert_close(R @ R.T, torch.eye(3), atol=1e-6, rtol=0)
    to_cam = lambda p: V[:3, :3] @ p + V[:3, 3]  # noqa: E731
    torch.testing.assert_close(to_cam(eye), torch.zeros(3), atol=1e-6, rtol=0)
    dist = float((target - eye).norm())
    torch.testing.assert_close(to_cam(target), torch.tensor([0.0, 0.0, dist]), atol=1e-6, rtol=0)
    up_in_cam = to_cam(eye + torch.tensor([0.0, 1.0, 0.0])) - to_cam(eye)
    assert up_in_cam[1] < -0.9, "world up must point to image -y (OpenCV: y down)"
    batched = camera.look_at(torch.randn(5, 3) + torch.tensor([0.0, 0.0, 3.0]), torch.zeros(5, 3))
    assert batched.shape == (5, 4, 4)
    with pytest.raises(ValueError, match="parallel"):
        camera.look_at((0.0, 0.0, 0.0), (0.0, 2.0, 0.0))


def test_intrinsics_fov_edge() -> None:
    K = camera.intrinsics(200, 100, fov_deg=60.0)
    edge = torch.tensor([math.tan(math.radians(30.0)), 0.0, 1.0])  # on the right edge of the FOV
    torch.testing.assert_close((K @ edge)[:2], torch.tensor([200.0, 50.0]))
    torch.testing.assert_close(camera.intrinsics(200, 100, focal=123.0)[0, 0], torch.tensor(123.0))
    with pytest.raises(ValueError, match="exactly one"):
        camera.intrinsics(200, 100)
    with pytest.raises(ValueError, match="exactly one"):
        camera.intrinsics(200, 100, fov_deg=60.0, focal=100.0)


def test_orbit_looks_at_target() -> None:
    V = camera.orbit(8, radius=0.6, target=(0.0, 0.05, 0.0), elevation_deg=10.0)
    tgt = torch.tensor([0.0, 0.05, 0.0])
    in_cam = torch.einsum("cij,j->ci", V[:, :3, :3], tgt) + V[:, :3, 3]  # [8, 3]
    torch.testing.assert_close(in_cam, torch.tensor([0.0, 0.0, 0.6]).expand(8, 3), atol=1e-5, rtol=0)
    centres = -torch.einsum("cji,cj->ci", V[:, :3, :3], V[:, :3, 3])
    torch.testing.assert_close((centres - tgt).norm(dim=-1), torch.full((8,), 0.6))


def test_single_threaded_matches_direct_call_and_restores_threads() -> None:
    """serial.single_threaded: same values and gradients, one torch thread in forward and backward."""
    from fairsplat.splat.serial import single_threaded

    seen = []

    def run(a: torch.Tensor, b: torch.Tensor, scale: float) -> tuple[torch.Tensor, ...]:
        seen.append(torch.get_num_threads())
        c = (a @ b).sin() * scale
        c.register_hook(lambda g: seen.append(torch.get_num_threads()))  # runs during backward
        return c, (a * 2).sum(-1), (a > 0).sum(-1)  # an integer output too

    g = torch.Generator().manual_seed(0)
    a0, b0 = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    before = torch.get_num_threads()
    a, b = a0.clone().requires_grad_(), b0.clone().requires_grad_()
    out = single_threaded(run, a, b, 3.0)
    (out[0].sum() + 2 * out[1].sum()).backward()
    ra, rb = a0.clone().requires_grad_(), b0.clone().requires_grad_()
    ref = ((ra @ rb).sin() * 3.0, (ra * 2).sum(-1))
    (ref[0].sum() + 2 * ref[1].sum()).backward()
    torch.testing.assert_close(out[0], ref[0])
    torch.testing.assert_close(a.grad, ra.grad)
    torch.testing.assert_close(b.grad, rb.grad)
    assert not out[2].requires_grad and out[2].dtype == torch.int64
    assert seen == [1, 1] and torch.get_num_threads() == before
    assert torch.autograd.gradcheck(lambda x, y: single_threaded(run, x, y, 0.5)[:2], (a0.requires_grad_(), b0.requires_grad_()))
