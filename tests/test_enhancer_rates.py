"""The enhancer's augmentation rate (``train_enhancer.augment-rate``), its SSIM loss term, the loop config it
shares with the generators (``fairsplat.train.loop.step_loop_config``) and stage enhance's absent sources."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from fairsplat.degrade.registry import AUGMENTATIONS

pytestmark = pytest.mark.usefixtures("one_thread")


def _pairs(augmented: list[bool], stored: list[list[str]], s: int = 32):
    from fairsplat.enhancer.data import Pairs

    n = len(augmented)
    g = torch.Generator().manual_seed(0)
    img = lambda: torch.randint(0, 255, (n, 3, s, s), generator=g, dtype=torch.uint8)  # noqa: E731
    return Pairs([f"p{i}" for i in range(n)], [f"i{i}" for i in range(n)], ["s"] * n, ["train"] * n, ["I"] * n,
                 [["noise"]] * n, augmented, img(), img(), torch.zeros(n, s, s, dtype=torch.uint8), stored)  # fmt: skip


def test_scaled_augmentations_scale_each_probability_and_cap_at_one():
    from fairsplat.enhancer.data import scaled_augmentations

    base = {n: cls.Params() for n, cls in AUGMENTATIONS.items()}
    half = scaled_augmentations(base, 0.5)
    assert {n: p.prob for n, p in half.items()} == {n: 0.5 * p.prob for n, p in base.items()}
    assert all(p.prob == 1.0 for p in scaled_augmentations(base, 100.0).values())
    assert all(half[n] == replace(base[n], prob=half[n].prob) for n in base), "only the probability changes"


def test_augmentation_rates_add_the_stored_share_and_the_fresh_draws():
    from fairsplat.enhancer.data import augmentation_rates, scaled_augmentations

    # 4 pairs: one stored noise_boost, one stored blur_blobs + brightness_shift, two bare
    pairs = _pairs([True, True, False, False], [["noise_boost"], ["blur_blobs", "brightness_shift"], [], []])
    base = {n: cls.Params() for n, cls in AUGMENTATIONS.items()}
    got = augmentation_rates(pairs, range(4), scaled_augmentations(base, 1.0))
    bare = 2 / 4
    want = {"blur_blobs": 1 / 4 + bare * base["blur_blobs"].prob, "noise_boost": 1 / 4 + bare * base["noise_boost"].prob,
            "brightness_shift": 1 / 4 + bare * base["brightness_shift"].prob,
            "extra_desaturation": bare * base["extra_desaturation"].prob}  # fmt: skip
    assert got == pytest.approx(want, abs=1e-4)
    stored_only = augmentation_rates(pairs, range(4), scaled_augmentations(base, 0.0))
    assert stored_only == pytest.approx({"blur_blobs": 0.25, "noise_boost": 0.25, "brightness_shift": 0.25,
                                         "extra_desaturation": 0.0})  # fmt: skip
    assert augmentation_rates(pairs, range(4), None) == stored_only


def test_on_the_fly_rate_zero_leaves_every_input_as_stored_and_rate_one_is_the_old_behaviour():
    from fairsplat.enhancer.config import EnhancerTrainConfig
    from fairsplat.enhancer.data import StepPairs, on_the_fly_augmentations

    pairs = _pairs([False] * 6, [[]] * 6)
    cfg = EnhancerTrainConfig(augment_rate=0.0)
    zero = StepPairs(pairs, range(6), 4, 8, seed=3, augmentations=on_the_fly_augmentations(cfg))
    for i in range(8):
        item = zero[i]
        rows, _ = zero.pick(i)
        assert item["augmented"] == 0 and torch.equal(item["degraded"], pairs.degraded[rows].float() / 255)
    unscaled = {n: cls.Params() for n, cls in AUGMENTATIONS.items()}  # what augment: true drew before the rate
    a = StepPairs(pairs, range(6), 4, 8, seed=3, augmentations=unscaled)
    b = StepPairs(pairs, range(6), 4, 8, seed=3, augmentations=on_the_fly_augmentations(replace(cfg, augment_rate=1.0)))
    assert sum(float(a[i]["augmented"]) for i in range(8)) > 0, "some draw fires at seed 001's rates in 32 samples"
    for i in range(8):
        assert torch.equal(a[i]["degraded"], b[i]["degraded"])
    assert on_the_fly_augmentations(replace(cfg, augment=False)) is None


def test_ssim_term_joins_the_loss_with_its_weight():
    from fairsplat.enhancer.config import EnhancerTrainConfig, LossWeights
    from fairsplat.enhancer.task import EnhancerTask
    from fairsplat.train.losses import ssim_loss

    g = torch.Generator().manual_seed(1)
    out, target = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    pairs = _pairs([False], [[]])
    for w in (0.0, 2.5):
        cfg = EnhancerTrainConfig(loss=LossWeights(l1=3.0, lpips=0.0, gram=0.0, ssim=w))
        terms = EnhancerTask(cfg, pairs, [0], [], lambda: None, use_perceptual=False).losses(out, target)
        assert ("ssim" in terms) == (w > 0)
        want = 3.0 * (out - target).abs().mean() + w * ssim_loss(out, target)
        torch.testing.assert_close(terms["loss"], want)


def test_one_loop_config_for_the_generators_and_the_enhancer():
    from fairsplat.enhancer.config import EnhancerTrainConfig
    from fairsplat.enhancer.run import loop_config as enhancer_loop
    from fairsplat.ff.config import FFConfig
    from fairsplat.ff.loop_config import loop_config as ff_loop
    from fairsplat.train.loop import Every

    ff = FFConfig()
    got = ff_loop(ff, "x")
    assert (got.name, got.epochs, got.schedule, got.warmup_steps, got.grad_clip, got.grad_checkpointing) == (
        "x", 1, "cosine", ff.warmup, ff.grad_clip, ff.grad_checkpointing)  # fmt: skip
    assert (got.optim.lr, got.optim.weight_decay, tuple(got.optim.betas), got.optim.decay_norms_and_biases) == (
        ff.lr, ff.weight_decay, tuple(ff.betas), False)  # fmt: skip
    assert (got.log, got.eval, got.checkpoint) == (Every(ff.log_every), Every(ff.eval_every), Every(ff.checkpoint_every))
    en = EnhancerTrainConfig(warmup=7, lr=3e-3, log_every=2, eval_every=5, checkpoint_every=11)
    got = enhancer_loop(en)
    assert (got.name, got.schedule, got.warmup_steps, got.optim.lr, got.optim.decay_norms_and_biases) == (
        "train_enhancer", en.schedule, 7, 3e-3, True)  # fmt: skip
    assert (got.log, got.eval, got.checkpoint) == (Every(2), Every(5), Every(11))


def test_enhance_reports_a_missing_source_absent_and_scores_the_others(tmp_path, monkeypatch):
    from fairsplat.enhancer import apply
    from fairsplat.enhancer.config import EnhanceConfig

    g = torch.Generator().manual_seed(2)
    render = torch.rand(2, 3, 32, 32, generator=g)

    def fake_ff(inputs, cfg):
        yield apply.RenderBatch("ff", "s0", "III", ["t0", "t1"], render, torch.ones(2, 1, 32, 32, dtype=torch.bool),
                                render.flip(-1), torch.ones(2, 1, 32, 32), None)  # fmt: skip

    monkeypatch.setitem(apply.SOURCES, "ff", fake_ff)
    inputs = apply.Inputs(tmp_path / "head.npz", tmp_path / "curated", tmp_path / "tracks", refined=tmp_path / "nowhere")
    rows, absent = apply.run_enhance(torch.nn.Identity(), inputs, EnhanceConfig(sources=("ff", "refined")))
    assert [r["source"] for r in rows] == ["ff", "ff"] and list(absent) == ["refined"]
    assert "nowhere" in absent["refined"] and "stage refine has not run" in absent["refined"]
    assert all(r["psnr_gain"] == pytest.approx(0.0, abs=1e-6) for r in rows), "the identity enhancer changes nothing"
