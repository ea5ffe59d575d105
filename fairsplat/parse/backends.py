"""Parser backends behind one interface, registered in ``BACKENDS`` (a plain dict).

Every backend turns a batch of curated crops into CelebAMask-HQ label maps::

    backend = BACKENDS[name](options)
    results = backend.parse(items, images)   # one Parsed per crop, same order

``trained``       the smp network from stage ``train_parser`` (models/parser)
``segformer``     a user's pretrained Segformer face-parsing checkpoint (segformer.py)
``ground_truth``  the label maps that came with the crops (SynthHeads, CelebAMask-HQ)

A crop the backend cannot label comes back as ``Parsed(None, reason, detail)``,
never as an exception, so the stage can record it: ``no_mask`` (no label map
for ``ground_truth``), ``mask_size_mismatch``, ``bad_labels``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fairsplat.parse.data import Item, load_labels


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


class TrainedBackend(ModelBackend):
    """The network trained by stage ``train_parser``; its channels are our ids already."""

    name = "trained"

    def __init__(self, opts: Options):
        super().__init__(opts)
        from fairsplat.labels import CELEBAMASK_CLASSES
        from fairsplat.models.parser import load_parser

        if opts.model_dir is None:
            raise ValueError("trained backend: no model directory given")
        self.model = load_parser(opts.model_dir, opts.device)
        cfg = self.model.cfg
        if tuple(cfg.labels) != CELEBAMASK_CLASSES:
            raise ValueError(f"{opts.model_dir}: model labels differ from CelebAMask-HQ's 19 classes")
        self.lut = np.arange(len(cfg.labels), dtype=np.uint8)
        self.input_size = (cfg.size, cfg.size)

    @torch.no_grad()
    def logits(self, x):
        return self.model.infer(x)


class GroundTruthBackend(Backend):
    """The label map that came with each crop (curate's ``labels/*.png``)."""

    name = "ground_truth"

    def parse(self, items, images):
        out = []
        for it, img in zip(items, images, strict=True):
            if it.mask is None:
                out.append(Parsed(None, "no_mask", "the source has no label map for this crop"))
                continue
            if not it.mask.exists():
                out.append(Parsed(None, "no_mask", f"label map {it.mask.name} is missing"))
                continue
            try:
                lab = load_labels(it.mask)
            except (OSError, ValueError) as err:
                out.append(Parsed(None, "bad_labels", str(err)[:200]))
                continue
            if lab.shape != img.shape[:2]:
                out.append(Parsed(None, "mask_size_mismatch", f"labels {lab.shape} vs crop {img.shape[:2]}"))
                continue
            out.append(Parsed(lab))
        return out


from fairsplat.parse.segformer import SegformerBackend  # noqa: E402  (it subclasses ModelBackend)

BACKENDS: dict[str, type[Backend]] = {
    "trained": TrainedBackend,
    "segformer": SegformerBackend,
    "ground_truth": GroundTruthBackend,
}
