"""What curation needs to know (built by ``fairsplat.sections.curate``, where every key is documented)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CurateConfig:
    """Crops, skin tone, balancing and splits; see the params section for each key's reason."""

    size: int = 128
    crop_mode: str = "centre"
    margin: float | None = None
    grey: float = 0.5
    foreground: str = "auto"
    landmarks: str = "auto"
    detector: str = "mediapipe"
    min_side: int = 64
    max_pixels: int = 64_000_000
    min_face: float = 32.0
    detect_max_side: int = 320
    upsample: int = 0
    detect_fallback: float | None = -0.3
    ita_stat: str = "median_lab"
    ita_trim: tuple[float, float] = (5.0, 95.0)
    min_skin_pixels: int = 100
    min_skin_chroma: float = 3.0
    ita_method: str = "raw"
    ita_min_confidence: float = 0.5
    ita_per_subject: bool = True
    score_foreground: bool = True
    scheme: str = "chardon_delbino_6"
    per_type: int | None = 48
    max_per_subject: int | None = None
    seed: int = 0
    splits: dict[str, float] = field(default_factory=lambda: {"train": 0.5, "val": 0.25, "test": 0.25})
    samples_per_type: int = 8
    workers: int = 2
    shard_size: int = 32
