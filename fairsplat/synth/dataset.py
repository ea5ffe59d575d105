"""Build SynthHeads: identities x frames x views, with a Parquet manifest.

Layout of the output directory::

    images/<identity>/f<frame>_v<view>.png   RGB over the background
    alpha/<identity>/f<frame>_v<view>.png    alpha (uint8)
    labels/<identity>/f<frame>_v<view>.png   CelebAMask-HQ ids (uint8)
    manifest.parquet                         one row per image (columns below)
    identities.parquet                       one row per identity
    ita_check.parquet                        frontal views: measured vs ground-truth ITA (stage synth)

Schemas: :data:`MANIFEST_SCHEMA`, :data:`IDENTITIES_SCHEMA`, :data:`ITA_CHECK_SCHEMA`
(written with :func:`fairsplat.io.tables.write_table`).

Manifest columns: image_id, identity_id, split, frame, view, yaw, pitch,
fitzpatrick, ita_gt, skin_lab [3], skin_rgb [3], rgb_path, alpha_path,
label_path (relative to the directory), landmarks [68*2] (x, y pixels),
visible [68], shape [S], expr [E], pose [15], viewmat [16], K [9],
light_ambient, light_dir [3], light_tint [3], background, size.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from fairsplat.io.images import SMALL_PNG, save_png
from fairsplat.labels import FITZPATRICK
from fairsplat.parallel import Plan, WorkersConfig, in_worker, iter_values, map_shards
from fairsplat.synth.config import SynthConfig
from fairsplat.splat.binding import uv_grid_binding
from fairsplat.splat.camera import intrinsics, look_at
from fairsplat.synth.appearance import build_appearance
from fairsplat.synth.identity import sample_identity
from fairsplat.synth.motion import frame_params
from fairsplat.synth.render import render_frame
from fairsplat.synth.scene import background, light_for, orbit_eye


S, I64, F64, B = pa.string(), pa.int64(), pa.float64(), pa.bool_()
_vec = pa.list_(F64)  # variable length: S shape and E expression components depend on the head
MANIFEST_SCHEMA = pa.schema([
    ("image_id", S), ("identity_id", S), ("split", S), ("frame", I64), ("view", I64), ("yaw", F64), ("pitch", F64),
    ("fitzpatrick", S), ("ita_gt", F64), ("skin_lab", _vec), ("skin_rgb", _vec), ("rgb_path", S), ("alpha_path", S),
    ("label_path", S), ("landmarks", _vec), ("visible", pa.list_(B)), ("shape", _vec), ("expr", _vec), ("pose", _vec),
    ("viewmat", _vec), ("K", _vec), ("light_ambient", F64), ("light_dir", _vec), ("light_tint", _vec),
    ("background", S), ("size", I64),
])  # fmt: skip
"""``manifest.parquet``; the types pyarrow inferred before there was a schema, so files are unchanged."""
LIGHTING_COLUMNS = [("light_exposure", F64), ("light_cct", F64)]
"""Extra manifest columns of a non-default ``synth.lighting`` (the default's file keeps its old schema)."""
IDENTITIES_SCHEMA = pa.schema([
    ("identity_id", S), ("fitzpatrick", S), ("ita", F64), ("skin_lab", _vec), ("skin_rgb", _vec), ("lip_rgb", _vec),
    ("hair", S), ("hair_rgb", _vec), ("hair_coverage", F64), ("hair_volume", F64), ("brow_rgb", _vec), ("iris", S),
    ("iris_rgb", _vec), ("shape", _vec), ("split", S),
])  # fmt: skip
"""``identities.parquet``: :class:`~fairsplat.synth.identity.Identity` fields plus ``split``."""
ITA_CHECK_SCHEMA = pa.schema([
    ("image_id", S), ("fitzpatrick", S), ("ita_gt", F64), ("ita_measured", F64), ("class_measured", S), ("agree", B),
])  # fmt: skip
"""``ita_check.parquet``: rows of :func:`fairsplat.synth.report.ita_consistency` (frontal views)."""


def manifest_schema(cfg: SynthConfig) -> pa.Schema:
    """:data:`MANIFEST_SCHEMA`, plus :data:`LIGHTING_COLUMNS` for a non-default lighting preset."""
    if cfg.lighting == "default":
        return MANIFEST_SCHEMA
    return pa.schema(list(MANIFEST_SCHEMA) + [pa.field(n, t) for n, t in LIGHTING_COLUMNS])


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """An independent stream per (seed, keys): adding identities never reshuffles earlier ones."""
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def assign_splits(types: list[str], train: float, val: float, seed: int) -> list[str]:
    """Identity-disjoint splits, stratified by type so each split sees every type."""
    out = [""] * len(types)
    rng = _rng(seed, 7)
    for t in FITZPATRICK:
        idx = [i for i, x in enumerate(types) if x == t]
        rng.shuffle(idx)
        n_train = max(1, int(round(train * len(idx))))
        n_val = int(round(val * len(idx))) if len(idx) - n_train > 1 else 0
        for k, i in enumerate(idx):
            out[i] = "train" if k < n_train else "val" if k < n_train + n_val else "test"
    return out


def expression_semantics(head) -> dict[str, int]:
    """Named expression components of the procedural head; none for a FLAME file (PCA)."""
    if head.source != "procedural":
        return {}
    from fairsplat.head.procedural import EXPRESSION_NAMES

    return {name: i for i, name in enumerate(EXPRESSION_NAMES)}


_WORKER: dict = {}


def _init_worker(head, cfg: SynthConfig, out: Path) -> None:
    """Per process: one torch thread, and the scene every identity shares (layer, binding, camera)."""
    from fairsplat.head.flame import FlameLayer

    torch.set_num_threads(1)
    if in_worker():  # pool or cluster workers: numba's parallel kernels one thread each too
        import numba

        numba.set_num_threads(1)
    v0 = torch.as_tensor(head.v_template)
    centre = 0.5 * (v0.min(0).values + v0.max(0).values)
    extent = float((v0.max(0).values - v0.min(0).values).max())
    _WORKER.update(head=head, cfg=cfg, out=out, flame=FlameLayer(head), binding=uv_grid_binding(head, resolution=cfg.uv_resolution),
                   centre=centre, distance=0.55 * extent / np.tan(np.radians(cfg.fov_deg / 2)),
                   K=intrinsics(cfg.size, cfg.size, fov_deg=cfg.fov_deg), semantics=expression_semantics(head))  # fmt: skip


def render_light(cfg, rng: np.random.Generator, i: int):
    """The light of one render: from the render's own stream ``rng``, or for ``studio`` from identity ``i``'s
    (the same light for all its frames and views; the render's stream then draws the background alone)."""
    src = _rng(cfg.seed, 6, i) if cfg.lighting == "studio" else rng
    return light_for(cfg.lighting, src, cfg.light_max_angle, cfg.temperature_jitter)


def _render_identity(job) -> tuple[list[dict], float]:
    """Every frame x view of one identity: (manifest rows, seconds spent rendering)."""
    ident, split = job
    w = _WORKER
    head, cfg, out, flame, binding, K, semantics = (w[k] for k in ("head", "cfg", "out", "flame", "binding", "K", "semantics"))
    i = int(ident.identity_id.split("_")[1])
    app = build_appearance(head, binding, ident, _rng(cfg.seed, 2, i))
    expr, pose = frame_params(cfg.frames, head.exprdirs.shape[-1], semantics, _rng(cfg.seed, 3, i))
    if not semantics:  # a real FLAME file: PCA expressions, small random draws
        expr = (_rng(cfg.seed, 4, i).normal(0, 0.6, expr.shape) * (np.arange(cfg.frames) > 0)[:, None]).astype(np.float32)
    shape = torch.tensor(ident.shape)
    rows, render_s = [], 0.0
    for f in range(cfg.frames):
        for v, (yaw, pitch) in enumerate(cfg.views):
            rng = _rng(cfg.seed, 5, i, f, v)
            light = render_light(cfg, rng, i)
            kind = str(rng.choice(cfg.backgrounds))
            bg = background(kind, cfg.size, rng)
            view = look_at(orbit_eye(w["centre"], w["distance"], yaw, pitch), w["centre"])
            t0 = time.perf_counter()
            fr = render_frame(flame, binding, app, shape, torch.as_tensor(expr[f]), torch.as_tensor(pose[f]), view, K, cfg.size, light, bg)
            render_s += time.perf_counter() - t0
            rel = f"{ident.identity_id}/f{f:02d}_v{v:02d}.png"
            for sub, arr in (("images", fr.rgb), ("alpha", fr.alpha), ("labels", fr.labels)):
                save_png(out / sub / rel, arr, compress_level=SMALL_PNG, atomic=False)  # out: an atomic_dir
            rows.append({
                "image_id": f"{ident.identity_id}_f{f:02d}_v{v:02d}", "identity_id": ident.identity_id,
                "split": split, "frame": f, "view": v, "yaw": float(yaw), "pitch": float(pitch),
                "fitzpatrick": ident.fitzpatrick, "ita_gt": ident.ita,
                "skin_lab": list(ident.skin_lab), "skin_rgb": list(ident.skin_rgb),
                "rgb_path": f"images/{rel}", "alpha_path": f"alpha/{rel}", "label_path": f"labels/{rel}",
                "landmarks": fr.landmarks.reshape(-1).tolist(), "visible": fr.visible.tolist(),
                "shape": list(ident.shape), "expr": expr[f].tolist(), "pose": pose[f].tolist(),
                "viewmat": view.reshape(-1).tolist(), "K": K.reshape(-1).tolist(),
                "light_ambient": light.ambient, "light_dir": list(light.direction), "light_tint": list(light.tint),
                "background": kind, "size": cfg.size, "light_exposure": light.exposure, "light_cct": light.cct,
            })  # fmt: skip
    return rows, render_s


def _render_shard(jobs: list) -> list[tuple[list[dict], float]]:
    """A shard of identities (one, as the stage shards them): fairsplat.parallel's unit of work."""
    return [_render_identity(j) for j in jobs]


def build(head, cfg: SynthConfig, out: Path, workers_cfg: WorkersConfig | None = None,
          only: Collection[str] | None = None) -> tuple[pa.Table, pa.Table, dict]:  # fmt: skip
    """Render the whole set into ``out`` (a fresh directory); returns tables and timing.

    ``only``: render just these identity ids. Identities and splits are still drawn over the
    whole set, so each keeps the identity and split it has in the full set: e.g. the held-out
    identities again under ``lighting: hard`` (bench/parser_encoders.py) without rendering the rest.

    Identities are rendered on ``cfg.workers`` processes (one torch thread each),
    on the engine of ``workers_cfg`` (fairsplat/parallel; default: a local
    pool); every identity draws from its own seeded streams, so the bytes
    written depend on neither. One shard per identity: a retried shard
    rewrites exactly that identity's images. Synth has no rejects: an identity
    that fails every attempt fails the stage (ShardsFailed names it), as a
    missing one would silently unbalance the types.
    """
    idents = [sample_identity(i, head.shapedirs.shape[-1], _rng(cfg.seed, 1, i)) for i in range(cfg.identities)]
    splits = assign_splits([x.fitzpatrick for x in idents], cfg.train_frac, cfg.val_frac, cfg.seed)
    if only is not None:
        unknown = set(only) - {x.identity_id for x in idents}
        if unknown:
            raise ValueError(f"only: {len(unknown)} identity ids not in this set, e.g. {sorted(unknown)[0]!r}")
        kept = [(x, s) for x, s in zip(idents, splits) if x.identity_id in only]
        idents, splits = [x for x, _ in kept], [s for _, s in kept]
    shards = [[job] for job in zip(idents, splits)]
    per_identity = cfg.frames * len(cfg.views)
    # forkserver (local pool): workers fork from a server that imported the renderer once
    plan = Plan(workers=cfg.workers, context="forkserver", preload=["fairsplat.synth.dataset"], desc="synth", unit="img",
                weight=lambda shard: len(shard) * per_identity)  # fmt: skip
    outcomes = map_shards(_render_shard, shards, plan, workers_cfg, init=_init_worker, initargs=(head, cfg, out),
                          scratch_in=out)  # fmt: skip
    rows, render_s = [], 0.0
    for shard in iter_values(outcomes):  # raises ShardsFailed if an identity failed every attempt
        for r, seconds in shard:
            rows += r
            render_s += seconds
    id_rows = [{**x.to_row(), "split": s} for x, s in zip(idents, splits)]
    timing = {"render_ms_per_image": 1000 * render_s / max(len(rows), 1), "gaussians": len(uv_grid_binding(head, cfg.uv_resolution))}
    return pa.Table.from_pylist(rows, schema=manifest_schema(cfg)), pa.Table.from_pylist(id_rows, schema=IDENTITIES_SCHEMA), timing
