"""FLAME file loader: chumpy/scipy pickles without chumpy, npz, refusal of anything else.

The FLAME-format files are written here from the toy head (fairsplat/testing/toy_head.py):
stand-in classes named ``chumpy.ch.Ch`` etc. live in fake modules that are in
``sys.modules`` only while the pickle is written, so the file references chumpy
exactly as a real FLAME 2020/2023 pickle does, and the loader cannot import them.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import pickletools
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fairsplat.config import ParamsError, parse_section
from fairsplat.head.flame import FlameLayer
from fairsplat.head.flame_file import convert_flame, read_flame_model
from fairsplat.head.flame_file_pickle import FlameFileError, UnsafePickleError, load_npy_object, load_pickle
from fairsplat.head.flame_file_regions import face_regions
from fairsplat.head.flame_file_uv import cylindrical_uvs
from fairsplat.labels import LABEL
from fairsplat.testing.toy_head import ibug68_layout, make_toy_head

N_SHAPE, N_EXPR = 300, 100  # FLAME 2020/2023: shapedirs holds 300 identity + 100 expression components


# ---- writing FLAME-format files ---------------------------------------------
@contextlib.contextmanager
def fake_chumpy():
    """Modules chumpy.ch / chumpy.reordering with look-alike classes, only for pickle.dump."""
    ch_mod, reo_mod = types.ModuleType("chumpy.ch"), types.ModuleType("chumpy.reordering")

    class Ch:  # what chumpy's Ch.__getstate__ keeps: x plus bookkeeping
        def __init__(self, x):
            self.x = np.asarray(x, np.float64)
            self._dirty_vars = {"x"}
            self._itr = None
            self._depends_on_deps = {}
            self._make_dense = self._make_sparse = False

    class Select:
        def __init__(self, a, idxs, preferred_shape):
            self.a, self.idxs, self.preferred_shape, self._dirty_vars = a, idxs, preferred_shape, {"a"}

    class Reshape:
        def __init__(self, a, newshape):
            self.a, self.newshape = a, newshape

    class transpose:  # noqa: N801 (chumpy's spelling)
        def __init__(self, a, axes):
            self.a, self.axes = a, axes

    for cls, mod in ((Ch, ch_mod), (Select, reo_mod), (Reshape, reo_mod), (transpose, reo_mod)):
        cls.__module__, cls.__qualname__ = mod.__name__, cls.__name__
        setattr(mod, cls.__name__, cls)
    names = {"chumpy": types.ModuleType("chumpy"), "chumpy.ch": ch_mod, "chumpy.reordering": reo_mod}
    saved = {k: sys.modules.get(k) for k in names}
    sys.modules.update(names)
    try:
        yield types.SimpleNamespace(Ch=Ch, Select=Select, Reshape=Reshape, transpose=transpose)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def py2_names(data: bytes) -> bytes:
    """Rename globals to what a py2-era numpy/scipy wrote (protocol <= 2 GLOBALs are text)."""
    return data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n").replace(b"scipy.sparse._csc\n", b"scipy.sparse.csc\n")


def toy_flame_arrays(seed: int = 0) -> tuple[dict[str, np.ndarray], object]:
    """Dense FLAME arrays (FLAME layouts) built from the toy head, plus the toy head."""
    toy = make_toy_head(n_shape=12, n_expr=8, seed=seed)
    rng = np.random.default_rng(seed)
    nv = toy.n_vertices
    dirs = rng.normal(0, 1e-4, (nv, 3, N_SHAPE + N_EXPR))
    dirs[:, :, :12], dirs[:, :, N_SHAPE : N_SHAPE + 8] = toy.shapedirs, toy.exprdirs
    arrays = {
        "v_template": toy.v_template.astype(np.float64),
        "f": toy.faces.astype(np.uint32),
        "shapedirs": dirs,
        "posedirs": toy.posedirs.T.reshape(nv, 3, 36).astype(np.float64),  # FLAME [V, 3, 36]
        "J_regressor": toy.j_regressor.astype(np.float64),
        "weights": toy.lbs_weights.astype(np.float64),
        "kintree_table": np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64),
    }
    return arrays, toy


def write_flame_pkl(path: Path, arrays: dict, protocol: int = 2, mutate=None) -> Path:
    """A FLAME-format pickle: chumpy Ch / Select / Reshape / transpose, scipy csc J_regressor, py2 names."""
    with fake_chumpy() as ch:
        v, w = arrays["v_template"], arrays["weights"]
        data = {
            "v_template": ch.Select(ch.Ch(v.ravel()), np.arange(v.size), v.shape),
            "f": arrays["f"],
            "shapedirs": ch.Ch(arrays["shapedirs"]),
            "posedirs": ch.transpose(ch.Ch(arrays["posedirs"].transpose(2, 0, 1)), (1, 2, 0)),
            "J_regressor": sp.csc_matrix(arrays["J_regressor"]),
            "weights": ch.Reshape(ch.Ch(w.ravel()), w.shape),
            "kintree_table": arrays["kintree_table"],
            "J": arrays["J_regressor"] @ v,
            "bs_style": "lbs",
            "bs_type": "lrotmin",
        }
        if mutate:
            mutate(data)
        blob = pickle.dumps(data, protocol=protocol)
    globals_used = {a for op, a, _ in pickletools.genops(blob) if op.name == "GLOBAL"}
    assert "chumpy.ch Ch" in globals_used and "scipy.sparse._csc csc_matrix" in globals_used
    path.write_bytes(py2_names(blob))
    return path


def write_landmarks(path: Path, toy, full: bool = True) -> Path:
    emb = {
        "static_lmk_faces_idx": toy.lmk_faces[17:],
        "static_lmk_bary_coords": toy.lmk_bary[17:],
        "dynamic_lmk_faces_idx": np.zeros((79, 17), np.int64),
    }
    if full:
        emb |= {"full_lmk_faces_idx": toy.lmk_faces[None], "full_lmk_bary_coords": toy.lmk_bary[None]}
    np.save(path, emb, allow_pickle=True)  # what FLAME's landmark_embedding.npy is: a pickled dict
    return path


@pytest.fixture(scope="module")
def flame_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("flame")
    arrays, toy = toy_flame_arrays()
    np.savez(d / "tex.npz", vt=toy.uvs, ft=toy.uv_faces, mean=np.zeros(3))
    return types.SimpleNamespace(
        dir=d, arrays=arrays, toy=toy, pkl=write_flame_pkl(d / "generic_model.pkl", arrays),
        lmk=write_landmarks(d / "landmark_embedding.npy", toy), tex=d / "tex.npz",
    )


# ---- loading and converting --------------------------------------------------
@pytest.mark.parametrize("protocol", [0, 2])  # 0/1 go through copy_reg._reconstructor, 2 through NEWOBJ
def test_pickle_with_chumpy_and_sparse_loads(flame_files, tmp_path, protocol):
    path = write_flame_pkl(tmp_path / "m.pkl", flame_files.arrays, protocol=protocol)
    assert "chumpy" not in sys.modules
    raw = read_flame_model(path)
    for key, want in flame_files.arrays.items():
        np.testing.assert_array_equal(raw[key], want, err_msg=key)


def test_convert_keeps_flame_layouts(flame_files):
    a, toy = flame_files.arrays, flame_files.toy
    head = convert_flame(flame_files.pkl, landmark_path=flame_files.lmk, uv_path=flame_files.tex, n_shape=30, n_expr=7)
    assert head.source == "flame:generic_model.pkl"
    assert (head.n_shape, head.n_expr, head.n_vertices, head.n_faces) == (30, 7, toy.n_vertices, toy.n_faces)
    np.testing.assert_allclose(head.shapedirs, a["shapedirs"][:, :, :30], rtol=1e-6)
    np.testing.assert_allclose(head.exprdirs, a["shapedirs"][:, :, N_SHAPE : N_SHAPE + 7], rtol=1e-6)
    np.testing.assert_array_equal(head.parents, [-1, 0, 1, 1, 1])
    np.testing.assert_allclose(head.j_regressor, a["J_regressor"], rtol=1e-6)
    np.testing.assert_array_equal(head.lmk_faces, toy.lmk_faces)
    np.testing.assert_allclose(head.uvs, toy.uvs, rtol=1e-6)
    # posedirs: the layer's correctives equal FLAME's [V, 3, 36] contracted with (R - I), computed independently.
    layer = FlameLayer(head, dtype=torch.float64)
    pose = torch.tensor([[0.0, 0.0, 0.0, 0.1, -0.2, 0.05, 0.3, 0.0, 0.0, 0.0, 0.2, 0.0, 0.0, -0.2, 0.0]], dtype=torch.float64)
    rots = torch.linalg.matrix_exp(torch.stack([_skew(p) for p in pose.reshape(5, 3)]))  # [5, 3, 3]
    feature = (rots[1:] - torch.eye(3, dtype=torch.float64)).reshape(-1).numpy()  # [36]
    want = np.einsum("vcp,p->vc", a["posedirs"], feature)  # [V, 3]
    got = (feature @ layer.posedirs.numpy()).reshape(-1, 3)
    np.testing.assert_allclose(got, want, atol=1e-9)


def _skew(v):
    x, y, z = v
    return torch.stack([torch.stack([0 * x, -z, y]), torch.stack([z, 0 * x, -x]), torch.stack([-y, x, 0 * x])])


def test_npz_path_matches_pkl(flame_files, tmp_path):
    a, toy = flame_files.arrays, flame_files.toy
    extra = {"full_lmk_faces_idx": toy.lmk_faces, "full_lmk_bary_coords": toy.lmk_bary}
    np.savez(tmp_path / "flame.npz", **a, **extra)
    from_npz = convert_flame(tmp_path / "flame.npz", uv_path=flame_files.tex, n_shape=20, n_expr=10)
    from_pkl = convert_flame(flame_files.pkl, landmark_path=flame_files.lmk, uv_path=flame_files.tex, n_shape=20, n_expr=10)
    for name in ("v_template", "faces", "shapedirs", "exprdirs", "posedirs", "j_regressor", "lbs_weights", "lmk_bary", "face_regions"):
        np.testing.assert_array_equal(getattr(from_npz, name), getattr(from_pkl, name), err_msg=name)


def test_converted_asset_round_trips(flame_files, tmp_path):
    from fairsplat.head.model import HeadModel

    head = convert_flame(flame_files.pkl, landmark_path=flame_files.lmk, n_shape=5, n_expr=5)
    head.save(tmp_path / "head.npz")
    back = HeadModel.load(tmp_path / "head.npz")
    np.testing.assert_array_equal(back.posedirs, head.posedirs)
    assert back.source == head.source


def test_make_head_uses_flame_file(flame_files):
    from fairsplat.head.asset import make_head
    from fairsplat.sections.head import HeadParams

    raw = {"flame-path": str(flame_files.pkl), "landmark-path": str(flame_files.lmk), "n-shape": 8, "n-expr": 4}
    head = make_head(parse_section("head", raw, HeadParams).head_config())
    assert head.source.startswith("flame:") and head.n_shape == 8 and head.n_expr == 4
    with pytest.raises(ParamsError, match=r"head\.masks-path: file not found"):  # checked by the section, before work
        parse_section("head", {**raw, "masks-path": str(flame_files.dir / "nope.pkl")}, HeadParams)


# ---- refusing malicious pickles ---------------------------------------------
class Payload:
    """An object whose unpickling calls ``func(*args)``: the classic pickle attack."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker: Path) -> dict[str, Payload]:
    m = str(marker)
    return {
        "os.system": Payload(os.system, (f"touch {m}",)),  # pickled as posix.system
        "builtins.exec": Payload(exec, (f"open({m!r}, 'w').write('x')",)),
        "builtins.eval": Payload(eval, (f"open({m!r}, 'w').write('x')",)),
        "subprocess.Popen": Payload(subprocess.Popen, (["touch", m],)),
    }


_UNRESTRICTED_NPY = "import numpy, sys; numpy.load(sys.argv[1], allow_pickle=True)"
_UNRESTRICTED_PKL = """
import pickle, sys
class Stub:
    def __setstate__(self, state): pass
class Loose(pickle.Unpickler):
    def find_class(self, module, name):
        return Stub if module.startswith("chumpy") else super().find_class(module, name)
Loose(open(sys.argv[1], "rb"), encoding="latin1").load()
"""


@pytest.mark.parametrize("name", sorted(_payloads(Path("x"))))
@pytest.mark.parametrize("where", ["top", "inside_model", "landmarks", "masks"])
def test_malicious_pickle_refused_and_never_runs(flame_files, tmp_path, name, where):
    marker = tmp_path / "pwned"
    payload = _payloads(marker)[name]
    if where == "top":
        path = tmp_path / "evil.pkl"
        path.write_bytes(pickle.dumps(payload, protocol=2))
        load = lambda: load_pickle(path)  # noqa: E731
    elif where == "inside_model":
        path = write_flame_pkl(tmp_path / "evil.pkl", flame_files.arrays, mutate=lambda d: d.update(weights=payload))
        load = lambda: read_flame_model(path)  # noqa: E731
    elif where == "landmarks":
        path = tmp_path / "evil.npy"
        np.save(path, {"full_lmk_faces_idx": payload}, allow_pickle=True)
        load = lambda: convert_flame(flame_files.pkl, landmark_path=path)  # noqa: E731
    else:
        path = tmp_path / "FLAME_masks.pkl"
        path.write_bytes(pickle.dumps({"lips": np.arange(3), "nose": payload}, protocol=2))
        load = lambda: convert_flame(flame_files.pkl, landmark_path=flame_files.lmk, masks_path=path)  # noqa: E731
    with pytest.raises(UnsafePickleError, match="refuses to load global") as err:
        load()
    assert str(path) in str(err.value)
    assert not marker.exists(), "the payload ran"
    # Control: the file is live. An unrestricted load (chumpy names stubbed) runs it, in a child process.
    code = _UNRESTRICTED_NPY if where == "landmarks" else _UNRESTRICTED_PKL
    subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=60)
    for _ in range(100):  # Popen's grandchild may finish a moment later
        if marker.exists():
            break
        time.sleep(0.05)
    assert marker.exists(), "control: the unrestricted load should have run the payload"


@pytest.mark.parametrize(
    "blob, needle",
    [
        (b"cnumpy.testing._private.utils\nrunstring\n(Vx=1\n(dtR.", "numpy.testing._private.utils.runstring"),
        (b"cnumpy\nload\n(Vx\ntR.", "numpy.load"),
        (b"c_codecs\nencode\n(Vabc\nVrot13\ntR.", "_codecs.encode"),
        (b"ccopy_reg\n_reconstructor\n(c__builtin__\nset\nc__builtin__\nobject\nNtR.", "_reconstructor"),
        (b"cbuiltins\ngetattr\n(cbuiltins\nobject\nV__subclasses__\ntR.", "builtins.getattr"),
    ],
)
def test_allowed_modules_do_not_open_other_names(tmp_path, blob, needle):
    """The allow-list is per (module, name), and the safe shims check their arguments."""
    path = tmp_path / "crafted.pkl"
    path.write_bytes(blob)
    with pytest.raises(UnsafePickleError, match=needle.replace(".", r"\.")):
        load_pickle(path)


# ---- truncated, wrongly shaped, missing ------------------------------------
@pytest.mark.parametrize("frac", [0.0, 0.1, 0.5, 0.999])
def test_truncated_pickle_clear_error(flame_files, tmp_path, frac):
    data = flame_files.pkl.read_bytes()
    path = tmp_path / "cut.pkl"
    path.write_bytes(data[: int(len(data) * frac)])
    with pytest.raises(FlameFileError, match="empty|truncated") as err:
        read_flame_model(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("kind", ["model_npz", "landmark_npy", "texture_npz"])
def test_truncated_npz_and_npy_clear_error(flame_files, tmp_path, kind):
    full = tmp_path / ("full.npy" if kind == "landmark_npy" else "full.npz")
    if kind == "model_npz":
        np.savez(full, **flame_files.arrays)
    else:
        full.write_bytes((flame_files.lmk if kind == "landmark_npy" else flame_files.tex).read_bytes())
    path = tmp_path / f"cut{full.suffix}"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(FlameFileError, match="truncated") as err:
        if kind == "model_npz":
            read_flame_model(path)
        elif kind == "landmark_npy":
            load_npy_object(path)
        else:
            convert_flame(flame_files.pkl, landmark_path=flame_files.lmk, uv_path=path)
    assert str(path) in str(err.value)


def _set(key, value):
    return lambda a: a.__setitem__(key, value(a) if callable(value) else value)


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (_set("posedirs", lambda a: a["posedirs"][:, :, :35]), r"posedirs has shape \(\d+, 3, 35\), expected \[\d+, 3, 36\]"),
        (_set("J_regressor", lambda a: a["J_regressor"][:4]), r"J_regressor has shape \(4, \d+\), expected \[5, \d+\]"),
        (_set("shapedirs", lambda a: a["shapedirs"][:-1]), r"shapedirs has shape"),
        (_set("v_template", lambda a: a["v_template"][:, :2]), r"v_template has shape"),
        (_set("weights", lambda a: a["weights"] * 2), r"weights rows must sum to 1"),
        (_set("f", lambda a: a["f"] + 10**6), r"f must hold vertex ids"),
        (_set("kintree_table", np.array([[2**32 - 1, 0, 3, 1, 1], [0, 1, 2, 3, 4]])), r"not a parents-first tree"),
        (_set("shapedirs", lambda a: a["shapedirs"][:, :, :N_SHAPE]), r"no exprdirs"),
        (lambda a: a.pop("weights"), r"missing FLAME key\(s\) weights"),
        (_set("v_template", lambda a: np.where(a["v_template"] > 0, np.nan, a["v_template"])), r"v_template contains NaN"),
    ],
)
def test_wrongly_shaped_clear_error(flame_files, tmp_path, mutate, needle):
    arrays = {k: v.copy() for k, v in flame_files.arrays.items()}
    mutate(arrays)
    for path in (tmp_path / "bad.npz", tmp_path / "bad.pkl"):
        if path.suffix == ".npz":
            np.savez(path, **arrays)
        else:
            with fake_chumpy() as ch:
                path.write_bytes(pickle.dumps({k: ch.Ch(v) if k == "shapedirs" else v for k, v in arrays.items()}, protocol=2))
        with pytest.raises(FlameFileError, match=needle) as err:
            read_flame_model(path)
        assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "case, needle",
    [
        ("missing", "file not found"),
        ("empty", "file is empty"),
        ("not_dict", "expected a dict of FLAME arrays"),
        ("suffix", "unknown FLAME file type"),
        ("object_npz", "pickled object arrays, which are refused"),
        ("chumpy_without_x", "has no 'x' entry"),
    ],
)
def test_other_bad_files(tmp_path, flame_files, case, needle):
    path = tmp_path / ("m.npz" if case == "object_npz" else "m.obj" if case == "suffix" else "m.pkl")
    if case == "empty":
        path.write_bytes(b"")
    elif case == "not_dict":
        path.write_bytes(pickle.dumps([1, 2], protocol=2))
    elif case == "suffix":
        path.write_text("v 0 0 0\n")
    elif case == "object_npz":
        np.savez(path, **{**flame_files.arrays, "weights": np.array([{"a": 1}], dtype=object)})
    elif case == "chumpy_without_x":
        write_flame_pkl(path, flame_files.arrays, mutate=lambda d: d["shapedirs"].__dict__.pop("x"))
    with pytest.raises(FlameFileError, match=needle) as err:
        read_flame_model(path)
    assert str(path) in str(err.value)


def test_landmark_file_errors(flame_files, tmp_path):
    static_only = write_landmarks(tmp_path / "static.npy", flame_files.toy, full=False)
    with pytest.raises(FlameFileError, match="only the 51 static points"):
        convert_flame(flame_files.pkl, landmark_path=static_only)
    with pytest.raises(FlameFileError, match="set head.landmark-path"):
        convert_flame(flame_files.pkl)
    bad = tmp_path / "bad.npy"
    np.save(bad, {"full_lmk_faces_idx": np.arange(67), "full_lmk_bary_coords": np.full((67, 3), 1 / 3)}, allow_pickle=True)
    with pytest.raises(FlameFileError, match=r"expected \[68\]/\[68, 3\]"):
        convert_flame(flame_files.pkl, landmark_path=bad)
    with pytest.raises(FlameFileError, match=r"head\.n-shape: 301 components asked for"):
        convert_flame(flame_files.pkl, landmark_path=flame_files.lmk, n_shape=301)


# ---- UVs --------------------------------------------------------------------
def test_obj_uvs_and_mismatch(flame_files, tmp_path):
    toy = flame_files.toy
    lines = [f"v {x} {y} {z}" for x, y, z in toy.v_template] + [f"vt {u} {v}" for u, v in toy.uvs]
    lines += [f"f {a + 1}/{a + 1} {b + 1}/{b + 1} {c + 1}/{c + 1}" for a, b, c in toy.faces]
    (tmp_path / "head.obj").write_text("\n".join(lines) + "\n")
    head = convert_flame(flame_files.pkl, landmark_path=flame_files.lmk, uv_path=tmp_path / "head.obj", n_shape=4, n_expr=4)
    np.testing.assert_array_equal(head.uv_faces, toy.faces)
    np.testing.assert_allclose(head.uvs, toy.uvs, rtol=1e-6)
    lines[-1] = "f 1/1 2/2 3/3"
    (tmp_path / "other.obj").write_text("\n".join(lines) + "\n")
    with pytest.raises(FlameFileError, match="not the FLAME model's faces"):
        convert_flame(flame_files.pkl, landmark_path=flame_files.lmk, uv_path=tmp_path / "other.obj")


def test_cylindrical_uvs_have_no_seam_stretch():
    from scipy.spatial import ConvexHull

    rng = np.random.default_rng(1)
    p = rng.normal(size=(400, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    faces = ConvexHull(p).simplices
    uvs, uv_faces = cylindrical_uvs(p * 0.1, faces)
    assert uvs.min() >= 0 and uvs.max() <= 1 and uv_faces.shape == faces.shape
    u_span = np.ptp(uvs[uv_faces][..., 0], axis=1)
    polar = np.abs(p[faces][..., 1]).max(1) > 0.95  # near the poles azimuth is ill-defined
    assert u_span[~polar].max() < 0.2, u_span[~polar].max()


# ---- region labels ------------------------------------------------------------
def _probe_mesh(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A tiny triangle centred on each probe point (centroid = the point)."""
    d = np.array([[-1e-4, -1e-4, 0], [2e-4, -1e-4, 0], [-1e-4, 2e-4, 0]])
    v = (points[:, None] + d[None]).reshape(-1, 3)
    return v, np.arange(len(v)).reshape(-1, 3)


def test_regions_from_landmarks_only():
    lmk = ibug68_layout()
    inner_mid = (lmk[62] + lmk[66]) / 2
    probes = {
        "r_eye": lmk[36:42].mean(0), "l_eye": lmk[42:48].mean(0),
        "r_brow": lmk[19], "l_brow": lmk[24],
        "nose": (lmk[30] + lmk[33]) / 2,
        "u_lip": (lmk[51] + lmk[62]) / 2, "l_lip": (lmk[57] + lmk[66]) / 2,
        "mouth": inner_mid,
        "skin": np.array([0.055, -0.01, 0.07]),  # cheek
    }
    pts = np.stack(list(probes.values()))
    back = pts.copy()
    back[:, 2] = -0.1  # the same x, y on the back of the head
    v, faces = _probe_mesh(np.concatenate([pts, back]))
    labels = face_regions(v, faces, lmk)
    want = [LABEL[k] for k in probes]
    np.testing.assert_array_equal(labels[: len(probes)], want)
    assert np.all(labels[len(probes) :] == LABEL["skin"])


def test_regions_from_masks_pick_side_by_geometry():
    lmk = ibug68_layout()
    pts = np.array([[0.08, 0.0, 0.0], [-0.08, 0.0, 0.0], [0.0, 0.12, -0.05], [0.0, -0.12, 0.0], [0.03, 0.025, 0.06],
                    (lmk[51] + lmk[62]) / 2, (lmk[57] + lmk[66]) / 2, lmk[24]])
    v, faces = _probe_mesh(pts)
    ids = lambda *i: np.concatenate([np.arange(3 * k, 3 * k + 3) for k in i])  # noqa: E731
    masks = {"left_ear": ids(1), "right_ear": ids(0), "scalp": ids(2), "neck": ids(3), "right_eyeball": ids(4),
             "lips": ids(5, 6), "face": ids(5, 6, 7)}
    labels = face_regions(v, faces, lmk, masks)
    # names are ignored for the side: +X is the subject's left
    want = ["l_ear", "r_ear", "hair", "neck", "l_eye", "u_lip", "l_lip", "l_brow"]
    np.testing.assert_array_equal(labels, [LABEL[k] for k in want])


def test_head_stage_converts_a_flame_file(flame_files, tmp_path):
    """Smoke test of `python -m stages.head` on the FLAME-file branch, tiny preview, into tmp_path."""
    import json

    import yaml
    from typer.testing import CliRunner

    from fairsplat.head.model import HeadModel
    from stages.head import app

    head = {"flame-path": str(flame_files.pkl), "landmark-path": str(flame_files.lmk), "uv-path": str(flame_files.tex),
            "n-shape": 30, "n-expr": 10, "preview-size": 48, "uv-resolution": 16}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"head": head}))
    args = ["--out", str(tmp_path / "out"), "--plots", str(tmp_path / "plots"), "--params", str(tmp_path / "params.yaml"),
            "--metrics-dir", str(tmp_path / "metrics")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.exception
    asset = HeadModel.load(tmp_path / "out" / "head.npz")
    assert asset.source == "flame:generic_model.pkl" and (asset.n_shape, asset.n_expr) == (30, 10)
    metrics = json.loads((tmp_path / "metrics" / "head.json").read_text())
    assert (metrics["vertices"], metrics["faces"], metrics["landmarks"]) == (flame_files.toy.n_vertices, flame_files.toy.n_faces, 68)
