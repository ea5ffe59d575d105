"""Curation of ONE input: analyse (load, check, landmarks, crop, ITA) and render (write).

Why two steps: balancing needs every input's ITA before it can choose which
crops to keep, and writing 512 px crops for all of FairFace's 108K photos to
keep 3,000 would be wasteful. :func:`analyse` returns small metadata only (the
crop is recomputed from its stored matrix by :func:`render`, bit-identically).

Landmarks: the record's ground truth when it has some (SynthHeads) and
``landmarks="auto"``, else the ``detector`` backend of faces/landmarks.py
(MediaPipe by default, dlib when its models are missing; the largest face is
kept, the others' boxes recorded, the backend's flags kept in ``face_flags``).

Skin type: ITA of the skin (faces/ita.py) as photographed (``ita_raw``) and,
with ``ita_method`` other than ``raw``, after the illumination correction of
faces/illumination.py (MediaPipe mesh and iris run on the crop). The type comes
from the corrected ITA when the method found its reference with at least
``ita_min_confidence``; otherwise from the raw ITA, and the crop is flagged
``ita_flag = "low_confidence"`` rather than guessed. Foreground: see faces/foreground.py (the mask used is saved next
to the crop as ``alpha/<id>.png``); where a ground-truth alpha
exists, :func:`render` also scores the photo backend (landmark ellipse)
against it, so the mask used on photos has a measured quality.

Every input ends in exactly one state: accepted (an :class:`Analysis` with
``reason=None``) or rejected with one reason from :data:`REJECT_REASONS`.
Nothing raises: an unexpected exception becomes reason ``"error"`` with the
exception text in ``detail`` (and is counted in the metrics, so it is seen).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from fairsplat.faces.crop import Crop, composite_grey, crop_face, warp
from fairsplat.faces.foreground import FOREGROUND, PHOTO_BACKENDS, FgInput, foreground_mask, mask_iou, photo_masks, to_alpha8
from fairsplat.io.images import save_png
from fairsplat.io.photos import BadImage, load_photo
from fairsplat.faces.ita import face_ita
from fairsplat.faces.skin_types import classify
from fairsplat.curate.config import CurateConfig
from fairsplat.sources.manifest import Record

REJECT_REASONS: tuple[str, ...] = (
    "unreadable",  # file cannot be opened
    "not_an_image",  # bytes are not an image format
    "truncated",  # pixel data ends early / corrupt
    "too_small",  # shorter side < min_side
    "too_large",  # more than max_pixels
    "greyscale",  # no colour: ITA undefined
    "no_face",  # the detector found none (or MediaPipe's mesh was not a face)
    "face_too_small",  # largest face < min_face pixels
    "no_skin",  # too few usable skin pixels under the mask
    "low_chroma",  # skin colour has (almost) no chroma: toned/sepia/colour-stripped photo
    "error",  # unexpected exception (a bug or an exotic file): see detail
    "over_quota",  # passed every check but its type already has per_type images
)


@dataclass
class Analysis:
    """What curation learnt about one input (picklable, small)."""

    image_id: str
    reason: str | None = None
    detail: str = ""
    n_faces: int | None = None  # faces the detector found (1 for ground-truth landmarks)
    other_boxes: list[list[float]] = field(default_factory=list)  # [K][4] the other faces' boxes, source px
    landmark_source: str | None = None  # "ground_truth", "mediapipe" or "dlib"
    face_flags: list[str] = field(default_factory=list)  # faces/landmarks.py FLAGS of the kept face
    src_size: tuple[int, int] | None = None  # (width, height) after EXIF rotation
    face_score: float | None = None
    matrix: list[float] = field(default_factory=list)  # [6] source -> crop, row-major 2x3
    box: list[float] = field(default_factory=list)  # [4] crop square's bbox in source pixels
    landmarks: list[list[float]] = field(default_factory=list)  # [68][2] crop pixels
    ita: float | None = None
    lab: tuple[float, float, float] | None = None  # median skin L*, a*, b*
    n_skin: int | None = None
    skin_mask: str | None = None  # "labels" or "landmarks"
    fitzpatrick: str | None = None
    category: str | None = None
    ita_raw: float | None = None  # ITA of the pixels as photographed
    ita_method: str | None = None  # faces/illumination.py method that gave ``ita`` ("raw": none applied)
    ita_confidence: float | None = None  # the method's confidence (None for raw)
    ita_flag: str | None = None  # "low_confidence": a correction was asked for but had no usable reference
    ita_detail: str = ""
    ita_subject: float | None = None  # video frames: the subject's median ITA (curate/run.per_subject_ita)
    ita_subject_iqr: float | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def safe_name(image_id: str) -> str:
    """File-name-safe, collision-free name for an image id."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", image_id.replace("/", "__"))[-120:]
    return f"{stem}-{hashlib.sha1(image_id.encode()).hexdigest()[:8]}"


def _labels(mask_path: str | None, shape: tuple[int, int]) -> np.ndarray | None:  # uint8 [H, W]
    """The record's label map at image resolution (nearest); None if absent/unreadable."""
    if not mask_path:
        return None
    try:
        with Image.open(mask_path) as im:
            if im.mode not in ("L", "P"):
                im = im.convert("L")
            if im.size != (shape[1], shape[0]):
                im = im.resize((shape[1], shape[0]), Image.NEAREST)
            return np.asarray(im).copy()
    except (OSError, ValueError):
        return None


def _crop(img: np.ndarray, landmarks: np.ndarray, cfg: CurateConfig) -> Crop:
    return crop_face(img, landmarks, cfg.size, mode=cfg.crop_mode, margin=cfg.margin, grey=cfg.grey)


def _mesh_on_crop(a: Analysis, crop: Crop, mesh_src: np.ndarray | None) -> tuple[np.ndarray | None, dict | None]:
    """MediaPipe's mesh [468, 3] and eyes on the crop: the detector's mesh mapped into the crop,
    else one run from an ROI around the 68 landmarks. (None, None) when MediaPipe is unavailable."""
    from fairsplat.faces import mediapipe as mp

    try:
        if mesh_src is not None:
            lin = crop.matrix[:, :2]
            xy = mesh_src[:, :2] @ lin.T + crop.matrix[:, 2]
            mesh = np.concatenate([xy, mesh_src[:, 2:3] * float(np.sqrt(abs(np.linalg.det(lin))))], 1)
        else:
            mesh = mp.mesh(crop.image, roi=mp.mesh_roi_from_ibug68(crop.landmarks)).points
        return mesh, mp.iris(crop.image, mesh)
    except mp.MediaPipeUnavailable as err:
        a.ita_detail = str(err)[:200]
        return None, None


def _measure(a: Analysis, rec: Record, img: np.ndarray, crop: Crop, cfg: CurateConfig, mesh_src: np.ndarray | None = None) -> None:
    from fairsplat.faces.illumination import ILLUMINATION, FaceInput, corrected_ita
    from fairsplat.faces.ita import skin_mask_from_labels, skin_mask_from_landmarks

    labels = _labels(rec.mask_path, img.shape[:2])
    crop_labels = None if labels is None else warp(labels, crop.matrix, cfg.size, nearest=True, fill=0)
    res, source = face_ita(
        crop.image, labels=crop_labels, landmarks=crop.landmarks, valid=crop.valid,
        stat=cfg.ita_stat, trim=cfg.ita_trim, min_pixels=cfg.min_skin_pixels,
    )  # fmt: skip
    a.skin_mask = source
    if res is None:
        a.reason, a.detail = "no_skin", f"< {cfg.min_skin_pixels} usable skin pixels ({source} mask)"
        return
    a.ita, a.lab, a.n_skin = res.ita, (res.L, res.a, res.b), res.n_used
    a.ita_raw, a.ita_method = res.ita, "raw"
    chroma = float(np.hypot(res.a, res.b))
    if chroma < cfg.min_skin_chroma:
        a.reason, a.detail = "low_chroma", f"skin C*ab {chroma:.2f} < {cfg.min_skin_chroma}"
        return
    if cfg.ita_method != "raw":
        mesh, eyes = _mesh_on_crop(a, crop, mesh_src)
        skin = skin_mask_from_labels(crop_labels) if crop_labels is not None else skin_mask_from_landmarks(crop.landmarks, crop.image.shape[:2])
        corr = ILLUMINATION[cfg.ita_method](FaceInput(crop.image, skin & crop.valid, mesh, eyes)) if mesh is not None or cfg.ita_method in ("grey_edge", "white_patch") else None
        fixed = None if corr is None else corrected_ita(FaceInput(crop.image, skin & crop.valid), corr, trim=cfg.ita_trim,
                                                         min_pixels=cfg.min_skin_pixels)  # fmt: skip
        if fixed is not None and corr.confidence >= cfg.ita_min_confidence:
            a.ita, a.lab = fixed.ita, (fixed.L, fixed.a, fixed.b)
            a.ita_method, a.ita_confidence, a.ita_detail = corr.method, corr.confidence, corr.detail[:200]
        else:
            a.ita_flag = "low_confidence"
            a.ita_confidence = None if corr is None else corr.confidence
            a.ita_detail = a.ita_detail or ("no usable reference" if corr is None else f"confidence {corr.confidence:.2f}: {corr.detail}")[:200]
    cat = classify(float(np.clip(a.ita, -90.0, 90.0)), cfg.scheme)
    a.fitzpatrick, a.category = cat.fitzpatrick, cat.name


def _landmarks(a: Analysis, rec: Record, img: np.ndarray, cfg: CurateConfig) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(68 landmarks, the detector's own mesh or None): ground truth when allowed and present, else the
    largest face of ``cfg.detector`` (landmarks None: no face)."""
    if cfg.landmarks == "auto" and rec.landmarks is not None:
        a.n_faces, a.landmark_source = 1, "ground_truth"
        return np.asarray(rec.landmarks, np.float64), None
    detect, used = _detector(cfg)
    faces = detect(img)
    a.n_faces, a.landmark_source = len(faces), used
    if not faces:
        a.reason = "no_face"
        return None, None
    a.face_score = faces[0].score
    a.other_boxes = [f.box.tolist() for f in faces[1:]]
    a.face_flags = list(faces[0].flags)
    return faces[0].landmarks, faces[0].points


_DETECTORS: dict = {}


def _detector(cfg: CurateConfig):
    """The configured backend (cached per process: each worker resolves it once) and its name."""
    key = (cfg.detector, cfg.upsample, cfg.detect_max_side, cfg.detect_fallback)
    if key not in _DETECTORS:
        from fairsplat.faces.landmarks import resolve

        opts = ({"upsample": cfg.upsample, "detect_max_side": cfg.detect_max_side, "fallback": cfg.detect_fallback}
                if cfg.detector == "dlib" else {})  # fmt: skip
        fn, used, _ = resolve(cfg.detector, **opts)
        if used == "dlib" and cfg.detector != "dlib":
            from functools import partial

            from fairsplat.faces.landmarks import dlib_faces

            fn = partial(dlib_faces, upsample=cfg.upsample, detect_max_side=cfg.detect_max_side, fallback=cfg.detect_fallback)
        _DETECTORS[key] = (fn, used)
    return _DETECTORS[key]


def _analyse(rec: Record, cfg: CurateConfig) -> Analysis:
    a = Analysis(rec.image_id)
    try:
        img, info = load_photo(rec.path, min_side=cfg.min_side, max_pixels=cfg.max_pixels, allow_greyscale=False)
    except BadImage as err:
        a.reason, a.detail = err.reason, err.detail[:200]
        return a
    a.src_size = (info.width, info.height)
    lm, mesh_src = _landmarks(a, rec, img, cfg)
    if lm is None:
        return a
    span = float(np.max(lm.max(0) - lm.min(0)))
    if span < cfg.min_face:
        a.reason, a.detail = "face_too_small", f"face {span:.0f} px < {cfg.min_face}"
        return a
    crop = _crop(img, lm, cfg)
    a.matrix = crop.matrix.ravel().tolist()
    a.box = crop.box.tolist()
    a.landmarks = crop.landmarks.tolist()
    _measure(a, rec, img, crop, cfg, mesh_src)
    return a


def analyse(rec: Record, cfg: CurateConfig) -> Analysis:
    """Analyse one input; never raises (see module doc)."""
    try:
        return _analyse(rec, cfg)
    except Exception as err:  # noqa: BLE001  (one bad input must not stop a 100K-image run)
        return Analysis(rec.image_id, reason="error", detail=f"{type(err).__name__}: {err}"[:300])


def _alpha(rec: Record, info_alpha: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:  # uint8 [H, W]
    """Ground-truth alpha: the record's alpha file, else the photo's own alpha channel."""
    if rec.alpha_path:
        with Image.open(rec.alpha_path) as im:
            grey = im.convert("L")
            if grey.size != (shape[1], shape[0]):
                grey = grey.resize((shape[1], shape[0]), Image.BILINEAR)
            return np.asarray(grey).copy()
    return info_alpha


def render(rec: Record, a: Analysis, cfg: CurateConfig, out_dir: str | Path) -> dict:
    """Write the grey-composited crop, its foreground alpha (and cropped label map).

    Paths returned are relative to ``out_dir``. ``alpha/<id>.png`` is the exact
    8-bit mask the crop was composited with (same warp, zero on padding): the
    training losses of seed 000 (masked L1 in the face region, mask coverage)
    need it, and re-deriving it downstream would not reproduce the backend.
    Also returns ``fg_iou_<backend>`` for each photo backend (ellipse, selfie, head):
    IoU of its mask with the ground-truth alpha where one exists and
    ``score_foreground`` is on (else None), the measured quality of the masks
    photos without alpha get.
    """
    assert a.ok and a.matrix, a.image_id
    img, info = load_photo(rec.path, min_side=1, max_pixels=cfg.max_pixels)
    matrix = np.asarray(a.matrix).reshape(2, 3)
    g = int(round(cfg.grey * 255))
    image = warp(img, matrix, cfg.size, fill=(g, g, g))  # [S, S, 3]
    valid = warp(np.full(img.shape[:2], 255, np.uint8), matrix, cfg.size, fill=0) >= 128  # [S, S]
    alpha = _alpha(rec, info.alpha, img.shape[:2])
    alpha = None if alpha is None else warp(alpha, matrix, cfg.size, fill=0)
    labels = _labels(rec.mask_path, img.shape[:2])
    crop_labels = None if labels is None else warp(labels, matrix, cfg.size, nearest=True, fill=0)
    fg = FgInput(image, np.asarray(a.landmarks), valid, alpha=alpha, labels=crop_labels)
    mask, backend = foreground_mask(fg, cfg.foreground)
    alpha8 = to_alpha8(mask)  # uint8 [S, S]: composited with and saved as-is
    ious: dict[str, float | None] = dict.fromkeys(PHOTO_BACKENDS)
    if alpha is not None:
        scored = photo_masks(fg) if cfg.score_foreground else {"ellipse": FOREGROUND["ellipse"](fg)}
        for name, m in scored.items():
            ious[name] = None if m is None else mask_iou(m * valid, alpha.astype(np.float32) / 255.0)
    name = safe_name(rec.image_id)
    save_png(Path(out_dir) / "crops" / f"{name}.png", composite_grey(image, alpha8 / np.float32(255.0), cfg.grey))
    save_png(Path(out_dir) / "alpha" / f"{name}.png", alpha8)
    label_rel = None
    if crop_labels is not None:
        label_rel = f"labels/{name}.png"
        save_png(Path(out_dir) / label_rel, crop_labels.astype(np.uint8))
    return {
        "path": f"crops/{name}.png", "alpha_path": f"alpha/{name}.png", "mask_path": label_rel,
        "foreground": backend, **{f"fg_iou_{k}": v for k, v in ious.items()},
    }  # fmt: skip


__all__ = ["REJECT_REASONS", "Analysis", "analyse", "render", "safe_name"]
