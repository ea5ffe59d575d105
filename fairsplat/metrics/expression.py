"""Motion transfer: AED and APD between FLAME parameters re-tracked from two images.

Both compare what one tracker (``fairsplat.track.fit``, on landmarks one
detector found) reads from an output and from the image that drove it, so the
tracker's own bias is the same on both sides (GAGAvatar's protocol, from its
author's replies in GAGAvatar #36/#39/#43/#45; its code was never released).

- **AED** (average expression distance) of one frame: the mean over the E
  expression coefficients of |e_out - e_driver| (coefficient units: the head's
  blendshape weights, 0 = neutral, 1 = the full named expression on the
  procedural head; FLAME's PCA units on a real FLAME file).
- **APD** (average pose distance) of one frame: the mean over the 3
  components of the global head rotation (axis-angle, radians, FLAME's
  ``pose[:3]`` in the tracker's camera frame) of |r_out - r_driver|. For small
  rotations these components are pitch, yaw and roll; so APD is their mean
  absolute error in radians.

The ``_reference`` twins are loops over the definitions, for tests.
"""

from __future__ import annotations

import numpy as np


def aed(expr: np.ndarray, driver: np.ndarray) -> np.ndarray:  # [N, E] x2 -> [N]
    """Mean absolute difference of expression coefficients per row."""
    assert expr.shape == driver.shape and expr.ndim == 2, (expr.shape, driver.shape)
    return np.abs(np.asarray(expr, np.float64) - np.asarray(driver, np.float64)).mean(1)


def apd(rot: np.ndarray, driver: np.ndarray) -> np.ndarray:  # [N, 3] axis-angle (rad) x2 -> [N] rad
    """Mean absolute difference of the global rotation's axis-angle components per row, radians."""
    assert rot.shape == driver.shape and rot.shape[1:] == (3,), (rot.shape, driver.shape)
    return np.abs(np.asarray(rot, np.float64) - np.asarray(driver, np.float64)).mean(1)


def aed_reference(expr: np.ndarray, driver: np.ndarray) -> np.ndarray:
    return np.array([sum(abs(float(a) - float(b)) for a, b in zip(x, y)) / len(x) for x, y in zip(expr, driver)])


def apd_reference(rot: np.ndarray, driver: np.ndarray) -> np.ndarray:
    return np.array([(abs(x[0] - y[0]) + abs(x[1] - y[1]) + abs(x[2] - y[2])) / 3.0 for x, y in zip(rot, driver)])
