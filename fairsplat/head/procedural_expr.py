"""Expression blendshapes of the procedural head (named, like facial action units).

Why named rather than PCA: there are no scans to run PCA on, and SynthHeads
drives expressions by meaning (``smile``, ``blink_l``, ...; see
``fairsplat/synth/motion.py``). Coefficient 1 is one full, natural action;
motion curves go up to about 1.6. Jaw opening is *not* here: as in FLAME it
is the jaw joint's rotation (``pose[6:9]``).

Each shape moves head-grid vertices only (eyeballs and the mouth bag stay), by
smooth falloffs around the anchors of ``procedural_surface.LAYOUT``. Upper-
and lower-lip copies of the mouth row share positions, so shapes that are
smooth across the mouth keep the lips closed; ``upper_lip_raise`` and
``lower_lip_depress`` act on one side of the cut only and part the lips.
A blink is geometric: the upper lid slides down to 15% above the lower
margin and the lid skin comes forward over the eyeball
(``socket_z(closed=True)``); the shape is closed minus open.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from fairsplat.head import procedural_surface as surf
from fairsplat.head.procedural_surface import LAYOUT

EXPRESSION_NAMES: tuple[str, ...] = (
    "smile", "brow_raise", "pucker", "blink_l", "blink_r", "mouth_stretch",
    "brow_lower", "cheek_puff", "upper_lip_raise", "lower_lip_depress", "lip_corner_depress", "nose_wrinkle",
)


class Ctx:
    """What the shapes need: rest vertices of the head grid and which side of the mouth cut they are on."""

    def __init__(self, verts: np.ndarray, lower: np.ndarray, eyes: np.ndarray) -> None:
        self.v, self.lower, self.eyes = verts, lower, eyes  # [N, 3], [N] bool, [2, 3]
        self.x, self.y, self.z = verts.T
        self.gate = surf.front_gate(self.z)


def _vec(n: int, dx=0.0, dy=0.0, dz=0.0) -> np.ndarray:
    return np.stack([np.broadcast_to(np.asarray(a, float), (n,)) for a in (dx, dy, dz)], axis=1)


def _corners(c: Ctx, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian weight around each mouth corner, and the side (+1 left, -1 right)."""
    w = LAYOUT.mouth_half_width
    gl = surf.gauss(c.x, c.y, w, LAYOUT.mouth_y, sigma, sigma)
    gr = surf.gauss(c.x, c.y, -w, LAYOUT.mouth_y, sigma, sigma)
    return (gl + gr) * c.gate, (gl - gr) * c.gate


def smile(c: Ctx) -> np.ndarray:
    g, side = _corners(c, 0.013)
    cheek = (surf.gauss(c.x, c.y, 0.036, -0.018, 0.014, 0.012) + surf.gauss(c.x, c.y, -0.036, -0.018, 0.014, 0.012)) * c.gate
    return _vec(len(c.x), dx=0.0025 * side, dy=0.0035 * g + 0.0015 * cheek, dz=-0.0015 * g + 0.001 * cheek)


def brow_raise(c: Ctx) -> np.ndarray:
    w = surf.smoothstep(LAYOUT.eye_y + 0.004, LAYOUT.brow_y - 0.004, c.y) * (1 - surf.smoothstep(0.07, 0.095, c.y))
    w = w * (1 - surf.smoothstep(0.045, 0.065, np.abs(c.x))) * c.gate
    return _vec(len(c.x), dy=0.004 * w)


def pucker(c: Ctx) -> np.ndarray:
    r2 = (c.x / (LAYOUT.mouth_half_width + 0.008)) ** 2 + ((c.y - LAYOUT.mouth_y) / 0.016) ** 2
    w = surf.bump(r2) * c.gate
    return _vec(len(c.x), dx=-0.35 * c.x * w, dy=-0.2 * (c.y - LAYOUT.mouth_y) * w, dz=0.006 * w)


def mouth_stretch(c: Ctx) -> np.ndarray:
    r2 = (c.x / (LAYOUT.mouth_half_width + 0.015)) ** 2 + ((c.y - LAYOUT.mouth_y) / 0.014) ** 2
    w = surf.bump(r2) * c.gate
    return _vec(len(c.x), dx=0.25 * c.x * w, dz=-0.0008 * w)


def brow_lower(c: Ctx) -> np.ndarray:
    gl = surf.gauss(c.x, c.y, 0.024, LAYOUT.brow_y, 0.018, 0.009)
    gr = surf.gauss(c.x, c.y, -0.024, LAYOUT.brow_y, 0.018, 0.009)
    return _vec(len(c.x), dx=-0.0015 * (gl - gr) * c.gate, dy=-0.003 * (gl + gr) * c.gate, dz=0.0005 * (gl + gr) * c.gate)


def cheek_puff(c: Ctx) -> np.ndarray:
    gl = surf.gauss(c.x, c.y, 0.040, -0.035, 0.017, 0.017)
    gr = surf.gauss(c.x, c.y, -0.040, -0.035, 0.017, 0.017)
    return _vec(len(c.x), dx=0.0035 * (gl - gr) * c.gate, dz=0.0035 * (gl + gr) * c.gate)


def _lip_bump(c: Ctx, centre_dy: float) -> np.ndarray:
    r2 = (c.x / (LAYOUT.mouth_half_width + 0.006)) ** 2 + ((c.y - LAYOUT.mouth_y - centre_dy) / 0.013) ** 2
    return surf.bump(r2) * c.gate


def upper_lip_raise(c: Ctx) -> np.ndarray:
    w = _lip_bump(c, 0.004) * ~c.lower * (c.y >= LAYOUT.mouth_y - 1e-9)
    return _vec(len(c.x), dy=0.003 * w, dz=0.0008 * w)


def lower_lip_depress(c: Ctx) -> np.ndarray:
    w = _lip_bump(c, -0.005) * (c.lower | (c.y < LAYOUT.mouth_y - 1e-9))
    return _vec(len(c.x), dy=-0.0035 * w, dz=0.0005 * w)


def lip_corner_depress(c: Ctx) -> np.ndarray:
    g, side = _corners(c, 0.012)
    return _vec(len(c.x), dx=0.001 * side, dy=-0.003 * g)


def nose_wrinkle(c: Ctx) -> np.ndarray:
    g = (surf.gauss(c.x, c.y, 0.011, 0.0, 0.008, 0.012) + surf.gauss(c.x, c.y, -0.011, 0.0, 0.008, 0.012)) * c.gate
    lip = _lip_bump(c, 0.006) * ~c.lower * (c.y >= LAYOUT.mouth_y - 1e-9)
    return _vec(len(c.x), dy=0.002 * g + 0.0015 * lip, dz=-0.0005 * g)


def _surface_at(x: np.ndarray, y: np.ndarray, eyes: np.ndarray, closed: bool) -> np.ndarray:
    """z of the featured face surface at (x, y), the way ``add_features`` builds it."""
    z0 = surf.front_z(x, y)
    gate = surf.front_gate(z0)
    z = z0 + gate * (surf.nose_z(x, y) + surf.lips_z(x, y) + surf.face_z(x, y))
    return surf.socket_z(x, y, z, eyes, closed=closed) * gate + z * (1 - gate)


def _closing_y(x: np.ndarray, y: np.ndarray, eye: np.ndarray) -> np.ndarray:
    """Where each point goes when the eye closes: the upper lid slides down over the opening."""
    hw = LAYOUT.almond_half_width
    dx = (x - eye[0]) * np.sign(eye[0])
    taper = np.clip(1.0 - 0.25 * dx / hw, 0.5, 1.5)
    q = np.sqrt(np.clip(1.0 - (dx / hw) ** 2, 0.0, None))
    tilt = eye[1] + 0.10 * dx
    top, bottom = tilt + LAYOUT.almond_up * taper * q, tilt - LAYOUT.almond_down * taper * q
    shut = bottom + 0.15 * (top - bottom)
    reach = 0.007  # the lid skin above the margin follows, fading out 7 mm up
    out = y.copy()
    inside = (y > bottom) & (y <= top)
    out[inside] = bottom[inside] + (y[inside] - bottom[inside]) * 0.15
    above = (y > top) & (y < top + reach)
    out[above] = shut[above] + (y[above] - top[above]) * (top[above] + reach - shut[above]) / reach
    return out


def blink(c: Ctx, which: int) -> np.ndarray:
    """Closed minus open for eye ``which`` (0 left, 1 right), on vertices around that eye."""
    e = c.eyes[which]
    near = (np.abs(c.x - e[0]) < 0.022) & (np.abs(c.y - e[1]) < 0.02) & (c.gate > 0.5)
    d = np.zeros((len(c.x), 3))
    if not near.any():
        return d
    x, y = c.x[near], c.y[near]
    y_new = _closing_y(x, y, e)
    z_open = _surface_at(x, y, c.eyes, closed=False)
    z_closed = _surface_at(x, y_new, c.eyes[[which]], closed=True)
    z_closed = np.where(np.abs(x - e[0]) < 0.02, z_closed, z_open)  # the other eye must not be touched
    d[near, 1], d[near, 2] = y_new - y, z_closed - z_open
    return d


SHAPES: dict[str, Callable[[Ctx], np.ndarray]] = {
    "smile": smile, "brow_raise": brow_raise, "pucker": pucker,
    "blink_l": lambda c: blink(c, 0), "blink_r": lambda c: blink(c, 1),
    "mouth_stretch": mouth_stretch, "brow_lower": brow_lower, "cheek_puff": cheek_puff,
    "upper_lip_raise": upper_lip_raise, "lower_lip_depress": lower_lip_depress,
    "lip_corner_depress": lip_corner_depress, "nose_wrinkle": nose_wrinkle,
}
assert tuple(SHAPES) == EXPRESSION_NAMES


def expression_basis(verts: np.ndarray, part: np.ndarray, lower: np.ndarray, eyes: np.ndarray, n_expr: int) -> np.ndarray:
    """exprdirs [V, 3, E] for the first ``n_expr`` names; zero on eyeballs and the mouth bag."""
    if not 1 <= n_expr <= len(EXPRESSION_NAMES):
        raise ValueError(f"head.n-expr: the procedural head has {len(EXPRESSION_NAMES)} expression components, got {n_expr}")
    grid = part == 0
    ctx = Ctx(verts[grid], lower[grid], eyes)
    out = np.zeros((len(verts), 3, n_expr))
    for k, name in enumerate(EXPRESSION_NAMES[:n_expr]):
        out[grid, :, k] = SHAPES[name](ctx)
    return out
