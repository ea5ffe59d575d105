"""What stage ``refine``'s library needs (built by ``fairsplat.sections.refine``, where every key is documented)."""

from __future__ import annotations

from dataclasses import dataclass, field

STRATEGY_NAMES = ("scale-freeze", "log-scale-clamp", "aspect", "adaptive-tto")
"""Every strategy the loop knows (``fairsplat.refine.strategies.STRATEGIES``), in their natural order."""


@dataclass(frozen=True)
class LearningRates:
    """Adam step sizes per attribute (the raw tensors the loop optimises)."""

    offsets: float = 1e-4  # canonical displacement: metres (points) or triangle units (uv)
    quats: float = 1e-3
    log_scales: float = 5e-3
    colors: float = 5e-2  # on logit(colour)
    opacities: float = 5e-2  # on logit(opacity)


@dataclass(frozen=True)
class ScaleFreezeConfig:
    until: int = 500  # log-scales get no update before this iteration (seed 003: 500)


@dataclass(frozen=True)
class ClampConfig:
    start: int = 500  # clamp from this iteration on (seed 003: once scale is unfrozen)
    min: float = -3.0  # log-scale bounds relative to the binding's in-plane log-scale of each Gaussian
    max: float = 1.0


@dataclass(frozen=True)
class AspectConfig:
    weight: float = 0.1
    tau: float = 1.0  # penalise ½·log(λmax/λmin) above τ: eigenvalue ratio above e^(2τ)
    start: int = 500  # seed 003: from iteration 500
    jitter_views: int = 0  # extra cameras per iteration, orbited about the head from this iteration's (projection only)
    jitter_deg: float = 15.0  # largest yaw/pitch of those orbits, degrees (uniform in [-d, d])


@dataclass(frozen=True)
class TTOConfig:
    extend: int = 100  # iterations added per extension
    cap: int = 1000  # never more iterations than this
    min_gain: float = 0.01  # relative drop of the watch loss since the last check needed to extend
    watch: int = 1  # training images held out of the loss and watched (the last ones of the latest frame)


@dataclass(frozen=True)
class RefineConfig:
    iterations: int = 600
    strategies: tuple[str, ...] = STRATEGY_NAMES
    lr: LearningRates = field(default_factory=LearningRates)
    l1: float = 0.8
    ssim: float = 0.2
    background: str = "random"  # random: one shared random colour behind render and target per iteration | grey
    scale_freeze: ScaleFreezeConfig = field(default_factory=ScaleFreezeConfig)
    clamp: ClampConfig = field(default_factory=ClampConfig)
    aspect: AspectConfig = field(default_factory=AspectConfig)
    tto: TTOConfig = field(default_factory=TTOConfig)
    heldout_frac: float = 0.3
    subjects_per_type: int | None = 2
    splits: tuple[str, ...] = ("test",)
    sources: int = 1
    jaw_min_range: float = 0.02
    max_track_nme: float = 0.05
    backend: str = "auto"
    seed: int = 0
    threads: int = 1
    video_fps: int = 3

    def __post_init__(self) -> None:
        unknown = [s for s in self.strategies if s not in STRATEGY_NAMES]
        if unknown:
            raise ValueError(f"strategies {unknown}: choose from {', '.join(STRATEGY_NAMES)}")
        if self.background not in ("random", "grey"):
            raise ValueError(f"background {self.background!r}: random or grey")
