"""LoRA on the generator's decoder attention, attached by name through peft (model code never mentions it).

Seed 000 adapts "60 attention projection layers (Q, K, V, output)" of LAM's
10-block decoder with 1.97M parameters at rank 16: 60 x 16 x (1024 + 1024)
exactly, so 6 square projections per block. LAM's blocks have 8 attention
Linears; the default targets are the six that shape what the Gaussian points
compute: the point stream's own ``to_q``, ``to_k``, ``to_v``, ``to_out.0`` and
the image stream's ``add_k_proj``, ``add_v_proj``, the keys and values the
point queries read the photo through. Left out: ``add_q_proj`` and
``to_add_out``, which only update the image tokens (and do not exist or do
nothing in the last block). ``lora.target-modules`` changes the set.

Targets are matched inside the decoder's attention only
(``decoder.blocks.<i>.attn.<name>``), never in the encoder; a name that
matches no layer is an error naming the key, before any work.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from fairsplat.config import ParamsError

DEFAULT_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "add_k_proj", "add_v_proj")
SCOPE = r"decoder\.blocks\.\d+\.attn\."


@dataclass(frozen=True)
class LoraSpec:
    rank: int = 16
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = DEFAULT_TARGETS
    section: str = "lora"  # params section, for messages

    @property
    def scale(self) -> float:
        """peft's (and the paper's) update scale alpha / rank: W' = W + scale * B A."""
        return self.alpha / self.rank


def target_regex(targets: Sequence[str]) -> str:
    return SCOPE + "(" + "|".join(re.escape(t) for t in targets) + ")"


def matching_layers(model: nn.Module, spec: LoraSpec) -> list[str]:
    """Linear layers the spec adapts, in module order; ParamsError naming the key if any target matches none."""
    if spec.rank <= 0:
        raise ParamsError(f"{spec.section}.rank: must be > 0 (got {spec.rank})")
    if spec.alpha <= 0:
        raise ParamsError(f"{spec.section}.alpha: must be > 0 (got {spec.alpha})")
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    found = []
    for t in spec.targets:
        hits = [n for n in names if re.fullmatch(target_regex([t]), n)]
        if not hits:
            raise ParamsError(f"{spec.section}.target-modules: {t!r} matches no decoder attention layer "
                              f"(names look like decoder.blocks.0.attn.to_q)")  # fmt: skip
        found += hits
    if not found:
        raise ParamsError(f"{spec.section}.target-modules: matches 0 layers")
    return [n for n in names if n in set(found)]


def attach(model: nn.Module, spec: LoraSpec):
    """A peft model with LoRA on the spec's layers; everything else frozen."""
    from peft import LoraConfig, get_peft_model

    matching_layers(model, spec)
    cfg = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                     target_modules=target_regex(spec.targets), bias="none")  # fmt: skip
    return get_peft_model(model, cfg)


def adapted_layers(peft_model) -> dict[str, nn.Module]:
    """Base-model layer name (``decoder.blocks.0.attn.to_q``) -> its peft LoRA layer."""
    from peft.tuners.lora import LoraLayer

    prefix = "base_model.model."
    return {n.removeprefix(prefix): m for n, m in peft_model.named_modules() if isinstance(m, LoraLayer)}


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def lora_matrices(layer) -> tuple[torch.Tensor, torch.Tensor]:
    """(A [r, in], B [out, r]) of a peft LoRA layer's default adapter."""
    return layer.lora_A["default"].weight, layer.lora_B["default"].weight
