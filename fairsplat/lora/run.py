"""Stage ``lora``: seed 000's fairness adapter on the frozen generator, and a full fine-tune beside it.

Both start from ``models/ff`` and train on the ITA-balanced curated training
identities (every type equally), with seed 000's losses and optimiser on the
shared skeleton (``fairsplat.ff.task.FFTask``; only the trainable parameters
differ: the LoRA matrices, or everything). They train side by side in two
processes (``fairsplat.train.jobs``). Then four generators are scored on the
held-out subjects with ``train_ff``'s protocol: the base, base + LoRA, the full
fine-tune, and the reference trained balanced from the start
(``models/ff/reference_balanced``), so per-type deficits can be measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from fairsplat.avatar.binding import AvatarBinding
from fairsplat.config import ParamsError
from fairsplat.ff.config import FFConfig
from fairsplat.ff.data import load_frames, mix_identities
from fairsplat.ff.evaluate import heldout_subjects, score_heldout
from fairsplat.ff.features import encoded_rows, warm_features
from fairsplat.ff.loop_config import loop_config
from fairsplat.train.losses import lpips_ready
from fairsplat.ff.run import BALANCED
from fairsplat.ff.task import FFTask, watch_pairs
from fairsplat.lora.adapters import LoraSpec, attach, trainable_parameters
from fairsplat.models.feature_store import attach_store
from fairsplat.models.generator import GeneratorConfig, load_generator
from fairsplat.train import loop
from fairsplat.train.accel import build_accelerator, seed_everything
from fairsplat.train.jobs import run_jobs, to_arrays, to_tensors, torch_threads

RUNS = ("lora", "fullft")


@dataclass(frozen=True)
class LoraRunConfig:
    spec: LoraSpec
    train: FFConfig  # data, losses, optimiser, schedule and evaluation, as train_ff's (steps, lr... of this stage)
    references: tuple[str, ...] = ("fullft",)  # also fine-tune every parameter on the same data
    workers: int = 2


@dataclass
class AdapterJob:
    name: str  # "lora" or "fullft"
    cfg: LoraRunConfig
    model_dir: Path
    head: Path
    curated: Path
    tracks: Path
    checkpoint_dir: Path | None
    fingerprint: str
    stop_at: int | None = None  # return after that many steps, as a killed run would have stopped (tests)


def require_lam(meta: dict, model_dir: Path) -> None:
    """Refuse a base that is not LAM-style, before any work (a ``ParamsError`` naming both keys).

    Seed 000's adapter is defined on LAM's decoder attention (``lora.target-modules`` are its
    projections, ``decoder.blocks.<i>.attn.<name>``), and its SoulSplats file names those layers.
    Seed 003's UV generator has no attention decoder: its decoding layers are per-sample modulated
    convolutions (``uvgen``), which peft's LoRA cannot wrap and no seed adapts, and training it
    needs the UV task's tracks and losses, not ``FFTask``'s. Adapting other layers (its DPT convs or
    heads) would be a method of our own, not seed 000's, so stage lora does not pretend to.
    """
    reason = not_lam_reason(meta, model_dir)
    if reason:
        raise ParamsError(reason)


def not_lam_reason(meta: dict, model_dir: Path) -> str | None:
    """Why a base cannot take seed 000's adapter (see :func:`require_lam`); None for a LAM-style base."""
    arch = meta.get("arch", "lam")
    if arch == "lam":
        return None
    return (f"{model_dir}: a train_ff.arch {arch!r} generator; stage lora adapts the LAM-style decoder's attention "
            f"(lora.target-modules), which it does not have. Train with train_ff.arch: lam for an adapter")  # fmt: skip


def build_model(name: str, model_dir: Path, spec: LoraSpec):
    """The base generator with LoRA attached (only adapters train), or whole (full fine-tune)."""
    require_lam(_meta(model_dir), model_dir)
    base, _ = load_generator(model_dir)
    base.train()
    if name == "lora":
        return attach(base, spec)
    base.requires_grad_(True)
    return base


def train_run(job: AdapterJob) -> dict:
    """One fine-tune (in a worker or in-process): returns its trainable state, history and timing."""
    from fairsplat.head.model import HeadModel

    cfg = job.cfg.train
    acc = build_accelerator(cfg.accel)
    frames = load_frames(job.curated, job.tracks, [cfg.train_split, cfg.watch_split])
    subjects = mix_identities(frames, cfg.train_split, BALANCED, cfg.seed)
    binding = AvatarBinding(HeadModel.load(job.head), GeneratorConfig.from_json(_meta(job.model_dir)).binding)
    use_lpips, _ = lpips_ready(cfg.loss.lpips_net)
    task = FFTask(cfg, frames, subjects, binding, watch_pairs(frames, cfg.watch_split), use_lpips,
                  make_model=lambda: build_model(job.name, job.model_dir, job.cfg.spec))  # fmt: skip
    seed_everything(cfg.seed)
    t0 = time.perf_counter()
    res = loop.fit(task, loop_config(cfg, f"lora/{job.name}"), acc, checkpoint_dir=job.checkpoint_dir,
                   fingerprint=job.fingerprint, progress=False, stop_at=job.stop_at)  # fmt: skip
    state = to_arrays({k: v for k, v in res.model.named_parameters() if v.requires_grad})
    return {"name": job.name, "state": state, "history": res.history, "steps": res.steps,
            "resumed_from": res.resumed_from, "seconds": time.perf_counter() - t0,
            "trainable": trainable_parameters(res.model), "subjects": len(subjects)}  # fmt: skip


def _meta(model_dir: Path) -> dict:
    from fairsplat.io.checkpoint import read_config

    return read_config(model_dir)


def restore(name: str, model_dir: Path, spec: LoraSpec, state: dict[str, torch.Tensor]):
    """Rebuild a trained run from its trainable state (strict: every trainable tensor is given)."""
    model = build_model(name, model_dir, spec)
    own = {k for k, v in model.named_parameters() if v.requires_grad}
    missing = own - set(state)
    if missing:
        raise ValueError(f"{name}: trained state lacks {sorted(missing)[:3]}")
    model.load_state_dict(to_tensors(state), strict=False)
    return model.eval()


def run_lora(cfg: LoraRunConfig, model_dir: Path, head: Path, curated: Path, tracks: Path,
             checkpoints: Path | None = None, fingerprint: str = "") -> dict:  # fmt: skip
    """Train LoRA (+ references), score every variant on held-out subjects; returns everything the stage writes."""
    from fairsplat.head.model import HeadModel

    require_lam(_meta(model_dir), model_dir)
    names = ("lora", *[r for r in cfg.references if r in RUNS and r != "lora"])
    jobs = [AdapterJob(n, cfg, model_dir, head, curated, tracks, None if checkpoints is None else checkpoints / n,
                       f"{fingerprint}:{n}") for n in names]  # fmt: skip
    t = cfg.train
    store = {"feature_store": False}
    base_cfg = GeneratorConfig.from_json(_meta(model_dir))
    if t.feature_store and base_cfg.encoder.stores_features():  # normally every crop is stored already, by train_ff
        every = load_frames(curated, tracks, [t.train_split, t.watch_split, *t.eval_splits])
        rows = encoded_rows(every, t.train_split, [t.watch_split, *t.eval_splits], max(t.max_k, *t.eval_ks))
        store = warm_features(base_cfg, every, rows, threads=cfg.workers * max(1, t.threads))
        del every
    t0 = time.perf_counter()
    results = {r["name"]: r for r in run_jobs(train_run, jobs, cfg.workers, threads=max(1, cfg.train.threads))}
    train_s = time.perf_counter() - t0
    models = {"base": load_generator(model_dir)[0]}
    models |= {n: restore(n, model_dir, cfg.spec, results[n]["state"]) for n in names}
    ref = model_dir / "reference_balanced"
    if (ref / "model.safetensors").is_file():
        models["balanced"] = load_generator(ref)[0]
    if t.feature_store:
        for m in models.values():
            attach_store(m)
    frames = load_frames(curated, tracks, list(t.eval_splits))
    binding = AvatarBinding(HeadModel.load(head), base_cfg.binding)
    held, short = heldout_subjects(frames, t.eval_splits, t.eval_ks)
    rows = []
    with torch_threads(cfg.workers * max(1, t.threads)):  # the trainers are done: score with every core
        for name, net in models.items():
            rows += score_heldout(net, frames, binding, held, t.eval_ks, t.size, t.backend, name)
    return {"models": models, "results": results, "rows": rows, "frames": frames, "unscored": short,
            "train_seconds": round(train_s, 1), "store": store, "type_mix": _meta(model_dir).get("type_mix")}  # fmt: skip

