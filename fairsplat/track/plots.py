"""``plots/track/overlay.png``: a few images with their landmarks, so a bad fit is seen at a glance.

Green: ground truth (SynthHeads). Blue: what was fitted to (detector or
curate landmarks), when that differs from the ground truth. Red: the fit.
Images are drawn at 256 px whatever their size, evenly spread over the run
(by Fitzpatrick type when known), in a deterministic order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fairsplat.io.images import load_rgb, save_png
from fairsplat.io.plots import chunk, grid
from fairsplat.track.run import TrackRun
from fairsplat.track.sources import Items

TILE = 256
GREEN, BLUE, RED = (40, 220, 40), (60, 120, 255), (255, 40, 40)


def pick(items: Items, run: TrackRun, n: int) -> list[int]:
    """Up to ``n`` fitted rows, spread evenly over the run (round-robin over types when known)."""
    rows = np.nonzero(run.fitted)[0]
    by_type: dict[str, list[int]] = {}
    for i in rows:
        by_type.setdefault(items.fitzpatrick[i] or "", []).append(int(i))
    queues = [q[:: max(1, len(q) // max(1, n // max(1, len(by_type))))] for _, q in sorted(by_type.items())]
    out: list[int] = []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


def _image(items: Items, i: int) -> tuple[np.ndarray, float]:
    """The row's pixels and their scale against the landmarks' frame: the full image, else the
    decoded video frame's thumbnail kept in memory (a frame has no file), else the file."""
    if items.images is not None:
        return items.images[i], 1.0
    if items.thumbs is not None and items.thumbs[i] is not None:
        th = items.thumbs[i]
        full_w = 2.0 * float(items.K[i][0, 2])  # principal point at the centre (track/camera.default_K)
        return th, th.shape[1] / full_w
    if items.paths[i] is None:
        raise ValueError(f"{items.ids[i]}: no pixels to draw (no image, thumbnail or file)")
    return load_rgb(items.paths[i]), 1.0


def _tile(img: np.ndarray, layers: list[tuple[np.ndarray, tuple]], pre: float = 1.0) -> np.ndarray:
    h, w = img.shape[:2]
    s = TILE / max(h, w)
    im = Image.fromarray(img).resize((round(w * s), round(h * s)), Image.BILINEAR)
    canvas = Image.new("RGB", (TILE, TILE), (128, 128, 128))
    canvas.paste(im, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for pts, colour in layers:
        for x, y in pts[np.isfinite(pts).all(1)] * pre * s:
            draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], outline=colour)
    return np.asarray(canvas)


def overlay(items: Items, run: TrackRun, rows: list[int], path: str | Path, cols: int = 6) -> None:
    """Write the grid of ``rows`` (nothing when empty)."""
    if not rows:
        return
    tiles = []
    for i in rows:
        layers = []
        if "landmarks" in items.gt:
            layers.append((items.gt["landmarks"][i], GREEN))
        if "landmarks" not in items.gt or items.n_faces[i] >= 0:
            layers.append((items.targets[i], BLUE))
        layers.append((run.landmarks2d[i], RED))
        img, pre = _image(items, i)
        tiles.append(_tile(img, layers, pre))
    save_png(path, grid(chunk(tiles, cols), side=None, background=(128, 128, 128)))
