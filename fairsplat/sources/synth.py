"""``synth``: SynthHeads, the embedded default dataset (stage ``synth``).

SynthHeads is rendered by the project itself (layout and columns documented at
the top of :mod:`fairsplat.synth.dataset`), so it carries exact ground truth,
and this adapter keeps all of it in the shared :class:`Record` schema:

=================== =======================================================
Record column       from the SynthHeads manifest
=================== =======================================================
image_id            ``synth/<image_id>`` (``id_0003_f01_v02``)
subject_id          ``synth/<identity_id>``: all frames and views of one
                    identity stay in one split
path                ``<root>/<rgb_path>``
frame_index         ``frame``
fitzpatrick_gt      ``fitzpatrick`` (the type the identity's albedo was drawn in)
ita_gt              ``ita_gt`` (ITA of the skin albedo, before lighting)
mask_path           ``<root>/<label_path>``: CelebAMask-HQ label map, so ITA is
                    measured on rendered skin and the parser gets crops' labels
alpha_path          ``<root>/<alpha_path>``: the ground-truth foreground
landmarks           ``landmarks`` reshaped [68][2] minus 0.5 px: SynthHeads
                    projects with pixel (i, j) centred at (j + 0.5, i + 0.5)
                    (the rasteriser's convention), the manifest puts pixel
                    centres at integers (dlib's and numpy's)
=================== =======================================================

Why a reader of the manifest rather than of the folders: the manifest is the
synth stage's contract; file names are an implementation detail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from fairsplat.sources.manifest import DatasetMissing, Record, require

NAME = "synth"
PIXEL_OFFSET = 0.5  # SynthHeads pixel-corner coordinates -> pixel-centre-at-integer coordinates
NEEDED = ("image_id", "identity_id", "frame", "fitzpatrick", "ita_gt", "rgb_path", "alpha_path", "label_path", "landmarks")
LAYOUT = """
<root>/                      written by `python -m stages.synth` (dvc.yaml: data/raw/synth)
  manifest.parquet           image_id, identity_id, frame, fitzpatrick, ita_gt, rgb_path,
                             alpha_path, label_path, landmarks [136] (see fairsplat/synth/dataset.py)
  images/ alpha/ labels/     <identity>/f<frame>_v<view>.png
"""


def iter_records(root: str | Path, *, param: str = "ingest.path", missing: list | None = None) -> Iterator[Record]:
    """One Record per rendered image, in manifest order; rows whose image file is
    absent go to ``missing`` as (image_id, "file_absent")."""
    root = require(root, param, LAYOUT, "manifest.parquet")
    table = pq.read_table(root / "manifest.parquet")
    absent = [c for c in NEEDED if c not in table.column_names]
    if absent:
        raise DatasetMissing(param, root, LAYOUT, f"manifest.parquet lacks columns {absent}")
    for r in table.select(list(NEEDED)).to_pylist():
        flat = r["landmarks"]
        if not (root / r["rgb_path"]).is_file():
            if missing is not None:
                missing.append((f"{NAME}/{r['image_id']}", "file_absent"))
            continue
        yield Record(
            image_id=f"{NAME}/{r['image_id']}",
            source=NAME,
            subject_id=f"{NAME}/{r['identity_id']}",
            path=str(root / r["rgb_path"]),
            frame_index=int(r["frame"]),
            fitzpatrick_gt=r["fitzpatrick"],
            ita_gt=float(r["ita_gt"]),
            mask_path=str(root / r["label_path"]),
            alpha_path=str(root / r["alpha_path"]),
            landmarks=[[float(flat[2 * k]) - PIXEL_OFFSET, float(flat[2 * k + 1]) - PIXEL_OFFSET] for k in range(68)],
        )
