"""Stage refine on the tiny pipeline (outputs, floors, rejects, resume, NaN) and `fairsplat reenact`."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from fairsplat.avatar.avatar import Avatar
from fairsplat.ff.data import Frames
from fairsplat.head.model import HeadModel
from fairsplat.labels import FITZPATRICK
from fairsplat.refine.config import RefineConfig
from fairsplat.refine.data import TrackInfo, plan_subject
from fairsplat.refine.run import run_refine
from fairsplat.refine.strategies import StepContext, Strategy
from fairsplat.sections.refine import RefineParams

pytestmark = pytest.mark.usefixtures("one_thread")

FILES = ("avatar.safetensors", "avatar.json", "avatar.ply", "heldout.png", "side_by_side.mp4", "refine.json")


def _cfg(tiny) -> RefineConfig:
    return RefineParams(**{k.replace("-", "_"): v for k, v in tiny.params["refine"].items()}).refine_config()


def test_stage_writes_refined_avatars_and_raises_heldout_psnr(tiny_pipeline):
    out, m = tiny_pipeline.out("refine"), tiny_pipeline.metrics("refine")
    manifest = pq.read_table(out / "manifest.parquet").to_pylist()
    rejects = pq.read_table(out / "rejects.parquet").to_pylist()
    assert manifest and m["subjects_refined"] == len(manifest)
    assert m["subjects_refined"] + m["subjects_rejected"] == m["subjects_total"] == len(manifest) + len(rejects)
    head = HeadModel.load(tiny_pipeline.out("head") / "head.npz")
    gaussians = tiny_pipeline.params["train_ff"]["max-points"]
    for row in manifest:
        d = out / row["path"]
        assert all((d / f).is_file() for f in FILES), sorted(p.name for p in d.iterdir())
        avatar = Avatar.load(d, head)
        assert len(avatar.offsets) == gaussians  # layout and count kept: no densification
        info = json.loads((d / "refine.json").read_text())["info"]
        assert info["iterations"] >= tiny_pipeline.params["refine"]["iterations"] and info["heldout_ids"]
        assert not set(info["heldout_ids"]) & set(info["train_ids"] + info["watch_ids"])
    # the floor on the tiny run (a 2-step generator, 40+ iterations at 64 px): refinement clearly helps
    assert m["gain_psnr_masked"] >= 1.0 and m["gain_psnr"] >= 1.0, (m["ff_psnr_masked"], m["refined_psnr_masked"])
    assert m["refined_lpips_alex"] is not None and m["spike_frac"] is not None and m["aspect_bound"] == pytest.approx(math.e**2)
    assert set(m["per_fitzpatrick"]) <= set(FITZPATRICK)
    block = next(iter(m["per_fitzpatrick"].values()))
    assert {"psnr", "ff_psnr", "gain_psnr", "gain_psnr_ci", "delta_ita", "iterations", "spike_frac"} <= set(block)
    assert (tiny_pipeline.stages["refine"].plots[0] / "psnr.png").is_file()
    assert not (tiny_pipeline.repo / ".checkpoints" / "refine").exists(), "a finished run leaves no checkpoint"


def test_subjects_with_too_few_frames_are_rejected_with_a_reason(tiny_pipeline):
    rejects = pq.read_table(tiny_pipeline.out("refine") / "rejects.parquet").to_pylist()
    frames = pq.read_table(tiny_pipeline.out("curate") / "manifest.parquet").to_pylist()
    for r in rejects:
        assert r["reason"] in ("too_few_frames", "not_selected", "diverged") and r["detail"]
        if r["reason"] == "too_few_frames":
            assert len({f["frame_index"] for f in frames if f["subject_id"] == r["subject_id"]}) < 2


def _frames(n_frames: int, views: int = 3, jaw=None) -> tuple[Frames, TrackInfo]:
    n = n_frames * views
    pose = torch.zeros(n, 15)
    for f in range(n_frames):
        pose[f * views : (f + 1) * views, 6] = (jaw or [0.1 * (f + 1)] * n_frames)[f]
    ids = [f"s/a_f{f:02d}_v{v:02d}" for f in range(n_frames) for v in range(views)]
    fr = Frames(ids, ["s/a"] * n, ["test"] * n, ["IV"] * n, torch.zeros(n, 3, 8, 8, dtype=torch.uint8),
                torch.zeros(n, 1, 8, 8, dtype=torch.uint8), None, {"pose": pose})  # fmt: skip
    info = TrackInfo({i: int(i[5:7]) for i in ids}, {i: True for i in ids})
    return fr, info


def test_plan_holds_out_the_last_frames_and_starts_at_the_smallest_jaw():
    fr, info = _frames(3, jaw=[0.30, 0.05, 0.0])  # frame 2 is held out, so its 0.0 does not count
    plan = plan_subject(fr, info, "s/a", list(range(9)), RefineConfig())
    assert plan.heldout == [6, 7, 8] and plan.heldout_frames == [2]
    assert (plan.reference_frame, plan.reference_reason) == (1, "min_jaw") and plan.sources == [3]
    assert plan.watch == [5] and plan.train == [0, 1, 2, 3, 4]  # the latest training crop is watched (TTO)
    no_tto = plan_subject(fr, info, "s/a", list(range(9)), RefineConfig(strategies=("aspect",)))
    assert no_tto.watch == [] and no_tto.train == list(range(6))
    assert isinstance(plan_subject(*_frames(1), "s/a", [0, 1, 2], RefineConfig()), str)  # one frame: reject


class Poison(Strategy):
    name = "poison"

    def post_step(self, ctx: StepContext) -> None:
        if ctx.step == 2:
            with torch.no_grad():
                ctx.params["opacities"][0] = math.nan


def _run(tiny, work, **kw):
    cfg = replace(_cfg(tiny), iterations=12, strategies=("scale-freeze", "aspect"))
    head = HeadModel.load(tiny.out("head") / "head.npz")
    return run_refine(cfg, head, tiny.out("curate"), tiny.out("track"), tiny.out("train_ff"), work, "fp", False, **kw)


def test_a_killed_run_resumes_per_subject_and_matches_an_uninterrupted_one(tiny_pipeline, tmp_path):
    full = _run(tiny_pipeline, tmp_path / "a")
    assert len(full.results) >= 2, "the tiny pipeline should refine at least two subjects"
    part = _run(tiny_pipeline, tmp_path / "b", stop_after=1)
    assert len(part.results) == 1
    rest = _run(tiny_pipeline, tmp_path / "b")
    assert [r.resumed for r in rest.results] == [True] + [False] * (len(rest.results) - 1)
    assert [r.rows for r in rest.results] == [r.rows for r in full.results]  # deterministic per subject
    head, first = HeadModel.load(tiny_pipeline.out("head") / "head.npz"), full.results[0].subject
    a, b = Avatar.load(tmp_path / "a" / first, head), Avatar.load(tmp_path / "b" / first, head)
    for f in ("offsets", "colors", "log_scales"):
        assert torch.equal(getattr(a, f), getattr(b, f))


def test_nan_mid_run_rejects_that_subject_naming_the_iteration_and_the_others_go_on(tiny_pipeline, tmp_path):
    clean = _run(tiny_pipeline, tmp_path / "clean")
    victim = clean.results[0].subject
    run = _run(tiny_pipeline, tmp_path / "nan", extra_strategies=lambda s: [Poison()] if s == victim else [])
    bad = [r for r in run.rejects if r["reason"] == "diverged"]
    assert [r["subject_id"] for r in bad] == [victim] and "at iteration 3" in bad[0]["detail"]
    assert [r.subject for r in run.results] == [r.subject for r in clean.results[1:]]
    assert len(run.results) + len(run.rejects) == run.subjects_total


def test_reenact_drives_a_refined_avatar_with_another_subjects_tracks(tiny_pipeline, tmp_path):
    from fairsplat.cli import app

    out = tiny_pipeline.out("refine")
    manifest = pq.read_table(out / "manifest.parquet").to_pylist()
    tracks = pq.read_table(tiny_pipeline.out("track") / "tracks.parquet", columns=["subject_id", "source"]).to_pylist()
    other = next(t["subject_id"] for t in tracks if t["source"] == "synth" and t["subject_id"] != manifest[0]["subject_id"])
    head = str(tiny_pipeline.out("head") / "head.npz")
    video = tmp_path / "re.mp4"
    res = CliRunner().invoke(app, ["reenact", str(out / manifest[0]["path"] / "avatar.ply"), "--driver",
                                   str(tiny_pipeline.out("track")), "--subject", other, "--head", head, "--out",
                                   str(video), "--size", "64"])  # fmt: skip
    assert res.exit_code == 0, res.output
    frames = sorted((tmp_path / "re_frames").glob("*.png"))
    assert video.stat().st_size > 0 and frames
    import av

    with av.open(str(video)) as box:
        assert sum(1 for _ in box.decode(video=0)) == len(frames)
    lone = tmp_path / "lone.ply"
    lone.write_bytes((out / manifest[0]["path"] / "avatar.ply").read_bytes())
    res = CliRunner().invoke(app, ["reenact", str(lone), "--driver", str(tiny_pipeline.out("track")), "--head", head])
    assert res.exit_code == 2 and "no FLAME binding" in res.output
    res = CliRunner().invoke(app, ["reenact", str(out / manifest[0]["path"]), "--driver", str(tiny_pipeline.out("track")),
                                   "--subject", "nobody", "--head", head, "--out", str(tmp_path / "x.mp4")])  # fmt: skip
    assert res.exit_code == 2 and "no rows of subject nobody" in res.output


def test_reenact_keeps_the_avatars_shape_and_takes_the_drivers_motion(tiny_pipeline):
    from fairsplat.evaluate.reenact import driver_from_tracks, reenact

    head = HeadModel.load(tiny_pipeline.out("head") / "head.npz")
    out = tiny_pipeline.out("refine")
    row = pq.read_table(out / "manifest.parquet").to_pylist()[0]
    avatar = Avatar.load(out / row["path"], head)
    drv = driver_from_tracks(tiny_pipeline.out("track"), subject=row["subject_id"])
    frames = reenact(avatar, drv, 32)
    assert frames.shape == (len(drv), 32, 32, 3) and frames.dtype == np.uint8
    still = replace(drv, expr=drv.expr[:1].expand_as(drv.expr), pose=drv.pose[:1].expand_as(drv.pose),
                    transl=drv.transl[:1].expand_as(drv.transl))  # fmt: skip
    frozen = reenact(avatar, still, 32)
    assert (frozen == frozen[:1]).all()  # the motion comes from the driver alone
