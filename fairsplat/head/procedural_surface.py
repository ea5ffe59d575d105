"""Geometry of the procedural head: a smooth implicit skull/face/neck, ray-cast,
then facial features added as height fields.

Why this construction: ray casting a star-shaped implicit surface from one
centre along a (theta, phi) grid gives a watertight grid mesh whose rows and
columns we control (dense where the face is, a row exactly on the mouth line
for the lip cut). Big volumes (cranium, face, jaw, neck) blend smoothly as an
implicit; small features (nose, lips, eye sockets, ears) are easier to place
exactly as displacements of the cast surface along +Z (face) or +-X (ears).

All numbers are metres in FLAME's frame: +Y up, +Z out of the face, +X the
subject's left. The layout follows average adult anthropometry (head breadth
about 0.15 m, interpupillary distance 62 mm, eyeball radius 12.5 mm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fairsplat import detmath as dm  # machine-independent exp/sin/cos/power (see detmath)

RAY_ORIGIN = np.array([0.0, 0.008, -0.005])  # above the subnasale and level with the eyes: no overhang is missed
EYE_RADIUS = 0.0125


@dataclass(frozen=True)
class Layout:
    """Anatomical anchor points (the template's, before any shape coefficients)."""

    mouth_y: float = -0.050  # lip contact line at the midline
    mouth_half_width: float = 0.0245  # commissures
    eye_x: float = 0.031  # half the interpupillary distance
    eye_y: float = 0.018
    eye_gap: float = 0.0045  # eyeball front sits this far behind the undeformed face surface
    almond_half_width: float = 0.0125  # visible fissure about 25 mm in frontal projection (the eyeball is 25 mm across)
    almond_up: float = 0.0060  # upper / lower lid opening from the eye centre: a fissure about 10.5 mm tall
    almond_down: float = 0.0046
    nasion_y: float = 0.020
    nose_tip_y: float = -0.020
    subnasale_y: float = -0.031
    brow_y: float = 0.036
    chin_y: float = -0.083
    neck_bottom_y: float = -0.135


LAYOUT = Layout()


# ---- implicit volumes -------------------------------------------------------
def _ellipsoid(p: np.ndarray, c, r) -> np.ndarray:  # [N, 3] -> [N] approximate signed distance
    q = (p - np.asarray(c)) / np.asarray(r)
    k0 = np.linalg.norm(q, axis=1)
    k1 = np.linalg.norm(q / np.asarray(r), axis=1)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: a soft union with a blend radius of about k."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1.0 - h) + a * h - k * h * (1.0 - h)


def _neck(p: np.ndarray) -> np.ndarray:
    """Elliptic cylinder, slightly wider at the base, cut flat at the bottom."""
    widen = 1.0 + 0.6 * np.clip(-(p[:, 1] + 0.09) / 0.05, 0.0, 1.0) ** 2 * 0.25
    rx, rz = 0.050 * widen, 0.053 * widen
    q = np.stack([p[:, 0] / rx, (p[:, 2] + 0.018) / rz], axis=1)
    side = (np.linalg.norm(q, axis=1) - 1.0) * np.minimum(rx, rz)
    return np.maximum(np.maximum(side, LAYOUT.neck_bottom_y - p[:, 1]), p[:, 1] + 0.01)


def head_sdf(p: np.ndarray) -> np.ndarray:  # [N, 3] -> [N], negative inside
    """The head's big volumes as a soft union; mirror-symmetric in x by construction."""
    x2 = np.abs(p[:, 0])
    ps = np.stack([x2, p[:, 1], p[:, 2]], axis=1)  # fold x so both sides are bit-identical
    d = _ellipsoid(ps, (0.0, 0.022, -0.012), (0.0745, 0.092, 0.097))  # cranium
    d = _smin(d, _ellipsoid(ps, (0.0, -0.018, 0.026), (0.061, 0.074, 0.066)), 0.02)  # face
    d = _smin(d, _ellipsoid(ps, (0.042, -0.004, 0.050), (0.026, 0.022, 0.028)), 0.012)  # cheekbones
    d = _smin(d, _ellipsoid(ps, (0.044, -0.058, 0.004), (0.018, 0.020, 0.030)), 0.02)  # jaw angles
    d = _smin(d, _ellipsoid(ps, (0.0, -0.070, 0.058), (0.030, 0.024, 0.028)), 0.02)  # mandible body
    d = _smin(d, _ellipsoid(ps, (0.0, -0.082, 0.074), (0.020, 0.013, 0.014)), 0.012)  # chin
    d = _smin(d, _ellipsoid(ps, (0.0, 0.040, 0.070), (0.058, 0.016, 0.022)), 0.015)  # brow ridge
    return _smin(d, _neck(ps), 0.02)


def cast(origin: np.ndarray, dirs: np.ndarray, far: float = 0.3, step: float = 0.003) -> np.ndarray:
    """Distance along each ray to the *outermost* surface crossing.

    origin [3] or [N, 3], dirs [N, 3] unit -> t [N]. Marching inward from
    ``far`` finds the last exit even where a ray grazes a feature twice.
    """
    origin = np.broadcast_to(origin, dirs.shape)
    n_steps = int(far / step)
    hi = np.full(len(dirs), far)  # outside
    found = np.zeros(len(dirs), bool)
    for i in range(1, n_steps + 1):
        t = far - i * step
        inside = head_sdf(origin + t * dirs) < 0
        newly = inside & ~found
        hi[newly] = t + step
        found |= newly
        if found.all():
            break
    if not found.all():
        raise RuntimeError("procedural head: a ray never entered the surface")
    lo = hi - step  # inside
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        inside = head_sdf(origin + mid[:, None] * dirs) < 0
        lo = np.where(inside, mid, lo)
        hi = np.where(inside, hi, mid)
    return 0.5 * (lo + hi)


def directions(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:  # [N], [N] -> [N, 3]
    """theta: azimuth from +Z towards +X; phi: elevation towards +Y."""
    return np.stack([dm.cos(phi) * dm.sin(theta), dm.sin(phi), dm.cos(phi) * dm.cos(theta)], axis=1)


def front_z(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """z of the undeformed surface seen head-on at (x, y): cast along -Z."""
    o = np.stack([x, y, np.full_like(x, -0.3)], axis=1)
    d = np.tile([0.0, 0.0, 1.0], (len(x), 1))
    return cast(o, d, far=0.6, step=0.002) - 0.3  # outermost crossing along +Z = the front


def eye_centres(layout: Layout = LAYOUT) -> np.ndarray:
    """Eyeball centres [2, 3] (left +X first), set back from the cast surface."""
    x = np.array([layout.eye_x, -layout.eye_x])
    y = np.full(2, layout.eye_y)
    z = front_z(x, y) - layout.eye_gap - EYE_RADIUS
    return np.stack([x, y, z], axis=1)


# ---- smooth helpers ---------------------------------------------------------
def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def bump(r2: np.ndarray) -> np.ndarray:
    """Compact C1 bump of a squared normalised radius: 1 at 0, 0 from 1 on."""
    return np.clip(1.0 - r2, 0.0, None) ** 2


def gauss(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    return dm.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def almond_radius(dx: np.ndarray, dy: np.ndarray, layout: Layout = LAYOUT) -> np.ndarray:
    """Normalised distance in the eye opening (1 on the lid margin); dx measured outwards."""
    dy = dy - 0.10 * dx  # outer corner a little higher (canthal tilt)
    half_h = np.where(dy > 0, layout.almond_up, layout.almond_down)
    taper = 1.0 - 0.25 * (dx / layout.almond_half_width)  # opening tallest slightly nasal of centre
    return np.sqrt((dx / layout.almond_half_width) ** 2 + (dy / (half_h * np.clip(taper, 0.5, 1.5))) ** 2)


def orbit_weight(x: np.ndarray, y: np.ndarray, eye: np.ndarray) -> np.ndarray:
    """1 where the skin hugs eyeball ``eye`` (lids), falling to 0 by 16.5 mm out (past the canthi)."""
    dx, dy = x - eye[0], y - eye[1]
    return 1.0 - smoothstep(0.0105, 0.0165, np.sqrt(dx * dx + (1.25 * dy) ** 2))


# ---- features as displacements ---------------------------------------------
def socket_z(x: np.ndarray, y: np.ndarray, z: np.ndarray, eyes: np.ndarray, closed: bool = False) -> np.ndarray:
    """New z for points in the eye sockets: the skin hugs the eyeball as lids.

    Inside the lid opening the skin lies 2 mm *behind* the eyeball surface, so
    the separate eyeball mesh shows through; on the lids it lies 2.5 mm in
    front. ``closed`` puts the whole opening 1.5-3 mm in front of the eyeball
    (the blink blendshape is closed minus open).
    """
    out = z.copy()
    for e in eyes:
        dx, dy = (x - e[0]) * np.sign(e[0]), y - e[1]
        s = smoothstep(0.82, 1.22, almond_radius(dx, dy))
        if closed:  # upper part a little thicker: the upper lid is what comes down
            lid = 0.0015 + 0.0015 * smoothstep(-LAYOUT.almond_down, LAYOUT.almond_up, dy) * (1 - s) + 0.001 * s
        else:
            lid = -0.002 + 0.0045 * s
        r = EYE_RADIUS + lid
        on_sphere = e[2] + np.sqrt(np.maximum(r * r - dx * dx - dy * dy, 0.0))
        out = out + orbit_weight(x, y, e) * (on_sphere - out)
    return out


def nose_z(x: np.ndarray, y: np.ndarray, layout: Layout = LAYOUT, nostrils: bool = True) -> np.ndarray:
    """Bridge from the nasion to the tip, a rounded tip, columella and alae.

    ``nostrils=False`` leaves out the nostril dents (the nose's extent, for labels)."""
    s = np.clip((layout.nasion_y - y) / (layout.nasion_y - layout.nose_tip_y), 0.0, None)  # 0 nasion, 1 tip
    ridge_h = 0.004 + 0.014 * dm.power(np.clip(s, 0, 1), 1.4)
    below = smoothstep(layout.subnasale_y, layout.nose_tip_y, y)  # fades the nose out under the tip
    ridge_h = np.where(y < layout.nose_tip_y, (0.018 + 0.005) * below, ridge_h + 0.005 * dm.exp(-((y - layout.nose_tip_y) / 0.006) ** 2))
    half_w = 0.0055 + 0.0045 * np.clip(s, 0, 1.2) ** 2
    ridge = ridge_h * dm.exp(-dm.power(np.abs(x / half_w), 2.5)) * smoothstep(layout.nasion_y + 0.012, layout.nasion_y - 0.004, y)
    alae = 0.0105 * bump(((np.abs(x) - 0.0135) / 0.0078) ** 2 + ((y + 0.0235) / 0.0072) ** 2)
    nostril = -0.003 * bump(((np.abs(x) - 0.0065) / 0.004) ** 2 + ((y - layout.subnasale_y - 0.001) / 0.0025) ** 2)
    return np.maximum(ridge, alae) + nostril * (ridge < 0.012) * nostrils


def lips_z(x: np.ndarray, y: np.ndarray, layout: Layout = LAYOUT) -> np.ndarray:
    """Upper and lower vermilion bulges meeting at the mouth line, plus the muzzle."""
    m, w = layout.mouth_y, layout.mouth_half_width
    across = np.sqrt(np.clip(1.0 - (x / (w + 0.002)) ** 2, 0.0, None))  # lips thin out towards the corners
    cupid = 0.0008 * dm.exp(-((np.abs(x) - 0.005) / 0.003) ** 2) - 0.0006 * dm.exp(-(x / 0.0025) ** 2)
    up_t = np.clip((y - m) / (0.0078 + cupid * 2), 0.0, 1.0)
    lo_t = np.clip((m - y) / 0.0095, 0.0, 1.0)
    upper = 0.0048 * dm.power(np.maximum(dm.sin(np.pi * up_t), 0.0), 0.8) * across * (y >= m)
    lower = 0.0058 * dm.power(np.maximum(dm.sin(np.pi * lo_t), 0.0), 0.8) * across * (y < m)
    contact = 0.0018 * across * dm.exp(-((y - m) / 0.0025) ** 2)
    muzzle = 0.0055 * gauss(x, y, 0.0, m - 0.002, 0.024, 0.02)
    philtrum = -0.0008 * dm.exp(-(x / 0.0035) ** 2) * smoothstep(m + 0.006, m + 0.010, y) * smoothstep(
        layout.subnasale_y, layout.subnasale_y - 0.004, y)
    fold = -0.0028 * gauss(x, y, 0.0, m - 0.017, 0.014, 0.0035)  # labiomental fold
    return upper + lower + contact + muzzle + philtrum + fold


def face_z(x: np.ndarray, y: np.ndarray, layout: Layout = LAYOUT) -> np.ndarray:
    """Brow ridges, cheekbones and chin: broad, low relief."""
    brows = 0.0035 * (gauss(x, y, 0.030, layout.brow_y - 0.002, 0.016, 0.006) + gauss(x, y, -0.030, layout.brow_y - 0.002, 0.016, 0.006))
    cheeks = 0.003 * (gauss(x, y, 0.043, -0.008, 0.012, 0.012) + gauss(x, y, -0.043, -0.008, 0.012, 0.012))
    chin = 0.004 * gauss(x, y, 0.0, layout.chin_y, 0.011, 0.008)
    return brows + cheeks + chin


def front_gate(z: np.ndarray) -> np.ndarray:
    """1 on the face, 0 behind it: keeps (x, y) height fields off the back of the head."""
    return smoothstep(0.015, 0.045, z)


def ear_dx(y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Outward displacement of the side of the head that reads as an ear: a rim and a bowl."""
    v, u = (y + 0.006) / 0.031, (z + 0.014) / 0.017
    r2 = u * u + v * v
    rim = 0.011 * np.sqrt(bump(r2))
    bowl = -0.006 * bump(((u + 0.15) / 0.55) ** 2 + ((v + 0.15) / 0.5) ** 2)
    return rim + bowl
