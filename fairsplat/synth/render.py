"""Render one SynthHeads image with its ground truth in a single rasteriser pass.

Colours and one-hot labels are composited together (22 feature channels), so
the label map uses exactly the blending weights of the pixels. The label of a
pixel is the class with the largest composited weight, where the background's
weight is the final transmittance (1 - alpha).
"""

from __future__ import annotations

from dataclasses import dataclass

import kornia
import numpy as np
import torch

from fairsplat.labels import LABEL, NUM_CLASSES
from fairsplat.splat.binding import UVBinding, bind_to_world
from fairsplat.splat.raster import rasterization
from fairsplat.synth.appearance import Appearance
from fairsplat.synth.scene import Light


@dataclass
class Frame:
    rgb: np.ndarray  # [H, W, 3] uint8, composited over the background
    alpha: np.ndarray  # [H, W] uint8
    labels: np.ndarray  # [H, W] uint8 CelebAMask-HQ ids
    landmarks: np.ndarray  # [68, 2] float32 pixels (x, y)
    visible: np.ndarray  # [68] bool


@torch.no_grad()
def render_frame(
    flame,
    binding: UVBinding,
    app: Appearance,
    shape: torch.Tensor,  # [S]
    expr: torch.Tensor,  # [E]
    pose: torch.Tensor,  # [15]
    viewmat: torch.Tensor,  # [4, 4]
    K: torch.Tensor,  # [3, 3]
    size: int,
    light: Light,
    bg: np.ndarray,  # [H, W, 3] float
    opacity: float = 0.97,
    visibility_tol: float = 0.004,
) -> Frame:
    out = flame(shape=shape[None], expr=expr[None], pose=pose[None])
    faces = flame.faces
    means, quats, scales = bind_to_world(binding, out.vertices, faces, app.local_means, app.local_quats, app.local_log_scales)
    normals = smooth_normals(out.vertices[0], faces, binding.face_idx, binding.bary)  # [G, 3]
    rgb = shade_srgb(app, normals, means[0], light, viewmat)
    onehot = torch.nn.functional.one_hot(app.labels, NUM_CLASSES).float()
    feats = torch.cat([rgb, onehot], dim=1)  # [G, 3 + 19]
    img, alpha, _ = rasterization(
        means[0], quats[0], scales[0], torch.full((len(binding),), opacity), feats,
        viewmat[None], K[None], size, size, render_mode="RGB+ED",
    )
    img, a = img[0], alpha[0, ..., 0]  # [H, W, 23], [H, W]
    weights = img[..., 3 : 3 + NUM_CLASSES].clone()
    weights[..., 0] = 1.0 - a  # background weight = final transmittance
    labels = weights.argmax(dim=-1).to(torch.uint8)
    colour = img[..., :3] + (1.0 - a)[..., None] * torch.as_tensor(bg)
    lm, vis = _project_landmarks(out.landmarks[0], out.vertices[0], faces, viewmat, K, size, visibility_tol)
    to8 = lambda x: (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()  # noqa: E731
    return Frame(to8(colour), to8(a), labels.numpy(), lm, vis)


def smooth_normals(
    verts: torch.Tensor,  # [V, 3]
    faces: torch.Tensor,  # [F, 3]
    face_idx: torch.Tensor,  # [G]
    bary: torch.Tensor,  # [G, 3]
) -> torch.Tensor:  # [G, 3] unit
    """Phong-style normals: area-weighted vertex normals, interpolated at each Gaussian.

    Flat (per-triangle) normals band visibly where the head grid is coarse (the
    neck rows are 1 cm apart); interpolated ones shade the surface smoothly.
    """
    tri = verts[faces]  # [F, 3, 3]
    fn = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)  # [F, 3], |fn| = 2 area
    vn = torch.zeros_like(verts).index_add_(0, faces.reshape(-1), fn.repeat_interleave(3, dim=0))
    vn = torch.nn.functional.normalize(vn, dim=-1)
    g = (vn[faces[face_idx]] * bary[..., None]).sum(1)  # [G, 3]
    return torch.nn.functional.normalize(g, dim=-1)


SKIN_IDS = torch.tensor([LABEL[n] for n in ("skin", "nose", "neck")])


def shade_srgb(app: Appearance, normals: torch.Tensor, means: torch.Tensor, light: Light, viewmat: torch.Tensor) -> torch.Tensor:
    """Lit sRGB colour per Gaussian [G, 3]: shading in linear RGB, then the camera's exposure.

    Light adds up in linear RGB, so the sRGB albedo is linearised first.
    Exposure is metered on the skin, as a camera's face-priority auto exposure
    does: the mean gain over skin Gaussians, weighted by how squarely they face
    the camera (their share of the image), is divided out. Without it every
    face would come out darker than its albedo and the measured ITA would sit
    10-20 degrees below the ground truth.
    """
    gain = light.shade(normals)  # [G, 3] linear
    rot, t = viewmat[:3, :3], viewmat[:3, 3]
    centre = -(rot.T @ t)  # camera centre in world
    facing = (normals * torch.nn.functional.normalize(centre - means, dim=-1)).sum(-1).clamp_min(0.0)  # [G]
    w = facing * torch.isin(app.labels, SKIN_IDS)
    exposure = (gain.mean(-1) * w).sum() / w.sum().clamp_min(1e-8)
    linear = kornia.color.rgb_to_linear_rgb(app.albedo.T[..., None])[..., 0].T  # [G, 3]
    lit = (linear * gain / exposure.clamp_min(1e-3))
    if light.exposure != 1.0:  # an exposure error after metering (hard preset); default bytes unchanged
        lit = lit * light.exposure
    lit = lit.clamp(0, 1)
    return kornia.color.linear_rgb_to_rgb(lit.T[..., None])[..., 0].T


def _project_landmarks(lmk3, verts, faces, viewmat, K, size, tol):
    """Pixels of the 68 landmarks [68, 2] and whether each is visible [68].

    Visible = in front of the camera, inside the image and not occluded: no
    triangle of the posed mesh crosses the segment from the camera centre to
    the landmark, except within ``tol`` metres of the landmark itself (the
    landmark's own, faceted surface; a grazing ray at the face's silhouette).
    A geometric test, because the rasteriser's blended depth is unreliable
    exactly where visibility is in question (steep surfaces, silhouettes).
    """
    cam = lmk3 @ viewmat[:3, :3].T + viewmat[:3, 3]  # [68, 3]
    uv = cam @ K.T
    xy = uv[:, :2] / uv[:, 2:3]  # [68, 2] pixel coords (pixel centres at +0.5)
    inside = (xy >= 0).all(1) & (xy < size).all(1) & (cam[:, 2] > 0)
    centre = -(viewmat[:3, :3].T @ viewmat[:3, 3])
    t = segment_hits(centre, lmk3, verts[faces])  # [68, F] fraction along the segment, inf = no hit
    length = (lmk3 - centre).norm(dim=-1, keepdim=True)  # [68, 1]
    occluded = (t * length < length - tol).any(dim=1)
    return xy.numpy().astype(np.float32), (inside & ~occluded).numpy()


def segment_hits(
    origin: torch.Tensor,  # [3]
    ends: torch.Tensor,  # [L, 3]
    tri: torch.Tensor,  # [F, 3, 3]
    eps: float = 1e-12,
) -> torch.Tensor:  # [L, F] t in (0, 1] where segment origin->end crosses the triangle, else inf
    """Moller-Trumbore intersection of L segments from one origin with F triangles (both sides)."""
    d = ends - origin  # [L, 3]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]  # [F, 3]
    p = torch.linalg.cross(d[:, None], e2[None], dim=-1)  # [L, F, 3]
    det = (p * e1[None]).sum(-1)  # [L, F]
    ok = det.abs() > eps
    inv = 1.0 / torch.where(ok, det, torch.ones_like(det))
    s = origin - tri[:, 0]  # [F, 3]
    u = (p * s[None]).sum(-1) * inv
    q = torch.linalg.cross(s, e1, dim=-1)  # [F, 3]
    v = (d @ q.T) * inv  # [L, F]
    t = (q * e2).sum(-1)[None] * inv  # [L, F]
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0) & (t <= 1)
    return torch.where(hit, t, torch.full_like(t, float("inf")))
