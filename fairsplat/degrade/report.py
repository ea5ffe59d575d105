"""Stage ``degrade``'s metrics and plots: how many pairs, and where the damage went.

The check that matters (issue 5): measured damage per region must follow
the configured strengths, mouth > eyes > hair > nose > skin. It is measured
on the pairs as written (uint8 PNGs), as mean absolute difference and as
SSIM loss inside each parsed region, averaged over measured pairs, overall and
per Fitzpatrick type. ``damage_order_ok_*`` is the strict ordering of those means.

Raw damage also depends on content: the same blur changes thin, dark brows
far more than flat lips or skin. ``effective_strength`` separates the two:
per region, total MAD of the pairs over total MAD of control pairs drawn
with the same seeds but every strength 1 (``run.py``). It estimates the
strength the pipeline really applied in each region (clipping, spill across
borders and step composition included) and is directly comparable with the
configured strengths; ``effective_order_ok`` is its ordering.

``per_fitzpatrick`` is the table of :mod:`fairsplat.metrics.fairness` (types
with pairs or rejects): ``pairs`` and ``rejected_images`` (exact counts), the
per-region dicts above (descriptive: no interval), and ``whole_crop_mad`` /
``whole_crop_ssim_loss`` with intervals that resample subjects (a crop's K
pairs, and a person's crops, move together; rows without ``subject_id`` fall
back to their crop). Damage is neither good nor bad, so no worst/best/gap.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fairsplat.degrade.registry import AUGMENTATIONS
from fairsplat.degrade.run import REGIONS
from fairsplat.io.atomic import atomic_path
from fairsplat.io.images import load_labels, load_rgb, save_png
from fairsplat.io.plots import grid
from fairsplat.metrics.fairness import Stat, count, per_fitzpatrick
from fairsplat.parse.plots import colourise

METRICS = ("mad", "ssim_loss")


def region_means(rows: Sequence[dict], metric: str) -> dict[str, float | None]:
    """Mean of ``<metric>_<region>`` over the rows that measured that region."""
    out = {}
    for r in REGIONS:
        vals = [row[f"{metric}_{r}"] for row in rows if row.get(f"{metric}_{r}") is not None]
        out[r] = round(float(np.mean(vals)), 5) if vals else None
    return out


def ordered(means: dict[str, float | None]) -> bool | None:
    """Strictly decreasing in REGIONS order (mouth > eyes > hair > nose > skin); None if a region is missing."""
    vals = [means[r] for r in REGIONS]
    if any(v is None for v in vals):
        return None
    return all(a > b for a, b in zip(vals, vals[1:]))


def effective_strength(rows: Sequence[dict]) -> dict[str, float | None]:
    """Per region: sum of MAD over sum of the control's MAD (every strength 1), on rows that have both."""
    out = {}
    for r in REGIONS:
        pairs = [(row[f"mad_{r}"], row[f"mad_full_{r}"]) for row in rows
                 if row.get(f"mad_{r}") is not None and row.get(f"mad_full_{r}") is not None]  # fmt: skip
        den = sum(b for _, b in pairs)
        out[r] = round(sum(a for a, _ in pairs) / den, 4) if den > 0 else None
    return out


def _damage(rows: Sequence[dict]) -> dict:
    out: dict = {}
    for m in METRICS:
        means = region_means(rows, m)
        out[f"damage_{m}"] = means
        out[f"damage_order_ok_{m}"] = ordered(means)
    eff = effective_strength(rows)
    out["effective_strength"] = eff
    out["effective_order_ok"] = ordered(eff)
    return out


def _measured(r: dict) -> bool:
    return not r["rejected"] and r["mad"] is not None


def _descriptive(fn) -> Stat:
    """A per-region dict or an ordering flag of the measured pairs: reported, not bootstrapped."""
    return Stat(reduce=fn, ci=False, where=_measured)


TYPE_STATS: dict[str, Stat] = {
    "pairs": count(),
    "rejected_images": count(where=lambda r: r["rejected"]),
    **{f"damage_{m}": _descriptive(lambda rs, m=m: region_means(rs, m)) for m in METRICS},
    **{f"damage_order_ok_{m}": _descriptive(lambda rs, m=m: ordered(region_means(rs, m))) for m in METRICS},
    "effective_strength": _descriptive(effective_strength),
    "effective_order_ok": _descriptive(lambda rs: ordered(effective_strength(rs))),
    "whole_crop_mad": Stat(column="mad"),
    "whole_crop_ssim_loss": Stat(column="ssim_loss"),
}


def per_type(rows: list[dict], rejects: list[dict], n_boot: int = 1000) -> dict:
    """The per-Fitzpatrick table over pairs (population) and reject rows (``rejected_images``)."""
    table = [{**r, "subject_id": r.get("subject_id") or r["image_id"], "rejected": False} for r in rows]
    table += [{**r, "subject_id": r.get("subject_id") or r["image_id"], "rejected": True, "mad": None} for r in rejects]
    return per_fitzpatrick(table, TYPE_STATS, where=lambda r: not r["rejected"], n_boot=n_boot, digits=5)


def degrade_metrics(
    n_jobs: int, rows: list[dict], rejects: list[dict], seconds: float, k: int, workers: int, strengths: dict,
    n_boot: int = 1000,
) -> dict:  # fmt: skip
    accepted = len({r["image_id"] for r in rows})
    assert accepted + len(rejects) == n_jobs, (accepted, len(rejects), n_jobs)
    measured = [r for r in rows if r["mad"] is not None]
    aug = Counter(a for r in rows for a in r["augmentations"])
    return {
        "images_total": n_jobs,
        "images_accepted": accepted,
        "images_rejected": len(rejects),
        "rejected_by_reason": dict(sorted(Counter(r["reason"] for r in rejects).items())),
        "k": k,
        "pairs": len(rows),
        "pairs_measured": len(measured),
        "workers": workers,
        "pairs_per_s": round(len(rows) / seconds, 2) if seconds > 0 and rows else None,
        "steps_per_pair": round(float(np.mean([len(r["steps"]) for r in rows])), 3) if rows else None,
        "augmentation_rate": {a: round(aug[a] / len(rows), 4) if rows else None for a in AUGMENTATIONS},
        "damage_order": " > ".join(REGIONS),
        "configured_strength": {r: strengths[r] for r in REGIONS},
        **_damage(measured),
        "whole_crop_mad": round(float(np.mean([r["mad"] for r in measured])), 5) if measured else None,
        "whole_crop_ssim_loss": round(float(np.mean([r["ssim_loss"] for r in measured])), 5) if measured else None,
        **per_type(rows, rejects, n_boot),
    }


def write_plots(rows: list[dict], out: Path, plots: Path, k_shown: int = 2) -> None:
    """``pairs.png``: per type (first crop of each), clean | degraded k0.. | region mask; ``damage.csv``."""
    plots.mkdir(parents=True, exist_ok=True)
    first: dict[str, str] = {}
    for r in rows:
        first.setdefault(r["fitzpatrick"] or "?", r["image_id"])
    panels = []
    for t, image_id in first.items():
        mine = sorted((r for r in rows if r["image_id"] == image_id), key=lambda r: r["pair_index"])
        deg = [load_rgb(out / r["degraded_path"]) for r in mine[:k_shown]]
        panels.append([load_rgb(out / mine[0]["clean_path"]), *deg, colourise(load_labels(out / mine[0]["mask_path"]))])
    if panels:
        heads = ["clean"] + [f"degraded k{i}" for i in range(len(panels[0]) - 2)] + ["regions"]
        save_png(plots / "pairs.png", grid(panels, headers=heads))
    measured = [r for r in rows if r["mad"] is not None]
    with atomic_path(plots / "damage.csv", suffix=".csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["region", *METRICS, "effective_strength"])
        means = {m: region_means(measured, m) for m in METRICS}
        means["effective_strength"] = effective_strength(measured)
        for r in REGIONS:
            w.writerow([r, *(means[m][r] if means[m][r] is not None else "" for m in means)])
