"""MediaPipe's face models (detector, 468-point mesh, iris, selfie matte) on LiteRT, without mediapipe.

Why not the ``mediapipe`` package: 0.10.21, the last one that ships its face models,
pins numpy<2 and pulls jax and opencv-contrib; later versions ship no models. The
``.tflite`` files come from that pinned wheel through the weights registry
(``mp_*`` entries, sha256-checked) and run on ``ai-edge-litert`` (numpy 2). This
module re-implements the few graph calculators around them, with MediaPipe's
constants (``face_detection_short_range.pbtxt``, ``face_landmark_front_cpu.pbtxt``,
``iris_landmark_*.pbtxt``, ``selfie_segmentation_cpu.pbtxt``):

* **detector** (BlazeFace): the image letterboxed into 128 px (short range) or
  192 px (full range, sparse), values in [-1, 1]; SSD anchors with fixed size
  (short: strides 8,16,16,16, 2 anchors per cell -> 896; full: stride 4, 1 -> 2304);
  boxes and 6 keypoints (right eye, left eye, nose tip, mouth, right and left
  tragion) decoded around the anchors; sigmoid scores clipped at +-100, kept
  above ``min_score`` (0.5 short, 0.6 full); weighted non-maximum suppression at IoU 0.3.
* **mesh**: the ROI is the detection box, rotated so the eyes are level (keypoints
  0 -> 1), squared on its long side and scaled 1.5; a 192 px crop in [0, 1]; 468
  points (x, y in crop px, z in the same units, relative depth) and a face-presence
  logit (sigmoid, kept above 0.5). ``refine`` re-crops around the mesh itself (the
  box of all 468 points, eyes 33 -> 263 level, x1.5), as MediaPipe's tracking does
  from frame to frame; it tightens the fit on a still image too.
* **iris**: each eye's ROI spans its corners (33-133, 362-263), level, squared,
  x2.3, a 64 px crop in [0, 1]; the eye with corners 362-263 is mirrored first
  (the model was trained on one side). Outputs 71 eye-contour and 5 iris points.
* **selfie**: the image squashed to 256 x 256 in [0, 1]; a person probability per
  pixel, resized back (bilinear).

Coordinates: image pixels with pixel centres at integers (dlib's convention and
``faces.crop``'s). Speed on this CPU (one thread): detection 1.7-5 ms, mesh 2-3 ms,
iris 2 ms per eye, selfie 5 ms. Interpreters load once per process (lazily).

Errors: :class:`MediaPipeUnavailable` when LiteRT is not importable or a model file
is missing or corrupt; the message names the file and the fetch command, and the
landmark registry (``faces/landmarks.py``) falls back to dlib on it.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from fairsplat.faces.crop import apply_matrix, invert_matrix, warp

N_MESH = 468
DETECTOR_MODELS = {"short": ("mp_face_detection_short", 128, 0.5), "full": ("mp_face_detection_full", 192, 0.6)}
"""name -> (weights entry, input side, MediaPipe's min score)."""
ROI_SCALE = 1.5  # face_landmark_front: detection box and mesh box -> ROI
IRIS_SCALE = 2.3  # iris_landmark_landmarks_to_roi
NMS_IOU = 0.3
EYE_CORNERS = {"right": (33, 133), "left": (362, 263)}
"""The subject's right eye (image left) and left eye: (outer, inner) / (inner, outer) corners in the mesh."""


class MediaPipeUnavailable(RuntimeError):
    """LiteRT is not importable, or a MediaPipe model file is missing or corrupt."""


@dataclass(frozen=True)
class Detection:
    box: np.ndarray  # [4] x0, y0, x1, y1 image px
    keypoints: np.ndarray  # [6, 2] right eye, left eye, nose tip, mouth, right tragion, left tragion
    score: float


@dataclass(frozen=True)
class Mesh:
    points: np.ndarray  # [468, 3] x, y image px; z in px units (relative depth, smaller = nearer)
    presence: float  # face-presence probability of the last crop
    roi: np.ndarray  # [2, 3] image -> 192 px crop matrix of the last pass


@dataclass(frozen=True)
class Eye:
    contour: np.ndarray  # [71, 2] image px: eye outline (16), brow and surroundings
    iris: np.ndarray  # [5, 2] image px: centre, then 4 points on the iris edge


# ----------------------------------------------------------------------------- runtime

_LOCK = threading.Lock()


@lru_cache(maxsize=None)
def _interpreter(name: str):
    """The LiteRT interpreter of registry entry ``name`` (one thread), loaded once per process."""
    from fairsplat.weights import store
    from fairsplat.weights.errors import WeightsError

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as err:  # pragma: no cover - a project dependency
        raise MediaPipeUnavailable(f"ai-edge-litert is not importable ({err}); pin ai-edge-litert==2.3.0") from None
    try:
        path = store.load(name)  # verified sha256 + TFLite identifier
    except WeightsError as err:
        raise MediaPipeUnavailable(str(err)) from None
    try:
        it = Interpreter(model_path=str(path), num_threads=1)
        it.allocate_tensors()
    except (RuntimeError, ValueError) as err:
        raise MediaPipeUnavailable(f"{path}: LiteRT cannot load it ({err}); re-fetch with "
                                   f"`python -m fairsplat.weights fetch {name}`") from None  # fmt: skip
    return it


def _run(name: str, x: np.ndarray) -> list[np.ndarray]:
    """One inference; outputs in the model's order."""
    it = _interpreter(name)
    with _LOCK:  # an interpreter is not re-entrant
        it.set_tensor(it.get_input_details()[0]["index"], x[None].astype(np.float32))
        it.invoke()
        return [it.get_tensor(d["index"])[0].copy() for d in it.get_output_details()]


def available(*names: str) -> str | None:
    """None when every named model (all when empty) loads, else the reason."""
    names = names or ("mp_face_detection_short", "mp_face_landmark", "mp_iris_landmark")
    try:
        for n in names:
            _interpreter(n)
    except MediaPipeUnavailable as err:
        return str(err)
    return None


# ----------------------------------------------------------------------------- geometry


def roi_matrix(centre: np.ndarray, side: float, angle: float, size: int) -> np.ndarray:  # -> [2, 3]
    """Image -> ``size`` px crop of a square of ``side`` px centred at ``centre``, rotated by
    ``angle`` (radians, image coordinates, y down) so that direction ``angle`` becomes +x."""
    c, s = math.cos(angle), math.sin(angle)
    k = size / side
    rot = k * np.array([[c, s], [-s, c]])  # R(-angle), scaled
    return np.hstack([rot, ((size - 1) / 2 - rot @ np.asarray(centre, np.float64))[:, None]])


def _roi_from_points(pts: np.ndarray, a: np.ndarray, b: np.ndarray, scale: float, size: int) -> np.ndarray:
    """MediaPipe's rect: the points' box in the frame rotated level along a -> b, square long side x scale."""
    angle = math.atan2(b[1] - a[1], b[0] - a[0])
    level = roi_matrix(np.zeros(2), 1.0, angle, 1)[:, :2]  # pure rotation (size 1, side 1)
    q = pts @ level.T
    lo, hi = q.min(0), q.max(0)
    centre_rot = (lo + hi) / 2
    centre = np.linalg.solve(level, centre_rot)
    return roi_matrix(centre, scale * float(max(hi - lo)), angle, size)


def _crop(img: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:  # float32 [size, size, 3] in [0, 1]
    return warp(img, matrix, size, fill=(0, 0, 0)).astype(np.float32) / 255.0


# ----------------------------------------------------------------------------- detector


@lru_cache(maxsize=None)
def anchors(kind: str) -> np.ndarray:  # [A, 2] centres in [0, 1]
    """SSD anchor centres of MediaPipe's face detectors (fixed anchor size: w = h = 1)."""
    if kind == "short":
        layers = [(8, 2), (16, 6)]  # strides 8, 16, 16, 16: equal strides merge, 2 anchors per layer each
        side = 128
    elif kind == "full":
        layers, side = [(4, 1)], 192
    else:
        raise ValueError(f"detector {kind!r}; expected one of {', '.join(DETECTOR_MODELS)}")
    out = []
    for stride, per_cell in layers:
        n = math.ceil(side / stride)
        y, x = np.mgrid[0:n, 0:n]
        c = np.stack([(x + 0.5) / n, (y + 0.5) / n], -1).reshape(-1, 1, 2)
        out.append(np.repeat(c, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(out)


def _letterbox(img: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:  # -> [side, side, 3] in [-1, 1], [2, 3]
    """Keep aspect, pad with zeros (MediaPipe's BORDER_ZERO after scaling to [-1, 1])."""
    h, w = img.shape[:2]
    s = side / max(h, w)
    m = np.array([[s, 0.0, (side - 1) / 2 - s * (w - 1) / 2], [0.0, s, (side - 1) / 2 - s * (h - 1) / 2]])
    x = warp(img, m, side, fill=(128, 128, 128)).astype(np.float32) / 127.5 - 1.0
    valid = warp(np.full((h, w), 255, np.uint8), m, side, fill=0)[..., None] >= 128
    return np.where(valid, x, 0.0).astype(np.float32), m


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # [4], [N, 4] -> [N]
    lo, hi = np.maximum(a[:2], b[:, :2]), np.minimum(a[2:], b[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = lambda r: np.prod(np.clip(r[..., 2:] - r[..., :2], 0, None), axis=-1)  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-12)


def weighted_nms(boxes: np.ndarray, points: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU):
    """MediaPipe's WEIGHTED suppression: each cluster (IoU > ``iou`` with its best) is replaced by
    the score-weighted mean of its boxes and keypoints, with the best score."""
    order = np.argsort(-scores, kind="stable")
    boxes, points, scores = boxes[order], points[order], scores[order]
    left = np.ones(len(scores), bool)
    out = []
    for i in range(len(scores)):
        if not left[i]:
            continue
        near = left & (_iou(boxes[i], boxes) > iou)
        near[i] = True
        w = scores[near][:, None]
        out.append(((boxes[near] * w).sum(0) / w.sum(), (points[near] * w[:, :, None]).sum(0) / w.sum(), float(scores[i])))
        left &= ~near
    return out


def detect(img: np.ndarray, kind: str = "short", min_score: float | None = None) -> list[Detection]:
    """Faces in ``img`` (uint8 [H, W, 3] RGB), best score first."""
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8, (img.shape, img.dtype)
    name, side, default_score = DETECTOR_MODELS[kind]
    x, m = _letterbox(img, side)
    raw, logits = _run(name, x)  # [A, 16], [A, 1]
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits[:, 0].astype(np.float64), -100.0, 100.0)))
    keep = scores >= (default_score if min_score is None else min_score)
    if not keep.any():
        return []
    a = anchors(kind)[keep]
    r = raw[keep] / side
    centre = a + r[:, 0:2]
    half = r[:, 2:4] / 2
    unit = np.concatenate([centre - half, centre + half], 1)  # [K, 4] in [0, 1] of the letterbox
    kp = a[:, None] + r[:, 4:16].reshape(-1, 6, 2)  # [K, 6, 2]
    inv = invert_matrix(m)
    to_img = lambda p: apply_matrix(inv, p * side - 0.5)  # noqa: E731  (unit square -> letterbox px centres -> image)
    boxes = np.concatenate([to_img(unit[:, :2]), to_img(unit[:, 2:])], 1)
    pts = to_img(kp.reshape(-1, 2)).reshape(-1, 6, 2)
    return [Detection(b, p, s) for b, p, s in weighted_nms(boxes, pts, scores[keep])]


# ----------------------------------------------------------------------------- mesh and iris


def _mesh_pass(img: np.ndarray, roi: np.ndarray) -> tuple[np.ndarray, float]:
    raw, flag = _run("mp_face_landmark", _crop(img, roi, 192))
    pts = raw.reshape(N_MESH, 3).astype(np.float64)
    xy = apply_matrix(invert_matrix(roi), pts[:, :2] - 0.5)  # crop edge at 0 -> pixel centres
    z = pts[:, 2] / float(np.sqrt(abs(np.linalg.det(roi[:, :2]))))  # crop px -> image px
    return np.concatenate([xy, z[:, None]], 1), float(1.0 / (1.0 + np.exp(-float(np.ravel(flag)[0]))))


def mesh_roi_from_detection(det: Detection) -> np.ndarray:
    corners = np.array([det.box[:2], det.box[2:], [det.box[0], det.box[3]], [det.box[2], det.box[1]]])
    return _roi_from_points(corners, det.keypoints[0], det.keypoints[1], ROI_SCALE, 192)


def mesh_roi_from_points(points: np.ndarray) -> np.ndarray:
    return _roi_from_points(points[:, :2], points[33, :2], points[263, :2], ROI_SCALE, 192)


def mesh_roi_from_ibug68(landmarks: np.ndarray) -> np.ndarray:
    """An ROI from 68 iBUG points (eye centres level); x1.8 because the 68 points stop at the brows,
    the mesh's box at the hairline. Used where the landmarks are known (SynthHeads' ground truth)."""
    r, l = landmarks[36:42].mean(0), landmarks[42:48].mean(0)
    return _roi_from_points(landmarks, r, l, 1.8, 192)


def mesh(img: np.ndarray, det: Detection | None = None, roi: np.ndarray | None = None, refine: int = 1) -> Mesh:
    """468 points of the face in ``det`` (or in ``roi``, an image -> 192 px matrix), then
    ``refine`` more passes, each cropped around the previous pass's points."""
    assert (det is None) != (roi is None), "give a detection or an ROI"
    roi = mesh_roi_from_detection(det) if det is not None else roi
    pts, presence = _mesh_pass(img, roi)
    for _ in range(refine):
        roi = mesh_roi_from_points(pts)
        pts, presence = _mesh_pass(img, roi)
    return Mesh(pts, presence, roi)


def iris(img: np.ndarray, points: np.ndarray) -> dict[str, Eye]:
    """Eye contour and iris of both eyes from the mesh ``points`` [468, >=2]."""
    out = {}
    for side, (a, b) in EYE_CORNERS.items():
        pa, pb = points[a, :2], points[b, :2]
        roi = _roi_from_points(np.stack([pa, pb]), pa, pb, IRIS_SCALE, 64)
        x = _crop(img, roi, 64)
        mirror = side == "left"
        if mirror:
            x = x[:, ::-1].copy()
        contour, ir = _run("mp_iris_landmark", x)
        contour, ir = contour.reshape(71, 3)[:, :2], ir.reshape(5, 3)[:, :2]
        if mirror:
            contour[:, 0], ir[:, 0] = 64 - contour[:, 0], 64 - ir[:, 0]
        inv = invert_matrix(roi)
        out[side] = Eye(apply_matrix(inv, contour - 0.5), apply_matrix(inv, ir - 0.5))
    return out


# ----------------------------------------------------------------------------- selfie matte


def selfie(img: np.ndarray) -> np.ndarray:  # uint8 [H, W, 3] -> float32 [H, W] in [0, 1]
    """Person probability per pixel (MediaPipe selfie segmentation, general model, 256 x 256)."""
    h, w = img.shape[:2]
    x = np.asarray(Image.fromarray(img).resize((256, 256), Image.BILINEAR), np.float32) / 255.0
    (prob,) = _run("mp_selfie_segmentation", x)
    out = Image.fromarray(prob[..., 0].astype(np.float32), mode="F").resize((w, h), Image.BILINEAR)
    return np.clip(np.asarray(out, np.float32), 0.0, 1.0)
