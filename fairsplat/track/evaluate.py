"""Accuracy of a track run: landmark NME, SynthHeads parameter errors, per-Fitzpatrick tables.

NME: mean over the 68 landmarks of the pixel distance, divided by the
inter-ocular distance (outer eye corners 36 and 45, the 300-W convention) of
the reference. On SynthHeads the reference is the ground-truth projection of
all 68 embedded landmarks, hidden ones included, so a fit is judged also on
points it had to infer; with ``dlib`` targets the fitted landmarks (not dlib's)
are compared, and dlib's own NME is reported beside them.

Parameter errors compare things that are defined whatever the camera:
- ``rot_deg``: geodesic angle between the head's orientation in the camera
  (view rotation x global x neck) fitted and true;
- ``jaw_deg``: norm of the jaw axis-angle difference, degrees;
- ``expr_mae``: mean absolute expression-coefficient error, beside
  ``expr_mae_zero`` (the error of answering "neutral"), its baseline;
- ``lmk3d_mm``: mean 3D landmark distance in the camera frame, millimetres
  (depth and face size trade against each other in one image, so this is
  larger than the 2D error suggests).
"""

from __future__ import annotations

import numpy as np
import torch

from fairsplat.head.lbs import rodrigues
from fairsplat.labels import FITZPATRICK
from fairsplat.track.camera import FLIP, rotation_angle_deg
from fairsplat.track.landmarks import LandmarkFlame
from fairsplat.track.run import TrackRun
from fairsplat.track.sources import OK, Items

ROW_METRICS = ("nme", "nme_detector", "rot_deg", "jaw_deg", "expr_mae", "expr_mae_zero", "lmk3d_mm")


def inter_ocular(lmk: np.ndarray) -> np.ndarray:  # [N, 68, 2] -> [N]
    return np.linalg.norm(lmk[:, 36] - lmk[:, 45], axis=-1)


def nme(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:  # [N, 68, 2] x2 -> [N]
    """Per-row NME over landmarks in ``mask`` [N, 68] (all when None); NaN where undefined."""
    d = np.linalg.norm(pred - ref, axis=-1)  # [N, 68]
    m = np.ones(d.shape, bool) if mask is None else mask.astype(bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        per = np.where(m, d, 0.0).sum(1) / m.sum(1) / inter_ocular(ref)
    return np.where(m.sum(1) > 0, per, np.nan)


def head_rotation(pose: torch.Tensor, view_rot: torch.Tensor) -> torch.Tensor:  # [N, 15], [N, 3, 3] -> [N, 3, 3]
    return view_rot @ rodrigues(pose[:, 0:3]) @ rodrigues(pose[:, 3:6])


@torch.no_grad()
def synth_errors(items: Items, run: TrackRun, model: LandmarkFlame) -> dict[str, np.ndarray]:
    """Per-row errors against SynthHeads' ground truth (NaN where a row was not fitted)."""
    gt, f = items.gt, run.fitted
    n = len(items)
    out = {k: np.full(n, np.nan) for k in ROW_METRICS}
    out["nme"][f] = nme(run.landmarks2d[f], gt["landmarks"][f])
    det = np.array([s == OK for s in items.status]) & (items.n_faces >= 0)  # rows with detector landmarks
    out["nme_detector"][det] = nme(items.targets[det], gt["landmarks"][det])
    if not f.any():
        return out
    t = lambda a: torch.as_tensor(np.asarray(a)[f], dtype=torch.float32)  # noqa: E731
    fit_rot = head_rotation(t(run.pose), FLIP.expand(int(f.sum()), 3, 3))
    gt_rot = head_rotation(t(gt["pose"]), t(gt["viewmat"])[:, :3, :3])
    out["rot_deg"][f] = rotation_angle_deg(fit_rot, gt_rot).numpy()
    out["jaw_deg"][f] = np.degrees(np.linalg.norm(run.pose[f, 6:9] - gt["pose"][f, 6:9], axis=1))
    e = min(run.expr.shape[1], gt["expr"].shape[1])
    out["expr_mae"][f] = np.abs(run.expr[f, :e] - gt["expr"][f, :e]).mean(1)
    out["expr_mae_zero"][f] = np.abs(gt["expr"][f, :e]).mean(1)
    fit3 = (model(t(run.shape), t(run.expr), t(run.pose))[0] + t(run.transl)[:, None]) @ FLIP.T
    view = t(gt["viewmat"])
    g3 = model(t(gt["shape"]), t(gt["expr"]), t(gt["pose"]))[0] @ view[:, :3, :3].transpose(1, 2) + view[:, None, :3, 3]
    out["lmk3d_mm"][f] = 1000 * (fit3 - g3).norm(dim=-1).mean(1).numpy()
    return out


def _mean(a: np.ndarray) -> float | None:
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else None


def summarise(per_row: dict[str, np.ndarray], fitzpatrick: list[str | None], fitted: np.ndarray) -> dict:
    """Means over fitted rows, plus ``per_fitzpatrick`` and the worst-to-best NME gap."""
    out = {k: _mean(v[fitted]) for k, v in per_row.items()}
    if "nme" in per_row and fitted.any():
        out["nme_p90"] = float(np.nanpercentile(per_row["nme"][fitted], 90))
    types = np.array([t or "" for t in fitzpatrick], object)
    per = {}
    for t in FITZPATRICK:
        rows = types == t
        if not rows.any():
            continue
        per[t] = {"images": int(rows.sum()), "fitted": int((rows & fitted).sum())}
        per[t] |= {k: _mean(v[rows & fitted]) for k, v in per_row.items()}
    if per:
        out["per_fitzpatrick"] = per
    if per and "nme" in per_row:
        vals = [p["nme"] for p in per.values() if p.get("nme") is not None]
        out["nme_type_gap"] = float(max(vals) / min(vals) - 1) if len(vals) > 1 and min(vals) > 0 else None
    return out
