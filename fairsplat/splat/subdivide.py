"""LAM-style subdivided points (seed 002): a denser FLAME-format head.

LAM queries image features with the vertices of a subdivided FLAME mesh and
animates the resulting points with FLAME's own LBS and correctives. Midpoint
subdivision that carries *every* FLAME attribute (blendshapes, pose
correctives, skinning weights, UVs, regions, landmark embedding) gives exactly
that: the output is a ``HeadModel`` whose vertices are the Gaussian points, so
the same ``FlameLayer`` animates them. New vertices get zero joint-regressor
weight, so joints (and therefore the skeleton) are unchanged.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Child triangles of a midpoint split, as parent-barycentric corners.
# Corner ids: 0,1,2 = parent corners; 3 = m01, 4 = m12, 5 = m20.
_CHILDREN = np.array([[0, 3, 5], [3, 1, 4], [5, 4, 2], [3, 4, 5]])
_CORNER_BARY = np.array(
    [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0], [0, 0.5, 0.5], [0.5, 0, 0.5]], dtype=np.float64
)


def _split(faces: np.ndarray, n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """Midpoint-split ``faces``; returns (edges [E, 2], new faces [4F, 3])."""
    pairs = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 3, 2)  # [F, 3, 2]: e01, e12, e20
    key = np.sort(pairs, axis=-1).reshape(-1, 2)
    edges, inverse = np.unique(key, axis=0, return_inverse=True)
    mid = n_vertices + inverse.reshape(-1, 3)  # [F, 3]: m01, m12, m20
    corners = np.concatenate([faces, mid], axis=1)  # [F, 6]
    new = corners[:, _CHILDREN]  # [F, 4, 3]
    return edges, new.reshape(-1, 3)


def _midpoints(attr: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Append edge midpoints of a per-vertex attribute (first axis = vertex)."""
    return np.concatenate([attr, 0.5 * (attr[edges[:, 0]] + attr[edges[:, 1]])], axis=0)


def _landmarks(lmk_faces: np.ndarray, lmk_bary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Re-express each landmark on the child triangle that contains it."""
    out_f, out_b = [], []
    for f, b in zip(lmk_faces, lmk_bary.astype(np.float64)):
        for child, corners in enumerate(_CHILDREN):
            beta = b @ np.linalg.inv(_CORNER_BARY[corners])  # corners^T beta = b
            if beta.min() >= -1e-6:
                out_f.append(4 * f + child)
                out_b.append(np.clip(beta, 0, 1) / np.clip(beta, 0, 1).sum())
                break
    return np.asarray(out_f, np.int64), np.asarray(out_b, np.float32)


def subdivide_head(head, levels: int = 1):
    """Return a HeadModel with each triangle split into 4, ``levels`` times."""
    for _ in range(levels):
        v = head.v_template.shape[0]
        edges, faces = _split(head.faces, v)
        uv_edges, uv_faces = _split(head.uv_faces, head.uvs.shape[0])
        posedirs = head.posedirs.reshape(head.posedirs.shape[0], v, 3).transpose(1, 0, 2)  # [V, P, 3]
        posedirs = _midpoints(posedirs, edges).transpose(1, 0, 2).reshape(head.posedirs.shape[0], -1)
        weights = _midpoints(head.lbs_weights, edges)
        lmk_faces, lmk_bary = _landmarks(head.lmk_faces, head.lmk_bary)
        head = dataclasses.replace(
            head,
            v_template=_midpoints(head.v_template, edges).astype(np.float32),
            faces=faces.astype(np.int64),
            shapedirs=_midpoints(head.shapedirs, edges).astype(np.float32),
            exprdirs=_midpoints(head.exprdirs, edges).astype(np.float32),
            posedirs=posedirs.astype(np.float32),
            j_regressor=np.concatenate([head.j_regressor, np.zeros((head.j_regressor.shape[0], len(edges)))], 1).astype(np.float32),
            lbs_weights=(weights / weights.sum(axis=1, keepdims=True)).astype(np.float32),
            uvs=_midpoints(head.uvs, uv_edges).astype(np.float32),
            uv_faces=uv_faces.astype(np.int64),
            face_regions=np.repeat(head.face_regions, 4),
            lmk_faces=lmk_faces,
            lmk_bary=lmk_bary,
        )
    return head
