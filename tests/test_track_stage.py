"""Stage ``track`` end to end on tiny SynthHeads and a tiny curate output, plus its params."""

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from typer.testing import CliRunner

from fairsplat.config import ParamsError, parse_section
from fairsplat.labels import FITZPATRICK
from fairsplat.sections.track import TrackParams


pytestmark = pytest.mark.usefixtures("one_thread")


MICRO_SYNTH = {"identities": 6, "frames": 1, "views": [[0, 0], [30, 0]], "size": 64, "uv-resolution": 48}
FAST = {"batch-size": 8, "iters": 8, "plot-samples": 4}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Head asset, 12 SynthHeads images and a curate-format folder made of the same images."""
    from fairsplat.curate.tables import MANIFEST_SCHEMA
    from fairsplat.head.procedural import build_procedural_head
    from fairsplat.sections.synth import SynthParams
    from fairsplat.synth.dataset import build, write_table

    root = tmp_path_factory.mktemp("track_data")
    head = build_procedural_head()
    head.save(root / "head.npz")
    manifest, _, _ = build(head, parse_section("synth", MICRO_SYNTH, SynthParams), root / "synth")
    write_table(manifest, root / "synth" / "manifest.parquet")
    rows = []
    (root / "curated" / "crops").mkdir(parents=True)
    for r in manifest.to_pylist():
        shutil.copy(root / "synth" / r["rgb_path"], root / "curated" / "crops" / f"{r['image_id']}.png")
        lmk = (np.asarray(r["landmarks"], np.float32).reshape(68, 2) - 0.5).tolist()  # curate: centres at integers
        rows.append({f.name: None for f in MANIFEST_SCHEMA} | {
            "image_id": f"synth/{r['image_id']}", "source": "synth", "subject_id": f"synth/{r['identity_id']}",
            "split": r["split"], "path": f"crops/{r['image_id']}.png", "frame_index": r["frame"],
            "fitzpatrick_gt": r["fitzpatrick"], "fitzpatrick": "III", "n_faces": 1, "crop_size": 64, "landmarks": lmk,
        })  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), root / "curated" / "manifest.parquet")
    return root


def run_stage(data: Path, out: Path, **over):
    from stages.track import app

    params = out / "params.yaml"
    out.mkdir(parents=True, exist_ok=True)
    params.write_text(yaml.safe_dump({"track": {**FAST, **over}}))
    args = ["--head", str(data / "head.npz"), "--synth", str(data / "synth"), "--curated", str(data / "curated"),
            "--out", str(out / "tracks"), "--plots", str(out / "plots"), "--params", str(params),
            "--metrics-dir", str(out / "metrics")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads((out / "metrics" / "track.json").read_text())


def test_stage_smoke_ground_truth(data, tmp_path):
    # The curated copy carries the exact embedded landmarks, not a detector's silhouette jaw: no dynamic contour.
    m = run_stage(data, tmp_path, contour="off")
    tracks = pq.read_table(tmp_path / "tracks" / "tracks.parquet").to_pylist()
    rejects = pq.read_table(tmp_path / "tracks" / "rejects.parquet").to_pylist()
    assert len(tracks) == 24 and rejects == []  # 12 synth + 12 curated
    assert m["images"] == m["fitted"] == 12 and m["curated_images"] == m["curated_fitted"] == 12
    assert m["nme"] < 0.03 and m["curated_nme_target"] < 0.03
    assert set(m["per_fitzpatrick"]) == set(FITZPATRICK)
    assert all(v["nme"] < 0.03 and v["curated_fitted"] == 2 for v in m["per_fitzpatrick"].values())
    assert m["fit_fps"] > 0 and m["threads"] == 1
    row = tracks[0]
    assert len(row["pose"]) == 15 and len(row["landmarks_fit"]) == 136 and row["status"] == "fitted"
    synth_rows = [r for r in tracks if r["source"] == "synth"]
    by_id = {r["identity_id"]: r for r in pq.read_table(data / "synth" / "manifest.parquet").to_pylist()}
    assert len({tuple(r["shape"]) for r in synth_rows}) == len(by_id)  # one shape per identity
    assert (tmp_path / "plots" / "overlay_synth.png").is_file() and (tmp_path / "plots" / "overlay_curated.png").is_file()


def test_stage_is_deterministic(data, tmp_path):
    run_stage(data, tmp_path / "a", inputs=["synth"])
    run_stage(data, tmp_path / "b", inputs=["synth"])
    a, b = (pq.read_table(tmp_path / k / "tracks" / "tracks.parquet") for k in "ab")
    assert a.equals(b)


def test_stage_with_dlib_on_tiny_renders_records_misses(data, tmp_path):
    """64 px renders are below dlib's reach: every miss is a reject with a reason, nothing crashes."""
    m = run_stage(data, tmp_path, inputs=["synth"], landmarks="dlib")
    rejects = pq.read_table(tmp_path / "tracks" / "rejects.parquet").to_pylist()
    tracks = pq.read_table(tmp_path / "tracks" / "tracks.parquet").num_rows
    assert tracks + len(rejects) == 12 == m["fitted"] + m["rejected"]
    assert {r["reason"] for r in rejects} <= {"no_face", "multi_face"}
    assert m["detection_rate"] == pytest.approx(tracks / 12)


@pytest.mark.parametrize(
    "over, needle",
    [({"batch-size": 0}, "track.batch-size"), ({"inputs": []}, "track.inputs"), ({"landmarks": "mediapipe"}, "track.landmarks"),
     ({"smooth-pose": -1.0}, "track.smooth-pose"), ({"iters": "ten"}, "track.iters")],  # fmt: skip
)
def test_bad_params_name_the_key(over, needle):
    with pytest.raises(ParamsError, match=needle.replace(".", r"\.")):
        parse_section("track", over, TrackParams)


def test_missing_input_fails_before_work(data, tmp_path):
    from stages.track import app

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"track": {"inputs": ["synth", "curated"]}}))
    result = CliRunner().invoke(app, ["--head", str(data / "head.npz"), "--synth", str(data / "synth"), "--curated",
                                      str(tmp_path / "nope"), "--out", str(tmp_path / "out"), "--params", str(params),
                                      "--metrics-dir", str(tmp_path / "m"), "--plots", str(tmp_path / "p")])  # fmt: skip
    assert result.exit_code == 2 and "curated" in result.output
    assert not (tmp_path / "out").exists()


def test_stage_with_photometric_refinement(data, tmp_path):
    """The optional pass runs through the stage (few steps: this checks the wiring, test_track_photometric the maths)."""
    m = run_stage(data, tmp_path, inputs=["synth"], photometric=True, **{"photometric-iters": 3})
    assert m["photometric"] is True and m["fitted"] == 12
    assert m["photometric_loss_after"] < m["photometric_loss_before"]
    assert m["nme"] < 0.05 and m["nme_landmark_fit"] < 0.03
