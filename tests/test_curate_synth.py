"""Curation of real SynthHeads renders (the tiny pipeline's): the default path, and the ITA floor.

Stage ``curate`` ran through ``dvc repro`` in the session's tiny pipeline
(``tiny_pipeline``, tests/conftest.py) on stage synth's renders; these tests
check its outputs against the renders, read-only.

The floor of the issue is ``ita_type_accuracy >= 0.95`` overall and ``>= 0.9``
per type on SynthHeads. It holds only if the renders agree with their albedo
ground truth (stage synth meters exposure on the skin for that, and measures
it as ``ita_gt_consistency``). The full-size figure is in metrics/curate.json.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from skimage.transform import AffineTransform
from skimage.transform import warp as sk_warp

from fairsplat.labels import FITZPATRICK, LABEL


@pytest.fixture(scope="module")
def curated(tiny_pipeline):
    """(tiny pipeline, curate metrics, ingest records by id, curated manifest rows, reject rows)."""
    records = {r["image_id"]: r for r in pq.read_table(tiny_pipeline.out("ingest") / "manifest.parquet").to_pylist()}
    out = tiny_pipeline.out("curate")
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    rejects = pq.read_table(out / "rejects.parquet").to_pylist()
    return tiny_pipeline, tiny_pipeline.metrics("curate"), records, rows, rejects


def independent_warp(src: np.ndarray, matrix: list[float], size: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's bilinear warp (not PIL, not faces/crop.py) of a source image by the
    manifest's crop matrix: (float [S, S(, C)] in 0..255, bool [S, S] inside the photo).

    Inside = the crop pixel's centre maps into the photo's pixel area [-0.5, W - 0.5)
    (pixel centres at integers); there, neighbours past the edge repeat the edge pixel.
    """
    full = np.vstack([np.asarray(matrix).reshape(2, 3), [0.0, 0.0, 1.0]])
    assert np.sqrt(abs(np.linalg.det(full[:2, :2]))) >= 0.5, "crop shrinks >= 2x: curate pre-reduces, not reproduced here"
    tf = AffineTransform(matrix=full)  # source -> crop; warp() wants the crop -> source map
    out = sk_warp(src.astype(np.float64), tf.inverse, output_shape=(size, size), order=1, mode="edge")
    yx = np.mgrid[0:size, 0:size].reshape(2, -1)  # [2, S*S] (y, x)
    sx, sy = tf.inverse(np.stack([yx[1], yx[0]], 1)).T  # [S*S] each, source pixel coordinates
    h, w = src.shape[:2]
    inside = ((sx >= -0.5) & (sx < w - 0.5) & (sy >= -0.5) & (sy < h - 0.5)).reshape(size, size)
    return out, inside


def test_synth_renders_curate_with_their_ground_truth(curated):
    tiny, m, records, rows, rejects = curated
    n = tiny.metrics("synth")["images"]
    assert len(records) == n and len(rows) + len(rejects) == n and {r["image_id"] for r in rows + rejects} == set(records)
    assert m["total"] == n and m["accepted"] + m["rejected"] == n and m["reject_error"] == 0
    assert m["landmarks_ground_truth"] == n and m["ita_type_n"] + m["reject_no_skin"] + m["reject_low_chroma"] == n
    assert len(rows) == 6 * tiny.params["curate"]["per-type"]  # the quota filled for every type
    for row in rows:
        assert (row["landmark_source"], row["foreground"], row["skin_mask"]) == ("ground_truth", "ground_truth", "labels")
        assert row["fg_iou_ellipse"] > 0.5


def test_saved_alpha_is_the_compositing_mask_of_the_ground_truth(curated):
    """The saved ``alpha/<id>.png`` is the source alpha under the crop's own transform, and
    the crop is exactly that alpha compositing the (independently warped) render over grey:
    alpha 0 -> exactly 128, alpha 255 -> the render, in between the blend, each within 1 level."""
    tiny, _, records, rows, _ = curated
    out, size = tiny.out("curate"), tiny.params["curate"]["size"]
    assert len(rows) >= 5
    for row in rows:
        crop = np.asarray(Image.open(out / row["path"]))
        with Image.open(out / row["alpha_path"]) as im:
            assert im.mode == "L" and im.size == (size, size)
            alpha = np.asarray(im)
        src = np.asarray(Image.open(tiny.repo / records[row["image_id"]]["path"]).convert("RGB"))
        src_alpha = np.asarray(Image.open(tiny.repo / records[row["image_id"]]["alpha_path"]).convert("L"))
        ref_rgb, inside = independent_warp(src, row["crop_matrix"], size)  # [S, S, 3], [S, S]
        ref_alpha, _ = independent_warp(src_alpha, row["crop_matrix"], size)  # [S, S]
        ref_alpha = np.where(inside, ref_alpha, 0.0)  # padding is background
        assert np.abs(alpha - ref_alpha).max() <= 1.0, np.abs(alpha - ref_alpha).max()
        bg, fg = alpha == 0, alpha == 255
        assert bg.mean() > 0.2 and fg.mean() > 0.2, (bg.mean(), fg.mean())  # both checks below bite
        assert (crop[bg] == 128).all()
        assert np.abs(crop[fg] - ref_rgb[fg]).max() <= 1.0, np.abs(crop[fg] - ref_rgb[fg]).max()
        a = alpha[..., None] / 255.0
        blend = np.round(a * np.where(inside[..., None], ref_rgb, 0.0) + (1.0 - a) * 127.5)
        assert np.abs(crop - blend).max() <= 1.0, np.abs(crop - blend).max()
        labels = np.asarray(Image.open(out / row["mask_path"]))
        head, solid = labels != LABEL["background"], alpha >= 128
        assert (head & solid).sum() / (head | solid).sum() > 0.9  # alpha and label map registered
    subjects = {}
    for row in rows:
        assert subjects.setdefault(row["subject_id"], row["split"]) == row["split"]


def test_ground_truth_landmarks_sit_on_their_regions_after_cropping(curated):
    """Landmarks and label maps stay registered through the crop: nose points on the
    nose label, outer-lip points on the lips (3x3 neighbourhood, frontal views)."""
    tiny, _, _, rows, _ = curated
    hits = []
    for row in (r for r in rows if r["image_id"].endswith("_v00")):
        labels = np.asarray(Image.open(tiny.out("curate") / row["mask_path"]))
        for ks, ids in ((range(27, 36), (LABEL["nose"],)), (range(48, 60), (LABEL["u_lip"], LABEL["l_lip"]))):
            for k in ks:
                x, y = np.round(row["landmarks"][k]).astype(int)
                hits.append(bool(np.isin(labels[y - 1 : y + 2, x - 1 : x + 2], ids).any()))
    assert len(hits) >= 21 and np.mean(hits) >= 0.9, np.mean(hits)


def test_ita_type_accuracy_floor(curated):
    """Over every analysed render, kept or not: the type read from ITA (the manifest's and the
    rejects' ``fitzpatrick``, over-quota ones included) against the albedo's ground truth."""
    _, m, records, rows, rejects = curated
    typed = {r["image_id"]: r["fitzpatrick"] for r in rows + rejects if r["fitzpatrick"]}
    per = {t: [typed[i] == t for i, r in records.items() if r["fitzpatrick_gt"] == t and i in typed] for t in FITZPATRICK}
    print("ita_type_accuracy", m["ita_type_accuracy"], {t: np.mean(v) if v else None for t, v in per.items()})
    assert len(typed) == m["ita_type_n"]
    assert m["ita_type_accuracy"] >= 0.95 and np.mean([x for v in per.values() for x in v]) >= 0.95
    assert all(v and np.mean(v) >= 0.9 for v in per.values())
