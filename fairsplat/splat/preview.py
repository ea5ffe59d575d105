"""A preview of the head as UV-bound Gaussians, rendered by the project's rasteriser.

Why: the ``head`` stage's output is a mesh file nobody can eyeball; rendering
it through the same binding + rasteriser the avatars use shows at once that
the head, its labels and its animation are sane (and exercises that path in
every ``dvc repro``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from fairsplat.labels import LABEL

# Flat albedo per CelebAMask-HQ class, for previews only.
PALETTE = {
    "skin": (0.80, 0.62, 0.52), "nose": (0.80, 0.60, 0.50), "neck": (0.76, 0.58, 0.48),
    "l_ear": (0.78, 0.58, 0.50), "r_ear": (0.78, 0.58, 0.50),
    "l_brow": (0.25, 0.17, 0.12), "r_brow": (0.25, 0.17, 0.12),
    "l_eye": (0.92, 0.92, 0.90), "r_eye": (0.92, 0.92, 0.90),
    "u_lip": (0.72, 0.36, 0.36), "l_lip": (0.74, 0.38, 0.38), "mouth": (0.30, 0.08, 0.10),
    "hair": (0.22, 0.15, 0.10),
}


def region_colors(face_regions: np.ndarray) -> torch.Tensor:  # [F] -> [F, 3]
    table = torch.full((max(LABEL.values()) + 1, 3), 0.5)
    for name, rgb in PALETTE.items():
        table[LABEL[name]] = torch.tensor(rgb)
    return table[torch.as_tensor(face_regions, dtype=torch.long)]


def _with_irises(head, binding, albedo: torch.Tensor) -> torch.Tensor:
    """Brown iris and black pupil on each eyeball (by angle from its forward axis), so the
    preview does not stare blankly; eyes are the eye joints (3, 4) of a FLAME-format head."""
    v = torch.as_tensor(head.v_template)
    pos = (v[torch.as_tensor(head.faces, dtype=torch.long)[binding.face_idx]] * binding.bary[..., None]).sum(1)  # [G, 3]
    joints = torch.as_tensor(head.j_regressor) @ v  # [J, 3]
    out = albedo.clone()
    for name, j in (("l_eye", 3), ("r_eye", 4)):
        sel = torch.as_tensor(head.face_regions, dtype=torch.long)[binding.face_idx] == LABEL[name]
        if j >= len(joints) or not sel.any():
            continue
        cos = torch.nn.functional.normalize(pos[sel] - joints[j], dim=-1)[:, 2]
        colour = out[sel]
        colour[cos > math.cos(math.radians(24))] = torch.tensor((0.33, 0.20, 0.10))
        colour[cos > math.cos(math.radians(10))] = torch.tensor((0.03, 0.03, 0.03))
        out[sel] = colour
    return out


def _views():
    """(name, yaw degrees, pose [15], expr index or None) for the preview panels."""
    jaw = torch.zeros(15)
    jaw[6] = 0.3  # jaw opening, radians about x
    return [("front", 0.0, torch.zeros(15), None), ("three_quarter", 35.0, torch.zeros(15), None),
            ("jaw_open_expr0", 0.0, jaw, 0), ("profile", 90.0, torch.zeros(15), None)]


@torch.no_grad()
def render_panels(head, size: int = 256, uv_resolution: int = 128) -> np.ndarray:  # [size, 4*size, 3] uint8
    from fairsplat.head.flame import FlameLayer
    from fairsplat.splat.binding import bind_to_world, uv_grid_binding
    from fairsplat.splat.camera import intrinsics, look_at
    from fairsplat.splat.frames import triangle_frames
    from fairsplat.splat.raster import rasterization

    flame = FlameLayer(head)
    faces = torch.as_tensor(head.faces, dtype=torch.long)
    binding = uv_grid_binding(head, resolution=uv_resolution)
    albedo = _with_irises(head, binding, region_colors(head.face_regions)[binding.face_idx])  # [G, 3]
    v0 = torch.as_tensor(head.v_template)
    centre = 0.5 * (v0.min(0).values + v0.max(0).values)
    extent = float((v0.max(0).values - v0.min(0).values).max())
    fov = 25.0
    distance = 0.6 * extent / math.tan(math.radians(fov / 2))
    K = intrinsics(size, size, fov_deg=fov)
    panels = []
    for _, yaw, pose, expr_idx in _views():
        expr = torch.zeros(1, head.exprdirs.shape[-1])
        if expr_idx is not None:
            expr[0, expr_idx] = 2.0
        verts = flame(expr=expr, pose=pose[None]).vertices  # [1, V, 3]
        means, quats, scales = bind_to_world(binding, verts, faces)
        scales = scales * 0.7  # sharper than the binding's texel-footprint sigma, as SynthHeads renders
        normals = triangle_frames(verts, faces)[1][0, binding.face_idx, :, 1]  # [G, 3]
        eye = centre + distance * torch.tensor([math.sin(math.radians(yaw)), 0.0, math.cos(math.radians(yaw))])
        light = torch.nn.functional.normalize(torch.tensor([0.4, 0.5, 1.0]) + eye - centre, dim=0)
        shade = 0.35 + 0.65 * (normals @ light).abs()
        view = look_at(eye, centre, torch.tensor([0.0, 1.0, 0.0]))
        rgb, _, _ = rasterization(
            means[0], quats[0], scales[0], torch.full((len(binding),), 0.95), (albedo * shade[:, None]).clamp(0, 1),
            view[None], K[None], size, size, backgrounds=torch.full((1, 3), 0.5),
        )
        panels.append(rgb[0])
    img = torch.cat(panels, dim=1).clamp(0, 1)
    return (img * 255 + 0.5).to(torch.uint8).numpy()


def save_preview(head, path: Path, size: int = 256, uv_resolution: int = 128) -> float:
    """Render the panels to ``path`` (PNG); returns milliseconds per panel."""
    from fairsplat.io.images import save_png

    t0 = time.perf_counter()
    img = render_panels(head, size, uv_resolution)
    ms = (time.perf_counter() - t0) * 1000 / 4
    save_png(path, img)
    return round(ms, 1)


def head_metrics(head, uv_resolution: int) -> dict:
    from fairsplat.splat.binding import _rasterise_uv

    cells, _ = _rasterise_uv(head.uvs, head.uv_faces, uv_resolution)
    return {
        "procedural": int(head.source == "procedural"),
        "vertices": int(head.v_template.shape[0]),
        "faces": int(head.faces.shape[0]),
        "shape_components": int(head.shapedirs.shape[-1]),
        "expression_components": int(head.exprdirs.shape[-1]),
        "landmarks": int(head.lmk_faces.shape[0]),
        "joints": int(head.j_regressor.shape[0]),
        "regions": int(len(np.unique(head.face_regions))),
        "uv_gaussians": int(len(cells)),
    }
