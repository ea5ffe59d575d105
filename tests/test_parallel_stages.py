"""parse, track and evaluate on fairsplat/parallel: a local pool and a loopback Dask cluster give the in-process bytes.

tests/test_parallel.py does the same for synth, curate and degrade. Here:
``parse`` on a fake curated set (fairsplat/testing/fakes.py) with a tiny random
smp parser, one shard per batch of two crops; every engine runs two worker
processes of one torch thread each (the in-process reference runs on one
thread too: the ``one_thread`` fixture), and the masks, rows and rejects must
be equal byte for byte. ``track``: eight stills of a toy head, two a batch,
every fitted array compared byte for byte. ``evaluate``: the ``ff`` variant
on the tiny pipeline, in-process against a loopback cluster. In each, a shard
that fails on every attempt becomes the stage's rejects (evaluate: an absent
variant) with its error, and accepted + rejected = total.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from fairsplat.parallel import ENGINES, WorkersConfig
from fairsplat.parallel.engines import close_clients

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", autouse=True)
def _close_clusters():
    yield
    close_clients()


def _tree(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def parse_inputs(tmp_path_factory):
    from fairsplat.models.parser import Parser, ParserConfig, save_parser
    from fairsplat.parse.backends import BACKENDS, Options
    from fairsplat.testing.fakes import fake_curated

    root = tmp_path_factory.mktemp("parse_in")
    fake_curated(root / "curated", per_type=1, frames=1, size=64)
    cfg = ParserConfig(encoder="resnet18", size=64, decoder_channels=(32, 16, 16, 8, 8))
    torch.manual_seed(0)
    save_parser(root / "parser", Parser(cfg).eval(), cfg)
    return root / "curated", BACKENDS["trained"](Options(model_dir=root / "parser", batch_size=2))


def _parse(curated: Path, backend, out: Path, workers: int, engine: WorkersConfig | None):
    from fairsplat.parse.data import read_items
    from fairsplat.parse.run import parse_all

    items = read_items(curated)
    rows, rejects, metrics = parse_all(items, backend, out, curated, 0.0, 2, False, workers, engine)
    assert len(rows) + len(rejects) == len(items) == metrics["total"]
    return rows, rejects, _tree(out)


@pytest.fixture(scope="module")
def parse_reference(parse_inputs, tmp_path_factory):
    curated, backend = parse_inputs
    rows, rejects, tree = _parse(curated, backend, tmp_path_factory.mktemp("parse_ref"), 1, None)
    assert len(rows) >= 4 and len(tree) == len(rows), "the reference parsed almost nothing"
    return rows, rejects, tree


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_parse_is_byte_identical_on_every_engine(engine, parse_inputs, parse_reference, tmp_path):
    curated, backend = parse_inputs
    got = _parse(curated, backend, tmp_path / "out", 2, WorkersConfig(engine=engine))  # retries: a loaded CI may lose a worker
    assert got == parse_reference, f"parse on {engine} differs from the in-process run"


def test_a_parse_shard_that_always_fails_becomes_rejects_with_its_error(parse_inputs, tmp_path):
    """A directory where the second crop's mask goes: its shard (the first two crops) raises on every attempt,
    after it wrote the first crop's mask."""
    from fairsplat.parse.data import read_items

    curated, backend = parse_inputs
    items = read_items(curated)
    out = tmp_path / "out"
    (out / "masks" / f"{items[1].stem}.png").mkdir(parents=True)
    rows, rejects, _ = _parse(curated, backend, out, 2, WorkersConfig(engine="local", retries=1))
    bad = {it.image_id for it in items[:2]}
    assert {r["image_id"] for r in rejects} == bad and {r["image_id"] for r in rows}.isdisjoint(bad)
    assert all(r["reason"] == "error" and "IsADirectoryError" in r["detail"] and "after 2 attempts" in r["detail"]
               for r in rejects)  # fmt: skip
    assert not (out / "masks" / f"{items[0].stem}.png").exists(), "a failed shard's masks are removed"


# --- track ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def track_fitter():
    from fairsplat.config import parse_section
    from fairsplat.sections.track import TrackParams
    from fairsplat.testing.toy_head import make_toy_head
    from fairsplat.track.fit import Fitter
    from fairsplat.track.landmarks import LandmarkFlame
    from fairsplat.track.run import fit_config

    model = LandmarkFlame(make_toy_head(n_shape=12, n_expr=8))
    return Fitter(model, fit_config(parse_section("track", {"contour": "off"}, TrackParams)))


def _track(fitter, workers: int, engine: WorkersConfig | None):
    """Eight stills of eight subjects, two a batch: four shards. -> (items, every per-row array as bytes)."""
    from fairsplat.testing.track_problems import problem_items, random_problem
    from fairsplat.track.run import run_fit

    items = problem_items(random_problem(fitter.model, 8, seed=1))
    run = run_fit(items, fitter, True, 2, workers, engine)
    names = ("fitted", "interpolated", "shape", "expr", "pose", "transl", "landmarks2d", "data_loss")
    return items, {n: getattr(run, n).tobytes() for n in names}, run


@pytest.fixture(scope="module")
def track_reference(track_fitter):
    _, arrays, run = _track(track_fitter, 1, None)
    assert run.fitted.all() and np.isfinite(run.shape).all()
    return arrays


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_track_fits_are_byte_identical_on_every_engine(engine, track_fitter, track_reference):
    _, got, _ = _track(track_fitter, 2, WorkersConfig(engine=engine))
    assert got == track_reference, f"track on {engine} differs from the in-process run"


def test_a_track_batch_that_always_fails_is_rejected_with_its_error(track_fitter, monkeypatch):
    """In-process (one worker), so the patched shard function is the one that runs."""
    import fairsplat.track.run as run_mod
    from fairsplat.track.tables import reject_rows

    real = run_mod._fit_shard

    def broken(b):
        if 0 in b["rows"]:
            raise RuntimeError("batch 0 broke")
        return real(b)

    monkeypatch.setattr(run_mod, "_fit_shard", broken)
    items, _, run = _track(track_fitter, 1, WorkersConfig(engine="local", retries=1))
    rejects = reject_rows(items, run)
    assert [r["image_id"] for r in rejects] == items.ids[:2] and run.fitted[2:].all()
    assert all(r["reason"] == "error: RuntimeError: batch 0 broke (after 2 attempts)" for r in rejects)
    assert np.isnan(run.shape[:2]).all() and int(run.fitted.sum()) + len(rejects) == len(items)


# --- evaluate ---------------------------------------------------------------------------------------------


def _evaluate(repo: Path, workers: int, engine: WorkersConfig | None) -> tuple:
    """run_evaluate on the tiny pipeline, the ff variant only (its job and the drivers' job: two shards)."""
    from fairsplat.evaluate.config import EvalConfig, Inputs
    from fairsplat.evaluate.run import run_evaluate

    inputs = Inputs(repo / "assets/head/head.npz", repo / "data/curated", repo / "data/tracks", repo / "models/ff",
                    repo / "models/lora", repo / "data/refined", repo / "models/enhancer")  # fmt: skip
    cfg = EvalConfig(variants=("ff",), cross_frames=1, lpips_vgg_targets=0, workers=workers, threads=1, n_boot=0)
    return run_evaluate(cfg, inputs, engine)


def _comparable(res) -> bytes:
    """Everything run_evaluate returns but the wall times, as bytes (numpy arrays pickle by value)."""
    import pickle

    info = {k: v for k, v in res.info.items() if k not in ("seconds", "seconds_per_job")}
    return pickle.dumps((res.rows, res.variants, res.unscored, res.present, res.reasons, res.grids, res.viewer, info))


def test_evaluate_on_a_dask_cluster_equals_the_in_process_run(tiny_pipeline):
    tiny_pipeline.require("train_ff")
    want = _evaluate(tiny_pipeline.repo, 1, None)
    assert "ff" in want.present and want.rows, "the reference scored nothing"
    got = _evaluate(tiny_pipeline.repo, 2, WorkersConfig(engine="dask"))
    assert _comparable(got) == _comparable(want)


def test_a_variant_whose_job_always_fails_is_absent_with_its_error(tiny_pipeline, monkeypatch):
    """In-process (one worker), so the patched function is the one that runs."""
    import fairsplat.evaluate.run as run

    def broken(job, *a, **k):
        raise RuntimeError(f"{job.kind} broke")

    monkeypatch.setattr(run, "variant", broken)
    res = _evaluate(tiny_pipeline.repo, 1, WorkersConfig(engine="local", retries=1))
    assert res.present == [] and res.rows == []
    assert res.reasons["ff"] == "absent: its job failed: RuntimeError: ff broke (after 2 attempts)"
    assert [v["present"] for v in res.variants] == [False, False]  # ff and ff+enhancer, both recorded
