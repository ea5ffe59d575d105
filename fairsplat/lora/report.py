"""``metrics/lora.json``: does the adapter close the per-type gap the skewed base leaves?

Variants: ``base`` (models/ff), ``lora`` (base + adapter), ``fullft`` (every
parameter fine-tuned on the same balanced data), ``balanced`` (a generator
trained balanced from the start: the reference). Per type, with bootstrap CIs
over subjects (``fairsplat.metrics.fairness``):

- each variant's PSNR / SSIM / LPIPS (masked) and ΔITA of the rendered skin;
- **deficit** against the reference, for PSNR (balanced - variant, dB) and LPIPS
  (variant - balanced): positive = worse than training balanced from the start,
  so PSNR's intensity scale (the same relative error is a smaller absolute one on
  darker skin) cancels out of the comparison;
- ``change_psnr_masked``: lora - base per type (a paired difference, same rows).

Flat: means per variant, the raw worst-to-best PSNR gap per variant, and for the
**rare types** (share below uniform in train_ff's ``type_mix``): the summed base
deficit, the summed LoRA deficit, and ``recovery`` = 1 - lora / base (the share
of the rare types' deficit the adapter recovers), plus whether each base deficit's
CI excludes 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from fairsplat.ff.evaluate import mean_of
from fairsplat.labels import FITZPATRICK
from fairsplat.metrics.fairness import Stat, per_fitzpatrick

METRICS = {"psnr_masked": True, "ssim_masked": True, "lpips_alex_masked": False}


def _of(variant: str):
    return lambda r: r["variant"] == variant


def _diff(metric: str, a: str, b: str):
    """mean_a - mean_b over the type's rows (both variants scored on the same targets)."""

    def f(rows: Sequence[dict]) -> float | None:
        x, y = mean_of([r for r in rows if r["variant"] == a], metric), mean_of([r for r in rows if r["variant"] == b], metric)
        return None if x is None or y is None else x - y

    return f


def _stats(variants: Sequence[str]) -> dict[str, Stat]:
    every = lambda r: True  # noqa: E731
    stats: dict[str, Stat] = {}
    for v in variants:
        for m, up in METRICS.items():
            stats[f"{v}_{m}"] = Stat(column=m, higher_is_better=up, where=_of(v))
        stats[f"{v}_delta_ita"] = Stat(column="delta_ita", where=_of(v))
    if "balanced" in variants:
        for v in (x for x in variants if x != "balanced"):
            stats[f"{v}_deficit_psnr_masked"] = Stat(reduce=_diff("psnr_masked", "balanced", v), higher_is_better=False,
                                                     where=every)  # fmt: skip
            stats[f"{v}_deficit_lpips_alex_masked"] = Stat(reduce=_diff("lpips_alex_masked", v, "balanced"),
                                                           higher_is_better=False, where=every)  # fmt: skip
    stats["change_psnr_masked"] = Stat(reduce=_diff("psnr_masked", "lora", "base"), higher_is_better=True, where=every)
    return stats


def rare_types(type_mix: dict[str, float] | None) -> list[str]:
    """Types whose share of the base's training identities was below uniform."""
    if not type_mix:
        return []
    total = sum(type_mix.values())
    return [t for t in FITZPATRICK if type_mix.get(t, 0.0) / total < 1.0 / len(FITZPATRICK) - 1e-9]


def recovery(per: dict, rare: Sequence[str]) -> dict:
    """Summed rare-type PSNR deficits of base and LoRA, and the share LoRA recovers."""
    base = [per[t].get("base_deficit_psnr_masked") for t in rare if t in per]
    lora = [per[t].get("lora_deficit_psnr_masked") for t in rare if t in per]
    if not base or any(x is None for x in base + lora):
        return {"rare_types": list(rare), "rare_deficit_base": None, "rare_deficit_lora": None, "recovery": None}
    sb, sl = sum(base), sum(lora)
    significant = {t: (per[t].get("base_deficit_psnr_masked_ci") or [None])[0] for t in rare if t in per}
    return {"rare_types": list(rare), "rare_deficit_base": sb, "rare_deficit_lora": sl,
            "recovery": (1.0 - sl / sb) if sb > 0 else None,
            "rare_deficit_significant": {t: lo is not None and lo > 0 for t, lo in significant.items()}}  # fmt: skip


def lora_metrics(rows: Sequence[dict], type_mix: dict | None, info: dict, n_boot: int = 1000) -> dict:
    variants = [v for v in ("base", "lora", "fullft", "balanced") if any(r["variant"] == v for r in rows)]
    out = dict(info)
    for v in variants:
        sel = [r for r in rows if r["variant"] == v]
        out |= {f"{v}_{m}": mean_of(sel, m) for m in (*METRICS, "delta_ita")}
    out["change_mean_psnr_masked"] = (out["lora_psnr_masked"] - out["base_psnr_masked"]
                                      if out.get("lora_psnr_masked") is not None else None)  # fmt: skip
    table = per_fitzpatrick(rows, _stats(variants), where=_of("lora"), n_boot=n_boot, digits=4)
    per = table["per_fitzpatrick"]
    for v in variants:  # the raw worst-to-best gap, beside the deficit (it mixes bias with pixel intensity)
        vals = [per[t][f"{v}_psnr_masked"] for t in per if per[t].get(f"{v}_psnr_masked") is not None]
        out[f"{v}_psnr_masked_gap"] = max(vals) - min(vals) if len(vals) > 1 else None
    if "balanced" in variants:
        out |= recovery(per, rare_types(type_mix))
    return out | table
