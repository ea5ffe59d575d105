"""kill -9 mid-stage, then ``dvc repro``: the short form of bench/fault_sweep.py (README "Fault sweep").

Each test copies the finished tiny pipeline (its outputs are the uninterrupted
reference), starts one stage under ``dvc repro --force``, SIGKILLs the whole
process group mid-run and runs ``dvc repro`` again (fairsplat/testing/faults.py
says what is checked). Three representatives: a data stage killed inside its
loop (degrade), a trainer killed after a step checkpoint (train_parser: the
shared loop's resume) and refine, killed after its first finished subject (its
per-subject resume). The long form kills every stage.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from fairsplat.io.atomic import TEMP
from fairsplat.testing.faults import Trigger, compare, kill_and_rerun, scratch, temporaries

KILLS = {
    "degrade": Trigger("temp", 0.5),  # its output's temporary exists: it is inside its loop, writing pairs
    "train_parser": Trigger("checkpoint", 0.0),  # a step checkpoint exists: the rerun must resume from it
    "refine": Trigger("checkpoint", 0.0),  # one subject is done: the rerun must take it and refine the rest
}


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(KILLS))
def test_a_killed_stage_reruns_to_the_uninterrupted_outputs(tiny_pipeline, tmp_path, stage):
    tiny_pipeline.require(stage)  # fails with DVC's output when the stage did not run
    repo = scratch(tiny_pipeline.repo, tmp_path / "repo")
    res = kill_and_rerun(repo, tiny_pipeline.repo, stage, KILLS[stage])
    assert res.killed_at is not None, f"{stage} finished before the kill: nothing was tested\n{res.log}"
    assert res.ok, "\n".join(res.problems) + "\n" + res.log
    assert res.reran
    if stage != "degrade":
        assert res.checkpoint_after_kill, "killed before any checkpoint: nothing to resume from"
        m = json.loads((repo / "metrics" / f"{stage}.json").read_text())
        resumed = m.get("resumed_from") if stage == "train_parser" else m.get("subjects_resumed")
        assert resumed, f"{stage}: the rerun did not resume ({m.get('resumed_from', m.get('subjects_resumed'))})"


def test_compare_reads_values_skips_timings_and_applies_the_tolerance(tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    a, b = tmp_path / "a", tmp_path / "b"
    for d, secs, w in ((a, 1.0, 0.5), (b, 9.0, 0.5 + 1e-7)):
        d.mkdir()
        (d / "m.json").write_text(json.dumps({"psnr": 20.0, "train_seconds": secs, "per": {"I": {"n": 3}}}))
        save_file({"w": np.full((2, 3), w, np.float32)}, str(d / "w.safetensors"))
    diffs, worst = compare(a, b, {"rtol": 1e-5, "atol": 1e-6})
    assert diffs == [] and 0 < worst < 1e-6  # timings skipped, weights within tolerance
    diffs, _ = compare(a, b, None)
    assert diffs == ["w.safetensors.w: max abs diff 1.19e-07"]  # exact: the weights differ
    (b / "m.json").write_text(json.dumps({"psnr": 20.5, "train_seconds": 1.0, "per": {"I": {"n": 3}}}))
    (b / "extra.png").write_bytes(b"x")
    diffs, _ = compare(a, b, {"rtol": 1e-5, "atol": 1e-6})
    assert diffs == ["extra.png: not in the reference", "m.json.psnr: 20.0 vs 20.5"]


def test_temporaries_are_found_wherever_they_are(tmp_path):
    (tmp_path / "data" / "x").mkdir(parents=True)
    (tmp_path / "data" / ".pairs.~h~1~abc").mkdir()
    (tmp_path / "data" / "x" / ".a.json.~h~2~k.json").write_text("{")
    (tmp_path / "data" / ".keep").write_text("")
    (tmp_path / "fairsplat").mkdir()
    (tmp_path / "fairsplat" / ".y.~h~3~z").write_text("")  # code: not searched
    assert temporaries(tmp_path) == ["data/.pairs.~h~1~abc", "data/x/.a.json.~h~2~k.json"]
    assert TEMP.match(".pairs.~h~1~abc")["pid"] == "1"


# A stand-in for `dvc repro`: runs the "stage" (a process whose argv names stages.toy, busy for argv[1] wall
# seconds), then keeps going after it exited, as DVC does while it writes dvc.lock; argv[2]: where the parent
# writes "recorded" once it has outlived the stage (the lock write a kill must not interrupt).
BUSY = "import sys, time\nend = time.time() + float(sys.argv[1])\nwhile time.time() < end:\n    pass"
FAKE_DVC = f"""
import subprocess, sys, time
subprocess.run([sys.executable, "-c", {BUSY!r}, sys.argv[1], "stages.toy"])
time.sleep(0.5)
open(sys.argv[2], "w").write("recorded")
"""


def _fake_dvc(tmp_path, stage_seconds: float):
    return subprocess.Popen([sys.executable, "-c", FAKE_DVC, str(stage_seconds), str(tmp_path / "lock")],
                            start_new_session=True)  # fmt: skip


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_kill_lands_while_the_stage_process_runs_and_never_after_it(tmp_path):
    """Killed once the stage's process used 0.2 CPU s: inside it while it runs, not at all once it exited."""
    from fairsplat.testing.faults import _kill_in_stage

    proc = _fake_dvc(tmp_path, 30.0)  # the stage outlives the trigger: killed inside it
    killed_at = _kill_in_stage(proc, tmp_path, "toy", Trigger("stage", 0.2), "out", timeout=60)
    assert killed_at is not None and proc.wait(10) == -9 and not (tmp_path / "lock").exists()
    proc = _fake_dvc(tmp_path, 0.3)  # the stage exits before the trigger: no kill, the "lock" is written
    assert _kill_in_stage(proc, tmp_path, "toy", Trigger("stage", 20.0), "out", timeout=60) is None
    assert proc.wait(10) == 0 and (tmp_path / "lock").read_text() == "recorded"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_stage_pid_finds_the_stage_in_its_session_and_freeze_stops_it(tmp_path):
    from fairsplat.testing.procs import alive, freeze, stage_pid

    proc = _fake_dvc(tmp_path, 30.0)
    try:
        for _ in range(400):
            pid = stage_pid(proc.pid, "toy")
            if pid is not None:
                break
            time.sleep(0.025)
        assert pid is not None and pid != proc.pid and stage_pid(proc.pid, "other") is None
        assert stage_pid(proc.pid + 10**7, "toy") is None  # another session: not ours
        assert freeze(pid) and alive(pid)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not freeze(proc.pid) and not alive(proc.pid)
