"""Videos: decode with PyAV, detect per frame, one clip = one subject with smooth motion; jitter.

Why a clip is one problem: the person does not change between frames, so the
clip shares one shape (far better determined from many frames than from
one), and real motion is smooth, so a second-difference penalty on pose,
expression and translation suppresses detector jitter without lagging real
motion. Frames where the detector finds no face, or several, keep their
status and carry no landmark weight; ``run.interpolate_clips`` fills them.
A file that cannot be decoded becomes one ``bad_video`` reject row; nothing
in a clip can make the tracker crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fairsplat.track.camera import default_K
from fairsplat.track.run import TrackRun
from fairsplat.track.sources import OK, Detector, Items, detect_rows_mesh

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")
BAD_VIDEO = "bad_video"


@dataclass
class Clip:
    name: str
    frames: np.ndarray  # [T, H, W, 3] uint8
    times: np.ndarray  # [T] seconds
    source_fps: float


def read_clip(path: str | Path, fps: float = 5.0, max_frames: int = 60) -> Clip:
    """Decode with PyAV, keeping about ``fps`` frames per second, at most ``max_frames``."""
    import av

    path = Path(path)
    frames, times, next_t = [], [], 0.0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        src_fps = float(stream.average_rate or 0.0)
        for frame in container.decode(stream):
            t = float(frame.time if frame.time is not None else len(times) / max(src_fps, 1.0))
            if t + 1e-6 < next_t:
                continue
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(t)
            next_t = t + 1.0 / fps
            if len(frames) >= max_frames:
                break
    if not frames:
        raise ValueError(f"{path}: no video frames decoded")
    return Clip(path.stem, np.stack(frames), np.asarray(times), src_fps)


THUMB = 256
"""Side of the copies of each frame kept in memory for the overlays (~0.2 MB a frame, 12 MB for a
60-frame clip): a decoded frame has no file to read back, and the full frames would cost 4x more."""


def thumbnail(frame: np.ndarray, side: int = THUMB) -> np.ndarray:  # uint8 [H, W, 3] -> [<=side, <=side, 3]
    from PIL import Image

    im = Image.fromarray(frame)
    im.thumbnail((side, side), Image.BILINEAR)
    return np.asarray(im).copy()


def frame_ita(frames: np.ndarray, targets: np.ndarray, status: list[str]) -> np.ndarray:  # -> [T] degrees, NaN
    """Skin ITA of each frame with one face (faces/ita.py over the 68-landmark skin mask, as photographed)."""
    from fairsplat.faces.ita import face_ita

    out = np.full(len(frames), np.nan)
    for t, (img, lm, st) in enumerate(zip(frames, targets, status)):
        if st == OK:
            res, _ = face_ita(img, landmarks=lm.astype(np.float64) - 0.5)
            out[t] = np.nan if res is None else res.ita
    return out


def clip_skin(items: Items) -> dict[str, dict]:
    """Per clip: the subject's skin type from the median ITA over frames, and the spread (IQR, range)."""
    from fairsplat.faces.skin_types import fitzpatrick

    out = {}
    if items.ita is None:
        return out
    seq = np.array([q or "" for q in items.sequence], object)
    for q in sorted(set(seq) - {""}):
        v = items.ita[(seq == q) & np.isfinite(items.ita)]
        if not len(v):
            out[q] = {"frames": 0, "ita_median": None, "ita_iqr": None, "ita_range": None, "fitzpatrick": None}
            continue
        med = float(np.median(v))
        out[q] = {"frames": int(len(v)), "ita_median": med, "ita_iqr": float(np.subtract(*np.percentile(v, [75, 25]))),
                  "ita_range": float(v.max() - v.min()), "fitzpatrick": fitzpatrick(float(np.clip(med, -90, 90))),
                  "fitzpatrick_frames_agree": float(np.mean([fitzpatrick(float(np.clip(x, -90, 90))) == fitzpatrick(float(np.clip(med, -90, 90))) for x in v]))}  # fmt: skip
    return out


def clip_items(clip: Clip, fov_deg: float, detect: Detector | None = None, keep_images: bool = False) -> Items:
    """One decoded clip as ``Items``: one subject, one sequence, frames in order (and their thumbnails)."""
    targets, status, n_faces, points = detect_rows_mesh(clip.frames, detect, desc=f"detect {clip.name}")
    t = len(clip.frames)
    h, w = clip.frames.shape[1:3]
    K = default_K(w, h, fov_deg).numpy()
    return Items(
        ids=[f"{clip.name}/{i:05d}" for i in range(t)], source="videos", subject=[clip.name] * t,
        sequence=[clip.name] * t, frame=np.arange(t, dtype=np.int64), targets=targets,
        visible=np.isfinite(targets[..., 0]), K=np.repeat(K[None], t, 0), status=status, n_faces=n_faces,
        fitzpatrick=[None] * t, paths=[None] * t, images=list(clip.frames) if keep_images else None,
        thumbs=[thumbnail(f) for f in clip.frames], ita=frame_ita(clip.frames, targets, status), points=points,
    )  # fmt: skip


def load_videos(root: str | Path, fov_deg: float, fps: float, max_frames: int, detect: Detector | None = None,
                keep_images: bool = False) -> Items:  # fmt: skip
    """Every video under ``root``; a file PyAV cannot decode is one ``bad_video`` row."""
    parts = []
    for path in sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()):
        try:
            clip = read_clip(path, fps, max_frames)
        except Exception:  # noqa: BLE001  (any decoder error: record, never crash)
            parts.append(_bad_video(path))
            continue
        parts.append(clip_items(clip, fov_deg, detect, keep_images))
    return merge(parts, "videos")


def _bad_video(path: Path) -> Items:
    return Items([path.stem], "videos", [path.stem], [None], np.zeros(1, np.int64), np.full((1, 68, 2), np.nan, np.float32),
                 np.zeros((1, 68), bool), np.eye(3, dtype=np.float32)[None], [BAD_VIDEO], np.full(1, -1), [None], [str(path)])  # fmt: skip


def merge(parts: list[Items], source: str) -> Items:
    """Concatenate Items of one source (ids must already be unique)."""
    cat = lambda name: [v for p in parts for v in getattr(p, name)]  # noqa: E731
    arr = lambda name, shape: np.concatenate([getattr(p, name) for p in parts]) if parts else np.zeros(shape)  # noqa: E731
    images = cat("images") if parts and all(p.images is not None for p in parts) else None
    thumbs = [img for p in parts for img in (p.thumbs if p.thumbs is not None else [None] * len(p))] if parts else None
    ita = np.concatenate([p.ita if p.ita is not None else np.full(len(p), np.nan) for p in parts]) if parts else None
    points = (np.concatenate([p.points if p.points is not None else np.full((len(p), 468, 2), np.nan, np.float32)
                              for p in parts]) if any(p.points is not None for p in parts) else None)  # fmt: skip
    return Items(
        ids=cat("ids"), source=source, subject=cat("subject"), sequence=cat("sequence"),
        frame=arr("frame", (0,)).astype(np.int64), targets=arr("targets", (0, 68, 2)).astype(np.float32),
        visible=arr("visible", (0, 68)).astype(bool), K=arr("K", (0, 3, 3)).astype(np.float32), status=cat("status"),
        n_faces=arr("n_faces", (0,)).astype(np.int64), fitzpatrick=cat("fitzpatrick"), paths=cat("paths"), images=images,
        thumbs=thumbs, ita=ita, points=points,
    )  # fmt: skip


def motion(landmarks: np.ndarray, valid: np.ndarray, scale: float, order: int = 1) -> float:
    """Mean landmark displacement between consecutive valid frames (order 1), or
    mean |second difference| over valid triples (order 2), divided by ``scale``."""
    if len(landmarks) <= order:
        return float("nan")
    d = landmarks[1:] - landmarks[:-1] if order == 1 else landmarks[2:] - 2 * landmarks[1:-1] + landmarks[:-2]
    ok = np.all([valid[k : len(valid) - order + k] for k in range(order + 1)], axis=0)  # all frames used are valid
    if not ok.any():
        return float("nan")
    return float(np.linalg.norm(d[ok], axis=-1).mean() / scale)


def clip_jitter(detected: np.ndarray, fitted: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    """Smoothness of the fitted 2D landmarks against the detector's own, on frames both have.

    Both in units of the detected inter-ocular distance (outer corners 36, 45).
    ``motion_ratio``: frame-to-frame motion, fitted / detected (real motion
    counts in both, so it stays near 1 on a moving head). ``jitter_ratio``: the
    same for second differences (acceleration), which real, smooth motion
    barely has and detector noise dominates. Ratios below 1 mean smoother.
    """
    nan = float("nan")
    if valid.sum() < 3:
        return {f"{k}_{w}": nan for k in ("motion", "jitter") for w in ("detected", "fitted", "ratio")}
    iod = float(np.median(np.linalg.norm(detected[valid, 36] - detected[valid, 45], axis=-1)))
    out = {}
    for key, order in (("motion", 1), ("jitter", 2)):
        a, b = motion(detected, valid, iod, order), motion(fitted, valid, iod, order)
        out |= {f"{key}_detected": a, f"{key}_fitted": b, f"{key}_ratio": b / a if a > 0 else nan}
    return out


def jitter(items: Items, run: TrackRun) -> dict[str, dict[str, float]]:
    """``clip_jitter`` for every clip of ``items`` (rows grouped by sequence, in frame order)."""
    out = {}
    seq = np.array([q or "" for q in items.sequence], object)
    ok = np.array([s == OK for s in items.status]) & run.fitted
    for q in sorted(set(seq) - {""}):
        rows = np.nonzero(seq == q)[0]
        rows = rows[np.argsort(items.frame[rows], kind="stable")]
        if run.fitted[rows].any():
            out[q] = clip_jitter(items.targets[rows].astype(float), run.landmarks2d[rows].astype(float), ok[rows])
    return out
