"""Landmarks and FLAME parameters read back from images: what cross-reenactment's AED, APD and AKD compare.

One landmark backend (``fairsplat.faces.landmarks``: MediaPipe, or dlib) finds
the 68 iBUG points on an output or a driver crop; the track stage's fitter
(``fairsplat.track.fit``) fits FLAME to them, batched, one shape per group
(the avatar of one subject, or one driver subject). Outputs and drivers go
through exactly the same detector, fitter, intrinsics and settings, so the
tracker's bias cancels in the comparison. An image where no face is found is
``None``: counted and reported, never scored (GAGAvatar scored such frames as
0, a bias toward failing methods).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fairsplat.evaluate.config import RetrackConfig


@dataclass
class Fitted:
    expr: np.ndarray  # [N, E]
    rot: np.ndarray  # [N, 3] axis-angle, radians (FLAME pose[:3], tracker camera)
    seconds: float


class Retracker:
    """Detector + fitter for one head; reuse it for every image of a process."""

    def __init__(self, head, landmarks: str, cfg: RetrackConfig, batch: int = 64) -> None:
        from fairsplat.faces.landmarks import resolve
        from fairsplat.track.fit import FitConfig, Fitter
        from fairsplat.track.landmarks import LandmarkFlame
        from fairsplat.track.run import EXPR_BOX

        self.detect, self.backend, self.fallback = resolve(landmarks)
        fit = FitConfig(rigid_iters=cfg.rigid_iters, iters=cfg.iters, robust=cfg.robust,
                        rigid_robust="l2" if cfg.robust == "l2" else "huber", contour=cfg.contour,
                        expr_range=EXPR_BOX if head.source == "procedural" else None)  # fmt: skip
        self.fitter, self.batch = Fitter(LandmarkFlame(head), fit), batch

    def landmarks(self, img: np.ndarray) -> np.ndarray | None:  # uint8 [H, W, 3] -> [68, 2] (centres at integers)
        """The largest face's 68 points, or None when no face is found."""
        faces = self.detect(np.ascontiguousarray(img))
        return None if not faces else np.asarray(faces[0].landmarks, np.float64)

    def face(self, img: np.ndarray):
        """The largest face (for the identity embedding), or None."""
        faces = self.detect(np.ascontiguousarray(img))
        return faces[0] if faces else None

    @torch.no_grad()
    def fit(self, landmarks: np.ndarray, K: np.ndarray, groups: Sequence[str]) -> Fitted:
        """FLAME fitted to ``landmarks`` [N, 68, 2] seen through ``K`` [N, 3, 3]; equal ``groups`` share a shape.

        Batches of at most ``batch`` rows, a group never split (unless it alone is larger)."""
        n = len(landmarks)
        e = self.fitter.model.n_expr
        expr, rot, secs = np.full((n, e), np.nan), np.full((n, 3), np.nan), 0.0
        ids = {g: i for i, g in enumerate(dict.fromkeys(groups))}
        order = sorted(range(n), key=lambda i: ids[groups[i]])
        chunks, cur = [], []
        for i in order:
            if cur and len(cur) >= self.batch and groups[i] != groups[cur[-1]]:
                chunks.append(cur)
                cur = []
            cur.append(i)
        chunks += [cur] if cur else []
        for rows in chunks:
            res = self.fitter.fit(torch.as_tensor(landmarks[rows] + 0.5, dtype=torch.float32),  # pixel centres at +0.5
                                  torch.as_tensor(K[rows], dtype=torch.float32), torch.ones(len(rows), 68),
                                  subjects=torch.as_tensor([ids[groups[i]] for i in rows]))  # fmt: skip
            expr[rows], rot[rows], secs = res.expr.numpy(), res.pose[:, :3].numpy(), secs + res.seconds
        return Fitted(expr, rot, secs)
