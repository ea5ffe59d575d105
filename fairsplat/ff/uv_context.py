"""What the UV generator needs besides the pixels, built from the binding and the tracks.

``uv_context`` turns a batch of ``fairsplat.ff.data.gather`` (sources by row,
targets with their tracks) into:

- ``src_points``/``src_normals`` [B, K, G, 3]: each valid texel's barycentric point
  on its triangle and the triangle normal, posed by the source's tracked FLAME
  (the warp samples the source's features there);
- ``src_viewmat`` [B, K, 4, 4], ``src_K`` [B, K, 3, 3]: the source cameras;
- ``texel`` [G, 2]: the UV layout of the binding's Gaussians;
- ``dir`` [T, 3]: the target camera's direction in the head's frame (unit,
  from the head towards the camera, the global head rotation undone), what γ
  embeds; ``code`` [T, E + 12]: the target's expression and its neck, jaw and
  eye pose (seed 003's 112-d code at FLAME's 100 expressions; the CPU head
  has 10, so 22-d here), the residual head's conditioning.

``predict`` is the one call every user of a generator goes through, so the
LAM-style generator (which needs none of this) and the UV one are
interchangeable in training, scoring, grids and refinement.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fairsplat.avatar.binding import AvatarBinding
from fairsplat.ff.data import Frames
from fairsplat.head.lbs import rodrigues
from fairsplat.models.lam import Attributes
from fairsplat.splat.frames import triangle_frames


def texel_surface(binding: AvatarBinding, vertices: Tensor) -> tuple[Tensor, Tensor]:  # [N, V, 3] -> 2 x [N, G, 3]
    """Each texel's point (its barycentric weights on the posed triangle) and the triangle's unit normal."""
    faces = binding.layer.faces
    tri = vertices[:, faces[binding.face_idx]]  # [N, G, 3, 3]
    bary = binding.splat.bary.to(vertices)  # [G, 3]
    points = (tri * bary[None, :, :, None]).sum(dim=2)
    _, rot, _ = triangle_frames(vertices, faces)
    return points, rot[:, binding.face_idx, :, 1]


def view_direction(viewmat: Tensor, pose: Tensor, transl: Tensor) -> Tensor:  # [T, 4, 4], [T, 3J], [T, 3] -> [T, 3]
    centre = -torch.einsum("tji,tj->ti", viewmat[:, :3, :3], viewmat[:, :3, 3])  # camera centre, world
    d = torch.nn.functional.normalize(centre - transl, dim=-1)
    return torch.einsum("tji,tj->ti", rodrigues(pose[:, :3]), d)  # R_headᵀ d: into the head's frame


def flame_code(expr: Tensor, pose: Tensor) -> Tensor:  # [T, E], [T, 3J] -> [T, E + 3J - 3]
    """Expression, then every joint but the global rotation (neck, jaw, eyes): shape is left out (the mesh's)."""
    return torch.cat([expr, pose[:, 3:]], dim=-1)


def code_dim(binding: AvatarBinding) -> int:
    layer = binding.layer
    return layer.n_expr + 3 * (layer.n_joints - 1)


SOURCE_TRACKS = ("expr", "pose", "transl", "viewmat", "K")
"""The per-source tracks the warp needs; a batch may carry them as ``source_<name>`` [B, K, ...] (no frames)."""


def source_tracks_of(frames: Frames | None, batch: dict[str, Tensor]) -> dict[str, Tensor]:  # -> [B*K, ...] each
    """The sources' tracks: from the batch when it carries them (``fairsplat.ff.generate``), else from ``frames``."""
    dev = batch["sources"].device
    if all(f"source_{c}" in batch for c in SOURCE_TRACKS):
        return {c: batch[f"source_{c}"].flatten(0, 1).to(dev) for c in SOURCE_TRACKS}
    if frames is None:
        raise ValueError("the UV generator needs the sources' tracks: pass frames, or a batch with source_<track>")
    src = batch["source_rows"].cpu().flatten()  # [B*K]
    return {c: v[src].to(dev) for c, v in frames.track.items()}


def uv_context(binding: AvatarBinding, frames: Frames | None, batch: dict[str, Tensor], n_targets: int | None = None) -> dict[str, Tensor]:
    """The context of ``batch`` (sources [B, K], targets [B] or, for one subject, [T]); ``frames`` may be None
    when the batch carries the sources' tracks (``source_tracks_of``)."""
    dev = batch["sources"].device
    b, k = batch["sources"].shape[:2]
    tr = source_tracks_of(frames, batch)
    shape = batch["shape"].repeat_interleave(k, dim=0)
    with torch.no_grad():
        verts = binding.layer(shape=shape, expr=tr["expr"], pose=tr["pose"], transl=tr["transl"]).vertices
        points, normals = texel_surface(binding, verts)
    ctx = {
        "src_points": points.unflatten(0, (b, k)), "src_normals": normals.unflatten(0, (b, k)),
        "src_viewmat": tr["viewmat"].unflatten(0, (b, k)), "src_K": tr["K"].unflatten(0, (b, k)),
        "texel": binding.splat.texel.to(dev),
        "dir": view_direction(batch["target_viewmat"], batch["target_pose"], batch["target_transl"]),
        "code": flame_code(batch["target_expr"], batch["target_pose"]),
    }  # fmt: skip
    return ctx


def predict(model, binding: AvatarBinding, frames: Frames | None, batch: dict[str, Tensor], points: Tensor) -> Attributes:
    """``model``'s attributes for ``batch``: [B, G, ...], or [T, G, ...] when one subject's sources [1, K] face T targets."""
    if getattr(model, "needs_context", False):
        return model(batch["sources"], points, uv_context(binding, frames, batch))
    return model(batch["sources"], points)
