"""The one training skeleton: a trainer supplies ``build``, ``train_step``, ``evaluate``; the loop does the rest.

What the loop owns, once for every trainer (STYLE.md, "one training skeleton"):

- accelerate: placement, DDP, bf16/fp16 autocast, gradient accumulation
  (``fairsplat.train.accel`` builds the Accelerator from params);
- AdamW from params (``optim.py``) and a warm-up + decay schedule
  (``schedule.py``) sized to the run; gradient clipping; gradient
  checkpointing when the model offers ``gradient_checkpointing_enable``;
- a NaN/inf guard that stops the run naming the step and the loss term;
- a tqdm bar, dvclive curves (``<name>/<term>``), periodic held-out
  evaluation (watched, never selected on);
- checkpoints at intervals and exact resume (``fairsplat.io.checkpoint``):
  model, optimiser, scheduler, every RNG stream, the step, and the data
  position (epoch, batches consumed, the shuffle generator's state at the
  epoch start), so an interrupted run continues as if it never stopped; its
  dvclive log starts with the rows the interrupted run had logged.

A task's ``build`` returns the model (on CPU, initialised from the seeded
RNG), its DataLoader, and the loader's shuffle generator (or None);
``train_step(model, batch)`` returns a dict of scalar tensors whose
``"loss"`` is back-propagated; ``evaluate(model)`` returns numbers for the
log; ``start_epoch(epoch)`` is an optional hook (epoch-seeded augmentation).
Saving the final model is the stage's job, after ``fit`` returns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from fairsplat.io.checkpoint import TrainState, load_train_state, rng_state, save_train_state, set_rng_state
from fairsplat.train.accel import reduce_sum, schedule_length
from fairsplat.train.optim import OptimConfig, build_adamw
from fairsplat.train.schedule import lr_lambda


class NonFiniteLoss(FloatingPointError):
    """A loss term became NaN or inf; the message names the step and the term."""


@dataclass(frozen=True)
class Every:
    """A cadence: every ``n`` optimiser steps (unit "step") or epochs (unit "epoch"); n = 0 never."""

    n: int = 0
    unit: str = "step"

    def __post_init__(self) -> None:
        if self.unit not in ("step", "epoch") or self.n < 0:
            raise ValueError(f"Every: n >= 0 and unit step|epoch, got {self.n} {self.unit!r}")

    def due(self, unit: str, count: int) -> bool:
        return self.n > 0 and unit == self.unit and count % self.n == 0


@dataclass(frozen=True)
class LoopConfig:
    name: str
    """Prefix of the dvclive curves and the progress bar (the stage name)."""
    epochs: int = 1
    """Passes over the loader; a step-budgeted trainer gives a loader of exactly its steps."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: str = "cosine"
    warmup_steps: int = 0
    """Optimiser steps of linear warm-up; 0 = ``warmup_frac`` of the run (at least 1)."""
    warmup_frac: float = 0.0
    grad_clip: float | None = None
    """Max global gradient norm (LAM, seeds 000/001: 1.0); None = no clipping."""
    grad_checkpointing: bool = False
    log: Every = Every(1, "epoch")
    eval: Every = Every(0)
    checkpoint: Every = Every(0)


def step_loop_config(cfg, name: str, schedule: str, decay_norms_and_biases: bool) -> LoopConfig:
    """The LoopConfig of a step-budgeted trainer (one pass over a loader of exactly its steps) from its config's
    same-named fields: ``warmup``, ``grad_clip``, ``grad_checkpointing``, ``lr``, ``weight_decay``, ``betas``
    and the ``log_every`` / ``eval_every`` / ``checkpoint_every`` step cadences.

    One definition for the generators (LAM: cosine, norms and biases not decayed) and the enhancer (seed 001:
    linear, every weight decayed), which only differ in those two arguments.
    """
    return LoopConfig(
        name=name, epochs=1, schedule=schedule, warmup_steps=cfg.warmup, grad_clip=cfg.grad_clip,
        grad_checkpointing=cfg.grad_checkpointing,
        optim=OptimConfig(lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas,
                          decay_norms_and_biases=decay_norms_and_biases),
        log=Every(cfg.log_every, "step"), eval=Every(cfg.eval_every, "step"), checkpoint=Every(cfg.checkpoint_every, "step"),
    )  # fmt: skip


class Task(Protocol):
    def build(self, accelerator) -> tuple[torch.nn.Module, Iterable, torch.Generator | None]: ...

    def train_step(self, model: torch.nn.Module, batch: Any) -> dict[str, torch.Tensor]: ...

    def evaluate(self, model: torch.nn.Module) -> dict[str, float | None]: ...


@dataclass
class FitResult:
    model: torch.nn.Module  # unwrapped, on the accelerator's device
    prepared: torch.nn.Module  # as accelerate wrapped it (unwrap with keep_fp32_wrapper=False for fp32 scoring)
    history: list[dict[str, float]]  # one row per log period
    steps: int
    resumed_from: int | None  # step of the checkpoint resumed, None for a fresh run
    stopped_early: bool = False


@dataclass
class _Run:
    """The mutable position of a run (what a checkpoint's ``extra`` records besides RNG and weights)."""

    step: int = 0
    epoch: int = 0
    batches: int = 0  # micro-batches consumed in the current epoch
    gen_state: torch.Tensor | None = None  # the shuffle generator at the start of the epoch
    history: list[dict[str, float]] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)  # micro-batch terms of the pending log row
    pending: dict[str, float | None] = field(default_factory=dict)  # evaluation numbers for that row
    rng: dict | None = None  # a resumed run's RNG, set once its loader has drawn its base seed (_batches)


def _check_finite(terms: dict[str, torch.Tensor], step: int, name: str) -> None:
    for key, value in terms.items():
        if not bool(torch.isfinite(value.detach()).all()):
            raise NonFiniteLoss(f"{name}: loss term {key!r} is {value.detach().float().item()} at step {step + 1}; "
                                "stopping (lower the lr, check the inputs of that step)")  # fmt: skip


def _mean(acc, values: list[float]) -> float:
    """Mean of micro-batch values over every process (one process: exactly ``np.mean``)."""
    if acc.num_processes == 1:
        return float(np.mean(values))
    s = reduce_sum(acc, np.array([sum(values), len(values)], np.float64))
    return float(s[0] / s[1])


def _flush(acc, run: _Run, live, name: str) -> None:
    """Close the pending log row: means over processes of every term, plus evaluation numbers."""
    row: dict[str, Any] = {"epoch": run.epoch + (0 if run.batches == 0 else 1), "step": run.step}
    row |= {k: _mean(acc, v) for k, v in sorted(run.values.items())}
    row |= run.pending
    run.history.append(row)
    run.values, run.pending = {}, {}
    if live is not None:
        _log_row(live, row, name)


def _log_row(live, row: dict[str, Any], name: str) -> None:
    for k, v in row.items():
        if k not in ("epoch", "step") and v is not None:
            live.log_metric(f"{name}/{k}", v)
    live.next_step()


def _save(acc, directory: Path, fp: str, model, opt, sched, run: _Run) -> None:
    acc.wait_for_everyone()
    if acc.is_main_process:
        extra = {"epoch": run.epoch, "batches": run.batches, "gen_state": run.gen_state, "history": run.history,
                 "values": run.values, "pending": run.pending}  # fmt: skip
        state = TrainState(run.step, acc.unwrap_model(model).state_dict(), opt.state_dict(), sched.state_dict(),
                           rng_state(), fp, extra)  # fmt: skip
        save_train_state(directory, state)
    acc.wait_for_everyone()


def _restore(acc, state: TrainState, model, opt, sched) -> _Run:
    acc.unwrap_model(model).load_state_dict(state.model)
    opt.load_state_dict(state.optimizer)
    sched.load_state_dict(state.scheduler)
    x = state.extra
    return _Run(state.step, x["epoch"], x["batches"], x["gen_state"], list(x["history"]), dict(x["values"]),
                dict(x["pending"]), state.rng)  # fmt: skip


_END = object()


def _batches(batches, run: _Run):
    """The loader's batches; a resumed run's RNG is restored after the first is drawn.

    Why: a DataLoader draws its base seed from the global RNG when its iterator
    starts (lazily, at the first batch under accelerate). The interrupted run
    drew it at the epoch's start, before the checkpoint; restoring first and
    drawing after would shift every later dropout or noise draw.
    """
    it = iter(batches)
    first = next(it, _END)
    if run.rng is not None:
        set_rng_state(run.rng)
        run.rng = None
    if first is _END:
        return
    yield first
    yield from it


def _boundary(unit: str, count: int, cfg: LoopConfig, task, acc, model, opt, sched, run, live, ckpt, last) -> None:
    """At the end of a step or an epoch: evaluate, log, checkpoint, whichever is due.

    ``last``: the end of training; no periodic evaluation there (the stage's
    final, held-out scoring follows) and whatever is pending is logged.
    """
    if cfg.eval.due(unit, count) and not last:
        model.eval()
        with torch.no_grad():
            run.pending |= task.evaluate(acc.unwrap_model(model))
    if (cfg.log.due(unit, count) or (last and unit == "epoch")) and (run.values or run.pending):
        _flush(acc, run, live, cfg.name)
    if ckpt is not None and cfg.checkpoint.due(unit, count) and not last:
        _save(acc, ckpt[0], ckpt[1], model, opt, sched, run)


def fit(
    task: Task,
    cfg: LoopConfig,
    accelerator,
    live=None,
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    fingerprint: str = "",
    stop_at: int | None = None,
) -> FitResult:
    """Train ``task`` on ``accelerator``; call it on every process (``live`` on the main one only).

    ``checkpoint_dir``: resumable checkpoints go there at the ``cfg.checkpoint``
    cadence, and a checkpoint already there with the same ``fingerprint`` is
    resumed. ``stop_at``: return after that many optimiser steps (after its
    checkpoint), as an interrupted run would have stopped; for tests.
    """
    acc = accelerator
    model, loader, generator = task.build(acc)
    if cfg.grad_checkpointing and hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable()
    loader = acc.prepare(loader)  # first: the schedule's length depends on this process's share
    opt = build_adamw(model, cfg.optim)
    total = schedule_length(acc, len(loader), cfg.epochs)
    warm = cfg.warmup_steps or max(1, int(cfg.warmup_frac * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.schedule, total, warm))
    model, opt, sched = acc.prepare(model, opt, sched)
    ckpt = (Path(checkpoint_dir), fingerprint) if checkpoint_dir is not None else None
    state = load_train_state(ckpt[0], fingerprint, acc.unwrap_model(model).state_dict()) if ckpt else None
    run = _restore(acc, state, model, opt, sched) if state else _Run()
    if live is not None:  # a resumed run's log starts with the rows the killed one had logged
        for row in run.history:
            _log_row(live, row, cfg.name)
    steps_total = math.ceil(len(loader) / acc.gradient_accumulation_steps) * cfg.epochs
    bar = tqdm(total=steps_total, initial=run.step, desc=cfg.name, unit="step",
               disable=not (progress and acc.is_main_process), mininterval=1.0)  # fmt: skip
    stopped = False
    while run.epoch < cfg.epochs and not stopped:
        stopped = _epoch(task, cfg, acc, model, opt, sched, loader, generator, run, live, ckpt, bar, stop_at)
    bar.close()
    return FitResult(acc.unwrap_model(model), model, run.history, run.step, state.step if state else None, stopped)


def _epoch(task, cfg, acc, model, opt, sched, loader, generator, run: _Run, live, ckpt, bar, stop_at) -> bool:
    """One pass (or the rest of one, after a resume); True when ``stop_at`` was reached."""
    if hasattr(task, "start_epoch"):
        task.start_epoch(run.epoch)
    if generator is not None:
        if run.batches and run.gen_state is not None:
            generator.set_state(run.gen_state)  # the same permutation as the interrupted epoch
        run.gen_state = generator.get_state()
    batches = acc.skip_first_batches(loader, run.batches) if run.batches else loader
    last_epoch = run.epoch + 1 == cfg.epochs
    n_batches = len(loader)
    for batch in _batches(batches, run):
        model.train()
        with acc.accumulate(model):
            terms = task.train_step(model, batch)
            _check_finite(terms, run.step, cfg.name)
            acc.backward(terms["loss"])
            if cfg.grad_clip and acc.sync_gradients:
                acc.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
        for k, v in terms.items():
            run.values.setdefault(k, []).append(float(v.detach()))
        run.batches += 1
        if acc.sync_gradients:
            run.step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{float(terms['loss'].detach()):.4f}")
            last = last_epoch and run.batches == n_batches
            _boundary("step", run.step, cfg, task, acc, model, opt, sched, run, live, ckpt, last)
            if stop_at is not None and run.step >= stop_at:
                return True
    run.epoch += 1
    run.batches = 0
    _boundary("epoch", run.epoch, cfg, task, acc, model, opt, sched, run, live, ckpt, last_epoch)
    return False
