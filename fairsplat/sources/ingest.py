"""The ``ingest`` stage's work: one dataset -> one manifest in the shared schema.

``run_ingest(cfg, out_dir)`` writes into ``out_dir``::

    manifest.parquet   one row per usable input (schema: sources/manifest.py)
    missing.parquet    one row per entry the dataset lists but cannot deliver:
                       ref (string), reason (string: file_absent, clip_absent,
                       undecodable: ..., no_frames,
                       bad_mask: ...)
    celebvhq/, celebahq_labels/   frames / merged label maps, for those sources

and returns the numbers for ``metrics/ingest.json``: ``total`` (entries the
dataset lists) = ``accepted`` (manifest rows) + ``rejected`` (missing rows).
Images are not opened here (curation does that, with a reason per bad file),
so ingest is cheap even for FairFace's 108K files.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
from tqdm import tqdm

from fairsplat.io.tables import write_table
from fairsplat.labels import FITZPATRICK
from fairsplat.metrics.fairness import Stat, count, per_fitzpatrick
from fairsplat.sources.config import IngestConfig
from fairsplat.sources import SOURCES, Missing, Record, write_manifest

MISSING_SCHEMA = pa.schema([("ref", pa.string()), ("reason", pa.string())])


def collect(cfg: IngestConfig, out_dir: str | Path) -> tuple[list[Record], Missing]:
    """Records of ``cfg.source`` under ``cfg.path`` (first ``cfg.limit``), and what was missing."""
    src = SOURCES[cfg.source]
    missing: Missing = []
    it = src.iter_records(cfg.path, param="ingest.path", **src.options(cfg, Path(out_dir), missing))
    records: list[Record] = []
    for rec in tqdm(it, desc=f"ingest {cfg.source}", unit="item", mininterval=1.0):
        records.append(rec)
        if cfg.limit is not None and len(records) >= cfg.limit:
            break
    return records, missing


def ingest_metrics(records: Sequence[Record], missing: Missing, cfg: IngestConfig) -> dict:
    """Counts for ``metrics/ingest.json``; ``per_fitzpatrick`` only where ground truth exists."""
    out: dict = {
        "source": cfg.source,
        "total": len(records) + len(missing),
        "accepted": len(records),
        "rejected": len(missing),
        "subjects": len({r.subject_id for r in records}),
        "with_landmarks": sum(r.landmarks is not None for r in records),
        "with_labels": sum(r.mask_path is not None for r in records),
        "with_alpha": sum(r.alpha_path is not None for r in records),
        "with_race_label": sum(r.label_race is not None for r in records),
    }
    reasons = Counter(reason.split(":")[0] for _, reason in missing)
    out |= {f"rejected_{k}": v for k, v in sorted(reasons.items())}
    if any(r.fitzpatrick_gt for r in records):  # counts only: exact, so no intervals (metrics/fairness.py)
        rows = [{"fitzpatrick": r.fitzpatrick_gt, "subject_id": r.subject_id} for r in records]
        stats = {"images": count(), "subjects": Stat(reduce=lambda rs: len({r["subject_id"] for r in rs}), ci=False)}
        out |= per_fitzpatrick(rows, stats, types=FITZPATRICK)
    return out


def write_missing(missing: Missing, path: str | Path) -> None:
    write_table([{"ref": r, "reason": why} for r, why in missing], MISSING_SCHEMA, path)


def relocate(records: list[Record], tmp: Path, final: Path) -> list[Record]:
    """Point paths written under ``tmp`` (an atomic_dir) at where it will be renamed to."""
    def move(p: str | None) -> str | None:
        if p is None or not Path(p).is_relative_to(tmp):
            return p
        return str(final / Path(p).relative_to(tmp))

    return [replace(r, path=move(r.path), mask_path=move(r.mask_path), alpha_path=move(r.alpha_path)) for r in records]


def run_ingest(cfg: IngestConfig, out_dir: str | Path, final_dir: str | Path | None = None) -> dict:
    """Collect, write the manifest and the missing table into ``out_dir``; return metrics.

    ``final_dir``: where ``out_dir`` ends up (the stage writes into a temporary
    atomic_dir); paths of files written here (frames, label maps) point there.
    """
    out_dir = Path(out_dir)
    records, missing = collect(cfg, out_dir)
    if final_dir is not None:
        records = relocate(records, out_dir, Path(final_dir))
    write_manifest(records, out_dir / "manifest.parquet")
    write_missing(missing, out_dir / "missing.parquet")
    return ingest_metrics(records, missing, cfg)
