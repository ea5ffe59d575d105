"""Stage ``refine``'s work: per held-out subject, the generator's avatar -> refined avatar -> scores and files.

Per subject (``fairsplat.refine.data`` picks the subjects, their training,
watched and held-out crops and the reference frame):

1. **FF init**: the generator on the reference frame's crop(s), as an
   :class:`~fairsplat.avatar.avatar.Avatar` (``fairsplat.ff.render.to_avatar``).
2. **refine** (``fairsplat.refine.loop``) with the strategies of
   ``refine.strategies``; a NaN stops this subject (a ``diverged`` reject
   naming the iteration) and the others go on.
3. **score** both avatars on the held-out crops with the generator's own
   protocol (``fairsplat.ff.evaluate.score_subject``: each crop rendered at its
   tracked FLAME parameters and camera over mid-grey; PSNR, SSIM, LPIPS full
   and masked; ΔITA of the rendered skin against the source crop's skin,
   positive = lighter), and the spike statistics of both over the held-out
   cameras (``fairsplat.refine.aspect``).
4. **files** into ``<checkpoints>/<subject>/``: ``avatar.safetensors`` +
   ``avatar.json``, ``avatar.ply`` (canonical, any 3DGS viewer),
   ``heldout.png`` (target | FF | refined per held-out crop),
   ``side_by_side.mp4`` (every crop of the subject in time order, target | FF
   | refined), ``refine.json`` (plan, timings, strategy summaries, score rows).

A subject's directory is complete once ``refine.json`` is there (written
last, atomically, with the run's fingerprint): a restarted stage loads those
subjects instead of refining them again, so a killed run resumes per
subject; the stage then copies the directories into its atomic output.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fairsplat.avatar.avatar import Avatar
from fairsplat.avatar.binding import AvatarBinding
from fairsplat.ff.data import Frames, gather, load_frames
from fairsplat.ff.evaluate import IMAGE_METRICS, score_subject
from fairsplat.ff.generate import avatar_from_sources, generator_binding, source_images, source_tracks
from fairsplat.io.atomic import atomic_path, write_json
from fairsplat.models.lam import Attributes
from fairsplat.refine.aspect import screen_log_aspect, spike_stats
from fairsplat.refine.config import RefineConfig
from fairsplat.refine.data import SubjectPlan, load_track_info, plan_subjects, reject_row
from fairsplat.refine.loop import GREY, RefineDiverged, Views, refine, render_views
from fairsplat.refine.strategies import Strategy, build_strategies
from fairsplat.splat.frames import quat_multiply

DONE = "refine.json"
"""Written last into a subject's directory: its presence (with the run's fingerprint) marks the subject done."""
SPIKES = "spikes.safetensors"
"""Per-subject log aspect ratios (checkpoint only, for pooled statistics); not copied to the output."""


@dataclass
class SubjectResult:
    subject: str
    fitzpatrick: str | None
    rows: list[dict]  # score rows, variant "ff" or "refined", one per held-out crop
    info: dict[str, Any]  # plan, iterations, seconds, spike statistics, strategy summaries
    log_ratios: dict[str, Tensor] = field(default_factory=dict)  # variant -> [M] log aspect over held-out cameras
    resumed: bool = False


@dataclass
class RefineRun:
    results: list[SubjectResult]
    rejects: list[dict]
    subjects_total: int
    skipped_crops: dict[str, int]


def subject_dir(root: Path, subject: str) -> Path:
    """``root/<subject>`` with the subject id's own folders (``synth/synth_0005``); refuses odd ids."""
    parts = subject.split("/")
    if any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise ValueError(f"subject id {subject!r} is not a safe relative path")
    return root.joinpath(*parts)


def subject_seed(seed: int, subject: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(subject.encode())) % (2**31)


def as_attributes(avatar: Avatar) -> Attributes:
    """An avatar's tensors as the generator's residual attributes (batch of 1): the inverse of ``to_avatar``."""
    b = avatar.binding
    base = torch.nn.functional.normalize(b.base_quats, dim=-1)
    conj = base * torch.tensor([1.0, -1.0, -1.0, -1.0])
    q = quat_multiply(conj, torch.nn.functional.normalize(avatar.quats, dim=-1))
    return Attributes(avatar.offsets[None], q[None], (avatar.log_scales - b.base_log_scales)[None], avatar.colors[None],
                      avatar.opacities[None])  # fmt: skip


@torch.no_grad()
def ff_avatar(model, frames: Frames, binding: AvatarBinding, sources: list[int]) -> Avatar:
    """The generator's avatar of curated rows ``sources`` (``fairsplat.ff.generate``: either arch)."""
    return avatar_from_sources(model, binding, source_images(frames, sources), source_tracks(frames, sources))


def views_of(frames: Frames, rows: Sequence[int]) -> Views:
    return Views.from_batch(gather(frames, [[r] for r in rows], list(rows)))


@torch.no_grad()
def score(avatar: Avatar, frames: Frames, plan: SubjectPlan, size: int, backend: str, variant: str) -> list[dict]:
    """Held-out rows of one avatar (the generator's protocol; ΔITA against the first source crop)."""
    attrs = as_attributes(avatar)
    rows = score_subject(lambda sources, points: attrs, frames, avatar.binding, plan.sources + plan.heldout,
                         len(plan.sources), len(plan.sources), size, backend)  # fmt: skip
    return [{"variant": variant, **r} for r in rows]


@torch.no_grad()
def log_ratios(avatar: Avatar, views: Views, size: int) -> Tensor:  # -> [M] over visible (camera, Gaussian) pairs
    means, quats, scales = avatar.posed(views.expr, views.pose, views.transl)
    out = []
    for i in range(len(views)):
        lr, vis = screen_log_aspect(means[i], quats[i], scales[i], avatar.opacities, views.viewmat[i : i + 1],
                                    views.K[i : i + 1], size)  # fmt: skip
        out.append(lr[vis])
    return torch.cat(out)


def _frames_u8(x: Tensor) -> np.ndarray:  # [T, 3, S, S] -> uint8 [T, S, S, 3]
    return (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def write_subject_files(d: Path, head, ff: Avatar, refined: Avatar, frames: Frames, plan: SubjectPlan, size: int,
                        backend: str, fps: int) -> None:  # fmt: skip
    """avatar.*, heldout.png and side_by_side.mp4 into ``d``."""
    from fairsplat.io.video import write_video
    from fairsplat.io.images import save_png
    from fairsplat.io.plots import grid

    refined.save(d, head)
    refined.export_ply(d / "avatar.ply")
    every = views_of(frames, plan.every)
    grey = torch.full((3,), GREY)
    strips = [every.images] + [render_views(av, every, size, grey, backend)[0] for av in (ff, refined)]
    panels = [_frames_u8(s) for s in strips]  # 3 x [T, S, S, 3]
    held = [plan.every.index(r) for r in plan.heldout]
    save_png(d / "heldout.png", grid([[p[i] for p in panels] for i in held], headers=["target", "FF", "refined"], side=None))
    write_video(d / "side_by_side.mp4", np.concatenate(panels, axis=2), fps=fps)


def refine_subject(model, frames: Frames, binding: AvatarBinding, plan: SubjectPlan, cfg: RefineConfig, size: int,
                   extra: Sequence[Strategy] = ()) -> tuple[SubjectResult, Avatar, Avatar]:  # fmt: skip
    """FF init, refinement and scores of one subject (raises RefineDiverged on NaN)."""
    init = ff_avatar(model, frames, binding, plan.sources)
    strategies = build_strategies(cfg, binding.base_log_scales) + list(extra)
    watch = views_of(frames, plan.watch) if plan.watch else None
    res = refine(init, views_of(frames, plan.train), cfg, strategies, watch, subject_seed(cfg.seed, plan.subject),
                 plan.subject)  # fmt: skip
    rows = score(init, frames, plan, size, cfg.backend, "ff") + score(res.avatar, frames, plan, size, cfg.backend, "refined")
    held = views_of(frames, plan.heldout)
    ratios = {"ff": log_ratios(init, held, size), "refined": log_ratios(res.avatar, held, size)}
    info = {
        "subject_id": plan.subject, "fitzpatrick": plan.fitzpatrick, "reference_frame": plan.reference_frame,
        "reference_reason": plan.reference_reason, "source_ids": [frames.ids[r] for r in plan.sources],
        "train_ids": [frames.ids[r] for r in plan.train], "watch_ids": [frames.ids[r] for r in plan.watch],
        "heldout_ids": [frames.ids[r] for r in plan.heldout], "heldout_frames": plan.heldout_frames,
        "iterations": res.iterations, "seconds": round(res.seconds, 3),
        "its_per_s": round(res.iterations / res.seconds, 3) if res.seconds > 0 else None,
        "strategies": res.strategies, "history": res.history,
        **{f"ff_{k}": v for k, v in spike_stats(ratios["ff"], cfg.aspect.tau).items()},
        **spike_stats(ratios["refined"], cfg.aspect.tau),
    }  # fmt: skip
    return SubjectResult(plan.subject, plan.fitzpatrick, rows, info, ratios), init, res.avatar


def _load_done(d: Path, fp: str) -> SubjectResult | None:
    from safetensors.torch import load_file

    path = d / DONE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("fingerprint") != fp:
        return None
    ratios = load_file(str(d / SPIKES)) if (d / SPIKES).is_file() else {}
    return SubjectResult(data["info"]["subject_id"], data["info"]["fitzpatrick"], data["rows"], data["info"], ratios,
                         resumed=True)  # fmt: skip


def _save_done(d: Path, res: SubjectResult, fp: str) -> None:
    from safetensors.torch import save_file

    with atomic_path(d / SPIKES) as tmp:
        save_file({k: v.float().contiguous() for k, v in res.log_ratios.items()}, str(tmp))
    write_json(d / DONE, {"fingerprint": fp, "info": res.info, "rows": res.rows})


def run_refine(
    cfg: RefineConfig,
    head,
    curated: Path,
    tracks: Path,
    generator: Path,
    work: Path,
    fingerprint: str = "",
    progress: bool = True,
    extra_strategies: Callable[[str], Sequence[Strategy]] = lambda subject: (),
    stop_after: int | None = None,
) -> RefineRun:
    """Refine every planned subject into ``work/<subject>/`` (resuming finished ones); returns results and rejects.

    ``extra_strategies(subject)``: strategies added for one subject (tests inject
    failures this way). ``stop_after``: return after that many subjects were
    refined in this call, as a killed run would have stopped (tests).
    """
    from tqdm import tqdm

    from fairsplat.models.generator import load_generator

    frames = load_frames(curated, tracks, list(cfg.splits))
    plans, rejects = plan_subjects(frames, load_track_info(tracks, cfg.max_track_nme), cfg)
    model, meta = load_generator(generator)
    binding = generator_binding(meta, head)
    size = int(frames.images.shape[-1])
    if int(meta.get("size", size)) != size:
        raise ValueError(f"{generator}: trained at {meta['size']} px, the crops are {size} px (curate.size)")
    results, fresh = [], 0
    for plan in tqdm(plans, desc="refine", unit="subject", disable=not progress):
        d = subject_dir(work, plan.subject)
        done = _load_done(d, fingerprint)
        if done is not None:
            results.append(done)
            continue
        if stop_after is not None and fresh >= stop_after:
            break
        try:
            res, init, refined = refine_subject(model, frames, binding, plan, cfg, size, extra_strategies(plan.subject))
        except RefineDiverged as err:
            rejects.append(reject_row(plan.subject, plan.fitzpatrick, f"diverged: {err}", len(plan.every)))
            continue
        t0 = time.perf_counter()
        d.mkdir(parents=True, exist_ok=True)
        write_subject_files(d, head, init, refined, frames, plan, size, cfg.backend, cfg.video_fps)
        res.info["write_seconds"] = round(time.perf_counter() - t0, 3)
        _save_done(d, res, fingerprint)
        results.append(res)
        fresh += 1
    total = len(frames.by_subject(list(cfg.splits)))
    return RefineRun(results, rejects, total, frames.skipped)


IMAGE_COLUMNS = tuple(m + s for m in IMAGE_METRICS for s in ("", "_masked"))
"""Score columns of the rows (psnr, psnr_masked, ssim, ..., lpips_alex_masked), plus delta_ita."""
