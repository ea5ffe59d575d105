"""Stage ``evaluate``'s work: one job per base variant and one for the drivers, side by side; then the metrics.

Order of work:
1. plan (``protocol``): subjects, sources, targets, the fixed cross pairs;
   pick one subject and target per type for the report's grids and viewer;
2. jobs as shards of fairsplat/parallel, one job a shard: in this process
   with ``workers == 1``, else on ``workers`` spawned processes of
   ``threads`` torch threads each, or on the Dask cluster of params
   ``workers``; results come back through files, in job order. Each base variant (``variants.BASES``) builds
   its avatars, scores self-reenactment (plain and through the enhancer),
   renders its cross-reenactment outputs, detects their landmarks, embeds
   them and re-tracks them (``score``); the ``drivers`` job detects and
   re-tracks the driver crops and embeds the sources, once for all variants;
3. here: CSIM, AED, APD and AKD of every cross output against its driver and
   source (``fairsplat.metrics.identity`` / ``expression`` / ``landmarks``).

Every job rebuilds the plan from the same files (it is a pure function of
them), so only paths and settings cross between processes. A variant's job
that fails every attempt makes the variant absent with the job's error (in
``variants.parquet`` and the metrics); a failed drivers job fails the stage,
as no cross output can be scored without it.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fairsplat.evaluate.config import EvalConfig, Inputs
from fairsplat.evaluate.protocol import Plan, frame_index, plan_subjects
from fairsplat.labels import FITZPATRICK
from fairsplat.metrics.expression import aed, apd
from fairsplat.metrics.identity import csim
from fairsplat.metrics.landmarks import akd
from fairsplat.parallel import Outcome, ShardsFailed, WorkersConfig, in_worker, map_shards
from fairsplat.parallel import Plan as Shards  # not protocol.Plan (subjects and pairs)

DRIVERS = "drivers"


@dataclass
class Job:
    kind: str  # a base variant (ff, lora, refined) or DRIVERS
    cfg: EvalConfig
    inputs: Inputs
    keep: dict[str, str] = field(default_factory=dict)  # subject -> target crop whose renders the grids show


@dataclass
class EvalResult:
    rows: list[dict]  # wide rows, every variant and protocol
    variants: list[dict]  # VARIANTS_SCHEMA rows
    unscored: list[dict]  # UNSCORED_SCHEMA rows
    present: list[str]
    reasons: dict[str, str]  # variant or metric -> why absent
    grids: dict[str, dict[str, dict[str, np.ndarray]]]  # type -> variant -> {"source"|"target"|variant: uint8}
    viewer: list[dict]  # {"type", "subject", "variant", "ply": bytes}
    info: dict


def context(job: Job):
    from fairsplat.ff.data import load_frames
    from fairsplat.head.model import HeadModel

    cfg, inp = job.cfg, job.inputs
    frames = load_frames(inp.curated, inp.tracks, list(cfg.splits))
    plan = plan_subjects(frames, frame_index(inp.tracks), cfg.splits, cfg.self_targets, cfg.cross_frames)
    return HeadModel.load(inp.head), frames, plan


def run_job(job: Job) -> dict:
    """One job (module docstring, step 2); returns plain data (numpy arrays, bytes), safe to pickle."""
    import torch

    from fairsplat.evaluate.retrack import Retracker
    from fairsplat.metrics.identity import EMBEDDERS

    if job.cfg.threads:
        torch.set_num_threads(job.cfg.threads)
    t0 = time.perf_counter()
    head, frames, plan = context(job)
    retracker = Retracker(head, job.cfg.landmarks, job.cfg.retrack)
    base = {"kind": job.kind, "backend": retracker.backend, "fallback": retracker.fallback}
    if job.kind == DRIVERS:
        return base | drivers(frames, plan, retracker, EMBEDDERS["dlib"]) | {"seconds": time.perf_counter() - t0}
    return base | variant(job, head, frames, plan, retracker, EMBEDDERS["dlib"]) | {"seconds": time.perf_counter() - t0}


def drivers(frames, plan: Plan, retracker, embed) -> dict:
    """Driver crops: landmarks and re-tracked FLAME; sources: identity embeddings."""
    images = frames.images.permute(0, 2, 3, 1).numpy()  # uint8 [N, S, S, 3]
    out, sources = {}, {}
    for s, p in plan.subjects.items():
        face = retracker.face(images[p.source])
        sources[s] = None if face is None else embed(images[p.source], face)
        for d in p.drivers:
            lm = retracker.landmarks(images[d])
            out[frames.ids[d]] = {"row": d, "subject": s, "landmarks": lm}
    found = [k for k, v in out.items() if v["landmarks"] is not None]
    secs = 0.0
    if found:
        fit = retracker.fit(np.stack([out[k]["landmarks"] for k in found]),
                            frames.track["K"][[out[k]["row"] for k in found]].numpy(), [out[k]["subject"] for k in found])  # fmt: skip
        for k, e, q in zip(found, fit.expr, fit.rot):
            out[k] |= {"expr": e, "rot": q}
        secs = fit.seconds
    return {"drivers": out, "sources": sources, "fit_seconds": secs}


def variant(job: Job, head, frames, plan: Plan, retracker, embed) -> dict:
    """A base variant and its enhanced twin: self rows, cross outputs (re-tracked), grid renders, viewer PLYs."""
    from fairsplat.evaluate.score import cross_outputs, retrack_outputs, self_rows
    from fairsplat.evaluate.variants import BASES, VariantAbsent, load_enhancer

    cfg = job.cfg
    try:
        built = BASES[job.kind](job.inputs, frames, plan, head)
    except VariantAbsent as err:
        return {"absent": str(err)}
    post, enh_absent = load_enhancer(job.inputs.enhancer) if cfg.enhancer else (None, "evaluate.enhancer is false")
    rows, cross, kept, plys, excluded = [], [], {}, {}, 0
    for s, p in plan.subjects.items():
        av = built.avatars.get(s)
        if av is None:
            continue
        seen = built.seen.get(s, set())
        targets = [t for t in p.targets if frames.ids[t] not in seen]
        excluded += len(p.targets) - len(targets)
        keep = {t for t in targets if frames.ids[t] == job.keep.get(s)}
        if targets:
            r, k = self_rows(job.kind, av, frames, p.source, targets, post, cfg.backend, cfg.lpips_vgg_targets, keep)
            rows += r
            for v, panels in k.items():
                if panels:
                    kept.setdefault(s, {})[v] = next(iter(panels.values()))
        if p.driven_by is not None:
            cross += cross_outputs(job.kind, av, frames, p.source, plan.subjects[p.driven_by].drivers, post, retracker,
                                   embed, cfg.backend)  # fmt: skip
        if s in job.keep:
            with tempfile.TemporaryDirectory() as tmp:
                av.export_ply(Path(tmp) / "avatar.ply")
                plys[s] = (Path(tmp) / "avatar.ply").read_bytes()
    fit_s = retrack_outputs(cross, frames, retracker)
    return {"absent": None, "enhancer_absent": enh_absent, "rows": rows, "cross": cross, "kept": kept, "plys": plys,
            "missing": built.missing, "targets_excluded_seen": excluded, "fit_seconds": fit_s, "info": built.info}  # fmt: skip


def choose_shown(plan: Plan, frames, inputs: Inputs) -> dict[str, str]:
    """Per type, the subject (and its target crop) the grids and the viewer show: the first refined one if any.

    The target is the subject's first self target that refinement never saw, so every variant is shown on it."""
    import json

    from fairsplat.io.tables import read_table

    refined, seen = set(), {}
    man = inputs.refined / "manifest.parquet"
    if man.is_file():
        for r in read_table(man):
            refined.add(r["subject_id"])
            info = inputs.refined / r["path"] / "refine.json"
            if info.is_file():
                i = json.loads(info.read_text())["info"]
                seen[r["subject_id"]] = {*i.get("train_ids", []), *i.get("watch_ids", []), *i.get("source_ids", [])}
    out = {}
    for t in FITZPATRICK:
        subs = sorted((s for s, p in plan.subjects.items() if p.fitzpatrick == t), key=lambda s: (s not in refined, s))
        for s in subs[:1]:
            free = [frames.ids[r] for r in plan.subjects[s].targets if frames.ids[r] not in seen.get(s, set())]
            if free:
                out[s] = free[0]
    return out


def finish_cross(rows: list[dict], drv: dict) -> list[dict]:
    """CSIM, AED, APD and AKD of each cross output against its driver crop and its source; heavy fields dropped."""
    out = []
    for r in rows:
        d, src = drv["drivers"].get(r["driver_id"], {}), drv["sources"].get(r["subject_id"])
        m = {"csim": None, "aed": None, "apd": None, "akd": None}
        if r["face"]:
            if src is not None:
                m["csim"] = float(csim(r["embedding"][None], src[None])[0])
            if d.get("landmarks") is not None:
                m["akd"] = float(akd(r["landmarks"][None], d["landmarks"][None])[0])
            if r.get("expr") is not None and d.get("expr") is not None:
                m["aed"] = float(aed(r["expr"][None], d["expr"][None])[0])
                m["apd"] = float(apd(r["rot"][None], d["rot"][None])[0])
        keep = {k: v for k, v in r.items() if k not in ("landmarks", "embedding", "expr", "rot", "driver_row")}
        keep["driver_face"] = d.get("landmarks") is not None
        keep["source_face"] = src is not None
        out.append(keep | m | {"abs_delta_ita": None if r["delta_ita"] is None else abs(r["delta_ita"])})
    return out


def run_evaluate(cfg: EvalConfig, inputs: Inputs, engine: WorkersConfig | None = None,
                 scratch: Path | None = None) -> EvalResult:  # fmt: skip
    """Plan, run the jobs, assemble every row, reason and figure input (module docstring).

    ``engine``: where the jobs run (None: the local pool); ``scratch``: where their result files go (one
    directory every worker can write: the stage passes its output's temporary; None: the system's)."""
    t0 = time.perf_counter()
    _, frames, plan = context(Job(DRIVERS, cfg, inputs))
    keep = choose_shown(plan, frames, inputs)
    jobs = [Job(b, cfg, inputs, keep) for b in cfg.variants] + [Job(DRIVERS, cfg, inputs, keep)]
    shards = Shards(workers=cfg.workers, context="spawn", desc="evaluate", unit="job", progress=False, weight=lambda j: 1)
    outcomes = map_shards(run_job, jobs, shards, engine, init=_init_worker, initargs=(max(1, cfg.threads),),
                          scratch_in=scratch)  # fmt: skip
    return assemble([_result(o) for o in outcomes], cfg, frames, plan, keep, time.perf_counter() - t0)


def _init_worker(threads: int) -> None:
    """A worker process's torch threads (as fairsplat/train/jobs.py set them); the stage's own process keeps its."""
    if in_worker():
        import torch

        torch.set_num_threads(threads)


def _result(o: Outcome) -> dict:
    """A job's result; a variant whose job failed every attempt comes back absent, with the error."""
    if o.ok:
        return o.value
    if o.shard.kind == DRIVERS:
        raise ShardsFailed([o])
    return {"kind": o.shard.kind, "absent": f"its job failed: {o.error}", "seconds": 0.0}


def metric_reasons(cfg: EvalConfig) -> dict[str, str]:
    """Metrics absent for every variant, and why."""
    from fairsplat.metrics.identity import arcface_reason
    from fairsplat.weights import available

    out = {"csim_arcface": arcface_reason(cfg.arcface_path)}
    for net in ("alex", "vgg"):
        if not available(f"lpips_{net}"):
            for s in ("", "_masked"):
                out[f"lpips_{net}{s}"] = f"absent: lpips_{net} weights not fetched (python -m fairsplat.weights fetch)"
    if cfg.lpips_vgg_targets == 0:
        out.setdefault("lpips_vgg", "absent: evaluate.lpips-vgg-targets is 0")
        out.setdefault("lpips_vgg_masked", out["lpips_vgg"])
    return out


def assemble(results: list[dict], cfg: EvalConfig, frames, plan: Plan, keep: dict[str, str], seconds: float) -> EvalResult:
    from fairsplat.evaluate.variants import ENHANCED

    drv = next(r for r in results if r["kind"] == DRIVERS)
    rows, variants, unscored, present, viewer = [], [], [], [], []
    reasons = metric_reasons(cfg)
    kept: dict[str, dict[str, np.ndarray]] = {}
    plys: dict[str, dict[str, bytes]] = {}
    timing = {"drivers": round(drv["seconds"], 1)}
    for r in (r for r in results if r["kind"] != DRIVERS):
        base = r["kind"]
        timing[base] = round(r["seconds"], 1)
        names = [base, base + ENHANCED]
        if r["absent"]:
            reasons[base] = f"absent: {r['absent']}"
            reasons[base + ENHANCED] = f"absent: {base} is absent"
            variants += [_variant_row(n, base, False, reasons[n], [], []) for n in names]
            continue
        if r["enhancer_absent"]:
            reasons[base + ENHANCED] = f"absent: {r['enhancer_absent']}"
        cross = finish_cross(r["cross"], drv)
        for n in names:
            mine_self = [x for x in r["rows"] if x["variant"] == n]
            mine_cross = [x for x in cross if x["variant"] == n]
            ok = n not in reasons
            variants.append(_variant_row(n, base, ok, reasons.get(n), mine_self, mine_cross))
            if not ok:
                continue
            present.append(n)
            rows += [x | {"abs_delta_ita": None if x["delta_ita"] is None else abs(x["delta_ita"])} for x in mine_self]
            rows += mine_cross
            unscored += [{"variant": n, "subject_id": s, "fitzpatrick": plan.subjects[s].fitzpatrick, "reason": why}
                         for s, why in r["missing"].items()]  # fmt: skip
            failed = {x["subject_id"] for x in mine_cross} - {x["subject_id"] for x in mine_cross if x["face"]}
            unscored += [{"variant": n, "subject_id": s, "fitzpatrick": plan.subjects[s].fitzpatrick,
                          "reason": "retrack_failed: no face found in any cross-reenactment output"} for s in sorted(failed)]  # fmt: skip
        for s, panels in r["kept"].items():
            kept.setdefault(s, {}).update(panels)
        for s, ply in r["plys"].items():
            plys.setdefault(s, {})[base] = ply
    unscored += [{"variant": "*", **u} for u in plan.unscored]
    index = {i: n for n, i in enumerate(frames.ids)}
    images = frames.images.permute(0, 2, 3, 1).numpy()
    grids = {}
    for s, target in keep.items():
        p = plan.subjects[s]
        grids[p.fitzpatrick] = {"subject": s, "source": images[p.source], "target": images[index[target]], **kept.get(s, {})}
        best = next((b for b in ("refined", "lora", "ff") if b in plys.get(s, {}) and b in present), None)
        if best is not None:
            viewer.append({"type": p.fitzpatrick, "subject": s, "variant": best, "ply": plys[s][best]})
    pairs = plan.pairs()
    info = {
        "subjects": len(plan.subjects), "subjects_unscored": len(plan.unscored), "cross_pairs": len(pairs),
        "cross_pair_rule": "next subject in sorted id order (the last drives the first)",
        "landmarks": drv["backend"], "landmarks_fallback": drv["fallback"],
        "drivers_without_face": sum(v["landmarks"] is None for v in drv["drivers"].values()),
        "sources_without_face": sum(v is None for v in drv["sources"].values()),
        "variants": {v["variant"]: "present" if v["present"] else v["reason"] for v in variants},
        "absent": reasons, "seconds": round(seconds, 1), "seconds_per_job": timing,
    }  # fmt: skip
    return EvalResult(rows, variants, unscored, present, reasons, grids, viewer, info)


def _variant_row(name: str, base: str, present: bool, reason: str | None, self_rows: list, cross_rows: list) -> dict:
    from fairsplat.evaluate.variants import ENHANCED

    subjects = {x["subject_id"] for x in (*self_rows, *cross_rows)}
    return {"variant": name, "base": base, "enhanced": name.endswith(ENHANCED), "present": present, "reason": reason,
            "subjects": len(subjects), "self_rows": len(self_rows), "cross_rows": len(cross_rows)}  # fmt: skip
