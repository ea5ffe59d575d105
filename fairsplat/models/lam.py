"""LAM's canonical Gaussian attribute generator (seed 002): point queries, joint attention, attribute heads.

- ``PointEmbed``: xyz plus sin/cos at 2^k·π·xyz (k = 0..7) -> Linear -> LayerNorm.
- ``JointBlock``: SD3/MM-DiT joint attention over point tokens and image
  tokens, each stream with its own projections and feed-forward. The layer
  names are diffusers' ``Attention`` names, which LAM uses and adapters
  target by name: ``to_q``, ``to_k``, ``to_v``, ``to_out.0`` (points) and
  ``add_q_proj``, ``add_k_proj``, ``add_v_proj``, ``to_add_out`` (image);
  the last block has no image-stream output (``context_pre_only``).
- ``attention="cross"`` keeps every layer and name but lets the point
  queries attend to the image tokens only (the image tokens still attend to
  everything): the cost becomes linear in the number of points, which is
  what fits two CPU cores. ``joint`` is LAM's.
- ``GaussianHeads``: a shared MLP, then one Linear per attribute with LAM's
  activations and initialisation: colour sigmoid; log-scale residual clamped;
  offset (sigmoid - 0.5) x 2 x max, starting at zero; opacity sigmoid starting
  at 0.1; rotation normalised, starting at identity.

No adapter code lives here (DESIGN.md §2): peft attaches LoRA by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ATTENTION_MODES = ("joint", "cross")


@dataclass(frozen=True)
class DecoderConfig:
    width: int = 128
    blocks: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0
    octaves: int = 8  # Fourier frequencies 2^k·π, k = 0..octaves-1 (LAM: 8)
    attention: str = "cross"
    image_dim: int = 128  # width of the encoder's tokens

    def __post_init__(self) -> None:
        if self.attention not in ATTENTION_MODES:
            raise ValueError(f"attention {self.attention!r}: choose from {', '.join(ATTENTION_MODES)}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not a multiple of heads {self.heads}")


def fourier_features(xyz: Tensor, octaves: int) -> Tensor:  # [..., 3] -> [..., 3 + 6 * octaves]
    """[xyz, sin(2^k π xyz), cos(2^k π xyz)] for k = 0..octaves-1 (NeRF's encoding, as LAM)."""
    freqs = math.pi * 2.0 ** torch.arange(octaves, dtype=xyz.dtype, device=xyz.device)  # [O]
    ang = (xyz[..., None, :] * freqs[:, None]).flatten(-2)  # [..., O * 3]
    return torch.cat([xyz, torch.sin(ang), torch.cos(ang)], dim=-1)


class PointEmbed(nn.Module):
    def __init__(self, width: int, octaves: int = 8) -> None:
        super().__init__()
        self.octaves = octaves
        self.proj = nn.Linear(3 + 6 * octaves, width)
        self.norm = nn.LayerNorm(width)

    def forward(self, xyz: Tensor) -> Tensor:  # [B, G, 3] -> [B, G, W]
        return self.norm(self.proj(fourier_features(xyz, self.octaves)))


class PointImageAttention:
    """A diffusers attention processor: joint (or point-to-image) attention of the two streams."""

    def __init__(self, mode: str = "joint") -> None:
        self.mode = mode

    def __call__(self, attn, hidden_states: Tensor, encoder_hidden_states: Tensor, attention_mask=None, **_):
        x, c = hidden_states, encoder_hidden_states  # [B, N, W] points, [B, M, W] image
        h = attn.heads

        def split(t: Tensor) -> Tensor:  # [B, L, W] -> [B, H, L, W/H]
            return t.unflatten(-1, (h, -1)).transpose(1, 2)

        def merge(t: Tensor) -> Tensor:  # [B, H, L, d] -> [B, L, H*d]
            return t.transpose(1, 2).flatten(2)

        q, k, v = attn.norm_q(split(attn.to_q(x))), attn.norm_k(split(attn.to_k(x))), split(attn.to_v(x))
        kc, vc = attn.norm_added_k(split(attn.add_k_proj(c))), split(attn.add_v_proj(c))
        keys, values = torch.cat([k, kc], 2), torch.cat([v, vc], 2)
        if self.mode == "joint":
            out_x = F.scaled_dot_product_attention(q, keys, values)
        else:
            out_x = F.scaled_dot_product_attention(q, kc, vc)
        out_x = attn.to_out[1](attn.to_out[0](merge(out_x)))
        if attn.context_pre_only:
            return out_x, None
        qc = attn.norm_added_q(split(attn.add_q_proj(c)))
        out_c = attn.to_add_out(merge(F.scaled_dot_product_attention(qc, keys, values)))
        return out_x, out_c


class JointBlock(nn.Module):
    """Pre-norm joint attention + per-stream feed-forward; ``last`` drops the image stream's output."""

    def __init__(self, cfg: DecoderConfig, last: bool) -> None:
        super().__init__()
        from diffusers.models.attention import FeedForward
        from diffusers.models.attention_processor import Attention

        w = cfg.width
        self.last = last
        self.norm1, self.norm1_context = nn.LayerNorm(w), nn.LayerNorm(w)
        self.attn = Attention(query_dim=w, added_kv_proj_dim=w, dim_head=w // cfg.heads, heads=cfg.heads, out_dim=w,
                              context_pre_only=last, bias=True, qk_norm="rms_norm", eps=1e-6,
                              processor=PointImageAttention(cfg.attention))  # fmt: skip
        self.norm2 = nn.LayerNorm(w)
        self.ff = FeedForward(w, w, mult=cfg.mlp_ratio, activation_fn="gelu-approximate")
        if not last:
            self.norm2_context = nn.LayerNorm(w)
            self.ff_context = FeedForward(w, w, mult=cfg.mlp_ratio, activation_fn="gelu-approximate")

    def forward(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:  # [B, N, W], [B, M, W]
        ax, ac = self.attn(self.norm1(x), encoder_hidden_states=self.norm1_context(c))
        x = x + ax
        x = x + self.ff(self.norm2(x))
        if not self.last:
            c = c + ac
            c = c + self.ff_context(self.norm2_context(c))
        return x, c


class PointDecoder(nn.Module):
    """Point queries -> per-point features, attending to image tokens through ``blocks`` joint blocks."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = PointEmbed(cfg.width, cfg.octaves)
        self.image_proj = nn.Linear(cfg.image_dim, cfg.width) if cfg.image_dim != cfg.width else nn.Identity()
        self.blocks = nn.ModuleList(JointBlock(cfg, last=i == cfg.blocks - 1) for i in range(cfg.blocks))
        self.norm_out = nn.LayerNorm(cfg.width)
        self.checkpointing = False

    def forward(self, points: Tensor, tokens: Tensor) -> Tensor:  # [B, G, 3], [B, M, C] -> [B, G, W]
        x, c = self.embed(points), self.image_proj(tokens)
        for block in self.blocks:
            if self.checkpointing and self.training:
                x, c = torch.utils.checkpoint.checkpoint(block, x, c, use_reentrant=False)
            else:
                x, c = block(x, c)
        return self.norm_out(x)


@dataclass(frozen=True)
class HeadsConfig:
    hidden: int = 128
    max_offset: float = 0.01  # metres (points) the offset head can reach; LAM's (sigmoid - 0.5) x 0.2 in its units
    max_log_scale: float = 1.5  # |log-scale residual| bound: scale within e^±1.5 of the binding's
    init_opacity: float = 0.1  # LAM starts every Gaussian at opacity 0.1


class Attributes(NamedTuple):
    """Per-Gaussian canonical attributes of a batch of avatars."""

    offsets: Tensor  # [B, G, 3]
    quats: Tensor  # [B, G, 4] unit wxyz local rotation residual
    log_scales: Tensor  # [B, G, 3] residual on the binding's log-scale
    colors: Tensor  # [B, G, 3] in (0, 1)
    opacities: Tensor  # [B, G] in (0, 1)


class GaussianHeads(nn.Module):
    def __init__(self, width: int, cfg: HeadsConfig = HeadsConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.mlp = nn.Sequential(nn.Linear(width, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.hidden), nn.GELU())
        self.color, self.scale, self.offset = nn.Linear(cfg.hidden, 3), nn.Linear(cfg.hidden, 3), nn.Linear(cfg.hidden, 3)
        self.opacity, self.rotation = nn.Linear(cfg.hidden, 1), nn.Linear(cfg.hidden, 4)
        for head in (self.scale, self.offset, self.rotation):  # start exactly at the binding's Gaussians
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        nn.init.constant_(self.opacity.bias, math.log(cfg.init_opacity / (1 - cfg.init_opacity)))
        with torch.no_grad():
            self.rotation.bias[0] = 1.0  # identity quaternion (w, x, y, z)

    def forward(self, feats: Tensor) -> Attributes:  # [B, G, W]
        h = self.mlp(feats)
        return activate(self.cfg, self.offset(h), self.rotation(h), self.scale(h), self.color(h), self.opacity(h))


def activate(cfg: HeadsConfig, offset: Tensor, rotation: Tensor, scale: Tensor, color: Tensor, opacity: Tensor) -> Attributes:
    """LAM's output activations on raw head outputs [B, G, 3 / 4 / 3 / 3 / 1]."""
    return Attributes(
        offsets=(torch.sigmoid(offset) - 0.5) * 2.0 * cfg.max_offset,
        quats=F.normalize(rotation, dim=-1),
        log_scales=scale.clamp(-cfg.max_log_scale, cfg.max_log_scale),
        colors=torch.sigmoid(color),
        opacities=torch.sigmoid(opacity)[..., 0],
    )


class ConstantAvatar(nn.Module):
    """The no-input baseline: one set of raw attributes for everyone, through the same activations.

    Fitted to the training set, it is the best single avatar with no image
    input (the mean face, animated by each target's FLAME parameters): what a
    generator must beat to show it reads the photo at all.
    """

    def __init__(self, n_gaussians: int, cfg: HeadsConfig = HeadsConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.raw = nn.ParameterDict({
            "offset": nn.Parameter(torch.zeros(n_gaussians, 3)),
            "rotation": nn.Parameter(torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(n_gaussians, 1)),
            "scale": nn.Parameter(torch.zeros(n_gaussians, 3)),
            "color": nn.Parameter(torch.zeros(n_gaussians, 3)),
            "opacity": nn.Parameter(torch.full((n_gaussians, 1), math.log(cfg.init_opacity / (1 - cfg.init_opacity)))),
        })  # fmt: skip

    def forward(self, images: Tensor, points: Tensor) -> Attributes:  # the images are ignored, by design
        b = points.shape[0]
        r = {k: v[None].expand(b, -1, -1) for k, v in self.raw.items()}
        return activate(self.cfg, r["offset"], r["rotation"], r["scale"], r["color"], r["opacity"])
