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
* ``per_fitzpatrick[T]`` (the table of :mod:`fairsplat.metrics.fairness`, all six
  types): eligible, selected, shortfall (balance's exact counts: no interval),
  ITA mean / median / std over the selected crops (measured type T), Monk
  median, and, with ground truth, the type's ``ita_type_accuracy`` (recall of
  ground-truth type T, over every input as above), ``ita_type_n``, ``ita_mae``
  and ``fg_iou_ellipse`` (kept crops of ground-truth type T). Intervals
  resample subjects (``subject_id``); ``n_subjects``/``n_items`` count the
  selected crops. Worst / best / gap / ratio for accuracy, ITA error and
  foreground IoU. None where a number cannot be computed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from fairsplat.curate.item import REJECT_REASONS, Analysis
from fairsplat.labels import FITZPATRICK
from fairsplat.metrics.fairness import Stat, count, per_fitzpatrick
from fairsplat.sources.manifest import Record



def every_input(row: dict) -> bool:
    """Ground-truth figures are measured before balancing, over every input (see above)."""
    return True


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _ground_truth(pairs: Sequence[tuple[Record, Analysis]]) -> dict[str, float | int | None]:
    """Accuracy and ITA error over items with ground truth and a measured type."""
    hits = [a.fitzpatrick == r.fitzpatrick_gt for r, a in pairs if a.fitzpatrick and r.fitzpatrick_gt]
    errs = [abs(a.ita - r.ita_gt) for r, a in pairs if a.fitzpatrick and r.ita_gt is not None]
    return {"ita_type_accuracy": _mean(hits), "ita_type_n": len(hits), "ita_mae": _mean(errs)}


def _table_rows(pairs: Sequence[tuple[Record, Analysis]], manifest: Sequence[dict]) -> list[dict]:
    """One row per input: measured and true type, subject, kept or not, and what is scored."""
    fg = {m["image_id"]: m["fg_iou_ellipse"] for m in manifest}
    return [{
        "fitzpatrick": a.fitzpatrick, "fitzpatrick_gt": r.fitzpatrick_gt, "subject_id": r.subject_id, "ok": a.ok,
        "ita": a.ita, "monk": a.monk, "fg_iou_ellipse": fg.get(r.image_id),
        "hit": float(a.fitzpatrick == r.fitzpatrick_gt) if a.fitzpatrick and r.fitzpatrick_gt else None,
        "ita_err": abs(a.ita - r.ita_gt) if a.fitzpatrick and r.ita_gt is not None else None,
    } for r, a in pairs]  # fmt: skip


def _type_stats(type_stats: dict, ground_truth: bool) -> dict[str, Stat]:
    zero = {"eligible": 0, "selected": 0, "shortfall": 0}
    stats = {k: Stat(given={t: type_stats.get(t, zero)[k] for t in FITZPATRICK}) for k in zero}
    stats |= {"ita_mean": Stat(column="ita"), "ita_median": Stat(column="ita", agg=np.median),
              "ita_std": Stat(column="ita", agg=np.std), "monk_median": Stat(column="monk", agg=np.median)}  # fmt: skip
    if ground_truth:
        stats |= {
            "ita_type_accuracy": Stat(column="hit", by="fitzpatrick_gt", where=every_input, higher_is_better=True),
            "ita_type_n": count(where=lambda r: r["hit"] is not None, by="fitzpatrick_gt"),
            "ita_mae": Stat(column="ita_err", by="fitzpatrick_gt", where=every_input, higher_is_better=False),
            "fg_iou_ellipse": Stat(column="fg_iou_ellipse", by="fitzpatrick_gt", higher_is_better=True),
        }
    return stats


def curate_metrics(
    records: Sequence[Record],
    analyses: Sequence[Analysis],  # final state: over_quota already applied
    eligible: int,
    type_stats: dict[str, dict[str, int]],
    split_of: dict[str, str],  # image_id -> split, selected items only
    splits: Sequence[str],
    manifest: Sequence[dict] = (),  # rows written (curate/tables.py)
    n_boot: int = 1000,
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
    ground_truth = any(r.fitzpatrick_gt for r in records)
    table = per_fitzpatrick(_table_rows(pairs, manifest), _type_stats(type_stats, ground_truth),
                            where=lambda r: r["ok"], types=FITZPATRICK, n_boot=n_boot)  # fmt: skip
    out["shortfall_total"] = sum(p["shortfall"] for p in table["per_fitzpatrick"].values())
    return out | table
