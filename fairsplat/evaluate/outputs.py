"""What stage ``evaluate`` writes besides ``metrics/evaluate.json``: tables, the viewer's avatars, plot data, figures.

- ``data/eval/``: ``scores.parquet``, ``variants.parquet``, ``unscored.parquet``
  (schemas in ``fairsplat.evaluate.tables``) and ``avatars/`` (one canonical
  3DGS PLY per Fitzpatrick type, the best variant the run has for the shown
  subject, and ``avatars.json`` describing them) for the report's viewer;
- ``plots/evaluate/``: ``per_type.json`` (headline metrics per type and
  variant, with CIs) and ``pairs.json`` (variant against variant per type,
  with CIs), the data of the DVC plots dvc.yaml declares (template
  ``fairsplat/evaluate/bars_ci.json``); ``figures/``: the same as PNG bar
  charts, and ``grid_<type>.png``: source | each variant | ground truth.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fairsplat.evaluate.run import EvalResult
from fairsplat.evaluate.tables import (HEADLINE, SCORES_SCHEMA, UNSCORED_SCHEMA, VARIANTS_SCHEMA, comparisons, long_rows,
                                       plot_records, split_series)  # fmt: skip
from fairsplat.labels import FITZPATRICK

LABELS = {"psnr_masked": "masked PSNR (dB)", "lpips_alex_masked": "masked LPIPS (AlexNet)",
          "delta_ita": "ΔITA of the skin (deg, + = lighter)", "csim": "CSIM (dlib ResNet cosine)",
          "aed": "AED (expression L1)", "apd": "APD (rad)", "akd": "AKD (px)", "no_face_rate": "no face found (share)"}  # fmt: skip


def _key(metric: str):
    """per_fitzpatrick key of a headline metric of variant v (cross metrics carry no prefix; ΔITA is self's)."""
    return lambda v: f"{v}_{metric}"


def write_tables(res: EvalResult, out: Path) -> None:
    from fairsplat.io.tables import write_table

    write_table(long_rows(res.rows, res.reasons), SCORES_SCHEMA, out / "scores.parquet")
    write_table(res.variants, VARIANTS_SCHEMA, out / "variants.parquet")
    write_table(res.unscored, UNSCORED_SCHEMA, out / "unscored.parquet")
    avatars = out / "avatars"
    avatars.mkdir(parents=True, exist_ok=True)
    listing = []
    for a in sorted(res.viewer, key=lambda a: FITZPATRICK.index(a["type"])):
        (avatars / f"{a['type']}.ply").write_bytes(a["ply"])
        listing.append({"type": a["type"], "subject": a["subject"], "variant": a["variant"], "file": f"{a['type']}.ply"})
    (avatars / "avatars.json").write_text(json.dumps(listing, indent=1) + "\n")


def write_plots(res: EvalResult, metrics: dict, plots: Path) -> None:
    """Plot data (DVC) and PNG figures (the report) of the per-type table."""
    from fairsplat.io.images import save_png
    from fairsplat.io.plots import bar_chart, grid

    per = metrics["per_fitzpatrick"]
    figures = plots / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    records, pairs = [], []
    for m in (*HEADLINE, "no_face_rate"):
        series = split_series(per, res.present, _key(m), m)
        records += plot_records(per, series, m)
        if series:
            bar_chart(series, m, figures / f"{m}.png", ylabel=LABELS[m], title=f"{LABELS[m]} per type, 95% CI over subjects")
    for m in ("psnr_masked", "lpips_alex_masked", "abs_delta_ita", "csim", "aed"):
        names = [f"{a}_vs_{b}" for a, b in comparisons(res.present)]
        series = split_series(per, names, lambda n, m=m: f"{n}_{m}", m)
        pairs += plot_records(per, {n.replace("_vs_", " - "): b for n, b in series.items()}, m)
    (plots / "per_type.json").write_text(json.dumps(records, indent=1) + "\n")
    (plots / "pairs.json").write_text(json.dumps(pairs, indent=1) + "\n")
    for t, g in res.grids.items():
        cols = ["source", *res.present, "target"]
        blank = np.full_like(g["source"], 200)
        save_png(figures / f"grid_{t}.png", grid([[g.get(c, blank) for c in cols]],
                                                 headers=["source", *res.present, "ground truth"], side=None))  # fmt: skip
