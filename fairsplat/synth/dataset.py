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
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from tqdm import tqdm

from fairsplat.io.images import SMALL_PNG, save_png
from fairsplat.labels import FITZPATRICK
from fairsplat.synth.config import SynthConfig
from fairsplat.splat.binding import uv_grid_binding
from fairsplat.splat.camera import intrinsics, look_at
from fairsplat.synth.appearance import build_appearance
from fairsplat.synth.identity import sample_identity
from fairsplat.synth.motion import frame_params
from fairsplat.synth.render import render_frame
from fairsplat.synth.scene import background, orbit_eye, sample_light


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


@contextmanager
def one_torch_thread():
    """Run torch single-threaded inside the block, then restore.

    Why: a frame is many small tensor ops (14K Gaussians at 128 px). With
    torch's default OpenMP pool on a shared 2-core machine, threads spin-wait
    on each other and a frame took ~570 ms; one thread took ~55 ms (measured
    here, load average ~7).
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def build(head, cfg: SynthConfig, out: Path) -> tuple[pa.Table, pa.Table, dict]:
    """Render the whole set into ``out`` (a fresh directory); returns tables and timing."""
    with one_torch_thread():
        return _build(head, cfg, out)


def _build(head, cfg: SynthConfig, out: Path) -> tuple[pa.Table, pa.Table, dict]:
    from fairsplat.head.flame import FlameLayer

    flame = FlameLayer(head)
    binding = uv_grid_binding(head, resolution=cfg.uv_resolution)
    v0 = torch.as_tensor(head.v_template)
    centre = 0.5 * (v0.min(0).values + v0.max(0).values)
    extent = float((v0.max(0).values - v0.min(0).values).max())
    distance = 0.55 * extent / np.tan(np.radians(cfg.fov_deg / 2))
    K = intrinsics(cfg.size, cfg.size, fov_deg=cfg.fov_deg)
    semantics = expression_semantics(head)
    idents = [sample_identity(i, head.shapedirs.shape[-1], _rng(cfg.seed, 1, i)) for i in range(cfg.identities)]
    splits = assign_splits([x.fitzpatrick for x in idents], cfg.train_frac, cfg.val_frac, cfg.seed)
    rows, render_s = [], 0.0
    total = cfg.identities * cfg.frames * len(cfg.views)
    bar = tqdm(total=total, desc="synth", unit="img", mininterval=1.0)
    for ident, split in zip(idents, splits):
        i = int(ident.identity_id.split("_")[1])
        app = build_appearance(head, binding, ident, _rng(cfg.seed, 2, i))
        expr, pose = frame_params(cfg.frames, head.exprdirs.shape[-1], semantics, _rng(cfg.seed, 3, i))
        if not semantics:  # a real FLAME file: PCA expressions, small random draws
            expr = (_rng(cfg.seed, 4, i).normal(0, 0.6, expr.shape) * (np.arange(cfg.frames) > 0)[:, None]).astype(np.float32)
        shape = torch.tensor(ident.shape)
        for f in range(cfg.frames):
            for v, (yaw, pitch) in enumerate(cfg.views):
                rng = _rng(cfg.seed, 5, i, f, v)
                light = sample_light(rng, cfg.light_max_angle, cfg.temperature_jitter)
                kind = str(rng.choice(cfg.backgrounds))
                bg = background(kind, cfg.size, rng)
                view = look_at(orbit_eye(centre, distance, yaw, pitch), centre)
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
                    "background": kind, "size": cfg.size,
                })
                bar.update()
    bar.close()
    id_rows = [{**x.to_row(), "split": s} for x, s in zip(idents, splits)]
    timing = {"render_ms_per_image": 1000 * render_s / max(total, 1), "gaussians": len(binding)}
    return pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), pa.Table.from_pylist(id_rows, schema=IDENTITIES_SCHEMA), timing
