"""End to end: the real ``dvc.yaml`` on micro params, in a throwaway DVC repo.

Why a copy and real DVC rather than calling the stages in turn: what users
run is ``dvc repro``, so this checks the wiring too (every cmd, dep, out,
metric and plot path in dvc.yaml, params sections read by the stages, the
order of stages) and that a second ``dvc repro`` is a no-op. The micro params
only shrink sizes; every stage runs its real code on the embedded default.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fairsplat.labels import FITZPATRICK

ROOT = Path(__file__).resolve().parents[1]

# Per-section overrides of params.yaml: the smallest sizes at which every stage
# still has something of every skin type to work on.
MICRO: dict[str, dict] = {
    "head": {"preview-size": 64, "uv-resolution": 32},
    "synth": {"identities": 12, "frames": 2, "views": [[0, 0], [30, 0]], "size": 96, "uv-resolution": 64},
    "curate": {"size": 64, "per-type": 4, "min-face": 16.0, "min-skin-pixels": 40, "samples-per-type": 2, "workers": 1},
    "train_parser": {"size": 64, "epochs": 1, "batch-size": 4, "eval-every": 1},
    "degrade": {"k": 1, "workers": 1},
    "track": {"iters": 3, "batch-size": 8, "plot-samples": 2},
}

# Stages whose inputs carry a known skin type, so their metrics must break down by it.
PER_TYPE = ("synth", "curate", "train_parser", "degrade", "track")


def _micro_params() -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, over in MICRO.items():
        assert section in params, f"MICRO names unknown section {section}"
        unknown = set(over) - set(params[section])
        assert not unknown, f"MICRO {section}: keys not in params.yaml: {unknown}"
        params[section].update(over)
    return params


def _dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("DVC_NO_ANALYTICS", None)
    env["DVC_NO_ANALYTICS"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=1200
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("pipeline")
    for name in ("stages", "fairsplat"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", repo / "dvc.yaml")
    (repo / "params.yaml").write_text(yaml.safe_dump(_micro_params(), sort_keys=False))
    init = _dvc(repo, "init", "--no-scm", "-q")
    assert init.returncode == 0, init.stderr
    run = _dvc(repo, "repro")
    assert run.returncode == 0, f"dvc repro failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    return repo


@pytest.mark.slow
def test_every_stage_ran_and_wrote_metrics(repo):
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    for name in stages:
        path = repo / "metrics" / f"{name}.json"
        assert path.is_file(), f"stage {name} wrote no metrics/{name}.json"
        metrics = json.loads(path.read_text())
        assert metrics, f"metrics/{name}.json is empty"
        if name in PER_TYPE:
            assert set(metrics.get("per_fitzpatrick", {})) == set(FITZPATRICK), f"{name}: per_fitzpatrick keys"
    assert (repo / "dvc.lock").is_file()


@pytest.mark.slow
def test_accounting_holds_through_the_pipeline(repo):
    curate = json.loads((repo / "metrics" / "curate.json").read_text())
    assert curate["accepted"] + curate["rejected"] == curate["total"]
    assert curate["total"] == json.loads((repo / "metrics" / "synth.json").read_text())["images"]
    parser = json.loads((repo / "metrics" / "train_parser.json").read_text())
    assert parser["heldout_images"] > 0 and parser["miou"] is not None, "micro run has no held-out identity"


@pytest.mark.slow
def test_second_repro_is_a_no_op(repo):
    run = _dvc(repo, "repro")
    assert run.returncode == 0, run.stderr
    assert "Running stage" not in run.stdout, run.stdout
    status = _dvc(repo, "status", "--json")
    assert json.loads(status.stdout or "{}") == {}, status.stdout
