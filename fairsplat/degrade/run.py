"""Stage ``degrade``'s library: K degraded/clean pairs per curated crop, with a manifest.

Output directory::

    clean/<stem>.png          the curated crop, byte-identical copy (the target)
    masks/<stem>.png          its parsed label map (for region-weighted losses)
    degraded/<stem>_k<i>.png  pair i's input, i = 0..K-1
    manifest.parquet          one row per pair (schema below)
    rejects.parquet           one row per crop that made no pairs

``manifest.parquet``: ``pair_id`` ("<image_id>/k<i>"), ``image_id``,
``pair_index`` (int32), ``split``, ``fitzpatrick`` (string?), ``clean_path``,
``degraded_path``, ``mask_path`` (relative to this directory), ``steps`` and
``augmentations`` (list<string>: what fired, in order), ``record`` (JSON
string: the full ``pipeline.degrade`` record, seed included), ``mad`` and
``ssim_loss`` (float64, whole crop), ``mad_<region>`` / ``ssim_loss_<region>``
for mouth, eyes, hair, nose, skin (float64?, null when the region is absent,
or when damage was not measured for this pair: see ``measure_every``), and
``mad_full_<region>``: the MAD of the *control* pair, drawn with the same
seed (same steps, masks and params) but every region strength at 1. Raw MAD
mixes strength with content (a blur barely changes flat skin, and changes
thin dark brows a lot); ``mad / mad_full`` per region is the strength the
pipeline effectively applied there, comparable with the configured one.

``rejects.parquet``: ``image_id``, ``split``, ``fitzpatrick``, ``reason``,
``detail``. Reasons: ``no_mask`` (stage parse gave no mask; ``detail`` says
why), ``mask_size_mismatch``, ``bad_labels``, ``bad_image`` (the
``DegradeInputError`` codes). Crops accepted + rejected = crops total.

Pairs depend only on (image_id, seed, params): ``image_seed`` hashes the id,
so worker count, sharding and engine (fairsplat/parallel: a local pool or a
Dask cluster) never change a byte. A shard that fails every attempt makes
each of its crops a reject with reason ``error`` (and its files are removed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from fairsplat.degrade.core import DegradeInputError, image_seed
from fairsplat.degrade.damage import damage_maps, region_damage
from fairsplat.degrade.masks import RegionStrengths
from fairsplat.degrade.pipeline import DegradeParams, make_pairs
from fairsplat.io.images import load_labels, load_rgb, save_png
from fairsplat.io.tables import read_table
from fairsplat.labels import REGION_GROUPS
from fairsplat.parallel import Plan, WorkersConfig, in_worker, map_shards, shards_of

REGIONS = tuple(REGION_GROUPS)  # mouth, eyes, hair, nose, skin: seed 001's order of strength
MEASURED = ("mad", "ssim_loss", *(f"{m}_{r}" for r in REGIONS for m in ("mad", "ssim_loss", "mad_full")))
"""Damage columns: None unless the pair was measured (``measure_every``) and the region is in the crop."""
S, F64 = pa.string(), pa.float64()
MANIFEST_SCHEMA = pa.schema(
    [("pair_id", S), ("image_id", S), ("pair_index", pa.int32()), ("split", S), ("fitzpatrick", S),
     ("clean_path", S), ("degraded_path", S), ("mask_path", S), ("steps", pa.list_(S)),
     ("augmentations", pa.list_(S)), ("record", S)]
    + [(c, F64) for c in MEASURED]
)  # fmt: skip
REJECTS_SCHEMA = pa.schema([("image_id", S), ("split", S), ("fitzpatrick", S), ("reason", S), ("detail", S)])


@dataclass(frozen=True)
class Job:
    """One clean crop and (if stage parse made one) its mask, absolute paths."""

    image_id: str
    split: str
    fitzpatrick: str | None
    crop: Path
    mask: Path | None
    no_mask_detail: str = ""  # parse's reason when mask is None
    subject_id: str | None = None  # the person; in rows for the metrics' subject bootstrap, not written


@dataclass(frozen=True)
class Settings:
    params: DegradeParams
    k: int
    seed: int
    out: Path
    measure_every: int = 1

    @property
    def control(self) -> DegradeParams:
        """The same pipeline with every region strength 1: the denominator of effective strength."""
        ones = RegionStrengths(**{k: 1.0 for k in vars(self.params.strengths)})
        return dataclasses.replace(self.params, strengths=ones)


def read_jobs(curated: Path, parsed: Path) -> list[Job]:
    """Every curated crop, joined with parse's manifest (mask) or its rejects (reason), in curated order."""
    cur = read_table(Path(curated) / "manifest.parquet")
    masks = {r["image_id"]: r for r in read_table(Path(parsed) / "manifest.parquet")}
    rej_path = Path(parsed) / "rejects.parquet"
    why = {r["image_id"]: r for r in read_table(rej_path)} if rej_path.exists() else {}
    jobs = []
    for r in cur:
        m = masks.get(r["image_id"])
        detail = "" if m else (f"parse: {why[r['image_id']]['reason']}: {why[r['image_id']]['detail']}"
                               if r["image_id"] in why else "parse made no mask for this crop")  # fmt: skip
        jobs.append(Job(
            image_id=r["image_id"], split=r["split"], fitzpatrick=r.get("fitzpatrick_gt") or r.get("fitzpatrick"),
            crop=Path(curated) / r["path"], mask=(Path(parsed) / m["mask_path"]) if m else None, no_mask_detail=detail,
            subject_id=r.get("subject_id"),
        ))  # fmt: skip
    return jobs


def sample_jobs(jobs: Sequence[Job], per_type: int | None, seed: int) -> list[Job]:
    """At most ``per_type`` crops of each Fitzpatrick type, in curated order (all when None).

    Why: the enhancer trains on a few thousand pairs at most on a CPU, while
    curate keeps every crop the generator needs; making pairs of all of them
    would cost minutes for nothing. Which crops is a pure function of
    (seed, image id), so adding crops never reshuffles the sample.
    """
    if per_type is None:
        return list(jobs)
    rank = {j.image_id: hashlib.sha256(f"{seed}:{j.image_id}".encode()).hexdigest() for j in jobs}
    keep: set[str] = set()
    for t in sorted({j.fitzpatrick or "" for j in jobs}):
        of_type = sorted((j for j in jobs if (j.fitzpatrick or "") == t), key=lambda j: rank[j.image_id])
        keep |= {j.image_id for j in of_type[:per_type]}
    return [j for j in jobs if j.image_id in keep]


def _read(job: Job) -> tuple[np.ndarray, np.ndarray]:
    """(crop [H, W, 3] uint8, labels [H, W]); unreadable files become DegradeInputError."""
    if job.mask is None:
        raise DegradeInputError("no_mask", job.no_mask_detail)
    if not job.mask.exists():
        raise DegradeInputError("no_mask", f"{job.mask.name} is missing")
    try:
        img = load_rgb(job.crop)
    except (OSError, ValueError) as err:
        raise DegradeInputError("bad_image", f"{job.crop.name}: {err}"[:200]) from None
    try:
        lab = load_labels(job.mask)
    except (OSError, ValueError) as err:
        raise DegradeInputError("bad_labels", f"{job.mask.name}: {err}"[:200]) from None
    return img, lab


def _save_png(path: Path, arr: np.ndarray) -> None:
    # zlib level 1 with run-length strategy: lossless, 25% faster than level 1 alone and smaller
    # (12.7 vs 16.4 ms, 259 vs 297 KB for a degraded 512 px crop); PNG encoding is ~30% of a pair.
    # Not atomic per file: st.out is staged in an atomic_dir.
    save_png(path, arr, compress_level=1, compress_type=zlib.Z_RLE, atomic=False)


def pairs_for(job: Job, st: Settings) -> tuple[list[dict], dict | None]:
    """Make, write and measure one crop's K pairs. -> (manifest rows, None) or ([], reject row)."""
    try:
        img, lab = _read(job)
        pairs = make_pairs(img, lab, st.k, image_seed(job.image_id, st.seed), st.params)
    except DegradeInputError as err:
        detail = str(err).removeprefix(err.reason).removeprefix(": ")
        return [], {"image_id": job.image_id, "split": job.split, "fitzpatrick": job.fitzpatrick,
                    "reason": err.reason, "detail": detail, "subject_id": job.subject_id}  # fmt: skip
    stem = job.crop.stem
    shutil.copyfile(job.crop, st.out / "clean" / f"{stem}.png")
    _save_png(st.out / "masks" / f"{stem}.png", lab.astype(np.uint8))
    measured = [
        st.measure_every > 0 and (_index(job.image_id) * st.k + i) % st.measure_every == 0 for i in range(st.k)
    ]
    control = make_pairs(img, lab, st.k, image_seed(job.image_id, st.seed), st.control) if any(measured) else None
    rows = []
    for degraded, rec in pairs:
        i = rec["pair_index"]
        u8 = _u8(degraded)  # [H, W, 3]
        _save_png(st.out / "degraded" / f"{stem}_k{i}.png", u8)
        row = {
            "pair_id": f"{job.image_id}/k{i}", "image_id": job.image_id, "pair_index": i, "split": job.split,
            "fitzpatrick": job.fitzpatrick, "clean_path": f"clean/{stem}.png",
            "degraded_path": f"degraded/{stem}_k{i}.png", "mask_path": f"masks/{stem}.png",
            "steps": [s["name"] for s in rec["steps"]], "augmentations": [a["name"] for a in rec["augmentations"]],
            "record": json.dumps(rec, sort_keys=True), **dict.fromkeys(MEASURED), "subject_id": job.subject_id,
        }  # fmt: skip
        if measured[i]:
            row.update(_measure(img, u8, lab, _u8(control[i][0])))
        rows.append(row)
    return rows, None


def _index(image_id: str) -> int:
    """A stable per-image integer, so which pairs get measured never depends on order or workers."""
    return int.from_bytes(hashlib.blake2b(image_id.encode("utf-8"), digest_size=4).digest(), "little")


def _u8(img: np.ndarray) -> np.ndarray:  # [H, W, 3] float in [0, 1] -> uint8, as written to PNG
    return np.round(img * 255.0).astype(np.uint8)


def _measure(clean: np.ndarray, degraded: np.ndarray, lab: np.ndarray, control: np.ndarray) -> dict:
    """Damage of the pair as written (uint8): whole crop and per region, plus the control's MAD per region."""
    maps = damage_maps(clean, degraded)  # [H, W] each
    out: dict = {"mad": float(maps[0].mean()), "ssim_loss": float(1.0 - maps[1].mean())}
    for r, d in region_damage(clean, degraded, lab, maps).items():
        out[f"mad_{r}"], out[f"ssim_loss_{r}"] = d["mad"], d["ssim_loss"]
    full = np.abs(clean.astype(np.float64) - control.astype(np.float64)).mean(axis=2) / 255.0  # [H, W]
    for r, ids in REGION_GROUPS.items():
        m = np.isin(lab, ids)
        if m.any():
            out[f"mad_full_{r}"] = float(full[m].mean())
    return out


_SETTINGS: list[Settings] = []
SHARD = 4
"""Crops per shard: the pool's old ``imap`` chunk size (few enough that a retry redoes little)."""


def _init(st: Settings) -> None:
    """Worker start: one process per core, so each runs its kernels on one thread.

    Set through numba's runtime call, not NUMBA_NUM_THREADS:
    changing those in a process whose numba pool already started is an error.
    Not in the stage's own process (one worker: shards run in-process).
    """
    if in_worker():
        import numba

        numba.set_num_threads(1)
    _SETTINGS[:] = [st]


def _work(jobs: list[Job]) -> list[tuple[list[dict], dict | None]]:
    return [pairs_for(j, _SETTINGS[0]) for j in jobs]


def _failed(job: Job, st: Settings, error: str) -> dict:
    """A crop of a shard that failed every attempt: a reject, and no half-written files left behind."""
    stem = job.crop.stem
    for p in [st.out / "clean" / f"{stem}.png", st.out / "masks" / f"{stem}.png",
              *(st.out / "degraded" / f"{stem}_k{i}.png" for i in range(st.k))]:  # fmt: skip
        try:
            p.unlink(missing_ok=True)
        except OSError:  # not a file we wrote (a directory in the way: maybe why the shard failed)
            pass
    return {"image_id": job.image_id, "split": job.split, "fitzpatrick": job.fitzpatrick, "reason": "error",
            "detail": error[:300], "subject_id": job.subject_id}  # fmt: skip


def degrade_all(jobs: Sequence[Job], st: Settings, workers: int = 1, progress: bool = True,
                workers_cfg: WorkersConfig | None = None):  # fmt: skip
    """All jobs, in order, on ``workers`` processes of ``workers_cfg``'s engine. -> (pair rows, reject rows, seconds)."""
    for d in ("clean", "masks", "degraded"):
        (st.out / d).mkdir(parents=True, exist_ok=True)
    rows, rejects = [], []
    t0 = time.perf_counter()
    # forkserver (local pool): workers fork from a clean server that imported this module (and compiled
    # numba kernels' caches) once, so start-up is ~0.1 s instead of spawn's full import per
    # worker; no torch/OpenMP state is inherited, unlike a plain fork of the caller.
    plan = Plan(workers=workers, context="forkserver", preload=["fairsplat.degrade.run"], desc="degrade", unit="crop",
                progress=progress)  # fmt: skip
    for o in map_shards(_work, shards_of(jobs, SHARD), plan, workers_cfg, init=_init, initargs=(st,), scratch_in=st.out):
        results = o.value if o.ok else [([], _failed(j, st, f"shard {o.index}: {o.error}")) for j in o.shard]
        for r, rej in results:
            rows += r
            if rej is not None:
                rejects.append(rej)
    return rows, rejects, time.perf_counter() - t0
