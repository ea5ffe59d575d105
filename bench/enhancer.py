"""Enhancer latency: one 512 px image through the tiny default and through SD-Turbo's shapes (seed 001's model).

Run:
    .venv/bin/python -m bench.enhancer                          # CPU, 1 thread: tiny default (+ SD-Turbo shapes)
    .venv/bin/python -m bench.enhancer --threads 2 --skip-sd
    .venv/bin/python -m bench.enhancer --device cuda --dtype bf16   # on a GPU (issue 14: <= 30 ms on an H100)

Prints one JSON object per row: what, side, device, dtype, threads, ms (median after warm-up), and load1 /
others_cpu (cores other processes used meanwhile, from /proc/stat; bench/raster.py says why that matters).
- ``tiny``: the default params' model (``models/enhancer`` when it exists, else the same config at random
  init: the cost is the same), [1, 3, 512, 512] -> [1, 3, 512, 512], no gradient.
- ``sd_turbo``: SD-Turbo's UNet and VAE configs (fairsplat/models/enhancer.py) with random weights and the
  four skips, LoRA merged away (a merged adapter costs nothing at inference): the compute of seed 001's model.
  Built on CPU it needs ~4 GB; a fp32 forward at 512 px takes tens of seconds on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

from bench.raster import _busy_seconds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from fairsplat.models.enhancer import SD_TURBO_UNET, SD_TURBO_VAE, Enhancer, EnhancerConfig  # noqa: E402
from fairsplat.sections.train_enhancer import TrainEnhancerParams  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def timed(fn, repeats: int, warmup: int, device: str) -> tuple[float, float]:
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    ms, busy0, t0 = [], _busy_seconds(), time.perf_counter()
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        ms.append(1000 * (time.perf_counter() - t))
    wall = time.perf_counter() - t0
    mine = torch.get_num_threads() if not device.startswith("cuda") else 1
    return statistics.median(ms), round(max(0.0, (_busy_seconds() - busy0) / max(wall, 1e-9) - mine), 2)


def tiny_model() -> tuple[Enhancer, str]:
    path = os.path.join(ROOT, "models", "enhancer")
    if os.path.isfile(os.path.join(path, "model.safetensors")):
        from fairsplat.enhancer.checkpoint import load_any

        return load_any(path)[0], "models/enhancer"
    cfg = TrainEnhancerParams.load(os.path.join(ROOT, "params.yaml")).enhancer_config()
    return Enhancer(cfg.model).eval(), "params.yaml at random init"


def sd_turbo_model() -> tuple[Enhancer, str]:
    cfg = EnhancerConfig(vae=SD_TURBO_VAE, unet=SD_TURBO_UNET, text_tokens=77, text_learned=False)
    return Enhancer(cfg, text=torch.zeros(1, 77, 1024)).eval(), "SD-Turbo shapes, random weights"


def row(what: str, build, side: int, device: str, dtype: str, repeats: int, warmup: int) -> dict:
    model, source = build()
    model = model.to(device=device, dtype=DTYPES[dtype])
    x = torch.rand(1, 3, side, side, device=device, dtype=DTYPES[dtype])

    def run():
        with torch.no_grad():
            model(x)

    ms, others = timed(run, repeats, warmup, device)
    params = sum(p.numel() for p in model.parameters())
    del model
    return {"what": what, "model": source, "params": params, "side": side, "device": device, "dtype": dtype,
            "threads": torch.get_num_threads(), "ms": round(ms, 1), "load1": round(os.getloadavg()[0], 2),
            "others_cpu": others}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-sd", action="store_true", help="tiny model only")
    ap.add_argument("--sd-repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    gpu = args.device.startswith("cuda")
    print(json.dumps(row("tiny", tiny_model, args.side, args.device, args.dtype, args.repeats, 1)), flush=True)
    if not args.skip_sd:
        reps = args.repeats * 10 if gpu else args.sd_repeats
        print(json.dumps(row("sd_turbo", sd_turbo_model, args.side, args.device, args.dtype, reps, 3 if gpu else 1)))


if __name__ == "__main__":
    main()
