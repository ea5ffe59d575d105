"""Seed 003's screen-space anti-spike term: how elongated each Gaussian looks on screen.

    L_aspect = mean over visible Gaussians of ReLU(½·log(λmax / λmin of Σ2D) − τ)

``Σ2D`` is the rasteriser's own projected covariance (``project_gaussians``,
the EWA Jacobian with gsplat's FOV clamp, **plus its eps2d low-pass blur**):
the footprint the Gaussian is drawn with. Why with the blur: a sub-pixel
Gaussian seen edge-on has an unbounded raw ratio but is drawn as a round
0.3 px² dot, not a streak; "thin streaks in the rendered image" are what the
seed penalises, so the ratio is measured on what is rendered. ½·log(λmax/λmin)
is the log of the axis-length ratio, so the penalty starts when one screen
axis is more than e^τ times the other, i.e. when λmax/λmin > e^(2τ) (the
bound the spike statistics count against).

Closed form for a 2x2 SPD matrix [[a, b], [b, c]] (covariance or its inverse,
the conic: the eigenvalue ratio is the same): λ+ = (a + c)/2 + sqrt(((a − c)/2)²
+ b²), λ− = det / λ+, so log(λ+/λ−) = 2·log λ+ − log det (no cancellation in
λ−). The square root has an infinite derivative at isotropy; the radicand is
clamped at 1e-20 there, which is inside the ReLU's flat part for any τ > 0, so
gradients stay finite and exact wherever the penalty is active.

"Visible" = what the rasteriser draws in that camera (radii > 0: in depth
range, positive definite, opaque enough, box on the image). The slow twin
:func:`aspect_penalty_reference` builds Σ2D per Gaussian from the 3D
covariance with an explicit Jacobian and takes ``torch.linalg.eigvalsh``;
the tests compare values and gradients (STYLE.md: a slow reference beside
every fast op).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fairsplat.splat.project import project_gaussians, quat_scale_to_covar

EPS2D = 0.3
"""gsplat's (and our rasteriser's) default low-pass blur, px², added to Σ2D before drawing."""


def log_aspect(tri: Tensor) -> Tensor:  # [..., 3] (a, b, c) of a 2x2 SPD matrix -> [...]
    """log(λmax / λmin) of [[a, b], [b, c]] (>= 0), differentiable, finite at isotropy."""
    a, b, c = tri.unbind(-1)
    half_tr = 0.5 * (a + c)
    disc = (0.5 * (a - c)) ** 2 + b * b
    lam_max = half_tr + torch.sqrt(disc.clamp_min(1e-20))
    det = (a * c - b * b).clamp_min(1e-30)
    return (2.0 * torch.log(lam_max) - torch.log(det)).clamp_min(0.0)


def screen_log_aspect(
    means: Tensor,  # [N, 3] world
    quats: Tensor,  # [N, 4] wxyz
    scales: Tensor,  # [N, 3] linear
    opacities: Tensor,  # [N]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    size: int,
    eps2d: float = EPS2D,
) -> tuple[Tensor, Tensor]:  # log(λmax/λmin) [C, N], visible [C, N] bool
    """Per camera and Gaussian, the log eigenvalue ratio of the drawn footprint, and which are drawn."""
    assert means.ndim == 2 and means.shape[1] == 3 and viewmats.ndim == 3, (means.shape, viewmats.shape)
    proj = project_gaussians(means, quats, scales, opacities, viewmats, Ks, size, size, eps2d=eps2d)
    visible = (proj.radii > 0).any(-1)  # [C, N]
    return log_aspect(proj.conics), visible


def turn_about(
    viewmat: Tensor,  # [4, 4] world-to-camera
    centre: Tensor,  # [3] world point turned about (a head's centre)
    yaw_deg: Tensor,  # [J] about the camera's vertical axis through ``centre``
    pitch_deg: Tensor,  # [J] then about its horizontal axis
) -> Tensor:  # [J, 4, 4]
    """The camera as it would see the scene turned by (yaw, pitch) about ``centre``, in its own axes.

    Equivalent to the head turning in front of a fixed camera: p' = R (p - c) + c
    in camera coordinates, c = the centre seen from the camera. Used to show a
    regulariser poses it has no image of (refine's aspect penalty).
    """
    yaw, pitch = torch.deg2rad(yaw_deg), torch.deg2rad(pitch_deg)  # [J]
    cy, sy, cp, sp = torch.cos(yaw), torch.sin(yaw), torch.cos(pitch), torch.sin(pitch)
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)
    r_yaw = torch.stack([torch.stack([cy, zero, sy], -1), torch.stack([zero, one, zero], -1),
                         torch.stack([-sy, zero, cy], -1)], -2)  # [J, 3, 3]  # fmt: skip
    r_pitch = torch.stack([torch.stack([one, zero, zero], -1), torch.stack([zero, cp, -sp], -1),
                           torch.stack([zero, sp, cp], -1)], -2)  # [J, 3, 3]  # fmt: skip
    rot = r_pitch @ r_yaw  # [J, 3, 3]
    c = viewmat[:3, :3] @ centre + viewmat[:3, 3]  # [3] in camera coordinates
    turn = torch.eye(4, dtype=viewmat.dtype).repeat(len(yaw), 1, 1)  # [J, 4, 4]
    turn[:, :3, :3] = rot
    turn[:, :3, 3] = c - rot @ c
    return turn @ viewmat


def aspect_penalty(log_ratio: Tensor, visible: Tensor, tau: float) -> Tensor:  # [C, N] x2 -> scalar
    """Mean over visible (camera, Gaussian) pairs of ReLU(½·log ratio − τ); 0 when nothing is visible."""
    hinge = torch.relu(0.5 * log_ratio - tau)
    n = visible.sum()
    return (hinge * visible).sum() / n.clamp_min(1)


def spike_stats(log_ratios: Tensor, tau: float) -> dict[str, float | None]:  # [M] of visible Gaussians
    """99th percentile and maximum of λmax/λmin, and the fraction above e^(2τ) (the penalty's bound)."""
    r = log_ratios.detach().double().flatten()
    if r.numel() == 0:
        return {"aspect_p99": None, "aspect_max": None, "spike_frac": None}
    return {"aspect_p99": float(torch.quantile(r, 0.99).exp()), "aspect_max": float(r.max().exp()),
            "spike_frac": float((r > 2.0 * tau).double().mean())}  # fmt: skip


def aspect_penalty_reference(
    means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, viewmats: Tensor, Ks: Tensor, size: int,
    tau: float, eps2d: float = EPS2D,
) -> Tensor:  # fmt: skip
    """The slow twin: Σ2D = J W Σ Wᵀ Jᵀ + eps2d·I per Gaussian, eigvalsh, mean of the hinge.

    No FOV clamp in J (keep test Gaussians inside the view, where gsplat's clamp
    is inactive); visibility is taken from the fast path (the same culling).
    """
    _, visible = screen_log_aspect(means, quats, scales, opacities, viewmats, Ks, size, eps2d)
    cov3 = quat_scale_to_covar(quats, scales)  # [N, 3, 3]
    total, count = means.new_zeros(()), 0
    for c in range(viewmats.shape[0]):
        rot, t = viewmats[c, :3, :3], viewmats[c, :3, 3]
        fx, fy = Ks[c, 0, 0], Ks[c, 1, 1]
        for n in range(means.shape[0]):
            if not bool(visible[c, n]):
                continue
            x, y, z = (rot @ means[n] + t).unbind()
            jac = torch.stack([torch.stack([fx / z, torch.zeros_like(z), -fx * x / z**2]),
                               torch.stack([torch.zeros_like(z), fy / z, -fy * y / z**2])])  # [2, 3]  # fmt: skip
            m = jac @ rot
            cov2 = m @ cov3[n] @ m.T + eps2d * torch.eye(2, dtype=means.dtype)
            lam = torch.linalg.eigvalsh(cov2)  # ascending
            total = total + torch.relu(0.5 * torch.log(lam[1] / lam[0]) - tau)
            count += 1
    return total / max(count, 1)


def bound(tau: float) -> float:
    """The eigenvalue-ratio bound e^(2τ) that ``spike_frac`` counts against."""
    return math.exp(2.0 * tau)
