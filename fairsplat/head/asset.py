"""Choose and build the pipeline's head: the user's FLAME file or the procedural default."""

from __future__ import annotations

from pathlib import Path

from fairsplat.config import ParamsError
from fairsplat.sections.head import HeadParams


def make_head(cfg: HeadParams):
    """Return the HeadModel the ``head`` params ask for.

    Paths are checked here, before any work, so a missing file names its key.
    """
    if cfg.flame_path is None:
        for key in ("landmark_path", "uv_path", "masks_path"):
            if getattr(cfg, key) is not None:
                raise ParamsError(f"head.{key.replace('_', '-')}: only used with head.flame-path; set that too")
        from fairsplat.head.procedural import EXPRESSION_NAMES, build_procedural_head

        if cfg.n_expr > len(EXPRESSION_NAMES):
            raise ParamsError(f"head.n-expr: the procedural head has {len(EXPRESSION_NAMES)} expression components "
                              f"({', '.join(EXPRESSION_NAMES)}), got {cfg.n_expr}")
        return build_procedural_head(n_shape=cfg.n_shape, n_expr=cfg.n_expr, seed=cfg.seed)
    for key in ("flame_path", "landmark_path", "uv_path", "masks_path"):
        value = getattr(cfg, key)
        if value is not None and not Path(value).is_file():
            raise ParamsError(f"head.{key.replace('_', '-')}: file not found: {value}")
    from fairsplat.head.flame_file import convert_flame

    return convert_flame(
        cfg.flame_path, landmark_path=cfg.landmark_path, uv_path=cfg.uv_path, masks_path=cfg.masks_path,
        n_shape=cfg.n_shape, n_expr=cfg.n_expr,
    )
