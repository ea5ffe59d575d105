"""The long fault sweep: every stage of dvc.yaml killed with SIGKILL mid-run, then ``dvc repro`` again (README "Fault sweep").

Run:
    .venv/bin/python -u -m bench.fault_sweep                        # builds a tiny pipeline in a temp dir first (~5 min)
    .venv/bin/python -u -m bench.fault_sweep --tiny /tmp/tiny       # reuse one (python -m fairsplat.testing.pipeline /tmp/tiny)
    .venv/bin/python -u -m bench.fault_sweep --tiny /tmp/tiny --stages degrade,train_ff --kills 2 --json out.json

Per stage, in fresh copies of the finished tiny pipeline (fairsplat/testing/faults.py):

1. with ``--clean``, a second clean run (``dvc repro --force --single-item``): its outputs against the
   pipeline's, the determinism check of two clean runs (same inputs, stage by stage);
2. ``--kills`` kills, each in a fresh copy: a trainer (``faults.TRAINERS``) after its first finished
   checkpoint appeared, plus a random 0-1 s, so that it has something to resume from; any other stage a
   random 0-1.5 s after its output's temporary appeared (it is writing its results: inside its loop for a
   stage that writes as it goes); a stage that builds its result in memory and writes it at the end
   (``faults.WRITES_AT_END``: report) once its own process has used a random 1-3 CPU seconds (imports
   take ~1 s; a CPU clock, so the point does not move with the machine's load); drawn with ``--seed``.
   The kill lands only while the stage's own process runs (``faults._kill_in_stage``: never in DVC's
   bookkeeping after it). A stage that finished before its kill is tried again with no delay (event ``stage``: half the delay; twice at
   most); then ``dvc repro <stage>``, checked as ``faults.kill_and_rerun`` says.

Only some stages, no second clean run (what README "Fault sweep" records for ``report``):
    .venv/bin/python -u -m bench.fault_sweep --tiny /tmp/tiny --stages report --no-clean

Prints one JSON line per run and, at the end, the Markdown table of README "Fault sweep".
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from fairsplat.testing.faults import TRAINERS, WRITES_AT_END, KillResult, Trigger, kill_and_rerun, repro_clean, scratch  # noqa: E402
from fairsplat.testing.pipeline import TinyPipeline, build  # noqa: E402


def _line(kind: str, r: KillResult) -> dict:
    return {"kind": kind, "stage": r.stage, "trigger": r.trigger, "killed_at": r.killed_at, "reran": r.reran,
            "rerun_seconds": round(r.rerun_seconds, 1), "present_after_kill": r.present_after_kill,
            "checkpoint_after_kill": len(r.checkpoint_after_kill), "bytes_differ": r.bytes_differ,
            "max_abs_diff": r.max_abs_diff, "ok": r.ok, "problems": r.problems,
            "load1": round(os.getloadavg()[0], 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", type=Path, help="a finished tiny pipeline (default: build one in a temp dir)")
    ap.add_argument("--stages", default="", help="comma-separated (default: every stage of dvc.yaml)")
    ap.add_argument("--kills", type=int, default=1, help="kills per stage")
    ap.add_argument("--clean", action=argparse.BooleanOptionalAction, default=True, help="also a second clean run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, help="where the copies go (default: a temp dir, removed)")
    ap.add_argument("--json", type=Path, help="also write every row here")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fault_sweep."))
    work = a.work or tmp
    tiny = TinyPipeline.load(a.tiny) if a.tiny else build(tmp / "tiny")
    if tiny.log:
        sys.exit(f"the tiny pipeline did not finish:\n{tiny.log}")
    stages = [s for s in a.stages.split(",") if s] or list(tiny.stages)
    rng = random.Random(a.seed)
    rows, table = [], []
    t_all = time.perf_counter()
    for stage in stages:
        clean = None
        if a.clean:
            repo = scratch(tiny.repo, work / f"{stage}.clean")
            clean = repro_clean(repo, tiny.repo, stage)
            shutil.rmtree(repo)
            rows.append(_line("clean", clean))
            print(json.dumps(rows[-1]), flush=True)
            if not clean.ok:
                print(clean.log[-3000:], file=sys.stderr)
                table.append(f"| {stage} | (second clean run) | - | FAIL: {'; '.join(clean.problems)} |")
        for k in range(a.kills):
            event = "checkpoint" if stage in TRAINERS else "stage" if stage in WRITES_AT_END else "temp"
            lo, hi = {"checkpoint": (0.0, 1.0), "stage": (1.0, 3.0), "temp": (0.0, 1.5)}[event]
            delay = round(rng.uniform(lo, hi), 2)
            for attempt in range(3):
                trigger = Trigger(event, delay / 2**attempt if event == "stage" else delay if attempt == 0 else 0.0)
                repo = scratch(tiny.repo, work / f"{stage}.kill{k}")
                res = kill_and_rerun(repo, tiny.repo, stage, trigger)
                shutil.rmtree(repo)
                rows.append(_line("kill", res))
                print(json.dumps(rows[-1]), flush=True)
                if res.killed_at is not None:
                    break
            if not res.ok:
                print(res.log[-3000:], file=sys.stderr)
            table.append(res.row())
    shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    print(f"\n{len(stages)} stages, {sum(r['kind'] == 'kill' for r in rows)} kills, "
          f"{sum(not r['ok'] for r in rows)} failed, {time.perf_counter() - t_all:.0f} s\n")  # fmt: skip
    print("| stage | killed at | after the kill | rerun |\n|---|---|---|---|")
    print("\n".join(table))


if __name__ == "__main__":
    main()
