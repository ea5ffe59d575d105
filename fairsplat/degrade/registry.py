"""The step and augmentation registries: plain dicts, name -> class (nerfstudio style).

Order matters: steps run in this order. Geometry first (where splats are),
then loss of detail, then stray splats drawn on top, then colour, then noise
last (render noise sits on the final image, it is not blurred by later steps).
Tests are parametrised over both dicts, so a new entry is tested with no new
test code.
"""

from __future__ import annotations

from fairsplat.degrade.augment import BlurBlobs, BrightnessShift, ExtraDesaturation, NoiseBoost
from fairsplat.degrade.core import Degradation
from fairsplat.degrade.steps_blur import DetailLoss, HairClump, RegionBlur, SplatSmear, TextureFlatten
from fairsplat.degrade.steps_colour import ColourBleed, Desaturate, Noise, ShadingShift
from fairsplat.degrade.steps_geometry import AlphaHoles, DepthTear, Facet
from fairsplat.degrade.steps_splats import Needles, SplatBlobs

STEPS: dict[str, type[Degradation]] = {
    "depth_tear": DepthTear,
    "facet": Facet,
    "hair_clump": HairClump,
    "texture_flatten": TextureFlatten,
    "detail_loss": DetailLoss,
    "region_blur": RegionBlur,
    "splat_smear": SplatSmear,
    "colour_bleed": ColourBleed,
    "splat_blobs": SplatBlobs,
    "needles": Needles,
    "alpha_holes": AlphaHoles,
    "shading_shift": ShadingShift,
    "desaturate": Desaturate,
    "noise": Noise,
}

AUGMENTATIONS: dict[str, type[Degradation]] = {
    "blur_blobs": BlurBlobs,
    "noise_boost": NoiseBoost,
    "brightness_shift": BrightnessShift,
    "extra_desaturation": ExtraDesaturation,
}

assert len(STEPS) == 14, "seed 001 simulates splat artifacts in 14 steps"
