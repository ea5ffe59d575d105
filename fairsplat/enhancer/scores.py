"""Per-image scores of the enhancer's outputs: one set of names for held-out pairs and for real renders.

For an output image and the image it should match (``clean`` or ground truth):

- ``psnr``, ``ssim``, ``lpips_alex`` on the whole crop and ``_masked`` to the
  head (``fairsplat.metrics.registry``; LPIPS with the real AlexNet weights, the
  project's evaluation net; None when absent, never a random net);
- ``psnr_<region>``, ``ssim_<region>`` inside each of seed 001's regions
  (mouth, eyes, hair, nose, skin: ``fairsplat.labels.REGION_GROUPS`` on a label
  map; None where the crop lacks the region). LPIPS is not scored per region:
  at 128 px an eye region is a few dozen pixels, smaller than the receptive
  field of AlexNet's deeper taps, so a masked LPIPS there would mostly measure
  the surroundings;
- ``delta_ita``: ITA(image) - ITA(reference) over the skin, positive = lighter;
  ``abs_delta_ita`` its magnitude.

Rows carry the same numbers for the enhancer's input as ``<name>_input`` and
``<name>_gain`` = the improvement the enhancer brings, signed so that positive
always means better: output minus input for PSNR and SSIM, input minus output
for LPIPS and |ΔITA|.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from fairsplat.labels import LABEL, REGION_GROUPS
from fairsplat.metrics import colour
from fairsplat.metrics.registry import Absent, compute, compute_all

IMAGE_METRICS = ("psnr", "ssim", "lpips_alex")
REGION_METRICS = ("psnr", "ssim")
REGIONS = tuple(REGION_GROUPS)
LOWER_IS_BETTER = ("lpips_alex", "abs_delta_ita")


def floats(vals) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in vals]


def image_metrics(img: Tensor, ref: Tensor, mask: Tensor | None) -> dict[str, list[float | None]]:
    """``IMAGE_METRICS`` (and ``_masked`` with a mask [B, 1, S, S]) of img against ref [B, 3, S, S] in [0, 1]."""
    out = {}
    for name, vals in compute_all(img.float().clamp(0, 1), ref, mask, names=IMAGE_METRICS).items():
        out[name] = [None] * len(img) if isinstance(vals, Absent) else floats(vals)
    return out


def image_scores(img: Tensor, clean: Tensor, labels: Tensor) -> dict[str, list[float | None]]:
    """Every per-image number of one variant: img, clean [B, 3, S, S] in [0, 1], labels [B, S, S]."""
    n = len(img)
    img = img.float().clamp(0, 1)
    out = image_metrics(img, clean, (labels != LABEL["background"])[:, None].float())
    for region, ids in REGION_GROUPS.items():
        mask = torch.isin(labels, torch.tensor(ids, dtype=labels.dtype))[:, None].float()
        for m in REGION_METRICS:
            vals = compute(m, img, clean, mask)
            out[f"{m}_{region}"] = [None] * n if isinstance(vals, Absent) else floats(vals)
    skin = (labels == LABEL["skin"])[:, None]
    out["delta_ita"] = colour.delta_ita(img, clean, skin)
    out["abs_delta_ita"] = [None if d is None else abs(d) for d in out["delta_ita"]]
    return out


def gain(metric: str, out: float | None, inp: float | None) -> float | None:
    """Improvement brought by the enhancer (positive = better) for one metric."""
    if out is None or inp is None:
        return None
    base = metric.split("_masked")[0]
    return inp - out if base in LOWER_IS_BETTER else out - inp
