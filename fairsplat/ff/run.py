"""Stage ``train_ff``: the generator, its balanced reference and the constant-avatar baseline, scored held-out.

Order of work (only the main process writes):
1. load crops + tracks; train two generators side by side (``fairsplat.train.jobs``, one
   process and one torch thread each): ``ff`` on the training identities drawn by
   ``type_mix`` (the skewed base that LoRA later corrects) and, with
   ``reference: balanced``, ``balanced`` on every training identity, equal per type
   (the reference that per-type *deficits* are measured against, issue 12);
2. fit the constant avatar (one avatar for everyone, no image input) with the same losses;
3. self-reenactment of held-out subjects for K in ``eval_ks``, one row per
   (variant, K, subject, target) (``evaluate.py``).

Each generator's run is resumable (``.checkpoints/train_ff/<variant>``): a killed
stage restarts where its checkpoints left off.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from fairsplat.avatar.binding import AvatarBinding
from fairsplat.ff.config import FFConfig
from fairsplat.ff.data import Frames, load_frames, mix_identities
from fairsplat.ff.evaluate import heldout_subjects, score_heldout
from fairsplat.ff.features import encoded_rows, warm_features
from fairsplat.ff.loop_config import loop_config
from fairsplat.train.losses import lpips_ready
from fairsplat.ff.task import FFTask, watch_pairs
from fairsplat.labels import FITZPATRICK
from fairsplat.models.feature_store import attach_store
from fairsplat.models.generator import build_generator
from fairsplat.models.lam import ConstantAvatar
from fairsplat.train import loop
from fairsplat.train.accel import build_accelerator, seed_everything
from fairsplat.train.jobs import run_jobs, to_arrays, to_tensors, torch_threads

BALANCED = {t: 1.0 for t in FITZPATRICK}


@dataclass
class VariantJob:
    """One generator to train, everything a spawned worker needs to do it alone."""

    name: str  # "ff" (type_mix) or "balanced"
    cfg: FFConfig
    head: Path
    curated: Path
    tracks: Path
    checkpoint_dir: Path | None
    fingerprint: str


@dataclass
class VariantResult:
    name: str
    state: dict  # name -> numpy array
    history: list[dict]
    steps: int
    resumed_from: int | None
    seconds: float
    subjects: list[str]


@dataclass
class FFResult:
    models: dict[str, torch.nn.Module]  # "ff" (the stage's generator), "balanced" (reference), CPU, eval
    baseline: ConstantAvatar
    binding: AvatarBinding
    rows: list[dict]  # held-out rows of every variant
    frames: Frames
    subjects: dict[str, list[str]]  # training identities per variant
    skipped_subjects: list[str]  # held-out subjects with too few crops to score
    histories: dict[str, list[dict]]
    info: dict


def train_generator(cfg: FFConfig, frames: Frames, subjects: list[str], binding: AvatarBinding, acc, live=None,
                    progress: bool = True, checkpoint_dir: Path | None = None, fingerprint: str = "",
                    stop_at: int | None = None, name: str = "train_ff"):  # fmt: skip
    use_lpips, _ = lpips_ready(cfg.loss.lpips_net)
    task = FFTask(cfg, frames, subjects, binding, watch_pairs(frames, cfg.watch_split), use_lpips)
    seed_everything(cfg.seed)
    return loop.fit(task, loop_config(cfg, name), acc, live=live, progress=progress, checkpoint_dir=checkpoint_dir,
                    fingerprint=fingerprint, stop_at=stop_at)  # fmt: skip


def train_variant(job: VariantJob, acc=None, progress: bool = False) -> VariantResult:
    """Train one generator from scratch (or from its checkpoint); runs in a worker or in-process."""
    from fairsplat.head.model import HeadModel

    cfg = job.cfg
    acc = acc or build_accelerator(cfg.accel)
    frames = load_frames(job.curated, job.tracks, [cfg.train_split, cfg.watch_split])
    subjects = mix_identities(frames, cfg.train_split, cfg.type_mix, cfg.seed)
    binding = AvatarBinding(HeadModel.load(job.head), cfg.model.binding).to(acc.device)
    t0 = time.perf_counter()
    if cfg.arch == "uv":  # seed 003: phase 1 then phase 2 (fairsplat/ff/uv_run.py)
        from fairsplat.ff.uv_run import train_uv

        res = train_uv(cfg, frames, subjects, binding, acc, None, progress, job.checkpoint_dir, job.fingerprint,
                       name=f"train_ff/{job.name}")  # fmt: skip
    else:
        res = train_generator(cfg, frames, subjects, binding, acc, None, progress, job.checkpoint_dir, job.fingerprint,
                              name=f"train_ff/{job.name}")  # fmt: skip
    state = to_arrays(res.model.state_dict())  # numpy: safe to return from a worker process
    return VariantResult(job.name, state, res.history, res.steps, res.resumed_from, time.perf_counter() - t0, subjects)


def fit_baseline(cfg: FFConfig, frames: Frames, subjects: list[str], binding: AvatarBinding, acc, progress: bool = True):
    """The best single avatar with no image input, same data and losses, its own (short) schedule."""
    use_lpips, _ = lpips_ready(cfg.loss.lpips_net)
    bcfg = replace(cfg, steps=cfg.baseline_steps, lr=cfg.baseline_lr, weight_decay=0.0, eval_every=0,
                   checkpoint_every=0)  # fmt: skip
    task = FFTask(bcfg, frames, subjects, binding, None, use_lpips,
                  make_model=lambda: ConstantAvatar(len(binding), cfg.model.heads))  # fmt: skip
    seed_everything(cfg.seed + 1)
    return loop.fit(task, loop_config(bcfg, "train_ff/baseline"), acc, progress=progress)


def variant_jobs(cfg: FFConfig, head: Path, curated: Path, tracks: Path, checkpoints: Path | None, fp: str) -> list[VariantJob]:
    names = {"ff": cfg} | ({"balanced": replace(cfg, type_mix=BALANCED)} if cfg.reference == "balanced" else {})
    return [VariantJob(n, c, head, curated, tracks, None if checkpoints is None else checkpoints / n, f"{fp}:{n}")
            for n, c in names.items()]  # fmt: skip


def run_train_ff(cfg: FFConfig, head_path: Path, curated: Path, tracks: Path, acc, progress: bool = True,
                 checkpoint_dir: Path | None = None, fingerprint: str = "") -> FFResult:  # fmt: skip
    from fairsplat.head.model import HeadModel

    jobs = variant_jobs(cfg, head_path, curated, tracks, checkpoint_dir, fingerprint)
    frames = load_frames(curated, tracks, [cfg.train_split, cfg.watch_split, *cfg.eval_splits])
    t0 = time.perf_counter()
    store = {"feature_store": False}
    if cfg.feature_store and acc.is_main_process:  # every crop's frozen-trunk levels once, with every thread
        rows = encoded_rows(frames, cfg.train_split, [cfg.watch_split, *cfg.eval_splits], max(cfg.max_k, *cfg.eval_ks))
        store = warm_features(cfg.model, frames, rows, threads=cfg.workers * max(1, cfg.threads), progress=progress)
    acc.wait_for_everyone()
    features_s, t0 = time.perf_counter() - t0, time.perf_counter()
    if acc.num_processes == 1:  # side by side, a process each
        results = run_jobs(train_variant, jobs, cfg.workers, threads=max(1, cfg.threads))
    else:  # every rank of a DDP launch trains each variant in turn
        results = [train_variant(j, acc, progress) for j in jobs]
    train_s = time.perf_counter() - t0
    binding = AvatarBinding(HeadModel.load(head_path), cfg.model.binding).to(acc.device)
    models = {}
    for r in results:
        models[r.name] = build_generator(cfg.model)
        models[r.name].load_state_dict(to_tensors(r.state))
        models[r.name].to(acc.device).eval()
        if cfg.feature_store:
            attach_store(models[r.name])
    subjects = {r.name: r.subjects for r in results}
    held, short = heldout_subjects(frames, cfg.eval_splits, cfg.eval_ks)
    rows = []
    with torch_threads(cfg.workers * max(1, cfg.threads) if acc.num_processes == 1 else 0):  # the workers are done
        baseline = fit_baseline(cfg, frames, subjects["ff"], binding, acc, progress).model.eval()
        if acc.is_main_process:
            for name, net in [*models.items(), ("baseline", baseline)]:
                rows += score_heldout(net, frames, binding, held, cfg.eval_ks, cfg.size, cfg.backend, name)
    lp_ok, lp_reason = lpips_ready(cfg.loss.lpips_net)
    ff = next(r for r in results if r.name == "ff")
    info = {"train_seconds": round(train_s, 1), "features_seconds": round(features_s, 1), **store,
            "train_seconds_per_variant": {r.name: round(r.seconds, 1) for r in results},
            "steps": ff.steps, "resumed_from": ff.resumed_from, "variants_trained": len(results),
            "gaussians": len(binding), "lpips_loss": lp_ok, "lpips_loss_absent_reason": lp_reason,
            "parameters": sum(p.numel() for p in models["ff"].parameters())}  # fmt: skip
    return FFResult({k: m.cpu() for k, m in models.items()}, baseline.cpu(), binding.cpu(), rows, frames, subjects,
                    short, {r.name: r.history for r in results}, info)  # fmt: skip
