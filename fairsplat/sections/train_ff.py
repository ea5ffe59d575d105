"""Params of stage ``train_ff``: the one-shot generator (LAM-style, seed 002) and how it is trained.

Defaults are the CPU run: a small random-init DINOv2 encoder (4 blocks of
width 128, 8 x 8 tokens), 2 joint blocks of width 64, 2,048 farthest-point
Gaussians, 128 px crops, 400 steps (~0.85 s each on one core). LAM's scale is
``params/gpu.yaml`` (ViT-L/14 at 504 px, 10 blocks of width 1024 with 16
heads, the head subdivided once: ~20K points, joint attention).

``arch: uv`` swaps in seed 003's UV-space generator and its two training
phases (``UVParams``: ``train_ff.uv``), on the same data, avatar and protocol.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from fairsplat.config import Section
from fairsplat.sections.trainer import TrainerParams
from fairsplat.labels import FITZPATRICK


class LossParams(Section):
    """Loss weights. LAM: masked MSE 1, LPIPS 1 (VGG in training), mask term, offset 0.1.
    Seed 000: masked L1 1.0, LPIPS (VGG) 1.0, mask coverage 0.5, offset regularisation 0.1."""

    l1: float = Field(1.0, ge=0.0)
    """Masked L1 (seed 000's photometric term)."""
    ssim: float = Field(0.2, ge=0.0)
    """1 - SSIM over the crop (seed 003 uses (MS-)SSIM beside L1)."""
    lpips: float = Field(1.0, ge=0.0)
    """LPIPS with the real weights; without them the term is dropped and the metrics say so."""
    lpips_net: Literal["alex", "vgg"] = "alex"
    """alex on CPU: VGG costs ~20x more per step at 128 px; LAM and seed 000 train with vgg (params/gpu.yaml)."""
    mask: float = Field(0.5, ge=0.0)
    """Rendered opacity outside the foreground matte (seed 000's mask coverage, 0.5)."""
    offset: float = Field(0.1, ge=0.0)
    """Mean squared offset / max-offset (LAM and seed 000: 0.1)."""


class UVLossParams(Section):
    """Seed 003's loss (§2.3); the LAM-path terms keep the LAM path's weights so the two compare like for like."""

    l1: float = Field(1.0, ge=0.0)
    """Masked L1, as the LAM path."""
    ssim: float = Field(0.2, ge=0.0)
    """1 - SSIM (seed 003: MS-SSIM; at 128 px only 3 of its 5 scales fit, so plain SSIM by default)."""
    ms_ssim: bool = False
    """Use MS-SSIM (as many scales as the crop holds) instead of SSIM."""
    lpips: float = Field(1.0, ge=0.0)
    """LPIPS (net: train_ff.loss.lpips-net) when its weights are present."""
    mask: float = Field(0.5, ge=0.0)
    """Opacity outside the matte, as the LAM path."""
    box: float = Field(0.5, ge=0.0)
    """L1 inside the target's projected FLAME-landmark box (seed 003's face-box term); 0.5 weighs the face ~1.5x."""
    tv_position: float = Field(0.05, ge=0.0)
    """UV total variation of the predicted local offset (over its bound): neighbouring slots move together."""
    tv_scale: float = Field(0.05, ge=0.0)
    """UV total variation of the predicted log-scale residual."""
    residual: float = Field(0.01, ge=0.0)
    """Residual shrinkage: mean squared raw residual of the FLAME-conditioned head (small: a prior, not a ban)."""
    jac: float = Field(0.1, ge=0.0)
    """log(1 + ||dg_x/dγ||² + ||dg_s/dγ||²), one Hutchinson projection; seed 003's sweep peaks sharply at 0.1."""


class UVPhaseParams(Section):
    steps: int = Field(300, ge=0)
    """Optimiser steps of the phase (phase 2: 0 = phase 1 only, ablation row A)."""
    lr: float = Field(1e-3, gt=0.0)
    """Peak AdamW lr (cosine with train_ff.warmup). Seed 003's phase-1 peak is 2.5e-4 over days; 1e-3 for minutes."""
    anchor: float = Field(0.0, ge=0.0)
    """L2-SP weight: sum of squared weight changes from phase 1 (phase 2 only)."""
    mix: float = Field(0.0, ge=0.0, le=1.0)
    """Share of cross-time pairs in each phase-2 micro-batch (seed 003: 0.25)."""


class UVParams(Section):
    """Seed 003's UV-space generator (train_ff.arch: uv): sizes for the CPU; params/gpu.yaml has the seed's."""

    resolution: int = Field(32, ge=8)
    """UV grid side: 888 valid texels (Gaussians) at 32 on this head, ~the LAM path's 2,048 points' cost (seed 003: 256, ~58K)."""
    dense_dim: int = Field(32, ge=4)
    """DPT head's dense feature channels."""
    style_dim: int = Field(64, ge=4)
    """Pooled token width (modulates the UV generator)."""
    channels: int = Field(32, ge=4)
    """UV generator width."""
    out_dim: int = Field(32, ge=4)
    """UV feature channels (seed 003: 32)."""
    head_hidden: int = Field(32, ge=4)
    """Hidden width of each of the five heads."""
    residual: bool = True
    """The FLAME-conditioned residual head (position, rotation, scale, colour; ablation row E drops it)."""
    code_dim: int = Field(22, ge=1)
    """Residual head's conditioning: expression + neck, jaw and eye pose. The CPU head has 10 expressions
    (10 + 12 = 22); seed 003's 112 is FLAME's 100 + 12 (params/gpu.yaml). Checked against the head at run time."""
    pool: Literal["mean", "attention"] = "mean"
    """K-source pooling: mean (seed 003, parameter-free) | attention (ablation row G)."""
    max_offset: float = Field(0.5, gt=0.0)
    """Bound of the local offset in triangle units (the grid's texels are ~1.9 units apart at 32)."""
    phase2_share: float = Field(0.25, gt=0.0, lt=1.0)
    """Share of the training identities held for phase 2 (disjoint from phase 1's: seed 003's NeRSemble is smaller)."""
    phase1: UVPhaseParams = UVPhaseParams()
    """Monocular-temporal: each identity from one camera over its frames."""
    phase2: UVPhaseParams = UVPhaseParams(steps=100, lr=3e-4, anchor=1e-3, mix=0.25)
    """Multi-view from phase 1's weights: lower lr, L2-SP anchor 1e-3, 25 % cross-time (seed 003)."""
    loss: UVLossParams = UVLossParams()


SKEWED_MIX = {"I": 0.25, "II": 0.25, "III": 0.25, "IV": 0.12, "V": 0.08, "VI": 0.05}


class TrainFFParams(TrainerParams):
    section: ClassVar[str] = "train_ff"

    arch: Literal["lam", "uv"] = "lam"
    """lam: LAM's point-query generator (seed 002); uv: SpatialAvatar-0's UV-space generator and two-phase training
    (seed 003, train_ff.uv). lam stays the default: at equal CPU time (both with the dinov2 encoder) it scored 22.48 dB held-out masked PSNR against
    the UV generator's 19.70 (full two-phase schedule) and 21.23 (best ablation row), AKD 3.80 px against 6.22 and
    4.62 (bench/README.md "UV generator")."""
    uv: UVParams = UVParams()
    encoder: Literal["dinov2", "vgg16"] = "dinov2"
    """Image encoder (fairsplat/models/encoders.py). dinov2: transformers' Dinov2Model, small random-init config
    trained with the decoder; vgg16: the ImageNet VGG16 trunk from the weights registry, frozen. vgg16 scores
    better held out (masked PSNR 23.06 vs 22.80 dB, SSIM 0.740 vs 0.732, LPIPS 0.111 vs 0.124) but, even with
    the feature store, makes the stage 712 s against its 480 s budget (its 16 x 16 tokens cost the decoder's
    cross-attention 4x dinov2's 8 x 8), so the default stays dinov2 (README "Generator")."""
    feature_store: bool = True
    """Keep a frozen trunk's levels per crop in .cache/features (fairsplat/models/feature_store.py): computed
    once, with every thread, instead of in each trainer's every step (VGG16 is ~0.17 s a 128 px crop on one
    core). Results are identical either way; off at real scale, where the GPU's trunk is cheap and the store
    would be large (~0.65 MB a crop at the default grid)."""
    encoder_path: str | None = None
    """A local pretrained Dinov2 directory (config.json + weights); frozen as LAM freezes it."""
    encoder_train: Literal["auto", "yes", "no"] = "auto"
    """auto: train a random-init encoder, freeze a pretrained one."""
    encoder_size: int | None = Field(None, ge=16)
    """px the sources are resized to for the encoder; null = size (LAM: 504 for ViT-L/14, renders at 512)."""
    encoder_dim: int = Field(64, ge=8)
    """Width of the fused image tokens."""
    encoder_hidden: int = Field(128, ge=8)
    """dinov2 width (ViT-S: 384, ViT-L: 1024)."""
    encoder_layers: int = Field(4, ge=1)
    encoder_heads: int = Field(4, ge=1)
    encoder_patch: int = Field(16, ge=2)
    """Patch px: 16 at 128 px gives an 8 x 8 token grid (LAM: 14 at 504 px, 36 x 36); 8 (16 x 16 tokens)
    costs ~4x in the encoder for the CPU run."""
    encoder_levels: list[int] = [1, 3]
    """Blocks fused by 1x1 convs (0-based); LAM fuses ViT-L blocks 4/11/17/23."""
    vgg_grid: int = Field(16, ge=2)
    """vgg16: token grid side the relu3_3/4_3/5_3 maps are resampled to."""
    width: int = Field(64, ge=8)
    """Decoder width (LAM: 1024)."""
    blocks: int = Field(2, ge=1)
    """Joint-attention blocks (LAM: 10)."""
    heads: int = Field(4, ge=1)
    """Attention heads (LAM: 16)."""
    mlp_ratio: float = Field(2.0, gt=0.0)
    attention: Literal["joint", "cross"] = "cross"
    """joint: LAM's (points attend to points and image tokens); cross: points attend to image tokens only,
    same layers and names, cost linear in the point count (what fits 2 cores)."""
    binding: Literal["points", "uv"] = "points"
    """points: LAM's subdivided head points; uv: seed 003's UV grid (its generator is issue 17's)."""
    levels: int = Field(0, ge=0, le=3)
    """Midpoint subdivisions of the head (LAM-20K: 1)."""
    max_points: int | None = Field(2048, ge=8)
    """Farthest-point subset of the points (CPU); null = every vertex (LAM)."""
    uv_resolution: int = Field(64, ge=8)
    head_hidden: int = Field(64, ge=8)
    """Width of the heads' shared MLP."""
    max_offset: float = Field(0.01, gt=0.0)
    """Metres a point may move off the surface (bounded offset head)."""
    max_log_scale: float = Field(1.5, gt=0.0)
    """|log-scale residual| bound: each Gaussian within e^±1.5 of the binding's size (LAM clamps scale)."""
    init_opacity: float = Field(0.5, gt=0.0, lt=1.0)
    """Initial opacity. LAM starts at 0.1 over a 100K-step run; in 200 CPU steps that left the avatar
    translucent: on 12 training identities held-out masked PSNR 18.1 dB at (0.1, lr 4e-4) against
    21.8 dB at (0.5, lr 1e-3). params/gpu.yaml keeps LAM's 0.1."""
    size: int = Field(128, ge=16)
    """Crop px; must equal curate.size."""
    steps: int = Field(400, ge=1)
    """Optimiser steps."""
    batch_size: int = Field(8, ge=1)
    """Subjects per micro-batch."""
    max_k: int = Field(2, ge=1, le=4)
    """K ~ Uniform{1..max-k} sources per micro-batch (seed 003: 4)."""
    lr: float = Field(1e-3, gt=0.0)
    """AdamW peak lr (LAM: 4e-4 over its long run; params/gpu.yaml). 1e-3 for the 400-step CPU run."""
    weight_decay: float = Field(0.05, ge=0.0)
    """LAM: 0.05 (biases and norms exempt)."""
    betas: list[float] = [0.9, 0.95]
    """LAM, seed 000: (0.9, 0.95)."""
    warmup: int = Field(30, ge=0)
    """Linear warm-up steps before the cosine decay (LAM: 3,000 of its run)."""
    loss: LossParams = LossParams()
    type_mix: dict[str, float] = SKEWED_MIX
    """Share of each type among the training identities (not just their sampling rate: a rare type means fewer
    different faces). Default: a skew towards light types like the one reported for web-scraped face sets
    (CelebA, VFHQ: V-VI around a tenth or less); {I: 1, ..., VI: 1} trains balanced."""
    eval_ks: list[int] = [1, 2]
    """Source counts scored on held-out subjects."""
    eval_splits: list[str] = ["test"]
    watch_split: str = "val"
    """Split whose PSNR is logged during training (watched, never selected on)."""
    eval_every: int = Field(100, ge=0)
    checkpoint_every: int = Field(100, ge=0)
    """Resumable checkpoints in .checkpoints/train_ff (resumed when params and inputs match)."""
    baseline_steps: int = Field(200, ge=1)
    """Steps of the constant-avatar baseline (one avatar for everyone, no image input)."""
    baseline_lr: float = Field(0.01, gt=0.0)
    reference: Literal["balanced", "none"] = "balanced"
    """balanced: also train a generator on every training identity, equal per type, from scratch with the same
    params: the reference the per-type deficits of the skewed base (and of LoRA, stage lora) are measured against
    (issue 12). It trains beside the base in a second process, so it costs no wall time on 2 idle cores."""
    workers: int = Field(2, ge=1)
    """Processes for the variants (base, reference), one torch thread each; 1 = one after the other."""
    backend: Literal["auto", "torch", "gsplat", "dense"] = "auto"
    """Rasteriser backend (auto: gsplat on CUDA when installed, else torch)."""

    @field_validator("type_mix")
    @classmethod
    def _mix(cls, v: dict[str, float]) -> dict[str, float]:
        bad = sorted(set(v) - set(FITZPATRICK))
        if bad or any(p < 0 for p in v.values()) or sum(v.values()) <= 0:
            raise ValueError(f"keys from {', '.join(FITZPATRICK)} with shares >= 0, not all 0 (got {v})")
        return v

    @model_validator(mode="after")
    def _check(self) -> TrainFFParams:
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError("train_ff.betas: two numbers in [0, 1)")
        if self.width % self.heads:
            raise ValueError(f"train_ff.width {self.width} is not a multiple of train_ff.heads {self.heads}")
        if self.encoder == "dinov2" and max(self.encoder_levels) >= self.encoder_layers and not self.encoder_path:
            raise ValueError(f"train_ff.encoder-levels {self.encoder_levels}: the encoder has {self.encoder_layers} blocks")
        if self.watch_split in self.eval_splits:
            raise ValueError("train_ff.watch-split is among eval-splits: the watched curve would see the test subjects")
        if max(self.eval_ks) > 4 or min(self.eval_ks) < 1:
            raise ValueError("train_ff.eval-ks: values in 1..4")
        return self

    def _uv(self, enc):
        """The UV generator's config and its two phases (arch: uv)."""
        from fairsplat.avatar.binding import BindingSpec
        from fairsplat.ff.config import PhaseConfig, UVLossWeights, UVTrainConfig
        from fairsplat.models.lam import HeadsConfig
        from fairsplat.models.uv.generator import UVConfig, UVGeneratorConfig

        u = self.uv
        net = UVConfig(u.dense_dim, u.style_dim, u.channels, u.out_dim, u.head_hidden, u.residual, u.code_dim, u.pool)
        heads = HeadsConfig(self.head_hidden, u.max_offset, self.max_log_scale, self.init_opacity)
        model = UVGeneratorConfig(enc, net, heads, BindingSpec("uv", resolution=u.resolution))
        p1, p2 = u.phase1, u.phase2
        phase2 = PhaseConfig("phase2", p2.steps, p2.lr, p2.anchor, p2.mix) if p2.steps > 0 else None
        return model, UVTrainConfig(UVLossWeights(**dict(u.loss)), PhaseConfig("phase1", p1.steps, p1.lr), phase2, u.phase2_share)

    def ff_config(self):
        """The library's FFConfig (fairsplat/ff/config.py)."""
        from fairsplat.avatar.binding import BindingSpec
        from fairsplat.ff.config import FFConfig, LossWeights, UVTrainConfig
        from fairsplat.models.encoders import EncoderConfig
        from fairsplat.models.generator import GeneratorConfig
        from fairsplat.models.lam import DecoderConfig, HeadsConfig

        enc = EncoderConfig(self.encoder, self.encoder_size or self.size, self.encoder_dim, self.encoder_hidden, self.encoder_layers,
                            self.encoder_heads, self.encoder_patch, tuple(self.encoder_levels), self.encoder_path,
                            self.encoder_train, self.vgg_grid)  # fmt: skip
        dec = DecoderConfig(self.width, self.blocks, self.heads, self.mlp_ratio, 8, self.attention, self.encoder_dim)
        heads = HeadsConfig(self.head_hidden, self.max_offset, self.max_log_scale, self.init_opacity)
        bind = BindingSpec(self.binding, self.levels, self.max_points, self.uv_resolution)
        model = GeneratorConfig(enc, dec, heads, bind)
        uv = None
        if self.arch == "uv":
            model, uv = self._uv(enc)
        return self.to_config(
            FFConfig, model=model, arch=self.arch, uv=uv or UVTrainConfig(), batch=self.batch_size, betas=tuple(self.betas), loss=LossWeights(**dict(self.loss)),
            type_mix=dict(self.type_mix), eval_ks=tuple(self.eval_ks), eval_splits=tuple(self.eval_splits),
            accel=self.accel_config(),
        )  # fmt: skip
