"""Skin colour: the ITA of a skin region, and delta-ITA between two images of one face.

ITA = atan2(L* - 50, b*) in degrees, from the median L* and median b* of the
skin pixels under a mask, exactly as :func:`fairsplat.faces.ita.measure_ita`
computes it (same CIELAB conversion, clipping and L* trim: see that module for
why medians of L* and b* and not a median of per-pixel ITA). High ITA is light
skin.

**delta-ITA** = ITA(pred) - ITA(ref), over the same mask. Sign convention:
**positive means the output is LIGHTER than the reference** (a render that
whitens its subject), negative that it is darker. It is the fairness figure of
a generator: a method that drifts skin tone towards the training majority shows
positive delta-ITA on dark types and ~0 on light ones.

Batched: images ``[B, 3, H, W]`` float in [0, 1] (or uint8 ``[B, H, W, 3]``
arrays), masks ``[B, 1, H, W]`` (``> 0.5`` is skin); one value per image, None
where fewer than ``min_pixels`` usable skin pixels remain.
"""

from __future__ import annotations

import numpy as np
import torch

from fairsplat.faces.ita import measure_ita
from fairsplat.metrics.image import to_images, to_masks


def _uint8_hwc(images) -> np.ndarray:  # -> uint8 [B, H, W, 3]
    """Images as measure_ita wants them (its clipping thresholds are in 8-bit units)."""
    if isinstance(images, np.ndarray) and images.dtype == np.uint8:
        return images[None] if images.ndim == 3 else images
    x = to_images(images).detach().float().clamp(0, 1)
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _bool_masks(masks, like: np.ndarray) -> np.ndarray:  # -> bool [B, H, W]
    ref = torch.empty(like.shape[0], 3, *like.shape[1:3])
    return (to_masks(masks, ref)[:, 0] > 0.5).cpu().numpy()


def ita(images, masks, min_pixels: int = 50) -> list[float | None]:
    """ITA in degrees of each image's masked skin; None where too few pixels."""
    rgb = _uint8_hwc(images)
    skin = _bool_masks(masks, rgb)
    out = []
    for img, m in zip(rgb, skin):
        res = measure_ita(img, m, min_pixels=min_pixels)
        out.append(None if res is None else res.ita)
    return out


def delta_ita(pred, ref, masks, min_pixels: int = 50) -> list[float | None]:
    """ITA(pred) - ITA(ref) per image over one mask; positive = pred is LIGHTER than ref."""
    a, b = ita(pred, masks, min_pixels), ita(ref, masks, min_pixels)
    return [None if x is None or y is None else x - y for x, y in zip(a, b)]
