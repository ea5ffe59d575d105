"""A UV generator (``train_ff.arch: uv``) wherever a stage takes ``models/ff`` (issue 17): evaluate, enhance,
``fairsplat avatar``, refine's starting avatar through the one shared call (``fairsplat.ff.generate``), and stage
lora's refusal before work. The model is the tiny config's, with its output heads given random weights so that
its output depends on its inputs (no number here is a quality claim)."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from test_uv_generator import _section
from typer.testing import CliRunner

from fairsplat.config import ParamsError
from fairsplat.ff.data import gather, load_frames
from fairsplat.ff.generate import avatar_from_sources, generate, generator_binding, source_images, source_tracks
from fairsplat.ff.uv_context import predict
from fairsplat.io.checkpoint import save_weights
from fairsplat.models.generator import load_generator
from fairsplat.models.uv.generator import UVGenerator

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def uv(tiny_pipeline, tmp_path_factory):
    """(models/ff of a UV generator, head, curated test frames)."""
    sec, head = _section(tiny_pipeline)
    cfg = sec.ff_config()
    torch.manual_seed(0)
    model = UVGenerator(cfg.model)
    with torch.no_grad():  # the zero-initialised heads would give the binding's own Gaussians whatever the input
        for lin in (model.offset[2], model.scale[2], model.color[2], model.residual.conv2):
            lin.weight.normal_(0.0, 0.2)
    d = tmp_path_factory.mktemp("uv") / "ff"
    save_weights(d, model.state_dict(), {**cfg.model.to_json(), "size": cfg.size})
    frames = load_frames(tiny_pipeline.out("curate"), tiny_pipeline.out("track"), ["test"])
    return d, head, frames


def test_generate_is_the_training_paths_prediction_for_both_archs(uv, tiny_pipeline):
    d, head, frames = uv
    rows = next(rows for rows in frames.by_subject().values() if len(rows) >= 2)
    src, tgt = rows[:2], rows[:2]  # K = 2; two targets (other frames, so other head poses and expressions)
    for model_dir in (tiny_pipeline.out("train_ff"), d):  # LAM-style, then UV
        model, meta = load_generator(model_dir)
        binding = generator_binding(meta, head)
        batch = gather(frames, [src] * len(tgt), tgt)  # what training and train_ff's scoring feed predict
        want = predict(model, binding, frames, batch, binding.canonical(batch["shape"]))
        targets = {c: batch[f"target_{c}"] for c in ("expr", "pose", "transl", "viewmat", "K")}
        got = generate(model, binding, source_images(frames, src), source_tracks(frames, src), targets)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b)
        first = generate(model, binding, source_images(frames, src), source_tracks(frames, src))
        av = avatar_from_sources(model, binding, source_images(frames, src), source_tracks(frames, src))
        torch.testing.assert_close(av.colors, first.colors[0])
    # the UV avatar keeps its target conditioning: two target views, two sets of colours
    assert not torch.allclose(got.colors[0], got.colors[1])
    with pytest.raises(ValueError, match="tracks"):  # what the stages called before: the LAM forward signature
        model(batch["sources"], binding.canonical(batch["shape"]))


def test_evaluate_builds_the_ff_variant_and_no_lora_from_a_uv_model(uv, tiny_pipeline):
    from fairsplat.evaluate.config import EvalConfig, Inputs
    from fairsplat.evaluate.run import Job, context
    from fairsplat.evaluate.variants import BASES, VariantAbsent

    d, _, _ = uv
    repo = tiny_pipeline.repo
    inputs = Inputs(repo / "assets/head/head.npz", repo / "data/curated", repo / "data/tracks", d, repo / "models/lora",
                    repo / "data/refined", repo / "models/enhancer")  # fmt: skip
    head, frames, plan = context(Job("ff", EvalConfig(variants=("ff", "lora"), workers=1), inputs))
    built = BASES["ff"](inputs, frames, plan, head)
    assert set(built.avatars) == set(plan.subjects) and plan.subjects
    n = len(built.avatars[next(iter(plan.subjects))].binding)
    assert all(a.colors.shape == (n, 3) and torch.isfinite(a.offsets).all() for a in built.avatars.values())
    assert built.avatars[next(iter(plan.subjects))].binding.spec.kind == "uv"
    with pytest.raises(VariantAbsent, match="another decoder"):  # the LAM model's adapter is not this model's
        BASES["lora"](inputs, frames, plan, head)


def test_enhance_renders_a_uv_models_heldout_avatars(uv, tiny_pipeline):
    from fairsplat.enhancer.apply import Inputs, ff_renders
    from fairsplat.enhancer.config import EnhanceConfig

    d, _, _ = uv
    repo = tiny_pipeline.repo
    inputs = Inputs(repo / "assets/head/head.npz", repo / "data/curated", repo / "data/tracks", d)
    batches = list(itertools.islice(ff_renders(inputs, EnhanceConfig(skip=1, max_targets=2)), 2))  # 2 subjects
    assert batches and all(rb.source == "ff" for rb in batches)
    for rb in batches:
        assert rb.render.shape == rb.target.shape and torch.isfinite(rb.render).all()
        assert rb.render_skin.any()  # the avatar's skin Gaussians cover pixels: a head was drawn, not only grey


def test_avatar_commands_model_step_takes_a_uv_model(uv):
    """``fairsplat avatar``'s generator step (``make_avatar``: prepared crops + the landmark fit, under the track
    camera) on curated crops and their tracked FLAME: the avatar ``generate`` makes from the same tracks. The steps
    before it (detection, cropping, fitting) do not depend on the generator and are tested in test_avatar_cli.py."""
    from fairsplat.avatar.from_photos import Prepared, make_avatar

    d, head, frames = uv
    rows = next(rows for rows in frames.by_subject().values() if len(rows) >= 2)[:2]
    model, meta = load_generator(d)
    binding = generator_binding(meta, head)
    tracks = source_tracks(frames, rows)
    prep = Prepared(frames.images[rows].permute(0, 2, 3, 1).numpy(), None, tracks["K"].numpy())
    fit = {k: tracks[k] for k in ("shape", "expr", "pose", "transl")}
    av = make_avatar(model, binding, prep, fit)
    want = avatar_from_sources(model, binding, source_images(frames, rows), tracks)
    assert av.binding.spec.kind == "uv" and len(av.offsets) == len(binding)
    for a, b in zip((av.offsets, av.colors, av.log_scales), (want.offsets, want.colors, want.log_scales)):
        torch.testing.assert_close(a, b)


def test_lora_refuses_a_uv_model_before_work_naming_both_keys_and_says_so_in_its_outputs(uv, tiny_pipeline, tmp_path):
    from fairsplat.lora.adapters import LoraSpec
    from fairsplat.lora.run import build_model
    from stages.lora import app

    d, _, _ = uv
    with pytest.raises(ParamsError, match=r"train_ff\.arch 'uv'.*lora\.target-modules"):
        build_model("lora", d, LoraSpec())
    repo = tiny_pipeline.repo
    args = ["--model", str(d), "--head", str(repo / "assets/head/head.npz"), "--curated", str(repo / "data/curated"),
            "--tracks", str(repo / "data/tracks"), "--out", str(tmp_path / "lora"), "--plots", str(tmp_path / "plots"),
            "--params", str(repo / "params.yaml"), "--metrics-dir", str(tmp_path / "m"),
            "--checkpoints", str(tmp_path / "ck")]  # fmt: skip
    result = CliRunner().invoke(app, args)  # the stage: no adapter, its outputs say why, so dvc repro runs on
    assert result.exit_code == 0, result.output
    absent = json.loads((tmp_path / "lora" / "absent.json").read_text())
    metrics = json.loads((tmp_path / "m" / "lora.json").read_text())
    assert absent["absent"] and metrics["absent"] and metrics["absent_reason"] == absent["reason"]
    assert "train_ff.arch" in absent["reason"] and "lora.target-modules" in absent["reason"]
    assert sorted(p.name for p in (tmp_path / "lora").iterdir()) == ["absent.json"]
    assert not (tmp_path / "ck").exists()  # refused before any training
    # stage evaluate then lists the lora variant absent with that reason
    from fairsplat.evaluate.config import Inputs
    from fairsplat.evaluate.variants import VariantAbsent, build_lora

    inputs = Inputs(repo / "assets/head/head.npz", repo / "data/curated", repo / "data/tracks", d, tmp_path / "lora",
                    repo / "data/refined", repo / "models/enhancer")  # fmt: skip
    with pytest.raises(VariantAbsent, match=r"train_ff\.arch 'uv'"):
        build_lora(inputs, None, None, None)
