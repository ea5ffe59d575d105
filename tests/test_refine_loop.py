"""The refinement loop and its strategies on a toy head: freeze, clamp, aspect, adaptive TTO, NaN, the reference frame."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from fairsplat.avatar.avatar import Avatar
from fairsplat.avatar.binding import AvatarBinding, BindingSpec
from fairsplat.refine.config import AspectConfig, ClampConfig, RefineConfig, ScaleFreezeConfig, TTOConfig
from fairsplat.refine.data import heldout_count, reference_frame
from fairsplat.refine.loop import RefineDiverged, Views, recomposite, refine, render_views
from fairsplat.refine.strategies import STRATEGIES, AdaptiveTTO, LogScaleClamp, StepContext, Strategy, build_strategies
from fairsplat.splat.camera import intrinsics, look_at
from fairsplat.testing.toy_head import make_toy_head

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 32


@pytest.fixture(scope="module")
def toy():
    """A toy-head avatar, and 3 views of a differently coloured copy of it as targets."""
    head = make_toy_head()
    binding = AvatarBinding(head, BindingSpec("points", max_points=96))
    init = Avatar.neutral(binding, colour=0.5, opacity=0.8)
    g = torch.Generator().manual_seed(0)
    truth = replace(init, colors=torch.rand(len(binding), 3, generator=g))
    centre = torch.as_tensor(head.v_template).float().mean(0)
    eyes = [centre + torch.tensor([x, 0.0, 0.55]) for x in (-0.15, 0.0, 0.15)]
    t = len(eyes)
    views = Views(torch.zeros(t, 3, SIZE, SIZE), torch.zeros(t, 1, SIZE, SIZE), torch.zeros(t, head.n_expr),
                  torch.zeros(t, 15), torch.zeros(t, 3), torch.stack([look_at(e, centre) for e in eyes]),
                  intrinsics(SIZE, SIZE, fov_deg=30.0).expand(t, 3, 3))  # fmt: skip
    with torch.no_grad():
        rgb, alpha, _ = render_views(truth, views, SIZE, torch.full((3,), 0.5))
    assert float(alpha.max()) > 0.5, "the toy head is not in view"
    return init, replace(views, images=rgb, alpha=alpha)


class Recorder(Strategy):
    """Snapshots a parameter after every optimiser step."""

    name = "recorder"

    def __init__(self, key: str) -> None:
        self.key, self.seen = key, []

    def post_step(self, ctx: StepContext) -> None:
        self.seen.append(ctx.params[self.key].detach().clone())


class Poison(Strategy):
    name = "poison"

    def __init__(self, at: int) -> None:
        self.at = at

    def post_step(self, ctx: StepContext) -> None:
        if ctx.step + 1 == self.at:
            with torch.no_grad():
                ctx.params["colors"][0, 0] = math.nan


def _cfg(**over) -> RefineConfig:
    return replace(RefineConfig(iterations=6, strategies=()), **over)


def test_refinement_fits_the_targets(toy):
    init, views = toy
    res = refine(init, views, _cfg(iterations=60), [])
    grey = torch.full((3,), 0.5)
    before = (render_views(init, views, SIZE, grey)[0] - views.images).abs().mean()
    after = (render_views(res.avatar, views, SIZE, grey)[0] - views.images).abs().mean()
    assert after < 0.6 * before, (float(before), float(after))
    assert res.iterations == 60 and res.history[-1]["iteration"] == 60
    assert len(res.avatar.offsets) == len(init.offsets)  # no densification


def test_scale_freeze_leaves_scales_bit_identical_until_it_ends(toy):
    init, views = toy
    rec = Recorder("log_scales")
    cfg = _cfg(iterations=8, strategies=("scale-freeze",), scale_freeze=ScaleFreezeConfig(until=5))
    refine(init, views, cfg, build_strategies(cfg, init.binding.base_log_scales) + [rec])
    for s in rec.seen[:5]:
        assert torch.equal(s, init.log_scales)
    assert not torch.equal(rec.seen[5], init.log_scales)  # unfrozen: it moves at once
    rec2 = Recorder("log_scales")
    refine(init, views, _cfg(iterations=2), [rec2])  # without the strategy, scales move from the first step
    assert not torch.equal(rec2.seen[0], init.log_scales)


def test_clamp_bounds_log_scales_from_its_start(toy):
    init, views = toy
    base = init.binding.base_log_scales
    wide = replace(init, log_scales=base + torch.linspace(-5.0, 3.0, len(base))[:, None])  # both sides out of bounds
    cfg = _cfg(iterations=6, strategies=("log-scale-clamp",), clamp=ClampConfig(start=3, min=-2.0, max=0.5))
    rec = Recorder("log_scales")
    clamp = LogScaleClamp(base, cfg.clamp)
    res = refine(wide, views, cfg, [clamp, rec])
    inplane = base.max(-1, keepdim=True).values
    assert (rec.seen[2] > inplane + 0.5 + 1e-3).any() and (rec.seen[2] < inplane - 2.0 - 1e-3).any()  # not yet
    for s in rec.seen[3:]:  # from step 3 (0-based) on, as scale-freeze's `until` counts
        assert (s <= inplane + 0.5 + 1e-6).all() and (s >= inplane - 2.0 - 1e-6).all()
    assert res.strategies["log-scale-clamp"]["clamped"] > 0


def test_aspect_penalty_joins_the_loss_from_its_start_and_flattens_spikes(toy):
    init, views = toy
    base = init.binding.base_log_scales
    spiky = replace(init, log_scales=base + torch.tensor([1.5, -1.0, -1.5]))  # long thin needles
    cfg = _cfg(iterations=40, strategies=("aspect",), aspect=AspectConfig(weight=5.0, tau=0.3, start=5),
               lr=replace(RefineConfig().lr, log_scales=0.05), l1=0.0, ssim=1e-6)  # fmt: skip
    res = refine(spiky, views, cfg, build_strategies(cfg, base), log_every=5)
    assert "aspect" not in res.history[0] and "aspect" in res.history[-1]
    assert res.history[-1]["aspect"] < 0.5 * res.history[1]["aspect"]


def test_aspect_penalty_on_turned_cameras_matches_the_eigenvalue_loop_values_and_gradients(toy):
    """jitter-views: the render's camera plus J turned copies (drawn from the strategy's seeded generator), the mean
    hinge over all of them; against the slow per-Gaussian eigenvalue twin on the same cameras."""
    from fairsplat.refine.aspect import aspect_penalty_reference, turn_about
    from fairsplat.refine.strategies import AspectPenalty

    init, views = toy
    cfg = AspectConfig(weight=3.0, tau=0.2, start=0, jitter_views=3, jitter_deg=20.0)
    means, quats, scales = (t[0].detach().double().requires_grad_() for t in init.posed(views.expr[:1], views.pose[:1], views.transl[:1]))
    scales = (scales * torch.tensor([2.0, 1.0, 0.3], dtype=torch.float64)).detach().requires_grad_()  # some are spikes
    opac = init.opacities.detach().double()
    vm, K = views.viewmat[1:2].double(), views.K[1:2].double()
    ctx = StepContext({}, None, SIZE, 1, means=means, quats=quats, scales=scales, opacities=opac, viewmat=vm, K=K)
    got = AspectPenalty(cfg, seed=7).pre_backward(ctx)["aspect"]
    g = torch.Generator().manual_seed(7)
    yaw, pitch = ((torch.rand(2, 3, generator=g) * 2 - 1) * 20.0).double()
    cams = torch.cat([vm, turn_about(vm[0], means.detach().mean(0), yaw, pitch)])  # [4, 4, 4]
    want = 3.0 * aspect_penalty_reference(means, quats, scales, opac, cams, K.expand(4, 3, 3), SIZE, 0.2)
    assert float(want.detach()) > 0, "the scene has no spikes: the test would compare zeros"
    torch.testing.assert_close(got, want)
    for a, b in zip(torch.autograd.grad(got, (means, scales)), torch.autograd.grad(want, (means, scales))):
        torch.testing.assert_close(a, b)
    only = AspectPenalty(replace(cfg, jitter_views=0)).pre_backward(ctx)["aspect"]  # the seed's form: one camera
    torch.testing.assert_close(only, 3.0 * aspect_penalty_reference(means, quats, scales, opac, vm, K, SIZE, 0.2))


def test_turned_cameras_keep_spikes_down_in_poses_no_camera_saw(toy):
    """The reason for jitter-views: refined on 3 frontal views, the penalty with turned copies leaves fewer spikes in
    views turned 25 deg than the penalty on the training cameras alone."""
    from fairsplat.refine.aspect import screen_log_aspect, turn_about

    init, views = toy
    base = init.binding.base_log_scales
    spiky = replace(init, log_scales=base + torch.tensor([1.0, -0.5, -1.5]))
    cfg = _cfg(iterations=60, strategies=("aspect",), aspect=AspectConfig(weight=5.0, tau=0.5, start=0, jitter_deg=30.0),
               lr=replace(RefineConfig().lr, log_scales=0.05, quats=0.02), l1=0.0, ssim=1e-6)  # fmt: skip

    def turned_spikes(avatar):
        with torch.no_grad():
            means, quats, scales = avatar.posed(views.expr[:1], views.pose[:1], views.transl[:1])
            d = torch.tensor([25.0, -25.0, 25.0, -25.0])
            cams = turn_about(views.viewmat[1], means[0].mean(0), d, d.roll(1))
            lr, vis = screen_log_aspect(means[0], quats[0], scales[0], avatar.opacities, cams, views.K[:1].expand(4, 3, 3), SIZE)
            return float((lr[vis] > 2 * 0.5).double().mean())

    plain = refine(spiky, views, cfg, build_strategies(cfg, base)).avatar
    jcfg = replace(cfg, aspect=replace(cfg.aspect, jitter_views=2))
    turned = refine(spiky, views, jcfg, build_strategies(jcfg, base)).avatar
    assert turned_spikes(spiky) > 0.5  # the start is mostly spikes
    print("turned-view spikes", turned_spikes(spiky), turned_spikes(plain), turned_spikes(turned))
    assert turned_spikes(turned) < 0.5 * turned_spikes(plain), (turned_spikes(turned), turned_spikes(plain))


def test_nan_stops_the_subject_naming_the_iteration(toy):
    init, views = toy
    with pytest.raises(RefineDiverged, match=r"subj_7: parameter 'colors' is not finite at iteration 3"):
        refine(init, views, _cfg(iterations=6), [Poison(at=3)], subject="subj_7")


def test_adaptive_tto_extends_while_the_watched_loss_falls_up_to_the_cap():
    def drive(losses, iterations=4, extend=2, cap=10, min_gain=0.05):
        it = iter(losses)
        tto = AdaptiveTTO(TTOConfig(extend=extend, cap=cap, min_gain=min_gain, watch=1))
        ctx = StepContext({}, None, SIZE, iterations, watch_loss=lambda: next(it))
        while ctx.step < ctx.budget:
            tto.post_step(ctx)
            ctx.step += 1
        return ctx.budget, tto

    budget, tto = drive([1.0, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])  # always improving: up to the cap
    assert budget == 10 and tto.extensions == 3
    assert [n for n, _ in tto.checks] == [2, 4, 6, 8, 10]
    budget, _ = drive([1.0, 0.99])  # 1 % < 5 %: no extension
    assert budget == 4
    budget, tto = drive([1.0, 0.8, 0.79])  # one extension, then it stalls
    assert budget == 6 and tto.extensions == 1


def test_adaptive_tto_in_the_loop_watches_held_out_images(toy):
    init, views = toy
    cfg = _cfg(iterations=4, strategies=("adaptive-tto",), tto=TTOConfig(extend=2, cap=8, min_gain=0.0))
    res = refine(init, views.take([0, 1]), cfg, build_strategies(cfg, init.binding.base_log_scales), watch=views.take([2]))
    assert res.iterations == 8 and res.strategies["adaptive-tto"]["extensions"] == 2
    no_watch = refine(init, views.take([0, 1]), cfg, build_strategies(cfg, init.binding.base_log_scales))
    assert no_watch.iterations == 4  # nothing watched: nothing extended


def test_every_registered_strategy_builds_and_runs(toy):
    init, views = toy
    cfg = _cfg(iterations=3, strategies=tuple(STRATEGIES), scale_freeze=ScaleFreezeConfig(1), clamp=ClampConfig(start=1),
               aspect=AspectConfig(start=1), tto=TTOConfig(extend=1, cap=4))  # fmt: skip
    res = refine(init, views.take([0, 1]), cfg, build_strategies(cfg, init.binding.base_log_scales), watch=views.take([2]))
    assert set(res.strategies) == set(STRATEGIES) and 3 <= res.iterations <= 4


def test_shared_background_recomposites_the_target_exactly(toy):
    init, views = toy
    bg = torch.tensor([0.1, 0.9, 0.3])
    with torch.no_grad():
        direct, _, _ = render_views(init, views, SIZE, bg)
        grey, alpha, _ = render_views(init, views, SIZE, torch.full((3,), 0.5))
    torch.testing.assert_close(recomposite(grey, alpha, bg), direct, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "jaw, good, want",
    [
        ([0.20, 0.05, 0.12], [True, True, True], (1, "min_jaw")),
        ([0.101, 0.10, 0.105], [True, True, True], (0, "jaw_static")),  # range 0.005 < 0.02: first good frame
        ([math.nan, 0.30, 0.10], [False, True, True], (2, "min_jaw")),  # frame 0 has no jaw track: skipped
        ([math.nan, math.nan, math.nan], [False, True, True], (1, "no_jaw_track")),  # first frame with a good track
        ([math.nan, math.nan], [False, False], (0, "no_jaw_track")),  # nothing good: the first frame
    ],
)
def test_reference_frame_is_the_smallest_jaw_with_fallbacks(jaw, good, want):
    assert reference_frame(list(range(len(jaw))), jaw, good, min_range=0.02) == want


def test_heldout_count_is_a_proportion_of_the_frames():
    assert heldout_count(3, 0.3) == 1 and heldout_count(10, 0.3) == 3 and heldout_count(1, 0.3) == 1
    assert heldout_count(1200, 350 / 1200) == 350  # seed 003's last 350 frames


def test_the_penalty_from_the_renders_meta_equals_a_fresh_projection(toy):
    from fairsplat.refine.aspect import log_aspect, screen_log_aspect
    from fairsplat.refine.loop import render_one, to_avatar, to_params

    init, views = toy
    init = to_avatar(to_params(init), init)  # as the loop sees it: leaves that need a gradient
    view = views.take([1])
    _, (means, quats, scales), meta = render_one(init, view, SIZE, torch.full((3,), 0.5))
    assert meta["conics"].requires_grad  # the aspect strategy uses it, and its gradient
    fresh, visible = screen_log_aspect(means, quats, scales, init.opacities, view.viewmat, view.K, SIZE)
    assert torch.equal((meta["radii"] > 0).any(-1), visible)
    torch.testing.assert_close(log_aspect(meta["conics"])[visible].detach(), fresh[visible].detach())
