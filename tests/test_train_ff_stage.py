"""Stage train_ff on the tiny pipeline: outputs, metrics shape, resume, skipped tracks, the type mix."""

from __future__ import annotations

from dataclasses import replace

import pyarrow.parquet as pq
import pytest
import torch

from fairsplat.avatar.binding import AvatarBinding
from fairsplat.ff.data import load_frames, mix_identities
from fairsplat.head.model import HeadModel
from fairsplat.labels import FITZPATRICK
from fairsplat.models.generator import load_generator
from fairsplat.sections.train_ff import TrainFFParams
from fairsplat.train.accel import AccelConfig, build_accelerator, fresh_state

pytestmark = pytest.mark.usefixtures("one_thread")


def test_stage_writes_the_generator_metrics_and_grids(tiny_pipeline):
    out = tiny_pipeline.out("train_ff")
    model, meta = load_generator(out)
    assert meta["binding"]["kind"] == "points" and isinstance(model, torch.nn.Module)
    m = tiny_pipeline.metrics("train_ff")
    for key in ("ff_k1_psnr_masked", "baseline_k1_psnr_masked", "gain_k1_psnr_masked", "ff_k1_lpips_alex",
                "ff_k1_ssim_masked", "ff_k1_delta_ita", "train_identities", "heldout_subjects"):  # fmt: skip
        assert key in m, key
    assert m["steps"] == tiny_pipeline.params["train_ff"]["steps"] and m["heldout_targets"] > 0
    assert m["ff_k1_psnr_masked"] is not None and m["lpips_loss"] is True  # real weights fetched by make env
    assert set(m["per_fitzpatrick"]) <= set(FITZPATRICK) and m["per_fitzpatrick"]
    block = next(iter(m["per_fitzpatrick"].values()))
    assert {"psnr_masked", "baseline_psnr_masked", "gain_psnr_masked", "n_subjects"} <= set(block)
    grids = list(tiny_pipeline.stages["train_ff"].plots[0].glob("grid_*.png"))
    assert grids, "no per-type grid"
    assert not (tiny_pipeline.repo / ".checkpoints" / "train_ff").exists(), "a finished run leaves no checkpoint"


def _micro_cfg(tiny_pipeline, **over):
    raw = {k.replace("-", "_"): v for k, v in tiny_pipeline.params["train_ff"].items() if k != "loss"}
    cfg = TrainFFParams(**raw).ff_config()
    return replace(cfg, **over)


def test_resumed_training_equals_an_uninterrupted_run(tiny_pipeline, tmp_path):
    from fairsplat.ff.run import train_generator

    cfg = _micro_cfg(tiny_pipeline, steps=4, checkpoint_every=2, eval_every=0)
    head = HeadModel.load(tiny_pipeline.out("head") / "head.npz")
    frames = load_frames(tiny_pipeline.out("curate"), tiny_pipeline.out("track"), ["train", "val"])
    subjects = mix_identities(frames, "train", cfg.type_mix, cfg.seed)

    def run(ckpt, stop=None):
        with fresh_state():
            acc = build_accelerator(AccelConfig(device="cpu"))
            binding = AvatarBinding(head, cfg.model.binding)
            return train_generator(cfg, frames, subjects, binding, acc, progress=False, checkpoint_dir=ckpt,
                                   fingerprint="x", stop_at=stop)  # fmt: skip

    full = run(tmp_path / "a")
    assert run(tmp_path / "b", stop=3).stopped_early
    torch.manual_seed(123)  # the resumed run must not lean on the process's RNG state
    rest = run(tmp_path / "b")
    assert rest.resumed_from == 2 and rest.steps == 4
    for k, v in full.model.state_dict().items():  # bit-identical: CPU, one thread, every RNG stream restored
        assert torch.equal(rest.model.state_dict()[k], v), k
    assert rest.history == full.history


def test_crops_without_a_track_are_skipped_and_counted(tiny_pipeline, tmp_path):
    tracks = pq.read_table(tiny_pipeline.out("track") / "tracks.parquet")
    rows = [r for r in tracks.to_pylist() if r["source"] == "curated"]
    dropped = rows[0]["image_id"]
    (tmp_path / "tracks").mkdir()
    keep = [i for i, r in enumerate(tracks.to_pylist()) if r["image_id"] != dropped]
    pq.write_table(tracks.take(keep), tmp_path / "tracks" / "tracks.parquet")
    all_splits = ["train", "val", "test"]
    full = load_frames(tiny_pipeline.out("curate"), tiny_pipeline.out("track"), all_splits)
    less = load_frames(tiny_pipeline.out("curate"), tmp_path / "tracks", all_splits)
    assert len(less) == len(full) - 1 and dropped not in less.ids and less.skipped == {"no_track": 1}


def test_type_mix_sets_the_share_of_training_identities(tiny_pipeline):
    frames = load_frames(tiny_pipeline.out("curate"), tiny_pipeline.out("track"), ["train", "val", "test"])
    every = mix_identities(frames, "train", {t: 1.0 for t in FITZPATRICK}, 0)
    assert set(every) == {s for s, rows in frames.by_subject(["train"]).items() if len(rows) >= 2}
    no_six = mix_identities(frames, "train", {t: 1.0 for t in FITZPATRICK[:5]}, 0)
    assert no_six and all(frames.subject_type(s) != "VI" for s in no_six)
    assert mix_identities(frames, "train", {t: 1.0 for t in FITZPATRICK}, 0) == every  # deterministic
