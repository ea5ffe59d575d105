"""Skin-type schemes: the embedded tables against the shared CSVs, and the boundaries."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
import pytest

from fairsplat.faces.ita import ita_of_rgb, rgb_to_lab
from fairsplat.faces.skin_types import DEFAULT_SCHEME, MST_HEX, SCHEMES, classify, fitzpatrick, hex_to_rgb, monk, mst_lab
from fairsplat.labels import FITZPATRICK

SKIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "skin_tone"
ITA_CSV, MST_CSV = SKIN / "ita_categories.csv", SKIN / "mst_scale.csv"
ROMAN = {str(i + 1): r for i, r in enumerate(FITZPATRICK)}


def _fst(cell: str) -> str | None:
    """'I (common ...)' -> 'I'; '3' -> 'III'; '' -> None."""
    m = re.match(r"\s*([IV]+|\d)\b", cell)
    return None if not m else ROMAN.get(m.group(1), m.group(1))


@pytest.mark.skipif(not ITA_CSV.exists(), reason=f"{ITA_CSV} absent (shared test data not checked out)")
def test_embedded_ita_tables_match_the_csv():
    rows = list(csv.DictReader(ITA_CSV.open()))
    from_csv: dict[str, list[tuple]] = {}
    for r in rows:
        from_csv.setdefault(r["scheme"], []).append(
            (r["category"], float(r["ita_lower_exclusive"]), float(r["ita_upper_inclusive"]), _fst(r["fitzpatrick_equivalent"]))
        )
    assert set(from_csv) == set(SCHEMES)
    for name, cats in from_csv.items():
        ours = [(c.name, c.lower, c.upper, c.fitzpatrick) for c in SCHEMES[name].categories]
        assert ours == cats, name


@pytest.mark.skipif(not MST_CSV.exists(), reason=f"{MST_CSV} absent (shared test data not checked out)")
def test_embedded_mst_colours_match_the_csv_and_classify_to_themselves():
    rows = list(csv.DictReader(MST_CSV.open()))
    assert [r["hex"] for r in rows] == list(MST_HEX)
    for r in rows:
        assert hex_to_rgb(r["hex"]) == (int(r["r"]), int(r["g"]), int(r["b"]))
        assert r["swatch_png_pixel_hex"] == r["hex"]
        ita = float(ita_of_rgb(np.array(hex_to_rgb(r["hex"]), np.uint8)))
        assert classify(ita).name == r["ita_del_bino_category"]
    np.testing.assert_allclose(mst_lab(), [[float(r[k]) for k in ("L_star_D65", "a_star_D65", "b_star_D65")] for r in rows], atol=0.05)


def test_every_swatch_is_its_own_nearest_monk_level():
    for i, h in enumerate(MST_HEX, start=1):
        assert monk(rgb_to_lab(np.array(hex_to_rgb(h), np.uint8))) == i


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_scheme_covers_minus_90_to_90_once_and_in_order(scheme):
    cats = SCHEMES[scheme].categories
    for hi, lo in zip(cats, cats[1:]):
        assert hi.lower == lo.upper, (hi, lo)  # contiguous, no gaps or overlaps
    assert cats[0].upper == 90 and cats[-1].lower == -90
    order = [cats.index(classify(x, scheme)) for x in np.linspace(90, -90, 3601)]
    assert order == sorted(order) and order[0] == 0 and order[-1] == len(cats) - 1


@pytest.mark.parametrize(
    ("ita", "name", "fst"),
    [
        (90.0, "very light", "I"), (55.001, "very light", "I"), (55.0, "light", "II"), (41.0, "intermediate", "III"),
        (28.0, "tan", "IV"), (10.0, "brown", "V"), (-29.999, "brown", "V"), (-30.0, "dark", "VI"), (-90.0, "dark", "VI"),
    ],
)  # fmt: skip
def test_chardon_del_bino_boundaries(ita, name, fst):
    assert classify(ita, DEFAULT_SCHEME).name == name
    assert fitzpatrick(ita) == fst


@pytest.mark.parametrize(("ita", "name"), [(50.0, "FST1"), (49.999, "FST2"), (0.0, "FST3"), (-50.0, "FST5"), (-90.0, "FST6"), (90.0, "FST1")])
def test_lower_inclusive_scheme_boundaries(ita, name):
    assert classify(ita, "arxiv_2104_14685_fst").name == name


@pytest.mark.parametrize("bad", [90.01, -90.01, math.nan])
def test_out_of_range_ita_is_refused(bad):
    with pytest.raises(ValueError):
        classify(bad)


def test_unknown_scheme_names_the_known_ones():
    with pytest.raises(ValueError, match="chardon_delbino_6"):
        classify(10.0, "nope")


def test_kinyanjui_has_no_fitzpatrick_reading():
    assert fitzpatrick(60.0, "kinyanjui_8") is None
