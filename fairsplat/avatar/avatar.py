"""An animatable Gaussian head: canonical attributes bound to a FLAME-format head.

What the generator predicts, refinement optimises, ``fairsplat avatar`` writes
and ``fairsplat reenact`` drives: per-Gaussian offset, rotation, scale,
colour and opacity in the binding's canonical frame, plus the subject's FLAME
shape. Animation is FLAME's own (``AvatarBinding.pose``), so any tracked or
driving FLAME sequence plays it back with no network.

Files: ``avatar.safetensors`` (tensors only: loading runs no code) and
``avatar.json`` (format, binding spec, which head); ``export_ply`` writes the
standard 3DGS PLY (canonical, or posed at given FLAME parameters) that common
splat viewers open.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from fairsplat.avatar.binding import AvatarBinding, BindingSpec
from fairsplat.avatar.render import render_batch
from fairsplat.io.atomic import write_json
from fairsplat.io.checkpoint import CheckpointError, check_state, read_json_dict, read_safetensors

FORMAT = "fairsplat-avatar/1"
FIELDS = ("offsets", "quats", "log_scales", "colors", "opacities", "shape")


def head_digest(head) -> str:
    """sha256 of the head's geometry arrays: an avatar only makes sense on the head it was made for."""
    h = hashlib.sha256()
    for name in ("v_template", "faces", "shapedirs", "exprdirs", "lbs_weights", "j_regressor"):
        h.update(getattr(head, name).tobytes())
    return h.hexdigest()[:16]


@dataclass
class Avatar:
    binding: AvatarBinding
    offsets: Tensor  # [G, 3] canonical displacement (metres for points, triangle units for uv)
    quats: Tensor  # [G, 4] wxyz local rotation (unnormalised is fine)
    log_scales: Tensor  # [G, 3] local log-scale
    colors: Tensor  # [G, 3] RGB in [0, 1]
    opacities: Tensor  # [G] in [0, 1]
    shape: Tensor  # [S] FLAME identity coefficients

    def __post_init__(self) -> None:
        g = len(self.binding)
        want = {"offsets": (g, 3), "quats": (g, 4), "log_scales": (g, 3), "colors": (g, 3), "opacities": (g,)}
        for name, shp in want.items():
            if tuple(getattr(self, name).shape) != shp:
                raise ValueError(f"Avatar.{name}: shape {tuple(getattr(self, name).shape)}, expected {shp}")

    @classmethod
    def neutral(cls, binding: AvatarBinding, colour: float = 0.5, opacity: float = 0.9) -> Avatar:
        """The binding's own Gaussians, one colour: a starting point and a test subject."""
        g = len(binding)
        return cls(binding, torch.zeros(g, 3), binding.base_quats.clone(), binding.base_log_scales.clone(),
                   torch.full((g, 3), colour), torch.full((g,), opacity), torch.zeros(binding.n_shape))  # fmt: skip

    def posed(self, expr: Tensor | None = None, pose: Tensor | None = None, transl: Tensor | None = None):
        """World means, rotations, scales [B, G, ...] at B frames of FLAME parameters (rest pose if none)."""
        b = next((x.shape[0] for x in (expr, pose, transl) if x is not None), 1)
        return self.binding.pose(self.shape.expand(b, -1), expr, pose, transl, self.offsets[None],
                                 self.quats[None], self.log_scales[None])  # fmt: skip

    def render(self, viewmats: Tensor, Ks: Tensor, size: int, expr=None, pose=None, transl=None,
               background: float = 0.5, backend: str = "auto") -> tuple[Tensor, Tensor]:  # fmt: skip
        """[B, H, W, 3] colour over a grey background and [B, H, W] alpha, one camera per frame."""
        means, quats, scales = self.posed(expr, pose, transl)
        b = means.shape[0]
        colors = self.colors.expand(b, -1, -1)
        opac = self.opacities.expand(b, -1)
        return render_batch(means, quats, scales, colors, opac, viewmats, Ks, size, background, backend)

    def gaussians(self, expr=None, pose=None, transl=None):
        """A GaussianSet of one frame (canonical rest pose when no parameters are given)."""
        from fairsplat.splat.gaussians import GaussianSet

        means, quats, scales = (t[0] for t in self.posed(expr, pose, transl))
        return GaussianSet.from_activated(means, F.normalize(quats, dim=-1), scales, self.opacities, self.colors)

    def export_ply(self, path: str | Path, expr=None, pose=None, transl=None) -> None:
        from fairsplat.splat.ply import save_ply

        with torch.no_grad():
            save_ply(path, self.gaussians(expr, pose, transl))

    def tensors(self) -> dict[str, Tensor]:
        return {f: getattr(self, f).detach().cpu().contiguous().float() for f in FIELDS}

    def save(self, out_dir: str | Path, head) -> None:
        """``avatar.safetensors`` + ``avatar.json`` into ``out_dir`` (each written atomically)."""
        from safetensors.torch import save_file

        from fairsplat.io.atomic import atomic_path

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "avatar.safetensors") as tmp:
            save_file(self.tensors(), str(tmp))
        write_json(out / "avatar.json", {"format": FORMAT, "binding": self.binding.spec.to_json(),
                                         "head": {"source": head.source, "digest": head_digest(head)},
                                         "gaussians": len(self.binding)})  # fmt: skip

    @classmethod
    def load(cls, directory: str | Path, head, binding: AvatarBinding | None = None) -> Avatar:
        """Read an avatar saved by :meth:`save` onto ``head``; refuses another head or wrong shapes."""
        d = Path(directory)
        meta = read_json_dict(d / "avatar.json")
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{d / 'avatar.json'}: format {meta.get('format')!r}, expected {FORMAT}")
        made_for = meta.get("head") if isinstance(meta.get("head"), dict) else {}
        if made_for.get("digest") != head_digest(head):
            raise CheckpointError(f"{d}: made for head {made_for.get('source')} ({made_for.get('digest')}), "
                                  f"not this one ({head.source}, {head_digest(head)})")  # fmt: skip
        try:
            binding = binding or AvatarBinding(head, BindingSpec(**meta["binding"]))
        except (KeyError, TypeError) as err:
            raise CheckpointError(f"{d / 'avatar.json'}: no valid binding spec ({type(err).__name__}: {err})") from None
        tensors = read_safetensors(d / "avatar.safetensors")
        expect = cls.neutral(binding).tensors()
        check_state(expect, tensors, str(d / "avatar.safetensors"))
        return cls(binding, **{f: tensors[f] for f in FIELDS})
