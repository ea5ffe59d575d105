"""``fairface``: FairFace (Kärkkäinen & Joo, WACV 2021), as distributed.

Labels come from ``fairface_label_{train,val}.csv`` with columns
``file,age,gender,race,service_test``; ``file`` is relative to the root
(``train/1.jpg``). Race values are FairFace's seven groups (White, Black,
Latino_Hispanic, East Asian, Southeast Asian, Indian, Middle Eastern), kept
verbatim; age is a bucket ("20-29").

Subjects: FairFace has no identity labels. Its images were collected to be of
distinct people, so each image is its own subject; duplicated people, if any,
can leak across our splits (a known limitation of the dataset, not fixable
here without face-descriptor de-duplication).

Works for both released paddings (``fairface-img-margin025-trainval`` and
``margin125``): the layout is the same.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from fairsplat.sources.manifest import DatasetMissing, Record, require

NAME = "fairface"
LAYOUT = """
<root>/
  fairface_label_train.csv   file,age,gender,race,service_test
  fairface_label_val.csv
  train/<n>.jpg
  val/<n>.jpg
"""


def iter_records(
    root: str | Path,
    *,
    param: str = "ingest.path",
    splits: tuple[str, ...] = ("train", "val"),
    missing: list[tuple[str, str]] | None = None,
) -> Iterator[Record]:
    """Rows of the label CSVs whose image exists; absent files go to ``missing`` as (id, "file_absent")."""
    root = require(root, param, LAYOUT, *[f"fairface_label_{s}.csv" for s in splits], *splits)
    for split in splits:
        with open(root / f"fairface_label_{split}.csv", newline="") as fh:
            reader = csv.DictReader(fh)
            need = {"file", "age", "gender", "race"}
            if not need <= set(reader.fieldnames or ()):
                raise DatasetMissing(param, root, LAYOUT, f"fairface_label_{split}.csv lacks columns {sorted(need - set(reader.fieldnames or ()))}")
            for row in reader:
                rel = Path(row["file"]).as_posix()
                path = root / rel
                if not path.is_file():
                    if missing is not None:
                        missing.append((f"{NAME}/{rel}", "file_absent"))
                    continue
                yield Record(
                    image_id=f"{NAME}/{rel}",
                    source=NAME,
                    subject_id=f"{NAME}/{Path(rel).with_suffix('')}",
                    path=str(path),
                    label_race=row["race"] or None,
                    label_gender=row["gender"] or None,
                    label_age=row["age"] or None,
                )
