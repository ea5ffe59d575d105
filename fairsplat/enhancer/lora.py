"""LoRA on the SD-Turbo enhancer through peft, by module name from params (the model code knows nothing of it).

pix2pix-turbo's recipe, seed 001's ranks: adapters of rank 16 on the UNet's
``to_q/to_k/to_v/to_out.0``, convs, projections and feed-forwards, and of rank
8 on the VAE's convs and attention (``vae_parts``: pix2pix-turbo's code adapts
encoder and decoder, 18,484,432 trainable parameters with the skip convs and
``unet.conv_in``, seed 001's "~18.5M"; decoder only gives 17,745,848); the skip
convs and ``unet.conv_in`` are trained fully; every other weight is frozen.

The tiny default has no LoRA: adapters on random frozen weights would only
restrict a network that has learned nothing; it trains every weight.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fairsplat.enhancer.config import LoraSpec
from fairsplat.models.enhancer import Enhancer, EnhancerConfig


def _config(rank: int, targets: tuple[str, ...], alpha: float | None):
    from peft import LoraConfig

    kw = {} if alpha is None else {"lora_alpha": alpha}
    return LoraConfig(r=rank, target_modules=list(targets), init_lora_weights="gaussian", **kw)


def apply_lora(model: Enhancer, spec: LoraSpec) -> Enhancer:
    """Freeze ``model``, attach the adapters, unfreeze adapters + skip convs + ``unet.conv_in``. In place."""
    from peft import inject_adapter_in_model

    model.requires_grad_(False)
    inject_adapter_in_model(_config(spec.unet_rank, spec.unet_targets, spec.alpha), model.unet)
    for part in spec.vae_parts:
        inject_adapter_in_model(_config(spec.vae_rank, spec.vae_targets, spec.alpha), getattr(model.vae, part))
    for name, p in model.named_parameters():
        if "lora_" in name:
            p.requires_grad_(True)
    model.skips.requires_grad_(True)
    model.unet.conv_in.requires_grad_(True)
    return model


def adapted_layers(model: nn.Module) -> Counter:
    """How many layers carry an adapter, per top-level part ("unet", "vae.encoder", "vae.decoder")."""
    out: Counter = Counter()
    for name, module in model.named_modules():
        if hasattr(module, "lora_A") and len(getattr(module, "lora_A")):
            parts = name.split(".")
            out[".".join(parts[:2]) if parts[0] == "vae" else parts[0]] += 1
    return out


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """What an adapted model saves: the parameters that train (the base comes from the SD-Turbo directory)."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def adapter_meta(base: str, spec: LoraSpec, prompt: str) -> dict[str, Any]:
    return {"base": str(base), "prompt": prompt, **{k: list(v) if isinstance(v, tuple) else v
                                                    for k, v in asdict(spec).items()}}  # fmt: skip


def load_adapted(model_dir: str | Path, device: str | torch.device = "cpu") -> tuple[Enhancer, dict[str, Any]]:
    """An SD-Turbo enhancer saved by stage train_enhancer: base from its directory, adapters and skips from ours."""
    from fairsplat.enhancer import sdturbo
    from fairsplat.io.checkpoint import check_state, read_config, read_safetensors

    meta = read_config(model_dir)
    a = meta["adapter"]
    sdturbo.check_dir(a["base"], key=f"{model_dir}/config.json adapter.base")
    vae, unet, text, _ = sdturbo.load(a["base"], a["prompt"])
    model = Enhancer(EnhancerConfig.from_json(meta["model"]), vae=vae, unet=unet, text=text)
    spec = LoraSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in a.items() if k in LoraSpec.__dataclass_fields__})
    apply_lora(model, spec)
    state = read_safetensors(Path(model_dir) / "model.safetensors")
    check_state(trainable_state(model), state, str(Path(model_dir) / "model.safetensors"))
    model.load_state_dict(state, strict=False)
    return model.to(device).eval(), meta
