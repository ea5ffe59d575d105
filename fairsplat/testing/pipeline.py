"""The tiny pipeline: the real ``dvc.yaml`` on micro params, in a throwaway DVC repo.

Why a copy and real DVC rather than calling the stages in turn: what users run
is ``dvc repro``, so one run checks the wiring too (every cmd, dep, out, metric
and plot path in dvc.yaml, the params sections the stages read, the order of
stages), and every stage test can then start from *real* upstream outputs
instead of building its own. The micro params only shrink sizes; every stage
runs its real code on the embedded default.

    from fairsplat.testing.pipeline import build
    tiny = build(Path("/tmp/tiny"))          # minutes on two CPU cores
    tiny.out("curate")                       # /tmp/tiny/data/curated
    tiny.metrics("track")["nme"]
    tiny.copy("curate", tmp / "curated")     # a writable copy, to break on purpose
    tiny.subset("synth", tmp / "synth", lambda row: row["frame"] == 0)   # fewer rows, files linked

In tests it is the session fixture ``tiny_pipeline`` (tests/conftest.py): built
once per session, shared by the pytest-xdist workers. Its outputs are made
read-only; a test that writes takes a copy first (``tiny.copy(...)``).

A failing stage does not take the others down: ``dvc repro --keep-going`` runs
every stage that does not depend on it, and only the tests that ask for a stage
that did not run (``out``, ``metrics``, ``copy``) fail, with DVC's output; the
end-to-end test fails on any failed stage.

The stage list is read from dvc.yaml (via DVC itself), never written here; a new
stage's micro sizes go in :data:`MICRO` (``MICRO["new_stage"] = {...}``), whose
keys must exist in params.yaml.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
"""The checkout the tiny repo is copied from (holds dvc.yaml, params.yaml, stages/, fairsplat/)."""

COPIED = ("stages", "fairsplat", "viewer")
"""Code copied into the tiny repo beside dvc.yaml (the stages run ``python -m stages.<name>`` there; stage report
inlines ``viewer/dist/viewer.js`` when ``make env`` built it). ``node_modules`` is never copied (:data:`IGNORED`)."""
IGNORED = ("__pycache__", "*.pyc", "node_modules")

MICRO: dict[str, dict] = {
    "head": {"preview-size": 64, "uv-resolution": 32},
    "synth": {"identities": 12, "frames": 2, "views": [[0, 0], [30, 0]], "size": 96, "uv-resolution": 64,
              "train-frac": 0.5, "val-frac": 0.0, "workers": 1},  # 1 train + 1 test identity per type
    "curate": {"size": 64, "per-type": 4, "min-face": 16.0, "min-skin-pixels": 40, "samples-per-type": 2, "workers": 1,
               "splits": {"train": 0.5, "val": 0.25, "test": 0.25}},
    "train_parser": {"size": 64, "epochs": 1, "batch-size": 4, "eval-every": 1, "checkpoint-every": 1},
    "degrade": {"k": 1, "workers": 1},
    "track": {"iters": 3, "batch-size": 8, "plot-samples": 2},
    "train_ff": {"size": 64, "encoder-size": None, "encoder-dim": 16, "encoder-hidden": 16, "encoder-layers": 2, "encoder-heads": 2,
                 "encoder-levels": [0, 1], "width": 16, "blocks": 1, "heads": 2, "max-points": 128, "head-hidden": 16,
                 "steps": 2, "batch-size": 2, "baseline-steps": 2, "eval-ks": [1], "eval-every": 1,
                 "checkpoint-every": 1, "log-every": 1, "threads": 1},
    "lora": {"rank": 4, "alpha": 4.0, "steps": 2, "batch-size": 2, "warmup": 1, "log-every": 1, "checkpoint-every": 1},
    "refine": {"iterations": 40, "scale-freeze": {"until": 10}, "log-scale-clamp": {"start": 10, "min": -3.0, "max": 1.0},
               "aspect": {"weight": 0.1, "tau": 1.0, "start": 10},
               "adaptive-tto": {"extend": 10, "cap": 60, "min-gain": 0.01, "watch": 1}, "subjects-per-type": None},
    "evaluate": {"cross-frames": 1, "n-boot": 200},
    "train_enhancer": {"steps": 2, "batch-size": 2, "warmup": 1, "eval-every": 1, "checkpoint-every": 1, "log-every": 1,
                       "watch-pairs": 2},
    "enhance": {"skip": 1, "max-targets": 2},
}
"""Per-section overrides of params.yaml: the smallest sizes at which every stage still has
something of every skin type to work on (12 identities = 2 per Fitzpatrick type, so each
type has a held-out identity). Sections not named here run on params.yaml as it is."""

MANIFEST = "tiny_pipeline.json"
"""Written into the repo after a successful ``dvc repro``: stages and their outputs (see :class:`TinyPipeline`)."""


def micro_params(root: Path = ROOT, micro: dict[str, dict] | None = None) -> dict:
    """params.yaml of ``root`` with ``micro`` (default :data:`MICRO`) merged in, section by section.

    Fails naming the section or key when ``micro`` names one that params.yaml lacks: a
    renamed key must not leave the tiny pipeline silently running at full size.
    """
    params = yaml.safe_load((root / "params.yaml").read_text())
    for section, over in (MICRO if micro is None else micro).items():
        if section not in params:
            raise KeyError(f"MICRO names section {section!r}, which params.yaml lacks")
        unknown = sorted(set(over) - set(params[section]))
        if unknown:
            raise KeyError(f"MICRO[{section!r}]: keys not in params.yaml: {unknown}")
        params[section] = {**params[section], **over}
    return params


def subprocess_env(repo: Path) -> dict[str, str]:
    """The environment for a Python subprocess on the tiny pipeline in ``repo``: this interpreter's bin
    dir first on PATH (the stages' ``python -m stages.<name>`` run in the caller's environment), the
    checkout's pretrained weights, plain tracebacks.

    Where bytecode writing is off (``PYTHONDONTWRITEBYTECODE``, as on our CI, with a venv holding no
    .pyc), every process would compile torch, timm and dvc from source again (~4 s each); they share
    one cache beside the repo instead (``PYTHONPYCACHEPREFIX``: nothing is written into the sources)."""
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1",
           "_TYPER_STANDARD_TRACEBACK": "1"}  # a failing stage's plain traceback, not rich's locals dump
    # the checkout's fetched weights (the tiny repo has no .weights/ of its own): real LPIPS in the stages
    env.setdefault("FAIRSPLAT_WEIGHTS_DIR", str(ROOT / ".weights"))
    if env.pop("PYTHONDONTWRITEBYTECODE", None):
        env.setdefault("PYTHONPYCACHEPREFIX", str(repo.parent / f"{repo.name}.pycache"))
    return env


def dvc(repo: Path, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    """``python -m dvc <args>`` in ``repo``, in :func:`subprocess_env`."""
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=repo, env=subprocess_env(repo), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def make_repo(dest: Path, root: Path = ROOT, micro: dict[str, dict] | None = None) -> Path:
    """A DVC repo (no git) at ``dest``: copies of ``stages/``, ``fairsplat/`` and ``dvc.yaml`` of
    ``root``, and micro params. Nothing run yet. -> dest"""
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        shutil.copytree(root / name, dest / name, ignore=shutil.ignore_patterns(*IGNORED))
    shutil.copy(root / "dvc.yaml", dest / "dvc.yaml")
    (dest / "params.yaml").write_text(yaml.safe_dump(micro_params(root, micro), sort_keys=False))
    res = dvc(dest, "init", "--no-scm", "-q")
    if res.returncode:
        raise RuntimeError(f"dvc init failed in {dest}:\n{res.stderr}")
    if (root / ".dvcignore").is_file():  # __pycache__/: a later stage's imports must not change an earlier stage's deps
        shutil.copy(root / ".dvcignore", dest / ".dvcignore")
    return dest


@dataclass(frozen=True)
class StageOutputs:
    """What one stage of dvc.yaml declares, as absolute paths in the tiny repo."""

    outs: list[Path]  # cached outputs (data, models, assets)
    metrics: list[Path]  # metrics/<name>.json
    plots: list[Path]  # plots/<name>/ (cache: false)


@dataclass(frozen=True)
class TinyPipeline:
    """A finished tiny pipeline. Treat every path as read-only: copy before writing (:meth:`copy`)."""

    repo: Path  # the DVC repo (dvc.yaml, params.yaml, dvc.lock, stages/, fairsplat/, outputs)
    params: dict  # the params.yaml it ran on (params.yaml + MICRO)
    stages: dict[str, StageOutputs] = field(default_factory=dict)  # every stage of dvc.yaml, in its order
    ran: tuple[str, ...] = ()  # the stages that completed (in dvc.lock)
    log: str = ""  # the tail of dvc repro's output when a stage failed, else ""

    def require(self, stage: str) -> StageOutputs:
        """``stage``'s outputs; raises, with DVC's output, when it did not run."""
        if stage not in self.stages:
            raise KeyError(f"no stage {stage!r} in dvc.yaml; stages: {list(self.stages)}")
        if stage not in self.ran:
            raise RuntimeError(f"stage {stage!r} did not complete in the tiny pipeline {self.repo}:\n{self.log}")
        return self.stages[stage]

    def out(self, stage: str) -> Path:
        """The single cached output of ``stage`` (e.g. ``out("curate")`` -> ``<repo>/data/curated``)."""
        outs = self.require(stage).outs
        assert len(outs) == 1, f"stage {stage} has {len(outs)} cached outputs: {outs}; use stages[{stage!r}].outs"
        return outs[0]

    def metrics(self, stage: str) -> dict:
        """``metrics/<stage>.json`` as a dict."""
        (path,) = self.require(stage).metrics
        return json.loads(path.read_text())

    def copy(self, src: str | Path, dest: Path) -> Path:
        """A writable copy of a stage's output (``src`` = stage name) or of any path under the repo. -> dest"""
        src = self.out(src) if isinstance(src, str) and src in self.stages else self.repo / src
        if src.is_dir():
            shutil.copytree(src, dest, copy_function=shutil.copyfile)
            for d, _, files in os.walk(dest):  # copytree copies the read-only mode of directories
                os.chmod(d, 0o755)
                for f in files:
                    os.chmod(os.path.join(d, f), 0o644)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
        return dest

    def subset(self, stage: str, dest: Path, keep: Callable[[dict], bool], table: str = "manifest.parquet") -> Path:
        """``stage``'s output cut to the rows of ``table`` that ``keep(row)`` accepts: that table is
        rewritten under ``dest``, every other entry is a link to the (read-only) original. For a test
        that needs fewer inputs than the pipeline made. -> dest"""
        import pyarrow as pa
        import pyarrow.parquet as pq

        src = self.out(stage)
        dest.mkdir(parents=True)
        for p in src.iterdir():
            if p.name != table:
                (dest / p.name).symlink_to(p, target_is_directory=p.is_dir())
        rows = pq.read_table(src / table)
        pq.write_table(rows.filter(pa.array([bool(keep(r)) for r in rows.to_pylist()])), dest / table)
        return dest

    def save(self) -> None:
        data = {
            "params": self.params, "ran": list(self.ran), "log": self.log,
            "stages": {n: {k: [str(p.relative_to(self.repo)) for p in getattr(s, k)] for k in ("outs", "metrics", "plots")}
                       for n, s in self.stages.items()},
        }  # fmt: skip
        (self.repo / MANIFEST).write_text(json.dumps(data, indent=1))

    @classmethod
    def load(cls, repo: Path) -> TinyPipeline:
        """The pipeline :func:`build` finished in ``repo`` (reads its ``tiny_pipeline.json``)."""
        data = json.loads((repo / MANIFEST).read_text())
        stages = {n: StageOutputs(**{k: [repo / p for p in v] for k, v in s.items()}) for n, s in data["stages"].items()}
        return cls(repo, data["params"], stages, tuple(data["ran"]), data["log"])


def declared_outputs(repo: Path) -> dict[str, StageOutputs]:
    """Every stage of ``repo/dvc.yaml`` (vars resolved by DVC itself) -> its outputs, in dvc.yaml order."""
    from dvc.repo import Repo

    with Repo(str(repo)) as r:
        stages = {}
        for s in r.index.stages:
            pick = lambda keep: [repo / o.def_path for o in s.outs if keep(o)]  # noqa: E731
            stages[s.name] = StageOutputs(
                outs=pick(lambda o: not o.metric and not o.plot), metrics=pick(lambda o: o.metric), plots=pick(lambda o: o.plot)
            )
        return stages


def make_read_only(paths: list[Path]) -> None:
    """Drop write permission on ``paths`` and everything under them (tests must copy, not edit)."""
    strip = ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    for top in paths:
        if not top.exists():
            continue
        for d, _, files in os.walk(top, topdown=False) if top.is_dir() else [(top.parent, [], [top.name])]:
            for f in files:
                p = os.path.join(d, f)
                os.chmod(p, os.stat(p).st_mode & strip)
            if top.is_dir():
                os.chmod(d, os.stat(d).st_mode & strip)


def build(dest: Path, root: Path = ROOT, micro: dict[str, dict] | None = None) -> TinyPipeline:
    """:func:`make_repo` then ``dvc repro --keep-going``; outputs made read-only.

    A failed stage is recorded (``ran`` lacks it and whatever depends on it; ``log``
    holds DVC's output), not raised: the stages that ran stay usable."""
    repo = make_repo(dest, root, micro)
    run = dvc(repo, "repro", "--keep-going")
    lock = repo / "dvc.lock"
    ran = tuple(yaml.safe_load(lock.read_text())["stages"]) if lock.is_file() else ()
    stages = declared_outputs(repo)
    log = "" if run.returncode == 0 else f"dvc repro failed (exit {run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
    tiny = TinyPipeline(repo, yaml.safe_load((repo / "params.yaml").read_text()), stages, tuple(s for s in stages if s in ran), log)
    make_read_only([p for s in tiny.stages.values() for p in (*s.outs, *s.metrics, *s.plots)])
    tiny.save()
    return tiny


if __name__ == "__main__":  # python -m fairsplat.testing.pipeline /tmp/tiny  (then FAIRSPLAT_TINY_PIPELINE=/tmp/tiny pytest ...)
    print(build(Path(sys.argv[1])).repo)
