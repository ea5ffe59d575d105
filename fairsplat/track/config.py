"""What stage ``track``'s library needs to know (built by ``fairsplat.sections.track``).

Each key's meaning and the measurement behind its default are documented on
the params section; ``run.fit_config`` turns these into the fitter's FitConfig.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrackConfig:
    inputs: tuple[str, ...] = ("synth", "curated")
    landmarks: str = "gt"
    detector: str = "mediapipe"
    synth_splits: tuple[str, ...] | None = ("test",)
    batch_size: int = 64
    n_shape: int | None = None
    n_expr: int | None = None
    share_shape: bool = True
    rigid_iters: int = 4
    iters: int = 15
    jaw_line_weight: float = 0.3
    fit_points: str = "mesh68"
    dense_facing: float = 0.3
    dense_weights: str = "calibrated"
    dense_stride: int = 3
    robust: str = "geman_mcclure"
    robust_scale: float = 0.1
    contour: str = "auto"
    contour_radius: float = 0.03
    expr_limits: str = "auto"
    shape_prior: float = 1e-4
    expr_prior: float = 3e-4
    neck_prior: float = 1e-2
    smooth_pose: float = 3e-2
    smooth_expr: float = 1e-3
    smooth_transl: float = 3e-2
    fov_deg: float = 18.0
    video_fps: float = 5.0
    max_frames: int = 60
    photometric: bool = False
    photometric_iters: int = 40
    threads: int = 1
    workers: int = 1
    plot_samples: int = 12
