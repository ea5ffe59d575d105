"""FLAME layer: template at zero, jaw skinning, LBS vs the per-vertex loop, batching, landmarks.

Uses the toy FLAME-format head (fairsplat/testing/toy_head.py) so it does not
depend on the procedural head builder.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from fairsplat.head.flame import FlameLayer
from fairsplat.head.lbs import lbs, lbs_reference, rodrigues, skew
from fairsplat.testing.toy_head import make_toy_head

F64 = torch.float64


@pytest.fixture(scope="module")
def toy():
    return make_toy_head(n_shape=6, n_expr=4, seed=3)


@pytest.fixture(scope="module")
def layer(toy):
    return FlameLayer(toy, dtype=F64)


def _random_params(b: int, toy, seed: int, scale: float = 0.4):
    g = torch.Generator().manual_seed(seed)
    shape = torch.randn(b, toy.n_shape, generator=g, dtype=F64)
    expr = torch.randn(b, toy.n_expr, generator=g, dtype=F64)
    pose = scale * torch.randn(b, 3 * toy.n_joints, generator=g, dtype=F64)
    transl = 0.05 * torch.randn(b, 3, generator=g, dtype=F64)
    return shape, expr, pose, transl


def test_zero_parameters_give_the_template(toy, layer):
    out = layer(batch_size=2)
    v = torch.as_tensor(toy.v_template, dtype=F64)
    # The asset stores float32 skinning weights, whose rows sum to 1 only to ~3e-8, so the rest
    # pose reproduces the template to that relative precision (1e-8 m), not to float64's.
    tol = float(np.abs(toy.lbs_weights.astype(np.float64).sum(1) - 1).max() * np.abs(toy.v_template).max()) + 1e-15
    assert tol < 1e-8
    torch.testing.assert_close(out.vertices, v.expand(2, -1, -1), rtol=0, atol=tol)
    torch.testing.assert_close(out.joints[0], torch.as_tensor(toy.j_regressor, dtype=F64) @ v, rtol=0, atol=1e-12)
    zeros = [torch.zeros(1, n, dtype=F64) for n in (toy.n_shape, toy.n_expr, 3 * toy.n_joints, 3)]
    torch.testing.assert_close(layer(*zeros).vertices[0], v, rtol=0, atol=tol)


def test_jaw_opening_moves_only_jaw_bound_vertices(toy):
    """With jaw correctives confined to the jaw region (as FLAME's are), only jaw-skinned vertices move."""
    jaw_bound = toy.lbs_weights[:, 2] > 0  # [V]
    posedirs = toy.posedirs.copy()  # [36, V*3]; rows 9..17 are the jaw's (R - I) feature
    posedirs[9:18] *= np.repeat(jaw_bound, 3)[None]
    layer = FlameLayer(dataclasses.replace(toy, posedirs=posedirs), dtype=F64)
    pose = torch.zeros(1, 15, dtype=F64)
    pose[0, 6] = 0.25  # jaw: +X rotation opens the mouth
    verts, rest = layer(pose=pose).vertices[0].numpy(), layer().vertices[0].numpy()
    moved = np.linalg.norm(verts - rest, axis=1) > 1e-12  # [V]
    assert moved.any() and not (moved & ~jaw_bound).any(), np.flatnonzero(moved & ~jaw_bound)
    assert moved[jaw_bound].mean() > 0.99  # and (almost) all of them do
    lmk = layer(pose=pose).landmarks[0] - layer().landmarks[0]
    assert lmk[8, 1] < -0.005  # chin drops by more than 5 mm
    assert torch.all(lmk[17:27].abs() < 1e-12)  # brows stay


def test_jaw_opening_without_correctives_elsewhere_is_exact(toy, layer):
    """With FLAME's full correctives, a non-jaw vertex moves by exactly its pose corrective."""
    pose = torch.zeros(1, 15, dtype=F64)
    pose[0, 6] = 0.25
    verts = layer(pose=pose).vertices[0]
    feature = (rodrigues(pose.reshape(5, 3))[1:] - torch.eye(3, dtype=F64)).reshape(-1)  # [36]
    corrective = (feature @ layer.posedirs).reshape(-1, 3)  # [V, 3]
    free = torch.as_tensor(toy.lbs_weights[:, 2] == 0)
    want = layer.v_template[free] + corrective[free]
    torch.testing.assert_close(verts[free], want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_lbs_matches_per_vertex_reference(toy, layer, seed):
    shape, expr, pose, _ = _random_params(1, toy, seed, scale=0.5)
    coeffs = torch.cat([shape, expr], 1)[0].requires_grad_(True)  # [K]
    pose = pose[0].requires_grad_(True)  # [15]
    args = (layer.v_template, layer.dirs, layer.posedirs, layer.j_regressor, layer.parents, layer.lbs_weights)
    verts, joints = lbs(coeffs[None], pose[None], *args)
    ref_verts, ref_joints = lbs_reference(coeffs, pose, *args)
    torch.testing.assert_close(verts[0], ref_verts, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(joints[0], ref_joints, rtol=1e-10, atol=1e-12)
    w = torch.randn(verts.shape[1:], generator=torch.Generator().manual_seed(seed + 10), dtype=F64)  # [V, 3]
    grads = torch.autograd.grad((verts[0] * w).sum() + joints.sum(), (coeffs, pose))
    ref_grads = torch.autograd.grad((ref_verts * w).sum() + ref_joints.sum(), (coeffs, pose))
    for g, r, name in zip(grads, ref_grads, ("coeffs", "pose")):
        assert r.abs().max() > 1e-6, name  # the loss really depends on it
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-11, msg=name)


def test_batched_forward_equals_per_sample(toy, layer):
    shape, expr, pose, transl = _random_params(4, toy, seed=5)
    batch = layer(shape, expr, pose, transl)
    for i in range(4):
        one = layer(shape[i : i + 1], expr[i : i + 1], pose[i : i + 1], transl[i : i + 1])
        for got, want in zip(batch, one):
            torch.testing.assert_close(got[i : i + 1], want, rtol=1e-12, atol=1e-13)


def test_landmarks_are_barycentric_interpolation(toy, layer):
    out = layer(*_random_params(2, toy, seed=7))
    verts = out.vertices.numpy()  # [B, V, 3]
    tri = verts[:, toy.faces[toy.lmk_faces]]  # [B, 68, 3, 3]
    want = np.einsum("lk,blkc->blc", toy.lmk_bary, tri)
    np.testing.assert_allclose(out.landmarks.numpy(), want, rtol=1e-12, atol=1e-13)


def test_fewer_coefficients_are_zero_padded(toy, layer):
    shape, expr, pose, _ = _random_params(1, toy, seed=2)
    short = layer(shape[:, :2], expr[:, :1], pose)
    padded = torch.zeros_like(shape), torch.zeros_like(expr)
    padded[0][:, :2], padded[1][:, :1] = shape[:, :2], expr[:, :1]
    torch.testing.assert_close(short.vertices, layer(*padded, pose).vertices, rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"pose": torch.zeros(1, 14, dtype=F64)}, r"pose has shape \(1, 14\)"),
        ({"shape": torch.zeros(1, 7, dtype=F64)}, r"shape has shape \(1, 7\), expected \[B, <=6\]"),
        ({"shape": torch.zeros(2, 3, dtype=F64), "expr": torch.zeros(3, 2, dtype=F64)}, "inconsistent batch sizes"),
        ({"transl": torch.zeros(1, 2, dtype=F64)}, r"transl has shape"),
    ],
)
def test_bad_inputs_name_the_argument(layer, kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        layer(**kwargs)


# ---- rodrigues: the hand-written rotation against matrix_exp -------------------
@pytest.mark.parametrize("scale", [0.0, 1e-9, 1e-4, 0.3, 2.5])
def test_rodrigues_matches_matrix_exp_values_and_gradients(scale):
    g = torch.Generator().manual_seed(0)
    rotvec = (scale * torch.randn(6, 3, generator=g, dtype=F64)).requires_grad_(True)
    r = rodrigues(rotvec)
    r_ref = torch.linalg.matrix_exp(skew(rotvec))
    torch.testing.assert_close(r, r_ref, rtol=1e-12, atol=1e-13)
    w = torch.randn(6, 3, 3, generator=g, dtype=F64)
    (grad,) = torch.autograd.grad((r * w).sum(), rotvec)
    (grad_ref,) = torch.autograd.grad((r_ref * w).sum(), rotvec)
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(grad, grad_ref, rtol=1e-8, atol=1e-10)


def test_float32_layer_matches_float64(toy):
    params = _random_params(2, toy, seed=11)
    v64 = FlameLayer(toy, dtype=F64)(*params).vertices
    v32 = FlameLayer(toy)(*(p.float() for p in params)).vertices
    assert v32.dtype == torch.float32
    torch.testing.assert_close(v32.double(), v64, rtol=0, atol=2e-6)  # metres: 2 micrometres
