"""Per-Gaussian albedo and labels of one identity, on the shared UV binding.

Why per Gaussian: the label map is rendered by compositing one-hot labels with
the same weights as the colours, so appearance edits that change what a
Gaussian *is* (a receding hairline turns scalp into forehead skin) change its
label too, and image and labels can never disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from fairsplat.labels import LABEL
from fairsplat.splat.binding import UVBinding
from fairsplat.synth.identity import Identity
from fairsplat.synth.texels import texel_shapes

SKIN_LIKE = ("skin", "nose", "neck", "l_ear", "r_ear")
SCLERA = (0.88, 0.86, 0.82)
MOUTH = (0.32, 0.09, 0.10)
SPLAT_SIGMA = 0.7
"""In-plane Gaussian sigma as a fraction of the texel spacing along each texel axis
(``texels.texel_shapes``). A full spacing blurs a 10 mm eye opening shut at 128 px
(lid splats spill over the eyeball); 0.7 still closes the surface (alpha about 0.9
midway between texels) and keeps the eyes visible."""


@dataclass
class Appearance:
    albedo: torch.Tensor  # [G, 3] sRGB in [0, 1]
    labels: torch.Tensor  # [G] CelebAMask-HQ ids
    local_means: torch.Tensor  # [G, 3] (hair lifted off the scalp)
    local_log_scales: torch.Tensor  # [G, 3]
    local_quats: torch.Tensor | None = None  # [G, 4] wxyz in the triangle frame; None = the binding's


def _canonical(head, binding: UVBinding) -> torch.Tensor:  # [G, 3] rest positions
    v = torch.as_tensor(head.v_template)
    f = torch.as_tensor(head.faces, dtype=torch.long)[binding.face_idx]
    return (v[f] * binding.bary[..., None]).sum(1)


def _eye_colours(pos: torch.Tensor, centre: torch.Tensor, iris: tuple, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sclera, iris and pupil by angle from the eyeball's forward (+Z) axis."""
    d = torch.nn.functional.normalize(pos - centre, dim=-1)
    cos = d[:, 2]
    out = torch.tensor(SCLERA).expand(len(pos), 3).clone()
    out[cos > math.cos(math.radians(24))] = torch.tensor(iris)
    out[cos > math.cos(math.radians(10))] = torch.tensor((0.02, 0.02, 0.02))
    on_ball = (pos - centre).norm(dim=-1) < 1.3 * radius
    return out, on_ball


def build_appearance(head, binding: UVBinding, ident: Identity, rng: np.random.Generator) -> Appearance:
    regions = torch.as_tensor(head.face_regions, dtype=torch.long)[binding.face_idx]  # [G]
    labels = regions.clone()
    pos = _canonical(head, binding)
    g = len(binding)
    jitter = torch.as_tensor(rng.normal(0.0, 1.0, (g, 1)), dtype=torch.float32)
    skin = torch.tensor(ident.skin_rgb) * (1 + 0.015 * jitter)  # mild skin texture
    albedo = skin.clone()
    is_ = {name: regions == LABEL[name] for name in LABEL}
    albedo[is_["u_lip"] | is_["l_lip"]] = torch.tensor(ident.lip_rgb)
    albedo[is_["mouth"]] = torch.tensor(MOUTH)
    brows = is_["l_brow"] | is_["r_brow"]
    albedo[brows] = (torch.tensor(ident.brow_rgb) * (1 + 0.12 * jitter))[brows]
    joints = torch.as_tensor(head.j_regressor) @ torch.as_tensor(head.v_template)  # [J, 3]
    for name, j in (("l_eye", 3), ("r_eye", 4)):
        sel = is_[name]
        if sel.any():
            radius = float((pos[sel] - joints[j]).norm(dim=-1).median())
            colours, on_ball = _eye_colours(pos[sel], joints[j], ident.iris_rgb, radius)
            albedo[sel] = torch.where(on_ball[:, None], colours, skin[sel])
    hair = is_["hair"]
    front = hair & (pos[:, 2] > 0.25 * float(pos[hair, 2].max())) if hair.any() else hair
    if front.any():  # receding hairline: low coverage turns front scalp into forehead
        y0, y1 = float(pos[front, 1].min()), float(pos[front, 1].max())
        bald = front & (pos[:, 1] < y0 + (1.0 - ident.hair_coverage) * 0.5 * (y1 - y0))
        labels[bald] = LABEL["skin"]
        hair = hair & ~bald
    strand = torch.as_tensor(rng.normal(0.0, 1.0, (g, 1)), dtype=torch.float32)
    albedo[hair] = (torch.tensor(ident.hair_rgb) * (1 + 0.18 * strand))[hair]
    local_means = binding.local_means.clone()
    local_quats, log_scales = texel_shapes(head, binding, SPLAT_SIGMA)
    if hair.any():  # volume: lift along the triangle normal (local y), thicken
        s_f = _face_scale(head, binding)
        local_means[hair, 1] += ident.hair_volume / s_f[hair]
        log_scales[hair, 1] = 0.5 * (log_scales[hair, 0] + log_scales[hair, 2]) - math.log(2.0)
    return Appearance(albedo.clamp(0, 1), labels, local_means, log_scales, local_quats)


def _face_scale(head, binding: UVBinding) -> torch.Tensor:  # [G] s_f at rest
    from fairsplat.splat.frames import triangle_frames

    v = torch.as_tensor(head.v_template)[None]
    return triangle_frames(v, torch.as_tensor(head.faces, dtype=torch.long))[2][0, binding.face_idx]
