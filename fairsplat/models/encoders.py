"""Image encoders for the generator, a registry: ``ENCODERS = {"dinov2": ..., "vgg16": ...}``.

Every encoder maps images [B, 3, H, W] in [0, 1] to tokens [B, M, C] on a
``grid`` of h x w positions, fusing several depths by 1x1 convolutions as
LAM fuses DINOv2 blocks 4/11/17/23 (its ``DPTHead``: project each level,
concatenate, project to the output width).

- ``dinov2``: transformers' ``Dinov2Model``. A small random-init config by
  default (trained with the decoder: random frozen features carry nothing);
  or a pretrained local directory (``path``), then frozen as LAM freezes it.
- ``vgg16``: the ImageNet VGG16 trunk from the weights registry (the only
  pretrained image encoder obtainable offline here), frozen; levels relu3_3,
  relu4_3 and relu5_3 resampled to one grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class EncoderConfig:
    name: str = "dinov2"
    image_size: int = 128
    dim: int = 128  # token width after fusion
    # dinov2
    hidden: int = 192
    layers: int = 6
    heads: int = 3
    patch: int = 8
    levels: tuple[int, ...] = (1, 3, 5)  # blocks fused (0-based); LAM's ViT-L/14: (4, 11, 17, 23)
    path: str | None = None  # local pretrained Dinov2 directory (config.json + weights)
    train: str = "auto"  # auto: train when random-init, freeze when pretrained | yes | no
    # vgg16
    grid: int = 16  # token grid side for vgg16

    def trainable(self, pretrained: bool) -> bool:
        return {"auto": not pretrained, "yes": True, "no": False}[self.train]

    def stores_features(self) -> bool:
        """Whether this encoder has a frozen trunk whose levels a FeatureStore can hold.

        Known from the config alone, so a stage can skip loading every crop when there is nothing to store.
        """
        return self.name == "vgg16" and not self.trainable(pretrained=True)


class LevelFusion(nn.Module):
    """LAM's fusion: 1x1 conv per level, concatenate, 1x1 conv to ``dim``."""

    def __init__(self, in_dims: tuple[int, ...], dim: int) -> None:
        super().__init__()
        self.projects = nn.ModuleList(nn.Conv2d(c, c, 1) for c in in_dims)
        self.output_conv = nn.Conv2d(sum(in_dims), dim, 1)

    def forward(self, levels: list[Tensor]) -> Tensor:  # each [B, C_i, h, w] -> [B, h*w, dim]
        fused = self.output_conv(torch.cat([p(x) for p, x in zip(self.projects, levels)], dim=1))
        return fused.flatten(2).transpose(1, 2)


class Dinov2Encoder(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        from transformers import Dinov2Config, Dinov2Model

        if cfg.path:
            self.model = Dinov2Model.from_pretrained(cfg.path, local_files_only=True)
        else:
            conf = Dinov2Config(hidden_size=cfg.hidden, num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
                                patch_size=cfg.patch, image_size=cfg.image_size, mlp_ratio=4)  # fmt: skip
            self.model = Dinov2Model(conf)
        conf = self.model.config
        if max(cfg.levels) >= conf.num_hidden_layers:
            raise ValueError(f"encoder levels {cfg.levels}: the model has {conf.num_hidden_layers} blocks")
        self.levels, self.patch = cfg.levels, conf.patch_size
        self.grid = (cfg.image_size // self.patch,) * 2
        self.fusion = LevelFusion((conf.hidden_size,) * len(cfg.levels), cfg.dim)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        self.model.requires_grad_(cfg.trainable(pretrained=bool(cfg.path)))

    def forward(self, images: Tensor) -> Tensor:  # [B, 3, H, W] in [0, 1] -> [B, h*w, dim]
        out = self.model((images - self.mean) / self.std, output_hidden_states=True)
        h, w = images.shape[-2] // self.patch, images.shape[-1] // self.patch
        # hidden_states[0] is the embedding; block i's output is hidden_states[i + 1]; drop CLS
        levels = [out.hidden_states[i + 1][:, 1:].transpose(1, 2).unflatten(2, (h, w)) for i in self.levels]
        return self.fusion(levels)


VGG_LEVELS = (15, 22, 29)  # relu3_3, relu4_3, relu5_3 in torchvision's vgg16().features
VGG_DIMS = (256, 512, 512)


class Vgg16Encoder(nn.Module):
    """Frozen by default: its levels are then rounded to float16 and may come from a ``FeatureStore``
    (``fairsplat.models.feature_store``; a stage attaches one), the same numbers either way."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        from fairsplat.weights.backbones import vgg16_features

        self.trunk = vgg16_features(pretrained=True)[: VGG_LEVELS[-1] + 1]
        self.frozen_trunk = not cfg.trainable(pretrained=True)
        self.trunk.requires_grad_(not self.frozen_trunk).eval()
        self.grid = (cfg.grid, cfg.grid)
        self.fusion = LevelFusion(VGG_DIMS, cfg.dim)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        self.store = None  # a FeatureStore, attached by the stage (never saved with the model)

    def train(self, mode: bool = True) -> Vgg16Encoder:  # the frozen trunk stays in eval mode
        super().train(mode)
        self.trunk.eval()
        return self

    def signature(self) -> str:
        """What the trunk's levels depend on besides the image: the store's key space."""
        from fairsplat.models.feature_store import STORE_VERSION
        from fairsplat.weights.store import entry

        return f"vgg16:{entry('lpips_vgg').sha256}:{VGG_LEVELS}:{self.grid}:nhwc:bilinear-aa:fp16:v{STORE_VERSION}"

    def trunk_levels(self, images: Tensor) -> list[Tensor]:  # [B, 3, H, W] -> per level [B, C_i, grid, grid]
        # NHWC: oneDNN's convolutions run ~1.3-1.5x faster on this CPU than on NCHW input (bench/README "Generator")
        x = ((images - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        levels = []
        for i, layer in enumerate(self.trunk):
            x = layer(x)
            if i in VGG_LEVELS:
                levels.append(F.interpolate(x, size=self.grid, mode="bilinear", align_corners=False, antialias=True).contiguous())
        return [lv.half().float() for lv in levels] if self.frozen_trunk else levels

    def forward(self, images: Tensor) -> Tensor:  # [B, 3, H, W] in [0, 1] -> [B, grid^2, dim]
        if self.frozen_trunk and self.store is not None:
            levels = self.store.get(images, self.trunk_levels)
        elif self.frozen_trunk:
            with torch.no_grad():
                levels = self.trunk_levels(images)
        else:
            levels = self.trunk_levels(images)
        return self.fusion(levels)


def encoder_input(x: Tensor, side: int) -> Tensor:  # [N, 3, H, W] -> [N, 3, side, side]
    """The encoder's view of the sources (LAM encodes at 504 px and renders at 512); a feature store
    keys its entries on exactly this tensor."""
    if x.shape[-1] != side or x.shape[-2] != side:
        x = torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    return x


ENCODERS: dict[str, type[nn.Module]] = {"dinov2": Dinov2Encoder, "vgg16": Vgg16Encoder}


def build_encoder(cfg: EncoderConfig) -> nn.Module:
    if cfg.name not in ENCODERS:
        raise ValueError(f"encoder {cfg.name!r}: choose from {', '.join(ENCODERS)}")
    if cfg.path and not (Path(cfg.path) / "config.json").is_file():
        raise FileNotFoundError(f"encoder path {cfg.path}: no config.json (a local Dinov2 checkpoint directory)")
    return ENCODERS[cfg.name](cfg)
