"""The one per-Fitzpatrick table: a statistic per skin type, a bootstrap interval over
subjects, and the worst / best / gap / ratio across types.

Why one function: stages used to aggregate per type by hand, each with its own
idea of a gap (max - min here, max/min - 1 there) and none with an interval.
A gap between two types means little without knowing how much it would move
with other subjects, so every table now carries one, computed the same way.

Why resample **subjects**, not items: items of one subject (views and frames of
one SynthHeads identity, crops of one person) are strongly correlated. A type
with 64 frames of 4 identities holds 4 independent draws, not 64; resampling
items would give an interval about sqrt(16) = 4x too narrow. So within a type
we draw its subjects with replacement and recompute the statistic from *all*
items of the drawn subjects (a pooled statistic is re-pooled, a median
re-taken). Percentile interval, ``n_boot`` draws, fixed ``seed`` (the draws are
seeded per type and statistic, so a table is deterministic and adding a
statistic does not move the others). A row whose subject is None is its own
subject. Draws on which a statistic is undefined (say no scored item) are
dropped.

Input
-----
``rows``: one mapping per item, with a type key (``"fitzpatrick"``), a subject
key (``"subject_id"``) and metric columns. ``stats``: name -> spec, where a spec
is a column name (the mean over items where it is a finite number), a reducer
``f(rows) -> float | None`` (pooled mIoU, accuracy, a median), or a
:class:`Stat` for the options (direction, no CI, a per-stat grouping or row
filter, values given per type).

Output: the ONE shape every stage writes
----------------------------------------
::

    {"per_fitzpatrick": {
         "I":  {"psnr": 23.1, "psnr_ci": [22.4, 23.9], "pixels": 4096,
                "n_subjects": 4, "n_items": 64},
         "VI": {...}},                      # types present (or ``types``), in I..VI order
     "psnr_worst_type": "VI", "psnr_best_type": "I", "psnr_gap": 1.2, "psnr_ratio": 0.95}

- ``<stat>``: the statistic over all items of the type; None where undefined.
- ``<stat>_ci``: ``[lo, hi]``, the 95 % percentile interval; None with fewer than
  2 subjects, ``n_boot=0`` (progress evaluations) or an undefined statistic.
  Only for stats with ``ci=True``: counts and given values are exact, so they
  have no ``_ci`` key at all.
- ``n_subjects``, ``n_items``: of the table's population (``rows`` passing
  ``where``) of that type.
- flat summary (``dvc metrics diff`` reads it), only for stats with a direction
  (``higher_is_better`` True/False), over the types where the stat is a number:
  ``<stat>_worst_type``, ``<stat>_best_type``; ``<stat>_gap`` = |best - worst|,
  never negative: how far the worst type trails; ``<stat>_ratio`` = worst / best
  (<= 1 when higher is better, >= 1 when lower is better; None if best is 0).
  Ties name the first type in I..VI order. All four are None with fewer than 2
  scored types, so the keys stay stable.

Values are JSON-clean: non-finite numbers become None, numpy scalars Python ones.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fairsplat.labels import FITZPATRICK

Row = Mapping[str, Any]
Reducer = Callable[[Sequence[Row]], Any]


@dataclass(frozen=True)
class Stat:
    """How one statistic of a type is computed from that type's rows."""

    column: str | None = None
    """Aggregate this column over the items where it is a finite number (mean, or ``agg``)."""
    agg: Callable[[np.ndarray], float] | None = None
    """With ``column``: the aggregate of the finite values [N] (e.g. ``np.median``); None = mean."""
    reduce: Reducer | None = None
    """Or any statistic of the rows: pooled mIoU, an accuracy, a count, a dict of region means."""
    given: Mapping[str, Any] | None = None
    """Or the value per type, computed elsewhere (balance's counts): exact, no CI."""
    higher_is_better: bool | None = None
    """Direction for worst/best/gap/ratio; None = descriptive (counts, ITA): no summary."""
    ci: bool = True
    """Bootstrap an interval. False for counts (exact) and non-scalar reducers."""
    by: str | None = None
    """Group by this key instead of the table's type key (e.g. ``fitzpatrick_gt``)."""
    where: Callable[[Row], bool] | None = None
    """Rows this stat uses, instead of the table's population (``lambda r: True`` for all rows)."""

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.column, self.reduce, self.given)) != 1:
            raise ValueError("Stat needs exactly one of column, reduce, given")
        if self.agg is not None and self.column is None:
            raise ValueError("Stat.agg needs a column")


Spec = str | Reducer | Stat


def count(where: Callable[[Row], bool] | None = None, by: str | None = None) -> Stat:
    """Number of rows of the type (exact: no CI)."""
    return Stat(reduce=len, ci=False, where=where, by=by)


def as_stat(spec: Spec) -> Stat:
    if isinstance(spec, Stat):
        return spec
    if isinstance(spec, str):
        return Stat(column=spec)
    if callable(spec):
        return Stat(reduce=spec)
    raise TypeError(f"statistic spec {spec!r}: expected a column name, a reducer or a Stat")


def clean(v: Any, digits: int | None = None) -> Any:
    """JSON-clean scalar: numpy -> Python, non-finite -> None, floats rounded to ``digits``."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        if not math.isfinite(v):
            return None
        return round(v, digits) if digits is not None else v
    return v


# ----------------------------------------------------------------------------- one statistic


def _finite(rows: Sequence[Row], column: str) -> np.ndarray:  # -> [N] finite floats
    vals = [r.get(column) for r in rows]
    a = np.array([np.nan if v is None else float(v) for v in vals], np.float64)
    return a[np.isfinite(a)]


def _value(stat: Stat, rows: Sequence[Row]) -> Any:
    """The statistic over ``rows`` (one type's, or one bootstrap draw's)."""
    if stat.reduce is not None:
        return stat.reduce(rows)
    v = _finite(rows, stat.column)
    if not v.size:
        return None
    return float(stat.agg(v)) if stat.agg is not None else float(np.mean(v))


def _groups(rows: Sequence[Row], subject_key: str) -> list[list[Row]]:
    """Rows per subject, subjects in sorted order (independent of row order); None = own subject."""
    out: dict[Any, list[Row]] = {}
    for i, r in enumerate(rows):
        s = r.get(subject_key)
        out.setdefault(("", str(s)) if s is not None else ("~", i), []).append(r)
    return [out[k] for k in sorted(out)]


def _draws(stat: Stat, groups: list[list[Row]], idx: np.ndarray) -> np.ndarray:  # idx [n_boot, S] -> [n_boot]
    out = np.full(len(idx), np.nan)
    if stat.column is not None:
        per = [_finite(g, stat.column) for g in groups]  # [S] arrays of finite values
        if stat.agg is None:  # mean = sum of the drawn subjects' sums / sum of their counts
            sums = np.array([p.sum() for p in per])[idx].sum(1)
            counts = np.array([p.size for p in per])[idx].sum(1)
            with np.errstate(invalid="ignore", divide="ignore"):
                return sums / counts
        for b, draw in enumerate(idx):
            v = np.concatenate([per[s] for s in draw])
            out[b] = stat.agg(v) if v.size else np.nan
        return out
    for b, draw in enumerate(idx):
        v = stat.reduce([r for s in draw for r in groups[s]])
        out[b] = np.nan if v is None else float(v)
    return out


def bootstrap_ci(
    stat: Stat, groups: list[list[Row]], n_boot: int, rng: np.random.Generator, level: float = 0.95
) -> list[float] | None:
    """Percentile interval of ``stat`` over ``n_boot`` resamples of the subject ``groups``."""
    if n_boot <= 0 or len(groups) < 2:
        return None
    idx = rng.integers(0, len(groups), size=(n_boot, len(groups)))  # [n_boot, S] subject draws
    vals = _draws(stat, groups, idx)
    vals = vals[np.isfinite(vals)]
    if not vals.size:
        return None
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(vals, [tail, 100 - tail])
    return [float(lo), float(hi)]


# ----------------------------------------------------------------------------- the table


def _rows_of(rows: Sequence[Row], t: str, key: str, where: Callable[[Row], bool] | None) -> list[Row]:
    return [r for r in rows if r.get(key) == t and (where is None or where(r))]


def _cell(name: str, stat: Stat, rows: Sequence[Row], t: str, ctx: dict) -> dict[str, Any]:
    """``{name: value, name_ci: [lo, hi] | None}`` (no ``_ci`` key for ``ci=False``)."""
    if stat.given is not None:
        return {name: clean(stat.given.get(t), ctx["digits"])}
    mine = _rows_of(rows, t, stat.by or ctx["type_key"], stat.where or ctx["where"])
    value = clean(_value(stat, mine), ctx["digits"])
    out = {name: value}
    if stat.ci:
        ci = None
        if _numeric(value):
            seq = np.random.SeedSequence([ctx["seed"], FITZPATRICK.index(t), zlib.crc32(name.encode())])
            ci = bootstrap_ci(stat, _groups(mine, ctx["subject_key"]), ctx["n_boot"], np.random.default_rng(seq), ctx["level"])
        out[f"{name}_ci"] = None if ci is None else [clean(c, ctx["digits"]) for c in ci]
    return out


def _numeric(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def summary(name: str, higher_is_better: bool, per_type: Mapping[str, Mapping[str, Any]], digits: int | None = None) -> dict:
    """``<name>_worst_type``, ``_best_type``, ``_gap`` (>= 0) and ``_ratio`` (worst / best) across types."""
    scored = {t: b[name] for t, b in per_type.items() if _numeric(b.get(name))}
    keys = [f"{name}_{k}" for k in ("worst_type", "best_type", "gap", "ratio")]
    if len(scored) < 2:
        return dict.fromkeys(keys)
    lo, hi = min(scored.values()), max(scored.values())
    worst_v, best_v = (lo, hi) if higher_is_better else (hi, lo)
    worst = next(t for t in FITZPATRICK if scored.get(t) == worst_v)  # ties: the first type in I..VI order
    best = next(t for t in FITZPATRICK if scored.get(t) == best_v)
    gap = abs(scored[best] - scored[worst])
    ratio = scored[worst] / scored[best] if scored[best] != 0 else None
    return dict(zip(keys, (worst, best, clean(float(gap), digits), clean(ratio, digits))))


def per_fitzpatrick(
    rows: Sequence[Row],
    stats: Mapping[str, Spec],
    *,
    type_key: str = "fitzpatrick",
    subject_key: str = "subject_id",
    where: Callable[[Row], bool] | None = None,
    types: Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    digits: int | None = None,
) -> dict[str, Any]:
    """The per-type table and its flat summary, in the shape the module docstring documents.

    ``where``: the table's population (counted in ``n_subjects``/``n_items``, and the
    rows of every stat without its own ``where``). ``types``: the types to report
    (default: those present in ``rows``, all of them, not only ``where``'s).
    ``digits``: round floats (the summary is computed from the rounded values).
    """
    specs = {name: as_stat(s) for name, s in stats.items()}
    clash = {"n_subjects", "n_items"} & set(specs)
    if clash:
        raise ValueError(f"statistic names {sorted(clash)} are reserved for the table")
    if types is None:
        present = {r.get(type_key) for r in rows}
        types = [t for t in FITZPATRICK if t in present]
    ctx = {"type_key": type_key, "subject_key": subject_key, "where": where, "n_boot": n_boot,
           "seed": seed, "level": level, "digits": digits}  # fmt: skip
    per: dict[str, dict[str, Any]] = {}
    for t in types:
        block: dict[str, Any] = {}
        for name, stat in specs.items():
            block |= _cell(name, stat, rows, t, ctx)
        population = _rows_of(rows, t, type_key, where)
        block["n_subjects"] = len(_groups(population, subject_key))
        block["n_items"] = len(population)
        per[t] = block
    out: dict[str, Any] = {"per_fitzpatrick": per}
    for name, stat in specs.items():
        if stat.higher_is_better is not None:
            out |= summary(name, stat.higher_is_better, per, digits)
    return out
