"""View-dependent colour from spherical-harmonic coefficients, as 3DGS and gsplat evaluate it.

Why here: a Gaussian set read from a standard 3DGS PLY carries SH coefficients
(``f_dc_*``, ``f_rest_*``), and gsplat's ``rasterization(..., sh_degree=d)``
turns them into colours with this basis before compositing. Reproducing it
exactly (same real basis, same signs, the same ``+ 0.5`` and clamp at 0) keeps
the torch and gsplat backends interchangeable on SH input too.

The basis is the real SH with the Condon-Shortley phase, ordered m = -l..l
within each band: Y_1 = (-C1 y, C1 z, -C1 x), as in INRIA's ``sh_utils.py``.
Degrees 0-3 (16 coefficients), the range 3DGS PLY files and viewers use.
"""

from __future__ import annotations

import torch
from torch import Tensor

MAX_DEGREE = 3

C0 = 0.28209479177387814
C1 = 0.4886025119029199
C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
      -0.4570457994644658, 1.445305721320277, -0.5900435899266435)  # fmt: skip


def sh_basis(degree: int, dirs: Tensor) -> Tensor:  # [..., 3] unit vectors -> [..., (degree + 1) ** 2]
    """The (degree + 1)^2 real SH basis functions at unit directions ``dirs``."""
    if not 0 <= degree <= MAX_DEGREE:
        raise ValueError(f"sh_degree: expected 0..{MAX_DEGREE}, got {degree}")
    x, y, z = dirs.unbind(-1)  # [...] each
    out = [torch.full_like(x, C0)]
    if degree >= 1:
        out += [-C1 * y, C1 * z, -C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [C2[0] * x * y, C2[1] * y * z, C2[2] * (2 * zz - xx - yy), C2[3] * x * z, C2[4] * (xx - yy)]
    if degree >= 3:
        out += [
            C3[0] * y * (3 * xx - yy), C3[1] * x * y * z, C3[2] * y * (4 * zz - xx - yy),
            C3[3] * z * (2 * zz - 3 * xx - 3 * yy), C3[4] * x * (4 * zz - xx - yy),
            C3[5] * z * (xx - yy), C3[6] * x * (xx - 3 * yy),
        ]  # fmt: skip
    return torch.stack(out, dim=-1)


def sh_to_color(
    degree: int,
    dirs: Tensor,  # [..., 3] viewing directions (camera -> Gaussian), any length
    coeffs: Tensor,  # [..., K, 3] with K >= (degree + 1) ** 2
) -> Tensor:  # [..., 3]
    """gsplat's colour rule: clamp_min(sum_k Y_k(d) c_k + 0.5, 0); bands above ``degree`` are ignored."""
    k = (degree + 1) ** 2
    if coeffs.shape[-2] < k:
        raise ValueError(f"colors: sh_degree {degree} needs >= {k} coefficients, got {coeffs.shape[-2]}")
    basis = sh_basis(degree, torch.nn.functional.normalize(dirs, dim=-1))  # [..., k]
    rgb = (basis[..., None] * coeffs[..., :k, :]).sum(-2)  # [..., 3]
    return torch.clamp_min(rgb + 0.5, 0.0)
