"""Crops, warps, grey compositing and foreground masks against slow references."""

from __future__ import annotations

import numpy as np
import pytest

from fairsplat.faces.crop import (
    ALIGN_TEMPLATE,
    aligned_matrix,
    apply_matrix,
    centre_matrix,
    composite_grey,
    crop_box,
    crop_face,
    invert_matrix,
    warp,
)
from fairsplat.faces.foreground import FOREGROUND, FgInput, foreground_mask, mask_iou
from fairsplat.testing.testcard import paint
from fairsplat.labels import IBUG68_GROUPS


def reference_warp(img: np.ndarray, matrix: np.ndarray, size: int, fill: float) -> np.ndarray:  # float [S, S, C]
    """Every output pixel centre mapped back and bilinearly sampled (pixel centres at integers)."""
    inv = invert_matrix(matrix)
    h, w = img.shape[:2]
    out = np.full((size, size, img.shape[2]), fill, np.float64)
    for y in range(size):
        for x in range(size):
            sx, sy = apply_matrix(inv, np.array([[x, y]], np.float64))[0]
            x0, y0 = int(np.floor(sx)), int(np.floor(sy))
            if x0 < 0 or y0 < 0 or x0 + 1 >= w or y0 + 1 >= h:
                continue  # the reference only defines the interior
            fx, fy = sx - x0, sy - y0
            p = img[y0 : y0 + 2, x0 : x0 + 2].astype(np.float64)
            out[y, x] = (p[0, 0] * (1 - fx) + p[0, 1] * fx) * (1 - fy) + (p[1, 0] * (1 - fx) + p[1, 1] * fx) * fy
    return out


@pytest.mark.parametrize("angle, scale", [(0.0, 1.0), (0.3, 1.3), (-0.5, 0.7), (1.2, 1.9)])
def test_warp_matches_bilinear_reference_inside(angle, scale):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 48, 3)).astype(np.uint8)
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    matrix = np.array([[c, -s, 3.0], [s, c, -5.0]])
    matrix[:, 2] += np.array([16, 16]) - apply_matrix(matrix, np.array([[24.0, 20.0]]))[0]  # photo centre -> crop centre
    ours = warp(img, matrix, 32).astype(np.float64)
    ref = reference_warp(img, matrix, 32, fill=-1)
    inside = ref[..., 0] >= 0
    # exclude a 1 px rim where PIL and the reference treat edge pixels differently
    inside &= np.roll(inside, 1, 0) & np.roll(inside, -1, 0) & np.roll(inside, 1, 1) & np.roll(inside, -1, 1)
    assert inside.sum() > 100
    assert np.abs(ours[inside] - ref[inside]).max() <= 1.01


def test_shrinking_warp_prereduces_on_the_right_grid():
    """A linear ramp stays linear under box pre-reduction: values match the mapped coordinates."""
    y, x = np.mgrid[0:256, 0:256]
    img = np.stack([x * 0.9, y * 0.9, np.full_like(x, 100)], -1).astype(np.uint8)  # [256, 256, 3]
    matrix = np.array([[0.2, 0.0, 2.0], [0.0, 0.2, 3.0]])  # 5x shrink -> reduce(5) first
    out = warp(img, matrix, 40).astype(np.float64)
    src = apply_matrix(invert_matrix(matrix), np.stack(np.meshgrid(np.arange(40.0), np.arange(40.0)), -1).reshape(-1, 2))
    ok = (src.min(1) > 4) & (src.max(1) < 250)
    np.testing.assert_allclose(out.reshape(-1, 3)[ok, 0], 0.9 * src[ok, 0], atol=1.0)
    np.testing.assert_allclose(out.reshape(-1, 3)[ok, 1], 0.9 * src[ok, 1], atol=1.0)


def test_matrix_helpers_roundtrip_and_crop_box():
    m = np.array([[1.5, 0.2, 4.0], [-0.2, 1.5, -3.0]])
    pts = np.random.default_rng(1).normal(0, 20, (10, 2))
    np.testing.assert_allclose(apply_matrix(invert_matrix(m), apply_matrix(m, pts)), pts, atol=1e-9)
    box = crop_box(np.array([[0.5, 0.0, 10.0], [0.0, 0.5, 20.0]]), 64)  # scale 0.5: side 128 in the source
    np.testing.assert_allclose(box, [(-0.5 - 10) / 0.5, (-0.5 - 20) / 0.5, (63.5 - 10) / 0.5, (63.5 - 20) / 0.5], atol=1e-9)


def test_centre_crop_frames_the_landmark_box():
    lm = paint(200).landmarks
    m = centre_matrix(lm, 128, margin=2.0, shift_up=0.15)
    lo, hi = lm.min(0), lm.max(0)
    face = (hi - lo).max()
    centre = (lo + hi) / 2 - [0, 0.15 * face]
    np.testing.assert_allclose(apply_matrix(m, centre[None])[0], [63.5, 63.5], atol=1e-9)
    assert m[0, 0] == pytest.approx(128 / (2.0 * face)) and m[0, 1] == 0.0  # no rotation: tilt kept


def test_aligned_crop_puts_eyes_and_mouth_on_the_template():
    lm = paint(200).landmarks
    theta = np.radians(15)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    tilted = (lm - 100) @ rot.T + 100  # a tilted face
    m = aligned_matrix(tilted, 256)
    for name, group in (("r_eye", "r_eye"), ("l_eye", "l_eye"), ("mouth", "outer_lip")):
        a, b = IBUG68_GROUPS[group]
        got = apply_matrix(m, tilted[a:b].mean(0)[None])[0]
        want = np.array(ALIGN_TEMPLATE[name]) * 256 - 0.5
        assert np.abs(got - want).max() < 6.0, (name, got, want)  # least squares over 3 points


def test_crop_face_pads_with_grey_and_reports_valid():
    card = paint(100)
    crop = crop_face(card.image, card.landmarks, 64, margin=3.0)  # bigger than the photo
    assert crop.image.shape == (64, 64, 3) and not crop.valid.all() and crop.valid.any()
    assert (crop.image[~crop.valid] == 128).all()
    np.testing.assert_allclose(crop.landmarks, apply_matrix(crop.matrix, card.landmarks))
    with pytest.raises(ValueError, match="crop mode"):
        crop_face(card.image, card.landmarks, 64, mode="tight")


def test_composite_grey_formula():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
    mask = rng.uniform(0, 1, (8, 8))
    ours = composite_grey(img, mask, grey=0.5)
    ref = np.round(img * mask[..., None] + 127.5 * (1 - mask[..., None]))
    assert np.abs(ours.astype(float) - ref).max() <= 1.0
    assert (composite_grey(img, np.zeros((8, 8))) == 128).all()


@pytest.fixture(scope="module")
def fg_input():
    card = paint(128)
    valid = np.ones((128, 128), bool)
    valid[:, :10] = False  # padding
    return card, FgInput(card.image, card.landmarks, valid, alpha=card.alpha, labels=card.labels)


@pytest.mark.parametrize("backend", sorted(FOREGROUND))
def test_every_foreground_backend_is_a_soft_mask_zero_on_padding(fg_input, backend):
    card, x = fg_input
    mask, used = foreground_mask(x, backend)
    assert used == backend and mask.shape == (128, 128) and mask.dtype == np.float32
    assert mask.min() >= 0.0 and mask.max() <= 1.0 and (mask[:, :10] == 0).all()
    if backend != "none":
        assert mask_iou(mask, card.alpha / 255.0 * x.valid) > 0.6, backend


def test_auto_prefers_ground_truth_then_labels_then_head_then_ellipse(fg_input):
    """Photos get the MediaPipe head matte when its model loads, else the landmark ellipse."""
    from fairsplat.faces import mediapipe as mp

    card, x = fg_input
    assert foreground_mask(x)[1] == "ground_truth"
    assert foreground_mask(FgInput(x.image, x.landmarks, x.valid, labels=x.labels))[1] == "labels"
    photo = "ellipse" if mp.available("mp_selfie_segmentation") else "head"
    assert foreground_mask(FgInput(x.image, x.landmarks, x.valid))[1] == photo
    with pytest.raises(ValueError, match="no input"):
        foreground_mask(FgInput(x.image, None, x.valid))


def test_ellipse_follows_a_turned_head():
    """Shifting the landmarks' nose sideways (a turned face) moves the head ellipse the other way."""
    card = paint(128)
    lm = card.landmarks.copy()
    x0 = FgInput(card.image, lm, np.ones((128, 128), bool))
    turned = lm.copy()
    turned[27:36, 0] += 10  # nose towards image right: the face looks right, the skull is on the left
    x1 = FgInput(card.image, turned, np.ones((128, 128), bool))
    cols = np.arange(128)
    cx0 = (FOREGROUND["ellipse"](x0)[:60].sum(0) * cols).sum() / FOREGROUND["ellipse"](x0)[:60].sum()
    cx1 = (FOREGROUND["ellipse"](x1)[:60].sum(0) * cols).sum() / FOREGROUND["ellipse"](x1)[:60].sum()
    assert cx1 < cx0 - 3


@pytest.mark.parametrize(
    "pred, gt, iou",
    [
        (np.ones((4, 4)), np.ones((4, 4)), 1.0),
        (np.zeros((4, 4)), np.zeros((4, 4)), 1.0),
        (np.eye(4), np.ones((4, 4)), 0.25),
        (np.full((4, 4), 0.49), np.ones((4, 4)), 0.0),
    ],
)
def test_mask_iou_values(pred, gt, iou):
    assert mask_iou(pred, gt) == pytest.approx(iou)
