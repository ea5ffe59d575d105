"""Tracking: the fast landmark FLAME, cameras, the LM solver against a slow reference, fits of known parameters."""

import math

import numpy as np
import pytest
import torch

from fairsplat.head.flame import FlameLayer
from fairsplat.head.lbs import rodrigues
from fairsplat.track import solver
from fairsplat.track.camera import FLIP, matrix_to_axis_angle, project, rigid_init, rotation_angle_deg
from fairsplat.track.evaluate import head_rotation, nme
from fairsplat.track.fit import FitConfig, Fitter
from fairsplat.track.landmarks import LandmarkFlame
from fairsplat.track.priors import PriorWeights
from fairsplat.testing.track_problems import random_problem
from fairsplat.testing.toy_head import make_toy_head


pytestmark = pytest.mark.usefixtures("one_thread")


def _procedural():
    mod = pytest.importorskip("fairsplat.head.procedural", reason="procedural head not landed yet")
    return mod.build_procedural_head()


HEADS = {"toy": lambda: make_toy_head(n_shape=12, n_expr=8), "procedural": _procedural}
"""Every FLAME-format head the tracker must handle (a real FLAME file converts to the same HeadModel)."""

_cache: dict = {}


def landmark_model(name: str) -> LandmarkFlame:
    if name not in _cache:
        head = HEADS[name]()
        _cache[name] = (head, LandmarkFlame(head))
    return _cache[name][1]


@pytest.mark.parametrize("name", HEADS)
def test_landmark_flame_matches_full_layer(name):
    """The 68-landmark fast path equals FlameLayer's landmarks, values and gradients."""
    lf = landmark_model(name)
    full = FlameLayer(_cache[name][0])
    g = torch.Generator().manual_seed(0)
    shape = torch.randn(3, lf.n_shape, generator=g, requires_grad=True)
    expr = torch.randn(3, lf.n_expr, generator=g, requires_grad=True)
    pose = (0.3 * torch.randn(3, 15, generator=g)).requires_grad_()
    fast, slow = lf(shape, expr, pose)[0], full(shape, expr, pose).landmarks
    torch.testing.assert_close(fast, slow, atol=2e-6, rtol=1e-5)
    w = torch.randn(3, 68, 3, generator=g)
    grads = [torch.autograd.grad((out * w).sum(), (shape, expr, pose)) for out in (fast, slow)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_matrix_to_axis_angle_inverts_rodrigues():
    g = torch.Generator().manual_seed(1)
    axis = torch.nn.functional.normalize(torch.randn(64, 3, generator=g), dim=-1)
    angle = torch.cat([torch.tensor([0.0, 1e-6, 1e-3, math.pi - 1e-3]), torch.rand(60, generator=g) * math.pi])[:, None]
    v = axis * angle
    back = matrix_to_axis_angle(rodrigues(v.double())).float()
    torch.testing.assert_close(rodrigues(back), rodrigues(v), atol=1e-5, rtol=0)
    keep = torch.arange(64) != 3  # near pi the axis may flip sign; elsewhere the same vector
    torch.testing.assert_close(back[keep], v[keep], atol=1e-4, rtol=0)


def test_rigid_init_recovers_pose():
    """POSIT on exact perspective projections of a rotated template: within a degree."""
    lf = landmark_model("toy")
    tmpl = lf(torch.zeros(1, 0), torch.zeros(1, 0), torch.zeros(1, 15))[0]  # [1, 68, 3]
    g = torch.Generator().manual_seed(2)
    R = rodrigues(torch.deg2rad(torch.tensor([20.0, 30.0, 8.0])) * (2 * torch.rand(16, 3, generator=g) - 1)) @ FLIP
    t = torch.tensor([0.01, -0.02, 0.7]).expand(16, 3)
    K = torch.tensor([[800.0, 0, 128], [0, 800, 128], [0, 0, 1]]).expand(16, 3, 3)
    px = project(tmpl @ R.transpose(1, 2) + t[:, None], K)
    R2, t2 = rigid_init(tmpl.expand(16, 68, 3), px, K, torch.ones(16, 68))
    assert rotation_angle_deg(R2, R).max() < 1.0
    assert (t2 - t).norm(dim=-1).max() < 0.01


# ---- the solver against a slow, obviously correct Gauss-Newton step ----------
DX, DY, NR = 4, 3, 6


def _toy_residual(z: torch.Tensor) -> torch.Tensor:  # [N, DX + DY] -> [N, NR], smooth and nonlinear
    A = torch.linspace(-1, 1, (DX + DY) * NR, dtype=z.dtype).reshape(DX + DY, NR)
    return torch.tanh(z @ A) + 0.3 * (z**2) @ A.flip(0) - 0.2


def _terms(triples: torch.Tensor) -> solver.Terms:
    return solver.Terms(wx=torch.tensor([0.1, 0.0, 0.2, 0.05]), wy=torch.tensor([0.3, 0.0, 0.1]),
                        lo=torch.tensor([-torch.inf, -0.5, -torch.inf, -0.1]), hi=torch.tensor([torch.inf, 0.5, 0.2, 0.1]),
                        wl=2.0, ws=torch.tensor([0.5, 0.0, 1.0, 0.2]), triples=triples)  # fmt: skip


def _reference_step(x, y, t: solver.Terms, lam: float):
    """Stack every residual of one subject, Jacobian by autograd, Marquardt-damped GN step."""
    T = x.shape[0]

    def stacked(theta):
        xs, ys = theta[: T * DX].reshape(T, DX), theta[T * DX :]
        r = [_toy_residual(torch.cat([xs, ys.expand(T, DY)], 1)).reshape(-1)]
        r += [(t.wx.sqrt() * xs).reshape(-1), t.wy.sqrt() * ys]
        r += [math.sqrt(t.wl) * (torch.relu(t.lo - xs) - torch.relu(xs - t.hi)).reshape(-1)]
        tri = t.triples
        r += [(t.ws.sqrt() * (xs[tri[:, 0]] - 2 * xs[tri[:, 1]] + xs[tri[:, 2]])).reshape(-1)]
        return torch.cat(r)

    theta = torch.cat([x.reshape(-1), y.reshape(-1)]).double()
    J = torch.autograd.functional.jacobian(stacked, theta)
    r = stacked(theta)
    H = J.T @ J
    H = H + torch.diag(lam * (torch.diagonal(H) + 1e-6))
    delta = -torch.linalg.solve(H, J.T @ r)
    return delta[: T * DX].reshape(T, DX), delta[T * DX :]


def test_solver_step_matches_reference():
    """Two subjects (4 and 1 frames), limits active, smoothness: each block equals the slow step."""
    g = torch.Generator().manual_seed(3)
    subjects = torch.tensor([0, 0, 0, 0, 1])
    x = 0.4 * torch.randn(5, DX, generator=g).double()
    x[1, 1], x[2, 3] = 0.9, -0.4  # outside the limits
    y = 0.4 * torch.randn(2, DY, generator=g).double()
    t = _terms(torch.tensor([[0, 1, 2], [1, 2, 3]]))
    t64 = solver.Terms(*(v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v for v in t.__dict__.values()))
    lam = torch.tensor([0.01, 0.5]).double()
    r, J = solver._jacobian(_toy_residual, torch.cat([x, y[subjects]], 1))
    dx, dy = solver._step(r, J, x, y, subjects, t64, torch.ones(DX + DY, dtype=torch.bool), lam,
                          solver._blocks(subjects, 2))  # fmt: skip
    ref0 = _reference_step(x[:4], y[0], t64, 0.01)
    no_tri = solver.Terms(**{**t64.__dict__, "triples": torch.zeros(0, 3, dtype=torch.long)})
    ref1 = _reference_step(x[4:], y[1], no_tri, 0.5)
    torch.testing.assert_close(dx[:4], ref0[0], atol=1e-8, rtol=1e-6)
    torch.testing.assert_close(dy[0], ref0[1], atol=1e-8, rtol=1e-6)
    torch.testing.assert_close(dx[4:], ref1[0], atol=1e-8, rtol=1e-6)
    torch.testing.assert_close(dy[1], ref1[1], atol=1e-8, rtol=1e-6)


def test_solver_costs_never_increase():
    g = torch.Generator().manual_seed(4)
    subjects = torch.tensor([0, 0, 1, 2, 2, 2])
    x, y = torch.randn(6, DX, generator=g), torch.randn(3, DY, generator=g)
    t = _terms(torch.tensor([[3, 4, 5]]))
    before = solver._subject_costs(_toy_residual, x, y, subjects, t)
    x2, y2 = solver.solve(_toy_residual, x, y, subjects, t, iters=10)
    after = solver._subject_costs(_toy_residual, x2, y2, subjects, t)
    assert (after <= before).all() and (after < 0.5 * before).all()


# ---- fitting known parameters --------------------------------------------------
NO_PRIORS = PriorWeights(shape=0.0, expr=0.0, jaw=0.0)


@pytest.mark.parametrize("name", HEADS)
def test_fit_recovers_known_parameters(name):
    """Exact landmarks of random heads (turned up to 25 deg, jaw open): pose, jaw, expression recovered."""
    lf = landmark_model(name)
    p = random_problem(lf, 8, seed=5)
    res = Fitter(lf, FitConfig(priors=NO_PRIORS)).fit(p.landmarks, p.K, torch.ones(8, 68))
    assert nme(res.landmarks2d.numpy(), p.landmarks.numpy()).max() < 1e-4
    rot = rotation_angle_deg(head_rotation(res.pose, FLIP.expand(8, 3, 3)), head_rotation(p.pose, FLIP.expand(8, 3, 3)))
    assert rot.max() < 0.5
    assert torch.rad2deg((res.pose[:, 6:9] - p.pose[:, 6:9]).norm(dim=1)).max() < 0.5
    assert (res.expr - p.expr).abs().mean() < 0.05 * p.expr.abs().mean()


@pytest.mark.parametrize("name", HEADS)
def test_fit_with_default_priors_and_noise(name):
    """Detector-like noise (1 px at ~100 px inter-ocular): NME near the noise floor, jaw within a few degrees."""
    lf = landmark_model(name)
    p = random_problem(lf, 8, seed=6)
    noisy = p.landmarks + torch.randn(p.landmarks.shape, generator=torch.Generator().manual_seed(7))
    res = Fitter(lf).fit(noisy, p.K, torch.ones(8, 68))
    err = nme(res.landmarks2d.numpy(), p.landmarks.numpy())
    noise = nme(noisy.numpy(), p.landmarks.numpy())
    assert err.mean() < 0.8 * noise.mean(), (err.mean(), noise.mean())  # the model filters noise
    assert torch.rad2deg((res.pose[:, 6:9] - p.pose[:, 6:9]).norm(dim=1)).mean() < 4.0
    assert (res.expr - p.expr).abs().mean() < 0.5 * p.expr.abs().mean()


def test_batch_equals_per_sample():
    """A sample's fit does not depend on the rest of the batch (per-subject LM blocks)."""
    lf = landmark_model("toy")
    p = random_problem(lf, 4, seed=8)
    fitter = Fitter(lf)
    vis = torch.ones(4, 68)
    vis[2, :17] = 0.0  # one sample with its jaw line hidden
    batch = fitter.fit(p.landmarks, p.K, vis)
    for i in (0, 2):
        one = fitter.fit(p.landmarks[i : i + 1], p.K[i : i + 1], vis[i : i + 1])
        # float32 noise only: 1e-3 of a unit-variance coefficient, 1e-3 rad, 0.1 mm, 0.01 px
        for name, atol in (("shape", 1e-3), ("expr", 1e-3), ("pose", 1e-3), ("transl", 1e-4), ("landmarks2d", 1e-2)):
            torch.testing.assert_close(getattr(one, name)[0], getattr(batch, name)[i], atol=atol, rtol=0)


def test_shared_shape_is_shared_and_helps():
    """Six images of one person share one shape; it is closer to the truth than per-image shapes."""
    lf = landmark_model("toy")
    p = random_problem(lf, 6, seed=9)
    same = p.shape[:1].expand(6, -1).clone()
    from fairsplat.testing.track_problems import project_problem

    q = project_problem(lf, same, p.expr, p.pose, p.transl, p.K)
    noisy = q.landmarks + 0.5 * torch.randn(q.landmarks.shape, generator=torch.Generator().manual_seed(10))
    fitter = Fitter(lf)
    shared = fitter.fit(noisy, q.K, torch.ones(6, 68), subjects=torch.zeros(6, dtype=torch.long))
    alone = fitter.fit(noisy, q.K, torch.ones(6, 68))
    assert (shared.shape - shared.shape[:1]).abs().max() == 0
    assert (shared.shape - same).abs().mean() < (alone.shape - same).abs().mean()


def test_no_landmarks_does_not_crash():
    lf = landmark_model("toy")
    p = random_problem(lf, 3, seed=11)
    vis = torch.ones(3, 68)
    vis[1] = 0.0
    res = Fitter(lf).fit(p.landmarks, p.K, vis)
    assert torch.isfinite(res.pose).all() and torch.isfinite(res.transl).all()
    assert np.isfinite(nme(res.landmarks2d.numpy()[[0, 2]], p.landmarks.numpy()[[0, 2]])).all()


def test_nme_by_condition_reads_the_blinks_of_a_ten_expression_head():
    """The default procedural head has the first 10 of the 12 named expressions; its blinks (3, 4)
    must still split closed eyes off (they silently did not when the width had to be 12)."""
    from fairsplat.track.pipeline import nme_by_condition
    from fairsplat.track.sources import Items

    n = 4
    expr = np.zeros((n, 10), np.float32)
    expr[2, 3], expr[3, 4] = 1.0, 0.6  # blink_l, blink_r
    items = Items(ids=[str(i) for i in range(n)], source="synth", subject=["a"] * n, sequence=[None] * n,
                  frame=np.zeros(n, np.int64), targets=np.zeros((n, 68, 2), np.float32), visible=np.ones((n, 68), bool),
                  K=np.tile(np.eye(3, dtype=np.float32), (n, 1, 1)), status=["ok"] * n, n_faces=np.ones(n, np.int64),
                  fitzpatrick=["I"] * n, paths=[None] * n, gt={"expr": expr, "yaw": np.array([0.0, 30.0, 0.0, 30.0])})  # fmt: skip
    errors = {"nme": np.array([0.1, 0.2, 0.3, 0.5]), "nme_detector": np.array([1.0, 2.0, 3.0, 5.0])}
    out = nme_by_condition(items, None, errors)
    assert (out["n_frontal"], out["n_turned"], out["n_closed_eyes"]) == (1, 1, 2)
    assert out["nme_closed_eyes"] == pytest.approx(0.4) and out["nme_detector_turned"] == pytest.approx(2.0)
    pca = nme_by_condition(items, None, errors, named_expressions=False)  # a PCA basis: no blinks to read
    assert pca["n_closed_eyes"] == 0 and pca["n_frontal"] == 2
