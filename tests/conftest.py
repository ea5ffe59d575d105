"""Shared fixtures."""

import os
import shutil
from pathlib import Path

import pytest
import torch
from filelock import FileLock

from fairsplat.testing.pipeline import MANIFEST, TinyPipeline, build


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny tensors: on a shared 2-core machine a
    second intra-op thread only contends (~6x slower); the stages that fit or train
    small nets use one thread too (``track.threads``). Used through ``pytestmark``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory, request) -> TinyPipeline:
    """The real dvc.yaml on micro params (fairsplat/testing/pipeline.py), run ONCE per test session.

    Under pytest-xdist the workers share the session's base temp dir: the first to ask
    builds under a file lock, the others wait on the lock and load its result (a failed
    build is recorded, so they fail at once with its message instead of building again).
    Yields a :class:`TinyPipeline`: ``.repo``, ``.params`` (params.yaml + MICRO), and per
    stage of dvc.yaml ``.stages[name].outs / .metrics / .plots``, with ``.out(name)``,
    ``.metrics(name)``, ``.copy(name_or_path, dest)`` and ``.subset(name, dest, keep)``.
    A stage that failed leaves ``.ran`` without it (and ``.log`` says why): only the tests
    that ask for its outputs fail.

    Every output is read-only: a test that writes (bad inputs, deleted masks) works on
    ``tiny_pipeline.copy(...)`` under its own tmp_path. ``FAIRSPLAT_TINY_PIPELINE=<dir>``
    reuses a pipeline built earlier (``python -m fairsplat.testing.pipeline <dir>``), for
    iterating on one test; it is not rebuilt, so it can be stale.
    """
    reuse = os.environ.get("FAIRSPLAT_TINY_PIPELINE")
    if reuse:
        return TinyPipeline.load(Path(reuse))
    shared = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):  # an xdist worker: popen-gwN/ -> the session's dir, shared by all
        shared = shared.parent
    repo, failed = shared / "tiny_pipeline", shared / "tiny_pipeline.failed"
    with FileLock(shared / "tiny_pipeline.lock"):
        if failed.is_file():
            pytest.fail(f"the tiny pipeline failed to build (in another worker):\n{failed.read_text()}", pytrace=False)
        if (repo / MANIFEST).is_file():
            return TinyPipeline.load(repo)
        shutil.rmtree(repo, ignore_errors=True)  # a build interrupted earlier in this session
        try:
            return build(repo)
        except Exception as e:
            failed.write_text(str(e))
            raise


@pytest.fixture(scope="session")
def procedural_head():
    """The default procedural head (stage head's default params), built once per worker."""
    from fairsplat.head.procedural import build_procedural_head

    return build_procedural_head()


def pytest_configure(config):
    # --dist loadfile hands out files largest first by default; keep the order set below instead
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    """Order test files so that one xdist worker builds the tiny pipeline while the other runs
    everything that does not need it: first the pipeline-using file with the fewest tests (its
    worker builds), then every file that does not use ``tiny_pipeline`` (largest first, as xdist
    would), then the other pipeline-using files. Test order within a file is kept."""
    files: dict[str, list] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    uses = {f: any("tiny_pipeline" in it.fixturenames for it in its) for f, its in files.items()}
    piped = sorted((f for f in files if uses[f]), key=lambda f: len(files[f]))
    rest = sorted((f for f in files if not uses[f]), key=lambda f: -len(files[f]))
    items[:] = [it for f in piped[:1] + rest + piped[1:] for it in files[f]]
