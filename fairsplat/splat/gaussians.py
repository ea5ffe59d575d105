"""A set of 3D Gaussians stored in 3DGS's raw parameterisation.

Why raw (log scales, opacity logits, SH coefficients): that is what optimisers
update and what the standard PLY holds, so export/import is bit-exact and
nothing is squashed twice. Activated views are properties.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

SH_C0 = 0.28209479177387814  # Y_0^0; rgb = 0.5 + SH_C0 * f_dc (3DGS convention)


def rgb_to_sh_dc(rgb: Tensor) -> Tensor:
    return (rgb - 0.5) / SH_C0


def sh_dc_to_rgb(dc: Tensor) -> Tensor:
    return dc * SH_C0 + 0.5


@dataclass
class GaussianSet:
    means: Tensor  # [N, 3]
    quats: Tensor  # [N, 4] wxyz, unnormalised
    log_scales: Tensor  # [N, 3]
    opacity_logits: Tensor  # [N]
    sh: Tensor  # [N, K, 3], K = (degree + 1) ** 2; sh[:, 0] is the DC term

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        expect = {"means": (n, 3), "quats": (n, 4), "log_scales": (n, 3), "opacity_logits": (n,)}
        for name, shape in expect.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(f"GaussianSet.{name}: shape {tuple(getattr(self, name).shape)}, expected {shape}")
        k = self.sh.shape[1] if self.sh.ndim == 3 else -1
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3 or int(round(k**0.5)) ** 2 != k:
            raise ValueError(f"GaussianSet.sh: shape {tuple(self.sh.shape)}, expected [{n}, (deg+1)^2, 3]")

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def sh_degree(self) -> int:
        return int(round(self.sh.shape[1] ** 0.5)) - 1

    @property
    def scales(self) -> Tensor:  # [N, 3]
        return self.log_scales.exp()

    @property
    def opacities(self) -> Tensor:  # [N]
        return torch.sigmoid(self.opacity_logits)

    @property
    def colors(self) -> Tensor:  # [N, 3] view-independent colour (DC term)
        return sh_dc_to_rgb(self.sh[:, 0])

    @classmethod
    def from_activated(cls, means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor) -> GaussianSet:
        """Build from linear scales, [0,1] opacities and RGB colours (SH degree 0)."""
        eps = 1e-6
        op = opacities.clamp(eps, 1 - eps)
        return cls(means, quats, scales.clamp_min(1e-12).log(), torch.log(op / (1 - op)), rgb_to_sh_dc(colors)[:, None, :])
