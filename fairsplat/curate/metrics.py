"""``metrics/curate.json`` numbers (DESIGN §5: flat numbers + ``per_fitzpatrick``).

* ``total`` / ``accepted`` / ``rejected`` (asserted: accepted + rejected == total),
  ``eligible`` (passed every check, before balancing), ``reject_<reason>`` for
  every reason (zeros included so ``dvc metrics diff`` keys are stable).
* ``detection_rate``: faces found / colour images that loaded and went through
  the detector (its recall on this data; None when nothing used one);
  ``landmarks_backend`` names the detector(s) used (``mediapipe``, ``dlib``: a
  MediaPipe failure falls back to dlib and says so here).
* ``n_<split>`` and ``subjects_<split>``; ``shortfall_total``.
* ``ita_type_accuracy``: share of items with ground truth *and* a measured ITA
  whose ITA-derived type equals ``fitzpatrick_gt`` (None without ground truth);
  ``ita_mae``: mean |ITA − ita_gt| (ita_gt is the albedo's ITA: lighting and
  shading make the two differ, so this is a bias/noise figure, not a floor).
  Measured before balancing (over-quota items included), because the balanced
  subset is chosen *by* the predicted type and would flatter it. Each also as
  ``_raw`` (the ITA as photographed, before faces/illumination.py), and
  ``ita_type_within1`` (``_raw``): the share within one type of the truth.
  ``ita_low_confidence``: crops whose correction found no usable reference.
* ``fg_iou_<backend>`` (ellipse, selfie, head): mean IoU of each photo
  foreground backend with ground-truth alpha over the kept crops that have alpha.
* ``per_fitzpatrick[T]`` (the table of :mod:`fairsplat.metrics.fairness`, all six
  types): eligible, selected, shortfall (balance's exact counts: no interval),
  ITA mean / median / std over the selected crops (measured type T), the
  detection rate of inputs of ground-truth type T, and, with ground truth, the type's ``ita_type_accuracy`` (recall of
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
from fairsplat.faces.landmarks import FLAGS
from fairsplat.labels import FITZPATRICK
from fairsplat.metrics.fairness import Stat, count, per_fitzpatrick
from fairsplat.sources.manifest import Record



def every_input(row: dict) -> bool:
    """Ground-truth figures are measured before balancing, over every input (see above)."""
    return True


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _raw_type(a: Analysis, scheme: str | None) -> str | None:
    from fairsplat.faces.skin_types import DEFAULT_SCHEME, fitzpatrick

    return None if a.ita_raw is None else fitzpatrick(float(np.clip(a.ita_raw, -90, 90)), scheme or DEFAULT_SCHEME)


def _within1(pred: str | None, truth: str | None) -> float | None:
    if not pred or not truth:
        return None
    return float(abs(FITZPATRICK.index(pred) - FITZPATRICK.index(truth)) <= 1)


def _ground_truth(pairs: Sequence[tuple[Record, Analysis]], scheme: str | None = None) -> dict[str, float | int | None]:
    """Accuracy and ITA error over items with ground truth and a measured type (raw beside corrected)."""
    typed = [(r, a) for r, a in pairs if a.fitzpatrick and r.fitzpatrick_gt]
    hits = [a.fitzpatrick == r.fitzpatrick_gt for r, a in typed]
    raw_hits = [_raw_type(a, scheme) == r.fitzpatrick_gt for r, a in typed]
    errs = [abs(a.ita - r.ita_gt) for r, a in pairs if a.fitzpatrick and r.ita_gt is not None]
    raw_errs = [abs(a.ita_raw - r.ita_gt) for r, a in pairs if a.fitzpatrick and r.ita_gt is not None and a.ita_raw is not None]
    return {"ita_type_accuracy": _mean(hits), "ita_type_accuracy_raw": _mean(raw_hits), "ita_type_n": len(hits),
            "ita_type_within1": _mean([_within1(a.fitzpatrick, r.fitzpatrick_gt) for r, a in typed]),
            "ita_type_within1_raw": _mean([_within1(_raw_type(a, scheme), r.fitzpatrick_gt) for r, a in typed]),
            "ita_mae": _mean(errs), "ita_mae_raw": _mean(raw_errs)}  # fmt: skip


FG_BACKENDS = ("ellipse", "selfie", "head")


def _table_rows(pairs: Sequence[tuple[Record, Analysis]], manifest: Sequence[dict], scheme: str | None = None) -> list[dict]:
    """One row per input: measured and true type, subject, kept or not, and what is scored."""
    fg = {m["image_id"]: m for m in manifest}
    rows = []
    for r, a in pairs:
        typed = bool(a.fitzpatrick and r.fitzpatrick_gt)
        raw = _raw_type(a, scheme) if typed else None
        m = fg.get(r.image_id, {})
        rows.append({
            "fitzpatrick": a.fitzpatrick, "fitzpatrick_gt": r.fitzpatrick_gt, "subject_id": r.subject_id, "ok": a.ok,
            "ita": a.ita, **{f"fg_iou_{k}": m.get(f"fg_iou_{k}") for k in FG_BACKENDS},
            "hit": float(a.fitzpatrick == r.fitzpatrick_gt) if typed else None,
            "hit_raw": float(raw == r.fitzpatrick_gt) if typed else None,
            "within1": _within1(a.fitzpatrick, r.fitzpatrick_gt) if typed else None,
            "within1_raw": _within1(raw, r.fitzpatrick_gt) if typed else None,
            "ita_err": abs(a.ita - r.ita_gt) if a.fitzpatrick and r.ita_gt is not None else None,
            "ita_err_raw": abs(a.ita_raw - r.ita_gt) if a.fitzpatrick and r.ita_gt is not None and a.ita_raw is not None else None,
            "detected": None if a.landmark_source in (None, "ground_truth") else float((a.n_faces or 0) > 0),
        })  # fmt: skip
    return rows


def _type_stats(type_stats: dict, ground_truth: bool) -> dict[str, Stat]:
    zero = {"eligible": 0, "selected": 0, "shortfall": 0}
    stats = {k: Stat(given={t: type_stats.get(t, zero)[k] for t in FITZPATRICK}) for k in zero}
    stats |= {"ita_mean": Stat(column="ita"), "ita_median": Stat(column="ita", agg=np.median),
              "ita_std": Stat(column="ita", agg=np.std)}  # fmt: skip
    if ground_truth:
        gt = dict(by="fitzpatrick_gt", where=every_input)
        stats |= {
            "ita_type_accuracy": Stat(column="hit", higher_is_better=True, **gt),
            "ita_type_accuracy_raw": Stat(column="hit_raw", higher_is_better=True, **gt),
            "ita_type_within1": Stat(column="within1", higher_is_better=True, **gt),
            "ita_type_within1_raw": Stat(column="within1_raw", higher_is_better=True, **gt),
            "ita_type_n": count(where=lambda r: r["hit"] is not None, by="fitzpatrick_gt"),
            "ita_mae": Stat(column="ita_err", higher_is_better=False, **gt),
            "ita_mae_raw": Stat(column="ita_err_raw", higher_is_better=False, **gt),
            "detection_rate": Stat(column="detected", higher_is_better=True, **gt),
            **{f"fg_iou_{k}": Stat(column=f"fg_iou_{k}", by="fitzpatrick_gt", higher_is_better=True) for k in FG_BACKENDS},
        }
    return stats


def _split_subjects(splits: Sequence[str]) -> dict[str, Stat]:
    """``subjects_<split>`` per type: how many different people of the type each split holds (issue 11:
    the generator needs many training identities, and per-type CIs need several held-out ones)."""

    def distinct(split: str):
        return lambda rows: len({r["subject_id"] for r in rows if r["split"] == split})

    return {f"subjects_{s}": Stat(reduce=distinct(s), ci=False) for s in splits}


def curate_metrics(
    records: Sequence[Record],
    analyses: Sequence[Analysis],  # final state: over_quota already applied
    eligible: int,
    type_stats: dict[str, dict[str, int]],
    split_of: dict[str, str],  # image_id -> split, selected items only
    splits: Sequence[str],
    manifest: Sequence[dict] = (),  # rows written (curate/tables.py)
    n_boot: int = 1000,
    scheme: str | None = None,  # the ITA scheme (raw types are re-derived under it)
    ita_method: str = "raw",
    fallback: str | None = None,  # why the detector fell back to dlib
) -> dict:
    total = len(records)
    reasons = Counter(a.reason for a in analyses if not a.ok)
    accepted = sum(a.ok for a in analyses)
    rejected = sum(reasons.values())
    assert accepted + rejected == total, (accepted, rejected, total)
    unknown = set(reasons) - set(REJECT_REASONS)
    assert not unknown, unknown
    detected = [a for a in analyses if a.landmark_source not in (None, "ground_truth")]
    out: dict = {"total": total, "accepted": accepted, "rejected": rejected, "eligible": eligible}
    out |= {f"reject_{r}": reasons.get(r, 0) for r in REJECT_REASONS}
    out["detection_rate"] = _mean([a.n_faces > 0 for a in detected])
    out["landmarks_backend"] = ", ".join(sorted({a.landmark_source for a in detected})) or None
    out["landmarks_fallback"] = fallback
    flags = Counter(f for a in analyses for f in a.face_flags)
    out |= {f"face_flag_{f}": flags.get(f, 0) for f in FLAGS}
    out["ita_method"] = ita_method
    out["ita_low_confidence"] = sum(a.ita_flag == "low_confidence" for a in analyses)
    out["landmarks_ground_truth"] = sum(a.landmark_source == "ground_truth" for a in analyses)
    out["multi_face"] = sum((a.n_faces or 0) > 1 for a in analyses)
    subj = {r.image_id: r.subject_id for r in records}
    for s in splits:
        ids = [i for i, sp in split_of.items() if sp == s]
        out[f"n_{s}"] = len(ids)
        out[f"subjects_{s}"] = len({subj[i] for i in ids})
    pairs = list(zip(records, analyses))
    out |= _ground_truth(pairs, scheme)
    for k in FG_BACKENDS:
        out[f"fg_iou_{k}"] = _mean([m[f"fg_iou_{k}"] for m in manifest if m.get(f"fg_iou_{k}") is not None])
    ground_truth = any(r.fitzpatrick_gt for r in records)
    rows = _table_rows(pairs, manifest, scheme)
    for row, r in zip(rows, records):
        row["split"] = split_of.get(r.image_id)
    stats = _type_stats(type_stats, ground_truth) | _split_subjects(splits)
    table = per_fitzpatrick(rows, stats, where=lambda r: r["ok"], types=FITZPATRICK, n_boot=n_boot)
    out["shortfall_total"] = sum(p["shortfall"] for p in table["per_fitzpatrick"].values())
    return out | table
