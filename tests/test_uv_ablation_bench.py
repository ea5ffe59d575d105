"""bench/uv_ablation.py's AKD scoring: per-pair AKD, faceless pairs excluded and counted, per-type AKD, no images kept."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from bench.uv_ablation import PairLandmarks, type_stats, akd_common, akd_summary, common_akd, metric_rows, pair_akd
from fairsplat.ff.evaluate import mean_of
from fairsplat.metrics.fairness import Stat, per_fitzpatrick
from fairsplat.metrics.landmarks import akd, akd_reference


def summarise_types(rows):
    return per_fitzpatrick(rows, type_stats(), n_boot=50, digits=3)


def _lmk(rng, shift=0.0):
    return rng.uniform(10, 100, (68, 2)) + shift  # [68, 2] px


def test_pair_akd_is_the_metric_and_needs_both_faces():
    rng = np.random.default_rng(0)
    a, b = _lmk(rng), _lmk(rng)
    row = {}
    pair_akd(row, a, b)
    assert row["render_face"] and row["target_face"]
    assert row["akd"] == pytest.approx(akd(a[None], b[None])[0]) == pytest.approx(akd_reference(a[None], b[None])[0])
    for render, target in ((None, b), (a, None), (None, None)):
        row = {}
        pair_akd(row, render, target)
        assert row["akd"] is None
        assert row["render_face"] == (render is not None) and row["target_face"] == (target is not None)


def test_summary_averages_scored_pairs_only_and_counts_the_rest():
    rng = np.random.default_rng(1)
    renders = [_lmk(rng), None, _lmk(rng), _lmk(rng), None]
    targets = [_lmk(rng), _lmk(rng), None, _lmk(rng), None]
    rows = []
    for r, t in zip(renders, targets):
        rows.append({})
        pair_akd(rows[-1], r, t)
    s = akd_summary(rows)
    both = [0, 3]
    expect = akd(np.stack([renders[i] for i in both]), np.stack([targets[i] for i in both])).mean()
    assert s["akd"] == pytest.approx(expect)
    assert s["akd_pairs"] == 2 and s["pairs"] == 5
    assert s["render_no_face"] == 2 and s["target_no_face"] == 2
    assert s["no_face_rate"] == pytest.approx(2 / 5)
    # every pair is either scored or has at least one faceless image
    assert s["akd_pairs"] + sum(r["akd"] is None for r in rows) == s["pairs"]
    assert akd_summary([{"akd": None, "render_face": False, "target_face": True}])["akd"] is None


def test_pair_landmarks_hook_detects_each_render_and_each_target_once():
    """The hook sees uint8 [S, S, 3] images (the render's, the target's), caches targets by id, keeps no image."""
    S = 8
    rgb = torch.zeros(3, 3, S, S)
    rgb[1] = 1.0  # render 1: white -> "no face"
    target = torch.full((3, 3, S, S), 0.5)
    calls = []
    known = {0: np.zeros((68, 2)), 128: np.full((68, 2), 3.0)}  # grey target at (3, 3), black render at (0, 0)

    def detect(img):
        assert img.dtype == np.uint8 and img.shape == (S, S, 3)
        calls.append(int(img[0, 0, 0]))
        return known.get(int(img[0, 0, 0]))

    hook = PairLandmarks(detect)
    rows = [{"target_id": "t0"}, {"target_id": "t1"}, {"target_id": "t0"}]
    hook(rgb, target, rows)
    assert sorted(calls) == [0, 0, 128, 128, 255]  # 3 renders, 2 distinct targets
    assert [r["akd"] for r in rows] == [pytest.approx(np.hypot(3, 3)), None, pytest.approx(np.hypot(3, 3))]
    assert [r["render_face"] for r in rows] == [True, False, True]
    assert set(hook.targets) == {"t0", "t1"}
    assert all(isinstance(v, np.ndarray) and v.shape == (68, 2) for v in hook.targets.values())


def test_per_type_akd_is_lower_is_better_and_reaches_the_metrics_file():
    rows = []
    for fitz, subj, val in (("I", "a", 2.0), ("I", "b", 4.0), ("VI", "c", 10.0), ("VI", "d", None)):
        rows.append({"fitzpatrick": fitz, "subject_id": subj, "akd": val, "render_face": val is not None,
                     "target_face": True})  # fmt: skip
    table = per_fitzpatrick(rows, {"akd": Stat(column="akd", higher_is_better=False)}, n_boot=50, digits=3)
    assert table["per_fitzpatrick"]["I"]["akd"] == pytest.approx(3.0)
    assert table["per_fitzpatrick"]["VI"]["akd"] == pytest.approx(10.0)  # the faceless pair is not a zero
    assert table["akd_worst_type"] == "VI" and table["akd_best_type"] == "I"
    assert summarise_types(rows)["per_fitzpatrick"]["VI"]["akd"] == pytest.approx(10.0)
    counts = summarise_types(rows)["per_fitzpatrick"]
    assert (counts["I"]["akd_pairs"], counts["I"]["akd_subjects"]) == (2, 2)
    assert (counts["VI"]["akd_pairs"], counts["VI"]["akd_subjects"]) == (1, 1)  # subject d has no scored pair
    result = {"config": {}, "rows": {"C": {"psnr_masked": 20.0, **akd_summary(rows), "per_fitzpatrick": table}}}
    m = metric_rows(result)["rows"]["C"]
    assert m["akd"] == pytest.approx(mean_of(rows, "akd"), abs=1e-4) and m["akd_pairs"] == 3
    assert m["no_face_rate"] == pytest.approx(0.25)
    assert m["per_type"]["VI"]["akd"] == pytest.approx(10.0)


def test_common_akd_compares_rows_on_the_pairs_where_all_have_a_face():
    rows = {"C": {"pair_akd": {"t0": 1.0, "t1": 2.0, "t2": None, "t3": 8.0}},
            "F": {"pair_akd": {"t0": 3.0, "t1": None, "t2": 5.0, "t3": 4.0}},
            "baseline": {"pair_akd": {"t0": 7.0, "t1": 1.0, "t2": 1.0, "t3": None}},
            "old": {"psnr_masked": 20.0}}  # a row without pair AKDs (an earlier run): left out, not an error
    c = common_akd(rows, ["C", "F"])
    assert c["pairs"] == 2 and c["rows"] == ["C", "F"]
    assert c["akd"] == {"C": pytest.approx(4.5), "F": pytest.approx(3.5)}  # t0 and t3 only
    every = common_akd(rows, list(rows))
    assert every["pairs"] == 1 and every["akd"] == {"C": 1.0, "F": 3.0, "baseline": 7.0}  # t0
    assert common_akd(rows, ["old"]) == {"rows": [], "pairs": 0, "akd": {}}
    nested = akd_common(rows)
    assert nested["uv"] == c and nested["with_C"]["F"] == c and set(nested["with_C"]) == {"F"}
    rows["E"] = {"pair_akd": {"t0": None, "t1": None, "t2": None, "t3": None}}
    assert common_akd(rows, ["C", "E"]) == {"rows": ["C", "E"], "pairs": 0, "akd": {"C": None, "E": None}}


@dataclass
class _UV:  # the parts of FFConfig that row_cfg replaces (dataclasses.replace needs dataclasses)
    phase2: object


@dataclass
class _Cfg:
    uv: _UV
    model: object = None


def test_factorial_rows_switch_off_one_control_each():
    """C_anchor keeps the anchor and drops the mix, C_mix the reverse; B drops both; C keeps params'."""
    from bench.uv_ablation import row_cfg
    from fairsplat.ff.config import PhaseConfig

    cfg = _Cfg(_UV(PhaseConfig("phase2", 100, 3e-4, anchor=0.001, mix=0.25)))

    def controls(row):
        ph = row_cfg(cfg, row).uv.phase2
        return ph.anchor, ph.mix

    assert controls("C") == (0.001, 0.25)
    assert controls("B") == (0.0, 0.0)
    assert controls("C_anchor") == (0.001, 0.0)
    assert controls("C_mix") == (0.0, 0.25)


def test_phase2_domain_swaps_only_phase2_crops_and_checks_their_geometry(tmp_path):
    """Phase 2's identities get the hard crops (same alpha required); phase 1 and the test keep theirs."""
    from types import SimpleNamespace as NS

    import pyarrow as pa
    import pyarrow.parquet as pq

    from bench.uv_ablation import phase2_domain
    from fairsplat.ff.uv_data import split_phases
    from fairsplat.io.images import save_png

    S, subjects = 8, [f"synth/s{i}" for i in range(8)]
    ids = [f"{s}_f00_v00" for s in subjects] + ["synth/t0_f00_v00"]
    alpha = torch.full((len(ids), 1, S, S), 200, dtype=torch.uint8)
    frames = NS(ids=ids, subject=[i.rsplit("_f", 1)[0] for i in ids], alpha=alpha,
                images=torch.zeros(len(ids), 3, S, S, dtype=torch.uint8))  # fmt: skip
    cfg = NS(uv=NS(phase2_share=0.25), seed=3)
    _, p2 = split_phases(subjects, 0.25, 3)
    cur = tmp_path / "hard" / "curated"
    cur.mkdir(parents=True)
    rows = []
    for n, i in enumerate(ids):  # a hard crop for every id, phase 1's and the test's too: only phase 2's are used
        save_png(cur / f"{n}.png", np.full((S, S, 3), 90, np.uint8))
        save_png(cur / f"{n}_a.png", np.full((S, S), 200, np.uint8))
        rows.append({"image_id": i, "path": f"{n}.png", "alpha_path": f"{n}_a.png"})
    pq.write_table(pa.Table.from_pylist(rows), cur / "manifest.parquet")
    out = phase2_domain(NS(phase2_domain_dir=tmp_path / "hard", phase2_lighting="hard", root=tmp_path), cfg, frames, subjects)
    assert out["identities"] == len(p2) == 2 and out["swapped"] == out["rows"] == 2
    for i, s in enumerate(frames.subject):
        assert int(frames.images[i].float().mean()) == (90 if s in p2 else 0), s
    frames.alpha[[frames.subject.index(s) for s in p2][0]] = 0  # a crop whose geometry differs is refused
    with pytest.raises(ValueError, match="alpha differs"):
        phase2_domain(NS(phase2_domain_dir=tmp_path / "hard", phase2_lighting="hard", root=tmp_path), cfg, frames, subjects)
