"""The generator as a task of the shared training skeleton (``fairsplat.train.loop``).

``build`` makes the generator and a loader of step-indexed micro-batches
(``StepBatches``: batch ``i`` is a pure function of the seed and ``i``, so a
resumed run sees the data an uninterrupted one would have); ``train_step``
encodes the K sources, decodes the avatar, renders it at the target's tracked
FLAME parameters and camera, and returns the weighted loss with every term;
``evaluate`` watches held-out PSNR on the ``watch`` split (never selected on).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter

import torch
from torch import Tensor

from fairsplat.avatar.binding import AvatarBinding
from fairsplat.ff.config import FFConfig
from fairsplat.ff.data import Frames, StepBatches, gather
from fairsplat.ff.render import render_targets
from fairsplat.ff.uv_context import predict
from fairsplat.metrics.image import psnr
from fairsplat.models.feature_store import attach_store
from fairsplat.models.generator import Generator
from fairsplat.train import losses as L


class FFTask:
    def __init__(self, cfg: FFConfig, frames: Frames, subjects: Sequence[str], binding: AvatarBinding,
                 watch: tuple[list[list[int]], list[int]] | None = None, use_lpips: bool = True,
                 make_model: Callable[[], torch.nn.Module] | None = None) -> None:  # fmt: skip
        """``make_model``: the network to train (default: the generator; the baseline passes ConstantAvatar)."""
        self.cfg, self.frames, self.subjects, self.binding = cfg, frames, list(subjects), binding
        self.watch, self.use_lpips = watch, use_lpips and cfg.loss.lpips > 0
        self.make_model = make_model or (lambda: Generator(cfg.model))

    def build(self, accelerator):
        model = self.make_model()
        if self.cfg.feature_store:
            attach_store(model)  # a no-op unless the encoder's trunk is frozen
        micro = self.cfg.steps * accelerator.gradient_accumulation_steps * accelerator.num_processes
        data = StepBatches(self.frames, self.subjects, self.cfg.batch, self.cfg.max_k, micro, self.cfg.seed)
        # batch_size=1 + "take the one item": a batch sampler exists, so a resume can skip batches
        loader = torch.utils.data.DataLoader(data, batch_size=1, shuffle=False, collate_fn=itemgetter(0))
        self.device = accelerator.device
        self.binding.to(self.device)
        return model, loader, None

    def _points(self, shape: Tensor) -> Tensor:  # [B, S] -> [B, G, 3], no gradient: the queries are given
        with torch.no_grad():
            return self.binding.canonical(shape.to(self.device))

    def train_step(self, model, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        if self.cfg.flame == "neutral":  # seed 000 trained with neutral FLAME: mean shape, no expression
            batch["shape"], batch["target_expr"] = torch.zeros_like(batch["shape"]), torch.zeros_like(batch["target_expr"])
        attrs = model(batch["sources"], self._points(batch["shape"]))
        rgb, alpha, _ = render_targets(self.binding, attrs, batch, self.cfg.size, self.cfg.backend)
        return self.losses(rgb, alpha, batch, attrs.offsets)

    def losses(self, rgb: Tensor, alpha: Tensor, batch: dict[str, Tensor], offsets: Tensor) -> dict[str, Tensor]:
        terms = image_terms(rgb, alpha, batch)
        terms["offset"] = L.offset_regulariser(offsets.float(), self.cfg.model.heads.max_offset)
        return weighted(terms, self.cfg.loss, rgb, batch["target"], self.use_lpips, self.cfg.loss.lpips_net)

    @torch.no_grad()
    def evaluate(self, model) -> dict[str, float | None]:
        """Mean masked PSNR of the watch split's fixed pairs (K = 1): a learning curve, not a result."""
        if not self.watch:
            return {}
        sources, targets = self.watch
        batch = {k: v.to(self.device) for k, v in gather(self.frames, sources, targets).items()}
        # either arch (the UV one needs the sources' tracks); unwrapped: the UV network has two entry points
        attrs = predict(getattr(model, "module", model), self.binding, self.frames, batch, self._points(batch["shape"]))
        rgb, _, _ = render_targets(self.binding, attrs, batch, self.cfg.size, self.cfg.backend)
        return {"watch_psnr_masked": float(psnr(rgb.clamp(0, 1), batch["target"], batch["alpha"]).mean())}


def image_terms(rgb: Tensor, alpha: Tensor, batch: dict[str, Tensor], ssim: Tensor | None = None) -> dict[str, Tensor]:
    """The photometric terms both architectures share: masked L1, SSIM (``ssim`` when the caller has its own,
    e.g. MS-SSIM) and mask coverage."""
    target, mask = batch["target"], batch["alpha"]
    return {"l1": L.masked_l1(rgb, target, mask), "ssim": L.ssim_loss(rgb, target) if ssim is None else ssim,
            "mask": L.mask_coverage(alpha, mask)}  # fmt: skip


def weighted(terms: dict[str, Tensor], weights, rgb: Tensor, target: Tensor, use_lpips: bool, lpips_net: str) -> dict[str, Tensor]:
    """``terms`` + LPIPS (when on; real weights only) and their sum weighted by ``weights.<term>``, as ``loss``."""
    if use_lpips:
        terms["lpips"] = L.lpips_loss(rgb, target, lpips_net)
    total = sum(getattr(weights, k) * v for k, v in terms.items())
    return {"loss": total, **terms}


def watch_pairs(frames: Frames, split: str, per_subject: int = 2) -> tuple[list[list[int]], list[int]] | None:
    """A fixed set of (first crop -> another crop) pairs of ``split`` for the learning curve."""
    sources, targets = [], []
    for rows in frames.by_subject([split]).values():
        for t in rows[1 : 1 + per_subject]:
            sources.append([rows[0]])
            targets.append(t)
    return (sources, targets) if targets else None
