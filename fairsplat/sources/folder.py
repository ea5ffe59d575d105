"""``folder``: any folder of photos, searched recursively.

Subject = the file's relative path without extension (every photo its own
person) unless a labels CSV maps files to subjects. Without a mapping, splits
are only subject-disjoint if no person appears twice: give a mapping when they
do.

Optional ``labels_csv`` (path relative to the root, or absolute): one row per
file, keyed by the column ``key`` (a path relative to the root, e.g.
``images/a.jpg``); ``columns`` maps CSV column names to manifest columns, e.g.
``{"race_label": "label_race", "gender": "label_gender", "age": "label_age",
"person": "subject_id"}``. Files the CSV does not list keep their defaults.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from fairsplat.sources.manifest import DatasetMissing, Record, require

NAME = "folder"
EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".gif"})
LAYOUT = """
<root>/            any depth of sub-folders
  **/*.jpg|.jpeg|.png|.webp|.bmp|.tif|.tiff|.ppm|.pgm|.gif
  [labels.csv]     optional: <key column>, subject/label columns (see fairsplat/sources/folder.py)
"""
_LABEL_COLUMNS = {"subject_id", "label_race", "label_gender", "label_age", "fitzpatrick_gt", "ita_gt", "mask_path", "alpha_path"}


def list_images(root: Path) -> list[Path]:
    """Image files under ``root``, sorted (deterministic order), hidden folders skipped."""
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if p.suffix.lower() in EXTENSIONS and not any(part.startswith(".") for part in rel.parts) and p.is_file():
            out.append(p)
    return sorted(out)


def _read_labels(root: Path, labels_csv: str | Path, key: str, columns: dict[str, str], param: str) -> dict[str, dict]:
    path = Path(labels_csv) if Path(labels_csv).is_absolute() else root / labels_csv
    if not path.exists():
        raise DatasetMissing(param, root, LAYOUT, f"labels CSV {path} not found")
    bad = set(columns.values()) - _LABEL_COLUMNS
    if bad:
        raise ValueError(f"ingest.labels-columns: cannot map to {sorted(bad)} (allowed: {sorted(_LABEL_COLUMNS)})")
    out = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        absent = sorted(({key} | set(columns)) - set(reader.fieldnames or ()))
        if absent:
            raise DatasetMissing(param, root, LAYOUT, f"labels CSV {path} lacks columns {absent}")
        for row in reader:
            vals = {dst: (row.get(src) or None) for src, dst in columns.items()}
            if vals.get("ita_gt") is not None:
                vals["ita_gt"] = float(vals["ita_gt"])
            for k in ("mask_path", "alpha_path"):  # relative to the dataset root
                if vals.get(k) and not Path(vals[k]).is_absolute():
                    vals[k] = str(root / vals[k])
            out[Path(row[key]).as_posix()] = vals
    return out


def iter_records(
    root: str | Path,
    *,
    param: str = "ingest.path",
    labels_csv: str | Path | None = None,
    key: str = "path",
    columns: dict[str, str] | None = None,
    source: str = NAME,
) -> Iterator[Record]:
    root = require(root, param, LAYOUT)
    labels = _read_labels(root, labels_csv, key, columns or {}, param) if labels_csv else {}
    images = list_images(root)
    if not images:
        raise DatasetMissing(param, root, LAYOUT, "no image files found")
    for p in images:
        rel = p.relative_to(root).as_posix()
        extra = dict(labels.get(rel, {}))
        subject = extra.pop("subject_id", None) or str(Path(rel).with_suffix(""))
        yield Record(image_id=f"{source}/{rel}", source=source, subject_id=f"{source}/{subject}", path=str(p), **extra)
