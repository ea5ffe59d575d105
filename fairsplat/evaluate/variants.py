"""The avatar variants that exist in this run, each as one :class:`~fairsplat.avatar.avatar.Avatar` per subject.

``BASES`` (a plain dict) names the base variants and how to build them:

- ``ff``: stage train_ff's generator (``models/ff``) on the subject's source
  crop, K = 1 (``fairsplat.refine.run.ff_avatar``: the same call refinement
  starts from);
- ``lora``: the same generator with stage lora's adapter
  (``models/lora/lora_weights.pt``, the SoulSplats layout, imported exactly
  through ``fairsplat.lora.soulsplats``);
- ``refined``: stage refine's per-subject avatars (``data/refined/<subject>/``);
  only the subjects refine refined, and only on the crops it never trained on.

Each base is also scored through the enhancer (``<base>+enhancer``) when
``models/enhancer`` exists: the enhancer runs on every render before scoring.

A variant whose inputs are missing (no ``models/lora``, no refined avatars, no
enhancer) is **absent with the reason**, never a crash; a subject a variant has
no avatar for is listed with the reason (refine's rejects).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from fairsplat.avatar.avatar import Avatar
from fairsplat.avatar.binding import AvatarBinding
from fairsplat.evaluate.config import Inputs
from fairsplat.evaluate.protocol import Plan
from fairsplat.ff.data import Frames

ENHANCED = "+enhancer"
"""Suffix of an enhanced variant's name: ``ff+enhancer``."""


@dataclass
class Built:
    """One base variant's avatars, the crops each was fitted on, and the subjects it has none for (and why)."""

    name: str
    avatars: dict[str, Avatar]
    seen: dict[str, set[str]] = field(default_factory=dict)  # subject -> image ids the avatar was fitted on
    missing: dict[str, str] = field(default_factory=dict)  # subject -> reason it has no avatar
    info: dict = field(default_factory=dict)


class VariantAbsent(Exception):
    """The variant cannot be built here; the message is the reason (it names the missing input)."""


def _need(path: Path, what: str) -> None:
    if not path.exists():
        raise VariantAbsent(f"{path} not found ({what})")


def _generator(path: Path, frames: Frames):
    from fairsplat.models.feature_store import attach_store
    from fairsplat.models.generator import load_generator

    _need(path / "config.json", "stage train_ff has not run")
    model, meta = load_generator(path)
    attach_store(model)  # the frozen trunk's levels of these crops were stored by train_ff (a no-op otherwise)
    size = int(frames.images.shape[-1])
    if int(meta.get("size", size)) != size:
        raise VariantAbsent(f"{path}: trained at {meta['size']} px, the crops are {size} px (curate.size)")
    return model, meta


def _from_generator(name: str, model, meta: dict, frames: Frames, plan: Plan, head) -> Built:
    from fairsplat.ff.generate import generator_binding
    from fairsplat.refine.run import ff_avatar

    binding = generator_binding(meta, head)
    avatars = {s: ff_avatar(model, frames, binding, [p.source]) for s, p in plan.subjects.items()}
    return Built(name, avatars, {s: {frames.ids[p.source]} for s, p in plan.subjects.items()})


def build_ff(inputs: Inputs, frames: Frames, plan: Plan, head) -> Built:
    model, meta = _generator(inputs.ff, frames)
    return _from_generator("ff", model, meta, frames, plan, head)


def build_lora(inputs: Inputs, frames: Frames, plan: Plan, head) -> Built:
    from fairsplat.lora.adapters import LoraSpec, attach
    from fairsplat.lora.soulsplats import WEIGHTS, import_soulsplats

    from fairsplat.lora.save import ABSENT

    if (inputs.lora / ABSENT).is_file():  # stage lora ran and wrote why there is no adapter (a UV base)
        raise VariantAbsent(json.loads((inputs.lora / ABSENT).read_text())["reason"])
    _need(inputs.lora / WEIGHTS, "stage lora has not run")
    model, meta = _generator(inputs.ff, frames)
    cfg = json.loads((inputs.lora / "config.json").read_text())
    if cfg.get("decoder") != meta.get("decoder"):  # a UV generator has no decoder: stage lora refuses it
        raise VariantAbsent(f"{inputs.lora}: the adapter was made for another decoder than {inputs.ff}'s")
    spec = LoraSpec(int(cfg["rank"]), float(cfg["alpha"]), float(cfg.get("dropout", 0.0)), tuple(cfg["target_modules"]))
    peft = attach(model, spec)
    import_soulsplats(peft, inputs.lora / WEIGHTS)
    built = _from_generator("lora", peft.eval(), meta, frames, plan, head)
    built.info = {"rank": spec.rank, "alpha": spec.alpha}
    return built


def build_refined(inputs: Inputs, frames: Frames, plan: Plan, head) -> Built:
    from fairsplat.io.tables import read_table

    _need(inputs.refined / "manifest.parquet", "stage refine has not run")
    done = {r["subject_id"]: r for r in read_table(inputs.refined / "manifest.parquet")}
    rejects = inputs.refined / "rejects.parquet"
    why = {r["subject_id"]: r["reason"] for r in read_table(rejects)} if rejects.is_file() else {}
    built = Built("refined", {})
    for s in plan.subjects:
        if s not in done:
            built.missing[s] = f"not refined: {why.get(s, 'not in data/refined/manifest.parquet')}"
            continue
        d = inputs.refined / done[s]["path"]
        built.avatars[s] = Avatar.load(d, head)
        info = json.loads((d / "refine.json").read_text())["info"] if (d / "refine.json").is_file() else {}
        built.seen[s] = {*info.get("train_ids", []), *info.get("watch_ids", []), *info.get("source_ids", [])}
    if not built.avatars:
        raise VariantAbsent(f"{inputs.refined}: no held-out subject of this evaluation was refined")
    return built


BASES: dict[str, Callable[[Inputs, Frames, Plan, object], Built]] = {
    "ff": build_ff,
    "lora": build_lora,
    "refined": build_refined,
}
"""Base variant name -> builder; raises :class:`VariantAbsent` with the reason when its inputs are missing."""


def load_enhancer(path: Path, batch: int = 8) -> tuple[Callable[[Tensor], Tensor] | None, str | None]:
    """(enhance [B, 3, S, S] -> [B, 3, S, S] in [0, 1], None), or (None, why it is absent)."""
    if not (path / "config.json").is_file():
        return None, f"{path} not found (stage train_enhancer has not run, or is not in this pipeline)"
    try:
        from fairsplat.enhancer.checkpoint import load_any

        model, _ = load_any(path)
    except (ImportError, OSError, ValueError, KeyError) as err:
        return None, f"{path}: the enhancer cannot be loaded ({type(err).__name__}: {err})"
    model.eval()

    @torch.no_grad()
    def enhance(rgb: Tensor) -> Tensor:
        return torch.cat([model(rgb[i : i + batch]).float().clamp(0, 1) for i in range(0, len(rgb), batch)])

    return enhance, None
