"""fairsplat/parallel: every engine gives the in-process run's bytes, survives a SIGKILLed worker, rejects a broken shard.

Each engine of the registry runs with two worker processes, one thread each;
``dask`` starts a ``LocalCluster`` on loopback inside the test (closed at the
end of the module). The real stages run at micro size: synth on the toy head
(the default procedural head, 6 images of 64 px), curate on its output, degrade on curate's crops, and
every output file is compared byte for byte with the in-process run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from fairsplat.parallel import ENGINE_NAMES, ENGINES, Plan, ShardsFailed, WorkersConfig, iter_values, map_shards, shards_of
from fairsplat.parallel.engines import close_clients
from fairsplat.testing import shards as toy

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", autouse=True)
def _close_clusters():
    yield
    close_clients()


@pytest.fixture
def test_dir(tmp_path):
    return tmp_path


def _cfg(engine: str, retries: int = 1) -> WorkersConfig:
    return WorkersConfig(engine=engine, retries=retries)


PLAN = Plan(workers=2, progress=False)
EXPECTED = [[(x, x * x, "tag") for x in s] for s in shards_of(list(range(8)), 2)]


def test_engine_registry_matches_the_names_params_accept():
    from fairsplat.sections.workers import WorkersParams

    assert tuple(ENGINES) == ENGINE_NAMES
    assert set(WorkersParams.model_fields["engine"].annotation.__args__) == set(ENGINE_NAMES)


@pytest.mark.parametrize("raw,needle", [({"engine": "ray"}, "workers.engine"), ({"retries": -1}, "workers.retries"),
                                        ({"address": "tcp://h:8786"}, "workers.address")])  # fmt: skip
def test_bad_workers_params_name_the_key(raw, needle):
    from fairsplat.config import ParamsError, parse_section
    from fairsplat.sections.workers import WorkersParams

    with pytest.raises(ParamsError, match=needle.replace(".", r"\.")):
        parse_section("workers", raw, WorkersParams)


@pytest.mark.parametrize("stage", ["synth", "curate", "degrade"])
def test_data_stages_read_the_workers_section_before_work(stage, tmp_path):
    import importlib

    import yaml
    from typer.testing import CliRunner

    from fairsplat.config import ParamsError

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"workers": {"engine": "ray"}}))
    app = importlib.import_module(f"stages.{stage}").app
    result = CliRunner().invoke(app, ["--out", str(tmp_path / "out"), "--plots", str(tmp_path / "plots"),
                                      "--params", str(tmp_path / "params.yaml"), "--metrics-dir", str(tmp_path / "m")])  # fmt: skip
    assert isinstance(result.exception, ParamsError) and "workers.engine" in str(result.exception), result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "m").exists()


def test_shards_are_consecutive_and_cover_the_input():
    assert shards_of(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(ValueError):
        shards_of([1], 0)


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_results_come_back_in_shard_order_after_init(engine, test_dir):
    out = map_shards(toy.square, shards_of(list(range(8)), 2), PLAN, _cfg(engine), init=toy.remember,
                     initargs=("tag", str(test_dir)), scratch_in=test_dir)  # fmt: skip
    assert [o.value for o in out] == EXPECTED and all(o.ok and o.attempts == 1 for o in out)
    assert not list(test_dir.glob(".shards.*")), "shard files are removed after the merge"


def _kill_when_started(scratch_in: Path, index: int, killed: list[int]) -> threading.Thread:
    """SIGKILL whichever worker process starts shard ``index`` (its pid is in the shard's start marker), once."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for marker in scratch_in.glob(f".shards.*/shard-{index:06d}.started"):
                try:
                    pid = int(marker.read_text())
                except (OSError, ValueError):  # being written
                    continue
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.01)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_a_worker_killed_mid_shard_is_retried_and_nothing_is_lost(engine, test_dir):
    killed: list[int] = []
    watcher = _kill_when_started(test_dir, 1, killed)  # shard 1 holds 3: toy.slow_on_three sleeps there
    out = map_shards(toy.slow_on_three, shards_of(list(range(8)), 2), PLAN, _cfg(engine), init=toy.remember,
                     initargs=("tag", str(test_dir)), scratch_in=test_dir)  # fmt: skip
    watcher.join(1)
    assert killed and killed[0] != os.getpid(), "the watcher killed a worker process"
    assert [o.value for o in out] == EXPECTED, [o.error for o in out]
    assert out[1].attempts == 2  # the killed attempt was charged, the second one succeeded


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_a_shard_that_always_raises_is_retried_then_reported(engine, test_dir):
    out = map_shards(toy.fail_on_five, shards_of(list(range(8)), 2), PLAN, _cfg(engine, retries=2), init=toy.remember,
                     initargs=("tag", str(test_dir)), scratch_in=test_dir)  # fmt: skip
    assert [o.ok for o in out] == [True, True, False, True]
    assert out[2].error == "ValueError: five is not allowed (after 3 attempts)" and out[2].value is None
    assert (test_dir / "attempts-5").read_text() == "xxx"  # 1 + retries, no more
    assert [o.value for i, o in enumerate(out) if i != 2] == [v for i, v in enumerate(EXPECTED) if i != 2]
    with pytest.raises(ShardsFailed, match="shard 2: ValueError: five"):
        list(iter_values(out))


# --- real stages at micro size ------------------------------------------------------------


def _tree(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()}


def _chain(root: Path, synth: Path, workers: int, cfg: WorkersConfig | None) -> dict[str, dict[str, str]]:
    """curate -> degrade into ``root`` (the same path in every run: manifests hold absolute source paths)."""
    from fairsplat.curate import curate
    from fairsplat.curate.config import CurateConfig
    from fairsplat.degrade.pipeline import DegradeParams
    from fairsplat.degrade.run import MANIFEST_SCHEMA, REJECTS_SCHEMA, Job, Settings, degrade_all
    from fairsplat.io.tables import read_table, write_table
    from fairsplat.sources.synth import iter_records

    shutil.rmtree(root, ignore_errors=True)
    cur, pairs = root / "curated", root / "pairs"
    ccfg = CurateConfig(size=64, per_type=None, workers=workers, shard_size=2, foreground="ellipse", min_skin_pixels=50)
    curate(list(iter_records(synth)), cur, ccfg, cfg)  # writes its manifest and rejects
    jobs = [Job(m["image_id"], m["split"], m["fitzpatrick"], cur / m["path"], cur / m["mask_path"] if m["mask_path"] else None)
            for m in read_table(cur / "manifest.parquet")]  # fmt: skip
    assert jobs, "curate kept no crop: the micro chain tests nothing downstream"
    rows, rejects, _ = degrade_all(jobs, Settings(DegradeParams(), 1, 1, pairs, 1), workers, False, cfg)
    write_table(rows, MANIFEST_SCHEMA, pairs / "manifest.parquet", drop=("subject_id",))
    write_table(rejects, REJECTS_SCHEMA, pairs / "rejects.parquet", drop=("subject_id",))
    return {name: _tree(d) for name, d in (("curate", cur), ("degrade", pairs))}


def _synth(out: Path, head, workers: int, cfg: WorkersConfig | None) -> dict[str, str]:
    from fairsplat.io.tables import write_table
    from fairsplat.synth.config import SynthConfig
    from fairsplat.synth.dataset import IDENTITIES_SCHEMA, build, manifest_schema

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    scfg = SynthConfig(identities=6, frames=1, views=((0.0, 0.0),), size=64, uv_resolution=32, workers=workers)
    manifest, identities, _ = build(head, scfg, out, cfg)
    write_table(manifest, manifest_schema(scfg), out / "manifest.parquet")
    write_table(identities, IDENTITIES_SCHEMA, out / "identities.parquet")
    return _tree(out)


@pytest.fixture(scope="module")
def in_process(procedural_head, tmp_path_factory):
    """The reference: every stage in this process, one worker (no pool, no cluster)."""
    base = tmp_path_factory.mktemp("chain")
    synth = _synth(base / "synth", procedural_head, 1, None)
    return base, {"synth": synth, **_chain(base / "run", base / "synth", 1, None)}


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_curate_and_degrade_are_byte_identical_on_every_engine(engine, in_process):
    base, want = in_process
    got = _chain(base / "run", base / "synth", 2, _cfg(engine))
    for stage in got:
        assert len(want[stage]) > 3, f"{stage} wrote almost nothing"
        assert got[stage] == want[stage], f"{stage} on {engine} differs from the in-process run"


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_synth_is_byte_identical_on_every_engine(engine, procedural_head, in_process, tmp_path):
    """Synth's own output dir holds no absolute path, so it can be written anywhere."""
    base, want = in_process
    assert _synth(tmp_path / "synth", procedural_head, 2, _cfg(engine)) == want["synth"]


def test_a_degrade_shard_that_always_fails_becomes_rejects_with_its_error(in_process, tmp_path):
    """A directory where a clean crop should be written: that crop's shard raises on every attempt."""
    from fairsplat.degrade.pipeline import DegradeParams
    from fairsplat.degrade.run import SHARD, Job, Settings, degrade_all
    from fairsplat.io.tables import read_table

    base, _ = in_process
    cur = base / "run" / "curated"
    jobs = [Job(m["image_id"], m["split"], m["fitzpatrick"], cur / m["path"], cur / m["mask_path"])
            for m in read_table(cur / "manifest.parquet")]  # fmt: skip
    out = tmp_path / "pairs"
    (out / "clean" / f"{jobs[0].crop.stem}.png").mkdir(parents=True)
    rows, rejects, _ = degrade_all(jobs, Settings(DegradeParams(), 1, 1, out, 1), 2, False, _cfg("local", retries=1))
    bad = {j.image_id for j in jobs[:SHARD]}
    assert {r["image_id"] for r in rejects} == bad and {r["image_id"] for r in rows}.isdisjoint(bad)
    assert len(rows) + len(rejects) == len(jobs)  # k = 1: one row per accepted crop
    assert all(r["reason"] == "error" and "IsADirectoryError" in r["detail"] and "after 2 attempts" in r["detail"]
               for r in rejects)  # fmt: skip
    assert not [p for p in (out / "degraded").iterdir() if any(p.name.startswith(j.crop.stem) for j in jobs[:SHARD])]
