"""Stage ``enhance``: the enhancer on real splat renders of held-out frames, scored against SynthHeads ground truth.

A **render source** yields, subject by subject, renders of held-out frames
with the ground-truth crops they should match. Sources are a plain dict
(:data:`SOURCES`), chosen by ``enhance.sources``:

- ``ff``: the one-shot generator (stage ``train_ff``, ``models/ff``) under its
  own held-out protocol (``fairsplat/ff/evaluate.py``): per held-out subject,
  an avatar from its first ``k`` crops, rendered at every crop after the
  first ``skip`` with that crop's tracked FLAME parameters and camera, over
  mid-grey (train_ff scores K = 1 and 2 on the crops after the first 2, so
  these are its targets).
- ``refined``: stage refine's per-subject avatars (``data/refined/<subject>/``,
  issue 13), each rendered at the held-out crops refine scored it on (its
  ``refine.json`` ``heldout_ids``: frames it never trained or watched on), with
  those crops' tracked FLAME parameters and camera, over mid-grey; only the
  subjects refine refined (``enhance.max-targets`` caps them too).

A source whose inputs are missing (no generator, no refined avatars) raises
:class:`SourceAbsent` before its first render: the stage reports it absent with
the reason and scores the others.

Each render is enhanced and both are scored against the crop (row schema:
``fairsplat/enhancer/evaluate.py``'s names, ``_input`` = the raw render):
PSNR, SSIM, LPIPS-AlexNet, full and masked to the crop's alpha; skin ITA of the
render over the avatar's own skin Gaussians (as train_ff measures it) against
the crop's labelled skin, for the raw and the enhanced render
(``delta_ita`` > 0: lighter than the truth), and ``ita_shift`` = ITA(enhanced)
- ITA(render) on the same pixels: the colour the enhancer itself adds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from fairsplat.enhancer.config import EnhanceConfig
from fairsplat.enhancer.scores import gain, image_metrics
from fairsplat.metrics import colour


@dataclass
class Inputs:
    """Where the render sources read from (stage paths)."""

    head: Path
    curated: Path
    tracks: Path
    ff: Path | None = None
    refined: Path | None = None


class SourceAbsent(Exception):
    """A render source cannot run here; the message is the reason (it names the missing input)."""


@dataclass
class RenderBatch:
    """One subject's renders of held-out targets and the ground truth they should match."""

    source: str
    subject_id: str
    fitzpatrick: str | None
    target_ids: list[str]
    render: Tensor  # [T, 3, S, S] in [0, 1]
    render_skin: Tensor  # [T, 1, S, S] bool: the avatar's skin Gaussians cover the pixel
    target: Tensor  # [T, 3, S, S] in [0, 1]
    target_alpha: Tensor  # [T, 1, S, S] in [0, 1]
    target_skin: Tensor | None  # [T, 1, S, S] bool (the crop's label map), None without labels


Source = Callable[[Inputs, EnhanceConfig], Iterator[RenderBatch]]


@torch.no_grad()
def ff_renders(inputs: Inputs, cfg: EnhanceConfig) -> Iterator[RenderBatch]:
    """The generator's avatars of held-out subjects, rendered at their later crops (module docstring)."""
    from fairsplat.ff.data import gather, load_frames
    from fairsplat.ff.evaluate import heldout_subjects
    from fairsplat.ff.generate import generate, generator_binding, source_images, source_tracks
    from fairsplat.ff.render import render_targets
    from fairsplat.head.model import HeadModel
    from fairsplat.models.generator import load_generator

    if inputs.ff is None or not (inputs.ff / "config.json").is_file():
        raise SourceAbsent(f"{inputs.ff or 'no --ff'}: no generator (stage train_ff has not run)")
    model, meta = load_generator(inputs.ff)
    binding = generator_binding(meta, HeadModel.load(inputs.head))
    frames = load_frames(inputs.curated, inputs.tracks, list(cfg.splits))
    held, _ = heldout_subjects(frames, list(cfg.splits), [max(cfg.k, cfg.skip)])
    size = int(meta.get("size", frames.images.shape[-1]))
    for s in sorted(held):
        rows = held[s]
        targets = rows[max(cfg.k, cfg.skip) :][: cfg.max_targets]
        if not targets:
            continue
        batch = gather(frames, [rows[: cfg.k]] * len(targets), targets)
        # one subject's avatar at every target (the UV generator decodes it per target view and expression,
        # as train_ff's held-out protocol does); [T, G, ...]
        attrs = generate(model, binding, source_images(frames, rows[: cfg.k]), source_tracks(frames, rows[: cfg.k]),
                         {c: batch[f"target_{c}"] for c in ("expr", "pose", "transl", "viewmat", "K")})  # fmt: skip
        rgb, alpha, skin = render_targets(binding, attrs, batch, size, cfg.backend, with_skin=True)
        target_skin = None if frames.skin is None else frames.skin[torch.as_tensor(targets)] > 127
        yield RenderBatch("ff", s, frames.subject_type(s), [frames.ids[t] for t in targets], rgb.clamp(0, 1),
                          (skin / alpha.clamp_min(1e-6) > 0.5) & (alpha > 0.5), batch["target"], batch["alpha"],
                          target_skin)  # fmt: skip


def _refined_subjects(root: Path | None) -> list[dict]:
    """Rows of ``data/refined/manifest.parquet`` (one per refined subject), or SourceAbsent with the reason."""
    from fairsplat.io.tables import read_table

    if root is None or not (root / "manifest.parquet").is_file():
        raise SourceAbsent(f"{root or 'no --refined'}: no manifest.parquet (stage refine has not run)")
    rows = read_table(root / "manifest.parquet")
    if not rows:
        raise SourceAbsent(f"{root}/manifest.parquet: refine refined no subject")
    return rows


def _heldout_ids(subject_dir: Path) -> list[str]:
    """The crops refine held out for this subject (``refine.json`` ``info.heldout_ids``); [] without the file."""
    f = subject_dir / "refine.json"
    return list(json.loads(f.read_text())["info"].get("heldout_ids", [])) if f.is_file() else []


@torch.no_grad()
def refined_renders(inputs: Inputs, cfg: EnhanceConfig) -> Iterator[RenderBatch]:
    """Stage refine's avatars, rendered at the held-out crops refine scored them on (module docstring)."""
    from fairsplat.avatar.avatar import Avatar
    from fairsplat.ff.data import gather, load_frames
    from fairsplat.ff.render import render_targets
    from fairsplat.head.model import HeadModel
    from fairsplat.refine.run import as_attributes

    done = _refined_subjects(inputs.refined)
    head = HeadModel.load(inputs.head)
    frames = load_frames(inputs.curated, inputs.tracks, list(cfg.splits))
    row_of = {image_id: i for i, image_id in enumerate(frames.ids)}
    size = int(frames.images.shape[-1])
    for r in sorted(done, key=lambda r: r["subject_id"]):
        d = inputs.refined / r["path"]
        targets = [row_of[t] for t in _heldout_ids(d) if t in row_of][: cfg.max_targets]
        if not targets:  # refined on frames outside enhance.splits, or no held-out crop recorded
            continue
        avatar = Avatar.load(d, head)
        batch = gather(frames, [[t] for t in targets], targets)
        batch["shape"] = avatar.shape[None].expand(len(targets), -1)  # the avatar's own identity
        attrs = as_attributes(avatar)
        attrs = type(attrs)(*(t.expand(len(targets), *t.shape[1:]) for t in attrs))
        rgb, alpha, skin = render_targets(avatar.binding, attrs, batch, size, cfg.backend, with_skin=True)
        target_skin = None if frames.skin is None else frames.skin[torch.as_tensor(targets)] > 127
        yield RenderBatch("refined", r["subject_id"], r.get("fitzpatrick") or frames.subject_type(r["subject_id"]),
                          [frames.ids[t] for t in targets], rgb.clamp(0, 1),
                          (skin / alpha.clamp_min(1e-6) > 0.5) & (alpha > 0.5), batch["target"], batch["alpha"],
                          target_skin)  # fmt: skip


SOURCES: dict[str, Source] = {"ff": ff_renders, "refined": refined_renders}
"""Render sources by name (``enhance.sources``)."""


@torch.no_grad()
def enhance_batch(model, images: Tensor, batch: int) -> Tensor:
    return torch.cat([model(images[i : i + batch]).float().clamp(0, 1) for i in range(0, len(images), batch)])


def score_batch(rb: RenderBatch, enhanced: Tensor) -> list[dict]:
    """One row per target of a subject: raw render (``_input``) and enhanced render against the crop."""
    mine, raw = image_metrics(enhanced, rb.target, rb.target_alpha), image_metrics(rb.render, rb.target, rb.target_alpha)
    ita_gt = colour.ita(rb.target, rb.target_skin) if rb.target_skin is not None else [None] * len(rb.target)
    ita_raw, ita_enh = colour.ita(rb.render, rb.render_skin), colour.ita(enhanced, rb.render_skin)
    rows = []
    for j, tid in enumerate(rb.target_ids):
        row = {"source": rb.source, "subject_id": rb.subject_id, "fitzpatrick": rb.fitzpatrick, "target_id": tid}
        for key in mine:
            row[key], row[f"{key}_input"] = mine[key][j], raw[key][j]
            row[f"{key}_gain"] = gain(key, mine[key][j], raw[key][j])
        d = lambda a: None if a is None or ita_gt[j] is None else a - ita_gt[j]  # noqa: E731
        row["delta_ita"], row["delta_ita_input"] = d(ita_enh[j]), d(ita_raw[j])
        row["abs_delta_ita"] = None if row["delta_ita"] is None else abs(row["delta_ita"])
        row["abs_delta_ita_input"] = None if row["delta_ita_input"] is None else abs(row["delta_ita_input"])
        row["abs_delta_ita_gain"] = gain("abs_delta_ita", row["abs_delta_ita"], row["abs_delta_ita_input"])
        row["ita_shift"] = None if ita_enh[j] is None or ita_raw[j] is None else ita_enh[j] - ita_raw[j]
        rows.append(row)
    return rows


def run_enhance(model, inputs: Inputs, cfg: EnhanceConfig, on_batch: Callable[[RenderBatch, Tensor], None] | None = None
                ) -> tuple[list[dict], dict[str, str]]:  # fmt: skip
    """Every source's held-out renders, enhanced and scored: (rows, {absent source: reason}).

    ``on_batch(rb, enhanced)`` sees each subject (the stage writes its images there). A source that raises
    :class:`SourceAbsent` contributes no row, whenever it raises.
    """
    unknown = [s for s in cfg.sources if s not in SOURCES]
    if unknown:
        raise ValueError(f"enhance.sources: unknown {unknown} (known: {', '.join(SOURCES)})")
    model.eval()
    rows: list[dict] = []
    absent: dict[str, str] = {}
    for name in cfg.sources:
        start = len(rows)
        try:
            for rb in SOURCES[name](inputs, cfg):
                enhanced = enhance_batch(model, rb.render, cfg.batch)
                rows += score_batch(rb, enhanced)
                if on_batch is not None:
                    on_batch(rb, enhanced)
        except SourceAbsent as err:
            del rows[start:]
            absent[name] = str(err)
    return rows, absent
