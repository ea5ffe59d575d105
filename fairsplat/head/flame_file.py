"""Convert a user's FLAME 2020/2023 model into the project's :class:`HeadModel`.

Why a converter (not a second layer): every stage reads one asset contract
(fairsplat/head/model.py), so a real FLAME file is turned into exactly the
shape the procedural default has, once, in the ``head`` stage.

Inputs (all read without running code from the files; see flame_file_pickle.py):

- the model, ``.pkl`` (chumpy arrays, scipy sparse ``J_regressor``) or ``.npz``
  with the same keys: ``v_template [V,3]``, ``f [F,3]``, ``shapedirs [V,3,400]``
  (300 identity then 100 expression components in FLAME 2020/2023; an ``.npz``
  may instead hold ``shapedirs [V,3,S]`` and ``exprdirs [V,3,E]``),
  ``posedirs [V,3,36]``, ``J_regressor [5,V]`` (sparse in a pkl, dense in an
  npz), ``weights [V,5]``, ``kintree_table [2,5]``;
- the landmark embedding (FLAME's ``landmark_embedding.npy``, a pickled dict):
  ``full_lmk_faces_idx [68]`` / ``full_lmk_bary_coords [68,3]`` in iBUG order.
  The 51 ``static_*`` points alone are not enough (no jaw contour) and are
  refused with that reason. An ``.npz`` model may carry these keys itself;
- UVs (optional): FLAME's texture ``.npz`` (``vt [T,2]``, ``ft [F,3]``) or an
  ``.obj``; without them a cylindrical projection is used (flame_file_uv.py);
- region masks (optional): ``FLAME_masks.pkl``; without them regions come from
  the 68 landmarks only (flame_file_regions.py).
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from fairsplat.head.flame_file_pickle import FlameFileError, load_npy_object, load_pickle, to_numpy
from fairsplat.head.model import N_LANDMARKS, HeadModel, HeadModelError

N_JOINTS = 5
FLAME_SHAPE = 300  # FLAME's shapedirs: the first 300 components are identity, the rest expression
_MODEL_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")
_LMK_KEYS = (("full_lmk_faces_idx", "full_lmk_bary_coords"), ("lmk_faces_idx", "lmk_bary_coords"))


def convert_flame(
    path: str | Path,
    landmark_path: str | Path | None = None,
    uv_path: str | Path | None = None,
    masks_path: str | Path | None = None,
    n_shape: int = 300,
    n_expr: int = 100,
) -> HeadModel:
    """Read a FLAME model (+ landmarks, UVs, masks) and return a validated HeadModel."""
    from fairsplat.head.flame_file_regions import face_regions
    from fairsplat.head.flame_file_uv import read_uvs

    raw = read_flame_model(path)
    src = str(path)
    v, faces = raw["v_template"], raw["f"]
    shapedirs, exprdirs = _split_dirs(raw, n_shape, n_expr, src)
    lmk_faces, lmk_bary = _landmarks(raw, landmark_path, len(faces), src)
    uvs, uv_faces = read_uvs(uv_path, v, faces)
    lmk_xyz = np.einsum("lk,lkc->lc", lmk_bary, v[faces[lmk_faces]])  # [68, 3]
    masks = _read_masks(masks_path, len(v)) if masks_path is not None else None
    parents = raw["kintree_table"][0].astype(np.int64)
    parents[0] = -1  # FLAME stores the root's parent as 2**32 - 1
    model = HeadModel(
        v_template=v, faces=faces, shapedirs=shapedirs, exprdirs=exprdirs,
        posedirs=_posedirs(raw["posedirs"]), j_regressor=raw["J_regressor"], parents=parents,
        lbs_weights=raw["weights"], uvs=uvs, uv_faces=uv_faces,
        face_regions=face_regions(v, faces, lmk_xyz, masks), lmk_faces=lmk_faces, lmk_bary=lmk_bary,
        source=f"flame:{Path(path).name}",
    )
    try:
        return model.validate()
    except HeadModelError as err:
        raise FlameFileError(f"{src}: converted model is invalid: {err}") from err


def read_flame_model(path: str | Path) -> dict[str, np.ndarray]:
    """Load and shape-check the FLAME arrays of a ``.pkl`` or ``.npz`` (dense numpy)."""
    path = Path(path)
    src = str(path)
    if path.suffix == ".npz":
        data = _read_npz(path)
    elif path.suffix == ".pkl":
        data = load_pickle(path)
        if not isinstance(data, dict):
            raise FlameFileError(f"{src}: expected a dict of FLAME arrays, got {type(data).__name__}")
    else:
        raise FlameFileError(f"{src}: unknown FLAME file type '{path.suffix}' (expected .pkl or .npz)")
    missing = [k for k in _MODEL_KEYS if k not in data]
    if missing:
        raise FlameFileError(f"{src}: missing FLAME key(s) {', '.join(missing)}")
    keys = _MODEL_KEYS + tuple(k for k in ("exprdirs", *sum(_LMK_KEYS, ())) if k in data)
    raw = {k: to_numpy(data[k], k, src) for k in keys}
    _check_shapes(raw, src)
    return raw


def _read_npz(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as err:
        raise FlameFileError(f"{path}: not a readable .npz ({err})") from err
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):  # np.load would take any other bytes for a pickle
        raise FlameFileError(f"{path}: not a readable .npz (not a zip archive; starts with {magic!r})")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise FlameFileError(f"{path}: holds pickled object arrays, which are refused (save plain arrays)") from err
        raise FlameFileError(f"{path}: not a readable .npz ({err})") from err
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise FlameFileError(f"{path}: not a readable .npz (truncated or corrupt: {err})") from err


def _check_shapes(raw: dict[str, np.ndarray], src: str) -> None:
    """Every FLAME array against the vertex count; errors name the key and both shapes."""
    v = raw["v_template"]
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < 3:
        raise FlameFileError(f"{src}: v_template has shape {v.shape}, expected [V, 3]")
    nv = v.shape[0]
    want = {
        "f": ("[F, 3]", lambda a: a.ndim == 2 and a.shape[1] == 3 and a.shape[0] > 0),
        "shapedirs": (f"[{nv}, 3, K]", lambda a: a.ndim == 3 and a.shape[:2] == (nv, 3)),
        "exprdirs": (f"[{nv}, 3, E]", lambda a: a.ndim == 3 and a.shape[:2] == (nv, 3)),
        "posedirs": (f"[{nv}, 3, {9 * (N_JOINTS - 1)}]", lambda a: a.shape == (nv, 3, 9 * (N_JOINTS - 1))),
        "J_regressor": (f"[{N_JOINTS}, {nv}]", lambda a: a.shape == (N_JOINTS, nv)),
        "weights": (f"[{nv}, {N_JOINTS}]", lambda a: a.shape == (nv, N_JOINTS)),
        "kintree_table": (f"[2, {N_JOINTS}]", lambda a: a.shape == (2, N_JOINTS)),
    }
    for key, (shape, ok) in want.items():
        if key in raw and not ok(raw[key]):
            raise FlameFileError(f"{src}: {key} has shape {raw[key].shape}, expected {shape}")
    for key, a in raw.items():
        if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
            raise FlameFileError(f"{src}: {key} contains NaN or inf")
    if "exprdirs" not in raw and raw["shapedirs"].shape[2] <= FLAME_SHAPE:
        raise FlameFileError(
            f"{src}: shapedirs has {raw['shapedirs'].shape[2]} components and there is no exprdirs; FLAME 2020/2023 "
            f"hold {FLAME_SHAPE} identity + 100 expression components"
        )
    f = raw["f"]
    if f.dtype.kind not in "iu" or f.min() < 0 or f.max() >= nv:
        raise FlameFileError(f"{src}: f must hold vertex ids in [0, {nv}), got dtype {f.dtype} range [{f.min()}, {f.max()}]")
    raw["f"] = f.astype(np.int64)
    parents = raw["kintree_table"][0].astype(np.int64)
    if np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, N_JOINTS)):
        raise FlameFileError(f"{src}: kintree_table[0] = {raw['kintree_table'][0].tolist()} is not a parents-first tree")
    sums = raw["weights"].sum(1)
    if np.abs(sums - 1.0).max() > 1e-3:
        raise FlameFileError(f"{src}: weights rows must sum to 1, max deviation {np.abs(sums - 1).max():.3g}")


def _split_dirs(raw: dict[str, np.ndarray], n_shape: int, n_expr: int, src: str) -> tuple[np.ndarray, np.ndarray]:
    """Keep the first n_shape identity and n_expr expression components."""
    if "exprdirs" in raw:
        shape_all, expr_all = raw["shapedirs"], raw["exprdirs"]
    else:  # _check_shapes made sure there are more than FLAME_SHAPE components
        shape_all, expr_all = raw["shapedirs"][:, :, :FLAME_SHAPE], raw["shapedirs"][:, :, FLAME_SHAPE:]
    for key, have, want in (("head.n-shape", shape_all.shape[2], n_shape), ("head.n-expr", expr_all.shape[2], n_expr)):
        if want > have:
            raise FlameFileError(f"{key}: {want} components asked for, but {src} has only {have}")
    return shape_all[:, :, :n_shape], expr_all[:, :, :n_expr]


def _posedirs(posedirs: np.ndarray) -> np.ndarray:
    """FLAME [V, 3, 36] -> [36, V*3] (as smplx does), rows = the (R - I) pose feature."""
    return posedirs.reshape(-1, posedirs.shape[2]).T


def _landmarks(raw: dict, landmark_path: str | Path | None, n_faces: int, src: str) -> tuple[np.ndarray, np.ndarray]:
    """68 (face id, barycentric) pairs from the landmark file, or from the model .npz itself."""
    if landmark_path is not None:
        data, where = load_npy_object(landmark_path), str(landmark_path)
        if not isinstance(data, dict):
            raise FlameFileError(f"{where}: expected a pickled dict of landmark arrays, got {type(data).__name__}")
    else:
        data, where = raw, src
    for fkey, bkey in _LMK_KEYS:
        if fkey in data and bkey in data:
            return _check_landmarks(data[fkey], data[bkey], n_faces, where, fkey, bkey)
    static = "static_lmk_faces_idx" in data
    hint = " (it holds only the 51 static points; the 17 jaw-contour points are missing)" if static else ""
    raise FlameFileError(
        f"{where}: no 68-point landmark embedding (full_lmk_faces_idx + full_lmk_bary_coords){hint}; "
        "set head.landmark-path to FLAME's landmark_embedding.npy"
    )


def _check_landmarks(faces_idx: Any, bary: Any, n_faces: int, where: str, fkey: str, bkey: str) -> tuple[np.ndarray, np.ndarray]:
    idx = to_numpy(faces_idx, fkey, where).reshape(-1)
    b = to_numpy(bary, bkey, where)
    b = b.reshape(-1, 3) if b.size == 3 * N_LANDMARKS else b
    if idx.shape != (N_LANDMARKS,) or b.shape != (N_LANDMARKS, 3):
        raise FlameFileError(f"{where}: {fkey}/{bkey} have shapes {idx.shape}/{b.shape}, expected [68]/[68, 3]")
    if idx.min() < 0 or idx.max() >= n_faces or np.any(idx != np.round(idx)):
        raise FlameFileError(f"{where}: {fkey} must hold face ids in [0, {n_faces})")
    if np.abs(b.sum(1) - 1.0).max() > 1e-3 or b.min() < -1e-3:
        raise FlameFileError(f"{where}: {bkey} rows must be barycentric (>= 0, sum 1)")
    return idx.astype(np.int64), b.astype(np.float64)


def _read_masks(path: str | Path, n_vertices: int) -> dict[str, np.ndarray]:
    """FLAME_masks.pkl: region name -> vertex ids, checked against the vertex count."""
    data = load_pickle(path)
    if not isinstance(data, dict):
        raise FlameFileError(f"{path}: expected a dict of region -> vertex ids, got {type(data).__name__}")
    out = {}
    for name, ids in data.items():
        a = to_numpy(ids, str(name), str(path)).reshape(-1)
        if a.size and (a.min() < 0 or a.max() >= n_vertices or np.any(a != np.round(a))):
            raise FlameFileError(f"{path}: region {name} must hold vertex ids in [0, {n_vertices})")
        out[str(name)] = a.astype(np.int64)
    return out
