"""``metrics/train_enhancer.json`` and the plots of stage ``train_enhancer``.

Flat keys are means over every held-out pair: ``<metric>`` (enhanced),
``<metric>_input`` (the degraded input), ``<metric>_gain`` (positive = the
enhancer helps; fairsplat/enhancer/evaluate.py). ``per_fitzpatrick`` is THE
per-type table (``fairsplat.metrics.fairness``: bootstrap over subjects).
``per_family`` and ``per_region`` hold the same numbers for the pairs where a
step family fired and inside each region, with a subject-bootstrap interval on
every gain and a verdict: ``helps`` (the interval is above 0), ``hurts`` (below
0) or ``unclear``. ``floor_*`` are the issue's floors, checked on these numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from fairsplat.enhancer.scores import IMAGE_METRICS, REGION_METRICS, REGIONS
from fairsplat.enhancer.tables import group_block, higher_is_better, mean_of
from fairsplat.labels import FITZPATRICK
from fairsplat.metrics.fairness import Stat, clean, per_fitzpatrick

FAMILY_NAMES = ("blur", "colour", "geometry", "splat")
ITA_FLOOR = 3.0
"""Issue 14: skin |ΔITA| of the enhanced output against clean <= 3 degrees in every type."""


def flat_means(rows: Sequence[dict]) -> dict:
    out = {}
    for m in (*IMAGE_METRICS, *(f"{m}_masked" for m in IMAGE_METRICS), "abs_delta_ita"):
        for suffix in ("", "_input", "_gain"):
            out[m + suffix] = clean(mean_of(rows, m + suffix), 4)
    out["delta_ita"], out["delta_ita_input"] = clean(mean_of(rows, "delta_ita"), 4), clean(mean_of(rows, "delta_ita_input"), 4)
    return out


def type_table(rows: Sequence[dict], n_boot: int = 1000) -> dict:
    stats: dict[str, Stat] = {}
    for m in (*IMAGE_METRICS, *(f"{m}_masked" for m in IMAGE_METRICS)):
        stats[m] = Stat(column=m, higher_is_better=higher_is_better(m))
        stats[f"{m}_input"] = Stat(column=f"{m}_input")
        stats[f"{m}_gain"] = Stat(column=f"{m}_gain", higher_is_better=True)
    stats["delta_ita"] = Stat(column="delta_ita")
    stats["delta_ita_input"] = Stat(column="delta_ita_input")
    stats["abs_delta_ita"] = Stat(column="abs_delta_ita", higher_is_better=False)
    stats["abs_delta_ita_input"] = Stat(column="abs_delta_ita_input")
    return per_fitzpatrick(rows, stats, n_boot=n_boot, digits=4)


def family_table(rows: Sequence[dict], n_boot: int = 1000) -> dict:
    return {f: group_block([r for r in rows if f in (r.get("families") or [])], IMAGE_METRICS, n_boot, 100 + i)
            for i, f in enumerate(FAMILY_NAMES)}  # fmt: skip


def region_table(rows: Sequence[dict], n_boot: int = 1000) -> dict:
    out = {}
    for i, reg in enumerate(REGIONS):
        cols = [f"{m}_{reg}" for m in REGION_METRICS]
        block = group_block([r for r in rows if r.get(cols[0]) is not None], cols, n_boot, 200 + i)
        out[reg] = {k.replace(f"_{reg}", ""): v for k, v in block.items()}  # psnr, psnr_input, psnr_gain, ...
    return out


def floors(per: dict, flat: dict) -> dict:
    """The issue's floors on the default run's held-out pairs (None where a number is missing)."""

    def every(key: str, ok: Callable[[float], bool]) -> bool | None:
        vals = [b.get(key) for b in per.values()]
        return None if not vals or any(v is None for v in vals) else all(ok(v) for v in vals)

    lp, lp_in = flat.get("lpips_alex"), flat.get("lpips_alex_input")
    return {
        "floor_psnr_every_type": every("psnr_gain", lambda v: v > 0),
        "floor_ssim_every_type": every("ssim_gain", lambda v: v > 0),
        "floor_lpips_overall": None if lp is None or lp_in is None else lp < lp_in,
        "floor_abs_delta_ita_every_type": every("abs_delta_ita", lambda v: v <= ITA_FLOOR),
    }


def metrics(rows: Sequence[dict], info: dict, n_boot: int = 1000) -> dict:
    flat = flat_means(rows)
    table = type_table(rows, n_boot)
    held = {r.get("subject_id") for r in rows}
    out = {"pairs_heldout": len(rows), "heldout_subjects": len(held), **info, **flat}
    out |= floors(table["per_fitzpatrick"], flat)
    out |= {"per_family": family_table(rows, n_boot), "per_region": region_table(rows, n_boot)}
    return out | table


def renamed(block: dict, suffix: str) -> dict:
    """A per-type block whose ``<m><suffix>`` numbers are read as ``<m>`` (for a second bar series)."""
    return {t: {k.removesuffix(suffix): v for k, v in b.items() if suffix in k} for t, b in block.items()}


def write_plots(m: dict, model, pairs, rows: Sequence[dict], out_dir: Path, per_type: int = 2) -> None:
    """Per-type bars (input vs enhanced, CIs) and ``grid.png``: degraded | enhanced | clean, ``per_type`` pairs a type."""
    import torch

    from fairsplat.enhancer.data import batch_of
    from fairsplat.io.images import save_png
    from fairsplat.io.plots import bar_chart, grid

    out_dir.mkdir(parents=True, exist_ok=True)
    per = m.get("per_fitzpatrick") or {}
    if per:
        for metric, label in (("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("lpips_alex", "LPIPS (AlexNet)"),
                              ("abs_delta_ita", "|ΔITA| vs clean (deg)")):  # fmt: skip
            series = {"degraded input": renamed(per, "_input"), "enhanced": per}
            bar_chart(series, metric, out_dir / f"{metric}_per_type.png", ylabel=label,
                      title=f"held-out pairs: {label} per Fitzpatrick type")  # fmt: skip
    index = {p: i for i, p in enumerate(pairs.pair_ids)}
    panels, labels = [], []
    for t in FITZPATRICK:
        seen: set = set()
        for r in rows:
            if r["fitzpatrick"] == t and r["subject_id"] not in seen and len(seen) < per_type:
                seen.add(r["subject_id"])
                b = batch_of(pairs, [index[r["pair_id"]]])
                with torch.no_grad():
                    enh = model(b["degraded"]).float().clamp(0, 1)
                panels.append([x[0].permute(1, 2, 0).numpy() for x in (b["degraded"], enh, b["clean"])])
                labels.append(t)
    if panels:
        save_png(out_dir / "grid.png", grid(panels, headers=["degraded", "enhanced", "clean"], row_labels=labels))

