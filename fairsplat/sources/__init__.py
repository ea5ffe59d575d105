"""Dataset adapters for the ``ingest`` stage: one module per dataset, one registry.

Every adapter is ``iter_records(root, *, param=..., ...) -> Iterator[Record]``
and yields rows of the single manifest schema in
:mod:`fairsplat.sources.manifest`. A missing or malformed dataset raises
:class:`~fairsplat.sources.manifest.DatasetMissing` naming the params key and
the expected layout.

``SOURCES`` is open: the SynthHeads generator registers ``"synth"`` from its own
module (``register_source("synth", iter_records, LAYOUT)``), carrying
ground-truth ``fitzpatrick_gt``, ``ita_gt`` and ``mask_path``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from fairsplat.sources import celebahq, celebvhq, fairface, folder
from fairsplat.sources.manifest import SCHEMA, DatasetMissing, Record, read_manifest, write_manifest


@dataclass(frozen=True)
class Source:
    iter_records: Callable[..., Iterator[Record]]
    layout: str  # expected directory layout, shown in errors and docs
    writes_files: bool  # needs ``out_dir`` (frames / merged label maps)


SOURCES: dict[str, Source] = {
    "folder": Source(folder.iter_records, folder.LAYOUT, False),
    "fairface": Source(fairface.iter_records, fairface.LAYOUT, False),
    "celebahq": Source(celebahq.iter_records, celebahq.LAYOUT, True),
    "celebvhq": Source(celebvhq.iter_records, celebvhq.LAYOUT, True),
}


def register_source(name: str, fn: Callable[..., Iterator[Record]], layout: str, writes_files: bool = False) -> None:
    """Add an adapter (e.g. ``synth``); names are unique."""
    if name in SOURCES and SOURCES[name].iter_records is not fn:
        raise ValueError(f"source {name!r} already registered")
    SOURCES[name] = Source(fn, layout, writes_files)


__all__ = ["SCHEMA", "SOURCES", "DatasetMissing", "Record", "Source", "read_manifest", "register_source", "write_manifest"]
