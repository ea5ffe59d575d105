"""Standard 3DGS PLY: the layout INRIA's 3DGS writes and common splat viewers open.

Properties, in this order: x y z, nx ny nz (zeros; viewers expect them),
f_dc_0..2, f_rest_0..(3*(K-1)-1) stored channel-major as 3DGS does,
opacity (logit), scale_0..2 (log), rot_0..3 (wxyz, unnormalised). All float32
little-endian binary. Because :class:`GaussianSet` keeps the raw values, the
round trip is exact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement

from fairsplat.io.atomic import atomic_path
from fairsplat.splat.gaussians import GaussianSet


class PlyFormatError(ValueError):
    pass


def _names(n_rest: int) -> list[str]:
    return (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(n_rest)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )


def save_ply(path: str | Path, g: GaussianSet) -> None:
    n, k = len(g), g.sh.shape[1]
    sh = g.sh.detach().cpu().float().numpy()  # [N, K, 3]
    rest = sh[:, 1:, :].transpose(0, 2, 1).reshape(n, -1)  # [N, 3*(K-1)] channel-major
    cols = [
        g.means.detach().cpu().float().numpy(),
        np.zeros((n, 3), np.float32),
        sh[:, 0, :],
        rest,
        g.opacity_logits.detach().cpu().float().numpy()[:, None],
        g.log_scales.detach().cpu().float().numpy(),
        g.quats.detach().cpu().float().numpy(),
    ]
    flat = np.concatenate(cols, axis=1).astype("<f4")
    names = _names(3 * (k - 1))
    arr = np.empty(n, dtype=[(name, "<f4") for name in names])
    for i, name in enumerate(names):
        arr[name] = flat[:, i]
    with atomic_path(path) as tmp:
        PlyData([PlyElement.describe(arr, "vertex")], text=False, byte_order="<").write(str(tmp))


def load_ply(path: str | Path) -> GaussianSet:
    try:
        ply = PlyData.read(str(path))
        v = ply["vertex"].data
    except Exception as err:  # plyfile raises several types for bad files
        raise PlyFormatError(f"{path}: not a readable PLY ({err})") from None
    names = v.dtype.names or ()
    need = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    missing = [n for n in need if n not in names]
    if missing:
        raise PlyFormatError(f"{path}: not a 3DGS PLY, missing properties {missing}")
    n_rest = sum(1 for n in names if n.startswith("f_rest_"))
    if n_rest % 3 or int(round((n_rest // 3 + 1) ** 0.5)) ** 2 != n_rest // 3 + 1:
        raise PlyFormatError(f"{path}: {n_rest} f_rest properties is not a full SH degree")

    def col(*keys: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([np.asarray(v[k], dtype=np.float32) for k in keys], axis=1))

    k = n_rest // 3 + 1
    dc = col("f_dc_0", "f_dc_1", "f_dc_2")[:, None, :]  # [N, 1, 3]
    rest = col(*[f"f_rest_{i}" for i in range(n_rest)]) if n_rest else torch.zeros(len(v), 0)
    rest = rest.reshape(len(v), 3, k - 1).transpose(1, 2)  # [N, K-1, 3]
    return GaussianSet(
        means=col("x", "y", "z"),
        quats=col("rot_0", "rot_1", "rot_2", "rot_3"),
        log_scales=col("scale_0", "scale_1", "scale_2"),
        opacity_logits=col("opacity")[:, 0],
        sh=torch.cat([dc, rest], dim=1).contiguous(),
    )
