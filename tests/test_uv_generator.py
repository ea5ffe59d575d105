"""Seed 003's UV generator (issue 17): params, pooling, heads, samplers, a two-phase run and the hand-off to refine."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from fairsplat.avatar.binding import AvatarBinding
from fairsplat.config import ParamsError
from fairsplat.ff.data import gather, load_frames, mix_identities
from fairsplat.ff.uv_context import code_dim, predict, uv_context
from fairsplat.ff.uv_data import MultiViewBatches, TemporalBatches, frame_view, split_phases
from fairsplat.head.model import HeadModel
from fairsplat.models.generator import load_generator
from fairsplat.models.uv.generator import UVGenerator
from fairsplat.sections.train_ff import TrainFFParams
from fairsplat.train.accel import AccelConfig, build_accelerator, fresh_state

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_UV = {"resolution": 16, "dense-dim": 8, "style-dim": 8, "channels": 8, "out-dim": 8, "head-hidden": 8,
           "phase1": {"steps": 2, "lr": 1e-3}, "phase2": {"steps": 2, "lr": 1e-3, "anchor": 1e-3, "mix": 0.5}}  # fmt: skip


def _section(tiny, **uv):
    raw = {k.replace("-", "_"): v for k, v in tiny.params["train_ff"].items() if k not in ("loss", "uv", "arch")}
    head = HeadModel.load(tiny.out("head") / "head.npz")
    block = {**TINY_UV, "code-dim": head.n_expr + 3 * (head.n_joints - 1), **uv}
    return TrainFFParams(**raw, arch="uv", uv=block), head


def test_a_bad_arch_names_its_key(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("train_ff:\n  arch: unet\n")
    with pytest.raises(ParamsError, match=r"train_ff\.arch"):
        TrainFFParams.load(p)
    p.write_text("train_ff:\n  uv: {pool: max}\n")
    with pytest.raises(ParamsError, match=r"train_ff\.uv\.pool"):
        TrainFFParams.load(p)


def test_defaults_stay_lam_and_uv_builds_both_phases():
    assert TrainFFParams().arch == "lam"
    cfg = TrainFFParams(arch="uv").ff_config()
    assert cfg.arch == "uv" and cfg.model.binding.kind == "uv" and cfg.model.uv.out_dim == 32
    assert cfg.uv.phase1.name == "phase1" and cfg.uv.phase2.mix == 0.25 and cfg.uv.loss.jac == 0.1
    only1 = TrainFFParams(arch="uv", uv={"phase2": {"steps": 0}}).ff_config()
    assert only1.uv.phase2 is None


@pytest.fixture(scope="module")
def setup(tiny_pipeline):
    sec, head = _section(tiny_pipeline)
    cfg = sec.ff_config()
    frames = load_frames(tiny_pipeline.out("curate"), tiny_pipeline.out("track"), ["train", "val", "test"])
    binding = AvatarBinding(head, cfg.model.binding)
    return cfg, frames, binding, head


def _batch(frames, k: int):
    rows = next(iter(frames.by_subject(["train"]).values()))
    return gather(frames, [rows[:k]], [rows[-1]])


def test_mean_pool_is_order_invariant_and_the_identity_for_k1(setup):
    cfg, frames, binding, _ = setup
    torch.manual_seed(0)
    model = UVGenerator(cfg.model).eval()
    b2 = _batch(frames, 2)
    flip = {**b2, "sources": b2["sources"].flip(1), "source_rows": b2["source_rows"].flip(1)}
    with torch.no_grad():
        a = model.uv_features(b2["sources"], uv_context(binding, frames, b2))
        b = model.uv_features(flip["sources"], uv_context(binding, frames, flip))
        torch.testing.assert_close(a, b)
        b1 = _batch(frames, 1)
        one = model.uv_features(b1["sources"], uv_context(binding, frames, b1))
        dup = {**b1, "sources": b1["sources"].repeat(1, 2, 1, 1, 1), "source_rows": b1["source_rows"].repeat(1, 2)}
        torch.testing.assert_close(model.uv_features(dup["sources"], uv_context(binding, frames, dup)), one)


def test_attributes_have_one_slot_per_texel_and_gradients_reach_the_encoder(setup):
    cfg, frames, binding, _ = setup
    model = UVGenerator(cfg.model)
    batch = _batch(frames, 2)
    attrs = predict(model, binding, frames, batch, None)
    assert attrs.offsets.shape == (1, len(binding), 3) and attrs.opacities.shape == (1, len(binding))
    (attrs.colors.sum() + attrs.offsets.sum()).backward()
    enc = [p.grad for p in model.encoder.parameters() if p.requires_grad]
    assert enc and any(g is not None and g.abs().sum() > 0 for g in enc)
    with pytest.raises(ValueError, match="uv_context"):
        model(batch["sources"], None)


def test_residual_head_moves_geometry_and_colour_never_opacity(setup):
    cfg, frames, binding, _ = setup
    torch.manual_seed(1)
    model = UVGenerator(cfg.model).eval()
    for w in (model.residual.conv2.weight, model.residual.conv1.affine.weight, model.residual.conv2.affine.weight):
        torch.nn.init.normal_(w, std=0.5)  # as a trained head (its output and its style start at zero)
    batch = _batch(frames, 1)
    ctx = uv_context(binding, frames, batch)
    with torch.no_grad():
        feats = model.uv_features(batch["sources"], ctx)
        a = model.decode(feats, ctx).attrs
        b = model.decode(feats, {**ctx, "code": ctx["code"] + 1.0}).attrs
    torch.testing.assert_close(a.opacities, b.opacities)
    assert not torch.allclose(a.colors, b.colors) and not torch.allclose(a.offsets, b.offsets)
    assert ctx["code"].shape[-1] == code_dim(binding)


def test_phase_samplers(setup):
    cfg, frames, _, _ = setup
    subjects = mix_identities(frames, "train", cfg.type_mix, 0)
    p1, p2 = split_phases(subjects, 0.5, 0)
    assert p1 and p2 and not set(p1) & set(p2) and sorted(p1 + p2) == sorted(subjects)
    frame, view = frame_view(frames)
    t = TemporalBatches(frames, subjects, 4, 2, 3, 0)
    for i in range(3):
        sources, targets = t.pick(i)
        for s, tg in zip(sources, targets):
            assert {view[r] for r in s} == {view[tg]} and tg not in s  # one camera, another frame
            assert all(frame[r] != frame[tg] for r in s)
    m = MultiViewBatches(frames, subjects, 4, 2, 3, 0, mix=0.5)
    times = {s: {frame[r] for r in rows} for s, rows in frames.by_subject().items()}
    for i in range(3):
        sources, targets = m.pick(i)
        for j, (s, tg) in enumerate(zip(sources, targets)):
            same_time = all(frame[r] == frame[tg] for r in s)
            if j < 2 and len(times[frames.subject[tg]]) > 1:  # round(0.5 * 4) cross-time pairs where a subject allows
                assert all(frame[r] != frame[tg] for r in s)
            elif j >= 2:  # cross-camera: same frame, another view (when the frame has two)
                assert same_time and (tg not in s or len(set(s)) == 1)


def test_two_phase_run_saves_a_generator_that_refine_accepts(setup, tiny_pipeline, tmp_path):
    """train_ff's code path for arch uv (both phases, the anchor on), saved as the stage saves it, reloaded by
    load_generator, and refined by stage refine's own function with no conversion."""
    from fairsplat.ff.run import run_train_ff
    from fairsplat.io.checkpoint import save_weights
    from fairsplat.refine.run import run_refine
    from fairsplat.sections.refine import RefineParams

    cfg, _, _, head = setup
    cfg = replace(cfg, reference="none", workers=1, eval_every=1, checkpoint_every=1)
    with fresh_state():
        acc = build_accelerator(AccelConfig(device="cpu"))
        res = run_train_ff(cfg, tiny_pipeline.out("head") / "head.npz", tiny_pipeline.out("curate"),
                           tiny_pipeline.out("track"), acc, False, tmp_path / "ck", "fp")  # fmt: skip
    hist = res.histories["ff"]
    assert any("phase1/loss" in r for r in hist) and any("phase2/anchor" in r for r in hist)
    assert any(r.get("phase1/jac", 0) > 0 for r in hist)
    assert {r["variant"] for r in res.rows} == {"ff", "baseline"} and all(r["psnr"] is not None for r in res.rows)
    out = tmp_path / "ff"
    save_weights(out, res.models["ff"].state_dict(), {**cfg.model.to_json(), "size": cfg.size})
    model, meta = load_generator(out)
    assert isinstance(model, UVGenerator) and meta["arch"] == "uv"
    for k, v in res.models["ff"].state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    from fairsplat.testing.pipeline import MICRO

    rp = {k.replace("-", "_"): v for k, v in MICRO["refine"].items()}
    rcfg = replace(RefineParams(**rp).refine_config(), iterations=4, strategies=("scale-freeze", "aspect"))
    run = run_refine(rcfg, head, tiny_pipeline.out("curate"), tiny_pipeline.out("track"), out, tmp_path / "refine",
                     "fp", False)  # fmt: skip
    assert run.results, run.rejects
    variants = {r["variant"] for r in run.results[0].rows}
    assert variants == {"ff", "refined"} and all(r["psnr"] is not None for r in run.results[0].rows)
