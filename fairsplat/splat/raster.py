"""`rasterization`: gsplat 1.5.3's entry point (the subset we use), with swappable backends.

Why one function with gsplat's signature: pipeline code calls
``rasterization(...)`` once and runs on a 2-core CPU (``torch``: tiled, numba
kernels on CPU, vectorised torch on GPU), on a CUDA box (``gsplat``) or, in
tests, against the dense reference (``dense``), with no other change.

Semantics follow gsplat (pinhole, classic, unpacked): render_mode "D" is the
accumulated depth sum(w_i z_i), "ED" the expected depth D / alpha; the depth
channel comes last; backgrounds are blended as out + (1 - alpha) * bg and the
depth channel's background is 0.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor

from . import composite_numba, gsplat_backend
from .composite_torch import composite_torch
from .dense import composite_dense
from .project import Projected, project_gaussians
from .tiles import TileBins, bin_tiles

RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")


def _check(name: str, x: Tensor, shape: tuple) -> None:
    """Shape check; -1 matches any size. Names the argument, as gsplat's asserts do not."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() != len(shape) or any(s != -1 and s != d for s, d in zip(shape, x.shape)):
        raise ValueError(f"{name}: shape {tuple(x.shape)}, expected {tuple('*' if s == -1 else s for s in shape)}")


def validate_inputs(
    means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
    viewmats: Tensor, Ks: Tensor, width: int, height: int, render_mode: str,
    backgrounds: Tensor | None, near_plane: float, tile_size: int,
) -> None:  # fmt: skip
    """Cheap checks at the top so that bad input fails loudly, naming the culprit."""
    _check("means", means, (-1, 3))
    N = means.shape[0]
    _check("quats", quats, (N, 4))
    _check("scales", scales, (N, 3))
    _check("opacities", opacities, (N,))
    _check("viewmats", viewmats, (-1, 4, 4))
    C = viewmats.shape[0]
    _check("Ks", Ks, (C, 3, 3))
    _check("colors", colors, (C, N, -1) if colors.dim() == 3 else (N, -1))
    if render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode: {render_mode!r} not in {RENDER_MODES}")
    if backgrounds is not None:
        _check("backgrounds", backgrounds, (C, colors.shape[-1]))
    if not all(isinstance(v, int) and v > 0 for v in (width, height, tile_size)):
        raise ValueError(f"width/height/tile_size: positive ints expected, got {width!r}, {height!r}, {tile_size!r}")
    if not near_plane > 0:
        raise ValueError(f"near_plane: must be > 0 (depths sort as float bits), got {near_plane}")
    named = {"means": means, "quats": quats, "scales": scales, "opacities": opacities, "colors": colors,
             "viewmats": viewmats, "Ks": Ks}  # fmt: skip
    if backgrounds is not None:
        named["backgrounds"] = backgrounds
    for name, x in named.items():
        if x.is_floating_point() and bool(torch.isnan(x).any()):
            raise ValueError(f"{name}: contains NaN")


def _features(colors: Tensor, depths: Tensor, render_mode: str) -> Tensor:  # -> [C, N, D'] channels to composite
    """Per-camera features; depth (camera z) is just one more channel, last, as in gsplat."""
    C, N = depths.shape
    if render_mode in ("D", "ED"):
        return depths[..., None]
    cols = colors if colors.dim() == 3 else colors[None].expand(C, N, -1)  # [C, N, D]
    if render_mode in ("RGB+D", "RGB+ED"):
        return torch.cat([cols, depths[..., None].to(cols.dtype)], -1)
    return cols


def _finish(accum: Tensor, alpha: Tensor, backgrounds: Tensor | None, render_mode: str) -> Tensor:
    """Blend the background (depth channel: 0) and turn D into ED where asked."""
    if backgrounds is not None:
        if render_mode in ("D", "ED"):
            backgrounds = backgrounds.new_zeros(backgrounds.shape[0], 1)
        elif render_mode in ("RGB+D", "RGB+ED"):
            backgrounds = torch.cat([backgrounds, backgrounds.new_zeros(backgrounds.shape[0], 1)], -1)
        accum = accum + (1.0 - alpha) * backgrounds[:, None, None, :]  # [C, H, W, D']
    if render_mode in ("ED", "RGB+ED"):
        accum = torch.cat([accum[..., :-1], accum[..., -1:] / alpha.clamp_min(1e-10)], -1)
    return accum


def _meta(proj: Projected, bins: TileBins | None, width: int, height: int, tile_size: int) -> dict:
    """gsplat's unpacked meta keys (those that exist for our subset)."""
    meta = {
        "camera_ids": None, "gaussian_ids": None, "radii": proj.radii, "means2d": proj.means2d,
        "depths": proj.depths, "conics": proj.conics, "opacities": proj.opacities,
        "width": width, "height": height, "tile_size": tile_size, "n_cameras": proj.depths.shape[0],
    }  # fmt: skip
    if bins is not None:
        meta.update(tile_width=bins.tile_width, tile_height=bins.tile_height, tiles_per_gauss=bins.tiles_per_gauss,
                    isect_ids=bins.isect_ids, flatten_ids=bins.flatten_ids, isect_offsets=bins.isect_offsets)  # fmt: skip
    return meta


def _pick_compositor(compositor: str, device: torch.device):  # noqa: ANN202
    if compositor == "auto":
        compositor = "numba" if device.type == "cpu" and composite_numba.AVAILABLE else "torch"
    return {"numba": composite_numba.composite_numba, "torch": composite_torch}[compositor]


def render_tiled(
    means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
    viewmats: Tensor, Ks: Tensor, width: int, height: int,
    near_plane: float = 0.01, far_plane: float = 1e10, eps2d: float = 0.3, tile_size: int = 16,
    render_mode: str = "RGB", backgrounds: Tensor | None = None, compositor: str = "auto",
) -> tuple[Tensor, Tensor, dict]:  # fmt: skip
    """The `torch` backend: torch projection + tile binning + a tiled compositor.

    compositor: "numba" (CPU kernels), "torch" (vectorised, any device) or
    "auto" (numba on CPU when installed, else torch).
    """
    proj = project_gaussians(means, quats, scales, opacities, viewmats, Ks, width, height, near_plane, far_plane, eps2d)
    feats = _features(colors, proj.depths, render_mode)  # [C, N, D']
    bins = bin_tiles(proj.means2d, proj.radii, proj.depths, width, height, tile_size)
    composite = _pick_compositor(compositor, means.device)
    accum, alpha = composite(proj.means2d, proj.conics, proj.opacities, feats, proj.radii, bins, width, height)
    return _finish(accum, alpha, backgrounds, render_mode), alpha, _meta(proj, bins, width, height, tile_size)


def render_dense(
    means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
    viewmats: Tensor, Ks: Tensor, width: int, height: int,
    near_plane: float = 0.01, far_plane: float = 1e10, eps2d: float = 0.3, tile_size: int = 16,
    render_mode: str = "RGB", backgrounds: Tensor | None = None,
) -> tuple[Tensor, Tensor, dict]:  # fmt: skip
    """The `dense` reference backend: same projection, no tiles, no boxes (tiny scenes only)."""
    proj = project_gaussians(means, quats, scales, opacities, viewmats, Ks, width, height, near_plane, far_plane, eps2d)
    feats = _features(colors, proj.depths, render_mode)
    accum, alpha = composite_dense(
        proj.means2d, proj.conics, proj.opacities, feats, proj.depths, proj.alive, width, height
    )
    return _finish(accum, alpha, backgrounds, render_mode), alpha, _meta(proj, None, width, height, tile_size)


BACKENDS = {
    "torch": render_tiled,
    "gsplat": gsplat_backend.render_gsplat,
    "dense": render_dense,
}
"""Every value takes rasterization's arguments minus ``backend``."""

COMPOSITORS = {"numba": partial(render_tiled, compositor="numba"), "torch": partial(render_tiled, compositor="torch")}
"""The two paths of the `torch` backend, forced (for tests and benchmarks)."""


def resolve_backend(backend: str, device: torch.device) -> str:
    """'auto' -> gsplat when CUDA tensors, CUDA and gsplat are all there, else torch."""
    if backend == "auto":
        return "gsplat" if device.type == "cuda" and gsplat_backend.available() else "torch"
    if backend not in BACKENDS:
        raise ValueError(f"backend: {backend!r} not in {('auto', *BACKENDS)}")
    return backend


def rasterization(
    means: Tensor,  # [N, 3] world
    quats: Tensor,  # [N, 4] wxyz, need not be normalised
    scales: Tensor,  # [N, 3] linear
    opacities: Tensor,  # [N] in [0, 1]
    colors: Tensor,  # [N, D] or [C, N, D]
    viewmats: Tensor,  # [C, 4, 4] world-to-camera, OpenCV
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    tile_size: int = 16,
    render_mode: str = "RGB",
    backgrounds: Tensor | None = None,  # [C, D]
    backend: str = "auto",
) -> tuple[Tensor, Tensor, dict]:  # [C, H, W, D(+1)], [C, H, W, 1], meta
    """Render N Gaussians into C cameras; the signature is a subset of gsplat.rasterization.

    Returns render_colors, render_alphas and meta (means2d, conics, radii, depths, ...;
    ``meta["means2d"]`` is in the graph, so ``retain_grad()`` on it works).
    """
    validate_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                    render_mode, backgrounds, near_plane, tile_size)  # fmt: skip
    fn = BACKENDS[resolve_backend(backend, means.device)]
    return fn(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
              near_plane=near_plane, far_plane=far_plane, eps2d=eps2d, tile_size=tile_size,
              render_mode=render_mode, backgrounds=backgrounds)  # fmt: skip
