"""The image-metric registry: one :class:`Metric` record per metric, ``compute`` and ``compute_all``.

Why a registry: evaluation tables, the report and the tests iterate over
``METRICS`` instead of naming metrics one by one, so a new metric is a new entry
(and is tested by the registry-parametrised tests without new test code).

A metric that needs pretrained weights (LPIPS) and cannot find them is
**absent**: :class:`Absent` with the reason, never a number from random
weights or a guess. ``compute_all`` returns per-image numpy arrays ``[B]``
(no gradients: for tables; train on the functions in :mod:`.image` directly).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fairsplat.metrics import image
from fairsplat.metrics.image import to_images, to_masks

MetricFn = Callable[[Tensor, Tensor, Tensor | None], Tensor]  # pred, target [B, 3, H, W], mask [B, 1, H, W] -> [B]


@dataclass(frozen=True)
class Metric:
    fn: MetricFn
    higher_is_better: bool
    unit: str
    weights: str | None = None
    """Pretrained weights it needs (a ``fairsplat.weights`` name), None if none: absent without them."""
    masked: bool = True
    """Has a masked variant (``<name>_masked`` in :func:`compute_all`)."""
    differentiable: bool = True


@dataclass(frozen=True)
class Absent:
    """A metric that could not be computed, and why (written as null in metrics JSON)."""

    reason: str


def _lpips(net: str) -> MetricFn:
    def fn(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        from fairsplat.metrics.lpips import lpips_distance  # lazy: loads torchvision nets only when asked

        return lpips_distance(pred, target, net=net, mask=mask)

    return fn


METRICS: dict[str, Metric] = {
    "psnr": Metric(image.psnr, higher_is_better=True, unit="dB"),
    "ssim": Metric(image.ssim, higher_is_better=True, unit=""),
    "ms_ssim": Metric(image.ms_ssim, higher_is_better=True, unit=""),
    "lpips_alex": Metric(_lpips("alex"), higher_is_better=False, unit="", weights="lpips_alex"),
    "lpips_vgg": Metric(_lpips("vgg"), higher_is_better=False, unit="", weights="lpips_vgg"),
}


def _needs_weights(name: str, metric: Metric, pred: Tensor, target: Tensor, mask: Tensor | None) -> Tensor | Absent:
    """Run a weights-backed metric; missing weights (or its module) make it absent."""
    try:
        from fairsplat.weights import WeightsMissing
    except ImportError as err:
        return Absent(f"{name}: fairsplat.weights unavailable ({err})")
    try:
        return metric.fn(pred, target, mask)
    except WeightsMissing as err:
        return Absent(f"{name}: {err}")
    except ImportError as err:
        return Absent(f"{name}: {err}")


@torch.no_grad()
def compute(name: str, pred, target, mask=None) -> np.ndarray | Absent:  # -> float64 [B] or Absent
    """One metric per image; ``pred``/``target`` [B, 3, H, W] in [0, 1] (or uint8 arrays), ``mask`` [B, 1, H, W]."""
    metric = METRICS[name]
    pred, target = to_images(pred), to_images(target)
    mask = to_masks(mask, pred)
    if mask is not None and not metric.masked:
        raise ValueError(f"metric {name} has no masked variant")
    keep = torch.ones(pred.shape[0], dtype=torch.bool) if mask is None else mask.sum(dim=(1, 2, 3)).cpu() > 0
    out = np.full(pred.shape[0], np.nan)  # an empty mask: undefined, NaN (not every metric can say so itself)
    if not keep.any():
        return out
    args = (pred[keep], target[keep], None if mask is None else mask[keep])
    values = metric.fn(*args) if metric.weights is None else _needs_weights(name, metric, *args)
    if isinstance(values, Absent):
        return values
    out[keep.numpy()] = values.detach().double().cpu().numpy()
    return out


def compute_all(pred, target, mask=None, names: Sequence[str] | None = None) -> dict[str, np.ndarray | Absent]:
    """``<name>`` and (with a mask) ``<name>_masked`` per metric, plus ``ms_ssim_scales`` [B].

    Each value is a float64 array [B] or an :class:`Absent`; NaN where a mask is empty.
    """
    pred = to_images(pred)
    out: dict[str, np.ndarray | Absent] = {}
    for name in names or METRICS:
        out[name] = compute(name, pred, target)
        if mask is not None and METRICS[name].masked:
            out[f"{name}_masked"] = compute(name, pred, target, mask)
    if "ms_ssim" in out:
        out["ms_ssim_scales"] = np.full(pred.shape[0], image.ms_ssim_scales(*pred.shape[2:]))
    return out
