"""Tables shared by both enhancer stages' metrics: means, subject-bootstrap verdicts, the Parquet schema of score rows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fairsplat.metrics.fairness import Stat, bootstrap_ci, clean


def higher_is_better(metric: str) -> bool:
    return not (metric.startswith("lpips") or metric.startswith("abs_delta_ita"))


def mean_of(rows: Sequence[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])]
    return float(np.mean(vals)) if vals else None


def subject_groups(rows: Sequence[dict]) -> list[list[dict]]:
    """Rows per subject (a row without one is its own), subjects in sorted order: the bootstrap's units."""
    groups: dict[str, list[dict]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(str(r.get("subject_id") or f"~{i}"), []).append(r)
    return [groups[k] for k in sorted(groups)]


def verdict(ci: list[float] | None) -> str:
    """helps (the gain's interval is above 0), hurts (below 0) or unclear."""
    if ci is None:
        return "unclear"
    return "helps" if ci[0] > 0 else "hurts" if ci[1] < 0 else "unclear"


def group_block(rows: Sequence[dict], columns: Sequence[str], n_boot: int, seed: int) -> dict:
    """Means of ``<c>``, ``<c>_input``, ``<c>_gain``, a subject-bootstrap CI and a verdict on each gain."""
    groups = subject_groups(rows)
    out: dict = {"pairs": len(rows), "n_subjects": len(groups)}
    for k, c in enumerate(columns):
        out[c], out[f"{c}_input"] = clean(mean_of(rows, c), 4), clean(mean_of(rows, f"{c}_input"), 4)
        out[f"{c}_gain"] = clean(mean_of(rows, f"{c}_gain"), 4)
        ci = None
        if out[f"{c}_gain"] is not None:
            rng = np.random.default_rng(np.random.SeedSequence([seed, k]))
            ci = bootstrap_ci(Stat(column=f"{c}_gain"), groups, n_boot, rng)
        out[f"{c}_gain_ci"] = None if ci is None else [clean(v, 4) for v in ci]
        out[f"{c}_verdict"] = verdict(ci) if out[f"{c}_gain"] is not None else None
    return out


def rows_schema(rows: Sequence[dict]):
    """Parquet schema of score rows: ids as strings, ``families`` a list of strings, every other column float64."""
    import pyarrow as pa

    names = list(rows[0]) if rows else []
    text = {"pair_id", "image_id", "subject_id", "split", "fitzpatrick", "source", "target_id"}
    kind = lambda n: pa.list_(pa.string()) if n == "families" else pa.string() if n in text else pa.float64()  # noqa: E731
    return pa.schema([(n, kind(n)) for n in names])
