"""A restricted unpickler: only allow-listed globals, so nothing in the file runs.

Why: a plain ``pickle.load`` calls whatever the file names (``os.system``,
``builtins.eval``, ``torch.load``...). Pickles we read come from outside
(FLAME files, weights inside registry archives), so every global goes through
:meth:`RestrictedUnpickler.find_class`, which answers from an allow-list and
raises *before* anything is imported or looked up. Plain containers and scalars
(dict, list, tuple, str, int, float, bytes) are pickle opcodes, not globals, so
they need no entry.

Subclasses set the allow-list, the error classes (so each caller keeps its own
exception hierarchy) and the words used in messages.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list; nothing from it was run."""


_MULTIARRAY = ("numpy.core.multiarray", "numpy._core.multiarray")
_NUMERIC = ("numpy.core.numeric", "numpy._core.numeric")

NUMPY_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{(m, "_reconstruct"): np.ndarray.__reduce__(np.zeros(1))[0] for m in _MULTIARRAY},
    **{(m, "scalar"): np.float64(0).__reduce__()[0] for m in _MULTIARRAY},
    **{(m, "_frombuffer"): np.zeros(1).__reduce_ex__(5)[0] for m in _NUMERIC},
}
"""What ``np.save``/pickled ndarrays, dtypes and numpy scalars need (numpy 1.x and 2.x
module names): numpy's own reconstruction functions, none of which call user code."""

_CORRUPT = (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError)


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose globals come only from :attr:`allowed`."""

    allowed: ClassVar[Mapping[tuple[str, str], Any]] = NUMPY_GLOBALS
    refused: ClassVar[type[UnsafePickleError]] = UnsafePickleError
    """Raised for a global or persistent id outside the allow-list."""
    corrupt: ClassVar[type[Exception]] = ValueError
    """Raised for a truncated or malformed pickle."""
    holds: ClassVar[str] = "numpy arrays"
    """What the allow-list admits, for messages."""
    kind: ClassVar[str] = "this file"
    """What is being read, for messages ("a FLAME file")."""

    def __init__(self, fh: io.BufferedIOBase, source: str, encoding: str = "ASCII") -> None:
        super().__init__(fh, encoding=encoding)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        obj = self.allowed.get((module, name))
        if obj is None:
            raise self.refused(
                f"{self.source}: refuses to load global {module}.{name} (only {self.holds} are allowed in "
                f"{self.kind}); nothing from the file was run"
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise self.refused(f"{self.source}: persistent ids are not allowed in {self.kind}")

    @classmethod
    def loads(cls, data: bytes, source: str, **kwargs: Any) -> Any:
        """Unpickle ``data``; every error names ``source``."""
        try:
            return cls(io.BytesIO(data), source, **kwargs).load()
        except UnsafePickleError:
            raise
        except _CORRUPT as err:
            raise cls.corrupt(f"{source}: not a readable pickle (truncated or corrupt: {type(err).__name__}: {err})") from err
