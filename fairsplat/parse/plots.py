"""Label-map colours and image grids, shared by the parse and degrade plots.

The palette is CelebAMask-HQ's customary one (background black, skin
orange-brown, hair blue...) so figures read like the dataset's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fairsplat.io.atomic import atomic_path

PALETTE = np.array(
    [
        [0, 0, 0], [204, 0, 0], [76, 153, 0], [204, 204, 0], [51, 51, 255], [204, 0, 204], [0, 255, 255],
        [255, 204, 204], [102, 51, 0], [255, 0, 0], [102, 204, 0], [255, 255, 0], [0, 0, 153], [0, 0, 204],
        [255, 51, 153], [0, 204, 204], [0, 51, 0], [255, 153, 51], [0, 204, 0],
    ] + [[128, 128, 128]] * (256 - 19),
    np.uint8,
)  # fmt: skip  [256, 3]: label id -> RGB


def colourise(labels: np.ndarray) -> np.ndarray:
    """[H, W] ids -> [H, W, 3] uint8 RGB."""
    return PALETTE[labels]


def to_u8(img: np.ndarray) -> np.ndarray:
    """[H, W, 3] float in [0, 1] or uint8 -> uint8."""
    return img if img.dtype == np.uint8 else np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def grid(rows: Sequence[Sequence[np.ndarray]], headers: Sequence[str] = (), side: int = 128) -> Image.Image:
    """Rows of equally many [H, W, 3] uint8 panels, each resized to ``side``, under optional column headers."""
    top = 14 if headers else 0
    n_cols = max(len(r) for r in rows)
    out = Image.new("RGB", (n_cols * side, top + len(rows) * side), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default()
    for c, h in enumerate(headers):
        draw.text((c * side + 3, 1), h, fill=(0, 0, 0), font=font)
    for r, row in enumerate(rows):
        for c, panel in enumerate(row):
            tile = Image.fromarray(panel).resize((side, side), Image.NEAREST if panel.shape[0] < side else Image.BILINEAR)
            out.paste(tile, (c * side, top + r * side))
    return out


def save_png(img: Image.Image, path: Path) -> None:
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
