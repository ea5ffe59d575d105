"""The screen-space aspect penalty against its slow per-Gaussian eigenvalue twin (values and gradients), and its edges."""

from __future__ import annotations

import math

import pytest
import torch

from fairsplat.refine.aspect import (
    aspect_penalty,
    aspect_penalty_reference,
    bound,
    log_aspect,
    screen_log_aspect,
    spike_stats,
    turn_about,
)
from fairsplat.splat.camera import intrinsics, look_at

pytestmark = pytest.mark.usefixtures("one_thread")


def _scene(n: int = 48, seed: int = 0, spread: float = 0.8):
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g) - 0.5) * 0.15
    quats = torch.randn(n, 4, generator=g)
    log_scales = torch.randn(n, 3, generator=g) * spread + math.log(0.008)
    opac = torch.rand(n, generator=g) * 0.9 + 0.05
    views = torch.stack([look_at((0.0, 0.0, 0.9), (0.0, 0.0, 0.0)), look_at((0.35, 0.1, 0.8), (0.0, 0.0, 0.0))])
    Ks = intrinsics(64, 64, fov_deg=30.0).expand(2, 3, 3)
    return [t.double() for t in (means, quats, log_scales, opac, views, Ks)]


@pytest.mark.parametrize("tau", [0.0, 0.3, 1.0])
def test_penalty_matches_the_eigenvalue_loop_values_and_gradients(tau):
    means, quats, log_scales, opac, views, Ks = _scene()
    leaves = [t.clone().requires_grad_() for t in (means, quats, log_scales)]

    def fast(m, q, s):
        lr, vis = screen_log_aspect(m, q, s.exp(), opac, views, Ks, 64)
        return aspect_penalty(lr, vis, tau)

    def slow(m, q, s):
        return aspect_penalty_reference(m, q, s.exp(), opac, views, Ks, 64, tau)

    a, b = fast(*leaves), slow(*leaves)
    assert a.item() > 0 or tau > 0.5  # the scene has spikes: the test is not vacuous
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    ga, gb = torch.autograd.grad(a, leaves), torch.autograd.grad(b, leaves)
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, rtol=1e-8, atol=1e-12)


def test_log_aspect_closed_form_and_isotropy():
    tri = torch.tensor([[4.0, 0.0, 1.0], [2.0, 1.0, 2.0], [1.0, 0.0, 1.0], [5.0, 2.0, 1.0]], dtype=torch.float64)
    want = []
    for a, b, c in tri.tolist():
        lam = torch.linalg.eigvalsh(torch.tensor([[a, b], [b, c]], dtype=torch.float64))
        want.append(math.log(lam[1] / lam[0]))
    torch.testing.assert_close(log_aspect(tri), torch.tensor(want, dtype=torch.float64))
    iso = torch.tensor([[2.0, 0.0, 2.0]], dtype=torch.float64, requires_grad=True)  # sqrt's kink: finite gradient
    (g,) = torch.autograd.grad(torch.relu(0.5 * log_aspect(iso) - 0.5).sum(), iso)
    assert torch.isfinite(g).all() and (g == 0).all()


def test_round_gaussians_cost_nothing_and_spikes_count():
    means, quats, log_scales, opac, views, Ks = _scene(spread=0.0)  # isotropic: ratio 1 everywhere
    lr, vis = screen_log_aspect(means, quats, log_scales.exp(), opac, views, Ks, 64)
    assert vis.any() and aspect_penalty(lr, vis, 0.1).item() == 0.0
    stats = spike_stats(lr[vis], 0.1)
    assert stats["spike_frac"] == 0.0 and stats["aspect_max"] < 1.1  # perspective only
    spiky = torch.log(torch.tensor([1.0, 2.0, 20.0, 100.0]))
    s = spike_stats(spiky, tau=1.0)  # bound e^2 = 7.39: two of four above
    assert s["spike_frac"] == 0.5 and s["aspect_max"] == pytest.approx(100.0) and bound(1.0) == pytest.approx(math.e**2)
    assert spike_stats(torch.zeros(0), 1.0)["spike_frac"] is None


def test_nothing_visible_gives_zero_not_nan():
    means, quats, log_scales, opac, views, Ks = _scene()
    behind = means + torch.tensor([0.0, 0.0, 5.0], dtype=torch.float64)  # behind the cameras
    lr, vis = screen_log_aspect(behind, quats, log_scales.exp(), opac, views, Ks, 64)
    assert not vis.any() and aspect_penalty(lr, vis, 0.5).item() == 0.0


def _rot_about_axis(axis: torch.Tensor, deg: float) -> torch.Tensor:  # [3], degrees -> [3, 3] (Rodrigues)
    k = axis / axis.norm()
    kx = torch.tensor([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]], dtype=axis.dtype)
    a = math.radians(deg)
    return torch.eye(3, dtype=axis.dtype) + math.sin(a) * kx + (1 - math.cos(a)) * kx @ kx


@pytest.mark.parametrize("yaw,pitch", [(0.0, 0.0), (15.0, 0.0), (0.0, -10.0), (-12.0, 7.0)])
def test_turn_about_equals_turning_the_points_about_the_centre(yaw, pitch):
    """Reference: turn every world point about the centre (yaw about the camera's down axis, then pitch about its
    right axis, Rodrigues per point) and view it with the original camera; the turned camera must see the same."""
    means, *_, views, _ = _scene()
    vm, centre = views[1], means.mean(0)
    turned = turn_about(vm, centre, torch.tensor([yaw], dtype=vm.dtype), torch.tensor([pitch], dtype=vm.dtype))[0]
    right, down = vm[0, :3], vm[1, :3]  # the camera's axes in world coordinates
    r_world = _rot_about_axis(right, pitch) @ _rot_about_axis(down, yaw)  # [3, 3] the same turn, in world axes
    for p in means:
        q = r_world @ (p - centre) + centre  # the turned point, world
        want = vm[:3, :3] @ q + vm[:3, 3]
        got = turned[:3, :3] @ p + turned[:3, 3]
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(turned[:3, :3] @ turned[:3, :3].T, torch.eye(3, dtype=vm.dtype))  # still a rotation
    if yaw == pitch == 0.0:
        torch.testing.assert_close(turned, vm)
