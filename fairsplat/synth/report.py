"""SynthHeads metrics and sample grids.

``ita_gt_consistency``: on frontal views, ITA measured from the rendered skin
pixels (the rendered label map gives the skin mask) must land in the
identity's ground-truth Fitzpatrick class. It checks that the ground truth
agrees with the pixels, i.e. that lighting did not move anyone across a class
border, which later stages (curation, fairness tables) rely on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from fairsplat.faces.ita import face_ita
from fairsplat.faces.skin_types import fitzpatrick
from fairsplat.labels import FITZPATRICK


def _load(root: Path, rel: str) -> np.ndarray:
    return np.asarray(Image.open(root / rel))


def ita_consistency(root: Path, manifest: pa.Table) -> tuple[list[dict], dict]:
    """Per frontal image: measured ITA and its class; and the summary metrics."""
    rows = [r for r in manifest.to_pylist() if r["view"] == 0]
    per_image = []
    for r in rows:
        res, _ = face_ita(_load(root, r["rgb_path"]), labels=_load(root, r["label_path"]))
        measured = None if res is None else res.ita
        cls = None if measured is None else fitzpatrick(measured)
        per_image.append({"image_id": r["image_id"], "fitzpatrick": r["fitzpatrick"], "ita_gt": r["ita_gt"],
                          "ita_measured": measured, "class_measured": cls, "agree": cls == r["fitzpatrick"]})
    summary = {"ita_gt_consistency": float(np.mean([p["agree"] for p in per_image])) if per_image else None}
    per_type = {}
    for t in FITZPATRICK:
        sel = [p for p in per_image if p["fitzpatrick"] == t]
        meas = [p["ita_measured"] for p in sel if p["ita_measured"] is not None]
        per_type[t] = {
            "ita_gt_consistency": float(np.mean([p["agree"] for p in sel])) if sel else None,
            "ita_gt_mean": float(np.mean([p["ita_gt"] for p in sel])) if sel else None,
            "ita_measured_median": float(np.median(meas)) if meas else None,
            "ita_abs_error_mean": float(np.mean([abs(p["ita_measured"] - p["ita_gt"]) for p in sel if p["ita_measured"] is not None])) if meas else None,
        }
    return per_image, {**summary, "per_type": per_type}


def _tile(images: list[np.ndarray], cols: int) -> np.ndarray:
    h, w = images[0].shape[:2]
    rows = -(-len(images) // cols)
    grid = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for k, im in enumerate(images):
        r, c = divmod(k, cols)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = im
    return grid


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
        strip += [_load(root, index[(i, 0, 0)]) for i in ids] + [np.full_like(_load(root, index[(ids[0], 0, 0)]), 255)] * (per_type_ids - len(ids))
        cells = []
        for i in ids:
            cells += [_load(root, index[(i, 0, v)]) for v in range(n_views)]
            cells += [_load(root, index[(i, f, 0)]) for f in range(1, n_frames)]
        Image.fromarray(_tile(cells, n_views + n_frames - 1)).save(out / f"grid_{t}.png")
    Image.fromarray(_with_row_names(_tile(strip, per_type_ids), list(FITZPATRICK))).save(out / "types.png")


def _with_row_names(grid: np.ndarray, names: list[str], margin: int = 28) -> np.ndarray:
    """A white margin on the left naming each row (the Fitzpatrick type), so the grid reads alone."""
    from PIL import ImageDraw

    h = grid.shape[0] // len(names)
    canvas = Image.new("RGB", (grid.shape[1] + margin, grid.shape[0]), (255, 255, 255))
    canvas.paste(Image.fromarray(grid), (margin, 0))
    draw = ImageDraw.Draw(canvas)
    for k, name in enumerate(names):
        draw.text((4, k * h + h // 2 - 5), name, fill=(0, 0, 0))
    return np.asarray(canvas)
