"""Params of stage ``curate``: crops, skin tone, balancing and splits.

Defaults are the small CPU run on SynthHeads (384 renders at 128 px, 64 per
type). Real-run values of seed 000 are given per key ("real: ...") and
collected in the README's curation section: size 512, per-type 500,
min-face 128, splits 0.8/0.1/0.1.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from fairsplat.config import Section
from fairsplat.faces.skin_types import SCHEMES


class CurateParams(Section):
    section: ClassVar[str] = "curate"

    size: int = Field(128, ge=16, le=4096)
    """Crop side, px. 128 matches the default SynthHeads renders (upscaling them adds
    nothing); real: 512, as seed 000."""

    crop_mode: Literal["centre", "aligned"] = "centre"
    """centre: seed 000's square around the face, head tilt kept; aligned: a
    similarity transform putting eyes and mouth on fixed positions."""

    margin: float | None = Field(None, gt=0.5, le=8.0)
    """Crop side over face size; null = the mode's default (centre 2.0: forehead,
    hair and neck fit; aligned 1.0: FFHQ-like framing)."""

    grey: float = Field(0.5, ge=0.0, le=1.0)
    """Background level; seed 000 composited on mid-grey 0.5 to limit the luminance
    halo that light or dark backgrounds leave around hair, worst on dark skin."""

    foreground: Literal["auto", "ground_truth", "labels", "head", "selfie", "ellipse", "none"] = "auto"
    """Foreground-mask backend (faces/foreground.py). auto = ground-truth alpha, else a label map,
    else ``head`` (MediaPipe's selfie matte inside a head-and-neck window: keeps hair), else the
    landmark ellipse. IoU against SynthHeads alpha: ellipse 0.746, selfie 0.955, head 0.935."""

    score_foreground: bool = True
    """Score every photo backend (ellipse, selfie, head) against ground-truth alpha where it
    exists (``fg_iou_*`` in metrics/curate.json): ~16 ms a crop for the two MediaPipe mattes."""

    landmarks: Literal["auto", "detect"] = "auto"
    """auto: ground-truth landmarks when the source has them (SynthHeads), the ``detector``
    otherwise; detect: always the detector (to exercise the photo path on SynthHeads)."""

    detector: Literal["mediapipe", "dlib"] = "mediapipe"
    """Landmark backend for photos (faces/landmarks.py). mediapipe: held-out SynthHeads detection
    rate 1.0 in every type (dlib 0.56-0.69 for V-VI), 12-30 ms a face; falls back to dlib, named in
    the metrics (``landmarks_fallback``), when its model files are missing or corrupt."""

    min_side: int = Field(64, ge=1)
    """Photos with a shorter side below this are rejected too_small: no usable face fits."""

    max_pixels: int = Field(64_000_000, ge=1)
    """Larger photos are rejected too_large from the header, before decoding (bomb
    guard); 64 MP is above any camera photo and far below what exhausts RAM."""

    min_face: float = Field(32.0, ge=1.0)
    """Faces whose landmark box side is below this many source px are rejected
    face_too_small (a crop of them is mostly interpolation). 32 keeps the 128 px
    SynthHeads views; real: 128 for 512 px crops."""

    detect_max_side: int = Field(320, ge=64)
    """HOG runs on a copy no larger than this: ~14 ms at 320 px vs ~33 ms at 512,
    and faces in portraits are far above HOG's ~80 px minimum at that size."""

    upsample: int = Field(0, ge=0, le=3)
    """HOG upsampling levels (each ~4x slower, halves the smallest findable face)."""

    detect_fallback: float | None = -0.3
    """Detector threshold of the retries when the first pass finds nothing
    (faces/detect.py); null = one pass only. -0.3 recovers tight face chips."""

    ita_stat: Literal["median_lab", "median_pixel"] = "median_lab"
    """ITA of the median L*, b* of the skin (robust, no pole at b* = 0; faces/ita.py)."""

    ita_trim: list[float] = [5.0, 95.0]
    """L* percentiles kept inside the skin mask: drops residual shine and shadow."""

    min_skin_pixels: int = Field(100, ge=10)
    """Fewer usable skin pixels: rejected no_skin (occluded or off-frame face).
    100 suits 128 px crops; real (512 px): 400."""

    min_skin_chroma: float = Field(3.0, ge=0.0)
    """Median skin chroma C*ab below this: rejected low_chroma (sepia, toned or
    colour-stripped photo). The darkest MST swatch has C* 3.8."""

    ita_method: Literal["raw", "sclera", "sclera_flat", "grey_edge", "white_patch"] = "raw"
    """Illumination correction before the skin type (faces/illumination.py). raw: none. Measured on
    SynthHeads-hard-lighting and default renders (README "Skin typing", bench/skin_light.py): no
    correction reaches the issue-16 floor; the sclera methods need 512 px crops (at 128 px they find
    no reference and leave the raw ITA, flagged) and, on real photos, lift every group's ITA by
    20-50 deg (real sclera are darker than the albedo they assume). So the default types the pixels
    as photographed; the others stay opt-in and are recorded per crop (method, confidence)."""

    ita_min_confidence: float = Field(0.5, ge=0.0, le=1.0)
    """A correction whose confidence is below this is not used: the raw ITA is kept and the crop
    flagged ``low_confidence`` (no reference in the face: eyes closed or too small). 0.5 keeps a
    sclera seen in one eye only (confidence 0.4: nothing to check it against) out."""

    ita_per_subject: bool = True
    """Video frames (records with a frame index) take one ITA per subject: lighting changes between
    frames, skin does not. With a correction, the frames whose reference passed outvote the rest
    (their confidence-weighted median); a subject with none takes the median of all its frames and
    stays flagged. The spread is kept (``ita_subject_iqr``)."""

    scheme: str = "chardon_delbino_6"
    """ITA -> Fitzpatrick scheme (faces/skin_types.py SCHEMES). Chardon / Del Bino,
    the common one-to-one reading; the others are published variants."""

    per_type: int | None = Field(360, ge=1)
    """Crops kept per Fitzpatrick type. 360 = 8/9 of the 405 default SynthHeads renders
    per type, so misclassified renders (type accuracy ~0.95) cannot cause a shortfall;
    real: 500 (seed 000: 3,000 = 6 x 500). null keeps every eligible image."""

    max_per_subject: int | None = Field(None, ge=1)
    """Cap on crops per subject (e.g. frames of one video); null = no cap."""

    seed: int = Field(0, ge=0)
    """Seed of the balancing draw and of the subject-to-split assignment."""

    splits: dict[str, float] = {"train": 0.78, "val": 0.11, "test": 0.11}
    """Shares of the kept crops per split, subject-disjoint. 0.78/0.11/0.11 of SynthHeads' 45
    identities per type: ~35 to train the generator, 5 to watch, 5 held out per type;
    real: 0.8/0.1/0.1."""

    samples_per_type: int = Field(8, ge=1, le=64)
    """Crops per type in the sample grid plot."""

    workers: int = Field(2, ge=1)
    """Worker processes for analysis and rendering (1 = in-process); 2 = this machine's cores."""

    shard_size: int = Field(32, ge=1)
    """Inputs per worker task; output never depends on it (ordered map)."""

    @field_validator("scheme")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if v not in SCHEMES:
            raise ValueError(f"unknown scheme; choose from {', '.join(SCHEMES)}")
        if any(c.fitzpatrick is None for c in SCHEMES[v].categories):
            raise ValueError(f"scheme {v} has no Fitzpatrick reading; balancing needs one")
        return v

    @field_validator("ita_trim")
    @classmethod
    def _trim(cls, v: list[float]) -> list[float]:
        if len(v) != 2 or not 0.0 <= v[0] < v[1] <= 100.0:
            raise ValueError("expected [low, high] percentiles with 0 <= low < high <= 100")
        return v

    @field_validator("splits")
    @classmethod
    def _splits(cls, v: dict[str, float]) -> dict[str, float]:
        if not v or any(f < 0 for f in v.values()) or abs(sum(v.values()) - 1.0) > 1e-6:
            raise ValueError("split shares must be >= 0 and sum to 1")
        return v

    def curate_config(self):
        """The library's CurateConfig (fairsplat/curate/config.py)."""
        from fairsplat.curate.config import CurateConfig

        return self.to_config(CurateConfig)
