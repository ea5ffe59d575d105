"""The track stage's two Parquet tables: tracks (rows with FLAME parameters) and rejects.

Every input row lands in exactly one of them (``fitted + rejected == total``).

``tracks.parquet``, one row per fitted image or video frame:

================ ======================= ===========================================
column           type                    meaning
================ ======================= ===========================================
image_id         string                  the input's id (SynthHeads image_id, ...)
source           string                  synth / curated / photos / videos
subject_id       string                  identity, subject or clip
sequence         string?                 clip id (frames in order), null for stills
frame            int32                   frame index in the clip (0 for stills)
status           string                  ``fitted`` or ``interpolated`` (no face in
                                         that frame: filled from clip neighbours)
fitzpatrick      string?                 when the source knows it
path             string?                 the image file (null for decoded frames)
landmark_source  string                  gt / dlib / curate
shape            list<float32>[S]        FLAME shape coefficients
expr             list<float32>[E]        FLAME expression coefficients
pose             list<float32>[15]       axis-angle: global, neck, jaw, eyes (l, r)
transl           list<float32>[3]        FLAME translation, metres
viewmat          list<float32>[16]       world-to-camera, row-major (always the
                                         180 deg turn about x: track/camera.py)
K                list<float32>[9]        intrinsics, row-major, pixel centres +0.5
landmarks_fit    list<float32>[136]      fitted 68 landmarks (x, y) pixels
landmarks_target list<float32>[136]      what was fitted (NaN if interpolated)
data_loss        float32                 weighted mean squared landmark residual
                                         in face-size units (0 for interpolated)
nme_target       float32?                fitted vs targets, inter-ocular normalised
nme_gt           float32?                fitted vs ground truth (SynthHeads)
rot_deg          float32?                head orientation error (SynthHeads)
jaw_deg          float32?                jaw rotation error (SynthHeads)
expr_mae         float32?                expression coefficient error (SynthHeads)
================ ======================= ===========================================

Render a row with ``FlameLayer(shape, expr, pose, transl)``, ``viewmat`` and
``K``: no tracker-specific camera code is needed downstream.

``rejects.parquet``: ``image_id, source, subject_id, path, reason`` (``no_face``,
``multi_face``, ``bad_image``), ``n_faces`` (int32, -1 if not detected),
``fitzpatrick`` (string?).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from fairsplat.track.camera import flip_viewmat
from fairsplat.track.evaluate import nme
from fairsplat.track.run import TrackRun
from fairsplat.track.sources import Items

F32, S = pa.float32(), pa.string()


def tracks_schema(n_shape: int, n_expr: int) -> pa.Schema:
    fixed = lambda n: pa.list_(F32, n)  # noqa: E731
    return pa.schema([
        ("image_id", S), ("source", S), ("subject_id", S), ("sequence", S), ("frame", pa.int32()), ("status", S),
        ("fitzpatrick", S), ("path", S), ("landmark_source", S), ("shape", fixed(n_shape)), ("expr", fixed(n_expr)),
        ("pose", fixed(15)), ("transl", fixed(3)), ("viewmat", fixed(16)), ("K", fixed(9)),
        ("landmarks_fit", fixed(136)), ("landmarks_target", fixed(136)), ("data_loss", F32),
        ("nme_target", F32), ("nme_gt", F32), ("rot_deg", F32), ("jaw_deg", F32), ("expr_mae", F32),
    ])  # fmt: skip


REJECTS_SCHEMA = pa.schema([
    ("image_id", S), ("source", S), ("subject_id", S), ("path", S), ("reason", S), ("n_faces", pa.int32()),
    ("fitzpatrick", S),
])  # fmt: skip


def _opt(a: np.ndarray | None, i: int) -> float | None:
    return None if a is None or not np.isfinite(a[i]) else float(a[i])


def track_rows(items: Items, run: TrackRun, landmark_source: str, errors: dict[str, np.ndarray] | None = None) -> list[dict]:
    """Rows of ``tracks.parquet`` for the fitted rows of ``items`` (input order)."""
    errors = errors or {}
    view = flip_viewmat().reshape(-1).tolist()
    self_nme = nme(run.landmarks2d, items.targets, items.visible)  # [N] NaN where no targets
    rows = []
    for i in np.nonzero(run.fitted)[0]:
        interp = bool(run.interpolated[i])
        rows.append({
            "image_id": items.ids[i], "source": items.source, "subject_id": items.subject[i],
            "sequence": items.sequence[i], "frame": int(items.frame[i]),
            "status": "interpolated" if interp else "fitted", "fitzpatrick": items.fitzpatrick[i],
            "path": items.paths[i], "landmark_source": landmark_source,
            "shape": run.shape[i].tolist(), "expr": run.expr[i].tolist(), "pose": run.pose[i].tolist(),
            "transl": run.transl[i].tolist(), "viewmat": view, "K": items.K[i].reshape(-1).tolist(),
            "landmarks_fit": run.landmarks2d[i].reshape(-1).tolist(),
            "landmarks_target": (np.full(136, np.nan) if interp else items.targets[i].reshape(-1)).tolist(),
            "data_loss": 0.0 if interp else float(run.data_loss[i]), "nme_target": None if interp else _opt(self_nme, i),
            "nme_gt": _opt(errors.get("nme"), i), "rot_deg": _opt(errors.get("rot_deg"), i),
            "jaw_deg": _opt(errors.get("jaw_deg"), i), "expr_mae": _opt(errors.get("expr_mae"), i),
        })  # fmt: skip
    return rows


def reject_rows(items: Items, run: TrackRun) -> list[dict]:
    return [
        {"image_id": items.ids[i], "source": items.source, "subject_id": items.subject[i], "path": items.paths[i],
         "reason": items.status[i], "n_faces": int(items.n_faces[i]), "fitzpatrick": items.fitzpatrick[i]}
        for i in np.nonzero(~run.fitted)[0]
    ]  # fmt: skip
