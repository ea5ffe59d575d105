"""Identities: skin albedo drawn in CIELAB per ITA class, plus varied appearance.

Why CIELAB: ITA = atan((L* - 50) / b*) is defined there, so drawing (ITA, b*)
and solving L* = 50 + b* tan(ITA) hits a class exactly. Draws stay inside the
*inner* part of each Chardon / Del Bino class so rendering (shading, light
colour) leaves the measured ITA in the same class; ``ita_gt_consistency`` in
``metrics/synth.json`` checks that on the pixels.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from fairsplat import detmath as dm
from fairsplat.faces.ita import lab_to_rgb
from fairsplat.labels import FITZPATRICK

# ITA sampling range per Fitzpatrick type (degrees): inside the Chardon /
# Del Bino classes (I >55, II 41-55, III 28-41, IV 10-28, V -30-10, VI <-30)
# with a margin so mild lighting does not push an identity across a border.
ITA_DRAW: dict[str, tuple[float, float]] = {
    "I": (58.0, 66.0),
    "II": (45.5, 51.0),
    "III": (32.0, 37.5),
    "IV": (15.0, 23.5),
    "V": (-18.0, 2.0),
    "VI": (-55.0, -38.0),
}

# b* (yellowness) range per type, from the spread of measured skin colours
# (light skin ~ b* 10-14, intermediate/tan ~ 15-20, dark ~ 12-18). Together
# with the ITA draw it keeps L* = 50 + b* tan(ITA) in a plausible 25-78 range.
B_DRAW: dict[str, tuple[float, float]] = {
    "I": (9.0, 12.0), "II": (11.0, 15.0), "III": (13.0, 17.0),
    "IV": (15.0, 19.0), "V": (15.0, 20.0), "VI": (12.0, 17.0),
}

HAIR_COLOURS = {  # sRGB, mean of the strand colour
    "black": (0.05, 0.04, 0.04), "dark_brown": (0.18, 0.11, 0.07), "brown": (0.35, 0.22, 0.12),
    "blond": (0.72, 0.58, 0.36), "red": (0.55, 0.22, 0.10), "grey": (0.62, 0.62, 0.60),
}
IRIS_COLOURS = {"brown": (0.30, 0.17, 0.08), "dark": (0.12, 0.08, 0.05), "blue": (0.30, 0.45, 0.62),
                "green": (0.32, 0.45, 0.28), "hazel": (0.45, 0.35, 0.18)}


@dataclass(frozen=True)
class Identity:
    identity_id: str
    fitzpatrick: str
    ita: float  # ground-truth ITA of the skin albedo, degrees
    skin_lab: tuple[float, float, float]
    skin_rgb: tuple[float, float, float]  # sRGB in [0, 1]
    lip_rgb: tuple[float, float, float]
    hair: str
    hair_rgb: tuple[float, float, float]
    hair_coverage: float  # 0 = receding hairline .. 1 = low hairline
    hair_volume: float  # metres the hair sits off the scalp
    brow_rgb: tuple[float, float, float]
    iris: str
    iris_rgb: tuple[float, float, float]
    shape: tuple[float, ...]  # FLAME shape coefficients (unit variance)

    def to_row(self) -> dict:
        return asdict(self)


def skin_from_ita(ita: float, b: float, a: float) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(Lab, sRGB) of a skin colour with the given ITA, b* and a*."""
    angle = math.radians(ita)
    lab = (50.0 + b * float(dm.sin(angle) / dm.cos(angle)), a, b)  # detmath: the same bits on every machine
    rgb = lab_to_rgb(np.array(lab, dtype=np.float64))
    return lab, tuple(float(x) for x in rgb)


def _lips(skin_lab: tuple[float, float, float], rng: np.random.Generator) -> tuple[float, float, float]:
    L, a, b = skin_lab
    lab = (L - rng.uniform(8, 16), a + rng.uniform(10, 20), b + rng.uniform(-2, 3))
    return tuple(float(x) for x in lab_to_rgb(np.array(lab, dtype=np.float64)))


def sample_identity(index: int, n_shape: int, rng: np.random.Generator) -> Identity:
    """Identity ``index``: its type cycles I..VI so every class gets the same count."""
    ftype = FITZPATRICK[index % len(FITZPATRICK)]
    lo, hi = ITA_DRAW[ftype]
    ita = float(rng.uniform(lo, hi))
    b = float(rng.uniform(*B_DRAW[ftype]))
    a = float(rng.uniform(8.0, 15.0))
    lab, rgb = skin_from_ita(ita, b, a)
    hair = str(rng.choice(list(HAIR_COLOURS)))
    hair_rgb = np.clip(np.array(HAIR_COLOURS[hair]) * rng.uniform(0.85, 1.15), 0, 1)
    brow = np.clip(hair_rgb * rng.uniform(0.5, 0.9) if hair not in ("grey", "blond") else hair_rgb * 0.55, 0, 1)
    iris = str(rng.choice(list(IRIS_COLOURS)))
    return Identity(
        identity_id=f"synth_{index:04d}", fitzpatrick=ftype, ita=ita, skin_lab=lab, skin_rgb=rgb,
        lip_rgb=_lips(lab, rng), hair=hair, hair_rgb=tuple(float(x) for x in hair_rgb),
        hair_coverage=float(rng.uniform(0.0, 1.0)), hair_volume=float(rng.uniform(0.0, 0.012)),
        brow_rgb=tuple(float(x) for x in brow), iris=iris, iris_rgb=IRIS_COLOURS[iris],
        shape=tuple(float(x) for x in rng.normal(0.0, 1.0, n_shape)),
    )
