"""What stages ``train_enhancer`` and ``enhance`` need (built by ``fairsplat.sections.train_enhancer`` /
``fairsplat.sections.enhance``, where every key is documented with its reason)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fairsplat.enhancer.targets import UNET_TARGETS, VAE_TARGETS
from fairsplat.models.enhancer import EnhancerConfig
from fairsplat.train.accel import AccelConfig


@dataclass(frozen=True)
class LoraSpec:
    unet_rank: int = 16
    vae_rank: int = 8
    alpha: float | None = None  # None: peft's default lora_alpha (8), as pix2pix-turbo
    unet_targets: tuple[str, ...] = UNET_TARGETS
    vae_targets: tuple[str, ...] = VAE_TARGETS
    vae_parts: tuple[str, ...] = ("encoder", "decoder")


@dataclass(frozen=True)
class LossWeights:
    l1: float = 0.5
    lpips: float = 1.0
    gram: float = 0.07
    ssim: float = 0.0  # 1 - SSIM over the crop (not seed 001's; params say why the default uses it)
    net: str = "vgg"  # the ImageNet trunk LPIPS and the Gram matrices share (alex | vgg)


@dataclass(frozen=True)
class EnhancerTrainConfig:
    model: EnhancerConfig = field(default_factory=EnhancerConfig)
    sd_turbo_path: str | None = None
    prediction_type: str = "auto"  # SD-Turbo: auto keeps its scheduler's (the tiny model's is in model.scheduler)
    prompt: str = "a high quality photo of a face"
    lora: LoraSpec = field(default_factory=LoraSpec)
    steps: int = 20000
    batch: int = 2
    patch: int | None = None
    lr: float = 5e-5
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    warmup: int = 500
    schedule: str = "linear"
    grad_clip: float | None = 1.0
    grad_checkpointing: bool = False
    loss: LossWeights = field(default_factory=LossWeights)
    augment: bool = True
    augment_rate: float = 1.0  # on-the-fly firing probability = rate x prob, on pairs without a stored draw
    augmentations: Mapping[str, object] | None = None  # name -> degrade's StepParams; None = seed 001's defaults
    train_splits: tuple[str, ...] = ("train",)
    eval_splits: tuple[str, ...] = ("val", "test")
    watch_split: str | None = "val"
    watch_pairs: int = 16
    eval_batch: int = 8
    eval_every: int = 100
    checkpoint_every: int = 100
    log_every: int = 10
    seed: int = 0
    accel: AccelConfig = field(default_factory=lambda: AccelConfig(section="train_enhancer"))


@dataclass(frozen=True)
class EnhanceConfig:
    sources: tuple[str, ...] = ("ff", "refined")
    splits: tuple[str, ...] = ("test",)
    k: int = 1
    skip: int = 2
    max_targets: int | None = None
    batch: int = 8
    backend: str = "auto"
    grid_subjects: int = 2
