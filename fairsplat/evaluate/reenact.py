"""``fairsplat reenact``: drive any saved avatar with another person's tracked expression and pose.

    fairsplat reenact data/refined/synth/synth_0005 --driver data/tracks --subject synth/synth_0007 --out out.mp4
    fairsplat reenact my_avatar/ --driver talking.mp4 --out me_talking.mp4      # the video is tracked first

An avatar is any directory that :meth:`Avatar.save` wrote (``avatar.json`` +
``avatar.safetensors``): the generator's (``fairsplat avatar``), a LoRA
generator's, a refined one (``data/refined/<subject>``); pointing at a file
inside it (``avatar.ply``) means its directory. A PLY on its own is refused:
it holds posed Gaussians with no FLAME binding, so nothing could animate it.

The driver is a ``tracks.parquet`` (stage ``track``'s, or its directory; rows
of one subject, or of one ``--sequence``, in frame order) or a video, which is
tracked first with the ``track`` stage's own code and params (dlib landmarks,
one clip = one subject with smooth motion). Per frame the avatar takes the
driver's **expression, pose (global, neck, jaw, eyes) and translation**, and
keeps **its own shape** (the driver's is ignored: identity stays the
avatar's). The camera is the driver's (the tracked intrinsics, scaled to the
output size; a non-square video is cropped to a square around the head), so
self-reenactment re-renders the original framing. Output: ``[T, S, S, 3]``
frames, written as PNGs and an MP4 (PyAV) by the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from fairsplat.avatar.avatar import Avatar


class ReenactError(ValueError):
    """A driver or avatar that cannot be used; the message names the file and why."""


@dataclass
class Driver:
    ids: list[str]
    expr: Tensor  # [T, E]
    pose: Tensor  # [T, 15]
    transl: Tensor  # [T, 3]
    viewmat: Tensor  # [T, 4, 4]
    K: Tensor  # [T, 3, 3] in the driver's pixels
    width: int
    height: int
    frames: np.ndarray | None = None  # uint8 [T, H, W, 3] when the driver is a video

    def __len__(self) -> int:
        return len(self.ids)


def load_avatar(path: str | Path, head) -> Avatar:
    """The avatar saved in ``path`` (a directory, or a file in one)."""
    p = Path(path)
    d = p if p.is_dir() else p.parent
    if not (d / "avatar.json").is_file():
        if p.suffix.lower() == ".ply":
            raise ReenactError(f"{p}: a PLY alone has no FLAME binding to animate; give the directory that "
                               "`fairsplat avatar` or stage refine wrote (avatar.json + avatar.safetensors)")  # fmt: skip
        raise ReenactError(f"{p}: no avatar.json here (an avatar is a directory written by Avatar.save)")
    return Avatar.load(d, head)


def driver_from_tracks(path: str | Path, subject: str | None = None, sequence: str | None = None) -> Driver:
    """Rows of one subject (or sequence) of a tracks.parquet, in (sequence, frame) order; default: the first subject."""
    import pyarrow.parquet as pq

    p = Path(path)
    p = p / "tracks.parquet" if p.is_dir() else p
    if not p.is_file():
        raise ReenactError(f"{p}: no tracks.parquet (run stage track, or give a video)")
    cols = ["image_id", "subject_id", "sequence", "frame", "expr", "pose", "transl", "viewmat", "K"]
    rows = pq.read_table(p, columns=cols).to_pylist()
    if not rows:
        raise ReenactError(f"{p}: no tracked rows")
    if sequence is not None:
        rows = [r for r in rows if r["sequence"] == sequence]
    else:
        subject = subject or rows[0]["subject_id"]
        rows = [r for r in rows if r["subject_id"] == subject]
    if not rows:
        raise ReenactError(f"{p}: no rows of {'sequence ' + sequence if sequence else 'subject ' + str(subject)}")
    rows.sort(key=lambda r: (r["sequence"] or "", r["frame"] or 0, r["image_id"]))
    t = lambda c, shape: torch.tensor(np.array([r[c] for r in rows], np.float32)).view(len(rows), *shape)  # noqa: E731
    K = t("K", (3, 3))
    w, h = int(round(2 * float(K[0, 0, 2]))), int(round(2 * float(K[0, 1, 2])))  # tracks keep a centred principal point
    return Driver([r["image_id"] for r in rows], t("expr", (-1,)), t("pose", (15,)), t("transl", (3,)),
                  t("viewmat", (4, 4)), K, w, h)  # fmt: skip


def driver_from_video(path: str | Path, head_path: Path, track_cfg, work: Path) -> Driver:
    """Track a video with the track stage's code (``track_cfg``: its TrackConfig), then read it as a driver."""
    from fairsplat.track.pipeline import run_track
    from fairsplat.track.video import read_clip

    p = Path(path)
    try:  # decoded first, so that a file that is not a video says so (not "no face found")
        clip = read_clip(p, track_cfg.video_fps, track_cfg.max_frames)
    except Exception as err:  # noqa: BLE001  (any decoder error)
        raise ReenactError(f"{p}: not a decodable video ({type(err).__name__}: {err})"[:300]) from None
    clip_dir = work / "clip"
    clip_dir.mkdir(parents=True, exist_ok=True)
    (clip_dir / p.name).symlink_to(p.resolve())
    run_track(track_cfg, head_path, {"videos": clip_dir}, work / "tracks", None)
    if not (work / "tracks" / "tracks.parquet").is_file():
        raise ReenactError(f"{p}: tracking wrote no tracks")
    try:
        drv = driver_from_tracks(work / "tracks", subject=p.stem)
    except ReenactError:
        raise ReenactError(f"{p}: no frame of the video could be tracked (no single face found)") from None
    index = [int(i.rsplit("/", 1)[1]) for i in drv.ids]
    drv.frames = clip.frames[index]
    drv.height, drv.width = clip.frames.shape[1:3]
    return drv


def square_camera(driver: Driver, avatar: Avatar, size: int) -> tuple[Tensor, Tensor | None]:
    """Intrinsics [T, 3, 3] for a ``size`` square output, and the crop box (x0, y0, side) of the driver's image.

    A square driver is just scaled. A non-square one is cropped to a square of
    side min(W, H) centred on the head's median projected position (one box
    for the whole clip: no jitter), clamped inside the image.
    """
    K = driver.K.clone()
    side = min(driver.width, driver.height)
    x0 = y0 = 0.0
    if driver.width != driver.height:
        with torch.no_grad():
            means, _, _ = avatar.posed(driver.expr[:, : avatar.binding.layer.n_expr], driver.pose, driver.transl)
        centre = means.mean(1)  # [T, 3]
        cam = torch.einsum("tij,tj->ti", driver.viewmat[:, :3, :3], centre) + driver.viewmat[:, :3, 3]
        uv = torch.einsum("tij,tj->ti", K, cam)[:, :2] / cam[:, 2:3]
        cx, cy = uv.median(0).values.tolist()
        x0 = float(np.clip(cx - side / 2, 0, driver.width - side))
        y0 = float(np.clip(cy - side / 2, 0, driver.height - side))
        K[:, 0, 2] -= x0
        K[:, 1, 2] -= y0
    scale = size / side
    K[:, :2] *= scale
    return K, torch.tensor([x0, y0, side])


@torch.no_grad()
def reenact(avatar: Avatar, driver: Driver, size: int = 256, backend: str = "auto", batch: int = 16) -> np.ndarray:
    """The avatar at every driver frame: uint8 [T, size, size, 3] over mid-grey."""
    n_expr = avatar.binding.layer.n_expr
    if driver.expr.shape[1] > n_expr and bool(driver.expr[:, n_expr:].abs().max() > 0):
        raise ReenactError(f"the driver has {driver.expr.shape[1]} expression coefficients, the avatar's head "
                           f"{n_expr}: track the driver with the avatar's head")  # fmt: skip
    K, _ = square_camera(driver, avatar, size)
    out = []
    for s in range(0, len(driver), batch):
        sl = slice(s, s + batch)
        rgb, _ = avatar.render(driver.viewmat[sl], K[sl], size, expr=driver.expr[sl, :n_expr], pose=driver.pose[sl],
                               transl=driver.transl[sl], backend=backend)  # fmt: skip
        out.append((rgb.clamp(0, 1) * 255).round().byte().numpy())
    return np.concatenate(out)


def driver_panels(driver: Driver, avatar: Avatar, size: int) -> np.ndarray | None:
    """The driver's own frames cropped and resized like the renders (video drivers only)."""
    if driver.frames is None:
        return None
    from PIL import Image

    _, box = square_camera(driver, avatar, size)
    x0, y0, side = (int(round(v)) for v in box.tolist())
    return np.stack([np.asarray(Image.fromarray(f[y0 : y0 + side, x0 : x0 + side]).resize((size, size), Image.BILINEAR))
                     for f in driver.frames])  # fmt: skip


def write_outputs(out: Path, frames: np.ndarray, fps: float, frames_dir: Path | None = None) -> list[Path]:
    """``out`` (MP4, PyAV) and one PNG per frame in ``frames_dir`` (default ``<out stem>_frames/``)."""
    from fairsplat.io.video import write_video
    from fairsplat.io.images import save_png

    frames_dir = frames_dir or out.with_name(out.stem + "_frames")
    for i, f in enumerate(frames):
        save_png(frames_dir / f"frame_{i:05d}.png", f)
    write_video(out, frames, fps=max(1, int(round(fps))))
    return [out, frames_dir]

