"""Tiled rasteriser (numba and pure-torch paths) against the dense reference, plus edge cases.

Forward: torch.testing.assert_close defaults (float32). Backward: rtol/atol 1e-3,
like gsplat's own CUDA-vs-torch tests. The scene is built so that every rule is
exercised: Gaussians straddling tiles, behind the camera, off-screen, and an
opaque stack that drives some pixels to the T <= 1e-4 stop.
"""

from __future__ import annotations

import pytest
import torch

from fairsplat.splat import camera, gsplat_backend, raster
from fairsplat.splat.gsplat_backend import GsplatUnavailable

W, H = 40, 32
COMPOSITORS = sorted(raster.COMPOSITORS)  # "numba", "torch"
GRAD_TOL = {"rtol": 1e-3, "atol": 1e-3}


def make_scene(n: int = 64, d: int = 3, seed: int = 0) -> dict:
    """n Gaussians in front of two cameras; a few behind, a few off-screen, an opaque stack."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * torch.tensor([0.5, 0.4, 0.3]) + torch.tensor([0.0, 0.0, 2.5])
    means[:4, 2] = -1.0  # behind both cameras
    means[4:6, 0] = 4.0  # far off-screen to the right (FOV clamp, culled by the box test)
    means[6:14] = torch.tensor([0.05, -0.05, 2.0]) + 0.02 * torch.randn(8, 3, generator=g)  # opaque stack
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.12 + 0.01
    opacities = torch.rand(n, generator=g) * 0.9 + 0.05
    opacities[6:14] = 0.97
    colors = torch.rand(n, d, generator=g)
    views = torch.stack([camera.look_at((0.0, 0.0, 0.0), (0.0, 0.0, 1.0)), camera.look_at((0.4, -0.2, 0.1), (0.0, 0.0, 2.5))])
    Ks = camera.intrinsics(W, H, fov_deg=50.0).expand(2, 3, 3).contiguous()
    return {"means": means, "quats": quats, "scales": scales, "opacities": opacities, "colors": colors,
            "viewmats": views, "Ks": Ks}  # fmt: skip


def render(fn, scene: dict, grad: bool = False, **kw):  # noqa: ANN001, ANN201
    """Render with fn; if grad, return the gradients of a fixed random loss w.r.t. the 5 parameters."""
    names = ["means", "quats", "scales", "opacities", "colors"]
    params = [scene[k].clone().requires_grad_(grad) for k in names]
    out, alpha, meta = fn(*params, scene["viewmats"], scene["Ks"], W, H, **kw)
    if not grad:
        return out, alpha, meta
    g = torch.Generator().manual_seed(1)
    loss = (out * torch.rand(out.shape, generator=g)).sum() + (alpha * torch.rand(alpha.shape, generator=g)).sum()
    return out, alpha, dict(zip(names, torch.autograd.grad(loss, params)))


@pytest.fixture(scope="module")
def scene() -> dict:
    return make_scene()


def test_scene_exercises_every_rule(scene: dict) -> None:
    out, alpha, meta = render(raster.render_dense, scene)
    radii = meta["radii"]
    assert (radii[:, :4] == 0).all(), "behind-camera Gaussians must be culled"
    assert (radii[0, 4:6] == 0).all(), "off-screen Gaussians must be culled"
    assert alpha.max() > 0.999, "some pixel must reach the T <= 1e-4 stop"
    assert alpha.max() < 1.0 - 1e-4, "the stop rule never adds the Gaussian that crosses T = 1e-4"
    ts = 16
    x, r = meta["means2d"][..., 0], radii[..., 0].float()
    straddle = (torch.floor((x - r) / ts) != torch.floor((x + r) / ts)) & (radii[..., 0] > 0)
    assert straddle.sum() > 10, "Gaussians must straddle tile borders"


@pytest.mark.parametrize("compositor", COMPOSITORS)
def test_forward_matches_dense(scene: dict, compositor: str) -> None:
    ref, ref_a, ref_meta = render(raster.render_dense, scene, render_mode="RGB+D")
    out, alpha, meta = render(raster.COMPOSITORS[compositor], scene, render_mode="RGB+D")
    assert out.shape == (2, H, W, 4) and alpha.shape == (2, H, W, 1)
    torch.testing.assert_close(out[..., :3], ref[..., :3])
    torch.testing.assert_close(alpha, ref_a)
    torch.testing.assert_close(out[..., 3], ref[..., 3])  # accumulated depth
    torch.testing.assert_close(meta["means2d"], ref_meta["means2d"])


@pytest.mark.parametrize("compositor", COMPOSITORS)
def test_gradients_match_dense(scene: dict, compositor: str) -> None:
    _, _, ref = render(raster.render_dense, scene, grad=True, render_mode="RGB+D")
    _, _, got = render(raster.COMPOSITORS[compositor], scene, grad=True, render_mode="RGB+D")
    for name, g in ref.items():
        assert g.abs().max() > 1e-2, f"reference gradient for {name} is trivially small"
        torch.testing.assert_close(got[name], g, **GRAD_TOL, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("compositor", COMPOSITORS)
def test_one_hot_labels_d19(compositor: str) -> None:
    """19-class label maps: matches dense, and the class probabilities sum to alpha."""
    scene = make_scene(d=19, seed=3)
    scene["colors"] = torch.nn.functional.one_hot(torch.randint(0, 19, (64,)), 19).float()
    ref, ref_a, ref_g = render(raster.render_dense, scene, grad=True)
    out, alpha, got = render(raster.COMPOSITORS[compositor], scene, grad=True)
    assert out.shape == (2, H, W, 19)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(out.sum(-1, keepdim=True), alpha)
    for name in ("colors", "means", "opacities"):
        torch.testing.assert_close(got[name], ref_g[name], **GRAD_TOL)


def test_per_camera_colors(scene: dict) -> None:
    """colors [C, N, D]: each camera composites its own colours."""
    per_cam = torch.stack([scene["colors"], 1.0 - scene["colors"]])  # [2, N, 3]
    s = dict(scene, colors=per_cam)
    out, alpha, _ = render(raster.render_tiled, s)
    ref, _, _ = render(raster.render_dense, s)
    torch.testing.assert_close(out, ref)
    cam1, _, _ = render(raster.render_tiled, dict(scene, colors=1.0 - scene["colors"]))
    torch.testing.assert_close(out[1], cam1[1])


@pytest.mark.parametrize("mode", raster.RENDER_MODES)
def test_render_modes_match_dense(scene: dict, mode: str) -> None:
    out, alpha, _ = render(raster.render_tiled, scene, render_mode=mode)
    ref, _, _ = render(raster.render_dense, scene, render_mode=mode)
    assert out.shape[-1] == {"RGB": 3, "D": 1, "ED": 1, "RGB+D": 4, "RGB+ED": 4}[mode]
    torch.testing.assert_close(out, ref)


def test_depth_mode_semantics(scene: dict) -> None:
    """D is accumulated depth, ED = D / alpha, and RGB+D's last channel is D."""
    d, alpha, _ = render(raster.render_tiled, scene, render_mode="D")
    ed, _, _ = render(raster.render_tiled, scene, render_mode="ED")
    rgbd, _, _ = render(raster.render_tiled, scene, render_mode="RGB+D")
    torch.testing.assert_close(rgbd[..., 3:], d)
    seen = alpha > 0.5
    torch.testing.assert_close(ed[seen], (d / alpha)[seen])
    assert 1.0 < ed[seen].min() and ed[seen].max() < 4.5, "expected depth lies within the scene's depth range"


def test_backgrounds(scene: dict) -> None:
    bg = torch.tensor([[0.2, 0.5, 0.9], [1.0, 0.0, 0.3]])
    plain, alpha, _ = render(raster.render_tiled, scene, render_mode="RGB+D")
    with_bg, _, _ = render(raster.render_tiled, scene, render_mode="RGB+D", backgrounds=bg)
    torch.testing.assert_close(with_bg[..., :3], plain[..., :3] + (1 - alpha) * bg[:, None, None, :])
    torch.testing.assert_close(with_bg[..., 3], plain[..., 3])  # depth channel: background 0


@pytest.mark.parametrize("backend", ["torch", "dense"])
def test_zero_gaussians(backend: str) -> None:
    s = make_scene()
    empty = {k: (v[:0] if k not in ("viewmats", "Ks") else v) for k, v in s.items()}
    bg = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    out, alpha, meta = raster.rasterization(*empty.values(), W, H, backgrounds=bg, backend=backend)
    assert out.shape == (2, H, W, 3) and alpha.shape == (2, H, W, 1)
    assert (alpha == 0).all()
    torch.testing.assert_close(out, bg[:, None, None, :].expand_as(out))


@pytest.mark.parametrize("compositor", COMPOSITORS)
def test_all_behind_camera(scene: dict, compositor: str) -> None:
    s = dict(scene, means=scene["means"] * torch.tensor([1.0, 1.0, -1.0]))  # mirror behind both cameras
    s["means"][:, 2] = s["means"][:, 2].clamp_max(-0.1)
    out, alpha, grads = render(raster.COMPOSITORS[compositor], s, grad=True)
    assert (alpha == 0).all() and (out == 0).all()
    assert all(torch.isfinite(g).all() and (g == 0).all() for g in grads.values())


@pytest.mark.parametrize("name", ["means", "quats", "scales", "opacities", "colors", "viewmats", "Ks"])
def test_nan_raises_naming_the_tensor(scene: dict, name: str) -> None:
    bad = {k: v.clone() for k, v in scene.items()}
    bad[name].view(-1)[3] = float("nan")
    with pytest.raises(ValueError, match=f"^{name}: contains NaN"):
        raster.rasterization(*bad.values(), W, H)


@pytest.mark.parametrize(
    ("name", "shape"),
    [("means", (64, 2)), ("quats", (64, 3)), ("scales", (63, 3)), ("opacities", (64, 1)), ("colors", (3, 64, 3)),
     ("viewmats", (2, 3, 4)), ("Ks", (1, 3, 3))],
)  # fmt: skip
def test_wrong_shape_raises_naming_the_argument(scene: dict, name: str, shape: tuple) -> None:
    bad = dict(scene, **{name: torch.zeros(shape)})
    with pytest.raises(ValueError, match=f"^{name}: shape"):
        raster.rasterization(*bad.values(), W, H)


def test_bad_options_raise(scene: dict) -> None:
    with pytest.raises(ValueError, match="render_mode"):
        raster.rasterization(*scene.values(), W, H, render_mode="RGBD")
    with pytest.raises(ValueError, match="backend"):
        raster.rasterization(*scene.values(), W, H, backend="vulkan")
    with pytest.raises(ValueError, match="backgrounds"):
        raster.rasterization(*scene.values(), W, H, backgrounds=torch.zeros(2, 4))


def test_eps2d_blurs_small_gaussians() -> None:
    """A point-like Gaussian's footprint is the eps2d low-pass filter: conic = 1 / eps2d."""
    tiny = {"means": torch.tensor([[0.0, 0.0, 2.0]]), "quats": torch.tensor([[1.0, 0, 0, 0]]),
            "scales": torch.full((1, 3), 1e-6), "opacities": torch.tensor([0.9]), "colors": torch.ones(1, 3),
            "viewmats": torch.eye(4)[None], "Ks": camera.intrinsics(W, H, fov_deg=50.0)[None]}  # fmt: skip
    covered = []
    for eps in (0.3, 3.0):
        out, alpha, meta = raster.rasterization(*tiny.values(), W, H, eps2d=eps)
        torch.testing.assert_close(meta["conics"][0, 0], torch.tensor([1 / eps, 0.0, 1 / eps]), rtol=1e-4, atol=1e-6)
        covered.append(int((alpha > 1e-3).sum()))
    assert covered[1] > 4 * covered[0], f"a 10x eps2d must widen the footprint, got {covered}"


@pytest.mark.parametrize("backend", sorted(raster.BACKENDS))
def test_every_backend_matches_dense(scene: dict, backend: str) -> None:
    """Registry pattern: a new BACKENDS entry is checked against the reference with no new test code."""
    device = "cuda" if backend == "gsplat" else "cpu"
    if device == "cuda" and not gsplat_backend.available():
        pytest.skip("gsplat backend needs gsplat 1.5.3 and CUDA")
    ref, ref_a, _ = render(raster.render_dense, scene, render_mode="RGB+ED")
    on_device = {k: v.to(device) for k, v in scene.items()}
    out, alpha, meta = render(raster.BACKENDS[backend], on_device, render_mode="RGB+ED")
    torch.testing.assert_close(out.cpu(), ref)
    torch.testing.assert_close(alpha.cpu(), ref_a)
    assert meta["radii"].shape == (2, 64, 2)


def test_auto_backend_is_torch_on_cpu(scene: dict) -> None:
    assert raster.resolve_backend("auto", torch.device("cpu")) == "torch"
    auto, _, _ = raster.rasterization(*scene.values(), W, H)
    tiled, _, _ = render(raster.render_tiled, scene)
    torch.testing.assert_close(auto, tiled, rtol=0, atol=0)


def test_gsplat_backend_fails_clearly_on_cpu(scene: dict) -> None:
    with pytest.raises(GsplatUnavailable, match="gsplat"):
        raster.rasterization(*scene.values(), W, H, backend="gsplat")


def test_means2d_retain_grad(scene: dict) -> None:
    """meta['means2d'] is in the graph: densification strategies read its gradient."""
    params = {k: v.clone().requires_grad_(k == "means") for k, v in scene.items()}
    out, _, meta = raster.rasterization(*params.values(), W, H)
    meta["means2d"].retain_grad()
    out.sum().backward()
    g = meta["means2d"].grad  # [C, N, 2]
    visible = meta["radii"].amax(-1) > 0
    assert g[~visible].abs().max() == 0 and g[visible].abs().amax(-1).gt(0).float().mean() > 0.8


def test_numba_and_torch_paths_agree_on_a_denser_scene() -> None:
    """Beyond tiny scenes: 1500 overlapping Gaussians, 96 px, where tiles end early."""
    from bench.raster import head_camera, head_scene

    s = head_scene(1500, seed=2)
    view, K = head_camera(96)
    outs = [raster.COMPOSITORS[c](*s.values(), view, K, 96, 96, render_mode="RGB+ED") for c in COMPOSITORS]
    assert outs[0][1].mean() > 0.5
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(outs[0][1], outs[1][1], rtol=1e-5, atol=1e-5)
