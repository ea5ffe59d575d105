"""`rasterization`: gsplat 1.5.3's entry point, with swappable backends (BACKENDS).

Why one function with gsplat's signature: pipeline code calls
``rasterization(...)`` once and runs on a 2-core CPU (``torch``: tiled, numba
kernels on CPU, vectorised torch on GPU), on a CUDA box (``gsplat``) or, in
tests, against the dense reference (``dense``), with no other change.

Semantics follow gsplat (pinhole, unpacked; classic or antialiased; N-channel
features or SH coefficients with sh_degree): render_mode "D" is the
accumulated depth sum(w_i z_i), "ED" the expected depth D / alpha; the depth
channel comes last; backgrounds are blended as out + (1 - alpha) * bg and the
depth channel's background is 0.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from functools import partial
from numbers import Integral

import torch
from torch import Tensor

from . import composite_numba, gsplat_backend
from .composite_torch import composite_torch
from .dense import composite_dense
from .project import Projected, project_gaussians
from .sh import MAX_DEGREE as MAX_SH_DEGREE
from .serial import single_threaded, torch_threads
from .sh import sh_to_color
from .tiles import TileBins, bin_tiles

RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")
RASTERIZE_MODES = ("classic", "antialiased")
DEFAULTS = {"near_plane": 0.01, "far_plane": 1e10, "eps2d": 0.3, "radius_clip": 0.0, "rasterize_mode": "classic"}
"""gsplat 1.5.3's defaults for the projection options."""


def _check(name: str, x: Tensor, shape: tuple) -> None:
    """Shape check; -1 matches any size. Names the argument, as gsplat's asserts do not."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() != len(shape) or any(s != -1 and s != d for s, d in zip(shape, x.shape)):
        raise ValueError(f"{name}: shape {tuple(x.shape)}, expected {tuple('*' if s == -1 else s for s in shape)}")


def _check_colors(colors: Tensor, C: int, N: int, sh_degree: int | None) -> None:
    """[N, D] / [C, N, D] features, or [N, K, 3] / [C, N, K, 3] SH coefficients when sh_degree is set."""
    if sh_degree is None:
        _check("colors", colors, (C, N, -1) if isinstance(colors, Tensor) and colors.dim() == 3 else (N, -1))
        return
    if not (isinstance(sh_degree, Integral) and 0 <= sh_degree <= MAX_SH_DEGREE):
        raise ValueError(f"sh_degree: expected None or an int in 0..{MAX_SH_DEGREE}, got {sh_degree!r}")
    _check("colors", colors, (C, N, -1, 3) if isinstance(colors, Tensor) and colors.dim() == 4 else (N, -1, 3))
    if colors.shape[-2] < (sh_degree + 1) ** 2:
        raise ValueError(f"colors: sh_degree {sh_degree} needs >= {(sh_degree + 1) ** 2} coefficients, got {colors.shape[-2]}")


def _check_options(opts: dict) -> None:
    """The scalar options; only the gsplat features this project implements are accepted."""
    w, h, ts = opts["width"], opts["height"], opts["tile_size"]
    if not all(isinstance(v, Integral) and not isinstance(v, bool) and v > 0 for v in (w, h, ts)):
        raise ValueError(f"width/height/tile_size: positive ints expected, got {w!r}, {h!r}, {ts!r}")
    if opts["render_mode"] not in RENDER_MODES:
        raise ValueError(f"render_mode: {opts['render_mode']!r} not in {RENDER_MODES}")
    if opts["rasterize_mode"] not in RASTERIZE_MODES:
        raise ValueError(f"rasterize_mode: {opts['rasterize_mode']!r} not in {RASTERIZE_MODES}")
    if not opts["near_plane"] > 0:  # also catches NaN
        raise ValueError(f"near_plane: must be > 0 (depths sort as float bits), got {opts['near_plane']}")
    if not opts["far_plane"] > opts["near_plane"]:
        raise ValueError(f"far_plane: must be > near_plane, got {opts['far_plane']}")
    if not (math.isfinite(opts["eps2d"]) and opts["eps2d"] >= 0):
        raise ValueError(f"eps2d: must be a finite number >= 0, got {opts['eps2d']}")
    if not (math.isfinite(opts["radius_clip"]) and opts["radius_clip"] >= 0):
        raise ValueError(f"radius_clip: must be a finite number >= 0, got {opts['radius_clip']}")
    unsupported = {"packed": True, "sparse_grad": True, "absgrad": True, "distributed": True}
    for key, bad in unsupported.items():
        if opts.get(key) is bad:
            raise ValueError(f"{key}: only {key}=False is implemented (unpacked, dense gradients on one device)")
    if opts["camera_model"] != "pinhole":
        raise ValueError(f"camera_model: only 'pinhole' is implemented, got {opts['camera_model']!r}")


def validate_inputs(
    means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
    viewmats: Tensor, Ks: Tensor, backgrounds: Tensor | None = None, sh_degree: int | None = None, **opts,
) -> None:  # fmt: skip
    """Cheap checks at the top so that bad input fails loudly, naming the culprit.

    Non-finite values are refused: a NaN or inf parameter would otherwise
    propagate silently into every pixel its box touches (and a NaN depth
    breaks the sort), so a clear error is the only defined result.
    """
    _check("means", means, (-1, 3))
    N = means.shape[0]
    _check("quats", quats, (N, 4))
    _check("scales", scales, (N, 3))
    _check("opacities", opacities, (N,))
    _check("viewmats", viewmats, (-1, 4, 4))
    C = viewmats.shape[0]
    _check("Ks", Ks, (C, 3, 3))
    _check_colors(colors, C, N, sh_degree)
    if backgrounds is not None:
        _check("backgrounds", backgrounds, (C, 3 if sh_degree is not None else colors.shape[-1]))
    _check_options(opts)
    named = {"means": means, "quats": quats, "scales": scales, "opacities": opacities, "colors": colors,
             "viewmats": viewmats, "Ks": Ks, "backgrounds": backgrounds}  # fmt: skip
    for name, x in named.items():
        if x is None or not x.is_floating_point():
            if x is not None:
                raise ValueError(f"{name}: expected a floating-point tensor, got {x.dtype}")
            continue
        finite = torch.isfinite(x)
        if not bool(finite.all()):
            kind = "NaN" if bool(torch.isnan(x).any()) else "inf"
            raise ValueError(f"{name}: contains {kind} (first at flat index {int((~finite).flatten().nonzero()[0])})")


def _sh_colors(colors: Tensor, means: Tensor, viewmats: Tensor, sh_degree: int | None) -> Tensor:  # -> [C, N, D]
    """Per-camera colours; SH coefficients are evaluated towards each camera centre, as gsplat does."""
    C, N = viewmats.shape[0], means.shape[0]
    if sh_degree is None:
        return colors if colors.dim() == 3 else colors[None].expand(C, N, -1)
    rot, t = viewmats[:, :3, :3], viewmats[:, :3, 3]  # [C, 3, 3], [C, 3]
    centres = -torch.einsum("cji,cj->ci", rot, t)  # [C, 3] camera centres in world: -R^T t
    dirs = means[None] - centres[:, None]  # [C, N, 3]
    coeffs = colors if colors.dim() == 4 else colors[None].expand(C, -1, -1, -1)  # [C, N, K, 3]
    return sh_to_color(sh_degree, dirs, coeffs)


def _features(cols: Tensor, depths: Tensor, render_mode: str) -> Tensor:  # [C, N, D] -> [C, N, D'] to composite
    """Depth (camera z) is just one more channel, last, as in gsplat."""
    if render_mode in ("D", "ED"):
        return depths[..., None]
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


def _project(means, quats, scales, opacities, viewmats, Ks, width, height, o: dict) -> Projected:  # noqa: ANN001
    return project_gaussians(
        means, quats, scales, opacities, viewmats, Ks, width, height, o["near_plane"], o["far_plane"], o["eps2d"],
        radius_clip=o["radius_clip"], antialiased=o["rasterize_mode"] == "antialiased",
    )  # fmt: skip


def render_tiled(
    means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
    viewmats: Tensor, Ks: Tensor, width: int, height: int, *,
    tile_size: int = 16, render_mode: str = "RGB", backgrounds: Tensor | None = None,
    sh_degree: int | None = None, compositor: str = "auto", **opts,
) -> tuple[Tensor, Tensor, dict]:  # fmt: skip
    """The `torch` backend: torch projection + tile binning + a tiled compositor.

    compositor: "numba" (CPU kernels), "torch" (vectorised, any device) or
    "auto" (numba on CPU when installed, else torch). ``opts``: near_plane,
    far_plane, eps2d, radius_clip, rasterize_mode (defaults as gsplat's).
    """
    o = {**DEFAULTS, **opts}
    composite = _pick_compositor(compositor, means.device)
    # CPU (numba) path: the torch parts are many small ops, run with one thread (see serial.py);
    # the vectorised path works on big tensors and keeps every torch thread.
    serial = single_threaded if composite is composite_numba.composite_numba else (lambda run, *a: run(*a))
    box = {}

    def project(means, quats, scales, opacities, colors, viewmats, Ks):  # noqa: ANN001, ANN202
        proj = box["proj"] = _project(means, quats, scales, opacities, viewmats, Ks, width, height, o)
        feats = _features(_sh_colors(colors, means, viewmats, sh_degree), proj.depths, render_mode)  # [C, N, D']
        return proj.means2d, proj.conics, proj.depths, proj.opacities, feats

    means2d, conics, depths, opac, feats = serial(project, means, quats, scales, opacities, colors, viewmats, Ks)
    proj = Projected(means2d, conics, depths, box["proj"].radii, opac, box["proj"].alive)
    with torch_threads(1) if serial is single_threaded else nullcontext():
        bins = bin_tiles(means2d, proj.radii, depths, width, height, tile_size)
    accum, alpha = composite(means2d, conics, opac, feats, proj.radii, bins, width, height)
    out, alpha = serial(lambda a, t, bg: (_finish(a, t, bg, render_mode), t), accum, alpha, backgrounds)
    return out, alpha, _meta(proj, bins, width, height, tile_size)


def render_dense(
    means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
    viewmats: Tensor, Ks: Tensor, width: int, height: int, *,
    tile_size: int = 16, render_mode: str = "RGB", backgrounds: Tensor | None = None,
    sh_degree: int | None = None, **opts,
) -> tuple[Tensor, Tensor, dict]:  # fmt: skip
    """The `dense` reference backend: same projection, no tiles, no boxes (tiny scenes only)."""
    o = {**DEFAULTS, **opts}
    proj = _project(means, quats, scales, opacities, viewmats, Ks, width, height, o)
    feats = _features(_sh_colors(colors, means, viewmats, sh_degree), proj.depths, render_mode)
    alive = proj.alive  # no box and no screen test: every live Gaussian meets every pixel
    if o["radius_clip"] > 0:  # a cull that changes the image (gsplat's), so the reference applies it too
        alive = alive & (proj.radii > 0).any(-1)
    accum, alpha = composite_dense(proj.means2d, proj.conics, proj.opacities, feats, proj.depths, alive, width, height)
    return _finish(accum, alpha, backgrounds, render_mode), alpha, _meta(proj, None, width, height, tile_size)


BACKENDS = {
    "torch": render_tiled,
    "gsplat": gsplat_backend.render_gsplat,
    "dense": render_dense,
}
"""Every value takes rasterization's arguments minus ``backend`` (options as keywords)."""

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
    colors: Tensor,  # [N, D] or [C, N, D]; with sh_degree: [N, K, 3] or [C, N, K, 3]
    viewmats: Tensor,  # [C, 4, 4] world-to-camera, OpenCV
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    sh_degree: int | None = None,
    packed: bool = False,
    tile_size: int = 16,
    backgrounds: Tensor | None = None,  # [C, D]
    render_mode: str = "RGB",
    sparse_grad: bool = False,
    absgrad: bool = False,
    rasterize_mode: str = "classic",
    channel_chunk: int = 32,
    distributed: bool = False,
    camera_model: str = "pinhole",
    backend: str = "auto",
) -> tuple[Tensor, Tensor, dict]:  # [C, H, W, D(+1)], [C, H, W, 1], meta
    """Render N Gaussians into C cameras: gsplat 1.5.3's ``rasterization``, argument for argument.

    Arguments keep gsplat's names, order and defaults, except ``packed``
    (default False: the unpacked layout is the only one implemented, for every
    backend, so meta looks the same whichever backend ran). Not implemented,
    and refused with a clear error rather than ignored: packed, sparse_grad,
    absgrad, distributed, camera models other than pinhole. ``channel_chunk``
    only matters to gsplat (our compositors take any channel count at once).

    Returns render_colors, render_alphas and meta (means2d, conics, radii, depths, ...;
    ``meta["means2d"]`` is in the graph, so ``retain_grad()`` on it works).
    """
    opts = {"near_plane": near_plane, "far_plane": far_plane, "radius_clip": radius_clip, "eps2d": eps2d,
            "rasterize_mode": rasterize_mode}  # fmt: skip
    validate_inputs(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds, sh_degree,
                    width=width, height=height, tile_size=tile_size, render_mode=render_mode, packed=packed,
                    sparse_grad=sparse_grad, absgrad=absgrad, distributed=distributed, camera_model=camera_model,
                    **opts)  # fmt: skip
    width, height, tile_size = int(width), int(height), int(tile_size)  # numpy ints are fine, but not downstream
    name = resolve_backend(backend, means.device)
    if name == "gsplat":
        opts["channel_chunk"] = channel_chunk
    return BACKENDS[name](means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                          tile_size=tile_size, render_mode=render_mode, backgrounds=backgrounds,
                          sh_degree=sh_degree, **opts)  # fmt: skip
