"""Attributes -> posed Gaussians -> images: the differentiable path every generator loss goes through."""

from __future__ import annotations

import torch
from torch import Tensor

from fairsplat.avatar.avatar import Avatar
from fairsplat.avatar.binding import AvatarBinding
from fairsplat.avatar.render import render_batch
from fairsplat.labels import LABEL
from fairsplat.models.lam import Attributes
from fairsplat.splat.frames import quat_multiply


def local_frames(binding: AvatarBinding, attrs: Attributes) -> tuple[Tensor, Tensor]:
    """Predicted residuals on the binding's base Gaussians: local quats [B, G, 4] and log-scales [B, G, 3]."""
    quats = quat_multiply(binding.base_quats.expand_as(attrs.quats), attrs.quats)
    return quats, binding.base_log_scales + attrs.log_scales


def render_targets(
    binding: AvatarBinding,
    attrs: Attributes,  # [B, G, ...]
    batch: dict[str, Tensor],  # shape [B, S], target_expr/pose/transl/viewmat/K
    size: int,
    backend: str = "auto",
    with_skin: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None]:  # rgb [B, 3, S, S], alpha [B, 1, S, S], skin [B, 1, S, S] or None
    """Render each avatar at its target's tracked FLAME parameters and camera, over mid-grey.

    ``with_skin`` composites one more channel, 1 on Gaussians of the skin
    region, so ΔITA is measured on the avatar's own skin, wherever it lands.
    """
    attrs = Attributes(*(t.float() for t in attrs))  # the rasteriser and the losses run in fp32
    quats, log_scales = local_frames(binding, attrs)
    means, quats, scales = binding.pose(batch["shape"], batch["target_expr"], batch["target_pose"],
                                        batch["target_transl"], attrs.offsets, quats, log_scales)  # fmt: skip
    colors = attrs.colors
    bg = torch.full((colors.shape[-1],), 0.5)
    if with_skin:
        skin = (binding.labels == LABEL["skin"]).to(colors)[None, :, None].expand(colors.shape[0], -1, 1)
        colors = torch.cat([colors, skin], dim=-1)
        bg = torch.tensor([0.5, 0.5, 0.5, 0.0])
    img, alpha = render_batch(means, quats, scales, colors, attrs.opacities, batch["target_viewmat"],
                              batch["target_K"], size, bg, backend)  # fmt: skip
    img = img.permute(0, 3, 1, 2)  # [B, D, S, S]
    skin_map = img[:, 3:4] if with_skin else None
    return img[:, :3], alpha[:, None], skin_map


def to_avatar(binding: AvatarBinding, attrs: Attributes, shape: Tensor, i: int = 0) -> Avatar:
    """Sample ``i`` of a batch of predicted attributes as an :class:`Avatar` (detached, CPU)."""
    quats, log_scales = local_frames(binding, attrs)
    d = lambda t: t[i].detach().float().cpu()  # noqa: E731
    return Avatar(binding, d(attrs.offsets), d(quats), d(log_scales), d(attrs.colors), d(attrs.opacities),
                  shape[i].detach().float().cpu())  # fmt: skip
