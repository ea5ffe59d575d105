"""Label-map colours, shared by the parse and degrade plots (grids: ``fairsplat.io.plots``).

The palette is CelebAMask-HQ's customary one (background black, skin
orange-brown, hair blue...) so figures read like the dataset's own.
"""

from __future__ import annotations

import numpy as np

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

