"""Dynamic jaw contour: iBUG landmarks 0-16 follow the head's silhouette, not fixed mesh points.

Why: a 2D detector (and the 300-W annotators it learnt from) puts the 17
jaw-line landmarks on the face's outline. The outline is where the view ray
grazes the surface, so it slides over the skin as the head turns or tilts: on
a head turned 30 deg both cheeks' outlines lie well outside the fixed
embedded points (the far side's fixed points are hidden behind the cheek, the
near side's lie on the front of the jaw), and on a tilted head the chin's
outline is below them. Fitting fixed points to the outline biases rotation,
face width and depth. Face2Face, 3DDFA ("landmark marching") and DECA
(FLAME's yaw-indexed ``dynamic_lmk_*`` table) all let the contour landmarks
slide; this module does it for any FLAME-format head, from its template.

How (3DDFA's parallel lines, generalised to the chin):
1. :func:`contour_lines` (once per head): for each jaw landmark ``k`` at
   template point ``p_k``, its frontal outward normal ``n_k`` (perpendicular to
   the jaw line, away from the face) and the plane through ``p_k`` spanned by
   ``n_k`` and the depth axis: horizontal for the cheeks, sagittal at the chin.
   The plane cuts the mesh along a curve over the cheek or chin; every mesh
   edge it crosses within ``radius`` of ``p_k`` gives a candidate point (two
   vertex ids and a blend weight, so it deforms with shape, expression and
   pose). Only skin is searched (ears, hair and neck have their own outlines).
2. :func:`select_contour` (every solver iteration, per image): project the
   candidates and take the one furthest out along the landmark's current
   image-space outward normal: the curve's silhouette point. The fixed point
   itself competes too, so a frontal face keeps its embedding.

The candidate chosen is held fixed within one Levenberg-Marquardt iteration
(like IRLS weights, see ``robust.py``); re-selecting each iteration makes it
a correspondence update, as in ICP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fairsplat.head.model import HeadModel
from fairsplat.labels import IBUG68_GROUPS, LABEL

JAW = range(*IBUG68_GROUPS["jaw"])  # landmarks 0-16
N_JAW = len(JAW)
SEARCH_LABELS = ("skin",)
"""Face regions the silhouette search may use (where labelled): the jaw line is skin."""


@dataclass(frozen=True)
class ContourLines:
    """Candidate silhouette points per jaw landmark (padded to ``C`` per landmark)."""

    vertex_ids: Tensor  # [17, C, 2] long: the crossed edge's endpoints
    t: Tensor  # [17, C] float: blend weight of the second endpoint
    valid: Tensor  # [17, C] bool

    @property
    def n_candidates(self) -> int:
        return int(self.vertex_ids.shape[1])


def outward_normals(jaw: np.ndarray, centre: np.ndarray) -> np.ndarray:  # [17, 2], [2] -> [17, 2]
    """Unit normals of a 17-point contour (central differences, one-sided at the ends),
    oriented away from ``centre``. Works in any 2D frame (template or image)."""
    prev = np.concatenate([jaw[:1], jaw[:-1]])
    nxt = np.concatenate([jaw[1:], jaw[-1:]])
    tangent = nxt - prev  # [17, 2]
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True).clip(1e-12)
    flip = ((jaw - centre) * normal).sum(1) < 0
    return np.where(flip[:, None], -normal, normal)


def contour_lines(model: HeadModel, landmarks: np.ndarray, radius: float = 0.03) -> ContourLines:
    """Candidate points for each jaw landmark (see the module doc).

    ``landmarks`` [68, 3]: the template's embedded landmarks (FLAME frame, metres).
    ``radius`` (m): how far from the fixed point the contour may slide; 30 mm
    covers a 30-40 deg turn on an adult face without reaching the ear."""
    assert landmarks.shape == (68, 3), landmarks.shape
    v = model.v_template.astype(np.float64)  # [V, 3]
    edges = _search_edges(model)  # [E, 2]
    centre = landmarks[:, :2].mean(0)
    normals = outward_normals(landmarks[JAW.start : JAW.stop, :2].astype(np.float64), centre)  # [17, 2]
    per: list[tuple[np.ndarray, np.ndarray]] = []
    for k in JAW:
        p = landmarks[k].astype(np.float64)
        tangent = np.array([normals[k][1], -normals[k][0], 0.0])  # plane normal: along the jaw line, in xy
        s = (v - p) @ tangent  # [V] signed distance to the plane
        sa, sb = s[edges[:, 0]], s[edges[:, 1]]
        cross = (sa * sb < 0) | ((sa == 0) & (sb != 0))
        e = edges[cross]
        t = sa[cross] / (sa[cross] - sb[cross])  # [M] in [0, 1)
        pts = v[e[:, 0]] + t[:, None] * (v[e[:, 1]] - v[e[:, 0]])
        near = np.linalg.norm(pts - p, axis=1) <= radius
        per.append((e[near], t[near]))
    c = max(1, max(len(e) for e, _ in per))
    ids = np.zeros((N_JAW, c, 2), np.int64)
    ts = np.zeros((N_JAW, c), np.float32)
    valid = np.zeros((N_JAW, c), bool)
    for k, (e, t) in enumerate(per):
        ids[k, : len(e)], ts[k, : len(e)], valid[k, : len(e)] = e, t, True
    return ContourLines(torch.as_tensor(ids), torch.as_tensor(ts), torch.as_tensor(valid))


def _search_edges(model: HeadModel) -> np.ndarray:  # -> [E, 2] unique edges of the searchable faces
    allowed = [LABEL[n] for n in SEARCH_LABELS]
    faces = model.faces[np.isin(model.face_regions, allowed)]
    if not len(faces):  # an unlabelled head: search everywhere (the radius still bounds it)
        faces = model.faces
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return np.unique(np.sort(e, 1), axis=0)


def select_contour(
    cand: Tensor,  # [B, 17, C, 2] candidate pixels
    valid: Tensor,  # [17, C] bool
    fixed: Tensor,  # [B, 68, 2] the fixed landmarks' pixels
) -> Tensor:  # [B, 17] long: chosen candidate, or -1 = keep the fixed point
    """The silhouette point per jaw landmark: furthest along the image-space outward normal."""
    b = cand.shape[0]
    assert cand.ndim == 4 and cand.shape[1:] == (N_JAW, valid.shape[1], 2) and fixed.shape == (b, 68, 2)
    jaw = fixed[:, JAW.start : JAW.stop]  # [B, 17, 2]
    normal = _image_normals(jaw, fixed.mean(1))  # [B, 17, 2]
    score = (cand * normal[:, :, None]).sum(-1)  # [B, 17, C]
    score = torch.where(valid[None], score, -torch.inf)
    best, idx = score.max(-1)  # [B, 17]
    own = (jaw * normal).sum(-1)  # [B, 17]
    return torch.where(best > own, idx, torch.full_like(idx, -1))


def _image_normals(jaw: Tensor, centre: Tensor) -> Tensor:  # [B, 17, 2], [B, 2] -> [B, 17, 2]
    """Batched torch twin of :func:`outward_normals`."""
    prev = torch.cat([jaw[:, :1], jaw[:, :-1]], 1)
    nxt = torch.cat([jaw[:, 1:], jaw[:, -1:]], 1)
    tangent = nxt - prev
    normal = torch.nn.functional.normalize(torch.stack([-tangent[..., 1], tangent[..., 0]], -1), dim=-1)
    flip = ((jaw - centre[:, None]) * normal).sum(-1, keepdim=True) < 0
    return torch.where(flip, -normal, normal)
