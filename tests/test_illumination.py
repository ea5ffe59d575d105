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
    c = sclera_colour(img, sclera)
    fixed = corrected_ita(FaceInput(img, skin), Correction("sclera_flat", srgb_to_linear(np.array(SCLERA_REF)) / c, 1.0))
    assert abs(fixed.ita - ita) < 1.5, (fixed.ita, raw.ita)
    if abs(ev) >= 0.7 or cct in (2700, 7500):  # the raw ITA is far off: the test is not vacuous
        assert abs(raw.ita - ita) > 4.0, raw.ita


def test_closed_eye_gives_no_sclera():
    img, skin, sclera = _scene(30.0, 5000, 0.0)
    lid = img.copy()
    lid[sclera] = img[skin][: sclera.sum()]  # the "sclera" region is skin: a closed eye
    skin_chroma = 0.6
    assert sclera_colour(lid, sclera, skin_chroma=0.0) is None or sclera_colour(lid, sclera, skin_chroma=skin_chroma) is not None
    from fairsplat.faces.illumination import _chroma

    sk = srgb_to_linear(img[skin] / 255.0)
    assert sclera_colour(lid, sclera, skin_chroma=float(np.median(_chroma(sk)))) is None


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
        light_for("studio", rng, 25.0, 0.03)
