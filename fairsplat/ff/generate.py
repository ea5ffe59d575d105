"""One way from a trained generator, source crops and their tracks to Gaussians, for either architecture.

Every user of ``models/ff`` downstream of train_ff (refine, evaluate, enhance,
lora's scoring, ``fairsplat avatar``) goes through here, so the LAM-style
generator (which reads only the pixels and the canonical points) and seed
003's UV one (which also warps each source's features by that source's
tracked FLAME and camera, and decodes for a target's view and expression) are
interchangeable without a branch in any stage:

- ``generator_binding(meta, head)``: the avatar layout a saved generator
  decodes into (``config.json`` of either arch);
- ``generate(model, binding, images, tracks, targets)``: attributes [T, G, ...]
  for T targets (the LAM-style output does not depend on the target and is
  the same for every one);
- ``avatar_from_sources(model, binding, images, tracks)``: *the* avatar of the
  sources, a fixed set of Gaussians. For the UV generator its view and
  expression condition is the first source's (its camera direction and FLAME
  code), as stage refine's starting avatar always was.

``tracks`` are per source, [K, ...]: ``shape`` (the first is the subject's),
``expr``, ``pose``, ``transl``, ``viewmat``, ``K`` as in ``tracks.parquet``
(``source_tracks`` reads them from curated frames).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from fairsplat.avatar.avatar import Avatar
from fairsplat.avatar.binding import AvatarBinding
from fairsplat.ff.data import Frames
from fairsplat.ff.render import to_avatar
from fairsplat.ff.uv_context import SOURCE_TRACKS, predict
from fairsplat.models.lam import Attributes

TARGET_TRACKS = ("expr", "pose", "transl", "viewmat", "K")


def generator_binding(meta: Mapping, head) -> AvatarBinding:
    """The binding a saved generator's ``config.json`` (``meta``) decodes into, on ``head``."""
    from fairsplat.models.generator import config_from_json

    return AvatarBinding(head, config_from_json(dict(meta)).binding)


def source_tracks(frames: Frames, rows: Sequence[int]) -> dict[str, Tensor]:  # -> [K, ...] each
    """The tracks of curated rows, in the layout ``generate`` takes."""
    idx = torch.as_tensor(list(rows))
    return {c: v[idx] for c, v in frames.track.items()}


def source_images(frames: Frames, rows: Sequence[int]) -> Tensor:  # -> [K, 3, S, S] in [0, 1]
    return frames.images[torch.as_tensor(list(rows))].float() / 255


def one_subject(images: Tensor, tracks: Mapping[str, Tensor], targets: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
    """A batch in ``gather``'s layout for one subject: sources [1, K], targets [T] (default: the first source)."""
    tgt = targets if targets is not None else {c: tracks[c][:1] for c in TARGET_TRACKS}
    return {
        "sources": images[None], "shape": tracks["shape"][:1],  # [1, K, 3, S, S], [1, S]
        **{f"source_{c}": tracks[c][None] for c in SOURCE_TRACKS},  # [1, K, ...]
        **{f"target_{c}": tgt[c] for c in TARGET_TRACKS},  # [T, ...]
    }  # fmt: skip


def generate(model, binding: AvatarBinding, images: Tensor, tracks: Mapping[str, Tensor],
             targets: Mapping[str, Tensor] | None = None) -> Attributes:  # fmt: skip
    """Attributes [T, G, ...] of one subject's K sources (``images`` [K, 3, S, S]) for T targets (default 1)."""
    batch = one_subject(images, tracks, targets)
    with torch.no_grad():
        points = binding.canonical(batch["shape"])  # [1, G, 3] (the UV generator does not read them)
    attrs = predict(model, binding, None, batch, points)
    t = len(batch["target_viewmat"])
    return Attributes(*(x.expand(t, *x.shape[1:]) for x in attrs))


def avatar_from_sources(model, binding: AvatarBinding, images: Tensor, tracks: Mapping[str, Tensor]) -> Avatar:
    """The avatar of K source crops [K, 3, S, S] with their tracks (module docstring: the first source's condition)."""
    return to_avatar(binding, generate(model, binding, images, tracks), tracks["shape"][:1])
