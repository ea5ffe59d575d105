"""MediaPipe's 468 face-mesh points embedded on the procedural head's surface.

Why: MediaPipe's mesh does not map onto the 68 iBUG points with any fixed
table (README "Landmark backends"), but every one of its 468 points is itself a
point of the face. Embedded on the head model (a triangle and barycentric
weights each, as FLAME embeds its 68 landmarks and metrical-tracker its 105),
the tracker can fit FLAME to all of them (``track.fit-points: dense468``,
fairsplat/track/dense.py) and read the 68 points off the fitted head.

Calibration (the tool: ``python -m fairsplat.track.calibrate_embed468``), on
SynthHeads *train* renders, whose FLAME parameters and cameras are known:
each mesh point of an image is back-projected (:func:`raycast`) onto the
ground-truth posed mesh; the triangle and barycentric weights of the hit give
the point in the template's frame (:func:`template_points`); per mesh index the
coordinate-wise median over images (robust to the detector's failures, e.g. eyes
on the brows) is snapped to the nearest template surface point that does not move
with the eyeballs (:func:`closest_points`). The table is tied to its head: it
stores the head's vertex and face counts and a hash of its faces, and
:func:`load` refuses any other head (a FLAME file needs its own calibration).

:func:`embed` is the fast path (one gather); :func:`embed_reference` the
obviously correct loop the tests compare it with.
"""

from __future__ import annotations

import hashlib

import numpy as np

from fairsplat.head.model import HeadModel

N_POINTS = 468
EYE_CORNERS = (33, 263)
"""Outer eye corners in the mesh (subject's right, left): the inter-ocular yardstick of the dense fit."""
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176,
             149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)  # fmt: skip
"""The outline (faces/mesh68.FACE_OVAL): MediaPipe draws it on the silhouette, which slides as the head turns."""


def faces_hash(faces: np.ndarray) -> str:
    """Short fingerprint of a head's topology (the table's face ids mean nothing on another mesh)."""
    return hashlib.sha256(np.ascontiguousarray(faces, np.int64).tobytes()).hexdigest()[:16]


def load(head: HeadModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The committed table for ``head``: faces [468] int64, bary [468, 3], per-point weights [468] (mean 1,
    inverse variance of the calibration residuals); raises naming ``track.fit-points`` for another head."""
    from fairsplat.track.embed468_table import BARY, FACES, HEAD, WEIGHTS

    want = {"n_vertices": head.n_vertices, "n_faces": len(head.faces), "faces_sha256": faces_hash(head.faces)}
    if HEAD != want:
        raise ValueError(f"track.fit-points: dense468's embedding was calibrated on another head ({HEAD}, this one "
                         f"{want}); re-run python -m fairsplat.track.calibrate_embed468 for it, or use mesh68")  # fmt: skip
    faces, bary, weights = np.asarray(FACES, np.int64), np.asarray(BARY, np.float64), np.asarray(WEIGHTS, np.float64)
    assert faces.shape == (N_POINTS,) and bary.shape == (N_POINTS, 3) and weights.shape == (N_POINTS,)
    return faces, bary, weights


def embed(vertices: np.ndarray, faces: np.ndarray, emb_faces: np.ndarray, emb_bary: np.ndarray) -> np.ndarray:
    """Embedded points of one or many meshes: vertices [..., V, 3] -> [..., L, 3]."""
    corners = vertices[..., faces[emb_faces], :]  # [..., L, 3, 3]
    return np.einsum("...lkc,lk->...lc", corners, emb_bary)


def embed_reference(vertices: np.ndarray, faces: np.ndarray, emb_faces: np.ndarray, emb_bary: np.ndarray) -> np.ndarray:
    """One mesh [V, 3], one point at a time: the definition written out."""
    out = []
    for f, b in zip(emb_faces, emb_bary):
        p = np.zeros(3)
        for k in range(3):
            p = p + b[k] * vertices[faces[f, k]]
        out.append(p)
    return np.stack(out)


def raycast(origin: np.ndarray, dirs: np.ndarray, tri: np.ndarray, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Front-most hit of rays ``origin + t dirs`` (t > 0) on triangles [F, 3, 3] (Moller-Trumbore, both sides).

    origin [3], dirs [R, 3] -> face [R] (-1: no hit), barycentric weights [R, 3] of the hit."""
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]  # [F, 3]
    s = origin[None] - tri[:, 0]  # [F, 3]
    q = np.cross(s, e1)  # [F, 3]
    face, bary = np.full(len(dirs), -1, np.int64), np.zeros((len(dirs), 3))
    for a in range(0, len(dirs), chunk):
        d = dirs[a : a + chunk]  # [r, 3]
        p = np.cross(d[:, None], e2[None])  # [r, F, 3]
        det = (p * e1[None]).sum(-1)  # [r, F]
        ok = np.abs(det) > 1e-12
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        u = (p * s[None]).sum(-1) * inv
        v = (d @ q.T) * inv  # [r, F]
        t = (e2 * q).sum(-1)[None] * inv  # [r, F]
        hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 1e-9)
        t = np.where(hit, t, np.inf)
        best = t.argmin(1)  # [r]
        rows = np.arange(len(d))
        found = np.isfinite(t[rows, best])
        face[a : a + chunk] = np.where(found, best, -1)
        bu, bv = u[rows, best], v[rows, best]
        bary[a : a + chunk] = np.where(found[:, None], np.stack([1 - bu - bv, bu, bv], 1), 0.0)
    return face, bary


def pick(pixels: np.ndarray, cam: np.ndarray, K: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fast :func:`raycast` for a pinhole camera: the nearest triangle under each pixel, found in the image.

    pixels [R, 2] (centres at +0.5), cam [V, 3] camera-frame vertices (z forward), K [3, 3], faces [F, 3]
    -> face [R] (-1: none), barycentric weights [R, 3] of the 3D hit (perspective-correct). Only
    triangles whose image box holds the pixel are tested, so a mesh of 10K faces costs milliseconds."""
    z = cam[:, 2]
    uv = (cam[:, :2] / z[:, None]) * np.diag(K)[:2] + K[:2, 2]  # [V, 2]
    tri, tz = uv[faces], z[faces]  # [F, 3, 2], [F, 3]
    lo, hi = tri.min(1), tri.max(1)  # [F, 2]
    front = (tz > 1e-6).all(1)
    inbox = ((pixels[:, None] >= lo[None]) & (pixels[:, None] <= hi[None])).all(-1) & front[None]  # [R, F]
    r, f = np.nonzero(inbox)
    a, b, c = tri[f, 0], tri[f, 1], tri[f, 2]  # [P, 2]
    cross = lambda x, y: x[:, 0] * y[:, 1] - x[:, 1] * y[:, 0]  # noqa: E731
    area = cross(b - a, c - a)
    ok = np.abs(area) > 1e-12
    area = np.where(ok, area, 1.0)
    p = pixels[r]
    l1, l2 = cross(p - a, c - a) / area, cross(b - a, p - a) / area
    l0 = 1.0 - l1 - l2
    inside = ok & (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
    w = np.stack([l0, l1, l2], 1)[inside] / tz[f[inside]]  # [P', 3] perspective-correct, unnormalised
    depth = 1.0 / w.sum(1)
    r, f, w = r[inside], f[inside], w * depth[:, None]
    face, bary = np.full(len(pixels), -1, np.int64), np.zeros((len(pixels), 3))
    order = np.lexsort((depth, r))  # by pixel, then near to far
    first = order[np.r_[True, r[order][1:] != r[order][:-1]]] if len(order) else order  # nearest hit per pixel
    face[r[first]], bary[r[first]] = f[first], w[first]
    return face, bary


def template_points(head: HeadModel, face: np.ndarray, bary: np.ndarray) -> np.ndarray:  # [R], [R, 3] -> [R, 3]
    """Surface points (triangle, barycentric weights) in the template's (mean shape, neutral) frame."""
    v = head.v_template.astype(np.float64)
    return embed(v, head.faces.astype(np.int64), face, bary)


def closest_points(points: np.ndarray, tri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest point on any of the triangles [F, 3, 3] for each of points [R, 3] (Ericson's regions).

    -> face [R] (index into ``tri``), barycentric weights [R, 3]."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]  # [F, 3]
    face, bary = np.zeros(len(points), np.int64), np.zeros((len(points), 3))
    for i, p in enumerate(points):
        w = _closest_bary(p[None] - a, b - a, c - a)  # [F, 3]
        q = w[:, :1] * a + w[:, 1:2] * b + w[:, 2:] * c
        k = int(((q - p) ** 2).sum(1).argmin())
        face[i], bary[i] = k, w[k]
    return face, bary


def _closest_bary(ap: np.ndarray, ab: np.ndarray, ac: np.ndarray) -> np.ndarray:  # [F, 3] x3 -> [F, 3]
    """Barycentric weights of the point of triangle (a, a+ab, a+ac) nearest to a+ap (Ericson, RTCD 5.1.5)."""
    d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
    bp, cp = ap - ab, ap - ac
    d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
    d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    denom = va + vb + vc
    safe = lambda x: np.where(np.abs(x) > 1e-30, x, 1e-30)  # noqa: E731
    v, w = vb / safe(denom), vc / safe(denom)
    out = np.stack([1 - v - w, v, w], 1)  # inside the face
    cases = [  # (condition, weights), later ones take precedence in reverse order of Ericson's tests
        ((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), "bc"),
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0), "ac"),
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0), "ab"),
        ((d6 >= 0) & (d5 <= d6), "c"),
        ((d3 >= 0) & (d4 <= d3), "b"),
        ((d1 <= 0) & (d2 <= 0), "a"),
    ]
    for cond, kind in cases:
        if kind == "bc":
            t = (d4 - d3) / safe((d4 - d3) + (d5 - d6))
            val = np.stack([np.zeros_like(t), 1 - t, t], 1)
        elif kind == "ac":
            t = d2 / safe(d2 - d6)
            val = np.stack([1 - t, np.zeros_like(t), t], 1)
        elif kind == "ab":
            t = d1 / safe(d1 - d3)
            val = np.stack([1 - t, t, np.zeros_like(t)], 1)
        else:
            val = np.tile(np.eye(3)["abc".index(kind)], (len(d1), 1))
        out = np.where(cond[:, None], val, out)
    return out


def eyeball_faces(head: HeadModel, share: float = 0.5) -> np.ndarray:  # -> [F] bool
    """Faces that turn with an eye joint (the eyeballs): a lid point snapped there would follow the gaze."""
    eyes = head.lbs_weights[:, 3:5].sum(1) >= share  # [V]
    return eyes[head.faces].any(1)


def robust_embedding(head: HeadModel, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """samples [N, 468, 3] template-frame points (NaN: no hit) -> faces [468], bary [468, 3] and the per-index
    median distance of the samples from the chosen point (m): the coordinate-wise median, snapped onto the
    template's surface away from the eyeballs."""
    med = np.nanmedian(samples, axis=0)  # [468, 3]
    allowed = np.nonzero(~eyeball_faces(head))[0]
    tri = head.v_template.astype(np.float64)[head.faces[allowed]]  # [F', 3, 3]
    f, bary = closest_points(med, tri)
    faces = allowed[f]
    pts = template_points(head, faces, bary)
    spread = np.nanmedian(np.linalg.norm(samples - pts[None], axis=-1), axis=0)
    return faces, bary, spread
