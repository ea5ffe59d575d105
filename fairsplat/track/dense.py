"""FLAME fitted to MediaPipe's 468 mesh points (``track.fit-points: dense468``).

Why: the 68 iBUG points do not map from MediaPipe's mesh with any fixed table
(README "Landmark backends"): on turned heads the jaw contour slides, on closed
eyes the mesh's eyes sit on the brows. Fitted to all 468 points, each embedded
on the head (track/embed468.py, calibrated on SynthHeads train renders), a few
wrong points (eyes, the outline) are outvoted by the many right ones (nose,
cheeks, mouth, forehead), and the robust penalty lets go of them. The 68
landmarks are then read off the fitted head (``FitResult.landmarks2d``), so
every metric stays the same as for the 68-point fit.

Differences from the 68-point :class:`~fairsplat.track.fit.Fitter`, which does
the rest (rigid start, Levenberg-Marquardt, IRLS, priors):

- per-point weights: ``calibrated`` (default), the table's inverse-variance weights
  (how far each mesh point strays from its embedded point on the train renders), or
  ``uniform``, where the face outline (:data:`~fairsplat.track.embed468.FACE_OVAL`, drawn
  on the silhouette as the jaw line is) weighs ``jaw_line_weight``, as the jaw does there;
- ``stride``: every n-th mesh point only (and the eye corners), for speed;
- the inter-ocular yardstick of the robust penalty is the mesh's outer eye
  corners (33, 263);
- ``facing`` (optional): MediaPipe also predicts the hidden side of a turned
  face; a point whose fitted surface faces away from the camera is down-weighted,
  ``clamp(cos / facing, 0, 1)`` of the angle between its normal and the view ray,
  re-evaluated every iteration. ``facing: 0`` turns it off.
- no sliding jaw contour (a 68-point notion).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from fairsplat.track import embed468
from fairsplat.track.fit import N_FIXED, FitConfig, Fitter, FitResult
from fairsplat.track.landmarks import LandmarkFlame


class DenseFitter(Fitter):
    """A :class:`Fitter` whose targets are MediaPipe's 468 mesh points [B, 468, 2] (pixels, centres at +0.5)."""

    def __init__(self, model: LandmarkFlame, cfg: FitConfig = FitConfig(), facing: float = 0.0,
                 weights: str = "uniform", stride: int = 1, embedding: tuple | None = None) -> None:  # fmt: skip
        """``model``: the 68-landmark model (reported); ``embedding``: (faces, bary[, weights]), default the
        committed table; ``weights``: ``uniform`` or ``calibrated`` (the table's); ``stride``: fit every
        stride-th mesh point (and the eye corners), for speed."""
        emb = embedding if embedding is not None else embed468.load(model.head)
        faces, bary = emb[0], emb[1]
        self.subset = torch.tensor(sorted(set(range(0, embed468.N_POINTS, stride)) | set(embed468.EYE_CORNERS)))
        keep = self.subset.numpy()
        super().__init__(model, replace(cfg, contour=False), points=LandmarkFlame(model.head, embedding=(faces[keep], bary[keep])))
        self.n_inputs = embed468.N_POINTS
        if weights == "calibrated":
            if len(emb) < 3:
                raise ValueError("track.dense-weights: calibrated needs a table with WEIGHTS")
            w = torch.as_tensor(emb[2], dtype=torch.float32)[self.subset]
            self.base_weight = w / w.mean()
        elif weights == "uniform":
            oval = torch.isin(self.subset, torch.tensor(embed468.FACE_OVAL))
            self.base_weight = torch.where(oval, cfg.jaw_line_weight, 1.0)
        else:
            raise ValueError(f"track.dense-weights: {weights!r} (uniform | calibrated)")
        self.eyes = tuple(int((self.subset == i).nonzero()[0, 0]) for i in embed468.EYE_CORNERS)
        self.facing = facing
        self.reweights = facing > 0

    def fit(self, targets: Tensor, K: Tensor, visible: Tensor, subjects: Tensor | None = None,
            sequence: Tensor | None = None) -> FitResult:  # fmt: skip
        """targets [B, 468, 2], visible [B, 468]: the mesh; fitted on ``subset`` (see :meth:`Fitter.fit`)."""
        assert targets.shape[1:] == (embed468.N_POINTS, 2) and visible.shape[1] == embed468.N_POINTS, targets.shape
        return super().fit(targets[:, self.subset], K, visible[:, self.subset], subjects, sequence)

    def point_weights(self, z: Tensor, K: Tensor) -> Tensor:  # -> [B, L] in [0, 1]
        """How squarely each point's fitted surface faces the camera (see the module doc)."""
        x, shape, pose = self.split(z)
        tri = self.points.triangles(shape, x[:, N_FIXED:], pose)[0]  # [B, L, 3, 3] head frame
        b, n = tri.shape[:2]
        cam = self._camera(x, tri.reshape(b, n * 3, 3)).reshape(b, n, 3, 3)  # [B, L, 3, 3] camera frame
        normal = torch.linalg.cross(cam[:, :, 1] - cam[:, :, 0], cam[:, :, 2] - cam[:, :, 0], dim=-1)  # [B, L, 3]
        centre = cam.mean(2)  # [B, L, 3] the ray from the camera
        cos = -(normal * centre).sum(-1) / (normal.norm(dim=-1) * centre.norm(dim=-1)).clamp_min(1e-12)
        return (cos / self.facing).clamp(0.0, 1.0)
