"""How much damage each region took: the check that degradation follows its calibration.

Why per region: seed 001 calibrates strengths per region (mouth worst, skin
least), so a single global score could hide a pipeline that blurs skin as hard
as the mouth. Two complementary numbers: mean absolute difference (any change)
and 1 - SSIM (loss of local structure, what blur and smear do).
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

from fairsplat.labels import REGION_GROUPS


def _as_float(img: np.ndarray) -> np.ndarray:  # [H, W, 3] -> float64 in [0, 1]
    return img.astype(np.float64) / 255.0 if img.dtype == np.uint8 else img.astype(np.float64)


def damage_maps(
    clean: np.ndarray,  # [H, W, 3] uint8 or float in [0, 1]
    degraded: np.ndarray,  # [H, W, 3] same
) -> tuple[np.ndarray, np.ndarray]:  # ([H, W] |diff| channel mean, [H, W] SSIM channel mean)
    """Per-pixel damage maps: absolute difference and skimage's SSIM map (7x7 window, data_range 1)."""
    assert clean.shape == degraded.shape and clean.ndim == 3 and clean.shape[2] == 3, (clean.shape, degraded.shape)
    a, b = _as_float(clean), _as_float(degraded)
    _, smap = structural_similarity(a, b, channel_axis=2, data_range=1.0, full=True)
    return np.abs(a - b).mean(axis=2), smap.mean(axis=2)


def region_damage(
    clean: np.ndarray,  # [H, W, 3] uint8 or float in [0, 1]
    degraded: np.ndarray,  # [H, W, 3] same
    labels: np.ndarray,  # [H, W] CelebAMask-HQ ids
    maps: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, dict[str, float]]:
    """{region: {"mad": mean |clean - degraded|, "ssim_loss": 1 - mean SSIM}} over REGION_GROUPS.

    SSIM is skimage's full map (7x7 window, data_range 1, averaged over
    channels) then averaged inside the region mask. Regions absent from the
    label map are left out rather than reported as zero damage. Pass ``maps``
    (from :func:`damage_maps`) to reuse them.
    """
    assert labels.shape == clean.shape[:2], (labels.shape, clean.shape)
    absdiff, smap = maps if maps is not None else damage_maps(clean, degraded)
    out: dict[str, dict[str, float]] = {}
    for region, ids in REGION_GROUPS.items():
        m = np.isin(labels, ids)
        if m.any():
            out[region] = {"mad": float(absdiff[m].mean()), "ssim_loss": float(1.0 - smap[m].mean())}
    return out
