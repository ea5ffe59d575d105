"""A local SD-Turbo directory (stabilityai/sd-turbo's layout): checked before any work, then loaded offline.

No model hub is reachable here, so SD-Turbo is used only when a user points
``train_enhancer.sd-turbo-path`` at a copy. :func:`check_dir` names the key and
every missing file before anything is loaded; :func:`load` builds the VAE and
UNet with diffusers (``local_files_only``), encodes the fixed prompt once with
its CLIP text encoder (then drops the encoder: only the embedding is kept) and
returns the scheduler config the one step reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from fairsplat.config import ParamsError

WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
           "diffusion_pytorch_model.bin")  # fmt: skip
TEXT_WEIGHTS = ("model.safetensors", "model.fp16.safetensors", "pytorch_model.bin")
LAYOUT: dict[str, tuple[tuple[str, ...], ...]] = {
    "unet": (("config.json",), WEIGHTS),
    "vae": (("config.json",), WEIGHTS),
    "text_encoder": (("config.json",), TEXT_WEIGHTS),
    "tokenizer": (("vocab.json",), ("merges.txt",)),
    "scheduler": (("scheduler_config.json",),),
}
"""Sub-folder -> files it needs; each inner tuple is alternatives (one of them must exist)."""


def missing_files(path: str | Path) -> list[str]:
    """The files of :data:`LAYOUT` that ``path`` lacks (``a|b``: none of the alternatives), relative to it."""
    root = Path(path)
    missing = []
    for sub, needs in LAYOUT.items():
        for options in needs:
            if not any((root / sub / name).is_file() for name in options):
                missing.append("|".join(f"{sub}/{name}" for name in options))
    return missing


def check_dir(path: str | Path | None, key: str = "train_enhancer.sd-turbo-path") -> None:
    """Raise ParamsError naming ``key`` and what is missing; a no-op for None (the tiny default)."""
    if path is None:
        return
    root = Path(path)
    if not root.is_dir():
        raise ParamsError(f"{key}: {root} is not a directory (a local copy of stabilityai/sd-turbo: "
                          f"{', '.join(LAYOUT)}/)")  # fmt: skip
    missing = missing_files(root)
    if missing:
        raise ParamsError(f"{key}: {root} is not an SD-Turbo directory; missing {', '.join(missing)}")


def _variant(folder: Path) -> str | None:
    """'fp16' when only the fp16 weights are there (diffusers then needs ``variant='fp16'``)."""
    return None if (folder / WEIGHTS[0]).is_file() or (folder / WEIGHTS[2]).is_file() else "fp16"


def scheduler_config(path: str | Path) -> dict[str, Any]:
    return json.loads((Path(path) / "scheduler" / "scheduler_config.json").read_text())


@torch.no_grad()
def encode_prompt(path: str | Path, prompt: str) -> torch.Tensor:  # -> [1, 77, D]
    """The CLIP text encoding of ``prompt`` (SD-Turbo's conditioning), computed once and kept as a buffer."""
    from transformers import CLIPTextModel, CLIPTokenizer

    root = Path(path)
    tok = CLIPTokenizer.from_pretrained(root / "tokenizer", local_files_only=True)
    enc = CLIPTextModel.from_pretrained(root / "text_encoder", local_files_only=True).eval()
    ids = tok(prompt, max_length=tok.model_max_length, padding="max_length", truncation=True, return_tensors="pt")
    return enc(ids.input_ids)[0].float()


def load(path: str | Path, prompt: str) -> tuple[Any, Any, torch.Tensor, dict[str, Any]]:
    """(vae, unet, text embedding [1, 77, D], scheduler config) from a checked SD-Turbo directory, fp32."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    check_dir(path)
    root = Path(path)
    vae = AutoencoderKL.from_pretrained(root / "vae", local_files_only=True, variant=_variant(root / "vae"))
    unet = UNet2DConditionModel.from_pretrained(root / "unet", local_files_only=True, variant=_variant(root / "unet"))
    return vae.float(), unet.float(), encode_prompt(root, prompt), scheduler_config(root)
