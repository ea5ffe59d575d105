"""``metrics/train_ff.json`` and the per-type grids of stage ``train_ff``.

Flat keys ``<variant>_k<K>_<metric>`` (variant ``ff`` = the stage's generator,
``balanced`` = the type-balanced reference, ``baseline`` = the constant avatar;
metric psnr, ssim, lpips_alex, each also ``_masked``; delta_ita) are means over
every held-out (subject, target) row; ``gain_k<K>_<metric>`` is ff minus
baseline. ``per_fitzpatrick`` (``fairsplat.metrics.fairness``, bootstrap over
subjects) holds the generator at the first K (the table's population), its
PSNR at the other Ks, the baseline and the reference, the per-type masked-PSNR
gain over the baseline, and the **deficit** against the balanced reference
(issue 12): ``deficit_psnr_masked`` = balanced - ff (dB) and
``deficit_lpips_alex_masked`` = ff - balanced, so a positive deficit always
means the skewed generator is worse on that type than one trained balanced.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from fairsplat.ff.data import gather
from fairsplat.ff.evaluate import IMAGE_METRICS, mean_of
from fairsplat.ff.render import render_targets
from fairsplat.ff.uv_context import predict
from fairsplat.labels import FITZPATRICK
from fairsplat.metrics.fairness import Stat, per_fitzpatrick

HIGHER = {"psnr": True, "ssim": True, "lpips_alex": False}
VARIANTS = ("ff", "balanced", "baseline")


def _sel(variant: str, k: int):
    return lambda r: r["variant"] == variant and r["k"] == k


def _difference(metric: str, k: int, a: str, b: str):
    """Per-type mean of variant ``a`` minus that of ``b`` (same held-out rows), for a bootstrap over subjects."""

    def f(rows: Sequence[dict]) -> float | None:
        x, y = mean_of([r for r in rows if _sel(a, k)(r)], metric), mean_of([r for r in rows if _sel(b, k)(r)], metric)
        return None if x is None or y is None else x - y

    return f


def flat_means(rows: Sequence[dict], ks: Sequence[int]) -> dict:
    out: dict = {}
    metrics = [m + s for m in IMAGE_METRICS for s in ("", "_masked")] + ["delta_ita"]
    present = [v for v in VARIANTS if any(r["variant"] == v for r in rows)]
    for k in ks:
        for variant in present:
            sel = [r for r in rows if _sel(variant, k)(r)]
            out |= {f"{variant}_k{k}_{m}": mean_of(sel, m) for m in metrics}
        for m in metrics[:-1]:
            a, b = out[f"ff_k{k}_{m}"], out[f"baseline_k{k}_{m}"]
            out[f"gain_k{k}_{m}"] = None if a is None or b is None else a - b
    return out


def type_table(rows: Sequence[dict], ks: Sequence[int], n_boot: int = 1000) -> dict:
    k0, balanced = ks[0], any(r["variant"] == "balanced" for r in rows)
    stats: dict[str, Stat] = {}
    for m, up in HIGHER.items():
        for s in ("", "_masked"):
            stats[m + s] = Stat(column=m + s, higher_is_better=up)
            stats[f"baseline_{m}{s}"] = Stat(column=m + s, higher_is_better=up, where=_sel("baseline", k0))
            if balanced:
                stats[f"balanced_{m}{s}"] = Stat(column=m + s, higher_is_better=up, where=_sel("balanced", k0))
    for k in ks[1:]:
        stats[f"k{k}_psnr_masked"] = Stat(column="psnr_masked", higher_is_better=True, where=_sel("ff", k))
    every_k0 = lambda r: r["k"] == k0  # noqa: E731
    stats["gain_psnr_masked"] = Stat(reduce=_difference("psnr_masked", k0, "ff", "baseline"), higher_is_better=True, where=every_k0)
    if balanced:
        stats["deficit_psnr_masked"] = Stat(reduce=_difference("psnr_masked", k0, "balanced", "ff"), higher_is_better=False,
                                            where=every_k0)  # fmt: skip
        stats["deficit_lpips_alex_masked"] = Stat(reduce=_difference("lpips_alex_masked", k0, "ff", "balanced"),
                                                  higher_is_better=False, where=every_k0)  # fmt: skip
    stats["delta_ita"] = Stat(column="delta_ita")
    stats["abs_delta_ita"] = Stat(reduce=lambda rs: mean_of([{"v": abs(r["delta_ita"])} for r in rs
                                                            if r.get("delta_ita") is not None], "v"),
                                  higher_is_better=False)  # fmt: skip
    return per_fitzpatrick(rows, stats, where=_sel("ff", k0), n_boot=n_boot, digits=4)


def metrics(rows: Sequence[dict], ks: Sequence[int], info: dict, frames, subjects: dict[str, list[str]], short) -> dict:
    types = {v: Counter(frames.subject_type(s) for s in subs) for v, subs in subjects.items()}
    held = {r["subject_id"] for r in rows}
    out = {
        "train_identities": len(subjects["ff"]),
        "train_identities_per_type": {t: types["ff"].get(t, 0) for t in FITZPATRICK},
        **({"balanced_train_identities": len(subjects["balanced"])} if "balanced" in subjects else {}),
        "heldout_subjects": len(held), "heldout_subjects_unscored": len(short),
        "heldout_targets": sum(1 for r in rows if _sel("ff", ks[0])(r)),
        "skipped_crops": frames.skipped, **info, **flat_means(rows, ks),
    }  # fmt: skip
    return out | type_table(rows, ks)


def log_histories(live, histories: dict[str, list[dict]]) -> None:
    """Replay each variant's training log into dvclive (``train_ff/<variant>/<term>`` per step)."""
    for name, history in histories.items():
        for row in history:
            live.step = int(row["step"])
            for k, v in row.items():
                if k not in ("epoch", "step") and v is not None:
                    live.log_metric(f"train_ff/{name}/{k}", v)
    live.make_summary()


@torch.no_grad()
def write_grids(models: dict, baseline, frames, binding, rows: Sequence[dict], out_dir: Path, size: int, backend: str) -> None:
    """``grid_<type>.png``: source | target | generator [| balanced reference] | baseline, two subjects per type."""
    from fairsplat.io.images import save_png
    from fairsplat.io.plots import grid

    out_dir.mkdir(parents=True, exist_ok=True)
    index = {i: n for n, i in enumerate(frames.ids)}
    nets = [("generator", models["ff"])] + ([("balanced", models["balanced"])] if "balanced" in models else [])
    nets.append(("baseline", baseline))
    for t in FITZPATRICK:
        seen, chosen = set(), []
        for r in rows:
            if r["fitzpatrick"] == t and _sel("ff", 1)(r) and r["subject_id"] not in seen:
                seen.add(r["subject_id"])
                chosen.append(r)
        panels = []
        for r in chosen[:2]:
            batch = gather(frames, [[index[r["source_ids"][0]]]], [index[r["target_id"]]])
            points = binding.canonical(batch["shape"])
            row = [batch["sources"][0, 0], batch["target"][0]]
            for _, net in nets:
                rgb, _, _ = render_targets(binding, predict(net, binding, frames, batch, points), batch, size, backend)
                row.append(rgb[0].clamp(0, 1))
            panels.append([x.permute(1, 2, 0).numpy() for x in row])  # float in [0, 1]
        if panels:
            save_png(out_dir / f"grid_{t}.png", grid(panels, headers=["source", "target", *(n for n, _ in nets)]))
