"""The generators' optimiser and schedule on the shared skeleton.

Apart from ``run.py`` so that the LAM-style stage, its UV-space twin (``uv_run.py``) and stage ``lora`` read one
definition without importing each other. The LoopConfig itself is ``fairsplat.train.loop.step_loop_config``
(shared with the enhancer); whether real LPIPS can be a loss is ``fairsplat.train.losses.lpips_ready``.
"""

from __future__ import annotations

from fairsplat.ff.config import FFConfig
from fairsplat.train.loop import LoopConfig, step_loop_config


def loop_config(cfg: FFConfig, name: str = "train_ff") -> LoopConfig:
    """LAM's optimiser and schedule on the skeleton: AdamW (0.9, 0.95), warm-up + cosine, clipping; norms and
    biases are not decayed."""
    return step_loop_config(cfg, name, schedule="cosine", decay_norms_and_biases=False)
