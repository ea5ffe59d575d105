"""Checkpoints: weights as safetensors plus a JSON config; resumable training state beside them.

Two kinds, on purpose:

- **model** (``model.safetensors`` + ``config.json``): what a stage hands to
  the next one. safetensors holds tensors only, so loading it never runs code,
  and ``load_weights`` refuses a file whose names or shapes differ from the
  model's, naming the first mismatching key, instead of half-loading it.
- **train state** (a directory): the model, plus the optimiser and scheduler
  state, every RNG stream and the step, so that an interrupted run resumes
  where it stopped. Optimiser and scheduler states are nested dicts of tensors
  and numbers, saved with ``torch.save`` and read back with
  ``weights_only=True`` (no code runs); RNG states are tensors and ints;
  ``state.json`` carries the step and a fingerprint of what was being
  trained, so a checkpoint of a different run is never resumed.

Every write is atomic (``fairsplat.io.atomic``): a crash mid-save leaves the
previous checkpoint intact, never half of a new one.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fairsplat.io.atomic import atomic_dir, atomic_path, write_json


class CheckpointError(ValueError):
    """A checkpoint does not fit the model it is loaded into; the message names the first mismatch."""


def save_weights(out_dir: str | Path, state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> None:
    """Write ``model.safetensors`` and ``config.json`` into ``out_dir`` (each atomically)."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    with atomic_path(out_dir / "model.safetensors") as tmp:
        save_file(tensors, str(tmp))
    write_json(out_dir / "config.json", dict(config))


def read_config(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no config.json (was the stage that writes {Path(model_dir)} run?)")
    return read_json_dict(path)


def read_json_dict(path: str | Path) -> dict[str, Any]:
    """A JSON object from ``path``; CheckpointError naming the file when it is empty, truncated or not an object."""
    try:
        data = json.loads(Path(path).read_bytes())
    except (ValueError, OSError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CheckpointError(f"{path}: not a readable JSON file ({type(err).__name__}: {err})"[:300]) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file; CheckpointError naming the file when it is empty, truncated or not one.

    Why wrapped: safetensors' own error says what broke in the header but not which file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no weights file")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})"[:300]) from None


def read_torch_tensors(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` (tensors, numbers and plain containers; no code runs), errors naming the file.

    A pickle that names any other global is refused by torch before it is looked up; an empty or truncated
    file is reported as such instead of torch's generic message.
    """
    import pickle

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        boiler = ("Weights only load failed", "Check the documentation", "Please file an issue")
        why = " ".join(q.strip() for q in str(err).split("\n\n") if q.strip() and not q.strip().startswith(boiler))
        raise CheckpointError(f"{path}: refused: holds something other than tensors and numbers, or is corrupt; "
                              f"nothing from it was run ({why or err})"[:400]) from None  # fmt: skip
    except (EOFError, RuntimeError, OSError, ValueError) as err:  # empty, truncated zip, not a torch file
        raise CheckpointError(f"{path}: not a readable torch file, empty or truncated ({type(err).__name__}: {err})"[:300]) from None


def check_state(expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError naming the first key that is missing, unexpected or of another shape."""
    for key in sorted(set(expected) | set(got)):
        if key not in got:
            raise CheckpointError(f"{source}: missing tensor {key!r} (expected shape {tuple(expected[key].shape)})")
        if key not in expected:
            raise CheckpointError(f"{source}: unexpected tensor {key!r} (shape {tuple(got[key].shape)})")
        if tuple(expected[key].shape) != tuple(got[key].shape):
            raise CheckpointError(f"{source}: tensor {key!r} has shape {tuple(got[key].shape)}, "
                                  f"the model expects {tuple(expected[key].shape)}")  # fmt: skip


def load_weights(module: torch.nn.Module, path: str | Path) -> None:
    """Load a safetensors file into ``module``: every name and shape must match (else CheckpointError)."""
    state = read_safetensors(path)
    check_state(module.state_dict(), state, str(path))
    module.load_state_dict(state, strict=True)


# ---- resumable training state ------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """Every RNG stream a training step may draw from (torch CPU and CUDA, numpy, Python)."""
    np_state = np.random.get_state()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
        "python": [list(random.getstate()[1]), random.getstate()[0], random.getstate()[2]],
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    internal, version, gauss = state["python"]
    random.setstate((version, tuple(int(x) for x in internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class TrainState:
    """Everything needed to continue a run exactly; ``extra`` is the task's own (e.g. data position)."""

    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    rng: dict[str, Any]
    fingerprint: str
    extra: dict[str, Any] = field(default_factory=dict)


def save_train_state(directory: str | Path, state: TrainState) -> None:
    """Replace ``directory`` atomically with the state (model safetensors + torch-saved rest + JSON)."""
    from safetensors.torch import save_file

    with atomic_dir(directory) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.model.items()}, str(tmp / "model.safetensors"))
        rest = {"optimizer": state.optimizer, "scheduler": state.scheduler, "rng": state.rng, "extra": state.extra}
        torch.save(rest, tmp / "state.pt")
        write_json(tmp / "state.json", {"step": state.step, "fingerprint": state.fingerprint})


def load_train_state(directory: str | Path, fingerprint: str, expected: Mapping[str, torch.Tensor] | None = None,
                     ) -> TrainState | None:  # fmt: skip
    """The state saved in ``directory``, or None when there is none or it belongs to another run.

    A checkpoint whose fingerprint differs (other params, other data) is not
    resumed: it is a different run, and silently continuing it would mix two.
    A state of this run that cannot be read (empty, truncated, a pickle carrying
    code) raises CheckpointError naming the file: restarting from step 0 without
    a word would hide the damage. ``expected`` (the model's state_dict): its
    weights must match by name and shape, checked here so the error names the file.
    """
    directory = Path(directory)
    meta_path = directory / "state.json"
    if not meta_path.is_file():
        return None
    meta = read_json_dict(meta_path)
    if meta.get("fingerprint") != fingerprint:
        return None
    rest = read_torch_tensors(directory / "state.pt")  # tensors and numbers only
    if not isinstance(rest, dict) or not {"optimizer", "scheduler", "rng"} <= set(rest):
        raise CheckpointError(f"{directory / 'state.pt'}: not a training state (needs optimizer, scheduler and rng)")
    model = read_safetensors(directory / "model.safetensors")
    if expected is not None:
        check_state(expected, model, str(directory / "model.safetensors"))
    return TrainState(int(meta["step"]), model, rest["optimizer"], rest["scheduler"], rest["rng"], fingerprint,
                      rest.get("extra") or {})  # fmt: skip


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (params, input digests): which run a checkpoint belongs to."""
    import hashlib

    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes (streamed): an input's identity for a checkpoint fingerprint."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
