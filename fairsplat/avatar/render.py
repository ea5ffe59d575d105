"""Render a batch of different Gaussian sets, one camera each, through ``rasterization``.

Why a loop over the batch: ``rasterization`` renders one set of Gaussians
into C cameras, while a training batch holds B different avatars (one per
subject), each seen by its own target camera. The loop costs nothing extra on
the CPU backend (it renders image by image anyway) and keeps every backend
(torch, gsplat, dense) usable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from fairsplat.splat.raster import rasterization


def render_batch(
    means: Tensor,  # [B, G, 3] world
    quats: Tensor,  # [B, G, 4]
    scales: Tensor,  # [B, G, 3] linear
    colors: Tensor,  # [B, G, D] features (RGB, or RGB + label channels)
    opacities: Tensor,  # [B, G] in [0, 1]
    viewmats: Tensor,  # [B, 4, 4] world-to-camera, OpenCV
    Ks: Tensor,  # [B, 3, 3]
    size: int,
    background: float | Tensor | None = 0.5,  # grey level, [D] or [B, D]; None = no background (premultiplied)
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:  # [B, H, W, D], [B, H, W]
    b, _, d = colors.shape
    if background is None:
        bg = None
    elif isinstance(background, Tensor):
        bg = background.to(colors).expand(b, d) if background.ndim < 2 else background.to(colors)
    else:
        bg = colors.new_full((b, d), float(background))
    images, alphas = [], []
    for i in range(b):
        img, alpha, _ = rasterization(
            means[i], F.normalize(quats[i], dim=-1), scales[i], opacities[i], colors[i], viewmats[i : i + 1],
            Ks[i : i + 1], size, size, backgrounds=None if bg is None else bg[i : i + 1], backend=backend,
        )  # fmt: skip
        images.append(img[0])
        alphas.append(alpha[0, ..., 0])
    return torch.stack(images), torch.stack(alphas)
