"""FLAME landmark fitting speed (frames/s per core, by batch size) and real-video jitter.

Run (CPU; the floor is >= 2 frames/s per core, batched):
    .venv/bin/python -m bench.track                       # procedural head, batches 1..128, videos_open
    .venv/bin/python -m bench.track --head assets/head/head.npz --batches 16 64 --no-videos

Fitting: random heads of the chosen head model (shape, expression ~ N(0, 1),
head turned up to 25 deg, jaw open) projected exactly, plus 1 px landmark
noise; the stage's default fitter (4 rigid + 15 full Levenberg-Marquardt
iterations, priors). One torch thread, so frames/s is per core. Every batch
size is timed after one warm-up call (the first call pays for functorch's
set-up), median of ``--repeats``.

Videos: every clip of ../shared/data/videos_open (skipped when absent),
decoded at the stage's 5 fps or ``--video-fps`` (at most 60 frames), dlib per frame, one fit per
clip with the stage's smoothing; prints detection counts, the fitted/detected
jitter (second-difference) and motion ratios, and the fit's frames/s.

Prints JSON lines with the load average before and after each measurement,
because the machine is shared (2 cores, ~6 engineers).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from fairsplat.config import parse_section  # noqa: E402
from fairsplat.sections.track import TrackParams  # noqa: E402
from fairsplat.track.fit import Fitter  # noqa: E402
from fairsplat.track.landmarks import LandmarkFlame  # noqa: E402
from fairsplat.track.run import fit_config  # noqa: E402
from fairsplat.testing.track_problems import random_problem  # noqa: E402

FLOOR = 2.0  # frames/s per core, batched
VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos_open"


def load() -> float:
    return round(os.getloadavg()[0], 2)


def head_model(path: str | None):
    from fairsplat.head.model import HeadModel

    if path:
        return HeadModel.load(path)
    from fairsplat.head.procedural import build_procedural_head

    return build_procedural_head()


def bench_fit(fitter: Fitter, batch: int, repeats: int) -> dict:
    p = random_problem(fitter.model, batch, seed=batch)
    noisy = p.landmarks + torch.randn(p.landmarks.shape, generator=torch.Generator().manual_seed(1))
    vis = torch.ones(batch, 68)
    fitter.fit(noisy[:1], p.K[:1], vis[:1])  # warm-up
    before, times = load(), []
    for _ in range(repeats):
        times.append(fitter.fit(noisy, p.K, vis).seconds)
    sec = statistics.median(times)
    return {"bench": "fit", "batch": batch, "seconds": round(sec, 3), "fps_per_core": round(batch / sec, 2),
            "floor": FLOOR, "ok": batch / sec >= FLOOR, "load_before": before, "load_after": load()}  # fmt: skip


def bench_videos(fitter: Fitter, cfg: TrackParams) -> list[dict]:
    from fairsplat.track.run import run_fit
    from fairsplat.track.sources import OK
    from fairsplat.track.video import clip_items, jitter, read_clip

    out = []
    for path in sorted(VIDEOS.glob("*.mp4")):
        before, t0 = load(), time.perf_counter()
        clip = read_clip(path, cfg.video_fps, cfg.max_frames)
        items = clip_items(clip, cfg.fov_deg)
        detect_s = time.perf_counter() - t0
        run = run_fit(items, fitter, cfg.share_shape, cfg.batch_size)
        j = jitter(items, run).get(clip.name, {})
        out.append({
            "bench": "video", "clip": clip.name, "frames": len(items), "size": list(clip.frames.shape[1:3]),
            "detected": sum(s == OK for s in items.status), "interpolated": int(run.interpolated.sum()),
            "fitted": int(run.fitted.sum()), "decode_detect_s": round(detect_s, 2),
            "fit_fps_per_core": round(int(run.fitted.sum()) / run.fit_seconds, 2) if run.fit_seconds else None,
            **{k: round(v, 4) for k, v in j.items()}, "load_before": before, "load_after": load(),
        })  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--head", default=None, help="head asset (.npz); default: build the procedural head")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64, 128])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-videos", action="store_true")
    ap.add_argument("--video-fps", type=float, default=None, help="decode rate (default: track.video-fps)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = parse_section("track", {} if args.video_fps is None else {"video-fps": args.video_fps}, TrackParams)
    fitter = Fitter(LandmarkFlame(head_model(args.head)), fit_config(cfg.track_config()))
    print(json.dumps({"bench": "machine", "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                      "load": load(), "head_source": fitter.model.source}))  # fmt: skip
    for b in args.batches:
        print(json.dumps(bench_fit(fitter, b, args.repeats)), flush=True)
    if args.no_videos:
        return
    if not VIDEOS.is_dir():
        print(json.dumps({"bench": "video", "skipped": f"{VIDEOS} absent"}))
        return
    for row in bench_videos(fitter, cfg):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
