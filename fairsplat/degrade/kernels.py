"""Fast filters for the degradation steps (numba + numpy, planar float32).

Why hand-written: the seed-001 pipeline has to produce >= 20 pairs/s at 512 px
on 2 CPU cores, i.e. < 100 ms for 14 steps plus masks per pair per core. On
this machine scipy.ndimage's Gaussian on a [512, 512, 3] image takes ~16 ms and
torch's depthwise conv ~30 ms; the row-vectorised numba loops below take ~2 ms.
Images are planar ``[C, H, W]`` float32 so every inner loop runs over a
contiguous row. Borders clamp (scipy's ``mode="nearest"``) everywhere.

Resampling and warping live in ``resample.py``. Each kernel has a slow reference in ``tests/test_degrade_kernels.py``
(scipy.ndimage / torch / explicit loops), following STYLE.md.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from fairsplat.degrade import resample as R

LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # BT.601, what "grey" means in every step


def gaussian_kernel(sigma: float, radius: int | None = None) -> np.ndarray:
    """Normalised 1-D Gaussian taps, radius ceil(3 sigma) (at least 1)."""
    sigma = max(float(sigma), 1e-3)
    r = max(1, math.ceil(3.0 * sigma)) if radius is None else radius
    t = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)  # [2r + 1]


@nb.njit(cache=True, fastmath=True)
def _sep_conv(x, kh, kv):  # x [C, H, W] -> [C, H, W]
    C, H, W = x.shape
    rh, rv = len(kh) // 2, len(kv) // 2
    out = np.empty_like(x)
    buf = np.empty(W + 2 * rh, np.float32)
    tmp = np.empty((H, W), np.float32)
    for c in range(C):
        for i in range(H):  # horizontal pass through a clamped, padded row
            for j in range(W):
                buf[j + rh] = x[c, i, j]
            for j in range(rh):
                buf[j] = x[c, i, 0]
                buf[W + rh + j] = x[c, i, W - 1]
            row = tmp[i]
            row[:] = 0.0
            for t in range(len(kh)):
                kk = kh[t]
                for j in range(W):
                    row[j] += kk * buf[j + t]
        for i in range(H):  # vertical pass: whole rows at a time
            o = out[c, i]
            o[:] = 0.0
            for t in range(len(kv)):
                src = tmp[min(max(i + t - rv, 0), H - 1)]
                kk = kv[t]
                for j in range(W):
                    o[j] += kk * src[j]
    return out


def sep_conv(x: np.ndarray, kh: np.ndarray, kv: np.ndarray) -> np.ndarray:
    """Correlate rows with ``kh`` and columns with ``kv`` (odd lengths). [C,H,W] or [H,W]."""
    flat = x.ndim == 2
    x3 = x[None] if flat else x
    out = _sep_conv(np.ascontiguousarray(x3, np.float32), kh.astype(np.float32), kv.astype(np.float32))
    return out[0] if flat else out


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Isotropic Gaussian blur; large sigmas run at reduced resolution.

    Why reduce: above sigma ~4 px a blur removes everything the reduced grid
    cannot hold, so blurring an area-downsampled copy and upsampling it is
    visually the same at a fraction of the cost (kernel taps shrink by f^2).
    """
    if sigma <= 4.0:
        k = gaussian_kernel(sigma)
        return sep_conv(x, k, k)
    f = int(sigma // 2)
    small = R.area_down(x, f)
    k = gaussian_kernel(math.sqrt(max(sigma**2 - (f**2) / 4.0, 0.25)) / f)
    return R.resize_bilinear(sep_conv(small, k, k), x.shape[-2], x.shape[-1])


@nb.njit(cache=True, fastmath=True)
def _row_taps(o, xc, i, dy, dx, w):  # o [W] = sum_t w[t] * xc[i + dy[t], j + dx[t]] (clamped)
    H, W = xc.shape
    o[:] = 0.0
    for t in range(len(w)):
        ox, wt = dx[t], w[t]
        src = xc[min(max(i + dy[t], 0), H - 1)]
        j0, j1 = min(max(-ox, 0), W), max(min(W - ox, W), 0)  # source inside the row
        for j in range(0, j0):
            o[j] += wt * src[0]
        s_in, o_in = src[j0 + ox : j1 + ox], o[j0:j1]  # views: lets LLVM vectorise
        for j in range(j1 - j0):
            o_in[j] += wt * s_in[j]
        for j in range(max(j1, j0), W):
            o[j] += wt * src[W - 1]


@nb.njit(cache=True, fastmath=True)
def _shift_sum(x, dy, dx, w):  # x [C, H, W]; dy, dx [T] int; w [T] -> [C, H, W]
    C, H, W = x.shape
    out = np.empty_like(x)
    for c in range(C):
        for i in range(H):  # one output row at a time: it stays in L1 across taps
            _row_taps(out[c, i], x[c], i, dy, dx, w)
    return out


@nb.njit(cache=True, fastmath=True)
def _shift_sum2(x, dya, dxa, wa, dyb, dxb, wb, sel):  # two sparse kernels, mixed per pixel by sel [H, W]
    C, H, W = x.shape
    out = np.empty_like(x)
    rb = np.empty(W, np.float32)
    for c in range(C):
        for i in range(H):
            o, s = out[c, i], sel[i]
            _row_taps(o, x[c], i, dya, dxa, wa)
            _row_taps(rb, x[c], i, dyb, dxb, wb)
            for j in range(W):
                o[j] = rb[j] + s[j] * (o[j] - rb[j])
    return out


def shift_sum2(x: np.ndarray, taps_a: tuple, taps_b: tuple, sel: np.ndarray) -> np.ndarray:
    """sel * shift_sum(x, *taps_a) + (1 - sel) * shift_sum(x, *taps_b), fused. [C,H,W], sel [H,W]"""
    (dya, dxa, wa), (dyb, dxb, wb) = taps_a, taps_b
    i64, f32 = np.int64, np.float32
    return _shift_sum2(
        np.ascontiguousarray(x, f32), np.asarray(dya, i64), np.asarray(dxa, i64), np.asarray(wa, f32),
        np.asarray(dyb, i64), np.asarray(dxb, i64), np.asarray(wb, f32), np.ascontiguousarray(sel, f32),
    )  # fmt: skip


def shift_sum(x: np.ndarray, dy: np.ndarray, dx: np.ndarray, w: np.ndarray) -> np.ndarray:
    """sum_t w[t] * x[i + dy[t], j + dx[t]] (clamped): any sparse 2-D kernel, e.g. a line."""
    flat = x.ndim == 2
    x3 = x[None] if flat else x
    out = _shift_sum(
        np.ascontiguousarray(x3, np.float32),
        np.asarray(dy, np.int64),
        np.asarray(dx, np.int64),
        np.asarray(w, np.float32),
    )
    return out[0] if flat else out


def line_taps(length: float, theta: float, spacing: float = 1.0):
    """Integer offsets and Gaussian weights of a line kernel at angle theta (radians).

    sigma along the line is length / 4, so ``length`` is about the visible
    streak; duplicate offsets from rounding are merged.
    """
    n = max(1, int(round(length / (2 * spacing))))
    t = np.arange(-n, n + 1, dtype=np.float64) * spacing
    w = np.exp(-0.5 * (t / max(length / 4.0, 0.5)) ** 2)
    dy = np.round(t * math.sin(theta)).astype(np.int64)
    dx = np.round(t * math.cos(theta)).astype(np.int64)
    keys = dy * 100003 + dx
    uniq, inv = np.unique(keys, return_inverse=True)
    wsum = np.bincount(inv, weights=w)
    first = np.array([np.flatnonzero(inv == u)[0] for u in range(len(uniq))])
    return dy[first], dx[first], (wsum / wsum.sum()).astype(np.float32)


@nb.njit(cache=True, fastmath=True)
def _blend(x, y, w, out):  # x, y, out [C, H, W]; w [H, W]: out = clip(x + w (y - x), 0, 1)
    C, H, W = x.shape
    lo, hi = np.float32(0.0), np.float32(1.0)
    for c in range(C):
        for i in range(H):
            xr, yr, wr, o = x[c, i], y[c, i], w[i], out[c, i]
            for j in range(W):
                v = xr[j] + wr[j] * (yr[j] - xr[j])
                o[j] = min(max(v, lo), hi)
    return out


def blend(x: np.ndarray, y: np.ndarray, w: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel lerp from x to y by weight w, clipped to [0, 1] (one fused pass).

    ``out=y`` blends in place: fresh 3 MB arrays cost page faults, so the
    pipeline reuses each step's scratch result as the output.
    """
    x, y = np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y, np.float32)
    if out is None:
        out = np.empty_like(x)
    assert out.shape == x.shape and out.dtype == np.float32 and out.flags.c_contiguous
    return _blend(x, y, np.ascontiguousarray(w, np.float32), out)


def luma(x: np.ndarray) -> np.ndarray:
    """BT.601 luma of a planar image. [3, H, W] -> [H, W]"""
    return LUMA[0] * x[0] + LUMA[1] * x[1] + LUMA[2] * x[2]


def normal_f32(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 samples by vectorised Box-Muller from ``rng.random``.

    Why not ``rng.standard_normal``: on this CPU it costs ~14 ns a sample
    against ~7 here, and noise is drawn for every full-resolution pixel.
    Uniforms have 24-bit resolution, so tails stop at ~5.8 sigma (irrelevant
    for image noise). Deterministic for a given generator state.
    """
    n = int(np.prod(shape))
    half = (n + 1) // 2
    u = rng.random((2, half), dtype=np.float32)
    r = np.sqrt(np.float32(-2.0) * np.log1p(-u[0]))
    t = np.float32(2.0 * math.pi) * u[1]
    return np.concatenate([r * np.cos(t), r * np.sin(t)])[:n].reshape(shape)


@nb.njit(cache=True, fastmath=True)
def _mix_planes(img, planes, coef):  # img [C, H, W], planes [P, H, W], coef [C, P] -> img + coef @ planes
    C, H, W = img.shape
    out = np.empty_like(img)
    for c in range(C):
        for i in range(H):
            o = out[c, i]
            o[:] = img[c, i]
            for p in range(planes.shape[0]):
                k, src = coef[c, p], planes[p, i]
                for j in range(W):
                    o[j] += k * src[j]
    return out


def mix_planes(img: np.ndarray, planes: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """img[c] + sum_p coef[c, p] * planes[p]: add shared fields (noise, luma change) per channel."""
    return _mix_planes(
        np.ascontiguousarray(img, np.float32), np.ascontiguousarray(planes, np.float32), coef.astype(np.float32)
    )


@nb.njit(cache=True, fastmath=True)
def _max_filter(x, r):  # x [H, W] -> [H, W], square (2r+1)^2 window, clamped borders
    H, W = x.shape
    tmp = np.empty_like(x)
    out = np.empty_like(x)
    buf = np.empty(W + 2 * r, x.dtype)
    for i in range(H):  # rows: running max over a padded copy
        for j in range(W):
            buf[j + r] = x[i, j]
        for j in range(r):
            buf[j] = x[i, 0]
            buf[W + r + j] = x[i, W - 1]
        row = tmp[i]
        row[:] = buf[0:W]
        for t in range(1, 2 * r + 1):
            src = buf[t : t + W]
            for j in range(W):
                row[j] = max(row[j], src[j])
    for i in range(H):  # columns: max of whole rows
        o = out[i]
        o[:] = tmp[max(i - r, 0)]
        for t in range(-r + 1, r + 1):
            src = tmp[min(max(i + t, 0), H - 1)]
            for j in range(W):
                o[j] = max(o[j], src[j])
    return out


def max_filter(x: np.ndarray, r: int) -> np.ndarray:
    """Grey dilation with a (2r+1)^2 square, borders clamped (scipy ``maximum_filter``, nearest). [H,W]"""
    return _max_filter(np.ascontiguousarray(x, np.float32), int(r))


@nb.njit(cache=True, fastmath=True)
def _composite_ellipses(out, ell, cols):  # out [C, H, W] in place; ell [n, 6]; cols [n, C]
    C, H, W = out.shape
    for k in range(ell.shape[0]):  # in order: later blobs cover earlier ones
        cy, cx, major, minor, theta, opacity = ell[k]
        r = 3.0 * major
        y0, y1 = max(0, int(cy - r)), min(H, int(cy + r) + 1)
        x0, x1 = max(0, int(cx - r)), min(W, int(cx + r) + 1)
        c, s = math.cos(theta), math.sin(theta)
        ia, ib = 1.0 / major, 1.0 / minor
        for i in range(y0, y1):
            dy = i + 0.5 - cy
            for j in range(x0, x1):
                dx = j + 0.5 - cx
                a, b = (dx * c + dy * s) * ia, (dy * c - dx * s) * ib
                alpha = opacity * math.exp(-0.5 * (a * a + b * b))
                for ch in range(C):
                    out[ch, i, j] += alpha * (cols[k, ch] - out[ch, i, j])
    return out


def composite_ellipses(out: np.ndarray, ell: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Alpha-composite elliptical Gaussian splats over ``out`` in place, in order.

    ell rows are (cy, cx, sigma_major, sigma_minor, theta, opacity) in pixels;
    each footprint is evaluated on its +-3 sigma_major box. [C,H,W], [n,6], [n,C]
    """
    assert out.dtype == np.float32 and out.flags.c_contiguous
    ell = np.asarray(ell, np.float64).reshape(-1, 6)
    return _composite_ellipses(out, ell, np.asarray(cols, np.float32).reshape(len(ell), -1))
