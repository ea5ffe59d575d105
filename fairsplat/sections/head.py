"""Params of stage ``head``: which head model the whole pipeline uses."""

from __future__ import annotations

from pydantic import Field

from fairsplat.config import Section, register


@register("head")
class HeadParams(Section):
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
