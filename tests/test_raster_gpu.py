"""Our torch backend against gsplat 1.5.3 on CUDA, on a random scene and gsplat's garden fixture.

The GPU tests skip without CUDA (and without gsplat). The garden loader is also
used by a CPU test, so that part runs everywhere.

Garden fixture: gsplat's assets/test_garden.npz holds means3d, colors (uint8),
viewmats, Ks, width, height; like gsplat's ``load_test_data`` we crop to the
box [-2, 2]^3 and draw quats, scales (1e-4 .. 0.02) and opacities at random
(fixed seed here).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fairsplat.splat import gsplat_backend, raster

GARDEN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gsplat_garden" / "test_garden.npz"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
needs_gsplat = pytest.mark.skipif(not gsplat_backend.available(), reason="needs gsplat 1.5.3 and CUDA")
needs_garden = pytest.mark.skipif(not GARDEN.exists(), reason=f"gsplat garden fixture absent: {GARDEN}")


def load_garden(max_gaussians: int | None = None, scale: float = 1.0, device: str = "cpu") -> dict:
    """The garden scene as rasterization() arguments; `scale` shrinks the images (and Ks) for CPU tests."""
    d = np.load(GARDEN)
    means = torch.from_numpy(d["means3d"]).float()
    keep = ((means > -2) & (means < 2)).all(-1)
    means = means[keep]
    colors = torch.from_numpy(d["colors"][keep.numpy()]).float() / 255.0
    if max_gaussians is not None:
        means, colors = means[:max_gaussians], colors[:max_gaussians]
    g = torch.Generator().manual_seed(42)
    n = means.shape[0]
    Ks = torch.from_numpy(d["Ks"]).float().clone()
    Ks[:, :2] *= scale
    out = {
        "means": means, "quats": torch.randn(n, 4, generator=g),
        "scales": torch.rand(n, 3, generator=g) * 0.02 + 1e-4, "opacities": torch.rand(n, generator=g),
        "colors": colors, "viewmats": torch.from_numpy(d["viewmats"]).float(), "Ks": Ks,
    }  # fmt: skip
    size = (int(int(d["width"]) * scale), int(int(d["height"]) * scale))
    return {k: v.to(device) for k, v in out.items()}, size


def _render(fn, scene: dict, size: tuple[int, int], grad: bool = False, **kw):  # noqa: ANN001, ANN202
    names = ["means", "quats", "scales", "opacities", "colors"]
    params = [scene[k].clone().requires_grad_(grad) for k in names]
    out, alpha, meta = fn(*params, scene["viewmats"], scene["Ks"], *size, **kw)
    if not grad:
        return out, alpha
    g = torch.Generator(device=out.device).manual_seed(0)
    w = torch.rand(out.shape, generator=g, device=out.device)
    grads = torch.autograd.grad((out * w).sum() + alpha.sum(), params)
    return out, alpha, dict(zip(names, grads))


def _mostly_close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-4, frac: float = 1e-4) -> None:
    """All but a tiny fraction of pixels agree to tol. On a 100K-Gaussian scene, a 1-ulp exp
    difference (gsplat uses __expf) can flip a few alpha >= 1/255 or T <= 1e-4 decisions."""
    bad = ((a - b).abs() > tol + tol * b.abs()).float().mean().item()
    assert bad <= frac, f"{bad:.2e} of values differ by more than {tol}"
    assert (a - b).abs().max() < 0.05


@needs_garden
def test_garden_numba_and_torch_paths_agree_on_cpu() -> None:
    """Real data, quarter resolution, 20K Gaussians: the two CPU paths of the torch backend agree."""
    scene, size = load_garden(max_gaussians=20_000, scale=0.25)
    scene = dict(scene, viewmats=scene["viewmats"][:1], Ks=scene["Ks"][:1])
    a_out, a_alpha = _render(raster.COMPOSITORS["numba"], scene, size)
    b_out, b_alpha = _render(raster.COMPOSITORS["torch"], scene, size)
    assert a_alpha.mean() > 0.05, "the crop must actually show the scene"
    _mostly_close(a_out, b_out)
    _mostly_close(a_alpha, b_alpha)


@pytest.mark.gpu
@needs_cuda
@needs_gsplat
def test_torch_matches_gsplat_random_scene() -> None:
    from test_raster import W, H, make_scene

    scene = {k: v.cuda() for k, v in make_scene().items()}
    for mode in ("RGB", "RGB+D", "ED"):
        ref_out, ref_alpha, ref_g = _render(raster.BACKENDS["gsplat"], scene, (W, H), grad=True, render_mode=mode)
        out, alpha, got = _render(raster.BACKENDS["torch"], scene, (W, H), grad=True, render_mode=mode)
        torch.testing.assert_close(out, ref_out)
        torch.testing.assert_close(alpha, ref_alpha)
        for name, g in ref_g.items():
            torch.testing.assert_close(got[name], g, rtol=1e-3, atol=1e-3)


@pytest.mark.gpu
@needs_cuda
@needs_gsplat
@pytest.mark.parametrize(
    "options", [{"sh_degree": 3}, {"rasterize_mode": "antialiased"}, {"radius_clip": 2.0}, {"backgrounds": "grey"}]
)
def test_torch_matches_gsplat_options(options: dict) -> None:
    """The gsplat options we implement give gsplat's values and gradients."""
    from test_raster import W, H, make_scene

    scene = {k: v.cuda() for k, v in make_scene().items()}
    if "sh_degree" in options:
        scene["colors"] = 0.4 * torch.randn(64, 16, 3, generator=torch.Generator().manual_seed(7)).cuda()
    if options.get("backgrounds") == "grey":
        options = {"backgrounds": torch.full((2, 3), 0.5, device="cuda")}
    ref_out, ref_alpha, ref_g = _render(raster.BACKENDS["gsplat"], scene, (W, H), grad=True, **options)
    out, alpha, got = _render(raster.BACKENDS["torch"], scene, (W, H), grad=True, **options)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(alpha, ref_alpha)
    for name, g in ref_g.items():
        torch.testing.assert_close(got[name], g, rtol=1e-3, atol=1e-3)


@pytest.mark.gpu
@needs_cuda
@needs_gsplat
def test_torch_matches_gsplat_meta() -> None:
    from test_raster import W, H, make_scene

    scene = {k: v.cuda() for k, v in make_scene().items()}
    args = [scene[k] for k in ("means", "quats", "scales", "opacities", "colors", "viewmats", "Ks")]
    _, _, ref = raster.BACKENDS["gsplat"](*args, W, H)
    _, _, got = raster.BACKENDS["torch"](*args, W, H)
    assert torch.equal(got["radii"], ref["radii"])
    live = ref["radii"].amax(-1) > 0
    for key in ("means2d", "depths", "conics"):
        torch.testing.assert_close(got[key][live], ref[key][live])
    assert torch.equal(got["flatten_ids"].long(), ref["flatten_ids"].long())


@pytest.mark.gpu
@needs_cuda
@needs_gsplat
@needs_garden
def test_torch_matches_gsplat_garden() -> None:
    scene, size = load_garden(device="cuda")
    out, alpha = _render(raster.BACKENDS["torch"], scene, size)
    ref_out, ref_alpha = _render(raster.BACKENDS["gsplat"], scene, size)
    assert ref_alpha.mean() > 0.3
    _mostly_close(out, ref_out)
    _mostly_close(alpha, ref_alpha)
