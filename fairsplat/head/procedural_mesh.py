"""Topology of the procedural head: a (theta, phi) grid with a cut along the
mouth line, plus eyeball and mouth-bag meshes, and the UV layout.

Why a grid: rows and columns give the UV chart for free (no overlaps by
construction) and let us put a row exactly on the lip contact line, which we
cut so the jaw can open the mouth. Sampling is warped so roughly half the
vertices land on the face, like FLAME's own vertex budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fairsplat import detmath as dm
from fairsplat.head import procedural_surface as surf
from fairsplat.head.procedural_surface import LAYOUT

N_COLS, N_ROWS = 100, 50  # head grid (plus two poles): ~5K vertices
EYE_RINGS, EYE_SEGS = 8, 16
BAG_RINGS, BAG_SEGS = 7, 16
HEAD_V_MAX = 0.80  # head chart occupies v in [0, 0.8]; islands below it


@dataclass(frozen=True)
class Part:
    """One sub-mesh: vertices [N, 3], faces [F, 3] (local ids), per-face UVs [F, 3, 2]."""

    verts: np.ndarray
    faces: np.ndarray
    face_uvs: np.ndarray


@dataclass(frozen=True)
class HeadGrid:
    verts: np.ndarray  # [1 + R*C + 1 + D, 3]: top pole, rows, bottom pole, mouth duplicates
    faces: np.ndarray  # [F, 3]
    face_uvs: np.ndarray  # [F, 3, 2]
    theta: np.ndarray  # [C] column azimuths
    phi: np.ndarray  # [R] row elevations
    mouth_row: int
    corner_cols: tuple[int, int]  # (subject's right, subject's left) commissure columns
    dup_of: np.ndarray  # [D] grid vertex each mouth duplicate copies (upper lip side keeps the original)

    def vid(self, row: int, col: int) -> int:
        return 1 + row * len(self.theta) + col % len(self.theta)


# ---- sampling ---------------------------------------------------------------
def _warp(density, lo: float, hi: float, n: int) -> np.ndarray:
    """n samples in [lo, hi] spaced inversely to ``density`` (including both ends)."""
    t = np.linspace(lo, hi, 4001)
    d = density(t)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (d[1:] + d[:-1]) * np.abs(np.diff(t)))])
    return np.interp(np.linspace(0.0, cdf[-1], n), cdf, t)


def column_angles(n: int = N_COLS) -> np.ndarray:
    """Azimuths, back (-pi) through front (0); exactly mirror-symmetric."""

    def dens(t):
        a = np.abs(t)
        return 0.42 + 1.0 * dm.exp(-((a / 0.8) ** 2)) + 0.5 * dm.exp(-(((a - 0.38) / 0.16) ** 2))

    half = _warp(dens, -np.pi, 0.0, n // 2 + 1)  # [-pi .. 0]
    half[-1] = 0.0
    return np.concatenate([half[:-1], -half[::-1][:-1]])  # C values: -pi .. 0 .. (pi excluded)


def row_angles(mouth_phi: float, n: int = N_ROWS) -> tuple[np.ndarray, int]:
    """Elevations top to bottom (poles excluded), dense on the face, one row on the mouth line."""

    def dens(t):
        face = surf.smoothstep(-1.05, -0.85, t) * (1.0 - surf.smoothstep(0.45, 0.65, t))
        eyes = dm.exp(-(((t - 0.13) / 0.09) ** 2))
        lips = dm.exp(-(((t - mouth_phi) / 0.09) ** 2))
        return 0.33 + 1.0 * face + 0.9 * eyes + 1.0 * lips

    phi = _warp(dens, np.pi / 2, -np.pi / 2, n + 2)[1:-1]
    j = int(np.argmin(np.abs(phi - mouth_phi)))
    phi[j] = mouth_phi
    assert np.all(np.diff(phi) < 0), "row warp is not monotone"
    return phi, j


def mouth_phi() -> float:
    """Elevation whose midline surface point lies on the mouth line (bisection on the cast)."""
    lo, hi = -1.0, 0.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        d = surf.directions(np.zeros(1), np.array([mid]))
        y = surf.RAY_ORIGIN[1] + surf.cast(surf.RAY_ORIGIN, d)[0] * d[0, 1]
        lo, hi = (mid, hi) if y < LAYOUT.mouth_y else (lo, mid)
    return 0.5 * (lo + hi)


# ---- the head grid -----------------------------------------------------------
def cast_grid(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Cast one ray per (row, col) plus the poles -> points [R, C, 3]."""
    th, ph = np.meshgrid(theta, phi)
    d = surf.directions(th.ravel(), ph.ravel())
    pts = surf.RAY_ORIGIN + surf.cast(surf.RAY_ORIGIN, d)[:, None] * d
    pts = pts.reshape(len(phi), len(theta), 3)
    c = len(theta)
    pts[:, 1 : c // 2] = pts[:, c - 1 : c // 2 : -1] * np.array([-1.0, 1.0, 1.0])  # exact mirror
    pts[:, [0, c // 2], 0] = 0.0
    return pts


def flatten_mouth_row(pts: np.ndarray, row: int) -> np.ndarray:
    """Slide rows near the mouth vertically so the mouth row is level at LAYOUT.mouth_y.

    Constant-elevation rays curve up towards the corners; lips meet on a
    near-horizontal line, so we shift with a smooth vertical falloff.
    """
    y_row = pts[row, :, 1]  # [C]
    shift = (LAYOUT.mouth_y - y_row) * surf.smoothstep(0.06, 0.03, np.abs(pts[row, :, 0])) * (pts[row, :, 2] > 0)
    fall = dm.exp(-(((pts[..., 1] - y_row[None]) / 0.014) ** 2))  # [R, C]
    out = pts.copy()
    out[..., 1] += shift[None] * fall
    return out


def add_features(pts: np.ndarray, eyes: np.ndarray) -> np.ndarray:
    """Nose, lips, brows, cheeks, chin and sockets along +Z; ears along +-X."""
    x, y, z = pts[..., 0], pts[..., 1], pts[..., 2]
    gate = surf.front_gate(z)
    z = z + gate * (surf.nose_z(x, y) + surf.lips_z(x, y) + surf.face_z(x, y))
    z = surf.socket_z(x, y, z, eyes) * gate + z * (1 - gate)
    side = surf.smoothstep(0.045, 0.065, np.abs(x))
    x = x + np.sign(x) * side * surf.ear_dx(y, z)
    return np.stack([x, y, z], axis=-1)


def build_grid() -> HeadGrid:
    """Cast, flatten the mouth row, add features, then stitch faces with the mouth cut."""
    theta = column_angles()
    phi, j_m = row_angles(mouth_phi())
    pts = flatten_mouth_row(cast_grid(theta, phi), j_m)
    pts = add_features(pts, surf.eye_centres())
    top = surf.RAY_ORIGIN + surf.cast(surf.RAY_ORIGIN, np.array([[0.0, 1.0, 0.0]]))[0] * np.array([0, 1, 0])
    bot = surf.RAY_ORIGIN + surf.cast(surf.RAY_ORIGIN, np.array([[0.0, -1.0, 0.0]]))[0] * np.array([0, -1, 0])
    c = len(theta)
    x_row = pts[j_m, :, 0] * (pts[j_m, :, 2] > 0)
    col_l = int(np.argmin(np.abs(x_row - LAYOUT.mouth_half_width)))
    col_r = c - col_l  # mirror column
    dup_cols = np.arange(col_r + 1, col_l)  # strictly between the commissures
    verts = np.concatenate([top[None], pts.reshape(-1, 3), bot[None], pts[j_m, dup_cols]])
    grid = HeadGrid(verts, np.zeros((0, 3), np.int64), np.zeros((0, 3, 2)), theta, phi, j_m, (col_r, col_l),
                    np.array([1 + j_m * c + i for i in dup_cols], np.int64))
    faces, uvs = _grid_faces(grid, dup_cols)
    return HeadGrid(verts, faces, uvs, theta, phi, j_m, (col_r, col_l), grid.dup_of)


def _grid_faces(g: HeadGrid, dup_cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quads split into triangles, pole fans; faces under the mouth row use the duplicates."""
    c, r = len(g.theta), len(g.phi)
    bottom = 1 + r * c
    dup = {int(col): bottom + 1 + k for k, col in enumerate(dup_cols)}
    u = np.arange(c + 1) / c  # column c wraps to u = 1 (a UV seam at the back)
    v = (np.arange(r + 2) / (r + 1)) * HEAD_V_MAX  # v = 0 top pole .. HEAD_V_MAX bottom pole
    faces, uvs = [], []
    for i in range(c):
        faces.append((0, g.vid(0, i + 1), g.vid(0, i)))
        uvs.append(((u[i] + u[i + 1]) / 2, v[0], u[i + 1], v[1], u[i], v[1]))
        faces.append((bottom, g.vid(r - 1, i), g.vid(r - 1, i + 1)))
        uvs.append(((u[i] + u[i + 1]) / 2, v[r + 1], u[i], v[r], u[i + 1], v[r]))
    for j in range(r - 1):
        for i in range(c):
            a, b = g.vid(j, i), g.vid(j, i + 1)
            if j == g.mouth_row:  # lower-lip side of the cut
                a, b = dup.get(i % c, a), dup.get((i + 1) % c, b)
            cc, d = g.vid(j + 1, i + 1), g.vid(j + 1, i)
            ua, ub, vt, vb = u[i], u[i + 1], v[j + 1], v[j + 2]
            if i < c // 2:  # x < 0 side: split along a-cc; the mirror side along b-d (mirror-symmetric mesh)
                faces += [(a, b, cc), (a, cc, d)]
                uvs += [(ua, vt, ub, vt, ub, vb), (ua, vt, ub, vb, ua, vb)]
            else:
                faces += [(a, b, d), (b, cc, d)]
                uvs += [(ua, vt, ub, vt, ua, vb), (ub, vt, ub, vb, ua, vb)]
    # Corners above were listed inward-facing; flip so normals point out of the head
    # (shading, hair lift along the normal and the Gaussians' frames rely on it).
    faces_a = np.array(faces, np.int64)[:, [0, 2, 1]]
    return faces_a, np.array(uvs).reshape(-1, 3, 2)[:, [0, 2, 1]]


# ---- separate parts ----------------------------------------------------------
def uv_sphere(centre: np.ndarray, radii: np.ndarray, rings: int, segs: int, island: tuple[float, float, float]) -> Part:
    """Ellipsoid with poles on the +-Z axis (the front pole is the pupil for an eye).

    UVs: an azimuthal disc centred on ``island`` = (u0, v0, radius); the front
    pole maps to the centre, the back pole to the rim (per face, so no overlap).
    """
    pol = np.linspace(0.0, np.pi, rings + 2)[1:-1]  # polar angle from +Z
    az = np.arange(segs) * 2 * np.pi / segs
    pa, aa = np.meshgrid(pol, az, indexing="ij")
    unit = np.stack([dm.sin(pa) * dm.cos(aa), dm.sin(pa) * dm.sin(aa), dm.cos(pa)], -1).reshape(-1, 3)
    verts = np.concatenate([[[0, 0, 1.0]], unit, [[0, 0, -1.0]]]) * radii + centre
    n_last = 1 + rings * segs

    def vid(ring, s):
        return 1 + ring * segs + s % segs

    def uv(polar, azim):
        rad = island[2] * polar / np.pi
        return (island[0] + rad * dm.cos(azim), island[1] + rad * dm.sin(azim))

    faces, uvs = [], []
    for s in range(segs):
        a0, a1 = az[s], az[s] + 2 * np.pi / segs
        faces.append((0, vid(0, s), vid(0, s + 1)))
        uvs.append((uv(0, 0), uv(pol[0], a0), uv(pol[0], a1)))
        faces.append((n_last, vid(rings - 1, s + 1), vid(rings - 1, s)))
        uvs.append((uv(np.pi, (a0 + a1) / 2), uv(pol[-1], a1), uv(pol[-1], a0)))
        for k in range(rings - 1):
            p, q = vid(k, s), vid(k, s + 1)
            pn, qn = vid(k + 1, s), vid(k + 1, s + 1)
            faces += [(p, pn, qn), (p, qn, q)]
            uvs += [(uv(pol[k], a0), uv(pol[k + 1], a0), uv(pol[k + 1], a1)),
                    (uv(pol[k], a0), uv(pol[k + 1], a1), uv(pol[k], a1))]
    return Part(verts, np.array(faces, np.int64), np.array(uvs))


def eyeballs(centres: np.ndarray) -> list[Part]:
    """Left (+X) then right eyeball; UV islands side by side under the head chart."""
    r = surf.EYE_RADIUS
    return [
        uv_sphere(centres[0], np.full(3, r), EYE_RINGS, EYE_SEGS, (0.1, 0.9, 0.095)),
        uv_sphere(centres[1], np.full(3, r), EYE_RINGS, EYE_SEGS, (0.3, 0.9, 0.095)),
    ]


def mouth_bag(lip_z: float) -> Part:
    """A closed cavity just behind the lips; the jaw skins its lower half, so it opens."""
    centre = np.array([0.0, LAYOUT.mouth_y - 0.004, lip_z - 0.030])
    return uv_sphere(centre, np.array([0.022, 0.016, 0.024]), BAG_RINGS, BAG_SEGS, (0.6, 0.9, 0.095))
