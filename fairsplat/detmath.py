"""Transcendentals and an orthogonalisation that give the same bits on every x86 machine.

Why: the head asset (and everything downstream of it) must hash the same on
a colleague's machine, or a shared DVC cache is useless. Measured on this
project (README, "Reproducibility across machines"): numpy dispatches
``exp``, ``log`` and ``power`` (non-trivial exponents) to AVX512F kernels
where the CPU has them and to libm elsewhere, and the two differ in the last
bit; ``np.linalg.qr`` and ``@`` go through OpenBLAS, whose kernel (Haswell,
SkylakeX, Sandybridge, ...) is picked per CPU and changes the rounding.
Either was enough to change ``shapedirs``, ``exprdirs`` and the landmark
embedding of the procedural head.

What is the same everywhere: IEEE-754 ``+ - * /``, ``sqrt``, ``rint``,
``ldexp``, ``frexp``, comparisons, and numpy's reductions (their order is
fixed by the array's layout, not by the CPU). Everything here is built from
those only: range reduction (Cody-Waite constants from fdlibm) and Taylor /
atanh series evaluated by Horner, one ufunc per operation (numpy never fuses
them into FMAs). Accuracy is a few ulp (power: relative 2e-14), far below anything geometric or colorimetric;
the point is that the bits do not depend on the machine, the thread count or
the BLAS. Use these, not ``np.exp`` and friends, in code whose outputs are
hashed by DVC.
"""

from __future__ import annotations

import math

import numpy as np

_LN2_HI = 6.93147180369123816490e-01  # fdlibm: low bits zero, so k * _LN2_HI is exact for |k| < 2^20
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_PIO2_1 = 1.57079632673412561417e00  # fdlibm: pi/2 in three parts, the first two with trailing zero bits
_PIO2_2 = 6.07710050630396597660e-11
_PIO2_3 = 2.02226624879595063154e-21
_TWO_OVER_PI = 6.36619772367581382433e-01
_PI = 3.14159265358979311600e00
_PIO2 = 1.57079632679489655800e00
_PIO4 = 7.85398163397448278999e-01
_TAN_PI_8 = 0.41421356237309503
_SQRT_HALF = 0.70710678118654757
_MAX_TRIG_ARG = 2.0**19  # Cody-Waite reduction with 3 parts is exact-enough up to here

_EXP_TERMS = 14  # |r| <= ln2/2: r^14/14! < 5e-18
_EXP_COEF = tuple(1.0 / math.factorial(n) for n in range(_EXP_TERMS + 1))  # Python floats: the same everywhere
_LOG_TERMS = 12  # |s| <= 0.172: s^25/25 < 1e-20
_TRIG_TERMS = 11  # |r| <= pi/4: r^22/22! < 1e-23
_ATAN_TERMS = 24  # |u| <= tan(pi/8): u^49/49 < 1e-20
_CBRT_NEWTON = 5  # 6e-2 -> 4e-3 -> 2e-5 -> 4e-10 -> 2e-19 (quadratic convergence), one to spare


def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def exp(x) -> np.ndarray:
    """e**x: x = k ln2 + r, |r| <= ln2/2, Taylor series for e**r, then an exact scale by 2**k."""
    x = _f64(x)
    xc = np.clip(np.where(np.isnan(x), 0.0, x), -746.0, 710.0)  # beyond these the result is 0 / inf anyway; keeps k small
    k = np.rint(xc * _INV_LN2)
    r = (xc - k * _LN2_HI) - k * _LN2_LO
    p = np.full_like(r, _EXP_COEF[-1])
    for c in _EXP_COEF[-2::-1]:  # Horner on sum r^n / n!, in place (each step is one IEEE op)
        np.multiply(p, r, out=p)
        np.add(p, c, out=p)
    with np.errstate(over="ignore", under="ignore"):
        out = np.ldexp(p, k.astype(np.int64))
    out = np.where(np.isnan(x), np.nan, out)
    return out if out.ndim else out[()]


def log(x) -> np.ndarray:
    """Natural log: x = m 2**e with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh((m - 1) / (m + 1))."""
    x = _f64(x)
    m, e = np.frexp(np.where((x > 0) & np.isfinite(x), x, 1.0))
    small = m < _SQRT_HALF
    m = np.where(small, 2.0 * m, m)
    e = (e - small).astype(np.float64)
    f = m - 1.0  # exact (Sterbenz)
    s = f / (2.0 + f)
    s2 = s * s
    p = np.zeros_like(s)
    for n in range(_LOG_TERMS, 0, -1):  # sum_{n>=1} s2^n / (2n + 1), in place
        np.add(p, 1.0 / (2 * n + 1), out=p)
        np.multiply(p, s2, out=p)
    log_m = f - s * (f - 2.0 * p)  # 2 s (1 + p) written around f, so log m ~ f keeps its bits near m = 1
    out = e * _LN2_HI + (log_m + e * _LN2_LO)
    out = np.where(x > 0, out, np.where(x == 0, -np.inf, np.nan))
    out = np.where(np.isposinf(x), np.inf, out)
    return out if out.ndim else out[()]


def power(x, p: float) -> np.ndarray:
    """x**p for x >= 0 (0**p = 0 for p > 0): exp(p log x). Squares and square roots stay exact ops."""
    x = _f64(x)
    if p == 2.0:
        return x * x
    if p == 0.5:
        return np.sqrt(x)
    if np.any(x < 0):
        raise ValueError("detmath.power: x must be >= 0")
    with np.errstate(invalid="ignore"):
        out = exp(p * log(x))
    return np.where(x == 0, 0.0 if p > 0 else (1.0 if p == 0 else np.inf), out)


def cbrt(x) -> np.ndarray:
    """Cube root of x >= 0 (within 3 ulp): x = m 2**(3q), m in [0.5, 4); Newton's iteration for m from a
    quadratic first guess (within 6 %, the error squares each step), then an exact scale by 2**q."""
    x = _f64(x)
    if np.any(x < 0):
        raise ValueError("detmath.cbrt: x must be >= 0")
    ok = (x > 0) & np.isfinite(x)
    m, e = np.frexp(np.where(ok, x, 1.0))
    q = np.floor_divide(e, 3)
    m = np.ldexp(m, e - 3 * q)  # [0.5, 4)
    y = 0.6516 + m * (0.3768 - 0.0368 * m)  # least-squares quadratic of m ** (1/3) on [0.5, 4): within 6 %
    for _ in range(_CBRT_NEWTON):
        y = (2.0 * y + m / (y * y)) / 3.0
    out = np.where(ok, np.ldexp(y, q), x)  # 0 -> 0, inf -> inf, nan -> nan
    return out if out.ndim else out[()]


def matvec3(m: np.ndarray, v: np.ndarray) -> np.ndarray:  # [3, 3], [..., 3] -> [..., 3]
    """m @ v along the last axis as explicit products and sums (a [N, 3] @ [3, 3] goes through BLAS otherwise)."""
    v = _f64(v)
    return np.stack([v[..., 0] * m[i, 0] + v[..., 1] * m[i, 1] + v[..., 2] * m[i, 2] for i in range(3)], axis=-1)


def inv3(m) -> np.ndarray:
    """Inverse of a 3x3 matrix by cofactors (LAPACK's inverse rounds per CPU kernel)."""
    m = _f64(m)
    cof = np.array([[m[(i + 1) % 3, (j + 1) % 3] * m[(i + 2) % 3, (j + 2) % 3]
                     - m[(i + 1) % 3, (j + 2) % 3] * m[(i + 2) % 3, (j + 1) % 3] for j in range(3)] for i in range(3)])
    det = m[0, 0] * cof[0, 0] + m[0, 1] * cof[0, 1] + m[0, 2] * cof[0, 2]
    if det == 0.0:
        raise ValueError("inv3: singular matrix")
    return cof.T / det


def _reduce_pio2(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x = k pi/2 + r with |r| <= pi/4; returns (r, k mod 4)."""
    if x.size and np.nanmax(np.abs(x)) > _MAX_TRIG_ARG:
        raise ValueError(f"detmath: trig argument beyond +-{_MAX_TRIG_ARG:g}")
    k = np.rint(x * _TWO_OVER_PI)
    r = ((x - k * _PIO2_1) - k * _PIO2_2) - k * _PIO2_3
    return r, np.mod(k, 4.0).astype(np.int64)


def _sin_cos_kernel(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # |r| <= pi/4
    r2 = r * r
    s = np.ones_like(r)
    c = np.ones_like(r)
    for n in range(_TRIG_TERMS, 0, -1):
        s = 1.0 - r2 / ((2 * n) * (2 * n + 1)) * s  # sin r / r
        c = 1.0 - r2 / ((2 * n - 1) * (2 * n)) * c  # cos r
    return r * s, c


def sin(x) -> np.ndarray:
    x = _f64(x)
    r, q = _reduce_pio2(x)
    s, c = _sin_cos_kernel(r)
    out = np.choose(q, [s, c, -s, -c])
    return out if out.ndim else out[()]


def cos(x) -> np.ndarray:
    x = _f64(x)
    r, q = _reduce_pio2(x)
    s, c = _sin_cos_kernel(r)
    out = np.choose(q, [c, -s, -c, s])
    return out if out.ndim else out[()]


def _atan01(t: np.ndarray) -> np.ndarray:
    """atan t for t in [0, 1]: above tan(pi/8), atan t = pi/4 + atan((t - 1) / (t + 1))."""
    hi = t > _TAN_PI_8
    u = np.where(hi, (t - 1.0) / (t + 1.0), t)  # |u| <= tan(pi/8)
    u2 = u * u
    p = np.zeros_like(u)
    for n in range(_ATAN_TERMS, 0, -1):  # sum_{n>=1} (-1)^n u2^n / (2n + 1)
        p = u2 * ((-1.0) ** n / (2 * n + 1) + p)
    a = u + u * p
    return np.where(hi, _PIO4 + a, a)


def arctan2(y, x) -> np.ndarray:
    """Angle of (x, y) in [-pi, pi], numpy's convention (arctan2(0, 0) = 0, signs of zeros aside)."""
    y, x = np.broadcast_arrays(_f64(y), _f64(x))
    ax, ay = np.abs(x), np.abs(y)
    big, small = np.maximum(ax, ay), np.minimum(ax, ay)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(big > 0, small / np.where(big > 0, big, 1.0), 0.0)
    a = _atan01(t)
    a = np.where(ay > ax, _PIO2 - a, a)
    a = np.where(x < 0, _PI - a, a)
    out = np.where(y < 0, -a, a)
    return out if out.ndim else out[()]


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of a * b over 1-D arrays without BLAS (numpy's pairwise sum: order fixed by the length)."""
    return float(np.sum(np.ravel(a) * np.ravel(b)))


def gram_schmidt(a: np.ndarray, rel_tol: float = 1e-6) -> np.ndarray:
    """Orthonormal columns of a [M, K], in order, each pointing like its column (BLAS-free).

    Classical Gram-Schmidt applied twice per column ("twice is enough"):
    orthogonal to machine precision, and column k depends on columns 0..k
    only, so adding columns never changes earlier ones. The projections are
    numpy reductions (row sums of [k, M] products, then a sum over k), whose
    order is fixed by the shapes. Raises if a column is (nearly) in the span of
    the previous ones: its remaining norm is below ``rel_tol`` times the
    largest remaining norm so far.
    """
    a = np.asarray(a, dtype=np.float64)
    m, k_cols = a.shape
    q = np.zeros((k_cols, m))  # [K, M] rows are the orthonormal vectors (contiguous)
    norms = []
    for k in range(k_cols):
        v = np.array(a[:, k])  # [M]
        for _ in range(2):
            if k:
                c = (q[:k] * v).sum(axis=1)  # [k] coefficients
                v = v - (c[:, None] * q[:k]).sum(axis=0)
        nrm = float(np.sqrt(dot(v, v)))
        norms.append(nrm)
        if nrm <= rel_tol * max(norms):
            raise RuntimeError(f"gram_schmidt: column {k} is (nearly) linearly dependent on the previous ones")
        q[k] = v / nrm
    return np.ascontiguousarray(q.T)
