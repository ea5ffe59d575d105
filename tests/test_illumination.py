"""Illumination-normalised ITA (faces/illumination.py) and SynthHeads' ``hard`` lighting (synth/scene.py):
rendered patches of known albedo under known illuminants, the shading fit on known normals, the
blackbody gains, and the default preset drawing exactly what it always drew."""

from __future__ import annotations

import numpy as np
import pytest

from fairsplat.faces.illumination import (
    SCLERA_REF, Correction, FaceInput, corrected_ita, fit_shading, linear_to_srgb, sclera_colour, srgb_to_linear,
    vertex_normals,
)  # fmt: skip
from fairsplat.faces.ita import face_ita, ita_of_rgb
from fairsplat.synth.identity import skin_from_ita
from fairsplat.synth.scene import HARD_CCT, illuminant_gains, light_for, planck_xy, sample_hard_light, sample_light


def _scene(ita: float, cct: float, ev: float, size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A skin patch of known albedo (ITA ``ita``) beside a sclera patch of SCLERA_REF, both lit by a blackbody
    at ``cct`` K with an exposure error of ``ev`` stops; sRGB uint8 image, skin mask, sclera mask."""
    _, skin_rgb = skin_from_ita(ita, 14.0, 11.0)
    gain = 0.45 * np.array(illuminant_gains(cct)) * 2.0**ev  # 0.45: a tungsten-lit sclera stays below clipping at 0 EV
    img = np.zeros((size, size, 3))
    skin = np.zeros((size, size), bool)
    skin[:, : size // 2] = True
    noise = np.random.default_rng(0).normal(1.0, 0.01, (size, size, 1))  # a little texture
    img[skin] = srgb_to_linear(np.array(skin_rgb))
    img[~skin] = srgb_to_linear(np.array(SCLERA_REF))
    img = np.clip(img * noise * gain, 0, 1)
    return np.round(linear_to_srgb(img) * 255).astype(np.uint8), skin, ~skin


@pytest.mark.parametrize("cct, ev", [(2700, 0.0), (7500, 0.0), (4000, -1.5), (6500, 0.3), (3200, -0.7)])
@pytest.mark.parametrize("ita", [60.0, 35.0, 0.0, -45.0])
def test_sclera_reference_recovers_the_albedo_ita(ita, cct, ev):
    img, skin, sclera = _scene(ita, cct, ev)
    raw, _ = face_ita(img, labels=np.where(skin, 1, 0))
    c = sclera_colour(img, sclera, np.median(srgb_to_linear(img[skin] / 255.0), axis=0))  # warm light included
    assert c is not None, "the sclera under this light must pass the whiter-than-skin test"
    fixed = corrected_ita(FaceInput(img, skin), Correction("sclera_flat", srgb_to_linear(np.array(SCLERA_REF)) / c, 1.0))
    assert abs(fixed.ita - ita) < 1.5, (fixed.ita, raw.ita)
    if abs(ev) >= 0.7 or cct in (2700, 7500):  # the raw ITA is far off: the test is not vacuous
        assert abs(raw.ita - ita) > 4.0, raw.ita


def test_closed_eye_gives_no_sclera():
    img, skin, sclera = _scene(30.0, 5000, 0.0)
    lid = img.copy()
    lid[sclera] = img[skin][: sclera.sum()]  # the "sclera" region is skin: a closed eye
    skin_linear = np.median(srgb_to_linear(img[skin] / 255.0), axis=0)
    assert sclera_colour(lid, sclera, skin_linear) is None
    assert sclera_colour(img, sclera, skin_linear) is not None  # the open eye passes


def _chroma(lin: np.ndarray) -> np.ndarray:  # [N, 3] linear -> [N] (max - min) / max
    """Relative chroma, what the sclera pick and test used before log(R/B) and luminance replaced it."""
    return (lin.max(1) - lin.min(1)) / np.maximum(lin.max(1), 1e-9)


@pytest.mark.parametrize("ita", [60.0, -45.0])
def test_whiter_than_skin_holds_under_any_light(ita):
    """The test compares log(R/B) of sclera and skin, which a coloured light shifts equally: it keeps the sclera
    from tungsten to shade, where the old relative-chroma test (0.6 x the skin's) dropped it under warm light."""
    from fairsplat.faces.illumination import WHITER_THAN_SKIN, _log_rb

    for cct in (2700.0, 4000.0, 7500.0):
        img, skin, sclera = _scene(ita, cct, 0.0)
        sk, sc = srgb_to_linear(img[skin] / 255.0), srgb_to_linear(img[sclera] / 255.0)
        assert float(_log_rb(np.median(sk, 0)) - _log_rb(np.median(sc, 0))) > WHITER_THAN_SKIN
        assert sclera_colour(img, sclera, np.median(sk, 0)) is not None
    warm_img, warm_skin, warm_sclera = _scene(60.0, 2700.0, 0.0)
    sk, sc = srgb_to_linear(warm_img[warm_skin] / 255.0), srgb_to_linear(warm_img[warm_sclera] / 255.0)
    assert np.median(_chroma(sc)) > 0.6 * np.median(_chroma(sk))  # what the old test would have rejected


def test_saturated_sclera_is_no_reference():
    """Over-exposed: the sclera clips, its unclipped pixels are the dim ones; no reference rather than a wrong one."""
    img, skin, sclera = _scene(-45.0, 5000, 1.5)
    assert (img[sclera] >= 250).any(1).mean() > 0.5
    assert sclera_colour(img, sclera, np.median(srgb_to_linear(img[skin] / 255.0), axis=0)) is None


def test_sclera_pick_is_the_brightest_not_the_least_chromatic():
    """Under a warm light the sclera is more chromatic than a grey iris rim beside it: the pick goes by
    luminance, so it takes the sclera (the rim is darker), where ranking by low chroma took the rim."""
    gain = 0.45 * np.array(illuminant_gains(2700.0))
    sclera_lin = srgb_to_linear(np.array(SCLERA_REF)) * gain  # [3]
    rim_lin = np.array([0.25, 0.26, 0.30]) * gain * 1.6  # a blue-grey iris rim, darker than the sclera
    px = np.concatenate([np.tile(sclera_lin, (20, 1)), np.tile(rim_lin, (30, 1))])[:, None]  # [50, 1, 3]
    rgb = np.round(linear_to_srgb(px) * 255).astype(np.uint8)
    c = sclera_colour(rgb, np.ones(rgb.shape[:2], bool), top=0.3)
    np.testing.assert_allclose(c, srgb_to_linear(rgb[0, 0] / 255.0), rtol=1e-9)
    assert _chroma(rim_lin[None])[0] < _chroma(sclera_lin[None])[0]  # the old whiteness rank preferred the rim


def _ellipse_eye(cx: float, cy: float, a: float, b: float, iris_r: float):
    """An Eye-like record whose 16 contour points lie on an ellipse in the iris model's order: 0-8 the lower
    lid from the outer (+x) to the inner (-x) corner, 9-15 the upper lid from the outer to the inner side."""
    from types import SimpleNamespace

    lower = [np.pi * k / 8 for k in range(9)]  # angle 0 (outer corner) .. pi (inner), y down = lower lid
    upper = [-np.pi * k / 8 for k in range(1, 8)]  # the upper lid, outer to inner
    pts = np.array([[cx + a * np.cos(t), cy + b * np.sin(t)] for t in lower + upper])
    contour = np.concatenate([pts, np.zeros((71 - 16, 2))])
    iris = np.array([[cx, cy], [cx + iris_r, cy], [cx, cy + iris_r], [cx - iris_r, cy], [cx, cy - iris_r]])
    return SimpleNamespace(contour=contour, iris=iris)


def test_sclera_masks_follow_the_iris_models_lid_contour():
    """Slow reference: per pixel, inside the polygon of the 16 lid points (walked as a loop) and outside
    1.15 x the iris radius."""
    from matplotlib.path import Path as MplPath
    from scipy.ndimage import binary_dilation, binary_erosion

    from fairsplat.faces.illumination import EYE_LOOP, sclera_masks

    eyes = {"right": _ellipse_eye(20.3, 15.2, 9.0, 4.0, 2.5), "left": _ellipse_eye(44.6, 15.7, 8.0, 3.5, 2.2)}
    masks = sclera_masks((32, 64), eyes)
    yy, xx = np.mgrid[0:32, 0:64]
    for side, eye in eyes.items():
        poly = MplPath(eye.contour[list(EYE_LOOP)])
        inside = poly.contains_points(np.stack([xx.ravel(), yy.ravel()], 1)).reshape(32, 64)
        r = 1.15 * 2.5 if side == "right" else 1.15 * 2.2
        expect = inside & ((xx - eye.iris[0, 0]) ** 2 + (yy - eye.iris[0, 1]) ** 2 > r * r)
        ring = np.ones((3, 3), bool)
        edge = binary_dilation(expect, ring) & ~binary_erosion(expect, ring)  # PIL fills the outline pixels its own way
        assert not ((masks[side] != expect) & ~edge).any(), side
        assert expect.sum() > 20 and abs(int(masks[side].sum()) - int(expect.sum())) < 0.35 * expect.sum()


def test_sclera_reference_needs_enough_pixels_and_both_eyes_for_confidence():
    from fairsplat.faces.illumination import MIN_SCLERA_PX, ONE_EYE, sclera_flat

    def face(scale: float, open_left: bool = True):
        h, w = int(64 * scale), int(128 * scale)
        img = np.zeros((h, w, 3), np.uint8)
        _, skin_rgb = skin_from_ita(20.0, 14.0, 11.0)
        img[:] = np.round(np.array(skin_rgb) * 0.8 * 255).astype(np.uint8)
        eyes = {"right": _ellipse_eye(w * 0.3, h * 0.5, w * 0.035, h * 0.025, h * 0.02),  # 9 x 3 px at 128 px
                "left": _ellipse_eye(w * 0.7, h * 0.5, w * 0.035, h * 0.025, h * 0.02)}  # fmt: skip
        from fairsplat.faces.illumination import sclera_masks

        m = sclera_masks((h, w), eyes)
        img[m["right"] | (m["left"] if open_left else False)] = np.round(np.array(SCLERA_REF) * 0.8 * 255).astype(np.uint8)
        skin = np.ones((h, w), bool)
        skin[m["right"] | m["left"]] = False
        return FaceInput(img, skin, np.zeros((468, 3)), eyes), int(m["right"].sum() + m["left"].sum())

    small, n_small = face(1.0)
    assert n_small < MIN_SCLERA_PX and sclera_flat(small) is None  # a 128 px crop's eyes: too few pixels
    big, n_big = face(4.0)
    assert n_big >= MIN_SCLERA_PX
    both = sclera_flat(big)
    assert both is not None and both.confidence == pytest.approx(1.0)  # two eyes of one colour
    np.testing.assert_allclose(both.gains, 1 / 0.8 ** 2.2, rtol=0.08)  # 0.8 in sRGB is about 0.8^2.2 in linear
    one, _ = face(4.0, open_left=False)
    c = sclera_flat(one)
    assert c is not None and c.confidence == ONE_EYE < 0.5  # the closed left eye (skin) fails: one eye left


def test_shading_fit_recovers_a_known_light():
    rng = np.random.default_rng(3)
    n = rng.normal(0, 1, (400, 3))
    n[:, 2] = np.abs(n[:, 2]) + 0.3
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    l_true = np.array([np.sin(np.radians(60)), 0.0, np.cos(np.radians(60))])
    y = 0.2 + 0.8 * np.clip(n @ l_true, 0, None)
    l, a, b, r2 = fit_shading(y, n)
    assert r2 > 0.99 and abs(a - 0.2) < 0.03 and abs(b - 0.8) < 0.05
    assert np.degrees(np.arccos(np.clip(l @ l_true, -1, 1))) < 8.0


def test_vertex_normals_of_a_sphere_point_outwards():
    rng = np.random.default_rng(4)
    p = rng.normal(0, 1, (300, 3))
    p[:, 2] = -np.abs(p[:, 2])  # the half facing the camera (MediaPipe: smaller z = nearer)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    n = vertex_normals(p * 100)
    expect = p * np.array([1.0, -1.0, -1.0])  # to the camera frame: y up, +z towards the camera
    assert np.median(np.sum(n * expect, axis=1)) > 0.95


def test_blackbody_gains():
    assert planck_xy(6504)[0] == pytest.approx(0.3135, abs=2e-3)
    np.testing.assert_allclose(illuminant_gains(6504), 1.0, atol=0.05)  # near neutral (D65 lies just off the Planckian locus)
    warm, cool = illuminant_gains(HARD_CCT[0]), illuminant_gains(HARD_CCT[1])
    assert warm[0] > 1.2 and warm[2] < 0.6 and cool[2] > cool[0]
    for g in (warm, cool):
        assert np.array([0.2126, 0.7152, 0.0722]) @ g == pytest.approx(1.0)  # the colour changes, not the brightness


def test_warm_light_lowers_raw_ita_of_a_known_albedo():
    _, rgb = skin_from_ita(40.0, 14.0, 11.0)
    lit = linear_to_srgb(srgb_to_linear(np.array(rgb)) * np.array(illuminant_gains(2700)))
    assert ita_of_rgb(np.round(lit * 255).astype(np.uint8)) < ita_of_rgb(np.round(np.array(rgb) * 255).astype(np.uint8)) - 10


def test_default_preset_draws_what_it_always_drew():
    a = light_for("default", np.random.default_rng(7), 25.0, 0.03)
    b = sample_light(np.random.default_rng(7), 25.0, 0.03)
    assert a == b and a.exposure == 1.0 and a.cct is None


def test_hard_preset_ranges():
    rng = np.random.default_rng(8)
    lights = [sample_hard_light(rng) for _ in range(200)]
    ev = np.log2([x.exposure for x in lights])
    assert -1.5 <= ev.min() < -1.2 and 1.2 < ev.max() <= 1.5
    ang = np.degrees(np.arccos([x.direction[2] for x in lights]))
    assert 40 <= ang.min() and ang.max() <= 85
    assert all(HARD_CCT[0] <= x.cct <= HARD_CCT[1] and 0.15 <= x.ambient <= 0.35 for x in lights)
    with pytest.raises(ValueError, match="lighting preset"):
        light_for("candle", rng, 25.0, 0.03)
    assert light_for("studio", np.random.default_rng(3), 25.0, 0.03) == sample_hard_light(np.random.default_rng(3))
