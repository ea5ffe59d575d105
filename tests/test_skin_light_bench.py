"""bench/skin_light.py's scoring: accuracy, within one type and the counts of corrected crops, by hand."""

from __future__ import annotations

import pytest

from bench.skin_light import _md, _scores
from fairsplat.curate.item import Analysis
from fairsplat.sources.manifest import Record


def test_scores_count_by_hand():
    # (true type, true ITA, ita, ita_raw, method): chardon_delbino_6 puts 60 in I, 45 in II, 35 in III, 0 in V
    rows = [("I", 62.0, 60.0, 40.0, "sclera"), ("I", 62.0, 35.0, 35.0, "raw"), ("II", 48.0, 45.0, 0.0, "sclera"),
            ("V", -5.0, 0.0, 0.0, "raw")]  # fmt: skip
    recs = [Record(f"x/{i}", "synth", f"s{i}", "x.png", fitzpatrick_gt=t, ita_gt=g) for i, (t, g, *_) in enumerate(rows)]
    an = [Analysis(r.image_id, ita=v, ita_raw=raw, ita_method=m) for r, (_, _, v, raw, m) in zip(recs, rows)]
    an.append(Analysis("x/rejected", reason="no_skin"))
    s = _scores(recs + [Record("x/rejected", "synth", "s9", "x.png", fitzpatrick_gt="I", ita_gt=60.0)], an, "chardon_delbino_6")
    assert s["n"] == 4 and s["rejected"] == 1
    assert s["acc"] == pytest.approx(3 / 4) and s["within1"] == pytest.approx(3 / 4)  # 35 is III: two types from I
    assert s["per_type"]["I"] == {"acc": 0.5, "within1": 0.5, "n": 2} and s["per_type"]["III"]["acc"] is None
    assert s["worst_acc"] == 0.5 and s["mae"] == pytest.approx((2 + 27 + 3 + 5) / 4)
    assert s["used"] == 2 and s["used_mae"] == pytest.approx((2 + 3) / 2) and s["used_acc"] == 1.0
    assert s["used_raw_acc"] == 0.0 and s["used_raw_mae"] == pytest.approx((22 + 48) / 2)



def test_markdown_row():
    per = {t: {"acc": 0.5, "within1": 1.0, "n": 2} for t in ("I", "II", "III", "IV", "V", "VI")}
    row = _md("`raw`", {"per_type": per, "acc": 0.5, "within1": 1.0, "mae": 12.34})
    assert row == "| `raw` | " + " | ".join([".50/1.0"] * 6) + " | 0.500 | 1.000 | 12.3° |"
