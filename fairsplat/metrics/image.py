"""Image metrics: PSNR, SSIM and MS-SSIM, full-image and masked, one value per image.

Inputs are float tensors ``[B, 3, H, W]`` in [0, 1] (numpy uint8 ``[H, W, 3]`` /
``[B, H, W, 3]`` pass through :func:`to_images`); masks ``[B, 1, H, W]`` in [0, 1]
(:func:`to_masks`). Every function returns ``[B]``; all are differentiable, so
SSIM doubles as a training loss.

**Why masked variants.** This project composites every crop on a constant
mid-grey background. Background pixels are trivially right in a render, so
full-image PSNR/SSIM grow with the share of background, whatever the face
looks like (papers that composite on white or black report PSNR inflated the
same way). The masked variants score the head only; we report both, since the
full-image numbers are the ones comparable with the literature.
- masked PSNR: PSNR of the mask-weighted MSE, ``sum(m (x - y)^2) / (3 sum(m))``;
- masked SSIM / MS-SSIM: the mask-weighted mean of the SSIM (and contrast-
  structure) maps, the mask cropped to the maps' valid region.
An all-ones mask gives the unmasked value; an empty mask gives NaN (undefined).

**SSIM** is Wang et al. (2004): Gaussian window 11 px, sigma 1.5, K1 = 0.01,
K2 = 0.03, data range 1, population (not sample) covariances, the mean over the
*valid* region of the map (no padding) and over channels. That is exactly
``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1, channel_axis=-1)`` (which filters
with reflection and then crops 5 px, i.e. keeps the valid region). We write it
rather than call ``kornia.metrics.ssim`` because MS-SSIM needs the
contrast-structure map too, which kornia does not return (the tests check
kornia's valid-padding map agrees with ours).

**MS-SSIM** (Wang et al. 2003): 5 scales, weights (0.0448, 0.2856, 0.3001,
0.2363, 0.1333), 2x2 average pooling between scales; contrast-structure at the
first M - 1 scales and full SSIM at the last, each clamped at 1e-8 (~0) before
the weighted product (a negative value has no real fractional power, and 0 an
infinite gradient), per channel,
then averaged over channels. An 11 px window needs the coarsest scale to be at
least 11 px, so 5 scales need >= 176 px; this project's default 128 px crops fit
4 (128, 64, 32, 16). We use the scales that fit and renormalise their weights
to sum to 1; :func:`ms_ssim_scales` says how many (the metrics tables record it
beside the values, ``ms_ssim_scales``). Numbers at different scale counts are
therefore not comparable with each other.

**PSNR** is ``10 log10(1 / MSE)`` with the MSE floored at 1e-10, so identical
images give a finite 100 dB (JSON has no infinity) rather than inf.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

WINDOW, SIGMA, K1, K2 = 11, 1.5, 0.01, 0.03
MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MSE_FLOOR = 1e-10  # -> PSNR at most 100 dB


def to_images(x: Tensor | np.ndarray) -> Tensor:  # -> float [B, 3, H, W] in [0, 1]
    """A batch of images as a float tensor: numpy uint8/float [H, W, 3] or [B, H, W, 3], or a tensor."""
    if isinstance(x, np.ndarray):
        t = torch.from_numpy(x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32))
        t = t[None] if t.ndim == 3 else t
        x = t.permute(0, 3, 1, 2)  # [B, H, W, 3] -> [B, 3, H, W]
    x = x[None] if x.ndim == 3 else x
    assert x.ndim == 4 and x.shape[1] == 3, f"images: expected [B, 3, H, W], got {tuple(x.shape)}"
    return x


def to_masks(m: Tensor | np.ndarray | None, like: Tensor) -> Tensor | None:  # -> float [B, 1, H, W]
    """A mask batch ([H, W], [B, H, W] or [B, 1, H, W]; bool, uint8 0/255 or float) as ``[B, 1, H, W]``."""
    if m is None:
        return None
    if isinstance(m, np.ndarray):
        m = torch.from_numpy(m.astype(np.float32) / 255.0 if m.dtype == np.uint8 else m.astype(np.float32))
    m = m.to(like.dtype)
    m = m[None] if m.ndim == 2 else m
    m = m[:, None] if m.ndim == 3 else m
    assert m.shape[0] == like.shape[0] and m.shape[1] == 1 and m.shape[2:] == like.shape[2:], (m.shape, like.shape)
    return m


def _check(pred: Tensor, target: Tensor) -> None:
    assert pred.ndim == 4 and pred.shape[1] == 3, f"expected [B, 3, H, W], got {tuple(pred.shape)}"
    assert pred.shape == target.shape, (pred.shape, target.shape)


def _weighted_mean(x: Tensor, mask: Tensor | None) -> Tensor:  # [B, C, h, w], [B, 1, H, W] -> [B, C]
    """Mean over pixels, weighted by ``mask`` centre-cropped to ``x``'s size (NaN where it is empty)."""
    if mask is None:
        return x.mean(dim=(2, 3))
    dh, dw = (mask.shape[2] - x.shape[2]) // 2, (mask.shape[3] - x.shape[3]) // 2
    m = mask[:, :, dh : dh + x.shape[2], dw : dw + x.shape[3]]
    return (x * m).sum(dim=(2, 3)) / m.sum(dim=(2, 3))


# ----------------------------------------------------------------------------- PSNR


def mse(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:  # [B, 3, H, W] x2 -> [B]
    _check(pred, target)
    return _weighted_mean((pred - target).square(), mask).mean(1)


def psnr(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:  # -> [B] dB
    return 10 * torch.log10(1.0 / mse(pred, target, mask).clamp_min(MSE_FLOOR))


# ----------------------------------------------------------------------------- SSIM


def _window(dtype: torch.dtype, device: torch.device) -> Tensor:  # -> [WINDOW] normalised Gaussian
    r = torch.arange(WINDOW, dtype=dtype, device=device) - WINDOW // 2
    g = torch.exp(-(r**2) / (2 * SIGMA**2))
    return g / g.sum()


def _blur(x: Tensor, g: Tensor) -> Tensor:  # [B, C, H, W] -> [B, C, H - 10, W - 10] ("valid")
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def ssim_maps(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:  # -> 2 x [B, 3, H - 10, W - 10]
    """(SSIM map, contrast-structure map) over the valid region, data range 1."""
    _check(pred, target)
    assert min(pred.shape[2:]) >= WINDOW, f"SSIM needs at least {WINDOW} px, got {tuple(pred.shape[2:])}"
    g = _window(pred.dtype, pred.device)
    c1, c2 = K1**2, K2**2
    mx, my = _blur(pred, g), _blur(target, g)
    vx = _blur(pred * pred, g) - mx * mx
    vy = _blur(target * target, g) - my * my
    cov = _blur(pred * target, g) - mx * my
    cs = (2 * cov + c2) / (vx + vy + c2)
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    return lum * cs, cs


def ssim(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:  # -> [B]
    return _weighted_mean(ssim_maps(pred, target)[0], mask).mean(1)


def ms_ssim_scales(height: int, width: int) -> int:
    """How many of the 5 MS-SSIM scales fit: the coarsest must still hold an 11 px window."""
    n = 0
    while n < len(MS_WEIGHTS) and min(height, width) // 2**n >= WINDOW:
        n += 1
    return n


def ms_ssim(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:  # -> [B]
    n = ms_ssim_scales(*pred.shape[2:])
    assert n >= 1, f"MS-SSIM needs at least {WINDOW} px, got {tuple(pred.shape[2:])}"
    w = torch.tensor(MS_WEIGHTS[:n], dtype=pred.dtype, device=pred.device)
    w = w / w.sum()
    out = torch.ones(pred.shape[:2], dtype=pred.dtype, device=pred.device)  # [B, 3]
    for s in range(n):
        full, cs = ssim_maps(pred, target)
        v = _weighted_mean(full if s == n - 1 else cs, mask)  # [B, 3]
        out = out * v.clamp_min(1e-8) ** w[s]
        if s < n - 1:
            pred, target = F.avg_pool2d(pred, 2), F.avg_pool2d(target, 2)
            mask = None if mask is None else F.avg_pool2d(mask, 2)
    return out.mean(1)
