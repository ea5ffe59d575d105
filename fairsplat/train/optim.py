"""AdamW from params: one place that turns a training section's optimiser keys into an optimiser."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    """(0.9, 0.95) for the transformer trainers: LAM's and seed 000's values."""
    eps: float = 1e-8
    decay_norms_and_biases: bool = True
    """False puts 1-D parameters (biases, norm scales) in a group without weight decay,
    the usual choice for transformers; True decays everything (the parser's run)."""


def param_groups(params: Iterable[tuple[str, torch.nn.Parameter]], cfg: OptimConfig) -> list[dict]:
    """Trainable parameters, split into decayed and non-decayed groups as ``cfg`` asks."""
    named = [(n, p) for n, p in params if p.requires_grad]
    if not named:
        raise ValueError("no trainable parameters: every parameter has requires_grad=False")
    if cfg.decay_norms_and_biases:
        return [{"params": [p for _, p in named], "weight_decay": cfg.weight_decay}]
    decay = [p for _, p in named if p.ndim >= 2]
    rest = [p for _, p in named if p.ndim < 2]
    return [g for g in ({"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0})
            if g["params"]]  # fmt: skip


def build_adamw(module: torch.nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(module.named_parameters(), cfg), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
