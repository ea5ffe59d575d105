"""Params of stage ``train_parser``: the smp face parser and how it is trained.

Defaults are the small CPU run: SynthHeads crops at 128 px, a Unet over a
random-init resnet18, ~4-9 minutes on 2 shared CPU cores. Real runs (512 px crops): size 512,
batch-size 8 on a GPU, mixed-precision bf16, an ImageNet encoder via encoder-weights if you
have one locally; several GPUs: ``accelerate launch -m stages.train_parser`` (device,
precision and accumulation are the keys below, read through fairsplat/train/accel.py).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from fairsplat.config import Section, bare_no

ARCHS = ("Unet", "UnetPlusPlus", "FPN", "PSPNet", "DeepLabV3", "DeepLabV3Plus", "Linknet", "MAnet", "PAN", "UPerNet", "Segformer")


class TrainParserParams(Section):
    section: ClassVar[str] = "train_parser"

    arch: str = "Unet"
    """smp architecture. Unet keeps full-resolution skips: eyes and brows are a few px at 128."""

    encoder: str = "resnet18"
    """smp/timm encoder name (``tu-<timm name>`` for any timm model). resnet18: small, fast on CPU.
    ``vgg16`` (with ``encoder-weights: imagenet``) takes 4.5x its CPU time per step at 128 px (6x the
    FLOPs): ~50 minutes at the default 420 steps against this stage's ~11. In this stage's CPU time (one
    epoch) it scores 0.773 held-out mIoU against resnet18's 0.818 (it is ahead at equal steps: 0.773 vs
    0.699), so resnet18 stays, by measurement at equal time (bench/parser_encoders.py, README "Parser encoder")."""

    encoder_depth: int = Field(5, ge=3, le=5)
    """Encoder stages used (smp's default 5)."""

    decoder_channels: list[int] = [128, 64, 32, 16, 16]
    """Unet decoder widths, one per encoder stage. Half smp's default: at 128 px and 19
    classes the wide default costs ~15% more time for no measurable mIoU."""

    encoder_weights: str | None = None
    """null = random init; ``imagenet`` = the registry's ImageNet weights (only ``encoder: vgg16``
    has any offline: the VGG16 trunk of ``lpips_vgg``); or a local encoder state dict
    (.pth/.safetensors). Nothing is ever downloaded at training time."""

    size: int = Field(128, ge=32, le=2048)
    """Training/inference side, px; crops of other sizes are resized. Match curate.size."""

    illuminant: float = Field(0.0, ge=0.0, le=1.0)
    """Probability per crop of a coloured light (blackbody 2,700-7,500 K, no white balance) and a
    -1..+1 EV exposure error in training (parse/train.py ``photo_augment``): real photos' light."""

    blur: float = Field(0.0, ge=0.0, le=1.0)
    """Probability per crop of a Gaussian blur (sigma 0.5-1.5 px) in training: soft or small faces."""

    epochs: int = Field(5, ge=1)
    """Passes over the train split. 5 over the default ~1,700 train crops is ~530 steps, the step
    count of the earlier 60 epochs over 144 crops (held-out mIoU 0.81 then): cost grows with steps,
    not with the data, and more different faces per step should not hurt (measured: README)."""

    batch_size: int = Field(16, ge=1)
    """Crops per step; 16 at 128 px fits any CPU's memory."""

    lr: float = Field(2e-3, gt=0.0, le=1.0)
    """AdamW peak learning rate (random init tolerates a high one; cosine decay to 0)."""

    weight_decay: float = Field(1e-4, ge=0.0)
    """AdamW weight decay; small, the set is small and the net is not."""

    warmup_frac: float = Field(0.05, ge=0.0, lt=1.0)
    """Share of steps with linear warm-up (stabilises BatchNorm statistics from random init)."""

    dice_weight: float = Field(0.5, ge=0.0)
    """Weight of soft Dice beside cross-entropy: keeps small classes (eyes, lips) from being ignored."""

    class_weight_power: float = Field(0.5, ge=0.0, le=1.0)
    """Cross-entropy class weights (median freq / freq) ** power: without them the net
    never predicts a 15 px eye (held-out eye IoU 0.0 at power 0). 0 = unweighted."""

    flip: bool = True
    """Random horizontal flips with left/right labels swapped."""

    affine: float = Field(0.0, ge=0.0, le=3.0)
    """Random similarity per crop (1 = scale +-10%, rotation +-10 deg, shift +-5%). Off: on the
    default data it cost 0.01 held-out mIoU at 40 epochs (nearest-resampled 2 px eyes turn
    jagged) while narrowing the type gap 0.05 -> 0.03. Worth trying on real photos."""

    tta_flip: bool = True
    """Inference (held-out scoring and stage parse) averages each crop with its mirror image:
    one extra forward pass; part of the default's 0.81 held-out mIoU."""

    colour_jitter: float = Field(0.2, ge=0.0, le=1.0)
    """Brightness/contrast/saturation jitter: the parser must not tie 'skin' to one tone."""

    train_splits: list[str] = ["train"]
    """Curate splits trained on."""

    eval_splits: list[str] = ["val", "test"]
    """Held-out identities scored once at the end (never used for selection)."""

    eval_every: int = Field(1, ge=0)
    """Log held-out mIoU every N epochs (watching only); 0 = only at the end."""

    checkpoint_every: int = Field(100, ge=0)
    """Optimiser steps between resumable checkpoints in .checkpoints/train_parser (resumed when params and
    the curated manifest match; removed when the stage finishes). 100: a killed default run (~1.6 s a step
    on the default CPU) loses under 3 minutes; one checkpoint (weights + AdamW moments) is ~3x the model. 0 = none."""

    seed: int = Field(0, ge=0)
    """Seeds torch's generators: same data, params and threads give the same weights."""

    device: Literal["auto", "cpu"] = "auto"
    """auto = wherever accelerate puts this process (its GPU under ``accelerate launch``, CUDA if
    present, else CPU); cpu = force CPU even with a GPU (accelerate's ``cpu=True``)."""

    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    """Autocast of the forward pass (accelerate). no: the default CPU run is fp32 and bit-for-bit
    reproducible. bf16 on GPUs that have it (what real-scale runs want) and on CPU; fp16 needs CUDA
    (loss scaling). Weights stay fp32 and the final held-out score is computed in fp32."""

    grad_accum: int = Field(1, ge=1)
    """Micro-batches per optimiser step (gradient accumulation): effective batch = batch-size x
    grad-accum x processes. 1: 16 crops at 128 px fit any CPU. lr is not rescaled."""

    threads: int = Field(1, ge=0)
    """torch CPU threads; 0 = torch's default (all cores). 1 by default: on the 2 shared cores
    of the default machine, 2 threads ran a training step 6x slower at load 5 (oversubscription)."""

    @field_validator("arch")
    @classmethod
    def _arch(cls, v: str) -> str:
        if v not in ARCHS:
            raise ValueError(f"unknown architecture {v!r}; choose from {', '.join(ARCHS)}")
        return v

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _bare_no(cls, v: object) -> object:
        return bare_no(v)

    @field_validator("mixed_precision")
    @classmethod
    def _precision(cls, v: str, info: ValidationInfo) -> str:
        if v == "fp16" and info.data.get("device") == "cpu":
            raise ValueError("fp16 needs CUDA and device is cpu; use bf16 or no")
        return v

    @model_validator(mode="after")
    def _check(self) -> TrainParserParams:
        if self.arch in ("Unet", "UnetPlusPlus", "MAnet") and len(self.decoder_channels) != self.encoder_depth:
            raise ValueError(f"decoder-channels: {len(self.decoder_channels)} entries, encoder-depth is {self.encoder_depth}")
        if set(self.train_splits) & set(self.eval_splits):
            raise ValueError("train-splits and eval-splits overlap: held-out mIoU would not be held out")
        return self

    def train_config(self):
        """The library's TrainConfig (fairsplat.parse.train)."""
        from fairsplat.models.parser import ParserConfig
        from fairsplat.parse.train import TrainConfig
        from fairsplat.train.accel import AccelConfig

        model = ParserConfig(arch=self.arch, encoder=self.encoder, encoder_depth=self.encoder_depth,
                             decoder_channels=tuple(self.decoder_channels), size=self.size,
                             tta_flip=self.tta_flip)  # fmt: skip
        return TrainConfig(
            model=model, encoder_weights=self.encoder_weights, epochs=self.epochs, batch_size=self.batch_size,
            lr=self.lr, weight_decay=self.weight_decay, warmup_frac=self.warmup_frac, dice_weight=self.dice_weight,
            class_weight_power=self.class_weight_power,
            flip=self.flip, affine=self.affine, colour_jitter=self.colour_jitter, illuminant=self.illuminant, blur=self.blur,
            train_splits=tuple(self.train_splits),
            eval_splits=tuple(self.eval_splits), eval_every=self.eval_every,
            checkpoint_every=self.checkpoint_every, seed=self.seed,
            accel=AccelConfig(device=self.device, mixed_precision=self.mixed_precision, grad_accum=self.grad_accum,
                              section="train_parser"),
        )  # fmt: skip
