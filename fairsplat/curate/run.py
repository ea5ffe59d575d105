"""The whole curation: analyse all inputs in parallel, balance, split, render, report.

``curate(records, out_dir, cfg)`` writes into ``out_dir``::

    crops/<safe id>.png     grey-composited square crops (cfg.size px)
    alpha/<safe id>.png     8-bit foreground alpha each crop was composited with
    labels/<safe id>.png    cropped label maps, for inputs that had them
    manifest.parquet        kept crops (schema: curate/tables.py)
    rejects.parquet         every other input with one reason

and returns the metrics dict for ``metrics/curate.json`` (curate/metrics.py).
The stage should pass a temporary directory from ``fairsplat.io.atomic_dir`` so
a crash leaves the previous output intact.

Parallelism: inputs are cut into shards of ``cfg.shard_size`` and mapped over
``cfg.workers`` processes by fairsplat/parallel (a local pool, or a Dask cluster
with ``workers_cfg``); results are merged in shard order, so outputs are in
input order and identical for any worker count or engine; dlib models load
once per worker. A shard that fails every attempt (its worker killed each
time, say) makes each of its inputs a reject with reason ``error``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fairsplat.curate.balance import Candidate, assign_splits, balance
from fairsplat.curate.item import Analysis, analyse, render
from fairsplat.curate.metrics import curate_metrics
from fairsplat.curate.tables import MANIFEST_SCHEMA, REJECTS_SCHEMA
from fairsplat.curate.config import CurateConfig
from fairsplat.io.tables import write_table
from fairsplat.parallel import Plan, WorkersConfig, map_shards, shards_of
from fairsplat.sources.manifest import Record


@dataclass
class CurateResult:
    manifest: list[dict]  # rows written to manifest.parquet
    rejects: list[dict]  # rows written to rejects.parquet
    metrics: dict
    analyses: list[Analysis]  # one per input, final state


def _analyse_shard(args: tuple[CurateConfig, list[Record]]) -> list[Analysis]:
    cfg, shard = args
    return [analyse(r, cfg) for r in shard]


def _render_shard(args: tuple[CurateConfig, str, list[tuple[Record, Analysis]]]) -> list[dict | str]:
    cfg, out_dir, shard = args
    out: list[dict | str] = []
    for rec, a in shard:
        try:
            out.append(render(rec, a, cfg, out_dir))
        except Exception as err:  # noqa: BLE001  (file changed or vanished since analysis)
            out.append(f"{type(err).__name__}: {err}"[:300])
    return out


def _map_shards(fn: Callable, items: Sequence, cfg: CurateConfig, *extra, desc: str = "curate",
               on_fail: Callable[[object, str], object], workers_cfg: WorkersConfig | None = None,
               scratch_in: str | Path | None = None) -> list:  # fmt: skip
    """``fn((cfg, *extra, shard))`` over shards of ``cfg.shard_size``, in order; one result per item.

    Items of a shard that failed every attempt get ``on_fail(item, error)``.
    """
    tasks = [(cfg, *extra, s) for s in shards_of(items, cfg.shard_size)]
    plan = Plan(workers=cfg.workers, desc=desc, unit="img", weight=lambda task: len(task[-1]))
    out: list = []
    for o in map_shards(fn, tasks, plan, workers_cfg, scratch_in=scratch_in):
        out += o.value if o.ok else [on_fail(item, f"shard {o.index}: {o.error}") for item in o.shard[-1]]
    return out


def _analysis_failed(rec: Record, error: str) -> Analysis:
    return Analysis(rec.image_id, reason="error", detail=error[:300])


def analyse_all(records: Sequence[Record], cfg: CurateConfig, workers_cfg: WorkersConfig | None = None,
                scratch_in: str | Path | None = None) -> list[Analysis]:  # fmt: skip
    return _map_shards(_analyse_shard, records, cfg, desc="curate: analyse", on_fail=_analysis_failed,
                      workers_cfg=workers_cfg, scratch_in=scratch_in)  # fmt: skip


def detector_fallback(cfg: CurateConfig, analyses: Sequence[Analysis]) -> str | None:
    """Why the detector fell back to dlib, when inputs were detected and MediaPipe was asked for but unavailable."""
    if cfg.detector != "mediapipe" or not any(a.landmark_source == "dlib" for a in analyses):
        return None
    from fairsplat.faces.landmarks import unavailable

    why = unavailable("mediapipe")
    return None if why is None else f"mediapipe unavailable, fell back to dlib: {why}"


def weighted_median(values, weights) -> float:
    """The value at half the total weight, sorted by value (ties of cumulative weight at exactly half
    average the two neighbours, so equal weights give ``np.median``)."""
    import numpy as np

    v, w = np.asarray(values, np.float64), np.asarray(weights, np.float64)  # [N], [N] >= 0
    order = np.argsort(v, kind="stable")
    v, cw = v[order], np.cumsum(w[order])
    half = 0.5 * cw[-1]
    i = int(np.searchsorted(cw, half))
    if np.isclose(cw[i], half) and i + 1 < len(v):
        return float(0.5 * (v[i] + v[i + 1]))
    return float(v[i])


def per_subject_ita(records: Sequence[Record], analyses: Sequence[Analysis], scheme: str) -> None:
    """Video frames (records with a ``frame_index``): one skin type per subject, from its frames
    (lighting changes from frame to frame; the person's skin does not). Each frame keeps its own
    ``ita_raw``; ``ita`` and the type become the subject's, ``ita_subject_iqr`` the spread of the frames it came from.

    Frames whose illumination correction found a confident reference (``ita_method`` not raw)
    outvote the rest: when a subject has any, its ITA is their confidence-weighted median and every
    frame takes it, with that method and no low-confidence flag (the frames without a reference of
    their own say so in ``ita_detail``). Only a subject with no such frame takes the plain median of
    its frames' (raw) ITA, and its frames stay flagged: nothing is guessed."""
    import numpy as np

    from fairsplat.faces.skin_types import classify

    groups: dict[str, list[Analysis]] = {}
    for r, a in zip(records, analyses):
        if r.frame_index is not None and a.ok and a.ita is not None:
            groups.setdefault(r.subject_id, []).append(a)
    for frames in groups.values():
        sure = [a for a in frames if a.ita_method not in (None, "raw") and a.ita_flag is None]
        used = sure or frames
        itas = np.array([a.ita for a in used])
        med = weighted_median(itas, [a.ita_confidence or 1.0 for a in used]) if sure else float(np.median(itas))
        iqr = float(np.subtract(*np.percentile(itas, [75, 25])))
        cat = classify(float(np.clip(med, -90, 90)), scheme)
        sure_ids = {id(a) for a in sure}
        for a in frames:
            a.ita_subject, a.ita_subject_iqr = med, iqr
            a.ita, a.fitzpatrick, a.category = med, cat.fitzpatrick, cat.name
            if sure and id(a) not in sure_ids:
                a.ita_method, a.ita_flag = sure[0].ita_method, None
                why = f"subject: weighted median of the {len(sure)} of {len(frames)} frames with a reference"
                a.ita_detail = f"{why}; this frame: {a.ita_detail}"[:200]


def select(records: Sequence[Record], analyses: Sequence[Analysis], cfg: CurateConfig):
    """Balance and split; marks unselected eligible items ``over_quota`` in place.

    Returns (per-type stats, image_id -> split for the selected items).
    """
    cands = [Candidate(r.image_id, r.subject_id, a.fitzpatrick) for r, a in zip(records, analyses) if a.ok]
    chosen, stats = balance(cands, cfg.per_type, cfg.seed, cfg.max_per_subject)
    picked = [c for c in cands if c.image_id in chosen]
    subject_split = assign_splits(picked, cfg.splits, cfg.seed)
    for a in analyses:
        if a.ok and a.image_id not in chosen:
            a.reason, a.detail = "over_quota", f"type {a.fitzpatrick}: not among the {cfg.per_type} drawn (seed {cfg.seed})"
    return stats, {c.image_id: subject_split[c.subject_id] for c in picked}


def _manifest_row(r: Record, a: Analysis, split: str, written: dict, cfg: CurateConfig) -> dict:
    return {
        "image_id": r.image_id, "source": r.source, "subject_id": r.subject_id, "split": split,
        "path": written["path"], "alpha_path": written["alpha_path"], "src_path": r.path, "frame_index": r.frame_index,
        "label_race": r.label_race, "label_gender": r.label_gender, "label_age": r.label_age,
        "fitzpatrick_gt": r.fitzpatrick_gt, "ita_gt": r.ita_gt, "mask_path": written["mask_path"],
        "ita": a.ita, "lab": list(a.lab), "fitzpatrick": a.fitzpatrick, "ita_category": a.category,
        "ita_scheme": cfg.scheme, "ita_raw": a.ita_raw, "ita_method": a.ita_method, "ita_confidence": a.ita_confidence,
        "ita_flag": a.ita_flag, "ita_subject": a.ita_subject, "ita_subject_iqr": a.ita_subject_iqr,
        "skin_mask": a.skin_mask, "n_skin_pixels": a.n_skin,
        "foreground": written["foreground"], **{k: v for k, v in written.items() if k.startswith("fg_iou_")},
        "landmark_source": a.landmark_source, "face_flags": a.face_flags, "n_faces": a.n_faces, "face_score": a.face_score,
        "other_boxes": a.other_boxes,
        "src_width": a.src_size[0], "src_height": a.src_size[1], "crop_mode": cfg.crop_mode,
        "crop_size": cfg.size, "crop_box": a.box, "crop_matrix": a.matrix, "landmarks": a.landmarks,
    }  # fmt: skip


def _reject_row(r: Record, a: Analysis) -> dict:
    return {
        "image_id": r.image_id, "source": r.source, "subject_id": r.subject_id, "path": r.path,
        "reason": a.reason, "detail": a.detail, "n_faces": a.n_faces, "ita": a.ita, "fitzpatrick": a.fitzpatrick,
        "landmark_source": a.landmark_source, "face_flags": a.face_flags,
    }  # fmt: skip


def curate(records: Sequence[Record], out_dir: str | Path, cfg: CurateConfig | None = None,
           workers_cfg: WorkersConfig | None = None) -> CurateResult:  # fmt: skip
    """Run curation end to end (see module doc) on the engine of ``workers_cfg``; returns rows and metrics."""
    cfg = cfg or CurateConfig()
    records = list(records)
    ids = [r.image_id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate image_id in the input records")
    out_dir = Path(out_dir)
    analyses = analyse_all(records, cfg, workers_cfg, scratch_in=out_dir)
    if cfg.ita_per_subject:
        per_subject_ita(records, analyses, cfg.scheme)
    eligible = sum(a.ok for a in analyses)
    stats, split_of = select(records, analyses, cfg)
    todo = [(r, a) for r, a in zip(records, analyses) if a.ok]
    written = _map_shards(_render_shard, todo, cfg, str(out_dir), desc="curate: render",
                         on_fail=lambda item, error: error, workers_cfg=workers_cfg, scratch_in=out_dir)  # fmt: skip
    manifest = []
    for (r, a), w in zip(todo, written):
        if isinstance(w, str):  # render failed: becomes a reject
            stats[a.fitzpatrick]["selected"] -= 1
            if cfg.per_type is not None:
                stats[a.fitzpatrick]["shortfall"] = max(0, cfg.per_type - stats[a.fitzpatrick]["selected"])
            a.reason, a.detail = "error", f"render: {w}"
            split_of.pop(r.image_id, None)
            continue
        manifest.append(_manifest_row(r, a, split_of[r.image_id], w, cfg))
    rejects = [_reject_row(r, a) for r, a in zip(records, analyses) if not a.ok]
    write_table(manifest, MANIFEST_SCHEMA, out_dir / "manifest.parquet")
    write_table(rejects, REJECTS_SCHEMA, out_dir / "rejects.parquet")
    metrics = curate_metrics(records, analyses, eligible, stats, split_of, list(cfg.splits), manifest, scheme=cfg.scheme,
                             ita_method=cfg.ita_method, fallback=detector_fallback(cfg, analyses))  # fmt: skip
    return CurateResult(manifest, rejects, metrics, analyses)
