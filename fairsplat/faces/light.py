"""Light colour: blackbody illuminants as camera gains, and the sRGB transfer curve.

Shared by SynthHeads' ``hard`` lighting (synth/scene.py), the parser's illuminant augmentation
(parse/train.py) and the illumination correction (faces/illumination.py), so all three mean the
same thing by "a 2,700 K light on a D65-balanced camera".
"""

from __future__ import annotations

import numpy as np


def planck_xy(cct: float) -> tuple[float, float]:
    """CIE 1931 xy of a blackbody at ``cct`` K (Kim et al. 2002 cubic fit of the Planckian locus, 1,667-25,000 K)."""
    t = float(cct)
    assert 1667.0 <= t <= 25000.0, t
    if t <= 4000.0:
        x = -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910
    else:
        x = -3.0258469e9 / t**3 + 2.1070379e6 / t**2 + 0.2226347e3 / t + 0.240390
    if t <= 2222.0:
        y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    elif t <= 4000.0:
        y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
    return x, y


XYZ_TO_LINEAR_SRGB = np.array([[3.2404542, -1.5371385, -0.4985314], [-0.9692660, 1.8760108, 0.0415560],
                               [0.0556434, -0.2040259, 1.0572252]])  # fmt: skip
D65_XY = (0.31271, 0.32902)


def illuminant_gains(cct: float) -> tuple[float, float, float]:
    """Linear-RGB gains of a blackbody light seen by a camera balanced for D65, at unit luminance."""

    def rgb(xy):
        x, y = xy
        return XYZ_TO_LINEAR_SRGB @ np.array([x / y, 1.0, (1.0 - x - y) / y])

    g = rgb(planck_xy(cct)) / rgb(D65_XY)
    g = np.clip(g, 1e-3, None)
    g = g / float(np.array([0.2126, 0.7152, 0.0722]) @ g)  # luminance 1: the colour changes, not the brightness
    return tuple(float(v) for v in g)




def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(np.asarray(x, np.float64), 0.0, None)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
