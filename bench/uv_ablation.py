"""Seed 003's ablation (issue 17) at a small CPU size on the real default data, and LAM-style vs UV at equal time.

Run (from the repository root; reads the default pipeline's outputs, writes only --out and --metrics):
    OMP_NUM_THREADS=1 python -u -m bench.uv_ablation --root /work/main --out bench/uv_ablation.json
    python -m bench.uv_ablation --metrics-only     # metrics/uv_ablation.json again from bench/uv_ablation.json
    python -u -m bench.uv_ablation --rows A,B,C --phase1 250 --phase2 100 --train-seed 1 --out /tmp/s1.json \
        --metrics /tmp/s1m.json                      # the same rows with other training draws: run-to-run spread
    python -u -m bench.uv_ablation --rows A,B,C,C_anchor,C_mix --phase1 250 --phase2 100 \
        --phase2-domain /tmp/p2hard --out /tmp/h.json --metrics /tmp/hm.json   # phase 2 from another domain

``--metrics`` (metrics/uv_ablation.json, git-tracked) is the compact form of ``--out``: per row the held-out
means, novel-view PSNR, training seconds and the per-Fitzpatrick means. dvc.yaml lists it under its top-level
``metrics:``, so ``dvc metrics show`` prints the rows beside the stages' metrics; no stage writes it (stage
train_ff's metrics/train_ff.json is that stage's output alone), and no stage re-runs the ablation.

Rows (one UV generator each, trained from scratch on the default skewed training identities):
    A  phase 1 only (monocular-temporal)
    B  A + phase 2, no anchor, no cross-time mix
    C  B + L2-SP anchor + 25 % cross-time mix            (the full schedule)
    E  C without the residual head
    F  C without the Jacobian penalty
    G  C with attention pooling instead of the mean
B and C continue from A's phase-1 weights (the seed's cumulative build); E, F, G change the network
or the loss, so each trains its own phase 1. Also: the constant-avatar baseline on the UV binding,
and the LAM-style generator at C's training time (C's steps scaled by UV and LAM seconds per step, measured back to back).

Scored on the held-out test subjects with stage train_ff's protocol (K = 1: the subject's first
crop, frame 0 of its first camera; targets: every later crop, each rendered at its tracked FLAME
and camera): masked PSNR/SSIM/LPIPS, per Fitzpatrick type (bootstrap CIs over subjects,
fairsplat/metrics/fairness.py), and novel-view PSNR: the targets from a camera the source
did not see. AKD (``fairsplat.metrics.landmarks.akd``, mean pixel distance of the 68 points, pixels of the
crop) of each (render, target crop) pair, both through stage evaluate's landmark detector
(``fairsplat.evaluate.retrack.Retracker.landmarks``, backend ``evaluate.landmarks``, its fallback recorded):
averaged over the pairs where both have a face; the others are counted, never scored.

``--phase2-domain DIR`` gives phase 2 another appearance domain, as seed 003's phase 2 moves from CelebV-HQ to
NeRSemble while its ablations are scored on CelebV-HQ: phase 2's identities (train_uv's split at this seed) are
rendered again under ``synth.lighting`` ``--phase2-lighting`` (``hard``: a light per render; ``studio``: one
per identity, a capture rig; bench/hard_light.py, once per DIR) and their crops replace the
default ones in memory; phase 1 and the held-out test keep the default lighting. ``--anchor``, ``--mix`` and
``--phase2-share`` set phase 2's L2-SP weight, cross-time share and identity share for every row that has them.

``--save-models DIR`` keeps each row's trained network (``DIR/<row>/``, fairsplat.io.checkpoint.save_weights,
stage train_ff's format: ``fairsplat.models.generator.load_generator`` reads the generators back), so later
metrics need no retraining: ``--rescore`` re-scores the saved rows of ``--out`` and trains nothing.
``--out`` and ``--metrics`` are rewritten (atomically) after every finished row.

Each row's AKD averages over the pairs where *its* renders have a face, a set that changes from row to row (a
row whose blurry renders lose the face on hard poses keeps only the easy ones). ``akd_common`` compares rows on
the same pairs: those where every compared row found a face (all rows; the UV rows; each UV row with C).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from fairsplat.avatar.binding import AvatarBinding
from fairsplat.ff.data import load_frames, mix_identities
from fairsplat.ff.evaluate import heldout_subjects, mean_of, score_heldout
from fairsplat.ff.run import fit_baseline, train_generator
from fairsplat.ff.uv_data import frame_view
from fairsplat.ff.uv_run import train_uv
from fairsplat.head.model import HeadModel
from fairsplat.io.atomic import write_json
from fairsplat.io.checkpoint import save_weights
from fairsplat.io.plots import to_u8
from fairsplat.metrics.fairness import Stat, count, per_fitzpatrick
from fairsplat.metrics.landmarks import akd
from fairsplat.models.generator import load_generator
from fairsplat.models.lam import ConstantAvatar
from fairsplat.sections.train_ff import TrainFFParams
from fairsplat.train.accel import build_accelerator

METRICS = ("psnr_masked", "ssim_masked", "lpips_alex_masked", "psnr")
PER_TYPE = (*METRICS[:3], "akd")  # the per-Fitzpatrick statistics (AKD: lower is better)
Detect = Callable[[np.ndarray], "np.ndarray | None"]  # uint8 [S, S, 3] -> [68, 2] px, or None (no face)


def configs(root: Path, batch: int, p1: int, p2: int, share: float | None = None, anchor: float | None = None,
            mix: float | None = None):
    """(uv cfg, lam cfg) from the default params.yaml, resized for the bench; ``share``, ``anchor``, ``mix``:
    phase 2's identity share, L2-SP weight and cross-time share instead of params.yaml's."""
    import yaml

    raw = yaml.safe_load(open(Path(__file__).resolve().parents[1] / "params.yaml"))["train_ff"]  # this checkout's params
    sec = TrainFFParams.model_validate({**raw, "arch": "uv"})
    uv = sec.ff_config()
    uv = replace(uv, batch=batch, eval_every=0, checkpoint_every=0, log_every=10, eval_ks=(1,),
                 uv=replace(uv.uv, phase1=replace(uv.uv.phase1, steps=p1), phase2=replace(uv.uv.phase2, steps=p2),
                            phase2_share=uv.uv.phase2_share if share is None else share))  # fmt: skip
    p2c = uv.uv.phase2
    uv = replace(uv, uv=replace(uv.uv, phase2=replace(p2c, anchor=p2c.anchor if anchor is None else anchor,
                                                      mix=p2c.mix if mix is None else mix)))  # fmt: skip
    lam = replace(TrainFFParams.model_validate(raw).ff_config(), batch=batch, eval_every=0, checkpoint_every=0, log_every=10,
                  eval_ks=(1,))  # fmt: skip
    return uv, lam


def row_cfg(cfg, row: str):
    u, m = cfg.uv, cfg.model
    no_mix = replace(u.phase2, anchor=0.0, mix=0.0)
    if row == "A":
        return replace(cfg, uv=replace(u, phase2=None))
    if row == "B":
        return replace(cfg, uv=replace(u, phase2=no_mix))
    if row == "C_anchor":  # the factorial halves: the anchor alone, the cross-time mix alone
        return replace(cfg, uv=replace(u, phase2=replace(u.phase2, mix=0.0)))
    if row == "C_mix":
        return replace(cfg, uv=replace(u, phase2=replace(u.phase2, anchor=0.0)))
    if row == "E":
        return replace(cfg, model=replace(m, uv=replace(m.uv, residual=False)))
    if row == "F":
        return replace(cfg, uv=replace(u, loss=replace(u.loss, jac=0.0)))
    if row == "G":
        return replace(cfg, model=replace(m, uv=replace(m.uv, pool="attention")))
    return cfg  # C


def pair_akd(row: dict, render_lmk: np.ndarray | None, target_lmk: np.ndarray | None) -> None:
    """Adds the pair's ``akd`` (None unless both images have a face), ``render_face`` and ``target_face`` to ``row``."""
    row["render_face"], row["target_face"] = render_lmk is not None, target_lmk is not None
    both = render_lmk is not None and target_lmk is not None
    row["akd"] = float(akd(render_lmk[None], target_lmk[None])[0]) if both else None


class PairLandmarks:
    """score_heldout's ``on_images`` hook: detects the render's and the target crop's landmarks of each row.

    Only the target crops' landmarks are kept (every row re-scores the same 210 crops); images never are."""

    def __init__(self, detect: Detect) -> None:
        self.detect = detect
        self.targets: dict[str, np.ndarray | None] = {}  # target id -> [68, 2] or None

    def __call__(self, rgb: torch.Tensor, target: torch.Tensor, rows: list[dict]) -> None:  # [T, 3, S, S] x2
        for j, (row, img) in enumerate(zip(rows, _hwc_u8(rgb))):
            tid = row["target_id"]
            if tid not in self.targets:
                self.targets[tid] = self.detect(_hwc_u8(target[j : j + 1])[0])
            pair_akd(row, self.detect(img), self.targets[tid])


def _hwc_u8(x: torch.Tensor) -> np.ndarray:  # [B, 3, S, S] in [0, 1] -> uint8 [B, S, S, 3], what evaluate's detector sees
    return to_u8(x.permute(0, 2, 3, 1).cpu().numpy())


def akd_summary(rows: list[dict]) -> dict:
    """AKD over the pairs where both images have a face; pairs = akd_pairs + the excluded ones, each reason counted."""
    scored = [r["akd"] for r in rows if r["akd"] is not None]
    no_render = sum(not r["render_face"] for r in rows)
    return {"akd": float(np.mean(scored)) if scored else None, "akd_pairs": len(scored), "pairs": len(rows),
            "render_no_face": no_render, "target_no_face": sum(not r["target_face"] for r in rows),
            "no_face_rate": no_render / len(rows) if rows else None}  # fmt: skip


def common_akd(rows: dict[str, dict], names: list[str]) -> dict:
    """Each of ``names``' AKD over the pairs (target ids) where every one of them has a pair AKD."""
    have = [n for n in names if "pair_akd" in rows.get(n, {})]
    if not have:
        return {"rows": [], "pairs": 0, "akd": {}}
    common = set.intersection(*({t for t, v in rows[n]["pair_akd"].items() if v is not None} for n in have))
    akds = {n: float(np.mean([rows[n]["pair_akd"][t] for t in sorted(common)])) if common else None for n in have}
    return {"rows": have, "pairs": len(common), "akd": akds}


def akd_common(rows: dict[str, dict]) -> dict:
    """AKD on shared pairs: all rows, the UV rows, and each UV row with C (seed 003 compares its rows with C/D)."""
    uv = [n for n in "ABCEFG" if n in rows]
    return {"all": common_akd(rows, list(rows)), "uv": common_akd(rows, uv),
            "with_C": {n: common_akd(rows, ["C", n]) for n in uv if n != "C" and "C" in rows}}  # fmt: skip


def novel_view(rows: list[dict], frames) -> list[dict]:
    """Rows whose target camera is none of the sources' cameras."""
    _, view = frame_view(frames)
    idx = {n: i for i, n in enumerate(frames.ids)}
    return [r for r in rows if view[idx[r["target_id"]]] not in {view[idx[s]] for s in r["source_ids"]}]


def summarise(rows: list[dict], frames) -> dict:
    out = {m: mean_of(rows, m) for m in METRICS}
    out["novel_view_psnr_masked"] = mean_of(novel_view(rows, frames), "psnr_masked")
    out["novel_view_targets"] = len(novel_view(rows, frames))
    out |= akd_summary(rows)
    ids = [r["target_id"] for r in rows]
    assert len(set(ids)) == len(ids), "one row per target (K = 1) keys pair_akd"
    out["pair_akd"] = {r["target_id"]: r["akd"] for r in rows}  # per pair: akd_common's input
    out["per_fitzpatrick"] = per_fitzpatrick(rows, type_stats(), n_boot=200, digits=3)
    return out


def type_stats() -> dict[str, Stat]:
    """The per-Fitzpatrick statistics; with AKD, how much it rests on per type: the scored pairs and the subjects
    they come from (exact counts, no CI)."""
    stats = {m: Stat(column=m, higher_is_better=not m.startswith(("lpips", "akd"))) for m in PER_TYPE}

    def scored(r: dict) -> bool:
        return r.get("akd") is not None

    stats["akd_pairs"] = count(where=scored)
    stats["akd_subjects"] = Stat(reduce=lambda rows: len({r["subject_id"] for r in rows}), ci=False, where=scored)
    return stats


def metric_rows(result: dict) -> dict:
    """The compact form of the bench's result for ``dvc metrics show`` (module docstring); nothing recomputed."""
    out = {"config": result["config"], "rows": {}, "akd_common": akd_common(result["rows"])}
    for name, r in result["rows"].items():
        keys = (*METRICS, "novel_view_psnr_masked", "akd", "no_face_rate")
        row = {k: round(r[k], 4) for k in keys if r.get(k) is not None}
        row["akd_pairs"] = r.get("akd_pairs")
        row["train_seconds"] = r.get("train_seconds")
        types = r.get("per_fitzpatrick", {}).get("per_fitzpatrick", {})  # fairness.per_fitzpatrick's nesting
        per = (*PER_TYPE, "akd_pairs", "akd_subjects", "n_subjects")
        row["per_type"] = {t: {m: v[m] for m in per if m in v} for t, v in types.items()}
        out["rows"][name] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=Path("/work/main"))
    ap.add_argument("--out", type=Path, default=Path("bench/uv_ablation.json"))
    ap.add_argument("--metrics", type=Path, default=Path("metrics/uv_ablation.json"))
    ap.add_argument("--metrics-only", action="store_true", help="rewrite --metrics from --out; train nothing")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--phase1", type=int, default=150)
    ap.add_argument("--phase2", type=int, default=60)
    ap.add_argument("--baseline-steps", type=int, default=150)
    ap.add_argument("--rows", default="A,B,C,baseline,lam,E,F,G")
    ap.add_argument("--lam-baseline", action="store_true", help="also fit the constant avatar on the LAM binding")
    ap.add_argument("--resume", action="store_true", help="keep the rows already in --out and run the others")
    ap.add_argument("--save-models", type=Path, default=None, help="save each row's trained network in DIR/<row>/")
    ap.add_argument("--rescore", action="store_true", help="re-score --out's rows from --save-models; train nothing")
    ap.add_argument("--train-seed", type=int, default=None,
                    help="train_ff.seed for training only (the skewed identity mix stays params.yaml's): run-to-run spread")
    ap.add_argument("--phase2-domain", dest="phase2_domain_dir", type=Path, default=None,
                    help="phase 2 from another appearance domain: its identities rendered under --phase2-lighting "
                         "(built in DIR on first use, bench/hard_light.py); phase 1 and the held-out test stay default")
    ap.add_argument("--phase2-lighting", default="hard", choices=("hard", "studio"),
                    help="synth.lighting of --phase2-domain: hard (a light per render) or studio (one per identity)")
    ap.add_argument("--score-split", default="test", choices=("test", "val"),
                    help="held-out identities scored: test (the tables) or val (for choosing a setting)")
    ap.add_argument("--anchor", type=float, default=None, help="train_ff.uv.phase2.anchor (L2-SP weight) for the bench")
    ap.add_argument("--mix", type=float, default=None, help="train_ff.uv.phase2.mix (cross-time share) for the bench")
    ap.add_argument("--phase2-share", type=float, default=None,
                    help="train_ff.uv.phase2-share for the bench (share of training identities held for phase 2)")
    args = ap.parse_args()
    if args.rescore and args.save_models is None:
        ap.error("--rescore needs --save-models DIR (the saved rows to score)")
    if args.metrics_only:
        write_json(args.metrics, metric_rows(json.loads(args.out.read_text())))
        return
    torch.set_num_threads(1)
    root = args.root
    cfg, lam_cfg = configs(root, args.batch, args.phase1, args.phase2, args.phase2_share, args.anchor, args.mix)
    acc = build_accelerator(cfg.accel)
    head = HeadModel.load(root / "assets/head/head.npz")
    frames = load_frames(root / "data/curated", root / "data/tracks", ["train", "val", "test"])
    subjects = mix_identities(frames, "train", cfg.type_mix, cfg.seed)
    if args.train_seed is not None:  # after the identity mix: only the training draws (init, batches, phase split) move
        cfg, lam_cfg = replace(cfg, seed=args.train_seed), replace(lam_cfg, seed=args.train_seed)
    swapped = None if args.phase2_domain_dir is None else phase2_domain(args, cfg, frames, subjects)
    binding = AvatarBinding(head, cfg.model.binding)
    held, _ = heldout_subjects(frames, [args.score_split], (1,))
    retracker = evaluate_detector(head)
    lmk = PairLandmarks(retracker.landmarks)
    result = {"config": {"batch": args.batch, "phase1_steps": args.phase1, "phase2_steps": args.phase2, "seed": cfg.seed,
                         "phase2_share": cfg.uv.phase2_share, "phase2_domain": swapped,
                         "anchor": cfg.uv.phase2.anchor, "mix": cfg.uv.phase2.mix, "score_split": args.score_split,
                         "uv_resolution": cfg.model.binding.resolution, "gaussians_uv": len(binding),
                         "train_identities": len(subjects), "heldout_subjects": len(held), "size": cfg.size,
                         "landmarks": retracker.backend, "landmarks_fallback": retracker.fallback},
              "rows": {}}  # fmt: skip
    print(json.dumps({"landmarks": retracker.backend, "fallback": retracker.fallback}), flush=True)
    if (args.resume or args.rescore) and args.out.is_file():
        result["rows"] = json.loads(args.out.read_text())["rows"]

    def record(name: str, model, seconds: float, bind=binding, extra=None, meta=None, keep=None) -> None:
        if args.save_models is not None and not args.rescore:
            info = {"size": cfg.size, "head": str(root / "assets/head/head.npz"), "bench_row": name}
            save_weights(args.save_models / name, model.state_dict(), {**(meta or cfg.model.to_json()), **info})
        t0 = time.perf_counter()
        rows = score_heldout(model.eval(), frames, bind, held, (1,), cfg.size, cfg.backend, name, on_images=lmk)
        s = summarise(rows, frames) | {"train_seconds": round(seconds, 1), "score_seconds": round(time.perf_counter() - t0, 1)}
        result["rows"][name] = (keep or {}) | s | (extra or {})
        result["akd_common"] = akd_common(result["rows"])
        write_json(args.out, result)
        write_json(args.metrics, metric_rows(result))
        print(json.dumps({"row": name, **{k: v for k, v in s.items() if k not in ("per_fitzpatrick", "pair_akd")}}), flush=True)

    if args.rescore:
        rescore(args, cfg, lam_cfg, head, binding, result, record)
        return

    phase1 = {}  # row A's phase-1 weights, shared by B and C
    for row in args.rows.split(","):
        if row in result["rows"] or (row == "lam" and "lam_equal_time" in result["rows"]):
            continue  # --resume: done in an earlier run
        if row == "baseline":
            t0 = time.perf_counter()
            base = fit_baseline(replace(cfg, baseline_steps=args.baseline_steps), frames, subjects, binding, acc, progress=False)
            record("baseline", base.model, time.perf_counter() - t0, meta=baseline_meta(cfg, binding))
            continue
        if row == "lam":
            lam_row(args, cfg, lam_cfg, result, head, frames, subjects, acc, record)
            continue
        c = row_cfg(cfg, row)
        t0 = time.perf_counter()
        if row in ("B", "C", "C_anchor", "C_mix") and "A" in phase1:  # continue from A's phase 1 (same network and loss)
            init_seconds, init = phase1["A"]
            c = replace(c, uv=replace(c.uv, phase1=replace(c.uv.phase1, steps=0)))
            fit = train_uv(c, frames, subjects, binding, acc, progress=False, init=init)
            seconds = init_seconds + (time.perf_counter() - t0)
        else:
            fit = train_uv(c, frames, subjects, binding, acc, progress=False)
            seconds = time.perf_counter() - t0
            if row == "A":
                phase1["A"] = (seconds, {k: v.clone() for k, v in fit.model.state_dict().items()})
        record(row, fit.model, seconds, extra={"phase_seconds": fit.seconds, "identities": {k: len(v) for k, v in fit.subjects.items()}},
               meta=c.model.to_json())  # fmt: skip


def phase2_domain(args, cfg, frames, subjects: list[str]) -> dict:
    """Phase 2's identities (train_uv's split at this seed and share) seen under ``--phase2-lighting``
    (bench/hard_light.py ``swap_in``): phase 2 trains on another appearance domain, phase 1 and the test keep
    the default one."""
    from bench.hard_light import swap_in
    from fairsplat.ff.uv_data import split_phases

    _, p2 = split_phases(subjects, cfg.uv.phase2_share, cfg.seed)
    out = swap_in(frames, p2, args.phase2_domain_dir, args.phase2_lighting, args.root)
    print(json.dumps({"phase2_domain": out}), flush=True)
    return out


def rescore(args, cfg, lam_cfg, head, binding, result, record) -> None:
    """--rescore: each row of ``--rows`` saved in --save-models, scored again (its training record kept)."""
    from fairsplat.io.checkpoint import load_weights, read_config

    for row in args.rows.split(","):
        name = "lam_equal_time" if row == "lam" else row
        d, old = args.save_models / name, result["rows"].get(name)
        if old is None or not d.is_dir():
            print(json.dumps({"row": name, "rescore": "skipped: not in --out or not saved"}), flush=True)
            continue
        c = lam_cfg if name in ("lam_equal_time", "baseline_lam") else cfg
        bind = binding if c is cfg else AvatarBinding(head, c.model.binding)
        if read_config(d).get("kind") == "constant_avatar":
            model = ConstantAvatar(len(bind), c.model.heads)
            load_weights(model, d / "model.safetensors")
        else:
            model = load_generator(d)[0]
        record(name, model, old["train_seconds"], bind, keep=old)
        new = result["rows"][name]
        print(json.dumps({"row": name, "rescored": str(d), "psnr_masked_was": old["psnr_masked"],
                          "psnr_masked_now": new["psnr_masked"]}), flush=True)  # fmt: skip


def baseline_meta(cfg, binding: AvatarBinding) -> dict:
    """config.json of a saved constant avatar (fairsplat.ff.run.fit_baseline's ConstantAvatar: no generator config)."""
    return {"kind": "constant_avatar", "gaussians": len(binding), "heads": cfg.model.to_json()["heads"],
            "binding": binding.spec.to_json()}  # fmt: skip


def evaluate_detector(head):
    """Stage evaluate's landmark detector at this checkout's ``evaluate`` params (backend and fallback recorded)."""
    from fairsplat.evaluate.retrack import Retracker
    from fairsplat.sections.evaluate import EvaluateParams

    cfg = EvaluateParams.load(Path(__file__).resolve().parents[1] / "params.yaml").eval_config()
    return Retracker(head, cfg.landmarks, cfg.retrack)


def seconds_per_step(train, n: int = 8) -> float:
    """Marginal seconds per optimiser step: (time of 2 + n steps - time of 2 steps) / n, so model building and
    data set-up cancel; an unmeasured 2-step run first takes the one-off costs (LPIPS loading, first-call set-up),
    which made the first measured run slower than the longer one."""
    train(2)
    times = []
    for steps in (2, 2 + n):
        t0 = time.perf_counter()
        train(steps)
        times.append(time.perf_counter() - t0)
    return max(1e-3, (times[1] - times[0]) / n)


def lam_row(args, cfg, lam_cfg, result, head, frames, subjects, acc, record) -> None:
    """The LAM-style generator at row C's training time: C's steps x (UV s/step / LAM s/step), both measured
    back to back now (the shared CPU's load moves too much for wall times taken at different moments)."""
    lam_binding = AvatarBinding(head, lam_cfg.model.binding)
    uv_binding = AvatarBinding(head, cfg.model.binding)
    one = replace(cfg.uv, phase2=None)

    def uv(steps):
        train_uv(replace(cfg, warmup=1, uv=replace(one, phase1=replace(one.phase1, steps=steps))), frames, subjects,
                 uv_binding, acc, progress=False)  # fmt: skip

    def lam(steps):
        train_generator(replace(lam_cfg, steps=steps, warmup=1), frames, subjects, lam_binding, acc, progress=False)

    uv_s, lam_s = seconds_per_step(uv), seconds_per_step(lam)
    uv_steps = args.phase1 + args.phase2
    steps = max(10, int(round(uv_steps * uv_s / lam_s)))
    t0 = time.perf_counter()
    model = train_generator(replace(lam_cfg, steps=steps, warmup=min(30, steps // 10)), frames, subjects, lam_binding, acc,
                            progress=False).model  # fmt: skip
    record("lam_equal_time", model, time.perf_counter() - t0, lam_binding,
           {"steps": steps, "uv_steps": uv_steps, "uv_s_per_step": round(uv_s, 3), "lam_s_per_step": round(lam_s, 3)},
           lam_cfg.model.to_json())  # fmt: skip
    if not args.lam_baseline:
        return
    t0 = time.perf_counter()
    lbase = fit_baseline(replace(lam_cfg, baseline_steps=args.baseline_steps), frames, subjects, lam_binding, acc,
                         progress=False)  # fmt: skip
    record("baseline_lam", lbase.model, time.perf_counter() - t0, lam_binding, meta=baseline_meta(lam_cfg, lam_binding))


if __name__ == "__main__":
    main()
