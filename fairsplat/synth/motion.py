"""Per-frame FLAME parameters: talking-like jaw, smile, blink, brow, head motion.

Why procedural curves rather than random draws per frame: consecutive frames
must look like a clip (the monocular-temporal use of seed 003 and the jitter
tests of tracking need smooth motion), and one frame per identity must be near
neutral for one-shot use. Frame 0 is that near-neutral frame.
"""

from __future__ import annotations

import math

import numpy as np

# Pose layout (FLAME): global 0:3, neck 3:6, jaw 6:9, left eye 9:12, right eye 12:15.
GLOBAL, NECK, JAW = slice(0, 3), slice(3, 6), slice(6, 9)


def frame_params(
    n_frames: int,
    n_expr: int,
    expr_index: dict[str, int],
    rng: np.random.Generator,
    max_jaw: float = 0.3,
    max_head_deg: float = 10.0,
) -> tuple[np.ndarray, np.ndarray]:  # expr [T, E], pose [T, 15]
    """Expression and pose curves for one identity.

    ``expr_index`` maps semantic names (smile, blink_l, blink_r, brow_raise, ...)
    to expression components of the head; names it lacks are skipped.
    """
    t = np.arange(n_frames) / max(n_frames, 1)
    phase = rng.uniform(0, 2 * math.pi, 6)
    expr = np.zeros((n_frames, n_expr), np.float32)
    pose = np.zeros((n_frames, 15), np.float32)
    ramp = np.where(np.arange(n_frames) == 0, 0.0, 1.0)  # frame 0 near neutral

    def add(name: str, curve: np.ndarray) -> None:
        if name in expr_index and expr_index[name] < n_expr:
            expr[:, expr_index[name]] += curve.astype(np.float32)

    add("smile", ramp * 1.6 * np.clip(np.sin(2 * math.pi * (0.7 * t) + phase[0]), 0, None))
    add("brow_raise", ramp * 1.2 * np.clip(np.sin(2 * math.pi * (0.9 * t) + phase[1]), 0, None))
    add("pucker", ramp * 1.0 * np.clip(np.sin(2 * math.pi * (1.1 * t) + phase[2]), 0, None))
    if n_frames > 1:
        blink = np.zeros(n_frames)
        blink[rng.integers(1, n_frames)] = 1.0
        add("blink_l", blink)
        add("blink_r", blink)
    pose[:, JAW][:, 0] = ramp * max_jaw * np.clip(np.sin(2 * math.pi * (1.7 * t) + phase[3]), 0, None)
    head = math.radians(max_head_deg)
    pose[:, GLOBAL][:, 1] = ramp * head * np.sin(2 * math.pi * t + phase[4])  # yaw
    pose[:, GLOBAL][:, 0] = ramp * 0.5 * head * np.sin(2 * math.pi * t + phase[5])  # pitch
    return expr, pose
