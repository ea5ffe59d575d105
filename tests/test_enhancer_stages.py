"""Stages train_enhancer and enhance on the tiny pipeline (its train_enhancer is the two-step run of the real
stage), exact resume, the SD-Turbo + LoRA path end to end on a tiny SD-Turbo-layout directory, bad input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from fairsplat.enhancer.config import LoraSpec
from fairsplat.enhancer.data import load_pairs
from fairsplat.enhancer.checkpoint import load_any, save_enhancer
from fairsplat.enhancer.run import train_enhancer
from fairsplat.io.tables import read_table
from fairsplat.labels import FITZPATRICK
from fairsplat.sections.train_enhancer import TrainEnhancerParams
from fairsplat.train.accel import AccelConfig, build_accelerator, fresh_state

pytestmark = pytest.mark.usefixtures("one_thread")


def micro_cfg(tiny, **over):
    raw = {k.replace("-", "_"): v for k, v in tiny.params["train_enhancer"].items()}
    return replace(TrainEnhancerParams.model_validate(raw).enhancer_config(), **over)


def test_train_enhancer_writes_model_scores_metrics_and_plots(tiny_pipeline):
    out = tiny_pipeline.out("train_enhancer")
    model, meta = load_any(out)
    assert meta["crop_size"] == tiny_pipeline.params["curate"]["size"] and not meta.get("adapter")
    m = tiny_pipeline.metrics("train_enhancer")
    assert m["steps"] == tiny_pipeline.params["train_enhancer"]["steps"] and m["pairs_heldout"] > 0
    assert m["perceptual_loss"] is True  # real weights fetched by make env
    for key in ("psnr", "psnr_input", "psnr_gain", "ssim_gain", "lpips_alex", "lpips_alex_input", "abs_delta_ita",
                "floor_psnr_every_type", "floor_ssim_every_type", "floor_lpips_overall", "floor_abs_delta_ita_every_type"):
        assert key in m, key
    assert m["psnr"] is not None and m["lpips_alex"] is not None
    assert set(m["per_fitzpatrick"]) <= set(FITZPATRICK) and m["per_fitzpatrick"]
    block = next(iter(m["per_fitzpatrick"].values()))
    assert {"psnr", "psnr_input", "psnr_gain", "ssim_gain", "abs_delta_ita", "n_subjects"} <= set(block)
    assert set(m["per_family"]) == {"blur", "colour", "geometry", "splat"}
    assert set(m["per_region"]) == {"mouth", "eyes", "hair", "nose", "skin"}
    assert {"psnr_gain_ci", "psnr_verdict"} <= set(m["per_region"]["skin"])
    rows = read_table(out / "heldout.parquet")
    assert len(rows) == m["pairs_heldout"] and {r["split"] for r in rows} <= {"val", "test"}
    plots = tiny_pipeline.stages["train_enhancer"].plots[0]
    assert (plots / "grid.png").is_file() and (plots / "psnr_per_type.png").is_file()
    assert not (tiny_pipeline.repo / ".checkpoints" / "train_enhancer").exists(), "a finished run leaves no checkpoint"
    x = torch.rand(1, 3, 50, 70)
    with torch.no_grad():
        assert model(x).shape == x.shape


def test_resumed_training_equals_an_uninterrupted_run(tiny_pipeline, tmp_path):
    cfg = micro_cfg(tiny_pipeline, steps=4, checkpoint_every=2, eval_every=0)
    pairs = load_pairs(tiny_pipeline.out("degrade"), tiny_pipeline.out("curate"), ["train", "val"])

    def run(ckpt, stop=None):
        with fresh_state():
            acc = build_accelerator(AccelConfig(device="cpu"))
            return train_enhancer(cfg, pairs, acc, progress=False, checkpoint_dir=ckpt, fingerprint="x", stop_at=stop)

    full = run(tmp_path / "a")
    assert run(tmp_path / "b", stop=3).stopped_early
    torch.manual_seed(123)  # the resumed run must not lean on the process's RNG state
    rest = run(tmp_path / "b")
    assert rest.resumed_from == 2 and rest.steps == 4
    for k, v in full.model.state_dict().items():  # bit-identical: CPU, one thread, every RNG stream restored
        assert torch.equal(rest.model.state_dict()[k], v), k
    assert rest.history == full.history


def test_enhance_scores_generator_renders(tiny_pipeline):
    out = tiny_pipeline.out("enhance")
    m = tiny_pipeline.metrics("enhance")
    all_rows = read_table(out / "scores.parquet")
    rows = [r for r in all_rows if r["source"] == "ff"]
    assert rows and m["ff_targets"] == len(rows) and {r["source"] for r in all_rows} <= {"ff", "refined"}
    for key in ("ff_psnr_masked", "ff_psnr_masked_input", "ff_psnr_masked_gain", "ff_lpips_alex", "ff_ita_shift"):
        assert key in m, key
    assert m["ff_psnr_masked_input"] is not None and "psnr_verdict" in m["ff_verdict"]
    assert set(m["per_fitzpatrick"]) <= set(FITZPATRICK) and m["per_fitzpatrick"]
    assert {"ff_psnr_masked_gain", "ff_abs_delta_ita"} <= set(next(iter(m["per_fitzpatrick"].values())))
    for kind in ("render", "enhanced"):
        assert len(list((out / "ff" / kind).rglob("*.png"))) == len(rows)
    assert (tiny_pipeline.stages["enhance"].plots[0] / "grid_ff.png").is_file()


def _run_stage(tiny, tmp_path, **over):
    from stages.train_enhancer import app

    params = yaml.safe_load((tiny.repo / "params.yaml").read_text())
    params["train_enhancer"].update(over)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    args = ["--pairs", str(tiny.out("degrade")), "--curated", str(tiny.out("curate")), "--out", str(tmp_path / "m"),
            "--plots", str(tmp_path / "p"), "--params", str(tmp_path / "params.yaml"), "--metrics-dir",
            str(tmp_path / "metrics"), "--checkpoints", str(tmp_path / "ck"), "--no-progress"]  # fmt: skip
    return CliRunner().invoke(app, args)


def test_a_wrong_sd_turbo_directory_fails_before_work(tiny_pipeline, tmp_path):
    bad = tmp_path / "sd"
    (bad / "unet").mkdir(parents=True)
    res = _run_stage(tiny_pipeline, tmp_path, **{"sd-turbo-path": str(bad)})
    assert res.exit_code != 0
    msg = str(res.exception)
    assert "train_enhancer.sd-turbo-path" in msg and "unet/config.json" in msg and "tokenizer/merges.txt" in msg
    assert not (tmp_path / "m").exists() and not (tmp_path / "metrics").exists()


# ----------------------------------------------------------------------------- the SD-Turbo path, tiny


@pytest.fixture(scope="module")
def fake_sd_turbo(tmp_path_factory) -> Path:
    """A directory in stabilityai/sd-turbo's layout with tiny random components (diffusers / transformers save it)."""
    from diffusers import DDPMScheduler
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from fairsplat.models.enhancer import SD_SCHEDULER, build_unet, build_vae, tiny_unet_config, tiny_vae_config

    root = tmp_path_factory.mktemp("sd-turbo")
    torch.manual_seed(0)
    build_vae(tiny_vae_config((4, 8, 8, 8), groups=4)).save_pretrained(root / "vae")
    build_unet(tiny_unet_config((16, 32, 32, 32), (2, 2, 2, 2), groups=8, cross_dim=16)).save_pretrained(root / "unet")
    DDPMScheduler(**SD_SCHEDULER).save_pretrained(root / "scheduler")
    (root / "tokenizer").mkdir()
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c], vocab[c + "</w>"] = len(vocab), len(vocab) + 1
    (root / "tokenizer" / "vocab.json").write_text(json.dumps(vocab))
    (root / "tokenizer" / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(root / "tokenizer" / "vocab.json"), str(root / "tokenizer" / "merges.txt"),
                  model_max_length=8).save_pretrained(root / "tokenizer")  # fmt: skip
    text = CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                          num_attention_heads=2, max_position_embeddings=8, projection_dim=16)  # fmt: skip
    CLIPTextModel(text).save_pretrained(root / "text_encoder")
    return root


def test_sd_turbo_path_trains_lora_saves_and_reloads(tiny_pipeline, fake_sd_turbo, tmp_path):
    from fairsplat.enhancer.lora import adapted_layers

    lora = LoraSpec(unet_targets=("to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2"), vae_targets=("conv1", "conv2"))
    cfg = micro_cfg(tiny_pipeline, steps=2, eval_every=0, checkpoint_every=0, sd_turbo_path=str(fake_sd_turbo), lora=lora)
    pairs = load_pairs(tiny_pipeline.out("degrade"), tiny_pipeline.out("curate"), ["train"])
    with fresh_state():
        res = train_enhancer(cfg, pairs, build_accelerator(AccelConfig(device="cpu")), progress=False)
    model = res.model.eval()
    assert model.text.shape == (1, 8, 16) and not model.text.requires_grad  # CLIP encoding of the prompt, fixed
    assert model.prediction == "epsilon" and not model.cfg.residual  # SD-Turbo's own schedule, pix2pix-turbo's wiring
    layers = adapted_layers(model)
    assert layers["unet"] > 0 and layers["vae.encoder"] > 0 and layers["vae.decoder"] > 0
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all("lora_" in n or n.startswith(("skips.", "unet.conv_in.")) for n in trained)
    save_enhancer(tmp_path / "m", model, cfg, {})
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta["adapter"]["base"] == str(fake_sd_turbo) and meta["adapter"]["unet_rank"] == 16
    again, _ = load_any(tmp_path / "m")
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))


def test_enhance_scores_the_refined_avatars_at_the_crops_refine_held_out(tiny_pipeline):
    """Source refined: every refined subject's held-out crops (refine.json), raw and enhanced, or absent with why."""
    import json

    m = tiny_pipeline.metrics("enhance")
    refined = tiny_pipeline.out("refine")
    done = read_table(refined / "manifest.parquet") if (refined / "manifest.parquet").is_file() else []
    if not done:
        assert "refined" in m["sources_absent"], "no refined avatar: the source is reported absent, with the reason"
        return
    assert "refined" not in m["sources_absent"]
    rows = [r for r in read_table(tiny_pipeline.out("enhance") / "scores.parquet") if r["source"] == "refined"]
    cap = tiny_pipeline.params["enhance"].get("max-targets")
    want = set()
    for r in done:
        held = json.loads((refined / r["path"] / "refine.json").read_text())["info"]["heldout_ids"]
        want |= set(held[:cap] if cap else held)
    assert {r["target_id"] for r in rows} == want and m["refined_targets"] == len(rows) == len(want)
    assert {r["subject_id"] for r in rows} == {r["subject_id"] for r in done}
    for key in ("refined_psnr_masked", "refined_psnr_masked_input", "refined_ssim_gain", "refined_abs_delta_ita"):
        assert m[key] is not None, key
    assert "refined_psnr_masked_gain" in next(iter(m["per_fitzpatrick"].values()))
    for kind in ("render", "enhanced"):
        assert len(list((tiny_pipeline.out("enhance") / "refined" / kind).rglob("*.png"))) == len(rows)
