"""A content-addressed store of a frozen encoder trunk's feature levels, in memory and on disk.

Why: the VGG16 trunk is frozen (ImageNet weights), so its features of one crop never change, yet
computing them costs ~0.17 s per 128 px crop on one core, ten times the small DINOv2's whole
forward + backward. ``train_ff`` (two generators side by side), ``lora`` (two fine-tunes) and the
held-out scoring all encode the same curated crops. The store computes each crop's levels once
(``warm``, in the main process with every thread) and every later forward reads them.

Keys are the sha256 of the input tensor's bytes joined to the trunk's ``signature`` (encoder name,
the weights' sha256, the levels and grid, :data:`STORE_VERSION`), so a stale entry cannot be read:
change the trunk and every key changes. Levels are kept in float16, and the encoder rounds its
levels to float16 whether they come from the store or not, so a stored forward equals a fresh one.

The folder is ``$FAIRSPLAT_FEATURES_DIR`` or ``<repo>/.cache/features`` (git- and dvc-ignored; in a
DVC experiment workspace, the outer checkout's, like the weights). Deleting it only costs time.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

STORE_VERSION = 2  # 2: NHWC convolutions (other rounding than v1's NCHW)
"""Bump when a trunk's computation changes in a way its signature does not show."""
ENV_DIR = "FAIRSPLAT_FEATURES_DIR"

Levels = list[Tensor]  # per level [N, C_i, h, w], float16 rounded


def features_dir() -> Path:
    from fairsplat.weights.store import REPO_ROOT, _outer_repo

    return Path(os.environ.get(ENV_DIR) or _outer_repo(REPO_ROOT) / ".cache" / "features")


class FeatureStore:
    """``get(images, compute)``: the levels of each image, computed only for images never seen."""

    def __init__(self, root: str | Path, signature: str) -> None:
        self.dir = Path(root) / hashlib.sha256(signature.encode()).hexdigest()[:16]
        self.signature = signature
        self.memory: dict[str, list[Tensor]] = {}  # key -> per level [C_i, h, w] float16
        self.computed = 0  # images whose levels this store computed (tests, logs)

    @staticmethod
    def key(image: Tensor) -> str:  # [3, H, W]
        return hashlib.sha256(image.detach().float().contiguous().cpu().numpy().tobytes()).hexdigest()

    def _read(self, key: str) -> list[Tensor] | None:
        from safetensors.torch import load_file

        path = self.dir / f"{key}.safetensors"
        if not path.is_file():
            return None
        try:
            d = load_file(path)
        except Exception:  # a damaged entry is recomputed, never trusted
            return None
        return [d[f"level{i}"] for i in range(len(d))]

    def _write(self, key: str, levels: list[Tensor]) -> None:
        from safetensors.torch import save_file

        from fairsplat.io.atomic import atomic_path

        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.dir / f"{key}.safetensors") as tmp:
            save_file({f"level{i}": t.contiguous() for i, t in enumerate(levels)}, str(tmp),
                      metadata={"signature": self.signature})  # fmt: skip

    def get(self, images: Tensor, compute: Callable[[Tensor], Levels]) -> Levels:
        """images [N, 3, H, W] -> per level [N, C_i, h, w] (float32 values of float16 numbers), on images' device."""
        keys = [self.key(im) for im in images]
        missing = []
        for i, k in enumerate(keys):
            if k not in self.memory and (found := self._read(k)) is not None:
                self.memory[k] = found
            if k not in self.memory:
                missing.append(i)
        if missing:
            with torch.no_grad():
                fresh = compute(images[missing])
            for j, i in enumerate(missing):
                if keys[i] not in self.memory:  # the same image twice in one batch
                    self.memory[keys[i]] = [lvl[j].to("cpu", torch.float16) for lvl in fresh]
                    self._write(keys[i], self.memory[keys[i]])
                    self.computed += 1
        n_levels = len(self.memory[keys[0]])
        return [torch.stack([self.memory[k][l] for k in keys]).to(images.device, torch.float32) for l in range(n_levels)]

    def warm(self, images_u8: Tensor, compute: Callable[[Tensor], Levels], prepare: Callable[[Tensor], Tensor],
             batch: int = 32, progress: bool = True) -> int:  # fmt: skip
        """Fill the store for uint8 crops [N, 3, H, W]; returns how many entries are new.

        ``prepare`` maps ``x.float() / 255`` (what the trainer feeds) to what the encoder sees (a resize), so
        the keys are the ones the encoder's forward will look up."""
        from tqdm import tqdm

        before = self.computed
        for s in tqdm(range(0, len(images_u8), batch), desc="encoder features", disable=not progress, leave=False):
            self.get(prepare(images_u8[s : s + batch].float() / 255), compute)
        self.memory.clear()  # the workers read what they need from disk
        return self.computed - before


def stored_encoders(model: nn.Module) -> list[nn.Module]:
    """The modules of ``model`` (a generator, wrapped by peft or not) that can read a store."""
    return [m for m in model.modules() if getattr(m, "frozen_trunk", False)]


def attach_store(model: nn.Module, root: str | Path | None = None) -> int:
    """Give every frozen-trunk encoder in ``model`` a store under ``root``; returns how many got one."""
    encs = stored_encoders(model)
    for enc in encs:
        enc.store = FeatureStore(root or features_dir(), enc.signature())
    return len(encs)
