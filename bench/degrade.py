"""Degradation throughput (seed 001 pairs) at 512 px: one process, and a pool of workers.

Run (CPU, the 2-core floor check: >= 20 pairs/s):
    .venv/bin/python -m bench.degrade                       # 512 px, per-step split, 1 process, 2 workers
    .venv/bin/python -m bench.degrade --size 256 --pairs 40 --workers 2 --no-steps

Prints one JSON object per line: the machine (CPU model, cores, load average:
this machine is shared, so read pairs/s next to the load), the median ms of
each step and augmentation at full strength, then pairs/s for a single process
and for the worker pool. Inputs are synthetic faces (``fairsplat.testing.fakes.synthetic_face``);
a "pair" is one degraded image with default params and its own seed, made
either by ``degrade`` (k = 1) or by ``make_pairs`` (k pairs per image, the
stage's pattern: validation and region layout are shared). Workers
get face indices, not images, so the pool measures degradation, not pickling.
Mode ``stage`` times the stage's own loop (``degrade.run.degrade_all``) on
PNG crops and masks on disk: reading, degrading, writing PNGs and the
manifest rows, pool start-up included; once without damage measurement and
once with SSIM/MAD on every pair (``measure_every`` 1, the default params).
Thread pools are pinned to 1 per process (one process per core is the plan).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from fairsplat.degrade import AUGMENTATIONS, STEPS, Context, check_inputs, degrade, make_pairs  # noqa: E402
from fairsplat.testing.fakes import synthetic_face  # noqa: E402

FLOOR_PAIRS_PER_S = 20.0  # the task's floor on 2 cores at 512 px
_FACES: list = []


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def _init(size: int, n_faces: int) -> None:
    """Worker initialiser: build the faces locally and compile/load the numba kernels."""
    _FACES[:] = [synthetic_face(size, seed=i) for i in range(n_faces)]
    degrade(*_FACES[0], None, seed=10**6)


def _pair(task: tuple[int, int, int]) -> int:
    """k pairs of one face (k = 1: a plain ``degrade`` call). -> steps applied"""
    face, seed, k = task
    if k == 1:
        return len(degrade(*_FACES[face % len(_FACES)], None, seed=seed)[1]["steps"])
    return sum(len(r["steps"]) for _, r in make_pairs(*_FACES[face % len(_FACES)], k, seed))


def bench_steps(size: int, repeats: int) -> list[dict]:
    """Median ms of each registered step/augmentation at full strength on one face."""
    img, lab = _FACES[0]
    x, labels = check_inputs(img, lab)
    ctx = Context(labels)
    ctx.silhouette  # noqa: B018 - label-derived, cached once per image in the pipeline too
    weight = np.ones(labels.shape, np.float32)
    rows = []
    for kind, registry in (("step", STEPS), ("augmentation", AUGMENTATIONS)):
        for name, cls in registry.items():
            deg = cls()
            deg.apply(x, weight, ctx, np.random.default_rng(0))
            times = []
            for r in range(repeats):
                t0 = time.perf_counter()
                deg.apply(x, weight, ctx, np.random.default_rng(r))
                times.append(time.perf_counter() - t0)
            ms = statistics.median(times) * 1e3
            rows.append({"bench": "degrade", "mode": kind, "name": name, "size": size, "ms": round(ms, 2),
                         "prob": deg.params.prob, "expected_ms_per_pair": round(ms * deg.params.prob, 2)})  # fmt: skip
    return rows


def bench_single(n_pairs: int, size: int, k: int) -> dict:
    steps = 0
    t0 = time.perf_counter()
    for i in range(n_pairs // k):
        steps += _pair((i, i, k))
    dt = time.perf_counter() - t0
    n = n_pairs // k * k
    return {"bench": "degrade", "mode": "single", "workers": 1, "k": k, "size": size, "pairs": n,
            "seconds": round(dt, 3), "pairs_per_s": round(n / dt, 2),
            "ms_per_pair": round(dt / n * 1e3, 1), "steps_per_pair": round(steps / n, 2)}  # fmt: skip


def bench_pool(n_pairs: int, size: int, workers: int, n_faces: int, k: int) -> dict:
    ctx = mp.get_context("spawn")  # clean workers, as a real shard runner would start them
    with ctx.Pool(workers, initializer=_init, initargs=(size, n_faces)) as pool:
        pool.map(time.sleep, [0.5] * (2 * workers), chunksize=1)  # let every worker finish _init
        t0 = time.perf_counter()
        steps = sum(pool.map(_pair, [(i, i, k) for i in range(n_pairs // k)], chunksize=max(1, 4 // k)))
        dt = time.perf_counter() - t0
    n = n_pairs // k * k
    pps = n / dt
    return {"bench": "degrade", "mode": "pool", "workers": workers, "k": k, "size": size, "pairs": n,
            "seconds": round(dt, 3), "pairs_per_s": round(pps, 2), "steps_per_pair": round(steps / n, 2),
            "floor": FLOOR_PAIRS_PER_S, "meets_floor": pps >= FLOOR_PAIRS_PER_S}  # fmt: skip


def bench_stage(n_images: int, size: int, workers: int, k: int, measure_every: int) -> dict:
    """The stage's loop end to end on PNGs in a temp dir (pool start-up included)."""
    import shutil
    import tempfile
    from pathlib import Path

    from PIL import Image

    from fairsplat.degrade.pipeline import DegradeParams
    from fairsplat.degrade.run import Job, Settings, degrade_all

    tmp = Path(tempfile.mkdtemp(prefix="bench_degrade_"))
    try:
        jobs = []
        for i in range(n_images):
            img, lab = _FACES[i % len(_FACES)]
            Image.fromarray(np.round(img * 255).astype(np.uint8)).save(tmp / f"c{i}.png")
            Image.fromarray(lab, mode="L").save(tmp / f"m{i}.png")
            jobs.append(Job(f"img{i}", "train", "I", tmp / f"c{i}.png", tmp / f"m{i}.png"))
        st = Settings(DegradeParams(), k, 1, tmp / "out", measure_every)
        rows, rejects, dt = degrade_all(jobs, st, workers, progress=False)
        assert not rejects and len(rows) == n_images * k
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    pps = len(rows) / dt
    return {"bench": "degrade", "mode": "stage", "workers": workers, "k": k, "size": size, "pairs": len(rows),
            "measure_every": measure_every, "seconds": round(dt, 3), "pairs_per_s": round(pps, 2),
            "floor": FLOOR_PAIRS_PER_S, "meets_floor": pps >= FLOOR_PAIRS_PER_S}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--pairs", type=int, default=80, help="pairs per timed run")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--faces", type=int, default=8, help="distinct synthetic faces cycled through")
    ap.add_argument("--repeats", type=int, default=15, help="repeats per step for the split")
    ap.add_argument("--k", type=int, nargs="+", default=[1, 4], help="pairs per clean image (make_pairs k)")
    ap.add_argument("--no-steps", action="store_true", help="skip the per-step split")
    ap.add_argument("--no-stage", action="store_true", help="skip the end-to-end stage loop")
    args = ap.parse_args()

    print(json.dumps({"bench": "degrade", "mode": "machine", "cpu": cpu_model(), "cores": os.cpu_count(),
                      "loadavg_1m": round(os.getloadavg()[0], 2), "numpy": np.__version__}), flush=True)  # fmt: skip
    _init(args.size, args.faces)
    if not args.no_steps:
        for row in bench_steps(args.size, args.repeats):
            print(json.dumps(row), flush=True)
    for k in args.k:  # k = 1: one degrade() per pair; k > 1: make_pairs shares the per-image setup
        print(json.dumps(bench_single(args.pairs, args.size, k)), flush=True)
        if args.workers > 1:
            print(json.dumps(bench_pool(2 * args.pairs, args.size, args.workers, args.faces, k)), flush=True)
    if not args.no_stage:
        k = max(args.k)
        for measure in (0, 1):
            print(json.dumps(bench_stage(2 * args.pairs // k, args.size, args.workers, k, measure)), flush=True)
    print(json.dumps({"bench": "degrade", "mode": "load", "loadavg_1m_end": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
