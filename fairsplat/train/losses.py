"""Loss terms shared by the avatar trainers (generator, LoRA, refinement), each a scalar.

Images are [B, 3, H, W] in [0, 1], masks and alphas [B, 1, H, W] in [0, 1].
The weights live in params; LAM's and seed 000's values are documented on the
sections that use them.
"""

from __future__ import annotations

from torch import Tensor

from fairsplat.metrics.image import ssim


def masked_l1(pred: Tensor, target: Tensor, mask: Tensor, eps: float = 1e-6) -> Tensor:
    """Mean |pred - target| inside the foreground: the photometric term LAM and seed 000 use."""
    return ((pred - target).abs() * mask).sum() / (3 * mask.sum() + eps)


def ssim_loss(pred: Tensor, target: Tensor) -> Tensor:
    """1 - SSIM over the whole crop (the grey background is the same in both, so it only adds signal)."""
    return 1.0 - ssim(pred, target).mean()


def mask_coverage(alpha: Tensor, mask: Tensor) -> Tensor:
    """Rendered opacity outside the foreground matte (seed 000's 'mask coverage': no halo, no floaters)."""
    return (alpha * (1.0 - mask)).mean()


def offset_regulariser(offsets: Tensor, max_offset: float) -> Tensor:
    """Mean squared offset as a fraction of its bound: keeps Gaussians on the FLAME surface (LAM, seed 000).

    Normalised by the bound so the weight means the same whatever the units
    (metres on points, triangle scales on the UV grid).
    """
    return (offsets / max_offset).pow(2).mean()


def lpips_loss(pred: Tensor, target: Tensor, net: str) -> Tensor:
    """Mean LPIPS with the real weights (``fairsplat.weights``); raises WeightsMissing without them."""
    from fairsplat.metrics.lpips import lpips_distance

    return lpips_distance(pred, target, net=net).mean()


def lpips_ready(net: str) -> tuple[bool, str | None]:
    """Whether the real LPIPS weights of ``net`` are here (a trainer can use LPIPS, and for the enhancer the
    Gram term on the same trunk); else the reason, which the trainers record in their metrics."""
    from fairsplat.weights import available

    name = f"lpips_{net}"
    return (True, None) if available(name) else (False, f"{name} weights absent (python -m fairsplat.weights fetch)")
