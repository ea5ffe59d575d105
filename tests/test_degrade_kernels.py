"""The hand-written degradation kernels against slow, obviously correct references.

STYLE.md: a slow reference beside every fast op. References are scipy.ndimage,
torch's interpolate and explicit per-pixel loops on tiny sizes.
"""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from fairsplat.degrade import kernels as K
from fairsplat.degrade import resample as R


@pytest.fixture
def img():
    return np.random.default_rng(0).random((3, 23, 31), dtype=np.float32)  # odd sizes on purpose


@pytest.mark.parametrize("nh,nv", [(3, 5), (7, 1), (61, 9)])  # 61 taps: longer than the image
def test_sep_conv_matches_scipy(img, nh, nv):
    rng = np.random.default_rng(nh)
    kh, kv = rng.random(nh).astype(np.float32), rng.random(nv).astype(np.float32)
    kh, kv = kh / kh.sum(), kv / kv.sum()
    ref = ndimage.correlate1d(ndimage.correlate1d(img, kh, axis=2, mode="nearest"), kv, axis=1, mode="nearest")
    np.testing.assert_allclose(K.sep_conv(img, kh, kv), ref, atol=1e-5)
    np.testing.assert_allclose(K.sep_conv(img[0], kh, kv), ref[0], atol=1e-5)  # [H, W] input


@pytest.mark.parametrize("sigma", [0.7, 2.0, 3.9])
def test_gaussian_blur_matches_scipy(img, sigma):
    ref = ndimage.gaussian_filter(img, (0, sigma, sigma), mode="nearest", truncate=3.0)
    np.testing.assert_allclose(K.gaussian_blur(img, sigma), ref, atol=2e-3)  # radius rounding only


def test_gaussian_blur_reduced_resolution_is_close():
    """Above sigma 4 the blur runs on a coarser grid; it must stay close to the exact blur."""
    x = np.random.default_rng(1).random((3, 128, 128), dtype=np.float32)
    x = ndimage.gaussian_filter(x, (0, 2, 2))  # some structure at all scales
    for sigma in (6.0, 12.0):
        ref = ndimage.gaussian_filter(x, (0, sigma, sigma), mode="nearest")
        err = np.abs(K.gaussian_blur(x, sigma) - ref)[:, 16:-16, 16:-16]  # borders clamp differently
        assert err.mean() < 2e-3 and err.max() < 1e-2, (sigma, err.mean(), err.max())


def test_shift_sum_matches_loop(img):
    dy, dx, w = np.array([0, 3, -30, 2]), np.array([0, -5, 4, 40]), np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    C, H, W = img.shape
    ref = np.zeros_like(img)
    for t in range(len(w)):
        ii = np.clip(np.arange(H) + dy[t], 0, H - 1)
        jj = np.clip(np.arange(W) + dx[t], 0, W - 1)
        ref += w[t] * img[:, ii][:, :, jj]
    np.testing.assert_allclose(K.shift_sum(img, dy, dx, w), ref, atol=1e-6)


def test_shift_sum2_mixes_two_kernels(img):
    rng = np.random.default_rng(11)
    ta, tb = K.line_taps(9.0, 0.3), K.line_taps(5.0, 2.0)
    sel = rng.random(img.shape[1:], dtype=np.float32)
    ref = sel * K.shift_sum(img, *ta) + (1 - sel) * K.shift_sum(img, *tb)
    np.testing.assert_allclose(K.shift_sum2(img, ta, tb, sel), ref, atol=1e-5)


def test_line_taps_follow_the_direction():
    dy, dx, w = K.line_taps(12.0, math.pi / 6)
    assert abs(w.sum() - 1.0) < 1e-6 and len(set(zip(dy, dx))) == len(w)
    along = np.abs(dy * math.cos(math.pi / 6) - dx * math.sin(math.pi / 6))  # distance off the line
    assert along.max() <= 0.75


@pytest.mark.parametrize("size", [(50, 70), (11, 9), (23, 31)])
def test_resize_bilinear_matches_torch(img, size):
    ref = torch.nn.functional.interpolate(torch.from_numpy(img)[None], size=size, mode="bilinear", align_corners=False)
    np.testing.assert_allclose(R.resize_bilinear(img, *size), ref[0].numpy(), atol=1e-5)


def test_area_down_matches_block_mean():
    x = np.random.default_rng(2).random((3, 24, 36), dtype=np.float32)
    ref = x.reshape(3, 8, 3, 12, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(R.area_down(x, 3), ref, atol=1e-6)
    odd = R.area_down(x[:, :23, :35], 3)  # edge-padded to a multiple
    padded = np.pad(x[:, :23, :35], ((0, 0), (0, 1), (0, 1)), mode="edge")
    np.testing.assert_allclose(odd, padded.reshape(3, 8, 3, 12, 3).mean(axis=(2, 4)), atol=1e-6)


def test_warp_matches_map_coordinates(img):
    rng = np.random.default_rng(3)
    C, H, W = img.shape
    dy = rng.uniform(-6, 6, (H, W)).astype(np.float32)
    dx = rng.uniform(-6, 6, (H, W)).astype(np.float32)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    ref = np.stack([ndimage.map_coordinates(c, [yy + dy, xx + dx], order=1, mode="nearest") for c in img])
    np.testing.assert_allclose(R.warp_bilinear(img, dy, dx), ref, atol=1e-5)


def test_warp_parts_matches_materialised_displacement(img):
    rng = np.random.default_rng(4)
    C, H, W = img.shape
    lab = rng.integers(0, 5, (H, W)).astype(np.uint8)
    vec = rng.uniform(-1, 1, (5, 2)).astype(np.float32)
    wy, wx = rng.standard_normal((2, H, W)).astype(np.float32)
    ref = R.warp_bilinear(img, 2.5 * (vec[lab, 0] + 0.4 * wy), 2.5 * (vec[lab, 1] + 0.4 * wx))
    np.testing.assert_allclose(R.warp_parts(img, lab, vec, wy, wx, 2.5, 0.4), ref, atol=1e-5)


def test_blend_matches_numpy_and_can_write_in_place(img):
    rng = np.random.default_rng(5)
    y = rng.uniform(-0.5, 1.5, img.shape).astype(np.float32)
    w = rng.random(img.shape[1:], dtype=np.float32)
    ref = np.clip(img + w * (y - img), 0, 1)
    np.testing.assert_allclose(K.blend(img, y, w), ref, atol=1e-6)
    out = K.blend(img, y, w, out=y)
    assert out is y
    np.testing.assert_allclose(y, ref, atol=1e-6)


def test_upsample_weight_matches_composition():
    rng = np.random.default_rng(6)
    small = rng.random((5, 7), dtype=np.float32)
    strength = rng.random((40, 56), dtype=np.float32)
    ridx = rng.integers(0, 7, (40, 56)).astype(np.uint8)
    factor = rng.uniform(0.5, 2.0, 7).astype(np.float32)
    ref = np.minimum(R.resize_bilinear(small, 40, 56) * strength * factor[ridx], 1.0)
    np.testing.assert_allclose(R.upsample_weight(small, strength, ridx, factor), ref, atol=1e-6)


def _facet_slow(verts, H, W, cell, theta, oy, ox):
    """Per-pixel reference: find the grid cell, pick the triangle, barycentric-interpolate."""
    out = np.zeros((verts.shape[0], H, W), np.float64)
    c, s = math.cos(theta), math.sin(theta)
    for i in range(H):
        for j in range(W):
            u, v = (c * j + s * i + ox) / cell, (-s * j + c * i + oy) / cell
            a = min(max(math.floor(v), 0), verts.shape[1] - 2)
            b = min(max(math.floor(u), 0), verts.shape[2] - 2)
            fu, fv = min(max(u - b, 0), 1), min(max(v - a, 0), 1)
            p = verts[:, a : a + 2, b : b + 2]
            if fu + fv <= 1:
                out[:, i, j] = (1 - fu - fv) * p[:, 0, 0] + fu * p[:, 0, 1] + fv * p[:, 1, 0]
            else:
                out[:, i, j] = (fu + fv - 1) * p[:, 1, 1] + (1 - fu) * p[:, 1, 0] + (1 - fv) * p[:, 0, 1]
    return out


def test_facet_matches_slow_reference_and_keeps_linear_ramps():
    H, W, cell, theta = 20, 26, 6.0, 0.4
    ys, xs, oy, ox = R.facet_grid(H, W, cell, theta, 0.3, 0.6)
    verts = np.random.default_rng(7).random((2,) + ys.shape).astype(np.float32)
    slow = _facet_slow(verts, H, W, cell, theta, oy, ox)
    np.testing.assert_allclose(R.facet(verts, H, W, cell, theta, oy, ox), slow, atol=1e-5)
    ramp = np.stack([0.01 * ys + 0.02 * xs, 0.03 * xs]).astype(np.float32)  # linear in (y, x) at the vertices
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    out = R.facet(ramp, H, W, cell, theta, oy, ox)  # piecewise-linear interpolation is exact for linear data
    np.testing.assert_allclose(out, np.stack([0.01 * yy + 0.02 * xx, 0.03 * xx]), atol=1e-4)


def test_sample_bilinear_matches_map_coordinates(img):
    rng = np.random.default_rng(8)
    ys, xs = rng.uniform(-2, 25, 40), rng.uniform(-2, 33, 40)
    ref = np.stack([ndimage.map_coordinates(c, [ys, xs], order=1, mode="nearest") for c in img])
    np.testing.assert_allclose(R.sample_bilinear(img, ys, xs), ref, atol=1e-5)


def test_mix_planes_matches_einsum(img):
    rng = np.random.default_rng(9)
    planes = rng.standard_normal((4,) + img.shape[1:]).astype(np.float32)
    coef = rng.standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(K.mix_planes(img, planes, coef), img + np.einsum("cp,phw->chw", coef, planes), atol=1e-5)


def test_normal_f32_is_standard_normal_and_deterministic():
    z = K.normal_f32(np.random.default_rng(10), (400, 501))
    assert z.dtype == np.float32 and z.shape == (400, 501)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01 and abs(np.mean(z**4) - 3) < 0.05
    np.testing.assert_array_equal(z, K.normal_f32(np.random.default_rng(10), (400, 501)))


@pytest.mark.parametrize("r", [1, 3, 20])
def test_max_filter_matches_scipy(img, r):
    ref = ndimage.maximum_filter(img[0], size=2 * r + 1, mode="nearest")
    np.testing.assert_array_equal(K.max_filter(img[0], r), ref)


def test_layout_conversions_round_trip():
    x = np.random.default_rng(12).integers(0, 256, (5, 7, 3)).astype(np.uint8)
    chw = R.to_chw(x, 255)
    np.testing.assert_array_equal(chw, x.transpose(2, 0, 1).astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(R.to_hwc(chw), chw.transpose(1, 2, 0))


def _composite_slow(out, cy, cx, major, minor, theta, opacity, col):
    """Reference: one ellipse at a time, every pixel of its +-3 sigma box, float64."""
    C, H, W = out.shape
    c, s = math.cos(theta), math.sin(theta)
    for i in range(max(0, int(cy - 3 * major)), min(H, int(cy + 3 * major) + 1)):
        for j in range(max(0, int(cx - 3 * major)), min(W, int(cx + 3 * major) + 1)):
            dy, dx = i + 0.5 - cy, j + 0.5 - cx
            q = ((dx * c + dy * s) / major) ** 2 + ((dy * c - dx * s) / minor) ** 2
            out[:, i, j] += opacity * math.exp(-0.5 * q) * (col - out[:, i, j])


def test_composite_ellipses_matches_slow_reference(img):
    ell = np.array([[5.0, 7.0, 4.0, 1.5, 0.3, 0.9], [12.0, 20.0, 3.0, 3.0, 0.0, 0.5], [-2.0, 30.0, 5.0, 2.0, 1.0, 1.0]])
    cols = np.random.default_rng(13).random((3, 3)).astype(np.float32)
    ref = img.astype(np.float64)
    for e, col in zip(ell, cols):
        _composite_slow(ref, *e, col)
    out = K.composite_ellipses(img.copy(), ell, cols)
    np.testing.assert_allclose(out, ref, atol=1e-5)
