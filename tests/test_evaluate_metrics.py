"""Stage evaluate's metrics on their own: AKD, APD, AED and CSIM against their definitions and known transforms,
re-tracking against known FLAME parameters, the protocol's fixed pair rule. Fast: no pipeline.

PSNR/SSIM against scikit-image, ΔITA on painted patches and the bootstrap on a known distribution are
tests/test_metrics.py's and tests/test_fairness.py's (the evaluate stage scores through the same registry and table).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fairsplat.metrics.expression import aed, aed_reference, apd, apd_reference
from fairsplat.metrics.identity import EMBEDDERS, csim, csim_reference
from fairsplat.metrics.landmarks import akd, akd_reference

pytestmark = pytest.mark.usefixtures("one_thread")


def _points(seed: int = 0, n: int = 4) -> np.ndarray:  # [n, 68, 2] pixels
    return np.random.default_rng(seed).uniform(20, 100, (n, 68, 2))


def test_akd_of_a_known_translation_and_rotation():
    lm = _points()
    assert np.allclose(akd(lm + np.array([3.0, 4.0]), lm), 5.0)  # every point moved 5 px
    theta = math.radians(10)
    c = lm.mean(1, keepdims=True)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    turned = (lm - c) @ rot.T + c
    expect = (2 * np.linalg.norm(lm - c, axis=-1) * math.sin(theta / 2)).mean(1)  # chord of each point's arc
    assert np.allclose(akd(turned, lm), expect)
    assert np.allclose(akd(turned, lm), akd_reference(turned, lm))


def test_apd_and_aed_match_their_definitions():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 0.3, (5, 3)), rng.normal(0, 0.3, (5, 3))
    assert np.allclose(apd(a, b), apd_reference(a, b))
    assert np.allclose(apd(np.zeros((1, 3)), np.array([[0.1, -0.2, 0.05]])), (0.1 + 0.2 + 0.05) / 3)  # radians
    e, f = rng.random((5, 10)), rng.random((5, 10))
    assert np.allclose(aed(e, f), aed_reference(e, f))
    assert np.allclose(aed(e, e), 0.0)


def test_csim_is_the_cosine():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(6, 128)), rng.normal(size=(6, 128))
    assert np.allclose(csim(a, b), csim_reference(a, b))
    assert np.allclose(csim(a, 3.0 * a), 1.0) and np.allclose(csim(a, -a), -1.0)
    assert np.allclose(csim(np.eye(2), np.eye(2)[::-1]), 0.0)
    assert np.isnan(csim(np.zeros((1, 4)), np.ones((1, 4)))).all()  # undefined, never a number
    assert isinstance(EMBEDDERS["arcface"], str) and "absent" in EMBEDDERS["arcface"]  # absent, with the reason


def test_retracking_recovers_known_pose_and_expression_differences(procedural_head):
    """APD and AED between re-tracked landmarks of two known heads equal those of the true parameters."""
    from fairsplat.evaluate.config import RetrackConfig
    from fairsplat.evaluate.retrack import Retracker
    from fairsplat.testing.track_problems import project_problem, random_problem
    from fairsplat.track.landmarks import LandmarkFlame

    lf = LandmarkFlame(procedural_head)
    r = random_problem(lf, 6, seed=3)  # turned heads, jaw open; expressions made blendshape weights in [0, 0.8]:
    expr = 0.8 * torch.rand(r.expr.shape, generator=torch.Generator().manual_seed(4))  # the procedural head's range
    p = project_problem(lf, r.shape, expr, r.pose, r.transl, r.K)
    rt = Retracker(procedural_head, "dlib", RetrackConfig(robust="l2", contour=False, iters=15))
    fit = rt.fit(p.landmarks.numpy() - 0.5, p.K.numpy(), [str(i) for i in range(6)])  # detector convention
    true_rot, true_expr = p.pose[:, :3].numpy(), p.expr.numpy()
    a, b = [0, 1, 2], [3, 4, 5]
    assert np.abs(apd(fit.rot[a], fit.rot[b]) - apd(true_rot[a], true_rot[b])).max() < 0.01  # radians
    assert np.abs(apd(fit.rot, true_rot)).max() < 0.01
    assert np.abs(aed(fit.expr[a], fit.expr[b]) - aed(true_expr[a], true_expr[b])).max() < 0.1
    assert aed(fit.expr, true_expr).mean() < 0.5 * np.abs(true_expr).mean()  # as test_track: 68 points see 10 weights


def test_pair_rule_drives_each_subject_once():
    from fairsplat.evaluate.protocol import Plan, SubjectPlan

    subs = {s: SubjectPlan(s, "I", 0, [1], [1], nxt) for s, nxt in (("a", "b"), ("b", "c"), ("c", "a"))}
    pairs = Plan(subs).pairs()
    assert sorted(a for a, _ in pairs) == sorted(b for _, b in pairs) == ["a", "b", "c"]
    assert all(a != b for a, b in pairs)
