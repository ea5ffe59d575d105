"""The frozen VGG16 trunk's cost per crop, NCHW against NHWC input, side by side in one process.

Run:
    .venv/bin/python -m bench.feature_store                  # 2 threads (the store is warmed with every thread)
    .venv/bin/python -m bench.feature_store --threads 1 --size 112

Why: stage train_ff's feature store (fairsplat/models/feature_store.py) computes every crop's three VGG16 levels
once before training; that pass is the whole extra cost of ``train_ff.encoder: vgg16``. Vgg16Encoder feeds its
trunk NHWC (``channels_last``) input; this measures what that layout buys on this CPU and checks the levels agree.
Prints one JSON object: seconds per batch for each layout (median of ``--repeats`` after a warm-up), their
ratio, the largest relative difference of the levels, and load1 / others_cpu (see bench/raster.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.raster import _busy_seconds  # noqa: E402
from fairsplat.models.encoders import VGG_LEVELS, EncoderConfig, build_encoder  # noqa: E402


def nchw_levels(enc, images: torch.Tensor) -> list[torch.Tensor]:
    """The trunk on plain NCHW input: what Vgg16Encoder.trunk_levels did before it went NHWC."""
    x = ((images - enc.mean) / enc.std).contiguous()
    out = []
    for i, layer in enumerate(enc.trunk):
        x = layer(x)
        if i in VGG_LEVELS:
            out.append(torch.nn.functional.interpolate(x, size=enc.grid, mode="bilinear", align_corners=False,
                                                       antialias=True).contiguous())  # fmt: skip
    return out


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: oneDNN picks and caches its kernels
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32, help="the store's warm batch")
    ap.add_argument("--size", type=int, default=128, help="encoder input px (train_ff.encoder-size)")
    ap.add_argument("--grid", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    enc = build_encoder(EncoderConfig("vgg16", image_size=a.size, dim=64, grid=a.grid))
    images = torch.rand(a.batch, 3, a.size, a.size)  # [B, 3, S, S] in [0, 1]
    busy0, t0 = _busy_seconds(), time.perf_counter()
    with torch.no_grad():
        nchw = median_seconds(lambda: nchw_levels(enc, images), a.repeats)
        nhwc = median_seconds(lambda: enc.trunk_levels(images), a.repeats)
        diff = max(float((p - q).abs().max() / p.abs().max()) for p, q in
                   zip(nchw_levels(enc, images), enc.trunk_levels(images)))  # fmt: skip
    wall = time.perf_counter() - t0
    others = max(0.0, (_busy_seconds() - busy0) / wall - a.threads)
    print(json.dumps({"what": "vgg16_trunk", "threads": a.threads, "batch": a.batch, "size": a.size,
                      "nchw_s": round(nchw, 3), "nhwc_s": round(nhwc, 3), "nchw_over_nhwc": round(nchw / nhwc, 2),
                      "ms_per_crop_nhwc": round(1000 * nhwc / a.batch, 1), "max_rel_diff": diff,
                      "load1": round(os.getloadavg()[0], 2), "others_cpu": round(others, 2)}))  # fmt: skip


if __name__ == "__main__":
    main()
