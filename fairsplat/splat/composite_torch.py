"""Tiled compositing in vectorised torch: the GPU path, and the CPU path without numba.

Why this shape: each tile's depth-sorted list is padded to a common length L
and a chunk of tiles is evaluated at once as a [tiles, pixels, L] block, so
the work is a handful of large tensor ops and autograd supplies the exact
backward. Sequential front-to-back compositing becomes

    T_excl = exclusive cumprod(1 - alpha)           (transmittance in front)
    keep   = T_incl > T_STOP                        (gsplat's exclusive stop rule)

Because T only decreases along the list, ``T_incl <= T_STOP`` holds from the
first Gaussian that would cross the threshold onwards, so ``keep`` drops
exactly that Gaussian and everything behind it, as the sequential loop does.
Skipped Gaussians (sigma < 0 or alpha < 1/255) get alpha = 0 and change nothing.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .project import ALPHA_MAX, ALPHA_THRESHOLD, T_STOP
from .tiles import TileBins

CHUNK_ELEMS = 1 << 24
"""Upper bound on tiles * pixels * L per chunk (~64 MB per float32 temporary)."""


def _pixel_centres(tile_ids: Tensor, bins: TileBins) -> Tensor:  # [T] -> [T, P, 2]
    """Pixel-centre coordinates of every pixel slot of each tile (edge tiles overhang the image)."""
    ts = bins.tile_size
    per_cam = bins.tile_width * bins.tile_height
    r = tile_ids % per_cam
    origin = torch.stack([r % bins.tile_width, r // bins.tile_width], -1) * ts  # [T, 2]
    iy, ix = torch.meshgrid(torch.arange(ts, device=tile_ids.device), torch.arange(ts, device=tile_ids.device), indexing="ij")
    local = torch.stack([ix, iy], -1).reshape(-1, 2)  # [P, 2]
    return (origin[:, None, :] + local[None]).float() + 0.5  # [T, P, 2]


def _composite_chunk(
    tile_ids: Tensor,  # [T] global tile index (camera * tiles_per_cam + tile)
    xy: Tensor,  # [G, 2]
    conics: Tensor,  # [G, 3]
    opacities: Tensor,  # [G]
    features: Tensor,  # [G, D]
    bins: TileBins,
) -> tuple[Tensor, Tensor]:  # [T, P, D], [T, P]
    start = bins.offsets[tile_ids]  # [T]
    count = bins.offsets[tile_ids + 1] - start  # [T]
    L = int(count.max())
    slot = torch.arange(L, device=xy.device)
    present = slot[None] < count[:, None]  # [T, L]
    idx = (start[:, None] + slot[None]).clamp_max(max(bins.flatten_ids.numel() - 1, 0))  # [T, L]
    gid = bins.flatten_ids[idx].long()  # [T, L]
    pix = _pixel_centres(tile_ids, bins)  # [T, P, 2]
    d = xy[gid][:, None, :, :] - pix[:, :, None, :]  # [T, P, L, 2]
    a, b, c = conics[gid].unbind(-1)  # [T, L] each
    dx, dy = d[..., 0], d[..., 1]  # [T, P, L]
    sigma = 0.5 * (a[:, None] * dx * dx + c[:, None] * dy * dy) + b[:, None] * dx * dy  # [T, P, L]
    alpha = torch.clamp_max(opacities[gid][:, None] * torch.exp(-sigma), ALPHA_MAX)  # [T, P, L]
    hit = present[:, None] & (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
    alpha = torch.where(hit, alpha, torch.zeros_like(alpha))
    one_minus = 1.0 - alpha
    t_incl = torch.cumprod(one_minus, dim=-1)  # [T, P, L]
    t_excl = torch.cat([torch.ones_like(t_incl[..., :1]), t_incl[..., :-1]], -1)
    keep = (t_incl > T_STOP).detach()  # [T, P, L]
    weights = torch.where(keep, alpha * t_excl, torch.zeros_like(alpha))  # [T, P, L]
    feat = torch.einsum("tpl,tld->tpd", weights, features[gid])  # [T, P, D]
    final_t = torch.where(keep, one_minus, torch.ones_like(one_minus)).prod(-1)  # [T, P]
    return feat, 1.0 - final_t


def composite_torch(
    means2d: Tensor,  # [C, N, 2]
    conics: Tensor,  # [C, N, 3]
    opacities: Tensor,  # [C, N]
    features: Tensor,  # [C, N, D]
    radii: Tensor,  # [C, N, 2] (unused: the padded block evaluates whole tiles)
    bins: TileBins,
    width: int,
    height: int,
) -> tuple[Tensor, Tensor]:  # features [C, H, W, D] (no background), alpha [C, H, W, 1]
    """Differentiable tiled compositing with plain torch ops (any device)."""
    del radii
    C, N, D = features.shape
    ts, tw, th = bins.tile_size, bins.tile_width, bins.tile_height
    P = ts * ts
    n_tiles = C * tw * th
    flat = [t.reshape(C * N, t.shape[-1]) for t in (means2d, conics, features)]
    opac = opacities.reshape(C * N)
    counts = bins.offsets[1:] - bins.offsets[:-1]  # [n_tiles]
    busy = torch.nonzero(counts > 0).squeeze(1)  # [B] tiles with work
    busy = busy[torch.argsort(counts[busy])]  # similar lengths share a chunk: less padding
    lens = counts[busy].tolist()
    feats, alphas, i = [], [], 0
    while i < len(lens):
        j = i + 1
        while j < len(lens) and (j + 1 - i) * P * lens[j] <= CHUNK_ELEMS:
            j += 1
        f, a = _composite_chunk(busy[i:j], flat[0], flat[1], opac, flat[2], bins)
        feats.append(f)
        alphas.append(a)
        i = j
    feat_tiles = features.new_zeros(n_tiles, P, D)  # [n_tiles, P, D]
    alpha_tiles = features.new_zeros(n_tiles, P)  # [n_tiles, P]
    if feats:
        feat_tiles = feat_tiles.index_copy(0, busy, torch.cat(feats))
        alpha_tiles = alpha_tiles.index_copy(0, busy, torch.cat(alphas))
    else:  # nothing visible: keep the outputs in the graph so backward() gives zeros, as the numba path does
        alpha_tiles = alpha_tiles + 0.0 * (flat[0].sum() + flat[1].sum() + opac.sum() + flat[2].sum())
    feat_img = feat_tiles.reshape(C, th, tw, ts, ts, D).permute(0, 1, 3, 2, 4, 5).reshape(C, th * ts, tw * ts, D)
    alpha_img = alpha_tiles.reshape(C, th, tw, ts, ts).permute(0, 1, 3, 2, 4).reshape(C, th * ts, tw * ts, 1)
    return feat_img[:, :height, :width], alpha_img[:, :height, :width]
