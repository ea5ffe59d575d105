"""Skin-type classification from ITA° and CIELAB: a registry of published schemes.

CAUTION, and why several schemes: no authoritative one-to-one ITA → Fitzpatrick
mapping exists. Fitzpatrick is a sun-reactivity phototype, not a colour; the
I–VI labels attached to ITA bins are conventions. The pipeline records which
scheme it used (``SCHEMES`` key) next to every label, and the default is the
common one-to-one reading of Chardon / Del Bino.

Boundaries. A category holds ``lower < ita <= upper`` (derm_ita's convention),
except ``arxiv_2104_14685_fst`` which holds ``lower <= ita < upper`` as its
public code does. The outermost bins are closed at ±90°. One deliberate
difference from derm_ita: there ``ita == -30`` falls between "brown"
(-30 < ita <= 10) and "dark" (ita < -30) and gets no class; here it is "dark"
(every ITA in [-90, 90] gets exactly one class).

Sources (values embedded here; ``tests/test_faces_skin_types.py`` checks them
against ``shared/data/skin_tone/ita_categories.csv`` when present):

* ``chardon_delbino_6`` — Chardon et al. 1991, Int J Cosmet Sci 13:191-208;
  Del Bino et al. 2006, Pigment Cell Res 19:606-614; Del Bino & Bernerd 2013,
  Br J Dermatol 169 Suppl 3:33-40. I–VI mapping as in derm_ita
  ``get_del_bino_type`` (MIT, citing PLOS ONE doi:10.1371/journal.pone.0241843).
* ``kinyanjui_8`` — Kinyanjui et al. 2019, arXiv:1910.13268, Table 1 (no FST).
* ``kinyanjui_groh_fst`` — Groh et al., CVPR-W 2021 (Fitzpatrick17k), Kinyanjui
  ranges mapped to FST (derm_ita ``get_kinyanjui_groh_type``).
* ``groh_empirical_fst`` — Groh et al., CVPR-W 2021: cut-offs fitted to the
  Fitzpatrick17k ITA distribution (derm_ita ``get_groh_ita_category``).
* ``arxiv_2104_14685_fst`` — arXiv:2104.14685 (derm_ita ``get_fitzpatrick_type``).

Monk Skin Tone (MST) 1–10: the ten "MST Swatches" sRGB values published by
Google (https://skintone.google/get-started; Monk 2019), as committed in
github.com/celiolr/monkscale_personalized_sunscreen_notebooks
``data/images/MST Swatches/MST_{1..10}.png`` and repeated in other public code.
A face's MST is the swatch nearest to its median skin colour in CIEDE2000.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from skimage.color import deltaE_ciede2000

from fairsplat.labels import FITZPATRICK


@dataclass(frozen=True)
class Category:
    name: str
    lower: float  # exclusive (inclusive when the scheme says so)
    upper: float  # inclusive (exclusive when the scheme says so)
    fitzpatrick: str | None  # "I".."VI" or None when the scheme has no FST reading


@dataclass(frozen=True)
class Scheme:
    categories: tuple[Category, ...]  # ordered light -> dark (descending ITA)
    lower_inclusive: bool  # True: lower <= ita < upper; False: lower < ita <= upper
    source: str


def _cats(*rows: tuple[str, float, float, str | None]) -> tuple[Category, ...]:
    return tuple(Category(*r) for r in rows)


SCHEMES: dict[str, Scheme] = {
    "chardon_delbino_6": Scheme(
        _cats(
            ("very light", 55, 90, "I"),
            ("light", 41, 55, "II"),
            ("intermediate", 28, 41, "III"),
            ("tan", 10, 28, "IV"),
            ("brown", -30, 10, "V"),
            ("dark", -90, -30, "VI"),
        ),
        False,
        "Chardon 1991; Del Bino 2006/2013; I-VI as in derm_ita get_del_bino_type",
    ),
    "kinyanjui_8": Scheme(
        _cats(
            ("very_lt", 55, 90, None),
            ("lt2", 48, 55, None),
            ("lt1", 41, 48, None),
            ("int2", 34.5, 41, None),
            ("int1", 28, 34.5, None),
            ("tan2", 19, 28, None),
            ("tan1", 10, 19, None),
            ("dark", -90, 10, None),
        ),
        False,
        "Kinyanjui et al. 2019 arXiv:1910.13268 Table 1",
    ),
    "kinyanjui_groh_fst": Scheme(
        _cats(
            ("FST1", 55, 90, "I"),
            ("FST2", 41, 55, "II"),
            ("FST3", 28, 41, "III"),
            ("FST4", 19, 28, "IV"),
            ("FST5", 10, 19, "V"),
            ("FST6", -90, 10, "VI"),
        ),
        False,
        "Groh et al. CVPR-W 2021 (Fitzpatrick17k), Kinyanjui ranges -> FST",
    ),
    "groh_empirical_fst": Scheme(
        _cats(
            ("FST1", 40, 90, "I"),
            ("FST2", 23, 40, "II"),
            ("FST3", 12, 23, "III"),
            ("FST4", 0, 12, "IV"),
            ("FST5", -25, 0, "V"),
            ("FST6", -90, -25, "VI"),
        ),
        False,
        "Groh et al. CVPR-W 2021, cut-offs fitted to Fitzpatrick17k ITA",
    ),
    "arxiv_2104_14685_fst": Scheme(
        _cats(
            ("FST1", 50, 90, "I"),
            ("FST2", 25, 50, "II"),
            ("FST3", 0, 25, "III"),
            ("FST4", -25, 0, "IV"),
            ("FST5", -50, -25, "V"),
            ("FST6", -90, -50, "VI"),
        ),
        True,
        "arXiv:2104.14685 (derm_ita get_fitzpatrick_type)",
    ),
}
DEFAULT_SCHEME = "chardon_delbino_6"

MST_HEX: tuple[str, ...] = (
    "#f6ede4",  # 1
    "#f3e7db",  # 2
    "#f7ead0",  # 3
    "#eadaba",  # 4
    "#d7bd96",  # 5
    "#a07e56",  # 6
    "#825c43",  # 7
    "#604134",  # 8
    "#3a312a",  # 9
    "#292420",  # 10
)


def _scheme(name: str) -> Scheme:
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown skin-type scheme {name!r} (known: {', '.join(SCHEMES)})") from None


def _contains(c: Category, ita: float, lower_inclusive: bool, first: bool, last: bool) -> bool:
    if lower_inclusive:
        return (c.lower <= ita or last and ita >= -90) and (ita < c.upper or first and ita <= 90)
    return (c.lower < ita or last and ita >= -90) and ita <= c.upper


def classify(ita: float, scheme: str = DEFAULT_SCHEME) -> Category:
    """The category of one ITA value; ValueError outside [-90, 90] or for NaN."""
    s = _scheme(scheme)
    if not -90.0 <= ita <= 90.0:  # also rejects NaN
        raise ValueError(f"ITA {ita} outside [-90, 90]")
    n = len(s.categories)
    for i, c in enumerate(s.categories):
        if _contains(c, ita, s.lower_inclusive, i == 0, i == n - 1):
            return c
    raise AssertionError(f"scheme {scheme} has a gap at ITA {ita}")  # tables are contiguous; tested


def fitzpatrick(ita: float, scheme: str = DEFAULT_SCHEME) -> str | None:
    """Fitzpatrick type "I".."VI" for an ITA under ``scheme`` (None if it has no FST reading)."""
    return classify(ita, scheme).fitzpatrick


def hex_to_rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


@lru_cache(maxsize=1)
def mst_lab() -> np.ndarray:  # [10, 3]
    """CIELAB (D65) of the ten MST swatches."""
    from fairsplat.faces.ita import rgb_to_lab

    rgb = np.array([hex_to_rgb(h) for h in MST_HEX], np.uint8)
    return rgb_to_lab(rgb)


def monk(lab: np.ndarray | tuple[float, float, float]) -> int:
    """MST index 1..10 of the swatch nearest (CIEDE2000) to one CIELAB colour."""
    lab = np.asarray(lab, np.float64).reshape(1, 3)
    de = deltaE_ciede2000(np.repeat(lab, len(MST_HEX), axis=0), mst_lab())
    return int(np.argmin(de)) + 1


def fitzpatrick_index(fst: str) -> int:
    """"I".."VI" -> 0..5, for ordinal comparisons."""
    return FITZPATRICK.index(fst)
