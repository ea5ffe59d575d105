"""SynthHeads metrics and sample grids.

``ita_gt_consistency``: on frontal views, ITA measured from the rendered skin
pixels (the rendered label map gives the skin mask) must land in the
identity's ground-truth Fitzpatrick class. It checks that the ground truth
agrees with the pixels, i.e. that lighting did not move anyone across a class
border, which later stages (curation, fairness tables) rely on. Per type it is the
table of :mod:`fairsplat.metrics.fairness`, its intervals resampling identities.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from fairsplat.faces.ita import face_ita
from fairsplat.faces.skin_types import fitzpatrick
from fairsplat.io.images import load_labels, load_rgb, save_png
from fairsplat.io.plots import chunk, grid
from fairsplat.labels import FITZPATRICK
from fairsplat.metrics.fairness import Stat, per_fitzpatrick

ITA_STATS: dict[str, Stat] = {
    "ita_gt_consistency": Stat(column="agree", higher_is_better=True),
    "ita_gt_mean": Stat(column="ita_gt"),
    "ita_measured_median": Stat(column="ita_measured", agg=np.median),
    "ita_abs_error_mean": Stat(column="ita_abs_error", higher_is_better=False),
}


def ita_consistency(root: Path, manifest: pa.Table) -> tuple[list[dict], dict]:
    """Per frontal image: measured ITA and its class; and the summary metrics."""
    rows = [r for r in manifest.to_pylist() if r["view"] == 0]
    per_image = []
    for r in rows:
        res, _ = face_ita(load_rgb(root / r["rgb_path"]), labels=load_labels(root / r["label_path"]))
        measured = None if res is None else res.ita
        cls = None if measured is None else fitzpatrick(measured)
        per_image.append({"image_id": r["image_id"], "fitzpatrick": r["fitzpatrick"], "ita_gt": r["ita_gt"],
                          "ita_measured": measured, "class_measured": cls, "agree": cls == r["fitzpatrick"]})
    summary = {"ita_gt_consistency": float(np.mean([p["agree"] for p in per_image])) if per_image else None}
    table = [{**p, "subject_id": r["identity_id"], "agree": float(p["agree"]),
              "ita_abs_error": None if p["ita_measured"] is None else abs(p["ita_measured"] - p["ita_gt"])}
             for p, r in zip(per_image, rows)]  # fmt: skip
    fair = per_fitzpatrick(table, ITA_STATS, types=FITZPATRICK)
    return per_image, {**summary, "per_type": fair.pop("per_fitzpatrick"), **fair}


def write_grids(root: Path, manifest: pa.Table, out: Path, per_type_ids: int = 4) -> None:
    """``types.png``: one row per type (frontal, frame 0), the skin-tone progression;
    ``grid_<T>.png``: per type, each identity's views then its frames."""
    out.mkdir(parents=True, exist_ok=True)
    rows = manifest.to_pylist()
    by_type: dict[str, list[str]] = {t: [] for t in FITZPATRICK}
    for r in rows:
        if r["identity_id"] not in by_type[r["fitzpatrick"]]:
            by_type[r["fitzpatrick"]].append(r["identity_id"])
    index = {(r["identity_id"], r["frame"], r["view"]): r["rgb_path"] for r in rows}
    n_views = 1 + max(r["view"] for r in rows)
    n_frames = 1 + max(r["frame"] for r in rows)
    strip = []
    for t in FITZPATRICK:
        ids = by_type[t][:per_type_ids]
        strip.append([load_rgb(root / index[(i, 0, 0)]) for i in ids])  # short rows are padded white
        cells = []
        for i in ids:
            cells += [load_rgb(root / index[(i, 0, v)]) for v in range(n_views)]
            cells += [load_rgb(root / index[(i, f, 0)]) for f in range(1, n_frames)]
        save_png(out / f"grid_{t}.png", grid(chunk(cells, n_views + n_frames - 1), side=None))
    save_png(out / "types.png", grid(strip, row_labels=FITZPATRICK, side=None))

