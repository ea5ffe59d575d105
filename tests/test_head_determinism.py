"""The head asset and a micro SynthHeads are bit-identical whatever the machine's BLAS kernel, numpy SIMD target, threads or JIT.

Why: a fresh clone's ``make repro`` on another x86 machine once produced a
different ``assets/head/head.npz`` from the committed dvc.lock (README,
"Reproducibility across machines"). Other machines are emulated here in
subprocesses: ``OPENBLAS_CORETYPE`` makes OpenBLAS use another CPU's kernels,
``NPY_DISABLE_CPU_FEATURES`` takes numpy's AVX512 / AVX2 loops away (on this
project's machines those changed ``exp``/``log``/``power`` in the last bit),
and thread counts and numba's JIT are switched. Each child builds the default
head and reports the md5 of the saved file and of the float64 bases before
the float32 cast (with a longer shape basis, so the seeded random tail is
covered too); all must equal the reference child's. A micro SynthHeads
(the ``synth`` stage's own command) is rendered twice, once as on another
machine, and every file it writes must match.
"""

import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

CHILD = r"""
import hashlib, json, sys, tempfile
from pathlib import Path
import numpy as np
from fairsplat.head import procedural as P, procedural_surface as surf
from fairsplat.head.asset import HeadConfig, make_head
from fairsplat.head.procedural_basis import shape_basis

md5 = lambda b: hashlib.md5(b).hexdigest()
path = Path(tempfile.mkdtemp()) / "head.npz"
make_head(HeadConfig()).save(path)
g = P.head_geometry()
rigid = {1: g.eyes[0], 2: g.eyes[1], 3: g.bag_centre}
gate = surf.front_gate(g.verts[:, 2]) * (g.part == 0)
hug = {p: P._socket_weight(g.verts, g.eyes[p - 1]) * gate for p in (1, 2)}
basis = shape_basis(g.verts, g.area, g.part, rigid, 24, 0, hug)[0]  # float64, 5 random tail components
print(json.dumps({"asset": md5(path.read_bytes()), "verts64": md5(g.verts.tobytes()), "shapedirs64": md5(basis.tobytes())}))
"""


def _numpy_simd_off(names: tuple[str, ...]) -> str:
    """The dispatch targets among ``names`` this numpy build has (disabling any other one is an error)."""
    from numpy._core._multiarray_umath import __cpu_dispatch__

    return " ".join(t for t in __cpu_dispatch__ if t.startswith(names))


def _variants() -> dict[str, dict[str, str]]:
    from numpy._core._multiarray_umath import __cpu_features__

    one = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    two = {k: "2" for k in one}
    out = {"threads_2": two, "numba_jit_off": {**one, "NUMBA_DISABLE_JIT": "1"}}
    if platform.machine() in ("x86_64", "AMD64"):
        no512 = _numpy_simd_off(("AVX512",))
        no2 = _numpy_simd_off(("AVX512", "AVX2", "FMA3"))
        if __cpu_features__.get("AVX2"):  # OpenBLAS's Haswell kernels need AVX2
            out["blas_haswell_numpy_no_avx512"] = {**one, "OPENBLAS_CORETYPE": "Haswell", "NPY_DISABLE_CPU_FEATURES": no512}
        out["blas_prescott_numpy_no_avx2"] = {**one, "OPENBLAS_CORETYPE": "Prescott", "NPY_DISABLE_CPU_FEATURES": no2}
    return {"reference": one, **out}


def _build(env_extra: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENBLAS_", "NPY_DISABLE", "NUMBA_DISABLE"))}
    r = subprocess.run([sys.executable, "-c", CHILD], env={**env, **env_extra}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def builds() -> dict[str, dict]:
    return {name: _build(extra) for name, extra in _variants().items()}


def test_head_asset_identical_across_emulated_machines(builds):
    ref = builds["reference"]
    assert len(builds) >= 3  # reference, two threads, JIT off (+ the BLAS / SIMD variants on x86)
    for name, got in builds.items():
        assert got == ref, f"{name}: {got} != reference {ref}"


def test_variants_do_change_what_they_claim_to():
    """Guard against a vacuous pass: on this machine the knobs really change numpy's exp and OpenBLAS's QR."""
    from numpy._core._multiarray_umath import __cpu_features__

    variants = _variants()
    openblas = "openblas" in str(np.show_config(mode="dicts")["Build Dependencies"]["blas"].get("name", "")).lower()
    check_qr = openblas and "blas_prescott_numpy_no_avx2" in variants  # SSE3 kernels differ from any AVX2 / AVX512 ones
    check_exp = bool(__cpu_features__.get("AVX512F")) and "blas_prescott_numpy_no_avx2" in variants  # numpy's AVX512 exp loop
    if not (check_qr or check_exp):
        pytest.skip("no OpenBLAS and no AVX512 here: the emulated variants switch nothing this test could observe")
    code = ("import numpy as np, hashlib; x = np.linspace(-700, 700, 100001); a = np.sin(np.arange(3000 * 20.0)).reshape(3000, 20);"
            "print(hashlib.md5(np.exp(x).tobytes()).hexdigest(), hashlib.md5(np.linalg.qr(a)[0].tobytes()).hexdigest())")
    outs = {}
    for name in ("reference", "blas_prescott_numpy_no_avx2"):
        env = {**os.environ, **variants[name]}
        outs[name] = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.split()
    (exp_ref, qr_ref), (exp_other, qr_other) = outs["reference"], outs["blas_prescott_numpy_no_avx2"]
    if check_exp:
        assert exp_other != exp_ref, "disabling numpy's AVX512 loops changed no bit of np.exp"
    if check_qr:
        assert qr_other != qr_ref, "OPENBLAS_CORETYPE=Prescott changed no bit of np.linalg.qr"


SYNTH_PARAMS = """synth:
  identities: 6
  frames: 1
  views: [[0, 0]]
  size: 32
  uv-resolution: 32
  train-frac: 0.5
  val-frac: 0.25
  seed: 0
  workers: 1
"""


def _synth_files(tmp, name: str, env_extra: dict[str, str]) -> dict[str, str]:
    """Run ``python -m stages.synth`` on a micro config; md5 of every file it wrote, by relative path."""
    import hashlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    params = tmp / "params.yaml"
    params.write_text(SYNTH_PARAMS)
    head = tmp / "head.npz"
    if not head.exists():
        from fairsplat.head.procedural import build_procedural_head

        build_procedural_head().save(head)
    out = tmp / name
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENBLAS_", "NPY_DISABLE", "NUMBA_DISABLE", "MKL_", "ATEN_"))}
    cmd = [sys.executable, "-m", "stages.synth", "--head", str(head), "--out", str(out / "synth"), "--plots", str(out / "plots"),
           "--params", str(params), "--metrics-dir", str(out / "metrics")]
    r = subprocess.run(cmd, cwd=root, env={**env, **env_extra}, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    files = sorted(p for p in (out / "synth").rglob("*") if p.is_file())
    assert any(p.suffix == ".png" for p in files) and any(p.name == "ita_check.parquet" for p in files)
    return {str(p.relative_to(out)): hashlib.md5(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.slow
def test_micro_synthheads_identical_as_on_another_machine(tmp_path):
    """Reference vs the other kernels, SIMD targets and thread counts at once (each alone is slow to render)."""
    variants = _variants()
    other = dict(variants.get("blas_prescott_numpy_no_avx2", variants["threads_2"]))
    other.update({"MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ATEN_CPU_CAPABILITY": "default", "NUMBA_NUM_THREADS": "2"})
    ref = _synth_files(tmp_path, "reference", variants["reference"])
    got = _synth_files(tmp_path, "other", other)
    assert got.keys() == ref.keys()
    differ = sorted(k for k in ref if got[k] != ref[k])
    assert not differ, f"{len(differ)} of {len(ref)} files differ, e.g. {differ[:5]}"
