"""The run settings every trainer section shares: seed, device, precision, accumulation, CPU threads.

Why one base: ``train_ff``, ``lora`` and ``train_enhancer`` read these keys the
same way and hand them to ``fairsplat.train.accel.AccelConfig``; three copies had
already started to drift in their docs. (``train_parser`` keeps its own until
its stage is next re-run: its section is a dep of a cached stage.)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from fairsplat.config import Section, bare_no


class TrainerParams(Section):
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu"] = "auto"
    """auto: CUDA when present (accelerate), else CPU."""
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    """Autocast of the networks (fp16 needs CUDA; rasteriser and losses stay fp32)."""
    grad_accum: int = Field(1, ge=1)
    threads: int = Field(1, ge=0)
    """torch CPU threads (0 = torch's default). 1: on 2 shared cores a second OpenMP thread made a train_ff step
    2.7x slower whenever another process ran (0.94 s vs 2.57 s); trainers run their variants as processes."""
    grad_clip: float = Field(1.0, gt=0.0)
    """Max gradient norm (LAM, seed 000, pix2pix-turbo: 1.0)."""
    grad_checkpointing: bool = False
    """Recompute blocks in backward: memory for time (on in params/gpu.yaml where it matters)."""
    log_every: int = Field(10, ge=1)

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _bare_no(cls, v: object) -> object:
        return bare_no(v)

    def accel_config(self):
        """The library's AccelConfig for this section's stage."""
        from fairsplat.train.accel import AccelConfig

        return AccelConfig(self.device, self.mixed_precision, self.grad_accum, self.section)


def heldout_splits(v: list[str]) -> list[str]:
    """Validator of a ``splits`` field that must name held-out subjects (stages evaluate, refine)."""
    if not v or "train" in v:
        raise ValueError("one or more curate splits, never 'train' (the generator trained on it)")
    return v
