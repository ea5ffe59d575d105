"""An exact landmark-only FLAME: the fast path every tracking step runs through.

Why: a fit only looks at 68 landmarks, which touch at most 204 vertices, yet
a full :class:`FlameLayer` forward blends and skins all ~5K vertices. This
module keeps only those vertices and is still exact: FLAME regresses its
joints linearly from the *shaped* vertices, ``J = Jreg (T + D c)``, so we
precompute ``Jreg T`` and ``Jreg D`` and append them as 5 "virtual vertices"
whose regressor row is one-hot. The unchanged :func:`fairsplat.head.lbs.lbs`
then returns the same joints and landmark vertices as the full model, at a
small fraction of the cost (tests compare against ``FlameLayer``).

:meth:`LandmarkFlame.vertices` poses any other vertices, chosen per sample
(the dynamic jaw contour's silhouette points, ``contour.py``), by gathering
their rows of the full model's buffers: a fit evaluates the ~34 it needs per
image instead of the whole mesh.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from fairsplat.head.lbs import lbs, rigid_transforms, rodrigues
from fairsplat.head.model import HeadModel


class LandmarkFlame(nn.Module):
    """``forward(shape [B,<=S], expr [B,<=E], pose [B,3J]) -> (landmarks [B,68,3], joints [B,J,3])``.

    No translation argument: the tracker applies the rigid camera itself.
    """

    def __init__(self, model: HeadModel, dtype: torch.dtype = torch.float32,
                 embedding: tuple[np.ndarray, np.ndarray] | None = None) -> None:  # fmt: skip
        """``embedding``: (faces [L], barycentric weights [L, 3]) of other points to return instead of
        the head's 68 landmarks (MediaPipe's 468 mesh points, track/embed468.py)."""
        super().__init__()
        model.validate()
        self.n_shape, self.n_expr, self.n_joints = model.n_shape, model.n_expr, model.n_joints
        self.parents = [int(p) for p in model.parents]
        self.source = model.source
        self.head = model  # the arrays (mesh, regions) that contour.contour_lines searches
        lmk_faces, lmk_bary = embedding if embedding is not None else (model.lmk_faces, model.lmk_bary)
        self.n_points = len(lmk_faces)
        tri = model.faces[lmk_faces]  # [L, 3] vertex ids
        keep, inverse = torch.unique(torch.as_tensor(tri).reshape(-1), return_inverse=True)  # [U], [3L]
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
        buf("lmk_index", inverse.reshape(self.n_points, 3), torch.long)  # [L, 3] rows of the kept set
        buf("lmk_bary", torch.as_tensor(np.asarray(lmk_bary, np.float64)))  # [L, 3]
        # Full-mesh rows for per-sample gathers (vertices()): template, blend and pose directions, skin weights.
        full_dirs = dirs.permute(0, 2, 1)  # [V, K, 3]
        full_pose = torch.as_tensor(model.posedirs).double().reshape(-1, model.n_vertices, 3).permute(1, 0, 2)  # [V, P, 3]
        buf("full_template", torch.as_tensor(model.v_template).double())  # [V, 3]
        buf("full_dirs", full_dirs.contiguous())  # [V, K, 3]
        buf("full_posedirs", full_pose.contiguous())  # [V, P, 3]
        buf("full_weights", torch.as_tensor(model.lbs_weights).double())  # [V, J]

    def forward(
        self,
        shape: Tensor,  # [B, <=S]
        expr: Tensor,  # [B, <=E]
        pose: Tensor,  # [B, 3J]
    ) -> tuple[Tensor, Tensor]:  # landmarks [B, L, 3] (L = 68 unless embedded otherwise), joints [B, J, 3]
        b = pose.shape[0]
        assert pose.shape == (b, 3 * self.n_joints), pose.shape
        tri, joints = self.triangles(shape, expr, pose)  # [B, L, 3 corners, 3 xyz]
        return (tri * self.lmk_bary[None, :, :, None]).sum(2), joints

    def triangles(self, shape: Tensor, expr: Tensor, pose: Tensor) -> tuple[Tensor, Tensor]:
        """The posed triangle of every point [B, L, 3, 3] (its normal: track/dense.py) and the joints [B, J, 3]."""
        coeffs = torch.cat([_pad(shape, self.n_shape), _pad(expr, self.n_expr)], 1)  # [B, S + E]
        verts, joints = lbs(
            coeffs, pose, self.v_template, self.dirs, self.posedirs, self.j_regressor, self.parents, self.lbs_weights
        )
        return verts[:, self.lmk_index], joints


    def vertices(
        self,
        shape: Tensor,  # [N, <=S]
        expr: Tensor,  # [N, <=E]
        pose: Tensor,  # [N, 3J]
        ids: Tensor,  # [B, M] long vertex ids of the full mesh; row i of N uses ids[i % B]
    ) -> Tensor:  # [N, M, 3] posed, head frame (as forward's landmarks)
        """The same skinning as :func:`lbs` for per-sample vertex sets (rows gathered, not the whole mesh).

        N may be a multiple of B: the solver's Jacobian evaluates the batch
        tiled once per parameter direction, and the rows are gathered once."""
        n, nj = pose.shape[0], self.n_joints
        b, m = ids.shape
        assert n % b == 0 and pose.shape == (n, 3 * nj), (ids.shape, pose.shape)
        coeffs = torch.cat([_pad(shape, self.n_shape), _pad(expr, self.n_expr)], 1)  # [N, K]
        rest_joints = self.v_template[-nj:] + torch.einsum("nk,jck->njc", coeffs, self.dirs[-nj:])  # [N, J, 3]
        rots = rodrigues(pose.reshape(n, nj, 3))  # [N, J, 3, 3]
        feature = (rots[:, 1:] - torch.eye(3, dtype=pose.dtype)).reshape(n // b, b, -1)  # [k, B, P]
        skin = rigid_transforms(rots, rest_joints, self.parents)[1][:, :, :3]  # [N, J, 3, 4]
        c = coeffs.reshape(n // b, b, -1)  # [k, B, K]
        shaped = self.full_template[ids] + torch.einsum("abk,bmkc->abmc", c, self.full_dirs[ids])  # [k, B, M, 3]
        shaped = (shaped + torch.einsum("abp,bmpc->abmc", feature, self.full_posedirs[ids])).reshape(n, m, 3)
        w = self.full_weights[ids].expand(n // b, -1, -1, -1).reshape(n, m, -1)  # [N, M, J]
        blend = torch.einsum("nmj,njrc->nmrc", w, skin)  # [N, M, 3, 4]
        return (blend[..., :3] @ shaped[..., None])[..., 0] + blend[..., 3]


def _pad(x: Tensor, n: int) -> Tensor:
    """Zero-fill trailing coefficients so callers may fit the first few only."""
    assert x.ndim == 2 and x.shape[1] <= n, (x.shape, n)
    return torch.cat([x, x.new_zeros(x.shape[0], n - x.shape[1])], 1) if x.shape[1] < n else x
