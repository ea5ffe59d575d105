"""One place that turns a training section's params into an ``accelerate.Accelerator``.

Why accelerate: the same loop runs on one CPU, one GPU or under
``accelerate launch`` on many (DDP), with bf16/fp16 autocast and gradient
accumulation, and the loop only says ``prepare`` / ``backward`` /
``accumulate``. What is decided here, once for every training stage:

- **params win over the launcher.** ``mixed-precision`` and ``grad-accum``
  come from params.yaml (DVC tracks them), so ``accelerate launch
  --mixed_precision`` / ``--gradient_accumulation_steps`` are overridden
  (accelerate would otherwise let the environment beat the argument for
  accumulation). ``--cpu`` and ``--num_processes`` still apply: they say where
  to run, not what to compute.
- **fp16 needs CUDA.** accelerate silently runs fp32 when fp16 is asked for on
  a CPU; we refuse with a ParamsError naming ``<section>.mixed-precision``.
- **seeding**: ``seed + process index`` (accelerate's ``device_specific``), so
  process 0 draws exactly what a plain single-process run draws (a CPU run is
  bit-identical to the pre-accelerate loop) and other processes draw
  different augmentations. Model init differs per process too, which is
  harmless: DDP broadcasts process 0's weights when ``prepare`` wraps it.
- **main-process writes** (:func:`on_main`) and **summed reductions**
  (:func:`reduce_sum`) for gathered evaluation; :func:`sync_buffers` makes
  every process evaluate with process 0's BatchNorm statistics (DDP leaves
  each process one local update apart after the last forward).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from fairsplat.config import ParamsError

MIXED_PRECISION = ("no", "bf16", "fp16")
DEVICES = ("auto", "cpu")
T = TypeVar("T")


@dataclass(frozen=True)
class AccelConfig:
    """What a training section says about where and how to compute (see sections/train_parser.py)."""

    device: str = "auto"  # auto: what the launcher gives (CUDA if present); cpu: force CPU
    mixed_precision: str = "no"
    grad_accum: int = 1
    section: str = "train"  # params section name, for error messages


def check_runtime(cfg: AccelConfig) -> None:
    """Refuse settings this machine cannot honour, naming the key (before any work)."""
    key = f"{cfg.section}.mixed-precision"
    if cfg.device not in DEVICES:
        raise ParamsError(f"{cfg.section}.device: {cfg.device!r} is not one of {', '.join(DEVICES)}")
    if cfg.mixed_precision not in MIXED_PRECISION:
        raise ParamsError(f"{key}: {cfg.mixed_precision!r} is not one of {', '.join(MIXED_PRECISION)}")
    if cfg.grad_accum < 1:
        raise ParamsError(f"{cfg.section}.grad-accum: must be >= 1 (got {cfg.grad_accum})")
    if cfg.mixed_precision == "fp16" and (cfg.device == "cpu" or not torch.cuda.is_available()):
        raise ParamsError(f"{key}: fp16 needs CUDA (no GPU here or device is cpu); use bf16 or no")
    if cfg.mixed_precision == "bf16" and cfg.device != "cpu" and torch.cuda.is_available():
        if not torch.cuda.is_bf16_supported():
            raise ParamsError(f"{key}: this GPU has no bf16; use fp16 or no")


def build_accelerator(cfg: AccelConfig):
    """An Accelerator from params (after :func:`check_runtime`)."""
    from accelerate import Accelerator
    from accelerate.utils import GradientAccumulationPlugin

    check_runtime(cfg)
    plugin = GradientAccumulationPlugin(num_steps=cfg.grad_accum)  # explicit: the env must not override it
    # cpu=True also without CUDA: only then does accelerate join launched CPU processes (gloo, MULTI_CPU)
    cpu = cfg.device == "cpu" or not torch.cuda.is_available()
    acc = Accelerator(cpu=cpu, mixed_precision=cfg.mixed_precision, gradient_accumulation_plugin=plugin)
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if acc.num_processes != launched:  # N unaware copies would each train and write the same outputs
        raise RuntimeError(f"launched {launched} processes but accelerate joined {acc.num_processes}")
    return acc


def seed_everything(seed: int) -> None:
    """torch/numpy/random from ``seed + process index`` (process 0: exactly ``torch.manual_seed(seed)``'s stream)."""
    from accelerate.utils import set_seed

    set_seed(seed, device_specific=True)


def on_main(accelerator, ctx: AbstractContextManager[T]) -> AbstractContextManager[T | None]:
    """``ctx`` on the main process, a do-nothing context yielding None elsewhere (writes happen once)."""
    return ctx if accelerator.is_main_process else contextlib.nullcontext(None)


def steps_per_epoch(batches: int, grad_accum: int) -> int:
    """Optimiser steps per epoch for ``batches`` per-process batches (accelerate syncs at the loader's end)."""
    return math.ceil(batches / grad_accum)


def schedule_length(accelerator, batches: int, epochs: int) -> int:
    """Scheduler steps over the run, for a scheduler passed through ``accelerator.prepare``.

    Why ``num_processes``: accelerate steps a prepared scheduler once per
    process per optimiser step (its convention: schedules are written for the
    single-process batch count), so a warm-up/cosine sized here ends where
    training ends whatever the launch.
    """
    return epochs * accelerator.num_processes * steps_per_epoch(batches, accelerator.gradient_accumulation_steps)


def reduce_sum(accelerator, a: np.ndarray) -> np.ndarray:
    """Elementwise sum of ``a`` over processes (identity on one). Integer counts stay exact."""
    if accelerator.num_processes == 1:
        return a
    t = torch.from_numpy(np.ascontiguousarray(a)).to(accelerator.device)
    return accelerator.reduce(t, reduction="sum").cpu().numpy()


def shard(accelerator, items: list[T]) -> list[T]:
    """This process's share of ``items`` for evaluation: every n-th from its index (disjoint, complete)."""
    if accelerator is None:
        return list(items)
    return list(items)[accelerator.process_index :: accelerator.num_processes]


@torch.no_grad()
def sync_buffers(accelerator, module: torch.nn.Module) -> None:
    """Copy process 0's buffers (BatchNorm running statistics) to every process."""
    if accelerator.num_processes == 1:
        return
    from accelerate.utils import broadcast

    for buf in module.buffers():
        buf.copy_(broadcast(buf.detach().clone(), from_process=0))


def describe(accelerator) -> dict[str, Any]:
    """Where the run ran, for the metrics JSON."""
    return {
        "device": str(accelerator.device),
        "num_processes": accelerator.num_processes,
        "mixed_precision": accelerator.mixed_precision,
        "grad_accum": accelerator.gradient_accumulation_steps,
    }


@contextlib.contextmanager
def fresh_state() -> Iterator[None]:
    """Forget accelerate's process-wide state before and after (tests build Accelerators with different settings)."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    try:
        yield
    finally:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
