"""The ``track`` stage's work: load each input, fit, optionally refine, evaluate, write.

Inputs (registry ``LOADERS``): ``synth`` (SynthHeads, ground truth: the
accuracy metrics), ``curated`` (stage curate's crops: the tracks later stages
train on), ``videos`` and ``photos`` (folders, from the CLI). Each input's
metrics are prefixed by its name (``curated_nme_target``), except SynthHeads',
which are the stage's headline numbers (``nme``, ``jaw_deg``, ...).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fairsplat.head.model import HeadModel
from fairsplat.io.tables import write_table
from fairsplat.track import plots, tables
from fairsplat.track.evaluate import nme, summarise, synth_errors
from fairsplat.track.config import TrackConfig
from fairsplat.track.fit import Fitter, flame_landmarks_2d
from fairsplat.track.landmarks import LandmarkFlame
from fairsplat.track.run import TrackRun, fit_config, run_fit, subject_keys
from fairsplat.track.sources import OK, Items, load_curated, load_photos, load_synth
from fairsplat.track.video import jitter, load_videos

LOADERS: dict[str, Callable] = {
    "synth": lambda path, cfg, detect: load_synth(path, cfg.landmarks, detect, keep_images=cfg.photometric,
                                                  splits=cfg.synth_splits),
    "curated": lambda path, cfg, detect: load_curated(path, cfg.fov_deg),
    "videos": lambda path, cfg, detect: load_videos(path, cfg.fov_deg, cfg.video_fps, cfg.max_frames, detect,
                                                    keep_images=cfg.photometric),  # fmt: skip
    "photos": lambda path, cfg, detect: load_photos(path, cfg.fov_deg, detect, keep_images=cfg.photometric),
}
"""name -> (path, TrackParams, detector or None) -> Items."""

LANDMARK_SOURCE = {"synth": None, "curated": "curate", "videos": "dlib", "photos": "dlib"}


def refine_photometric(items: Items, run: TrackRun, head: HeadModel, model: LandmarkFlame, cfg: TrackConfig) -> dict[str, float]:
    """Photometric refinement of every fitted, non-interpolated row that has pixels, one subject at a time."""
    from fairsplat.track.photometric import PhotoConfig, PhotometricRefiner

    if items.images is None:
        return {}
    refiner = PhotometricRefiner(head, PhotoConfig(iters=cfg.photometric_iters))
    keys = np.array(subject_keys(items, cfg.share_shape), object)
    todo = run.fitted & ~run.interpolated
    before, after = [], []
    for key in sorted(set(keys[todo])):
        rows = np.nonzero(todo & (keys == key))[0]
        t = lambda a: torch.as_tensor(np.asarray(a)[rows])  # noqa: E731
        images = torch.as_tensor(np.stack([items.images[i] for i in rows]), dtype=torch.float32) / 255
        masks = None if items.masks is None else torch.as_tensor(np.stack([items.masks[i] for i in rows]), dtype=torch.float32) / 255
        w = t(items.visible).float()
        res = refiner.refine(images, t(run.shape), t(run.expr), t(run.pose), t(run.transl), t(items.K),
                             t(np.nan_to_num(items.targets)), w, masks=masks)  # fmt: skip
        run.expr[rows], run.pose[rows], run.transl[rows] = res.expr.numpy(), res.pose.numpy(), res.transl.numpy()
        with torch.no_grad():
            run.landmarks2d[rows] = flame_landmarks_2d(model, t(run.shape), res.expr, res.pose, res.transl, t(items.K)).numpy()
        before.append(res.loss_before.numpy())
        after.append(res.loss_after.numpy())
    if not before:
        return {}
    return {"photometric_loss_before": float(np.concatenate(before).mean()),
            "photometric_loss_after": float(np.concatenate(after).mean())}  # fmt: skip


def evaluate(name: str, items: Items, run: TrackRun, model: LandmarkFlame) -> tuple[dict, dict[str, np.ndarray]]:
    """Metrics of one input (unprefixed) and the per-row errors the tracks table records."""
    n, fitted = len(items), run.fitted
    ok = np.array([s == OK for s in items.status], bool)
    detected = items.n_faces >= 0
    out = {"images": n, "fitted": int(fitted.sum()), "interpolated": int(run.interpolated.sum()),
           "rejected": int((~fitted).sum()),
           "detection_rate": float(ok[detected].mean()) if detected.any() and name != "curated" else None}  # fmt: skip
    # (curate keeps only crops with a face, so a detection rate of its output would always read 1)
    errors = synth_errors(items, run, model) if "landmarks" in items.gt else {}
    self_nme = np.where(ok, nme(run.landmarks2d, items.targets, items.visible), np.nan)
    per_row = {"nme_target": self_nme, **errors}
    # dlib misses by skin type: a fairness figure of its own (1/0 where the detector ran, NaN elsewhere)
    detection = np.where(detected & (name != "curated"), ok.astype(float), np.nan)
    out |= summarise(per_row, items.fitzpatrick, fitted, subjects=items.subject, detection=detection)
    for k in [k for k in out if k.startswith("nme_target") and k != "nme_target"]:
        out.pop(k)
    if name == "videos":
        clips = jitter(items, run)
        for key in ("jitter_ratio", "motion_ratio", "jitter_detected", "jitter_fitted"):
            vals = [c[key] for c in clips.values() if np.isfinite(c[key])]
            out[key] = float(np.mean(vals)) if vals else None
        out["clips"] = len(clips)
    return out, errors


def _prefixed(name: str, m: dict) -> dict:
    return m if name == "synth" else {f"{name}_{k}": v for k, v in m.items()}


def run_track(cfg: TrackConfig, head_path: Path, inputs: dict[str, Path], out: Path, plot_dir: Path | None,
              detect: Callable | None = None) -> dict:  # fmt: skip
    """Track every input into ``out`` (a fresh directory); returns the metrics dict."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    head = HeadModel.load(head_path)
    model = LandmarkFlame(head)
    fitters: dict[bool, Fitter] = {}  # by "targets are detections" (the jaw contour follows the silhouette)
    metrics: dict = {"landmarks": cfg.landmarks, "threads": torch.get_num_threads(), "photometric": cfg.photometric}
    per_type: dict[str, dict] = {}
    track_rows, reject_rows = [], []
    fitted_total, fit_seconds, wall0 = 0, 0.0, time.perf_counter()
    for name, path in inputs.items():
        items = LOADERS[name](path, cfg, detect)
        lmk_source = LANDMARK_SOURCE[name] or cfg.landmarks
        detected = lmk_source != "gt"
        if detected not in fitters:
            fitters[detected] = Fitter(model, fit_config(cfg, detected, named_expressions=head.source == "procedural"))
        fitter = fitters[detected]
        run = run_fit(items, fitter, cfg.share_shape, cfg.batch_size)
        fitted_total, fit_seconds = fitted_total + int(run.fitted.sum()), fit_seconds + run.fit_seconds
        m: dict = {}
        if cfg.photometric:
            if "landmarks" in items.gt:
                m["nme_landmark_fit"] = summarise(synth_errors(items, run, fitter.model), items.fitzpatrick, run.fitted,
                                                  n_boot=0)["nme"]  # fmt: skip
            m |= refine_photometric(items, run, head, fitter.model, cfg)
        summary, errors = evaluate(name, items, run, fitter.model)
        m |= summary
        for t, v in m.pop("per_fitzpatrick", {}).items():
            per_type.setdefault(t, {}).update(_prefixed(name, v))
        metrics |= _prefixed(name, m)
        track_rows += tables.track_rows(items, run, lmk_source, errors)
        reject_rows += tables.reject_rows(items, run)
        if plot_dir is not None and cfg.plot_samples:
            plots.overlay(items, run, plots.pick(items, run, cfg.plot_samples), plot_dir / f"overlay_{name}.png")
    metrics["fit_fps"] = fitted_total / fit_seconds if fit_seconds > 0 else None
    metrics["fit_fps_per_thread"] = metrics["fit_fps"] / metrics["threads"] if metrics["fit_fps"] else None
    metrics["wall_seconds"] = time.perf_counter() - wall0
    schema = tables.tracks_schema(head.n_shape, head.n_expr)
    write_table(track_rows, schema, out / "tracks.parquet")
    write_table(reject_rows, tables.REJECTS_SCHEMA, out / "rejects.parquet")
    if per_type:
        metrics["per_fitzpatrick"] = per_type
    return metrics
