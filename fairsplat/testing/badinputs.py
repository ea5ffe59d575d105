"""The fault sweep's bad-input kinds (issue 18): one registry, written in any file format a user hands us.

Why apart from :mod:`fairsplat.testing.badfiles` (curation's photo zoo): the sweep
covers every entry point that reads a user file (photos, videos, FLAME files,
checkpoints, LoRA files, PLY, cached weights), and a kind such as "truncated"
or "a pickle carrying code" means something in each format. A :class:`Sample`
describes one format (a good file, a valid file of *another* format, the
wrongly shaped variant, a detectable face); each entry of :data:`KINDS` turns
it into the bytes of one bad file, or None where the kind does not apply to
that format. tests/test_bad_inputs.py runs every applicable (kind, entry
point) pair and checks the outcome the entry point's expectation table names.

Nothing here is large: the "decompression bomb" is a PNG whose header says
20,000 x 20,000 over a 4 x 4 IDAT (never decoded, never allocated).
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fairsplat.testing.badfiles import png_bytes

HTML = b"<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>gone</body></html>\n"
"""What a failed download saved under the right name looks like."""

BOMB_SIDE = 20_000
"""Header side of the decompression bomb: 400 MP, over every limit (curate's 64 MP, PIL's 179 MP)."""


@dataclass
class Sample:
    """One file format, as an entry point reads it."""

    fmt: str  # "photo", "video", "flame", "safetensors", "torch", "ply", "weights"
    good: bytes  # a file the entry point accepts
    other: bytes  # a valid file of another format: what a wrong extension hides
    marker: Path  # the file a pickle's payload would create if any of it ran
    wrong_shapes: bytes | None = None  # well-formed, but arrays of the wrong shapes (None: no such notion)
    huge: bytes | None = None  # a header promising far more data than follows (photos: built from ``face``)
    face: np.ndarray | None = None  # photos, videos: uint8 [H, W, 3] with one detectable face
    wrap: Callable[[bytes], bytes] | None = None  # how a pickle sits in this format (.npy: behind an object header)


class _Payload:
    """Unpickling this runs ``touch <marker>``: the classic pickle exploit, made harmless and visible."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def code_pickle(marker: Path) -> bytes:
    """A pickle whose loading would call ``os.system`` (a dict, as weight files are)."""
    return pickle.dumps({"weight": _Payload(marker)}, protocol=2)


def npy_object(pickled: bytes) -> bytes:
    """``pickled`` behind the .npy header of a 0-d object array: how ``np.save`` stores a dict (FLAME's landmark
    embedding), and so where a tampered .npy carries its payload."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(np.empty((), object)))
    return buf.getvalue() + pickled


def jpeg_bytes(rgb: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=95, **kw)
    return buf.getvalue()


def video_bytes(frames: np.ndarray, fps: int = 12, suffix: str = ".mp4", faststart: bool = False) -> bytes:
    """H.264 frames uint8 [T, H, W, 3] in an MP4 (``suffix=".mkv"``: Matroska); ``faststart``: the index first."""
    import av

    options = {"movflags": "faststart"} if faststart else {}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"v{suffix}"
        with av.open(str(path), mode="w", options=options) as box:
            stream = box.add_stream("libx264", rate=fps)
            stream.height, stream.width = frames.shape[1:3]
            stream.pix_fmt = "yuv420p"
            for f in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                    box.mux(packet)
            for packet in stream.encode():
                box.mux(packet)
        return path.read_bytes()


def no_frames(frames: np.ndarray) -> bytes:
    """An MP4 whose index lists the frames of a video stream while its data box is empty (a download cut
    right after the header): the container opens, the stream is there, not one frame decodes."""
    mp4 = video_bytes(frames, faststart=True)
    return mp4[: mp4.index(b"mdat") + 4]


def broken_stream(mp4: bytes) -> bytes:
    """The container intact, the coded frames scrambled (every byte of ``mdat`` remapped)."""
    at = mp4.find(b"mdat")
    assert at > 0, "no mdat box"
    body = np.frombuffer(mp4[at + 4 :], np.uint8)
    return mp4[: at + 4] + ((body.astype(np.uint16) * 7 + 13) % 256).astype(np.uint8).tobytes()


def ten_faces(face: np.ndarray) -> np.ndarray:  # uint8 [H, W, 3] -> [H, 5W/2, 3]: 2 rows of 5 half-size faces
    small = np.asarray(Image.fromarray(face).resize((face.shape[1] // 2, face.shape[0] // 2), Image.BILINEAR))
    return np.concatenate([np.concatenate([small] * 5, axis=1)] * 2, axis=0)


def noise(shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def grey(face: np.ndarray) -> np.ndarray:  # [H, W, 3] -> [H, W] (PIL's ITU-R 601 luma)
    return np.asarray(Image.fromarray(face).convert("L"))


def exif_rotated(face: np.ndarray) -> bytes:
    """Pixels stored turned 90 degrees counter-clockwise, EXIF orientation 6 ("turn 90 CW to view")."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return jpeg_bytes(np.ascontiguousarray(np.rot90(face, k=1)), exif=exif.tobytes())


def _pil(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _photo(make: Callable[[np.ndarray], bytes]) -> Callable[[Sample], bytes | None]:
    return lambda s: make(s.face) if s.fmt == "photo" else None


def _video(make: Callable[[Sample], bytes]) -> Callable[[Sample], bytes | None]:
    return lambda s: make(s) if s.fmt == "video" else None


def _rgba(face: np.ndarray) -> bytes:
    alpha = np.full(face.shape[:2], 255, np.uint8)
    alpha[:, : face.shape[1] // 10] = 0  # a transparent strip: the alpha carries information
    return _pil(Image.fromarray(np.dstack([face, alpha])), "PNG")


def _frames(img: np.ndarray, n: int = 6) -> np.ndarray:  # even sides for yuv420p
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    return np.repeat(img[None, :h, :w], n, axis=0)


KINDS: dict[str, Callable[[Sample], bytes | None]] = {
    # every format
    "empty": lambda s: b"",
    "truncated": lambda s: s.good[: len(s.good) * 6 // 10],
    "wrong_extension": lambda s: s.other,
    "not_the_format": lambda s: HTML,  # e.g. an HTML page saved as face.jpg / model.safetensors
    "code_pickle": lambda s: (s.wrap or (lambda b: b))(code_pickle(s.marker)),
    "wrong_shapes": lambda s: s.wrong_shapes,
    # photos: valid but unusual (accepted and decoded), and the impossible ones
    "cmyk": _photo(lambda f: _pil(Image.fromarray(f).convert("CMYK"), "JPEG", quality=95)),
    "rgb16": _photo(lambda f: png_bytes(f, bit_depth=16)),
    "grey16": _photo(lambda f: png_bytes(grey(f), bit_depth=16)),
    "greyscale": _photo(lambda f: _pil(Image.fromarray(grey(f)), "JPEG", quality=95)),
    "alpha": _photo(_rgba),
    "exif_rotated": _photo(exif_rotated),
    "one_pixel": _photo(lambda f: _pil(Image.fromarray(f[:1, :1]), "PNG")),
    "bomb_header": lambda s: png_bytes(s.face[:4, :4], header_size=(BOMB_SIDE, BOMB_SIDE)) if s.fmt == "photo" else s.huge,
    # photos and videos: content
    "no_face": lambda s: (jpeg_bytes(noise(s.face.shape)) if s.fmt == "photo"
                          else video_bytes(noise((6, 64, 64, 3))) if s.fmt == "video" else None),  # fmt: skip
    "ten_faces": lambda s: (jpeg_bytes(ten_faces(s.face)) if s.fmt == "photo"
                            else video_bytes(_frames(ten_faces(s.face))) if s.fmt == "video" else None),  # fmt: skip
    # videos
    "no_frames": _video(lambda s: no_frames(_frames(s.face))),
    "broken_stream": _video(lambda s: broken_stream(s.good)),
}
"""kind -> bytes of the bad file for a :class:`Sample` (None: the kind does not apply to that format)."""


def applies(kind: str, sample: Sample) -> bool:
    return KINDS[kind](sample) is not None


def write(kind: str, sample: Sample, path: str | Path) -> Path:
    """Write the ``kind`` variant of ``sample`` at ``path`` (the name the entry point expects)."""
    data = KINDS[kind](sample)
    assert data is not None, f"{kind} does not apply to {sample.fmt}"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
