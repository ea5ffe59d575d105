"""What SynthHeads' builder needs to know (built by ``fairsplat.sections.synth``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SynthConfig:
    """Identities x frames x views; meanings and reasons are documented on the params section."""

    identities: int = 24
    frames: int = 4
    views: tuple[tuple[float, float], ...] = ((0.0, 0.0), (30.0, 0.0), (-30.0, 0.0), (0.0, 20.0))
    size: int = 128
    uv_resolution: int = 128
    fov_deg: float = 18.0
    backgrounds: tuple[str, ...] = ("flat", "gradient", "textured")
    light_max_angle: float = 25.0
    temperature_jitter: float = 0.03
    lighting: str = "default"
    train_frac: float = 0.5
    val_frac: float = 0.25
    seed: int = 0
    workers: int = 2
