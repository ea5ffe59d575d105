"""Seed 001's degradation steps, augmentations and pipeline.

Step tests are parametrised over ``STEPS`` and ``AUGMENTATIONS`` (PEFT's
TEST_CASES pattern): a new registry entry is tested with no new test code.
"""

import dataclasses
import json

import numpy as np
import pytest

from fairsplat.degrade import (
    AUGMENTATIONS,
    STEPS,
    Context,
    DegradeInputError,
    DegradeParams,
    RegionStrengths,
    degrade,
    image_seed,
    make_pairs,
)
from fairsplat.degrade.core import child_seed
from fairsplat.degrade.pipeline import _fired_steps, check_inputs
from fairsplat.testing.fakes import synthetic_face

ALL = {**STEPS, **AUGMENTATIONS}
CASES = [pytest.param(name, id=name) for name in ALL]


@pytest.fixture(scope="module")
def face():
    """A 128 px synthetic face: (planar image [3, H, W], Context)."""
    img, lab = synthetic_face(128, seed=0)
    x, labels = check_inputs(img, lab)
    return x, Context(labels)


def _apply(name, face, weight, seed):
    x, ctx = face
    w = np.full(ctx.shape, weight, np.float32) if np.isscalar(weight) else weight
    return ALL[name]().apply(x, w, ctx, np.random.default_rng(seed))


def test_registries_have_the_seed_counts():
    assert len(STEPS) == 14 and len(AUGMENTATIONS) == 4
    assert not set(STEPS) & set(AUGMENTATIONS)


@pytest.mark.parametrize("name", CASES)
def test_deterministic_for_a_seed(face, name):
    a, sa = _apply(name, face, 0.7, seed=3)
    b, sb = _apply(name, face, 0.7, seed=3)
    assert a.tobytes() == b.tobytes() and sa == sb
    c, _ = _apply(name, face, 0.7, seed=4)
    assert not np.array_equal(a, c), "a different seed should draw different params"
    json.dumps(ALL[name]().summary(sa))  # the manifest stores it


@pytest.mark.parametrize("name", CASES)
def test_keeps_shape_dtype_and_range(face, name):
    x, ctx = face
    w = np.random.default_rng(0).random(ctx.shape, dtype=np.float32)
    out, _ = _apply(name, face, w, seed=1)
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.shares_memory(out, x) is False


@pytest.mark.parametrize("name", CASES)
def test_changes_image_and_scales_with_strength(face, name):
    x, _ = face
    weak, _ = _apply(name, face, 0.2, seed=5)
    strong, _ = _apply(name, face, 0.8, seed=5)
    mad_weak, mad_strong = np.abs(weak - x).mean(), np.abs(strong - x).mean()
    assert mad_weak > 1e-5, f"{name} did nothing at strength 0.2"
    assert mad_strong > 2.0 * mad_weak  # linear blend: 4x before clipping


@pytest.mark.parametrize("name", CASES)
def test_identity_at_strength_zero(face, name):
    x, _ = face
    out, _ = _apply(name, face, 0.0, seed=2)
    assert out.tobytes() == x.tobytes()


@pytest.mark.parametrize("name", CASES)
def test_params_validation_names_the_field(name):
    P = ALL[name].Params
    with pytest.raises(ValueError, match=rf"{P.__name__}\.prob"):
        P(prob=1.5)
    ranges = [f.name for f in dataclasses.fields(P) if isinstance(getattr(P(), f.name), tuple)]
    assert ranges, f"{name} has no sampled range"
    lo, hi = getattr(P(), ranges[0])
    with pytest.raises(ValueError, match=rf"{P.__name__}\.{ranges[0]}"):
        P(**{ranges[0]: (hi + 1, lo)})


# --- pipeline ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def face_hwc():
    return synthetic_face(96, seed=1)  # ([H, W, 3] float32, [H, W] uint8)


def test_degrade_is_byte_deterministic(face_hwc):
    img, lab = face_hwc
    a, ra = degrade(img, lab, None, seed=11)
    b, rb = degrade(img, lab, None, seed=11)
    assert a.tobytes() == b.tobytes() and ra == rb
    assert a.shape == img.shape and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    c, _ = degrade(img, lab, None, seed=12)
    assert not np.array_equal(a, c)
    json.dumps(ra)


def test_uint8_and_float_inputs_agree(face_hwc):
    img, lab = face_hwc
    u8 = np.round(img * 255).astype(np.uint8)
    a, _ = degrade(u8, lab, None, seed=5)
    b, _ = degrade(u8.astype(np.float32) / np.float32(255), lab, None, seed=5)
    assert a.tobytes() == b.tobytes()


def test_zero_strengths_leave_the_image_untouched(face_hwc):
    img, lab = face_hwc
    zero = RegionStrengths(**{k: 0.0 for k in vars(RegionStrengths())})
    out, rec = degrade(img, lab, DegradeParams(strengths=zero, augment=False), seed=3)
    assert len(rec["steps"]) >= 3  # steps ran, with zero weight
    assert out.tobytes() == img.tobytes()


def test_disabling_a_step_leaves_other_steps_draws_unchanged(face_hwc):
    img, lab = face_hwc
    base = DegradeParams(min_steps=0)
    off = DegradeParams(min_steps=0, steps={"region_blur": STEPS["region_blur"].Params(prob=0.0)})
    for seed in range(6):
        _, ra = degrade(img, lab, base, seed)
        _, rb = degrade(img, lab, off, seed)
        kept = [s for s in ra["steps"] if s["name"] != "region_blur"]
        assert kept == rb["steps"]


def test_min_steps_tops_up(face_hwc):
    img, lab = face_hwc
    rare = {n: dataclasses.replace(c.Params(), prob=1e-9) for n, c in STEPS.items()}
    _, rec = degrade(img, lab, DegradeParams(steps=rare, min_steps=4, augment=False), seed=0)
    assert len(rec["steps"]) == 4 and all(s["forced"] for s in rec["steps"])


@pytest.mark.parametrize(
    "image,labels,reason",
    [
        (np.zeros((8, 8, 3), np.uint8), None, "no_mask"),
        (np.zeros((8, 8, 3), np.uint8), np.zeros((0, 0), np.uint8), "no_mask"),
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8), "no_mask"),  # parser found no face
        (np.zeros((8, 8, 3), np.uint8), np.ones((8, 9), np.uint8), "mask_size_mismatch"),
        (np.zeros((8, 8, 3), np.uint8), np.ones((4, 4), np.uint8), "mask_size_mismatch"),
        (np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), np.float32), "bad_labels"),
        (np.zeros((8, 8, 3), np.uint8), np.full((8, 8), 25, np.uint8), "bad_labels"),
        (np.zeros((8, 8), np.uint8), np.ones((8, 8), np.uint8), "bad_image"),
        (np.full((8, 8, 3), 2.0, np.float32), np.ones((8, 8), np.uint8), "bad_image"),
    ],
)
def test_bad_inputs_raise_with_reason(image, labels, reason):
    with pytest.raises(DegradeInputError) as err:
        degrade(image, labels, None, seed=0)
    assert err.value.reason == reason
    assert isinstance(err.value, ValueError)


def test_make_pairs_count_and_determinism(face_hwc):
    img, lab = face_hwc
    seed = image_seed("celeba/000123.jpg", 7)
    pairs = make_pairs(img, lab, 3, seed)
    again = make_pairs(img, lab, 3, image_seed("celeba/000123.jpg", 7))
    assert len(pairs) == 3 and [r["pair_index"] for _, r in pairs] == [0, 1, 2]
    assert all(a.tobytes() == b.tobytes() for (a, _), (b, _) in zip(pairs, again))
    assert not np.array_equal(pairs[0][0], pairs[1][0])
    single, _ = degrade(img, lab, None, child_seed(seed, 2))  # pair i is child i of the image seed
    assert single.tobytes() == pairs[2][0].tobytes()
    assert make_pairs(img, lab, 0, seed) == []


def test_image_seed_depends_on_id_and_global_seed():
    def draw(i, g):
        return np.random.default_rng(image_seed(i, g)).random()

    assert draw("a.png", 0) == draw("a.png", 0)
    assert len({draw("a.png", 0), draw("b.png", 0), draw("a.png", 1)}) == 3


def _binomial_ok(count, n, p, z=4.5):
    return abs(count - n * p) <= z * np.sqrt(n * p * (1 - p)) + 1


def test_augmentation_probabilities_match_seed_001():
    img, lab = synthetic_face(32, seed=2)
    off = {n: dataclasses.replace(c.Params(), prob=0.0) for n, c in STEPS.items()}
    params = DegradeParams(steps=off, min_steps=0)
    n = 600
    counts = dict.fromkeys(AUGMENTATIONS, 0)
    for seed in range(n):
        for a in degrade(img, lab, params, seed)[1]["augmentations"]:
            counts[a["name"]] += 1
    expected = {"blur_blobs": 0.10, "noise_boost": 0.15, "brightness_shift": 0.10, "extra_desaturation": 0.10}
    for name, p in expected.items():
        assert params.augmentations[name].prob == p
        assert _binomial_ok(counts[name], n, p), (name, counts[name], n * p)


def test_step_firing_rates_match_their_probabilities():
    params = DegradeParams(min_steps=0)
    n = 2000
    counts = dict.fromkeys(STEPS, 0)
    for seed in range(n):
        for name, _, _ in _fired_steps(params, np.random.SeedSequence(seed)):
            counts[name] += 1
    for name in STEPS:
        assert _binomial_ok(counts[name], n, params.steps[name].prob), (name, counts[name])


def test_params_from_dict():
    p = DegradeParams.from_dict(
        {"strengths": {"mouth": 0.95}, "mask": {"blobs": [2, 4]}, "steps": {"region_blur": {"sigma": [1, 2]}}}
    )
    assert p.strengths.mouth == 0.95 and p.mask.blobs == (2, 4)
    assert p.steps["region_blur"].sigma == (1, 2) and p.steps["noise"] == STEPS["noise"].Params()
    with pytest.raises(ValueError, match=r"steps\.region_blur\.sgima"):
        DegradeParams.from_dict({"steps": {"region_blur": {"sgima": [1, 2]}}})
    with pytest.raises(ValueError, match=r"steps\.blurr"):
        DegradeParams.from_dict({"steps": {"blurr": {}}})
    with pytest.raises(ValueError, match=r"RegionStrengths\.eyes"):
        DegradeParams.from_dict({"strengths": {"eyes": 1.5}})
