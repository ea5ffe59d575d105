"""``fairsplat avatar``: 1-4 photos of one person -> an animatable Gaussian head, with the pipeline's own steps.

detect + crop (curate's centre crop on mid-grey, landmark-ellipse matte) ->
track (the FLAME landmark fitter, one shape for all photos) -> the trained
generator (K = number of photos, mean-pooled) -> ``avatar.safetensors`` +
``avatar.json``, ``avatar.ply`` (canonical, any 3DGS viewer), a turntable and
an expression strip as PNG and MP4.

A photo with no face, or with several, stops with a message that names it:
the avatar is of one person, and guessing which face was meant is worse than
asking for a tighter photo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fairsplat.avatar.avatar import Avatar
from fairsplat.avatar.binding import AvatarBinding
from fairsplat.io.checkpoint import CheckpointError
from fairsplat.io.video import write_video  # noqa: F401  (moved to fairsplat.io; kept importable here)


class PhotoError(ValueError):
    """A photo the generator cannot use; the message names the file and why."""


@dataclass
class Prepared:
    crops: np.ndarray  # uint8 [K, S, S, 3] on mid-grey
    landmarks: np.ndarray  # [K, 68, 2] crop pixels
    K: np.ndarray  # [K, 3, 3] assumed intrinsics of the crops


def prepare(photos: list[Path], size: int, fov_deg: float = 18.0) -> Prepared:
    """Load, detect exactly one face, crop like curate and matte with the landmark ellipse."""
    from fairsplat.faces.crop import composite_grey, crop_face
    from fairsplat.faces.detect import detect_faces
    from fairsplat.faces.foreground import FgInput, foreground_mask
    from fairsplat.io.photos import BadImage, load_photo
    from fairsplat.track.camera import default_K

    crops, lms = [], []
    for p in photos:
        try:
            img = load_photo(p)[0]
        except BadImage as err:
            raise PhotoError(f"{p}: not a usable image ({err})") from None
        faces = detect_faces(img, detect_max_side=640)
        if not faces:
            raise PhotoError(f"{p}: no face found; give a photo where the face is visible and at least ~80 px wide")
        if len(faces) > 1:
            raise PhotoError(f"{p}: {len(faces)} faces found; give a photo of one person (or crop it to one face)")
        crop = crop_face(img, faces[0].landmarks, size, grey=0.5)
        mask, _ = foreground_mask(FgInput(crop.image, crop.landmarks, crop.valid), "ellipse")
        crops.append(composite_grey(crop.image, mask, 0.5))
        lms.append(crop.landmarks)
    K = default_K(size, size, fov_deg).numpy()
    return Prepared(np.stack(crops), np.stack(lms).astype(np.float32), np.repeat(K[None], len(crops), 0))


def track(prep: Prepared, head) -> dict[str, torch.Tensor]:
    """FLAME shape (shared), expression, pose and translation of each crop from its landmarks."""
    from fairsplat.track.fit import FitConfig, Fitter
    from fairsplat.track.landmarks import LandmarkFlame

    fitter = Fitter(LandmarkFlame(head), FitConfig(robust="geman_mcclure", rigid_robust="huber", contour=True,
                                                   expr_range=(0.0, 2.0) if head.source == "procedural" else None))  # fmt: skip
    k = len(prep.crops)
    res = fitter.fit(torch.as_tensor(prep.landmarks + 0.5), torch.as_tensor(prep.K), torch.ones(k, 68),
                     subjects=torch.zeros(k, dtype=torch.long), sequence=torch.arange(k))  # fmt: skip
    return {"shape": res.shape, "expr": res.expr, "pose": res.pose, "transl": res.transl}


@torch.no_grad()
def make_avatar(model, binding: AvatarBinding, prep: Prepared, fit: dict[str, torch.Tensor]) -> Avatar:
    """The generator's avatar of the prepared photos (``fairsplat.ff.generate``: either arch; the UV one warps each
    photo's features by its fitted FLAME under the track camera)."""
    from fairsplat.ff.generate import avatar_from_sources
    from fairsplat.track.camera import flip_viewmat

    k = len(prep.crops)
    sources = torch.as_tensor(prep.crops).permute(0, 3, 1, 2).float() / 255  # [K, 3, S, S]
    tracks = {"shape": fit["shape"][:1].expand(k, -1), "expr": fit["expr"], "pose": fit["pose"], "transl": fit["transl"],
              "viewmat": flip_viewmat().expand(k, 4, 4), "K": torch.as_tensor(prep.K).float()}  # fmt: skip
    return avatar_from_sources(model, binding, sources, tracks)


def turntable_cameras(avatar: Avatar, n: int, size: int, fov_deg: float = 18.0, span: float = 60.0):
    """``n`` cameras swinging ±span/2 degrees around the avatar's head, OpenCV convention."""
    from fairsplat.splat.camera import intrinsics, orbit

    with torch.no_grad():
        means = avatar.posed()[0][0]  # [G, 3]
    lo, hi = means.min(0).values, means.max(0).values
    centre = 0.5 * (lo + hi)
    radius = 0.6 * float((hi - lo).max()) / math.tan(math.radians(fov_deg / 2))
    views = orbit(n, radius, tuple(centre.tolist()), span_deg=span, start_deg=-span / 2)
    return views, intrinsics(size, size, fov_deg=fov_deg).expand(n, 3, 3)


def expression_strip(avatar: Avatar, size: int, n: int = 6) -> np.ndarray:
    """The avatar frontal at ``n`` jaw openings and expression strengths: [size, n*size, 3] uint8."""
    views, Ks = turntable_cameras(avatar, 1, size, span=0.0)
    e = avatar.binding.layer.n_expr
    expr = torch.zeros(n, e)
    expr[:, 0] = torch.linspace(0, 1.0, n)  # the first expression component (the procedural head: a smile)
    pose = torch.zeros(n, 15)
    pose[:, 6] = torch.linspace(0, 0.3, n)  # jaw open about x
    with torch.no_grad():
        rgb, _ = avatar.render(views.expand(n, 4, 4), Ks.expand(n, 3, 3), size, expr=expr, pose=pose)
    frames = (rgb.clamp(0, 1) * 255).round().byte().numpy()
    return np.concatenate(list(frames), axis=1)


def turntable(avatar: Avatar, size: int, n: int = 24) -> np.ndarray:  # -> uint8 [n, size, size, 3]
    views, Ks = turntable_cameras(avatar, n, size)
    with torch.no_grad():
        rgb, _ = avatar.render(views, Ks, size)
    return (rgb.clamp(0, 1) * 255).round().byte().numpy()


def photos_to_avatar(photos: list[Path], out: Path, model_dir: Path, head_path: Path) -> list[str]:
    """The whole command; writes into ``out`` atomically and returns the file names written."""
    from fairsplat.head.model import HeadModel
    from fairsplat.io.atomic import atomic_dir
    from fairsplat.io.checkpoint import read_config
    from fairsplat.io.images import save_png
    from fairsplat.ff.generate import generator_binding
    from fairsplat.models.generator import load_generator

    for p in (model_dir / "config.json", head_path):
        if not Path(p).is_file():
            raise FileNotFoundError(f"{p}: missing (run `make repro`, or pass --model / --head)")
    size = read_config(model_dir).get("size")
    if not isinstance(size, int) or size < 16:
        raise CheckpointError(f"{model_dir / 'config.json'}: no crop size ('size') of a trained generator")
    prep = prepare([Path(p) for p in photos], size)  # the photos first: a bad one is refused before the model loads
    model, meta = load_generator(model_dir)
    head = HeadModel.load(head_path)
    binding = generator_binding(meta, head)
    av = make_avatar(model, binding, prep, track(prep, head))
    size = 2 * int(meta["size"])
    spin, strip = turntable(av, size), expression_strip(av, size)
    with atomic_dir(out) as tmp:
        av.save(tmp, head)
        av.export_ply(tmp / "avatar.ply")
        save_png(tmp / "turntable.png", np.concatenate(list(spin[:: max(1, len(spin) // 6)]), axis=1))
        save_png(tmp / "expressions.png", strip)
        write_video(tmp / "turntable.mp4", spin)
        names = sorted(p.name for p in tmp.iterdir())
    return names
