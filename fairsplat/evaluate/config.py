"""What stage ``evaluate``'s library needs (built by ``fairsplat.sections.evaluate``, where every key is documented)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RetrackConfig:
    """The landmark tracker's settings for re-tracking outputs and drivers (fairsplat.track.fit.FitConfig)."""

    rigid_iters: int = 4
    iters: int = 10
    robust: str = "geman_mcclure"
    contour: bool = True


@dataclass(frozen=True)
class EvalConfig:
    splits: tuple[str, ...] = ("test",)
    variants: tuple[str, ...] = ("ff", "lora", "refined")
    enhancer: bool = True
    self_targets: int | None = None
    cross_frames: int = 2
    landmarks: str = "mediapipe"
    retrack: RetrackConfig = field(default_factory=RetrackConfig)
    lpips_vgg_targets: int | None = 1
    arcface_path: str | None = None
    n_boot: int = 1000
    workers: int = 2
    threads: int = 1
    backend: str = "auto"
    seed: int = 0


@dataclass(frozen=True)
class Inputs:
    """Where each variant's inputs are; a missing one makes its variant absent (with the reason), never a crash."""

    head: Path
    curated: Path
    tracks: Path
    ff: Path
    lora: Path
    refined: Path
    enhancer: Path
