"""Choose and build the pipeline's head: the user's FLAME file or the procedural default.

The params section (``fairsplat/sections/head.py``) has already checked the
combination of keys and that the files exist, naming the key; this module
only builds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HeadConfig:
    """Which head to build; see the ``head`` params section for each key's reason."""

    flame_path: str | None = None
    landmark_path: str | None = None
    uv_path: str | None = None
    masks_path: str | None = None
    n_shape: int = 20
    n_expr: int = 10
    seed: int = 0


def make_head(cfg: HeadConfig):
    """Return the HeadModel ``cfg`` asks for (procedural when ``flame_path`` is None)."""
    if cfg.flame_path is None:
        from fairsplat.head.procedural import build_procedural_head

        return build_procedural_head(n_shape=cfg.n_shape, n_expr=cfg.n_expr, seed=cfg.seed)
    from fairsplat.head.flame_file import convert_flame

    return convert_flame(
        cfg.flame_path, landmark_path=cfg.landmark_path, uv_path=cfg.uv_path, masks_path=cfg.masks_path,
        n_shape=cfg.n_shape, n_expr=cfg.n_expr,
    )
