"""``metrics/curate.json`` numbers (DESIGN §5: flat numbers + ``per_fitzpatrick``).

* ``total`` / ``accepted`` / ``rejected`` (asserted: accepted + rejected == total),
  ``eligible`` (passed every check, before balancing), ``reject_<reason>`` for
  every reason (zeros included so ``dvc metrics diff`` keys are stable).
* ``detection_rate``: faces found / colour images that loaded (the detector's
  recall on this data; None when nothing loaded).
* ``n_<split>`` and ``subjects_<split>``.
* ``ita_type_accuracy``: share of *eligible* items whose ITA-derived type equals
  ``fitzpatrick_gt`` (None without ground truth); ``ita_mae``: mean |ITA − ita_gt|.
  Measured before balancing, on every item with ground truth, because the
  balanced subset is chosen *by* the predicted type and would bias it.
* ``per_fitzpatrick[T]``: eligible, selected, shortfall, and ITA mean / median /
  std over the selected crops (None when none).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from fairsplat.curate.item import REJECT_REASONS, Analysis
from fairsplat.labels import FITZPATRICK
from fairsplat.sources.manifest import Record


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"ita_mean": None, "ita_median": None, "ita_std": None}
    v = np.asarray(values)
    return {"ita_mean": float(v.mean()), "ita_median": float(np.median(v)), "ita_std": float(v.std())}


def _ground_truth(records: Sequence[Record], analyses: Sequence[Analysis]) -> dict[str, float | int | None]:
    hits = [a.fitzpatrick == r.fitzpatrick_gt for r, a in zip(records, analyses) if a.ok and r.fitzpatrick_gt]
    errs = [abs(a.ita - r.ita_gt) for r, a in zip(records, analyses) if a.ok and r.ita_gt is not None]
    return {
        "ita_type_accuracy": float(np.mean(hits)) if hits else None,
        "ita_type_n": len(hits),
        "ita_mae": float(np.mean(errs)) if errs else None,
    }


def curate_metrics(
    records: Sequence[Record],
    analyses: Sequence[Analysis],  # final state: over_quota already applied
    eligible: int,
    type_stats: dict[str, dict[str, int]],
    split_of: dict[str, str],  # image_id -> split, selected items only
    splits: Sequence[str],
) -> dict:
    total = len(records)
    reasons = Counter(a.reason for a in analyses if not a.ok)
    accepted = sum(a.ok for a in analyses)
    rejected = sum(reasons.values())
    assert accepted + rejected == total, (accepted, rejected, total)
    unknown = set(reasons) - set(REJECT_REASONS)
    assert not unknown, unknown
    loaded = [a for a in analyses if a.n_faces is not None]
    out: dict = {"total": total, "accepted": accepted, "rejected": rejected, "eligible": eligible}
    out |= {f"reject_{r}": reasons.get(r, 0) for r in REJECT_REASONS}
    out["detection_rate"] = float(np.mean([a.n_faces > 0 for a in loaded])) if loaded else None
    subj = {r.image_id: r.subject_id for r in records}
    for s in splits:
        ids = [i for i, sp in split_of.items() if sp == s]
        out[f"n_{s}"] = len(ids)
        out[f"subjects_{s}"] = len({subj[i] for i in ids})
    out |= _ground_truth(records, analyses)
    per = {}
    for t in FITZPATRICK:
        itas = [a.ita for a in analyses if a.ok and a.fitzpatrick == t]
        per[t] = dict(type_stats.get(t, {"eligible": 0, "selected": 0, "shortfall": 0})) | _stats(itas)
    out["shortfall_total"] = sum(p["shortfall"] for p in per.values())
    out["per_fitzpatrick"] = per
    return out
