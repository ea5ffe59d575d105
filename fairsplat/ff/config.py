"""What stage ``train_ff``'s library needs (built by ``fairsplat.sections.train_ff``, where every key is documented)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fairsplat.models.generator import GeneratorConfig
from fairsplat.train.accel import AccelConfig


@dataclass(frozen=True)
class LossWeights:
    l1: float = 1.0
    ssim: float = 0.2
    lpips: float = 1.0
    mask: float = 0.5
    offset: float = 0.1
    lpips_net: str = "alex"


@dataclass(frozen=True)
class UVLossWeights:
    """Seed 003's loss weights (documented on fairsplat/sections/train_ff.py's UV params)."""


    l1: float = 1.0
    ssim: float = 0.2
    ms_ssim: bool = False
    lpips: float = 1.0
    mask: float = 0.5
    box: float = 0.5
    tv_position: float = 0.05
    tv_scale: float = 0.05
    residual: float = 0.01
    jac: float = 0.1


@dataclass(frozen=True)
class PhaseConfig:
    name: str = "phase1"  # phase1: monocular-temporal | phase2: multi-view
    steps: int = 100
    lr: float = 1e-3
    anchor: float = 0.0  # L2-SP weight towards the phase-1 weights (phase 2)
    mix: float = 0.0  # share of cross-time pairs per micro-batch (phase 2)


@dataclass(frozen=True)
class UVTrainConfig:
    loss: UVLossWeights = field(default_factory=UVLossWeights)
    phase1: PhaseConfig = field(default_factory=PhaseConfig)
    phase2: PhaseConfig | None = field(default_factory=lambda: PhaseConfig("phase2", 50, 3e-4, 1e-3, 0.25))
    phase2_share: float = 0.25  # share of the training identities kept for phase 2 (disjoint from phase 1's)


@dataclass(frozen=True)
class FFConfig:
    model: GeneratorConfig = field(default_factory=GeneratorConfig)  # or UVGeneratorConfig (arch uv)
    arch: str = "lam"  # lam (seed 002) | uv (seed 003: fairsplat/ff/uv_run.py trains its two phases)
    uv: UVTrainConfig = field(default_factory=UVTrainConfig)
    size: int = 128
    steps: int = 600
    batch: int = 8
    max_k: int = 2
    lr: float = 4e-4
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup: int = 50
    grad_clip: float = 1.0
    grad_checkpointing: bool = False
    loss: LossWeights = field(default_factory=LossWeights)
    type_mix: dict[str, float] = field(default_factory=lambda: {t: 1.0 for t in ("I", "II", "III", "IV", "V", "VI")})
    flame: str = "tracked"  # "neutral": shape and expression zeroed in training (seed 000's choice)
    train_split: str = "train"
    eval_splits: tuple[str, ...] = ("test",)
    watch_split: str = "val"
    eval_every: int = 100
    checkpoint_every: int = 100
    log_every: int = 10
    eval_ks: tuple[int, ...] = (1, 2)
    baseline_steps: int = 300
    baseline_lr: float = 0.01
    backend: str = "auto"
    reference: str = "balanced"
    workers: int = 2
    threads: int = 1
    feature_store: bool = True  # a frozen encoder trunk's levels are computed once per crop (models/feature_store.py)
    seed: int = 0
    accel: AccelConfig = field(default_factory=lambda: AccelConfig(section="train_ff"))
