"""The procedural default head: a FLAME-format :class:`HeadModel` built from formulas.

Why: FLAME cannot be shipped or downloaded here, yet every stage needs a head
with FLAME's interface (shape and expression blendshapes, five joints, LBS,
UVs, region labels, a 68-landmark embedding). This assembles one from the
pieces in ``procedural_*``:

- ``procedural_surface`` / ``procedural_mesh``: the skin grid (about 5K
  vertices, cut along the mouth line), two eyeballs and a mouth bag, UVs;
- ``procedural_regions``: a CelebAMask-HQ label per face;
- ``procedural_landmarks``: the iBUG-68 embedding;
- ``procedural_rig``: joints, joint regressor, skinning weights;
- ``procedural_basis`` / ``procedural_expr``: identity and expression bases.

The template is made exactly mirror-symmetric (``mirror_vertices`` gives the
vertex permutation), so symmetric shape components and the left/right labels
can be tested exactly. The geometry does not depend on ``seed``; the seed only
draws the generic tail of the shape basis (components after the named ones).
Building takes a couple of seconds; the seed-independent part is cached per
process and every call returns fresh arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fairsplat.head import procedural_mesh as pm
from fairsplat.head import procedural_surface as surf
from fairsplat.head.model import HeadModel
from fairsplat.head.procedural_basis import shape_basis
from fairsplat.head.procedural_expr import EXPRESSION_NAMES, expression_basis
from fairsplat.head.procedural_landmarks import embed_landmarks
from fairsplat.head.procedural_regions import face_regions
from fairsplat.head.procedural_rig import PARENTS, joint_regressor, lbs_weights, zero_posedirs

__all__ = ["EXPRESSION_NAMES", "build_procedural_head", "mirror_vertices", "head_geometry"]

PART_NAMES = ("head", "left_eyeball", "right_eyeball", "mouth_bag")


@dataclass(frozen=True)
class Geometry:
    """Seed-independent rest geometry and rig of the procedural head."""

    verts: np.ndarray  # [V, 3] mirror-symmetric
    faces: np.ndarray  # [F, 3] outward-facing
    uvs: np.ndarray  # [T, 2]
    uv_faces: np.ndarray  # [F, 3]
    part: np.ndarray  # [V] index into PART_NAMES
    face_part: np.ndarray  # [F]
    lower: np.ndarray  # [V] bool: below the mouth cut (lower-lip duplicates and rows under it)
    mirror: np.ndarray  # [V] index of each vertex's mirror image
    area: np.ndarray  # [V] vertex areas, m^2
    eyes: np.ndarray  # [2, 3] eyeball centres, left (+X) first
    bag_centre: np.ndarray  # [3]
    regions: np.ndarray  # [F]
    lmk_faces: np.ndarray  # [68]
    lmk_bary: np.ndarray  # [68, 3]
    j_regressor: np.ndarray  # [5, V]
    lbs_weights: np.ndarray  # [V, 5]


def _sphere_mirror(rings: int, segs: int) -> np.ndarray:
    """Vertex permutation of ``uv_sphere`` for x -> -x (azimuth a -> pi - a)."""
    ids = [0]
    for ring in range(rings):
        ids += [1 + ring * segs + (segs // 2 - s) % segs for s in range(segs)]
    return np.array(ids + [1 + rings * segs])


def mirror_vertices(grid: pm.HeadGrid, sizes: tuple[int, int, int]) -> np.ndarray:
    """[V] mirror partner of every vertex: grid columns c <-> C - c, eyeballs swap, bag maps to itself."""
    c, r = len(grid.theta), len(grid.phi)
    n_grid = len(grid.verts)
    mir = np.arange(n_grid)
    rows = np.arange(r)[:, None]
    cols = np.arange(c)[None]
    mir[1 + rows * c + cols] = 1 + rows * c + (c - cols) % c
    dup_cols = (grid.dup_of - 1) % c
    dup_index = {int(col): 2 + r * c + k for k, col in enumerate(dup_cols)}
    for k, col in enumerate(dup_cols):
        mir[2 + r * c + k] = dup_index[int((c - col) % c)]
    n_eye, n_bag = sizes[0], sizes[2]
    eye_m = _sphere_mirror(pm.EYE_RINGS, pm.EYE_SEGS)
    bag_m = _sphere_mirror(pm.BAG_RINGS, pm.BAG_SEGS)
    left, right, bag = n_grid, n_grid + n_eye, n_grid + 2 * n_eye
    return np.concatenate([mir, right + eye_m, left + eye_m, bag + bag_m])


def _vertex_area(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = verts[faces]
    a = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    out = np.zeros(len(verts))
    np.add.at(out, faces.ravel(), np.repeat(a / 3.0, 3))
    return out


def _unique_uvs(face_uvs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # [F, 3, 2] -> uvs [T, 2], uv_faces [F, 3]
    flat = np.round(face_uvs.reshape(-1, 2), 9)
    uvs, inverse = np.unique(flat, axis=0, return_inverse=True)
    return np.clip(uvs, 0.0, 1.0), inverse.reshape(-1, 3)


@lru_cache(maxsize=1)
def head_geometry() -> Geometry:
    """Cast, assemble, symmetrise, label, embed landmarks and rig (cached: about 2 s)."""
    grid = pm.build_grid()
    eyes = surf.eye_centres()
    lip_z = float(grid.verts[grid.vid(grid.mouth_row, len(grid.theta) // 2), 2])
    parts = [*pm.eyeballs(eyes), pm.mouth_bag(lip_z)]
    verts, faces, face_uvs, part, face_part = [grid.verts], [grid.faces], [grid.face_uvs], [np.zeros(len(grid.verts), np.int64)], [np.zeros(len(grid.faces), np.int64)]
    offset = len(grid.verts)
    for k, p in enumerate(parts, start=1):
        verts.append(p.verts)
        faces.append(p.faces + offset)
        face_uvs.append(p.face_uvs)
        part.append(np.full(len(p.verts), k))
        face_part.append(np.full(len(p.faces), k))
        offset += len(p.verts)
    verts, faces, part, face_part = (np.concatenate(a) for a in (verts, faces, part, face_part))
    mirror = mirror_vertices(grid, tuple(len(p.verts) for p in parts))
    verts = 0.5 * (verts + verts[mirror] * [-1.0, 1.0, 1.0])  # exact mirror symmetry
    uvs, uv_faces = _unique_uvs(np.concatenate(face_uvs))
    n_grid_rows = len(grid.phi)
    c = len(grid.theta)
    dup = np.zeros(len(verts), bool)
    dup[2 + n_grid_rows * c : len(grid.verts)] = True  # lower-lip duplicates of the mouth row
    lower = dup.copy()
    lower[1 + (grid.mouth_row + 1) * c : 1 + n_grid_rows * c] = True  # rows under the cut
    lower &= verts[:, 1] < surf.LAYOUT.mouth_y + 0.02  # only near/under the mouth matters
    lower_face = lower[faces].any(1) & (face_part == 0)
    centroids = verts[faces].mean(1)
    regions = face_regions(centroids, face_part, lower_face)
    lmk_faces, lmk_bary = embed_landmarks(verts, faces, np.flatnonzero(face_part == 0))
    bag_centre = verts[part == 3].mean(0)
    return Geometry(
        verts=verts, faces=faces, uvs=uvs, uv_faces=uv_faces, part=part, face_part=face_part, lower=lower,
        mirror=mirror, area=_vertex_area(verts, faces), eyes=np.stack([verts[part == 1].mean(0), verts[part == 2].mean(0)]),
        bag_centre=bag_centre, regions=regions, lmk_faces=lmk_faces, lmk_bary=lmk_bary,
        j_regressor=joint_regressor(verts, part), lbs_weights=lbs_weights(verts, part, dup, float(bag_centre[1])),
    )


def _socket_weight(verts: np.ndarray, eye: np.ndarray) -> np.ndarray:  # [V]
    """Skin that moves with an eyeball under identity changes: 1 out to 14 mm (lids, canthi),
    0 from 24 mm (brow, cheek). Wider than the lids themselves, because the skin just past
    the outer canthus curves back to within 3-6 mm of the eyeball."""
    r = np.sqrt((verts[:, 0] - eye[0]) ** 2 + (1.25 * (verts[:, 1] - eye[1])) ** 2)
    return 1.0 - surf.smoothstep(0.014, 0.024, r)


def build_procedural_head(n_shape: int = 20, n_expr: int = 10, seed: int = 0) -> HeadModel:
    """The default head with ``n_shape`` identity and ``n_expr`` expression components.

    Deterministic per (n_shape, n_expr, seed); a larger ``n_shape`` keeps the
    first components unchanged (sequential Gram-Schmidt).
    """
    if not 1 <= n_expr <= len(EXPRESSION_NAMES):
        raise ValueError(f"head.n-expr: the procedural head has {len(EXPRESSION_NAMES)} expression components, got {n_expr}")
    if n_shape < 1:
        raise ValueError(f"head.n-shape: must be >= 1, got {n_shape}")
    g = head_geometry()
    rigid = {1: g.eyes[0], 2: g.eyes[1], 3: g.bag_centre}
    grid = g.part == 0
    gate = surf.front_gate(g.verts[:, 2]) * grid  # lids only: the back of the head is far from any eye
    hug = {p: _socket_weight(g.verts, g.eyes[p - 1]) * gate for p in (1, 2)}
    shapedirs, _ = shape_basis(g.verts, g.area, g.part, rigid, n_shape, seed, hug)
    exprdirs = expression_basis(g.verts, g.part, g.lower, g.eyes, n_expr)
    return HeadModel(
        v_template=g.verts.copy(), faces=g.faces.copy(), shapedirs=shapedirs, exprdirs=exprdirs,
        posedirs=zero_posedirs(len(g.verts)), j_regressor=g.j_regressor.copy(), parents=PARENTS.copy(),
        lbs_weights=g.lbs_weights.copy(), uvs=g.uvs.copy(), uv_faces=g.uv_faces.copy(),
        face_regions=g.regions.copy(), lmk_faces=g.lmk_faces.copy(), lmk_bary=g.lmk_bary.copy(), source="procedural",
    ).validate()
