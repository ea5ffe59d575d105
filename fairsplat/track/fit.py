"""Batched FLAME fitting to 68 2D landmarks: one vectorised optimisation for a whole batch.

Stages (coarse to fine):
  0. closed-form rigid start (:func:`fairsplat.track.camera.rigid_init`, a
     batched weighted POSIT) from the mean-shape, neutral template;
  1. Levenberg-Marquardt on rotation and translation only;
  2. LM on everything: shape (shared per subject), expression, jaw, neck,
     eyes, rotation, translation, with priors and, for clips, smoothness.

Why LM (``solver.py``) rather than Adam or LBFGS: the variables are few and
strongly coupled, so Gauss-Newton steps converge in ~15 iterations where Adam
needs thousands; and each subject is solved as its own block with its own
damping, so a sample fitted in a batch of 64 gets the result it gets alone
(tests check this), which LBFGS's shared line search would not give.

Parameterisation: the head turns about the template's landmark centroid (not
FLAME's root joint at the neck, ~10 cm behind the face, which couples
rotation with translation); translation is ``(x/z, y/z, log z)`` of that pivot
in the camera (image position and scale). :meth:`Fitter._to_flame` converts to
FLAME's ``pose``/``transl`` exactly, for ``viewmat = flip_viewmat()``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from fairsplat.head.lbs import rodrigues
from fairsplat.labels import IBUG68_GROUPS
from fairsplat.track.camera import FLIP, matrix_to_axis_angle, project, rigid_init
from fairsplat.track.contour import JAW as JAW_LMK, N_JAW, contour_lines, select_contour
from fairsplat.track.landmarks import LandmarkFlame
from fairsplat.track.priors import PriorWeights
from fairsplat.track.robust import ROBUST, irls_weights
from fairsplat.track.solver import Terms, solve

# Frame parameter layout (x): rotation, (x/z, y/z), log z, then FLAME's non-global joints, then expression.
ROT, TXY, LOGZ, NECK, JAW, EYES = slice(0, 3), slice(3, 5), slice(5, 6), slice(6, 9), slice(9, 12), slice(12, 18)
N_FIXED = 18  # frame dims before the expression coefficients
Contour = tuple[Tensor, Tensor, Tensor]  # jaw silhouette edges: vertex ids [N, 17, 2], blend [N, 17], used [N, 17] bool


@dataclass(frozen=True)
class FitConfig:
    n_shape: int | None = None
    """Shape components fitted (None: all the head has); the rest stay 0."""
    n_expr: int | None = None
    """Expression components fitted (None: all)."""
    rigid_iters: int = 4
    """LM iterations on rotation and translation only, after the closed-form start."""
    iters: int = 15
    """LM iterations on everything (converged to ~1e-4 px on noise-free data)."""
    jaw_line_weight: float = 0.3
    """Weight of the 17 jaw-line landmarks: detectors put them on the silhouette,
    which slides over the face as the head turns (FLAME embeds them at fixed points)."""
    robust: str = "l2"
    """Penalty on each landmark's residual in the full stage (``robust.ROBUST``):
    ``l2`` is plain least squares; a redescending one (``geman_mcclure``,
    ``tukey``) stops detector failures from pulling the fit."""
    robust_scale: float = 0.1
    """Where the robust penalty bends, in fitted inter-ocular distances."""
    rigid_robust: str = "l2"
    """Penalty in the rigid stage; a convex one (``huber``) there gives the
    non-convex full-stage penalty a start that outliers have not bent."""
    contour: bool = False
    """Dynamic jaw contour (``contour.py``): landmarks 0-16 correspond to the mesh's
    current silhouette near their embedded point, re-chosen every iteration."""
    contour_radius: float = 0.03
    """How far (m) a jaw landmark may slide from its embedded point along its line."""
    expr_range: tuple[float, float] | None = None
    """Hard box on expression coefficients (projected steps, ``solver.py``): for a head whose
    expressions are blendshape weights (the procedural head's named expressions),
    ``(0, hi)``; None for a PCA basis such as FLAME's, whose signs mean nothing."""
    priors: PriorWeights = field(default_factory=PriorWeights)
    smooth_pose: float = 0.0
    """Second-difference weight on global, neck and jaw rotation (clips only)."""
    smooth_expr: float = 0.0
    """Second-difference weight on expression coefficients (clips only)."""
    smooth_transl: float = 0.0
    """Second-difference weight on (x/z, y/z, log z) of the head (clips only)."""


@dataclass
class FitResult:
    shape: Tensor  # [B, S] (per sample; equal rows within a subject)
    expr: Tensor  # [B, E]
    pose: Tensor  # [B, 15] FLAME axis-angle
    transl: Tensor  # [B, 3] FLAME translation (render with camera.flip_viewmat())
    K: Tensor  # [B, 3, 3]
    landmarks2d: Tensor  # [B, 68, 2] fitted, pixels
    landmarks3d: Tensor  # [B, 68, 3] fitted, camera frame, metres
    data_loss: Tensor  # [B] weighted mean squared landmark residual, in face-size units
    seconds: float  # wall time of the optimisation


def landmark_weights(visible: Tensor, jaw_line_weight: float) -> Tensor:  # [B, 68] -> [B, 68]
    """Visibility (0/1 or soft) times the per-landmark weight."""
    w = torch.ones(68, dtype=torch.float32)
    w[slice(*IBUG68_GROUPS["jaw"])] = jaw_line_weight
    return visible.to(torch.float32) * w


def face_scale(targets: Tensor, weights: Tensor) -> Tensor:  # [B, L, 2], [B, L] -> [B]
    """RMS distance of the weighted targets from their centroid: the face's size in pixels."""
    wsum = weights.sum(1, keepdim=True).clamp_min(1e-9)  # [B, 1]
    c = (weights[..., None] * targets).sum(1) / wsum  # [B, 2]
    var = (weights * ((targets - c[:, None]) ** 2).sum(-1)).sum(1) / wsum[:, 0]
    return torch.where(weights.sum(1) > 0, var.sqrt().clamp_min(1e-3), torch.ones_like(var))


class Fitter:
    """Fits one head model; reuse it across batches (it holds the landmark model)."""

    def __init__(self, model: LandmarkFlame, cfg: FitConfig = FitConfig(), points: LandmarkFlame | None = None) -> None:
        """``model``: the head's 68 landmarks (what is reported); ``points``: what the targets are, when other
        points than those (MediaPipe's 468 mesh points embedded on the head: ``dense.DenseFitter``)."""
        self.model, self.cfg = model, cfg
        self.points = model if points is None else points
        self.n_points = self.points.n_points
        self.n_inputs = self.n_points  # points a caller passes (a subclass may fit a subset of them)
        self.eyes = (36, 45)  # outer eye corners among the points: the robust penalty's yardstick
        self.base_weight = landmark_weights(torch.ones(1, 68), cfg.jaw_line_weight)[0] if points is None else torch.ones(self.n_points)
        for key in (cfg.robust, cfg.rigid_robust):
            if key not in ROBUST:
                raise ValueError(f"fit: robust penalty {key!r} not in {sorted(ROBUST)}")
        self.n_shape = min(cfg.n_shape or model.n_shape, model.n_shape)
        self.n_expr = min(cfg.n_expr or model.n_expr, model.n_expr)
        self.dx = N_FIXED + self.n_expr
        with torch.no_grad():
            self.template = self.points(torch.zeros(1, 0), torch.zeros(1, 0), torch.zeros(1, 3 * model.n_joints))[0][0]
        self.centre = self.template.mean(0)  # [3] pivot of the fitted rotation
        contour = cfg.contour and points is None  # the jaw contour is a 68-point notion
        self.lines = contour_lines(model.head, self.template.double().numpy(), cfg.contour_radius) if contour else None
        if self.lines is not None:  # candidates' vertices, each posed once per selection
            self.line_vertices, inverse = torch.unique(self.lines.vertex_ids, return_inverse=True)  # [U], [17, C, 2]
            self.line_index = inverse

    # ---- the model seen through the camera ---------------------------------
    def landmarks(self, z: Tensor, K: Tensor, contour: Contour | None = None,
                  model: LandmarkFlame | None = None) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        """z [N, Dx + S] -> pixels [N, L, 2], camera points [N, L, 3], rest root joint [N, 3].

        ``contour``: jaw points on chosen silhouette edges instead of the embedding
        (what the detector sees, ``contour_at``); without it, the embedded landmarks (what is reported).
        ``model``: whose points (default: the fitted ones, ``self.points``)."""
        x, shape, pose = self.split(z)
        lmk, joints = (self.points if model is None else model)(shape, x[:, N_FIXED:], pose)  # [N, L, 3] head frame
        if contour is not None:
            ids, t, use = contour  # [B, 17, 2], [B, 17], [B, 17] (B divides N)
            n = z.shape[0]  # a multiple of the contour's batch (the solver's Jacobian tiles it)
            ends = self.model.vertices(shape, x[:, N_FIXED:], pose, ids.reshape(ids.shape[0], -1)).reshape(n, *ids.shape[1:], 3)
            rep = n // ids.shape[0]
            t, use = t.repeat(rep, 1), use.repeat(rep, 1)
            edge = ends[:, :, 0] + t[..., None] * (ends[:, :, 1] - ends[:, :, 0])  # [N, 17, 3]
            jaw = torch.where(use[..., None], edge, lmk[:, JAW_LMK.start : JAW_LMK.stop])
            lmk = torch.cat([jaw, lmk[:, JAW_LMK.stop :]], 1)
        cam = self._camera(x, lmk)  # [N, L, 3]
        return project(cam, K), cam, joints[:, 0]

    def split(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # [N, Dx + S] -> x [N, Dx], shape [N, S], pose [N, 3J]
        """The head model's inputs at z: the fitted x, the shape, and the pose with the global rotation zeroed
        (the fit applies it as the camera, ``_camera``); the expression is ``x[:, N_FIXED:]``."""
        x = z[:, : self.dx]
        return x, z[:, self.dx :], torch.cat([torch.zeros_like(x[:, ROT]), x[:, NECK], x[:, JAW], x[:, EYES]], 1)

    def _camera(self, x: Tensor, points: Tensor) -> Tensor:  # [N, Dx], [N, M, 3] head frame -> [N, M, 3] camera
        R = FLIP @ rodrigues(x[:, ROT])  # [N, 3, 3] head -> camera
        return (points - self.centre) @ R.transpose(1, 2) + _t_cam(x)[:, None]

    @torch.no_grad()
    def contour_at(self, z: Tensor, K: Tensor) -> Contour:
        """Each jaw landmark's silhouette edge at parameters z [B, D] (``contour.select_contour``)."""
        b, lines = z.shape[0], self.lines
        x, shape, pose = self.split(z)
        verts = self.model.vertices(shape, x[:, N_FIXED:], pose, self.line_vertices[None])  # [B, U, 3]
        pix = project(self._camera(x, verts), K)  # [B, U, 2]
        ends = pix[:, self.line_index]  # [B, 17, C, 2, 2]
        cand = ends[..., 0, :] + lines.t[None, ..., None] * (ends[..., 1, :] - ends[..., 0, :])  # [B, 17, C, 2]
        choice = select_contour(cand, lines.valid, self.landmarks(z, K)[0])  # [B, 17]
        k = torch.arange(N_JAW)[None].expand(b, -1)
        c = choice.clamp_min(0)
        return lines.vertex_ids[k, c], lines.t[k, c], choice >= 0

    reweights = False
    """Whether :meth:`point_weights` changes with the fit (a subclass's visibility weights)."""

    def point_weights(self, z: Tensor, K: Tensor) -> Tensor:  # -> [B, L]
        """Per-point weights at the current fit, refreshed every iteration when ``reweights``."""
        return torch.ones(z.shape[0], self.n_points)

    def _to_flame(self, x: Tensor, root: Tensor) -> tuple[Tensor, Tensor]:  # -> pose [B, 15], transl [B, 3]
        """FLAME turns the head about the rest root joint J0: world = R (L - J0) + J0 + transl.
        We fitted camera = FLIP R (L - c) + t. Equal for all L when transl = FLIP t - R (c - J0) - J0."""
        R = rodrigues(x[:, ROT])  # [B, 3, 3]
        transl = _t_cam(x) @ FLIP - ((self.centre - root)[:, None] @ R.transpose(1, 2))[:, 0] - root
        return torch.cat([x[:, ROT], x[:, NECK], x[:, JAW], x[:, EYES]], 1), transl

    @torch.no_grad()
    def from_flame(self, shape: Tensor, expr: Tensor, pose: Tensor, transl: Tensor) -> Tensor:  # -> z [B, Dx + S]
        """FLAME parameters -> the fitter's own (inverse of ``_to_flame``): t = FLIP (transl + R (c - J0) + J0).

        Lets tests and callers evaluate the fitter's model (``landmarks``, ``contour_at``) at known heads."""
        b = pose.shape[0]
        shape = torch.cat([shape, shape.new_zeros(b, max(0, self.n_shape - shape.shape[1]))], 1)[:, : self.n_shape]
        expr = torch.cat([expr, expr.new_zeros(b, max(0, self.n_expr - expr.shape[1]))], 1)[:, : self.n_expr]
        root = self.model(shape, expr, torch.zeros(b, 3 * self.model.n_joints))[1][:, 0]  # [B, 3] rest root joint
        R = rodrigues(pose[:, 0:3])  # [B, 3, 3]
        t = (transl + ((self.centre - root)[:, None] @ R.transpose(1, 2))[:, 0] + root) @ FLIP  # [B, 3]
        x = torch.zeros(b, self.dx)
        x[:, ROT], x[:, NECK], x[:, JAW], x[:, EYES] = pose[:, 0:3], pose[:, 3:6], pose[:, 6:9], pose[:, 9:15]
        x[:, TXY], x[:, LOGZ], x[:, N_FIXED:] = t[:, :2] / t[:, 2:], t[:, 2:].log(), expr
        return torch.cat([x, shape], 1)

    # ---- fitting ------------------------------------------------------------
    def fit(
        self,
        targets: Tensor,  # [B, L, 2] pixels (centres at +0.5); L = n_points (68 unless dense)
        K: Tensor,  # [B, 3, 3]
        visible: Tensor,  # [B, L] 1 = use, 0 = ignore (all 0: a frame with no face)
        subjects: Tensor | None = None,  # [B] long: rows with one id share one shape
        sequence: Tensor | None = None,  # [B] long clip id; a clip's rows in frame order, one subject per clip
    ) -> FitResult:
        b = targets.shape[0]
        n = self.n_points
        assert targets.shape == (b, n, 2) and K.shape == (b, 3, 3) and visible.shape == (b, n), (targets.shape, visible.shape)
        t0 = time.perf_counter()
        targets, K = targets.float(), K.float()
        weights = visible.to(torch.float32) * self.base_weight  # [B, L]
        subjects = torch.arange(b) if subjects is None else torch.unique(subjects, return_inverse=True)[1]
        terms = self._terms(_triples(sequence, subjects))
        x = self._initialise(targets, K, weights, subjects)  # [B, Dx]
        y = torch.zeros(int(subjects.max()) + 1, self.n_shape)  # [G, S]
        res = self._residual(targets, K, weights)
        rigid = torch.zeros(self.dx + self.n_shape, dtype=torch.bool)
        rigid[:6] = True
        with torch.no_grad():
            upd = self._update(targets, K, weights, subjects, self.cfg.rigid_robust)
            x, y = solve(res, x, y, subjects, terms, self.cfg.rigid_iters, active=rigid, update=upd)
            upd = self._update(targets, K, weights, subjects, self.cfg.robust)
            x, y = solve(res, x, y, subjects, terms, self.cfg.iters, update=upd)
            z = torch.cat([x, y[subjects]], 1)
            pix, cam, root = self.landmarks(z, K, model=self.model)  # the 68 landmarks, whatever was fitted
            pose, transl = self._to_flame(x, root)
            pad = lambda a, n: torch.cat([a, a.new_zeros(b, n - a.shape[1])], 1)  # noqa: E731
            shape, expr = pad(y[subjects], self.model.n_shape), pad(x[:, N_FIXED:], self.model.n_expr)
            data = (res(z) ** 2).sum(1)
        return FitResult(shape, expr, pose, transl, K, pix, cam, data, time.perf_counter() - t0)

    def _update(self, targets: Tensor, K: Tensor, weights: Tensor, subjects: Tensor, kind: str):
        """The solver's per-iteration residual: jaw silhouette edges and IRLS weights at the
        current fit (None when neither is on: the residual never changes)."""
        if kind == "l2" and self.lines is None and not self.reweights:
            return None

        def update(x: Tensor, y: Tensor):
            z = torch.cat([x, y[subjects]], 1)
            contour = self.contour_at(z, K) if self.lines is not None else None
            robust = self.point_weights(z, K) if self.reweights else None  # [B, L] or None
            if kind != "l2":
                pix = self.landmarks(z, K, contour)[0]  # [B, L, 2]
                w = irls_weights(pix, targets, kind, self.cfg.robust_scale, self.eyes)
                robust = w if robust is None else robust * w
            return self._residual(targets, K, weights, robust, contour)

        return update

    def _residual(self, targets: Tensor, K: Tensor, weights: Tensor, robust: Tensor | None = None,
                  contour: Contour | None = None):  # fmt: skip
        """r(z) [N, 2L] with |r|^2 = weighted mean squared residual in face-size units.

        ``robust`` [B, L]: IRLS weights multiplying ``weights``; the mean stays
        over ``weights``, so a down-weighted point simply counts less. ``contour``:
        the jaw's silhouette edges (``select_contour``), held for this residual.
        N may be a multiple of B (the solver's Jacobian repeats the batch)."""
        scale = face_scale(targets, weights)  # [B]
        w = weights if robust is None else weights * robust
        sw = (w / weights.sum(1, keepdim=True).clamp_min(1e-9)).sqrt() / scale[:, None]  # [B, L]

        def residual(z: Tensor) -> Tensor:
            k = z.shape[0] // targets.shape[0]
            pix = self.landmarks(z, K.repeat(k, 1, 1), contour)[0]
            return ((pix - targets.repeat(k, 1, 1)) * sw.repeat(k, 1)[..., None]).reshape(z.shape[0], -1)

        return residual

    def _terms(self, triples: Tensor) -> Terms:
        """Priors and limits of ``priors.PriorWeights`` in the solver's per-coordinate form."""
        w, c, dx = self.cfg.priors, self.cfg, self.dx
        wx, ws = torch.zeros(dx), torch.zeros(dx)
        lo, hi = torch.full((dx,), -torch.inf), torch.full((dx,), torch.inf)
        wx[NECK], wx[JAW], wx[EYES], wx[N_FIXED:] = w.neck, w.jaw, w.eyes, w.expr
        lo[NECK], hi[NECK] = -w.neck_max, w.neck_max
        lo[JAW], hi[JAW] = torch.tensor([w.jaw_open[0], -w.jaw_side, -w.jaw_side]), torch.tensor([w.jaw_open[1], w.jaw_side, w.jaw_side])
        ws[ROT], ws[NECK], ws[JAW] = c.smooth_pose, c.smooth_pose, c.smooth_pose
        ws[TXY], ws[LOGZ], ws[N_FIXED:] = c.smooth_transl, c.smooth_transl, c.smooth_expr
        box_lo = box_hi = None
        if c.expr_range is not None:  # hard (projected) bounds on blendshape weights
            box_lo, box_hi = torch.full((dx,), -torch.inf), torch.full((dx,), torch.inf)
            box_lo[N_FIXED:], box_hi[N_FIXED:] = c.expr_range
        return Terms(wx, torch.full((self.n_shape,), float(w.shape)), lo, hi, float(w.limits), ws, triples, box_lo, box_hi)

    @torch.no_grad()
    def _initialise(self, targets: Tensor, K: Tensor, weights: Tensor, subjects: Tensor) -> Tensor:  # -> x [B, Dx]
        """Closed-form rigid start; frames without landmarks copy the nearest frame of their subject that has them."""
        b = targets.shape[0]
        R, t = rigid_init(self.template.expand(b, self.n_points, 3), targets, K, weights)  # camera <- template
        t_cam = t + (R @ self.centre[:, None])[..., 0]  # [B, 3] camera position of the pivot
        x = torch.zeros(b, self.dx)
        x[:, ROT] = matrix_to_axis_angle(FLIP @ R)
        tz = t_cam[:, 2:].clamp_min(1e-3)
        x[:, TXY], x[:, LOGZ] = t_cam[:, :2] / tz, tz.log()
        missing = weights.sum(1) <= 0
        if bool(missing.any()) and bool((~missing).any()):
            idx = torch.arange(b)
            dist = (idx[:, None] - idx[None]).abs() + b * (subjects[:, None] != subjects[None])  # [B, B] other subjects last
            dist = torch.where(missing[None], 3 * b, dist)  # never copy from a frame without landmarks
            x = torch.where(missing[:, None], x[dist.argmin(1)], x)
        return x


def flame_landmarks_2d(
    model: LandmarkFlame,
    shape: Tensor,  # [B, <=S]
    expr: Tensor,  # [B, <=E]
    pose: Tensor,  # [B, 15]
    transl: Tensor,  # [B, 3]
    K: Tensor,  # [B, 3, 3]
) -> Tensor:  # [B, 68, 2] pixels
    """Landmarks of FLAME parameters seen by the track camera (``flip_viewmat()``, ``K``)."""
    lmk, _ = model(shape, expr, pose)
    return project((lmk + transl[:, None]) @ FLIP.T, K)


def _t_cam(x: Tensor) -> Tensor:  # [N, Dx] -> [N, 3] camera-frame position of the pivot
    tz = x[:, LOGZ].exp()
    return torch.cat([x[:, TXY] * tz, tz], 1)


def _triples(sequence: Tensor | None, subjects: Tensor) -> Tensor:  # -> [M, 3] consecutive rows of one clip
    if sequence is None or sequence.shape[0] < 3:
        return torch.zeros(0, 3, dtype=torch.long)
    idx = torch.arange(1, sequence.shape[0] - 1)
    same = (sequence[idx - 1] == sequence[idx]) & (sequence[idx + 1] == sequence[idx])
    idx = idx[same]
    if bool((subjects[idx - 1] != subjects[idx]).any() | (subjects[idx + 1] != subjects[idx]).any()):
        raise ValueError("fit: a clip (sequence id) spans several subjects; one subject per clip")
    return torch.stack([idx - 1, idx, idx + 1], 1)
