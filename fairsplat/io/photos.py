"""Robust loading of untrusted photos: every input becomes RGB uint8 or a reason.

Why apart from :mod:`fairsplat.io.images` (whose ``load_rgb`` reads files the
pipeline wrote itself, fast and unchecked): datasets scraped from the web and
users' photo folders hold everything — truncated downloads, HTML saved as
``.jpg``, CMYK print scans, 16-bit PNGs, palette GIF-likes, greyscale
portraits, phone photos that rely on the EXIF orientation tag, and the
occasional decompression bomb. Curation must never crash on one of them and
must say *why* it dropped it, so :func:`load_photo` either returns
``(rgb uint8 [H, W, 3], ImageInfo)`` or raises :class:`BadImage` whose
``reason`` is one short machine-readable word:

``unreadable``   the file cannot be opened (missing, a directory, no permission)
``not_an_image`` PIL does not recognise the bytes
``truncated``    the header is fine but pixel data ends early / is corrupt
``too_small``    the shorter side is below ``min_side``
``too_large``    more than ``max_pixels`` pixels (checked from the header,
                 before decoding, so a bomb never allocates)
``greyscale``    only when ``allow_greyscale=False``; otherwise reported as
                 ``info.is_greyscale`` so the caller can decide.

Alpha is never silently dropped: it is returned as ``info.alpha`` (uint8
[H, W]) and the RGB is left un-composited, because curation uses it as the
ground-truth foreground mask when compositing on grey.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

REASONS: tuple[str, ...] = ("unreadable", "not_an_image", "truncated", "too_small", "too_large", "greyscale")

DEFAULT_MAX_PIXELS = 64_000_000
"""64 MP: larger than any camera photo we expect, far below what exhausts RAM
(an RGB 64 MP image is 192 MB). PIL's own bomb limit (89 MP warn, 179 MP error)
is a backstop behind this one."""

GREY_TOLERANCE = 6
"""Max |R-G|, |G-B| (8-bit levels, 99th percentile) for a picture to count as
greyscale. JPEG chroma subsampling leaves a few levels of colour noise on true
greyscale photos; real colour photos of faces sit well above 15."""


_WIDE_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_GREY_MODES = ("L", "LA", "La", "1", *_WIDE_GREY)


class BadImage(Exception):
    """An input that cannot be used; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class ImageInfo:
    """What was learnt while loading; ``width``/``height`` are after EXIF rotation."""

    width: int
    height: int
    format: str | None  # "JPEG", "PNG", ...
    mode: str  # PIL mode of the file before conversion ("RGB", "CMYK", "I;16", ...)
    bit_depth: int  # bits per channel in the file (8 or 16; 32 for float/int modes)
    orientation: int  # EXIF orientation tag that was applied (1 = none)
    is_greyscale: bool
    alpha: np.ndarray | None = None  # uint8 [H, W]; None when fully opaque or absent


def _open(src: str | Path | bytes) -> Image.Image:
    try:
        if isinstance(src, bytes | bytearray):
            return Image.open(io.BytesIO(src))
        return Image.open(src)
    except UnidentifiedImageError as err:
        raise BadImage("not_an_image", str(err)) from None
    except Image.DecompressionBombError as err:
        raise BadImage("too_large", str(err)) from None
    except (OSError, ValueError) as err:  # missing file, directory, permissions
        raise BadImage("unreadable", str(err)) from None


def _check_size(w: int, h: int, min_side: int, max_pixels: int) -> None:
    if w * h > max_pixels:
        raise BadImage("too_large", f"{w}x{h} > {max_pixels} pixels")
    if min(w, h) < min_side:
        raise BadImage("too_small", f"{w}x{h}, shorter side < {min_side}")


def _decode(img: Image.Image) -> Image.Image:
    """Force the lazy decode so truncation surfaces here, as a reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise BadImage("too_large", str(err)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        msg = str(err)
        raise BadImage("truncated", msg) from None
    return img


def _orient(img: Image.Image) -> tuple[Image.Image, int]:
    """Apply the EXIF orientation tag; a corrupt EXIF block is ignored, not fatal."""
    try:
        orientation = int(img.getexif().get(0x0112, 1) or 1)
        out = ImageOps.exif_transpose(img)
        return (out if out is not None else img), orientation
    except Exception:  # noqa: BLE001  (PIL raises many types on broken EXIF)
        return img, 1


def _to_array(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None, int]:
    """-> rgb uint8 [H, W, 3], alpha uint8 [H, W] or None, bits per channel."""
    mode = img.mode
    if mode in _WIDE_GREY:
        # PIL's convert("L") clips 16-bit values at 255 instead of scaling them.
        arr = np.asarray(img).astype(np.float64)
        if mode == "F":
            top = 1.0 if arr.max() <= 1.0 else 255.0  # float images: [0,1] or [0,255]
        elif mode == "I" and arr.max() <= 255:
            top = 255.0  # some PNG readers give 8-bit data in mode I
        else:
            top = 65535.0
        grey = np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2), None, 32 if mode in ("I", "F") else 16
    bits = 8
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")
    elif mode == "1":
        img = img.convert("L")
    if img.mode == "RGBA":
        arr = np.asarray(img)
        alpha = np.ascontiguousarray(arr[..., 3])
        return np.ascontiguousarray(arr[..., :3]), (None if alpha.min() == 255 else alpha), bits
    # CMYK, YCbCr, LAB, HSV, L: PIL's converters; Adobe-inverted CMYK JPEGs are
    # un-inverted by PIL's JPEG plugin. ICC profiles are not applied (documented gap).
    return np.asarray(img.convert("RGB")), None, bits


def _stored_16bit(img: Image.Image) -> bool:
    """True when the file stores 16 bits per channel (PIL reads 48/64-bit PNGs as 8-bit modes)."""
    try:
        return any(";16" in str(t.args) for t in img.tile)
    except (AttributeError, TypeError):
        return False


def is_greyscale_rgb(rgb: np.ndarray, tol: int = GREY_TOLERANCE) -> bool:
    """True when R, G and B agree to ``tol`` levels on 99 % of (subsampled) pixels."""
    assert rgb.ndim == 3 and rgb.shape[2] == 3, rgb.shape
    step = max(1, min(rgb.shape[:2]) // 128)  # ~128x128 samples are plenty
    sub = rgb[::step, ::step].astype(np.int16)
    diff = np.maximum(np.abs(sub[..., 0] - sub[..., 1]), np.abs(sub[..., 1] - sub[..., 2]))
    return float(np.percentile(diff, 99)) <= tol


def load_photo(
    src: str | Path | bytes,
    *,
    min_side: int = 32,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allow_greyscale: bool = True,
) -> tuple[np.ndarray, ImageInfo]:  # uint8 [H, W, 3], info
    """Load any photo as RGB uint8, or raise :class:`BadImage` with a reason."""
    img = _open(src)
    try:
        fmt, mode = img.format, img.mode
        wide = _stored_16bit(img)  # 48-bit RGB PNGs open as 8-bit "RGB"; the tile says 16
        _check_size(*img.size, min_side=min_side, max_pixels=max_pixels)  # header only
        img = _decode(img)
        img, orientation = _orient(img)
        rgb, alpha, bits = _to_array(img)
    finally:
        img.close()
    grey = mode in _GREY_MODES or is_greyscale_rgb(rgb)
    if grey and not allow_greyscale:
        raise BadImage("greyscale", f"mode {mode}")
    h, w = rgb.shape[:2]
    info = ImageInfo(w, h, fmt, mode, max(bits, 16 if wide else 8), orientation, grey, alpha)
    return rgb, info

