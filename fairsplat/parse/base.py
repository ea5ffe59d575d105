"""The parser backends' interface: what a backend returns and the shared network-backend logic.

Apart from ``backends.py`` (the registry) so that ``segformer.py`` can subclass
``ModelBackend`` without importing the registry that lists it: no import cycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fairsplat.parse.data import Item


@dataclass
class Parsed:
    """One crop's result: ``labels`` [H, W] uint8 ids, or None with a reject reason."""

    labels: np.ndarray | None
    reason: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Options:
    """What the backends may need; each reads only its own fields."""

    model_dir: Path | None = None
    """trained: directory with model.safetensors + config.json."""
    segformer_path: Path | None = None
    """segformer: a local Hugging Face checkpoint directory."""
    label_map: Mapping[str, str] = field(default_factory=dict)
    """segformer: extra label-name -> CelebAMask-HQ-name entries for unusual checkpoints."""
    batch_size: int = 16
    device: str = "cpu"


class Backend:
    name = "base"

    def __init__(self, opts: Options):
        self.opts = opts

    def parse(self, items: Sequence[Item], images: Sequence[np.ndarray]) -> list[Parsed]:
        raise NotImplementedError


class ModelBackend(Backend):
    """Shared by the network backends: batching, resizing, argmax, id mapping.

    Subclasses set ``self.lut`` ([C] uint8: output channel -> our id),
    ``self.input_size`` (H, W) and implement ``logits``.
    """

    lut: np.ndarray
    input_size: tuple[int, int]

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:  # [B, 3, h, w] in [0, 1] -> [B, C, h', w']
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:  # B x [H, W, 3] uint8 -> B x [H, W] uint8
        out: list[np.ndarray] = []
        bs = max(1, self.opts.batch_size)
        for i in range(0, len(images), bs):
            chunk = images[i : i + bs]
            x = torch.stack([torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1) for im in _same(chunk)])
            x = x.float().div_(255.0).to(self.opts.device)  # [B, 3, H, W]
            H, W = x.shape[-2:]
            if (H, W) != self.input_size:
                x = F.interpolate(x, size=self.input_size, mode="bilinear", antialias=True, align_corners=False)
            lg = self.logits(x).float()  # [B, C, h', w']
            if lg.shape[-2:] != (H, W):
                lg = F.interpolate(lg, size=(H, W), mode="bilinear", align_corners=False)
            ch = lg.argmax(1).cpu().numpy()  # [B, H, W] channel index
            out.extend(self.lut[ch[b]] for b in range(len(ch)))
        return out

    def parse(self, items: Sequence[Item], images: Sequence[np.ndarray]) -> list[Parsed]:
        return [Parsed(lab) for lab in self.predict(images)]


def _same(chunk: Sequence[np.ndarray]) -> Sequence[np.ndarray]:
    shapes = {im.shape for im in chunk}
    if len(shapes) != 1:
        raise ValueError(f"a batch must hold crops of one size, got {sorted(shapes)} (curate writes one size)")
    return chunk


def resolve_device(name: str) -> torch.device:
    """Inference device for stage ``parse`` (its ``device`` key): auto = CUDA if present, else CPU.
    Training does not use it: the accelerator places the model."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
