"""gsplat's options beyond the basics: SH colours, antialiased mode, radius_clip, and refused options.

Each option is checked against an independent formula (SciPy's spherical
harmonics, the Mip-Splatting compensation written from the conics) and the
tiled backend against the dense reference on values and gradients.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import sph_harm_y
from test_raster import COMPOSITORS, GRAD_TOL, H, W, make_scene, render

from fairsplat.splat import raster, sh


def real_sh_reference(degree: int, dirs: np.ndarray) -> np.ndarray:  # [N, 3] unit -> [N, (degree+1)^2]
    """Real SH from SciPy's complex Y_l^m (Condon-Shortley phase): sqrt2 Im for m < 0, sqrt2 Re for m > 0."""
    theta, phi = np.arccos(np.clip(dirs[:, 2], -1, 1)), np.arctan2(dirs[:, 1], dirs[:, 0])
    cols = []
    for l in range(degree + 1):  # noqa: E741
        for m in range(-l, l + 1):
            y = sph_harm_y(l, abs(m), theta, phi)
            cols.append(np.sqrt(2) * y.imag if m < 0 else (y.real if m == 0 else np.sqrt(2) * y.real))
    return np.stack(cols, 1)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_basis_matches_scipy(degree: int) -> None:
    g = torch.Generator().manual_seed(degree)
    d = torch.nn.functional.normalize(torch.randn(200, 3, generator=g, dtype=torch.float64), dim=-1)
    got = sh.sh_basis(degree, d)
    np.testing.assert_allclose(got.numpy(), real_sh_reference(degree, d.numpy()), rtol=0, atol=1e-12)
    assert got.shape == (200, (degree + 1) ** 2)


def test_sh_to_color_rule_and_gradients() -> None:
    """+0.5 and clamp at 0 as gsplat; bands above the degree ignored; autograd matches finite differences."""
    g = torch.Generator().manual_seed(0)
    dirs, coeffs = torch.randn(6, 3, generator=g).double(), torch.randn(6, 16, 3, generator=g).double()
    want = (sh.sh_basis(2, torch.nn.functional.normalize(dirs, dim=-1))[..., None] * coeffs[:, :9]).sum(1) + 0.5
    torch.testing.assert_close(sh.sh_to_color(2, 3.0 * dirs, coeffs), want.clamp_min(0.0))
    assert (want < 0).any(), "the clamp must be exercised"
    coeffs = coeffs * 0.1  # keep away from the clamp's kink for gradcheck
    assert torch.autograd.gradcheck(lambda d, c: sh.sh_to_color(3, d, c), (dirs.requires_grad_(), coeffs.requires_grad_()))
    with pytest.raises(ValueError, match="sh_degree"):
        sh.sh_basis(4, dirs)


def _sh_scene(per_camera: bool = False) -> dict:
    s = make_scene()
    coeffs = 0.4 * torch.randn(64, 16, 3, generator=torch.Generator().manual_seed(7))
    s["colors"] = torch.stack([coeffs, coeffs.flip(0)]) if per_camera else coeffs
    return s


@pytest.mark.parametrize("per_camera", [False, True])
def test_sh_render_equals_precomputed_colours(per_camera: bool) -> None:
    """sh_degree=3: same image as colours evaluated towards each camera centre (from inverse(viewmat))."""
    s = _sh_scene(per_camera)
    out, alpha, _ = render(raster.render_tiled, s, sh_degree=3)
    centres = torch.linalg.inv(s["viewmats"])[:, :3, 3]  # [C, 3]
    coeffs = s["colors"] if per_camera else s["colors"].expand(2, -1, -1, -1)
    cols = torch.stack([sh.sh_to_color(3, s["means"] - centres[c], coeffs[c]) for c in range(2)])  # [C, N, 3]
    ref, ref_a, _ = render(raster.render_tiled, dict(s, colors=cols))
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(alpha, ref_a)


@pytest.mark.parametrize("compositor", COMPOSITORS)
def test_sh_gradients_match_dense(compositor: str) -> None:
    """With SH, means also get a gradient through the viewing direction; tiled == dense."""
    s = _sh_scene()
    _, _, ref = render(raster.render_dense, s, grad=True, sh_degree=2)
    _, _, got = render(raster.COMPOSITORS[compositor], s, grad=True, sh_degree=2)
    for name, g in ref.items():
        torch.testing.assert_close(got[name], g, **GRAD_TOL, msg=lambda m, n=name: f"{n}: {m}")
    assert ref["colors"][:, 9:].abs().max() == 0, "bands above sh_degree get no gradient"


def test_antialiased_compensation_formula() -> None:
    """meta opacities = o * sqrt(det(cov) / det(cov + eps2d I)), cov rebuilt from the blurred conic."""
    s = make_scene()
    _, _, plain = render(raster.render_tiled, s)
    _, _, aa = render(raster.render_tiled, s, rasterize_mode="antialiased")
    a, b, c = plain["conics"].double().unbind(-1)
    det_inv = a * c - b * b
    cxx, cxy, cyy = c / det_inv, -b / det_inv, a / det_inv  # blurred covariance
    det_blur = cxx * cyy - cxy**2
    det_orig = (cxx - 0.3) * (cyy - 0.3) - cxy**2
    want = s["opacities"].double() * torch.sqrt((det_orig / det_blur).clamp_min(0))
    live = aa["radii"].amax(-1) > 0
    assert live.sum() > 50
    torch.testing.assert_close(aa["opacities"][live].double(), want[live], rtol=1e-4, atol=1e-6)
    assert (aa["opacities"][live] < s["opacities"].expand(2, -1)[live]).all()


@pytest.mark.parametrize("compositor", COMPOSITORS)
def test_antialiased_matches_dense(compositor: str) -> None:
    s = make_scene()
    ref, ref_a, ref_g = render(raster.render_dense, s, grad=True, rasterize_mode="antialiased")
    out, alpha, got = render(raster.COMPOSITORS[compositor], s, grad=True, rasterize_mode="antialiased")
    torch.testing.assert_close(out.detach(), ref.detach())
    torch.testing.assert_close(alpha.detach(), ref_a.detach())
    for name, g in ref_g.items():
        torch.testing.assert_close(got[name], g, **GRAD_TOL, msg=lambda m, n=name: f"{n}: {m}")


def test_radius_clip_culls_small_footprints() -> None:
    s = make_scene()
    _, _, plain = render(raster.render_tiled, s)
    out, alpha, meta = render(raster.render_tiled, s, radius_clip=3.0)
    ref, ref_a, _ = render(raster.render_dense, s, radius_clip=3.0)
    small = (plain["radii"] <= 3).all(-1) & (plain["radii"] > 0).any(-1)
    assert small.sum() > 0 and (meta["radii"][small] == 0).all()
    assert torch.equal(meta["radii"][~small], plain["radii"][~small])
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(alpha, ref_a)


@pytest.mark.parametrize("name", ["means", "scales", "opacities", "colors", "Ks"])
def test_inf_raises_naming_the_tensor(name: str) -> None:
    s = make_scene()
    s[name].view(-1)[5] = float("inf")
    with pytest.raises(ValueError, match=f"^{name}: contains inf"):
        raster.rasterization(*s.values(), W, H)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"packed": True}, "packed"), ({"absgrad": True}, "absgrad"), ({"sparse_grad": True}, "sparse_grad"),
     ({"camera_model": "fisheye"}, "camera_model"), ({"rasterize_mode": "mip"}, "rasterize_mode"),
     ({"sh_degree": 4}, "sh_degree"), ({"sh_degree": 1}, "colors"), ({"near_plane": 0.0}, "near_plane"),
     ({"far_plane": 0.001}, "far_plane"), ({"eps2d": float("nan")}, "eps2d"), ({"radius_clip": -1.0}, "radius_clip")],
)  # fmt: skip
def test_unsupported_or_bad_options_are_refused(kwargs: dict, key: str) -> None:
    """Never silently ignored: an option we do not implement fails naming itself."""
    s = make_scene()
    with pytest.raises(ValueError, match=f"^{key}"):
        raster.rasterization(*s.values(), W, H, **kwargs)


def test_sh_colours_shape_checked() -> None:
    s = _sh_scene()
    with pytest.raises(ValueError, match="^colors: sh_degree 3 needs >= 16"):
        raster.rasterization(*dict(s, colors=s["colors"][:, :9]).values(), W, H, sh_degree=3)
    with pytest.raises(ValueError, match="^backgrounds"):
        raster.rasterization(*s.values(), W, H, sh_degree=3, backgrounds=torch.zeros(2, 16))
    out, _, _ = raster.rasterization(*s.values(), W, H, sh_degree=3, backgrounds=torch.zeros(2, 3))
    assert out.shape == (2, H, W, 3)
