"""Foreground (head) masks for compositing crops on grey: a registry of backends.

No pretrained matting or face-parsing model can be downloaded here, so real
photos get a *geometric* mask unless the data carries its own:

``ground_truth``  the photo's alpha channel (RGBA PNGs; SynthHeads renders).
                  Exact by definition.
``labels``        non-background classes of a CelebAMask-HQ label map
                  (CelebAMask-HQ annotations, SynthHeads parsing maps). As good
                  as the annotation; cloth is kept (it is in frame for avatars).
``ellipse``       the offline default for photos: a head ellipse fitted to the
                  68 landmarks (chin to an estimated skull top, jaw width plus
                  ears/hair allowance, shifted back and widened for turned
                  heads) united with a neck column below the jaw, feathered.
                  It knows nothing about hair volume, hats or shoulders.
                  QUALITY: curation scores it against ground-truth alpha on
                  every kept SynthHeads crop (``fg_iou_ellipse`` in
                  metrics/curate.json): mean IoU 0.79 on the default renders
                  (0.64 before the turned-head shift; its two constants were
                  chosen on those same renders, so the figure is optimistic).
                  **Unmeasured on real photos**: no ground-truth alpha for real
                  photos exists in this project's test material; expect it to
                  clip big hair and keep some background beside the neck.
``selfie``        MediaPipe selfie segmentation (faces/mediapipe.py; Apache-2.0
                  weights from the pinned wheel): a person matte, hair and
                  shoulders included, soft edges.
``head``          the selfie matte kept only inside a head-and-neck window (the
                  landmark ellipse grown 1.35x plus the neck column), so hair
                  volume stays and shoulders and clothes below the neck go.
``none``          everything is foreground (keeps the photo background; for
                  inputs already on a clean background).

``auto`` (see :func:`foreground_mask`) picks ``ground_truth``, then ``labels``,
then the photo backend chosen by measurement (:data:`AUTO_ORDER`), whichever has
its input; ``selfie``/``head`` give way to ``ellipse`` when MediaPipe is unavailable. Backends return float32 [S, S] in
[0, 1]; padding outside the photo is always background.

Saved masks: curation composites with :func:`to_alpha8` of the mask (8-bit
alpha, ``/ 255``) and writes that same array as ``alpha/<id>.png``, so the saved
mask *is* the compositing mask, bit for bit. Every backend already yields
multiples of 1/255 (8-bit alpha, PIL-drawn ellipse, 0/1 labels), so the
quantisation changes no crop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fairsplat.labels import IBUG68_GROUPS, LABEL


@dataclass(frozen=True)
class FgInput:
    image: np.ndarray  # uint8 [S, S, 3] crop
    landmarks: np.ndarray | None  # [68, 2] crop pixels
    valid: np.ndarray  # bool [S, S]
    alpha: np.ndarray | None = None  # uint8 [S, S] cropped alpha
    labels: np.ndarray | None = None  # int [S, S] cropped CelebAMask-HQ labels


def _ground_truth(x: FgInput) -> np.ndarray | None:
    return None if x.alpha is None else x.alpha.astype(np.float32) / 255.0


def _labels(x: FgInput) -> np.ndarray | None:
    return None if x.labels is None else (x.labels != LABEL["background"]).astype(np.float32)


def _head_frame(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Face axes from landmarks: (chin point, image-up unit vector, jaw width, brow-to-chin)."""
    a, b = IBUG68_GROUPS["r_eye"]
    c, d = IBUG68_GROUPS["l_eye"]
    across = lm[c:d].mean(0) - lm[a:b].mean(0)
    up = np.array([across[1], -across[0]]) / (np.linalg.norm(across) + 1e-9)
    if up[1] > 0:
        up = -up
    chin = lm[8]
    brows = lm[IBUG68_GROUPS["r_brow"][0] : IBUG68_GROUPS["l_brow"][1]].mean(0)
    jaw_w = float(np.linalg.norm(lm[16] - lm[0]))
    return chin, up, jaw_w, float(np.dot(brows - chin, up))


def _ellipse(x: FgInput, feather: float = 0.015, grow: float = 1.0) -> np.ndarray | None:
    if x.landmarks is None:
        return None
    s = x.image.shape[0]
    chin, up, jaw_w, face_h = _head_frame(x.landmarks)
    # skull top ~0.7 x (brow-to-chin) above the brows (hairline + scalp), plus a
    # little for hair; the ellipse spans chin..top.
    half_h = 0.5 * face_h * 1.8
    centre = chin + up * half_h
    half_w = 0.5 * jaw_w * 1.25  # ears and side hair
    centre, half_h, half_w = centre + up * (grow - 1.0) * half_h * 0.5, half_h * grow, half_w * grow
    right = np.array([-up[1], up[0]])
    # turned heads: the skull extends away from where the nose points. r is the
    # nose tip's offset from the jaw-ends midpoint in half jaw widths (0 frontal,
    # ~0.5 at 30 deg yaw); shift the ellipse back by 0.8 r and widen it by 0.3 |r|.
    r = float(np.dot(x.landmarks[30] - (x.landmarks[0] + x.landmarks[16]) / 2, right)) / (0.5 * jaw_w + 1e-9)
    centre = centre - right * 0.8 * r * half_w
    half_w *= 1.0 + 0.3 * abs(r)
    t = np.linspace(0.0, 2 * np.pi, 72, endpoint=False)[:, None]
    head = centre + np.cos(t) * right * half_w + np.sin(t) * up * half_h  # [72, 2]
    # neck column: from mid-face down past the bottom of the crop
    side = right * 0.32 * jaw_w
    top, bottom = chin + up * 0.3 * face_h, chin - up * 4.0 * face_h
    neck = np.stack([top - side, top + side, bottom + side * 1.3, bottom - side * 1.3])
    canvas = Image.new("L", (s, s), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in (head, neck):
        draw.polygon([(float(px), float(py)) for px, py in poly], fill=255)
    soft = canvas.filter(ImageFilter.GaussianBlur(radius=max(feather * s, 0.5)))
    return np.asarray(soft, np.float32) / 255.0


def _none(x: FgInput) -> np.ndarray:
    return np.ones(x.valid.shape, np.float32)


def _q8(m: np.ndarray) -> np.ndarray:
    """Multiples of 1/255, as every backend's mask (the saved 8-bit alpha is then the mask exactly)."""
    return (np.rint(np.clip(m, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def _selfie(x: FgInput) -> np.ndarray | None:
    from fairsplat.faces import mediapipe as mp

    try:
        return _q8(mp.selfie(x.image))
    except mp.MediaPipeUnavailable:
        return None


def _head(x: FgInput, person: np.ndarray | None = None) -> np.ndarray | None:
    """``person``: the selfie matte when the caller already has it (one MediaPipe pass for both)."""
    person = _selfie(x) if person is None else person
    window = _ellipse(x, feather=0.03, grow=1.35)
    if person is None or window is None:
        return None
    return _q8(person * window)


FOREGROUND: dict[str, Callable[[FgInput], np.ndarray | None]] = {
    "ground_truth": _ground_truth,
    "labels": _labels,
    "ellipse": _ellipse,
    "selfie": _selfie,
    "head": _head,
    "none": _none,
}
AUTO_ORDER: tuple[str, ...] = ("ground_truth", "labels", "head", "ellipse")
"""Photos: ``head`` first. IoU against SynthHeads alpha (default renders, every 4th, 128 px crops):
ellipse 0.746, selfie 0.955, head 0.935, every type within 0.03 of its mean. ``selfie`` scores
higher there only because SynthHeads has no shoulders; photos do, and an avatar wants the head."""
PHOTO_BACKENDS: tuple[str, ...] = ("ellipse", "selfie", "head")
"""The backends for photos without alpha or labels; curation scores each against ground-truth alpha."""


def foreground_mask(x: FgInput, backend: str = "auto") -> tuple[np.ndarray, str]:  # float32 [S, S], name used
    """The mask from ``backend`` (or the first usable one for ``"auto"``), zero on padding."""
    names = AUTO_ORDER if backend == "auto" else (backend,)
    for name in names:
        if name not in FOREGROUND:
            raise ValueError(f"unknown foreground backend {name!r} (known: auto, {', '.join(FOREGROUND)})")
        mask = FOREGROUND[name](x)
        if mask is not None:
            return mask * x.valid, name
    raise ValueError(f"foreground backend {backend!r} has no input for this item (needs alpha/labels/landmarks)")


def photo_masks(x: FgInput) -> dict[str, np.ndarray | None]:
    """Every :data:`PHOTO_BACKENDS` mask of one crop, the selfie matte computed once."""
    person = _selfie(x)
    return {"ellipse": _ellipse(x), "selfie": person, "head": None if person is None else _head(x, person)}


def to_alpha8(mask: np.ndarray) -> np.ndarray:  # float [S, S] in [0, 1] -> uint8 [S, S]
    """8-bit alpha, round half to even: the form a mask is composited with and saved in."""
    assert mask.ndim == 2, mask.shape
    return np.clip(np.rint(mask.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)


def mask_iou(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> float:
    """IoU of two soft masks binarised at ``threshold``; 1.0 when both are empty."""
    p, g = pred >= threshold, gt >= threshold
    union = np.logical_or(p, g).sum()
    return 1.0 if union == 0 else float(np.logical_and(p, g).sum() / union)
