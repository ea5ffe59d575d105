"""A restricted unpickler for FLAME's py2-era pickles, with no chumpy and no code run.

Why: FLAME 2020/2023 ``.pkl`` files (and ``landmark_embedding.npy``,
``FLAME_masks.pkl``) are pickles. A plain ``pickle.load`` runs whatever callable
the file names (``os.system``, ``builtins.exec``...), and the files also name
chumpy, which no longer installs on current Python/numpy. So :class:`FlameUnpickler`
resolves only an allow-list of globals:

- numpy's own array/dtype/scalar reconstruction (what ``np.save`` pickles use);
- stand-ins for ``chumpy.ch.Ch`` and the chumpy reordering classes
  (``Select``, ``Reshape``, ``transpose``) that only keep their pickled state,
  which :func:`to_numpy` turns into an ndarray with plain numpy ops;
- a stand-in for scipy's ``csc_matrix``/``csr_matrix`` that keeps
  ``data``/``indices``/``indptr``/shape and is densified through scipy's public
  constructor;
- ``set``/``frozenset`` (chumpy pickles its ``_dirty_vars`` as a set), and safe
  versions of ``copy_reg._reconstructor`` and ``_codecs.encode`` (py2 protocol-0/1
  objects and py3 protocol-2 bytes need them).

Everything else raises :class:`UnsafePickleError` from ``find_class``, i.e.
before the callable is even looked up, so nothing named in the file runs.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from fairsplat.io import safe_pickle


class FlameFileError(ValueError):
    """A FLAME-format file is missing, unreadable or malformed; the message names the file."""


class UnsafePickleError(FlameFileError, safe_pickle.UnsafePickleError):
    """The pickle names a global outside the allow-list; nothing from it was run."""


class _PickledState:
    """Base of the stand-ins: no constructor logic, ``__setstate__`` keeps the dict.

    ``__new__`` is object's, so NEWOBJ cannot run anything; defining
    ``__setstate__`` also stops BUILD from ``setattr``-ing onto the class itself.
    """

    kind = "object"

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise UnsafePickleError(f"{self.kind}: expected a state dict, got {type(state).__name__}")
        self.__dict__["state"] = state


class ChumpyCh(_PickledState):
    """``chumpy.ch.Ch``: its value is the ``x`` entry of the state."""

    kind = "chumpy.ch.Ch"


class ChumpySelect(_PickledState):
    """``chumpy.reordering.Select``: ``a.ravel()[idxs]``, reshaped to ``preferred_shape``."""

    kind = "chumpy.reordering.Select"


class ChumpyReshape(_PickledState):
    """``chumpy.reordering.Reshape``: ``a.reshape(newshape)``."""

    kind = "chumpy.reordering.Reshape"


class ChumpyTranspose(_PickledState):
    """``chumpy.reordering.transpose``: ``np.transpose(a, axes)``."""

    kind = "chumpy.reordering.transpose"


class SparseMatrix(_PickledState):
    """scipy ``csc_matrix``/``csr_matrix`` state: data, indices, indptr, (_)shape."""

    kind = "scipy.sparse matrix"
    fmt = "csc"


class SparseCSC(SparseMatrix):
    fmt = "csc"


class SparseCSR(SparseMatrix):
    fmt = "csr"


_STAND_INS = (ChumpyCh, ChumpySelect, ChumpyReshape, ChumpyTranspose, SparseCSC, SparseCSR)


def _safe_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copy_reg._reconstructor`` limited to our stand-ins on ``object``."""
    if cls not in _STAND_INS or base is not object or state is not None:
        raise UnsafePickleError(f"copy_reg._reconstructor on {cls!r}/{base!r} is not allowed")
    return cls.__new__(cls)


def _safe_codecs_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as py3 protocol-2 pickles use it for bytes: latin-1 text only."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"_codecs.encode({type(obj).__name__}, {encoding!r}) is not allowed")
    return obj.encode("latin1", errors)


_ALLOWED: dict[tuple[str, str], Any] = {
    **safe_pickle.NUMPY_GLOBALS,
    ("chumpy.ch", "Ch"): ChumpyCh,
    ("chumpy.reordering", "Select"): ChumpySelect,
    ("chumpy.reordering", "Reshape"): ChumpyReshape,
    ("chumpy.reordering", "transpose"): ChumpyTranspose,
    **{(m, "csc_matrix"): SparseCSC for m in ("scipy.sparse.csc", "scipy.sparse._csc")},
    **{(m, "csr_matrix"): SparseCSR for m in ("scipy.sparse.csr", "scipy.sparse._csr")},
    **{(m, n): t for m in ("__builtin__", "builtins") for n, t in (("set", set), ("frozenset", frozenset), ("object", object))},
    **{(m, "_reconstructor"): _safe_reconstructor for m in ("copy_reg", "copyreg")},
    ("_codecs", "encode"): _safe_codecs_encode,
}


class FlameUnpickler(safe_pickle.RestrictedUnpickler):
    """Restricted unpickler whose globals come only from :data:`_ALLOWED`."""

    allowed = _ALLOWED
    refused = UnsafePickleError
    corrupt = FlameFileError
    holds = "numpy arrays, chumpy arrays and scipy sparse matrices"
    kind = "a FLAME file"


def load_pickle_bytes(data: bytes, source: str) -> Any:
    """Unpickle ``data`` through :class:`FlameUnpickler`; errors name ``source``."""
    return FlameUnpickler.loads(data, source, encoding="latin1")  # py2 str -> latin-1, as numpy's py2 arrays need


def load_pickle(path: str | Path) -> Any:
    """Read a FLAME-style ``.pkl`` safely."""
    return load_pickle_bytes(_read(path), str(path))


def load_npy_object(path: str | Path) -> Any:
    """Read an ``.npy`` holding a pickled object (FLAME's landmark_embedding.npy) safely.

    ``np.load(allow_pickle=True)`` would unpickle with no restriction, so the
    header is parsed with numpy's format helpers and the payload goes through
    :class:`FlameUnpickler`. A plain numeric ``.npy`` is returned as an array.
    """
    fh = io.BytesIO(_read(path))
    try:
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        _, _, dtype = read_header(fh)
    except (ValueError, OSError, EOFError) as err:
        raise FlameFileError(f"{path}: not an .npy file ({err})") from err
    if not dtype.hasobject:
        fh.seek(0)
        return np.load(fh, allow_pickle=False)
    arr = load_pickle_bytes(fh.read(), str(path))
    if isinstance(arr, np.ndarray) and arr.dtype.hasobject and arr.shape == ():
        return arr.item()  # np.save of a dict: a 0-d object array
    return arr


def _read(path: str | Path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise FlameFileError(f"{path}: file not found")
    data = path.read_bytes()
    if not data:
        raise FlameFileError(f"{path}: file is empty")
    return data


def to_numpy(obj: Any, name: str, source: str, depth: int = 0) -> np.ndarray:
    """ndarray / chumpy stand-in / sparse stand-in -> dense ndarray (a copy)."""
    if depth > 32:
        raise FlameFileError(f"{source}: {name}: chumpy expression nested too deeply")
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise FlameFileError(f"{source}: {name}: object array where numbers were expected")
        return np.array(obj)
    if isinstance(obj, SparseMatrix):
        return _dense_sparse(obj, name, source)
    if isinstance(obj, _PickledState):
        return _chumpy_value(obj, name, source, depth)
    if isinstance(obj, (int, float, list, tuple)):
        try:
            return np.asarray(obj, dtype=np.float64)
        except ValueError as err:
            raise FlameFileError(f"{source}: {name}: not a numeric array ({err})") from err
    raise FlameFileError(f"{source}: {name}: expected an array, got {type(obj).__name__}")


def _state(obj: _PickledState, key: str, name: str, source: str) -> Any:
    state = obj.__dict__.get("state")
    if state is None or key not in state:
        raise FlameFileError(f"{source}: {name}: pickled {obj.kind} has no '{key}' entry")
    return state[key]


def _chumpy_value(obj: _PickledState, name: str, source: str, depth: int) -> np.ndarray:
    if isinstance(obj, ChumpyCh):
        return to_numpy(_state(obj, "x", name, source), name, source, depth + 1)
    a = to_numpy(_state(obj, "a", name, source), name, source, depth + 1)
    try:
        if isinstance(obj, ChumpyReshape):
            return a.reshape(_state(obj, "newshape", name, source))
        if isinstance(obj, ChumpyTranspose):
            return np.ascontiguousarray(np.transpose(a, axes=obj.__dict__["state"].get("axes")))
        idxs = np.asarray(_state(obj, "idxs", name, source), dtype=np.int64)
        out = a.ravel()[idxs]
        shape = obj.__dict__["state"].get("preferred_shape")
        return out.reshape(shape) if shape is not None else out
    except (ValueError, IndexError, TypeError) as err:
        raise FlameFileError(f"{source}: {name}: bad {obj.kind} ({err})") from err


def _dense_sparse(obj: SparseMatrix, name: str, source: str) -> np.ndarray:
    import scipy.sparse as sp

    state = obj.__dict__.get("state") or {}
    shape = state.get("_shape", state.get("shape"))
    parts = [state.get(k) for k in ("data", "indices", "indptr")]
    if shape is None or any(p is None for p in parts):
        raise FlameFileError(f"{source}: {name}: pickled sparse matrix lacks data/indices/indptr/shape")
    ctor = sp.csc_matrix if obj.fmt == "csc" else sp.csr_matrix
    try:
        data, indices, indptr = (np.asarray(p) for p in parts)
        mat = ctor((data, indices, indptr), shape=tuple(int(s) for s in shape))
        mat.check_format(full_check=True)  # out-of-range indices fail here, not in toarray()
        return mat.toarray()
    except (ValueError, TypeError, IndexError) as err:
        raise FlameFileError(f"{source}: {name}: bad sparse matrix ({err})") from err
