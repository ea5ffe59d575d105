"""Curation's issue-16 additions: per-subject skin type over frames, the illumination methods recorded per
crop (and the raw ITA kept, flagged, when a method has no reference), the detector named in the metrics,
and the foreground mattes scored against ground-truth alpha."""

from __future__ import annotations

import numpy as np
import pytest

from fairsplat.curate import curate
from fairsplat.curate.config import CurateConfig
from fairsplat.curate.item import Analysis
from fairsplat.curate.run import per_subject_ita
from fairsplat.sources import synth
from fairsplat.sources.manifest import Record
from tests.test_curate import SMALL, card_synth


@pytest.fixture(scope="module")
def cards(tmp_path_factory):
    return card_synth(tmp_path_factory.mktemp("cards_light"), per_type=1, images=3)


def test_frames_of_a_subject_share_their_median_type():
    recs = [Record(f"c/{i}", "celebvhq", "clip", "x.png", frame_index=i) for i in range(5)]
    recs.append(Record("still", "folder", "other", "y.png"))
    itas = [30.0, 35.0, 45.0, 60.0, 31.0, 50.0]  # a lit frame (60) and a dim one (30) around a III subject
    an = [Analysis(r.image_id, ita=v, ita_raw=v, fitzpatrick="x", lab=(60.0, 10.0, 15.0)) for r, v in zip(recs, itas)]
    per_subject_ita(recs, an, "chardon_delbino_6")
    assert {a.fitzpatrick for a in an[:5]} == {"III"} and all(a.ita == 35.0 for a in an[:5])
    assert an[0].ita_subject_iqr == pytest.approx(45.0 - 31.0) and an[2].ita_raw == 45.0
    assert an[5].ita == 50.0 and an[5].ita_subject is None  # a still photo keeps its own


def _weighted_median_slow(values, weights) -> float:
    """Integer weights: repeat each value that many times and take numpy's median."""
    return float(np.median(np.repeat(values, weights)))


@pytest.mark.parametrize("seed", range(6))
def test_weighted_median_matches_repetition(seed):
    from fairsplat.curate.run import weighted_median

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 12))
    values, weights = rng.normal(20, 30, n), rng.integers(1, 6, n)
    assert weighted_median(values, weights) == pytest.approx(_weighted_median_slow(values, weights))
    assert weighted_median(values, np.ones(n)) == pytest.approx(float(np.median(values)))
    assert weighted_median(values, weights * 0.37) == pytest.approx(_weighted_median_slow(values, weights))  # scale-free


def test_frames_with_a_reference_outvote_the_rest():
    """A subject with frames whose correction was confident takes their confidence-weighted median; the
    other frames follow it without the flag and say so; a subject with none keeps the plain median, flagged."""
    recs = [Record(f"a/{i}", "synth", "a", "x.png", frame_index=i) for i in range(5)]
    recs += [Record(f"b/{i}", "synth", "b", "x.png", frame_index=i) for i in range(3)]
    raw = [-5.0, 0.0, 5.0, 45.0, 48.0, 10.0, 20.0, 30.0]  # a: a III subject in dim light; b: nothing confident
    an = [Analysis(r.image_id, ita=v, ita_raw=v, ita_method="raw", ita_flag="low_confidence", fitzpatrick="x") for r, v in zip(recs, raw)]
    for i, (ita, conf) in {3: (36.0, 0.9), 4: (40.0, 0.6)}.items():
        an[i].ita, an[i].ita_method, an[i].ita_flag, an[i].ita_confidence = ita, "sclera", None, conf
    per_subject_ita(recs, an, "chardon_delbino_6")
    for a in an[:5]:
        assert a.ita == 36.0 and a.fitzpatrick == "III" and a.ita_method == "sclera" and a.ita_flag is None
    assert "2 of 5 frames" in an[0].ita_detail and an[0].ita_raw == -5.0
    for a in an[5:]:
        assert a.ita == 20.0 and a.ita_method == "raw" and a.ita_flag == "low_confidence"


def test_default_curation_records_raw_ita_and_mattes(cards, tmp_path):
    res = curate(list(synth.iter_records(cards)), tmp_path / "out", CurateConfig(**{**SMALL, "per_type": None}))
    m = res.metrics
    assert m["ita_method"] == "raw" and m["ita_low_confidence"] == 0
    assert m["ita_type_accuracy"] is not None and m["ita_type_accuracy_raw"] is not None
    for row in res.manifest:
        assert row["ita_method"] == "raw" and row["ita_flag"] is None and row["ita_subject"] is not None
        assert row["fg_iou_ellipse"] is not None and row["fg_iou_selfie"] is not None and row["fg_iou_head"] is not None
    for k in ("fg_iou_ellipse", "fg_iou_selfie", "fg_iou_head", "ita_type_within1", "ita_mae_raw", "detection_rate"):
        assert k in m and all(k in v for v in m["per_fitzpatrick"].values()), k


@pytest.mark.parametrize("method", ["sclera", "sclera_flat", "grey_edge", "white_patch"])
def test_a_method_without_reference_keeps_the_raw_ita_and_says_so(cards, tmp_path, method):
    cfg = CurateConfig(**{**SMALL, "per_type": None, "ita_method": method, "ita_per_subject": False, "score_foreground": False})
    res = curate(list(synth.iter_records(cards)), tmp_path / "out", cfg)
    assert res.metrics["ita_method"] == method and res.metrics["reject_error"] == 0
    for row in res.manifest:
        assert row["ita_method"] in (method, "raw")
        if row["ita_method"] == "raw":  # the painted cards' eyes have no sclera: raw kept, flagged
            assert row["ita_flag"] == "low_confidence" and row["ita"] == row["ita_raw"]
        else:
            assert row["ita_flag"] is None and 0.0 <= row["ita_confidence"] <= 1.0
    assert res.metrics["ita_low_confidence"] == sum(r["ita_flag"] == "low_confidence" for r in res.manifest)
