"""Figures the stages leave in ``plots/``: image grids and per-type bar charts.

Why here: five stages tiled images by hand (parse, degrade, synth, curate,
track), each with its own padding and labelling, and every per-type table
(:func:`fairsplat.metrics.fairness.per_fitzpatrick`) wants the same chart.
Both return or write plain PNGs; the report stage assembles them.

Determinism: a plot is a DVC output, so equal inputs must give equal bytes.
Grids are drawn with PIL's built-in font; charts use matplotlib's Agg canvas
at a fixed size and DPI, with no ``Software`` (version) entry and no time in
the PNG metadata.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fairsplat.io.atomic import atomic_path
from fairsplat.labels import FITZPATRICK

HEADER_PX = 14
"""Height of the column-header strip: one line of PIL's default font."""
LABEL_PX = 28
"""Width of the row-label margin: fits "VI" or a short name."""

Block = Mapping[str, Mapping[str, Any]]
"""A ``per_fitzpatrick`` block: ``{"I": {"psnr": 23.1, "psnr_ci": [22.4, 23.9], ...}, ...}``."""


def to_u8(img: np.ndarray) -> np.ndarray:  # [H, W(, C)] float in [0, 1] or uint8 -> uint8
    """Panels from renders are float; PNG and PIL want uint8 (values outside [0, 1] clipped)."""
    return img if img.dtype == np.uint8 else np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def chunk(panels: Sequence[np.ndarray], cols: int) -> list[list[np.ndarray]]:
    """A flat list of panels as rows of ``cols`` (the last row may be short)."""
    return [list(panels[i : i + cols]) for i in range(0, len(panels), cols)]


def _fit(panel: np.ndarray, side: int | None) -> Image.Image:
    """A panel as a PIL image, resized to ``side`` squared: nearest when enlarging (label maps stay crisp)."""
    img = Image.fromarray(to_u8(panel))
    if side is None or img.size == (side, side):
        return img
    return img.resize((side, side), Image.NEAREST if panel.shape[0] < side else Image.BILINEAR)


def grid(
    rows: Sequence[Sequence[np.ndarray]],  # rows of panels [h, w, 3] or [h, w], uint8 or float in [0, 1]
    *,
    headers: Sequence[str] = (),
    row_labels: Sequence[str] = (),
    side: int | None = 128,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:  # uint8 [top + R * h, left + C * w, 3]
    """Panels in a grid, optional column headers above and row labels to the left.

    ``side``: every panel is resized to ``side`` x ``side``; None keeps the
    panels' own size, which must then be the same for all. Short rows (and
    empty ones) are padded with ``background``.
    """
    tiles = [[_fit(p, side) for p in row] for row in rows]
    sizes = {t.size for row in tiles for t in row}
    assert len(sizes) <= 1, f"panels differ in size {sorted(sizes)}; pass side= to resize them"
    w, h = sizes.pop() if sizes else (side or 1, side or 1)
    top, left = HEADER_PX * bool(headers), LABEL_PX * bool(row_labels)
    n_cols = max((len(r) for r in tiles), default=0)
    out = Image.new("RGB", (left + n_cols * w, top + len(tiles) * h), background)
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            out.paste(tile, (left + c * w, top + r * h))
    draw, font = ImageDraw.Draw(out), ImageFont.load_default()
    for c, text in enumerate(headers):
        draw.text((left + c * w + 3, 1), text, fill=(0, 0, 0), font=font)
    for r, text in enumerate(row_labels):
        draw.text((4, top + r * h + h // 2 - 5), text, fill=(0, 0, 0), font=font)
    return np.asarray(out)


def _number(x: Any) -> float:
    """A value of a block as a float; None, a missing key and non-finite values are NaN (a gap)."""
    return float(x) if x is not None and math.isfinite(float(x)) else math.nan


def _series(block: Block, metric: str, types: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """-> values [T] (NaN = gap), ci [T, 2] (NaN = no interval) of ``metric`` per type."""
    values, ci = np.full(len(types), np.nan), np.full((len(types), 2), np.nan)
    for i, t in enumerate(types):
        row = block.get(t) or {}
        values[i] = _number(row.get(metric))
        bounds = row.get(f"{metric}_ci")
        if bounds is not None:
            ci[i] = [_number(bounds[0]), _number(bounds[1])]
    return values, ci


def _draw_series(ax, x: np.ndarray, values: np.ndarray, ci: np.ndarray, width: float, name: str) -> None:
    """Bars where there is a value, error bars where there is also an interval, "n/a" marks in the gaps."""
    ok = np.isfinite(values)
    ax.bar(x[ok], values[ok], width, label=name)
    has_ci = ok & np.isfinite(ci).all(1)
    if has_ci.any():
        v = values[has_ci]
        yerr = np.clip(np.stack([v - ci[has_ci, 0], ci[has_ci, 1] - v]), 0, None)  # [2, n]: below, above
        ax.errorbar(x[has_ci], v, yerr=yerr, fmt="none", ecolor="black", elinewidth=1, capsize=3)
    for xi in x[~ok]:  # a missing bar and a zero bar look alike: say which it is
        ax.text(xi, 0.02, "n/a", transform=ax.get_xaxis_transform(), ha="center", fontsize=7, color="0.4")


def bar_chart(
    series: Mapping[str, Block],
    metric: str,
    path: str | Path,
    *,
    types: Sequence[str] = FITZPATRICK,
    title: str | None = None,
    ylabel: str | None = None,
    size: tuple[int, int] = (640, 360),
    dpi: int = 100,
) -> None:
    """Write a PNG (``size`` pixels) of ``metric`` per type, one bar group per type, one bar per series.

    ``series``: name -> ``per_fitzpatrick`` block, e.g. ``{"base": b0, "LoRA": b1}``
    (one series for a plain chart). ``<metric>_ci`` becomes the error bar.
    A type missing from a block, a None value or an absent interval is drawn
    as a gap (marked "n/a") or a bar without error bar, never as zero.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    assert series, "bar_chart needs at least one series"
    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    FigureCanvasAgg(fig)  # Agg whatever the process's matplotlib backend
    ax = fig.add_subplot()
    x, width = np.arange(len(types), dtype=float), 0.8 / len(series)
    for k, (name, block) in enumerate(series.items()):
        _draw_series(ax, x + (k - (len(series) - 1) / 2) * width, *_series(block, metric, types), width, name)
    ax.set_xticks(x, list(types))
    ax.set_xlabel("Fitzpatrick type")
    ax.set_ylabel(ylabel or metric)
    ax.set_title(title or metric)
    ax.axhline(0, color="0.6", linewidth=0.8)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})
