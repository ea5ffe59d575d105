"""Images the pipeline writes and reads back: RGB PNGs and label maps.

Why two loaders in the project: files a stage wrote itself (crops, renders,
label maps) are trusted, so :func:`load_rgb` here is the fast path (decode and
convert, nothing else), while photos from datasets and users go through
:func:`fairsplat.io.photos.load_photo`, which checks EXIF, CMYK, 16-bit depth
and decompression bombs and says why it refused one.

PNG is the one image format stages write: lossless, so a label map survives
and a crop written then read back is the crop that was measured.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fairsplat.io.atomic import atomic_path
from fairsplat.labels import NUM_CLASSES

FAST_PNG = 1
"""zlib level for bulk writes: ~5x faster than the default 6 and ~10 % larger
on photos; crops are written once and read often."""

SMALL_PNG = 6
"""zlib's default level: for label maps and rarely written files, where size
matters more than write time (and the bytes match what PIL wrote by default)."""


def _load(path: str | Path, mode: str) -> np.ndarray:
    with Image.open(path) as im:
        return np.array(im.convert(mode), dtype=np.uint8)  # a copy: writable, unlike np.asarray(im)


def load_rgb(path: str | Path) -> np.ndarray:  # -> uint8 [H, W, 3]
    """A trusted image file as RGB uint8 (greyscale/RGBA converted, alpha dropped)."""
    return _load(path, "RGB")


def load_grey(path: str | Path) -> np.ndarray:  # -> uint8 [H, W]
    """A trusted single-channel image (an alpha mask) as uint8; colour is converted to luma."""
    return _load(path, "L")


def load_labels(path: str | Path, n_classes: int = NUM_CLASSES) -> np.ndarray:  # -> uint8 [H, W]
    """A label-map PNG as ids; a ValueError (naming the file) unless it is one channel of ids < ``n_classes``.

    Why checked although trusted: a label map saved as RGB, or with another
    scheme's ids, would otherwise be read as wrong classes without a word.
    """
    with Image.open(path) as im:
        if im.mode not in ("L", "P", "I", "I;16"):
            raise ValueError(f"{path}: label map mode {im.mode}, expected a single channel of ids")
        arr = np.asarray(im)
    if arr.ndim != 2:
        raise ValueError(f"{path}: label map has shape {arr.shape}, expected [H, W]")
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(f"{path}: ids outside [0, {n_classes})")
    return arr.astype(np.uint8)


def save_png(
    path: str | Path,
    arr: np.ndarray,  # uint8 [H, W] (grey / label ids), [H, W, 3] or [H, W, 4]
    *,
    compress_level: int = FAST_PNG,
    compress_type: int | None = None,
    atomic: bool = True,
) -> None:
    """Write ``arr`` as a PNG, atomically unless ``atomic=False``.

    ``compress_type``: a zlib strategy (``zlib.Z_RLE`` suits label maps and
    smooth crops). ``atomic=False`` is for the many files of a stage staged in
    an :func:`~fairsplat.io.atomic.atomic_dir`: the directory swap already
    makes the output all-or-nothing, and a per-file fsync (~8 ms here) would
    cost about as much as encoding a 512 px crop.
    """
    assert arr.dtype == np.uint8 and (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))), (arr.dtype, arr.shape)
    options = {"compress_level": compress_level} | ({"compress_type": compress_type} if compress_type is not None else {})
    if not atomic:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path, format="PNG", **options)
        return
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(arr).save(tmp, format="PNG", **options)
