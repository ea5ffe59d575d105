"""``metrics/curate.json`` numbers (DESIGN §5: flat numbers + ``per_fitzpatrick``).

* ``total`` / ``accepted`` / ``rejected`` (asserted: accepted + rejected == total),
  ``eligible`` (passed every check, before balancing), ``reject_<reason>`` for
  every reason (zeros included so ``dvc metrics diff`` keys are stable).
* ``detection_rate``: faces found / colour images that loaded and went through
  dlib (the detector's recall on this data; None when nothing used dlib).
* ``n_<split>`` and ``subjects_<split>``; ``shortfall_total``.
* ``ita_type_accuracy``: share of items with ground truth *and* a measured ITA
  whose ITA-derived type equals ``fitzpatrick_gt`` (None without ground truth);
  ``ita_mae``: mean |ITA − ita_gt| (ita_gt is the albedo's ITA: lighting and
  shading make the two differ, so this is a bias/noise figure, not a floor).
  Measured before balancing (over-quota items included), because the balanced
  subset is chosen *by* the predicted type and would flatter it.
* ``fg_iou_ellipse``: mean IoU of the photo foreground backend (landmark
  ellipse) with ground-truth alpha over the kept crops that have alpha.
* ``per_fitzpatrick[T]``: eligible, selected, shortfall, ITA mean / median / std
  over the selected crops, Monk median, and, with ground truth, the type's
  ``ita_type_accuracy`` (recall of ground-truth type T), ``ita_mae`` and
  ``fg_iou_ellipse``. None where a number cannot be computed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from fairsplat.curate.item import REJECT_REASONS, Analysis
from fairsplat.labels import FITZPATRICK
from fairsplat.sources.manifest import Record


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"ita_mean": None, "ita_median": None, "ita_std": None}
    v = np.asarray(values)
    return {"ita_mean": float(v.mean()), "ita_median": float(np.median(v)), "ita_std": float(v.std())}


def _ground_truth(pairs: Sequence[tuple[Record, Analysis]]) -> dict[str, float | int | None]:
    """Accuracy and ITA error over items with ground truth and a measured type."""
    hits = [a.fitzpatrick == r.fitzpatrick_gt for r, a in pairs if a.fitzpatrick and r.fitzpatrick_gt]
    errs = [abs(a.ita - r.ita_gt) for r, a in pairs if a.fitzpatrick and r.ita_gt is not None]
    return {"ita_type_accuracy": _mean(hits), "ita_type_n": len(hits), "ita_mae": _mean(errs)}


def _per_type(t: str, pairs, type_stats: dict, manifest: Sequence[dict]) -> dict:
    out = dict(type_stats.get(t, {"eligible": 0, "selected": 0, "shortfall": 0}))
    out |= _stats([a.ita for _, a in pairs if a.ok and a.fitzpatrick == t])
    monks = [a.monk for _, a in pairs if a.ok and a.fitzpatrick == t]
    out["monk_median"] = float(np.median(monks)) if monks else None
    gt = _ground_truth([(r, a) for r, a in pairs if r.fitzpatrick_gt == t])
    if any(r.fitzpatrick_gt for r, _ in pairs):
        out |= gt
        out["fg_iou_ellipse"] = _mean([m["fg_iou_ellipse"] for m in manifest if m["fitzpatrick_gt"] == t and m["fg_iou_ellipse"] is not None])
    return out


def curate_metrics(
    records: Sequence[Record],
    analyses: Sequence[Analysis],  # final state: over_quota already applied
    eligible: int,
    type_stats: dict[str, dict[str, int]],
    split_of: dict[str, str],  # image_id -> split, selected items only
    splits: Sequence[str],
    manifest: Sequence[dict] = (),  # rows written (curate/tables.py)
) -> dict:
    total = len(records)
    reasons = Counter(a.reason for a in analyses if not a.ok)
    accepted = sum(a.ok for a in analyses)
    rejected = sum(reasons.values())
    assert accepted + rejected == total, (accepted, rejected, total)
    unknown = set(reasons) - set(REJECT_REASONS)
    assert not unknown, unknown
    dlib = [a for a in analyses if a.landmark_source == "dlib"]
    out: dict = {"total": total, "accepted": accepted, "rejected": rejected, "eligible": eligible}
    out |= {f"reject_{r}": reasons.get(r, 0) for r in REJECT_REASONS}
    out["detection_rate"] = _mean([a.n_faces > 0 for a in dlib])
    out["landmarks_ground_truth"] = sum(a.landmark_source == "ground_truth" for a in analyses)
    out["multi_face"] = sum((a.n_faces or 0) > 1 for a in analyses)
    subj = {r.image_id: r.subject_id for r in records}
    for s in splits:
        ids = [i for i, sp in split_of.items() if sp == s]
        out[f"n_{s}"] = len(ids)
        out[f"subjects_{s}"] = len({subj[i] for i in ids})
    pairs = list(zip(records, analyses))
    out |= _ground_truth(pairs)
    out["fg_iou_ellipse"] = _mean([m["fg_iou_ellipse"] for m in manifest if m["fg_iou_ellipse"] is not None])
    per = {t: _per_type(t, pairs, type_stats, manifest) for t in FITZPATRICK}
    out["shortfall_total"] = sum(p["shortfall"] for p in per.values())
    out["per_fitzpatrick"] = per
    return out
