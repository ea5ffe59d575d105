"""The procedural default head: format, bases, symmetry, rig, labels, landmarks, determinism."""

import numpy as np
import pytest
import torch

from fairsplat.head.flame import FlameLayer
from fairsplat.head.preview import label_image
from fairsplat.head.procedural import EXPRESSION_NAMES, build_procedural_head, head_geometry
from fairsplat.head.procedural_basis import _orthogonalise
from fairsplat.head.procedural_landmarks import TIE_Z, frontal_pick, landmark_targets
from fairsplat.head.procedural_surface import LAYOUT
from fairsplat.labels import IBUG68_GROUPS, LABEL

MIRROR = np.array([-1.0, 1.0, 1.0])
SWAP_LR = np.arange(len(LABEL))
for _a, _b in (("l_eye", "r_eye"), ("l_brow", "r_brow"), ("l_ear", "r_ear")):
    SWAP_LR[LABEL[_a]], SWAP_LR[LABEL[_b]] = LABEL[_b], LABEL[_a]


@pytest.fixture(scope="module")
def head():
    return build_procedural_head()


@pytest.fixture(scope="module")
def geo():
    return head_geometry()


@pytest.fixture(scope="module")
def flame(head):
    return FlameLayer(head)


def test_format_and_counts(head):
    head.validate()
    assert head.source == "procedural"
    assert 4500 <= head.n_vertices <= 6000  # FLAME has 5023
    assert (head.n_shape, head.n_expr, head.n_joints) == (20, 10, 5)
    assert head.parents.tolist() == [-1, 0, 1, 1, 1]
    np.testing.assert_allclose(head.lbs_weights.sum(1), 1.0, atol=1e-6)
    assert head.lbs_weights.min() >= 0.0
    np.testing.assert_allclose(head.j_regressor.sum(1), 1.0, atol=1e-6)
    assert not np.any(head.posedirs)  # documented: no scans to learn correctives from
    assert set(np.unique(head.face_regions)) == {
        LABEL[n] for n in ("skin", "nose", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
                           "mouth", "u_lip", "l_lip", "hair", "neck")}


def test_sizes_follow_params():
    h = build_procedural_head(n_shape=33, n_expr=12, seed=3)
    assert (h.n_shape, h.n_expr) == (33, 12)
    with pytest.raises(ValueError, match="head.n-expr"):
        build_procedural_head(n_expr=len(EXPRESSION_NAMES) + 1)


def test_deterministic_and_seed_only_changes_the_tail(head):
    again = build_procedural_head()
    for name in ("v_template", "shapedirs", "exprdirs", "lbs_weights", "j_regressor", "lmk_bary", "uvs"):
        np.testing.assert_array_equal(getattr(head, name), getattr(again, name))
    other = build_procedural_head(seed=1)
    named = 19  # 15 symmetric + 4 antisymmetric named components come first
    np.testing.assert_array_equal(head.shapedirs[..., :named], other.shapedirs[..., :named])
    assert not np.allclose(head.shapedirs[..., named:], other.shapedirs[..., named:])
    more = build_procedural_head(n_shape=30)  # sequential Gram-Schmidt: a longer basis keeps the prefix
    np.testing.assert_allclose(more.shapedirs[..., :20], head.shapedirs, atol=1e-7)


def test_outward_faces(geo):
    """Signed volume of the closed head grid is positive only if its faces point outwards."""
    grid = geo.faces[geo.face_part == 0]
    tri = geo.verts[grid]
    vol = np.einsum("fi,fi->f", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0
    assert vol > 0.001  # m^3: a head is about 4 litres


def test_template_and_labels_are_mirror_symmetric(geo):
    np.testing.assert_array_equal(geo.verts[geo.mirror] * MIRROR, geo.verts)
    key = {tuple(sorted(f)): i for i, f in enumerate(geo.faces)}
    grid = np.flatnonzero(geo.face_part == 0)
    mirrored = np.array([key[tuple(sorted(geo.mirror[f]))] for f in geo.faces[grid]])
    np.testing.assert_array_equal(geo.regions[mirrored], SWAP_LR[geo.regions[grid]])
    left = geo.verts[geo.faces[geo.regions == LABEL["l_eye"]]].mean((0, 1))
    assert left[0] > 0.02  # l_ = the subject's left = +X


def test_shape_basis_orthogonal_under_vertex_area(head, geo):
    d = head.shapedirs.reshape(-1, head.n_shape).astype(np.float64)  # [3V, S]
    gram = d.T @ (np.repeat(geo.area, 3)[:, None] * d)
    off = gram - np.diag(np.diag(gram))
    assert np.abs(off).max() < 1e-5 * np.diag(gram).max()
    # mm-level: the largest displacement of every component is 1-6 mm
    peak = np.linalg.norm(head.shapedirs, axis=1).max(0)
    assert peak.min() > 0.001 and peak.max() < 0.0065


def test_shape_components_symmetric_or_antisymmetric(head, geo):
    kinds = []
    for k in range(head.n_shape):
        d = head.shapedirs[..., k].astype(np.float64)
        mirrored = d[geo.mirror] * MIRROR
        tol = 1e-5 * np.abs(d).max()
        sym, anti = np.abs(mirrored - d).max() < tol, np.abs(mirrored + d).max() < tol
        assert sym or anti, k
        kinds.append(sym)
    assert 0 < sum(kinds) < len(kinds)  # both kinds present


def test_shape_basis_is_smooth(head, geo):
    """Neighbouring vertices move alike: edge differences are small against the displacement."""
    grid = geo.faces[geo.face_part == 0]
    edges = np.concatenate([grid[:, [0, 1]], grid[:, [1, 2]], grid[:, [2, 0]]])
    lengths = np.linalg.norm(geo.verts[edges[:, 0]] - geo.verts[edges[:, 1]], axis=1)
    for k in range(head.n_shape):
        d = head.shapedirs[..., k]
        diff = np.linalg.norm(d[edges[:, 0]] - d[edges[:, 1]], axis=1)
        assert (diff / lengths).max() < 1.0, k  # strain under 1 at coefficient 1 on every edge


def test_identities_never_push_a_lid_into_its_eyeball(head, geo, flame):
    """Skin outside an eyeball at rest stays outside it for any single component at +-3 and
    for random identities at 1.5 sigma (the socket skin moves with the eyeball)."""
    shapes = torch.cat([3.0 * torch.eye(head.n_shape), -3.0 * torch.eye(head.n_shape),
                        1.5 * torch.randn(40, head.n_shape, generator=torch.Generator().manual_seed(0))])
    rest, posed = flame(), flame(shape=shapes)
    grid = np.flatnonzero(geo.part == 0)
    radius = np.linalg.norm(geo.verts[geo.part == 1] - geo.eyes[0], axis=1).max()
    for joint in (3, 4):
        d0 = (rest.vertices[0, grid] - rest.joints[0, joint]).norm(dim=-1)
        d = (posed.vertices[:, grid] - posed.joints[:, joint, None]).norm(dim=-1)  # [B, N]
        outside = d0 > radius + 5e-4
        assert d[:, outside].min() > radius - 1e-4


def test_orthogonalise_matches_gram_schmidt_loop():
    rng = np.random.default_rng(0)
    fields, area = rng.normal(size=(4, 7, 3)), rng.uniform(0.5, 2.0, 7)
    fast = _orthogonalise(fields, area)
    w = np.repeat(area, 3)
    slow = []
    for f in fields.reshape(4, -1):
        for q in slow:
            f = f - (f * w * q).sum() * q
        slow.append(f / np.sqrt((f * w * f).sum()))
    np.testing.assert_allclose(fast.reshape(4, -1), np.array(slow), atol=1e-10)


def test_frontal_pick_matches_per_face_loop(geo):
    grid = geo.faces[geo.face_part == 0]
    targets = landmark_targets()[::7]
    faces, bary = frontal_pick(geo.verts, grid, targets)
    for t, f, b in zip(targets, faces, bary):
        hits = []  # (face, depth) of every face containing the target
        for i, tri in enumerate(geo.verts[grid]):
            m = np.array([[tri[0, 0], tri[1, 0], tri[2, 0]], [tri[0, 1], tri[1, 1], tri[2, 1]], [1.0, 1.0, 1.0]])
            if abs(np.linalg.det(m)) < 1e-14:
                continue
            lam = np.linalg.solve(m, [t[0], t[1], 1.0])
            if lam.min() >= -1e-9:
                hits.append((i, float(lam @ tri[:, 2])))
        z_max = max(z for _, z in hits)
        best = min(i for i, z in hits if z >= z_max - TIE_Z)  # ties (a shared edge): the lowest face id
        assert best == f
        np.testing.assert_allclose((b[:, None] * geo.verts[grid[f]]).sum(0)[:2], t, atol=1e-9)


LANDMARK_REGIONS = {
    "jaw": {"skin"}, "r_brow": {"r_brow"}, "l_brow": {"l_brow"}, "nose_bridge": {"nose"}, "nostrils": {"nose"},
    "outer_lip": {"u_lip", "l_lip"}, "inner_lip": {"u_lip", "l_lip"},
}


@pytest.mark.parametrize("group", list(IBUG68_GROUPS))
def test_landmark_groups_on_their_regions(head, geo, group):
    a, b = IBUG68_GROUPS[group]
    pts = (head.v_template[head.faces[head.lmk_faces[a:b]]] * head.lmk_bary[a:b, :, None]).sum(1)
    if group in ("r_eye", "l_eye"):  # on the lid skin at the margin of that eye's opening
        eye = geo.eyes[0 if group == "l_eye" else 1]
        dist = np.linalg.norm(pts[:, :2] - eye[:2], axis=1)
        assert (dist < 0.013).all() and (np.sign(pts[:, 0]) == np.sign(eye[0])).all()
        assert (head.face_regions[head.lmk_faces[a:b]] == LABEL["skin"]).all()
        return
    want = {LABEL[n] for n in LANDMARK_REGIONS[group]}
    assert set(head.face_regions[head.lmk_faces[a:b]].tolist()) <= want, group
    if group in ("outer_lip", "inner_lip"):  # above the mouth line on the upper lip, below on the lower
        labels = head.face_regions[head.lmk_faces[a:b]]
        upper = pts[:, 1] > LAYOUT.mouth_y
        assert (labels[upper] == LABEL["u_lip"]).all() and (labels[~upper] == LABEL["l_lip"]).all()


def test_landmark_order_follows_ibug(head):
    pts = (head.v_template[head.faces[head.lmk_faces]] * head.lmk_bary[:, :, None]).sum(1)
    assert pts[0, 0] < 0 < pts[16, 0] and pts[8, 1] == pts[:17, 1].min()  # jaw: subject's right first, chin lowest
    assert pts[36, 0] < pts[39, 0] < 0 < pts[42, 0] < pts[45, 0]  # eye corners left to right in the image
    assert pts[30, 2] == pts[:, 2].max()  # nose tip is the front-most landmark
    assert pts[51, 1] > pts[62, 1] > pts[66, 1] > pts[57, 1]  # upper lip top, inner upper, inner lower, lower lip bottom


def test_jaw_moves_only_jaw_skinned_vertices(head, flame):
    pose = torch.zeros(1, 15)
    pose[0, 6] = 0.25
    moved = np.linalg.norm((flame(pose=pose).vertices[0] - flame().vertices[0]).numpy(), axis=1) > 1e-7
    jaw = head.lbs_weights[:, 2] > 0
    assert moved.any() and not (moved & ~jaw).any()
    lmk = flame(pose=pose).landmarks[0] - flame().landmarks[0]
    assert lmk[8, 1] < -0.01 and lmk[57, 1] < -0.01  # chin and lower lip go down (FLAME: +x opens)
    assert torch.abs(lmk[51]).max() < 1e-6 and torch.abs(lmk[27]).max() < 1e-6  # upper lip and nose stay


def test_eyes_rotate_their_eyeballs_only(head, flame):
    pose = torch.zeros(1, 15)
    pose[0, 10] = 0.3  # left eye yaw
    moved = np.linalg.norm((flame(pose=pose).vertices[0] - flame().vertices[0]).numpy(), axis=1) > 1e-7
    assert set(np.flatnonzero(moved)) == set(np.flatnonzero(head.lbs_weights[:, 3] > 0))


def _eye_pixels(flame, head, **expr):
    e = torch.zeros(1, head.n_expr)
    for name, value in expr.items():
        e[0, EXPRESSION_NAMES.index(name)] = value
    lab = label_image(flame(expr=e).vertices[0].numpy(), head.faces, head.face_regions, size=128, extent=0.1)
    return (lab == LABEL["l_eye"]).sum(), (lab == LABEL["r_eye"]).sum()


def test_blink_closes_only_that_eye(head, flame):
    open_l, open_r = _eye_pixels(flame, head)
    assert open_l > 20 and open_l == open_r  # mirror-symmetric head, both eyes open
    shut_l, still_r = _eye_pixels(flame, head, blink_l=1.0)
    assert shut_l <= 0.05 * open_l and still_r == open_r


@pytest.mark.parametrize("name", EXPRESSION_NAMES[:10])
def test_expressions_are_local_and_mm_sized(head, geo, name):
    d = np.linalg.norm(head.exprdirs[..., EXPRESSION_NAMES.index(name)], axis=1)
    assert 0.0015 < d.max() < 0.012, name
    assert not d[geo.part != 0].any()  # eyeballs and the mouth bag stay put
    assert not d[geo.verts[:, 2] < 0.0].any()  # nothing on the back of the head moves


def test_smile_keeps_the_lips_closed_and_lifts_the_corners(head, flame):
    e = torch.zeros(1, head.n_expr)
    e[0, EXPRESSION_NAMES.index("smile")] = 1.0
    lmk = flame(expr=e).landmarks[0] - flame().landmarks[0]
    assert lmk[48, 1] > 0.002 and lmk[54, 1] > 0.002
    assert torch.abs(lmk[62] - lmk[66]).max() < 1e-3  # inner lips move together


def test_head_stage_procedural_smoke(tiny_pipeline):
    """`python -m stages.head` on the procedural default with a tiny preview (the tiny pipeline's run)."""
    from fairsplat.head.model import HeadModel

    params = tiny_pipeline.params["head"]
    assert params["flame-path"] is None and params["preview-size"] <= 64  # the default head, a tiny preview
    asset = HeadModel.load(tiny_pipeline.out("head") / "head.npz")
    assert asset.source == "procedural" and (asset.n_shape, asset.n_expr) == (params["n-shape"], params["n-expr"])
    metrics = tiny_pipeline.metrics("head")
    assert (metrics["vertices"], metrics["faces"], metrics["landmarks"]) == (asset.n_vertices, asset.n_faces, 68)
    (plots,) = tiny_pipeline.stages["head"].plots
    assert (plots / "preview.png").is_file()


def test_head_stage_refuses_too_many_expressions(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from fairsplat.config import ParamsError
    from stages.head import app

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"head": {"n-expr": len(EXPRESSION_NAMES) + 1}}))
    args = ["--out", str(tmp_path / "out"), "--plots", str(tmp_path / "plots"), "--params", str(tmp_path / "params.yaml"),
            "--metrics-dir", str(tmp_path / "metrics")]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, ParamsError) and "head.n-expr" in str(result.exception)
    assert not (tmp_path / "out").exists()
