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

import numpy as np
import torch

from fairsplat.parse.base import Backend, ModelBackend, Options, Parsed
from fairsplat.io.images import load_labels
from fairsplat.parse.segformer import SegformerBackend

__all__ = ["BACKENDS", "Backend", "GroundTruthBackend", "ModelBackend", "Options", "Parsed", "TrainedBackend"]


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


BACKENDS: dict[str, type[Backend]] = {
    "trained": TrainedBackend,
    "segformer": SegformerBackend,
    "ground_truth": GroundTruthBackend,
}
