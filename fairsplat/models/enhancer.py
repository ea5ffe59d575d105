"""The splat-render enhancer, pix2pix-turbo style (seed 001): one forward pass, degraded render -> clean image.

    x   [B, 3, H, W] in [0, 1], padded to a multiple of ``multiple`` (replicate), cropped back at the end
    h, skips = VAE encoder(2x - 1)           # skips: the input of each of the 4 down blocks
    z   = latent (mode; a sample in training)  * scaling_factor
    e   = UNet(z, t=999, text)               # one step at the last timestep
    z0  = one_step(e, z)                     # the scheduler's x0 prediction: the clean latent
    y   = VAE decoder(z0 / scaling_factor), and before up block i:  + skip_conv_i(gamma * skips[-1 - i])

The skip convs are 1x1 and bias-free, initialised at 1e-5 (so at init the model
is the plain VAE path), with dropout on their output in training; the deepest
encoder input feeds the first up block (pix2pix-turbo's ``my_vae_decoder_fwd``).
For VAE channels (C0, C1, C2, C3) the four convs map [C2, C1, C0, C0] ->
[C3, C3, C2, C1] at 1/8, 1/4, 1/2 and 1 of the input side (:func:`skip_table`):
the wiring needs exactly 4 VAE levels.

``AutoencoderKL`` and ``UNet2DConditionModel`` are diffusers' own classes, built
from a config dict (tiny random-init default) or loaded from a local SD-Turbo
directory (``fairsplat.enhancer.sdturbo``). The encoder and decoder passes are
re-stated here only to tap and add the skips; with the skips removed they are
diffusers' ``encode``/``decode`` exactly (tested). The text conditioning is a
fixed embedding: the CLIP encoding of a fixed prompt for SD-Turbo (a buffer),
or a learned parameter for the tiny default. No adapter code lives here: the
stage's library (``fairsplat/enhancer``) attaches adapters by module name, from params.

``residual`` (not pix2pix-turbo; the tiny default's choice, see
``fairsplat/sections/train_enhancer.py``) adds the input to the decoded output,
so the network learns the correction; the decoder's ``conv_out`` then starts at
zero, and the model starts as the identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SD_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon", "clip_sample": False,
}  # fmt: skip
"""SD 2.x / SD-Turbo's noise schedule (its scheduler_config.json); pix2pix-turbo runs it as a 1-step DDPM."""

SD_TURBO_UNET: dict[str, Any] = {
    "sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280), "attention_head_dim": (5, 10, 20, 20),
    "cross_attention_dim": 1024, "use_linear_projection": True, "norm_num_groups": 32,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
}  # fmt: skip
"""stabilityai/sd-turbo ``unet/config.json`` (SD 2.1's UNet, ~866M params): for the meta-device checks."""

SD_TURBO_VAE: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
    "block_out_channels": (128, 256, 512, 512), "sample_size": 768, "scaling_factor": 0.18215,
    "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
}  # fmt: skip
"""stabilityai/sd-turbo ``vae/config.json`` (~84M params)."""

TIMESTEP = 999
"""pix2pix-turbo's single step: the last timestep, the input latent read as pure noise."""


def tiny_vae_config(channels=(8, 16, 32, 32), layers: int = 1, groups: int = 4, latent: int = 4) -> dict[str, Any]:
    """A 4-level AutoencoderKL config at the tiny default's width (SD-Turbo: 128/256/512/512, 2 layers, 32 groups)."""
    return {"in_channels": 3, "out_channels": 3, "latent_channels": latent, "layers_per_block": layers,
            "norm_num_groups": groups, "block_out_channels": tuple(channels), "scaling_factor": 0.18215,
            "down_block_types": ("DownEncoderBlock2D",) * len(channels),
            "up_block_types": ("UpDecoderBlock2D",) * len(channels)}  # fmt: skip


def tiny_unet_config(channels=(32, 64, 64, 64), heads=(2, 4, 4, 4), layers: int = 1, groups: int = 8,
                     cross_dim: int = 32, latent: int = 4) -> dict[str, Any]:  # fmt: skip
    """SD's UNet layout (cross-attention in all levels but the deepest, linear projections) at a tiny width."""
    n = len(channels)
    return {"in_channels": latent, "out_channels": latent, "layers_per_block": layers, "norm_num_groups": groups,
            "block_out_channels": tuple(channels), "attention_head_dim": tuple(heads), "cross_attention_dim": cross_dim,
            "use_linear_projection": True,
            "down_block_types": ("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",),
            "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1)}  # fmt: skip


@dataclass(frozen=True)
class EnhancerConfig:
    vae: dict[str, Any] = field(default_factory=tiny_vae_config)
    """diffusers AutoencoderKL config (4 levels)."""
    unet: dict[str, Any] = field(default_factory=tiny_unet_config)
    """diffusers UNet2DConditionModel config."""
    scheduler: dict[str, Any] = field(default_factory=lambda: dict(SD_SCHEDULER))
    """The noise schedule the one step reads (``alphas_cumprod[999]``, prediction type, clipping)."""
    text_tokens: int = 4
    """Tokens of the fixed text embedding (SD-Turbo's CLIP: 77)."""
    text_learned: bool = True
    """A trained parameter (tiny default) or a frozen buffer (a CLIP encoding of a fixed prompt)."""
    skip_gamma: float = 1.0
    """pix2pix-turbo's gamma: the encoder activations are scaled by it before the skip conv."""
    skip_init: float = 1e-5
    """Every skip-conv weight at start: the model starts as the plain VAE path (pix2pix-turbo: 1e-5)."""
    skip_dropout: float = 0.3
    """Dropout on each skip's output in training (seed 001: 0.3)."""
    sample_latent: bool = True
    """Training encodes with a draw of the VAE posterior, as pix2pix-turbo; evaluation uses its mode (deterministic)."""
    residual: bool = False
    """Add the input to the decoded output (decoder conv_out zero-initialised): the model learns a correction."""

    def __post_init__(self) -> None:
        levels = len(self.vae["block_out_channels"])
        if levels != 4:
            raise ValueError(f"EnhancerConfig.vae: the skip wiring needs exactly 4 VAE levels, got {levels} "
                             f"(block_out_channels {tuple(self.vae['block_out_channels'])})")  # fmt: skip
        if self.vae["latent_channels"] != self.unet.get("in_channels", 4):
            raise ValueError("EnhancerConfig: vae.latent_channels must equal unet.in_channels")
        if not 0 <= self.skip_dropout < 1:
            raise ValueError(f"EnhancerConfig.skip_dropout: {self.skip_dropout} not in [0, 1)")
        if self.scheduler.get("prediction_type", "epsilon") not in ("epsilon", "sample", "v_prediction"):
            raise ValueError(f"EnhancerConfig.scheduler.prediction_type: {self.scheduler['prediction_type']!r}")

    @property
    def cross_dim(self) -> int:
        return int(self.unet["cross_attention_dim"])

    def to_json(self) -> dict[str, Any]:
        return {"vae": _jsonable(self.vae), "unet": _jsonable(self.unet), "scheduler": _jsonable(self.scheduler),
                "text_tokens": self.text_tokens, "text_learned": self.text_learned, "skip_gamma": self.skip_gamma,
                "skip_init": self.skip_init, "skip_dropout": self.skip_dropout, "sample_latent": self.sample_latent,
                "residual": self.residual}  # fmt: skip

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EnhancerConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items() if not k.startswith("_")}


def _diffusers_config(d: dict[str, Any]) -> dict[str, Any]:
    """A config dict as the diffusers constructors take it (lists -> tuples, private keys dropped)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if not k.startswith("_")}


def build_vae(config: dict[str, Any]):
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_config(_diffusers_config(config))


def build_unet(config: dict[str, Any]):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_config(_diffusers_config(config))


def skip_table(vae_channels: tuple[int, ...], side: int) -> list[tuple[int, int, int]]:
    """(in channels, out channels, side) of skip conv i = 0..3: encoder down-block input 3 - i -> up block i."""
    c0, c1, c2, c3 = vae_channels
    return [(c2, c3, side // 8), (c1, c3, side // 4), (c0, c2, side // 2), (c0, c1, side)]


class Enhancer(nn.Module):
    """pix2pix-turbo's generator. ``forward``: images [B, 3, H, W] in [0, 1] -> same shape in [0, 1]."""

    def __init__(self, cfg: EnhancerConfig, vae: nn.Module | None = None, unet: nn.Module | None = None,
                 text: Tensor | None = None) -> None:  # fmt: skip
        """``vae``/``unet``: pretrained modules (SD-Turbo); None builds them from ``cfg`` (random init).
        ``text``: the fixed embedding [1, T, D] (a CLIP encoding); None = a learned one (``cfg.text_learned``)."""
        super().__init__()
        self.cfg = cfg
        self.vae = vae if vae is not None else build_vae(cfg.vae)
        self.unet = unet if unet is not None else build_unet(cfg.unet)
        enc_in = self._down_inputs()
        dec_in = self._up_inputs()
        self.skips = nn.ModuleList(nn.Conv2d(i, o, kernel_size=1, bias=False) for i, o in zip(enc_in[::-1], dec_in))
        for conv in self.skips:
            nn.init.constant_(conv.weight, cfg.skip_init)
        self.skip_dropout = nn.Dropout(cfg.skip_dropout)
        if text is None:
            if not cfg.text_learned:
                raise ValueError("Enhancer: text_learned=False needs a text embedding (the CLIP encoding of the prompt)")
            self.text = nn.Parameter(torch.randn(1, cfg.text_tokens, cfg.cross_dim) * 0.02)
        else:
            if text.ndim != 3 or text.shape[0] != 1 or text.shape[-1] != cfg.cross_dim:
                raise ValueError(f"Enhancer: text embedding must be [1, T, {cfg.cross_dim}], got {tuple(text.shape)}")
            self.register_buffer("text", text.detach().clone())
        if cfg.residual:
            nn.init.zeros_(self.vae.decoder.conv_out.weight)
            nn.init.zeros_(self.vae.decoder.conv_out.bias)
        sched = {**SD_SCHEDULER, **cfg.scheduler}
        self.register_buffer("alpha_bar", _alphas_cumprod(sched)[TIMESTEP].clone(), persistent=False)
        self.prediction = sched["prediction_type"]
        self.clip = float(sched.get("clip_sample_range", 1.0)) if sched.get("clip_sample") else None
        self.checkpointing = False

    # ------------------------------------------------------------------ structure

    def _down_inputs(self) -> list[int]:
        """Channels entering each encoder down block: C0 (after conv_in), then each block's output."""
        ch = list(self.vae.config.block_out_channels)
        return [ch[0], *ch[:-1]]

    def _up_inputs(self) -> list[int]:
        """Channels entering each decoder up block: C3 (after the mid block), then each block's output."""
        rev = list(reversed(self.vae.config.block_out_channels))
        return [rev[0], *rev[:-1]]

    @property
    def multiple(self) -> int:
        """Input sides are padded to this: the VAE's factor times the UNet's (2^3 x 2^3 for 4 + 4 levels)."""
        vae = 2 ** (len(self.vae.config.block_out_channels) - 1)
        unet = 2 ** (len(self.unet.config.block_out_channels) - 1)
        return vae * unet

    def gradient_checkpointing_enable(self) -> None:
        """Recompute UNet blocks and VAE blocks in the backward pass (the skeleton calls this from params)."""
        self.unet.enable_gradient_checkpointing()
        self.checkpointing = True

    # ------------------------------------------------------------------ the passes

    def _run(self, block, *args):
        if self.checkpointing and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def encode(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """x [B, 3, H, W] in [-1, 1] -> (moments [B, 2L, H/8, W/8], the 4 down-block inputs, shallow first)."""
        enc = self.vae.encoder
        h = enc.conv_in(x)
        skips = []
        for block in enc.down_blocks:
            skips.append(h)
            h = self._run(block, h)
        h = self._run(enc.mid_block, h)
        h = enc.conv_out(enc.conv_act(enc.conv_norm_out(h)))
        if self.vae.quant_conv is not None:
            h = self.vae.quant_conv(h)
        return h, skips

    def decode(self, z: Tensor, skips: list[Tensor] | None) -> Tensor:
        """z [B, L, h, w] (unscaled latent) -> [B, 3, 8h, 8w] in about [-1, 1]; ``skips=None``: the plain VAE path."""
        if self.vae.post_quant_conv is not None:
            z = self.vae.post_quant_conv(z)
        dec = self.vae.decoder
        h = dec.conv_in(z)
        h = self._run(dec.mid_block, h, None)
        for i, block in enumerate(dec.up_blocks):
            if skips is not None:
                h = h + self.skip_dropout(self.skips[i](skips[-1 - i] * self.cfg.skip_gamma))
            h = self._run(block, h, None)
        return dec.conv_out(dec.conv_act(dec.conv_norm_out(h)))

    def one_step(self, pred: Tensor, z: Tensor) -> Tensor:
        """The 1-step scheduler at t=999: the x0 (clean latent) estimate DDPMScheduler.step returns
        as ``prev_sample`` when it has one step (its added variance there is 1e-10, left out)."""
        a = self.alpha_bar.to(pred)
        if self.prediction == "epsilon":
            x0 = (z - (1 - a).sqrt() * pred) / a.sqrt()
        elif self.prediction == "v_prediction":
            x0 = a.sqrt() * z - (1 - a).sqrt() * pred
        else:
            x0 = pred
        return x0.clamp(-self.clip, self.clip) if self.clip is not None else x0

    def forward(self, images: Tensor) -> Tensor:  # [B, 3, H, W] in [0, 1] -> [B, 3, H, W] in [0, 1]
        assert images.ndim == 4 and images.shape[1] == 3, f"Enhancer wants [B, 3, H, W], got {tuple(images.shape)}"
        H, W = images.shape[-2:]
        x = pad_to_multiple(images, self.multiple) * 2 - 1
        moments, skips = self.encode(x)
        mean, logvar = moments.chunk(2, dim=1)
        z = mean
        if self.training and self.cfg.sample_latent:
            z = mean + torch.exp(0.5 * logvar.clamp(-30.0, 20.0)) * torch.randn_like(mean)
        sf = float(self.vae.config.scaling_factor)
        z = z * sf
        t = torch.full((z.shape[0],), TIMESTEP, device=z.device, dtype=torch.long)
        text = self.text.expand(z.shape[0], -1, -1).to(z.dtype)
        pred = self.unet(z, t, encoder_hidden_states=text).sample
        out = self.decode(self.one_step(pred, z) / sf, skips)
        if self.cfg.residual:
            out = x + out
        return (out.clamp(-1, 1)[..., :H, :W] + 1) / 2


def _alphas_cumprod(sched: dict[str, Any]) -> Tensor:
    """DDPMScheduler's ``alphas_cumprod`` for a config (built by diffusers itself: one source of truth)."""
    from diffusers import DDPMScheduler

    keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "prediction_type")
    return DDPMScheduler(**{k: sched[k] for k in keys if k in sched}).alphas_cumprod


def pad_to_multiple(x: Tensor, m: int) -> Tensor:
    """Replicate-pad the bottom and right of [B, C, H, W] to multiples of ``m`` (cropped back by the caller)."""
    H, W = x.shape[-2:]
    ph, pw = -H % m, -W % m
    if not ph and not pw:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Total and trainable parameters, and per top-level part (vae, unet, skips, text)."""
    out = {"total": sum(p.numel() for p in model.parameters()),
           "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}  # fmt: skip
    for name, child in model.named_children():
        out[name] = sum(p.numel() for p in child.parameters())
    return out


def load_enhancer(model_dir: str | Path, device: str | torch.device = "cpu") -> tuple[Enhancer, dict[str, Any]]:
    """Rebuild the tiny (full-weights) enhancer from ``config.json`` + ``model.safetensors``.

    An adapter-trained SD-Turbo enhancer (``meta["adapter"]`` set) is rebuilt by
    ``fairsplat.enhancer.checkpoint.load_any`` instead (it needs the base directory).
    """
    from fairsplat.io.checkpoint import load_weights, read_config

    meta = read_config(model_dir)
    if meta.get("adapter"):
        raise ValueError(f"{model_dir}: adapters on {meta['adapter'].get('base')}; load it with "
                         "fairsplat.enhancer.checkpoint.load_any")  # fmt: skip
    cfg = EnhancerConfig.from_json(meta["model"])
    text = None if cfg.text_learned else torch.zeros(1, cfg.text_tokens, cfg.cross_dim)
    model = Enhancer(cfg, text=text)
    load_weights(model, Path(model_dir) / "model.safetensors")
    return model.to(device).eval(), meta

