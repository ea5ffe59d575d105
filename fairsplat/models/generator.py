"""The one-shot feed-forward generator: K photos of a person -> canonical Gaussian attributes.

    tokens_k = encoder(image_k)                         # [B*K, M, C]
    feats_k  = decoder(canonical points, tokens_k)      # [B*K, G, W]  LAM's point queries
    feats    = mean_k feats_k                           # [B, G, W]    seed 003's parameter-free K-source pool
    attrs    = heads(feats)                             # offsets, rotations, scales, colours, opacities

The pool is over the per-source point features, which live in the same
canonical point space whatever the source's pose or view: order-invariant,
the identity for K = 1, no parameters, any K at inference.

The model does not know the head: callers pass the canonical points
(``AvatarBinding.canonical(shape)``), and ``GeneratorConfig`` records the
binding spec so that a saved generator rebuilds its avatars' layout.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from fairsplat.avatar.binding import BindingSpec
from fairsplat.models.encoders import EncoderConfig, build_encoder, encoder_input
from fairsplat.models.lam import Attributes, DecoderConfig, GaussianHeads, HeadsConfig, PointDecoder


@dataclass(frozen=True)
class GeneratorConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    binding: BindingSpec = field(default_factory=BindingSpec)

    def to_json(self) -> dict[str, Any]:
        return {"encoder": asdict(self.encoder), "decoder": asdict(self.decoder), "heads": asdict(self.heads),
                "binding": self.binding.to_json()}  # fmt: skip

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GeneratorConfig:
        enc = {**d["encoder"], "levels": tuple(d["encoder"]["levels"])}
        return cls(EncoderConfig(**enc), DecoderConfig(**d["decoder"]), HeadsConfig(**d["heads"]),
                   BindingSpec(**d["binding"]))  # fmt: skip


class Generator(nn.Module):
    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        if cfg.decoder.image_dim != cfg.encoder.dim:
            raise ValueError(f"decoder image_dim {cfg.decoder.image_dim} != encoder dim {cfg.encoder.dim}")
        self.cfg = cfg
        self.encoder = build_encoder(cfg.encoder)
        self.decoder = PointDecoder(cfg.decoder)
        self.heads = GaussianHeads(cfg.decoder.width, cfg.heads)

    def gradient_checkpointing_enable(self) -> None:
        """Recompute each decoder block in the backward pass (memory for time), as LAM's tf_grad_ckpt."""
        self.decoder.checkpointing = True

    def features(self, images: Tensor, points: Tensor) -> Tensor:
        """images [B, K, 3, H, W], points [B, G, 3] -> pooled point features [B, G, W]."""
        b, k = images.shape[:2]
        tokens = self.encoder(encoder_input(images.flatten(0, 1), self.cfg.encoder.image_size))  # [B*K, M, C]
        queries = points.repeat_interleave(k, dim=0)  # [B*K, G, 3], sources of one subject share its points
        feats = self.decoder(queries, tokens)  # [B*K, G, W]
        return feats.unflatten(0, (b, k)).mean(dim=1)

    def forward(self, images: Tensor, points: Tensor) -> Attributes:
        return self.heads(self.features(images, points))


def build_generator(cfg) -> nn.Module:
    """The network of a generator config: LAM-style (``GeneratorConfig``) or seed 003's UV one (``UVGeneratorConfig``)."""
    if getattr(cfg, "arch", "lam") == "uv":
        from fairsplat.models.uv.generator import UVGenerator

        return UVGenerator(cfg)
    return Generator(cfg)


def config_from_json(d: dict[str, Any]):
    """A saved ``config.json`` -> its generator config (``arch`` says which; absent = LAM-style)."""
    if d.get("arch") == "uv":
        from fairsplat.models.uv.generator import UVGeneratorConfig

        return UVGeneratorConfig.from_json(d)
    return GeneratorConfig.from_json(d)


def load_generator(model_dir, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild from ``config.json`` and load ``model.safetensors`` (every name and shape must match)."""
    from pathlib import Path

    from fairsplat.io.checkpoint import CheckpointError, load_weights, read_config

    meta = read_config(model_dir)
    try:
        cfg = config_from_json(meta)
    except (KeyError, TypeError, ValueError) as err:  # a config.json of something else, or hand-edited
        raise CheckpointError(f"{Path(model_dir) / 'config.json'}: not a generator config ({type(err).__name__}: {err})") from None
    model = build_generator(cfg)
    load_weights(model, Path(model_dir) / "model.safetensors")
    return model.to(device).eval(), meta
