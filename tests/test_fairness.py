"""metrics/fairness.py: the per-Fitzpatrick table, its subject bootstrap and its summary.

The bootstrap is checked on known distributions: the interval covers the true
mean at about the nominal rate, shrinks like 1/sqrt(n_subjects), and resamples
subjects (items of one subject move together), not items.
"""

import json

import numpy as np
import pytest

from fairsplat.metrics.fairness import Stat, count, per_fitzpatrick

pytestmark = pytest.mark.usefixtures("one_thread")


def _subjects(n_subjects: int, items: int, rng, mean: float = 5.0, sd: float = 1.0, item_sd: float = 0.0, t: str = "I"):
    """Rows of one type: each subject's items share its N(mean, sd) value (+ item noise)."""
    rows = []
    for s in range(n_subjects):
        v = rng.normal(mean, sd)
        rows += [{"fitzpatrick": t, "subject_id": f"{t}{s}", "x": v + rng.normal(0, item_sd)} for _ in range(items)]
    return rows


def _ci(rows, n_boot=400, seed=0, subject_key="subject_id", spec="x"):
    return per_fitzpatrick(rows, {"x": spec}, n_boot=n_boot, seed=seed, subject_key=subject_key)["per_fitzpatrick"]["I"]["x_ci"]


def test_ci_covers_the_true_mean_at_about_the_nominal_rate():
    rng = np.random.default_rng(0)
    hits = [lo <= 5.0 <= hi for lo, hi in (_ci(_subjects(40, 1, rng), seed=k) for k in range(200))]
    assert 0.88 <= np.mean(hits) <= 0.99, np.mean(hits)


def test_ci_width_shrinks_like_one_over_sqrt_subjects():
    rng = np.random.default_rng(1)
    width = {n: np.mean([np.diff(_ci(_subjects(n, 2, rng)))[0] for _ in range(20)]) for n in (25, 100)}
    assert width[25] / width[100] == pytest.approx(2.0, rel=0.15), width
    assert width[100] == pytest.approx(2 * 1.96 / np.sqrt(100), rel=0.15)  # sd 1 per subject


def test_resampling_is_over_subjects_not_items():
    """20 subjects x 10 near-identical items: the honest width is that of 20 draws, not 200."""
    rows = _subjects(20, 10, np.random.default_rng(2), item_sd=0.01)
    subject_level = np.diff(_ci(rows, n_boot=1000))[0]
    for i, r in enumerate(rows):
        r["item"] = i
    item_level = np.diff(_ci(rows, n_boot=1000, subject_key="item"))[0]
    sd = np.std([r["x"] for r in rows[::10]])
    assert subject_level == pytest.approx(2 * 1.96 * sd / np.sqrt(20), rel=0.25)
    assert subject_level > 2.5 * item_level, (subject_level, item_level)


def test_reducer_path_equals_the_vectorised_mean():
    """A column mean (fast path) and the same mean as a reducer draw the same subjects: one interval."""
    rows = _subjects(12, 3, np.random.default_rng(3), item_sd=0.5)
    mean = lambda rs: float(np.mean([r["x"] for r in rs]))  # noqa: E731
    np.testing.assert_allclose(_ci(rows, spec="x"), _ci(rows, spec=mean), rtol=1e-12)
    np.testing.assert_allclose(_ci(rows, spec="x"), _ci(rows, spec=Stat(column="x", agg=np.mean)), rtol=1e-12)


def _two_stat_rows():
    acc = {"I": 0.9, "II": 0.6, "III": 0.8}
    err = {"I": 0.01, "II": 0.04, "III": 0.02}
    return [{"fitzpatrick": t, "subject_id": f"{t}{s}", "acc": acc[t], "err": err[t]} for t in acc for s in range(3)]


def test_worst_best_gap_ratio_respect_the_direction():
    stats = {"acc": Stat(column="acc", higher_is_better=True), "err": Stat(column="err", higher_is_better=False)}
    out = per_fitzpatrick(_two_stat_rows(), stats, n_boot=50)
    assert (out["acc_worst_type"], out["acc_best_type"]) == ("II", "I")
    assert out["acc_gap"] == pytest.approx(0.3) and out["acc_ratio"] == pytest.approx(0.6 / 0.9)
    assert (out["err_worst_type"], out["err_best_type"]) == ("II", "I")
    assert out["err_gap"] == pytest.approx(0.03) and out["err_ratio"] == pytest.approx(4.0)
    assert out["acc_gap"] > 0 and out["err_gap"] > 0  # a gap is how far the worst trails: never negative


def test_descriptive_stats_have_no_summary_and_one_type_has_no_gap():
    rows = _two_stat_rows()
    out = per_fitzpatrick(rows, {"acc": "acc"}, n_boot=10)
    assert set(out) == {"per_fitzpatrick"}
    one = per_fitzpatrick([r for r in rows if r["fitzpatrick"] == "I"], {"acc": Stat(column="acc", higher_is_better=True)})
    assert one["acc_gap"] is None and one["acc_worst_type"] is None and one["acc_ratio"] is None


def test_shape_counts_and_single_subject_type():
    rows = _subjects(3, 4, np.random.default_rng(4)) + [{"fitzpatrick": "VI", "subject_id": "only", "x": 1.0}] * 5
    out = per_fitzpatrick(rows, {"x": "x", "n": count()}, n_boot=100, types=["I", "III", "VI"])
    per = out["per_fitzpatrick"]
    assert list(per) == ["I", "III", "VI"]
    assert per["I"]["n_subjects"] == 3 and per["I"]["n_items"] == 12 and per["I"]["n"] == 12 and per["I"]["x_ci"]
    assert per["VI"] == {"x": 1.0, "x_ci": None, "n": 5, "n_subjects": 1, "n_items": 5}  # one subject: no CI
    assert per["III"] == {"x": None, "x_ci": None, "n": 0, "n_subjects": 0, "n_items": 0}
    assert "n_ci" not in per["I"]  # counts are exact: no interval key


def test_deterministic_for_a_fixed_seed_and_json_clean():
    rows = _subjects(8, 2, np.random.default_rng(5))
    rows[0]["x"] = float("nan")  # skipped by the column mean
    rows.append({"fitzpatrick": "II", "subject_id": "z", "x": float("nan")})
    a = per_fitzpatrick(rows, {"x": Stat(column="x", higher_is_better=True)}, seed=7, n_boot=200)
    b = per_fitzpatrick(list(reversed(rows)), {"x": Stat(column="x", higher_is_better=True)}, seed=7, n_boot=200)
    c = per_fitzpatrick(rows, {"x": Stat(column="x", higher_is_better=True)}, seed=8, n_boot=200)
    assert a == b and a["per_fitzpatrick"]["I"]["x_ci"] != c["per_fitzpatrick"]["I"]["x_ci"]
    assert a["per_fitzpatrick"]["II"]["x"] is None
    json.dumps(a, allow_nan=False)


def test_given_by_where_and_digits():
    """Counts given per type; a stat grouped by another key over all rows; the table's population filter."""
    rows = [
        {"fitzpatrick": "I", "gt": "I", "subject_id": "a", "ok": True, "hit": 1.0, "v": 0.123456},
        {"fitzpatrick": "I", "gt": "II", "subject_id": "b", "ok": False, "hit": 0.0, "v": 9.0},
        {"fitzpatrick": "II", "gt": "II", "subject_id": "c", "ok": True, "hit": 1.0, "v": 0.5},
    ]
    stats = {
        "eligible": Stat(given={"I": 7, "II": 3}),
        "v": "v",
        "acc": Stat(column="hit", by="gt", where=lambda r: True, higher_is_better=True),
    }
    out = per_fitzpatrick(rows, stats, where=lambda r: r["ok"], n_boot=20, digits=3)
    per = out["per_fitzpatrick"]
    assert per["I"]["eligible"] == 7 and per["I"]["v"] == 0.123 and per["I"]["n_items"] == 1
    assert per["I"]["acc"] == 1.0 and per["II"]["acc"] == 0.5  # II: rows b (miss) and c (hit), ok or not
    assert out["acc_worst_type"] == "II" and out["acc_gap"] == 0.5


def test_reserved_names_and_bad_specs_raise():
    with pytest.raises(ValueError, match="reserved"):
        per_fitzpatrick([], {"n_items": "x"})
    with pytest.raises(ValueError, match="exactly one"):
        Stat(column="x", given={"I": 1})
