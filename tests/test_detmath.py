"""fairsplat.detmath against slow references: Python's math module element by element, and a plain QR.

The cross-machine property itself (same bits under other BLAS kernels, numpy
SIMD targets and thread counts) is tested on the whole head asset in
tests/test_head_determinism.py.
"""

import math

import numpy as np
import pytest

from fairsplat import detmath as dm

RNG = np.random.default_rng(0)


def _ulps(fast: np.ndarray, slow: np.ndarray) -> float:
    """Largest error in units of the reference's last place."""
    return float((np.abs(fast - slow) / np.spacing(np.abs(slow))).max())


CASES = {  # name: (fast, slow scalar reference, inputs, max ulps)
    "exp": (dm.exp, math.exp, RNG.uniform(-700.0, 700.0, 3000), 2),
    "exp_small": (dm.exp, math.exp, RNG.uniform(-3.0, 3.0, 3000), 2),
    "log": (dm.log, math.log, np.exp(RNG.uniform(-700.0, 700.0, 3000)), 2),
    "log_near_1": (dm.log, math.log, RNG.uniform(0.5, 2.0, 3000), 2),
    "sin": (dm.sin, math.sin, RNG.uniform(-20.0, 20.0, 3000), 3),
    "cos": (dm.cos, math.cos, RNG.uniform(-20.0, 20.0, 3000), 3),
    "cbrt": (dm.cbrt, math.cbrt, np.exp(RNG.uniform(-700.0, 700.0, 3000)), 3),
}


@pytest.mark.parametrize("name", list(CASES))
def test_values_match_math_module(name):
    fast, slow, x, max_ulps = CASES[name]
    ref = np.array([slow(float(v)) for v in x])
    err = _ulps(fast(x), ref) if name not in ("sin", "cos") else float(np.abs(fast(x) - ref).max() / np.spacing(1.0))
    assert err <= max_ulps, f"{name}: {err} ulp"  # sin/cos: absolute, in ulps of 1 (their zeros have no relative scale)


def test_arctan2_matches_math_module_in_every_quadrant():
    y, x = RNG.normal(size=2000), RNG.normal(size=2000)
    ref = np.array([math.atan2(float(a), float(b)) for a, b in zip(y, x)])
    assert _ulps(dm.arctan2(y, x), ref) <= 3
    for a, b in ((0.0, 0.0), (0.0, -1.0), (1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (-1.0, -1.0), (1e-300, 1.0)):
        assert dm.arctan2(a, b) == pytest.approx(math.atan2(a, b), rel=1e-15, abs=0.0)


@pytest.mark.parametrize("p", [0.4, 0.8, 1.4, 2.5, 2.0, 0.5])
def test_power_matches_math_module(p):
    x = np.concatenate([RNG.uniform(0.0, 1.0, 2000), [0.0, 1.0]])
    ref = np.array([math.pow(float(v), p) for v in x])
    np.testing.assert_allclose(dm.power(x, p), ref, rtol=2e-14, atol=0.0)
    with pytest.raises(ValueError):
        dm.power(np.array([-1.0]), p if p not in (2.0, 0.5) else 0.3)


def test_special_values():
    out = dm.exp(np.array([-np.inf, np.inf, 0.0, np.nan, -800.0, 800.0]))
    assert out[0] == 0.0 and out[1] == np.inf and out[2] == 1.0 and np.isnan(out[3]) and out[4] == 0.0 and out[5] == np.inf
    with np.errstate(invalid="ignore"):
        out = dm.log(np.array([0.0, -1.0, np.inf, 1.0, 5e-324]))
    assert out[0] == -np.inf and np.isnan(out[1]) and out[2] == np.inf and out[3] == 0.0
    assert out[4] == pytest.approx(math.log(5e-324), rel=1e-15)
    assert dm.sin(0.0) == 0.0 and dm.cos(0.0) == 1.0 and abs(dm.sin(math.pi)) < 2e-16
    with pytest.raises(ValueError):
        dm.sin(np.array([1e7]))  # outside the reduction's domain: refuse rather than lose bits


def test_gram_schmidt_matches_qr_and_keeps_prefixes():
    a = RNG.normal(size=(600, 7)) + 0.5 * RNG.normal(size=(600, 1))  # correlated columns
    q = dm.gram_schmidt(a)
    qr, r = np.linalg.qr(a)
    np.testing.assert_allclose(q, qr * np.sign(np.diag(r)), atol=1e-13)  # same basis, each column pointing like a's
    np.testing.assert_allclose(q.T @ q, np.eye(7), atol=1e-14)
    assert (dm.gram_schmidt(a[:, :4]) == q[:, :4]).all()  # more columns never change the first ones (bit for bit)
    with pytest.raises(RuntimeError, match="column 2"):
        dm.gram_schmidt(np.stack([a[:, 0], a[:, 1], a[:, 0] - 2.0 * a[:, 1]], 1))


def test_matvec3_and_inv3_match_numpy():
    m = RNG.normal(size=(3, 3))
    v = RNG.normal(size=(50, 4, 3))
    np.testing.assert_allclose(dm.matvec3(m, v), v @ m.T, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(dm.inv3(m) @ m, np.eye(3), atol=1e-13)
    with pytest.raises(ValueError, match="singular"):
        dm.inv3(np.ones((3, 3)))


def test_dot_is_a_plain_sum():
    a, b = RNG.normal(size=1001), RNG.normal(size=1001)
    assert dm.dot(a, b) == pytest.approx(math.fsum(a * b), rel=1e-13)
