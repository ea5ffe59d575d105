"""Params of stage ``parse``: which backend labels the curated crops."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from fairsplat.config import Section


class ParseParams(Section):
    section: ClassVar[str] = "parse"

    backend: Literal["trained", "segformer", "ground_truth"] = "trained"
    """trained: the smp net from train_parser (works on any crop, scored against SynthHeads
    labels); segformer: your pretrained checkpoint dir; ground_truth: the crops' own label maps."""

    segformer_path: str | None = None
    """Local Hugging Face Segformer face-parsing checkpoint dir (config.json with id2label)."""

    segformer_label_map: dict[str, str] = {}
    """Extra checkpoint-label -> CelebAMask-HQ-class names, for labels the built-in aliases miss."""

    min_foreground: float = Field(0.05, ge=0.0, lt=1.0)
    """A network mask with less non-background than this is rejected no_face: a head crop
    from curate is ~40-70% head, so 5% means the parser found no face."""

    batch_size: int = Field(16, ge=1)
    """Crops per forward pass."""

    device: str = "auto"
    """auto = CUDA if present, else CPU."""

    workers: int = Field(1, ge=1)
    """Processes the batches are spread over (fairsplat/parallel; or Dask workers, params ``workers``).
    1 = in the stage's process on its own torch threads, as before: one network's inference already uses
    both cores of the default machine, so more processes only pay off on a bigger one or a cluster.
    Outputs do not depend on it."""

    @model_validator(mode="after")
    def _check(self) -> ParseParams:
        if self.backend == "segformer" and not self.segformer_path:
            raise ValueError("segformer-path: required when backend is segformer")
        return self
