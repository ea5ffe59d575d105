"""Parser encoders side by side (issue 16, part 4): random-init resnet18 against ImageNet vgg16.

The CPU is too small to train every candidate for the default run's 4 epochs, so every candidate
trains the SAME reduced budget (``--epochs``, default 1 = 105 steps over the 1,679 train crops, full
warm-up + cosine schedule, every other param as params.yaml), and is scored on two held-out sets:

* ``default``: curate's val + test crops (the identities the parser never trains on), as stage
  ``train_parser`` scores them;
* ``hard``: the SAME held-out identities rendered again under ``synth.lighting: hard`` (coloured
  2,700-7,500 K light, -1.5..+1.5 EV, side key light) and curated with the default params. Its
  label maps are SynthHeads ground truth, so mIoU needs no annotation. (The 540 hard renders of
  README "Skin typing under uncontrolled light" are synth identities 0-59, 47 of them training
  identities of the parser: unusable here.)

Cost: seconds per optimiser step of each encoder, measured side by side in one process (steps
alternate between the encoders, so load on the shared machine hits both alike); the default run's
cost with another encoder is its measured time times the ratio.

    python -m bench.parser_encoders hard-set --out /tmp/parser2/hard
    python -m bench.parser_encoders speed --steps 6
    python -m bench.parser_encoders train resnet18_random --hard /tmp/parser2/hard/curated --out /tmp/parser2/runs
    python -m bench.parser_encoders score models/parser --hard /tmp/parser2/hard/curated --out /tmp/parser2/runs
    python -m bench.parser_encoders table /tmp/parser2/runs

Writes one JSON per run under ``--out``; ``table`` prints bench/README.md's table.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

VARIANTS: dict[str, dict] = {
    "resnet18_random": {"encoder": "resnet18", "encoder_weights": None},
    "vgg16_imagenet": {"encoder": "vgg16", "encoder_weights": "imagenet"},
    "vgg16_random": {"encoder": "vgg16", "encoder_weights": None},
    "resnet18_random_aug": {"encoder": "resnet18", "encoder_weights": None, "illuminant": 0.5, "blur": 0.3},
    "vgg16_imagenet_aug": {"encoder": "vgg16", "encoder_weights": "imagenet", "illuminant": 0.5, "blur": 0.3},
}
"""Candidates: overrides of params.yaml's train_parser section. ``_aug``: the photo augmentations
(parse/train.py ``photo_augment``) on half the crops, blur on 30%."""


def params_for(variant: str, params: Path, epochs: int | None):
    """params.yaml's train_parser with the variant's overrides (validated: a bad value names its key)."""
    from fairsplat.sections.train_parser import TrainParserParams

    base = TrainParserParams.load(params).model_dump()
    over = dict(VARIANTS[variant])
    if epochs is not None:
        over |= {"epochs": epochs}
    return TrainParserParams.model_validate(base | over | {"eval_every": 0, "checkpoint_every": 0})


def heldout_subjects(curated: Path, eval_splits: tuple[str, ...]) -> set[str]:
    """Subjects the parser never trains on: every crop of theirs is in an eval split."""
    from fairsplat.parse.data import read_items

    splits: dict[str, set[str]] = {}
    for it in read_items(curated):
        splits.setdefault(str(it.subject_id), set()).add(it.split)
    return {s for s, sp in splits.items() if sp <= set(eval_splits)}


def hard_set(args) -> None:
    """Held-out identities under ``synth.lighting: hard``, ingested and curated -> ``<out>/curated``."""
    from bench.hard_light import render_hard
    from fairsplat.sections.train_parser import TrainParserParams

    held = heldout_subjects(Path(args.curated), tuple(TrainParserParams.load(args.params).eval_splits))
    ids = {s.split("/", 1)[1] for s in held}  # curate's subject id is "synth/<identity_id>"
    render_hard(ids, Path(args.out), Path(args.params), Path(args.head))


def scores(model, items, batch_size: int) -> dict:
    """mIoU overall, per type and the worst type of ``model`` on ``items`` (parse/train.py ``evaluate``)."""
    from fairsplat.parse.train import evaluate

    r = evaluate(model, items, batch_size, n_boot=0)
    per = {t: v["miou"] for t, v in r.get("per_fitzpatrick", {}).items() if v.get("miou") is not None}
    worst = min(per, key=per.get) if per else None
    return {"miou": r["miou"], "images": r["images"], "per_type": per, "worst_type": worst,
            "worst_miou": per.get(worst) if worst else None}  # fmt: skip


def _sets(curated: Path, hard: Path | None, eval_splits, every: int = 1) -> dict[str, list]:
    """The held-out crops (curate's eval splits) and the hard-light crops, every ``every``-th in
    manifest order (9 crops an identity, in order: every 3rd keeps every identity, 3 crops each)."""
    from fairsplat.parse.data import read_items

    held = [it for it in read_items(curated) if it.mask is not None and it.split in eval_splits]
    out = {"default": held[::every]}
    if hard is not None:
        out["hard"] = [it for it in read_items(hard) if it.mask is not None][::every]
    return out


def thin_train(items: list, train_splits, every: int) -> list:
    """A smaller budget: every ``every``-th train crop (manifest order: every identity keeps some),
    the other splits untouched."""
    train = [it for it in items if it.split in train_splits][::every]
    return train + [it for it in items if it.split not in train_splits]


def train(args) -> None:
    """One candidate at the reduced budget; scored on both held-out sets -> ``<out>/<variant>.json``."""
    import torch

    from fairsplat.parse.data import read_items
    from fairsplat.parse.train import fit

    cfg = params_for(args.variant, args.params, args.epochs)
    tc = cfg.train_config()
    torch.set_num_threads(max(cfg.threads, 1))
    items = thin_train(read_items(args.curated), tc.train_splits, args.train_every)
    model, result = fit(items, tc, progress=True)  # tqdm on stderr: the run is long on a shared CPU
    m = result["metrics"]
    steps = m["epochs"] * -(-m["train_images"] // tc.batch_size)
    row = {"variant": args.variant, "encoder": cfg.encoder, "init": m.get("encoder_init", "random"),
           "illuminant": cfg.illuminant, "blur": cfg.blur, "epochs": cfg.epochs, "train_crops": m["train_images"],
           "steps": steps, "score_every": args.score_every,
           "train_seconds": m["train_seconds"], "s_per_step_in_run": round(m["train_seconds"] / steps, 3),
           "load1_end": round(os.getloadavg()[0], 2), "final_loss": m["final_loss"]}  # fmt: skip
    for name, its in _sets(Path(args.curated), args.hard, tc.eval_splits, args.score_every).items():
        row[name] = scores(model, its, tc.batch_size)
    _write(Path(args.out) / f"{args.variant}_{steps}steps.json", row)


def score(args) -> None:
    """An existing parser (e.g. the default pipeline's models/parser) on both held-out sets."""
    from fairsplat.models.parser import load_parser
    from fairsplat.sections.train_parser import TrainParserParams

    model = load_parser(Path(args.model))
    tr = model.cfg.training
    eval_splits = tuple(TrainParserParams.load(args.params).eval_splits)
    row = {"variant": f"model:{args.model}", "encoder": model.cfg.encoder, "init": tr.get("encoder_init", "random"),
           "epochs": tr.get("epochs"), "train_crops": tr.get("train_images"), "steps": None, "train_seconds": tr.get("train_seconds"),
           "score_every": args.score_every}  # fmt: skip
    for name, its in _sets(Path(args.curated), args.hard, eval_splits, args.score_every).items():
        row[name] = scores(model, its, 16)
    _write(Path(args.out) / f"model_{Path(args.model).name}_every{args.score_every}.json", row)


def speed(args) -> None:
    """Seconds per optimiser step of each variant's encoder, the real step (photo augment, jitter,
    loss, AdamW) on the same batches, steps alternating between the variants. Prints JSON."""
    import torch

    from fairsplat.parse.data import read_items
    from fairsplat.parse.train import ParserTask

    torch.set_num_threads(1)
    items = read_items(args.curated)
    runs = {}
    for v in args.variants:
        tc = params_for(v, args.params, None).train_config()
        task = ParserTask(items, tc, None)
        model, loader, _ = task.build(None)
        opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        runs[v] = (task, model.train(), opt, iter(loader))
    # wall seconds, and CPU seconds of this one-thread process (time.process_time): on a machine whose
    # other jobs take the cores (or pause this one), wall time measures them; CPU time measures the step
    wall: dict[str, list[float]] = {v: [] for v in runs}
    cpu: dict[str, list[float]] = {v: [] for v in runs}
    for _ in range(args.steps + 1):  # the first step of each is warm-up (allocations), dropped
        for v, (task, model, opt, it) in runs.items():
            batch = next(it)
            t0, c0 = time.perf_counter(), time.process_time()
            loss = task.train_step(model, batch)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            wall[v].append(time.perf_counter() - t0)
            cpu[v].append(time.process_time() - c0)
    base_w, base_c = (statistics.median(x[args.variants[0]][1:]) for x in (wall, cpu))
    for v in runs:
        w, c = statistics.median(wall[v][1:]), statistics.median(cpu[v][1:])
        print(json.dumps({"kind": "speed", "variant": v, "steps": args.steps,
                          "cpu_s_per_step": round(c, 3), "cpu_ratio": round(c / base_c, 2),
                          "wall_s_per_step": round(w, 3), "wall_ratio": round(w / base_w, 2),
                          "cpu_all": [round(t, 2) for t in cpu[v][1:]], "wall_all": [round(t, 2) for t in wall[v][1:]],
                          "load1": round(os.getloadavg()[0], 2)}), flush=True)  # fmt: skip


def flops(args) -> None:
    """Forward FLOPs per crop of each variant's network at train_parser.size (torch's FLOP counter:
    convolutions and matmuls), beside the timed ratio. Prints JSON."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fairsplat.models.parser import Parser

    torch.set_num_threads(1)
    for v in args.variants:
        tc = params_for(v, args.params, None).train_config()
        model = Parser(tc.model).eval()
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            model(torch.rand(1, 3, tc.model.size, tc.model.size))
        n = sum(p.numel() for p in model.parameters())
        print(json.dumps({"kind": "flops", "variant": v, "gflops_fwd_per_crop": round(fc.get_total_flops() / 1e9, 3),
                          "params_m": round(n / 1e6, 2)}), flush=True)  # fmt: skip


def table(args) -> None:
    """bench/README.md's table from the JSON files under ``runs``."""
    rows = [json.loads(p.read_text()) for p in sorted(Path(args.runs).glob("*.json"))]
    print("| run | encoder | init | aug | train crops | steps | s/step (in run) | held-out mIoU | worst type | hard-light mIoU | worst type | crops scored |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        d, h = r.get("default", {}), r.get("hard", {})
        aug = "illuminant 0.5, blur 0.3" if r.get("illuminant") else "-"
        print(f"| {r['variant']} | {r['encoder']} | {r['init']} | {aug} | {r.get('train_crops')} | {r.get('steps')} "
              f"| {r.get('s_per_step_in_run', '-')} | {d.get('miou')} | {d.get('worst_type')} {d.get('worst_miou')} "
              f"| {h.get('miou')} | {h.get('worst_type')} {h.get('worst_miou')} | {d.get('images')} + {h.get('images')} |")  # fmt: skip


def _write(path: Path, row: dict) -> None:
    from fairsplat.io.atomic import write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, row)
    print(json.dumps(row), flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--curated", type=Path, default=ROOT / "data" / "curated", help="stage curate's output (default lighting)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hard-set")
    h.add_argument("--head", type=Path, default=ROOT / "assets" / "head" / "head.npz")
    h.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("train")
    t.add_argument("variant", choices=sorted(VARIANTS))
    t.add_argument("--epochs", type=int, default=1)
    t.add_argument("--train-every", type=int, default=1, help="train on every n-th train crop (a smaller budget)")
    t.add_argument("--score-every", type=int, default=1, help="score every n-th held-out crop (cheaper scoring)")
    t.add_argument("--hard", type=Path, default=None, help="hard-set's curated dir")
    t.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("score")
    s.add_argument("model", type=Path)
    s.add_argument("--hard", type=Path, default=None)
    s.add_argument("--score-every", type=int, default=1)
    s.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("speed")
    p.add_argument("--variants", nargs="+", default=["resnet18_random", "vgg16_imagenet"], choices=sorted(VARIANTS))
    p.add_argument("--steps", type=int, default=6)
    f = sub.add_parser("flops")
    f.add_argument("--variants", nargs="+", default=["resnet18_random", "vgg16_imagenet"], choices=sorted(VARIANTS))
    tb = sub.add_parser("table")
    tb.add_argument("runs", type=Path)
    args = ap.parse_args(argv)
    {"hard-set": hard_set, "train": train, "score": score, "speed": speed, "flops": flops, "table": table}[args.cmd](args)


if __name__ == "__main__":
    main()
