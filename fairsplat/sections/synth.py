"""Params of stage ``synth``: the SynthHeads dataset."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from fairsplat.config import Section


class SynthParams(Section):
    section: ClassVar[str] = "synth"

    identities: int = Field(270, ge=6)
    """Number of identities; a multiple of 6 so every Fitzpatrick type gets the same count. 270 (45 per
    type): a one-shot generator needs >= 200 training identities to learn more than memorised faces,
    and >= 4 held-out identities per type make per-type bootstrap CIs mean something (issue 11)."""

    frames: int = Field(3, ge=1)
    """Frames per identity (talking-like motion over time; frame 0 is near neutral)."""

    views: list[list[float]] = [[0.0, 0.0], [30.0, 0.0], [-30.0, 0.0]]
    """Cameras as [yaw, pitch] degrees; the first must be frontal [0, 0]."""

    size: int = Field(128, ge=32, le=2048)
    """Image side, px: 128 for the CPU default, 512 for real runs."""

    uv_resolution: int = Field(128, ge=16, le=1024)
    """UV grid of the Gaussian binding (Gaussians ~ 0.6 x res^2)."""

    fov_deg: float = Field(18.0, gt=1.0, lt=90.0)
    """Horizontal field of view; the camera distance is set so the head fills the frame."""

    backgrounds: list[str] = ["flat", "gradient", "textured"]
    """Background kinds, drawn uniformly per image."""

    light_max_angle: float = Field(25.0, ge=0.0, le=80.0)
    """Key light within this many degrees of frontal (default lighting)."""

    temperature_jitter: float = Field(0.03, ge=0.0, le=0.2)
    """Colour temperature as R/B gains (1+t, 1, 1-t), t ~ U(-j, j): mild."""

    lighting: Literal["default", "hard", "studio"] = "default"
    """``default``: face-metered exposure, key light near the camera (the two keys above).
    ``hard`` (synth/scene.py): blackbody light 2,700-7,500 K on a D65-balanced camera, -1.5 to
    +1.5 EV exposure error, key light 40-85 deg off axis over ambient 0.15-0.35; the albedo and
    its ground-truth ITA are unchanged. Raw ITA typing falls apart there (README "Skin typing");
    it is the test set of the illumination-normalised ITA, not a training default.
    ``studio``: ``hard``'s light drawn once per identity (every frame and camera under one light, a capture
    rig): bench/uv_ablation.py's phase 2 from another domain."""

    train_frac: float = Field(0.78, gt=0.0, lt=1.0)
    """Share of each type's identities in train (identity-disjoint splits)."""

    val_frac: float = Field(0.11, ge=0.0, lt=1.0)
    """Share in val; the rest is test."""

    seed: int = Field(0, ge=0)
    """Everything random derives from this seed: same params, same bytes."""

    workers: int = Field(2, ge=1)
    """Render processes (one torch thread each; the bytes do not depend on it). 2 = the default
    machine's cores: 2,430 images in ~100 s instead of ~190 s."""

    @field_validator("views")
    @classmethod
    def _views(cls, v: list[list[float]]) -> list[list[float]]:
        if not v or any(len(p) != 2 for p in v):
            raise ValueError("each view must be [yaw, pitch]")
        if v[0] != [0.0, 0.0]:
            raise ValueError("the first view must be frontal [0, 0] (ITA consistency and one-shot use read it)")
        return v

    @field_validator("backgrounds")
    @classmethod
    def _backgrounds(cls, v: list[str]) -> list[str]:
        bad = sorted(set(v) - {"flat", "gradient", "textured"})
        if not v or bad:
            raise ValueError(f"unknown background kinds {bad}; choose from flat, gradient, textured")
        return v

    @model_validator(mode="after")
    def _check(self) -> SynthParams:
        if self.identities % 6:
            raise ValueError(f"identities: {self.identities} is not a multiple of 6 (equal count per Fitzpatrick type)")
        if self.train_frac + self.val_frac >= 1.0:
            raise ValueError("train-frac + val-frac must leave a test share")
        return self

    def synth_config(self):
        """The library's SynthConfig (fairsplat/synth/config.py)."""
        from fairsplat.synth.config import SynthConfig

        return self.to_config(SynthConfig, views=tuple(tuple(v) for v in self.views))
