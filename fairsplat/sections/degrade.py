"""Params of stage ``degrade``: seed 001's region-driven splat-artifact pairs.

The per-step and per-augmentation params (``steps.<name>.<key>``,
``augmentations.<name>.<key>``) are the typed dataclasses of
``fairsplat/degrade`` (each field documented there, with its reason); this
section checks names and values against them before any work. Names and keys
are kebab-case here (``steps.region-blur.sigma``), snake_case in Python.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from pydantic import Field, model_validator

from fairsplat.config import Section


class Strengths(Section):
    """Seed 001's per-region blend strengths (its table, in its order)."""

    mouth: float = Field(0.9, ge=0.0, le=1.0)
    """Depth discontinuities between teeth, lips and tongue: splats fail worst here."""
    eyes: float = Field(0.7, ge=0.0, le=1.0)
    """Fine detail lost to competing splats in small areas (eyes and brows)."""
    hair: float = Field(0.6, ge=0.0, le=1.0)
    """Strand clumping from splat merging."""
    nose: float = Field(0.5, ge=0.0, le=1.0)
    """Moderate geometric simplification."""
    skin: float = Field(0.4, ge=0.0, le=1.0)
    """Texture loss with broad shape kept (skin, ears, neck)."""
    other: float = Field(0.3, ge=0.0, le=1.0)
    """Classes outside seed 001's table (glasses, hat, cloth...): below skin."""
    background: float = Field(0.1, ge=0.0, le=1.0)
    """Halos and floaters reach the backdrop a little; 0 would teach 'background is never touched'."""


class Mask(Section):
    """Anisotropic variation masks: sums of random elongated Gaussian blobs, so damage is patchy."""

    blobs: list[int] = [3, 9]
    """Blob count range per mask: a handful of distinct damaged patches."""
    major: list[float] = [0.10, 0.35]
    """Blob sigma along its long axis, fraction of the crop side: cheek- to eye-region sized."""
    aspect: list[float] = [1.5, 5.0]
    """Long/short axis ratio: anisotropic, as projected Gaussians are."""
    gain: float = Field(1.6, gt=0.0)
    """Soft saturation 1 - exp(-gain * sum): ~1.6 gives a mean mask near 0.55."""
    floor: float = Field(0.25, ge=0.0, le=1.0)
    """Minimum weight: no region is ever perfectly clean."""
    grid: int = Field(8, ge=1)
    """Masks are drawn this many times coarser, then upsampled (they are low-frequency)."""
    calibrate: float = Field(1.0, ge=0.0, le=1.0)
    """Pull each region's mean mask to the image mean: damage follows strengths on every image."""


def _snake(d: dict[str, Any]) -> dict[str, Any]:
    return {k.replace("-", "_"): v for k, v in d.items()}


class DegradeSection(Section):
    section: ClassVar[str] = "degrade"

    k: int = Field(2, ge=1, le=64)
    """Pairs per clean crop (seed 001 made one; K > 1 multiplies a small set cheaply)."""

    seed: int = Field(1, ge=0)
    """Global seed; each pair's seed is hash(image_id) x seed x pair index (order-free)."""

    per_type: int | None = Field(120, ge=1)
    """Curated crops per Fitzpatrick type that get pairs (a seeded sample; null = every crop). 120 x 6 x k
    pairs are more than the CPU enhancer trains on (issue 14), and cost ~1 min instead of ~4 for all crops."""

    workers: int = Field(2, ge=1)
    """Processes; 2 = the cores of the default machine. Outputs do not depend on it."""

    augment: bool = True
    """Apply seed 001's training-time augmentations (blur blobs 10%, noise boost 15%,
    brightness 10%, desaturation 10%) to the degraded input when writing pairs."""

    min_steps: int = Field(3, ge=0, le=14)
    """At least this many of the 14 steps fire per pair: a near-clean input teaches nothing."""

    spill_px: float = Field(3.0, ge=0.0)
    """How far (px at 512) a region's strength spills into weaker neighbours, feathered."""

    measure_every: int = Field(1, ge=0)
    """Measure region damage (MAD, SSIM loss) on every Nth pair; 0 = never. SSIM costs
    ~4x a pair at 512 px, so real runs may sample."""

    strengths: Strengths = Strengths()
    """Per-region strengths (seed 001: mouth 0.9, eyes 0.7, hair 0.6, nose 0.5, skin 0.4)."""

    mask: Mask = Mask()
    """Variation-mask shape."""

    steps: dict[str, dict[str, Any]] = {}
    """Per-step params by step name (kebab), e.g. ``region-blur: {prob: 0.8, sigma: [0.8, 2.5]}``;
    a step or key left out keeps its dataclass default (fairsplat/degrade/steps_*.py)."""

    augmentations: dict[str, dict[str, Any]] = {}
    """Per-augmentation params by name (kebab), e.g. ``noise-boost: {prob: 0.15}`` (degrade/augment.py)."""

    @model_validator(mode="after")
    def _check(self) -> DegradeSection:
        self.pipeline_params()  # raises ValueError naming steps.<name>.<key>
        return self

    def pipeline_params(self):
        """The library's DegradeParams; ValueError names the offending key path."""
        from fairsplat.degrade.masks import MaskParams, RegionStrengths
        from fairsplat.degrade.pipeline import DegradeParams
        from fairsplat.degrade.registry import AUGMENTATIONS, STEPS

        try:
            mask = MaskParams(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.mask.model_dump().items()})
        except ValueError as err:
            raise ValueError(f"mask: {err}") from None
        built: dict[str, dict] = {}
        for key, registry in (("steps", STEPS), ("augmentations", AUGMENTATIONS)):
            built[key] = {}
            for name, raw in getattr(self, key).items():
                snake = name.replace("-", "_")
                if snake not in registry:
                    known = ", ".join(n.replace("_", "-") for n in registry)
                    raise ValueError(f"{key}.{name}: unknown (known: {known})")
                P = registry[snake].Params
                fields = {f.name for f in dataclasses.fields(P)}
                kw = _snake(raw or {})
                for f in kw:
                    if f not in fields:
                        allowed = ", ".join(sorted(x.replace("_", "-") for x in fields))
                        raise ValueError(f"{key}.{name}.{f.replace('_', '-')}: unknown key (allowed: {allowed})")
                try:
                    built[key][snake] = P(**{f: tuple(v) if isinstance(v, list) else v for f, v in kw.items()})
                except (ValueError, TypeError) as err:
                    raise ValueError(f"{key}.{name}: {err}") from None
        return DegradeParams(
            strengths=RegionStrengths(**self.strengths.model_dump()), mask=mask, spill_px=self.spill_px,
            min_steps=self.min_steps, steps=built["steps"], augment=self.augment,
            augmentations=built["augmentations"],
        )  # fmt: skip
