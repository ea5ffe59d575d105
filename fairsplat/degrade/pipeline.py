"""degrade() and make_pairs(): seed 001's region-driven splat-artifact pipeline.

For each step in ``STEPS`` order: decide whether it fires (its ``prob``),
draw a patchy variation mask, and blend the step's full-strength result into
the image with ``weight = region strength x mask``. Then each training-time
augmentation fires with its own probability over the whole crop.

Determinism: every random number comes from ``numpy.random.Generator(PCG64)``
seeded by a ``SeedSequence`` child keyed by the step's *name*, under the pair's
seed (``image_seed(image_id, global_seed)`` -> child per pair index). Same
inputs give identical bytes (checked across processes and thread settings),
and disabling one step leaves every other step's draws unchanged. Global RNG
state is never read or written. Bytes may differ across CPU families: numba
compiles for the host and numpy dispatches SIMD by CPU.

The record (one per pair, JSON-able, for the pairs manifest)::

    {"seed": {"entropy": "<int as str>", "spawn_key": [i]},
     "steps": [{"name": "region_blur", "params": {"sigma": 1.7},
                "mask": {"blobs": 5, "mean": 0.55}, "forced": false}, ...],
     "augmentations": [{"name": "noise_boost", "params": {"sigma": 7.2}}, ...],
     "pair_index": i}                       # make_pairs only

Per-blob/per-part lists are left out of ``params`` (``Degradation.summary``);
the seed reproduces them exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fairsplat.degrade import resample as R
from fairsplat.degrade.core import Context, DegradeInputError, StepParams, as_seed, child_seed, rng_for
from fairsplat.degrade.masks import MaskParams, RegionLayout, RegionStrengths, mask_grid
from fairsplat.degrade.registry import AUGMENTATIONS, STEPS
from fairsplat.labels import NUM_CLASSES


def _defaults(registry) -> dict[str, StepParams]:
    return {name: cls.Params() for name, cls in registry.items()}


@dataclass(frozen=True)
class DegradeParams:
    """Everything ``degrade`` needs; one instance per run, built from params.yaml."""

    strengths: RegionStrengths = field(default_factory=RegionStrengths)
    """Seed 001's per-region strengths (mouth 0.9 ... skin 0.4)."""
    mask: MaskParams = field(default_factory=MaskParams)
    """How patchy the per-step variation masks are."""
    spill_px: float = 3.0
    """How far (px at 512) a region's strength spills into weaker neighbours,
    feathered: no hard seams, and small regions keep their full strength."""
    min_steps: int = 3
    """At least this many steps fire (extra ones picked at random): a pair whose
    input equals its target would teach the enhancer nothing."""
    steps: Mapping[str, StepParams] = field(default_factory=lambda: _defaults(STEPS))
    """Per-step params by registry name; a missing name uses that step's defaults."""
    augment: bool = True
    """Apply the training-time augmentations (seed 001 applies them on the fly in training)."""
    augmentations: Mapping[str, StepParams] = field(default_factory=lambda: _defaults(AUGMENTATIONS))
    """Per-augmentation params by registry name."""

    def __post_init__(self) -> None:
        for attr, registry in (("steps", STEPS), ("augmentations", AUGMENTATIONS)):
            given = dict(getattr(self, attr))
            for name, p in given.items():
                if name not in registry:
                    raise ValueError(f"DegradeParams.{attr}.{name}: unknown, expected one of {sorted(registry)}")
                if not isinstance(p, registry[name].Params):
                    raise ValueError(f"DegradeParams.{attr}.{name}: expected {registry[name].Params.__name__}")
            object.__setattr__(self, attr, {**_defaults(registry), **given})
        if not (0 <= self.min_steps <= len(STEPS)):
            raise ValueError(f"DegradeParams.min_steps: {self.min_steps} is not in [0, {len(STEPS)}]")
        if self.spill_px < 0:
            raise ValueError(f"DegradeParams.spill_px: {self.spill_px} must be >= 0")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> DegradeParams:
        """Build from plain (YAML) mappings; ranges may be lists. Unknown keys name their path."""
        raw = dict(raw)
        kw: dict[str, Any] = {}
        for key in ("strengths", "mask"):
            if key in raw:
                kw[key] = _build(RegionStrengths if key == "strengths" else MaskParams, raw.pop(key), key)
        for key, registry in (("steps", STEPS), ("augmentations", AUGMENTATIONS)):
            if key in raw:
                sub = dict(raw.pop(key))
                unknown = sorted(set(sub) - set(registry))
                if unknown:
                    raise ValueError(f"DegradeParams.{key}.{unknown[0]}: unknown, expected one of {sorted(registry)}")
                kw[key] = {n: _build(registry[n].Params, v, f"{key}.{n}") for n, v in sub.items()}
        names = {f.name for f in dataclasses.fields(cls)}
        for key, v in raw.items():
            if key not in names:
                raise ValueError(f"DegradeParams.{key}: unknown key")
            kw[key] = v
        return cls(**kw)


def _build(dc: type, raw: Mapping[str, Any], path: str):
    names = {f.name for f in dataclasses.fields(dc)}
    kw = {}
    for k, v in dict(raw or {}).items():
        if k not in names:
            raise ValueError(f"DegradeParams.{path}.{k}: unknown key")
        kw[k] = tuple(v) if isinstance(v, list) else v
    return dc(**kw)


def check_inputs(image: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate and normalise. -> ([3, H, W] float32 in [0, 1], [H, W] uint8)

    Raises DegradeInputError with a stable reason. An all-background label map
    counts as ``no_mask``: the parser found no face, so there is nothing to
    calibrate the damage with.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise DegradeInputError("bad_image", f"expected [H, W, 3], got {getattr(image, 'shape', type(image))}")
    if labels is None:
        raise DegradeInputError("no_mask", "no label map")
    labels = np.asarray(labels)
    if labels.size == 0:
        raise DegradeInputError("no_mask", "empty label map")
    if labels.ndim != 2 or labels.dtype.kind not in "iu":
        raise DegradeInputError("bad_labels", f"expected integer [H, W], got {labels.dtype} {labels.shape}")
    if labels.shape != image.shape[:2]:
        raise DegradeInputError("mask_size_mismatch", f"labels {labels.shape} vs image {image.shape[:2]}")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise DegradeInputError("bad_labels", f"ids outside [0, {NUM_CLASSES})")
    if not labels.any():
        raise DegradeInputError("no_mask", "label map is all background")
    if image.dtype == np.uint8:
        img = R.to_chw(image, 255.0)
    elif image.dtype.kind == "f":
        lo, hi = float(image.min()), float(image.max())  # NaN fails both comparisons below
        if not (lo >= 0.0 and hi <= 1.0):
            raise DegradeInputError("bad_image", "float image must be finite and in [0, 1]")
        img = R.to_chw(image)
    else:
        raise DegradeInputError("bad_image", f"dtype {image.dtype}; expected uint8 or float")
    return img, labels.astype(np.uint8, copy=False)


def _fired_steps(params: DegradeParams, root: np.random.SeedSequence):
    """Which steps fire, each with its own generator; top up to ``min_steps``."""
    rngs, fired = {}, []
    for name in STEPS:
        rng = rng_for(root, "step:" + name)
        rngs[name] = rng
        if rng.random() < params.steps[name].prob:
            fired.append(name)
    forced: list[str] = []
    need = params.min_steps - len(fired)
    if need > 0:
        pool = [n for n in STEPS if n not in fired and params.steps[n].prob > 0]
        pick = rng_for(root, "min_steps").permutation(len(pool))[:need]
        forced = [pool[i] for i in sorted(pick)]
    chosen = set(fired) | set(forced)
    return [(n, rngs[n], n in forced) for n in STEPS if n in chosen]


@dataclass
class Prepared:
    """Everything derived from one clean crop and its labels; shared by its K pairs."""

    img: np.ndarray  # [3, H, W] float32 in [0, 1]
    ctx: Context
    layout: RegionLayout


def prepare(image: np.ndarray, labels: np.ndarray, params: DegradeParams) -> Prepared:
    """Validate inputs and build the per-image region layout (~4 ms at 512 px, paid once per image)."""
    img, labels = check_inputs(image, labels)
    return Prepared(img, Context(labels), RegionLayout(labels, params.strengths, params.spill_px, params.mask))


def _run(prep: Prepared, params: DegradeParams, root: np.random.SeedSequence) -> tuple[np.ndarray, dict[str, Any]]:
    img, ctx, layout = prep.img, prep.ctx, prep.layout
    record: dict[str, Any] = {
        "seed": {"entropy": str(root.entropy), "spawn_key": [int(k) for k in root.spawn_key]},
        "steps": [],
        "augmentations": [],
    }
    for name, rng, forced in _fired_steps(params, root):
        step = STEPS[name](params.steps[name])
        small, info = mask_grid(ctx.shape, params.mask, rng)  # [h, w]
        img, s = step.apply(img, layout.weight(small, params.mask.calibrate), ctx, rng)
        record["steps"].append({"name": name, "params": step.summary(s), "mask": info, "forced": forced})
    if params.augment:
        ones = np.ones(ctx.shape, np.float32)
        for name, cls in AUGMENTATIONS.items():
            rng = rng_for(root, "aug:" + name)
            if rng.random() < params.augmentations[name].prob:
                aug = cls(params.augmentations[name])
                img, s = aug.apply(img, ones, ctx, rng)
                record["augmentations"].append({"name": name, "params": aug.summary(s)})
    return R.to_hwc(img), record


def degrade(
    image: np.ndarray,  # [H, W, 3] uint8, or float in [0, 1]
    labels: np.ndarray,  # [H, W] CelebAMask-HQ ids
    params: DegradeParams | None = None,
    seed: int | np.random.SeedSequence = 0,
) -> tuple[np.ndarray, dict[str, Any]]:  # ([H, W, 3] float32 in [0, 1], record)
    """One degraded version of a clean crop, and the record of what was applied."""
    params = params or DegradeParams()
    return _run(prepare(image, labels, params), params, as_seed(seed))


def make_pairs(
    image: np.ndarray,  # [H, W, 3]
    labels: np.ndarray,  # [H, W]
    k: int,
    seed: int | np.random.SeedSequence,
    params: DegradeParams | None = None,
) -> list[tuple[np.ndarray, dict[str, Any]]]:  # k x ([H, W, 3] float32, record)
    """K degraded versions of one clean crop; pair i uses child ``i`` of the image's seed.

    Pass ``seed=image_seed(image_id, global_seed)`` so pairs depend only on the
    image's identity, never on which shard or worker made them. Validation and
    the region layout are done once for all K pairs.
    """
    if k < 0:
        raise ValueError(f"make_pairs: k={k} must be >= 0")
    params = params or DegradeParams()
    prep = prepare(image, labels, params)
    root = as_seed(seed)
    out = []
    for i in range(k):
        degraded, record = _run(prep, params, child_seed(root, i))
        record["pair_index"] = i
        out.append((degraded, record))
    return out
