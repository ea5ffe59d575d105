"""Projection of 3D Gaussians to screen-space ellipses (EWA splatting), in plain torch.

Why plain torch: autograd then gives exact gradients to means, quats and scales
with no hand-written backward, and the same code runs on CPU and GPU. Every
non-gsplat backend shares this function, so they all see the same 2D Gaussians;
it mirrors gsplat 1.5.3's ``fully_fused_projection`` (pinhole, "classic" mode)
so that our renders can be swapped for gsplat's.

The compositing constants live here too, so that all compositors (dense,
tiled torch, numba) use one set of numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

ALPHA_THRESHOLD = 1.0 / 255.0
"""Gaussians whose alpha at a pixel is below this are skipped (3DGS, gsplat)."""
ALPHA_MAX = 0.999
"""Per-Gaussian alpha clamp. gsplat's kernels use 0.999 (original 3DGS: 0.99); we
follow gsplat so the backends are interchangeable."""
T_STOP = 1e-4
"""A pixel stops once the next transmittance would be <= this; the Gaussian
that would cross it is *not* added (gsplat's exclusive rule)."""
EXTEND_MAX = 3.33
"""Upper bound of the bounding box in standard deviations (gsplat 1.5)."""
FOV_MARGIN = 0.3
"""x/z and y/z are clamped to (1 + 0.3) x the half-FOV in the EWA Jacobian, as in
gsplat: off-screen Gaussians would otherwise get huge, unstable 2D footprints."""


@dataclass
class Projected:
    """2D Gaussians for C cameras. Culled entries have radii == 0 and finite values."""

    means2d: Tensor  # [C, N, 2] pixel coordinates; pixel (i, j) has its centre at (j + 0.5, i + 0.5)
    conics: Tensor  # [C, N, 3] upper triangle (a, b, c) of the inverse 2D covariance
    depths: Tensor  # [C, N] camera-space z
    radii: Tensor  # [C, N, 2] int32 per-axis box half-size in pixels; 0 = culled
    opacities: Tensor  # [C, N]
    alive: Tensor  # [C, N] bool: in depth range, positive-definite, opaque enough (no screen test)


def quat_to_rotmat(quats: Tensor) -> Tensor:  # [N, 4] wxyz -> [N, 3, 3]
    """Rotation matrix of a (not necessarily normalised) wxyz quaternion."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)  # [N] each
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(quats.shape[:-1] + (3, 3))


def quat_scale_to_covar(quats: Tensor, scales: Tensor) -> Tensor:  # [N, 4], [N, 3] -> [N, 3, 3]
    """Sigma = R S S^T R^T, the 3DGS parameterisation (always PSD by construction)."""
    m = quat_to_rotmat(quats) * scales[..., None, :]  # [N, 3, 3] = R @ diag(s)
    return m @ m.transpose(-1, -2)


def _fov_limits(Ks: Tensor, width: int, height: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Clamp range of x/z and y/z: the image extent plus FOV_MARGIN of the half-FOV, per camera."""
    fx, fy, cx, cy = Ks[:, 0, 0], Ks[:, 1, 1], Ks[:, 0, 2], Ks[:, 1, 2]  # [C] each
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + FOV_MARGIN * tan_x
    lim_x_neg = cx / fx + FOV_MARGIN * tan_x
    lim_y_pos = (height - cy) / fy + FOV_MARGIN * tan_y
    lim_y_neg = cy / fy + FOV_MARGIN * tan_y
    return lim_x_neg[:, None], lim_x_pos[:, None], lim_y_neg[:, None], lim_y_pos[:, None]  # [C, 1] each


def _ewa_cov2d(
    means_c: Tensor,  # [C, N, 3] camera space, z made safe (> 0)
    rs: Tensor,  # [N, 3, 3] R_gaussian @ diag(scale)
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
) -> Tensor:  # [C, N, 3] (xx, xy, yy) of J W Sigma W^T J^T
    """2D covariance via T = J W (R S), cov2d = T T^T: cheaper than forming Sigma in 3x3 first."""
    x, y, z = means_c.unbind(-1)  # [C, N]
    lx_neg, lx_pos, ly_neg, ly_pos = _fov_limits(Ks, width, height)
    tx = z * torch.minimum(torch.maximum(x / z, -lx_neg), lx_pos)  # [C, N]
    ty = z * torch.minimum(torch.maximum(y / z, -ly_neg), ly_pos)
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    rz = 1.0 / z
    zeros = torch.zeros_like(z)
    jac = torch.stack([fx * rz, zeros, -fx * tx * rz * rz, zeros, fy * rz, -fy * ty * rz * rz], -1)  # [C, N, 6]
    jac = jac.reshape(z.shape + (2, 3))  # [C, N, 2, 3]
    jw = jac @ viewmats[:, None, :3, :3]  # [C, N, 2, 3]
    t = jw @ rs[None]  # [C, N, 2, 3]
    return torch.stack([(t[..., 0, :] ** 2).sum(-1), (t[..., 0, :] * t[..., 1, :]).sum(-1), (t[..., 1, :] ** 2).sum(-1)], -1)


def _radii(cov: Tensor, opacities: Tensor) -> Tensor:  # [C, N, 3], [C, N] -> [C, N, 2] int32
    """Opacity-aware box: beyond extend*std along an axis the alpha is < 1/255 (see tiles.py)."""
    with torch.no_grad():
        log_ratio = torch.log(opacities.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD)  # [C, N] >= 0
        extend = torch.sqrt(2.0 * log_ratio).clamp_max(EXTEND_MAX)  # [C, N]
        std = torch.sqrt(torch.stack([cov[..., 0], cov[..., 2]], -1).clamp_min(0.0))  # [C, N, 2]
        return torch.ceil(extend[..., None] * std).to(torch.int32)


def project_gaussians(
    means: Tensor,  # [N, 3] world
    quats: Tensor,  # [N, 4] wxyz
    scales: Tensor,  # [N, 3] linear
    opacities: Tensor,  # [N]
    viewmats: Tensor,  # [C, 4, 4] world-to-camera (OpenCV)
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    radius_clip: float = 0.0,
    antialiased: bool = False,
) -> Projected:
    """Project N Gaussians into C pinhole cameras, gsplat-style, with culling.

    Culled (radii == 0): depth outside [near, far], 2D covariance not positive
    definite after the eps2d blur, opacity < 1/255, both box half-sizes
    <= radius_clip, or box entirely off-image. Values of culled entries are
    kept finite (unsafe divisions are masked) so that autograd never turns
    0 * inf into NaN.

    antialiased: gsplat's "antialiased" mode (Mip-Splatting): opacities are
    multiplied by sqrt(det(cov) / det(cov + eps2d I)), so the low-pass filter
    spreads a small Gaussian's energy instead of adding to it.
    """
    C = viewmats.shape[0]
    means_c = torch.einsum("cij,nj->cni", viewmats[:, :3, :3], means) + viewmats[:, None, :3, 3]  # [C, N, 3]
    depths = means_c[..., 2]  # [C, N]
    in_range = (depths >= near_plane) & (depths <= far_plane)  # [C, N]
    z_safe = torch.where(in_range, depths, torch.ones_like(depths))
    means_c = torch.cat([means_c[..., :2], z_safe[..., None]], -1)  # [C, N, 3]
    rs = quat_to_rotmat(quats) * scales[:, None, :]  # [N, 3, 3]
    cov = _ewa_cov2d(means_c, rs, viewmats, Ks, width, height)  # [C, N, 3]
    det_orig = cov[..., 0] * cov[..., 2] - cov[..., 1] ** 2  # [C, N] before the blur
    cov = cov + torch.tensor([eps2d, 0.0, eps2d], dtype=cov.dtype, device=cov.device)  # low-pass filter
    det = cov[..., 0] * cov[..., 2] - cov[..., 1] ** 2  # [C, N]
    pos_def = det > 0
    det_safe = torch.where(pos_def, det, torch.ones_like(det))
    conics = torch.stack([cov[..., 2], -cov[..., 1], cov[..., 0]], -1) / det_safe[..., None]  # [C, N, 3]
    means2d = torch.einsum("cij,cnj->cni", Ks[:, :2, :3], means_c) / z_safe[..., None]  # [C, N, 2]
    ops = opacities[None].expand(C, -1)  # [C, N]
    if antialiased:
        ratio = torch.where(pos_def, det_orig / det_safe, torch.zeros_like(det))
        ops = ops * torch.sqrt(ratio.clamp_min(1e-30)) * (ratio > 0)  # [C, N]; sqrt(0) has no gradient
    alive = in_range & pos_def & (ops >= ALPHA_THRESHOLD)
    radii = _radii(cov.detach(), ops.detach()) * alive[..., None]  # [C, N, 2]
    with torch.no_grad():
        r = radii.to(means2d.dtype)
        m = means2d.detach()
        off = (m[..., 0] + r[..., 0] <= 0) | (m[..., 0] - r[..., 0] >= width)
        off |= (m[..., 1] + r[..., 1] <= 0) | (m[..., 1] - r[..., 1] >= height)
        off |= (r[..., 0] <= radius_clip) & (r[..., 1] <= radius_clip)
        radii = radii.masked_fill(off[..., None], 0)
    return Projected(means2d, conics, depths, radii, ops, alive)

