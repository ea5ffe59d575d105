"""Face detection, 68 landmarks and identity descriptors with dlib, offline.

Models come from the ``face_recognition_models`` wheel. Its ``__init__`` imports
``pkg_resources`` (gone from recent setuptools), so we never import it: we ask
``importlib.util.find_spec`` where the package lives and read the ``.dat``
files from its ``models/`` folder. Each model is loaded once per process
(lazily, so importing this module is free and forked workers load their own).

LICENCE NOTE: ``shape_predictor_68_face_landmarks.dat`` was trained on the
iBUG 300-W dataset, which is licensed for **research use only**. The HOG
detector and the ResNet descriptor model are dlib's own (Boost licence /
public-domain data per dlib's notes); check them before any commercial use.

Speed (this project's 2-core CPU, HOG, upsample 0): ~6 ms at 200 px, ~10 ms at
256 px, ~33 ms at 512 px; landmarks ~1.5 ms per face. So :func:`detect_faces`
runs HOG on a copy downscaled to ``detect_max_side`` and maps boxes back, then
fits landmarks on the full-resolution image. HOG finds faces down to ~80 px
at upsample 0 (each upsample halves that and costs ~4x time); if nothing is
found on the small copy and ``fallback`` is set, it retries at full resolution
(or one upsample level higher when the photo was already small), then on a
copy padded by 25 % (tight face chips give HOG no context) with the detector
threshold relaxed to ``fallback``. Misses cost more; hits cost one pass.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

MODEL_FILES = {
    "landmarks68": "shape_predictor_68_face_landmarks.dat",
    "landmarks5": "shape_predictor_5_face_landmarks.dat",
    "descriptor": "dlib_face_recognition_resnet_model_v1.dat",
    "cnn_detector": "mmod_human_face_detector.dat",
}


class ModelMissing(RuntimeError):
    """dlib or the face_recognition_models wheel is not installed."""


@dataclass(frozen=True)
class Face:
    box: np.ndarray  # float [4] x0, y0, x1, y1 in image pixels
    landmarks: np.ndarray  # float [68, 2] (x, y), iBUG-68 order
    score: float  # detector confidence (dlib HOG: higher is surer; MediaPipe: probability)
    points: np.ndarray | None = None  # the backend's own points when not the 68 (MediaPipe: [468, 3])
    backend: str = "dlib"  # faces/landmarks.py LANDMARKS key that found it
    flags: tuple[str, ...] = ()  # faces/landmarks.py FLAGS that apply (cut by the border, ...)

    @property
    def size(self) -> float:
        """Side of the box (geometric mean of width and height), pixels."""
        w, h = self.box[2] - self.box[0], self.box[3] - self.box[1]
        return float(np.sqrt(max(w, 0.0) * max(h, 0.0)))


def models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissing("face_recognition_models is not installed (pip install face-recognition-models)")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def model_path(name: str) -> Path:
    path = models_dir() / MODEL_FILES[name]
    if not path.exists():
        raise ModelMissing(f"{path} missing from the face_recognition_models wheel")
    return path


def _dlib():
    try:
        import dlib
    except ImportError as err:  # pragma: no cover - dlib-bin is a project dependency
        raise ModelMissing(f"dlib is not importable ({err}); install dlib-bin") from None
    return dlib


@lru_cache(maxsize=1)
def _hog():
    return _dlib().get_frontal_face_detector()


@lru_cache(maxsize=1)
def _predictor68():
    return _dlib().shape_predictor(str(model_path("landmarks68")))


@lru_cache(maxsize=1)
def _encoder():
    return _dlib().face_recognition_model_v1(str(model_path("descriptor")))


def _downscale(img: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    h, w = img.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return img, 1.0
    s = max_side / max(h, w)
    small = Image.fromarray(img).resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
    return np.asarray(small), s


def _hog_boxes(img: np.ndarray, upsample: int, threshold: float) -> list[tuple[np.ndarray, float]]:
    rects, scores, _ = _hog().run(img, upsample, threshold)
    return [(np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], np.float64), float(s)) for r, s in zip(rects, scores)]


def landmarks68(img: np.ndarray, box: np.ndarray) -> np.ndarray:  # uint8 [H,W,3], [4] -> float [68, 2]
    """68 iBUG landmarks inside ``box`` (x0, y0, x1, y1)."""
    dlib = _dlib()
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    shape = _predictor68()(img, dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
    return np.array([[p.x, p.y] for p in shape.parts()], np.float64)


def _attempts(img: np.ndarray, upsample: int, max_side: int | None, threshold: float, fallback: float | None):
    """(image, scale, pad, upsample, threshold) tries, cheapest first; see the module doc."""
    small, s = _downscale(img, max_side)
    yield small, s, 0, upsample, threshold
    if fallback is None:
        return
    # small faces: a downscaled photo is retried at full size; a photo that is
    # already small one upsample level up (bounded: ~60 ms at 320 px).
    up2 = upsample if s < 1.0 else upsample + 1
    yield img, 1.0, 0, up2, threshold
    # tight face chips (the face fills the frame): HOG's window needs context
    # around the face, so pad 25 % by edge replication and look again with the
    # relaxed threshold (on faces_open this recovers the 2/100 chips missed).
    pad = round(0.25 * max(small.shape[:2]))
    yield np.pad(small, ((pad, pad), (pad, pad), (0, 0)), mode="edge"), s, pad, up2, min(threshold, fallback)


def detect_boxes(
    img: np.ndarray,  # uint8 [H, W, 3]
    *,
    upsample: int = 0,
    detect_max_side: int | None = 320,
    threshold: float = 0.0,
    fallback: float | None = -0.3,
) -> list[tuple[np.ndarray, float]]:  # [(box [4] x0,y0,x1,y1 in img pixels, score)]
    """HOG boxes from the first attempt that finds any face (``fallback=None``: one attempt only)."""
    for im, s, pad, up, th in _attempts(img, upsample, detect_max_side, threshold, fallback):
        found = _hog_boxes(np.ascontiguousarray(im), up, th)
        if found:
            return [((box - pad) / s, score) for box, score in found]
    return []


def detect_faces(
    img: np.ndarray,  # uint8 [H, W, 3] RGB
    *,
    upsample: int = 0,
    detect_max_side: int | None = 320,
    threshold: float = 0.0,
    fallback: float | None = -0.3,
) -> list[Face]:  # sorted largest first
    """All faces with landmarks, largest box first (ties: higher score first)."""
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8, (img.shape, img.dtype)
    img = np.ascontiguousarray(img)
    boxes = detect_boxes(img, upsample=upsample, detect_max_side=detect_max_side, threshold=threshold, fallback=fallback)
    faces = [Face(box, landmarks68(img, box), score) for box, score in boxes]
    return sorted(faces, key=lambda f: (-f.size, -f.score))


def descriptor(img: np.ndarray, face: Face) -> np.ndarray:  # uint8 [H,W,3] -> float [128]
    """dlib's 128-d ResNet identity embedding (~70 ms on this CPU); distance < 0.6 ≈ same person."""
    dlib = _dlib()
    pts = [dlib.point(int(round(x)), int(round(y))) for x, y in face.landmarks]
    x0, y0, x1, y1 = (int(round(v)) for v in face.box)
    shape = dlib.full_object_detection(dlib.rectangle(x0, y0, x1 - 1, y1 - 1), pts)
    return np.array(_encoder().compute_face_descriptor(np.ascontiguousarray(img), shape), np.float64)
