"""Penalties that keep a landmark fit plausible: coefficient priors, joint limits, smoothness.

Why they are needed: 68 2D points do not determine a FLAME head. Depth trades
against face size, the neck and global rotations move the face the same way,
the eyeballs carry no landmarks at all, and a noisy detector can open the jaw
sideways. Every term is per frame
or per subject, so a batch is a set of independent problems.

The solver (``solver.py``) takes these as per-coordinate weights and limits;
:meth:`fairsplat.track.fit.Fitter._terms` does the mapping.

Units: coefficients are FLAME's (unit variance per component); angles are
radians. The landmark term they are weighed against is a mean squared
residual in units of the face's size, so a weight of 1e-4 on ``|c|^2`` costs
about what a 1 % landmark error costs.
"""

from __future__ import annotations

from dataclasses import dataclass

@dataclass(frozen=True)
class PriorWeights:
    shape: float = 2e-5
    """L2 on shape coefficients: the identity prior (unit-variance PCA)."""
    expr: float = 2e-5
    """L2 on expression coefficients."""
    jaw: float = 1e-5
    """L2 on the jaw rotation (radians)."""
    neck: float = 1e-2
    """L2 on the neck rotation: strong, because neck and global rotation are
    indistinguishable from landmarks; the global rotation takes the motion."""
    eyes: float = 1e-2
    """L2 on the eyeball rotations: iBUG landmarks lie on the lids, not the eyeballs."""
    limits: float = 1.0
    """Squared hinge on leaving the joint ranges below (a soft wall)."""
    jaw_open: tuple[float, float] = (-0.05, 0.6)
    """Allowed jaw opening (x rotation), radians: closed mouth to wide open."""
    jaw_side: float = 0.1
    """Largest sideways / twist jaw rotation (|y|, |z|), radians."""
    neck_max: float = 0.6
    """Largest neck rotation per axis, radians."""
