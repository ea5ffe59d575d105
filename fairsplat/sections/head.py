"""Params of stage ``head``: which head model the whole pipeline uses."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, model_validator

from fairsplat.config import Section


class HeadParams(Section):
    section: ClassVar[str] = "head"

    flame_path: str | None = None
    """A FLAME 2020/2023 model (.pkl or .npz). null = the procedural default head,
    which needs no download and carries labels and a landmark embedding."""

    landmark_path: str | None = None
    """FLAME's landmark_embedding.npy, for a real FLAME file (68 iBUG points)."""

    uv_path: str | None = None
    """FLAME UVs (texture .npz with vt/ft, or an .obj), for a real FLAME file.
    null = a cylindrical projection (seam at the back), so the UV binding still works."""

    masks_path: str | None = None
    """FLAME_masks.pkl (vertex ids per region), for a real FLAME file. It adds
    scalp, ears, neck, eyeballs, nose and lips to the labels; null = labels from
    the 68 landmarks only (brows, eyes, nose, lips, mouth; the rest is skin)."""

    n_shape: int = Field(20, ge=1, le=300)
    """Identity components kept. 20 covers the procedural head; FLAME has 300."""

    n_expr: int = Field(10, ge=1, le=100)
    """Expression components kept. The procedural head has 10+; FLAME has 100."""

    seed: int = Field(0, ge=0)
    """Seed of the procedural head builder (the head is deterministic per seed)."""

    preview_size: int = Field(256, ge=32, le=2048)
    """Side of each panel of the preview render, px."""

    uv_resolution: int = Field(128, ge=8, le=1024)
    """UV grid of the preview's Gaussian binding (seed 003 uses 256)."""

    @model_validator(mode="after")
    def _check(self) -> HeadParams:
        """Key combinations and files, checked before any work (``fairsplat validate`` too)."""
        if self.flame_path is None:
            for key in ("landmark_path", "uv_path", "masks_path"):
                if getattr(self, key) is not None:
                    raise ValueError(f"head.{key.replace('_', '-')}: only used with head.flame-path; set that too")
            from fairsplat.head.procedural_expr import EXPRESSION_NAMES

            if self.n_expr > len(EXPRESSION_NAMES):
                raise ValueError(f"head.n-expr: the procedural head has {len(EXPRESSION_NAMES)} expression "
                                 f"components ({', '.join(EXPRESSION_NAMES)}), got {self.n_expr}")  # fmt: skip
        for key in ("flame_path", "landmark_path", "uv_path", "masks_path"):
            value = getattr(self, key)
            if value is not None and not Path(value).is_file():
                raise ValueError(f"head.{key.replace('_', '-')}: file not found: {value}")
        return self

    def head_config(self):
        """The library's HeadConfig (fairsplat/head/asset.py)."""
        from fairsplat.head.asset import HeadConfig

        return self.to_config(HeadConfig)
