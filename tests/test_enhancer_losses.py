"""The enhancer's losses and data (fairsplat/enhancer/losses.py, data.py): Gram against a slow reference, LPIPS
and VGG16 from one trunk pass against the metric and the weights registry, step-indexed batches, augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fairsplat.enhancer.losses import gram_distance, gram_loss, gram_matrix
from fairsplat.weights import available

pytestmark = pytest.mark.usefixtures("one_thread")
needs_vgg = pytest.mark.skipif(not available("lpips_vgg"), reason="lpips_vgg weights absent: python -m fairsplat.weights fetch")
needs_alex = pytest.mark.skipif(not available("lpips_alex"), reason="lpips_alex weights absent: python -m fairsplat.weights fetch")


def slow_gram(f: torch.Tensor) -> torch.Tensor:  # [B, C, H, W] -> [B, C, C], loops over entries
    b, c, h, w = f.shape
    out = torch.zeros(b, c, c, dtype=torch.float64)
    for n in range(b):
        for i in range(c):
            for j in range(c):
                out[n, i, j] = sum(float(f[n, i, y, x]) * float(f[n, j, y, x]) for y in range(h) for x in range(w))
    return out / (c * h * w)


def test_gram_matrix_and_loss_against_a_slow_reference():
    torch.manual_seed(0)
    a, b = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(gram_matrix(a).double(), slow_gram(a), rtol=1e-5, atol=1e-6)
    ga, gb = slow_gram(a), slow_gram(b)
    ref = [float((ga[n] - gb[n]).abs().sum() / gb[n].abs().sum()) for n in range(2)]
    torch.testing.assert_close(gram_distance(a, b).double(), torch.tensor(ref, dtype=torch.float64), rtol=1e-5, atol=1e-7)
    c, d = torch.randn(2, 6, 3, 3), torch.randn(2, 6, 3, 3)
    two = gram_loss([a, c], [b, d])
    torch.testing.assert_close(two, (gram_distance(a, b).mean() + gram_distance(c, d).mean()) / 2)
    assert float(gram_loss([a], [a])) == 0.0


def test_gram_loss_has_gradients():
    a = torch.randn(1, 4, 6, 6, requires_grad=True)
    gram_loss([a], [torch.randn(1, 4, 6, 6)]).backward()
    assert a.grad is not None and a.grad.abs().sum() > 0


@needs_alex
@needs_vgg
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_from_one_trunk_pass_is_the_metric(net):
    from fairsplat.enhancer.losses import lpips_from_features, perceptual, trunk_features
    from fairsplat.metrics.lpips import lpips_distance

    torch.manual_seed(1)
    x, y = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    ours = lpips_from_features(net, trunk_features(x, net), trunk_features(y, net), x.device)
    torch.testing.assert_close(ours, lpips_distance(x, y, net), rtol=1e-5, atol=1e-6)
    lp, gram = perceptual(x, y, net)
    torch.testing.assert_close(lp, ours.mean())
    assert gram is not None and float(gram) > 0


@needs_vgg
def test_lpips_vgg_trunk_is_the_imagenet_vgg16_of_the_registry():
    """LPIPS's scaling layer is ImageNet normalisation: its taps are vgg16_features' relu1_2 ... relu5_3."""
    from fairsplat.enhancer.losses import trunk_features
    from fairsplat.weights.backbones import IMAGENET_MEAN, IMAGENET_STD, vgg16_features

    x = torch.rand(1, 3, 64, 64)
    h = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    taps = []
    with torch.no_grad():
        for i, layer in enumerate(vgg16_features()):
            h = layer(h)
            if i in (3, 8, 15, 22, 29):
                taps.append(h)
        ours = trunk_features(x, "vgg")
    for a, b in zip(ours, taps):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_augmentation_is_seeded_and_leaves_the_target_alone():
    from fairsplat.degrade.registry import AUGMENTATIONS
    from fairsplat.enhancer.data import augment

    img = np.full((32, 32, 3), 120, np.uint8)
    labels = np.zeros((32, 32), np.uint8)
    always = {n: cls.Params(prob=1.0) for n, cls in AUGMENTATIONS.items()}
    a, fired = augment(img, labels, always, np.random.SeedSequence(3))
    b, _ = augment(img, labels, always, np.random.SeedSequence(3))
    assert fired == list(AUGMENTATIONS) and np.array_equal(a, b) and a.shape == (3, 32, 32)
    assert not np.allclose(a, img.transpose(2, 0, 1) / 255)
    never = {n: cls.Params(prob=0.0) for n, cls in AUGMENTATIONS.items()}
    c, fired = augment(img, labels, never, np.random.SeedSequence(3))
    assert fired == [] and np.allclose(c, img.transpose(2, 0, 1) / 255)


def test_step_batches_are_a_pure_function_of_seed_and_index():
    from fairsplat.degrade.registry import AUGMENTATIONS
    from fairsplat.enhancer.data import Pairs, StepPairs

    n, s = 6, 64
    g = torch.Generator().manual_seed(0)
    pairs = Pairs([f"p{i}" for i in range(n)], [f"i{i}" for i in range(n)], ["s"] * n, ["train"] * n, ["I"] * n,
                  [["noise"]] * n, [False, True] * 3, torch.randint(0, 255, (n, 3, s, s), generator=g, dtype=torch.uint8),
                  torch.randint(0, 255, (n, 3, s, s), generator=g, dtype=torch.uint8), torch.zeros(n, s, s, dtype=torch.uint8))  # fmt: skip
    augs = {k: c.Params(prob=0.5) for k, c in AUGMENTATIONS.items()}
    a = StepPairs(pairs, range(n), 4, 10, seed=7, augmentations=augs, patch=32)
    b = StepPairs(pairs, range(n), 4, 10, seed=7, augmentations=augs, patch=32)
    for i in (0, 9, 3):
        x, y = a[i], b[i]
        assert torch.equal(x["degraded"], y["degraded"]) and torch.equal(x["clean"], y["clean"])
        assert x["degraded"].shape == (4, 3, 32, 32)
    rows, corners = a.pick(2)
    item = a[2]
    for j, (r, (cy, cx)) in enumerate(zip(rows, corners)):
        torch.testing.assert_close(item["clean"][j], pairs.clean[r, :, cy : cy + 32, cx : cx + 32].float() / 255)
        if pairs.augmented[r]:  # already augmented when stored: left as it is
            torch.testing.assert_close(item["degraded"][j], pairs.degraded[r, :, cy : cy + 32, cx : cx + 32].float() / 255)
