"""Dense reference compositor: every Gaussian against every pixel, as plainly as possible.

Why it exists: it is the "obviously correct" twin of the tiled compositors
(gsplat keeps a pure-torch twin of each CUDA op for the same reason). No tiles,
no boxes, no early exit per tile; one global depth sort per camera and the
front-to-back loop of 3DGS written out literally, with torch autograd for
gradients. Only for tiny scenes: cost is O(C * N * H * W).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .project import ALPHA_MAX, ALPHA_THRESHOLD, T_STOP

MAX_WORK = 20_000_000
"""Largest C * N * H * W accepted; beyond that use the tiled backend."""


def _composite_camera(
    means2d: Tensor,  # [N, 2]
    conics: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    features: Tensor,  # [N, D]
    order: Tensor,  # [K] indices of alive Gaussians, front to back
    width: int,
    height: int,
) -> tuple[Tensor, Tensor]:  # [H, W, D], [H, W, 1]
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    px, py = xs.to(means2d) + 0.5, ys.to(means2d) + 0.5  # [H, W] pixel centres
    trans = torch.ones(height, width, dtype=means2d.dtype)  # [H, W]
    done = torch.zeros(height, width, dtype=torch.bool)
    acc = torch.zeros(height, width, features.shape[-1], dtype=features.dtype)  # [H, W, D]
    for g in order.tolist():
        dx = means2d[g, 0] - px  # [H, W]
        dy = means2d[g, 1] - py
        a, b, c = conics[g]
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        alpha = torch.clamp_max(opacities[g] * torch.exp(-sigma), ALPHA_MAX)
        hit = ~done & (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
        next_t = trans * (1.0 - alpha)
        stop = hit & (next_t <= T_STOP)  # gsplat: this Gaussian is not added, the pixel is finished
        done = done | stop
        hit = hit & ~stop
        weight = torch.where(hit, alpha * trans, torch.zeros_like(alpha))  # [H, W]
        acc = acc + weight[..., None] * features[g]
        trans = torch.where(hit, next_t, trans)
    return acc, (1.0 - trans)[..., None]


def composite_dense(
    means2d: Tensor,  # [C, N, 2]
    conics: Tensor,  # [C, N, 3]
    opacities: Tensor,  # [C, N]
    features: Tensor,  # [C, N, D]
    depths: Tensor,  # [C, N]
    alive: Tensor,  # [C, N] bool
    width: int,
    height: int,
) -> tuple[Tensor, Tensor]:  # features [C, H, W, D] (no background), alpha [C, H, W, 1]
    """Front-to-back compositing of all alive Gaussians, globally depth-sorted (stable: ties by index)."""
    C, N = depths.shape
    if C * N * height * width > MAX_WORK:
        raise ValueError(f"dense backend: C*N*H*W = {C * N * height * width} > {MAX_WORK}; use backend='torch'")
    if means2d.is_cuda:
        raise ValueError("dense backend: CPU tensors only (it is a reference, not a renderer)")
    colours, alphas = [], []
    for cam in range(C):
        order = torch.argsort(depths[cam].detach(), stable=True)  # [N] front to back
        order = order[alive[cam][order]]
        f, a = _composite_camera(means2d[cam], conics[cam], opacities[cam], features[cam], order, width, height)
        colours.append(f)
        alphas.append(a)
    return torch.stack(colours), torch.stack(alphas)
