"""A tiny FLAME-format head for tests and benchmarks of the tracker.

Why it exists: the tracker must work with *any* FLAME-format asset (the
procedural default, a converted FLAME 2020/2023 file), so its tests should
not depend on one builder. This head has a face-like iBUG-68 layout (jaw
arc, brows, nose, eyes, lips at plausible metric positions), a small
triangle under every landmark with random barycentric coordinates, smooth
random shape and expression bases, small pose correctives, and FLAME's five
joints with the lower face skinned to the jaw. It passes ``HeadModel.validate``.
"""

from __future__ import annotations

import numpy as np

from fairsplat.head.model import HeadModel

N_SKULL = 60
JOINTS = np.array([[0.0, -0.06, -0.03], [0.0, -0.045, -0.02], [0.0, -0.012, -0.005], [0.032, 0.025, 0.055], [-0.032, 0.025, 0.055]])


def _surface_z(x: np.ndarray) -> np.ndarray:
    """A face-like depth profile: flattest at the midline, falling off to the sides."""
    return 0.095 - 8.0 * x**2


def ibug68_layout() -> np.ndarray:  # [68, 3] metres, FLAME frame; index 0 = subject's right jaw (-X)
    pts = []
    a = np.linspace(np.pi, 2 * np.pi, 17)  # jaw 0..16: right ear, chin, left ear
    pts += [np.stack([0.072 * np.cos(a), 0.02 + 0.085 * np.sin(a), 0.035 + 0.05 * (1 - np.abs(np.cos(a)))], 1)]
    for sign in (-1, 1):  # brows 17..21 (right, outer to inner), 22..26 (left, inner to outer)
        x = np.linspace(0.058, 0.012, 5) * sign if sign < 0 else np.linspace(0.012, 0.058, 5)
        pts += [np.stack([x, 0.045 + 0.008 * np.sin(np.pi * (np.abs(x) - 0.012) / 0.046), _surface_z(x) + 0.004], 1)]
    pts += [np.stack([np.zeros(4), [0.03, 0.015, 0.0, -0.012], [0.097, 0.104, 0.112, 0.12]], 1)]  # bridge 27..30
    x = np.linspace(-0.016, 0.016, 5)
    pts += [np.stack([x, -0.022 - 0.004 * (1 - np.abs(x) / 0.016), 0.1 + 0.01 * (1 - np.abs(x) / 0.016)], 1)]
    t = np.pi - np.arange(6) * np.pi / 3  # eyes: corner on the -X side first, upper lid, other corner, lower lid
    for cx in (-0.032, 0.032):  # 36..41 right eye (outer corner first), 42..47 left eye (inner corner first)
        x = cx + 0.014 * np.cos(t)
        pts += [np.stack([x, 0.025 + 0.006 * np.sin(t), _surface_z(x) - 0.01], 1)]
    for rx, ry, n, cy in ((0.025, 0.011, 12, -0.048), (0.018, 0.004, 8, -0.048)):  # lips 48..59, 60..67
        t = np.pi - np.arange(n) * 2 * np.pi / n  # start at the right corner, go over the upper lip
        x = rx * np.cos(t)
        pts += [np.stack([x, cy + ry * np.sin(t), _surface_z(x) + 0.005], 1)]
    out = np.concatenate(pts, 0)
    assert out.shape == (68, 3), out.shape
    return out


def _jaw_weight(lmk: np.ndarray) -> np.ndarray:  # [68, 3] -> [68] share skinned to the jaw joint
    w = np.clip((-0.01 - lmk[:, 1]) / 0.04, 0.0, 1.0)  # lower face
    w[48:68] = np.where(lmk[48:68, 1] < -0.048, 1.0, 0.0)  # lower lip follows the jaw, upper lip does not
    w[[48, 54, 60, 64]] = 0.5  # mouth corners
    return w


def make_toy_head(n_shape: int = 12, n_expr: int = 8, seed: int = 0) -> HeadModel:
    rng = np.random.default_rng(seed)
    lmk = ibug68_layout()
    corners = np.array([[0.0, 0.0, 0.0], [0.003, 0.0, 0.0], [0.0, 0.003, 0.0]])
    verts = (lmk[:, None] + corners[None]).reshape(-1, 3)  # [204, 3] a small triangle per landmark
    skull = rng.normal(0, 1, (N_SKULL, 3))
    skull = 0.09 * skull / np.linalg.norm(skull, axis=1, keepdims=True) - [0.0, 0.0, 0.02]  # no landmarks here
    v = np.concatenate([verts, skull, JOINTS], 0)  # [V, 3]: joint sites are vertices too
    nv, nj, nl = len(v), 5, 204
    faces = np.concatenate([np.arange(nl).reshape(68, 3), nl + rng.integers(0, N_SKULL, (N_SKULL, 3))])
    anchor = np.concatenate([np.repeat(np.arange(68), 3), np.full(N_SKULL + nj, -1)])  # landmark of each vertex
    shapedirs = _smooth_basis(v, n_shape, 0.004, rng)
    exprdirs = _smooth_basis(v, n_expr, 0.003, rng, local=True)
    exprdirs[nl:] = 0.0  # expressions move the face only
    weights = np.zeros((nv, nj))
    jw = np.where(anchor >= 0, _jaw_weight(lmk)[anchor.clip(0)], 0.0)
    weights[:, 2], weights[:, 1] = jw, 1.0 - jw
    weights[nv - nj :] = np.eye(nj)
    # Dense regressor like FLAME's: each joint mixes its site with many vertices,
    # so an exact landmark-only model must carry the whole regression.
    j_regressor = 0.3 * rng.dirichlet(np.ones(nv - nj), nj)
    j_regressor = np.concatenate([j_regressor, 0.7 * np.eye(nj)], 1)
    posedirs = rng.normal(0, 2e-4, (9 * (nj - 1), nv * 3))
    bary = rng.dirichlet(np.ones(3), 68)
    return HeadModel(
        v_template=v, faces=faces, shapedirs=shapedirs, exprdirs=exprdirs, posedirs=posedirs,
        j_regressor=j_regressor, parents=np.array([-1, 0, 1, 1, 1]), lbs_weights=weights,
        uvs=rng.uniform(0, 1, (nv, 2)), uv_faces=faces, face_regions=np.zeros(len(faces), np.int64),
        lmk_faces=np.arange(68), lmk_bary=bary, source="toy",
    ).validate()


def _smooth_basis(v: np.ndarray, k: int, scale: float, rng: np.random.Generator, local: bool = False) -> np.ndarray:
    """[V, 3, k] smooth displacement fields of about ``scale`` metres, with no rigid part.

    Global fields are quadratic in position (face width, depth, chin length
    vary together); local ones are Gaussian bumps around a landmark. Each field
    has its best-fitting infinitesimal rotation and translation removed, as in
    FLAME, whose PCA was built from rigidly aligned scans: otherwise a shape
    coefficient could impersonate a head turn.
    """
    out = np.zeros((len(v), 3, k))
    feats = np.concatenate([v, v**2, v[:, [0]] * v[:, [1]], v[:, [1]] * v[:, [2]]], 1) / 0.08  # [V, 8]
    for i in range(k):
        if local:
            centre = v[rng.integers(0, 204)]  # a landmark
            fall = np.exp(-((v - centre) ** 2).sum(1) / (2 * 0.02**2))  # [V]
            field = fall[:, None] * rng.normal(0, 1, 3)[None] * scale
        else:
            field = feats @ rng.normal(0, 1, (8, 3))
        field = _remove_rigid(v, field)
        out[:, :, i] = field * scale / np.sqrt((field[:204] ** 2).sum(1).mean())  # RMS over the face
    return out


def _remove_rigid(v: np.ndarray, d: np.ndarray) -> np.ndarray:  # [V, 3], [V, 3] -> [V, 3]
    """d minus its least-squares fit by ``t + w x v`` (translation and small rotation)."""
    c = v - v.mean(0)
    rows = []
    for axis in np.eye(3):  # basis of rigid motions: 3 translations, 3 rotations, each a [V, 3] field
        rows.append(np.broadcast_to(axis, v.shape))
        rows.append(np.cross(axis, c))
    basis = np.stack([r.reshape(-1) for r in rows], 1)  # [3V, 6]
    coef, *_ = np.linalg.lstsq(basis, d.reshape(-1), rcond=None)
    return d - (basis @ coef).reshape(d.shape)
