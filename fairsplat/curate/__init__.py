"""Curation for the ``curate`` stage: plain functions, no CLI (the stage wraps them).

``curate(records, out_dir, CurateConfig(...))`` is the whole job; ``analyse`` /
``render`` handle one input; ``balance`` / ``assign_splits`` are the
selection logic. See each module for the why.
"""

from fairsplat.curate.balance import Candidate, assign_splits, balance
from fairsplat.curate.item import REJECT_REASONS, Analysis, analyse, render
from fairsplat.curate.run import CurateResult, analyse_all, curate

__all__ = [
    "REJECT_REASONS", "Analysis", "Candidate", "CurateResult",
    "analyse", "analyse_all", "assign_splits", "balance", "curate", "render",
]  # fmt: skip
