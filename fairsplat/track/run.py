"""Fit every row of an ``Items``: batching by subject, clips, interpolation, rejects.

Which rows are fitted: every ``ok`` row, plus the failed rows (no face,
several faces) of a clip that has at least one ``ok`` frame; those carry no
landmark weight, so the smoothness term and then an explicit linear
interpolation in time fill them (``interpolated``). Every other row is
rejected with its status as the reason. So ``fitted + rejected == total``.

Who shares a shape: rows with one ``subject`` when ``share_shape`` is on,
and always the frames of one clip (the solver smooths only within a subject).
Batches are whole subjects, packed up to ``batch_size`` rows; a subject larger
than that is a batch of its own. The solver treats every subject as its own
block, so batching changes speed, not results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fairsplat.parallel import Plan, WorkersConfig, map_shards
from fairsplat.track.fit import FitConfig, Fitter, flame_landmarks_2d
from fairsplat.track.priors import PriorWeights
from fairsplat.track.sources import OK, Items


@dataclass
class TrackRun:
    """Per-row results aligned with ``items`` (NaN rows where not fitted)."""

    fitted: np.ndarray  # [N] bool: has parameters
    interpolated: np.ndarray  # [N] bool: parameters filled from clip neighbours
    shape: np.ndarray  # [N, S] float32
    expr: np.ndarray  # [N, E]
    pose: np.ndarray  # [N, 15] FLAME axis-angle
    transl: np.ndarray  # [N, 3] FLAME translation (camera: track.camera.flip_viewmat())
    landmarks2d: np.ndarray  # [N, 68, 2] fitted, pixels
    data_loss: np.ndarray  # [N] weighted mean squared landmark residual, face-size units
    fit_seconds: float  # wall time inside the optimiser (landmark fitting only)


EXPR_BOX = (0.0, 2.0)
"""Soft box on named blendshape weights (1 = one full action; SynthHeads' motion reaches ~1.6)."""


def fit_config(cfg, detected: bool = True, named_expressions: bool = False) -> FitConfig:
    """``TrackConfig`` -> the fitter's config (priors not exposed as params keep their defaults).

    ``detected``: the targets come from a detector (resolves ``contour: auto``);
    ``named_expressions``: the head's expressions are blendshape weights (``expr-limits: auto``)."""
    priors = PriorWeights(shape=cfg.shape_prior, expr=cfg.expr_prior, neck=cfg.neck_prior)
    contour = cfg.contour == "on" or (cfg.contour == "auto" and detected)
    box = EXPR_BOX if cfg.expr_limits == "auto" and named_expressions else None
    return FitConfig(
        n_shape=cfg.n_shape, n_expr=cfg.n_expr, rigid_iters=cfg.rigid_iters, iters=cfg.iters,
        jaw_line_weight=cfg.jaw_line_weight, robust=cfg.robust, robust_scale=cfg.robust_scale,
        rigid_robust="l2" if cfg.robust == "l2" else "huber", contour=contour, contour_radius=cfg.contour_radius,
        expr_range=box, priors=priors, smooth_pose=cfg.smooth_pose, smooth_expr=cfg.smooth_expr,
        smooth_transl=cfg.smooth_transl,
    )  # fmt: skip


def rows_to_fit(items: Items) -> np.ndarray:  # -> [N] bool
    ok = np.array([s == OK for s in items.status], bool)
    good_clips = {q for q, o in zip(items.sequence, ok) if q is not None and o}
    return ok | np.array([q is not None and q in good_clips for q in items.sequence], bool)


def subject_keys(items: Items, share_shape: bool) -> list[str]:
    """Shape-sharing groups: the subject (if shared), else the clip, else the row itself."""
    if share_shape:
        return [f"s:{s}" for s in items.subject]
    return [f"q:{q}" if q is not None else f"r:{i}" for q, i in zip(items.sequence, items.ids)]


def plan_batches(items: Items, mask: np.ndarray, share_shape: bool, batch_size: int) -> list[np.ndarray]:
    """Row indices per batch: whole subjects, each subject's clips contiguous and in frame order."""
    keys = subject_keys(items, share_shape)
    groups: dict[str, list[int]] = {}
    for i in np.nonzero(mask)[0]:
        groups.setdefault(keys[i], []).append(int(i))
    batches, cur = [], []
    for rows in groups.values():
        rows.sort(key=lambda i: (items.sequence[i] or "", int(items.frame[i]), i))
        if cur and len(cur) + len(rows) > batch_size:
            batches.append(np.array(cur))
            cur = []
        cur += rows
    if cur:
        batches.append(np.array(cur))
    return batches


def _ids(values: list) -> torch.Tensor:  # labels -> long ids (None: a fresh id each)
    table: dict = {}
    return torch.tensor([table.setdefault(v if v is not None else ("none", i), len(table)) for i, v in enumerate(values)])


def run_fit(items: Items, fitter: Fitter, share_shape: bool = True, batch_size: int = 64, workers: int = 1,
            engine: WorkersConfig | None = None, scratch: str | None = None) -> TrackRun:  # fmt: skip
    """Fit every row (module docstring), one batch a shard of fairsplat/parallel.

    ``workers == 1`` (default): in this process, on its torch threads, as
    before; else ``workers`` spawned processes of one torch thread each, or
    the Dask cluster of ``engine`` (the fitter travels pickled, once per
    worker; ``scratch``: a directory every worker can write). A batch whose
    fit fails every attempt leaves its rows unfitted, rejected with reason
    ``error: <the error>``."""
    n, ns, ne = len(items), fitter.model.n_shape, fitter.model.n_expr
    out = TrackRun(np.zeros(n, bool), np.zeros(n, bool), np.full((n, ns), np.nan, np.float32),
                   np.full((n, ne), np.nan, np.float32), np.full((n, 15), np.nan, np.float32),
                   np.full((n, 3), np.nan, np.float32), np.full((n, 68, 2), np.nan, np.float32),
                   np.full(n, np.nan, np.float32), 0.0)  # fmt: skip
    mask = rows_to_fit(items)
    keys = subject_keys(items, share_shape)
    ok = np.array([s == OK for s in items.status], bool)
    targets, visible = fit_targets(items, fitter.n_inputs)
    shards = [{"rows": rows, "targets": np.nan_to_num(targets[rows]),  # [B, L, 2]
               "K": items.K[rows], "visible": visible[rows] & ok[rows, None],  # [B, 3, 3], [B, L]
               "subjects": [keys[i] for i in rows], "sequence": [items.sequence[i] for i in rows]}
              for rows in plan_batches(items, mask, share_shape, batch_size)]  # fmt: skip
    plan = Plan(workers=workers, context="spawn", desc="fit", unit="row", weight=lambda b: len(b["rows"]))
    failed: dict[int, str] = {}
    inline = workers == 1 and (engine is None or engine.engine == "local")  # in this process: its threads stay
    for o in map_shards(_fit_shard, shards, plan, engine, init=_init_fit, initargs=(fitter, inline), scratch_in=scratch):
        rows = o.shard["rows"]
        if not o.ok:
            failed |= {int(i): o.error for i in rows}
            continue
        out.fit_seconds += o.value["seconds"]
        for name in ("shape", "expr", "pose", "transl", "landmarks2d", "data_loss"):
            getattr(out, name)[rows] = o.value[name]
    out.fitted[mask] = True
    out.interpolated[mask & ~ok] = True
    for i, why in failed.items():  # before interpolation: a failed batch's frames are no clip's anchors
        out.fitted[i] = out.interpolated[i] = False
        items.status[i] = f"error: {why}"[:300]
    interpolate_clips(items, out, fitter)
    return out


def fit_targets(items: Items, n_points: int) -> tuple[np.ndarray, np.ndarray]:  # -> [N, L, 2], [N, L] bool
    """What a fitter of ``n_points`` points fits: the 68 landmarks, or MediaPipe's 468 mesh points (dense fit)."""
    if n_points == 68:
        return items.targets, items.visible
    if items.points is None or items.points.shape[1] != n_points:
        raise ValueError(f"track: a {n_points}-point fit needs the detector's mesh points; {items.source} has none")
    return items.points, np.isfinite(items.points[..., 0])


_FIT: dict = {}
"""Per process: the fitter the shards use (set by :func:`_init_fit`)."""


def _init_fit(fitter: Fitter, inline: bool) -> None:
    """``inline``: the shards run in the caller's process (which may itself be a worker of another stage's
    shards, e.g. evaluate's re-tracking): its torch threads stay; elsewhere one thread per worker process."""
    if not inline:
        torch.set_num_threads(1)
    _FIT["fitter"] = fitter


def _fit_shard(b: dict) -> dict:
    """One batch through the fitter. -> its per-row arrays (numpy) and the optimiser's wall time."""
    res = _FIT["fitter"].fit(torch.as_tensor(b["targets"]), torch.as_tensor(b["K"]),
                             torch.as_tensor(b["visible"], dtype=torch.float32),
                             subjects=_ids(b["subjects"]), sequence=_ids(b["sequence"]))  # fmt: skip
    return {"seconds": res.seconds, **{name: getattr(res, name).numpy()
                                        for name in ("shape", "expr", "pose", "transl", "landmarks2d", "data_loss")}}  # fmt: skip


@torch.no_grad()
def interpolate_clips(items: Items, run: TrackRun, fitter: Fitter) -> None:
    """Failed frames of a clip: expression, pose and translation linear in frame index
    between the nearest fitted frames (held at the clip's ends); landmarks re-projected."""
    rows = np.nonzero(run.interpolated)[0]
    if not len(rows):
        return
    ok = np.array([s == OK for s in items.status], bool)
    seq = np.array([q or "" for q in items.sequence], object)
    for q in sorted({seq[i] for i in rows}):
        clip = np.nonzero(seq == q)[0]
        good, bad = clip[ok[clip]], clip[~ok[clip]]
        order = np.argsort(items.frame[good])
        good = good[order]
        for name in ("expr", "pose", "transl"):
            a = getattr(run, name)
            for d in range(a.shape[1]):
                a[bad, d] = np.interp(items.frame[bad], items.frame[good], a[good, d])
    t = {k: torch.as_tensor(getattr(run, k)[rows]) for k in ("shape", "expr", "pose", "transl")}
    run.landmarks2d[rows] = flame_landmarks_2d(fitter.model, t["shape"], t["expr"], t["pose"], t["transl"],
                                               torch.as_tensor(items.K[rows])).numpy()  # fmt: skip
