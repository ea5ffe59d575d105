"""Photometric refinement of a landmark fit, through the project's Gaussian rasteriser.

Why: 68 landmarks say little about the cheeks, the lips' thickness or the
exact jaw opening, and a detector's jitter passes straight into the fit.
Pixels say more. After the landmark fit we render the head as UV-bound
Gaussians (``splat.binding``, the avatars' own layout) and move expression,
pose and translation to make the render match the photo.

The texture is unknown, so it is optimised too: one colour per Gaussian,
shared by all images of a subject (initialised by projecting those images
onto the fitted head). Shared colour is what makes the pixels informative:
a misaligned frame disagrees with the texture the other frames agree on. A
foreground mask (SynthHeads' alpha, a parser's output) adds a silhouette
term. The landmark term stays in the loss so the refinement cannot drift
off the face. Shape is kept from the landmark fit.

Cost: one forward and backward render per image per step (~20-50 ms at
128 px on one CPU core), so it is off by default (``track.photometric``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from fairsplat.head.flame import FlameLayer
from fairsplat.head.model import HeadModel
from fairsplat.splat.binding import bind_to_world, uv_grid_binding
from fairsplat.splat.frames import triangle_frames
from fairsplat.splat.raster import rasterization
from fairsplat.track.camera import FLIP, flip_viewmat, project
from fairsplat.track.fit import face_scale


@dataclass(frozen=True)
class PhotoConfig:
    iters: int = 60
    """Adam steps; the photometric loss is still falling slowly after 60 at 96 px."""
    uv_resolution: int = 48
    """UV grid of the render (~0.6 x 48^2 Gaussians): enough for a 128 px face."""
    lr_expr: float = 0.1
    """Adam step on expression coefficients (unit variance)."""
    lr_pose: float = 0.012
    """Adam step on rotations, radians (~0.7 deg)."""
    lr_transl: float = 1.2e-3
    """Adam step on translation, metres."""
    lr_colour: float = 0.005
    """Adam step on per-Gaussian colours (sRGB in [0, 1]); 0 keeps the texture fixed.
    Small on purpose: free colours can absorb a misalignment instead of fixing it."""
    landmark_weight: float = 3.0
    """Weight of the mean squared landmark residual (face-size units) against the
    mean L1 pixel error: a 3 % landmark error then costs what a 0.003 grey-level
    error over the whole image does, so pixels lead and landmarks only anchor."""
    silhouette_weight: float = 0.5
    """Weight of |alpha - mask| when a foreground mask is given."""


@dataclass
class PhotoResult:
    expr: Tensor  # [B, E]
    pose: Tensor  # [B, 15]
    transl: Tensor  # [B, 3]
    colours: Tensor  # [G_subjects, G, 3]
    loss_before: Tensor  # [B] photometric term at the landmark fit
    loss_after: Tensor  # [B]


class PhotometricRefiner:
    def __init__(self, head: HeadModel, cfg: PhotoConfig = PhotoConfig()) -> None:
        self.cfg = cfg
        self.flame = FlameLayer(head)
        self.faces = torch.as_tensor(head.faces, dtype=torch.long)
        self.binding = uv_grid_binding(head, resolution=cfg.uv_resolution)
        self.view = flip_viewmat()

    def gaussians(self, shape: Tensor, expr: Tensor, pose: Tensor, transl: Tensor):
        """World Gaussians [B, G, ...] and their normals [B, G, 3] for FLAME parameters."""
        verts = self.flame(shape, expr, pose, transl).vertices  # [B, V, 3]
        means, quats, scales = bind_to_world(self.binding, verts, self.faces)
        # Orientation carries gradients too: splat.frames.matrix_to_quat keeps them finite.
        normals = triangle_frames(verts, self.faces)[1][:, self.binding.face_idx, :, 1]  # [B, G, 3]
        return means, quats, scales, normals

    def render(self, means: Tensor, quats: Tensor, scales: Tensor, colours: Tensor, K: Tensor, h: int, w: int):
        """One image per row: rgb [B, H, W, 3] (premultiplied, no background), alpha [B, H, W]."""
        rgb, alpha = [], []
        for i in range(means.shape[0]):
            img, a, _ = rasterization(means[i], quats[i], scales[i], torch.full((means.shape[1],), 0.97), colours[i],
                                      self.view[None], K[i : i + 1], w, h)  # fmt: skip
            rgb.append(img[0])
            alpha.append(a[0, ..., 0])
        return torch.stack(rgb), torch.stack(alpha)

    @torch.no_grad()
    def init_colours(self, images: Tensor, means: Tensor, normals: Tensor, K: Tensor, subjects: Tensor) -> Tensor:
        """Project each subject's images onto its Gaussians; average weighted by how squarely each faces the camera."""
        b, h, w, _ = images.shape
        cam = means @ FLIP.T  # [B, G, 3] camera frame
        px = project(cam, K)  # [B, G, 2]
        grid = torch.stack([px[..., 0] / w * 2 - 1, px[..., 1] / h * 2 - 1], -1)[:, None]  # [B, 1, G, 2]
        samples = F.grid_sample(images.permute(0, 3, 1, 2), grid, align_corners=False)[:, :, 0].transpose(1, 2)  # [B, G, 3]
        facing = (-(normals @ FLIP.T) * F.normalize(cam, dim=-1)).sum(-1).clamp_min(0) ** 2  # [B, G]
        n = int(subjects.max()) + 1
        num = torch.zeros(n, means.shape[1], 3).index_add(0, subjects, samples * facing[..., None])
        den = torch.zeros(n, means.shape[1], 1).index_add(0, subjects, facing[..., None])
        mean_colour = (num.sum(1) / den.sum(1).clamp_min(1e-6))[:, None]  # [S, 1, 3] fallback for unseen ones
        return torch.where(den > 1e-3, num / den.clamp_min(1e-6), mean_colour)

    def photo_loss(self, rgb: Tensor, alpha: Tensor, images: Tensor, masks: Tensor | None) -> Tensor:  # -> [B]
        if masks is None:  # composite over the photo itself: only the head's pixels count
            return (rgb + (1 - alpha[..., None]) * images - images).abs().mean((1, 2, 3))
        l1 = (rgb - images * masks[..., None]).abs().mean((1, 2, 3))
        return l1 + self.cfg.silhouette_weight * (alpha - masks).abs().mean((1, 2))

    def refine(
        self,
        images: Tensor,  # [B, H, W, 3] float in [0, 1]
        shape: Tensor,  # [B, S] from the landmark fit (kept)
        expr: Tensor,  # [B, E]
        pose: Tensor,  # [B, 15]
        transl: Tensor,  # [B, 3]
        K: Tensor,  # [B, 3, 3]
        targets: Tensor,  # [B, 68, 2] landmarks fitted to
        weights: Tensor,  # [B, 68] landmark weights (0 = unused)
        subjects: Tensor | None = None,  # [B] long: rows sharing one texture
        masks: Tensor | None = None,  # [B, H, W] foreground in [0, 1]
        colours: Tensor | None = None,  # [G_subjects, G, 3] a known texture (else projected from the images)
    ) -> PhotoResult:
        b, h, w, _ = images.shape
        subjects = torch.arange(b) if subjects is None else torch.unique(subjects, return_inverse=True)[1]
        with torch.no_grad():
            means, _, _, normals = self.gaussians(shape, expr, pose, transl)
            colours = self.init_colours(images, means, normals, K, subjects) if colours is None else colours.clone()
        params = {"expr": expr.clone().requires_grad_(), "pose": pose.clone().requires_grad_(),
                  "transl": transl.clone().requires_grad_(), "colours": colours.requires_grad_()}  # fmt: skip
        c = self.cfg
        opt = torch.optim.Adam([{"params": [params[k]], "lr": lr} for k, lr in
                                (("expr", c.lr_expr), ("pose", c.lr_pose), ("transl", c.lr_transl), ("colours", c.lr_colour))])  # fmt: skip
        scale = face_scale(targets, weights)  # [B] pixels
        before = None
        for step in range(c.iters + 1):
            means, quats, scales, _ = self.gaussians(shape, params["expr"], params["pose"], params["transl"])
            rgb, alpha = self.render(means, quats, scales, params["colours"][subjects], K, h, w)
            photo = self.photo_loss(rgb, alpha, images, masks)  # [B]
            if step == 0:
                before = photo.detach()
            if step == c.iters:
                break
            lmk = project(self.flame(shape, params["expr"], params["pose"], params["transl"]).landmarks @ FLIP.T, K)
            res = ((lmk - targets) ** 2).sum(-1) * weights  # [B, 68]
            lmk_loss = res.sum(1) / weights.sum(1).clamp_min(1e-9) / scale**2  # [B]
            opt.zero_grad()
            (photo + c.landmark_weight * lmk_loss).sum().backward()
            opt.step()
            with torch.no_grad():
                params["colours"].clamp_(0, 1)
        d = {k: v.detach() for k, v in params.items()}
        return PhotoResult(d["expr"], d["pose"], d["transl"], d["colours"], before, photo.detach())

