"""The head asset: a FLAME-format model as plain numpy arrays.

Why one frozen dataclass of arrays: the procedural default head and a user's
FLAME 2020/2023 file must be interchangeable for every later stage (synth,
tracking, the feed-forward generator). Both are converted into this one shape
contract and saved as a pickle-free ``.npz``, so loading an asset never runs
code and a bad asset fails at load time, naming the field that is wrong.

Frame and units are FLAME's: metres, +Y up, +Z out of the face, +X is the
subject's left. Joints are FLAME's five: 0 global, 1 neck, 2 jaw, 3 left eye,
4 right eye.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from fairsplat.io.atomic import atomic_path
from fairsplat.labels import NUM_CLASSES

N_LANDMARKS = 68
JOINT_NAMES: tuple[str, ...] = ("global", "neck", "jaw", "left_eye", "right_eye")

_FLOAT_FIELDS = ("v_template", "shapedirs", "exprdirs", "posedirs", "j_regressor", "lbs_weights", "uvs", "lmk_bary")
_INT_FIELDS = ("faces", "parents", "uv_faces", "face_regions", "lmk_faces")


class HeadModelError(ValueError):
    """A head asset is malformed; the message names the offending field."""


@dataclass(frozen=True)
class HeadModel:
    """FLAME-format head (float32 / int64 numpy arrays); see the module docstring."""

    v_template: np.ndarray  # [V, 3] metres
    faces: np.ndarray  # [F, 3] vertex ids
    shapedirs: np.ndarray  # [V, 3, S] identity basis
    exprdirs: np.ndarray  # [V, 3, E] expression basis
    posedirs: np.ndarray  # [P, V*3], P = 9 * (J - 1); rows follow smplx's (R - I) pose feature
    j_regressor: np.ndarray  # [J, V] dense
    parents: np.ndarray  # [J], -1 for the root
    lbs_weights: np.ndarray  # [V, J]
    uvs: np.ndarray  # [T, 2] in [0, 1]
    uv_faces: np.ndarray  # [F, 3] ids into uvs
    face_regions: np.ndarray  # [F] CelebAMask-HQ ids (fairsplat.labels.LABEL)
    lmk_faces: np.ndarray  # [68] face id per iBUG-68 landmark
    lmk_bary: np.ndarray  # [68, 3] barycentric coordinates in that face
    source: str  # "procedural" or the FLAME file it came from

    def __post_init__(self) -> None:
        # Normalise dtypes once so every consumer can rely on them.
        for name in _FLOAT_FIELDS:
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.float32))
        for name in _INT_FIELDS:
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.int64))
        object.__setattr__(self, "source", str(self.source))

    # ---- sizes -------------------------------------------------------------
    @property
    def n_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def n_faces(self) -> int:
        return int(self.faces.shape[0])

    @property
    def n_shape(self) -> int:
        return int(self.shapedirs.shape[2])

    @property
    def n_expr(self) -> int:
        return int(self.exprdirs.shape[2])

    @property
    def n_joints(self) -> int:
        return int(self.parents.shape[0])

    # ---- checks ------------------------------------------------------------
    def validate(self) -> HeadModel:
        """Check every shape, range and invariant; raise HeadModelError naming the field."""
        v = self.v_template
        _expect(v.ndim == 2 and v.shape[1] == 3 and v.shape[0] > 0, "v_template", v.shape, "[V, 3]")
        nv = v.shape[0]
        _check_index_array(self.faces, "faces", nv, width=3)
        nf = self.faces.shape[0]
        for name in ("shapedirs", "exprdirs"):
            a = getattr(self, name)
            _expect(a.ndim == 3 and a.shape[:2] == (nv, 3), name, a.shape, f"[{nv}, 3, K]")
        _check_parents(self.parents)
        nj = self.parents.shape[0]
        p = self.posedirs
        _expect(p.shape == (9 * (nj - 1), nv * 3), "posedirs", p.shape, f"[{9 * (nj - 1)}, {nv * 3}]")
        _expect(self.j_regressor.shape == (nj, nv), "j_regressor", self.j_regressor.shape, f"[{nj}, {nv}]")
        _expect(self.lbs_weights.shape == (nv, nj), "lbs_weights", self.lbs_weights.shape, f"[{nv}, {nj}]")
        uvs = self.uvs
        _expect(uvs.ndim == 2 and uvs.shape[1] == 2, "uvs", uvs.shape, "[T, 2]")
        if uvs.size and (uvs.min() < 0.0 or uvs.max() > 1.0):
            raise HeadModelError(f"uvs: values must lie in [0, 1], got [{uvs.min():.4f}, {uvs.max():.4f}]")
        _check_index_array(self.uv_faces, "uv_faces", uvs.shape[0], width=3, rows=nf)
        r = self.face_regions
        _expect(r.shape == (nf,), "face_regions", r.shape, f"[{nf}]")
        if r.size and (r.min() < 0 or r.max() >= NUM_CLASSES):
            raise HeadModelError(f"face_regions: ids must be in [0, {NUM_CLASSES}), got [{r.min()}, {r.max()}]")
        _check_index_array(self.lmk_faces, "lmk_faces", nf, width=None, rows=N_LANDMARKS)
        _expect(self.lmk_bary.shape == (N_LANDMARKS, 3), "lmk_bary", self.lmk_bary.shape, "[68, 3]")
        for name in _FLOAT_FIELDS:
            if not np.all(np.isfinite(getattr(self, name))):
                raise HeadModelError(f"{name}: contains NaN or inf")
        return self

    # ---- files -------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write a pickle-free ``.npz`` atomically (tmp file, then os.replace)."""
        self.validate()
        arrays = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "source"}
        arrays["source"] = np.array(self.source)  # unicode array: no pickle needed
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> HeadModel:
        """Read and validate an asset written by :meth:`save` (never unpickles)."""
        path = Path(path)
        if not path.is_file():
            raise HeadModelError(f"{path}: head asset not found")
        names = [f.name for f in fields(cls)]
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [n for n in names if n not in data.files]
                if missing:
                    raise HeadModelError(f"{path}: missing field(s) {', '.join(missing)}")
                arrays = {n: data[n] for n in names}
        except HeadModelError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:  # truncated zip, pickled objects, ...
            raise HeadModelError(f"{path}: not a readable head asset ({err})") from err
        arrays["source"] = str(arrays["source"])
        try:
            return cls(**arrays).validate()
        except HeadModelError as err:  # validate() names the field; the user needs the file too
            raise HeadModelError(f"{path}: {err}") from None


def _expect(ok: bool, name: str, got: tuple, want: str) -> None:
    if not ok:
        raise HeadModelError(f"{name}: shape {tuple(got)}, expected {want}")


def _check_index_array(a: np.ndarray, name: str, bound: int, width: int | None, rows: int | None = None) -> None:
    """Shape check plus 0 <= ids < bound, so a bad index fails here, not in a gather later."""
    want_shape = (rows if rows is not None else a.shape[0],) + ((width,) if width else ())
    _expect(a.shape == want_shape, name, a.shape, str(list(want_shape)))
    if a.size and (a.min() < 0 or a.max() >= bound):
        raise HeadModelError(f"{name}: ids must be in [0, {bound}), got [{a.min()}, {a.max()}]")


def _check_parents(parents: np.ndarray) -> None:
    """A kinematic tree listed parents-first: root -1, every other parent earlier in the list."""
    _expect(parents.ndim == 1 and parents.shape[0] >= 1, "parents", parents.shape, "[J]")
    if parents[0] != -1:
        raise HeadModelError(f"parents: joint 0 must be the root (-1), got {parents[0]}")
    for j in range(1, parents.shape[0]):
        if not 0 <= parents[j] < j:
            raise HeadModelError(f"parents: joint {j} has parent {parents[j]}, expected 0 <= parent < {j}")
