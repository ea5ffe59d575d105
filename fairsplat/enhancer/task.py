"""The enhancer as a task of the shared training skeleton (``fairsplat.train.loop``).

``build`` makes the model (tiny random init, or SD-Turbo with LoRA: the
caller's ``make_model``) and a loader of step-indexed micro-batches
(:class:`~fairsplat.enhancer.data.StepPairs`); ``train_step`` enhances the
(augmented) degraded inputs and returns seed 001's weighted loss with every
term; ``evaluate`` watches PSNR on fixed pairs of the watch split (never
selected on).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter

import torch
from torch import Tensor

from fairsplat.enhancer.config import EnhancerTrainConfig
from fairsplat.enhancer.data import Pairs, StepPairs, batch_of, on_the_fly_augmentations
from fairsplat.enhancer.losses import perceptual
from fairsplat.metrics.image import psnr
from fairsplat.metrics.lpips import lpips_model
from fairsplat.train.losses import ssim_loss


class EnhancerTask:
    def __init__(self, cfg: EnhancerTrainConfig, pairs: Pairs, train_rows: Sequence[int], watch_rows: Sequence[int],
                 make_model: Callable[[], torch.nn.Module], use_perceptual: bool = True) -> None:  # fmt: skip
        """``use_perceptual``: False when the trunk's weights are absent (LPIPS and Gram dropped, said in metrics)."""
        self.cfg, self.pairs, self.train_rows, self.watch_rows = cfg, pairs, list(train_rows), list(watch_rows)
        self.make_model = make_model
        w = cfg.loss
        self.use_lpips = use_perceptual and w.lpips > 0
        self.use_gram = use_perceptual and w.gram > 0

    def build(self, accelerator):
        if self.use_lpips or self.use_gram:  # load the trunk now, without drawing from the global RNG: LPIPS
            with torch.random.fork_rng(devices=[]):  # builds its net at random init before loading weights, so
                lpips_model(self.cfg.loss.net, accelerator.device)  # a first load mid-step would shift dropout
        model = self.make_model()
        micro = self.cfg.steps * accelerator.gradient_accumulation_steps * accelerator.num_processes
        augs = on_the_fly_augmentations(self.cfg)
        data = StepPairs(self.pairs, self.train_rows, self.cfg.batch, micro, self.cfg.seed, augs, self.cfg.patch)
        # batch_size=1 + "take the one item": a batch sampler exists, so a resume can skip batches
        loader = torch.utils.data.DataLoader(data, batch_size=1, shuffle=False, collate_fn=itemgetter(0))
        self.device = accelerator.device
        return model, loader, None

    def train_step(self, model, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        x, y = batch["degraded"].to(self.device), batch["clean"].to(self.device)
        out = model(x).float()
        return self.losses(out, y)

    def losses(self, out: Tensor, target: Tensor) -> dict[str, Tensor]:
        w = self.cfg.loss
        terms = {"l1": (out - target).abs().mean()}
        if w.ssim > 0:
            terms["ssim"] = ssim_loss(out, target)
        if self.use_lpips or self.use_gram:
            lp, gram = perceptual(out, target, w.net, gram=self.use_gram)
            if self.use_lpips:
                terms["lpips"] = lp
            if gram is not None:
                terms["gram"] = gram
        total = sum(getattr(w, k) * v for k, v in terms.items())
        return {"loss": total, **terms}

    @torch.no_grad()
    def evaluate(self, model) -> dict[str, float | None]:
        """Mean PSNR of the enhanced watch pairs (and of their inputs): a learning curve, not a result."""
        if not self.watch_rows:
            return {}
        b = batch_of(self.pairs, self.watch_rows)
        x, y = b["degraded"].to(self.device), b["clean"].to(self.device)
        out = torch.cat([model(x[i : i + self.cfg.eval_batch]) for i in range(0, len(x), self.cfg.eval_batch)])
        return {"watch_psnr": float(psnr(out.float().clamp(0, 1), y).mean()), "watch_psnr_input": float(psnr(x, y).mean())}


def watch_rows(pairs: Pairs, split: str | None, n: int) -> list[int]:
    """The first ``n`` pairs of ``split`` in manifest order (a fixed set)."""
    return [] if split is None else pairs.rows([split])[:n]
