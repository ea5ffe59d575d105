"""train_parser's pretrained encoder (``encoder: vgg16`` + ``encoder-weights: imagenet``) and the photo augmentations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fairsplat.models.parser import IMAGENET, Parser, ParserConfig, load_imagenet_encoder
from fairsplat.parse.train import TrainConfig, build_model, photo_augment
from fairsplat.weights import store

pytestmark = pytest.mark.usefixtures("one_thread")


def test_vgg16_encoder_takes_the_registry_imagenet_weights():
    if not store.available("lpips_vgg"):
        pytest.skip(f"lpips_vgg not fetched: run `{store.fetch_command('lpips_vgg')}`")
    from fairsplat.weights.backbones import vgg16_features

    cfg = ParserConfig(encoder="vgg16", size=64)
    model, info = build_model(TrainConfig(model=cfg, encoder_weights=IMAGENET))
    assert info["encoder_init"] == IMAGENET and info["matched"] == info["encoder_tensors"] == 26
    ref = vgg16_features()
    torch.testing.assert_close(model.net.encoder.features[0].weight, ref[0].weight)
    torch.testing.assert_close(model.net.encoder.features[28].bias, ref[28].bias)
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, len(cfg.labels), 64, 64)


def test_imagenet_for_an_encoder_without_offline_weights_says_so():
    with pytest.raises(ValueError, match="no offline ImageNet weights for encoder 'resnet18'"):
        load_imagenet_encoder(Parser(ParserConfig(encoder="resnet18", size=64)))


def test_photo_augment_changes_light_not_layout():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 32, 32)
    aug = photo_augment(1.0, 0.0)
    y = aug(x)
    assert y.shape == x.shape and 0.0 <= float(y.min()) and float(y.max()) <= 1.0
    ratio = (y.mean((2, 3)) + 1e-3) / (x.mean((2, 3)) + 1e-3)  # per image and channel: a colour cast + exposure
    assert float(ratio[:, 0].std()) > 0.05 and not torch.allclose(ratio[:, 0], ratio[:, 2], atol=0.05)
    assert photo_augment(0.0, 0.0) is None
    blurred = photo_augment(0.0, 1.0)(x)
    assert float((blurred[:, :, 1:] - blurred[:, :, :-1]).abs().mean()) < float((x[:, :, 1:] - x[:, :, :-1]).abs().mean())


def test_manifest_schema_of_the_hard_preset():
    from fairsplat.synth.config import SynthConfig
    from fairsplat.synth.dataset import MANIFEST_SCHEMA, manifest_schema

    assert manifest_schema(SynthConfig()) is MANIFEST_SCHEMA  # the default's file keeps its schema
    hard = manifest_schema(SynthConfig(lighting="hard"))
    assert hard.names[-2:] == ["light_exposure", "light_cct"] and hard.names[:-2] == MANIFEST_SCHEMA.names
