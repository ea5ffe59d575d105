"""Render one SynthHeads image with its ground truth in a single rasteriser pass.

Colours and one-hot labels are composited together (22 feature channels), so
the label map uses exactly the blending weights of the pixels. The label of a
pixel is the class with the largest composited weight, where the background's
weight is the final transmittance (1 - alpha).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fairsplat.labels import NUM_CLASSES
from fairsplat.splat.binding import UVBinding, bind_to_world
from fairsplat.splat.frames import triangle_frames
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
    means, quats, scales = bind_to_world(binding, out.vertices, faces, app.local_means, None, app.local_log_scales)
    normals = triangle_frames(out.vertices, faces)[1][0, binding.face_idx, :, 1]  # [G, 3]
    rgb = (app.albedo * light.shade(normals)).clamp(0, 1)
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
    lm, vis = _project_landmarks(out.landmarks[0], viewmat, K, img[..., -1], a, size, visibility_tol)
    to8 = lambda x: (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()  # noqa: E731
    return Frame(to8(colour), to8(a), labels.numpy(), lm, vis)


def _project_landmarks(lmk3, viewmat, K, depth, alpha, size, tol):
    """Pixels of the 68 landmarks and whether the surface there is the landmark's.

    Visible = inside the image, on the rendered head (alpha > 0.5) and not
    behind it: its camera depth is within ``tol`` metres of the rendered
    expected depth at its pixel.
    """
    cam = lmk3 @ viewmat[:3, :3].T + viewmat[:3, 3]  # [68, 3]
    uv = cam @ K.T
    xy = uv[:, :2] / uv[:, 2:3]  # [68, 2] pixel coords (pixel centres at +0.5)
    ij = xy.floor().long()
    inside = (ij >= 0).all(1) & (ij < size).all(1) & (cam[:, 2] > 0)
    ijc = ij.clamp(0, size - 1)
    d = depth[ijc[:, 1], ijc[:, 0]]
    a = alpha[ijc[:, 1], ijc[:, 0]]
    visible = inside & (a > 0.5) & (cam[:, 2] <= d + tol)
    return xy.numpy().astype(np.float32), visible.numpy()
