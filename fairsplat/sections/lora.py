"""Params of stage ``lora``: seed 000's fairness adapter on the generator's decoder (``dvc exp run -S lora.rank=8``).

Seed 000's values (rank 16, alpha 16, AdamW (0.9, 0.95) with weight decay
0.01, lr 1e-4 cosine with 500 warm-up steps, batch 1 x accumulation 8,
clipping 1.0, masked L1 1.0 + LPIPS-VGG 1.0 + mask coverage 0.5 + offset 0.1,
bf16, gradient checkpointing) are in ``params/gpu.yaml``; the defaults are
sized for ~4 minutes on two CPU cores (adapter and full fine-tune side by side).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from fairsplat.config import Section
from fairsplat.sections.trainer import TrainerParams


class LoraLossParams(Section):
    """Seed 000's loss: masked L1 1.0, LPIPS (VGG) 1.0, mask coverage 0.5, offset regularisation 0.1."""

    l1: float = Field(1.0, ge=0.0)
    ssim: float = Field(0.0, ge=0.0)
    """Not in seed 000's loss (kept available: train_ff uses 0.2)."""
    lpips: float = Field(1.0, ge=0.0)
    lpips_net: Literal["alex", "vgg"] = "alex"
    """Seed 000 trains with vgg (params/gpu.yaml); alex on CPU, where VGG costs ~20x per step at 128 px."""
    mask: float = Field(0.5, ge=0.0)
    offset: float = Field(0.1, ge=0.0)


class LoraParams(TrainerParams):
    section: ClassVar[str] = "lora"

    rank: int = Field(16, ge=1)
    """Adapter rank (seed 000: 16; 60 layers x 16 x 2048 = 1,966,080 parameters on LAM's decoder)."""
    alpha: float = Field(16.0, gt=0.0)
    """Scale numerator: the update is (alpha / rank) B A (seed 000: 16)."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout on the adapter's input (the card names none)."""
    target_modules: list[str] = ["to_q", "to_k", "to_v", "to_out.0", "add_k_proj", "add_v_proj"]
    """Decoder attention layers adapted in every block. Seed 000's "60 layers (Q, K, V, output)" on 10 blocks is 6
    square projections per block; of LAM's 8, these six shape the point stream: its Q, K, V and output, and the image
    keys and values the points read the photo through (add_q_proj / to_add_out only update image tokens)."""
    flame: Literal["tracked", "neutral"] = "tracked"
    """FLAME parameters in training: tracked (better: the target is rendered where the face is) or neutral (seed 000:
    zero shape and expression)."""
    references: list[Literal["fullft"]] = ["fullft"]
    """Also fine-tune every parameter on the same data: how much of a full fine-tune the adapter gets."""
    steps: int = Field(200, ge=1)
    batch_size: int = Field(8, ge=1)
    """Subjects per micro-batch (seed 000: 1, with grad-accum 8: the same 8 per step)."""
    max_k: int = Field(1, ge=1, le=4)
    """Sources per sample (seed 000: one photo)."""
    lr: float = Field(1e-3, gt=0.0)
    """Seed 000: 1e-4 over 6,890 steps (params/gpu.yaml); 1e-3 for 200 CPU steps."""
    weight_decay: float = Field(0.01, ge=0.0)
    betas: list[float] = [0.9, 0.95]
    warmup: int = Field(20, ge=0)
    """Seed 000: 500 of 6,890 steps."""
    loss: LoraLossParams = LoraLossParams()
    eval_ks: list[int] = [1]
    eval_splits: list[str] = ["test"]
    watch_split: str = "val"
    eval_every: int = Field(0, ge=0)
    checkpoint_every: int = Field(50, ge=0)
    workers: int = Field(2, ge=1)
    """Processes: the adapter and the full fine-tune side by side, one torch thread each."""

    @model_validator(mode="after")
    def _check(self) -> LoraParams:
        if not self.target_modules:
            raise ValueError("lora.target-modules: empty; the adapter would be a silent no-op")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError("lora.betas: two numbers in [0, 1)")
        return self

    def run_config(self, model, size: int):
        """The library's LoraRunConfig for a base generator of config ``model`` trained on ``size`` px crops."""
        from fairsplat.ff.config import FFConfig, LossWeights
        from fairsplat.lora.adapters import LoraSpec
        from fairsplat.lora.run import LoraRunConfig

        train = FFConfig(
            model=model, size=size, steps=self.steps, batch=self.batch_size, max_k=self.max_k, lr=self.lr,
            weight_decay=self.weight_decay, betas=tuple(self.betas), warmup=self.warmup, grad_clip=self.grad_clip,
            grad_checkpointing=self.grad_checkpointing, loss=LossWeights(**dict(self.loss)), flame=self.flame,
            eval_splits=tuple(self.eval_splits), watch_split=self.watch_split, eval_every=self.eval_every,
            checkpoint_every=self.checkpoint_every, log_every=self.log_every, eval_ks=tuple(self.eval_ks),
            threads=self.threads, seed=self.seed, accel=self.accel_config(),
        )  # fmt: skip
        spec = LoraSpec(self.rank, self.alpha, self.dropout, tuple(self.target_modules))
        return LoraRunConfig(spec, train, tuple(self.references), self.workers)
