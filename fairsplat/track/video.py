"""Track a talking-head clip: decode, detect, fit with one shape and smooth motion.

Why a clip is one problem: the person does not change between frames, so the
clip shares one shape (far better determined from many frames than from
one), and real motion is smooth, so a second-difference penalty on pose,
expression and translation suppresses detector jitter without lagging real
motion. Frames where the detector finds no face, or several, are recorded
with that status and carry no landmark weight; the smoothness term and an
explicit linear interpolation over time fill their parameters from the
neighbours. Nothing in a clip can make the tracker crash: a clip with no
face at all comes back with every frame marked and no parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fairsplat.track.camera import default_K
from fairsplat.track.fit import Fitter, FitResult, flame_landmarks_2d

OK, NO_FACE, MULTI_FACE = "ok", "no_face", "multi_face"


@dataclass
class Clip:
    name: str
    frames: np.ndarray  # [T, H, W, 3] uint8
    times: np.ndarray  # [T] seconds
    source_fps: float


@dataclass
class ClipTrack:
    name: str
    times: np.ndarray  # [T]
    status: list[str]  # [T] OK / NO_FACE / MULTI_FACE
    detected: np.ndarray  # [T, 68, 2] detector landmarks (NaN where none used)
    fit: FitResult | None  # None when no frame had a face
    interpolated: np.ndarray  # [T] bool: parameters filled from neighbours

    @property
    def valid(self) -> np.ndarray:  # [T] bool
        return np.array([s == OK for s in self.status])


def read_clip(path: str | Path, fps: float = 3.0, max_frames: int = 24) -> Clip:
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


def detect_clip(frames: np.ndarray, detect=None) -> tuple[np.ndarray, list[str]]:  # -> [T, 68, 2], [T]
    """dlib 68 landmarks per frame; pixel centres moved to +0.5 (the fitter's convention)."""
    if detect is None:
        from fairsplat.faces.detect import detect_faces as detect
    out = np.full((len(frames), 68, 2), np.nan)
    status = []
    for t, img in enumerate(frames):
        faces = detect(img)
        status.append(OK if len(faces) == 1 else NO_FACE if not faces else MULTI_FACE)
        if len(faces) == 1:
            out[t] = faces[0].landmarks + 0.5
    return out, status


def track_landmarks(
    fitter: Fitter,
    landmarks: np.ndarray,  # [T, 68, 2] (NaN rows allowed where status != OK)
    status: list[str],
    K: torch.Tensor,  # [3, 3]
    times: np.ndarray | None = None,  # [T]
    name: str = "clip",
) -> ClipTrack:
    """Fit a clip jointly (one shape, smooth motion), then interpolate failed frames."""
    T = len(status)
    times = np.arange(T, dtype=float) if times is None else np.asarray(times, float)
    valid = np.array([s == OK for s in status])
    if not valid.any():
        return ClipTrack(name, times, list(status), landmarks, None, np.zeros(T, bool))
    targets = torch.as_tensor(np.nan_to_num(landmarks), dtype=torch.float32)
    visible = torch.as_tensor(valid, dtype=torch.float32)[:, None].expand(T, 68).clone()
    ones = torch.zeros(T, dtype=torch.long)
    fit = fitter.fit(targets, K.expand(T, 3, 3), visible, subjects=ones, sequence=ones)
    _interpolate(fitter, fit, valid, times)
    return ClipTrack(name, times, list(status), landmarks, fit, ~valid)


def track_clip(fitter: Fitter, clip: Clip, fov_deg: float, detect=None) -> ClipTrack:
    """Detect and track one decoded clip with a pinhole camera of ``fov_deg``."""
    landmarks, status = detect_clip(clip.frames, detect)
    h, w = clip.frames.shape[1:3]
    return track_landmarks(fitter, landmarks, status, default_K(w, h, fov_deg), clip.times, clip.name)


@torch.no_grad()
def _interpolate(fitter: Fitter, fit: FitResult, valid: np.ndarray, times: np.ndarray) -> None:
    """Frames without landmarks: linear in time between fitted neighbours (held at the ends)."""
    if valid.all():
        return
    good = np.nonzero(valid)[0]
    for name in ("expr", "pose", "transl"):
        a = getattr(fit, name).numpy()
        filled = np.stack([np.interp(times, times[good], a[good, d]) for d in range(a.shape[1])], 1)
        getattr(fit, name)[:] = torch.as_tensor(filled, dtype=torch.float32)
    fit.landmarks2d[:] = flame_landmarks_2d(fitter.model, fit.shape, fit.expr, fit.pose, fit.transl, fit.K)


def motion(landmarks: np.ndarray, valid: np.ndarray, scale: float, order: int = 1) -> float:
    """Mean landmark displacement between consecutive valid frames (order 1), or
    mean |second difference| over valid triples (order 2), divided by ``scale``."""
    d = landmarks[1:] - landmarks[:-1] if order == 1 else landmarks[2:] - 2 * landmarks[1:-1] + landmarks[:-2]
    ok = np.all([valid[k : len(valid) - order + k] for k in range(order + 1)], axis=0)  # all frames used are valid
    if not ok.any():
        return float("nan")
    return float(np.linalg.norm(d[ok], axis=-1).mean() / scale)


def jitter(track: ClipTrack) -> dict[str, float]:
    """Smoothness of the fitted 2D landmarks against the detector's own, on frames both have.

    Both in units of the detected inter-ocular distance (outer corners 36, 45).
    ``motion_ratio``: frame-to-frame motion, fitted / detected (real motion
    counts in both, so it stays near 1 on a moving head). ``jitter_ratio``: the
    same for second differences (acceleration), which real, smooth motion
    barely has and detector noise dominates. Ratios below 1 mean smoother.
    """
    if track.fit is None:
        return {"motion_detected": float("nan"), "motion_fitted": float("nan"), "motion_ratio": float("nan"),
                "jitter_detected": float("nan"), "jitter_fitted": float("nan"), "jitter_ratio": float("nan")}
    fitted, valid = track.fit.landmarks2d.numpy().astype(float), track.valid
    det = np.where(valid[:, None, None], track.detected, fitted)
    iod = float(np.median(np.linalg.norm(det[valid, 36] - det[valid, 45], axis=-1)))  # detected, outer eye corners
    out = {}
    for key, order in (("motion", 1), ("jitter", 2)):
        a, b = motion(det, valid, iod, order), motion(fitted, valid, iod, order)
        out |= {f"{key}_detected": a, f"{key}_fitted": b, f"{key}_ratio": b / a if a > 0 else float("nan")}
    return out
