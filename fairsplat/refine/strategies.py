"""Refinement tricks as strategy objects (gsplat's ``strategy/`` pattern): the loop calls hooks, never branches.

Seed 003's three anti-spike parts, and seed 000's adaptive test-time
optimisation, each a small object with the hooks it needs:

==================  ==============  ==========================================================
strategy            hook            what it does
==================  ==============  ==========================================================
``scale-freeze``    post_backward   drops the log-scale gradient before ``until`` (Adam then
                                    skips the tensor: scales are bit-identical until then)
``log-scale-clamp`` post_step       from ``start`` on, clamps every log-scale into
                                    [base + min, base + max], base = that Gaussian's in-plane
                                    log-scale in the binding (metres for points, triangle
                                    units for the UV grid: one rule for both)
``aspect``          pre_backward    from ``start`` on, adds weight x L_aspect of this
                                    iteration's camera and of ``jitter_views`` cameras
                                    turned about the head by up to ``jitter_deg``
                                    (``fairsplat.refine.aspect``)
``adaptive-tto``    post_step       at the planned end, extends the budget by ``extend`` while
                                    the watched images' loss fell by more than ``min_gain``
                                    (relative) over the last ``extend`` iterations, up to ``cap``
==================  ==============  ==========================================================

Hooks, in the order the loop calls them each iteration: ``pre_backward(ctx)``
(after the render; returns extra loss terms, already weighted),
``post_backward(ctx)`` (gradients exist, the optimiser has not stepped),
``post_step(ctx)`` (after the optimiser step). ``initialize(ctx)`` runs once
before the first iteration and ``summary()`` reports what the strategy did.
An ablation is a shorter ``refine.strategies`` list in params; a new trick is
a new entry in :data:`STRATEGIES`, and the loop does not change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from fairsplat.refine.aspect import aspect_penalty, log_aspect, screen_log_aspect, turn_about
from fairsplat.refine.config import AspectConfig, ClampConfig, RefineConfig, TTOConfig


@dataclass
class StepContext:
    """What the loop shares with the strategies; strategies may raise ``budget``."""

    params: dict[str, torch.nn.Parameter]  # offsets, quats, log_scales, colors (logit), opacities (logit)
    optimizer: torch.optim.Optimizer
    size: int
    budget: int  # iterations planned
    watch_loss: Callable[[], float] | None = None  # loss on the watched images (no gradient); None = no watch set
    step: int = 0  # 0-based iteration being run
    means: Tensor | None = None  # [G, 3] this iteration's posed Gaussians, world
    quats: Tensor | None = None  # [G, 4]
    scales: Tensor | None = None  # [G, 3]
    opacities: Tensor | None = None  # [G]
    viewmat: Tensor | None = None  # [1, 4, 4] this iteration's camera
    K: Tensor | None = None  # [1, 3, 3]
    meta: dict[str, Any] | None = None  # the render's rasteriser meta (conics [1, G, 3], radii [1, G, 2], ...)
    info: dict[str, Any] = field(default_factory=dict)


class Strategy:
    """No-op hooks; subclasses override what they need."""

    name = ""

    def initialize(self, ctx: StepContext) -> None:
        pass

    def pre_backward(self, ctx: StepContext) -> dict[str, Tensor]:
        return {}

    def post_backward(self, ctx: StepContext) -> None:
        pass

    def post_step(self, ctx: StepContext) -> None:
        pass

    def summary(self) -> dict[str, Any]:
        return {}


class ScaleFreeze(Strategy):
    name = "scale-freeze"

    def __init__(self, until: int) -> None:
        self.until = until

    def post_backward(self, ctx: StepContext) -> None:
        if ctx.step < self.until:
            ctx.params["log_scales"].grad = None  # Adam skips a parameter without a gradient


class LogScaleClamp(Strategy):
    name = "log-scale-clamp"

    def __init__(self, base_log_scales: Tensor, cfg: ClampConfig) -> None:  # base [G, 3]
        inplane = base_log_scales.max(dim=-1, keepdim=True).values  # [G, 1]
        self.lo, self.hi, self.start = inplane + cfg.min, inplane + cfg.max, cfg.start
        self.clamped = 0

    def post_step(self, ctx: StepContext) -> None:
        if ctx.step < self.start:
            return
        with torch.no_grad():
            s = ctx.params["log_scales"]
            lo, hi = self.lo.to(s), self.hi.to(s)
            self.clamped += int(((s < lo) | (s > hi)).sum())
            s.copy_(torch.maximum(torch.minimum(s, hi), lo))

    def summary(self) -> dict[str, Any]:
        return {"clamped": self.clamped}


class AspectPenalty(Strategy):
    """Seed 003's L_aspect on this iteration's camera, plus ``jitter_views`` turned copies of it.

    Why the turned copies: the hinge stops pushing at the bound, so on the
    cameras it sees Gaussians settle just under it, and a held-out frame whose
    head is turned a few degrees tips them over (bench/README.md
    "Refinement"). The copies cost a projection each, no render: the penalty
    then holds over a neighbourhood of poses, not at the training ones only.
    """

    name = "aspect"

    def __init__(self, cfg: AspectConfig, seed: int = 0) -> None:
        self.cfg = cfg
        self.gen = torch.Generator().manual_seed(seed)  # the turns: deterministic per subject and seed

    def pre_backward(self, ctx: StepContext) -> dict[str, Tensor]:
        if ctx.step < self.cfg.start or self.cfg.weight == 0:
            return {}
        meta = ctx.meta or {}
        if meta.get("conics") is not None and meta["conics"].requires_grad:  # this render's own projection
            log_ratio, visible = log_aspect(meta["conics"]), (meta["radii"] > 0).any(-1)  # [1, G]
        else:  # a backend whose meta is not differentiable: project once more
            log_ratio, visible = screen_log_aspect(ctx.means, ctx.quats, ctx.scales, ctx.opacities, ctx.viewmat, ctx.K,
                                                   ctx.size)  # fmt: skip
        if self.cfg.jitter_views > 0:
            j = self.cfg.jitter_views
            yaw, pitch = ((torch.rand(2, j, generator=self.gen) * 2 - 1) * self.cfg.jitter_deg).to(ctx.means)  # [J] x2
            turned = turn_about(ctx.viewmat[0], ctx.means.detach().mean(0), yaw, pitch)  # [J, 4, 4]
            lr_j, vis_j = screen_log_aspect(ctx.means, ctx.quats, ctx.scales, ctx.opacities, turned,
                                            ctx.K.expand(j, 3, 3), ctx.size)  # [J, G] x2  # fmt: skip
            log_ratio, visible = torch.cat([log_ratio, lr_j]), torch.cat([visible, vis_j])  # [1 + J, G]
        return {"aspect": self.cfg.weight * aspect_penalty(log_ratio, visible, self.cfg.tau)}


class AdaptiveTTO(Strategy):
    """Seed 000's "extends refinement iterations", made concrete: extend while the watched loss still falls."""

    name = "adaptive-tto"

    def __init__(self, cfg: TTOConfig) -> None:
        self.cfg = cfg
        self.last: float | None = None
        self.checks: list[tuple[int, float]] = []  # (iterations done, watched loss)
        self.extensions = 0

    def _check(self, ctx: StepContext) -> float:
        loss = float(ctx.watch_loss())
        self.checks.append((ctx.step + 1, loss))
        return loss

    def post_step(self, ctx: StepContext) -> None:
        if ctx.watch_loss is None:
            return
        done = ctx.step + 1
        if done == ctx.budget - self.cfg.extend:
            self.last = self._check(ctx)
        elif done == ctx.budget:
            now = self._check(ctx)
            gained = self.last is not None and self.last > 0 and (self.last - now) / self.last > self.cfg.min_gain
            if gained and ctx.budget < self.cfg.cap:
                ctx.budget = min(self.cfg.cap, ctx.budget + self.cfg.extend)
                self.extensions += 1
            self.last = now

    def summary(self) -> dict[str, Any]:
        return {"extensions": self.extensions, "watch_checks": [[n, round(v, 6)] for n, v in self.checks]}


STRATEGIES: dict[str, Callable[[RefineConfig, Tensor], Strategy]] = {
    "scale-freeze": lambda cfg, base: ScaleFreeze(cfg.scale_freeze.until),
    "log-scale-clamp": lambda cfg, base: LogScaleClamp(base, cfg.clamp),
    "aspect": lambda cfg, base: AspectPenalty(cfg.aspect, cfg.seed),
    "adaptive-tto": lambda cfg, base: AdaptiveTTO(cfg.tto),
}
"""name -> (config, the binding's base log-scales [G, 3]) -> a fresh strategy (one per subject: they keep state)."""


def build_strategies(cfg: RefineConfig, base_log_scales: Tensor) -> list[Strategy]:
    return [STRATEGIES[name](cfg, base_log_scales) for name in cfg.strategies]
