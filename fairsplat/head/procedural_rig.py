"""Skeleton of the procedural head: FLAME's five joints, joint regressor, skinning weights.

Why regressed joints: FLAME regresses its joints from the *shaped* vertices,
so a wider jaw moves the jaw pivot with it. Each joint here is a fixed convex
combination of vertices (rows of ``j_regressor`` sum to 1): the eyes are the
centroids of their eyeballs, the jaw pivot is the mean of two patches over the
temporomandibular joints in front of the ears, the neck and global joints are
the means of patches on both sides of the neck. Patches are mirror pairs, so
the joints sit on the midline.

Skinning follows FLAME: the jaw joint carries the lower lip, chin, the lower
face up to a line rising from the mouth corners towards the ears, the
under-chin down to the throat and the lower half of the mouth bag; each eye
joint carries its eyeball; the global joint carries the base of the neck; the
neck joint carries the rest of the head. Weights are smooth except exactly at
the mouth cut, where the upper lip is 0 and the lower lip 1.

``posedirs`` are zero: pose correctives are learned from scans in FLAME and
the procedural head has no scans to learn them from; LBS alone is exact for
the rigid eyeballs and adequate for the jaw at the angles SynthHeads uses.
"""

from __future__ import annotations

import numpy as np

from fairsplat import detmath as dm
from fairsplat.head import procedural_surface as surf
from fairsplat.head.procedural_surface import LAYOUT

PARENTS = np.array([-1, 0, 1, 1, 1], np.int64)  # global, neck, jaw, left eye, right eye
# Surface points (subject's left side; mirrored for the right) whose patch means give the joints.
JOINT_PATCHES = {0: (0.050, -0.125, -0.018), 1: (0.052, -0.072, -0.020), 2: (0.066, -0.012, 0.002)}
PATCH_SIGMA, PATCH_RADIUS = 0.005, 0.012


def _patch_weights(verts: np.ndarray, candidates: np.ndarray, point: tuple[float, float, float]) -> np.ndarray:
    """Gaussian weights (sum 0.5 per side) on candidate vertices near ``point`` and its mirror."""
    w = np.zeros(len(verts))
    for sx in (1.0, -1.0):
        p = np.array([sx * point[0], point[1], point[2]])
        d = np.linalg.norm(verts[candidates] - p, axis=1)
        k = dm.exp(-0.5 * (d / PATCH_SIGMA) ** 2) * (d < PATCH_RADIUS)
        if k.sum() <= 0:
            raise RuntimeError(f"procedural rig: no vertex near joint patch {p}")
        w[candidates] += 0.5 * k / k.sum()
    return w


def joint_regressor(verts: np.ndarray, part: np.ndarray) -> np.ndarray:  # [5, V]
    """Rows: global, neck, jaw (skin patches), left / right eye (eyeball centroids)."""
    grid = np.flatnonzero(part == 0)
    reg = np.zeros((5, len(verts)))
    for j, point in JOINT_PATCHES.items():
        reg[j] = _patch_weights(verts, grid, point)
    for j, p in ((3, 1), (4, 2)):
        sel = part == p
        reg[j, sel] = 1.0 / sel.sum()
    return reg


def jaw_weight(verts: np.ndarray, lower_lip: np.ndarray) -> np.ndarray:  # [V] for head-grid vertices
    """Jaw influence: below a line through the mouth that rises towards the ears.

    The transition is sharp at the mouth (the cut separates the lips) and
    widens with the distance from the mouth corners, so the cheeks stretch
    smoothly when the jaw opens. ``lower_lip`` marks the lower-lip duplicates
    of the mouth row, which lie on the line but belong to the jaw.
    """
    x, y, z = verts.T
    out = np.maximum(np.abs(x) - LAYOUT.mouth_half_width, 0.0)
    line = LAYOUT.mouth_y + 0.9 * out
    width = 0.002 + 0.5 * out
    w = surf.smoothstep(0.0, 1.0, (line - y) / width)
    w[lower_lip] = 1.0
    front = surf.smoothstep(-0.015, 0.010, z)  # the mandible ends at the jaw angle
    under = surf.smoothstep(-0.080, -0.095, y)  # under the chin: jaw until the throat
    throat = surf.smoothstep(0.028, 0.050, z)
    return w * front * ((1.0 - under) + under * throat)


def lbs_weights(verts: np.ndarray, part: np.ndarray, lower_lip: np.ndarray, bag_centre_y: float) -> np.ndarray:
    """[V, 5] weights, rows sum to 1."""
    w = np.zeros((len(verts), 5))
    grid = part == 0
    g = surf.smoothstep(-0.085, -0.125, verts[grid, 1])  # base of the neck follows the global joint
    jaw = jaw_weight(verts[grid], lower_lip[grid]) * (1.0 - g)
    w[grid, 0], w[grid, 2] = g, jaw
    w[grid, 1] = 1.0 - g - jaw
    w[part == 1, 3] = 1.0
    w[part == 2, 4] = 1.0
    bag = part == 3
    bag_jaw = surf.smoothstep(bag_centre_y + 0.006, bag_centre_y - 0.006, verts[bag, 1])
    w[bag, 2], w[bag, 1] = bag_jaw, 1.0 - bag_jaw
    return w


def zero_posedirs(n_vertices: int, n_joints: int = 5) -> np.ndarray:  # [9 (J-1), 3V]
    return np.zeros((9 * (n_joints - 1), 3 * n_vertices), np.float32)
