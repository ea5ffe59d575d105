"""The trained face parser: a segmentation-models-pytorch network, saved as safetensors + JSON.

Why smp: it gives every common architecture (Unet, FPN, DeepLabV3+, ...) over
every timm encoder behind one constructor, so architecture and encoder are
params, not code. Encoder weights: ImageNet weights are used only when the
user gives a local file (``encoder_weights_path``); otherwise the encoder is
random. ``encoder_weights=None`` is always passed to smp, so neither smp nor
timm ever reaches for the network (nothing can be downloaded here, and a
pipeline stage must not depend on a download anyway).

Checkpoint layout (DESIGN.md section 5), in one directory::

    model.safetensors   the state dict (safetensors.torch.save_model)
    config.json         ParserConfig fields + "training" summary

Inputs are ``[B, 3, S, S]`` RGB in [0, 1]; the model normalises internally
with the config's mean/std, so callers never need to know the encoder's stats.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fairsplat.io.atomic import atomic_path, write_json
from fairsplat.labels import CELEBAMASK_CLASSES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ParserConfig:
    """Everything needed to rebuild the network; stored as config.json next to the weights."""

    arch: str = "Unet"
    encoder: str = "resnet18"
    encoder_depth: int = 5
    decoder_channels: tuple[int, ...] = (128, 64, 32, 16, 16)
    size: int = 128  # input side the model was trained at
    labels: tuple[str, ...] = CELEBAMASK_CLASSES  # output channel i = labels[i]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    tta_flip: bool = False  # inference averages the logits of the crop and of its mirror image
    training: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ParserConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"parser config: unknown keys {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class Parser(nn.Module):
    """smp network plus input normalisation. [B, 3, S, S] in [0, 1] -> logits [B, C, S, S]."""

    def __init__(self, cfg: ParserConfig):
        super().__init__()
        import segmentation_models_pytorch as smp

        kw: dict[str, Any] = {"encoder_depth": cfg.encoder_depth}
        if cfg.arch in ("Unet", "UnetPlusPlus", "MAnet"):
            if len(cfg.decoder_channels) != cfg.encoder_depth:
                raise ValueError(
                    f"decoder-channels has {len(cfg.decoder_channels)} entries; {cfg.arch} needs encoder-depth "
                    f"({cfg.encoder_depth})"
                )
            kw["decoder_channels"] = list(cfg.decoder_channels)
        self.net = smp.create_model(
            cfg.arch, encoder_name=cfg.encoder, encoder_weights=None, in_channels=3, classes=len(cfg.labels), **kw
        )
        self.register_buffer("mean", torch.tensor(cfg.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std).view(1, 3, 1, 1), persistent=False)
        self.cfg = cfg

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, 3, S, S] -> [B, C, S, S]
        assert x.ndim == 4 and x.shape[1] == 3, x.shape
        return self.net((x - self.mean) / self.std)

    @torch.no_grad()
    def infer(self, x: torch.Tensor) -> torch.Tensor:  # [B, 3, S, S] -> [B, C, S, S]
        """Inference logits; with ``tta_flip`` the mean over the crop and its mirror (left/right channels swapped).

        Why: a mirrored face is as valid a face, so the mean cancels part of
        the net's asymmetric errors; it costs one extra forward pass.
        """
        y = self(x)
        if self.cfg.tta_flip:
            y = 0.5 * (y + self(x.flip(-1)).flip(-1)[:, mirror_channels(self.cfg.labels)])
        return y


def mirror_channels(labels: tuple[str, ...]) -> list[int]:
    """Channel order after a horizontal flip: ``l_x`` <-> ``r_x`` (by name), others fixed.

    A name without a partner stays: CelebAMask-HQ's ``l_lip`` is the *lower* lip (no ``r_lip``).
    """
    index = {n: i for i, n in enumerate(labels)}
    swap = {"l_": "r_", "r_": "l_"}
    return [index.get(swap[n[:2]] + n[2:], i) if n[:2] in swap else i for i, n in enumerate(labels)]


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    """A user's state dict (safetensors, or a torch file read with weights_only: no code runs); errors name it."""
    from fairsplat.io.checkpoint import CheckpointError, read_safetensors, read_torch_tensors

    if path.suffix == ".safetensors":
        return read_safetensors(path)
    state = read_torch_tensors(path)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    return state


IMAGENET = "imagenet"
"""``encoder_weights`` value meaning "the project's registry ImageNet weights" (fairsplat/weights)."""


def load_imagenet_encoder(model: Parser) -> dict[str, int | str]:
    """ImageNet weights from the weights registry into the encoder. Only ``vgg16`` has any offline:
    the VGG16 trunk of the LPIPS checkpoint (``lpips_vgg``, via ``weights.backbones.vgg16_features``);
    smp's vgg16 encoder is torchvision's ``features`` stack, so the 26 tensors map one to one."""
    if model.cfg.encoder != "vgg16":
        raise ValueError(f"encoder-weights: imagenet: no offline ImageNet weights for encoder {model.cfg.encoder!r}; "
                         "the registry has VGG16 only (encoder: vgg16), or give a local state dict path")  # fmt: skip
    from fairsplat.weights.backbones import vgg16_features

    state = {f"features.{k}": v for k, v in vgg16_features().state_dict().items()}
    own = model.net.encoder.state_dict()
    match = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(match) != len(own):
        raise ValueError(f"vgg16 ImageNet weights: {len(match)}/{len(own)} encoder tensors match")
    model.net.encoder.load_state_dict(match, strict=True)
    return {"matched": len(match), "encoder_tensors": len(own), "encoder_weights_source": "registry lpips_vgg (ImageNet VGG16)"}


def load_encoder_weights(model: Parser, path: str | Path) -> dict[str, int]:
    """Load a local encoder state dict (e.g. ImageNet resnet18 from torchvision or timm).

    Keys may be bare (``conv1.weight``) or prefixed (``encoder.``); classifier
    keys (``fc.*``) are ignored. Fails if fewer than 90% of the encoder's
    tensors match, so a wrong file is never half-loaded in silence.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"encoder weights {path} not found")
    state = {k.removeprefix("encoder."): v for k, v in _read_state(path).items()}
    own = model.net.encoder.state_dict()
    match = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(match) < 0.9 * len(own):
        raise ValueError(f"{path}: only {len(match)}/{len(own)} encoder tensors match {model.cfg.encoder}")
    model.net.encoder.load_state_dict(match, strict=False)
    return {"matched": len(match), "encoder_tensors": len(own)}


def save_parser(out_dir: Path, model: Parser, cfg: ParserConfig) -> None:
    """Write model.safetensors and config.json (each atomically) into ``out_dir``."""
    from safetensors.torch import save_model

    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "model.safetensors") as tmp:
        save_model(model, str(tmp))
    write_json(out_dir / "config.json", cfg.to_json())


def load_parser(model_dir: Path, device: str | torch.device = "cpu") -> Parser:
    """Rebuild from config.json and load model.safetensors (strict: every tensor must match)."""
    from safetensors.torch import load_model

    model_dir = Path(model_dir)
    cfg_path, weights = model_dir / "config.json", model_dir / "model.safetensors"
    if not cfg_path.exists():
        raise FileNotFoundError(f"{cfg_path}: no parser config (run stage train_parser)")
    cfg = ParserConfig.from_json(json.loads(cfg_path.read_text()))
    if not weights.exists():
        reason = cfg.training.get("status", "missing")
        raise FileNotFoundError(f"{weights}: no trained weights ({reason}); use parse.backend=segformer or ground_truth")
    model = Parser(cfg)
    load_model(model, str(weights), strict=True)
    return model.to(device).eval()
