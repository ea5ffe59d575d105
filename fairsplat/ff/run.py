"""Stage ``train_ff``: train the generator and the constant-avatar baseline, score both on held-out subjects.

Order of work (every process of an ``accelerate launch`` runs it; only the
main process writes): load crops + tracks -> draw the training identities by
``type_mix`` -> train the generator on the shared skeleton (resumable) ->
fit the constant avatar with the same losses -> self-reenactment of held-out
subjects for K in ``eval_ks`` -> metrics rows -> per-type table.
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
from fairsplat.ff.task import FFTask, watch_pairs
from fairsplat.models.lam import ConstantAvatar
from fairsplat.train import loop
from fairsplat.train.accel import seed_everything
from fairsplat.train.loop import Every, LoopConfig
from fairsplat.train.optim import OptimConfig


@dataclass
class FFResult:
    model: torch.nn.Module  # the trained generator (CPU, eval)
    baseline: ConstantAvatar
    binding: AvatarBinding
    rows: list[dict]  # held-out rows of both variants
    frames: Frames
    subjects: list[str]  # training identities
    skipped_subjects: list[str]  # held-out subjects with too few crops to score
    history: list[dict]
    info: dict


def loop_config(cfg: FFConfig, name: str = "train_ff") -> LoopConfig:
    """LAM's optimiser and schedule on the skeleton: AdamW (0.9, 0.95), warm-up + cosine, clipping."""
    return LoopConfig(
        name=name, epochs=1, schedule="cosine", warmup_steps=cfg.warmup, grad_clip=cfg.grad_clip,
        grad_checkpointing=cfg.grad_checkpointing,
        optim=OptimConfig(lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas, decay_norms_and_biases=False),
        log=Every(cfg.log_every, "step"), eval=Every(cfg.eval_every, "step"), checkpoint=Every(cfg.checkpoint_every, "step"),
    )  # fmt: skip


def lpips_ready(net: str) -> tuple[bool, str | None]:
    """Whether the real LPIPS weights are here; else the reason, recorded in the metrics."""
    from fairsplat.weights import available

    name = f"lpips_{net}"
    return (True, None) if available(name) else (False, f"{name} weights absent (python -m fairsplat.weights fetch)")


def train_generator(cfg: FFConfig, frames: Frames, subjects: list[str], binding: AvatarBinding, acc, live=None,
                    progress: bool = True, checkpoint_dir: Path | None = None, fingerprint: str = "",
                    stop_at: int | None = None):  # fmt: skip
    use_lpips, _ = lpips_ready(cfg.loss.lpips_net)
    task = FFTask(cfg, frames, subjects, binding, watch_pairs(frames, cfg.watch_split), use_lpips)
    seed_everything(cfg.seed)
    return loop.fit(task, loop_config(cfg), acc, live=live, progress=progress, checkpoint_dir=checkpoint_dir,
                    fingerprint=fingerprint, stop_at=stop_at)  # fmt: skip


def fit_baseline(cfg: FFConfig, frames: Frames, subjects: list[str], binding: AvatarBinding, acc, progress: bool = True):
    """The best single avatar with no image input, same data and losses, its own (short) schedule."""
    use_lpips, _ = lpips_ready(cfg.loss.lpips_net)
    bcfg = replace(cfg, steps=cfg.baseline_steps, lr=cfg.baseline_lr, weight_decay=0.0, eval_every=0,
                   checkpoint_every=0)  # fmt: skip
    task = FFTask(bcfg, frames, subjects, binding, None, use_lpips,
                  make_model=lambda: ConstantAvatar(len(binding), cfg.model.heads))  # fmt: skip
    seed_everything(cfg.seed + 1)
    return loop.fit(task, loop_config(bcfg, "train_ff_baseline"), acc, progress=progress)


def run_train_ff(cfg: FFConfig, head, curated: Path, tracks: Path, acc, live=None, progress: bool = True,
                 checkpoint_dir: Path | None = None, fingerprint: str = "") -> FFResult:  # fmt: skip
    splits = [cfg.train_split, cfg.watch_split, *cfg.eval_splits]
    frames = load_frames(curated, tracks, splits)
    subjects = mix_identities(frames, cfg.train_split, cfg.type_mix, cfg.seed)
    binding = AvatarBinding(head, cfg.model.binding).to(acc.device)
    t0 = time.perf_counter()
    res = train_generator(cfg, frames, subjects, binding, acc, live, progress, checkpoint_dir, fingerprint)
    train_s = time.perf_counter() - t0
    base = fit_baseline(cfg, frames, subjects, binding, acc, progress)
    model, baseline = res.model.eval(), base.model.eval()
    held, short = heldout_subjects(frames, cfg.eval_splits, cfg.eval_ks)
    rows = []
    if acc.is_main_process:
        rows = score_heldout(model, frames, binding, held, cfg.eval_ks, cfg.size, cfg.backend, "ff")
        rows += score_heldout(baseline, frames, binding, held, cfg.eval_ks, cfg.size, cfg.backend, "baseline")
    lp_ok, lp_reason = lpips_ready(cfg.loss.lpips_net)
    info = {"train_seconds": round(train_s, 1), "steps": res.steps, "resumed_from": res.resumed_from,
            "gaussians": len(binding), "lpips_loss": lp_ok, "lpips_loss_absent_reason": lp_reason,
            "parameters": sum(p.numel() for p in model.parameters()),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}  # fmt: skip
    return FFResult(model.cpu(), baseline.cpu(), binding.cpu(), rows, frames, subjects, short, res.history, info)
