"""Smoke tests of stages ``train_parser`` and ``parse`` on tiny params, and their params validation.

The stages run through their Typer apps (CliRunner) into tmp_path, on a copy of
the tiny pipeline's curate output (``tiny_pipeline``, tests/conftest.py) to which
two bad inputs are added (``fairsplat.testing.fakes.add_bad_inputs``): a crop with
no label map and a crop whose label map has the wrong size.
"""

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from fairsplat.config import ParamsError, parse_section
from fairsplat.sections.registry import load_section
from fairsplat.testing.fakes import add_bad_inputs
from fairsplat.testing.pipeline import subprocess_env
from fairsplat.sections.degrade import DegradeSection
from fairsplat.sections.parse import ParseParams
from fairsplat.sections.train_parser import TrainParserParams
from fairsplat.train.accel import fresh_state

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "train_parser": {"size": 64, "epochs": 2, "batch-size": 8, "decoder-channels": [32, 16, 16, 8, 8],
                     "threads": 1, "eval-every": 1},
    "parse": {"backend": "trained", "min-foreground": 0.0},
}  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def accelerate_state():
    """accelerate keeps process-wide state; each test starts and ends without it."""
    with fresh_state():
        yield


def first_crop_per_subject(curated: Path) -> None:
    """Cut a curate manifest to each subject's first crop: 12 on the tiny pipeline, a training and a
    held-out subject per type (training, and above all the two-process launch, cost per crop)."""
    table = pq.read_table(curated / "manifest.parquet")
    subjects = table.column("subject_id").to_pylist()
    keep = [s not in subjects[:i] for i, s in enumerate(subjects)]
    pq.write_table(table.filter(pa.array(keep)), curated / "manifest.parquet")


@pytest.fixture(scope="module")
def work(tiny_pipeline, tmp_path_factory):
    root = tmp_path_factory.mktemp("stages")
    tiny_pipeline.copy("curate", root / "curated")
    first_crop_per_subject(root / "curated")
    add_bad_inputs(root / "curated")
    return root


def split_counts(curated: Path) -> dict[str, int]:
    """Crops per split in curate's manifest, the two bad inputs (split ``test``) left out."""
    rows = [r for r in pq.read_table(curated / "manifest.parquet").to_pylist() if r["image_id"] not in ("nomask", "small")]
    return {k: sum(r["split"] == k for r in rows) for k in ("train", "val", "test")}


def _params(root: Path, **override) -> Path:
    p = {k: dict(v) for k, v in TINY.items()}
    for sec, kv in override.items():
        p.setdefault(sec, {}).update(kv)
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


def _run(module: str, root: Path, *args: str):
    import importlib

    app = importlib.import_module(f"stages.{module}").app
    res = CliRunner().invoke(app, [*args, "--params", str(root / "params.yaml"), "--metrics-dir",
                                   str(root / "metrics"), "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, (res.output, res.exception)
    return json.loads((root / "metrics" / f"{module}.json").read_text())


def test_train_parser_then_parse(work):
    _params(work)
    m = _run("train_parser", work, "--curated", str(work / "curated"), "--out", str(work / "parser"),
             "--plots", str(work / "plots_tp"))  # fmt: skip
    assert (work / "parser" / "model.safetensors").exists() and (work / "parser" / "config.json").exists()
    n = split_counts(work / "curated")
    assert min(n.values()) > 0, n
    assert m["train_images"] == n["train"] and m["heldout_images"] == n["val"] + n["test"]  # nor the wrong-size crop
    assert 0 <= m["miou"] <= 1 and not any(k.endswith("_floor") or k.startswith("meets_") for k in m)  # params stay out
    assert set(m["per_fitzpatrick"]) <= {"I", "II", "III", "IV", "V", "VI"} and m["per_class_iou"]
    assert list((work / "plots_tp").rglob("*.tsv")), "dvclive wrote no training curves"
    cfg = json.loads((work / "parser" / "config.json").read_text())
    assert cfg["training"]["status"] == "trained" and cfg["size"] == 64
    assert "train_seconds" not in cfg["training"] and m["train_seconds"] >= 0  # wall time: metrics only

    m = _run("parse", work, "--curated", str(work / "curated"), "--model", str(work / "parser"),
             "--out", str(work / "parsed_net"), "--plots", str(work / "plots_p"))  # fmt: skip
    total = sum(n.values()) + 2
    assert m["total"] == total and m["accepted"] + m["rejected"] == m["total"]
    assert m["accepted"] == total  # a network labels every readable crop (min-foreground 0 here)
    assert m["scored_images"] == total - 2 and m["miou_vs_labels"] is not None
    assert set(m["miou_vs_labels_by_split"]) == {"train", "val", "test"}
    assert (work / "plots_p" / "masks.png").exists()


def test_parse_ground_truth_rejects_bad_inputs_with_reasons(work):
    _params(work, parse={"backend": "ground_truth"})
    out = work / "parsed_gt"
    m = _run("parse", work, "--curated", str(work / "curated"), "--out", str(out), "--plots", str(work / "plots_gt"))
    good = sum(split_counts(work / "curated").values())
    assert m["total"] == good + 2 and m["accepted"] == good and m["rejected"] == 2
    assert m["rejected_by_reason"] == {"mask_size_mismatch": 1, "no_mask": 1}
    rej = {r["image_id"]: r["reason"] for r in pq.read_table(out / "rejects.parquet").to_pylist()}
    assert rej == {"nomask": "no_mask", "small": "mask_size_mismatch"}
    man = pq.read_table(out / "manifest.parquet").to_pylist()
    assert len(man) == good and all((out / r["mask_path"]).exists() for r in man)
    a = np.asarray(Image.open(out / man[0]["mask_path"]))
    b = np.asarray(Image.open(work / "curated" / "labels" / Path(man[0]["mask_path"]).name))
    np.testing.assert_array_equal(a, b)


def test_train_parser_without_labels_writes_null_metrics(tiny_pipeline, tmp_path):
    tiny_pipeline.copy("curate", tmp_path / "curated")
    t = pq.read_table(tmp_path / "curated" / "manifest.parquet").to_pylist()
    pq.write_table(pa.Table.from_pylist([{**r, "mask_path": None} for r in t]), tmp_path / "curated" / "manifest.parquet")
    _params(tmp_path)
    m = _run("train_parser", tmp_path, "--curated", str(tmp_path / "curated"), "--out", str(tmp_path / "p"),
             "--plots", str(tmp_path / "pl"))  # fmt: skip
    assert m["miou"] is None and m["status"] == "no_labelled_data"
    from fairsplat.models.parser import load_parser

    with pytest.raises(FileNotFoundError, match="no_labelled_data"):
        load_parser(tmp_path / "p")


def test_train_parser_fp16_without_cuda_fails_before_work(work):
    """fp16 passes the static check (device auto) but this machine has no CUDA: refused, naming the key."""
    if torch.cuda.is_available():
        pytest.skip("CUDA present: fp16 is allowed here")
    _params(work, train_parser={"mixed-precision": "fp16"})
    from stages.train_parser import app

    res = CliRunner().invoke(app, ["--curated", str(work / "curated"), "--out", str(work / "fp16"), "--plots",
                                   str(work / "fp16_plots"), "--params", str(work / "params.yaml"),
                                   "--metrics-dir", str(work / "fp16_metrics"), "--no-progress"])  # fmt: skip
    assert isinstance(res.exception, ParamsError), res.output
    assert "train_parser.mixed-precision" in str(res.exception) and "CUDA" in str(res.exception)
    assert not (work / "fp16").exists() and not (work / "fp16_metrics").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_train_parser_under_accelerate_launch_two_processes(work, tiny_pipeline):
    """Two CPU processes (DDP over gloo): one set of outputs, and the gathered held-out score is exactly
    the single-process score of the checkpoint written (each process scored half the crops)."""
    from fairsplat.models.parser import load_parser
    from fairsplat.parse.data import read_items
    from fairsplat.parse.train import TrainConfig, evaluate, split_items

    root = work / "ddp"
    root.mkdir()
    _params(root, train_parser={"grad-accum": 2})
    # subprocess_env: the tiny pipeline's bytecode cache (three processes importing torch, smp and accelerate)
    env = {**subprocess_env(tiny_pipeline.repo), "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", "stages.train_parser",
           "--curated", str(work / "curated"), "--out", str(root / "parser"), "--plots", str(root / "plots"),
           "--params", str(root / "params.yaml"), "--metrics-dir", str(root / "metrics"), "--no-progress"]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("train_parser: held-out mIoU") == 1, res.stdout  # only the main process reports
    m = json.loads((root / "metrics" / "train_parser.json").read_text())
    assert m["num_processes"] == 2 and m["grad_accum"] == 2 and m["effective_batch"] == 8 * 2 * 2
    _, held = split_items(read_items(work / "curated"), TrainConfig())
    single = evaluate(load_parser(root / "parser"), held, 16)
    n = split_counts(work / "curated")
    assert m["heldout_images"] == single["images"] == n["val"] + n["test"]
    for k in ("miou", "miou_gap", "pixel_accuracy", "per_class_iou", "per_fitzpatrick"):
        assert m[k] == single[k], k
    assert sorted(p.name for p in (root / "parser").iterdir()) == ["config.json", "model.safetensors"]


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_train_parser_mixed_precision_on_cuda(work, precision):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    root = work / f"cuda_{precision}"
    root.mkdir()
    _params(root, train_parser={"mixed-precision": precision, "epochs": 8, "batch-size": 4})
    m = _run("train_parser", root, "--curated", str(work / "curated"), "--out", str(root / "parser"),
             "--plots", str(root / "plots"))  # fmt: skip
    assert m["device"].startswith("cuda") and m["mixed_precision"] == precision
    assert np.isfinite(m["final_loss"]) and m["final_loss"] < m["first_epoch_loss"], m


# --- params -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["train_parser", "parse", "degrade"])
def test_repo_params_sections_validate(name):
    load_section(name, REPO / "params.yaml")


@pytest.mark.parametrize(
    "name,model,raw,needle",
    [
        ("train_parser", TrainParserParams, {"arch": "Unett"}, "train_parser.arch"),
        ("train_parser", TrainParserParams, {"epochs": 0}, "train_parser.epochs"),
        ("train_parser", TrainParserParams, {"decoder-channels": [8, 8]}, "decoder-channels"),
        ("train_parser", TrainParserParams, {"eval-splits": ["train"]}, "eval-splits"),
        ("train_parser", TrainParserParams, {"lrr": 0.1}, "train_parser.lrr"),
        ("train_parser", TrainParserParams, {"mixed-precision": "fp32"}, "train_parser.mixed-precision"),
        ("train_parser", TrainParserParams, {"device": "cpu", "mixed-precision": "fp16"}, "train_parser.mixed-precision"),
        ("train_parser", TrainParserParams, {"grad-accum": 0}, "train_parser.grad-accum"),
        ("train_parser", TrainParserParams, {"device": "cuda:1"}, "train_parser.device"),
        ("parse", ParseParams, {"backend": "dlib"}, "parse.backend"),
        ("parse", ParseParams, {"backend": "segformer"}, "segformer-path"),
        ("degrade", DegradeSection, {"k": 0}, "degrade.k"),
        ("degrade", DegradeSection, {"strengths": {"mouth": 1.5}}, "degrade.strengths.mouth"),
        ("degrade", DegradeSection, {"mask": {"blobs": [5, 2]}}, "mask: MaskParams.blobs"),
        ("degrade", DegradeSection, {"steps": {"region-blur": {"sigma": [2.0, 1.0]}}}, "steps.region-blur"),
        ("degrade", DegradeSection, {"steps": {"region-blur": {"sgima": [1.0, 2.0]}}}, "steps.region-blur.sgima"),
        ("degrade", DegradeSection, {"steps": {"blurr": {}}}, "steps.blurr: unknown"),
        ("degrade", DegradeSection, {"augmentations": {"noise-boost": {"prob": 2.0}}}, "augmentations.noise-boost"),
    ],
)
def test_bad_values_name_the_key(name, model, raw, needle):
    with pytest.raises(ParamsError, match=needle.replace(".", r"\.")):
        parse_section(name, raw, model)


@pytest.mark.parametrize("value,want", [("no", "no"), ("bf16", "bf16")])
def test_train_parser_overrides_through_dvc(tmp_path, value, want):
    """``dvc exp run -S`` writes ``no`` bare (YAML 1.1 false when read back); it must still mean "no"."""
    from dvc.utils.hydra import apply_overrides

    p = tmp_path / "params.yaml"
    p.write_text((REPO / "params.yaml").read_text())
    apply_overrides(str(p), [f"train_parser.mixed-precision={value}", "train_parser.grad-accum=4"])
    s = load_section("train_parser", p)
    assert s.mixed_precision == want and s.grad_accum == 4
    assert s.train_config().accel.mixed_precision == want and s.train_config().accel.grad_accum == 4


def test_degrade_section_builds_the_pipeline_params():
    s = parse_section("degrade", {"strengths": {"mouth": 0.95}, "steps": {"region-blur": {"prob": 0.5}},
                                  "augmentations": {"noise-boost": {"sigma": [4.0, 6.0]}}}, DegradeSection)  # fmt: skip
    p = s.pipeline_params()
    assert p.strengths.mouth == 0.95 and p.strengths.skin == 0.4
    assert p.steps["region_blur"].prob == 0.5 and p.steps["region_blur"].sigma == (0.8, 2.5)
    assert p.augmentations["noise_boost"].sigma == (4.0, 6.0) and p.augmentations["noise_boost"].prob == 0.15
