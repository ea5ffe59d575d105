"""UV coordinates for a FLAME mesh: FLAME's texture file, an .obj, or a cylindrical default.

Why a default: UVs are only needed for the UV-grid Gaussian binding (seed 003);
a user with only the model file should still get a working pipeline. The
default is a cylindrical projection about the vertical (+Y) axis with the seam
at the back of the head (hair, rarely seen frontally); it is a fallback, not
FLAME's artist layout, so pass ``head.uv-path`` for that.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from fairsplat.head.flame_file_pickle import FlameFileError


def read_uvs(path: str | Path | None, v: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-> uvs [T, 2] in [0, 1], uv_faces [F, 3] (ids into uvs)."""
    if path is None:
        return cylindrical_uvs(v, faces)
    path = Path(path)
    if not path.is_file():
        raise FlameFileError(f"{path}: UV file not found")
    if path.suffix == ".npz":
        uvs, uv_faces = _read_texture_npz(path)
    elif path.suffix == ".obj":
        uvs, uv_faces = _read_obj(path, faces)
    else:
        raise FlameFileError(f"{path}: unknown UV file type '{path.suffix}' (expected FLAME's texture .npz or an .obj)")
    if uv_faces.shape != faces.shape:
        raise FlameFileError(f"{path}: {uv_faces.shape[0]} UV faces for a mesh of {faces.shape[0]} faces")
    if uv_faces.min() < 0 or uv_faces.max() >= len(uvs):
        raise FlameFileError(f"{path}: UV face ids must be in [0, {len(uvs)})")
    if not np.all(np.isfinite(uvs)) or uvs.min() < -1e-4 or uvs.max() > 1 + 1e-4:
        raise FlameFileError(f"{path}: UVs must lie in [0, 1], got [{np.nanmin(uvs):.4f}, {np.nanmax(uvs):.4f}]")
    return np.clip(uvs, 0.0, 1.0), uv_faces


def _read_texture_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "vt" not in npz.files or "ft" not in npz.files:
                raise FlameFileError(f"{path}: a FLAME texture .npz needs keys vt and ft, has {sorted(npz.files)}")
            vt, ft = np.asarray(npz["vt"], np.float64), np.asarray(npz["ft"])
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise FlameFileError(f"{path}: not a readable .npz (truncated or corrupt: {err})") from err
    if vt.ndim != 2 or vt.shape[1] != 2 or ft.ndim != 2 or ft.shape[1] != 3 or ft.dtype.kind not in "iu":
        raise FlameFileError(f"{path}: vt {vt.shape} / ft {ft.shape} {ft.dtype}, expected [T, 2] floats / [F, 3] ints")
    return vt, ft.astype(np.int64)


def _read_obj(path: Path, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``vt`` lines and ``f v/vt[/vn]`` triangles; vertex ids must match the model's faces."""
    vts, vids, tids = [], [], []
    try:
        for line_no, line in enumerate(path.read_text(errors="strict").splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "vt":
                vts.append([float(parts[1]), float(parts[2])])
            elif parts[0] == "f":
                if len(parts) != 4 or any("/" not in p for p in parts[1:]):
                    raise FlameFileError(f"{path}:{line_no}: expected a triangle 'f v/vt v/vt v/vt'")
                corners = [p.split("/") for p in parts[1:]]
                vids.append([int(c[0]) for c in corners])
                tids.append([int(c[1]) for c in corners])
    except (ValueError, IndexError, UnicodeDecodeError) as err:
        raise FlameFileError(f"{path}: malformed .obj ({err})") from err
    if not vts or not tids:
        raise FlameFileError(f"{path}: no 'vt' texture coordinates or no textured faces")
    vt = np.asarray(vts, np.float64)
    v_ids, t_ids = np.asarray(vids), np.asarray(tids)
    if v_ids.min() < 1 or t_ids.min() < 1:
        raise FlameFileError(f"{path}: relative (negative) or zero .obj indices are not supported")
    v_ids, t_ids = v_ids - 1, t_ids - 1  # .obj ids are 1-based
    if v_ids.shape == faces.shape and not np.array_equal(v_ids, faces):
        raise FlameFileError(f"{path}: its faces are not the FLAME model's faces (different vertex ids or order)")
    return vt, t_ids


def cylindrical_uvs(v: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cylinder about +Y through the vertex centroid; seam at the back (-Z).

    u = azimuth / 2pi (0.5 = facing +Z), v = normalised height. Faces that
    straddle the seam get their own copies of the small-u corners, shifted by
    +1, and u is then rescaled so everything stays in [0, 1].
    """
    c = v - v.mean(0)  # [V, 3]
    u = np.arctan2(c[:, 0], c[:, 2]) / (2 * np.pi) + 0.5  # [V] in [0, 1]
    h = (v[:, 1] - v[:, 1].min()) / max(np.ptp(v[:, 1]), 1e-12)  # [V]
    uvs = np.stack([u, h], 1)  # [V, 2]
    uv_faces = faces.copy()
    fu = u[faces]  # [F, 3]
    seam = fu.max(1) - fu.min(1) > 0.5  # [F] faces crossing the back seam
    fix = seam[:, None] & (fu < 0.5)  # [F, 3] corners to move to u + 1
    extra = faces[fix]  # vertex ids needing a shifted copy
    uv_faces[fix] = len(uvs) + np.arange(extra.size)
    uvs = np.concatenate([uvs, np.stack([u[extra] + 1.0, h[extra]], 1)], 0)
    uvs[:, 0] /= max(uvs[:, 0].max(), 1.0)
    return uvs, uv_faces
