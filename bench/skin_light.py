"""Skin typing under hard light (README "Skin typing under uncontrolled light"): every illumination method on
SynthHeads rendered with ``synth.lighting: hard``, per crop and per subject, raw beside it.

Run (CPU, one thread):
    python -m bench.skin_light render --out /tmp/skin/hard128 --size 128              # identities 0-59, 540 renders
    python -m bench.skin_light render --out /tmp/skin/hard512 --size 512 --uv 256     # the same identities at 512 px
    python -m bench.skin_light render --out /tmp/skin/default512 --size 512 --uv 256 --lighting default
    python -m bench.skin_light score /tmp/skin/hard128 --size 128                      # the README table
    python -m bench.skin_light score data/raw/synth --size 128 --methods raw,sclera   # default lighting

``score`` runs curation's own analysis (curate/item.py ``analyse``: ground-truth landmarks, label-map skin mask,
the MediaPipe mesh and iris on the crop) once per ``curate.ita-method``, then the per-subject aggregation of
curate/run.py ``per_subject_ita``, and prints one JSON line per method and aggregation (per-type accuracy and
share within one type of the truth, ITA MAE against the albedo's ``ita_gt``, how many crops a correction was
used on, and the error of the corrected ITA on those crops alone), then the markdown rows.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from fairsplat.faces.illumination import ILLUMINATION  # noqa: E402
from fairsplat.labels import FITZPATRICK as TYPES  # noqa: E402  ("I" .. "VI")

METHODS = ("raw", *ILLUMINATION)  # curate.ita-method's values


def render(args) -> None:
    """Identities ``synth_0000`` .. ``synth_<n-1>`` (10 per type for n = 60, as the README's set) under
    ``--lighting`` (hard by default; default lighting to check that a correction costs nothing in good light)."""
    from bench.hard_light import build_synth
    from fairsplat.sections.synth import SynthParams

    cfg = SynthParams.load(args.params).synth_config()
    cfg = replace(cfg, lighting=args.lighting, size=args.size, uv_resolution=args.uv or cfg.uv_resolution, workers=1)
    build_synth({f"synth_{i:04d}" for i in range(args.identities)}, Path(args.out), cfg, Path(args.head))


def _scores(records, analyses, scheme: str) -> dict:
    """Per-type accuracy / within one type, overall, ITA MAE; corrections used and their own error."""
    from fairsplat.faces.skin_types import FITZPATRICK, classify

    def t(ita: float) -> str:
        return classify(float(np.clip(ita, -90, 90)), scheme).fitzpatrick

    rows = [(r, a) for r, a in zip(records, analyses) if a.ok and a.ita is not None]
    per = {}
    for ty in TYPES:
        sel = [(r, a) for r, a in rows if r.fitzpatrick_gt == ty]
        hit = [t(a.ita) == ty for _, a in sel]
        w1 = [abs(FITZPATRICK.index(t(a.ita)) - FITZPATRICK.index(ty)) <= 1 for _, a in sel]
        per[ty] = {"acc": float(np.mean(hit)) if sel else None, "within1": float(np.mean(w1)) if sel else None, "n": len(sel)}
    used = [(r, a) for r, a in rows if a.ita_method not in (None, "raw")]
    err_used = [a.ita - r.ita_gt for r, a in used]
    return {
        "n": len(rows), "rejected": len(analyses) - len(rows),
        "acc": float(np.mean([t(a.ita) == r.fitzpatrick_gt for r, a in rows])),
        "within1": float(np.mean([abs(FITZPATRICK.index(t(a.ita)) - FITZPATRICK.index(r.fitzpatrick_gt)) <= 1 for r, a in rows])),
        "worst_acc": min(v["acc"] for v in per.values() if v["acc"] is not None),
        "mae": float(np.mean([abs(a.ita - r.ita_gt) for r, a in rows])),
        "used": len(used), "used_mae": float(np.mean(np.abs(err_used))) if used else None,
        "used_bias": float(np.median(err_used)) if used else None,
        "used_acc": float(np.mean([t(a.ita) == r.fitzpatrick_gt for r, a in used])) if used else None,
        "used_raw_acc": float(np.mean([t(a.ita_raw) == r.fitzpatrick_gt for r, a in used])) if used else None,
        "used_raw_mae": float(np.mean([abs(a.ita_raw - r.ita_gt) for r, a in used])) if used else None,
        "per_type": per,
    }  # fmt: skip


def _plain_subject_median(records, analyses) -> list:
    """Copies of ``analyses`` whose ``ita`` is the plain median of their subject's frames (every frame alike,
    corrected or raw): the per-subject rule before frames with a reference outvoted the rest, for comparison."""
    out = copy.deepcopy(analyses)
    by: dict = {}
    for r, a in zip(records, out):
        if a.ok and a.ita is not None:
            by.setdefault(r.subject_id, []).append(a)
    for frames in by.values():
        med = float(np.median([a.ita for a in frames]))
        for a in frames:
            a.ita = med
    return out


def _md(name: str, s: dict) -> str:
    cells = " | ".join(f"{v['acc']:.2f}/{v['within1']:.2f}".replace("0.", ".").replace("1.00", "1.0") for v in s["per_type"].values())
    return f"| {name} | {cells} | {s['acc']:.3f} | {s['within1']:.3f} | {s['mae']:.1f}° |"


def score(args) -> None:
    from fairsplat.curate.item import analyse
    from fairsplat.curate.run import per_subject_ita
    from fairsplat.sections.curate import CurateParams
    from fairsplat.sources.synth import iter_records

    base = replace(CurateParams.load(args.params).curate_config(), size=args.size, workers=1)
    records = list(iter_records(args.root))[:: args.step]
    lines = []
    for method in args.methods.split(","):
        cfg = replace(base, ita_method=method)
        t0 = time.perf_counter()
        analyses = [analyse(r, cfg) for r in records]
        sec = time.perf_counter() - t0
        runs = {"crop": analyses}
        if cfg.ita_per_subject:
            subj = copy.deepcopy(analyses)
            per_subject_ita(records, subj, cfg.scheme)
            runs["subject"] = subj
            if method not in ("raw", "grey_edge", "white_patch"):  # the rule before confident frames outvoted the rest
                runs["subject_plain"] = _plain_subject_median(records, analyses)
        for agg, an in runs.items():
            s = _scores(records, an, cfg.scheme)
            print(json.dumps({"method": method, "agg": agg, "size": args.size, "s_per_crop": sec / len(records), **s}), flush=True)
            lines.append(_md(f"`{method}`, {agg.replace('_', ' ')} (used on {s['used']} of {s['n']})", s))
    print("| `ita` from | " + " | ".join(TYPES) + " | all | ±1 all | ITA MAE |")
    print("|---|" + "---|" * (len(TYPES) + 3))
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render")
    r.add_argument("--out", required=True)
    r.add_argument("--size", type=int, default=128)
    r.add_argument("--uv", type=int, default=None, help="synth.uv-resolution (256 at 512 px, as params/gpu.yaml)")
    r.add_argument("--identities", type=int, default=60)
    r.add_argument("--lighting", default="hard", choices=("hard", "default"))
    r.add_argument("--head", default="assets/head/head.npz")
    s = sub.add_parser("score")
    s.add_argument("root", help="a SynthHeads root (manifest.parquet)")
    s.add_argument("--size", type=int, default=128, help="curate.size")
    s.add_argument("--methods", default=",".join(METHODS))
    s.add_argument("--step", type=int, default=1, help="every n-th render")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    {"render": render, "score": score}[a.cmd](a)


if __name__ == "__main__":
    main()
