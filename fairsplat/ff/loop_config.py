"""The generators' optimiser and schedule on the shared skeleton, and whether real LPIPS can be a loss.

Apart from ``run.py`` so that the LAM-style stage, its UV-space twin (``uv_run.py``) and stage ``lora`` read one
definition without importing each other.
"""

from __future__ import annotations

from fairsplat.ff.config import FFConfig
from fairsplat.train.loop import Every, LoopConfig
from fairsplat.train.optim import OptimConfig


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
