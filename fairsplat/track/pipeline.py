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
from fairsplat.parallel import WorkersConfig
from fairsplat.track import plots, tables
from fairsplat.track.evaluate import nme, summarise, synth_errors
from fairsplat.track.config import TrackConfig
from fairsplat.track.fit import Fitter, flame_landmarks_2d
from fairsplat.track.landmarks import LandmarkFlame
from fairsplat.track.run import TrackRun, fit_config, run_fit, subject_keys
from fairsplat.track.sources import OK, Items, load_curated, load_photos, load_synth
from fairsplat.track.video import clip_skin, jitter, load_videos

LOADERS: dict[str, Callable] = {
    "synth": lambda path, cfg, detect: load_synth(path, cfg.landmarks, detect, keep_images=cfg.photometric,
                                                  splits=cfg.synth_splits),  # detect: cfg.landmarks' backend
    "curated": lambda path, cfg, detect: load_curated(path, cfg.fov_deg),
    "videos": lambda path, cfg, detect: load_videos(path, cfg.fov_deg, cfg.video_fps, cfg.max_frames, detect,
                                                    keep_images=cfg.photometric),  # fmt: skip
    "photos": lambda path, cfg, detect: load_photos(path, cfg.fov_deg, detect, keep_images=cfg.photometric),
}
"""name -> (path, TrackConfig, detector or None) -> Items."""


def detectors(cfg: TrackConfig, names: list[str], override: Callable | None = None) -> tuple[dict[str, Callable | None], dict[str, str], str | None]:
    """Per input: the landmark backend (faces/landmarks.py), the name of what its targets come from
    (``gt``, ``curate``, ``dlib``, ``mediapipe``) and the fallback reason (MediaPipe missing -> dlib).
    ``override``: a detector callable tests pass instead (its source is then ``cfg.detector``)."""
    from fairsplat.faces.landmarks import resolve

    wanted = {n: ("gt" if cfg.landmarks == "gt" else cfg.landmarks) if n == "synth" else "curate" if n == "curated"
              else cfg.detector for n in names}  # fmt: skip
    fns: dict[str, Callable | None] = {}
    used, why = dict(wanted), None
    for n, w in wanted.items():
        if w in ("gt", "curate"):
            fns[n] = None
        elif override is not None:
            fns[n] = override
        else:
            fns[n], used[n], reason = resolve(w)
            why = why or reason
    return fns, used, why


def make_fitter(model: LandmarkFlame, cfg: TrackConfig, detected: bool, dense: bool, named_expressions: bool) -> Fitter:
    """The 68-landmark fitter, or with ``dense`` the one fitting MediaPipe's 468 mesh points (``track.fit-points``)."""
    fit = fit_config(cfg, detected, named_expressions=named_expressions)
    if not dense:
        return Fitter(model, fit)
    from fairsplat.track.dense import DenseFitter

    return DenseFitter(model, fit, facing=cfg.dense_facing, weights=cfg.dense_weights, stride=cfg.dense_stride)


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
    if "yaw" in items.gt:
        out |= nme_by_condition(items, run, errors, model.source == "procedural")
    if name == "videos":
        clips = jitter(items, run)
        for key in ("jitter_ratio", "motion_ratio", "jitter_detected", "jitter_fitted"):
            vals = [c[key] for c in clips.values() if np.isfinite(c[key])]
            out[key] = float(np.mean(vals)) if vals else None
        out["clips"] = len(clips)
        out["clip_skin"] = clip_skin(items)  # per clip: median ITA over frames, its spread, the type
    return out, errors


BLINK = 0.5
"""A SynthHeads image whose blink coefficient (procedural head) reaches this has a closed eye."""


def view_conditions(yaw: np.ndarray, expr: np.ndarray, named_expressions: bool = True) -> dict[str, np.ndarray]:
    """SynthHeads images by view: ``frontal`` (yaw 0, both eyes open), ``turned`` (yaw != 0, eyes open),
    ``closed_eyes`` (any view, a blink >= :data:`BLINK`); yaw [N] degrees, expr [N, E] -> bool [N] each.
    ``named_expressions``: see :func:`nme_by_condition`."""
    from fairsplat.head.procedural import EXPRESSION_NAMES

    expr = np.asarray(expr)
    blink = np.zeros(len(expr))
    cols = [EXPRESSION_NAMES.index("blink_l"), EXPRESSION_NAMES.index("blink_r")]
    if named_expressions and expr.shape[1] > max(cols):
        blink = expr[:, cols].max(1)
    closed, front = blink >= BLINK, np.abs(np.asarray(yaw)) < 1e-6
    return {"frontal": front & ~closed, "turned": ~front & ~closed, "closed_eyes": closed}


def nme_by_condition(items: Items, run: TrackRun | None, errors: dict[str, np.ndarray],
                     named_expressions: bool = True) -> dict:  # fmt: skip
    """SynthHeads NME of the fit and of the detector split by view: ``frontal`` (yaw 0, both eyes
    open), ``turned`` (yaw != 0, eyes open) and ``closed_eyes`` (any view, a blink >= 0.5).

    ``named_expressions``: the head's expressions are the procedural head's blendshapes, the
    first ``n_expr`` of ``EXPRESSION_NAMES`` (the default head has 10 of the 12), so the blinks
    can be read; with a PCA basis (FLAME) nothing is ``closed_eyes``."""
    masks = view_conditions(items.gt["yaw"], items.gt["expr"], named_expressions)
    out = {}
    for key in ("nme", "nme_detector"):
        e = errors.get(key)
        for cond, m in masks.items():
            v = None if e is None else e[m & np.isfinite(e)]
            out[f"{key}_{cond}"] = float(v.mean()) if v is not None and v.size else None
            if key == "nme":
                out[f"n_{cond}"] = int(m.sum())
    return out


def _prefixed(name: str, m: dict) -> dict:
    return m if name == "synth" else {f"{name}_{k}": v for k, v in m.items()}


def run_track(cfg: TrackConfig, head_path: Path, inputs: dict[str, Path], out: Path, plot_dir: Path | None,
              detect: Callable | None = None, engine: WorkersConfig | None = None) -> dict:  # fmt: skip
    """Track every input into ``out`` (a fresh directory); returns the metrics dict.

    Order: fit every input, write both tables, then draw the overlays; a plotting
    failure is reported (``plot_errors``) and never loses the fits."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    head = HeadModel.load(head_path)
    model = LandmarkFlame(head)
    fitters: dict[tuple[bool, bool], Fitter] = {}  # by (targets are detections: the jaw contour; dense mesh fit)
    fns, sources, fallback = detectors(cfg, list(inputs), detect)
    metrics: dict = {"landmarks": ", ".join(f"{n}: {s}" for n, s in sources.items()) or None,
                     "landmarks_fallback": fallback, "threads": torch.get_num_threads(), "photometric": cfg.photometric}  # fmt: skip
    fit_points: dict[str, str] = {}
    per_type: dict[str, dict] = {}
    track_rows, reject_rows, to_plot = [], [], []
    fitted_total, fit_seconds, wall0 = 0, 0.0, time.perf_counter()
    for name, path in inputs.items():
        items = LOADERS[name](path, cfg, fns[name])
        lmk_source = sources[name]
        detected = lmk_source != "gt"
        dense = cfg.fit_points == "dense468" and items.points is not None  # only a mesh backend gives the points
        fit_points[name] = "dense468" if dense else "68"  # what was fitted: the 468 mesh points, or the source's 68
        if (detected, dense) not in fitters:
            fitters[(detected, dense)] = make_fitter(model, cfg, detected, dense, head.source == "procedural")
        fitter = fitters[(detected, dense)]
        run = run_fit(items, fitter, cfg.share_shape, cfg.batch_size, cfg.workers, engine, scratch=str(out))
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
            to_plot.append((name, items, run))
    metrics["fit_points"] = ", ".join(f"{n}: {p}" for n, p in fit_points.items()) or None
    metrics["fit_fps"] = fitted_total / fit_seconds if fit_seconds > 0 else None
    metrics["fit_fps_per_thread"] = metrics["fit_fps"] / metrics["threads"] if metrics["fit_fps"] else None
    schema = tables.tracks_schema(head.n_shape, head.n_expr)
    write_table(track_rows, schema, out / "tracks.parquet")
    write_table(reject_rows, tables.REJECTS_SCHEMA, out / "rejects.parquet")
    metrics["plot_errors"] = draw_overlays(to_plot, cfg.plot_samples, plot_dir)
    metrics["wall_seconds"] = time.perf_counter() - wall0
    if per_type:
        metrics["per_fitzpatrick"] = per_type
    return metrics


def draw_overlays(jobs: list[tuple[str, Items, TrackRun]], n: int, plot_dir: Path | None) -> int:
    """``overlay_<input>.png`` per input; a failure is printed and counted, never raised (the tracks are written)."""
    import sys
    import traceback

    errors = 0
    for name, items, run in jobs:
        try:
            plots.overlay(items, run, plots.pick(items, run, n), plot_dir / f"overlay_{name}.png")
        except Exception as err:  # noqa: BLE001  (a plot must never cost the fits)
            errors += 1
            print(f"track: overlay_{name}.png failed ({type(err).__name__}: {err}); the tracks are written", file=sys.stderr)
            traceback.print_exc(limit=3)
    return errors
