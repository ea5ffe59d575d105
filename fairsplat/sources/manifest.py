"""The ingest manifest: ONE schema for every dataset adapter (Parquet).

One row per input image (a video frame is an image). Columns, in order:

=============== ========= ==================================================
column          type      meaning
=============== ========= ==================================================
image_id        string    unique, stable: ``<source>/<path relative to the
                          dataset root>`` (frames: ``celebvhq/<clip>/<frame>``)
source          string    adapter name (``folder``, ``fairface``, ...)
subject_id      string    identity key for subject-disjoint splits, prefixed by
                          the source; when a dataset has no identities it is
                          the image itself (documented per adapter)
path            string    the image file, as the adapter found or wrote it
                          (relative when the dataset root was given relative)
frame_index     int32?    frame number in the clip; null for still photos
label_race      string?   dataset's own race/ethnicity label, verbatim. NOT a
                          skin-tone label; used only for per-group sanity checks
label_gender    string?   dataset's gender label, verbatim
label_age       string?   dataset's age label (a number or a bucket), verbatim
fitzpatrick_gt  string?   ground-truth Fitzpatrick "I".."VI" (synthetic data)
ita_gt          float64?  ground-truth ITA° of the skin albedo (synthetic data)
mask_path       string?   CelebAMask-HQ-id label map PNG (uint8 [H, W]); may be
                          lower resolution than the image (nearest-resized)
alpha_path      string?   ground-truth foreground alpha PNG (uint8 [H, W], same
                          size as the image; SynthHeads)
landmarks       list?     ground-truth iBUG-68 landmarks, [68][2] (x, y) image
                          pixels, pixel centres at integers (SynthHeads); null =
                          detect them
=============== ========= ==================================================

``?`` = nullable. Adapters yield :class:`Record`; :func:`write_manifest` checks
the schema and writes atomically.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fairsplat.io.tables import write_table
from fairsplat.labels import FITZPATRICK

SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("subject_id", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("frame_index", pa.int32()),
        pa.field("label_race", pa.string()),
        pa.field("label_gender", pa.string()),
        pa.field("label_age", pa.string()),
        pa.field("fitzpatrick_gt", pa.string()),
        pa.field("ita_gt", pa.float64()),
        pa.field("mask_path", pa.string()),
        pa.field("alpha_path", pa.string()),
        pa.field("landmarks", pa.list_(pa.list_(pa.float32(), 2))),  # 68 rows (checked); an outer
        # fixed_size_list with nulls does not read back in pyarrow 22
    ]
)


@dataclass(frozen=True)
class Record:
    image_id: str
    source: str
    subject_id: str
    path: str
    frame_index: int | None = None
    label_race: str | None = None
    label_gender: str | None = None
    label_age: str | None = None
    fitzpatrick_gt: str | None = None
    ita_gt: float | None = None
    mask_path: str | None = None
    alpha_path: str | None = None
    landmarks: list[list[float]] | None = None  # [68][2]

    def __post_init__(self):
        if self.fitzpatrick_gt is not None and self.fitzpatrick_gt not in FITZPATRICK:
            raise ValueError(f"{self.image_id}: fitzpatrick_gt={self.fitzpatrick_gt!r} not in {FITZPATRICK}")
        if self.landmarks is not None and (len(self.landmarks) != 68 or any(len(p) != 2 for p in self.landmarks)):
            raise ValueError(f"{self.image_id}: landmarks must be [68][2], got {len(self.landmarks)} points")


assert [f.name for f in fields(Record)] == SCHEMA.names  # one schema, two spellings


class DatasetMissing(FileNotFoundError):
    """A dataset path is absent or not in the expected layout; names the param."""

    def __init__(self, param: str, path: str | Path, layout: str, what: str = ""):
        msg = f"{param}={str(path)!r}: {what or 'not found'}.\nExpected layout:\n{layout.strip()}"
        super().__init__(msg)
        self.param = param


def require(root: str | Path, param: str, layout: str, *needed: str) -> Path:
    """Check ``root`` exists and holds each relative path in ``needed``."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetMissing(param, root, layout, "directory not found")
    missing = [n for n in needed if not (root / n).exists()]
    if missing:
        raise DatasetMissing(param, root, layout, f"missing {', '.join(missing)}")
    return root


def write_manifest(records: Iterable[Record], path: str | Path) -> int:
    """Write records as Parquet (atomically); returns the row count."""
    rows = [asdict(r) for r in records]
    ids = [r["image_id"] for r in rows]
    if len(set(ids)) != len(ids):
        dup = sorted(i for i, n in Counter(ids).items() if n > 1)[:5]
        raise ValueError(f"duplicate image_id in manifest: {dup}")
    return write_table(rows, SCHEMA, path)


def read_manifest(path: str | Path) -> list[Record]:
    table = pq.read_table(path)
    if table.schema.names != SCHEMA.names:
        raise ValueError(f"{path}: columns {table.schema.names} != manifest schema {SCHEMA.names}")
    return [Record(**row) for row in table.to_pylist()]
