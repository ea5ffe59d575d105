"""The per-subject refinement loop (seed 003 §2.5): optimise one avatar's own tensors on its training images.

Start: the generator's avatar at the reference frame. Optimised: the
avatar's per-Gaussian tensors (offset, rotation, log-scale, colour and
opacity as logits); frozen: the FLAME binding, the subject's shape and the
Gaussian count (no densification, no pruning). Each iteration renders one
training image (a random order per pass) at its tracked FLAME parameters and
camera, composites **one shared random background colour** behind both the
render and the target (the target through its exact matte), and takes
λ1·L1 + λssim·(1 − SSIM) over the crop; no LPIPS (seed 003: speckle at this
budget). Strategies (``fairsplat.refine.strategies``) add the anti-spike
parts and adaptive TTO through hooks.

Why not the shared skeleton (``fairsplat.train.loop``): that loop trains one
network over a dataset, and what it owns does not fit here: accelerate
(DDP, autocast, accumulation) for a model of ~30K raw numbers of one
subject; one AdamW over ``model.parameters()`` with one schedule sized to a
fixed loader, where refinement needs 3DGS-style step sizes per attribute and
a budget that a strategy raises mid-run (adaptive TTO); step checkpoints,
where a subject costs seconds and the stage resumes per subject; and a NaN
that stops the whole run, where here it stops one subject and the stage goes
on. Fitting it would take three new skeleton features (param groups, a
mutable length, a hook between backward and the optimiser step) for one
user, so the loop is its own ~60 lines, and everything it shares with the
trainers is a library call: losses (``fairsplat.train.losses``), the avatar
and its renderer (``fairsplat.avatar``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from fairsplat.avatar.avatar import Avatar
from fairsplat.avatar.render import render_batch
from fairsplat.refine.config import RefineConfig
from fairsplat.refine.strategies import StepContext, Strategy
from fairsplat.splat.raster import rasterization
from fairsplat.train import losses as L

GREY = 0.5
"""Curate's background level: the crops (and the evaluation renders) are over mid-grey."""


class RefineDiverged(FloatingPointError):
    """A loss term or a parameter became NaN/inf; the message names the subject and the iteration."""


@dataclass
class Views:
    """Images of one subject with their tracks, row-aligned (what ``fairsplat.ff.data.gather`` gives)."""

    images: Tensor  # [T, 3, S, S] in [0, 1], over mid-grey
    alpha: Tensor  # [T, 1, S, S] the crops' mattes in [0, 1]
    expr: Tensor  # [T, E]
    pose: Tensor  # [T, 15]
    transl: Tensor  # [T, 3]
    viewmat: Tensor  # [T, 4, 4]
    K: Tensor  # [T, 3, 3]

    def __len__(self) -> int:
        return self.images.shape[0]

    @classmethod
    def from_batch(cls, batch: dict[str, Tensor]) -> Views:
        return cls(batch["target"], batch["alpha"], batch["target_expr"], batch["target_pose"], batch["target_transl"],
                   batch["target_viewmat"], batch["target_K"])  # fmt: skip

    def take(self, idx: list[int]) -> Views:
        return Views(*(getattr(self, f)[idx] for f in ("images", "alpha", "expr", "pose", "transl", "viewmat", "K")))


@dataclass
class RefineResult:
    avatar: Avatar  # detached, CPU
    iterations: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)  # mean terms per ``log_every`` iterations
    strategies: dict[str, dict[str, Any]] = field(default_factory=dict)  # each strategy's summary()


def _logit(x: Tensor, eps: float = 1e-4) -> Tensor:
    x = x.clamp(eps, 1 - eps)
    return torch.log(x) - torch.log1p(-x)


def to_params(avatar: Avatar) -> dict[str, torch.nn.Parameter]:
    """The avatar's tensors as raw, unconstrained parameters (colours and opacities as logits)."""
    raw = {"offsets": avatar.offsets, "quats": avatar.quats, "log_scales": avatar.log_scales,
           "colors": _logit(avatar.colors), "opacities": _logit(avatar.opacities)}  # fmt: skip
    return {k: torch.nn.Parameter(v.detach().clone().float()) for k, v in raw.items()}


def to_avatar(params: dict[str, Tensor], like: Avatar) -> Avatar:
    """Parameters -> an Avatar on ``like``'s binding and shape (differentiable)."""
    return Avatar(like.binding, params["offsets"], params["quats"], params["log_scales"], torch.sigmoid(params["colors"]),
                  torch.sigmoid(params["opacities"]), like.shape)  # fmt: skip


def recomposite(images: Tensor, alpha: Tensor, background: Tensor) -> Tensor:  # [B, 3, S, S], [B, 1, S, S], [3]
    """Crops over mid-grey -> the same crops over ``background``: x + (1 - alpha)(bg - grey)."""
    return images + (1.0 - alpha) * (background.view(1, 3, 1, 1) - GREY)


def render_views(avatar: Avatar, views: Views, size: int, background: Tensor, backend: str = "auto"):
    """[T, 3, S, S] colour over ``background`` [3], [T, 1, S, S] alpha, and the posed Gaussians (means, quats, scales)."""
    means, quats, scales = avatar.posed(views.expr, views.pose, views.transl)
    t = len(views)
    rgb, alpha = render_batch(means, quats, scales, avatar.colors.expand(t, -1, -1), avatar.opacities.expand(t, -1),
                              views.viewmat, views.K, size, background, backend)  # fmt: skip
    return rgb.permute(0, 3, 1, 2), alpha[:, None], (means, quats, scales)


def render_one(avatar: Avatar, view: Views, size: int, background: Tensor, backend: str = "auto"):
    """One training image: [1, 3, S, S] colour, the posed Gaussians, and the rasteriser's meta.

    ``rasterization`` directly (``render_batch`` drops the meta): the aspect
    penalty reuses this render's own projected conics and radii instead of
    projecting a second time (~15 % of an iteration at 128 px)."""
    means, quats, scales = avatar.posed(view.expr, view.pose, view.transl)
    rgb, _, meta = rasterization(means[0], F.normalize(quats[0], dim=-1), scales[0], avatar.opacities, avatar.colors,
                                 view.viewmat, view.K, size, size, backgrounds=background.view(1, 3), backend=backend)  # fmt: skip
    return rgb.permute(0, 3, 1, 2), (means[0], quats[0], scales[0]), meta


def photometric(pred: Tensor, target: Tensor, cfg: RefineConfig) -> dict[str, Tensor]:
    return {"l1": cfg.l1 * (pred - target).abs().mean(), "ssim": cfg.ssim * L.ssim_loss(pred, target)}


def _check_finite(values: dict[str, Tensor], what: str, subject: str, iteration: int) -> None:
    for key, v in values.items():
        if not bool(torch.isfinite(v.detach()).all()):
            raise RefineDiverged(f"{subject}: {what} {key!r} is not finite at iteration {iteration}; subject stopped")


def refine(
    init: Avatar,
    train: Views,
    cfg: RefineConfig,
    strategies: list[Strategy],
    watch: Views | None = None,
    seed: int = 0,
    subject: str = "subject",
    log_every: int = 50,
) -> RefineResult:
    """Refine ``init`` on ``train`` for ``cfg.iterations`` (or what adaptive TTO makes of it)."""
    assert len(train) > 0, "refine: no training images"
    size = train.images.shape[-1]
    params = to_params(init)
    lr = cfg.lr
    groups = [{"params": [params[k]], "lr": getattr(lr, k), "name": k} for k in params]
    opt = torch.optim.Adam(groups, lr=lr.colors, eps=1e-15)  # 3DGS's eps: tiny gradients still move
    gen = torch.Generator().manual_seed(seed)
    grey = torch.full((3,), GREY)

    @torch.no_grad()
    def watch_loss() -> float:
        rgb, _, _ = render_views(to_avatar(params, init), watch, size, grey, cfg.backend)
        return float(sum(photometric(rgb, watch.images, cfg).values()))

    ctx = StepContext(params, opt, size, cfg.iterations, watch_loss if watch is not None and len(watch) else None)
    for s in strategies:
        s.initialize(ctx)
    history, pending, order = [], {}, []
    t0 = time.perf_counter()
    while ctx.step < ctx.budget:
        if not order:
            order = torch.randperm(len(train), generator=gen).tolist()
        view = train.take([order.pop()])
        bg = torch.rand(3, generator=gen) if cfg.background == "random" else grey
        avatar = to_avatar(params, init)
        pred, (ctx.means, ctx.quats, ctx.scales), meta = render_one(avatar, view, size, bg, cfg.backend)
        terms = photometric(pred, recomposite(view.images, view.alpha, bg), cfg)
        ctx.opacities, ctx.viewmat, ctx.K, ctx.meta = avatar.opacities, view.viewmat, view.K, meta
        for s in strategies:
            terms |= s.pre_backward(ctx)
        _check_finite(terms, "loss term", subject, ctx.step + 1)
        sum(terms.values()).backward()
        for s in strategies:
            s.post_backward(ctx)
        opt.step()
        opt.zero_grad(set_to_none=True)
        for s in strategies:
            s.post_step(ctx)
        _check_finite(params, "parameter", subject, ctx.step + 1)
        for k, v in terms.items():
            pending.setdefault(k, []).append(float(v.detach()))
        ctx.step += 1
        if ctx.step % log_every == 0 or ctx.step == ctx.budget:
            history.append({"iteration": ctx.step, **{k: sum(v) / len(v) for k, v in pending.items()}})
            pending = {}
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        final = to_avatar({k: v.detach() for k, v in params.items()}, init)
    return RefineResult(final, ctx.step, seconds, history, {s.name: s.summary() for s in strategies})
