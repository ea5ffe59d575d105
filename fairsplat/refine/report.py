"""``metrics/refine.json``, ``data/refined/{manifest,rejects}.parquet`` and ``plots/refine/``.

Flat numbers (means over every held-out crop of the refined subjects):
``ff_<metric>`` and ``refined_<metric>`` for psnr, ssim, lpips_alex (each also
``_masked``) and delta_ita; ``gain_<metric>`` = refined - ff; iterations,
seconds per subject, iterations per second; spike statistics of both avatars
pooled over every held-out camera (``aspect_p99``, ``aspect_max`` as
λmax/λmin of the drawn footprint, ``spike_frac`` above ``aspect_bound`` =
e^(2τ)); subject counts (``subjects_refined + subjects_rejected ==
subjects_total``, rejects by reason).

``per_fitzpatrick`` (``fairsplat.metrics.fairness``, bootstrap over
subjects): the refined avatar's scores, the FF init's (``ff_`` prefix), the
gains with their CIs (``gain_psnr``: the floor, >= 2 dB in every type),
ΔITA, iterations used (adaptive TTO), seconds, and the spike statistics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from fairsplat.labels import FITZPATRICK
from fairsplat.metrics.fairness import Stat, per_fitzpatrick
from fairsplat.refine.aspect import bound, spike_stats
from fairsplat.refine.run import IMAGE_COLUMNS, RefineRun, subject_dir

HIGHER = {"psnr": True, "ssim": True, "lpips_alex": False}
SCORE_COLUMNS = (*IMAGE_COLUMNS, "delta_ita")

MANIFEST_SCHEMA = pa.schema([
    ("subject_id", pa.string()), ("fitzpatrick", pa.string()), ("path", pa.string()), ("reference_frame", pa.int32()),
    ("reference_reason", pa.string()), ("n_train", pa.int32()), ("n_watch", pa.int32()), ("n_heldout", pa.int32()),
    ("iterations", pa.int32()), ("seconds", pa.float32()), ("ff_psnr_masked", pa.float32()),
    ("refined_psnr_masked", pa.float32()), ("spike_frac", pa.float32()),
])  # fmt: skip
"""``data/refined/manifest.parquet``: one row per refined subject; ``path`` is its directory under data/refined."""

REJECTS_SCHEMA = pa.schema([("subject_id", pa.string()), ("fitzpatrick", pa.string()), ("reason", pa.string()),
                            ("detail", pa.string()), ("n_images", pa.int32())])  # fmt: skip
"""``data/refined/rejects.parquet``: reason too_few_frames | not_selected | diverged; ``detail`` says more."""


def _mean(rows: Sequence[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])]
    return float(np.mean(vals)) if vals else None


def _variant(v: str):
    return lambda r: r.get("variant") == v


def _gain(metric: str):
    def f(rows: Sequence[dict]) -> float | None:
        a, b = _mean([r for r in rows if r["variant"] == "refined"], metric), _mean([r for r in rows if r["variant"] == "ff"], metric)
        return None if a is None or b is None else a - b

    return f


def score_rows(run: RefineRun) -> list[dict]:
    return [r for res in run.results for r in res.rows]


def subject_rows(run: RefineRun) -> list[dict]:
    keys = ("iterations", "seconds", "its_per_s", "spike_frac", "aspect_p99", "aspect_max", "ff_spike_frac")
    return [{"subject_id": res.subject, "fitzpatrick": res.fitzpatrick, **{k: res.info.get(k) for k in keys}}
            for res in run.results]  # fmt: skip


def type_table(rows: Sequence[dict], subjects: Sequence[dict], n_boot: int = 1000) -> dict:
    stats: dict[str, Stat] = {}
    for m, up in HIGHER.items():
        for s in ("", "_masked"):
            stats[m + s] = Stat(column=m + s, higher_is_better=up)
            stats[f"ff_{m}{s}"] = Stat(column=m + s, higher_is_better=up, where=_variant("ff"))
    for m in ("psnr", "psnr_masked", "ssim_masked", "lpips_alex_masked"):
        stats[f"gain_{m}"] = Stat(reduce=_gain(m), higher_is_better=HIGHER[m.removesuffix("_masked")], where=lambda r: True)
    stats["delta_ita"] = Stat(column="delta_ita")
    stats["ff_delta_ita"] = Stat(column="delta_ita", where=_variant("ff"))
    table = per_fitzpatrick(rows, stats, where=_variant("refined"), n_boot=n_boot, digits=4)
    per_subject = {"iterations": Stat(column="iterations"), "seconds": Stat(column="seconds"),
                   "spike_frac": Stat(column="spike_frac", higher_is_better=False),
                   "aspect_p99": Stat(column="aspect_p99", higher_is_better=False),
                   "aspect_max": Stat(column="aspect_max", agg=np.max, ci=False),
                   "ff_spike_frac": Stat(column="ff_spike_frac")}  # fmt: skip
    extra = per_fitzpatrick(subjects, per_subject, n_boot=n_boot, digits=5)
    for t, block in extra.pop("per_fitzpatrick").items():
        table["per_fitzpatrick"].setdefault(t, {}).update({k: v for k, v in block.items() if k not in ("n_subjects", "n_items")})
    return table | extra


def metrics(run: RefineRun, tau: float, strategies: Sequence[str], info: dict) -> dict:
    rows, subjects = score_rows(run), subject_rows(run)
    out: dict = {"subjects_total": run.subjects_total, "subjects_refined": len(run.results),
                 "subjects_rejected": len(run.rejects), "rejects": dict(Counter(r["reason"] for r in run.rejects)),
                 "subjects_resumed": sum(r.resumed for r in run.results), "strategies": ",".join(strategies),
                 "heldout_crops": sum(1 for r in rows if r["variant"] == "refined"),
                 "skipped_crops": dict(run.skipped_crops), **info}  # fmt: skip  (crops without a track, by reason)
    for v in ("ff", "refined"):
        out |= {f"{v}_{m}": _mean([r for r in rows if r["variant"] == v], m) for m in SCORE_COLUMNS}
    for m in IMAGE_COLUMNS:
        a, b = out[f"refined_{m}"], out[f"ff_{m}"]
        out[f"gain_{m}"] = None if a is None or b is None else a - b
    its, secs = [s["iterations"] for s in subjects], [s["seconds"] for s in subjects]
    out |= {"iterations_mean": float(np.mean(its)) if its else None, "iterations_max": max(its, default=None),
            "seconds_per_subject": float(np.mean(secs)) if secs else None,
            "its_per_s": float(sum(its) / sum(secs)) if secs and sum(secs) > 0 else None}  # fmt: skip
    out["aspect_bound"] = bound(tau)
    for v, prefix in (("refined", ""), ("ff", "ff_")):
        pooled = [r.log_ratios[v] for r in run.results if v in r.log_ratios]
        stats = spike_stats(torch.cat(pooled) if pooled else torch.zeros(0), tau)
        out |= {f"{prefix}{k}": v for k, v in stats.items()}
    table = type_table(rows, subjects)
    gains = [b.get("gain_psnr") for b in table["per_fitzpatrick"].values()]
    out["gain_psnr_min_type"] = min((g for g in gains if g is not None), default=None)
    return out | table


def manifest_rows(run: RefineRun) -> list[dict]:
    out = []
    for res in run.results:
        i = res.info
        rs = lambda v: _mean([r for r in res.rows if r["variant"] == v], "psnr_masked")  # noqa: E731
        out.append({"subject_id": res.subject, "fitzpatrick": res.fitzpatrick, "path": res.subject,
                    "reference_frame": i["reference_frame"], "reference_reason": i["reference_reason"],
                    "n_train": len(i["train_ids"]), "n_watch": len(i["watch_ids"]), "n_heldout": len(i["heldout_ids"]),
                    "iterations": i["iterations"], "seconds": i["seconds"], "ff_psnr_masked": rs("ff"),
                    "refined_psnr_masked": rs("refined"), "spike_frac": i["spike_frac"]})  # fmt: skip
    return out


def write_plots(m: dict, run: RefineRun, plot_dir: Path, work: Path) -> None:
    """psnr.png (FF vs refined masked PSNR per type, CIs), iterations.png, heldout_<type>.png (one subject each)."""
    import shutil

    from fairsplat.io.plots import bar_chart

    plot_dir.mkdir(parents=True, exist_ok=True)
    per = m["per_fitzpatrick"]
    ff = {t: {"v": b.get("ff_psnr_masked"), "v_ci": b.get("ff_psnr_masked_ci")} for t, b in per.items()}
    ref = {t: {"v": b.get("psnr_masked"), "v_ci": b.get("psnr_masked_ci")} for t, b in per.items()}
    bar_chart({"FF init": ff, "refined": ref}, "v", plot_dir / "psnr.png", title="held-out masked PSNR",
              ylabel="dB")  # fmt: skip
    bar_chart({"iterations": per}, "iterations", plot_dir / "iterations.png", title="iterations used (adaptive TTO)")
    seen = set()
    for res in run.results:
        if res.fitzpatrick in FITZPATRICK and res.fitzpatrick not in seen:
            seen.add(res.fitzpatrick)
            shutil.copyfile(subject_dir(work, res.subject) / "heldout.png", plot_dir / f"heldout_{res.fitzpatrick}.png")
