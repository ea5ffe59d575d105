"""Atomic writes, metrics files and the 3DGS PLY round trip."""

import json

import numpy as np
import pytest
import torch

from fairsplat.io import atomic_dir, atomic_path, write_json
from fairsplat.io.metrics import write_metrics
from fairsplat.io.ply import PlyFormatError, load_ply, save_ply
from fairsplat.splat.gaussians import GaussianSet


def test_atomic_path_leaves_old_file_on_crash(tmp_path):
    target = tmp_path / "a.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert json.loads(target.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_atomic_dir_swaps_whole_directory(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as d:
        (d / "x").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as d:
            (d / "y").write_text("2")
            raise RuntimeError("crash")
    assert sorted(p.name for p in out.iterdir()) == ["x"]
    with atomic_dir(out) as d:
        (d / "z").write_text("3")
    assert sorted(p.name for p in out.iterdir()) == ["z"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_metrics_contract(tmp_path):
    path = write_metrics("s", {"n": np.int64(3), "x": np.float32(0.5), "per_fitzpatrick": {"II": {"n": 1}, "I": {"n": 2}}, "lpips": None}, root=tmp_path)
    data = json.loads(path.read_text())
    assert data["n"] == 3 and data["x"] == 0.5 and data["lpips"] is None
    assert list(data["per_fitzpatrick"]) == ["I", "II"]
    with pytest.raises(ValueError, match="nan"):
        write_metrics("s", {"x": float("nan")}, root=tmp_path)
    with pytest.raises(ValueError, match="per_fitzpatrick"):
        write_metrics("s", {"per_fitzpatrick": {"VII": {}}}, root=tmp_path)


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_ply_round_trip_is_exact(tmp_path, degree):
    g = torch.Generator().manual_seed(degree)
    n, k = 257, (degree + 1) ** 2
    gs = GaussianSet(
        means=torch.randn(n, 3, generator=g),
        quats=torch.randn(n, 4, generator=g),
        log_scales=torch.randn(n, 3, generator=g) - 4,
        opacity_logits=torch.randn(n, generator=g),
        sh=torch.randn(n, k, 3, generator=g),
    )
    save_ply(tmp_path / "g.ply", gs)
    back = load_ply(tmp_path / "g.ply")
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        assert torch.equal(getattr(back, name), getattr(gs, name)), name
    header = (tmp_path / "g.ply").read_bytes()[:2000].split(b"end_header")[0].decode()
    for prop in ["x", "f_dc_0", "opacity", "scale_2", "rot_3"] + ([f"f_rest_{3 * k - 4}"] if k > 1 else []):
        assert f"property float {prop}\n" in header


def test_ply_f_rest_is_channel_major(tmp_path):
    """3DGS stores f_rest as [channel][coeff]; a viewer reads it that way."""
    sh = torch.zeros(1, 4, 3)
    sh[0, 1, 0], sh[0, 1, 1] = 7.0, 9.0  # coeff 1 of R and of G
    gs = GaussianSet(torch.zeros(1, 3), torch.tensor([[1.0, 0, 0, 0]]), torch.zeros(1, 3), torch.zeros(1), sh)
    save_ply(tmp_path / "g.ply", gs)
    from plyfile import PlyData

    v = PlyData.read(str(tmp_path / "g.ply"))["vertex"]
    assert v["f_rest_0"][0] == 7.0 and v["f_rest_3"][0] == 9.0


def test_ply_rejects_foreign_files(tmp_path):
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"not a ply")
    with pytest.raises(PlyFormatError):
        load_ply(bad)
