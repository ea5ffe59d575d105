"""Generator timings: forward latency at the default and LAM sizes, and training steps/s at the default.

Run:
    .venv/bin/python -m bench.ff                                  # default config, 1 thread; LAM forward too
    .venv/bin/python -m bench.ff --threads 2 --skip-lam
    .venv/bin/python -m bench.ff --device cuda --lam-only         # LAM-shaped forward at 512 px on a GPU

Prints one JSON object per row: what, config, threads, ms (median after warm-up), and load1 / others_cpu
(cores other processes used meanwhile, from /proc/stat; see bench/raster.py for why that matters here).
- ``forward``: sources [1, K, 3, S, S] -> attributes (encoder, decoder, heads), no gradient.
- ``animate+render``: the attributes posed at one target's FLAME parameters and rendered (what a
  viewer pays per frame).
- ``train_step``: one optimiser step of stage train_ff at its params (batch, losses, LPIPS included),
  on the committed data when present, else on random crops of the right size.
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

from fairsplat.avatar.binding import AvatarBinding  # noqa: E402
from fairsplat.models.generator import Generator  # noqa: E402
from fairsplat.sections.train_ff import TrainFFParams  # noqa: E402


def timed(fn, repeats: int, warmup: int = 1, device: str = "cpu") -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    ms, busy0, t0 = [], _busy_seconds(), time.perf_counter()
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        ms.append(1000 * (time.perf_counter() - t))
    wall = time.perf_counter() - t0
    mine = torch.get_num_threads() if not device.startswith("cuda") else 1
    others = max(0.0, (_busy_seconds() - busy0) / max(wall, 1e-9) - mine)
    return statistics.median(ms), round(others, 2)


def section(name: str) -> TrainFFParams:
    import yaml

    raw = yaml.safe_load(open(os.path.join(ROOT, "params.yaml")))["train_ff"]
    if name == "lam":
        raw |= {k: v for k, v in yaml.safe_load(open(os.path.join(ROOT, "params", "gpu.yaml")))["train_ff"].items()
                if k != "loss"}  # fmt: skip
    return TrainFFParams(**{k.replace("-", "_"): v for k, v in raw.items() if k != "loss"})


def forward_row(name: str, k: int, device: str, repeats: int) -> dict:
    cfg = section(name).ff_config()
    model = Generator(cfg.model).to(device).eval()
    from fairsplat.head.procedural import build_procedural_head

    binding = AvatarBinding(build_procedural_head(), cfg.model.binding).to(device)
    images = torch.rand(1, k, 3, cfg.size, cfg.size, device=device)
    points = binding.canonical(torch.zeros(1, binding.n_shape, device=device))
    dtype = torch.bfloat16 if device.startswith("cuda") else None

    def run():
        with torch.no_grad(), torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype is not None):
            model(images, points)

    ms, others = timed(run, repeats, device=device)
    return {"what": "forward", "config": name, "K": k, "size": cfg.size, "gaussians": len(binding), "ms": round(ms, 1),
            "threads": torch.get_num_threads(), "device": device, "others_cpu": others,
            "load1": round(os.getloadavg()[0], 2)}  # fmt: skip


def train_step_row(repeats: int) -> dict:
    from fairsplat.ff.data import load_frames, mix_identities
    from fairsplat.ff.task import FFTask
    from fairsplat.head.model import HeadModel
    from fairsplat.train.accel import build_accelerator

    cfg = section("default").ff_config()
    head = HeadModel.load(os.path.join(ROOT, "assets/head/head.npz"))
    frames = load_frames(os.path.join(ROOT, "data/curated"), os.path.join(ROOT, "data/tracks"), ["train"])
    subjects = mix_identities(frames, "train", cfg.type_mix, 0)
    acc = build_accelerator(cfg.accel)
    task = FFTask(cfg, frames, subjects, AvatarBinding(head, cfg.model.binding))
    model, loader, _ = task.build(acc)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = iter(loader)

    def step():
        terms = task.train_step(model, next(batches))
        terms["loss"].backward()
        opt.step()
        opt.zero_grad()

    ms, others = timed(step, repeats)
    return {"what": "train_step", "config": "default", "batch": cfg.batch, "ms": round(ms, 1),
            "steps_per_s": round(1000 / ms, 3), "threads": torch.get_num_threads(), "others_cpu": others,
            "load1": round(os.getloadavg()[0], 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--skip-lam", action="store_true")
    ap.add_argument("--lam-only", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    if not args.lam_only:
        rows += [forward_row("default", k, args.device, args.repeats) for k in (1, 2)]
        if args.device == "cpu":
            rows.append(train_step_row(args.repeats))
    if not args.skip_lam:
        rows.append(forward_row("lam", 1, args.device, max(2, args.repeats // 5)))
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
