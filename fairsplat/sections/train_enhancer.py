"""Params of stage ``train_enhancer``: the pix2pix-turbo-style splat-render enhancer (seed 001) and its training.

Two ways to train, one code path (fairsplat/enhancer/run.py):

- **tiny default** (no SD-Turbo here): diffusers' AutoencoderKL (8/16/32/32,
  4 levels) and UNet2DConditionModel (32/64/64/64) from config, every weight
  trained from random init, on the CPU budget (issue 14: train_enhancer +
  enhance <= 6 minutes of the default ``dvc repro`` on 2 cores);
- **SD-Turbo** (``sd-turbo-path``: a local copy of stabilityai/sd-turbo):
  LoRA through peft on the UNet (rank 16) and the VAE (rank 8), the skip convs
  and ``unet.conv_in`` trained fully, the rest frozen; seed 001's values are in
  params/gpu.yaml (lr 5e-5, 500 warm-up steps, batch 2, 20K steps, LPIPS-VGG).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from fairsplat.config import Section
from fairsplat.enhancer.targets import UNET_TARGETS, VAE_TARGETS
from fairsplat.sections.trainer import TrainerParams



class EnhancerLoraParams(Section):
    """LoRA of the SD-Turbo path (ignored by the tiny default, which trains every weight: adapters on random
    frozen weights would only restrict a network that has learned nothing)."""

    unet_rank: int = Field(16, ge=1)
    """Seed 001: 16."""
    vae_rank: int = Field(8, ge=1)
    """Seed 001: 8."""
    alpha: float | None = Field(None, gt=0.0)
    """lora_alpha; null = peft's default (8), as pix2pix-turbo's LoraConfig(r=..., init_lora_weights='gaussian')."""
    unet_targets: list[str] = list(UNET_TARGETS)
    """Module-name suffixes (peft's matching); pix2pix-turbo's UNet set."""
    vae_targets: list[str] = list(VAE_TARGETS)
    """pix2pix-turbo's VAE set (its skip convs are trained fully here instead)."""
    vae_parts: list[Literal["encoder", "decoder"]] = ["encoder", "decoder"]
    """Where the VAE adapters go. pix2pix-turbo's code adapts both (18,484,432 trainable parameters with the
    skips and conv_in: seed 001's "~18.5M"); [decoder] alone gives 17,745,848."""


class LossParams(Section):
    """Seed 001: L1 0.5, LPIPS (VGG) 1.0, Gram matrix 0.07 on VGG16 features."""

    l1: float = Field(0.5, ge=0.0)
    """Mean |output - clean| over the crop (seed 001: 0.5)."""
    lpips: float = Field(1.0, ge=0.0)
    """LPIPS with the real weights (seed 001: 1.0); without them LPIPS and Gram are dropped and the metrics say so."""
    gram: float = Field(0.07, ge=0.0)
    """Gram matrices of the same trunk's relu taps (seed 001: 0.07 on VGG16)."""
    ssim: float = Field(0.0, ge=0.0)
    """1 - SSIM over the crop (fairsplat.train.losses.ssim_loss); not in seed 001 (0 there and in params/gpu.yaml's
    sense); the default params.yaml says why the CPU default uses it."""
    net: Literal["alex", "vgg"] = "alex"
    """Trunk of LPIPS and Gram (one pass serves both, fairsplat/enhancer/losses.py). alex on CPU: VGG16 at
    128 px costs ~0.5 s an image forward and backward here, more than the whole model; vgg in params/gpu.yaml."""


class TrainEnhancerParams(TrainerParams):
    section: ClassVar[str] = "train_enhancer"

    sd_turbo_path: str | None = None
    """A local stabilityai/sd-turbo directory (unet/, vae/, text_encoder/, tokenizer/, scheduler/); null = the
    tiny default. Checked before any work: a missing file fails naming this key and the file."""
    prompt: str = "a high quality photo of a face"
    """The fixed prompt SD-Turbo's CLIP encoder conditions on (encoded once); the tiny default learns an embedding."""
    vae_channels: list[int] = [8, 16, 32, 32]
    """Tiny VAE widths, 4 levels (the skip wiring needs exactly 4; SD-Turbo: 128/256/512/512)."""
    vae_layers: int = Field(1, ge=1)
    """Resnets per VAE block (SD-Turbo: 2)."""
    vae_groups: int = Field(4, ge=1)
    """GroupNorm groups in the VAE (must divide every width; SD-Turbo: 32)."""
    latent_channels: int = Field(4, ge=1)
    """SD's 4."""
    unet_channels: list[int] = [32, 64, 64, 64]
    """Tiny UNet widths (SD-Turbo: 320/640/1280/1280)."""
    unet_heads: list[int] = [2, 4, 4, 4]
    """attention_head_dim per level (SD-Turbo: 5/10/20/20)."""
    unet_layers: int = Field(1, ge=1)
    """Resnets per UNet block (SD-Turbo: 2)."""
    unet_groups: int = Field(8, ge=1)
    cross_dim: int = Field(32, ge=4)
    """Width of the text embedding the UNet attends to (SD-Turbo's CLIP: 1024)."""
    text_tokens: int = Field(4, ge=1)
    """Tokens of the tiny default's learned embedding (SD-Turbo: 77 CLIP tokens)."""
    prediction_type: Literal["auto", "epsilon", "sample", "v_prediction"] = "auto"
    """What the one UNet step predicts. auto: SD-Turbo's own (epsilon) with sd-turbo-path; sample (the clean
    latent directly) for the tiny default: with epsilon, x0 = (z - 0.998 e) / 0.068 at t=999, so a random-init
    UNet's error reaches the latent 15x amplified."""
    residual: bool = True
    """Tiny default: add the input to the decoded output (decoder conv_out starts at 0: the model starts as the
    identity and learns a correction). Not pix2pix-turbo, and ignored with sd-turbo-path (it would zero the
    pretrained decoder's output conv). Why: trained from random init for a few hundred CPU steps, the plain
    wiring must first learn to reproduce its input through an 8x VAE; the degraded inputs are already ~35 dB
    PSNR from clean, so that alone fails the floors (README, "Enhancer")."""
    skip_gamma: float = Field(1.0, gt=0.0)
    """pix2pix-turbo's gamma on the skip activations."""
    skip_init: float = 1e-5
    """Skip-conv weights at start (pix2pix-turbo: 1e-5): the model starts as the plain VAE path."""
    skip_dropout: float = Field(0.3, ge=0.0, lt=1.0)
    """Dropout on the skips in training (seed 001: 0.3)."""
    sample_latent: bool = True
    """Train on a draw of the VAE posterior (pix2pix-turbo's ``latent_dist.sample()``); evaluation uses its mode."""
    lora: EnhancerLoraParams = EnhancerLoraParams()
    steps: int = Field(300, ge=1)
    """Optimiser steps (seed 001: 20K)."""
    batch_size: int = Field(8, ge=1)
    """Pairs per micro-batch (seed 001: 2)."""
    patch: int | None = Field(64, ge=32)
    """Train on a random patch x patch window of each pair (input and target alike); null = whole crops (seed
    001). 64 of the 128 px crops: 4x the pairs per second; the model is fully convolutional and is scored on
    whole crops."""
    lr: float = Field(2e-3, gt=0.0)
    """AdamW peak lr (seed 001: 5e-5 for LoRA on a pretrained net; a random-init net in a few hundred steps
    needs more)."""
    weight_decay: float = Field(1e-4, ge=0.0)
    """Seed 001: 1e-4."""
    betas: list[float] = [0.9, 0.999]
    """AdamW's defaults (pix2pix-turbo)."""
    warmup: int = Field(20, ge=0)
    """Linear warm-up steps, then linear decay to 0 (seed 001: 500 of 20K)."""
    loss: LossParams = LossParams()
    augment: bool = True
    """Seed 001's four training-time augmentations on the degraded input, on the fly, with the params of
    ``degrade.augmentations`` (pairs whose stored input already carries a draw are left as they are)."""
    augment_rate: float = Field(1.0, ge=0.0)
    """On-the-fly firing probability of each augmentation = augment-rate x its ``degrade.augmentations`` prob, on
    pairs whose stored input carries no draw (seed 001: every sample draws each at its prob, once). With
    ``degrade.augment: true`` ~38% of the stored pairs already carry a draw at seed 001's rates, so 1.0 shows
    each augmentation to ~1.6x seed 001's share of samples and 0.0 to exactly the stored share (~1x);
    metrics/train_enhancer.json ``augment_rates`` gives the expected shares, ``augment_rates_seed`` the seed's."""
    train_splits: list[str] = ["train"]
    eval_splits: list[str] = ["val", "test"]
    """Held-out subjects scored at the end (curate's subject-disjoint splits; nothing is selected on them)."""
    watch_split: str | None = "val"
    """Pairs whose PSNR is logged during training (a learning curve only)."""
    watch_pairs: int = Field(16, ge=1)
    eval_batch: int = Field(8, ge=1)
    eval_every: int = Field(100, ge=0)
    checkpoint_every: int = Field(100, ge=0)
    """Resumable checkpoints in .checkpoints/train_enhancer (resumed when params and inputs match)."""

    @model_validator(mode="after")
    def _check(self) -> TrainEnhancerParams:
        s = "train_enhancer"
        if len(self.vae_channels) != 4:
            raise ValueError(f"{s}.vae-channels: the skip wiring needs exactly 4 VAE levels, got {self.vae_channels}")
        if any(c % self.vae_groups for c in self.vae_channels):
            raise ValueError(f"{s}.vae-groups {self.vae_groups} must divide every vae-channels {self.vae_channels}")
        if any(c % self.unet_groups for c in self.unet_channels):
            raise ValueError(f"{s}.unet-groups {self.unet_groups} must divide every unet-channels {self.unet_channels}")
        if len(self.unet_heads) != len(self.unet_channels):
            raise ValueError(f"{s}.unet-heads: one per unet-channels level ({len(self.unet_channels)})")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"{s}.betas: two numbers in [0, 1)")
        if self.patch is not None and self.patch % 64:
            raise ValueError(f"{s}.patch: {self.patch} is not a multiple of 64 (the VAE's 8 x the UNet's 8)")
        return self

    def enhancer_config(self):
        """The library's EnhancerTrainConfig (fairsplat/enhancer/config.py); degrade's augmentation params are
        passed in by the stage (they live in section ``degrade``)."""
        from fairsplat.enhancer.config import EnhancerTrainConfig, LoraSpec, LossWeights
        from fairsplat.models.enhancer import SD_SCHEDULER, EnhancerConfig, tiny_unet_config, tiny_vae_config

        pred = self.prediction_type
        sched = {**SD_SCHEDULER, "prediction_type": "sample" if pred == "auto" else pred}
        model = EnhancerConfig(
            vae=tiny_vae_config(self.vae_channels, self.vae_layers, self.vae_groups, self.latent_channels),
            unet=tiny_unet_config(self.unet_channels, self.unet_heads, self.unet_layers, self.unet_groups,
                                  self.cross_dim, self.latent_channels),
            scheduler=sched, text_tokens=self.text_tokens, skip_gamma=self.skip_gamma, skip_init=self.skip_init,
            skip_dropout=self.skip_dropout, sample_latent=self.sample_latent, residual=self.residual,
        )  # fmt: skip
        lora = LoraSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.lora.model_dump().items()})
        return self.to_config(
            EnhancerTrainConfig, model=model, lora=lora, batch=self.batch_size, betas=tuple(self.betas),
            loss=LossWeights(**self.loss.model_dump()), train_splits=tuple(self.train_splits),
            eval_splits=tuple(self.eval_splits), prediction_type=pred,
            accel=self.accel_config(),
        )  # fmt: skip
