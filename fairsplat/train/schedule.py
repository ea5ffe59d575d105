"""Learning-rate schedules: a multiplier of the base lr per optimiser step, with linear warm-up.

Plain functions behind a dict (``SCHEDULES``) so params name them
(``cosine``, ``linear``, ``constant``) and ``torch.optim.lr_scheduler.LambdaLR``
runs them; LambdaLR's state is just the step, so resume is exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial


def _warm(step: int, warmup: int) -> float | None:
    return (step + 1) / warmup if step < warmup else None


def cosine(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total`` (LAM, seed 000)."""
    w = _warm(step, warmup)
    if w is not None:
        return w
    t = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def linear(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then linear decay to 0 at ``total`` (seed 001's enhancer)."""
    w = _warm(step, warmup)
    if w is not None:
        return w
    return max(0.0, 1.0 - (step - warmup) / max(1, total - warmup))


def constant(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then the base lr."""
    w = _warm(step, warmup)
    return 1.0 if w is None else w


SCHEDULES: dict[str, Callable[[int, int, int], float]] = {"cosine": cosine, "linear": linear, "constant": constant}


def lr_lambda(kind: str, total: int, warmup: int) -> Callable[[int], float]:
    """``step -> multiplier`` for LambdaLR (``warmup`` is clamped to >= 1 step)."""
    if kind not in SCHEDULES:
        raise ValueError(f"schedule {kind!r}: choose from {', '.join(SCHEDULES)}")
    return partial(SCHEDULES[kind], total=total, warmup=max(1, warmup))
