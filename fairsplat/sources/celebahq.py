"""``celebahq``: CelebA-HQ images, with CelebAMask-HQ parsing masks when present.

Parsing masks come as one binary PNG per class
(``CelebAMask-HQ-mask-anno/<i // 2000>/<i:05d>_<class>.png``, 512 px). Given an
``out_dir``, the adapter merges them into one label map per image exactly as
CelebAMask-HQ's ``g_mask.py`` does (classes in order, later ones overwrite
earlier ones; ids are :data:`fairsplat.labels.LABEL`) and points ``mask_path``
at it. Curation then measures ITA on annotated skin instead of a
landmark polygon.

Subjects: from ``CelebA-HQ-identity.txt`` (``<i>.jpg <identity>`` per line,
distributed by third parties) when present; else from
``CelebA-HQ-to-CelebA-mapping.txt`` + CelebA's ``identity_CelebA.txt``; else
each image is its own subject — and then splits are NOT identity-disjoint
(CelebA-HQ has ~6,200 identities over 30,000 images). Gender and age come from
the ``Male`` and ``Young`` columns of ``CelebAMask-HQ-attribute-anno.txt``
(``Male``/``Female``, ``young``/``not_young``) when present.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from fairsplat.io.images import save_png
from fairsplat.labels import CELEBAMASK_CLASSES
from fairsplat.sources.manifest import Record, require

NAME = "celebahq"
IMG_DIR = "CelebA-HQ-img"
MASK_DIR = "CelebAMask-HQ-mask-anno"
LAYOUT = """
<root>/
  CelebA-HQ-img/<i>.jpg                                 i = 0..29999
  [CelebAMask-HQ-mask-anno/<i//2000>/<i:05d>_<class>.png]  optional parsing masks
  [CelebA-HQ-identity.txt]                              optional: "<i>.jpg <identity>"
  [CelebA-HQ-to-CelebA-mapping.txt + identity_CelebA.txt]  optional identity route
  [CelebAMask-HQ-attribute-anno.txt]                    optional: Male / Young attributes
"""


def _identities(root: Path) -> dict[str, str]:
    """CelebA-HQ file name -> identity string, from whichever file is present."""
    direct = root / "CelebA-HQ-identity.txt"
    if direct.exists():
        return dict(line.split()[:2] for line in direct.read_text().splitlines() if len(line.split()) >= 2)
    mapping, celeba = root / "CelebA-HQ-to-CelebA-mapping.txt", root / "identity_CelebA.txt"
    if mapping.exists() and celeba.exists():
        ident = dict(line.split()[:2] for line in celeba.read_text().splitlines() if len(line.split()) >= 2)
        out = {}
        for line in mapping.read_text().splitlines()[1:]:  # header: idx orig_idx orig_file
            parts = line.split()
            if len(parts) >= 3 and parts[2] in ident:
                out[f"{parts[0]}.jpg"] = ident[parts[2]]
        return out
    return {}


def _attributes(root: Path) -> dict[str, dict[str, str]]:
    path = root / "CelebAMask-HQ-attribute-anno.txt"
    if not path.exists():
        return {}
    lines = path.read_text().splitlines()
    names = lines[1].split()
    out = {}
    for line in lines[2:]:
        parts = line.split()
        if len(parts) != len(names) + 1:
            continue
        vals = dict(zip(names, parts[1:]))
        row = {}
        if "Male" in vals:
            row["label_gender"] = "Male" if vals["Male"] == "1" else "Female"
        if "Young" in vals:
            row["label_age"] = "young" if vals["Young"] == "1" else "not_young"
        out[parts[0]] = row
    return out


def merge_masks(mask_dir: Path, index: int) -> np.ndarray | None:  # -> uint8 [512, 512] or None
    """One CelebAMask-HQ label map from the per-class PNGs (None if none exist).

    A class PNG that cannot be read, or whose size differs from the others, raises ValueError naming it.
    """
    labels = None
    for cls_id, name in enumerate(CELEBAMASK_CLASSES[1:], start=1):
        f = mask_dir / str(index // 2000) / f"{index:05d}_{name}.png"
        if not f.exists():
            continue
        try:
            with Image.open(f) as im:
                m = np.asarray(im.convert("L")) > 127
        except (OSError, ValueError, SyntaxError) as err:  # UnidentifiedImageError is an OSError
            raise ValueError(f"{f}: unreadable mask ({err})"[:200]) from None
        if labels is None:
            labels = np.zeros(m.shape, np.uint8)
        elif m.shape != labels.shape:
            raise ValueError(f"{f}: mask {m.shape[1]}x{m.shape[0]}, the image's other masks are {labels.shape[1]}x{labels.shape[0]}")
        labels[m] = cls_id
    return labels


def _index(path: Path) -> int | None:
    return int(path.stem) if path.stem.isdigit() else None


def iter_records(
    root: str | Path,
    *,
    param: str = "ingest.path",
    out_dir: str | Path | None = None,
    missing: list[tuple[str, str]] | None = None,
) -> Iterator[Record]:
    """Every image; one whose parsing masks exist but cannot be merged goes to ``missing`` as ``(id, "bad_mask: ...")``
    (the item as listed, image plus annotation, cannot be delivered; delete the mask to keep the image unlabelled)."""
    root = require(root, param, LAYOUT, IMG_DIR)
    idents, attrs = _identities(root), _attributes(root)
    mask_dir = root / MASK_DIR
    images = sorted((p for p in (root / IMG_DIR).iterdir() if p.suffix.lower() == ".jpg"), key=lambda p: (_index(p) is None, _index(p) or 0, p.name))
    for p in images:
        i = _index(p)
        mask_path = None
        if out_dir is not None and i is not None and mask_dir.is_dir():
            try:
                labels = merge_masks(mask_dir, i)
            except ValueError as err:
                if missing is not None:
                    missing.append((f"{NAME}/{IMG_DIR}/{p.name}", f"bad_mask: {err}"[:200]))
                continue
            if labels is not None:
                mask_path = str(Path(out_dir) / "celebahq_labels" / f"{i:05d}.png")
                save_png(mask_path, labels)
        subject = idents.get(p.name, f"img{p.stem}")
        yield Record(
            image_id=f"{NAME}/{IMG_DIR}/{p.name}",
            source=NAME,
            subject_id=f"{NAME}/{subject}",
            path=str(p),
            mask_path=mask_path,
            **attrs.get(p.name, {}),
        )
