"""Accuracy of a track run: landmark NME, SynthHeads parameter errors, per-Fitzpatrick tables.

NME (:mod:`fairsplat.metrics.landmarks`): mean over the 68 landmarks of the
pixel distance, divided by the inter-ocular distance (outer eye corners 36 and
45, the 300-W convention) of the reference. On SynthHeads the reference is the ground-truth projection of
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

Per-type tables go through :func:`fairsplat.metrics.fairness.per_fitzpatrick`:
means over fitted rows with intervals resampling subjects (a SynthHeads
identity's views and frames move together), and worst / best / gap / ratio for
the errors (lower is better). ``nme_type_gap`` (worst / best - 1) is kept
beside the table's ``nme_gap`` / ``nme_ratio`` for ``dvc metrics diff``.
"""

from __future__ import annotations

import numpy as np
import torch

from fairsplat.head.lbs import rodrigues
from fairsplat.metrics.fairness import Stat, count, per_fitzpatrick
from fairsplat.metrics.landmarks import inter_ocular, nme
from fairsplat.track.camera import FLIP, rotation_angle_deg
from fairsplat.track.landmarks import LandmarkFlame
from fairsplat.track.run import TrackRun
from fairsplat.track.sources import OK, Items

__all__ = ["ROW_METRICS", "head_rotation", "inter_ocular", "nme", "summarise", "synth_errors"]  # nme: re-exported

ROW_METRICS = ("nme", "nme_detector", "rot_deg", "jaw_deg", "expr_mae", "expr_mae_zero", "lmk3d_mm")
BASELINES = ("expr_mae_zero",)
"""Per-row columns that are reference points, not errors of the fit: no worst/best/gap."""


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


def _table_rows(per_row: dict[str, np.ndarray], fitzpatrick: list[str | None], fitted: np.ndarray,
                subjects: list | None, detection: np.ndarray | None) -> list[dict]:  # fmt: skip
    """One row per image: errors only where fitted (NaN elsewhere), detection where the detector ran."""
    cols = {k: np.where(fitted, v, np.nan) for k, v in per_row.items()}
    if detection is not None:
        cols["detection_rate"] = detection
    return [{"fitzpatrick": t, "subject_id": None if subjects is None else subjects[i], "fitted": bool(fitted[i]),
             **{k: float(v[i]) for k, v in cols.items()}} for i, t in enumerate(fitzpatrick)]  # fmt: skip


def summarise(per_row: dict[str, np.ndarray], fitzpatrick: list[str | None], fitted: np.ndarray,
              subjects: list | None = None, detection: np.ndarray | None = None, n_boot: int = 1000) -> dict:  # fmt: skip
    """Means over fitted rows, plus the ``per_fitzpatrick`` table and the worst-to-best NME gap.

    ``subjects`` [N]: who each row shows (without it every row is its own subject);
    ``detection`` [N]: 1/0 where the detector found a face or not, NaN where it did
    not run: becomes the per-type ``detection_rate``.
    """
    out = {k: _mean(v[fitted]) for k, v in per_row.items()}
    if "nme" in per_row and fitted.any():
        out["nme_p90"] = float(np.nanpercentile(per_row["nme"][fitted], 90))
    rows = _table_rows(per_row, fitzpatrick, fitted, subjects, detection)
    stats: dict[str, Stat] = {"images": count(), "fitted": Stat(reduce=lambda rs: sum(r["fitted"] for r in rs), ci=False)}
    stats |= {k: Stat(column=k, higher_is_better=None if k in BASELINES else False) for k in per_row}
    if detection is not None:
        stats["detection_rate"] = Stat(column="detection_rate", higher_is_better=True)
    table = per_fitzpatrick(rows, stats, n_boot=n_boot)
    if not table["per_fitzpatrick"]:
        return out
    out |= table
    if "nme" in per_row:
        vals = [p["nme"] for p in table["per_fitzpatrick"].values() if p.get("nme") is not None]
        out["nme_type_gap"] = float(max(vals) / min(vals) - 1) if len(vals) > 1 and min(vals) > 0 else None
    return out
