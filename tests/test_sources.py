"""Dataset adapters: tiny directory trees in each dataset's real layout -> one manifest schema."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from fairsplat.config import ParamsError
from fairsplat.sections.registry import load_section
from fairsplat.labels import CELEBAMASK_CLASSES, FITZPATRICK, LABEL
from fairsplat.sources.config import IngestConfig
from fairsplat.sources import SOURCES, DatasetMissing, Record, read_manifest, write_manifest
from fairsplat.sources import celebahq, celebvhq, fairface, folder, synth
from fairsplat.sources.ingest import run_ingest


def jpg(path: Path, size=(48, 40), colour=(200, 150, 120)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, quality=90)
    return path


# ----------------------------------------------------------------------------- tiny trees


def make_folder(root: Path) -> Path:
    jpg(root / "a.jpg")
    jpg(root / "sub" / "b.png")
    jpg(root / "sub" / "deeper" / "c.jpeg")
    jpg(root / ".hidden" / "x.jpg")  # skipped
    (root / "notes.txt").write_text("not an image")  # not listed (extension)
    return root


def make_fairface(root: Path) -> Path:
    for split, n in (("train", 3), ("val", 2)):
        rows = ["file,age,gender,race,service_test"]
        for i in range(1, n + 1):
            rows.append(f"{split}/{i}.jpg,20-29,Female,East Asian,True")
            if not (split == "val" and i == 2):  # val/2.jpg listed but absent
                jpg(root / split / f"{i}.jpg")
        (root / f"fairface_label_{split}.csv").write_text("\n".join(rows) + "\n")
    return root


def make_celebahq(root: Path) -> Path:
    for i in (0, 1, 2):
        jpg(root / "CelebA-HQ-img" / f"{i}.jpg", size=(64, 64))
    masks = root / "CelebAMask-HQ-mask-anno" / "0"
    masks.mkdir(parents=True)
    skin = np.zeros((32, 32), np.uint8)
    skin[4:28, 4:28] = 255
    nose = np.zeros((32, 32), np.uint8)
    nose[10:20, 12:20] = 255  # overlaps skin: later class wins (g_mask.py order)
    Image.fromarray(skin).save(masks / "00000_skin.png")
    Image.fromarray(nose).save(masks / "00000_nose.png")
    (root / "CelebA-HQ-identity.txt").write_text("0.jpg 101\n1.jpg 101\n2.jpg 7\n")
    (root / "CelebAMask-HQ-attribute-anno.txt").write_text("3\nMale Young Smiling\n0.jpg 1 -1 1\n1.jpg -1 1 1\n2.jpg 1 1 -1\n")
    return root


def make_clip(path: Path, n: int = 12, size: int = 32) -> Path:
    """A tiny H.264 clip with PyAV (ships its own ffmpeg): frame k is grey level 10 k."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for k in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), 10 * k, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_celebvhq(root: Path) -> Path:
    meta = {"appearance_mapping": ["Blurry", "Male", "Young"], "action_mapping": ["talk"]}
    clips = {
        "clipA": {"ytb_id": "yt1", "duration": {"start_sec": 0, "end_sec": 1.2}, "bbox": {"top": 0, "bottom": 1, "left": 0, "right": 1},
                  "attributes": {"appearance": [0, 1, 0], "action": [1], "emotion": {}}, "version": "v0.1"},
        "clipB": {"ytb_id": "yt1", "attributes": {"appearance": [0, 0, 1]}},
        "gone": {"ytb_id": "yt2", "attributes": {"appearance": [0, 0, 0]}},  # deleted video: no file
        "broken": {"ytb_id": "yt3", "attributes": {"appearance": [0, 0, 0]}},
    }  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    (root / "celebvhq_info.json").write_text(json.dumps({"meta_info": meta, "clips": clips}))
    make_clip(root / "35666" / "clipA.mp4")
    make_clip(root / "35666" / "clipB.mp4", n=3)
    (root / "35666" / "broken.mp4").write_bytes(b"\x00not a video" * 10)
    return root


def make_synth(root: Path, n_ident: int = 2, n_img: int = 2) -> Path:
    """A SynthHeads-layout directory with the manifest columns the adapter reads."""
    rows = []
    for i in range(n_ident):
        for k in range(n_img):
            rel = f"id_{i:04d}/f{k:02d}_v00.png"
            for sub in ("images", "alpha", "labels"):
                jpg(root / sub / rel.replace(".png", ".jpg"))  # content irrelevant here
                (root / sub / rel.replace(".png", ".jpg")).rename(root / sub / rel)
            lm = np.stack([np.arange(68) * 1.0, np.arange(68) * 0.5 + k], 1)
            rows.append({
                "image_id": f"id_{i:04d}_f{k:02d}_v00", "identity_id": f"id_{i:04d}", "split": "train", "frame": k, "view": 0,
                "fitzpatrick": FITZPATRICK[i], "ita_gt": 60.0 - 15 * i, "rgb_path": f"images/{rel}", "alpha_path": f"alpha/{rel}",
                "label_path": f"labels/{rel}", "landmarks": lm.reshape(-1).tolist(),
            })  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), root / "manifest.parquet")
    return root


# ----------------------------------------------------------------------------- adapters


def test_folder_recursive_sorted_hidden_skipped(tmp_path):
    recs = list(folder.iter_records(make_folder(tmp_path / "photos")))
    assert [r.image_id for r in recs] == ["folder/a.jpg", "folder/sub/b.png", "folder/sub/deeper/c.jpeg"]
    assert all(r.subject_id == f"folder/{Path(r.image_id[7:]).with_suffix('')}" for r in recs)
    assert all(Path(r.path).is_file() for r in recs)


def test_folder_labels_csv_maps_subjects_and_labels(tmp_path):
    root = make_folder(tmp_path / "photos")
    (root / "people.csv").write_text("file,person,race\na.jpg,p1,Black\nsub/b.png,p1,Black\n")
    recs = list(folder.iter_records(root, labels_csv="people.csv", key="file", columns={"person": "subject_id", "race": "label_race"}))
    by = {r.image_id: r for r in recs}
    assert by["folder/a.jpg"].subject_id == by["folder/sub/b.png"].subject_id == "folder/p1"
    assert by["folder/a.jpg"].label_race == "Black" and by["folder/sub/deeper/c.jpeg"].label_race is None
    with pytest.raises(DatasetMissing, match="lacks columns"):
        list(folder.iter_records(root, labels_csv="people.csv", key="nope", columns={}))


def test_fairface_reads_both_csvs_and_records_absent_files(tmp_path):
    missing: list = []
    recs = list(fairface.iter_records(make_fairface(tmp_path / "ff"), missing=missing))
    assert [r.image_id for r in recs] == ["fairface/train/1.jpg", "fairface/train/2.jpg", "fairface/train/3.jpg", "fairface/val/1.jpg"]
    assert missing == [("fairface/val/2.jpg", "file_absent")]
    r = recs[0]
    assert (r.label_race, r.label_gender, r.label_age) == ("East Asian", "Female", "20-29")
    assert r.subject_id == "fairface/train/1"


def test_fairface_wrong_columns_names_the_param(tmp_path):
    root = make_fairface(tmp_path / "ff")
    (root / "fairface_label_val.csv").write_text("file,race\nval/1.jpg,White\n")
    with pytest.raises(DatasetMissing, match=r"ingest\.path.*lacks columns"):
        list(fairface.iter_records(root))


def test_celebahq_merges_masks_in_gmask_order_identities_attributes(tmp_path):
    root = make_celebahq(tmp_path / "chq")
    recs = list(celebahq.iter_records(root, out_dir=tmp_path / "out"))
    assert [r.image_id for r in recs] == [f"celebahq/CelebA-HQ-img/{i}.jpg" for i in (0, 1, 2)]
    assert recs[0].subject_id == recs[1].subject_id == "celebahq/101" != recs[2].subject_id
    assert (recs[0].label_gender, recs[0].label_age) == ("Male", "not_young")
    assert recs[1].mask_path is None and recs[0].mask_path is not None
    labels = np.asarray(Image.open(recs[0].mask_path))
    assert labels[15, 15] == LABEL["nose"] and labels[5, 5] == LABEL["skin"] and labels[0, 0] == 0
    assert CELEBAMASK_CLASSES.index("nose") > CELEBAMASK_CLASSES.index("skin")


def test_celebvhq_samples_frames_with_pyav_and_records_missing(tmp_path):
    missing: list = []
    recs = list(celebvhq.iter_records(make_celebvhq(tmp_path / "cv"), out_dir=tmp_path / "out", n_frames=4, missing=missing))
    a = [r for r in recs if r.image_id.startswith("celebvhq/clipA/")]
    b = [r for r in recs if r.image_id.startswith("celebvhq/clipB/")]
    assert [r.frame_index for r in a] == [0, 4, 7, 11]  # evenly spread, first and last kept
    assert [r.frame_index for r in b] == [0, 1, 2]  # fewer frames than asked: all of them
    assert {r.subject_id for r in a + b} == {"celebvhq/yt1"}  # one video, one subject
    assert (a[0].label_gender, a[0].label_age) == ("Male", "not_young")
    levels = [float(np.asarray(Image.open(r.path)).mean()) for r in a]
    assert np.allclose(levels, [0, 40, 70, 110], atol=4)  # the right frames were decoded
    reasons = dict(missing)
    assert reasons["celebvhq/gone"] == "clip_absent" and reasons["celebvhq/broken"].startswith("undecodable")


@pytest.mark.parametrize("total, n, expected", [(12, 4, [0, 4, 7, 11]), (3, 5, [0, 1, 2]), (10, 1, [0]), (0, 3, []), (5, 0, [])])
def test_frame_indices(total, n, expected):
    assert celebvhq.frame_indices(total, n) == expected


def test_synth_keeps_ground_truth(tmp_path):
    root = make_synth(tmp_path / "synth")
    (root / "images" / "id_0001" / "f01_v00.png").unlink()
    missing: list = []
    recs = list(synth.iter_records(root, missing=missing))
    assert len(recs) == 3 and missing == [("synth/id_0001_f01_v00", "file_absent")]
    r = recs[1]
    assert r.image_id == "synth/id_0000_f01_v00" and r.subject_id == "synth/id_0000" and r.frame_index == 1
    assert r.fitzpatrick_gt == "I" and r.ita_gt == 60.0
    assert Path(r.path).is_file() and Path(r.mask_path).is_file() and Path(r.alpha_path).is_file()
    assert r.mask_path.endswith("labels/id_0000/f01_v00.png") and r.alpha_path.endswith("alpha/id_0000/f01_v00.png")
    want = np.stack([np.arange(68), np.arange(68) * 0.5 + 1], 1) - 0.5  # corner -> centre convention
    assert np.allclose(r.landmarks, want)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_absent_dataset_names_the_param_and_layout(name, tmp_path):
    kwargs = SOURCES[name].options(IngestConfig(source=name, path=str(tmp_path)), tmp_path / "out", [])
    with pytest.raises(DatasetMissing, match=r"ingest\.path=.*nowhere.*directory not found") as err:
        list(SOURCES[name].iter_records(tmp_path / "nowhere", param="ingest.path", **kwargs))
    assert "Expected layout" in str(err.value)


@pytest.mark.parametrize("name", sorted(set(SOURCES) - {"folder"}))
def test_empty_directory_says_what_is_missing(name, tmp_path):
    kwargs = SOURCES[name].options(IngestConfig(source=name, path=str(tmp_path)), tmp_path / "out", [])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetMissing, match="missing"):
        list(SOURCES[name].iter_records(tmp_path / "empty", param="ingest.path", **kwargs))


# ----------------------------------------------------------------------------- schema, params, stage


def test_manifest_roundtrip_with_and_without_landmarks(tmp_path):
    lm = [[float(i), float(2 * i)] for i in range(68)]
    recs = [Record("s/a", "s", "s/1", "a.png"), Record("s/b", "s", "s/1", "b.png", landmarks=lm, fitzpatrick_gt="IV", ita_gt=12.5)]
    write_manifest(recs, tmp_path / "m.parquet")
    back = read_manifest(tmp_path / "m.parquet")
    assert back == recs
    with pytest.raises(ValueError, match="duplicate image_id"):
        write_manifest(recs + recs[:1], tmp_path / "m2.parquet")
    with pytest.raises(ValueError, match="68"):
        Record("s/c", "s", "s/1", "c.png", landmarks=lm[:5])
    with pytest.raises(ValueError, match="fitzpatrick_gt"):
        Record("s/c", "s", "s/1", "c.png", fitzpatrick_gt="VII")


@pytest.mark.parametrize(
    "section, needle",
    [
        ({"source": "imagenet"}, "ingest.source"),
        ({"source": "synth", "labels-csv": "x.csv"}, "ingest.labels-csv applies to source=folder"),
        ({"source": "folder", "clips-dir": "/c"}, "ingest.clips-dir applies to source=celebvhq"),
        ({"frames-per-clip": 0}, "ingest.frames-per-clip"),
        ({"fairface-splits": ["test"]}, "ingest.fairface-splits"),
        ({"limit": 0}, "ingest.limit"),
        ({"pth": "x"}, "ingest.pth: unknown key"),
    ],
)
def test_bad_ingest_params_name_the_key(tmp_path, section, needle):
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"ingest": section}))
    with pytest.raises(ParamsError, match=needle.replace(".", r"\.")):
        load_section("ingest", p)


def run_stage(tmp_path: Path, section: dict):
    from stages.ingest import app

    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"ingest": section}))
    args = ["--out", str(tmp_path / "ingest"), "--params", str(p), "--metrics-dir", str(tmp_path / "metrics")]
    return CliRunner().invoke(app, args)


def test_ingest_stage_folder_smoke(tmp_path):
    root = make_folder(tmp_path / "photos")
    res = run_stage(tmp_path, {"source": "folder", "path": str(root)})
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "metrics" / "ingest.json").read_text())
    assert m["total"] == m["accepted"] + m["rejected"] == 3 and m["subjects"] == 3
    assert len(read_manifest(tmp_path / "ingest" / "manifest.parquet")) == 3
    assert pq.read_table(tmp_path / "ingest" / "missing.parquet").num_rows == 0


def test_ingest_stage_synth_has_per_fitzpatrick(tmp_path):
    root = make_synth(tmp_path / "synth", n_ident=3)
    res = run_stage(tmp_path, {"source": "synth", "path": str(root)})
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "metrics" / "ingest.json").read_text())
    assert m["with_landmarks"] == m["with_alpha"] == m["with_labels"] == 6
    assert list(m["per_fitzpatrick"]) == list(FITZPATRICK)
    assert [m["per_fitzpatrick"][t]["images"] for t in FITZPATRICK] == [2, 2, 2, 0, 0, 0]


def test_ingest_stage_celebvhq_frames_point_at_final_dir(tmp_path):
    root = make_celebvhq(tmp_path / "cv")
    res = run_stage(tmp_path, {"source": "celebvhq", "path": str(root), "frames-per-clip": 2})
    assert res.exit_code == 0, res.output
    recs = read_manifest(tmp_path / "ingest" / "manifest.parquet")
    assert len(recs) == 4 and all(Path(r.path).is_file() and Path(r.path).is_relative_to(tmp_path / "ingest") for r in recs)
    m = json.loads((tmp_path / "metrics" / "ingest.json").read_text())
    assert (m["total"], m["accepted"], m["rejected"]) == (6, 4, 2)
    assert m["rejected_clip_absent"] == 1 and m["rejected_undecodable"] == 1


def test_ingest_stage_absent_dataset_fails_naming_the_param(tmp_path):
    res = run_stage(tmp_path, {"source": "fairface", "path": str(tmp_path / "no_fairface")})
    assert res.exit_code == 2
    assert "ingest.path=" in res.output and "fairface_label_train.csv" in res.output
    assert not (tmp_path / "ingest").exists() and not (tmp_path / "metrics" / "ingest.json").exists()


def test_limit_keeps_first_records(tmp_path):
    root = make_fairface(tmp_path / "ff")
    m = run_ingest(IngestConfig(source="fairface", path=str(root), limit=2), tmp_path / "out")
    assert m["accepted"] == 2
