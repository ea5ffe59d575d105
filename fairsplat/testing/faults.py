"""Kill a stage with SIGKILL mid-run, run ``dvc repro`` again, and compare with an uninterrupted run.

Why real processes and real DVC: what a kill can break is exactly what a unit
test cannot see: a temporary left where DVC (or a later stage) looks, an output
DVC records although it is half written, a checkpoint DVC deletes with the
outputs, a resumed run that drifts from an uninterrupted one.

    from fairsplat.testing.faults import Trigger, kill_and_rerun, scratch
    repo = scratch(tiny.repo, tmp / "repo")          # a writable copy of a finished tiny pipeline
    res = kill_and_rerun(repo, tiny.repo, "degrade", Trigger("temp", 0.5))
    assert res.ok, res.problems

One kill, in a copy of a finished tiny pipeline (fairsplat/testing/pipeline.py),
whose outputs are the uninterrupted reference:

1. the stage is dropped from dvc.lock (:func:`forget`: its first run), then
   ``dvc repro --single-item <stage>`` starts in its own process group; DVC
   deletes the stage's outputs first, as any run does;
2. at the trigger (a delay after start, after the stage's own process
   starts, after the stage's output temporary appears, or after its first
   training checkpoint) the whole group gets SIGKILL, but only while the
   stage's own process runs (it is stopped first, fairsplat/testing/procs.py):
   a kill after the stage exited would land in DVC's own bookkeeping, where
   DVC 3.67 rewrites dvc.lock in place (README "Fault sweep");
3. every output present after the kill must already be complete (equal to
   the reference for a data stage; same files for a trainer);
4. ``dvc repro <stage>``: it must re-run the stage (and nothing upstream),
   finish, leave no temporary behind, and give the reference's outputs: byte for
   byte, except the fields that time the run (``VOLATILE``, fairsplat/testing/compare.py); a trainer's
   tensors and scores within ``TRAIN_TOL`` (their resume is exact in the
   tests; the tolerance only says how far the sweep would let them drift).

The copy has no run cache (``.dvc/cache/runs``): with it, the second
``dvc repro`` would restore the reference's outputs instead of running the stage.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fairsplat.io.atomic import TEMP
from fairsplat.testing.compare import TRAIN_TOL, VOLATILE, compare, tree_bytes  # noqa: F401  (re-exported)
from fairsplat.testing.pipeline import subprocess_env
from fairsplat.testing.procs import cpu_seconds, freeze, stage_pid

TRAINERS = ("train_parser", "train_ff", "lora", "refine", "train_enhancer")
"""Stages that resume from ``.checkpoints/<stage>`` (the rest re-run from scratch)."""
EVENTS = ("start", "stage", "temp", "checkpoint")
"""What a :class:`Trigger` waits for."""
WRITES_AT_END = ("report",)
"""Stages that build their result in memory and write it at the very end (the page): their output's temporary
appears after their main loop, so the sweep kills them a delay after their process started (event ``stage``)."""
SKIP = ("fairsplat", "stages", "viewer", ".dvc")
"""Top-level entries of the repo that are code or DVC's own, not outputs (not searched for temporaries)."""


@dataclass(frozen=True)
class Trigger:
    """When to kill: ``after`` seconds past an event. Events: ``start`` (the dvc process started),
    ``stage`` (the stage's own process started: for a stage that builds its result in memory and writes it at
    the end, whose temporary appears only after its main loop; ``after`` then counts CPU seconds of the stage's
    process, not wall seconds, so the kill lands at the same point of its work however loaded the machine), ``temp`` (a temporary of the stage's first
    output appeared: it is writing its results), ``checkpoint`` (a finished checkpoint appeared under
    ``.checkpoints/<stage>``: :data:`CHECKPOINT_MARKERS`). Whatever the event, the kill lands only while the
    stage's process runs (:func:`_kill_in_stage`)."""

    event: str = "start"
    after: float = 0.0

    def __post_init__(self) -> None:
        if self.event not in EVENTS or self.after < 0:
            raise ValueError(f"Trigger: event {'|'.join(EVENTS)} and after >= 0, got {self.event!r} {self.after}")

    def __str__(self) -> str:
        return f"{self.after:.2f} CPU s into the stage" if self.event == "stage" else f"{self.after:.2f} s after {self.event}"


@dataclass
class KillResult:
    stage: str
    trigger: str
    killed_at: float | None  # seconds after start; None: the stage finished before the trigger
    present_after_kill: list[str]  # outputs that existed right after the kill
    checkpoint_after_kill: list[str]  # files under .checkpoints/<stage> right after the kill
    reran: bool  # the second dvc repro ran the stage
    rerun_seconds: float
    bytes_differ: list[str] = field(default_factory=list)  # outputs not byte-equal to the reference (by value they may be)
    max_abs_diff: float = 0.0  # largest tensor/number difference accepted within TRAIN_TOL
    problems: list[str] = field(default_factory=list)  # why it failed ([] = passed)
    log: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def row(self) -> str:
        """One Markdown table row: stage | killed at | state after the kill | rerun result."""
        at = "finished before the trigger" if self.killed_at is None else f"{self.killed_at:.1f} s ({self.trigger})"
        ck = f", checkpoint: {len(self.checkpoint_after_kill)} files" if self.checkpoint_after_kill else ""
        after = (", ".join(self.present_after_kill) or "no outputs") + ck
        verdict = "PASS" if self.ok else "FAIL: " + "; ".join(self.problems)
        if not self.bytes_differ:
            exact = "byte-identical"
        elif self.max_abs_diff == 0:
            exact = f"equal but for timings in {', '.join(self.bytes_differ)}"
        else:
            exact = f"{', '.join(self.bytes_differ)} within tolerance (max abs diff {self.max_abs_diff:.2g})"
        return f"| {self.stage} | {at} | {after} | {verdict}, {exact}, rerun {self.rerun_seconds:.0f} s |"


# ---- the copy ----------------------------------------------------------------------------------


def scratch(src: Path, dest: Path) -> Path:
    """A writable copy of the finished tiny pipeline in ``src``: workspace copied, DVC's cache hard-linked
    (its files are read-only and content-addressed: never written in place), no run cache, no state. -> dest"""
    shutil.copytree(src, dest, copy_function=shutil.copyfile, ignore=shutil.ignore_patterns(".dvc", ".checkpoints"))
    for d, dirs, files in os.walk(dest):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    (dest / ".dvc").mkdir()
    shutil.copy(src / ".dvc" / "config", dest / ".dvc" / "config")
    shutil.copytree(src / ".dvc" / "cache", dest / ".dvc" / "cache", copy_function=_link_or_copy,
                    ignore=lambda d, names: ["runs"] if Path(d) == src / ".dvc" / "cache" else [])  # fmt: skip
    return dest


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem
        shutil.copy2(src, dst)


def stage_outputs(repo: Path, stage: str) -> list[str]:
    """Every output path of ``stage`` (cached, metrics, plots), as dvc.lock records them."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return [o["path"] for o in lock["stages"][stage]["outs"]]


def forget(repo: Path, stage: str) -> None:
    """Drop ``stage`` from ``repo/dvc.lock``, as if it had never finished.

    Why not ``dvc repro --force``: after a killed forced run, dvc.lock still
    holds the previous run and DVC's cache its outputs, so the next
    ``dvc repro`` checks those out ("Stage is cached - skipping run"), which is
    right, but then nothing of the stage's own recovery is tested. A first run
    killed is the case that must recover."""
    from ruamel.yaml import YAML  # DVC's own parser, round trip: PyYAML would rewrite 1e-05 as the string '1e-05'

    path, y = repo / "dvc.lock", YAML()
    lock = y.load(path.read_text())
    del lock["stages"][stage]
    with open(path, "w") as fh:
        y.dump(lock, fh)


def temporaries(repo: Path) -> list[str]:
    """Every temporary an atomic write left anywhere in the workspace (code and .dvc excluded)."""
    found = []
    for top in repo.iterdir():
        if top.name in SKIP:
            continue
        if TEMP.match(top.name):
            found.append(top.name)
            continue
        if top.is_dir():
            for d, dirs, files in os.walk(top):
                for n in [*dirs, *files]:
                    if TEMP.match(n):
                        found.append(os.path.relpath(os.path.join(d, n), repo))
                dirs[:] = [n for n in dirs if not TEMP.match(n)]
    return sorted(found)


def _checkpoint_files(repo: Path, stage: str) -> list[str]:
    root = repo / ".checkpoints" / stage
    if not root.is_dir():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and not any(TEMP.match(part) for part in p.relative_to(root).parts))  # fmt: skip


CHECKPOINT_MARKERS = ("state.json", "refine.json")
"""Files written last into a finished checkpoint: the loop's (``fairsplat.io.checkpoint.save_train_state``, whose
directory appears whole) and refine's per-subject done marker (``fairsplat.refine.run.DONE``)."""


def _checkpointed(repo: Path, stage: str) -> bool:
    return any(Path(f).name in CHECKPOINT_MARKERS for f in _checkpoint_files(repo, stage))


def _temp_of(repo: Path, out: str) -> bool:
    p = repo / out
    prefix = f".{p.name}.~"
    return p.parent.is_dir() and any(n.startswith(prefix) for n in os.listdir(p.parent))


# ---- the kill ----------------------------------------------------------------------------------


def _dvc(repo: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def _fired(repo: Path, stage: str, trigger: Trigger, first_out: str, pid: int | None) -> bool:
    return (trigger.event == "start" or (trigger.event == "temp" and _temp_of(repo, first_out))
            or (trigger.event == "checkpoint" and _checkpointed(repo, stage)) or (trigger.event == "stage" and pid is not None))  # fmt: skip


def _kill_in_stage(proc: subprocess.Popen, repo: Path, stage: str, trigger: Trigger, first_out: str, timeout: float) -> float | None:
    """SIGKILL DVC's process group at ``trigger``, while the stage's own process runs. -> seconds after start
    of the kill; None when no kill landed (DVC ended first, or the stage's process exited before the trigger).

    The stage's process is stopped (SIGSTOP) before the group is killed: once it is seen to exit, DVC is
    recording the run (dvc.lock, its cache), and a kill there tests DVC, not the stage, so none is sent.
    Before the stage's process appears (event ``start`` with a short delay) the kill lands in DVC's start-up,
    as asked. Past ``timeout`` the group is killed wherever it is."""
    t0, fired, seen = time.perf_counter(), None, False
    while proc.poll() is None:
        now = time.perf_counter() - t0
        pid = stage_pid(proc.pid, stage)
        if pid is None and seen:
            proc.wait()  # the stage finished before the trigger: let DVC record it
            return None
        seen |= pid is not None
        if fired is None and _fired(repo, stage, trigger, first_out, pid):
            fired = now
        due = fired is not None and (cpu_seconds(pid) >= trigger.after if trigger.event == "stage" and pid is not None
                                     else now >= fired + trigger.after)  # fmt: skip
        if now > timeout or due:
            if pid is not None and not freeze(pid) and now <= timeout:
                proc.wait()
                return None
            os.killpg(proc.pid, signal.SIGKILL)
            return time.perf_counter() - t0
        time.sleep(0.02)
    return None


def kill_and_rerun(repo: Path, reference: Path, stage: str, trigger: Trigger, timeout: float = 900.0) -> KillResult:
    """Run ``stage`` in ``repo`` (a :func:`scratch` copy of ``reference``), SIGKILL it at ``trigger``,
    ``dvc repro`` again, and check the outcome against ``reference``'s outputs (see the module doc)."""
    outs = stage_outputs(reference, stage)
    tol = TRAIN_TOL if stage in TRAINERS else None
    env = subprocess_env(repo)
    forget(repo, stage)
    log = repo / f".faults.{stage}.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(_dvc(repo, "repro", "--single-item", stage), cwd=repo, env=env, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        main = next((o for o in outs if not o.startswith("metrics/")), outs[0])  # its data, not its metrics file
        killed_at = _kill_in_stage(proc, repo, stage, trigger, main, timeout)
        proc.wait()
        _reap(proc.pid)
    first_log = log.read_text()
    log.unlink()
    res = KillResult(stage, str(trigger), killed_at, [o for o in outs if (repo / o).exists()],
                     _checkpoint_files(repo, stage), False, 0.0)  # fmt: skip
    if killed_at is None and proc.returncode != 0:
        res.problems.append(f"the first run failed by itself (exit {proc.returncode})")
    for o in res.present_after_kill:  # what exists now must be whole: DVC removed every output before the run
        d, _ = compare(reference / o, repo / o, tol)
        if d and (stage not in TRAINERS or any("missing" in x or "not in" in x for x in d)):
            res.problems.append(f"{o} present after the kill but incomplete: {d[:3]}")
    t0 = time.perf_counter()
    rerun = subprocess.run(_dvc(repo, "repro", stage), cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    res.rerun_seconds = time.perf_counter() - t0
    res.log = (first_log[-2000:] + "\n--- rerun ---\n" + rerun.stdout[-3000:] + rerun.stderr[-3000:]).strip()
    ran = re.findall(r"Running stage '([^']+)'", rerun.stdout)
    res.reran = stage in ran
    if rerun.returncode != 0:
        res.problems.append(f"dvc repro failed after the kill (exit {rerun.returncode})")
    if killed_at is not None and not res.reran:
        res.problems.append("dvc repro did not re-run the killed stage: it took a killed run for done")
    if set(ran) - {stage}:
        res.problems.append(f"dvc repro re-ran other stages too: {sorted(set(ran) - {stage})}")
    left = temporaries(repo)
    if left:
        res.problems.append(f"temporaries left: {left[:5]}")
    if (repo / ".checkpoints" / stage).exists() and _checkpoint_files(repo, stage):
        res.problems.append("a checkpoint survived the finished run")
    if rerun.returncode == 0:
        _compare_outputs(res, repo, reference, outs, tol)
    return res


def _compare_outputs(res: KillResult, repo: Path, reference: Path, outs: list[str], tol: dict | None) -> None:
    diffs = []
    for o in outs:
        d, worst = compare(reference / o, repo / o, tol)
        diffs += [f"{o}: {x}" for x in d]
        res.max_abs_diff = max(res.max_abs_diff, worst)
        if tree_bytes(reference / o) != tree_bytes(repo / o):
            res.bytes_differ.append(o)
    if diffs:
        res.problems.append(f"outputs differ from the uninterrupted run: {diffs[:4]}")


def repro_clean(repo: Path, reference: Path, stage: str, timeout: float = 900.0) -> KillResult:
    """A second clean run: ``dvc repro --force --single-item <stage>`` in ``repo`` (a :func:`scratch` copy of
    ``reference``), uninterrupted, compared with ``reference``'s outputs. Its ``rerun_seconds`` is the stage's
    duration (what the sweep draws kill times from). Same inputs, so equal outputs here, stage by stage, are
    equal outputs of two whole pipelines."""
    outs = stage_outputs(reference, stage)
    t0 = time.perf_counter()
    run = subprocess.run(_dvc(repo, "repro", "--force", "--single-item", stage), cwd=repo, env=subprocess_env(repo),
                         capture_output=True, text=True, timeout=timeout)  # fmt: skip
    res = KillResult(stage, "no kill", None, [], [], stage in re.findall(r"Running stage '([^']+)'", run.stdout),
                     time.perf_counter() - t0, log=(run.stdout[-3000:] + run.stderr[-3000:]).strip())  # fmt: skip
    if run.returncode != 0 or not res.reran:
        res.problems.append(f"dvc repro --force failed (exit {run.returncode})")
    else:
        _compare_outputs(res, repo, reference, outs, TRAIN_TOL if stage in TRAINERS else None)
    left = temporaries(repo)
    if left:
        res.problems.append(f"temporaries left: {left[:5]}")
    return res


def _reap(pgid: int, wait: float = 5.0) -> None:
    """Wait until every process of the killed group is gone (pool workers die with it)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < wait:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
