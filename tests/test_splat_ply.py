"""The 3DGS PLY format (fairsplat.splat.ply): exact round trip and INRIA's layout."""

import numpy as np
import pytest
import torch

from fairsplat.splat.gaussians import GaussianSet
from fairsplat.splat.ply import PlyFormatError, load_ply, save_ply


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


def test_ply_header_is_the_inria_layout(tmp_path):
    """Exactly INRIA 3DGS's property order (what viewers index by): degree 1 -> 9 f_rest."""
    gs = GaussianSet(torch.zeros(2, 3), torch.tensor([[1.0, 0, 0, 0]] * 2), torch.zeros(2, 3), torch.zeros(2), torch.zeros(2, 4, 3))
    save_ply(tmp_path / "g.ply", gs)
    header = (tmp_path / "g.ply").read_bytes().split(b"end_header")[0].decode()
    props = [line.split()[-1] for line in header.splitlines() if line.startswith("property")]
    want = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(9)]
    assert props == want + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert "format binary_little_endian 1.0" in header and "element vertex 2" in header


def _write_vertex_ply(path, names):
    from plyfile import PlyData, PlyElement

    arr = np.zeros(3, dtype=[(n, "<f4") for n in names])
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(path))


def test_ply_rejects_missing_properties_and_partial_sh(tmp_path):
    base = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    _write_vertex_ply(tmp_path / "a.ply", [n for n in base if n != "scale_1"])
    with pytest.raises(PlyFormatError, match="missing properties \\['scale_1'\\]"):
        load_ply(tmp_path / "a.ply")
    _write_vertex_ply(tmp_path / "b.ply", base + [f"f_rest_{i}" for i in range(6)])  # 2 coeffs: not a full degree
    with pytest.raises(PlyFormatError, match="6 f_rest"):
        load_ply(tmp_path / "b.ply")
    _write_vertex_ply(tmp_path / "c.ply", base)  # no normals, degree 0: still a valid 3DGS file
    assert len(load_ply(tmp_path / "c.ply")) == 3


def test_bound_avatar_exports_and_reimports(tmp_path):
    """A posed UV-bound avatar -> GaussianSet -> PLY -> back: raw values bit-exact, activations equal."""
    from test_binding import grid_mesh

    from fairsplat.splat.binding import bind_to_world, uv_grid_binding

    m = grid_mesh()
    b = uv_grid_binding(m, resolution=16)
    means, quats, scales = (t[0] for t in bind_to_world(b, torch.as_tensor(m.v_template)[None], torch.as_tensor(m.faces)))
    g = torch.Generator().manual_seed(0)
    gs = GaussianSet.from_activated(means, quats, scales, torch.rand(len(b), generator=g), torch.rand(len(b), 3, generator=g))
    save_ply(tmp_path / "avatar.ply", gs)
    back = load_ply(tmp_path / "avatar.ply")
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        assert torch.equal(getattr(back, name), getattr(gs, name)), name
    torch.testing.assert_close(back.scales, scales)
    torch.testing.assert_close(back.colors, gs.colors)
