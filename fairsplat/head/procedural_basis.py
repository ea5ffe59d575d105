"""Identity (shape) basis of the procedural head.

Why smooth ambient fields: each component is a smooth displacement field of
3D space, evaluated at the rest vertices, so the eyeballs and the mouth bag
move with the skin around them and nothing interpenetrates. Eyeballs and the
bag take the field's value at their centre (they translate rigidly and stay
round, and the eye joints regressed from them follow the sockets).

The first components are named anatomical variations (head width, face
length, jaw width, nose size, lip fullness, eye spacing, ...); a seeded tail of
random smooth fields (sums of Gaussian blobs) supplies any further ones, so
``head.n-shape`` can go up to FLAME's 300. Every field is exactly
mirror-symmetric or antisymmetric (``x -> -x``). Symmetric and antisymmetric
fields are orthogonal by parity; within each group fields are
Gram-Schmidt-orthogonalised in order under the vertex-area inner product
``<a, b> = sum_v A_v a_v . b_v`` (so dense face sampling does not count
twice), then scaled so their largest displacement is ``amplitude(k)``: a few
mm for the first, decaying like PCA variances.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from fairsplat import detmath as dm
from fairsplat.head import procedural_surface as surf
from fairsplat.head.procedural_surface import LAYOUT

Field = Callable[[np.ndarray], np.ndarray]  # points [N, 3] -> displacement [N, 3]
MIRROR = np.array([-1.0, 1.0, 1.0])


def _vec(dx=None, dy=None, dz=None) -> np.ndarray:
    n = len(next(a for a in (dx, dy, dz) if a is not None))
    return np.stack([np.zeros(n) if a is None else a for a in (dx, dy, dz)], axis=1)


def _gate(p: np.ndarray) -> np.ndarray:
    return surf.front_gate(p[:, 2])


def _g2(p, cx, cy, sx, sy) -> np.ndarray:
    return surf.gauss(p[:, 0], p[:, 1], cx, cy, sx, sy)


def _pair(p, cx, cy, sx, sy) -> np.ndarray:
    """Mirror pair of Gaussians at (+-cx, cy), with the sign of x (smooth through 0)."""
    return _g2(p, cx, cy, sx, sy) - _g2(p, -cx, cy, sx, sy)


m = LAYOUT.mouth_y
SYMMETRIC: dict[str, Field] = {
    "head_width": lambda p: _vec(dx=p[:, 0] / 0.075),
    "head_height": lambda p: _vec(dy=np.maximum(p[:, 1], 0.0) / 0.11),
    "face_depth": lambda p: _vec(dz=(p[:, 2] + 0.012) / 0.1),
    "face_length": lambda p: _vec(dy=-np.maximum(LAYOUT.nasion_y - p[:, 1], 0.0) / 0.1),
    "jaw_width": lambda p: _vec(dx=p[:, 0] / 0.06 * surf.smoothstep(-0.03, -0.075, p[:, 1]) * surf.smoothstep(-0.03, 0.0, p[:, 2])),
    "nose_size": lambda p: _vec(dz=surf.nose_z(p[:, 0], p[:, 1]) * _gate(p) / 0.023),
    "chin": lambda p: _vec(dy=-0.4 * _g2(p, 0.0, LAYOUT.chin_y, 0.018, 0.014) * _gate(p),
                          dz=_g2(p, 0.0, LAYOUT.chin_y, 0.018, 0.014) * _gate(p)),
    "lip_fullness": lambda p: _vec(dz=surf.lips_z(p[:, 0], p[:, 1]) * _gate(p) / 0.0058),
    "eye_spacing": lambda p: _vec(dx=_pair(p, LAYOUT.eye_x, LAYOUT.eye_y, 0.016, 0.016) * _gate(p)),
    "nose_width": lambda p: _vec(dx=p[:, 0] / 0.015 * _g2(p, 0.0, -0.018, 0.02, 0.014) * _gate(p)),
    "cheekbones": lambda p: _vec(dx=_pair(p, 0.045, -0.006, 0.014, 0.014),
                                dz=0.5 * (_g2(p, 0.045, -0.006, 0.014, 0.014) + _g2(p, -0.045, -0.006, 0.014, 0.014)) * _gate(p)),
    "brow_ridge": lambda p: _vec(dz=(_g2(p, 0.028, LAYOUT.brow_y, 0.018, 0.007) + _g2(p, -0.028, LAYOUT.brow_y, 0.018, 0.007)) * _gate(p)),
    "forehead_slope": lambda p: _vec(dz=-np.maximum(p[:, 1] - 0.03, 0.0) / 0.08 * _gate(p)),
    "mouth_width": lambda p: _vec(dx=p[:, 0] / 0.025 * _g2(p, 0.0, m, 0.03, 0.012) * _gate(p)),
    "nose_length": lambda p: _vec(dy=-_g2(p, 0.0, LAYOUT.nose_tip_y, 0.012, 0.01) * _gate(p)),
}
ANTISYMMETRIC: dict[str, Field] = {
    "nose_deviation": lambda p: _vec(dx=_g2(p, 0.0, -0.008, 0.018, 0.024) * _gate(p)),
    "jaw_tilt": lambda p: _vec(dy=p[:, 0] / 0.06 * surf.smoothstep(-0.03, -0.075, p[:, 1]) * surf.smoothstep(-0.03, 0.0, p[:, 2])),
    "eye_height": lambda p: _vec(dy=_pair(p, LAYOUT.eye_x, LAYOUT.eye_y, 0.016, 0.016) * _gate(p)),
    "face_twist": lambda p: _vec(dz=p[:, 0] / 0.06 * _gate(p)),
}


def _random_field(rng: np.random.Generator, anchors: np.ndarray, parity: int) -> Field:
    """Three Gaussian blobs at random surface anchors, made (anti)symmetric."""
    idx = rng.choice(len(anchors), 3, replace=False)
    centres, sig = anchors[idx], rng.uniform(0.015, 0.035, 3)
    amp = rng.normal(0.0, 1.0, (3, 3))

    def raw(p: np.ndarray) -> np.ndarray:
        d2 = ((p[:, None, :] - centres[None]) ** 2).sum(-1)  # [N, 3]
        w = dm.exp(-0.5 * d2 / sig**2)  # [N, 3]
        return w[:, 0:1] * amp[0] + w[:, 1:2] * amp[1] + w[:, 2:3] * amp[2]  # w @ amp without BLAS

    return lambda p: raw(p) + parity * raw(p * MIRROR) * MIRROR


def amplitude(k: int) -> float:
    """Largest displacement of component k at coefficient 1: 6 mm, decaying like a PCA spectrum
    (2 mm by component 16). At 2 sigma the head breadth varies by about +-12 mm, a little more
    than the adult spread (SD ~5-6 mm), so SynthHeads identities differ visibly."""
    return 0.006 / (1.0 + k / 8.0)


def component_plan(n: int) -> list[tuple[str, int]]:
    """(name, parity) in output order: named symmetric, named antisymmetric, then a seeded tail."""
    plan = [(k, 1) for k in SYMMETRIC] + [(k, -1) for k in ANTISYMMETRIC]
    plan += [(f"random_{i}", 1 if i % 2 == 0 else -1) for i in range(max(n - len(plan), 0))]
    return plan[:n]


def evaluate(field: Field, verts: np.ndarray, rigid: dict[int, np.ndarray], part: np.ndarray,
             hug: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """Field at the rest vertices [V, 3]; parts listed in ``rigid`` take the value at their centre.

    ``hug`` maps a rigid part to per-vertex weights [V] of the skin that hugs it
    (the lids around an eyeball): that skin blends towards the part's motion,
    so a narrower head or closer-set eyes never push a lid into its eyeball.
    Blending is linear in the field, so it survives orthogonalisation.
    """
    d = field(verts)
    for p, centre in rigid.items():
        at_centre = field(centre[None])[0]
        d[part == p] = at_centre
        if hug is not None and p in hug:
            w = hug[p][:, None]
            d = d * (1.0 - w) + w * at_centre
    return d


def _orthogonalise(fields: np.ndarray, area: np.ndarray) -> np.ndarray:  # [K, V, 3] -> same, area-orthonormal
    """Gram-Schmidt without BLAS (``detmath.gram_schmidt``): LAPACK's QR rounds differently per
    OpenBLAS kernel, so the asset's hash would depend on the CPU. Each component keeps pointing like its field."""
    sw = np.sqrt(np.repeat(area, 3))[:, None]  # [3V, 1]
    a = fields.reshape(len(fields), -1).T * sw  # [3V, K]
    try:
        q = dm.gram_schmidt(a)
    except RuntimeError as err:
        raise RuntimeError("procedural basis: shape fields are (nearly) linearly dependent") from err
    return (q / sw).T.reshape(fields.shape)


def shape_basis(
    verts: np.ndarray,  # [V, 3] rest vertices (mirror-symmetric)
    area: np.ndarray,  # [V] vertex areas
    part: np.ndarray,  # [V] 0 head grid, 1/2 eyeballs, 3 mouth bag
    rigid: dict[int, np.ndarray],  # part -> centre [3]
    n_shape: int,
    seed: int,
    hug: dict[int, np.ndarray] | None = None,  # part -> [V] weights of skin moving with it
) -> tuple[np.ndarray, list[str]]:  # shapedirs [V, 3, S], names
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    anchors = verts[(part == 0) & (verts[:, 2] > -0.02) & (verts[:, 1] > -0.1)]
    plan = component_plan(n_shape)
    raw = {}
    for name, parity in plan:
        field = SYMMETRIC.get(name) or ANTISYMMETRIC.get(name) or _random_field(rng, anchors, parity)
        raw[name] = evaluate(field, verts, rigid, part, hug)
    out = np.zeros((len(verts), 3, n_shape))
    for parity in (1, -1):
        cols = [k for k, (_, p) in enumerate(plan) if p == parity]
        if cols:
            ortho = _orthogonalise(np.stack([raw[plan[k][0]] for k in cols]), area)
            for k, d in zip(cols, ortho):
                out[:, :, k] = d * amplitude(k) / np.linalg.norm(d, axis=1).max()
    return out, [name for name, _ in plan]
