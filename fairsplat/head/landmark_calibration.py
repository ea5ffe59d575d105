"""Calibrating the procedural head's iBUG-68 embedding to the 300-W annotation convention.

Why: FLAME's landmark embedding was fitted to human iBUG annotations; the
procedural head's was placed by hand from anatomy (``procedural_landmarks``).
The two conventions differ in ways that matter to a tracker fed by a detector:
300-W puts the brows on their upper edge, the outer lips on the vermilion
border, the jaw on the face contour. The only proxy for "where a human
annotator puts iBUG points" available offline is a detector trained on 300-W
(dlib's 68-point predictor), so each landmark is moved to the surface point
whose projection best agrees with dlib on SynthHeads renders, where the
FLAME parameters and camera of every image are known exactly.

How (all in the template's frame, so the result is a fixed table):

- candidates: a ``step`` (0.25 mm) frontal grid; each grid point is the
  front-most head-grid face under it (:func:`frontal_map`, the same pick the
  embedding itself uses), so a candidate is a frontal (x, y) target;
- each landmark may only move inside its anatomical region (:data:`RULES`,
  :func:`allowed`): brows on brow faces, lips on the vermilion of their own
  lip, inner lips within 2 mm of the contact line, eye points on the visible
  lid margin of their eye, the nose on the nose, the jaw on skin, in front of
  the ears and not above the outer canthus, midline points on the midline,
  the nose tip pinned to the pronasale. Where dlib disagrees with anatomy on
  these renders the region stops it: it puts the lower lip on the
  labiomental shadow (~4 mm below the vermilion border), the inner lower lip
  4 mm below the contact line, the nose tip 4 mm up the bridge, the brows
  ~2 mm above the brow hair, the inner eye corner beyond the visible eye,
  and the first jaw point above the eye and behind the ear;
- cost of a candidate: mean over images of the pixel distance between its
  projection (the row's ground-truth shape, expression, pose and camera) and
  dlib's point, divided by a fixed inter-ocular distance (the anatomical
  embedding's, so moving the eye corners cannot shrink the yardstick), and
  truncated at ``tau`` so consistent detector failures (eyes on the brows in
  turned heads) do not drag a landmark (:func:`candidate_costs`);
- mirror pairs (:data:`MIRROR`) share one solution, mirrored: the head is
  exactly symmetric, and pairing halves the noise.

The script that runs this on SynthHeads and writes the committed table is
``fairsplat/head/calibrate_landmarks.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fairsplat.head import procedural_surface as surf
from fairsplat.head.procedural_landmarks import MARGIN_R, TIE_Z
from fairsplat.head.procedural_surface import LAYOUT
from fairsplat.labels import IBUG68_GROUPS, LABEL

# iBUG-68 index of each landmark's mirror image (subject's left <-> right).
MIRROR: tuple[int, ...] = (
    *range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, 35, 34, 33, 32, 31,
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65,
)  # fmt: skip
UPPER_LIP = (49, 50, 51, 52, 53, 61, 62, 63)
LOWER_LIP = (55, 56, 57, 58, 59, 65, 66, 67)
PINNED = (30,)  # the nose tip is the pronasale by definition (the most anterior point): never moved
EYE_BAND = (0.80, MARGIN_R)
"""Almond radius band of the eye points. 1 is where lid meets eyeball, but the lid splats overlap the
eyeball by about 0.1 in renders, so the visible margin is at MARGIN_R (0.9); further out (dlib would
go to 1.0 and beyond) the inner corner leaves the visible eye in 60-80 % of frontal renders."""
CONTACT_MM = 2.0  # inner-lip points stay this close to the lip contact line


@dataclass(frozen=True)
class Rule:
    """Where a group's landmarks may go: faces with one of ``labels``, within ``window_mm`` of the anatomical target."""

    labels: tuple[str, ...]
    window_mm: float


RULES: dict[str, Rule] = {
    "jaw": Rule(("skin",), 20.0),  # the contour: up to 2 cm (the face outline is wide and soft here)
    "r_brow": Rule(("r_brow",), 12.0),
    "l_brow": Rule(("l_brow",), 12.0),
    "nose_bridge": Rule(("nose",), 12.0),
    "nostrils": Rule(("nose",), 12.0),
    "r_eye": Rule(("skin",), 12.0),  # lid skin, further limited to EYE_BAND
    "l_eye": Rule(("skin",), 12.0),
    "outer_lip": Rule(("u_lip", "l_lip"), 12.0),  # each point further limited to its own lip
    "inner_lip": Rule(("u_lip", "l_lip"), 12.0),
}
"""iBUG group -> region rule (the groups of fairsplat.labels.IBUG68_GROUPS)."""


def group_of(k: int) -> str:
    return next(g for g, (a, b) in IBUG68_GROUPS.items() if a <= k < b)


@dataclass(frozen=True)
class FrontalMap:
    """Front-most head-grid face under each point of a frontal grid (x symmetric about 0)."""

    xs: np.ndarray  # [W] metres, xs[W // 2] == 0, xs[::-1] == -xs
    ys: np.ndarray  # [H] metres
    face: np.ndarray  # [H, W] face id into the model's faces (-1: none)
    bary: np.ndarray  # [H, W, 3]
    z: np.ndarray  # [H, W] depth of that surface point (-inf: none)

    def points(self, verts: np.ndarray, faces: np.ndarray) -> np.ndarray:  # [H, W, 3] surface points (NaN: none)
        p = (verts[faces[np.maximum(self.face, 0)]] * self.bary[..., None]).sum(-2)
        return np.where((self.face >= 0)[..., None], p, np.nan)


def frontal_map(
    verts: np.ndarray,  # [V, 3] template
    faces: np.ndarray,  # [F, 3]
    grid_faces: np.ndarray,  # [G] candidate face ids
    step: float = 0.00025,
    x_max: float = 0.085,
    y_range: tuple[float, float] = (-0.115, 0.075),
) -> FrontalMap:
    """Z-buffer of the candidate faces seen from +Z: the same answer as ``frontal_pick`` at every grid point."""
    n = int(round(x_max / step))
    xs = np.arange(-n, n + 1) * step
    ys = np.arange(int(np.floor(y_range[0] / step)), int(np.ceil(y_range[1] / step)) + 1) * step
    face = np.full((len(ys), len(xs)), -1, np.int64)
    bary = np.zeros((len(ys), len(xs), 3))
    depth = np.full((len(ys), len(xs)), -np.inf)
    for f in grid_faces:
        tri = verts[faces[f]]  # [3, 3]
        a, b, c = tri[:, :2]
        det = (b[0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (b[1] - a[1])
        i0, i1 = np.searchsorted(xs, tri[:, 0].min() - 1e-12), np.searchsorted(xs, tri[:, 0].max() + 1e-12, "right")
        j0, j1 = np.searchsorted(ys, tri[:, 1].min() - 1e-12), np.searchsorted(ys, tri[:, 1].max() + 1e-12, "right")
        if abs(det) <= 1e-14 or i0 >= i1 or j0 >= j1:
            continue
        gx, gy = np.meshgrid(xs[i0:i1], ys[j0:j1])
        l1 = ((gx - a[0]) * (c[1] - a[1]) - (gy - a[1]) * (c[0] - a[0])) / det
        l2 = ((gy - a[1]) * (b[0] - a[0]) - (gx - a[0]) * (b[1] - a[1])) / det
        lam = np.stack([1.0 - l1 - l2, l1, l2], -1)  # [h, w, 3]
        inside = (lam >= -1e-9).all(-1)
        z = lam @ tri[:, 2]
        win = depth[j0:j1, i0:i1]
        closer = inside & (z > win + TIE_Z)  # ties (shared edges) keep the earlier, lower face id, as in frontal_pick
        win[closer] = z[closer]
        face[j0:j1, i0:i1][closer] = f
        bary[j0:j1, i0:i1][closer] = lam[closer]
    bary = np.clip(bary, 0.0, None)
    bary /= np.maximum(bary.sum(-1, keepdims=True), 1e-12)
    return FrontalMap(xs, ys, face, bary, depth)


def allowed(
    k: int, fmap: FrontalMap, regions: np.ndarray, anatomical: np.ndarray, eyes: np.ndarray, ear_front_z: float
) -> np.ndarray:
    """[H, W] bool: grid points landmark ``k`` may move to (see the module doc and :data:`RULES`).

    ``regions`` [F] face labels, ``anatomical`` [68, 2] the hand-placed targets,
    ``eyes`` [2, 3] eyeball centres (left, +X, first), ``ear_front_z`` see :func:`ear_front`.
    """
    g = group_of(k)
    rule = RULES[g]
    x, y = np.meshgrid(fmap.xs, fmap.ys)
    lab = np.where(fmap.face >= 0, regions[np.maximum(fmap.face, 0)], -1)
    labels = rule.labels
    if k in UPPER_LIP:
        labels = ("u_lip",)
    elif k in LOWER_LIP:
        labels = ("l_lip",)
    m = np.isin(lab, [LABEL[n] for n in labels])
    m &= np.hypot(x - anatomical[k, 0], y - anatomical[k, 1]) <= rule.window_mm / 1000
    step = fmap.xs[1] - fmap.xs[0]
    if k in PINNED:
        m &= np.hypot(x - anatomical[k, 0], y - anatomical[k, 1]) <= 0.5 * step
    if MIRROR[k] == k:
        m &= np.abs(x) < 0.5 * step
    if g in ("r_eye", "l_eye"):
        e = eyes[0 if g == "l_eye" else 1]
        r = surf.almond_radius((x - e[0]) * np.sign(e[0]), y - e[1])
        m &= (r >= EYE_BAND[0]) & (r <= EYE_BAND[1]) & (np.sign(x) == np.sign(e[0]))
    if g == "inner_lip":
        m &= np.abs(y - LAYOUT.mouth_y) <= CONTACT_MM / 1000
    if k in (0, 16):  # the jaw contour starts level with the outer canthus or below it (300-W)
        m &= y <= anatomical[36 if k == 0 else 45, 1]
    if g == "jaw":  # ... and runs in front of the ears (dlib follows the cranium's outline behind them here)
        m &= fmap.z > ear_front_z
    return m


def ear_front(verts: np.ndarray, faces: np.ndarray, regions: np.ndarray) -> float:
    """Depth (z) of the front-most vertex of an ear face: the jaw contour stays in front of it."""
    ears = np.isin(regions, [LABEL["l_ear"], LABEL["r_ear"]])
    assert ears.any(), "landmark calibration: the head has no ear faces"
    return float(verts[faces[ears]][..., 2].max())


def project(
    points: np.ndarray,  # [N, C, 3] world
    viewmat: np.ndarray,  # [N, 4, 4] world -> camera (OpenCV)
    K: np.ndarray,  # [N, 3, 3]
) -> np.ndarray:  # [N, C, 2] pixels (the convention of K; SynthHeads: centres at +0.5)
    cam = np.einsum("nij,ncj->nci", viewmat[:, :3, :3], points) + viewmat[:, None, :3, 3]
    uv = np.einsum("nij,ncj->nci", K, cam)
    return uv[..., :2] / uv[..., 2:3]


def candidate_costs(
    posed: np.ndarray,  # [N, V, 3] posed vertices of each image
    faces: np.ndarray,  # [F, 3]
    cand_face: np.ndarray,  # [C] face ids
    cand_bary: np.ndarray,  # [C, 3]
    viewmat: np.ndarray,  # [N, 4, 4]
    K: np.ndarray,  # [N, 3, 3]
    target: np.ndarray,  # [N, 2] detected pixels of one landmark
    scale: np.ndarray,  # [N] inter-ocular distance, pixels
    tau: float = np.inf,
    chunk: int = 2048,
) -> np.ndarray:  # [C] mean normalised reprojection distance
    """Mean over images of min(|project(candidate) - target| / scale, tau), chunked over candidates (memory).

    ``tau`` truncates the loss: a detection further than ``tau`` inter-ocular
    distances from a candidate counts the same however far it is, so a
    detector failure (dlib putting an eye on the brow in a turned head) does
    not drag the landmark; the estimate follows the detections that agree."""
    n, c = len(target), len(cand_face)
    assert posed.shape[0] == n and viewmat.shape == (n, 4, 4) and K.shape == (n, 3, 3) and scale.shape == (n,)
    assert cand_bary.shape == (c, 3)
    out = np.empty(c)
    for s in range(0, c, chunk):
        tri = posed[:, faces[cand_face[s : s + chunk]]]  # [N, c, 3 corners, 3]
        pts = np.einsum("ck,nckd->ncd", cand_bary[s : s + chunk], tri)  # [N, c, 3]
        d = np.linalg.norm(project(pts, viewmat, K) - target[:, None], axis=-1)  # [N, c]
        out[s : s + chunk] = np.minimum(d / scale[:, None], tau).mean(0)
    return out


def solve(
    fmap: FrontalMap,
    masks: list[np.ndarray],  # 68 x [H, W] bool (allowed)
    cost: callable,  # (k, face [C], bary [C, 3]) -> [C]
) -> tuple[np.ndarray, np.ndarray]:  # targets [68, 2] metres, cost at the optimum [68]
    """Per mirror pair, the grid point minimising cost(k) + cost(mirror k, mirrored point) over both masks."""
    assert len(masks) == 68
    targets, best = np.full((68, 2), np.nan), np.full(68, np.nan)
    for k in range(68):
        km = MIRROR[k]
        if km < k:
            continue
        both = masks[k] & masks[km][:, ::-1]  # [H, W]: a point for k whose mirror is allowed for km
        if not both.any():
            raise RuntimeError(f"landmark calibration: no allowed point for landmark {k} (and mirror {km})")
        jj, ii = np.nonzero(both)
        total = cost(k, fmap.face[jj, ii], fmap.bary[jj, ii])
        if km != k:
            iim = len(fmap.xs) - 1 - ii  # mirrored column
            total = 0.5 * (total + cost(km, fmap.face[jj, iim], fmap.bary[jj, iim]))
        j = int(np.argmin(total))
        targets[k] = fmap.xs[ii[j]], fmap.ys[jj[j]]
        targets[km] = -fmap.xs[ii[j]], fmap.ys[jj[j]]
        best[k] = best[km] = total[j]
    return targets, best
