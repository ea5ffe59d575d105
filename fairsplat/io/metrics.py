"""``metrics/<stage>.json``: small, flat, git-tracked numbers that DVC diffs.

Contract (DESIGN.md §5): flat numbers, plus ``per_fitzpatrick: {"I": {...}, ...}``
wherever skin type is known. A metric that could not be computed (absent
weights, no ground truth) is ``null``, never a guess; NaN is refused because
``dvc metrics diff`` cannot compare it and it usually hides a bug.
"""

from __future__ import annotations

import math
from numbers import Number
from pathlib import Path
from typing import Any

from fairsplat.io.atomic import write_json
from fairsplat.labels import FITZPATRICK


def _check(key: str, value: Any) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Number):
        value = float(value) if not isinstance(value, int) else value
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"metric {key} is {value}; report None for 'could not compute'")
        return value
    if isinstance(value, dict):
        return {str(k): _check(f"{key}.{k}", v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_check(f"{key}[{i}]", v) for i, v in enumerate(value)]
    if hasattr(value, "item"):  # numpy / torch scalar
        return _check(key, value.item())
    raise TypeError(f"metric {key}: unsupported type {type(value).__name__}")


def write_metrics(stage: str, metrics: dict[str, Any], root: str | Path = "metrics") -> Path:
    """Validate and atomically write ``<root>/<stage>.json``; returns the path."""
    clean = {k: _check(k, v) for k, v in metrics.items()}
    per = clean.get("per_fitzpatrick")
    if per is not None:
        bad = sorted(set(per) - set(FITZPATRICK))
        if bad:
            raise ValueError(f"per_fitzpatrick has keys {bad}; expected a subset of {FITZPATRICK}")
        clean["per_fitzpatrick"] = {t: per[t] for t in FITZPATRICK if t in per}
    path = Path(root) / f"{stage}.json"
    write_json(path, clean)
    return path
