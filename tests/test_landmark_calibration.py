"""Calibration of the procedural head's iBUG-68 embedding: frontal map, costs, solver, committed table, CLI."""

import numpy as np
import pytest
import torch

from fairsplat.head import landmark_calibration as lc
from fairsplat.labels import IBUG68_GROUPS


@pytest.fixture(scope="module")
def geo():
    from fairsplat.head.procedural import head_geometry

    return head_geometry()


@pytest.fixture(scope="module")
def head():
    from fairsplat.head.procedural import build_procedural_head

    return build_procedural_head()


@pytest.fixture(scope="module")
def fmap(geo):
    return lc.frontal_map(geo.verts, geo.faces, np.flatnonzero(geo.face_part == 0), step=0.00025)


@pytest.fixture(scope="module")
def masks(head, geo, fmap):
    from fairsplat.head.procedural_landmarks import anatomical_targets

    ear_z = lc.ear_front(head.v_template, head.faces, head.face_regions)
    return [lc.allowed(k, fmap, head.face_regions, anatomical_targets(), geo.eyes, ear_z) for k in range(68)]


def test_mirror_is_an_involution_that_swaps_sides():
    m = np.array(lc.MIRROR)
    assert sorted(m) == list(range(68)) and (m[m] == np.arange(68)).all()
    side = {"r_brow": "l_brow", "l_brow": "r_brow", "r_eye": "l_eye", "l_eye": "r_eye"}
    for k in range(68):
        g = lc.group_of(k)
        assert lc.group_of(int(m[k])) == side.get(g, g)


def test_frontal_map_matches_frontal_pick(geo, fmap):
    """The z-buffer against ``frontal_pick`` (one point at a time over all faces) at random grid points."""
    from fairsplat.head.procedural_landmarks import frontal_pick

    grid = np.flatnonzero(geo.face_part == 0)
    rng = np.random.default_rng(0)
    jj, ii = np.nonzero(fmap.face >= 0)
    pick = rng.choice(len(jj), 40, replace=False)
    xy = np.stack([fmap.xs[ii[pick]], fmap.ys[jj[pick]]], 1)
    f, b = frontal_pick(geo.verts, geo.faces[grid], xy)
    slow = (geo.verts[geo.faces[grid[f]]] * b[:, :, None]).sum(1)  # [40, 3]
    fast = fmap.points(geo.verts, geo.faces)[jj[pick], ii[pick]]
    np.testing.assert_allclose(fast, slow, atol=1e-9)
    np.testing.assert_allclose(fmap.z[jj[pick], ii[pick]], slow[:, 2], atol=1e-9)
    assert (fmap.xs[::-1] == -fmap.xs).all() and fmap.xs[len(fmap.xs) // 2] == 0.0


def test_candidate_costs_match_a_per_image_loop():
    rng = np.random.default_rng(1)
    n, v, c = 5, 7, 9
    posed = rng.normal(0, 0.05, (n, v, 3)) + [0.0, 0.0, 0.6]
    faces = rng.integers(0, v, (6, 3))
    cand_face, cand_bary = rng.integers(0, 6, c), rng.dirichlet(np.ones(3), c)
    viewmat = np.tile(np.eye(4), (n, 1, 1))
    viewmat[:, :3, 3] = rng.normal(0, 0.01, (n, 3))
    K = np.tile(np.array([[300.0, 0, 64], [0, 300.0, 64], [0, 0, 1]]), (n, 1, 1))
    target, scale = rng.uniform(40, 90, (n, 2)), rng.uniform(20, 30, n)
    for tau in (np.inf, 0.3):
        fast = lc.candidate_costs(posed, faces, cand_face, cand_bary, viewmat, K, target, scale, tau, chunk=4)
        slow = np.zeros(c)
        for j in range(c):
            for i in range(n):
                p = cand_bary[j] @ posed[i, faces[cand_face[j]]]
                uvw = K[i] @ (viewmat[i, :3, :3] @ p + viewmat[i, :3, 3])
                slow[j] += min(np.linalg.norm(uvw[:2] / uvw[2] - target[i]) / scale[i], tau) / n
        np.testing.assert_allclose(fast, slow, rtol=1e-12)


def _rows(head, n: int, seed: int):
    """Posed vertices and cameras of n random frames (SynthHeads-like views), float64."""
    from fairsplat.head.flame import FlameLayer
    from fairsplat.splat.camera import intrinsics, look_at
    from fairsplat.synth.scene import orbit_eye

    g = torch.Generator().manual_seed(seed)
    flame = FlameLayer(head, torch.float64)
    shape = torch.randn(n, 20, generator=g, dtype=torch.float64)
    expr = 0.3 * torch.randn(n, 10, generator=g, dtype=torch.float64)
    with torch.no_grad():
        posed = flame(shape, expr, torch.zeros(n, 15, dtype=torch.float64)).vertices.numpy()
    views = [(0, 0), (30, 0), (-30, 0), (0, 20), (15, -10)]
    vm = np.stack([look_at(orbit_eye(torch.tensor([0.0, -0.02, 0.0]), 0.9, *views[i % 5]), torch.tensor([0.0, -0.02, 0.0])).numpy() for i in range(n)])
    K = np.tile(intrinsics(128, 128, fov_deg=18.0).numpy(), (n, 1, 1)).astype(np.float64)
    return posed, vm.astype(np.float64), K


def _planted(fmap, masks, rng) -> np.ndarray:  # [68, 2] (row, col): a random allowed grid point per mirror pair
    w = len(fmap.xs)
    planted = np.zeros((68, 2), np.int64)
    for k in range(68):
        km = lc.MIRROR[k]
        if km < k:
            continue
        jj, ii = np.nonzero(masks[k] & masks[km][:, ::-1])
        p = rng.integers(len(jj))
        planted[k], planted[km] = (jj[p], ii[p]), (jj[p], w - 1 - ii[p])
    return planted


def test_solver_recovers_planted_points_despite_a_failure_mode(head, fmap, masks):
    """Detections = projections of known allowed surface points + 1 px noise, and in 8 of 20 images a
    consistent failure (the whole face 0.3 IOD off, as dlib's eyes-on-the-brows in turned heads):
    the truncated loss finds the planted grid points; the plain mean distance is dragged (control)."""
    n = 20
    posed, vm, K = _rows(head, n, seed=3)
    rng = np.random.default_rng(4)
    planted = _planted(fmap, masks, rng)
    face, bary = fmap.face[planted[:, 0], planted[:, 1]], fmap.bary[planted[:, 0], planted[:, 1]]
    pts = np.einsum("lk,nlkd->nld", bary, posed[:, head.faces[face]])  # [n, 68, 3]
    det = lc.project(pts, vm, K)
    iod = np.linalg.norm(det[:, 36] - det[:, 45], axis=1)
    det = det + rng.normal(0, 1.0, det.shape)
    bad = np.arange(n) % 5 < 2
    det[bad] += 0.3 * iod[bad, None, None] * np.array([0.6, -0.8])
    want = np.stack([fmap.xs[planted[:, 1]], fmap.ys[planted[:, 0]]], 1)
    err_mm = {}
    for tau in (0.1, np.inf):

        def cost(k, f, b, tau=tau):
            return lc.candidate_costs(posed, head.faces, f, b, vm, K, det[:, k], iod, tau)

        targets, best = lc.solve(fmap, masks, cost)
        err_mm[tau] = np.linalg.norm(targets - want, axis=1) * 1000
        np.testing.assert_array_equal(targets[list(lc.MIRROR)], targets * [-1.0, 1.0])
        assert np.isfinite(best).all()
    # 1 px is 2.3 mm on the face here; averaged over 2 x 12 good images that is ~0.4 mm, as without failures
    assert err_mm[0.1].mean() <= 0.6 and err_mm[0.1].max() <= 1.5, err_mm[0.1]
    assert err_mm[np.inf].mean() > 2 * err_mm[0.1].mean(), (err_mm[np.inf].mean(), err_mm[0.1].mean())


@pytest.mark.parametrize("group", list(lc.RULES))
def test_committed_table_obeys_the_rules(fmap, masks, group):
    """Every calibrated target is a grid point its landmark is allowed on; the table is mirror-symmetric."""
    from fairsplat.head.procedural_landmarks import anatomical_targets, landmark_targets

    t = landmark_targets()
    a, b = IBUG68_GROUPS[group]
    for k in range(a, b):
        i = int(np.argmin(np.abs(fmap.xs - t[k, 0])))
        j = int(np.argmin(np.abs(fmap.ys - t[k, 1])))
        assert abs(fmap.xs[i] - t[k, 0]) < 1e-6 and abs(fmap.ys[j] - t[k, 1]) < 1e-6, (k, t[k])
        assert masks[k][j, i], (k, group, t[k])
    np.testing.assert_allclose(t[list(lc.MIRROR)], t * [-1.0, 1.0], atol=1e-9)
    for k in lc.PINNED:
        np.testing.assert_allclose(t[k], anatomical_targets()[k], atol=1e-6)


def test_table_source_round_trips():
    from fairsplat.head.calibrate_landmarks import render_table

    t = np.random.default_rng(5).uniform(-0.08, 0.08, (68, 2))
    ns: dict = {}
    exec(render_table(t, {"rows": 3, "sets": ["a: 1 row"]}), ns)
    np.testing.assert_allclose(ns["TARGETS_MM"], np.round(t * 1000, 3), atol=0)
    assert ns["PROVENANCE"] == {"rows": 3, "sets": ["a: 1 row"]}


def test_calibrate_cli_on_micro_synthheads(head, tmp_path):
    """The script end to end on 12 frontal 128 px SynthHeads: writes a valid table, twice the same bytes."""
    pytest.importorskip("dlib")
    from typer.testing import CliRunner

    from fairsplat.config import parse_section
    from fairsplat.head.calibrate_landmarks import app
    from fairsplat.sections.synth import SynthParams
    from fairsplat.io.tables import write_table
    from fairsplat.synth.dataset import MANIFEST_SCHEMA, build

    head.save(tmp_path / "head.npz")
    cfg = parse_section("synth", {"identities": 12, "frames": 1, "views": [[0, 0]], "size": 128, "train-frac": 0.5, "val-frac": 0.0}, SynthParams).synth_config()
    manifest, _, _ = build(head, cfg, tmp_path / "synth")
    write_table(manifest, MANIFEST_SCHEMA, tmp_path / "synth" / "manifest.parquet")
    outs = []
    for run in range(2):
        out = tmp_path / f"table{run}.py"
        args = ["--synth", str(tmp_path / "synth"), "--head", str(tmp_path / "head.npz"), "--out", str(out), "--step-mm", "0.5"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    ns: dict = {}
    exec(outs[0].decode(), ns)
    assert ns["TARGETS_MM"].shape == (68, 2) and np.isfinite(ns["TARGETS_MM"]).all()
    train = sum(s == "train" for s in manifest.column("split").to_pylist())
    assert 1 <= ns["PROVENANCE"]["rows"] <= train < 12  # train identities only
    np.testing.assert_allclose(ns["TARGETS_MM"][list(lc.MIRROR)], ns["TARGETS_MM"] * [-1.0, 1.0], atol=1e-9)
