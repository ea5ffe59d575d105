"""Params of stage ``evaluate``: every avatar variant that exists, scored per Fitzpatrick type (README "Evaluation").

The defaults fit the CPU budget (evaluate + report <= 4 minutes of the default
``dvc repro`` on two cores): every held-out self-reenactment target, two driver
frames per cross-reenactment pair, LPIPS-VGG on one target per subject.
``params/gpu.yaml`` scores everything.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from fairsplat.config import Section
from fairsplat.sections.trainer import heldout_splits


class RetrackParams(Section):
    """The landmark tracker (fairsplat/track/fit.py) re-fitting FLAME to the landmarks detected on outputs and drivers."""

    rigid_iters: int = Field(4, ge=0)
    """Levenberg-Marquardt iterations on rotation and translation first (the track stage's 4)."""
    iters: int = Field(10, ge=1)
    """LM iterations on everything. 10, not the track stage's 15: converged to a few 1e-3 of expression L1 on
    detected landmarks, whose own noise is larger, at 2/3 of the time."""
    robust: Literal["l2", "huber", "geman_mcclure", "tukey"] = "geman_mcclure"
    """Per-landmark penalty: the track stage's choice for detected landmarks (a detector's outliers do not pull)."""
    contour: bool = True
    """Sliding jaw contour, as the track stage uses for detected landmarks (detectors put the jaw on the silhouette)."""


class EvaluateParams(Section):
    section: ClassVar[str] = "evaluate"

    splits: list[str] = ["test"]
    """Held-out subjects: curate's subject-disjoint splits the generator never trained on (never 'train')."""
    variants: list[Literal["ff", "lora", "refined"]] = ["ff", "lora", "refined"]
    """Base variants scored when their inputs exist (models/ff, models/lora, data/refined); a missing one is listed
    as absent with the reason."""
    enhancer: bool = True
    """Also score each base variant through the enhancer (stage train_enhancer's models/enhancer) when it exists."""
    self_targets: int | None = Field(None, ge=1)
    """Self-reenactment targets per subject (the crops of its frames after the source's, every view); null = all."""
    cross_frames: int = Field(2, ge=1)
    """Driver frames per cross-reenactment pair (the driver's first-view crops of its frames after its source's).
    2 x 30 pairs x 3 variants re-tracked and embedded fits the CPU budget."""
    landmarks: Literal["mediapipe", "dlib"] = "mediapipe"
    """Landmark backend on outputs and drivers (fairsplat/faces/landmarks.py). MediaPipe (Apache-2.0 weights) finds
    dark-skinned SynthHeads faces dlib's HOG misses; it falls back to dlib, recorded, when its runtime is absent."""
    retrack: RetrackParams = RetrackParams()
    lpips_vgg_targets: int | None = Field(1, ge=0)
    """Self-reenactment targets per (variant, subject) also scored with LPIPS-VGG (full and masked), the first ones;
    null = all, 0 = none (then absent, with this key as the reason). VGG16 costs ~1.3 s per image on one CPU thread
    at 128 px, 25x AlexNet: every target would take the evaluation far past its 4-minute budget."""
    arcface_path: str | None = None
    """An ArcFace ONNX model for CSIM beside dlib's. No ArcFace weights can be downloaded here and onnxruntime is not
    a dependency, so ArcFace CSIM is reported absent with the reason whatever this says."""
    n_boot: int = Field(1000, ge=0)
    """Bootstrap draws over subjects per statistic and type (fairsplat/metrics/fairness.py)."""
    workers: int = Field(2, ge=1)
    """Processes: base variants (and the drivers' re-tracking) side by side, one torch thread each."""
    threads: int = Field(1, ge=0)
    """torch threads per process (0 = torch's default); a second OpenMP thread only contends on 2 shared cores."""
    backend: Literal["auto", "torch", "gsplat", "dense"] = "auto"
    """Rasteriser backend (fairsplat/splat/raster.py)."""
    seed: int = Field(0, ge=0)
    """Seed of the bootstrap."""

    _splits = field_validator("splits")(heldout_splits)

    @field_validator("variants")
    @classmethod
    def _variants(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"one or more of ff, lora, refined, each once (got {v})")
        return v

    def eval_config(self):
        """The library's EvalConfig (fairsplat/evaluate/config.py)."""
        from fairsplat.evaluate.config import EvalConfig, RetrackConfig

        return self.to_config(EvalConfig, splits=tuple(self.splits), variants=tuple(self.variants),
                              retrack=RetrackConfig(**dict(self.retrack)))  # fmt: skip
