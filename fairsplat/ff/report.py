"""``metrics/train_ff.json`` and the per-type grids of stage ``train_ff``.

Flat keys ``<variant>_k<K>_<metric>`` (variant ``ff`` or ``baseline``; metric
psnr, ssim, lpips_alex, each also ``_masked``; delta_ita) are means over
every held-out (subject, target) row; ``gain_k<K>_<metric>`` is ff minus
baseline. ``per_fitzpatrick`` (``fairsplat.metrics.fairness``, bootstrap over
subjects) holds the generator at K = 1 (the table's population), its K = 2
PSNR, the baseline's numbers and the per-type masked-PSNR gain with its CI.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from fairsplat.ff.data import gather
from fairsplat.ff.evaluate import IMAGE_METRICS, mean_of
from fairsplat.ff.render import render_targets
from fairsplat.labels import FITZPATRICK
from fairsplat.metrics.fairness import Stat, per_fitzpatrick

HIGHER = {"psnr": True, "ssim": True, "lpips_alex": False}


def _sel(variant: str, k: int):
    return lambda r: r["variant"] == variant and r["k"] == k


def _gain(metric: str, k: int):
    def f(rows: Sequence[dict]) -> float | None:
        a = mean_of([r for r in rows if _sel("ff", k)(r)], metric)
        b = mean_of([r for r in rows if _sel("baseline", k)(r)], metric)
        return None if a is None or b is None else a - b

    return f


def flat_means(rows: Sequence[dict], ks: Sequence[int]) -> dict:
    out: dict = {}
    metrics = [m + s for m in IMAGE_METRICS for s in ("", "_masked")] + ["delta_ita"]
    for k in ks:
        for variant in ("ff", "baseline"):
            sel = [r for r in rows if _sel(variant, k)(r)]
            out |= {f"{variant}_k{k}_{m}": mean_of(sel, m) for m in metrics}
        for m in metrics[:-1]:
            a, b = out[f"ff_k{k}_{m}"], out[f"baseline_k{k}_{m}"]
            out[f"gain_k{k}_{m}"] = None if a is None or b is None else a - b
    return out


def type_table(rows: Sequence[dict], ks: Sequence[int], n_boot: int = 1000) -> dict:
    k0 = ks[0]
    stats: dict[str, Stat] = {}
    for m, up in HIGHER.items():
        for s in ("", "_masked"):
            stats[m + s] = Stat(column=m + s, higher_is_better=up)
            stats[f"baseline_{m}{s}"] = Stat(column=m + s, higher_is_better=up, where=_sel("baseline", k0))
    for k in ks[1:]:
        stats[f"k{k}_psnr_masked"] = Stat(column="psnr_masked", higher_is_better=True, where=_sel("ff", k))
    stats["gain_psnr_masked"] = Stat(reduce=_gain("psnr_masked", k0), higher_is_better=True, where=lambda r: r["k"] == k0)
    stats["delta_ita"] = Stat(column="delta_ita")
    stats["abs_delta_ita"] = Stat(reduce=lambda rs: mean_of([{"v": abs(r["delta_ita"])} for r in rs
                                                            if r.get("delta_ita") is not None], "v"),
                                  higher_is_better=False)  # fmt: skip
    return per_fitzpatrick(rows, stats, where=_sel("ff", k0), n_boot=n_boot, digits=4)


def metrics(rows: Sequence[dict], ks: Sequence[int], info: dict, frames, subjects, short) -> dict:
    types = Counter(frames.subject_type(s) for s in subjects)
    held = {r["subject_id"] for r in rows}
    out = {
        "train_identities": len(subjects),
        "train_identities_per_type": {t: types.get(t, 0) for t in FITZPATRICK},
        "heldout_subjects": len(held), "heldout_subjects_unscored": len(short),
        "heldout_targets": sum(1 for r in rows if _sel("ff", ks[0])(r)),
        "skipped_crops": frames.skipped, **info, **flat_means(rows, ks),
    }  # fmt: skip
    return out | type_table(rows, ks)


@torch.no_grad()
def write_grids(model, baseline, frames, binding, rows: Sequence[dict], out_dir: Path, size: int, backend: str) -> None:
    """``grid_<type>.png``: source | target | generator | baseline, two held-out subjects per type."""
    from fairsplat.io.images import save_png
    from fairsplat.io.plots import grid

    out_dir.mkdir(parents=True, exist_ok=True)
    index = {i: n for n, i in enumerate(frames.ids)}
    for t in FITZPATRICK:
        picks = [r for r in rows if r["fitzpatrick"] == t and _sel("ff", 1)(r)]
        seen, chosen = set(), []
        for r in picks:
            if r["subject_id"] not in seen:
                seen.add(r["subject_id"])
                chosen.append(r)
        panels = []
        for r in chosen[:2]:
            batch = gather(frames, [[index[r["source_ids"][0]]]], [index[r["target_id"]]])
            points = binding.canonical(batch["shape"])
            row = [batch["sources"][0, 0], batch["target"][0]]
            for net in (model, baseline):
                rgb, _, _ = render_targets(binding, net(batch["sources"], points), batch, size, backend)
                row.append(rgb[0].clamp(0, 1))
            panels.append([x.permute(1, 2, 0).numpy() for x in row])  # float in [0, 1]
        if panels:
            save_png(out_dir / f"grid_{t}.png", grid(panels, headers=["source", "target", "generator", "baseline"]))
