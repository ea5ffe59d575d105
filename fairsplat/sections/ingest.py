"""Params of stage ``ingest``: which dataset feeds curation, and where it lives.

One ``source`` and one ``path`` (the dataset's root in its released layout),
so that dvc.yaml can depend on ``${ingest.path}``: switching to a folder of
photos re-runs ingest when the photos change, and no longer needs SynthHeads
to be rendered. Layouts: ``fairsplat/sources/<source>.py`` and the README.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from fairsplat.config import Section

_FOLDER_ONLY = ("labels_csv", "labels_columns")
_FAIRFACE_ONLY = ("fairface_splits",)
_CELEBVHQ_ONLY = ("clips_dir",)


class IngestParams(Section):
    section: ClassVar[str] = "ingest"

    source: Literal["synth", "folder", "fairface", "celebahq", "celebvhq"] = "synth"
    """Dataset adapter. synth (SynthHeads, rendered by stage synth) is the default
    because no real dataset can be downloaded here and it has exact ground truth."""

    path: str = "data/raw/synth"
    """Root of the dataset in its released layout (absolute, or relative to the
    repo). The default is stage synth's output, so `dvc repro` chains synth -> ingest."""

    labels_csv: str | None = None
    """source=folder only: optional CSV giving subjects/labels per file (relative to
    path or absolute). Without it every photo is its own subject."""

    labels_key: str = "path"
    """source=folder only: the CSV column holding the file path relative to ``path``."""

    labels_columns: dict[str, str] = {}
    """source=folder only: CSV column -> manifest column (subject_id, label_race,
    label_gender, label_age, fitzpatrick_gt, ita_gt), e.g. {person: subject_id}."""

    fairface_splits: list[Literal["train", "val"]] = ["train", "val"]
    """source=fairface only: which label CSVs to read; both by default, since curation
    draws its own subject-disjoint splits."""

    clips_dir: str | None = None
    """source=celebvhq only: where the processed <clip_id>.mp4 files are (searched
    recursively); null = under ``path``."""

    frames_per_clip: int = Field(4, ge=1, le=1000)
    """source=celebvhq: frames sampled evenly per clip (first and last included).
    4 gives pose/expression variety without flooding one identity's type bin."""

    limit: int | None = Field(None, ge=1)
    """Keep only the first N records (dataset order): a quick look at a big
    dataset. null = all."""

    @model_validator(mode="after")
    def _source_keys(self) -> IngestParams:
        only = {"folder": _FOLDER_ONLY, "fairface": _FAIRFACE_ONLY, "celebvhq": _CELEBVHQ_ONLY}
        defaults = {"labels_csv": None, "labels_columns": {}, "fairface_splits": ["train", "val"], "clips_dir": None}
        for src, keys in only.items():
            for k in keys:
                if self.source != src and getattr(self, k) != defaults[k]:
                    raise ValueError(f"ingest.{k.replace('_', '-')} applies to source={src}, not source={self.source}")
        if not self.fairface_splits:
            raise ValueError("ingest.fairface-splits: give at least one of train, val")
        return self

    def ingest_config(self):
        """The library's IngestConfig (fairsplat/sources/config.py)."""
        from fairsplat.sources.config import IngestConfig

        return self.to_config(IngestConfig)
