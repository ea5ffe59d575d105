"""Curation throughput for photos at 512 px: per-step costs, one process, and the stage's pool.

Run (CPU; the floor is >= 10 photos/s on 2 cores at 512 px):
    .venv/bin/python -m bench.curate                        # 200 photos, 512 px crops, 2 workers
    .venv/bin/python -m bench.curate --photos 100 --workers 1

Inputs: the 100 real face chips of ../shared/data/faces_open (200 px), upscaled
to 512 x 512 (bicubic) and saved as JPEG q95 into a temporary folder, cycled
to ``--photos`` files; without that folder, the detectable painted test card
(fairsplat/testing/testcard.py, ``shade=True``) at 512 px with varied skin colours. Every
photo goes through the real path: load, dlib HOG + 68 landmarks, crop, ITA,
Monk, and, because ``per_type`` is off, every accepted photo is also rendered
(warp, foreground mask, grey composite, PNG write) — the worst case; a real
run renders only the balanced subset (3,000 of FairFace's 108K).

Prints JSON lines: the machine (CPU, cores, load average before and after:
the machine is shared, so read photos/s next to the load), median ms per step
in one process, then photos/s for ``curate()`` end to end (pool start-up and
model loading included) with the stage's worker count.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from fairsplat.curate import analyse, curate, render  # noqa: E402
from fairsplat.curate.config import CurateConfig  # noqa: E402
from fairsplat.sources import folder  # noqa: E402

FLOOR = 10.0  # photos/s, 2 cores, 512 px
FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces_open" / "images"


def machine() -> dict:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()]}


def make_photos(root: Path, n: int, size: int) -> str:
    """``n`` JPEG photos of ``size`` px in ``root``; returns what they are made from."""
    sources = sorted(FACES.glob("*.jpg")) if FACES.is_dir() else []
    for i in range(n):
        if sources:
            img = Image.open(sources[i % len(sources)]).convert("RGB").resize((size, size), Image.BICUBIC)
        else:
            from fairsplat.testing.testcard import paint

            rng = np.random.default_rng(i)
            skin = tuple(int(v) for v in rng.integers([60, 40, 30], [240, 190, 160]))
            img = Image.fromarray(paint(size, skin=skin, shade=True).image)
        img.save(root / f"{i:05d}.jpg", quality=95)
    return "faces_open upscaled" if sources else "painted test card"


def step_times(records, cfg: CurateConfig, out: Path) -> dict:
    """Median ms of analyse and render per photo, one process (models warmed first)."""
    analyse(records[0], cfg)
    t_an, t_re = [], []
    for r in records[: min(len(records), 60)]:
        t0 = time.perf_counter()
        a = analyse(r, cfg)
        t_an.append(1000 * (time.perf_counter() - t0))
        if a.ok:
            t0 = time.perf_counter()
            render(r, a, cfg, out)
            t_re.append(1000 * (time.perf_counter() - t0))
    med = lambda v: round(statistics.median(v), 2) if v else None  # noqa: E731
    return {"analyse_ms": med(t_an), "render_ms": med(t_re), "n": len(t_an)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--size", type=int, default=512, help="photo side and crop side, px")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    print(json.dumps({"machine": machine()}))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "photos").mkdir()
        made_from = make_photos(root / "photos", args.photos, args.size)
        records = list(folder.iter_records(root / "photos"))
        cfg = CurateConfig(size=args.size, per_type=None, workers=args.workers, min_skin_pixels=400, min_face=64.0)
        steps = step_times(records, cfg.model_copy(update={"workers": 1}), root / "steps")
        print(json.dumps({"one_process": steps, "photos_per_s": round(1000 / (steps["analyse_ms"] + (steps["render_ms"] or 0)), 2)}))
        t0 = time.perf_counter()
        res = curate(records, root / "out", cfg)
        wall = time.perf_counter() - t0
    rate = len(records) / wall
    print(json.dumps({
        "pool": {"workers": args.workers, "photos": len(records), "made_from": made_from, "size": args.size,
                 "accepted": res.metrics["accepted"], "wall_s": round(wall, 2), "photos_per_s": round(rate, 2),
                 "floor": FLOOR, "meets_floor": rate >= FLOOR},
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
