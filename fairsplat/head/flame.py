"""FlameLayer: a torch module that poses any FLAME-format :class:`HeadModel`.

Why a module with buffers: tracking, synth and training move it between
devices and dtypes with ``.to()``, and the same code runs the procedural
default and a real FLAME file (DESIGN.md section 2).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from fairsplat.head.lbs import lbs
from fairsplat.head.model import HeadModel


class FlameOutput(NamedTuple):
    vertices: Tensor  # [B, V, 3]
    joints: Tensor  # [B, J, 3] posed joints
    landmarks: Tensor  # [B, 68, 3] barycentric points on the posed mesh


class FlameLayer(nn.Module):
    """Shape + expression blendshapes, pose correctives and LBS over 5 joints.

    ``forward(shape [B, <=S], expr [B, <=E], pose [B, 3J], transl [B, 3])``;
    every argument is optional (zeros). Fewer coefficients than the model has
    are zero-padded, so callers can fit the first few components only. Pose is
    axis-angle, FLAME order: global, neck, jaw, left eye, right eye.
    """

    def __init__(self, model: HeadModel, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        model.validate()
        self.n_shape, self.n_expr, self.n_joints = model.n_shape, model.n_expr, model.n_joints
        self.parents = [int(p) for p in model.parents]
        self.source = model.source

        def buf(name: str, a, dt=dtype) -> None:
            self.register_buffer(name, torch.as_tensor(a).to(dt), persistent=False)

        buf("v_template", model.v_template)  # [V, 3]
        buf("dirs", torch.cat([torch.as_tensor(model.shapedirs), torch.as_tensor(model.exprdirs)], dim=2))
        buf("posedirs", model.posedirs)  # [P, V*3]
        buf("j_regressor", model.j_regressor)  # [J, V]
        buf("lbs_weights", model.lbs_weights)  # [V, J]
        buf("lmk_bary", model.lmk_bary)  # [68, 3]
        buf("faces", model.faces, torch.long)  # [F, 3]
        buf("lmk_vertex_ids", model.faces[model.lmk_faces], torch.long)  # [68, 3]

    def forward(
        self,
        shape: Tensor | None = None,  # [B, <=S]
        expr: Tensor | None = None,  # [B, <=E]
        pose: Tensor | None = None,  # [B, 3J]
        transl: Tensor | None = None,  # [B, 3]
        batch_size: int | None = None,
    ) -> FlameOutput:
        b = self._batch_size(batch_size, shape, expr, pose, transl)
        coeffs = torch.cat([self._pad(shape, b, self.n_shape, "shape"), self._pad(expr, b, self.n_expr, "expr")], 1)
        pose = self._pad(pose, b, 3 * self.n_joints, "pose", exact=True)
        verts, joints = lbs(
            coeffs, pose, self.v_template, self.dirs, self.posedirs, self.j_regressor, self.parents, self.lbs_weights
        )
        if transl is not None:
            transl = self._pad(transl, b, 3, "transl", exact=True)
            verts = verts + transl[:, None]
            joints = joints + transl[:, None]
        return FlameOutput(verts, joints, self.landmarks(verts))

    def landmarks(self, vertices: Tensor) -> Tensor:
        """vertices [B, V, 3] -> the 68 embedded landmarks [B, 68, 3]."""
        tri = vertices[:, self.lmk_vertex_ids]  # [B, 68, 3 corners, 3 xyz]
        return (tri * self.lmk_bary[None, :, :, None]).sum(2)

    def _batch_size(self, batch_size: int | None, *args: Tensor | None) -> int:
        sizes = {a.shape[0] for a in args if a is not None}
        if batch_size is not None:
            sizes.add(batch_size)
        if len(sizes) > 1:
            raise ValueError(f"FlameLayer: inconsistent batch sizes {sorted(sizes)}")
        return sizes.pop() if sizes else 1

    def _pad(self, x: Tensor | None, b: int, n: int, name: str, exact: bool = False) -> Tensor:
        """Zero-fill missing tensors and missing trailing coefficients."""
        dev, dt = self.v_template.device, self.v_template.dtype
        if x is None:
            return torch.zeros(b, n, device=dev, dtype=dt)
        if x.ndim != 2 or x.shape[1] > n or (exact and x.shape[1] != n):
            want = f"[B, {n}]" if exact else f"[B, <={n}]"
            raise ValueError(f"FlameLayer: {name} has shape {tuple(x.shape)}, expected {want}")
        x = x.to(device=dev, dtype=dt)
        if x.shape[1] < n:
            x = torch.cat([x, x.new_zeros(b, n - x.shape[1])], dim=1)
        return x
