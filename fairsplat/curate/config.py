"""Curation settings: one frozen dataclass, every default explained.

The ``curate`` stage's params section maps onto these fields (the stage owns
the pydantic section; this library only needs plain values).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fairsplat.faces.foreground import FOREGROUND
from fairsplat.faces.skin_types import SCHEMES


@dataclass(frozen=True)
class CurateConfig:
    size: int = 512
    """Crop side in pixels; seed 000 used 512."""
    crop_mode: str = "centre"
    """"centre" (seed 000: square around the face, head tilt kept) or "aligned" (similarity to eyes/mouth)."""
    margin: float | None = None
    """Crop side over face size; None = the mode's default (centre 2.0, aligned 1.0)."""
    grey: float = 0.5
    """Background level in [0, 1]; seed 000 composited on mid-grey 0.5."""
    foreground: str = "auto"
    """Foreground-mask backend (faces/foreground.py); auto = alpha, else labels, else landmark ellipse."""
    min_side: int = 64
    """Photos with a shorter side below this are rejected "too_small": no usable face fits."""
    max_pixels: int = 64_000_000
    """Larger photos are rejected "too_large" from the header, before decoding (bomb guard)."""
    min_face: float = 48.0
    """Faces smaller than this (landmark box side, source pixels) are rejected "face_too_small":
    a 512 px crop of a 48 px face is mostly interpolation. Raise to ~128 for real 512 px runs."""
    detect_max_side: int = 320
    """HOG runs on a copy no larger than this (~14 ms at 320 px; ~33 ms at 512 px)."""
    upsample: int = 0
    """HOG upsampling levels on that copy (each ~4x slower, halves the smallest findable face)."""
    detect_fallback: float | None = -0.3
    """Detector threshold for the retry attempts (faces/detect.py); None = no retries."""
    ita_stat: str = "median_lab"
    """ITA statistic (faces/ita.py): ITA of median L*/b*; "median_pixel" for comparison."""
    ita_trim: tuple[float, float] = (5.0, 95.0)
    """L* percentiles kept inside the skin mask (drops shine and shadow)."""
    min_skin_pixels: int = 200
    """Fewer usable skin pixels than this: rejected "no_skin" (face mostly occluded or off-frame)."""
    min_skin_chroma: float = 3.0
    """Median skin chroma (C*ab) below this: rejected "low_chroma" (sepia/toned or colour-stripped
    photos; the darkest MST swatch has C* = 3.8, real skin in photos is usually > 8)."""
    scheme: str = "chardon_delbino_6"
    """ITA -> Fitzpatrick scheme (faces/skin_types.py SCHEMES)."""
    per_type: int | None = 500
    """Images kept per Fitzpatrick type (seed 000: 500 x 6 = 3,000); None keeps all eligible."""
    max_per_subject: int | None = None
    """Cap on images per subject (e.g. frames of one video); None = no cap."""
    seed: int = 0
    """Seed of the balancing draw and of the subject-to-split assignment."""
    splits: dict[str, float] = field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})
    """Split fractions over images, subject-disjoint; must sum to 1."""
    workers: int = 2
    """Worker processes (1 = in-process). The machine this was written on has 2 cores."""
    shard_size: int = 32
    """Inputs per task sent to a worker; output order never depends on it."""

    def __post_init__(self):
        if self.crop_mode not in ("centre", "aligned"):
            raise ValueError(f"crop_mode={self.crop_mode!r}: expected 'centre' or 'aligned'")
        if self.foreground != "auto" and self.foreground not in FOREGROUND:
            raise ValueError(f"foreground={self.foreground!r}: expected auto or one of {sorted(FOREGROUND)}")
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme={self.scheme!r}: expected one of {sorted(SCHEMES)}")
        if any(f < 0 for f in self.splits.values()) or abs(sum(self.splits.values()) - 1.0) > 1e-6:
            raise ValueError(f"splits={self.splits}: fractions must be >= 0 and sum to 1")
        if not 0.0 <= self.grey <= 1.0:
            raise ValueError(f"grey={self.grey}: expected a level in [0, 1]")
        for name in ("size", "workers", "shard_size", "min_side"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be >= 1")
        if self.per_type is not None and self.per_type < 1:
            raise ValueError(f"per_type={self.per_type}: must be >= 1 or None")
        if self.fitzpatrick_scheme_has_no_fst():
            raise ValueError(f"scheme={self.scheme!r} has no Fitzpatrick reading; balancing needs one")

    def fitzpatrick_scheme_has_no_fst(self) -> bool:
        return any(c.fitzpatrick is None for c in SCHEMES[self.scheme].categories)
