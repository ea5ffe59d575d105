"""Stage ``track`` end to end on the tiny pipeline's SynthHeads and curate output, plus its params."""

import json
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from fairsplat.config import ParamsError, parse_section
from fairsplat.labels import FITZPATRICK
from fairsplat.sections.track import TrackParams


pytestmark = pytest.mark.usefixtures("one_thread")


FAST = {"batch-size": 8, "iters": 8, "plot-samples": 4, "synth-splits": None}  # the subset below: track every identity in it


@pytest.fixture(scope="module")
def data(tiny_pipeline, tmp_path_factory):
    """The tiny pipeline's head asset and curate output, and its SynthHeads renders cut to frame 0 of one
    identity per type (12 images: each fit here, the photometric one above all, costs per image)."""
    per_type = tiny_pipeline.params["curate"]["per-type"]
    assert tiny_pipeline.metrics("curate")["accepted"] == 6 * per_type
    first = {}  # type -> its first identity
    for r in pq.read_table(tiny_pipeline.out("synth") / "identities.parquet").to_pylist():
        first.setdefault(r["fitzpatrick"], r["identity_id"])
    keep = lambda r: r["frame"] == 0 and r["identity_id"] == first[r["fitzpatrick"]]  # noqa: E731
    synth = tiny_pipeline.subset("synth", tmp_path_factory.mktemp("track") / "synth", keep)
    n_synth = pq.read_table(synth / "manifest.parquet").num_rows
    assert n_synth == 6 * len(tiny_pipeline.params["synth"]["views"])
    return SimpleNamespace(
        head=tiny_pipeline.out("head") / "head.npz", synth=synth, curated=tiny_pipeline.out("curate"),
        n_synth=n_synth, n_curated=6 * per_type, per_type=per_type,
    )  # fmt: skip


def run_stage(data: SimpleNamespace, out: Path, **over):
    from stages.track import app

    params = out / "params.yaml"
    out.mkdir(parents=True, exist_ok=True)
    params.write_text(yaml.safe_dump({"track": {**FAST, **over}}))
    args = ["--head", str(data.head), "--synth", str(data.synth), "--curated", str(data.curated),
            "--out", str(out / "tracks"), "--plots", str(out / "plots"), "--params", str(params),
            "--metrics-dir", str(out / "metrics")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads((out / "metrics" / "track.json").read_text())


def test_stage_smoke_ground_truth(data, tmp_path):
    # Curate kept the renders' exact embedded landmarks, not a detector's silhouette jaw: no dynamic contour.
    m = run_stage(data, tmp_path, contour="off")
    tracks = pq.read_table(tmp_path / "tracks" / "tracks.parquet").to_pylist()
    rejects = pq.read_table(tmp_path / "tracks" / "rejects.parquet").to_pylist()
    assert len(tracks) == data.n_synth + data.n_curated and rejects == []
    assert m["images"] == m["fitted"] == data.n_synth and m["curated_images"] == m["curated_fitted"] == data.n_curated
    assert m["nme"] < 0.03 and m["curated_nme_target"] < 0.03
    assert set(m["per_fitzpatrick"]) == set(FITZPATRICK)
    assert all(v["nme"] < 0.03 and v["curated_fitted"] == data.per_type for v in m["per_fitzpatrick"].values())
    assert m["fit_fps"] > 0 and m["threads"] == 1
    row = tracks[0]
    assert len(row["pose"]) == 15 and len(row["landmarks_fit"]) == 136 and row["status"] == "fitted"
    synth_rows = [r for r in tracks if r["source"] == "synth"]
    by_id = {r["identity_id"]: r for r in pq.read_table(data.synth / "manifest.parquet").to_pylist()}
    assert len({tuple(r["shape"]) for r in synth_rows}) == len(by_id)  # one shape per identity
    assert (tmp_path / "plots" / "overlay_synth.png").is_file() and (tmp_path / "plots" / "overlay_curated.png").is_file()


def test_stage_is_deterministic(data, tmp_path):
    run_stage(data, tmp_path / "a", inputs=["synth"])
    run_stage(data, tmp_path / "b", inputs=["synth"])
    a, b = (pq.read_table(tmp_path / k / "tracks" / "tracks.parquet") for k in "ab")
    assert a.equals(b)


def test_stage_with_dlib_on_tiny_renders_records_misses(data, tmp_path):
    """Tiny renders are at the edge of dlib's reach: every miss is a reject with a reason, nothing crashes."""
    m = run_stage(data, tmp_path, inputs=["synth"], landmarks="dlib")
    rejects = pq.read_table(tmp_path / "tracks" / "rejects.parquet").to_pylist()
    tracks = pq.read_table(tmp_path / "tracks" / "tracks.parquet").num_rows
    assert tracks + len(rejects) == data.n_synth == m["fitted"] + m["rejected"]
    assert {r["reason"] for r in rejects} <= {"no_face", "multi_face"}
    assert m["detection_rate"] == pytest.approx(tracks / data.n_synth)


@pytest.mark.parametrize(
    "over, needle",
    [({"batch-size": 0}, "track.batch-size"), ({"inputs": ["synth", "synth"]}, "track.inputs"), ({"landmarks": "openface"}, "track.landmarks"),
     ({"detector": "gt"}, "track.detector"),
     ({"smooth-pose": -1.0}, "track.smooth-pose"), ({"iters": "ten"}, "track.iters")],  # fmt: skip
)
def test_bad_params_name_the_key(over, needle):
    with pytest.raises(ParamsError, match=needle.replace(".", r"\.")):
        parse_section("track", over, TrackParams)


def test_missing_input_fails_before_work(data, tmp_path):
    from stages.track import app

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"track": {"inputs": ["synth", "curated"]}}))
    result = CliRunner().invoke(app, ["--head", str(data.head), "--synth", str(data.synth), "--curated",
                                      str(tmp_path / "nope"), "--out", str(tmp_path / "out"), "--params", str(params),
                                      "--metrics-dir", str(tmp_path / "m"), "--plots", str(tmp_path / "p")])  # fmt: skip
    assert result.exit_code == 2 and "curated" in result.output
    assert not (tmp_path / "out").exists()


def test_stage_with_photometric_refinement(data, tmp_path):
    """The optional pass runs through the stage (few steps: this checks the wiring, test_track_photometric the maths)."""
    m = run_stage(data, tmp_path, inputs=["synth"], photometric=True, **{"photometric-iters": 3})
    assert m["photometric"] is True and m["fitted"] == data.n_synth
    assert m["photometric_loss_after"] < m["photometric_loss_before"]
    assert m["nme"] < 0.05 and m["nme_landmark_fit"] < 0.03


def _clip(path: Path, frames: list) -> None:
    """Write ``frames`` (uint8 [H, W, 3]) as a 5 fps MPEG-4 clip (PyAV's own ffmpeg)."""
    import av

    with av.open(str(path), "w") as out:
        s = out.add_stream("mpeg4", rate=5)
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = "yuv420p"
        for img in frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)


@pytest.fixture(scope="module")
def clip_dir(data, tmp_path_factory):
    """One short clip of a SynthHeads identity (frontal renders, frames 0 and 1 back and forth) and one
    file that is not a video: what a user's --videos folder may hold."""
    from fairsplat.io.images import load_rgb

    rows = [r for r in pq.read_table(data.synth / "manifest.parquet").to_pylist() if r["view"] == 0]
    first = rows[0]["identity_id"]
    imgs = [load_rgb(data.synth / r["rgb_path"]) for r in rows if r["identity_id"] == first]
    d = tmp_path_factory.mktemp("clips")
    _clip(d / "talk.mp4", [imgs[i % len(imgs)] for i in range(8)])
    (d / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    return d


def run_videos(data, clip_dir: Path, out: Path, monkeypatch=None, **over):
    from stages.track import app

    out.mkdir(parents=True, exist_ok=True)
    params = out / "params.yaml"
    params.write_text(yaml.safe_dump({"track": {**FAST, "inputs": [], **over}}))
    args = ["--head", str(data.head), "--videos", str(clip_dir), "--out", str(out / "tracks"), "--plots", str(out / "plots"),
            "--params", str(params), "--metrics-dir", str(out / "metrics")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads((out / "metrics" / "track.json").read_text())


def test_videos_alone_with_plots(data, clip_dir, tmp_path):
    """track.inputs: [] and --videos: no SynthHeads needed, the overlay drawn from decoded frames in memory,
    the metrics name the detector actually used, a file that is not a video is one reject."""
    m = run_videos(data, clip_dir, tmp_path, **{"plot-samples": 4})
    assert m["landmarks"] == "videos: mediapipe" and m["landmarks_fallback"] is None and m["plot_errors"] == 0
    assert "nme" not in m and m["videos_clips"] == 1 and m["videos_detection_rate"] > 0.5
    tracks = pq.read_table(tmp_path / "tracks" / "tracks.parquet").to_pylist()
    rejects = pq.read_table(tmp_path / "tracks" / "rejects.parquet").to_pylist()
    assert len(tracks) == 8 and {r["landmark_source"] for r in tracks} == {"mediapipe"}
    assert [r["reason"] for r in rejects] == ["bad_video"]
    assert (tmp_path / "plots" / "overlay_videos.png").is_file()
    skin = m["videos_clip_skin"]["talk"]
    assert skin["frames"] >= 4 and skin["fitzpatrick"] in FITZPATRICK and skin["ita_iqr"] >= 0


def test_a_failing_plot_keeps_the_tracks(data, clip_dir, tmp_path, monkeypatch):
    from fairsplat.track import plots

    def boom(*a, **k):
        raise RuntimeError("plotting broke")

    monkeypatch.setattr(plots, "overlay", boom)
    m = run_videos(data, clip_dir, tmp_path, **{"plot-samples": 4})
    assert m["plot_errors"] == 1
    assert pq.read_table(tmp_path / "tracks" / "tracks.parquet").num_rows == 8


def test_nothing_to_track_fails_before_work(data, tmp_path):
    from stages.track import app

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"track": {"inputs": []}}))
    result = CliRunner().invoke(app, ["--head", str(data.head), "--out", str(tmp_path / "out"), "--params", str(params),
                                      "--metrics-dir", str(tmp_path / "m"), "--plots", str(tmp_path / "p")])  # fmt: skip
    assert result.exit_code == 2 and "nothing to track" in result.output
    assert not (tmp_path / "out").exists()


def test_synth_through_mediapipe_reports_by_condition(data, tmp_path):
    m = run_stage(data, tmp_path, inputs=["synth"], landmarks="mediapipe")
    assert m["landmarks"] == "synth: mediapipe" and m["detection_rate"] is not None
    assert {"nme_frontal", "nme_turned", "nme_closed_eyes", "nme_detector_frontal"} <= set(m)
    assert all("detection_rate" in v for v in m["per_fitzpatrick"].values())
