"""Params of stage ``refine``: seed 003's per-subject, layout-preserving refinement (§2.5).

Defaults are the CPU run: 2 held-out subjects per type, 400 iterations each
(+ up to 200 from adaptive TTO), the anti-spike schedule scaled with the
budget (seed 003: freeze and penalty start at 500 of 10K, 5 %; here 100 of
400, so that both phases exist in a short run). ``params/gpu.yaml`` has the
seed's 10K iterations, 500-iteration phases and every held-out subject.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from fairsplat.config import Section
from fairsplat.sections.trainer import heldout_splits


class LearningRateParams(Section):
    """Adam step sizes per attribute. 3DGS (Kerbl et al. 2023): position 1.6e-4 x scene extent, rotation 1e-3,
    log-scale 5e-3, opacity 5e-2, colour 2.5e-3 on SH DC; colour here is a logit of RGB and the CPU budget is
    short, so 5e-2."""

    offsets: float = Field(1e-4, gt=0.0)
    """Canonical displacement per step: metres on the points binding (1e-4 = 0.1 mm; 3DGS's 1.6e-4 x a ~0.6 m
    extent); triangle units on the UV grid."""
    quats: float = Field(1e-2, gt=0.0)
    """10x 3DGS's 1e-3, as log-scales: at 3DGS's rates the aspect penalty could not move shapes in a 400-iteration
    budget (spike share stuck at 14-16 % for any weight); 20x (the first cut) gave 0.16 dB less held-out gain on
    the validation subjects once the penalty saw turned cameras (bench/README.md "Refinement")."""
    log_scales: float = Field(5e-2, gt=0.0)
    colors: float = Field(5e-2, gt=0.0)
    """On logit(RGB)."""
    opacities: float = Field(5e-2, gt=0.0)
    """On logit(opacity) (3DGS: 5e-2)."""


class ScaleFreezeParams(Section):
    until: int = Field(100, ge=0)
    """Log-scales get no update before this iteration (seed 003: 500 of 10K; the CPU run: 100 of 400)."""


class ClampParams(Section):
    """The hard log-scale clamp, relative to each Gaussian's in-plane log-scale in the binding (its spacing)."""

    start: int = Field(100, ge=0)
    """Iteration it starts at (seed 003: once scale is unfrozen)."""
    min: float = -3.0
    """Lower bound: e^-3 = 1/20 of the binding's size (no vanishing Gaussians)."""
    max: float = 1.0
    """Upper bound: e^1 = 2.7 x the binding's size (the generator allows e^1.5 on the CPU run's points)."""


class AspectParams(Section):
    weight: float = Field(30.0, ge=0.0)
    """λ_aspect (seed 003 gives none). Under Adam the weight sets the penalty's share of each step, not its size:
    on the training cameras alone 100 was best of 0.1-100; with the turned cameras 30 keeps the spikes at
    ~0.01 % and 0.05 dB more held-out gain than 100 on the validation subjects (bench/README.md "Refinement")."""
    tau: float = Field(1.0, gt=0.0)
    """τ: ½·log(λmax/λmin) above it is penalised, i.e. a screen axis ratio above e^τ = 2.7 (eigenvalue ratio
    above e^(2τ) = 7.4, the bound the spike fraction counts against). On the generator's avatars 0.1-0.3 % of the
    drawn footprints exceed it (surfels seen edge-on at the silhouette), so the floor (<= 0.5 %) is about what
    refinement adds."""
    start: int = Field(100, ge=0)
    """Iteration the penalty starts at (seed 003: 500 of 10K)."""
    jitter_views: int = Field(2, ge=0)
    """Extra cameras per iteration the penalty also sees (projection only, no render): this iteration's camera
    orbited about the head by a random yaw and pitch. Why: held-out frames turn the head 5-11 deg from the
    training frames, and a penalty on the training cameras alone leaves Gaussians parked just under the bound
    that such a turn tips over (0.03 % spikes on training cameras, 0.54 % on held-out ones; bench/README.md
    "Refinement"). Seed 003 sees ~10K frames of video; the CPU run sees 2 frames. 0 = the seed's penalty."""
    jitter_deg: float = Field(15.0, ge=0.0, le=60.0)
    """Largest yaw and pitch of those orbits, degrees (uniform in [-d, d]); covers the held-out turns."""


class TTOParams(Section):
    """Adaptive test-time optimisation (seed 000): extend while the watched images' loss still falls."""

    extend: int = Field(100, ge=1)
    """Iterations added per extension; also the window the improvement is measured over."""
    cap: int = Field(600, ge=1)
    """Most iterations per subject, extensions included."""
    min_gain: float = Field(0.01, ge=0.0)
    """Relative drop of the watched loss over the last ``extend`` iterations needed to extend (1 %)."""
    watch: int = Field(1, ge=1)
    """Training crops left out of the loss and watched: the last ones of the latest training frame."""


class RefineParams(Section):
    section: ClassVar[str] = "refine"

    strategies: list[Literal["scale-freeze", "log-scale-clamp", "aspect", "adaptive-tto"]] = [
        "scale-freeze", "log-scale-clamp", "aspect", "adaptive-tto"]  # fmt: skip
    """Strategy objects of the loop, in hook order (fairsplat/refine/strategies.py). The three anti-spike parts are
    seed 003's; an ablation drops one (bench/refine.py)."""
    iterations: int = Field(400, ge=1)
    """Iterations per subject before adaptive TTO (seed 003: 10K; params/gpu.yaml). One image per iteration."""
    lr: LearningRateParams = LearningRateParams()
    l1: float = Field(0.8, ge=0.0)
    """λ1 on the whole crop (3DGS's 0.8 / 0.2 split with SSIM; seed 003 names the terms, not the weights)."""
    ssim: float = Field(0.2, ge=0.0)
    """λssim on 1 - SSIM. No LPIPS: seed 003 found it adds speckle at this budget."""
    background: Literal["random", "grey"] = "random"
    """random: one random colour per iteration behind both render and target (seed 003: symmetric silhouette
    gradients, no silhouette loss); grey: the crops' mid-grey (an ablation)."""
    scale_freeze: ScaleFreezeParams = ScaleFreezeParams()
    log_scale_clamp: ClampParams = ClampParams()
    aspect: AspectParams = AspectParams()
    adaptive_tto: TTOParams = TTOParams()
    heldout_frac: float = Field(0.3, gt=0.0, lt=1.0)
    """Share of each subject's frames held out, the last ones (seed 003: the last 350 of each video). 3 frames x
    0.3 -> frame 2 (all views) is held out, frames 0-1 train."""
    subjects_per_type: int | None = Field(2, ge=1)
    """Held-out subjects refined per Fitzpatrick type (by id); null = all. 2 keeps the CPU run in its 5 minutes
    and still gives a bootstrap interval per type."""
    splits: list[str] = ["test"]
    """Subjects of these curate splits (never the generator's training split)."""
    sources: int = Field(1, ge=1, le=4)
    """Crops of the reference frame fed to the generator (frontal first); 1 = seed 003's monocular start."""
    jaw_min_range: float = Field(0.02, ge=0.0)
    """Radians. Below this range of per-frame jaw magnitude the jaw "hardly moves": the reference frame is the
    first frame with a good track instead of the (noisy) minimum."""
    max_track_nme: float = Field(0.05, gt=0.0)
    """A track is good when fitted from landmarks (not interpolated) with NME at most this."""
    backend: Literal["auto", "torch", "gsplat", "dense"] = "auto"
    seed: int = Field(0, ge=0)
    threads: int = Field(1, ge=0)
    """torch threads (0 = torch's default); 1: a second OpenMP thread costs ~3x whenever another process runs."""
    video_fps: int = Field(3, ge=1)
    """Frames per second of side_by_side.mp4 (one frame per crop)."""

    _splits = field_validator("splits")(heldout_splits)

    @model_validator(mode="after")
    def _check(self) -> RefineParams:
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError(f"refine.strategies lists a strategy twice: {self.strategies}")
        if self.log_scale_clamp.min >= self.log_scale_clamp.max:
            raise ValueError("refine.log-scale-clamp: min must be below max")
        if "adaptive-tto" in self.strategies and self.adaptive_tto.cap < self.iterations:
            raise ValueError(f"refine.adaptive-tto.cap {self.adaptive_tto.cap} is below refine.iterations {self.iterations}")
        if self.l1 + self.ssim <= 0:
            raise ValueError("refine.l1 and refine.ssim are both 0: no photometric loss")
        return self

    def refine_config(self):
        """The library's RefineConfig (fairsplat/refine/config.py)."""
        from fairsplat.refine.config import AspectConfig, ClampConfig, LearningRates, RefineConfig, ScaleFreezeConfig, TTOConfig

        return self.to_config(
            RefineConfig, strategies=tuple(self.strategies), lr=LearningRates(**dict(self.lr)),
            scale_freeze=ScaleFreezeConfig(**dict(self.scale_freeze)), clamp=ClampConfig(**dict(self.log_scale_clamp)),
            aspect=AspectConfig(**dict(self.aspect)), tto=TTOConfig(**dict(self.adaptive_tto)), splits=tuple(self.splits),
        )  # fmt: skip
