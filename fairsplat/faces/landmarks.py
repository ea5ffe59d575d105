"""Face landmark backends: ``LANDMARKS = {"dlib": ..., "mediapipe": ...}``.

Each backend maps an RGB image (uint8 [H, W, 3]) to a list of
:class:`~fairsplat.faces.detect.Face`, largest first: a box, a score, the 68
iBUG 300-W points (``Face.landmarks``, every caller's common currency), the
backend's own points (``Face.points``: MediaPipe's 468-point mesh) and
``Face.flags`` (:data:`FLAGS`). Nothing raises on a bad image region: a face the
backend cannot place is either not returned (``no_face`` for the caller) or
flagged.

``dlib``       HOG detector + the 68-point predictor (faces/detect.py). Research-only
               weights (iBUG 300-W). Detects 58-69 % of SynthHeads type V-VI faces.
``mediapipe``  BlazeFace (short range, then full range when nothing is found) + the
               468-point mesh (one refinement pass) + the 68-point mapping of
               faces/mesh68.py. Apache-2.0 weights from the pinned mediapipe wheel.
               A face whose mesh presence is below ``min_presence`` is dropped.

:func:`resolve` returns the backend to use and, when MediaPipe's runtime or a
model file is missing or corrupt, dlib with the reason (callers record it in their
metrics as ``landmarks_fallback``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial

import numpy as np

from fairsplat.faces.detect import Face

FLAGS = {
    "cut": "more than 10 % of the 68 points fall outside the image (a face cut by the border)",
    "low_presence": "MediaPipe's face-presence score of the mesh is below 0.8 (occluded or not a face)",
    "eyes_hidden": "nothing in either eye opening is brighter than half the cheeks (dark glasses, a hand)",
}
"""Per-face notes a backend attaches; callers record them, never crash on them."""

CUT_SHARE = 0.10

Backend = Callable[..., list[Face]]


def eyes_hidden(img: np.ndarray, lm: np.ndarray) -> bool:
    """True when both eye openings (68-point polygons, grown 1.3x) hold nothing brighter than half the
    median of the cheeks: dark glasses or a hand. A closed eye is lid skin (about the cheeks' level)
    and an open one shows the sclera, so neither trips it; it needs no model, so both backends use it."""
    from fairsplat.faces.ita import _scaled, skin_mask_from_landmarks
    from fairsplat.faces.illumination import _poly_mask

    lum = img.astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722])
    skin = skin_mask_from_landmarks(lm, img.shape[:2])
    if skin.sum() < 20:
        return False
    ref = float(np.median(lum[skin]))
    brightest = [np.percentile(lum[m], 90) for m in (_poly_mask(img.shape[:2], _scaled(lm[a:b], 1.3)) for a, b in ((36, 42), (42, 48))) if m.sum() >= 3]
    return bool(brightest) and max(brightest) < 0.5 * ref


def _flags(face: Face, shape: tuple[int, ...], presence: float | None = None, img: np.ndarray | None = None) -> Face:
    h, w = shape[:2]
    lm = face.landmarks
    outside = (lm[:, 0] < -0.5) | (lm[:, 0] > w - 0.5) | (lm[:, 1] < -0.5) | (lm[:, 1] > h - 0.5)
    flags = []
    if outside.mean() > CUT_SHARE:
        flags.append("cut")
    if presence is not None and presence < 0.8:
        flags.append("low_presence")
    if img is not None and "cut" not in flags and eyes_hidden(img, lm):
        flags.append("eyes_hidden")
    return replace(face, flags=tuple(flags))


def dlib_faces(img: np.ndarray, *, upsample: int = 0, detect_max_side: int | None = 320,
               fallback: float | None = -0.3) -> list[Face]:  # fmt: skip
    from fairsplat.faces.detect import detect_faces

    return [_flags(f, img.shape, img=img) for f in detect_faces(img, upsample=upsample, detect_max_side=detect_max_side, fallback=fallback)]


def mediapipe_faces(img: np.ndarray, *, detectors: tuple[str, ...] = ("short", "full"), refine: int = 1,
                    min_presence: float = 0.5, table: str | None = None, max_faces: int = 8) -> list[Face]:  # fmt: skip
    """MediaPipe faces, largest first (see the module doc). ``table``: faces/mesh68.py TABLES key."""
    from fairsplat.faces import mediapipe as mp
    from fairsplat.faces.mesh68 import DEFAULT_TABLE, to_ibug68

    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8, (img.shape, img.dtype)
    img = np.ascontiguousarray(img)
    dets: list = []
    for kind in detectors:
        dets = mp.detect(img, kind)
        if dets:
            break
    faces = []
    for det in dets[:max_faces]:
        m = mp.mesh(img, det, refine=refine)
        if m.presence < min_presence:
            continue
        face = Face(det.box, to_ibug68(m.points[:, :2], table or DEFAULT_TABLE), det.score, points=m.points, backend="mediapipe")
        faces.append(_flags(face, img.shape, m.presence, img))
    return sorted(faces, key=lambda f: (-f.size, -f.score))


LANDMARKS: dict[str, Backend] = {"dlib": dlib_faces, "mediapipe": mediapipe_faces}
DEFAULT = "mediapipe"


def unavailable(name: str) -> str | None:
    """Why backend ``name`` cannot run here (None when it can)."""
    if name == "mediapipe":
        from fairsplat.faces import mediapipe as mp

        return mp.available()
    if name == "dlib":
        from fairsplat.faces.detect import ModelMissing, model_path

        try:
            model_path("landmarks68")
        except ModelMissing as err:
            return str(err)
        return None
    raise ValueError(f"unknown landmark backend {name!r} (known: {', '.join(LANDMARKS)})")


def resolve(name: str, **options) -> tuple[Backend, str, str | None]:
    """(callable, backend actually used, fallback reason or None). MediaPipe falls back to dlib
    when its runtime or a model file is missing or corrupt; options of the other backend are dropped."""
    why = unavailable(name)
    if why is None:
        return partial(LANDMARKS[name], **options), name, None
    if name == "mediapipe":
        return LANDMARKS["dlib"], "dlib", f"mediapipe unavailable, fell back to dlib: {why}"
    raise RuntimeError(why)
