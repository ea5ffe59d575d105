"""Where an avatar's Gaussians live on the head: LAM's points (seed 002) or SpatialAvatar's UV grid (seed 003).

One interface over the two bindings of ``fairsplat.splat`` so that the
generator, refinement and export never branch on the layout:

- ``canonical(shape)``: the Gaussian centres on the shaped head in the rest
  pose, what LAM's decoder queries with;
- ``pose(shape, expr, pose, transl, offsets, quats, log_scales)``: world
  means, rotations and scales, animated by FLAME (blendshapes, correctives,
  LBS for points; the posed triangle frames for the UV grid);
- ``base_quats`` / ``base_log_scales``: the binding's own flat, surface-aligned
  Gaussians, which predicted attributes are residuals on;
- ``labels``: a CelebAMask-HQ region per Gaussian (skin masks for ΔITA).

``offsets`` are canonical-space displacements in metres for points (LAM) and
triangle-frame displacements in units of the triangle's scale for the UV grid
(seed 003's local position). ``spec()`` is a small JSON dict that rebuilds the
binding from the same head (saved beside every avatar).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fairsplat.head.flame import FlameLayer
from fairsplat.head.model import HeadModel
from fairsplat.splat.binding import UVBinding, bind_to_world, uv_grid_binding
from fairsplat.splat.points import PointBinding, points_to_world, subdivided_binding

KINDS = ("points", "uv")


@dataclass(frozen=True)
class BindingSpec:
    """How to rebuild a binding from the head: kind and its size knobs."""

    kind: str = "points"
    levels: int = 0  # points: midpoint subdivisions (LAM-20K: 1 on FLAME)
    max_points: int | None = None  # points: farthest-point subset (CPU-sized); None = every vertex
    resolution: int = 64  # uv: texels per side (seed 003: 256)
    thickness: float = 0.1  # normal-axis std / in-plane std of the base Gaussians

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"binding kind {self.kind!r}: choose from {', '.join(KINDS)}")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "levels": self.levels, "max_points": self.max_points,
                "resolution": self.resolution, "thickness": self.thickness}  # fmt: skip


def _vertex_labels(faces: np.ndarray, face_regions: np.ndarray, n_vertices: int) -> np.ndarray:  # -> [V]
    """Each vertex takes the most common region of its faces (ties: the lowest id)."""
    votes = np.zeros((n_vertices, int(face_regions.max()) + 1), np.int64)
    np.add.at(votes, (faces.reshape(-1), np.repeat(face_regions, 3)), 1)
    return votes.argmax(axis=1)


class AvatarBinding(torch.nn.Module):
    """A binding plus the FLAME layer that animates it (buffers move with ``.to()``)."""

    def __init__(self, head: HeadModel, spec: BindingSpec = BindingSpec()) -> None:
        super().__init__()
        self.spec = spec
        if spec.kind == "points":
            self.splat: PointBinding | UVBinding = subdivided_binding(head, spec.levels, spec.thickness, spec.max_points)
            rig = self.splat.head
            ids = self.splat.point_ids
            labels = _vertex_labels(rig.faces, rig.face_regions, rig.v_template.shape[0])
            labels = labels if ids is None else labels[ids.numpy()]
        else:
            self.splat = uv_grid_binding(head, spec.resolution, spec.thickness)
            rig = head
            labels = head.face_regions[self.splat.face_idx.numpy()]
        self.layer = FlameLayer(rig)
        self.register_buffer("base_quats", self.splat.local_quats.clone(), persistent=False)  # [G, 4]
        self.register_buffer("base_log_scales", self.splat.local_log_scales.clone(), persistent=False)  # [G, 3]
        self.register_buffer("labels", torch.as_tensor(labels, dtype=torch.long), persistent=False)  # [G]
        if spec.kind == "uv":
            self.register_buffer("base_means", self.splat.local_means.clone(), persistent=False)  # [G, 3]
            self.register_buffer("face_idx", self.splat.face_idx.clone(), persistent=False)  # [G]
        elif self.splat.point_ids is not None:
            self.register_buffer("point_ids", self.splat.point_ids.clone(), persistent=False)  # [G]

    def __len__(self) -> int:
        return self.base_quats.shape[0]

    @property
    def n_shape(self) -> int:
        return self.layer.n_shape

    def canonical(self, shape: Tensor | None = None) -> Tensor:  # shape [B, <=S] -> [B, G, 3]
        """Gaussian centres on the shaped head, neutral expression, rest pose (the decoder's queries)."""
        means, _, _ = self.pose(shape=shape)
        return means

    def pose(
        self,
        shape: Tensor | None = None,  # [B, <=S]
        expr: Tensor | None = None,  # [B, <=E]
        pose: Tensor | None = None,  # [B, 3J]
        transl: Tensor | None = None,  # [B, 3]
        offsets: Tensor | None = None,  # [B?, G, 3]
        quats: Tensor | None = None,  # [B?, G, 4] local rotations (default: the binding's)
        log_scales: Tensor | None = None,  # [B?, G, 3] local log-scales (default: the binding's)
    ) -> tuple[Tensor, Tensor, Tensor]:  # means [B, G, 3], quats [B, G, 4], scales [B, G, 3]
        quats = self.base_quats if quats is None else quats
        log_scales = self.base_log_scales if log_scales is None else log_scales
        if self.spec.kind == "points":  # the dataclass sees this module's buffers (on its device)
            ids = getattr(self, "point_ids", None)
            points = replace(self.splat, local_quats=self.base_quats, local_log_scales=self.base_log_scales, point_ids=ids)
            return points_to_world(points, self.layer, shape, expr, pose, transl, offsets, quats, log_scales)
        out = self.layer(shape=shape, expr=expr, pose=pose, transl=transl)
        local = self.base_means if offsets is None else self.base_means + offsets
        grid = replace(self.splat, face_idx=self.face_idx)
        return bind_to_world(grid, out.vertices, self.layer.faces, local, quats, log_scales)
