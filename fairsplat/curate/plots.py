"""Curation plots (DVC plots, written into the stage's plots directory).

* ``ita_histogram.csv``: ITA in 5° bins, columns ``ita`` (bin centre),
  ``eligible`` (every input whose ITA was measured and classified, before
  balancing) and ``selected`` (the kept crops). dvc.yaml renders it as a bar
  chart; the two columns together show what balancing did to the tone
  distribution.
* ``samples_<T>.png``: per Fitzpatrick type, a grid of kept crops (hash-ranked,
  so the same crops for the same seed), each captioned with its ITA and Monk
  index, with the saved foreground alpha's 50 % outline drawn in magenta (one
  look shows whether the mask hugs the head or clips hair). Empty types get a
  one-line "no crops" image rather than no file, so the plot set is the same
  for every run.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage.segmentation import find_boundaries

from fairsplat.curate.balance import rank_key
from fairsplat.io.atomic import atomic_path
from fairsplat.io.images import load_grey, load_rgb, save_png
from fairsplat.io.plots import chunk, grid
from fairsplat.labels import FITZPATRICK

BIN_DEG = 5.0


def ita_histogram(eligible: Sequence[float], selected: Sequence[float], bin_deg: float = BIN_DEG) -> list[dict]:
    """Rows ``{ita, eligible, selected}`` over [-90, 90] in ``bin_deg`` bins."""
    edges = np.arange(-90.0, 90.0 + bin_deg / 2, bin_deg)  # [B + 1]
    e, _ = np.histogram(np.asarray(eligible, np.float64), edges)
    s, _ = np.histogram(np.asarray(selected, np.float64), edges)
    centres = (edges[:-1] + edges[1:]) / 2
    return [{"ita": float(c), "eligible": int(a), "selected": int(b)} for c, a, b in zip(centres, e, s)]


def write_histogram(rows: list[dict], path: Path) -> None:
    with atomic_path(path, suffix=".csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["ita", "eligible", "selected"])
        w.writeheader()
        w.writerows(rows)


OUTLINE_RGB = (255, 0, 255)


def outline(crop: np.ndarray, alpha: np.ndarray) -> np.ndarray:  # uint8 [S, S, 3], [S, S] -> [S, S, 3]
    """The crop with the inner boundary of ``alpha >= 128`` painted :data:`OUTLINE_RGB`."""
    assert crop.shape[:2] == alpha.shape, (crop.shape, alpha.shape)
    out = crop.copy()
    out[find_boundaries(alpha >= 128, mode="inner")] = OUTLINE_RGB
    return out


def _tile(crop: np.ndarray, alpha: np.ndarray | None, caption: str, side: int) -> np.ndarray:  # [side + 14, side, 3]
    """The crop resized to ``side`` (alpha outline drawn at that size, so it stays
    one tile pixel wide at any crop size) with a caption strip under it."""
    strip = 14
    tile = Image.new("RGB", (side, side + strip), (255, 255, 255))
    small = np.asarray(Image.fromarray(crop).resize((side, side), Image.BILINEAR))
    if alpha is not None:
        small = outline(small, np.asarray(Image.fromarray(alpha).resize((side, side), Image.BILINEAR)))
    tile.paste(Image.fromarray(small), (0, 0))
    ImageDraw.Draw(tile).text((3, side + 1), caption, fill=(0, 0, 0), font=ImageFont.load_default())
    return np.asarray(tile)


def sample_grid(rows: Sequence[dict], crops_root: Path, n: int, side: int = 128, cols: int = 4) -> np.ndarray:
    """Grid of up to ``n`` crops (manifest rows of one type). -> uint8 [H, W, 3]"""
    if not rows:
        img = Image.new("RGB", (side * 2, 20), (255, 255, 255))
        ImageDraw.Draw(img).text((3, 4), "no crops of this type", fill=(0, 0, 0), font=ImageFont.load_default())
        return np.asarray(img)
    tiles = []
    for r in rows[:n]:
        alpha = load_grey(crops_root / r["alpha_path"]) if r.get("alpha_path") else None
        tiles.append(_tile(load_rgb(crops_root / r["path"]), alpha, f"ITA {r['ita']:.1f} ({r['ita_method']})", side))
    return grid(chunk(tiles, min(cols, len(tiles))), side=None)


def write_plots(manifest: Sequence[dict], eligible_ita: Sequence[float], crops_root: Path, out: Path, n: int, seed: int) -> None:
    """Histogram CSV and one sample grid per type into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    write_histogram(ita_histogram(eligible_ita, [r["ita"] for r in manifest]), out / "ita_histogram.csv")
    for t in FITZPATRICK:
        rows = sorted((r for r in manifest if r["fitzpatrick"] == t), key=lambda r: rank_key(seed, r["image_id"]))
        save_png(out / f"samples_{t}.png", sample_grid(rows, crops_root, n))
