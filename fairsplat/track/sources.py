"""What the tracker fits: every input (SynthHeads, curated crops, photos, video frames) as ``Items``.

Why one container: the fitter only needs targets, weights, a camera and who
shares a shape with whom; the tables and metrics only need ids, a status and,
for SynthHeads, the ground truth. Each loader fills the same arrays, so the
run (``run.py``) has one code path for all of them.

Status of a row (never dropped, see ``run.py``): ``ok`` (68 targets),
``no_face`` / ``multi_face`` (the detector found none / several; rows in a
clip are interpolated, others rejected), ``bad_image`` (unreadable file).

Pixel convention: pixel centres at +0.5 (SynthHeads'); dlib reports centres at
integers, so detections get +0.5 here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq
from tqdm import tqdm

from fairsplat.io.images import load_grey, load_rgb
from fairsplat.track.camera import default_K

OK, NO_FACE, MULTI_FACE, BAD_IMAGE = "ok", "no_face", "multi_face", "bad_image"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")

Detector = Callable[[np.ndarray], list]  # uint8 [H, W, 3] -> [Face] (fairsplat.faces.detect.detect_faces)


@dataclass
class Items:
    ids: list[str]  # [N] unique
    source: str  # "synth", "curated", "photos", "videos"
    subject: list[str]  # [N] rows of one subject may share a shape
    sequence: list[str | None]  # [N] clip id (temporal smoothing, interpolation) or None
    frame: np.ndarray  # [N] int64 order within the clip (0 for still images)
    targets: np.ndarray  # [N, 68, 2] float32 pixels (NaN where no landmarks)
    visible: np.ndarray  # [N, 68] bool
    K: np.ndarray  # [N, 3, 3] float32
    status: list[str]  # [N] OK / NO_FACE / MULTI_FACE / BAD_IMAGE
    n_faces: np.ndarray  # [N] int64 faces the detector found (-1: not run)
    fitzpatrick: list[str | None]  # [N]
    paths: list[str | None]  # [N] the image file (None for decoded video frames)
    gt: dict[str, np.ndarray] = field(default_factory=dict)  # SynthHeads: landmarks, shape, expr, pose, viewmat
    images: list[np.ndarray] | None = None  # uint8 [H, W, 3] each, kept for photometric refinement / plots
    masks: list[np.ndarray] | None = None  # uint8 [H, W] foreground each (SynthHeads' alpha), or None
    thumbs: list[np.ndarray] | None = None  # uint8 [<=256, <=256, 3] each: decoded video frames for the overlays
    ita: np.ndarray | None = None  # [N] skin ITA per row (video frames), NaN where no face
    points: np.ndarray | None = None  # [N, 468, 2] float32 MediaPipe mesh points (+0.5), NaN where none (dense fit)

    def __len__(self) -> int:
        return len(self.ids)


def detect_rows(frames, detect: Detector | None = None, desc: str = "detect") -> tuple[np.ndarray, list[str], np.ndarray]:
    """68 landmarks per image (``detect``: a faces/landmarks.py backend, dlib when None) -> targets
    [N, 68, 2] (+0.5, NaN if not one face), status [N], n_faces [N]."""
    return detect_rows_mesh(frames, detect, desc)[:3]


def detect_rows_mesh(frames, detect: Detector | None = None, desc: str = "detect") -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray | None]:
    """:func:`detect_rows` plus the backend's 468 mesh points [N, 468, 2] (+0.5, NaN where none;
    None when no face has a mesh: dlib), what ``track.fit-points: dense468`` fits."""
    if detect is None:
        from fairsplat.faces.detect import detect_faces as detect
    out = np.full((len(frames), 68, 2), np.nan, np.float32)
    mesh = np.full((len(frames), 468, 2), np.nan, np.float32)
    status, counts = [], np.zeros(len(frames), np.int64)
    for t, img in enumerate(tqdm(frames, desc=desc, unit="img", mininterval=1.0, leave=False)):
        faces = detect(img)
        counts[t] = len(faces)
        status.append(OK if len(faces) == 1 else NO_FACE if not faces else MULTI_FACE)
        if len(faces) == 1:
            out[t] = faces[0].landmarks + 0.5
            if faces[0].points is not None and len(faces[0].points) == 468:
                mesh[t] = faces[0].points[:, :2] + 0.5
    return out, status, counts, mesh if np.isfinite(mesh).any() else None


def _stack(col, shape: tuple[int, ...] = ()) -> np.ndarray:
    """A list column -> float32 [N, *shape] (``shape=()``: [N, K] as stored)."""
    a = np.asarray(col, np.float32)
    return a.reshape(len(col), *shape) if shape else a.reshape(len(col), -1)


def load_synth(root: str | Path, landmarks: str = "gt", detect: Detector | None = None, keep_images: bool = False,
               splits: Sequence[str] | None = None) -> Items:  # fmt: skip
    """SynthHeads (``synth/dataset.py`` manifest). Still images: one subject per identity, no clips.

    Why not clips: SynthHeads' frames sample a talking motion a few times per
    cycle, far too sparsely for a smoothness prior to help. ``splits``: only the
    identities of these SynthHeads splits (all when None)."""
    root = Path(root)
    table = pq.read_table(root / "manifest.parquet")
    if splits is not None:
        table = table.filter(pa.compute.is_in(table["split"], pa.array(list(splits))))
        if table.num_rows == 0:
            raise ValueError(f"track.synth-splits {list(splits)}: no SynthHeads identity is in these splits "
                             "(synth.train-frac / val-frac leave none); choose others or null for all")  # fmt: skip
    m = table.to_pydict()
    n = len(m["image_id"])
    gt_lmk = _stack(m["landmarks"], (68, 2))
    gt = {"landmarks": gt_lmk, "shape": _stack(m["shape"]), "expr": _stack(m["expr"]),
          "pose": _stack(m["pose"], (15,)), "viewmat": _stack(m["viewmat"], (4, 4)),
          "yaw": np.asarray(m["yaw"], np.float64)}  # fmt: skip
    need_pixels = landmarks != "gt" or keep_images
    images = [load_rgb(root / p) for p in tqdm(m["rgb_path"], desc="load", leave=False)] if need_pixels else None
    points = None
    if landmarks == "gt":
        targets, visible = gt_lmk.copy(), np.asarray(m["visible"], bool).reshape(n, 68)
        status, n_faces = [OK] * n, np.full(n, -1, np.int64)
    else:
        targets, status, n_faces, points = detect_rows_mesh(images, detect)
        visible = np.isfinite(targets[..., 0])
    return Items(
        ids=list(m["image_id"]), source="synth", subject=list(m["identity_id"]), sequence=[None] * n,
        frame=np.asarray(m["frame"], np.int64), targets=targets, visible=visible, K=_stack(m["K"], (3, 3)),
        status=status, n_faces=n_faces, fitzpatrick=list(m["fitzpatrick"]), paths=[str(root / p) for p in m["rgb_path"]],
        gt=gt, images=images if keep_images else None,
        masks=[load_grey(root / p) for p in m["alpha_path"]] if keep_images else None, points=points,
    )  # fmt: skip


CURATED_COLUMNS = ("image_id", "subject_id", "path", "frame_index", "fitzpatrick_gt", "fitzpatrick", "n_faces",
                   "crop_size", "landmarks")  # fmt: skip
"""What the tracker reads of curate's manifest (fairsplat/curate/tables.py)."""


def load_curated(root: str | Path, fov_deg: float) -> Items:
    """Crops of stage ``curate`` (``curate/tables.py`` manifest): its landmarks, one shape per subject.

    Stills, even video frames: curate samples a few frames spread over a clip,
    too far apart for a smoothness prior. Skin type: the ground truth when the
    source has one (SynthHeads through ingest), else curate's ITA estimate.
    The crop's camera is unknown, so K assumes ``fov_deg`` over the crop."""
    root = Path(root)
    m = pq.read_table(root / "manifest.parquet", columns=list(CURATED_COLUMNS)).to_pydict()
    n = len(m["image_id"])
    size = np.asarray(m["crop_size"], np.int64)
    targets = np.asarray(m["landmarks"], np.float32).reshape(n, 68, 2) + 0.5
    fitz = [g or e for g, e in zip(m["fitzpatrick_gt"], m["fitzpatrick"])]
    return Items(
        ids=list(m["image_id"]), source="curated", subject=list(m["subject_id"]), sequence=[None] * n,
        frame=np.array([f or 0 for f in m["frame_index"]], np.int64), targets=targets,
        visible=np.isfinite(targets[..., 0]),
        K=np.stack([default_K(int(s), int(s), fov_deg).numpy() for s in size]) if n else np.zeros((0, 3, 3), np.float32),
        status=[OK] * n, n_faces=np.asarray(m["n_faces"], np.int64), fitzpatrick=fitz,
        paths=[str(root / p) for p in m["path"]],
    )  # fmt: skip


def load_photos(root: str | Path, fov_deg: float, detect: Detector | None = None, keep_images: bool = False) -> Items:
    """A folder of photos (recursively); each photo is its own subject. Unreadable files get ``bad_image``."""
    from fairsplat.io.photos import BadImage, load_photo

    root = Path(root)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    images, status, sizes = [], [], []
    for p in files:
        try:
            img = load_photo(p)[0]
        except BadImage:
            img = None
        images.append(img)
        sizes.append((1, 1) if img is None else img.shape[:2])
    ok = [i for i, img in enumerate(images) if img is not None]
    det, det_status, det_n, det_mesh = detect_rows_mesh([images[i] for i in ok], detect)
    n = len(files)
    targets, n_faces, status = np.full((n, 68, 2), np.nan, np.float32), np.full(n, -1, np.int64), [BAD_IMAGE] * n
    points = None if det_mesh is None else np.full((n, 468, 2), np.nan, np.float32)
    for j, i in enumerate(ok):
        targets[i], n_faces[i], status[i] = det[j], det_n[j], det_status[j]
        if points is not None:
            points[i] = det_mesh[j]
    ids = [str(p.relative_to(root)) for p in files]
    return Items(
        ids=ids, source="photos", subject=ids, sequence=[None] * n, frame=np.zeros(n, np.int64), targets=targets,
        visible=np.isfinite(targets[..., 0]),
        K=np.stack([default_K(w, h, fov_deg).numpy() for h, w in sizes]) if n else np.zeros((0, 3, 3), np.float32),
        status=status, n_faces=n_faces, fitzpatrick=[None] * n, paths=[str(p) for p in files],
        images=images if keep_images else None, points=points,
    )  # fmt: skip

