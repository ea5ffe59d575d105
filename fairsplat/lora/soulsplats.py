"""The SoulSplats adapter layout (seed 000's card): ``lora_weights.pt`` + ``config.json`` + ``training_config.yaml``.

``lora_weights.pt`` is a flat dict of tensors, ``{layer}.lora_A`` [rank, in] and
``{layer}.lora_B`` [out, rank], read with ``torch.load(weights_only=True)``
(tensors only: nothing in the file is executed).

Name mapping: ``{layer}`` is the adapted Linear's path in our generator, e.g.
``decoder.blocks.3.attn.to_q``; peft holds the same matrices as
``base_model.model.decoder.blocks.3.attn.to_q.lora_A.default.weight``. The
card's own layer names are LAM's module paths, which its code does not
publish; a file from LAM itself therefore needs its names mapped onto ours
(one ``{old: new}`` dict) before :func:`import_soulsplats`, which refuses
anything it cannot place.

A file is refused, naming the first mismatch, when a name is not an adapted
layer of the model, a layer of the model is missing from it, a shape differs,
or its rank differs from the model's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from fairsplat.io.atomic import atomic_path, write_json, write_text
from fairsplat.io.checkpoint import CheckpointError, read_json_dict, read_torch_tensors
from fairsplat.lora.adapters import adapted_layers, lora_matrices

WEIGHTS = "lora_weights.pt"


def export_soulsplats(peft_model, out_dir: str | Path, config: dict[str, Any], training: dict[str, Any]) -> Path:
    """Write the three files of the card into ``out_dir``; returns the weights path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, layer in adapted_layers(peft_model).items():
        a, b = lora_matrices(layer)
        tensors[f"{name}.lora_A"] = a.detach().cpu().contiguous()
        tensors[f"{name}.lora_B"] = b.detach().cpu().contiguous()
    with atomic_path(out / WEIGHTS) as tmp, open(tmp, "wb") as fh:
        torch.save(tensors, fh)  # to a handle: torch names the zip's records after a path's stem, i.e. the random temp
    write_json(out / "config.json", config)
    write_text(out / "training_config.yaml", yaml.safe_dump(training, sort_keys=False))
    return out / WEIGHTS


def _expected(peft_model) -> dict[str, torch.Size]:
    out = {}
    for name, layer in adapted_layers(peft_model).items():
        a, b = lora_matrices(layer)
        out[f"{name}.lora_A"], out[f"{name}.lora_B"] = a.shape, b.shape
    return out


def check_soulsplats(tensors: dict[str, torch.Tensor], peft_model, source: str) -> None:
    """CheckpointError naming the first key that is unknown, missing, mis-shaped or of another rank."""
    want = _expected(peft_model)
    for key in sorted(tensors):
        if key not in want:
            raise CheckpointError(f"{source}: {key!r} is not an adapted layer of this model (e.g. {next(iter(want))!r})")
    for key in sorted(want):
        if key not in tensors:
            raise CheckpointError(f"{source}: missing {key!r}")
        got, exp = tuple(tensors[key].shape), tuple(want[key])
        if got == exp:
            continue
        axis = 0 if key.endswith(".lora_A") else 1  # A is [rank, in], B is [out, rank]
        if len(got) == 2 and got[axis] != exp[axis]:
            raise CheckpointError(f"{source}: {key!r} has rank {got[axis]}, the model's adapter has rank {exp[axis]}")
        raise CheckpointError(f"{source}: {key!r} has shape {got}, the model expects {exp}")


def import_soulsplats(peft_model, path: str | Path, rename: dict[str, str] | None = None) -> None:
    """Load a ``lora_weights.pt`` into ``peft_model``'s adapters (exact copy); refuses any mismatch."""
    path = Path(path)
    tensors = read_torch_tensors(path)  # refuses code, names the file when empty or truncated
    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        raise CheckpointError(f"{path}: expected a dict of tensors")
    if rename:
        tensors = {_rename(k, rename): v for k, v in tensors.items()}
    check_soulsplats(tensors, peft_model, str(path))
    with torch.no_grad():
        for name, layer in adapted_layers(peft_model).items():
            a, b = lora_matrices(layer)
            a.copy_(tensors[f"{name}.lora_A"])
            b.copy_(tensors[f"{name}.lora_B"])


def _rename(key: str, rename: dict[str, str]) -> str:
    layer, _, suffix = key.rpartition(".")
    return f"{rename.get(layer, layer)}.{suffix}"


def read_config(directory: str | Path) -> dict[str, Any]:
    return read_json_dict(Path(directory) / "config.json")
