"""Stage evaluate on the tiny pipeline: every metric present or absent with a reason, real LPIPS, CIs, the
long table, failures counted; train_ff's protocol reproduced; missing variants absent, never a crash."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from fairsplat.evaluate.score import CROSS_COLUMNS, SELF_COLUMNS
from fairsplat.labels import FITZPATRICK

pytestmark = pytest.mark.usefixtures("one_thread")

NAMED = ("psnr", "psnr_masked", "ssim", "ssim_masked", "lpips_alex", "lpips_alex_masked", "lpips_vgg",
         "lpips_vgg_masked", "delta_ita", "csim", "aed", "apd", "akd")  # fmt: skip
"""Every metric issue 15 names, as metrics/evaluate.json's per-variant keys."""


@pytest.fixture(scope="module")
def ev(tiny_pipeline):
    return tiny_pipeline.metrics("evaluate")


def test_every_variant_is_present_or_absent_with_a_reason(ev):
    assert set(ev["variants"]) == {f"{b}{e}" for b in ("ff", "lora", "refined") for e in ("", "+enhancer")}
    for v, status in ev["variants"].items():
        assert status == "present" or (status.startswith("absent: ") and len(status) > 20), (v, status)
    assert ev["variants"]["ff"] == ev["variants"]["lora"] == ev["variants"]["refined"] == "present"
    assert "enhancer" in ev["variants"]["ff+enhancer"] or ev["variants"]["ff+enhancer"] == "present"
    assert "csim_arcface" in ev["absent"] and "onnxruntime" in ev["absent"]["csim_arcface"]


def test_every_metric_is_present_or_absent_with_a_reason_per_type(tiny_pipeline, ev):
    """For each present variant, type and named metric: a number, or n/a explained by a status in scores.parquet
    (no subject of that type, no face found, a weights or budget reason)."""
    per = ev["per_fitzpatrick"]
    assert set(per) == set(FITZPATRICK)
    rows = pq.read_table(tiny_pipeline.out("evaluate") / "scores.parquet").to_pylist()
    present = [v for v, s in ev["variants"].items() if s == "present"]
    for v in present:
        for m in NAMED:
            assert f"{v}_{m}" in ev, f"flat {v}_{m} missing"
            for t in FITZPATRICK:
                assert f"{v}_{m}" in per[t], (v, m, t)
                if per[t][f"{v}_{m}"] is None and per[t][f"{v}_n_subjects"]:
                    mine = [r for r in rows if r["variant"] == v and r["metric"] == m and r["fitzpatrick"] == t]
                    assert mine and all(r["status"] != "ok" for r in mine), (v, m, t)
    for r in rows:
        assert (r["value"] is None) == (r["status"] != "ok"), r
    assert {r["status"].split(":")[0] for r in rows} <= {"ok", "no_face", "driver_no_face", "source_no_face", "no_skin",
                                                         "not_scored", "absent"}  # fmt: skip


def test_lpips_is_the_real_one_and_every_row_is_long(tiny_pipeline, ev):
    from fairsplat.weights import available

    if not available("lpips_alex"):
        pytest.skip("LPIPS weights not fetched (python -m fairsplat.weights fetch)")
    assert ev["ff_lpips_alex"] is not None and 0.05 < ev["ff_lpips_alex"] < 1.5  # a random AlexNet gives ~0.01
    rows = pq.read_table(tiny_pipeline.out("evaluate") / "scores.parquet").to_pylist()
    assert {r["metric"] for r in rows if r["protocol"] == "self"} == {*SELF_COLUMNS, "abs_delta_ita"}
    assert {r["metric"] for r in rows if r["protocol"] == "cross"} == {*CROSS_COLUMNS, "abs_delta_ita"}
    vgg = [r for r in rows if r["metric"] == "lpips_vgg"]
    assert any(r["status"] == "ok" for r in vgg)  # the first target of every (variant, subject)
    assert {r["status"] for r in vgg} <= {"ok", "not_scored: beyond evaluate.lpips-vgg-targets"}


def test_cis_wherever_a_type_has_two_subjects(tiny_pipeline, ev):
    rows = pq.read_table(tiny_pipeline.out("evaluate") / "scores.parquet").to_pylist()
    per = ev["per_fitzpatrick"]
    for t in FITZPATRICK:
        subjects = {r["subject_id"] for r in rows if r["fitzpatrick"] == t and r["variant"] == "ff"
                    and r["metric"] == "psnr_masked" and r["status"] == "ok"}  # fmt: skip
        ci = per[t]["ff_psnr_masked_ci"]
        assert (ci is not None) == (len(subjects) >= 2), (t, subjects, ci)
        if ci is not None:
            assert ci[0] <= per[t]["ff_psnr_masked"] <= ci[1]


def test_faces_not_found_are_counted_never_scored(tiny_pipeline, ev):
    rows = pq.read_table(tiny_pipeline.out("evaluate") / "scores.parquet").to_pylist()
    for v in (v for v, s in ev["variants"].items() if s == "present"):
        cross = [r for r in rows if r["variant"] == v and r["protocol"] == "cross" and r["metric"] == "akd"]
        no_face = [r for r in cross if r["status"] == "no_face"]
        assert ev[f"{v}_no_face_rate"] == pytest.approx(len(no_face) / len(cross))
        assert all(r["value"] is None for r in no_face)  # never a 0
    unscored = pq.read_table(tiny_pipeline.out("evaluate") / "unscored.parquet").to_pylist()
    for v in ev["variants"]:
        failed = ev.get(f"{v}_retrack_failed_subjects")
        if failed:
            assert sum(u["variant"] == v and u["reason"].startswith("retrack_failed") for u in unscored) == failed
            assert sum(ev["per_fitzpatrick"][t][f"{v}_retrack_failed_subjects"] for t in FITZPATRICK) == failed


def test_self_reenactment_is_train_ffs_protocol(tiny_pipeline):
    """The plain ff variant's rows equal fairsplat.ff.evaluate.score_subject's on the same subject and targets."""
    from fairsplat.evaluate.config import EvalConfig, Inputs
    from fairsplat.evaluate.run import Job, context
    from fairsplat.evaluate.score import self_rows
    from fairsplat.evaluate.variants import build_ff
    from fairsplat.ff.evaluate import score_subject
    from fairsplat.models.generator import load_generator

    repo = tiny_pipeline.repo
    inputs = Inputs(repo / "assets/head/head.npz", repo / "data/curated", repo / "data/tracks", repo / "models/ff",
                    repo / "models/lora", repo / "data/refined", repo / "models/enhancer")  # fmt: skip
    head, frames, plan = context(Job("ff", EvalConfig(), inputs))
    built = build_ff(inputs, frames, plan, head)
    s, p = next(iter(plan.subjects.items()))
    mine, _ = self_rows("ff", built.avatars[s], frames, p.source, p.targets, None, "auto", 0)
    model, _ = load_generator(inputs.ff)
    rows = [p.source, *p.targets]
    theirs = score_subject(model, frames, built.avatars[s].binding, rows, 1, 1, int(frames.images.shape[-1]))
    assert [r["target_id"] for r in mine] == [r["target_id"] for r in theirs]
    for a, b in zip(mine, theirs):
        for k in ("psnr", "psnr_masked", "ssim", "ssim_masked", "lpips_alex", "lpips_alex_masked", "delta_ita"):
            if b[k] is None:
                assert a[k] is None, k
            else:
                assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-4), k


def test_missing_variants_are_absent_not_a_crash(tiny_pipeline, tmp_path):
    from fairsplat.evaluate.config import EvalConfig, Inputs
    from fairsplat.evaluate.run import run_evaluate
    from fairsplat.evaluate.tables import evaluate_metrics

    repo = tiny_pipeline.repo
    inputs = Inputs(repo / "assets/head/head.npz", repo / "data/curated", repo / "data/tracks", repo / "models/ff",
                    tmp_path / "no_lora", tmp_path / "no_refined", tmp_path / "no_enhancer")  # fmt: skip
    cfg = EvalConfig(variants=("lora", "refined"), cross_frames=1, lpips_vgg_targets=0, workers=1, n_boot=0)
    res = run_evaluate(cfg, inputs)
    assert res.present == [] and res.rows == []
    m = evaluate_metrics(res.rows, res.present, res.info, 0, 0)
    assert m["variants"]["lora"].startswith("absent: ") and "no_lora" in m["variants"]["lora"]
    assert "no_refined" in m["variants"]["refined"] and m["variants"]["refined+enhancer"].startswith("absent")
    assert "lpips-vgg-targets" in res.reasons["lpips_vgg"]


def test_plot_data_and_dvc_plots(tiny_pipeline):
    from fairsplat.testing.pipeline import dvc

    plots = tiny_pipeline.repo / "plots" / "evaluate"
    records = json.loads((plots / "per_type.json").read_text())
    assert {r["fitzpatrick"] for r in records} == set(FITZPATRICK)
    assert {"metric", "series", "value", "lo", "hi"} <= set(records[0])
    assert json.loads((plots / "pairs.json").read_text())  # lora - ff, refined - ff
    assert sorted(p.name for p in (plots / "figures").glob("grid_*.png"))
    res = dvc(tiny_pipeline.repo, "plots", "show", "--json", "plots/evaluate/per_type.json", "plots/evaluate/pairs.json")
    assert res.returncode == 0, res.stderr
    shown = json.loads(res.stdout)["data"]
    for name in ("plots/evaluate/per_type.json", "plots/evaluate/pairs.json"):
        (plot,) = shown[name]
        assert plot["type"] == "vega" and "<DVC_METRIC" not in json.dumps(plot["content"]), name  # template filled
        assert plot["content"]["data"]["values"], name
    avatars = tiny_pipeline.out("evaluate") / "avatars"
    listing = json.loads((avatars / "avatars.json").read_text())
    assert listing and all((avatars / a["file"]).stat().st_size > 1000 for a in listing)
    assert np.all([a["type"] in FITZPATRICK for a in listing])
