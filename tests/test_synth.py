"""SynthHeads: determinism, balance, ground truth that agrees with the pixels."""

import hashlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from fairsplat.config import parse_section
from fairsplat.labels import FITZPATRICK, IBUG68_GROUPS, LABEL
from fairsplat.sections.synth import SynthParams

# 128 px (the default size): at 64 px an eye opening is 2-3 pixels, too few to test labels against.
MICRO = {"identities": 6, "frames": 3, "views": [[0, 0], [30, 0]], "size": 128, "uv-resolution": 128}


@pytest.fixture(scope="module")
def head():
    from fairsplat.head.procedural import build_procedural_head

    return build_procedural_head()


def build_into(head, root: Path, **over):
    from fairsplat.synth.dataset import build, write_table

    cfg = parse_section("synth", {**MICRO, **over}, SynthParams)
    manifest, identities, _ = build(head, cfg, root)
    write_table(manifest, root / "manifest.parquet")
    return manifest, identities


@pytest.fixture(scope="module")
def synth(head, tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    manifest, identities = build_into(head, root)
    return root, manifest.to_pylist(), identities.to_pylist()


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_params_same_bytes(head, synth, tmp_path):
    root, _, _ = synth
    build_into(head, tmp_path)
    a, b = digest(root), digest(tmp_path)
    assert a.keys() == b.keys() and len(a) == 6 * 3 * 2 * 3 + 1
    assert a == b


def test_balance_and_disjoint_splits(synth):
    _, rows, idents = synth
    assert sorted(i["fitzpatrick"] for i in idents) == sorted(FITZPATRICK)
    split_of = {}
    for r in rows:
        assert split_of.setdefault(r["identity_id"], r["split"]) == r["split"]
    assert {"train"} <= set(split_of.values())
    for i in idents:  # ground-truth ITA lies in the type's Chardon class
        from fairsplat.faces.skin_types import fitzpatrick

        assert fitzpatrick(i["ita"]) == i["fitzpatrick"]


def load(root, rel):
    return np.asarray(Image.open(root / rel))


def test_label_map_agrees_with_alpha(synth):
    root, rows, _ = synth
    for r in rows:
        labels, alpha = load(root, r["label_path"]), load(root, r["alpha_path"]).astype(float) / 255
        fg = labels > 0
        assert (fg[alpha > 0.9]).all() and (~fg[alpha < 0.1]).all()
        assert (fg == (alpha > 0.5)).mean() > 0.98
        assert set(np.unique(labels)) >= {LABEL["skin"], LABEL["nose"], LABEL["hair"]}


EXPECT = {  # iBUG group -> labels a landmark of it may sit on (3x3 neighbourhood)
    "r_brow": {"r_brow"}, "l_brow": {"l_brow"}, "nose_bridge": {"nose"}, "nostrils": {"nose"},
    "r_eye": {"r_eye"}, "l_eye": {"l_eye"}, "outer_lip": {"u_lip", "l_lip"}, "inner_lip": {"u_lip", "l_lip", "mouth"},
}


def test_landmarks_land_on_their_regions(synth):
    from fairsplat.head.procedural import EXPRESSION_NAMES

    root, rows, _ = synth
    hits = {g: [] for g in EXPECT}
    for r in (r for r in rows if r["view"] == 0):
        labels = load(root, r["label_path"])
        lm = np.asarray(r["landmarks"]).reshape(68, 2)
        shut = {eye: r["expr"][EXPRESSION_NAMES.index(f"blink_{eye[0]}")] > 0.5 for eye in ("l_eye", "r_eye")}
        for g, (a, b) in IBUG68_GROUPS.items():
            if g not in EXPECT or shut.get(g, False):  # a closed eye has no eye pixels to land on
                continue
            for k in range(a, b):
                if not r["visible"][k]:
                    continue
                x, y = np.floor(lm[k]).astype(int)
                patch = labels[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2]
                hits[g].append(bool({LABEL[n] for n in EXPECT[g]} & set(np.unique(patch).tolist())))
    for g, h in hits.items():
        assert len(h) > 0 and np.mean(h) >= 0.9, (g, np.mean(h), len(h))
    vis = np.array([r["visible"] for r in rows if r["view"] == 0])
    assert vis.mean() > 0.9  # frontal: nearly all landmarks visible


def test_ita_consistency(synth):
    from fairsplat.synth.report import ita_consistency

    root, _, _ = synth
    per_image, summary = ita_consistency(root, pq.read_table(root / "manifest.parquet"))
    assert len(per_image) == 6 * 3
    assert summary["ita_gt_consistency"] >= 0.95, per_image
