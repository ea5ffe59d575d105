"""Curation: balancing, subject-disjoint splits, accounting, stages end to end on tiny data."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image
from skimage.color import lab2rgb
from typer.testing import CliRunner

from fairsplat.config import ParamsError
from fairsplat.sections.registry import load_section
from fairsplat.curate import Candidate, assign_splits, balance, curate
from fairsplat.curate.plots import OUTLINE_RGB, ita_histogram
from fairsplat.faces.crop import composite_grey, warp
from fairsplat.faces.foreground import FOREGROUND, FgInput, foreground_mask, to_alpha8
from fairsplat.io.photos import load_photo
from fairsplat.faces.ita import ita_of_rgb
from fairsplat.faces.skin_types import fitzpatrick
from fairsplat.testing.testcard import paint
from fairsplat.labels import FITZPATRICK
from fairsplat.curate.config import CurateConfig
from fairsplat.sources import read_manifest, synth

TYPE_ITA = {"I": 65.0, "II": 48.0, "III": 34.0, "IV": 19.0, "V": -10.0, "VI": -50.0}


def skin_rgb(ita: float, b: float = 18.0, a: float = 10.0) -> tuple[int, int, int]:
    """An sRGB colour with the given ITA (L* = 50 + b* tan ITA)."""
    L = 50.0 + b * np.tan(np.radians(ita))
    rgb = lab2rgb(np.array([[[L, a, b]]]))[0, 0]
    return tuple(int(round(v * 255)) for v in rgb)


def card_synth(root: Path, per_type: int = 2, images: int = 2, size: int = 96) -> Path:
    """A SynthHeads-layout dataset of painted test cards: exact labels, alpha, landmarks."""
    rows = []
    for t in FITZPATRICK:
        for k in range(per_type):
            ident = f"id_{t}_{k}"
            skin = skin_rgb(TYPE_ITA[t] + 2.0 * k)
            assert fitzpatrick(float(ita_of_rgb(np.array(skin, np.uint8)))) == t
            for f in range(images):
                card = paint(size, skin=skin, background=(40 + 60 * f, 110, 160))
                rel = f"{ident}/f{f:02d}_v00.png"
                for sub, arr in (("images", card.image), ("alpha", card.alpha), ("labels", card.labels)):
                    (root / sub / ident).mkdir(parents=True, exist_ok=True)
                    Image.fromarray(arr).save(root / sub / rel)
                rows.append({
                    "image_id": f"{ident}_f{f:02d}_v00", "identity_id": ident, "frame": f, "fitzpatrick": t,
                    "ita_gt": float(ita_of_rgb(np.array(skin, np.uint8))), "rgb_path": f"images/{rel}",
                    "alpha_path": f"alpha/{rel}", "label_path": f"labels/{rel}", "landmarks": (card.landmarks + 0.5).reshape(-1).tolist(),  # SynthHeads: pixel-corner convention
                })  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), root / "manifest.parquet")
    return root


@pytest.fixture(scope="module")
def cards(tmp_path_factory) -> Path:
    return card_synth(tmp_path_factory.mktemp("cards"))


SMALL = {"size": 64, "per_type": 3, "workers": 1, "min_skin_pixels": 50, "splits": {"train": 0.5, "val": 0.25, "test": 0.25}}


# ----------------------------------------------------------------------------- selection logic


def candidates(n_subjects: int = 30, per_subject: int = 3) -> list[Candidate]:
    out = []
    for s in range(n_subjects):
        for k in range(per_subject):
            out.append(Candidate(f"img{s}_{k}", f"subj{s}", FITZPATRICK[s % 6] if s < 24 else "I"))
    return out


def test_balance_quota_shortfall_and_determinism():
    items = candidates()  # types I: 4+6 subjects, II..VI: 4 subjects x 3 images
    chosen, stats = balance(items, per_type=15, seed=3)
    assert stats["I"] == {"eligible": 30, "selected": 15, "shortfall": 0}
    for t in FITZPATRICK[1:]:
        assert stats[t] == {"eligible": 12, "selected": 12, "shortfall": 3}
    assert len(chosen) == 15 + 5 * 12
    again, _ = balance(list(reversed(items)), per_type=15, seed=3)  # input order does not matter
    assert again == chosen
    other, _ = balance(items, per_type=15, seed=4)
    assert other != chosen  # the seed does


def test_balance_subject_cap():
    chosen, stats = balance(candidates(), per_type=None, max_per_subject=1)
    assert stats["II"]["selected"] == 4 and stats["I"]["selected"] == 10
    subjects = Counter(i.split("_")[0] for i in chosen)
    assert max(subjects.values()) == 1


def test_splits_are_subject_disjoint_stratified_and_near_target():
    items = candidates(n_subjects=60, per_subject=2)
    split_of = assign_splits(items, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)
    assert set(split_of) == {c.subject_id for c in items}  # every subject in exactly one split
    per_type = {t: Counter(split_of[c.subject_id] for c in items if c.fitzpatrick == t) for t in FITZPATRICK}
    for t, counts in per_type.items():
        assert set(counts) == {"train", "val", "test"}, (t, counts)
    share = Counter(split_of[c.subject_id] for c in items)
    assert abs(share["train"] / len(items) - 0.6) < 0.08
    assert split_of == assign_splits(list(reversed(items)), {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)


def test_histogram_counts_values():
    rows = ita_histogram([-89.0, -1.0, 0.0, 4.9, 5.0, 89.9], [0.0])
    by = {r["ita"]: r for r in rows}
    assert len(rows) == 36 and by[-87.5]["eligible"] == 1 and by[-2.5]["eligible"] == 1
    assert by[2.5]["eligible"] == 2 and by[2.5]["selected"] == 1 and by[7.5]["eligible"] == 1 and by[87.5]["eligible"] == 1


# ----------------------------------------------------------------------------- saved foreground alpha


@pytest.mark.parametrize(
    "mask, alpha",
    [(0.0, 0), (1 / 255, 1), (0.5, 128), (127 / 255, 127), (1.0, 255), (-0.2, 0), (1.3, 255)],
)
def test_to_alpha8_values(mask, alpha):
    assert to_alpha8(np.full((2, 3), mask, np.float32)).tolist() == [[alpha] * 3] * 2


@pytest.mark.parametrize("backend", sorted(FOREGROUND))
def test_every_backend_survives_8bit_alpha_unchanged(backend):
    """Compositing with the saved 8-bit alpha gives the same crop as the float mask would."""
    card = paint(96, skin=skin_rgb(30.0))
    valid = np.ones((96, 96), bool)
    valid[:, :7] = False
    mask, used = foreground_mask(FgInput(card.image, card.landmarks, valid, alpha=card.alpha, labels=card.labels), backend)
    assert used == backend
    np.testing.assert_allclose(to_alpha8(mask) / 255.0, mask, atol=1e-6)
    assert (composite_grey(card.image, to_alpha8(mask) / np.float32(255.0)) == composite_grey(card.image, mask)).all()


def saved_alpha(out: Path, row: dict) -> np.ndarray:  # uint8 [S, S]
    with Image.open(out / row["alpha_path"]) as im:
        assert im.mode == "L" and im.size == (row["crop_size"],) * 2, (im.mode, im.size)
        return np.asarray(im)


def assert_crop_is_composited_with_saved_alpha(out: Path, row: dict) -> np.ndarray:
    """Re-warp the source by the manifest's matrix and composite it with the saved alpha:
    bit-identical to the written crop. Returns the saved alpha."""
    alpha = saved_alpha(out, row)
    src, _ = load_photo(row["src_path"], min_side=1)
    g = 128
    image = warp(src, np.asarray(row["crop_matrix"]).reshape(2, 3), row["crop_size"], fill=(g, g, g))
    crop = np.asarray(Image.open(out / row["path"]))
    assert (composite_grey(image, alpha / np.float32(255.0)) == crop).all(), row["image_id"]
    return alpha


# ----------------------------------------------------------------------------- end to end


def test_curate_on_ground_truth_cards(cards, tmp_path):
    records = list(synth.iter_records(cards))
    res = curate(records, tmp_path / "out", CurateConfig(**SMALL))
    m = res.metrics
    assert m["total"] == 24 and m["accepted"] + m["rejected"] == m["total"]
    assert m["ita_type_accuracy"] == 1.0 and m["ita_type_n"] == 24 and m["ita_mae"] < 1.0
    assert m["landmarks_ground_truth"] == 24 and m["detection_rate"] is None
    assert m["accepted"] == 18 and m["reject_over_quota"] == 6 and m["shortfall_total"] == 0
    assert all(m[f"n_{s}"] > 0 for s in ("train", "val", "test")), m  # 12 subjects, 3 per split at least
    for t in FITZPATRICK:
        p = m["per_fitzpatrick"][t]
        assert p["selected"] == 3 and p["eligible"] == 4 and p["ita_type_accuracy"] == 1.0
        assert abs(p["ita_median"] - TYPE_ITA[t]) < 3.0
    rows = pq.read_table(tmp_path / "out" / "manifest.parquet").to_pylist()
    assert {r["skin_mask"] for r in rows} == {"labels"} and {r["foreground"] for r in rows} == {"ground_truth"}
    split_subjects = {}
    for r in rows:
        assert split_subjects.setdefault(r["subject_id"], r["split"]) == r["split"]
        crop = np.asarray(Image.open(tmp_path / "out" / r["path"]))
        assert crop.shape == (64, 64, 3)
        assert tuple(crop[0, 0]) == (128, 128, 128)  # outside the head: mid-grey
        labels = np.asarray(Image.open(tmp_path / "out" / r["mask_path"]))
        assert labels.shape == (64, 64) and labels.max() > 0
        assert 0.5 < r["fg_iou_ellipse"] <= 1.0
        alpha = assert_crop_is_composited_with_saved_alpha(tmp_path / "out", r)
        assert (alpha[0, 0], alpha[32, 32]) == (0, 255)  # card background / face centre
    rejects = pq.read_table(tmp_path / "out" / "rejects.parquet").to_pylist()
    assert len(rejects) == 6 and {r["reason"] for r in rejects} == {"over_quota"}


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_for_any_worker_count(cards, tmp_path):
    records = list(synth.iter_records(cards))
    curate(records, tmp_path / "a", CurateConfig(**SMALL))
    curate(records, tmp_path / "b", CurateConfig(**{**SMALL, "workers": 2, "shard_size": 5}))
    assert digest(tmp_path / "a") == digest(tmp_path / "b")


@pytest.mark.parametrize("detector", ["dlib", "mediapipe"])
def test_photo_path_detects_and_balances_shaded_cards(tmp_path, detector):
    """No ground truth: the detector finds the (shaded, light-skinned) cards, crops and measures them."""
    for k, ita in enumerate((60.0, 45.0, 30.0)):
        Image.fromarray(paint(256, skin=skin_rgb(ita), shade=True).image).save(tmp_path / f"p{k}.png")
    from fairsplat.sources import folder

    records = list(folder.iter_records(tmp_path))
    res = curate(records, tmp_path / "out", CurateConfig(size=128, per_type=None, workers=1, detector=detector, foreground="ellipse"))
    m = res.metrics
    assert m["detection_rate"] == 1.0 and m["accepted"] == 3
    assert m["landmarks_backend"] == detector and m["landmarks_fallback"] is None
    rows = res.manifest
    assert {r["landmark_source"] for r in rows} == {detector} and {r["foreground"] for r in rows} == {"ellipse"}
    assert [r["fitzpatrick"] for r in rows] == ["I", "II", "III"]  # shading costs a few degrees, not a class
    for r in rows:  # the saved alpha is the ellipse of the manifest's landmarks, and what the crop used
        alpha = assert_crop_is_composited_with_saved_alpha(tmp_path / "out", r)
        matrix, size = np.asarray(r["crop_matrix"]).reshape(2, 3), r["crop_size"]
        src, _ = load_photo(r["src_path"], min_side=1)
        valid = warp(np.full(src.shape[:2], 255, np.uint8), matrix, size, fill=0) >= 128
        fg = FgInput(warp(src, matrix, size, fill=(128,) * 3), np.asarray(r["landmarks"]), valid)
        assert (to_alpha8(foreground_mask(fg, "ellipse")[0]) == alpha).all()
        assert 0.2 < (alpha == 255).mean() < 0.8 and (alpha == 0).mean() > 0.1


def test_bad_inputs_never_crash_and_get_their_reason(tmp_path):
    from fairsplat.testing.badfiles import write_zoo
    from fairsplat.sources import folder

    card = paint(256, skin=skin_rgb(48.0), shade=True)
    zoo = write_zoo(tmp_path / "zoo", card.image)
    records = list(folder.iter_records(tmp_path / "zoo"))
    res = curate(records, tmp_path / "out", CurateConfig(size=64, per_type=None, workers=1))
    m = res.metrics
    assert m["total"] == len(zoo) and m["accepted"] + m["rejected"] == m["total"] and m["reject_error"] == 0
    outcome = {r["image_id"]: None for r in res.manifest} | {r["image_id"]: r["reason"] for r in res.rejects}
    for name, (path, expected) in zoo.items():
        assert outcome[f"folder/{path.name}"] == expected, (name, outcome[f"folder/{path.name}"])
    by = {r["image_id"]: r for r in res.manifest}
    upright, rotated = by["folder/face.png"], by["folder/exif_rotated.jpg"]
    np.testing.assert_allclose(rotated["landmarks"], upright["landmarks"], atol=1.5)  # EXIF applied before dlib
    assert by["folder/rgba.png"]["foreground"] == "ground_truth"  # the PNG's alpha is the mask
    for r in res.manifest:
        assert_crop_is_composited_with_saved_alpha(tmp_path / "out", r)
    rgba = by["folder/rgba.png"]
    _, info = load_photo(rgba["src_path"], min_side=1)
    own = warp(info.alpha, np.asarray(rgba["crop_matrix"]).reshape(2, 3), rgba["crop_size"], fill=0)
    assert (saved_alpha(tmp_path / "out", rgba) == own).all()  # the PNG's own alpha, cropped like the crop


# ----------------------------------------------------------------------------- params and stages


@pytest.mark.parametrize(
    "section, needle",
    [
        ({"size": 8}, "curate.size"),
        ({"crop-mode": "tight"}, "curate.crop-mode"),
        ({"scheme": "kinyanjui_8"}, "curate.scheme"),
        ({"scheme": "nope"}, "curate.scheme"),
        ({"splits": {"train": 0.9, "test": 0.2}}, "curate.splits"),
        ({"ita-trim": [95, 5]}, "curate.ita-trim"),
        ({"per-type": 0}, "curate.per-type"),
        ({"foreground": "matting"}, "curate.foreground"),
        ({"per-typ": 3}, "curate.per-typ: unknown key"),
    ],
)
def test_bad_curate_params_name_the_key(tmp_path, section, needle):
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"curate": section}))
    with pytest.raises(ParamsError, match=needle.replace(".", r"\.")):
        load_section("curate", p)


def test_stages_ingest_then_curate_smoke(cards, tmp_path):
    from stages.curate import app as curate_app
    from stages.ingest import app as ingest_app

    p = tmp_path / "params.yaml"
    section = {k.replace("_", "-"): v for k, v in SMALL.items()}
    p.write_text(yaml.safe_dump({"ingest": {"source": "synth", "path": str(cards)}, "curate": section}))
    common = ["--params", str(p), "--metrics-dir", str(tmp_path / "metrics")]
    res = CliRunner().invoke(ingest_app, ["--out", str(tmp_path / "ingest"), *common])
    assert res.exit_code == 0, res.output
    args = ["--ingest", str(tmp_path / "ingest"), "--out", str(tmp_path / "curated"), "--plots", str(tmp_path / "plots"), *common]
    res = CliRunner().invoke(curate_app, args)
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "metrics" / "curate.json").read_text())
    assert m["total"] == m["accepted"] + m["rejected"] == 24 and list(m["per_fitzpatrick"]) == list(FITZPATRICK)
    assert m["ita_type_accuracy"] == 1.0
    assert {f.name for f in (tmp_path / "plots").iterdir()} == {"ita_histogram.csv", *(f"samples_{t}.png" for t in FITZPATRICK)}
    assert len(read_manifest(tmp_path / "ingest" / "manifest.parquet")) == 24
    rows = pq.read_table(tmp_path / "curated" / "manifest.parquet").to_pylist()
    written = {f"alpha/{f.name}" for f in (tmp_path / "curated" / "alpha").iterdir()}
    assert len(rows) == 18 and {r["alpha_path"] for r in rows} == written  # one alpha per kept crop, no strays
    grid = np.asarray(Image.open(tmp_path / "plots" / "samples_I.png").convert("RGB"))
    assert (grid == OUTLINE_RGB).all(-1).sum() > 50  # the alpha outline is drawn on the samples


def test_curate_stage_without_ingest_output_says_so(tmp_path):
    from stages.curate import app

    (tmp_path / "params.yaml").write_text("curate: {}\n")
    res = CliRunner().invoke(app, ["--ingest", str(tmp_path / "nothing"), "--params", str(tmp_path / "params.yaml")])
    assert res.exit_code == 2 and "run stage ingest first" in res.output
