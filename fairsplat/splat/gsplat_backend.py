"""gsplat 1.5.3 backend: the CUDA rasteriser behind our `rasterization` signature.

Why a thin wrapper: our torch backend reproduces gsplat's semantics (pinhole,
classic mode, unpacked), so on a GPU machine callers switch with
``backend="gsplat"`` and get the same images and gradients, faster. gsplat is an
optional extra (``fairsplat[gsplat]``): its CUDA kernels compile on first use
and nothing in it rasterises on a CPU, hence the guarded import.
"""

from __future__ import annotations

from torch import Tensor


class GsplatUnavailable(RuntimeError):
    """gsplat is not installed, or there is no CUDA device to run it on."""


def _import_gsplat():  # noqa: ANN202
    try:
        from gsplat.rendering import rasterization as gs_rasterization
    except ImportError as err:
        raise GsplatUnavailable(
            "backend='gsplat' needs gsplat 1.5.3 (pip install 'fairsplat[gsplat]') and CUDA; "
            "use backend='torch' on CPU"
        ) from err
    return gs_rasterization


def available() -> bool:
    """True when gsplat imports and a CUDA device exists (what backend='auto' checks)."""
    import torch

    if not torch.cuda.is_available():
        return False
    try:
        _import_gsplat()
    except GsplatUnavailable:
        return False
    return True


def render_gsplat(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D] or [C, N, D]; with sh_degree: [N, K, 3] or [C, N, K, 3]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    *,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    sh_degree: int | None = None,
    tile_size: int = 16,
    backgrounds: Tensor | None = None,  # [C, D]
    render_mode: str = "RGB",
    rasterize_mode: str = "classic",
    channel_chunk: int = 32,
) -> tuple[Tensor, Tensor, dict]:  # [C, H, W, D(+1)], [C, H, W, 1], meta
    """Call ``gsplat.rendering.rasterization`` unpacked, pinhole, with the options our torch backend mirrors."""
    gs_rasterization = _import_gsplat()
    if not means.is_cuda:
        raise GsplatUnavailable(f"backend='gsplat': tensors must be on a CUDA device (means is on {means.device})")
    return gs_rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip, eps2d=eps2d, sh_degree=sh_degree,
        packed=False, tile_size=tile_size, backgrounds=backgrounds, render_mode=render_mode,
        rasterize_mode=rasterize_mode, channel_chunk=channel_chunk, camera_model="pinhole",
    )  # fmt: skip
