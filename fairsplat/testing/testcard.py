"""A painted face "test card": known skin colour, known landmarks, known labels.

Why: ITA, masks, crops and curation need inputs whose truth is exact, and the
tests must run where no real photo is available. A test card is a flat
cartoon face drawn from a procedural iBUG-68 layout, with its CelebAMask-HQ
label map and alpha. It is *not* realistic (HOG may or may not fire on it;
tests that need detection use real photos or pass the landmarks in), but every
pixel's class and colour is known, so a measured ITA can be compared with the
painted colour's ITA exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fairsplat.labels import IBUG68_GROUPS, LABEL


def unit_landmarks() -> np.ndarray:  # [68, 2] in a unit square, frontal face, iBUG order
    """A symmetric frontal iBUG-68 layout (face about half the square wide)."""
    t = np.pi - np.arange(17) * np.pi / 16
    jaw = np.stack([0.5 + 0.25 * np.cos(t), 0.40 + 0.40 * np.sin(t)], 1)
    r_brow = np.array([[0.30, 0.37], [0.335, 0.35], [0.37, 0.345], [0.41, 0.35], [0.445, 0.36]])
    l_brow = np.stack([1.0 - r_brow[::-1, 0], r_brow[::-1, 1]], 1)
    bridge = np.array([[0.5, 0.40], [0.5, 0.45], [0.5, 0.50], [0.5, 0.55]])
    nostrils = np.array([[0.45, 0.58], [0.475, 0.585], [0.5, 0.59], [0.525, 0.585], [0.55, 0.58]])
    r_eye = np.array([[0.325, 0.42], [0.36, 0.405], [0.39, 0.405], [0.425, 0.42], [0.39, 0.435], [0.36, 0.435]])
    l_eye = np.stack([1.0 - r_eye[[3, 2, 1, 0, 5, 4], 0], r_eye[[3, 2, 1, 0, 5, 4], 1]], 1)
    outer = np.array(
        [[0.42, 0.68], [0.45, 0.66], [0.48, 0.65], [0.5, 0.655], [0.52, 0.65], [0.55, 0.66],
         [0.58, 0.68], [0.55, 0.70], [0.52, 0.71], [0.5, 0.715], [0.48, 0.71], [0.45, 0.70]]
    )  # fmt: skip
    inner = np.array(
        [[0.43, 0.68], [0.47, 0.675], [0.5, 0.677], [0.53, 0.675], [0.57, 0.68], [0.53, 0.685], [0.5, 0.687], [0.47, 0.685]]
    )
    lm = np.concatenate([jaw, r_brow, l_brow, bridge, nostrils, r_eye, l_eye, outer, inner])
    assert lm.shape == (68, 2)
    return lm


@dataclass(frozen=True)
class TestCard:
    image: np.ndarray  # uint8 [S, S, 3]
    landmarks: np.ndarray  # float [68, 2] pixels
    labels: np.ndarray  # uint8 [S, S] CelebAMask-HQ ids
    alpha: np.ndarray  # uint8 [S, S] 255 on the head/neck


def _poly(lm: np.ndarray, group: str) -> list[tuple[float, float]]:
    a, b = IBUG68_GROUPS[group]
    return [tuple(p) for p in lm[a:b]]


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 48) -> list[tuple[float, float]]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return list(zip(cx + rx * np.cos(t), cy + ry * np.sin(t)))


def _shade(img: Image.Image, s: int) -> Image.Image:
    d = ImageDraw.Draw(img, "RGBA")
    for cx in (0.375, 0.625):
        d.ellipse([(cx - 0.07) * s, 0.38 * s, (cx + 0.07) * s, 0.46 * s], fill=(0, 0, 0, 60))
    d.polygon([(0.49 * s, 0.42 * s), (0.47 * s, 0.58 * s), (0.5 * s, 0.6 * s)], fill=(0, 0, 0, 50))
    d.rectangle([0.25 * s, 0.45 * s, 0.29 * s, 0.7 * s], fill=(0, 0, 0, 40))
    d.rectangle([0.71 * s, 0.45 * s, 0.75 * s, 0.7 * s], fill=(0, 0, 0, 40))
    return img.filter(ImageFilter.GaussianBlur(max(1, s / 128)))


def paint(
    size: int = 256,
    skin: tuple[int, int, int] = (200, 150, 120),
    background: tuple[int, int, int] = (60, 110, 160),
    hair: tuple[int, int, int] = (40, 30, 25),
    shade: bool = False,
) -> TestCard:
    """Draw the card; the label map and the image come from the same polygons.

    ``shade=True`` adds soft eye-socket, nose and cheek shadows and a 2 px blur:
    with them dlib's HOG detector finds the card (score ~0.5 at 256 px), so the
    whole photo path can run on it; without them every skin pixel is exactly
    ``skin``.
    """
    lm = unit_landmarks() * size
    img = Image.new("RGB", (size, size), background)
    lab = Image.new("L", (size, size), LABEL["background"])
    s = size

    def fill(poly, colour, label):
        ImageDraw.Draw(img).polygon(poly, fill=colour)
        ImageDraw.Draw(lab).polygon(poly, fill=label)

    fill(_ellipse(0.5 * s, 0.36 * s, 0.29 * s, 0.27 * s), hair, LABEL["hair"])
    fill([(0.40 * s, 0.7 * s), (0.60 * s, 0.7 * s), (0.64 * s, s), (0.36 * s, s)], skin, LABEL["neck"])
    jaw = _poly(lm, "jaw")
    fill(jaw + [(0.75 * s, 0.25 * s), (0.25 * s, 0.25 * s)], skin, LABEL["skin"])
    fill(_poly(lm, "nose_bridge")[:1] + _poly(lm, "nostrils")[::4], skin, LABEL["nose"])
    for eye in ("r_eye", "l_eye"):
        fill(_poly(lm, eye), (235, 235, 230), LABEL["l_eye" if eye == "l_eye" else "r_eye"])
        c = lm[IBUG68_GROUPS[eye][0] : IBUG68_GROUPS[eye][1]].mean(0)
        fill(_ellipse(c[0], c[1], 0.012 * s, 0.012 * s, 16), (50, 35, 25), LABEL["l_eye" if eye == "l_eye" else "r_eye"])
    for brow in ("r_brow", "l_brow"):
        pts = lm[IBUG68_GROUPS[brow][0] : IBUG68_GROUPS[brow][1]]
        band = [tuple(p) for p in pts - [0, 0.01 * s]] + [tuple(p) for p in (pts + [0, 0.012 * s])[::-1]]
        fill(band, hair, LABEL["l_brow" if brow == "l_brow" else "r_brow"])
    fill(_poly(lm, "outer_lip")[:7] + _poly(lm, "inner_lip")[:5][::-1], (170, 70, 80), LABEL["u_lip"])
    fill(_poly(lm, "outer_lip")[6:] + [tuple(lm[48])] + _poly(lm, "inner_lip")[4:] + [tuple(lm[60])], (170, 70, 80), LABEL["l_lip"])
    if shade:
        img = _shade(img, s)
    labels = np.asarray(lab).copy()
    alpha = np.where(labels != LABEL["background"], 255, 0).astype(np.uint8)
    return TestCard(np.asarray(img).copy(), lm, labels, alpha)
