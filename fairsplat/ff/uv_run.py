"""Seed 003's two-phase schedule on the shared loop: phase 1 (monocular-temporal), then phase 2 (multi-view).

Phase 2 starts from phase 1's weights (the same architecture), on a smaller
set of identities disjoint from phase 1's (``phase2_share``; held out of phase 1
even when phase 2 is off, so a phase-1-only run is the full run's phase 1), with the L2-SP
anchor towards phase 1's weights and the cross-time share from params. Each
phase is its own resumable run (``<checkpoints>/phase1``, ``/phase2``); a run
without phase 2 (ablation row A) stops after phase 1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from fairsplat.avatar.binding import AvatarBinding
from fairsplat.ff.config import FFConfig
from fairsplat.ff.data import Frames
from fairsplat.ff.uv_data import split_phases
from fairsplat.ff.uv_task import UVTask
from fairsplat.train import loop
from fairsplat.train.accel import seed_everything


@dataclass
class UVFit:
    model: object  # UVGenerator, unwrapped
    history: list[dict]  # both phases' rows, terms named <phase>/<term>
    steps: int
    resumed_from: int | None
    seconds: dict[str, float]  # per phase
    subjects: dict[str, list[str]]  # identities per phase


def train_uv(cfg: FFConfig, frames: Frames, subjects: list[str], binding: AvatarBinding, acc, live=None,
             progress: bool = True, checkpoint_dir: Path | None = None, fingerprint: str = "",
             name: str = "train_ff", init: dict | None = None) -> UVFit:  # fmt: skip
    """Both phases (phase 2 when configured); ``init`` + ``phase1.steps = 0``: phase 2 from given phase-1 weights."""
    from fairsplat.ff.loop_config import loop_config
    from fairsplat.train.losses import lpips_ready
    from fairsplat.ff.task import watch_pairs

    from fairsplat.ff.uv_context import code_dim

    if acc.num_processes > 1:  # UVTask calls the unwrapped network (two entry points): DDP would not sync
        raise ValueError("train_ff.arch uv trains in one process; DDP (accelerate launch) is the LAM path's only")
    if cfg.model.uv.code_dim != code_dim(binding):
        raise ValueError(f"train_ff.uv.code-dim {cfg.model.uv.code_dim}: this head's expression + pose code has "
                         f"{code_dim(binding)} dims")  # fmt: skip
    use_lpips, _ = lpips_ready(cfg.loss.lpips_net)
    uv = cfg.uv
    phases = ([uv.phase1] if uv.phase1.steps > 0 else []) + ([uv.phase2] if uv.phase2 is not None else [])
    if not phases or (uv.phase1.steps == 0 and init is None):
        raise ValueError("train_ff.uv: phase 1 has 0 steps and no starting weights, or no phase to run")
    # phase 1's identities do not depend on whether phase 2 runs: row A is C's phase 1, and phase 2's
    # identities are new to the network (seed 003's NeRSemble is not in CelebV-HQ)
    p1, p2 = split_phases(subjects, uv.phase2_share, cfg.seed)
    p2 = p2 if uv.phase2 is not None else []
    who = {"phase1": p1, "phase2": p2}
    history, seconds, steps, resumed = [], {}, 0, None
    watch = watch_pairs(frames, cfg.watch_split)
    for ph in phases:
        task = UVTask(cfg, frames, who[ph.name], binding, ph, uv, watch, use_lpips, init)
        seed_everything(cfg.seed + (0 if ph.name == "phase1" else 7))
        t0 = time.perf_counter()
        ck = None if checkpoint_dir is None else Path(checkpoint_dir) / ph.name
        res = loop.fit(task, loop_config(task.cfg, f"{name}/{ph.name}"), acc, live=live, progress=progress,
                       checkpoint_dir=ck, fingerprint=f"{fingerprint}:{ph.name}")  # fmt: skip
        seconds[ph.name] = round(time.perf_counter() - t0, 1)
        # one curve per phase and term, phase 2's steps after phase 1's
        history += [{"step": r["step"] + steps, **{f"{ph.name}/{k}": v for k, v in r.items() if k not in ("step", "epoch")}}
                    for r in res.history]  # fmt: skip
        init = {k: v.detach().clone() for k, v in res.model.state_dict().items()}
        steps += res.steps
        resumed = res.resumed_from if resumed is None else resumed
        model = res.model
    return UVFit(model, history, steps, resumed, seconds, {k: v for k, v in who.items() if v})
