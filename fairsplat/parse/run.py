"""Stage ``parse``'s library: a label map for every curated crop, or a recorded reason.

Output directory::

    masks/<crop stem>.png   CelebAMask-HQ ids, uint8, the crop's size
    manifest.parquet        one row per accepted crop (schema below)
    rejects.parquet         one row per crop without a usable mask

``manifest.parquet``: ``image_id`` (string), ``split`` (string),
``fitzpatrick`` (string?, ground truth when known else the ITA estimate),
``type_source`` ("gt" / "ita" / "none"), ``crop_path`` (string, relative to
the curated directory), ``mask_path`` (string, relative to this directory),
``height``, ``width`` (int32), ``foreground`` (float64: share of non-background
pixels), ``backend`` (string).

``rejects.parquet``: ``image_id``, ``split``, ``fitzpatrick``, ``reason``
(``bad_image``, ``no_mask``, ``mask_size_mismatch``, ``bad_labels``,
``no_face``, ``error``), ``detail``. ``accepted + rejected == total`` always.

``no_face``: a network backend labelled less than ``min_foreground`` of the
crop as anything but background: there is no face to calibrate damage with.
``error``: the crop's shard (a batch) failed every attempt on its worker
(fairsplat/parallel); ``detail`` holds the error.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from fairsplat.io.images import SMALL_PNG, load_labels, load_rgb, save_png
from fairsplat.io.plots import grid
from fairsplat.labels import LABEL
from fairsplat.parallel import Plan, WorkersConfig, in_worker, map_shards, shards_of
from fairsplat.parse.base import Backend
from fairsplat.parse.data import Item
from fairsplat.metrics.fairness import Stat, count, per_fitzpatrick
from fairsplat.metrics.segmentation import confusion, miou
from fairsplat.parse.metrics import pooled_miou, rounded
from fairsplat.parse.plots import colourise

S, I32, F64 = pa.string(), pa.int32(), pa.float64()
MANIFEST_SCHEMA = pa.schema([
    ("image_id", S), ("split", S), ("fitzpatrick", S), ("type_source", S), ("crop_path", S), ("mask_path", S),
    ("height", I32), ("width", I32), ("foreground", F64), ("backend", S),
])  # fmt: skip
REJECTS_SCHEMA = pa.schema([("image_id", S), ("split", S), ("fitzpatrick", S), ("reason", S), ("detail", S)])


def _reject(it: Item, reason: str, detail: str) -> dict:
    return {"image_id": it.image_id, "split": it.split, "fitzpatrick": it.fitzpatrick, "reason": reason, "detail": detail}


def _load(items: Sequence[Item]) -> tuple[list[Item], list[np.ndarray], list[dict]]:
    ok, images, rejects = [], [], []
    for it in items:
        try:
            images.append(load_rgb(it.crop))
            ok.append(it)
        except (OSError, ValueError) as err:
            rejects.append(_reject(it, "bad_image", f"{it.crop.name}: {err}"[:200]))
    return ok, images, rejects


def parse_all(
    items: Sequence[Item],
    backend: Backend,
    out: Path,
    curated: Path,
    min_foreground: float = 0.05,
    batch_size: int = 16,
    progress: bool = True,
    workers: int = 1,
    engine: WorkersConfig | None = None,
) -> tuple[list[dict], list[dict], dict]:
    """Parse every item into ``out/masks``; -> (manifest rows, reject rows, metrics).

    One shard per batch of ``batch_size`` crops, run by fairsplat/parallel:
    in this process with ``workers == 1`` (the default: the backend runs on
    the stage's own torch threads, as before), else on ``workers`` spawned
    processes of one torch thread each, or on the Dask cluster of ``engine``;
    ``backend`` travels to them pickled, once per worker. Shard results are
    concatenated in shard order, so rows, rejects and masks do not depend on
    where shards ran. A shard that fails every attempt makes its crops
    rejects with reason ``error`` and the shard's error."""
    t0 = time.perf_counter()
    plan = Plan(workers=workers, context="spawn", desc=f"parse[{backend.name}]", unit="crop", progress=progress)
    init = (backend, out, curated, min_foreground)
    rows: list[dict] = []
    rejects: list[dict] = []
    scored: dict[str, tuple[str, np.ndarray]] = {}  # image_id -> (split, confusion [C, C])
    for o in map_shards(_parse_shard, shards_of(list(items), batch_size), plan, engine, init=_init, initargs=init,
                        scratch_in=out):  # fmt: skip
        if not o.ok:
            rejects += [_reject(it, "error", o.error[:200]) for it in o.shard]
            for it in o.shard:  # a mask the failed attempt wrote belongs to no row
                mask = out / "masks" / f"{it.stem}.png"
                if mask.is_file():
                    mask.unlink()
            continue
        shard_rows, shard_rejects, shard_scored = o.value
        rows += shard_rows
        rejects += shard_rejects
        scored |= shard_scored
    seconds = time.perf_counter() - t0
    return rows, rejects, parse_metrics(items, rows, rejects, scored, backend.name, seconds)


_W: dict = {}
"""Per process: the backend and where masks go (set by :func:`_init` before the first shard)."""


def _init(backend: Backend, out: Path, curated: Path, min_foreground: float) -> None:
    if in_worker():  # one torch thread per worker process; in the stage's process its own setting stays
        import torch

        torch.set_num_threads(1)
    _W.update(backend=backend, out=out, curated=curated, min_foreground=min_foreground)


def _parse_shard(items: list[Item]) -> tuple[list[dict], list[dict], dict[str, tuple[str, np.ndarray]]]:
    """One batch: load, parse (one image size at a time), write masks. -> (rows, rejects, scored)."""
    backend, out, curated, min_foreground = _W["backend"], _W["out"], _W["curated"], _W["min_foreground"]
    rows: list[dict] = []
    scored: dict[str, tuple[str, np.ndarray]] = {}
    ok, images, rejects = _load(items)
    by_shape: dict[tuple, list[int]] = {}
    for k, im in enumerate(images):  # network backends batch one size at a time
        by_shape.setdefault(im.shape, []).append(k)
    for idx in by_shape.values():
        for k, res in zip(idx, backend.parse([ok[k] for k in idx], [images[k] for k in idx])):
            it, img = ok[k], images[k]
            if res.labels is None:
                rejects.append(_reject(it, res.reason, res.detail))
                continue
            fg = float((res.labels != LABEL["background"]).mean())
            if fg < min_foreground:
                rejects.append(_reject(it, "no_face", f"foreground {fg:.4f} < min-foreground {min_foreground}"))
                continue
            save_png(out / "masks" / f"{it.stem}.png", res.labels, compress_level=SMALL_PNG, atomic=False)
            rows.append({
                "image_id": it.image_id, "split": it.split, "fitzpatrick": it.fitzpatrick,
                "type_source": it.type_source, "crop_path": str(it.crop.relative_to(curated)),
                "mask_path": f"masks/{it.stem}.png", "height": img.shape[0], "width": img.shape[1],
                "foreground": round(fg, 6), "backend": backend.name,
            })  # fmt: skip
            if backend.name != "ground_truth" and it.mask is not None and it.mask.exists():
                gt = load_labels(it.mask)
                if gt.shape == res.labels.shape:
                    scored[it.image_id] = (it.split, confusion(gt, res.labels))
    return rows, rejects, scored


def _pooled_miou(confs: list[np.ndarray]) -> float | None:
    return rounded(miou(np.sum(confs, axis=0))) if confs else None


def parse_metrics(items, rows, rejects, scored: dict[str, tuple[str, np.ndarray]], backend: str, seconds: float,
                  n_boot: int = 1000) -> dict:  # fmt: skip
    """Counts per type and reason; mIoU against the curated label maps where they exist.

    ``miou_vs_labels`` pools every scored crop, the parser's training crops
    included, so it is optimistic for the trained backend; ``miou_vs_labels_by_split``
    separates them (train_parser's held-out score is the honest one). Per type
    (metrics/fairness.py): ``accepted``, ``rejected`` (exact counts) and the pooled
    ``miou_vs_labels`` with an interval over subjects; ``miou_vs_labels_gap`` is best
    minus worst type, as before.
    """
    assert len(rows) + len(rejects) == len(items), (len(rows), len(rejects), len(items))
    subject = {it.image_id: it.subject_id for it in items}
    table = [{"fitzpatrick": r["fitzpatrick"], "subject_id": subject.get(r["image_id"]), "accepted": ok,
              "confusion": scored[r["image_id"]][1] if r["image_id"] in scored else None}
             for ok, group in ((True, rows), (False, rejects)) for r in group]  # fmt: skip
    stats = {"accepted": count(), "rejected": count(where=lambda r: not r["accepted"]),
             "miou_vs_labels": Stat(reduce=pooled_miou, higher_is_better=True)}  # fmt: skip
    fair = per_fitzpatrick(table, stats, where=lambda r: r["accepted"], n_boot=n_boot, digits=4)
    by_split = {sp: _pooled_miou([c for s, c in scored.values() if s == sp]) for sp in sorted({s for s, _ in scored.values()})}
    return {
        "backend": backend,
        "total": len(items),
        "accepted": len(rows),
        "rejected": len(rejects),
        "rejected_by_reason": dict(sorted(Counter(r["reason"] for r in rejects).items())),
        "scored_images": len(scored),
        "miou_vs_labels": _pooled_miou([c for _, c in scored.values()]),
        "miou_vs_labels_by_split": by_split,
        "ms_per_image": round(1e3 * seconds / max(1, len(items)), 2),
        **fair,
    }


def write_plot(rows: list[dict], out: Path, curated: Path, plot_path: Path, n: int = 8) -> None:
    """Crops next to their masks, up to ``n`` (one per type first, for a spread of tones)."""
    picked, seen = [], set()
    for r in rows:
        if r["fitzpatrick"] not in seen:
            picked.append(r)
            seen.add(r["fitzpatrick"])
    picked += [r for r in rows if r not in picked][: max(0, n - len(picked))]
    panels = []
    for r in picked[:n]:
        crop = load_rgb(curated / r["crop_path"])
        panels.append([crop, colourise(load_labels(out / r["mask_path"]))])
    if panels:
        save_png(plot_path, grid(panels, headers=("crop", "mask")))
