"""The issues' quality floors, checked against the committed default run (``metrics/*.json``).

Floors are requirements, not measurements, so they live here and not in the
metrics files: ``dvc params diff`` shows params and ``dvc metrics diff`` the
measurements; this file says which measurements the default run must reach. A
commit whose ``dvc repro`` fell below a floor fails CI here. A floor that the
project does not meet yet is marked ``xfail(strict=True)`` with the measured
number in the reason: it is reported, never hidden, and the test fails the day
it starts passing so the mark gets removed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def metrics(stage: str) -> dict:
    path = ROOT / "metrics" / f"{stage}.json"
    if not path.is_file():
        pytest.skip(f"{path} not committed")
    return json.loads(path.read_text())


def per_type(stage: str, key: str) -> dict[str, float]:
    return {t: row[key] for t, row in metrics(stage)["per_fitzpatrick"].items()}


def test_synth_ground_truth_ita_agrees_with_the_pixels():
    assert min(per_type("synth", "ita_gt_consistency").values()) >= 0.95


def test_curation_types_skin_correctly():
    m = metrics("curate")
    assert m["ita_type_accuracy"] >= 0.95
    assert min(per_type("curate", "ita_type_accuracy").values()) >= 0.90


def test_curation_leaves_enough_identities_for_a_generator():
    m = metrics("curate")
    assert m["subjects_train"] >= 200
    assert min(per_type("curate", "subjects_test").values()) >= 4  # per-type CIs over subjects


def test_parser_floor_and_type_gap():
    m = metrics("train_parser")
    assert m["miou"] >= 0.80 and m["miou_gap"] <= 0.05


def test_tracking_on_exact_landmarks():
    """Exact landmarks: the fit itself. The type gap is bounded in absolute NME: at ~0.007 (under a pixel at
    128 px) a relative bound measures which 5 identities a type drew (V vs I: 0.0087 vs 0.0066, 0.2 px)."""
    m = metrics("track")
    assert m["nme"] <= 0.03 and m["nme_gap"] <= 0.005


def test_degradation_strength_follows_the_configured_order():
    assert metrics("degrade")["effective_order_ok"] is True


def test_generator_beats_the_constant_avatar_by_3db_and_on_ssim_and_lpips():
    m = metrics("train_ff")
    assert m["gain_k1_psnr_masked"] >= 3.0
    assert m["gain_k1_ssim_masked"] > 0 and m["gain_k1_lpips_alex_masked"] < 0


def test_two_sources_are_at_least_as_good_as_one():
    m = metrics("train_ff")
    assert m["ff_k2_psnr_masked"] >= m["ff_k1_psnr_masked"]
