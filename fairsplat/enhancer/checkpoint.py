"""Saving and loading a trained enhancer: every weight (tiny default) or the trained ones + the SD-Turbo path (LoRA).

``model.safetensors`` + ``config.json`` (``fairsplat.io.checkpoint``): ``model``
is the EnhancerConfig (diffusers configs included); a LoRA run adds
``adapter`` (base directory, prompt, ranks, targets), and its safetensors holds
only the parameters that trained (adapters, skip convs, ``unet.conv_in``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from fairsplat.enhancer.config import EnhancerTrainConfig
from fairsplat.models.enhancer import Enhancer


@torch.no_grad()
def save_enhancer(out: Path, model: Enhancer, cfg: EnhancerTrainConfig, extra: dict) -> None:
    """``model.safetensors`` + ``config.json``: every weight (tiny), or the trained ones + the base path (LoRA)."""
    from fairsplat.io.checkpoint import save_weights

    meta = {"model": model.cfg.to_json(), **extra}
    if cfg.sd_turbo_path is None:
        save_weights(out, model.state_dict(), meta)
        return
    from fairsplat.enhancer.lora import adapter_meta, trainable_state

    save_weights(out, trainable_state(model), {**meta, "adapter": adapter_meta(cfg.sd_turbo_path, cfg.lora, cfg.prompt)})


def load_any(model_dir: str | Path, device: str | torch.device = "cpu") -> tuple[Enhancer, dict]:
    """A saved enhancer, tiny or LoRA."""
    from fairsplat.io.checkpoint import read_config

    if read_config(model_dir).get("adapter"):
        from fairsplat.enhancer.lora import load_adapted

        return load_adapted(model_dir, device)
    from fairsplat.models.enhancer import load_enhancer

    return load_enhancer(model_dir, device)
