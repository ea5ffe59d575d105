"""What stage ``ingest``'s library needs to know (built by ``fairsplat.sections.ingest``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class IngestConfig:
    """One dataset adapter and its options; meanings are documented on the params section."""

    source: str = "synth"
    path: str = "data/raw/synth"
    labels_csv: str | None = None
    labels_key: str = "path"
    labels_columns: dict[str, str] = field(default_factory=dict)
    fairface_splits: tuple[str, ...] = ("train", "val")
    clips_dir: str | None = None
    frames_per_clip: int = 4
    limit: int | None = None
