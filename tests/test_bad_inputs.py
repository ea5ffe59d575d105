"""Fault sweep, bad inputs (issue 18): every kind of fairsplat/testing/badinputs.py through every entry point that
reads a user file, with the outcome each must give.

Batch entry points (a folder or dataset in, a table out) must never raise: each file is accepted or recorded with
its reason, and accepted + rejected = total. Single-file entry points (a checkpoint, a FLAME file, one photo for
``fairsplat avatar``) either load or refuse with an error that names the file. Valid but unusual photos (CMYK,
16-bit, greyscale, alpha, EXIF-rotated) are accepted and their decoded pixels checked against the plain photo,
except where the project documents a refusal (curation refuses greyscale: no colour, no ITA). No pickle payload
ever runs: every test asserts its marker file was never created.

The expectation tables below are also the README's "Fault sweep: bad inputs" table: ``python
tests/test_bad_inputs.py`` prints it, and ``test_readme_table_is_generated_from_these_expectations`` keeps them equal.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fairsplat.testing.badinputs import KINDS, Sample, applies, code_pickle, jpeg_bytes, video_bytes, write

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]

# ---- expectations: entry point -> {kind: outcome} (None = accepted / loaded) -------------------------------------
_PHOTO_BAD = {"empty": "not_an_image", "truncated": "truncated", "not_the_format": "not_an_image",
              "code_pickle": "not_an_image", "one_pixel": "too_small", "bomb_header": "too_large"}  # fmt: skip
_PHOTO_OK = dict.fromkeys(("good", "wrong_extension", "cmyk", "rgb16", "alpha", "exif_rotated"))
EXPECT: dict[str, dict[str, str | None]] = {
    # photos -- batch: the reason in the rejects table
    "curate": _PHOTO_OK | _PHOTO_BAD | {"grey16": "greyscale", "greyscale": "greyscale", "no_face": "no_face",
                                        "ten_faces": None},  # largest face kept, the others' boxes recorded
    "track --photos": _PHOTO_OK | dict.fromkeys(_PHOTO_BAD, "bad_image") | {"grey16": None, "greyscale": None,
                                                                           "no_face": "no_face", "ten_faces": "multi_face"},
    # photos -- single file: `fairsplat avatar` (exit 2, the message names the photo)
    "fairsplat avatar": _PHOTO_OK | dict.fromkeys(_PHOTO_BAD, "not a usable image") | {
        "grey16": None, "greyscale": None, "no_face": "no face found", "ten_faces": "10 faces found"},
    # videos -- batch
    "ingest celebvhq": {"good": None, "wrong_extension": None, "empty": "undecodable", "truncated": "undecodable",
                        "not_the_format": "undecodable", "code_pickle": "undecodable", "no_frames": "no_frames",
                        "broken_stream": "undecodable", "no_face": None, "ten_faces": None},  # faces: curate decides
    "track --videos": {"good": None, "wrong_extension": None, "empty": "bad_video", "truncated": "bad_video",
                       "not_the_format": "bad_video", "code_pickle": "bad_video", "no_frames": "bad_video",
                       "broken_stream": "bad_video", "no_face": "no_face", "ten_faces": "multi_face"},
    # videos -- single file: `fairsplat reenact --driver` (exit 2 naming the clip). Accepting a clip runs the track
    # stage's reader (the `track --videos` column) and then the fitter, so only refusals are swept here.
    "fairsplat reenact --driver": {"empty": "not a decodable video", "truncated": "not a decodable video",
                                   "not_the_format": "not a decodable video", "code_pickle": "not a decodable video",
                                   "no_frames": "not a decodable video", "broken_stream": "not a decodable video",
                                   "no_face": "no single face found", "ten_faces": "no single face found"},
    # single files: a refusal (an error naming the file) whose message matches
    "head (FLAME .pkl)": {"good": None, "empty": "empty", "truncated": "truncated or corrupt",
                          "wrong_extension": "truncated or corrupt", "not_the_format": "truncated or corrupt",
                          "code_pickle": "refuses to load global posix.system", "wrong_shapes": "has shape"},
    "head (FLAME .npz)": {"good": None, "empty": "not a readable .npz", "truncated": "not a readable .npz",
                          "wrong_extension": "not a readable .npz", "not_the_format": "not a readable .npz",
                          "code_pickle": "not a readable .npz", "wrong_shapes": "has shape"},
    "head (FLAME landmark .npy)": {"good": None, "empty": "empty", "truncated": "truncated or corrupt",
                                   "wrong_extension": "not an .npy file", "not_the_format": "not an .npy file",
                                   "code_pickle": "refuses to load global posix.system", "wrong_shapes": "have shapes"},
    "head asset (--head .npz)": {"good": None, "empty": "not a readable head asset",
                                 "truncated": "not a readable head asset", "wrong_extension": "not a readable head asset",
                                 "not_the_format": "not a readable head asset", "code_pickle": "not a readable head asset",
                                 "wrong_shapes": "v_template: shape"},
    "model checkpoint": {"good": None, "empty": "not a readable safetensors", "truncated": "not a readable safetensors",
                         "wrong_extension": "not a readable safetensors", "not_the_format": "not a readable safetensors",
                         "code_pickle": "not a readable safetensors", "wrong_shapes": "has shape"},
    "avatar.safetensors": {"good": None, "empty": "not a readable safetensors", "truncated": "not a readable safetensors",
                           "wrong_extension": "not a readable safetensors",
                           "not_the_format": "not a readable safetensors", "code_pickle": "not a readable safetensors",
                           "wrong_shapes": "has shape"},
    "resume state.pt": {"good": None, "empty": "empty or truncated", "truncated": "empty or truncated",
                        "wrong_extension": "refused", "not_the_format": "refused",
                        "code_pickle": "unsupported GLOBAL posix.system"},
    "resume model.safetensors": {"good": None, "empty": "not a readable safetensors",
                                 "truncated": "not a readable safetensors", "wrong_extension": "not a readable safetensors",
                                 "not_the_format": "not a readable safetensors",
                                 "code_pickle": "not a readable safetensors", "wrong_shapes": "has shape"},
    "LoRA (SoulSplats .pt)": {"good": None, "empty": "empty or truncated", "truncated": "empty or truncated",
                              "wrong_extension": "refused", "not_the_format": "refused",
                              "code_pickle": "unsupported GLOBAL posix.system", "wrong_shapes": "has rank"},
    "PLY": {"good": None, "empty": "not a readable PLY", "truncated": "not a readable PLY",
            "wrong_extension": "not a readable PLY", "not_the_format": "not a readable PLY",
            "code_pickle": "not a readable PLY", "wrong_shapes": "missing properties", "bomb_header": "not a readable PLY"},
    "weights registry": {"empty": "does not match its sha256", "truncated": "does not match its sha256",
                         "wrong_extension": "does not match its sha256", "not_the_format": "does not match its sha256",
                         "code_pickle": "does not match its sha256"},
}
BATCH = {"curate", "track --photos", "ingest celebvhq", "track --videos"}
CLI = {"fairsplat avatar", "fairsplat reenact --driver"}


@pytest.fixture
def marker(tmp_path):
    """Where a pickle's payload would write; no test may ever see it."""
    path = tmp_path / "PAYLOAD_RAN"
    yield path
    assert not path.exists(), "a pickle's payload ran"


def _pairs(entry: str) -> list[str]:
    return sorted(EXPECT[entry])


CORE = ("empty", "truncated", "wrong_extension", "not_the_format", "code_pickle")
"""Kinds that exist in every format: each entry point must face all of them."""


def test_every_kind_is_swept_and_every_entry_point_faces_the_core_kinds():
    used = {k for table in EXPECT.values() for k in table} - {"good"}
    assert used == set(KINDS), set(KINDS) ^ used  # no kind left out, no expectation for a kind that is not written
    assert len(KINDS) >= 12
    for entry, table in EXPECT.items():
        core = set(CORE) - ({"wrong_extension"} if entry == "fairsplat reenact --driver" else set())  # see EXPECT
        assert core <= set(table), (entry, core - set(table))


# ---- photos -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def face() -> np.ndarray:  # uint8 [256, 256, 3]: a shaded test card that dlib and MediaPipe detect
    from fairsplat.testing.testcard import paint

    return paint(256, shade=True).image


def _photo_sample(face, marker) -> Sample:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(face).save(buf, format="PNG")  # a valid PNG: what a wrongly named .jpg holds
    return Sample("photo", jpeg_bytes(face), other=buf.getvalue(), marker=marker, face=face)


def _photo_folder(root: Path, face, marker) -> dict[str, Path]:
    """One file per photo kind (plus ``good``), named as a user would: PNG content gets .png, except the lie."""
    s = _photo_sample(face, marker)
    root.mkdir(parents=True, exist_ok=True)
    (root / "good.jpg").write_bytes(s.good)
    files = {"good": root / "good.jpg"}
    for kind in KINDS:
        if applies(kind, s):
            png = KINDS[kind](s).startswith(b"\x89PNG") and kind != "wrong_extension"
            files[kind] = write(kind, s, root / f"{kind}{'.png' if png else '.jpg'}")
    return files


@pytest.fixture(scope="module")
def curated(tmp_path_factory, face):
    """The photo kinds through ingest (folder) and curate, as stages ingest and curate run them."""
    from fairsplat.curate import curate
    from fairsplat.curate.config import CurateConfig
    from fairsplat.sources import folder

    root = tmp_path_factory.mktemp("curate")
    marker = root / "PAYLOAD_RAN"
    files = _photo_folder(root / "photos", face, marker)
    records = list(folder.iter_records(root / "photos"))
    res = curate(records, root / "out", CurateConfig(size=64, per_type=None, workers=1))
    assert not marker.exists()
    return files, res


def test_curate_accounts_for_every_photo_with_its_reason(curated):
    files, res = curated
    m = res.metrics
    assert m["total"] == len(files) and m["accepted"] + m["rejected"] == m["total"] and m["reject_error"] == 0
    outcome = {r["image_id"]: None for r in res.manifest} | {r["image_id"]: r["reason"] for r in res.rejects}
    got = {kind: outcome[f"folder/{path.name}"] for kind, path in files.items()}
    assert got == EXPECT["curate"]
    detail = {r["image_id"]: r["detail"] for r in res.rejects}
    assert re.search(r"400000000 pixels|20000x20000", detail["folder/bomb_header.png"])  # from the header, undecoded


def test_curate_decodes_unusual_photos_like_the_plain_one(curated):
    _, res = curated
    by = {Path(r["image_id"]).stem: r for r in res.manifest}
    good = by["good"]
    for kind in ("wrong_extension", "cmyk", "rgb16", "alpha", "exif_rotated"):
        np.testing.assert_allclose(by[kind]["landmarks"], good["landmarks"], atol=2.0, err_msg=kind)  # EXIF applied
        assert abs(by[kind]["ita"] - good["ita"]) < 2.0, (kind, by[kind]["ita"], good["ita"])  # 16 bit scaled, CMYK
    assert by["alpha"]["foreground"] == "ground_truth"  # the PNG's alpha is kept as the matte, not dropped
    ten = next(a for a in res.analyses if a.image_id.endswith("ten_faces.jpg"))
    assert ten.n_faces >= 2 and len(ten.other_boxes) == ten.n_faces - 1  # the others are recorded, not ignored


@pytest.mark.parametrize("source", ["fairface", "celebahq"])
def test_dataset_layouts_account_for_every_photo(tmp_path, face, marker, source):
    """ingest never opens images (cheap on 108K files); curate then gives each its reason, as for a folder."""
    from fairsplat.curate import curate
    from fairsplat.curate.config import CurateConfig
    from fairsplat.sources.config import IngestConfig
    from fairsplat.sources.ingest import run_ingest
    from fairsplat.sources.manifest import read_manifest

    sub = {"fairface": "train", "celebahq": "CelebA-HQ-img"}[source]
    files = _photo_folder(tmp_path / "tmp", face, marker)
    names = {}
    for i, (kind, path) in enumerate(sorted(files.items())):
        names[f"{i}.jpg"] = kind  # both datasets name files <n>.jpg, whatever they hold
        (tmp_path / "ds" / sub).mkdir(parents=True, exist_ok=True)
        path.rename(tmp_path / "ds" / sub / f"{i}.jpg")
    if source == "fairface":
        rows = [f"{sub}/{n},20-29,Female,Black,True" for n in names] + [f"{sub}/absent.jpg,20-29,Male,White,True"]
        (tmp_path / "ds" / "fairface_label_train.csv").write_text("file,age,gender,race,service_test\n" + "\n".join(rows))
    m = run_ingest(IngestConfig(source=source, path=str(tmp_path / "ds"), fairface_splits=("train",)), tmp_path / "ing")
    absent = 1 if source == "fairface" else 0
    assert m["total"] == len(files) + absent and m["accepted"] == len(files) and m["rejected"] == absent
    res = curate(read_manifest(tmp_path / "ing" / "manifest.parquet"), tmp_path / "out", CurateConfig(size=64, per_type=None, workers=1))
    assert res.metrics["accepted"] + res.metrics["rejected"] == res.metrics["total"] == len(files)
    outcome = {r["image_id"]: None for r in res.manifest} | {r["image_id"]: r["reason"] for r in res.rejects}
    assert {names[Path(i).name]: why for i, why in outcome.items()} == EXPECT["curate"]


@pytest.mark.parametrize("mask", ["not_the_format", "empty", "other_size"])
def test_celebahq_bad_mask_rejects_its_image_with_the_reason(tmp_path, face, marker, mask):
    """A parsing mask ingest cannot merge takes its image to missing.parquet (named), never down the run."""
    import pyarrow.parquet as pq
    from PIL import Image

    from fairsplat.sources.config import IngestConfig
    from fairsplat.sources.ingest import run_ingest

    (tmp_path / "ds" / "CelebA-HQ-img").mkdir(parents=True)
    masks = tmp_path / "ds" / "CelebAMask-HQ-mask-anno" / "0"
    masks.mkdir(parents=True)
    for i in range(2):
        (tmp_path / "ds" / "CelebA-HQ-img" / f"{i}.jpg").write_bytes(jpeg_bytes(face))
        Image.fromarray(np.full((32, 32), 255, np.uint8)).save(masks / f"{i:05d}_skin.png")
    bad = masks / "00001_hair.png"
    if mask == "other_size":
        Image.fromarray(np.full((16, 16), 255, np.uint8)).save(bad)
    else:
        bad.write_bytes(KINDS[mask](_photo_sample(face, marker)))
    m = run_ingest(IngestConfig(source="celebahq", path=str(tmp_path / "ds")), tmp_path / "ing")
    assert (m["total"], m["accepted"], m["rejected"], m["rejected_bad_mask"]) == (2, 1, 1, 1)
    (row,) = pq.read_table(tmp_path / "ing" / "missing.parquet").to_pylist()
    assert row["ref"] == "celebahq/CelebA-HQ-img/1.jpg" and row["reason"].startswith("bad_mask:") and bad.name in row["reason"]


def test_track_photos_gives_every_photo_a_status(tmp_path, face, marker):
    from fairsplat.track.sources import load_photos

    files = _photo_folder(tmp_path / "photos", face, marker)
    items = load_photos(tmp_path / "photos", fov_deg=18.0)
    assert len(items) == len(files)  # one row each: tracked or a reject with its status
    status = {Path(i).stem: s for i, s in zip(items.ids, items.status)}
    assert {k: None if v == "ok" else v for k, v in status.items()} == EXPECT["track --photos"]
    rows = {Path(i).stem: t for i, t in zip(items.ids, items.targets)}
    for kind in ("wrong_extension", "cmyk", "rgb16", "alpha", "exif_rotated", "greyscale", "grey16"):
        np.testing.assert_allclose(rows[kind], rows["good"], atol=2.0, err_msg=kind)  # same face, same landmarks


@pytest.fixture(scope="module")
def avatar_model(tmp_path_factory) -> tuple[Path, Path]:
    """A generator's config without its weights (the photos are checked before any weight is read), and a head file."""
    d = tmp_path_factory.mktemp("avatar_model")
    (d / "config.json").write_text(json.dumps(_tiny_config().to_json() | {"size": 64}))
    (d / "head.npz").write_bytes(b"")
    return d, d / "head.npz"


@pytest.mark.parametrize("kind", _pairs("fairsplat avatar"))
def test_avatar_cli_refuses_a_bad_photo_by_name_and_takes_an_unusual_one(tmp_path, face, marker, avatar_model, kind):
    from typer.testing import CliRunner

    from fairsplat.cli import app

    files = {k: p for k, p in _photo_folder(tmp_path / "p", face, marker).items() if k in (kind, "good")}
    model, head = avatar_model
    res = CliRunner().invoke(app, ["avatar", str(files[kind]), "--out", str(tmp_path / "av"), "--model", str(model),
                                   "--head", str(head)])  # fmt: skip
    assert res.exit_code == 2, res.output + repr(res.exception)  # a refusal, never a traceback
    expect = EXPECT["fairsplat avatar"][kind]
    if expect is None:  # the photo passed; the command stopped at the deliberately absent weights
        assert "model.safetensors" in res.output and files[kind].name not in res.output, res.output
    else:
        assert files[kind].name in res.output and expect in res.output, res.output
    assert not (tmp_path / "av").exists()


@pytest.mark.parametrize("broken, needle", [("config", "config.json: not a generator config"),
                                             ("weights", "model.safetensors: not a readable safetensors")])
def test_avatar_cli_refuses_a_broken_model_by_name(tmp_path, face, marker, avatar_model, broken, needle):
    from typer.testing import CliRunner

    from fairsplat.cli import app

    model = Path(shutil.copytree(avatar_model[0], tmp_path / "model"))
    if broken == "config":
        (model / "config.json").write_text(json.dumps({"size": 64}))
    else:
        (model / "model.safetensors").write_bytes(code_pickle(marker))
    photo = _photo_folder(tmp_path / "p", face, marker)["good"]
    res = CliRunner().invoke(app, ["avatar", str(photo), "--out", str(tmp_path / "av"), "--model", str(model),
                                   "--head", str(avatar_model[1])])  # fmt: skip
    assert res.exit_code == 2 and needle in res.output, res.output + repr(res.exception)


def test_avatar_crops_unusual_photos_like_the_plain_one(tmp_path, face, marker):
    from fairsplat.avatar.from_photos import prepare

    files = _photo_folder(tmp_path / "p", face, marker)
    kinds = ["good", "wrong_extension", "cmyk", "rgb16", "alpha", "exif_rotated"]
    prep = prepare([files[k] for k in kinds], 64)
    for i, kind in enumerate(kinds[1:], start=1):
        diff = np.abs(prep.crops[i].astype(int) - prep.crops[0]).mean()
        assert diff < 3.0, (kind, diff)  # EXIF turned upright, 16 bit scaled, CMYK converted, alpha dropped
        np.testing.assert_allclose(prep.landmarks[i], prep.landmarks[0], atol=1.0, err_msg=kind)


# ---- videos -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def videos(tmp_path_factory, face) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("videos")
    frames = np.repeat(face[None], 6, axis=0)  # [6, 256, 256, 3], half a second at 12 fps
    s = Sample("video", video_bytes(frames), other=video_bytes(frames, suffix=".mkv"), marker=root / "PAYLOAD_RAN",
               face=face)  # fmt: skip
    files = {"good": root / "clips" / "good.mp4"}
    files["good"].parent.mkdir()
    files["good"].write_bytes(s.good)
    files |= {k: write(k, s, root / "clips" / f"{k}.mp4") for k in KINDS if applies(k, s)}
    return root, files


def test_celebvhq_ingest_records_every_clip(tmp_path, videos, face):
    from fairsplat.sources.config import IngestConfig
    from fairsplat.sources.ingest import run_ingest
    from fairsplat.sources.manifest import read_manifest

    root, files = videos
    info = {"meta_info": {}, "clips": {k: {"ytb_id": f"yt_{k}"} for k in files}}
    (root / "celebvhq_info.json").write_text(json.dumps(info))
    cfg = IngestConfig(source="celebvhq", path=str(root), frames_per_clip=2)
    m = run_ingest(cfg, tmp_path / "ing")
    import pyarrow.parquet as pq

    missing = {r["ref"].split("/")[1]: r["reason"].split(":")[0] for r in pq.read_table(tmp_path / "ing" / "missing.parquet").to_pylist()}
    rows = read_manifest(tmp_path / "ing" / "manifest.parquet")
    accepted = {r.image_id.split("/")[1] for r in rows}
    assert accepted.isdisjoint(missing) and accepted | set(missing) == set(files)  # each clip in one place
    assert m["total"] == m["accepted"] + m["rejected"] and m["rejected"] == len(missing)
    assert {k: missing.get(k) for k in files} == EXPECT["ingest celebvhq"]
    from PIL import Image

    frame = np.asarray(Image.open(next(r.path for r in rows if r.image_id.startswith("celebvhq/good/"))))
    assert np.abs(frame.astype(int) - face).mean() < 6.0  # decoded, not garbage (H.264 loss only)
    assert not (root / "PAYLOAD_RAN").exists()


def test_track_videos_gives_every_clip_a_status(videos):
    from fairsplat.track.video import load_videos

    root, files = videos
    items = load_videos(root / "clips", fov_deg=18.0, fps=5.0, max_frames=4)
    per_clip: dict[str, set[str]] = {}
    for subject, status in zip(items.subject, items.status):
        per_clip.setdefault(subject, set()).add(status)
    assert set(per_clip) == set(files)  # every clip has rows: frames or one bad_video row
    assert all(len(s) == 1 for s in per_clip.values()), per_clip  # a still clip: every frame alike
    got = {k: (None if s == {"ok"} else next(iter(s))) for k, s in per_clip.items()}
    assert got == EXPECT["track --videos"]
    assert not (root / "PAYLOAD_RAN").exists()


@pytest.mark.parametrize("kind", _pairs("fairsplat reenact --driver"))
def test_reenact_refuses_a_bad_driver_video_by_name(tmp_path, videos, kind):
    from typer.testing import CliRunner

    from fairsplat.avatar.avatar import Avatar
    from fairsplat.avatar.binding import AvatarBinding, BindingSpec
    from fairsplat.cli import app
    from fairsplat.testing.toy_head import make_toy_head

    head = make_toy_head()
    head.save(tmp_path / "head.npz")
    Avatar.neutral(AvatarBinding(head, BindingSpec("points", max_points=64))).save(tmp_path / "avatar", head)
    clip = videos[1][kind]
    res = CliRunner().invoke(app, ["reenact", str(tmp_path / "avatar"), "--driver", str(clip), "--head",
                                   str(tmp_path / "head.npz"), "--out", str(tmp_path / "out.mp4"), "--size", "32",
                                   "--params", str(tmp_path / "absent.yaml")])  # fmt: skip
    assert res.exit_code == 2, res.output + repr(res.exception)
    assert clip.name in res.output and EXPECT["fairsplat reenact --driver"][kind] in res.output, res.output
    assert not (tmp_path / "out.mp4").exists() and not (videos[0] / "PAYLOAD_RAN").exists()


# ---- single files -------------------------------------------------------------------------------------------------
def _refusal_or_load(load, path: Path, expect: str | None, errors: tuple[type[Exception], ...]):
    if expect is None:
        return load(path)
    with pytest.raises(errors) as err:
        load(path)
    msg = str(err.value)
    assert str(path.parent.name) in msg and path.name in msg, msg  # names the file
    assert re.search(re.escape(expect), msg), msg
    return None


TINY_GENERATOR = dict(
    encoder=dict(name="dinov2", image_size=32, dim=16, hidden=16, layers=2, heads=2, patch=8, levels=(0, 1)),
    decoder=dict(width=16, blocks=2, heads=2, mlp_ratio=2.0, octaves=4, attention="cross", image_dim=16),
)


def _tiny_config():
    from fairsplat.avatar.binding import BindingSpec
    from fairsplat.models.encoders import EncoderConfig
    from fairsplat.models.generator import GeneratorConfig
    from fairsplat.models.lam import DecoderConfig, HeadsConfig

    return GeneratorConfig(EncoderConfig(**TINY_GENERATOR["encoder"]), DecoderConfig(**TINY_GENERATOR["decoder"]),
                           HeadsConfig(hidden=16), BindingSpec("points", max_points=64))  # fmt: skip


def _tiny_generator():
    from fairsplat.models.generator import Generator

    cfg = _tiny_config()
    return Generator(cfg), cfg


def _safetensors(tensors: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in tensors.items()})


def _torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _flame(d: Path, suffix: str) -> tuple[Sample, str, object, tuple]:
    """A FLAME-format model of the toy head (exprdirs apart, landmarks inside), as .pkl or .npz."""
    import pickle

    from fairsplat.head.flame_file import convert_flame
    from fairsplat.head.flame_file_pickle import FlameFileError
    from fairsplat.testing.toy_head import make_toy_head

    toy = make_toy_head()
    nv = toy.v_template.shape[0]
    arrays = {"v_template": toy.v_template.astype(np.float64), "f": toy.faces.astype(np.uint32),
              "shapedirs": toy.shapedirs, "exprdirs": toy.exprdirs, "posedirs": toy.posedirs.T.reshape(nv, 3, 36),
              "J_regressor": toy.j_regressor, "weights": toy.lbs_weights,
              "kintree_table": np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64),
              "full_lmk_faces_idx": toy.lmk_faces, "full_lmk_bary_coords": toy.lmk_bary}  # fmt: skip
    wrong = arrays | {"v_template": arrays["v_template"][:, :2]}

    def npz(a: dict) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, **a)
        return buf.getvalue()

    pkl = lambda a: pickle.dumps(a, protocol=2)  # noqa: E731
    enc, other = (pkl, npz) if suffix == ".pkl" else (npz, pkl)
    s = Sample("flame", enc(arrays), other=other(arrays), marker=Path(), wrong_shapes=enc(wrong))
    return s, f"generic_model{suffix}", lambda p: convert_flame(p, n_shape=12, n_expr=8), (FlameFileError,)


def _flame_landmarks(d: Path):
    """FLAME's landmark_embedding.npy (a dict behind an object-array header) beside a model .npz without landmarks."""
    from fairsplat.head.flame_file import convert_flame
    from fairsplat.head.flame_file_pickle import FlameFileError
    from fairsplat.testing.badinputs import npy_object
    from fairsplat.testing.toy_head import make_toy_head

    sample, name, _, _ = _flame(d, ".npz")
    with np.load(io.BytesIO(sample.good)) as z:
        arrays = {k: z[k] for k in z.files if "lmk" not in k}
    np.savez(d / name, **arrays)
    toy = make_toy_head()

    def npy(faces_idx: np.ndarray) -> bytes:
        buf = io.BytesIO()
        np.save(buf, {"full_lmk_faces_idx": faces_idx, "full_lmk_bary_coords": toy.lmk_bary}, allow_pickle=True)
        return buf.getvalue()

    s = Sample("npy", npy(toy.lmk_faces), other=sample.good, marker=Path(), wrong_shapes=npy(toy.lmk_faces[:67]),
               wrap=npy_object)  # fmt: skip
    return s, "landmark_embedding.npy", lambda p: convert_flame(d / name, landmark_path=p, n_shape=12, n_expr=8), (FlameFileError,)


def _head_asset(d: Path):
    from fairsplat.head.model import HeadModel, HeadModelError
    from fairsplat.testing.toy_head import make_toy_head

    make_toy_head().save(d / "head.npz")
    good = (d / "head.npz").read_bytes()
    with np.load(d / "head.npz") as z:
        arrays = {k: z[k] for k in z.files}
    buf = io.BytesIO()
    np.savez(buf, **(arrays | {"v_template": arrays["v_template"][:, :2]}))
    s = Sample("npz", good, other=_safetensors({"v_template": torch.zeros(3, 3)}), marker=Path(), wrong_shapes=buf.getvalue())
    return s, "head.npz", HeadModel.load, (HeadModelError,)


def _model_checkpoint(d: Path):
    from fairsplat.io.checkpoint import CheckpointError, save_weights
    from fairsplat.models.generator import load_generator

    model, cfg = _tiny_generator()
    state = model.state_dict()
    save_weights(d, state, cfg.to_json())
    key = sorted(state)[0]
    wrong = state | {key: torch.zeros(state[key].shape[0] + 1, *state[key].shape[1:])}
    s = Sample("safetensors", (d / "model.safetensors").read_bytes(), other=_torch_bytes(state), marker=Path(),
               wrong_shapes=_safetensors(wrong))  # fmt: skip
    return s, "model.safetensors", lambda p: load_generator(p.parent), (CheckpointError,)


def _avatar_file(d: Path):
    from fairsplat.avatar.avatar import Avatar
    from fairsplat.avatar.binding import AvatarBinding, BindingSpec
    from fairsplat.evaluate.reenact import load_avatar
    from fairsplat.io.checkpoint import CheckpointError
    from fairsplat.testing.toy_head import make_toy_head

    head = make_toy_head()
    av = Avatar.neutral(AvatarBinding(head, BindingSpec("points", max_points=64)))
    av.save(d, head)
    tensors = av.tensors()
    wrong = tensors | {"offsets": tensors["offsets"][:-1]}
    s = Sample("safetensors", (d / "avatar.safetensors").read_bytes(), other=_torch_bytes(tensors), marker=Path(),
               wrong_shapes=_safetensors(wrong))  # fmt: skip
    return s, "avatar.safetensors", lambda p: load_avatar(p.parent, head), (CheckpointError,)


def _resume(d: Path, name: str):
    from fairsplat.io.checkpoint import CheckpointError, TrainState, load_train_state, rng_state, save_train_state

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    save_train_state(d, TrainState(3, model.state_dict(), opt.state_dict(), None, rng_state(), "fp", {}))
    wrong = _safetensors(torch.nn.Linear(3, 3).state_dict()) if name == "model.safetensors" else None
    other = _safetensors(model.state_dict()) if name == "state.pt" else _torch_bytes(model.state_dict())
    s = Sample("torch", (d / name).read_bytes(), other=other, marker=Path(), wrong_shapes=wrong)

    def load(p: Path):
        state = load_train_state(p.parent, "fp", model.state_dict())
        assert state is not None and state.step == 3  # the good state resumes
        return state

    return s, name, load, (CheckpointError,)


def _lora(d: Path):
    from fairsplat.io.checkpoint import CheckpointError
    from fairsplat.lora.adapters import LoraSpec, attach
    from fairsplat.lora.soulsplats import WEIGHTS, export_soulsplats, import_soulsplats

    peft = attach(_tiny_generator()[0], LoraSpec(4, 8.0))
    export_soulsplats(peft, d, {}, {})
    tensors = torch.load(d / WEIGHTS, weights_only=True)
    wrong = {k: (v[:2] if k.endswith("lora_A") else v[:, :2]) for k, v in tensors.items()}
    s = Sample("torch", (d / WEIGHTS).read_bytes(), other=_safetensors(tensors), marker=Path(),
               wrong_shapes=_torch_bytes(wrong))  # fmt: skip
    return s, WEIGHTS, lambda p: import_soulsplats(peft, p), (CheckpointError,)


def _ply(d: Path):
    from plyfile import PlyData, PlyElement

    from fairsplat.splat.gaussians import GaussianSet
    from fairsplat.splat.ply import PlyFormatError, load_ply, save_ply

    n = 4
    g = GaussianSet(means=torch.randn(n, 3), quats=torch.tensor([[1.0, 0, 0, 0]] * n), log_scales=torch.zeros(n, 3),
                    opacity_logits=torch.zeros(n), sh=torch.zeros(n, 1, 3))  # fmt: skip
    save_ply(d / "avatar.ply", g)
    good = (d / "avatar.ply").read_bytes()
    buf = io.BytesIO()
    xyz = np.zeros(n, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])  # a point cloud, not Gaussians
    PlyData([PlyElement.describe(xyz, "vertex")], text=False).write(buf)
    end = good.index(b"end_header\n")
    huge = good[:end].replace(b"element vertex 4\n", b"element vertex 4000000000\n") + good[end:]
    s = Sample("ply", good, other=_safetensors({"means": g.means}), marker=Path(), wrong_shapes=buf.getvalue(), huge=huge)
    return s, "avatar.ply", load_ply, (PlyFormatError,)


SINGLE = {
    "head (FLAME .pkl)": lambda d: _flame(d, ".pkl"),
    "head (FLAME .npz)": lambda d: _flame(d, ".npz"),
    "head (FLAME landmark .npy)": _flame_landmarks,
    "head asset (--head .npz)": _head_asset,
    "model checkpoint": _model_checkpoint,
    "avatar.safetensors": _avatar_file,
    "resume state.pt": lambda d: _resume(d, "state.pt"),
    "resume model.safetensors": lambda d: _resume(d, "model.safetensors"),
    "LoRA (SoulSplats .pt)": _lora,
    "PLY": _ply,
}
"""entry point -> build(dir) -> (sample, file name in dir, load(path), the refusal's exception types)."""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cache: dict[str, tuple] = {}

    def get(entry: str):
        if entry not in cache:
            d = tmp_path_factory.mktemp("single")
            cache[entry] = (d, *SINGLE[entry](d))
        return cache[entry]

    return get


@pytest.mark.parametrize("entry, kind", [(e, k) for e in SINGLE for k in _pairs(e)])
def test_single_file_loads_or_is_refused_by_name(tmp_path, marker, built, entry, kind):
    import dataclasses

    base, sample, name, load, errors = built(entry)
    assert all(applies(k, sample) for k in EXPECT[entry] if k != "good")
    d = shutil.copytree(base, tmp_path / "d")
    if kind == "good":
        (d / name).write_bytes(sample.good)
    else:
        write(kind, dataclasses.replace(sample, marker=marker), d / name)
    _refusal_or_load(load, d / name, EXPECT[entry][kind], errors)


@pytest.mark.parametrize("kind", _pairs("weights registry"))
def test_weights_registry_refuses_any_file_but_the_pinned_one(tmp_path, marker, monkeypatch, kind):
    """Every registry file is checked against its sha256 before its loader opens it; the pickle loader refuses
    code even behind a changed pin."""
    from fairsplat.weights import store
    from fairsplat.weights.errors import WeightsCorrupt, WeightsMissing
    from fairsplat.weights.loaders import load_lpips_ckpt
    from fairsplat.weights.registry import WEIGHTS

    params = {"VGG16_0": {"Conv_0": {"kernel": np.zeros((3, 3, 3, 4), np.float32)}}}
    import pickle

    s = Sample("weights", pickle.dumps(params), other=_safetensors({"k": torch.zeros(2)}), marker=marker)
    monkeypatch.setenv(store.ENV_DIR, str(tmp_path / "weights"))
    for name in WEIGHTS:
        path = write(kind, s, store.local_path(name))
        _refusal_or_load(lambda p, n=name: store.load(n), path, EXPECT["weights registry"][kind], (WeightsMissing,))
        assert store.state(name) == "corrupt"
    lpips = _write(tmp_path / "lpips.ckpt", KINDS[kind](s))
    with pytest.raises(WeightsCorrupt, match=re.escape(str(lpips))) as err:  # behind the pin, the loader refuses too
        load_lpips_ckpt(lpips)
    assert kind != "code_pickle" or "refuses to load global posix.system" in str(err.value)
    assert load_lpips_ckpt(_write(tmp_path / "ok.ckpt", s.good))  # the stand-in itself is readable


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---- the README table ---------------------------------------------------------------------------------------------
README_START, README_END = "<!-- bad-inputs table: start -->", "<!-- bad-inputs table: end -->"


def _matrix(entries: list[str]) -> list[str]:
    kinds = [k for k in ["good", *KINDS] if any(k in EXPECT[e] for e in entries)]
    cell = lambda e, k: "-" if k not in EXPECT[e] else "ok" if EXPECT[e][k] is None else f"`{EXPECT[e][k]}`"  # noqa: E731
    return [f"| kind | {' | '.join(entries)} |", "|---" * (len(entries) + 1) + "|",
            *(f"| {k} | {' | '.join(cell(e, k) for e in entries)} |" for k in kinds)]  # fmt: skip


def sweep_table() -> str:
    """Markdown: kinds x entry points, the outcome each test asserts (ok = accepted; - = does not apply)."""
    files = [e for e in EXPECT if e not in BATCH | CLI]
    return "\n".join([*_matrix([e for e in EXPECT if e in BATCH | CLI]), "", *_matrix(files)])


def test_readme_table_is_generated_from_these_expectations():
    text = (ROOT / "README.md").read_text()
    assert README_START in text and README_END in text, "README.md lacks the bad-inputs table markers"
    body = text.split(README_START, 1)[1].split(README_END, 1)[0].strip()
    assert body == sweep_table(), "README table is stale: run `python tests/test_bad_inputs.py` and paste its output"


if __name__ == "__main__":
    print(sweep_table())
