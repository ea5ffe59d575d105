"""Balancing N images per Fitzpatrick type, and subject-disjoint splits.

Both draws use a *hash-keyed* order, ``sha1(f"{seed}:{key}")``, not a shuffled
list. Why: the result then depends only on the seed and the set of eligible
items — not on input order, shard size or worker count — and adding inputs
changes the selection minimally (an already-selected image stays selected
unless a newcomer ranks ahead of it), which keeps DVC re-runs stable.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from fairsplat.labels import FITZPATRICK


@dataclass(frozen=True)
class Candidate:
    image_id: str
    subject_id: str
    fitzpatrick: str


def rank_key(seed: int, key: str) -> str:
    return hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()


def balance(
    items: Sequence[Candidate],
    per_type: int | None,
    seed: int = 0,
    max_per_subject: int | None = None,
) -> tuple[set[str], dict[str, dict[str, int]]]:
    """Pick up to ``per_type`` image ids per type; returns (selected ids, per-type counts).

    Counts per type: ``eligible`` (candidates), ``selected``, ``shortfall``
    (``per_type - selected`` when too few eligible images exist, else 0).
    """
    by_type: dict[str, list[Candidate]] = defaultdict(list)
    for c in items:
        by_type[c.fitzpatrick].append(c)
    per_subject: Counter[str] = Counter()
    selected: set[str] = set()
    stats = {}
    for fst in FITZPATRICK:
        ranked = sorted(by_type.get(fst, []), key=lambda c: rank_key(seed, c.image_id))
        taken = 0
        for c in ranked:
            if per_type is not None and taken >= per_type:
                break
            if max_per_subject is not None and per_subject[c.subject_id] >= max_per_subject:
                continue
            selected.add(c.image_id)
            per_subject[c.subject_id] += 1
            taken += 1
        short = 0 if per_type is None else max(0, per_type - taken)
        stats[fst] = {"eligible": len(ranked), "selected": taken, "shortfall": short}
    return selected, stats


def _dominant(types: Counter[str]) -> str:
    return max(FITZPATRICK, key=lambda t: (types[t], -FITZPATRICK.index(t)))


def assign_splits(items: Sequence[Candidate], fractions: dict[str, float], seed: int = 0) -> dict[str, str]:
    """Subject -> split, every subject in exactly one split, stratified by type.

    Each subject is filed under its most frequent type; within a type, subjects
    (largest first, ties by hash rank) go greedily to the split furthest below
    its target share of that type's images; ties (common when a type has only a
    few subjects) go to the split furthest below its share of *all* images so
    far, so small splits are not always starved by the same tie-break.
    """
    names = [s for s, f in fractions.items() if f > 0]
    if not names:
        raise ValueError(f"splits {fractions}: no split has a positive fraction")
    subj_types: dict[str, Counter[str]] = defaultdict(Counter)
    for c in items:
        subj_types[c.subject_id][c.fitzpatrick] += 1
    groups: dict[str, list[str]] = defaultdict(list)
    for subj, types in subj_types.items():
        groups[_dominant(types)].append(subj)
    out: dict[str, str] = {}
    overall = dict.fromkeys(names, 0)
    for fst in FITZPATRICK:
        subjects = sorted(groups.get(fst, []), key=lambda s: (-sum(subj_types[s].values()), rank_key(seed, s)))
        counts = dict.fromkeys(names, 0)
        total = 0
        for subj in subjects:
            n = sum(subj_types[subj].values())
            total += n
            grand = sum(overall.values()) + n
            best = max(names, key=lambda s: (fractions[s] * total - counts[s], fractions[s] * grand - overall[s], fractions[s]))
            counts[best] += n
            overall[best] += n
            out[subj] = best
    return out
