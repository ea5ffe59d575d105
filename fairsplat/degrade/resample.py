"""Resampling kernels: resize, block means, warps, triangle meshes, layout changes.

Same conventions as ``kernels.py`` (planar float32 ``[C, H, W]``, clamped
borders, half-pixel centres as torch's ``align_corners=False``) and the same
reason for existing: numpy/scipy equivalents are 3-10x slower at 512 px.
Slow references in ``tests/test_degrade_kernels.py``.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np


@nb.njit(cache=True, fastmath=True)
def _resize_bilinear(x, H, W):  # x [C, h, w] -> [C, H, W], half-pixel centres
    C, h, w = x.shape
    out = np.empty((C, H, W), np.float32)
    tmp = np.empty((h, W), np.float32)  # source rows resized horizontally
    sy, sx = h / H, w / W
    x0 = np.empty(W, np.int64)
    x1 = np.empty(W, np.int64)
    fx = np.empty(W, np.float32)
    for j in range(W):
        s = max((j + 0.5) * sx - 0.5, 0.0)
        a = min(int(s), w - 1)
        x0[j], x1[j], fx[j] = a, min(a + 1, w - 1), s - a
    for c in range(C):
        for i in range(h):  # horizontal gathers on the h source rows only
            r, t = x[c, i], tmp[i]
            for j in range(W):
                t[j] = r[x0[j]] + fx[j] * (r[x1[j]] - r[x0[j]])
        for i in range(H):  # vertical lerp of two whole rows: vectorises
            s = max((i + 0.5) * sy - 0.5, 0.0)
            a = min(int(s), h - 1)
            b, fy = min(a + 1, h - 1), np.float32(s - a)
            ta, tb, o = tmp[a], tmp[b], out[c, i]
            for j in range(W):
                o[j] = ta[j] + fy * (tb[j] - ta[j])
    return out


def resize_bilinear(x: np.ndarray, H: int, W: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres (torch ``align_corners=False``)."""
    flat = x.ndim == 2
    x3 = x[None] if flat else x
    out = _resize_bilinear(np.ascontiguousarray(x3, np.float32), int(H), int(W))
    return out[0] if flat else out


def area_down(x: np.ndarray, f: int) -> np.ndarray:
    """Block mean over f x f cells (edge-padded to a multiple of f). [C,H,W] or [H,W]."""
    if f <= 1:
        return np.array(x, np.float32, copy=True)
    H, W = x.shape[-2:]
    ph, pw = -H % f, -W % f
    if ph or pw:
        pad = [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)]
        x = np.pad(x, pad, mode="edge")
    acc = np.zeros(x.shape[:-2] + (x.shape[-2] // f, x.shape[-1] // f), np.float32)
    for a in range(f):
        for b in range(f):
            acc += x[..., a::f, b::f]
    return acc / np.float32(f * f)


@nb.njit(cache=True, fastmath=True)
def _warp(x, lab, vec, wy, wx, amp, wob):  # x [C, H, W] -> [C, H, W]
    # Sample x at (i + dy, j + dx), dy = amp * (vec[lab, 0] + wob * wy), likewise dx;
    # displacement built on the fly (fused: ~40% faster than materialising it).
    C, H, W = x.shape
    out = np.empty_like(x)
    hmax, wmax, zero = np.float32(H - 1), np.float32(W - 1), np.float32(0.0)
    for i in range(H):
        fi = np.float32(i)
        for j in range(W):
            lb = lab[i, j]
            sy = min(max(fi + amp * (vec[lb, 0] + wob * wy[i, j]), zero), hmax)
            sx = min(max(np.float32(j) + amp * (vec[lb, 1] + wob * wx[i, j]), zero), wmax)
            a, b = int(sy), int(sx)
            a1, b1 = min(a + 1, H - 1), min(b + 1, W - 1)
            fy, fx = sy - np.float32(a), sx - np.float32(b)
            for c in range(C):
                top = x[c, a, b] + fx * (x[c, a, b1] - x[c, a, b])
                bot = x[c, a1, b] + fx * (x[c, a1, b1] - x[c, a1, b])
                out[c, i, j] = top + fy * (bot - top)
    return out


def warp_bilinear(x: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Backward warp: out[i, j] = x(i + dy, j + dx), bilinear, border-clamped. [C,H,W]"""
    f32 = np.float32
    lab = np.zeros(dy.shape, np.uint8)
    vec = np.zeros((1, 2), f32)
    return _warp(np.ascontiguousarray(x, f32), lab, vec, dy.astype(f32), dx.astype(f32), f32(1.0), f32(1.0))


def warp_parts(
    x: np.ndarray,  # [C, H, W]
    labels: np.ndarray,  # [H, W] uint8 part ids
    part_vec: np.ndarray,  # [P, 2] (dy, dx) per part id
    wy: np.ndarray,  # [H, W] smooth field
    wx: np.ndarray,  # [H, W]
    amp: float,
    wobble: float,
) -> np.ndarray:  # [C, H, W]
    """warp_bilinear with dy = amp * (part_vec[labels, 0] + wobble * wy) (and dx likewise)."""
    f32 = np.float32
    return _warp(
        np.ascontiguousarray(x, f32), np.ascontiguousarray(labels, np.uint8), part_vec.astype(f32),
        wy.astype(f32), wx.astype(f32), f32(amp), f32(wobble),
    )  # fmt: skip


@nb.njit(cache=True, fastmath=True)
def _facet(verts, H, W, cell, cos_t, sin_t, oy, ox):  # verts [C, gh, gw] -> [C, H, W]
    C, gh, gw = verts.shape
    out = np.empty((C, H, W), np.float32)
    for i in range(H):
        for j in range(W):
            u = (cos_t * j + sin_t * i + ox) / cell  # rotated grid coordinates
            v = (-sin_t * j + cos_t * i + oy) / cell
            a = min(max(int(math.floor(v)), 0), gh - 2)
            b = min(max(int(math.floor(u)), 0), gw - 2)
            fv, fu = min(max(v - a, 0.0), 1.0), min(max(u - b, 0.0), 1.0)
            for c in range(C):
                p00, p01 = verts[c, a, b], verts[c, a, b + 1]
                p10, p11 = verts[c, a + 1, b], verts[c, a + 1, b + 1]
                if fu + fv <= 1.0:  # lower-left triangle (00, 01, 10)
                    val = p00 + fu * (p01 - p00) + fv * (p10 - p00)
                else:  # upper-right triangle (11, 10, 01)
                    val = p11 + (1.0 - fu) * (p10 - p11) + (1.0 - fv) * (p01 - p11)
                out[c, i, j] = val
    return out


def facet_grid(H: int, W: int, cell: float, theta: float, jitter_v: float, jitter_u: float):
    """A rotated square grid of side ``cell`` covering the image, shifted by a sub-cell jitter.

    Returns (ys, xs, oy, ox): vertex image positions [gh, gw] each, and the
    offsets that ``facet`` must use so pixel (i, j) lands in grid cell coords >= 0.
    """
    c, s = math.cos(theta), math.sin(theta)
    cy = np.array([0.0, 0.0, H, H])
    cx = np.array([0.0, W, 0.0, W])
    u, v = c * cx + s * cy, -s * cx + c * cy  # corners in the rotated frame
    ox, oy = -u.min() + jitter_u * cell, -v.min() + jitter_v * cell
    gh = int(math.ceil((v.max() + oy) / cell)) + 2
    gw = int(math.ceil((u.max() + ox) / cell)) + 2
    vv, uu = np.meshgrid(np.arange(gh, dtype=np.float64), np.arange(gw, dtype=np.float64), indexing="ij")
    ru, rv = uu * cell - ox, vv * cell - oy  # rotated frame
    return s * ru + c * rv, c * ru - s * rv, float(oy), float(ox)


def facet(verts: np.ndarray, H: int, W: int, cell: float, theta: float, oy: float, ox: float) -> np.ndarray:
    """Piecewise-linear (triangulated grid) interpolation of vertex colours. [C,gh,gw] -> [C,H,W]"""
    return _facet(np.ascontiguousarray(verts, np.float32), H, W, float(cell), math.cos(theta), math.sin(theta), oy, ox)


def sample_bilinear(x: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Bilinear values of a planar image at float pixel positions (clamped). -> [C, *ys.shape]"""
    C, H, W = x.shape
    sy, sx = np.clip(ys, 0, H - 1), np.clip(xs, 0, W - 1)
    a, b = np.minimum(sy.astype(np.int64), H - 1), np.minimum(sx.astype(np.int64), W - 1)
    a1, b1 = np.minimum(a + 1, H - 1), np.minimum(b + 1, W - 1)
    fy, fx = (sy - a).astype(np.float32), (sx - b).astype(np.float32)
    top = x[:, a, b] + fx * (x[:, a, b1] - x[:, a, b])
    bot = x[:, a1, b] + fx * (x[:, a1, b1] - x[:, a1, b])
    return top + fy * (bot - top)


@nb.njit(cache=True, fastmath=True)
def _upsample_weight(small, strength, ridx, factor):  # small [h, w] -> [H, W]
    H, W = strength.shape
    h, w = small.shape
    out = np.empty((H, W), np.float32)
    tmp = np.empty((h, W), np.float32)
    sy, sx = h / H, w / W
    for i in range(h):
        for j in range(W):
            s = max((j + 0.5) * sx - 0.5, 0.0)
            a = min(int(s), w - 1)
            b, fx = min(a + 1, w - 1), np.float32(s - a)
            tmp[i, j] = small[i, a] + fx * (small[i, b] - small[i, a])
    one = np.float32(1.0)
    for i in range(H):
        s = max((i + 0.5) * sy - 0.5, 0.0)
        a = min(int(s), h - 1)
        b, fy = min(a + 1, h - 1), np.float32(s - a)
        ta, tb, st, rr, o = tmp[a], tmp[b], strength[i], ridx[i], out[i]
        for j in range(W):
            o[j] = min((ta[j] + fy * (tb[j] - ta[j])) * st[j] * factor[rr[j]], one)
    return out


def upsample_weight(small: np.ndarray, strength: np.ndarray, ridx: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """min(1, resize_bilinear(small) * strength * factor[ridx]) in one pass. -> [H, W]"""
    return _upsample_weight(
        np.ascontiguousarray(small, np.float32), np.ascontiguousarray(strength, np.float32),
        np.ascontiguousarray(ridx, np.uint8), np.ascontiguousarray(factor, np.float32),
    )  # fmt: skip


@nb.njit(cache=True)
def _to_hwc(x):  # [C, H, W] -> [H, W, C]
    C, H, W = x.shape
    out = np.empty((H, W, C), x.dtype)
    for i in range(H):
        for c in range(C):
            src = x[c, i]
            for j in range(W):
                out[i, j, c] = src[j]
    return out


def to_hwc(x: np.ndarray) -> np.ndarray:
    """Planar to interleaved, contiguous (~3x faster than numpy's transposed copy here)."""
    return _to_hwc(np.ascontiguousarray(x))


@nb.njit(cache=True)
def _to_chw(x, div):  # [H, W, C] (any dtype) -> [C, H, W] float32 / div (div == 1: plain copy)
    H, W, C = x.shape
    out = np.empty((C, H, W), np.float32)
    for i in range(H):
        for c in range(C):
            o = out[c, i]
            if div == 1.0:
                for j in range(W):
                    o[j] = np.float32(x[i, j, c])
            else:
                for j in range(W):
                    o[j] = np.float32(x[i, j, c]) / div
    return out


def to_chw(x: np.ndarray, div: float = 1.0) -> np.ndarray:
    """Interleaved to planar float32, divided by ``div`` (255 for uint8: same bits as numpy's ``/ 255``)."""
    return _to_chw(np.ascontiguousarray(x), np.float32(div))
