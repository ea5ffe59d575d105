"""Robust landmark weights for iteratively reweighted least squares (IRLS) inside Levenberg-Marquardt.

Why: a landmark detector fails per point, not as a whole: on a turned head or
a closed eye dlib puts the eye points on the brow, and on some turned heads
it draws half the jaw line in the background. A least-squares fit follows
those points and drags pose, shape and expression with them. A robust
penalty ``rho(e)`` on each landmark's residual length ``e`` grows slower than
``e^2`` for large errors, so points far from where the rest of the face puts
them stop pulling. IRLS minimises ``sum rho(e_i)`` by solving, each
iteration, the weighted least-squares problem with ``w_i = rho'(e_i) / e_i``
at the current fit (the weights are held fixed within the iteration; the
solver re-asks for them every iteration, see ``solver.solve(update=...)``).

Residuals are in units of the *fitted* inter-ocular distance (outer eye
corners 36, 45 of the current fit, not of the detection, whose eyes may be on
the brows), so ``scale`` means the same at every image size.

``ROBUST`` maps a name to ``(rho, weight)``; ``e`` and ``scale`` > 0:
- ``l2``: rho = e^2 / 2, w = 1 (plain least squares);
- ``huber``: quadratic to ``scale``, then linear (convex: safe from any start);
- ``geman_mcclure``: rho = (e^2/2) / (1 + (e/c)^2); w = 1 / (1 + (e/c)^2)^2;
- ``tukey``: rho = c^2/6 (1 - (1 - (e/c)^2)^3) inside ``c``, c^2/6 beyond; w = (1 - (e/c)^2)^2, 0 beyond.
The last two redescend (a far outlier's pull tends to 0) and are not
convex, so the fitter starts them from a Huber-weighted rigid stage. Tukey
drops points beyond the bend outright, good ones too when the start is poor
(tests: it loses samples that Geman-McClure recovers); ``geman_mcclure`` is
the stage's default.

Measured (SynthHeads 128 px, dlib, 24 held-out identities, 313 fitted frames):
with the soft expression box, NME 0.0970 (geman_mcclure 0.1), 0.0972 (0.07),
0.0977 (0.15), 0.0983 (tukey 0.25), against 0.1043 for plain least squares.
The stage's defaults (hard expression box, which keeps ground-truth NME at
0.0064 instead of 0.0091) give 0.1028, and expression error 0.19 instead of
0.35. dlib's own landmarks are 0.1118 off: its failures are mostly
self-consistent (a whole face drawn for a less-turned head, eye points on the
brows of a closed eye), which no per-point weight can undo.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Fn = Callable[[Tensor, float], Tensor]


def _l2_rho(e: Tensor, c: float) -> Tensor:
    return 0.5 * e**2


def _huber_rho(e: Tensor, c: float) -> Tensor:
    return torch.where(e <= c, 0.5 * e**2, c * (e - 0.5 * c))


def _huber_w(e: Tensor, c: float) -> Tensor:
    return torch.where(e <= c, torch.ones_like(e), c / e.clamp_min(1e-12))


def _gm_rho(e: Tensor, c: float) -> Tensor:
    return 0.5 * e**2 / (1.0 + (e / c) ** 2)


def _gm_w(e: Tensor, c: float) -> Tensor:
    return 1.0 / (1.0 + (e / c) ** 2) ** 2


def _tukey_rho(e: Tensor, c: float) -> Tensor:
    inside = 1.0 - (1.0 - (e / c).clamp_max(1.0) ** 2) ** 3
    return c**2 / 6.0 * inside


def _tukey_w(e: Tensor, c: float) -> Tensor:
    return torch.where(e < c, (1.0 - (e / c) ** 2) ** 2, torch.zeros_like(e))


ROBUST: dict[str, tuple[Fn, Fn]] = {
    "l2": (_l2_rho, lambda e, c: torch.ones_like(e)),
    "huber": (_huber_rho, _huber_w),
    "geman_mcclure": (_gm_rho, _gm_w),
    "tukey": (_tukey_rho, _tukey_w),
}
"""name -> (rho(e, scale), irls_weight(e, scale)); weight = rho'(e) / e."""


def irls_weights(
    fitted: Tensor,  # [B, L, 2] current fitted points, pixels
    targets: Tensor,  # [B, L, 2] detections, pixels
    kind: str,
    scale: float,  # in fitted inter-ocular distances
    eyes: tuple[int, int] = (36, 45),  # outer eye corners among the points (MediaPipe's mesh: 33, 263)
) -> Tensor:  # [B, L] in [0, 1]
    """IRLS weights of each point at the current fit (see the module doc); L = 68 iBUG landmarks or other points."""
    assert fitted.shape == targets.shape and fitted.shape[2] == 2, (fitted.shape, targets.shape)
    iod = (fitted[:, eyes[0]] - fitted[:, eyes[1]]).norm(dim=-1).clamp_min(1e-6)  # [B]
    e = (fitted - targets).norm(dim=-1) / iod[:, None]  # [B, 68]
    return ROBUST[kind][1](e, scale)
