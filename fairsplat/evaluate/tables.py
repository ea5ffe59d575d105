"""Stage ``evaluate``'s tables: ``data/eval/*.parquet``, ``metrics/evaluate.json`` and the per-type tables.

Rows in memory are wide, one per (variant, protocol, subject, target or driver
crop) with a column per metric; on disk they are long, one per (variant,
subject, frame, metric), with ``status`` saying why a value is null
(``SCORES_SCHEMA``).

``metrics/evaluate.json`` (flat, for ``dvc metrics diff``):

- ``variants``: name -> ``"present"`` or ``"absent: <reason>"``; ``absent``:
  every (variant or metric) -> reason, so every metric named in the README is
  present or absent with a reason;
- ``<variant>_<metric>``: the mean over every scored row of that variant
  (metrics in ``SELF_COLUMNS`` and ``CROSS_COLUMNS``; ``cross_`` prefix on the
  cross-reenactment ΔITA); ``<variant>_no_face_rate`` (cross outputs where no
  face was found: counted, never scored), ``<variant>_retrack_failed_subjects``;
- ``per_fitzpatrick``: every one of those per type through
  :func:`fairsplat.metrics.fairness.per_fitzpatrick` (bootstrap CIs over
  subjects, ``<stat>_worst_type`` / ``_best_type`` / ``_gap`` / ``_ratio``),
  plus the paired comparisons ``<a>_vs_<b>_<metric>`` (mean of a - b over the
  rows both variants scored: the same subjects and targets).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa

from fairsplat.evaluate.score import CROSS_COLUMNS, SELF_COLUMNS
from fairsplat.evaluate.variants import ENHANCED
from fairsplat.labels import FITZPATRICK
from fairsplat.metrics.fairness import Stat, per_fitzpatrick

HIGHER: dict[str, bool | None] = {
    "psnr": True, "psnr_masked": True, "ssim": True, "ssim_masked": True, "lpips_alex": False,
    "lpips_alex_masked": False, "lpips_vgg": False, "lpips_vgg_masked": False, "delta_ita": None,
    "abs_delta_ita": False, "csim": True, "aed": False, "apd": False, "akd": False,
}  # fmt: skip
"""Direction of each row metric (None: signed, descriptive: no worst type)."""
UNITS = {"psnr": "dB", "delta_ita": "deg", "abs_delta_ita": "deg", "apd": "rad", "akd": "px"}
PAIRED = {"psnr_masked": "self", "lpips_alex_masked": "self", "abs_delta_ita": "self", "csim": "cross", "aed": "cross"}
"""Metrics compared variant against variant on shared rows, and the protocol they come from."""
HEADLINE = ("psnr_masked", "lpips_alex_masked", "delta_ita", "csim", "aed", "apd", "akd")

SCORES_SCHEMA = pa.schema([
    ("variant", pa.string()), ("protocol", pa.string()), ("subject_id", pa.string()), ("fitzpatrick", pa.string()),
    ("frame", pa.string()), ("driver_subject", pa.string()), ("metric", pa.string()), ("value", pa.float64()),
    ("status", pa.string()),
])  # fmt: skip
"""``data/eval/scores.parquet``: one row per (variant, protocol, subject, frame, metric). ``frame`` is the
target crop (self) or the driver crop (cross); ``value`` is null when ``status`` is not ``ok`` (``no_face``,
``driver_no_face``, ``source_no_face``, ``no_skin``, ``not_scored: ...``, ``absent: ...``)."""
VARIANTS_SCHEMA = pa.schema([
    ("variant", pa.string()), ("base", pa.string()), ("enhanced", pa.bool_()), ("present", pa.bool_()),
    ("reason", pa.string()), ("subjects", pa.int32()), ("self_rows", pa.int32()), ("cross_rows", pa.int32()),
])  # fmt: skip
"""``data/eval/variants.parquet``: every variant asked for, present or not, and why."""
UNSCORED_SCHEMA = pa.schema([("variant", pa.string()), ("subject_id", pa.string()), ("fitzpatrick", pa.string()),
                             ("reason", pa.string())])  # fmt: skip
"""``data/eval/unscored.parquet``: subjects a variant did not score (no target, not refined, re-tracking failed)."""


def _cross_key(m: str) -> str:
    return f"cross_{m}" if m in ("delta_ita", "abs_delta_ita") else m


def row_metrics(protocol: str) -> tuple[str, ...]:
    return (*SELF_COLUMNS, "abs_delta_ita") if protocol == "self" else (*CROSS_COLUMNS, "abs_delta_ita")


def status_of(row: dict, metric: str, reasons: dict[str, str]) -> str:
    """Why ``row[metric]`` is null (or ``ok``)."""
    if row.get(metric) is not None:
        return "ok"
    if metric in reasons:
        return reasons[metric]
    if row["protocol"] == "cross" and metric not in ("delta_ita", "abs_delta_ita"):
        if not row.get("face"):
            return "no_face"
        if metric == "csim":
            return "source_no_face"
        return "driver_no_face"
    if "delta_ita" in metric:
        return "no_skin: fewer than 50 skin pixels in the output or the source"
    if metric.startswith("lpips_vgg"):
        return "not_scored: beyond evaluate.lpips-vgg-targets"
    return "undefined"


def long_rows(rows: Sequence[dict], reasons: dict[str, str]) -> list[dict]:
    out = []
    for r in rows:
        frame = r.get("target_id") if r["protocol"] == "self" else r.get("driver_id")
        for m in row_metrics(r["protocol"]):
            v = r.get(m)
            out.append({"variant": r["variant"], "protocol": r["protocol"], "subject_id": r["subject_id"],
                        "fitzpatrick": r["fitzpatrick"], "frame": frame, "driver_subject": r.get("driver_subject"),
                        "metric": m, "value": None if v is None else float(v),
                        "status": status_of(r, m, reasons)})  # fmt: skip
    return out


def _of(variant: str, protocol: str) -> Callable[[dict], bool]:
    return lambda r: r["variant"] == variant and r["protocol"] == protocol


def _mean(rows: Sequence[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])]
    return float(np.mean(vals)) if vals else None


def _no_face_rate(rows: Sequence[dict]) -> float | None:
    return float(np.mean([not r["face"] for r in rows])) if rows else None


def _retrack_failed(rows: Sequence[dict]) -> int:
    """Subjects none of whose outputs could be re-tracked (no face found in any)."""
    by: dict[str, bool] = {}
    for r in rows:
        by[r["subject_id"]] = by.get(r["subject_id"], False) or bool(r["face"])
    return sum(not ok for ok in by.values())


def _key(r: dict) -> tuple:
    return r["protocol"], r["subject_id"], r.get("target_id"), r.get("driver_id")


def _paired(a: str, b: str, metric: str, protocol: str, index: dict[tuple, dict[str, float]]):
    """mean(a - b) over the drawn rows of ``a`` that ``b`` also scored (same protocol, subject and crop).

    Rows of a subject drawn twice by the bootstrap count twice (the index is global, not per draw)."""

    def f(rows: Sequence[dict]) -> float | None:
        d = [r[metric] - index[_key(r)][b] for r in rows
             if r["variant"] == a and r["protocol"] == protocol and r.get(metric) is not None
             and index.get(_key(r), {}).get(b) is not None]  # fmt: skip
        return float(np.mean(d)) if d else None

    return f


def comparisons(present: Sequence[str]) -> list[tuple[str, str]]:
    """(a, b) pairs compared: lora and refined against ff, and each enhanced variant against its base."""
    out = [(a, "ff") for a in ("lora", "refined") if a in present and "ff" in present]
    return out + [(v, v[: -len(ENHANCED)]) for v in present if v.endswith(ENHANCED) and v[: -len(ENHANCED)] in present]


def type_stats(rows: Sequence[dict], present: Sequence[str]) -> dict[str, Stat]:
    stats: dict[str, Stat] = {}
    for v in present:
        stats[f"{v}_n_subjects"] = Stat(reduce=lambda rs: len({r["subject_id"] for r in rs}), ci=False,
                                        where=lambda r, v=v: r["variant"] == v)  # fmt: skip
        for proto in ("self", "cross"):
            for m in row_metrics(proto):
                key = m if proto == "self" else _cross_key(m)
                stats[f"{v}_{key}"] = Stat(column=m, higher_is_better=HIGHER[m], where=_of(v, proto))
        stats[f"{v}_no_face_rate"] = Stat(reduce=_no_face_rate, higher_is_better=False, where=_of(v, "cross"))
        stats[f"{v}_retrack_failed_subjects"] = Stat(reduce=_retrack_failed, ci=False, where=_of(v, "cross"))
    index: dict[str, dict[tuple, dict[str, float]]] = {m: {} for m in PAIRED}
    for r in rows:
        for m, proto in PAIRED.items():
            if r["protocol"] == proto and r.get(m) is not None:
                index[m].setdefault(_key(r), {})[r["variant"]] = r[m]
    for a, b in comparisons(present):
        for m, proto in PAIRED.items():
            stats[f"{a}_vs_{b}_{m}"] = Stat(reduce=_paired(a, b, m, proto, index[m]), higher_is_better=HIGHER[m],
                                            where=lambda r: True)  # fmt: skip
    return stats


def flat(rows: Sequence[dict], present: Sequence[str]) -> dict:
    out: dict = {}
    for v in present:
        for proto in ("self", "cross"):
            sel = [r for r in rows if _of(v, proto)(r)]
            for m in row_metrics(proto):
                out[f"{v}_{m if proto == 'self' else _cross_key(m)}"] = _mean(sel, m)
        cross = [r for r in rows if _of(v, "cross")(r)]
        out[f"{v}_no_face_rate"] = _no_face_rate(cross)
        out[f"{v}_retrack_failed_subjects"] = _retrack_failed(cross)
    return out


def evaluate_metrics(rows: Sequence[dict], present: Sequence[str], info: dict, n_boot: int, seed: int) -> dict:
    """``metrics/evaluate.json``: info, flat means, and the per-type table with its summaries."""
    table = per_fitzpatrick(rows, type_stats(rows, present), types=FITZPATRICK, n_boot=n_boot, seed=seed, digits=4)
    return info | flat(rows, present) | table


def split_series(per: dict, names: Sequence[str], key: Callable[[str], str], metric: str) -> dict[str, dict]:
    """``{name: per_fitzpatrick-shaped block of metric}`` from keys ``key(name)`` (for bar charts and plot data)."""
    out = {}
    for n in names:
        k = key(n)
        block = {t: {metric: row.get(k), f"{metric}_ci": row.get(f"{k}_ci")} for t, row in per.items()}
        if any(b[metric] is not None for b in block.values()):
            out[n] = block
    return out


def plot_records(per: dict, series: dict[str, dict], metric: str) -> list[dict]:
    """Rows of a DVC plot data file: metric, series, fitzpatrick, value, lo, hi."""
    out = []
    for name, block in series.items():
        for t in FITZPATRICK:
            cell = block.get(t) or {}
            ci = cell.get(f"{metric}_ci") or [None, None]
            out.append({"metric": metric, "series": name, "fitzpatrick": t, "value": cell.get(metric),
                        "lo": ci[0], "hi": ci[1]})  # fmt: skip
    return out
