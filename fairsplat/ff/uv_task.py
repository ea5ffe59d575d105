"""Seed 003's generator as a task of the shared skeleton: one phase of the two-phase schedule.

Loss (SpatialAvatar-0 §2.3), weights from params (``UVLossWeights``):

    λ1 L1 + λms (1 - (MS-)SSIM) + λlp LPIPS + λmask mask + λbox L1_box
      + λps TV_uv(offset) + λss TV_uv(log-scale) + λδ |δ|² + λjac log(1 + ĥ_x + ĥ_s) [+ λsp ||θ - θ₁||²]

- L1 is masked to the foreground (as the LAM-style path), SSIM at the crop
  size (MS-SSIM when asked and the crop holds its scales), LPIPS with the real
  weights only, the mask term as the LAM path's.
- The face box is the box of the target's 68 FLAME landmarks projected by its
  camera (10 % margin): an L1 over that box, so the face gets its own weight.
- The UV total variation is over neighbouring valid texels of the *predicted*
  local offset (over its bound) and log-scale residual: the binding's own
  layout varies by construction and is not penalised.
- ĥ_x, ĥ_s: mean over texels of one Hutchinson projection of ||∂g/∂γ||² for
  the position and scale heads (``hutchinson_sq_norm``); colour and opacity stay
  view-dependent.
- Phase 2's L2-SP anchor: the squared distance of every trainable weight to
  its phase-1 value (``anchor`` weight; 0 in row B).
"""

from __future__ import annotations

from dataclasses import replace
from operator import itemgetter

import torch
from torch import Tensor

from fairsplat.avatar.binding import AvatarBinding
from fairsplat.ff.config import PhaseConfig, UVTrainConfig
from fairsplat.ff.data import Frames
from fairsplat.ff.render import render_targets
from fairsplat.ff.task import FFTask, image_terms, weighted
from fairsplat.ff.uv_context import uv_context
from fairsplat.ff.uv_data import MultiViewBatches, TemporalBatches
from fairsplat.metrics.image import ms_ssim, ms_ssim_scales
from fairsplat.models.uv.generator import UVGenerator
from fairsplat.models.uv.ops import hutchinson_sq_norm, scatter_uv
from fairsplat.train import losses as L


def face_box(binding: AvatarBinding, batch: dict[str, Tensor], size: int, margin: float = 0.1) -> Tensor:
    """[B, 1, S, S]: 1 inside the box of the target's projected FLAME landmarks (grown by ``margin``)."""
    with torch.no_grad():
        lm = binding.layer(shape=batch["shape"], expr=batch["target_expr"], pose=batch["target_pose"],
                           transl=batch["target_transl"]).landmarks  # [B, 68, 3]  # fmt: skip
        v = batch["target_viewmat"]
        cam = torch.einsum("bij,bnj->bni", v[:, :3, :3], lm) + v[:, None, :3, 3]
        xy = torch.einsum("bij,bnj->bni", batch["target_K"], cam)
        xy = xy[..., :2] / xy[..., 2:].clamp_min(1e-6)  # [B, 68, 2]
        lo, hi = xy.min(1).values, xy.max(1).values
        pad = (hi - lo) * margin
        lo, hi = lo - pad, hi + pad
        px = torch.arange(size, device=xy.device, dtype=xy.dtype) + 0.5
        inx = (px[None] >= lo[:, :1]) & (px[None] <= hi[:, :1])  # [B, S]
        iny = (px[None] >= lo[:, 1:]) & (px[None] <= hi[:, 1:])
        return (iny[:, :, None] & inx[:, None, :]).to(xy)[:, None]


def uv_tv(values: Tensor, texel: Tensor, resolution: int) -> Tensor:  # [T, G, C] -> scalar
    """Mean |difference| over horizontally and vertically neighbouring valid texels."""
    grid = scatter_uv(values, texel, resolution)  # [T, C, R, R]
    valid = scatter_uv(torch.ones_like(values[:1, :, :1]), texel, resolution)  # [1, 1, R, R]
    dx = (grid[..., 1:] - grid[..., :-1]).abs() * (valid[..., 1:] * valid[..., :-1])
    dy = (grid[..., 1:, :] - grid[..., :-1, :]).abs() * (valid[..., 1:, :] * valid[..., :-1, :])
    n = (valid[..., 1:] * valid[..., :-1]).sum() + (valid[..., 1:, :] * valid[..., :-1, :]).sum()
    return (dx.sum() + dy.sum()) / (n * values.shape[0] * values.shape[2]).clamp_min(1)


def jacobian_penalty(out, max_offset: float, generator: torch.Generator | None = None) -> Tensor:
    """log(1 + ĥ_x + ĥ_s), one Hutchinson projection each against the broadcast γ."""
    hx = hutchinson_sq_norm(out.attrs.offsets / max_offset, out.gamma, generator).mean()
    hs = hutchinson_sq_norm(out.attrs.log_scales, out.gamma, generator).mean()
    return torch.log1p(hx + hs)


class UVTask(FFTask):
    """One phase: ``phase.name`` picks the sampler; ``init`` (phase 1's weights) starts phase 2 and anchors it."""

    def __init__(self, cfg, frames: Frames, subjects, binding: AvatarBinding, phase: PhaseConfig, uv: UVTrainConfig,
                 watch=None, use_lpips: bool = True, init: dict[str, Tensor] | None = None) -> None:  # fmt: skip
        super().__init__(replace(cfg, steps=phase.steps, lr=phase.lr), frames, subjects, binding, watch, use_lpips)
        self.phase, self.uv, self.init = phase, uv, init
        self.use_lpips = use_lpips and uv.loss.lpips > 0
        self.hutch = torch.Generator().manual_seed(cfg.seed + 19)

    def build(self, accelerator):
        model = UVGenerator(self.cfg.model)
        self.anchor = None
        if self.init is not None:
            model.load_state_dict(self.init)
            if self.phase.anchor > 0:
                self.anchor = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        micro = self.cfg.steps * accelerator.gradient_accumulation_steps * accelerator.num_processes
        c = self.cfg
        if self.phase.name == "phase1":
            data = TemporalBatches(self.frames, self.subjects, c.batch, c.max_k, micro, c.seed)
        else:
            data = MultiViewBatches(self.frames, self.subjects, c.batch, c.max_k, micro, c.seed + 1, self.phase.mix)
        loader = torch.utils.data.DataLoader(data, batch_size=1, shuffle=False, collate_fn=itemgetter(0))
        self.device = accelerator.device
        self.binding.to(self.device)
        if self.anchor is not None:
            self.anchor = {n: p.to(self.device) for n, p in self.anchor.items()}
        return model, loader, None

    def train_step(self, model, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        net = getattr(model, "module", model)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        ctx = uv_context(self.binding, self.frames, batch)
        w = self.uv.loss
        out = net.decode(net.uv_features(batch["sources"], ctx), ctx, grad_gamma=w.jac > 0)
        rgb, alpha, _ = render_targets(self.binding, out.attrs, batch, self.cfg.size, self.cfg.backend)
        target = batch["target"]
        ssim_term = 1.0 - ms_ssim(rgb, target).mean() if w.ms_ssim and ms_ssim_scales(*rgb.shape[2:]) > 1 else None
        r, texel = self.cfg.model.binding.resolution, ctx["texel"]
        mo = self.cfg.model.heads.max_offset
        box = face_box(self.binding, batch, self.cfg.size)
        terms = {
            **image_terms(rgb, alpha, batch, ssim_term), "box": L.masked_l1(rgb, target, box),
            "tv_position": uv_tv(out.attrs.offsets / mo, texel, r), "tv_scale": uv_tv(out.attrs.log_scales, texel, r),
        }  # fmt: skip
        if out.residual is not None:
            terms["residual"] = out.residual.pow(2).mean()
        if w.jac > 0:
            terms["jac"] = jacobian_penalty(out, mo, self.hutch)
        res = weighted(terms, w, rgb, target, self.use_lpips, self.cfg.loss.lpips_net)
        if self.anchor is not None:
            res["anchor"] = sum((p - self.anchor[n]).pow(2).sum() for n, p in net.named_parameters() if n in self.anchor)
            res["loss"] = res["loss"] + self.phase.anchor * res["anchor"]
        return res
