"""Drawings of data the stages left as tables: curation's ITA histogram and the dvclive training curves.

PNG bytes from matplotlib's Agg canvas at a fixed size and DPI, no version or
time in the metadata (``fairsplat.io.plots``'s convention), so equal data give
equal bytes and the page is reproducible.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path


def _figure(size: tuple[int, int], dpi: int = 100):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def ita_histogram(path: Path) -> bytes | None:
    """Curate's ``ita_histogram.csv`` (ita bin centre, eligible, selected) as bars; None when absent or empty."""
    if not path.is_file():
        return None
    rows = list(csv.DictReader(path.open()))
    if not rows or not {"ita", "eligible", "selected"} <= set(rows[0]):
        return None
    x = [float(r["ita"]) for r in rows]
    fig = _figure((640, 300))
    ax = fig.add_subplot()
    ax.bar(x, [float(r["eligible"]) for r in rows], width=4.5, color="0.75", label="eligible")
    ax.bar(x, [float(r["selected"]) for r in rows], width=4.5, color="tab:blue", label="kept (balanced)")
    for edge in (-30, 10, 28, 41, 55):  # Chardon / Del Bino class edges (fairsplat/faces/skin_types.py's default)
        ax.axvline(edge, color="0.4", linewidth=0.6, linestyle=":")
    ax.set_xlabel("ITA (deg, 5 deg bins; higher = lighter)")
    ax.set_ylabel("crops")
    ax.set_title("curate: ITA of the crops")
    ax.legend()
    return _png(fig)


def _tsv(path: Path) -> tuple[list[float], list[float]] | None:
    rows = list(csv.DictReader(path.open(), delimiter="\t"))
    if not rows:
        return None
    keys = [k for k in rows[0] if k not in ("step", "timestamp")]
    if "step" not in rows[0] or not keys:
        return None
    try:
        return [float(r["step"]) for r in rows], [float(r[keys[0]]) for r in rows]
    except ValueError:
        return None


def curves(stage: str, files: Sequence[Path], root: Path, max_panels: int = 12) -> bytes | None:
    """dvclive's TSVs of one stage, one panel per file (name = its path under ``root``), at most ``max_panels``."""
    series = [(f, s) for f in files if (s := _tsv(f)) is not None][:max_panels]
    if not series:
        return None
    cols = min(4, len(series))
    rows = (len(series) + cols - 1) // cols
    fig = _figure((240 * cols, 170 * rows + 30))
    for i, (f, (x, y)) in enumerate(series):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.plot(x, y, linewidth=1)
        ax.set_title(str(f.relative_to(root).with_suffix("")), fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle(f"{stage}: training curves (dvclive)", fontsize=9)
    return _png(fig)
