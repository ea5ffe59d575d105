"""Illumination-normalised skin colour: the ITA of the albedo, not of the light.

Why: ITA of an uncontrolled photo mixes skin with illumination. A warm bulb adds
b* (lower ITA), one stop of under-exposure drops L* by ~15 (ITA falls by tens of
degrees), and a side light puts half the face in shadow. So a light-skinned
person in dim warm light reads as type V-VI and a brightly lit dark-skinned
person as IV (issue 16). The correction estimates the light from references
inside the face and divides it out before ITA is taken.

Methods (``ILLUMINATION``), each returning :class:`Correction` (``None`` when it
has no usable input):

``sclera``       the reference is the white of the eyes, between iris and lids
                 (the iris model's lid contour for the eye openings, its iris
                 points for the iris disc; the brightest unclipped pixels there,
                 :func:`sclera_colour`). Light model, in linear RGB, on samples of the skin at the
                 mesh's points (normals from the mesh's 3D points, a local plane
                 fit): ``I_c = K_c * s(n)``, ``s(n) = (a + b max(0, n.l)) / (a + b)``
                 (ambient plus one directional light: Lambert; ``l`` searched on a
                 grid of directions, ``a``, ``b`` by least squares), so ``K_c`` is the
                 skin's colour where it faces the light. The sclera, of known
                 albedo :data:`SCLERA_REF` and lit as the mesh's normal at the eyes
                 says, gives the light's colour and strength ``E_c``; the skin's
                 albedo is ``K_c / E_c``. Exposure, illuminant colour and shading
                 are all removed. Needs >= :data:`MIN_SCLERA_PX` eye-opening pixels,
                 so in practice a 512 px crop: at 128 px the sclera is a few pixels
                 mixed with lid and iris (bench/skin_light.py).
``sclera_flat``  the same reference without the shading model: a von Kries gain
                 (SCLERA_REF / sclera colour) on every skin pixel. Removes exposure
                 and colour, not a side light.
``grey_edge``    classic colour constancy (van de Weijer 2007, first order, p = 6):
                 the illuminant's colour is the Minkowski mean of image gradients
                 over the whole crop; fixes colour only, exposure is left as is.
``white_patch``  the illuminant is the 99th percentile per channel of the
                 crop (max-RGB); fixes colour and, roughly, exposure.

Confidence (0-1, recorded per crop with the method), both sclera methods: the
agreement of the two eyes (their colours within 15 %: 1, falling to 0 at 65 %;
one eye alone: :data:`ONE_EYE`, below curate's default threshold). Below
``min_confidence`` (curate) the raw ITA is kept and the crop flagged
``low_confidence`` rather than guessed. The shading fit's R^2 was a factor once
and was dropped: on SynthHeads under hard light at 512 px it said nothing about
the error (correlation -0.03 with |corrected - true ITA|), and it is low exactly
where the light is flat, where the shading model matters least. The share of
sclera pixels, another factor, became the gate :data:`MIN_SCLERA_PX`.

Honesty note: SynthHeads renders its sclera with exactly :data:`SCLERA_REF` and
lights it with exactly this model (no cast shadows), so on SynthHeads the sclera
method is judged on data made to its assumptions, and even there it is 12-14 deg
off per crop at 512 px. Real sclera vary (redness, yellowing with age), sit in the
eye socket under lids and lashes (less light than the cheek), and real light has
highlights and interreflections: on faces_open (200 px real photos) the sclera
reads far darker than :data:`SCLERA_REF` and every group's median ITA rises by
20-50 deg (README "Skin typing"), so no sclera method is a default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from fairsplat.faces.ita import ItaResult, ita_from_lab, rgb_to_lab
from fairsplat.faces.light import linear_to_srgb, srgb_to_linear

SCLERA_REF = (0.88, 0.86, 0.82)
"""sRGB albedo the sclera is assumed to have: a slightly warm white (SynthHeads renders exactly this)."""
MIN_SCLERA_PX = 100
"""Fewer eye-opening pixels outside the iris (both eyes together; half this in an eye for it to count) than
this: no reference. Measured on SynthHeads under hard light (bench/skin_light.py): every 128 px crop has
fewer (both eyes 20-100 px, nearly all of them mixed with lid or iris) and its corrected ITA was 29-45 deg
off on average; at 512 px (200-800 px) 12-14 deg. It was 6, which let the 128 px lid pixels through."""
ONE_EYE = 0.4
"""Confidence of a reference seen in one eye only: nothing to check it against, so below curate's default
``ita-min-confidence`` (0.5). It was 1.0: at 512 px the one-eye crops were the worst (SynthHeads hard light,
corrected ITA 20-60 deg off where the eye was half lid or half clipped)."""


@dataclass(frozen=True)
class Correction:
    method: str
    gains: np.ndarray  # [3] linear-RGB multipliers applied to every skin pixel (after ``shading``)
    confidence: float  # 0..1
    detail: str = ""
    albedo_linear: np.ndarray | None = None  # [3] the skin albedo estimated directly (sclera: shading removed)


# ----------------------------------------------------------------------------- references


def _poly_mask(shape: tuple[int, int], poly: np.ndarray) -> np.ndarray:
    canvas = Image.new("L", (shape[1], shape[0]), 0)
    ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in poly], fill=1)
    return np.asarray(canvas, bool)


EYE_LOOP = tuple(range(9)) + tuple(range(15, 8, -1))
"""The iris model's first 16 contour points as one closed loop: 0-8 are the lower lid from the outer to
the inner corner (mesh 33, 7, 163, 144, 145, 153, 154, 155, 133), 9-15 the upper lid (mesh 246, 161, 160,
159, 158, 157, 173), so the upper lid is walked back."""


def sclera_masks(shape: tuple[int, int], eyes: dict) -> dict[str, np.ndarray]:
    """Per eye, bool [H, W]: inside the eye opening, outside the iris disc (1.15 x its radius).

    The opening is the iris model's refined lid contour, not the mesh's eye loop: the 468-point mesh
    places the lids ~1-2 px too high at 128 px (its loop covered the upper lid and half the iris on
    SynthHeads, so the "sclera" was lid skin); MediaPipe's own pipeline replaces the mesh's eye points
    with this contour for the same reason."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    out = {}
    for side in ("right", "left"):
        opening = _poly_mask(shape, eyes[side].contour[list(EYE_LOOP)])
        ir = eyes[side].iris
        r = 1.15 * float(np.linalg.norm(ir[1:] - ir[0], axis=1).mean())
        disc = (xx - ir[0, 0]) ** 2 + (yy - ir[0, 1]) ** 2 <= r * r
        out[side] = opening & ~disc
    return out


WHITER_THAN_SKIN = 0.15
"""The sclera must be at least this much bluer than the skin in log(R/B) (natural log). Why log(R/B) and
not relative chroma: a coloured light multiplies every channel of both by the same gains, so the difference
of their log(R/B) is the albedos' alone (SynthHeads' skin is 0.30-0.72 above :data:`SCLERA_REF`, type I to
VI; lid skin of a closed eye is 0). The chroma test it replaces, pick chroma <= 0.6 x skin chroma, threw away
the true sclera under every warm light (near 2,700 K a white has relative chroma 0.7-0.8)."""


def _log_rb(lin: np.ndarray) -> np.ndarray:  # [..., 3] linear -> [...] log(R / B)
    return np.log(np.maximum(lin[..., 0], 1e-6) / np.maximum(lin[..., 2], 1e-6))


MAX_CLIPPED = 0.1
"""Share of the brightest sclera pixels (the ``top`` pool) allowed a clipped channel (>= 250). More, and
the sclera is saturated: its unclipped pixels are the dimmer ones, so the light would be underestimated
(at +1 EV SynthHeads' sclera clips, the reference read ~1.1 where the skin said 1.5-2.6, and types V-VI
came out 15-40 deg too light). Then there is no reference, rather than a wrong one. 0.1 leaves room for
a catchlight's rim on a real eye."""


def sclera_colour(rgb: np.ndarray, mask: np.ndarray, skin_linear: np.ndarray | None = None,
                  top: float = 0.3, max_clipped: float = MAX_CLIPPED) -> np.ndarray | None:  # fmt: skip
    """Linear RGB of the sclera: the mean of the ``top`` share of the mask's pixels by luminance (the
    sclera is the brightest thing in the eye opening; lids, lashes, iris rim and the mixed pixels at
    their edges are darker), clipped pixels left out of the mean. None when the sclera is saturated
    (more than ``max_clipped`` of that pool clipped) or when it is not whiter than skin: with
    ``skin_linear`` (the skin's median linear RGB [3]) given, the pool's log(R/B) must lie
    :data:`WHITER_THAN_SKIN` below the skin's (a closed eye has no sclera).

    Why luminance and not the whiteness (luminance over 1 + relative chroma) used before: relative
    chroma depends on the light, so under a warm light the least chromatic pixels were the grey or
    blue iris rim, not the sclera."""
    px = srgb_to_linear(rgb[mask].astype(np.float64) / 255.0)  # [N, 3]
    clipped = rgb[mask].max(1) >= 250  # [N] a clipped channel says nothing of the light
    if len(px) < 2:
        return None
    lum = px @ np.array([0.2126, 0.7152, 0.0722])
    pool = lum >= np.quantile(lum, 1.0 - top)
    if clipped[pool].mean() > max_clipped:
        return None
    pick = px[pool & ~clipped & (px.max(1) > 0.0)]
    if len(pick) == 0:
        return None
    if skin_linear is not None and float(_log_rb(skin_linear) - _log_rb(pick.mean(0))) < WHITER_THAN_SKIN:
        return None
    return pick.mean(0)


# ----------------------------------------------------------------------------- shading model


def vertex_normals(points: np.ndarray, k: int = 10) -> np.ndarray:  # [N, 3] -> [N, 3] unit, towards the camera
    """Normal of the plane through each point's ``k`` nearest neighbours (PCA); the mesh's z
    grows away from the camera, so normals are oriented to negative z and returned with z flipped
    (towards the camera = +z)."""
    d = np.linalg.norm(points[:, None] - points[None], axis=-1)
    nn = np.argsort(d, axis=1)[:, :k]  # [N, k]
    q = points[nn] - points[nn].mean(1, keepdims=True)  # [N, k, 3]
    _, _, vt = np.linalg.svd(q, full_matrices=False)
    n = vt[:, -1]  # [N, 3]
    n = np.where((n[:, 2] > 0)[:, None], -n, n)
    return n * np.array([1.0, -1.0, -1.0])  # image y down, z into the scene -> right-handed, camera at +z


@lru_cache(maxsize=1)
def light_directions(n: int = 400) -> np.ndarray:  # [n, 3] unit, within 95 deg of the camera axis
    i = np.arange(n) + 0.5
    z = 1.0 - i / n * (1.0 - np.cos(np.radians(95.0)))
    phi = np.pi * (1 + 5**0.5) * i
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], 1)


def fit_shading(y: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """Least squares ``y ~ a + b max(0, n.l)`` (a, b >= 0) over a grid of light directions.

    Returns (l [3], a, b, R^2)."""
    best = (np.array([0.0, 0.0, 1.0]), float(y.mean()), 0.0, -np.inf)
    tot = float(((y - y.mean()) ** 2).sum()) + 1e-12
    for l in light_directions():
        lam = np.clip(normals @ l, 0.0, None)
        a_mat = np.stack([np.ones_like(lam), lam], 1)
        coef, *_ = np.linalg.lstsq(a_mat, y, rcond=None)
        if coef[0] < 0 or coef[1] < 0:
            continue
        r2 = 1.0 - float(((a_mat @ coef - y) ** 2).sum()) / tot
        if r2 > best[3]:
            best = (l, float(coef[0]), float(coef[1]), r2)
    return best


def _sample(rgb: np.ndarray, pts: np.ndarray) -> np.ndarray:  # [N, 2] -> [N, 3] uint8-scale floats (3x3 mean)
    h, w = rgb.shape[:2]
    out = []
    for x, y in pts:
        xi, yi = int(round(x)), int(round(y))
        patch = rgb[max(yi - 1, 0) : min(yi + 2, h), max(xi - 1, 0) : min(xi + 2, w)].reshape(-1, 3)
        out.append(patch.mean(0) if len(patch) else np.full(3, np.nan))
    return np.array(out, np.float64)


# ----------------------------------------------------------------------------- methods


@dataclass(frozen=True)
class FaceInput:
    rgb: np.ndarray  # uint8 [H, W, 3]
    skin: np.ndarray  # bool [H, W] skin mask (labels or landmarks)
    mesh: np.ndarray | None = None  # [468, 3] MediaPipe mesh, image px
    eyes: dict | None = None  # faces.mediapipe.iris() output


def _sclera_reference(x: FaceInput) -> tuple[np.ndarray, float, str] | None:
    """(sclera linear RGB [3], eye agreement 0..1, detail) or None."""
    if x.mesh is None or x.eyes is None:
        return None
    masks = sclera_masks(x.rgb.shape[:2], x.eyes)
    skin = srgb_to_linear(x.rgb[x.skin].astype(np.float64) / 255.0)
    skin = skin[(skin.max(1) > 0) & (x.rgb[x.skin].max(1) < 250)]
    skin_linear = np.median(skin, axis=0) if len(skin) else None
    cols = {s: sclera_colour(x.rgb, m, skin_linear) for s, m in masks.items() if m.sum() >= MIN_SCLERA_PX // 2}
    cols = {s: c for s, c in cols.items() if c is not None}
    n = int(sum(masks[s].sum() for s in cols))
    if not cols or n < MIN_SCLERA_PX:
        return None
    c = np.mean(list(cols.values()), axis=0)
    agree = ONE_EYE
    if len(cols) == 2:
        ratio = np.max(np.abs(np.log(cols["left"] + 1e-6) - np.log(cols["right"] + 1e-6)))
        agree = float(np.clip(1.0 - (ratio - 0.15) / 0.5, 0.0, 1.0))
    return c, agree, f"{n} sclera px, {len(cols)} eye(s)"


def sclera_flat(x: FaceInput) -> Correction | None:
    ref = _sclera_reference(x)
    if ref is None:
        return None
    c, conf, detail = ref
    return Correction("sclera_flat", srgb_to_linear(np.array(SCLERA_REF)) / np.maximum(c, 1e-6), conf, detail)


def sclera_shaded(x: FaceInput) -> Correction | None:
    ref = _sclera_reference(x)
    if ref is None:
        return None
    c, conf, detail = ref
    from fairsplat.faces.mesh68 import LEFT_EYE, RIGHT_EYE

    pts = x.mesh[:, :2]
    h, w = x.skin.shape
    xi, yi = np.clip(np.round(pts[:, 0]).astype(int), 0, w - 1), np.clip(np.round(pts[:, 1]).astype(int), 0, h - 1)
    on_skin = x.skin[yi, xi]
    normals = vertex_normals(x.mesh)
    lin = srgb_to_linear(_sample(x.rgb, pts) / 255.0)  # [468, 3]
    usable = on_skin & np.isfinite(lin).all(1) & (lin.max(1) < srgb_to_linear(250 / 255)) & (lin.max(1) > 1e-4)
    if usable.sum() < 30:
        return None
    lum = lin[usable] @ np.array([0.2126, 0.7152, 0.0722])
    l, a, b, r2 = fit_shading(lum, normals[usable])
    s = (a + b * np.clip(normals @ l, 0.0, None)) / max(a + b, 1e-9)  # [468] shading, 1 = facing the light
    k_c = np.array([np.median(lin[usable, ch] / np.maximum(s[usable], 1e-3)) for ch in range(3)])
    eye_n = normals[list(RIGHT_EYE) + list(LEFT_EYE)].mean(0)
    eye_n /= np.linalg.norm(eye_n) + 1e-12
    s_eye = (a + b * max(0.0, float(eye_n @ l))) / max(a + b, 1e-9)
    e_c = c / (srgb_to_linear(np.array(SCLERA_REF)) * max(s_eye, 1e-3))  # light colour x strength
    albedo = k_c / np.maximum(e_c, 1e-9)
    return Correction("sclera", 1.0 / np.maximum(e_c, 1e-9), conf,
                      f"{detail}; shading R2 {r2:.2f}, ambient share {a / max(a + b, 1e-9):.2f}", albedo)  # fmt: skip


def grey_edge(x: FaceInput, p: float = 6.0) -> Correction | None:
    lin = srgb_to_linear(x.rgb / 255.0)
    gy, gx = np.gradient(lin, axis=(0, 1))
    mag = np.sqrt(gx**2 + gy**2).reshape(-1, 3)
    e = (mag**p).mean(0) ** (1 / p)
    if not np.all(e > 0):
        return None
    e = e / (e @ np.array([0.2126, 0.7152, 0.0722]))
    return Correction("grey_edge", 1.0 / e, 1.0, "first-order grey edge, p=6")


def white_patch(x: FaceInput, q: float = 99.0) -> Correction | None:
    lin = srgb_to_linear(x.rgb / 255.0).reshape(-1, 3)
    e = np.percentile(lin, q, axis=0)
    if not np.all(e > 0):
        return None
    return Correction("white_patch", 1.0 / e, 1.0, f"{q:g}th percentile per channel")


ILLUMINATION: dict[str, Callable[[FaceInput], Correction | None]] = {
    "sclera": sclera_shaded, "sclera_flat": sclera_flat, "grey_edge": grey_edge, "white_patch": white_patch,
}  # fmt: skip


def corrected_ita(x: FaceInput, corr: Correction, *, trim: tuple[float, float] = (5.0, 95.0), min_pixels: int = 50) -> ItaResult | None:
    """ITA after ``corr``: the shaded method's albedo directly, else the median L*, b* of the skin
    pixels with the gains applied in linear RGB (clipped pixels left out first)."""
    if corr.albedo_linear is not None:
        srgb = linear_to_srgb(corr.albedo_linear)
        lab = rgb_to_lab(np.clip(srgb, 0, 1)[None])[0]
        n = int(x.skin.sum())
        return ItaResult(float(ita_from_lab(lab[0], lab[2])), float(lab[0]), float(lab[1]), float(lab[2]), n, n)
    px = x.rgb[x.skin]
    ok = ((px >= 250).sum(1) < 2) & (px.max(1) > 5)
    px = px[ok]
    if len(px) < min_pixels:
        return None
    lin = srgb_to_linear(px / 255.0) * corr.gains
    lab = rgb_to_lab(np.clip(linear_to_srgb(lin), 0, 1)[None])[0]
    lo, hi = np.percentile(lab[:, 0], trim)
    lab = lab[(lab[:, 0] >= lo) & (lab[:, 0] <= hi)]
    if len(lab) < min_pixels:
        return None
    L, a, b = np.median(lab, axis=0)
    return ItaResult(float(ita_from_lab(L, b)), float(L), float(a), float(b), int(x.skin.sum()), len(lab))
