"""End to end: the real ``dvc.yaml`` on micro params, in a throwaway DVC repo.

Why a copy and real DVC rather than calling the stages in turn: what users
run is ``dvc repro``, so this checks the wiring too (every cmd, dep, out,
metric and plot path in dvc.yaml, params sections read by the stages, the
order of stages), that a second ``dvc repro`` is a no-op, and that a second
clean run of the learning half gives the same outputs. The micro params
only shrink sizes; every stage runs its real code on the embedded default.

The run itself is the session fixture ``tiny_pipeline`` (tests/conftest.py,
fairsplat/testing/pipeline.py), built once and shared with the stage tests.
"""

from __future__ import annotations

import json

import pytest
import yaml

from fairsplat.labels import FITZPATRICK
from fairsplat.testing.faults import compare, scratch, stage_outputs, temporaries
from fairsplat.testing.pipeline import MICRO, ROOT, dvc, micro_params

# Stages whose inputs carry a known skin type, so their metrics must break down by it.
PER_TYPE = ("synth", "curate", "train_parser", "degrade", "track")


@pytest.mark.slow
def test_every_stage_ran_and_wrote_metrics(tiny_pipeline):
    repo = tiny_pipeline.repo
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert list(tiny_pipeline.stages) == list(stages), "the tiny pipeline is not the checkout's dvc.yaml"
    assert not tiny_pipeline.log and tiny_pipeline.ran == tuple(stages), tiny_pipeline.log
    for name in stages:
        path = repo / "metrics" / f"{name}.json"
        assert path.is_file(), f"stage {name} wrote no metrics/{name}.json"
        metrics = json.loads(path.read_text())
        assert metrics, f"metrics/{name}.json is empty"
        if name in PER_TYPE:
            assert set(metrics.get("per_fitzpatrick", {})) == set(FITZPATRICK), f"{name}: per_fitzpatrick keys"
        for out in tiny_pipeline.stages[name].outs:
            assert out.exists() and (out.is_file() or any(out.iterdir())), f"stage {name}: {out} missing or empty"
    assert set(yaml.safe_load((repo / "dvc.lock").read_text())["stages"]) == set(stages)


@pytest.mark.slow
def test_accounting_holds_through_the_pipeline(tiny_pipeline):
    repo = tiny_pipeline.repo
    curate = json.loads((repo / "metrics" / "curate.json").read_text())
    assert curate["accepted"] + curate["rejected"] == curate["total"]
    assert curate["total"] == json.loads((repo / "metrics" / "synth.json").read_text())["images"]
    parser = json.loads((repo / "metrics" / "train_parser.json").read_text())
    assert parser["heldout_images"] > 0 and parser["miou"] is not None, "micro run has no held-out identity"


@pytest.mark.slow
def test_second_repro_is_a_no_op(tiny_pipeline):
    """Also catches a test that wrote into the shared outputs (before this one ran) instead of a copy."""
    run = dvc(tiny_pipeline.repo, "repro")
    assert run.returncode == 0, run.stderr
    assert "Running stage" not in run.stdout, run.stdout
    status = dvc(tiny_pipeline.repo, "status", "--json")
    assert json.loads(status.stdout or "{}") == {}, status.stdout


LEARNING = ("train_ff", "refine", "lora", "evaluate", "train_enhancer", "enhance")
"""The learning half: stages whose outputs come from training or from trained models. The data half's stages have
their own determinism tests (synth, curate, degrade, track: byte-identical outputs of two runs)."""


@pytest.mark.slow
def test_a_second_clean_run_of_the_learning_half_gives_the_same_outputs(tiny_pipeline, tmp_path):
    """Every output of a forced second run, on the same inputs, equals the first: byte for byte, or by value
    where only the fields that time the run differ (``faults.VOLATILE``: seconds, fps, ms); weights and scores
    exactly (CPU, one thread: no tolerance needed). Stage by stage on equal inputs, so the whole pipeline repeats."""
    for stage in LEARNING:
        tiny_pipeline.require(stage)
    repo = scratch(tiny_pipeline.repo, tmp_path / "repo")
    run = dvc(repo, "repro", "--force", "--single-item", *LEARNING)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert all(f"Running stage '{s}'" in run.stdout for s in LEARNING), run.stdout[-3000:]
    for stage in LEARNING:
        for out in stage_outputs(tiny_pipeline.repo, stage):
            diffs, _ = compare(tiny_pipeline.repo / out, repo / out, None)
            assert not diffs, f"{stage}: {out}: {diffs[:5]}"
    assert temporaries(repo) == []


def test_micro_params_name_only_what_params_yaml_has():
    """Fast, before any pipeline: a renamed params.yaml key must not leave MICRO silently ignored."""
    params = micro_params()
    for section, over in MICRO.items():
        assert {k: params[section][k] for k in over} == over
    with pytest.raises(KeyError, match="synth.*'size-px'"):
        micro_params(micro={"synth": {"size-px": 8}})
    with pytest.raises(KeyError, match="no_such_stage"):
        micro_params(micro={"no_such_stage": {}})
