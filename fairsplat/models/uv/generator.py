"""Seed 003's feed-forward generator in FLAME UV space (SpatialAvatar-0 §2.2): ``train_ff.arch: uv``.

    tokens_k        = encoder(image_k)                       # [B*K, M, C]   the registry's encoder
    dense_k, cls_k  = DPTHead(tokens_k)                      # [B*K, F, h, w], [B*K, D]
    uv_k            = uv_warp(dense_k, source k's FLAME + camera)   # [B*K, F + 1, R, R] (+ visibility)
    feat_k          = StyleUV(uv_k, cls_k)                   # [B*K, 32, R, R] modulated convolutions
    feat, cls       = mean_k feat_k, mean_k cls_k            # parameter-free K-source pool (or attention, row G)
    raw             = five heads([feat_g, γ(d_target)])      # per valid texel g
    raw            += residual(feat, code_target)            # FLAME-conditioned: position, rotation, scale, colour
    attrs           = LAM's activations(raw)                 # one Gaussian per valid texel = the UV binding's slots

Per-texel heads (1x1) keep ∂(attrs_g)/∂γ per texel, which is what the
Hutchinson Jacobian penalty estimates. The model does not know the head:
``context`` (``fairsplat.ff.uv_context``) carries each source's posed texel
points and normals, cameras, the texel layout, and per-target view direction
and FLAME code. With T = n·B targets (one pooled avatar rendered at n
targets), the features are computed once and the heads run per target.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fairsplat.avatar.binding import BindingSpec
from fairsplat.models.encoders import EncoderConfig, build_encoder, encoder_input
from fairsplat.models.lam import Attributes, HeadsConfig, activate
from fairsplat.models.uv.ops import HARMONIC_DIM, ModConv2d, gather_uv, harmonic, uv_warp

POOLS = ("mean", "attention")
RESIDUAL_DIM = 13  # position 3, rotation 4, scale 3, colour 3 (no shape, no opacity: seed 003)


@dataclass(frozen=True)
class UVConfig:
    dense_dim: int = 32  # DPT head output channels
    style_dim: int = 64  # pooled token width (modulates the UV generator)
    channels: int = 32  # UV generator width
    out_dim: int = 32  # UV feature channels (seed 003: 32)
    head_hidden: int = 32  # hidden width of each of the five heads
    residual: bool = True  # the FLAME-conditioned residual head (row E drops it)
    code_dim: int = 22  # expression + neck/jaw/eye pose; 112 at FLAME scale (100 + 12)
    pool: str = "mean"  # mean (seed 003) | attention (row G)

    def __post_init__(self) -> None:
        if self.pool not in POOLS:
            raise ValueError(f"pool {self.pool!r}: choose from {', '.join(POOLS)}")


@dataclass(frozen=True)
class UVGeneratorConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    uv: UVConfig = field(default_factory=UVConfig)
    heads: HeadsConfig = field(default_factory=lambda: HeadsConfig(max_offset=0.5))  # offsets in triangle units
    binding: BindingSpec = field(default_factory=lambda: BindingSpec(kind="uv", resolution=32))
    arch: str = "uv"

    def __post_init__(self) -> None:
        if self.binding.kind != "uv":
            raise ValueError(f"the UV generator needs a uv binding, got {self.binding.kind!r}")

    def to_json(self) -> dict[str, Any]:
        return {"arch": "uv", "encoder": asdict(self.encoder), "uv": asdict(self.uv), "heads": asdict(self.heads),
                "binding": self.binding.to_json()}  # fmt: skip

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> UVGeneratorConfig:
        enc = {**d["encoder"], "levels": tuple(d["encoder"]["levels"])}
        return cls(EncoderConfig(**enc), UVConfig(**d["uv"]), HeadsConfig(**d["heads"]), BindingSpec(**d["binding"]))


class DPTHead(nn.Module):
    """A small DPT-style head: token grid -> conv, 2x upsample, conv -> dense features; mean token -> style."""

    def __init__(self, dim: int, dense_dim: int, style_dim: int) -> None:
        super().__init__()
        self.reassemble = nn.Conv2d(dim, dense_dim, 3, padding=1)
        self.fuse = nn.Conv2d(dense_dim, dense_dim, 3, padding=1)
        self.cls = nn.Linear(dim, style_dim)

    def forward(self, tokens: Tensor, grid: tuple[int, int]) -> tuple[Tensor, Tensor]:  # [N, M, C]
        x = tokens.transpose(1, 2).unflatten(2, grid)  # [N, C, h, w]
        x = F.gelu(self.reassemble(x))
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.fuse(x), self.cls(tokens.mean(dim=1))  # [N, F, 2h, 2w], [N, D]


class StyleBlock(nn.Module):
    def __init__(self, cin: int, cout: int, style_dim: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = ModConv2d(cin, cout, 3, style_dim), ModConv2d(cout, cout, 3, style_dim)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        return F.leaky_relu(self.conv2(F.leaky_relu(self.conv1(x, style), 0.2), style), 0.2)


class StyleUV(nn.Module):
    """A two-level StyleUNet: modulated convolutions at R and R/2, skip connection, 1x1 to ``out_dim``."""

    def __init__(self, cin: int, cfg: UVConfig) -> None:
        super().__init__()
        c, d = cfg.channels, cfg.style_dim
        self.inp = nn.Conv2d(cin, c, 1)
        self.down, self.mid, self.up = StyleBlock(c, c, d), StyleBlock(c, c, d), StyleBlock(2 * c, c, d)
        self.out = nn.Conv2d(c, cfg.out_dim, 1)

    def forward(self, uv: Tensor, style: Tensor) -> Tensor:  # [N, Cin, R, R], [N, D] -> [N, out, R, R]
        x0 = self.down(self.inp(uv), style)
        x1 = self.mid(F.avg_pool2d(x0, 2), style)
        x1 = F.interpolate(x1, size=x0.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(self.up(torch.cat([x0, x1], 1), style))


class AttentionPool(nn.Module):
    """Row G's alternative to the mean: per-texel softmax weights over K from a 1x1 score (and for tokens)."""

    def __init__(self, dim: int, style_dim: int) -> None:
        super().__init__()
        self.score, self.token_score = nn.Conv2d(dim, 1, 1), nn.Linear(style_dim, 1)

    def forward(self, feats: Tensor, cls: Tensor) -> tuple[Tensor, Tensor]:  # [B, K, C, R, R], [B, K, D]
        b, k = feats.shape[:2]
        w = self.score(feats.flatten(0, 1)).unflatten(0, (b, k)).softmax(dim=1)  # [B, K, 1, R, R]
        wt = self.token_score(cls).softmax(dim=1)  # [B, K, 1]
        return (feats * w).sum(1), (cls * wt).sum(1)


def mean_pool(feats: Tensor, cls: Tensor) -> tuple[Tensor, Tensor]:
    """Seed 003's K-source pool: order-invariant, identity for K = 1, no parameters."""
    return feats.mean(dim=1), cls.mean(dim=1)


def _mlp(cin: int, hidden: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, hidden), nn.GELU(), nn.Linear(hidden, cout))


class ResidualHead(nn.Module):
    """FLAME-conditioned residuals: 1x1 modulated convs on the UV features, style = MLP(expression, pose, eyes)."""

    def __init__(self, cfg: UVConfig) -> None:
        super().__init__()
        self.style = _mlp(cfg.code_dim, cfg.style_dim, cfg.style_dim)
        self.conv1 = ModConv2d(cfg.out_dim, cfg.channels, 1, cfg.style_dim)
        self.conv2 = ModConv2d(cfg.channels, RESIDUAL_DIM, 1, cfg.style_dim, demodulate=False)
        nn.init.zeros_(self.conv2.weight)  # starts at zero: the residuals grow only where they pay

    def forward(self, feats: Tensor, code: Tensor) -> Tensor:  # [T, C, R, R], [T, code] -> [T, 13, R, R]
        s = self.style(code)
        return self.conv2(F.leaky_relu(self.conv1(feats, s), 0.2), s)


@dataclass
class UVOutput:
    attrs: Attributes  # [T, G, ...]
    gamma: Tensor  # [T, G, 27] the broadcast view embedding (requires grad when asked)
    residual: Tensor | None  # [T, G, 13] raw residuals (shrinkage term)


class UVGenerator(nn.Module):
    needs_context = True  # callers pass ``fairsplat.ff.uv_context.uv_context(...)``

    def __init__(self, cfg: UVGeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        u = cfg.uv
        self.encoder = build_encoder(cfg.encoder)
        self.dpt = DPTHead(cfg.encoder.dim, u.dense_dim, u.style_dim)
        self.uvgen = StyleUV(u.dense_dim + 1, u)
        self.pool = AttentionPool(u.out_dim, u.style_dim) if u.pool == "attention" else None
        cin = u.out_dim + HARMONIC_DIM
        self.offset, self.rotation, self.scale = _mlp(cin, u.head_hidden, 3), _mlp(cin, u.head_hidden, 4), _mlp(cin, u.head_hidden, 3)
        self.color, self.opacity = _mlp(cin, u.head_hidden, 3), _mlp(cin, u.head_hidden, 1)
        for head in (self.offset, self.rotation, self.scale):  # start at the binding's own Gaussians (LAM's init)
            nn.init.zeros_(head[2].weight)
            nn.init.zeros_(head[2].bias)
        p = cfg.heads.init_opacity
        nn.init.constant_(self.opacity[2].bias, math.log(p / (1 - p)))
        with torch.no_grad():
            self.rotation[2].bias[0] = 1.0
        self.residual = ResidualHead(u) if u.residual else None

    def uv_features(self, images: Tensor, ctx: dict[str, Tensor]) -> Tensor:  # [B, K, 3, S, S] -> [B, 32, R, R]
        b, k, _, size, _ = images.shape
        tokens = self.encoder(encoder_input(images.flatten(0, 1), self.cfg.encoder.image_size))  # [B*K, M, C]
        dense, cls = self.dpt(tokens, tuple(self.encoder.grid))
        r = self.cfg.binding.resolution
        uv = uv_warp(dense, ctx["src_points"].flatten(0, 1), ctx["src_normals"].flatten(0, 1), ctx["src_viewmat"].flatten(0, 1),
                     ctx["src_K"].flatten(0, 1), size, ctx["texel"], r)  # fmt: skip
        feats = self.uvgen(uv, cls).unflatten(0, (b, k))  # [B, K, 32, R, R]
        cls = cls.unflatten(0, (b, k))
        feats, _ = self.pool(feats, cls) if self.pool is not None else mean_pool(feats, cls)
        return feats

    def decode(self, feats: Tensor, ctx: dict[str, Tensor], grad_gamma: bool = False) -> UVOutput:
        """Pooled UV features [B, C, R, R] -> attributes of T = n·B targets (``ctx['dir']`` [T, 3], ``ctx['code']``)."""
        t = ctx["dir"].shape[0]
        if t != feats.shape[0]:
            feats = feats.repeat_interleave(t // feats.shape[0], dim=0)  # [T, C, R, R]
        tex = gather_uv(feats, ctx["texel"])  # [T, G, C]
        gamma = harmonic(ctx["dir"])[:, None].expand(-1, tex.shape[1], -1).clone()  # [T, G, 27]
        if grad_gamma:
            gamma.requires_grad_(True)
        h = torch.cat([tex, gamma], dim=-1)
        raw = [self.offset(h), self.rotation(h), self.scale(h), self.color(h)]
        res = None
        if self.residual is not None:
            res = gather_uv(self.residual(feats, ctx["code"]), ctx["texel"])  # [T, G, 13]
            raw = [x + d for x, d in zip(raw, res.split([3, 4, 3, 3], dim=-1))]
        attrs = activate(self.cfg.heads, *raw, self.opacity(h))
        return UVOutput(attrs, gamma, res)

    def forward(self, images: Tensor, points: Tensor | None = None, context: dict[str, Tensor] | None = None) -> Attributes:
        """The generator interface (``points`` unused: the texels are the queries)."""
        if context is None:
            raise ValueError("the UV generator needs the sources' tracks: call it through fairsplat.ff.uv_context.predict")
        return self.decode(self.uv_features(images, context), context).attrs
