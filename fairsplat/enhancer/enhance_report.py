"""``metrics/enhance.json`` and the plots of stage ``enhance``.

Per source (``ff``, ...): ``<source>_<metric>`` for the enhanced render,
``_input`` for the raw render, ``_gain`` (positive = the enhancer helps), all
against the ground-truth crops; ``<source>_ita_shift`` = the colour the
enhancer itself adds (ITA of enhanced minus raw render, same pixels);
``<source>_verdict``: the gains with a subject-bootstrap interval and
helps / hurts / unclear. ``per_fitzpatrick``: one table, its stats prefixed by
source (``fairsplat.metrics.fairness``: bootstrap over subjects).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fairsplat.enhancer.scores import IMAGE_METRICS
from fairsplat.enhancer.tables import group_block, higher_is_better, mean_of
from fairsplat.labels import FITZPATRICK
from fairsplat.metrics.fairness import Stat, clean, per_fitzpatrick

ENHANCE_METRICS = (*IMAGE_METRICS, *(f"{m}_masked" for m in IMAGE_METRICS), "abs_delta_ita")


def enhance_metrics(rows: Sequence[dict], info: dict, sources: Sequence[str], n_boot: int = 1000) -> dict:
    """``metrics/enhance.json``: per source ``<source>_<metric>{,_input,_gain}`` means, a verdict block per source
    (gain CIs over subjects) and one per-type table whose stats are prefixed by source."""
    out: dict = dict(info)
    stats: dict[str, Stat] = {}
    for k, src in enumerate(sources):
        mine = [r for r in rows if r["source"] == src]
        out[f"{src}_targets"] = len(mine)
        out[f"{src}_subjects"] = len({r["subject_id"] for r in mine})
        for m in ENHANCE_METRICS:
            for suffix in ("", "_input", "_gain"):
                out[f"{src}_{m}{suffix}"] = clean(mean_of(mine, m + suffix), 4)
        out[f"{src}_ita_shift"] = clean(mean_of(mine, "ita_shift"), 4)
        out[f"{src}_verdict"] = group_block(mine, ENHANCE_METRICS, n_boot, 300 + k)
        sel = lambda r, s=src: r["source"] == s  # noqa: E731
        for m in ENHANCE_METRICS:
            stats[f"{src}_{m}"] = Stat(column=m, higher_is_better=higher_is_better(m), where=sel)
            stats[f"{src}_{m}_input"] = Stat(column=f"{m}_input", where=sel)
            stats[f"{src}_{m}_gain"] = Stat(column=f"{m}_gain", higher_is_better=True, where=sel)
        stats[f"{src}_delta_ita"] = Stat(column="delta_ita", where=sel)
        stats[f"{src}_ita_shift"] = Stat(column="ita_shift", where=sel)
    return out | per_fitzpatrick(rows, stats, n_boot=n_boot, digits=4)


class GridCollector:
    """Keeps ground truth | render | enhanced of the first target of ``per_type`` subjects per type and source."""

    def __init__(self, per_type: int = 2) -> None:
        self.per_type, self.panels = per_type, {}

    def __call__(self, rb, enhanced) -> None:
        mine = self.panels.setdefault(rb.source, {}).setdefault(rb.fitzpatrick, [])
        if len(mine) < self.per_type:
            mine.append([x[0].permute(1, 2, 0).numpy() for x in (rb.target, rb.render, enhanced)])

    def save(self, out_dir: Path) -> None:
        from fairsplat.io.images import save_png
        from fairsplat.io.plots import grid

        for src, by_type in self.panels.items():
            rows, labels = [], []
            for t in FITZPATRICK:
                rows += by_type.get(t, [])
                labels += [t] * len(by_type.get(t, []))
            if rows:
                save_png(out_dir / f"grid_{src}.png", grid(rows, headers=["ground truth", "render", "enhanced"],
                                                           row_labels=labels))  # fmt: skip


def write_enhance_plots(m: dict, sources: Sequence[str], out_dir: Path) -> None:
    """Per source and metric: per-type bars of the raw render against the enhanced render, with CIs."""
    from fairsplat.io.plots import bar_chart

    out_dir.mkdir(parents=True, exist_ok=True)
    per = m.get("per_fitzpatrick") or {}
    if not per:
        return
    for src in sources:
        for metric, label in (("psnr_masked", "masked PSNR (dB)"), ("ssim_masked", "masked SSIM"),
                              ("lpips_alex", "LPIPS (AlexNet)"), ("abs_delta_ita", "|ΔITA| vs ground truth (deg)")):  # fmt: skip
            key = f"{src}_{metric}"
            block = {t: {metric: b.get(key), f"{metric}_ci": b.get(f"{key}_ci")} for t, b in per.items()}
            raw = {t: {metric: b.get(f"{key}_input"), f"{metric}_ci": b.get(f"{key}_input_ci")} for t, b in per.items()}
            bar_chart({f"{src} render": raw, "enhanced": block}, metric, out_dir / f"{src}_{metric}_per_type.png",
                      ylabel=label, title=f"{src} renders of held-out frames: {label}")  # fmt: skip
