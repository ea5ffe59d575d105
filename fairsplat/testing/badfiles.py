"""A zoo of awkward input files, each with the outcome curation must give it.

Why in ``fairsplat.testing`` (importable, not under tests/): the bad-input guarantees (never crash; reject with a
reason or handle) are a contract of the ``curate`` stage, and the same zoo
serves its tests, the benchmark and anyone checking a new loader. Every entry
writes one file derived from a face image (uint8 [H, W, 3], e.g. a shaded
test card that dlib detects) and returns its path and the expected outcome:
a reject reason from ``curate.item.REJECT_REASONS``, or None when the file
must be *handled* (converted and accepted).

The hand-made PNGs (16-bit RGB, lying headers) are written chunk by chunk
with zlib, because PIL cannot save 48-bit RGB and will not write a header
that disagrees with its pixels.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(pixels: np.ndarray, bit_depth: int = 8, header_size: tuple[int, int] | None = None) -> bytes:
    """A PNG of uint8 [H, W] / [H, W, 3] pixels, stored at ``bit_depth`` 8 or 16.

    ``header_size`` (w, h) overrides the size written in IHDR: a lying header
    (the decompression-bomb shape) whose data is far too short.
    """
    h, w = pixels.shape[:2]
    colour = 0 if pixels.ndim == 2 else 2
    data = pixels.astype(">u2") * 257 if bit_depth == 16 else pixels.astype(np.uint8)
    raw = b"".join(b"\x00" + data[y].tobytes() for y in range(h))  # filter type 0 per row
    hw, hh = header_size or (w, h)
    ihdr = struct.pack(">IIBBBBB", hw, hh, bit_depth, colour, 0, 0, 0)
    return PNG_MAGIC + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def _jpeg(face: np.ndarray, path: Path, **kw) -> Path:
    Image.fromarray(face).save(path, format="JPEG", quality=95, **kw)
    return path


def _truncated(d: Path, face: np.ndarray) -> Path:
    full = _jpeg(face, d / "truncated.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(full[: len(full) * 6 // 10])
    return d / "truncated.jpg"


def _exif_rotated(d: Path, face: np.ndarray) -> Path:
    """Pixels stored rotated; EXIF orientation 6 ("rotate 90 CW to view") makes them upright."""
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = np.rot90(face, k=1)  # 90 CCW: a viewer's 90 CW turn restores the face
    return _jpeg(np.ascontiguousarray(stored), d / "exif_rotated.jpg", exif=exif.tobytes())


def _rgba(d: Path, face: np.ndarray) -> Path:
    alpha = np.full(face.shape[:2], 255, np.uint8)
    alpha[:, : face.shape[1] // 10] = 0  # a transparent strip: alpha is not all-opaque
    Image.fromarray(np.dstack([face, alpha])).save(d / "rgba.png")
    return d / "rgba.png"


def _write(name: str, data: bytes) -> Callable[[Path, np.ndarray], Path]:
    def w(d: Path, face: np.ndarray) -> Path:
        (d / name).write_bytes(data)
        return d / name

    return w


def _grey(face: np.ndarray) -> np.ndarray:  # [H, W, 3] -> [H, W]
    return np.asarray(Image.fromarray(face).convert("L"))


ZOO: dict[str, tuple[Callable[[Path, np.ndarray], Path], str | None]] = {
    "truncated_jpeg": (_truncated, "truncated"),
    "random_bytes": (_write("random.jpg", np.random.default_rng(0).bytes(4096)), "not_an_image"),
    "html_as_jpeg": (_write("page.jpg", b"<!DOCTYPE html><html><body>404</body></html>"), "not_an_image"),
    "empty_file": (_write("empty.png", b""), "not_an_image"),
    "lying_header_81mp": (lambda d, f: _write("huge.png", png_bytes(f[:4, :4], header_size=(9000, 9000)))(d, f), "too_large"),
    "bomb_900mp": (lambda d, f: _write("bomb.png", png_bytes(f[:4, :4], header_size=(30000, 30000)))(d, f), "too_large"),
    "tiny": (lambda d, f: _jpeg(np.asarray(Image.fromarray(f).resize((16, 16))), d / "tiny.jpg"), "too_small"),
    "greyscale_jpeg": (lambda d, f: (Image.fromarray(_grey(f)).save(d / "grey.jpg", quality=95), d / "grey.jpg")[1], "greyscale"),
    "grey_stored_as_rgb": (lambda d, f: _jpeg(np.repeat(_grey(f)[..., None], 3, 2), d / "grey_rgb.jpg"), "greyscale"),
    "grey16_png": (lambda d, f: _write("grey16.png", png_bytes(_grey(f), bit_depth=16))(d, f), "greyscale"),
    "no_face": (lambda d, f: _jpeg(np.random.default_rng(1).integers(0, 256, f.shape, dtype=np.uint8), d / "noise.jpg"), "no_face"),
    "rgb16_png": (lambda d, f: _write("rgb16.png", png_bytes(f, bit_depth=16))(d, f), None),
    "cmyk_jpeg": (lambda d, f: (Image.fromarray(f).convert("CMYK").save(d / "cmyk.jpg", quality=95), d / "cmyk.jpg")[1], None),
    "rgba_png": (_rgba, None),
    "exif_rotated": (_exif_rotated, None),
    "webp": (lambda d, f: (Image.fromarray(f).save(d / "face.webp", quality=95), d / "face.webp")[1], None),
    "plain_png": (lambda d, f: (Image.fromarray(f).save(d / "face.png"), d / "face.png")[1], None),
}
"""name -> (writer(dir, face) -> path, expected reject reason or None = handled and accepted)."""


def write_zoo(root: str | Path, face: np.ndarray) -> dict[str, tuple[Path, str | None]]:
    """Write every entry of :data:`ZOO` into ``root``; name -> (path, expected outcome)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    return {name: (writer(root, face), expect) for name, (writer, expect) in ZOO.items()}
