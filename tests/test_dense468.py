"""MediaPipe's 468 mesh points embedded on the head (track/embed468.py) and the dense fit (track/dense.py)."""

import math

import numpy as np
import pytest
import torch

from fairsplat.track import embed468
from fairsplat.head.flame import FlameLayer
from fairsplat.track.camera import FLIP, default_K
from fairsplat.track.fit import FitConfig, Fitter, flame_landmarks_2d
from fairsplat.track.landmarks import LandmarkFlame

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def table(procedural_head):
    return embed468.load(procedural_head)


def test_committed_table_is_valid(procedural_head, table):
    """468 points on the head's triangles (convex weights), none on an eyeball, weights positive with mean 1."""
    faces, bary, weights = table
    assert faces.shape == (468,) and bary.shape == (468, 3) and weights.shape == (468,)
    assert faces.min() >= 0 and faces.max() < len(procedural_head.faces)
    assert (bary >= -1e-9).all() and np.allclose(bary.sum(1), 1.0, atol=1e-9)
    assert not embed468.eyeball_faces(procedural_head)[faces].any()
    assert (weights > 0).all() and abs(weights.mean() - 1.0) < 1e-3
    # the mesh's own left/right: the subject's right outer eye corner (33) is at -x, the left one (263) at +x
    pts = embed468.template_points(procedural_head, faces, bary)
    assert pts[33, 0] < 0 < pts[263, 0]


def test_table_refuses_another_head():
    from fairsplat.testing.toy_head import make_toy_head

    with pytest.raises(ValueError, match="track.fit-points"):
        embed468.load(make_toy_head(n_shape=4, n_expr=2))


def test_embed_matches_reference(procedural_head, table):
    faces, bary, _ = table
    v = procedural_head.v_template.astype(np.float64) + np.random.default_rng(0).normal(0, 1e-3, (procedural_head.n_vertices, 3))
    fast = embed468.embed(np.stack([v, 2 * v]), procedural_head.faces.astype(np.int64), faces, bary)
    slow = embed468.embed_reference(v, procedural_head.faces.astype(np.int64), faces, bary)
    np.testing.assert_allclose(fast[0], slow, atol=1e-12)
    np.testing.assert_allclose(fast[1], 2 * slow, atol=1e-12)


def test_landmark_flame_embedding_matches_full_layer(procedural_head, table):
    """The fast posed embedding equals the full FLAME layer's vertices combined by the table: values and gradients."""
    faces, bary, _ = table
    lf = LandmarkFlame(procedural_head, torch.float64, embedding=(faces, bary))
    full = FlameLayer(procedural_head, torch.float64)
    g = torch.Generator().manual_seed(0)
    shape = torch.randn(2, lf.n_shape, generator=g, dtype=torch.float64, requires_grad=True)
    expr = torch.rand(2, lf.n_expr, generator=g, dtype=torch.float64, requires_grad=True)
    pose = (0.2 * torch.randn(2, 15, generator=g, dtype=torch.float64)).requires_grad_()
    tri = torch.as_tensor(procedural_head.faces[faces], dtype=torch.long)  # [468, 3]
    b = torch.as_tensor(bary)
    fast = lf(shape, expr, pose)[0]
    slow = (full(shape, expr, pose).vertices[:, tri] * b[None, :, :, None]).sum(2)
    torch.testing.assert_close(fast, slow, atol=1e-10, rtol=1e-9)
    w = torch.randn(2, 468, 3, generator=g, dtype=torch.float64)
    for a, c in zip(*[torch.autograd.grad((o * w).sum(), (shape, expr, pose)) for o in (fast, slow)]):
        torch.testing.assert_close(a, c, atol=1e-9, rtol=1e-8)


def test_pick_matches_raycast(procedural_head):
    """The image-space pick equals the 3D ray cast (Moller-Trumbore, every triangle) on a turned head."""
    full = FlameLayer(procedural_head, torch.float64)
    pose = torch.zeros(1, 15, dtype=torch.float64)
    pose[0, 1] = math.radians(30)
    verts = full(pose=pose).vertices[0].numpy()
    cam = verts @ FLIP.double().numpy().T + np.array([0.0, 0.0, 0.8])  # [V, 3] camera frame, 0.8 m away
    K = default_K(128, 128, 18.0).double().numpy()
    pix = np.random.default_rng(1).uniform(30, 98, (300, 2))
    f1, b1 = embed468.pick(pix, cam, K, procedural_head.faces.astype(np.int64))
    rays = np.concatenate([pix, np.ones((len(pix), 1))], 1) @ np.linalg.inv(K).T
    f2, b2 = embed468.raycast(np.zeros(3), rays, cam[procedural_head.faces])
    assert (f1 >= 0).sum() > 150  # most pixels of the face crop hit the head
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_allclose(b1, b2, atol=1e-9)


def test_closest_points_matches_sampling():
    """Ericson's closest point against a fine barycentric grid on every triangle."""
    rng = np.random.default_rng(2)
    tri = rng.normal(0, 1, (6, 3, 3))
    pts = rng.normal(0, 1.5, (40, 3))
    face, bary = embed468.closest_points(pts, tri)
    assert (bary >= -1e-12).all() and np.allclose(bary.sum(1), 1)
    got = np.linalg.norm((bary[:, :, None] * tri[face]).sum(1) - pts, axis=1)
    s = np.linspace(0, 1, 201)
    u, v = np.meshgrid(s, s)
    m = (u + v) <= 1
    grid = np.stack([1 - u[m] - v[m], u[m], v[m]], 1)  # [G, 3]
    samples = np.einsum("gk,fkc->fgc", grid, tri).reshape(-1, 3)  # [F*G, 3]
    best = np.linalg.norm(samples[None] - pts[:, None], axis=-1).min(1)
    assert (got <= best + 1e-9).all() and (best - got < 0.02).all()


def _known_heads(lf68: LandmarkFlame, b: int = 4, size: int = 256):
    g = torch.Generator().manual_seed(3)
    shape = torch.randn(b, lf68.n_shape, generator=g)
    expr = 0.5 * torch.rand(b, lf68.n_expr, generator=g)
    pose = torch.zeros(b, 15)
    pose[:, 0:3] = math.radians(20) * (2 * torch.rand(b, 3, generator=g) - 1) * torch.tensor([0.5, 1.0, 0.2])
    pose[:, 6] = 0.2 * torch.rand(b, generator=g)
    transl = torch.tensor([[0.0, 0.0, -1.0]]).repeat(b, 1)
    K = default_K(size, size, 18.0).expand(b, 3, 3).clone()
    return shape, expr, pose, transl, K


def test_dense_fit_recovers_known_heads(procedural_head, table):
    """468 points projected exactly from known FLAME parameters through the embedding are fitted back:
    the 68 landmarks read off the fit match the true ones, and so do rotation and jaw."""
    from fairsplat.track.dense import DenseFitter
    from fairsplat.track.evaluate import nme

    lf68 = LandmarkFlame(procedural_head)
    fitter = DenseFitter(lf68, FitConfig(iters=20), weights="calibrated")
    shape, expr, pose, transl, K = _known_heads(lf68)
    dense = flame_landmarks_2d(fitter.points, shape, expr, pose, transl, K)  # [B, 468, 2]
    true68 = flame_landmarks_2d(lf68, shape, expr, pose, transl, K)
    res = fitter.fit(dense, K, torch.ones(dense.shape[:2]))
    err = nme(res.landmarks2d.numpy(), true68.numpy())
    assert err.max() < 0.01, err
    assert (res.pose[:, 0:3] - pose[:, 0:3]).abs().max() < math.radians(2)
    assert (res.pose[:, 6] - pose[:, 6]).abs().max() < 0.05


def test_dense_fit_subset_and_facing(procedural_head, table):
    """Every third point with the facing weight still recovers the heads; the weight is ~1 on a frontal face
    and 0 for points on the back of a half-turned head."""
    from fairsplat.track.dense import DenseFitter
    from fairsplat.track.evaluate import nme

    lf68 = LandmarkFlame(procedural_head)
    fitter = DenseFitter(lf68, FitConfig(iters=20, robust="geman_mcclure", rigid_robust="huber"), facing=0.3, stride=3)
    assert fitter.n_inputs == 468 and fitter.n_points == len(fitter.subset) < 200
    assert [int(fitter.subset[i]) for i in fitter.eyes] == list(embed468.EYE_CORNERS)
    shape, expr, pose, transl, K = _known_heads(lf68)
    full = LandmarkFlame(procedural_head, embedding=table[:2])
    dense = flame_landmarks_2d(full, shape, expr, pose, transl, K)
    res = fitter.fit(dense, K, torch.ones(dense.shape[:2]))
    assert nme(res.landmarks2d.numpy(), flame_landmarks_2d(lf68, shape, expr, pose, transl, K).numpy()).max() < 0.01
    z = fitter.from_flame(torch.zeros(2, 0), torch.zeros(2, 0), torch.zeros(2, 15), torch.tensor([[0, 0, -1.0]] * 2))
    z[1, 1] = math.radians(80)  # a head turned 80 degrees: the far cheek faces away
    w = fitter.point_weights(z, K[:2])
    assert w[0].mean() > 0.8
    assert (w[1] == 0).sum() > (w[0] == 0).sum() + 10


def test_dense_needs_mesh_points(procedural_head):
    """A dense fitter on items without mesh points (dlib, ground truth) is refused with the reason."""
    from fairsplat.testing.track_problems import problem_items, random_problem
    from fairsplat.track.dense import DenseFitter
    from fairsplat.track.run import run_fit

    lf68 = LandmarkFlame(procedural_head)
    items = problem_items(random_problem(lf68, 2))
    with pytest.raises(ValueError, match="mesh points"):
        run_fit(items, DenseFitter(lf68))
    assert isinstance(Fitter(lf68), Fitter)


def test_params_validate_fit_points():
    from fairsplat.sections.track import TrackParams

    assert TrackParams().track_config().fit_points in ("mesh68", "dense468")
    for bad in ({"fit_points": "dense"}, {"dense_facing": 2.0}, {"dense_weights": "learned"}, {"dense_stride": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrackParams(**bad)


def test_stage_fitter_fits_items_mesh_points(procedural_head, table):
    """The stage's path: ``make_fitter`` with ``fit-points: dense468`` on Items that carry mesh points
    (as the MediaPipe loaders fill them) fits them and reports the 68 landmarks of the fitted heads."""
    import dataclasses

    from fairsplat.testing.track_problems import problem_items, random_problem
    from fairsplat.track.config import TrackConfig
    from fairsplat.track.dense import DenseFitter
    from fairsplat.track.evaluate import nme
    from fairsplat.track.pipeline import make_fitter
    from fairsplat.track.run import run_fit

    lf68 = LandmarkFlame(procedural_head)
    p = random_problem(lf68, 3, seed=4, expr_std=0.0)
    mesh = flame_landmarks_2d(LandmarkFlame(procedural_head, embedding=table[:2]), p.shape, p.expr, p.pose, p.transl, p.K)
    items = dataclasses.replace(problem_items(p), points=mesh.numpy().astype(np.float32))
    fitter = make_fitter(lf68, TrackConfig(fit_points="dense468", dense_stride=2), True, True, True)
    assert isinstance(fitter, DenseFitter) and fitter.n_inputs == 468
    run = run_fit(items, fitter)
    assert run.fitted.all() and run.landmarks2d.shape == (3, 68, 2)
    assert nme(run.landmarks2d, p.landmarks.numpy()).max() < 0.02
    assert not isinstance(make_fitter(lf68, TrackConfig(), True, False, True), DenseFitter)
