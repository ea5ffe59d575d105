"""An exact landmark-only FLAME: the fast path every tracking step runs through.

Why: a fit only looks at 68 landmarks, which touch at most 204 vertices, yet
a full :class:`FlameLayer` forward blends and skins all ~5K vertices. This
module keeps only those vertices and is still exact: FLAME regresses its
joints linearly from the *shaped* vertices, ``J = Jreg (T + D c)``, so we
precompute ``Jreg T`` and ``Jreg D`` and append them as 5 "virtual vertices"
whose regressor row is one-hot. The unchanged :func:`fairsplat.head.lbs.lbs`
then returns the same joints and landmark vertices as the full model, at a
small fraction of the cost (tests compare against ``FlameLayer``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fairsplat.head.lbs import lbs
from fairsplat.head.model import HeadModel


class LandmarkFlame(nn.Module):
    """``forward(shape [B,<=S], expr [B,<=E], pose [B,3J]) -> (landmarks [B,68,3], joints [B,J,3])``.

    No translation argument: the tracker applies the rigid camera itself.
    """

    def __init__(self, model: HeadModel, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        model.validate()
        self.n_shape, self.n_expr, self.n_joints = model.n_shape, model.n_expr, model.n_joints
        self.parents = [int(p) for p in model.parents]
        self.source = model.source
        tri = model.faces[model.lmk_faces]  # [68, 3] vertex ids
        keep, inverse = torch.unique(torch.as_tensor(tri).reshape(-1), return_inverse=True)  # [U], [204]
        keep_np = keep.numpy()
        nj, u = model.n_joints, len(keep_np)
        dirs = torch.cat([torch.as_tensor(model.shapedirs), torch.as_tensor(model.exprdirs)], 2).double()  # [V, 3, K]
        jreg = torch.as_tensor(model.j_regressor).double()  # [J, V]
        template = torch.cat([torch.as_tensor(model.v_template[keep_np]).double(), jreg @ torch.as_tensor(model.v_template).double()])
        joint_dirs = torch.einsum("jv,vck->jck", jreg, dirs)  # [J, 3, K]
        posedirs = torch.as_tensor(model.posedirs).double().reshape(-1, model.n_vertices, 3)[:, keep_np]  # [P, U, 3]
        posedirs = torch.cat([posedirs, posedirs.new_zeros(posedirs.shape[0], nj, 3)], 1).reshape(posedirs.shape[0], -1)
        weights = torch.cat([torch.as_tensor(model.lbs_weights[keep_np]).double(), torch.eye(nj, dtype=torch.float64)])

        def buf(name: str, a: Tensor, dt: torch.dtype = dtype) -> None:
            self.register_buffer(name, a.to(dt), persistent=False)

        buf("v_template", template)  # [U + J, 3]
        buf("dirs", torch.cat([dirs[keep], joint_dirs]))  # [U + J, 3, K]
        buf("posedirs", posedirs)  # [P, (U + J) * 3]
        buf("j_regressor", torch.cat([torch.zeros(nj, u, dtype=torch.float64), torch.eye(nj, dtype=torch.float64)], 1))
        buf("lbs_weights", weights)  # [U + J, J]
        buf("lmk_index", inverse.reshape(68, 3), torch.long)  # [68, 3] rows of the kept set
        buf("lmk_bary", torch.as_tensor(model.lmk_bary))  # [68, 3]

    def forward(
        self,
        shape: Tensor,  # [B, <=S]
        expr: Tensor,  # [B, <=E]
        pose: Tensor,  # [B, 3J]
    ) -> tuple[Tensor, Tensor]:  # landmarks [B, 68, 3], joints [B, J, 3]
        b = pose.shape[0]
        assert pose.shape == (b, 3 * self.n_joints), pose.shape
        coeffs = torch.cat([_pad(shape, self.n_shape), _pad(expr, self.n_expr)], 1)  # [B, S + E]
        verts, joints = lbs(
            coeffs, pose, self.v_template, self.dirs, self.posedirs, self.j_regressor, self.parents, self.lbs_weights
        )
        tri = verts[:, self.lmk_index]  # [B, 68, 3 corners, 3 xyz]
        return (tri * self.lmk_bary[None, :, :, None]).sum(2), joints


def _pad(x: Tensor, n: int) -> Tensor:
    """Zero-fill trailing coefficients so callers may fit the first few only."""
    assert x.ndim == 2 and x.shape[1] <= n, (x.shape, n)
    return torch.cat([x, x.new_zeros(x.shape[0], n - x.shape[1])], 1) if x.shape[1] < n else x
