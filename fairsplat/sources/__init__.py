"""Dataset adapters for the ``ingest`` stage: one module per dataset, one registry.

Every adapter is ``iter_records(root, *, param=..., ...) -> Iterator[Record]``
and yields rows of the single manifest schema in
:mod:`fairsplat.sources.manifest`. A missing or malformed dataset raises
:class:`~fairsplat.sources.manifest.DatasetMissing` naming the params key and
the expected layout. Entries a dataset lists but cannot deliver (a FairFace
row whose file is absent, a deleted CelebV-HQ clip) are appended to
``missing`` as ``(reference, reason)``: recorded, never silently lost.

``SOURCES`` maps each ``ingest.source`` value to its adapter and to the
function that turns the ``ingest`` params into the adapter's keyword
arguments (``options(cfg, out_dir, missing)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairsplat.sources import celebahq, celebvhq, fairface, folder, synth
from fairsplat.sources.manifest import SCHEMA, DatasetMissing, Record, read_manifest, write_manifest

Missing = list[tuple[str, str]]  # (reference, reason)


@dataclass(frozen=True)
class Source:
    iter_records: Callable[..., Iterator[Record]]
    layout: str  # expected directory layout, shown in errors and docs
    options: Callable[[Any, Path, Missing], dict]  # (IngestConfig, out_dir, missing) -> kwargs


SOURCES: dict[str, Source] = {
    "synth": Source(synth.iter_records, synth.LAYOUT, lambda c, o, m: {"missing": m}),
    "folder": Source(
        folder.iter_records,
        folder.LAYOUT,
        lambda c, o, m: {"labels_csv": c.labels_csv, "key": c.labels_key, "columns": dict(c.labels_columns)},
    ),
    "fairface": Source(fairface.iter_records, fairface.LAYOUT, lambda c, o, m: {"splits": tuple(c.fairface_splits), "missing": m}),
    "celebahq": Source(celebahq.iter_records, celebahq.LAYOUT, lambda c, o, m: {"out_dir": o, "missing": m}),
    "celebvhq": Source(
        celebvhq.iter_records,
        celebvhq.LAYOUT,
        lambda c, o, m: {"out_dir": o, "clips_dir": c.clips_dir, "n_frames": c.frames_per_clip, "missing": m},
    ),
}


__all__ = ["SCHEMA", "SOURCES", "DatasetMissing", "Missing", "Record", "Source", "read_manifest", "write_manifest"]
