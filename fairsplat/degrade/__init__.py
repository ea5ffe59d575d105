"""Seed 001's face-parsing-driven degradation: region-calibrated splat artifacts.

Public API::

    degraded, record = degrade(image, labels, params, seed)   # one pair
    pairs = make_pairs(image, labels, k, image_seed(image_id, global_seed), params)
    damage = region_damage(clean, degraded, labels)           # per-region MAD and 1-SSIM

``STEPS`` (14) and ``AUGMENTATIONS`` (4) are plain registries of
``Degradation`` classes, each with its own typed ``Params`` dataclass.
"""

from fairsplat.degrade.core import Context, Degradation, DegradeInputError, StepParams, image_seed
from fairsplat.degrade.damage import region_damage
from fairsplat.degrade.masks import MaskParams, RegionStrengths
from fairsplat.degrade.pipeline import DegradeParams, check_inputs, degrade, make_pairs
from fairsplat.degrade.registry import AUGMENTATIONS, STEPS

__all__ = [
    "AUGMENTATIONS",
    "STEPS",
    "Context",
    "DegradeInputError",
    "DegradeParams",
    "Degradation",
    "MaskParams",
    "RegionStrengths",
    "StepParams",
    "check_inputs",
    "degrade",
    "image_seed",
    "make_pairs",
    "region_damage",
]
