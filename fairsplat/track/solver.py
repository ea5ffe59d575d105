"""A batched Levenberg-Marquardt solver for many small, loosely coupled fits.

The problem it solves: frames ``b`` with their own parameters ``x_b [Dx]``,
subjects ``g`` with shared parameters ``y_g [Dy]`` (a shape every frame of the
subject uses), and the cost

    sum_b |r(x_b, y_g(b))|^2                       nonlinear residuals (landmarks)
  + sum_b |sqrt(wx) x_b|^2 + sum_g |sqrt(wy) y_g|^2  diagonal L2 priors
  + wl sum_b |hinge(x_b; lo, hi)|^2               soft box limits (joint ranges)
  + sum_clips sum_t |sqrt(ws) (x_t-1 - 2 x_t + x_t+1)|^2   temporal smoothness

optionally subject to hard bounds ``box_lo <= x_b <= box_hi``, kept by
projecting every trial step onto the box (projected Levenberg-Marquardt). A
soft wall there would make a step that crosses it look worse than it is for
the whole subject, and the damping would then stall every other parameter.

Why LM rather than Adam: landmark fitting is a small least-squares problem
whose variables are strongly coupled (rotation, depth and face size trade
against each other). Gauss-Newton steps follow those couplings and converge
in ~15 iterations to the precision Adam reaches in thousands. Each subject is
an independent block (its frames plus its shape), solved densely with its
own damping, so a sample's result does not depend on what else is in the
batch; blocks with the same number of frames are solved as one batch.

Jacobians come from forward-mode AD on the residual function evaluated on
the batch repeated once per parameter direction (one vectorised call).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Residual = Callable[[Tensor], Tensor]  # z [N, Dx + Dy] (frame params, then its subject's) -> r [N, R]
Update = Callable[[Tensor, Tensor], Residual]  # (x [B, Dx], y [G, Dy]) -> the residual for this iteration


@dataclass(frozen=True)
class Terms:
    """The quadratic terms of the cost (see the module doc); all float32 tensors."""

    wx: Tensor  # [Dx] L2 weight per frame parameter
    wy: Tensor  # [Dy] L2 weight per subject parameter
    lo: Tensor  # [Dx] soft lower limits (-inf: none)
    hi: Tensor  # [Dx] soft upper limits (+inf: none)
    wl: float  # weight of the squared hinge
    ws: Tensor  # [Dx] second-difference weight per frame parameter
    triples: Tensor  # [M, 3] long (t-1, t, t+1) batch rows within one subject
    box_lo: Tensor | None = None  # [Dx] hard lower bounds (steps are projected onto the box), or None
    box_hi: Tensor | None = None  # [Dx] hard upper bounds

    def project(self, x: Tensor) -> Tensor:  # [B, Dx] -> [B, Dx] clamped into the hard box
        if self.box_lo is None:
            return x
        return torch.maximum(torch.minimum(x, self.box_hi), self.box_lo)


def frame_costs(r: Tensor, x: Tensor, t: Terms) -> Tensor:  # [B, R], [B, Dx] -> [B]
    """Per-frame cost: residuals, L2, limits and (charged to the middle frame) smoothness."""
    cost = (r**2).sum(1) + (t.wx * x**2).sum(1) + t.wl * (_hinge(x, t) ** 2).sum(1)
    if t.triples.numel():
        acc = _second_diff(x, t.triples)  # [M, Dx]
        cost = cost.index_add(0, t.triples[:, 1], (t.ws * acc**2).sum(1))
    return cost


def solve(
    residual: Residual,
    x: Tensor,  # [B, Dx] initial frame parameters
    y: Tensor,  # [G, Dy] initial subject parameters
    subjects: Tensor,  # [B] long in [0, G)
    terms: Terms,
    iters: int,
    active: Tensor | None = None,  # [Dx + Dy] bool: parameters allowed to move
    damping: float = 1e-3,
    update: Update | None = None,
) -> tuple[Tensor, Tensor]:
    """Run ``iters`` LM iterations; returns the improved (x, y).

    ``update`` (optional) is asked, at the start of every iteration, for the
    residual to use in it, given the current estimate: IRLS weights and
    re-chosen correspondences (``robust.py``, ``contour.py``). Within the
    iteration the residual is fixed, so the step is accepted or refused by
    the cost under that residual; each subject's weights depend only on its
    own rows, so results stay independent of the batch."""
    b, dx = x.shape
    dy = y.shape[1]
    active = torch.ones(dx + dy, dtype=torch.bool) if active is None else active
    lam = torch.full((y.shape[0],), damping)
    blocks = _blocks(subjects, y.shape[0])
    cost = None if update is not None else _subject_costs(residual, x, y, subjects, terms)
    for _ in range(iters):
        if update is not None:
            residual = update(x, y)
            cost = _subject_costs(residual, x, y, subjects, terms)
        r, J = _jacobian(residual, torch.cat([x, y[subjects]], 1))  # [B, R], [B, R, D]
        dx_, dy_ = _step(r, J, x, y, subjects, terms, active, lam, blocks)
        x_new, y_new = terms.project(x + dx_), y + dy_  # projected LM: a bound never blocks the other moves
        new_cost = _subject_costs(residual, x_new, y_new, subjects, terms)
        better = new_cost < cost  # [G] accept per subject
        x = torch.where(better[subjects][:, None], x_new, x)
        y = torch.where(better[:, None], y_new, y)
        cost = torch.where(better, new_cost, cost)
        lam = torch.where(better, (lam / 3).clamp_min(1e-7), (lam * 8).clamp_max(1e7))
    return x, y


def _hinge(x: Tensor, t: Terms) -> Tensor:
    return torch.relu(t.lo - x) - torch.relu(x - t.hi)  # signed: pushes back inside


def _second_diff(x: Tensor, triples: Tensor) -> Tensor:  # -> [M, Dx]
    return x[triples[:, 0]] - 2 * x[triples[:, 1]] + x[triples[:, 2]]


@torch.no_grad()
def _subject_costs(residual: Residual, x: Tensor, y: Tensor, subjects: Tensor, t: Terms) -> Tensor:  # -> [G]
    per_frame = frame_costs(residual(torch.cat([x, y[subjects]], 1)), x, t)
    return (t.wy * y**2).sum(1).index_add(0, subjects, per_frame)


def _jacobian(residual: Residual, z: Tensor) -> tuple[Tensor, Tensor]:  # [B, D] -> [B, R], [B, R, D]
    """Forward-mode Jacobian: the batch repeated D times, direction d on copy d."""
    b, d = z.shape
    reps = z.repeat(d, 1)  # [D*B, D]
    tangents = torch.eye(d, dtype=z.dtype).repeat_interleave(b, 0)  # [D*B, D]
    r, jr = torch.func.jvp(residual, (reps,), (tangents,))
    return r[:b].detach(), jr.reshape(d, b, -1).permute(1, 2, 0).detach()


def _blocks(subjects: Tensor, g: int) -> list[tuple[Tensor, Tensor]]:
    """Group subjects by frame count: [(subject ids [m], frame rows [m, T])], rows in batch order."""
    counts = torch.bincount(subjects, minlength=g)
    out = []
    for t in torch.unique(counts).tolist():
        if t == 0:
            continue
        ids = torch.nonzero(counts == t)[:, 0]
        rows = torch.stack([torch.nonzero(subjects == i)[:, 0] for i in ids.tolist()])  # [m, T]
        out.append((ids, rows))
    return out


def _step(r, J, x, y, subjects, t: Terms, active, lam, blocks) -> tuple[Tensor, Tensor]:
    """Solve the damped normal equations of every subject block; returns (dx [B, Dx], dy [G, Dy])."""
    dx = x.shape[1]
    Jx, Jy = J[..., :dx], J[..., dx:]  # [B, R, Dx], [B, R, Dy]
    inside = (_hinge(x, t) != 0).to(x.dtype)  # [B, Dx] limits active here
    A = Jx.transpose(1, 2) @ Jx + torch.diag_embed(t.wx + t.wl * inside)  # [B, Dx, Dx]
    gx = (Jx.transpose(1, 2) @ r[..., None])[..., 0] + t.wx * x - t.wl * _hinge(x, t)  # [B, Dx]
    if t.triples.numel():  # gradient of the smoothness term
        acc = t.ws * _second_diff(x, t.triples)  # [M, Dx]
        for k, c in enumerate((1.0, -2.0, 1.0)):
            gx = gx.index_add(0, t.triples[:, k], c * acc)
    C = Jx.transpose(1, 2) @ Jy  # [B, Dx, Dy]
    By = torch.diag_embed(t.wy).expand(y.shape[0], -1, -1).index_add(0, subjects, Jy.transpose(1, 2) @ Jy)
    gy = (t.wy * y).index_add(0, subjects, (Jy.transpose(1, 2) @ r[..., None])[..., 0])  # [G, Dy]
    out_x, out_y = torch.zeros_like(x), torch.zeros_like(y)
    pos = _positions(subjects)
    for ids, rows in blocks:
        H, g = _assemble(A, gx, C, By, gy, ids, rows, pos, t)
        keep = torch.cat([active[:dx].repeat(rows.shape[1]), active[dx:]])  # frame dims T times, then subject's
        H = torch.where(keep[None, :, None] & keep[None, None, :], H, torch.diag_embed((~keep).to(H.dtype)).expand_as(H))
        g = torch.where(keep[None], g, 0.0)
        diag = torch.diagonal(H, dim1=1, dim2=2)
        H = H + torch.diag_embed(lam[ids, None] * (diag + 1e-6))  # Marquardt scaling
        delta = -torch.linalg.solve(H, g[..., None])[..., 0]  # [m, T*Dx + Dy]
        out_x[rows.reshape(-1)] = delta[:, : rows.shape[1] * dx].reshape(-1, dx)
        out_y[ids] = delta[:, rows.shape[1] * dx :]
    return out_x, out_y


def _positions(subjects: Tensor) -> Tensor:  # [B] -> [B] index of each row within its subject
    pos = torch.zeros_like(subjects)
    for g in torch.unique(subjects).tolist():
        m = subjects == g
        pos[m] = torch.arange(int(m.sum()))
    return pos


def _assemble(A, gx, C, By, gy, ids, rows, pos, t: Terms) -> tuple[Tensor, Tensor]:
    """Dense normal equations [m, n, n], [m, n] for subjects ``ids`` (n = T*Dx + Dy)."""
    m, T = rows.shape
    dx, dy = A.shape[1], By.shape[1]
    Hxx = torch.zeros(m, T, T, dx, dx, dtype=A.dtype)
    ar = torch.arange(T)
    Hxx[:, ar, ar] = A[rows]  # block diagonal
    if t.triples.numel():
        Hxx = Hxx + _smooth_hessian(t, rows, pos)[..., None, None] * torch.diag(t.ws)
    Hxx = Hxx.permute(0, 1, 3, 2, 4).reshape(m, T * dx, T * dx)
    Hxy = C[rows].reshape(m, T * dx, dy)
    H = torch.cat([torch.cat([Hxx, Hxy], 2), torch.cat([Hxy.transpose(1, 2), By[ids]], 2)], 1)
    return H, torch.cat([gx[rows].reshape(m, T * dx), gy[ids]], 1)


def _smooth_hessian(t: Terms, rows: Tensor, pos: Tensor) -> Tensor:  # -> [m, T, T] = D^T D per subject
    m, T = rows.shape
    slot = torch.full(pos.shape, -1, dtype=torch.long)  # batch row -> subject slot in this block
    slot[rows.reshape(-1)] = torch.arange(m).repeat_interleave(T)
    Q = torch.zeros(m, T, T)
    tri = t.triples[slot[t.triples[:, 1]] >= 0]  # triples of these subjects
    if not tri.numel():
        return Q
    s, p = slot[tri[:, 1]], pos[tri]  # [M], [M, 3]
    v = torch.tensor([1.0, -2.0, 1.0])
    for i in range(3):
        for j in range(3):
            Q.index_put_((s, p[:, i], p[:, j]), v[i] * v[j] * torch.ones(len(s)), accumulate=True)
    return Q
