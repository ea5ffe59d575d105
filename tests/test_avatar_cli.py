"""``fairsplat avatar`` end to end: a SynthHeads render and a real photo -> avatar files (issue 11)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fairsplat.avatar.avatar import Avatar
from fairsplat.cli import app
from fairsplat.head.model import HeadModel

pytestmark = pytest.mark.usefixtures("one_thread")
FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces_open"
EXPECTED = {"avatar.json", "avatar.safetensors", "avatar.ply", "turntable.png", "expressions.png", "turntable.mp4"}


def _run(tiny_pipeline, photo: Path, out: Path):
    head = tiny_pipeline.repo / "assets" / "head" / "head.npz"
    args = ["avatar", str(photo), "--out", str(out), "--model", str(tiny_pipeline.out("train_ff")), "--head", str(head)]
    return CliRunner().invoke(app, args), head


def _check_avatar(out: Path, head_path: Path) -> None:
    assert EXPECTED <= {p.name for p in out.iterdir()}
    av = Avatar.load(out, HeadModel.load(head_path))
    assert av.offsets.shape[0] == av.opacities.shape[0] > 0
    assert all(np.isfinite(t.detach().numpy()).all() for t in av.tensors().values())
    assert (out / "avatar.ply").read_bytes().startswith(b"ply\n")


@pytest.fixture(scope="module")
def synth_render(tmp_path_factory, tiny_pipeline) -> Path:
    """One frontal 192 px SynthHeads render of the tiny pipeline's head (its own renders are 96 px)."""
    from fairsplat.config import parse_section
    from fairsplat.sections.synth import SynthParams
    from fairsplat.synth.dataset import build

    root = tmp_path_factory.mktemp("synth192")
    head = HeadModel.load(tiny_pipeline.repo / "assets" / "head" / "head.npz")
    raw = {"identities": 6, "frames": 1, "views": [[0, 0]], "size": 192, "train-frac": 0.5, "val-frac": 0.0, "workers": 1}
    manifest, _, _ = build(head, parse_section("synth", raw, SynthParams).synth_config(), root)
    return root / manifest.column("rgb_path").to_pylist()[0]


def test_avatar_from_a_synthheads_render(tiny_pipeline, synth_render, tmp_path):
    result, head = _run(tiny_pipeline, synth_render, tmp_path / "av")
    assert result.exit_code == 0, result.output + repr(result.exception)
    _check_avatar(tmp_path / "av", head)


@pytest.mark.skipif(not (FACES / "labels.csv").exists(), reason=f"{FACES} absent (shared test data not checked out)")
def test_avatar_from_a_real_photo(tiny_pipeline, tmp_path):
    photo = FACES / "images" / "36_0_0_20170104172716658.jpg.chip.jpg"
    result, head = _run(tiny_pipeline, photo, tmp_path / "av")
    assert result.exit_code == 0, result.output + repr(result.exception)
    _check_avatar(tmp_path / "av", head)


def test_a_photo_without_a_face_is_refused_by_name(tiny_pipeline, tmp_path):
    blank = tmp_path / "blank.png"
    from fairsplat.io.images import save_png

    save_png(blank, np.full((128, 128, 3), 128, np.uint8))
    result, _ = _run(tiny_pipeline, blank, tmp_path / "av")
    assert result.exit_code == 2 and "blank.png" in result.output
    assert not (tmp_path / "av").exists()
