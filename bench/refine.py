"""Refinement benchmarks: iterations per second by resolution, and the anti-spike ablation (bench/README.md).

Run:
    .venv/bin/python -m bench.refine speed                               # 128/256/512 px, 2,048 Gaussians, 1 thread
    .venv/bin/python -m bench.refine speed --sizes 512 --lam             # + LAM-20K points (the GPU preset's count)
    .venv/bin/python -m bench.refine speed --device cuda --backend gsplat --sizes 512 --lam --iters 10000   # on a GPU
    .venv/bin/python -m bench.refine ablation --root /tmp/rdev --per-type 1 --types I VI --iterations 400
    .venv/bin/python -m bench.refine spikes --root .                    # after a stage run: train vs held-out spikes

``speed``: the real loop (``fairsplat.refine.loop.refine``) on one avatar and four synthetic views, every
anti-spike strategy active from iteration 0 (the steady state after seed 003's iteration 500: penalty
included), one image per iteration; prints its/s, ms/it, the cores other processes used meanwhile
(``others_cpu``, /proc/stat) and the projection to 10K iterations.

``ablation``: stage refine's own per-subject path (plan, FF init from the generator, refine, held-out
scores, spike statistics over the held-out cameras) on a few test subjects, once per variant: full;
no scale freeze; no clamp; no aspect penalty; the penalty on the training cameras only (no turned
cameras: seed 003's form) (adaptive TTO off in all, so every variant runs the same
iterations; the subjects' plans are the stage's, so with ``adaptive-tto`` in params the watched crop stays out of
training as in the stage). ``--root`` is a repo with ``assets/head``, ``data/curated``, ``data/tracks``, ``models/ff``.
Prints one JSON row per (variant, subject), then a markdown table of the means. ``--clamp-min``/``--clamp-max``
override ``refine.log-scale-clamp``'s bounds for every variant (what a tighter clamp changes); ``--turned DEG``
adds the spike share on the held-out cameras turned by (±DEG, ±DEG) about the head (poses no camera saw).

``spikes``: the refined avatars of a finished stage run (``<root>/data/refined``), their spike share in the
cameras they were trained on against their held-out cameras, and the share sitting just under the bound
(e^(1.8τ)..e^(2τ)): where the penalty's hinge leaves them, and how many a new pose tips over.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.raster import _busy_seconds  # noqa: E402
from fairsplat.avatar.avatar import Avatar  # noqa: E402
from fairsplat.avatar.binding import AvatarBinding, BindingSpec  # noqa: E402
from fairsplat.refine.config import AspectConfig, ClampConfig, RefineConfig, ScaleFreezeConfig  # noqa: E402
from fairsplat.refine.loop import Views, refine  # noqa: E402
from fairsplat.refine.strategies import build_strategies  # noqa: E402

ANTI_SPIKE = ("scale-freeze", "log-scale-clamp", "aspect")
VARIANTS: dict[str, tuple[tuple[str, ...], dict]] = {
    "full": (ANTI_SPIKE, {}),
    "no scale freeze": (("log-scale-clamp", "aspect"), {}),
    "no clamp": (("scale-freeze", "aspect"), {}),
    "no aspect penalty": (("scale-freeze", "log-scale-clamp"), {}),
    "penalty on training cameras only": (ANTI_SPIKE, {"jitter_views": 0}),  # seed 003's penalty, no turned cameras
}
"""name -> (anti-spike strategies, overrides of refine.aspect)."""


def _head():
    from fairsplat.head.model import HeadModel

    path = Path(ROOT) / "assets/head/head.npz"
    if path.is_file():
        return HeadModel.load(path)
    from fairsplat.head.procedural import build_procedural_head

    return build_procedural_head()


def _views(binding: AvatarBinding, size: int, n: int = 4, device: str = "cpu") -> Views:
    from fairsplat.splat.camera import intrinsics, look_at

    with torch.no_grad():
        centre = binding.canonical()[0].mean(0)
    eyes = [centre + torch.tensor([x, 0.0, 1.0]) for x in torch.linspace(-0.3, 0.3, n).tolist()]
    g = torch.Generator().manual_seed(0)
    v = Views(torch.rand(n, 3, size, size, generator=g), torch.ones(n, 1, size, size), torch.zeros(n, binding.layer.n_expr),
              torch.zeros(n, 15), torch.zeros(n, 3), torch.stack([look_at(e, centre) for e in eyes]),
              intrinsics(size, size, fov_deg=18.0).expand(n, 3, 3).clone())  # fmt: skip
    return Views(*(t.to(device) for t in (v.images, v.alpha, v.expr, v.pose, v.transl, v.viewmat, v.K)))


def speed(args) -> None:
    head = _head()
    specs = [("points-2048", BindingSpec("points", max_points=2048))]
    if args.lam:
        specs.append(("LAM-20K", BindingSpec("points", levels=1)))
    cfg = RefineConfig(iterations=args.iters, strategies=ANTI_SPIKE, scale_freeze=ScaleFreezeConfig(0),
                       clamp=ClampConfig(start=0), aspect=AspectConfig(start=0, jitter_views=args.jitter_views),
                       backend=args.backend)  # fmt: skip
    for name, spec in specs:
        binding = AvatarBinding(head, spec).to(args.device)
        init = Avatar.neutral(binding)
        init = Avatar(*(t.to(args.device) if isinstance(t, torch.Tensor) else t for t in
                        (init.binding, init.offsets, init.quats, init.log_scales, init.colors, init.opacities, init.shape)))  # fmt: skip
        for size in args.sizes:
            views = _views(binding, size, device=args.device)
            refine(init, views, replace(cfg, iterations=3), build_strategies(cfg, binding.base_log_scales))  # warm-up
            busy0, t0 = _busy_seconds(), time.perf_counter()
            res = refine(init, views, cfg, build_strategies(cfg, binding.base_log_scales))
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            wall = time.perf_counter() - t0
            others = max(0.0, (_busy_seconds() - busy0) / wall - torch.get_num_threads())
            its = res.iterations / res.seconds
            print(json.dumps({"what": "refine iteration", "binding": name, "gaussians": len(binding), "size": size,
                              "device": args.device, "backend": args.backend, "threads": torch.get_num_threads(),
                              "iterations": res.iterations, "its_per_s": round(its, 2), "ms_per_it": round(1000 / its, 1),
                              "projected_10k_s": round(10_000 / its, 1), "others_cpu": round(others, 2),
                              "load1": round(os.getloadavg()[0], 2)}), flush=True)  # fmt: skip


def ablation(args) -> None:
    from fairsplat.ff.data import load_frames
    from fairsplat.head.model import HeadModel
    from fairsplat.models.generator import GeneratorConfig, load_generator
    from fairsplat.refine.data import load_track_info, plan_subjects
    from fairsplat.refine.run import refine_subject, views_of
    from fairsplat.sections.refine import RefineParams

    root = Path(args.root)
    base = RefineParams.load(Path(ROOT) / "params.yaml").refine_config()
    per_type = None if args.subjects else args.per_type  # named subjects: every subject is planned, then filtered
    base = replace(base, iterations=args.iterations or base.iterations, subjects_per_type=per_type)
    if args.clamp_min is not None or args.clamp_max is not None:
        base = replace(base, clamp=replace(base.clamp, min=base.clamp.min if args.clamp_min is None else args.clamp_min,
                                           max=base.clamp.max if args.clamp_max is None else args.clamp_max))  # fmt: skip
    if args.phase is not None:
        base = replace(base, scale_freeze=ScaleFreezeConfig(args.phase), clamp=replace(base.clamp, start=args.phase),
                       aspect=replace(base.aspect, start=args.phase))  # fmt: skip
    head = HeadModel.load(root / "assets/head/head.npz")
    frames = load_frames(root / "data/curated", root / "data/tracks", list(base.splits))
    info = load_track_info(root / "data/tracks", base.max_track_nme)
    model, meta = load_generator(root / "models/ff")
    binding = AvatarBinding(head, GeneratorConfig.from_json(meta).binding)
    plans, _ = plan_subjects(frames, info, base)  # the stage's plan: with adaptive-tto on, its watched crop stays out
    plans = [p for p in plans if (not args.types or p.fitzpatrick in args.types) and (not args.subjects or p.subject in args.subjects)]
    size = int(frames.images.shape[-1])
    table: dict[str, list[dict]] = {}
    for variant, (strategies, aspect) in VARIANTS.items():
        cfg = replace(base, strategies=strategies, aspect=replace(base.aspect, **aspect))
        for plan in plans:
            res, _, refined = refine_subject(model, frames, binding, plan, cfg, size)
            ref = [r for r in res.rows if r["variant"] == "refined"]
            ff = [r for r in res.rows if r["variant"] == "ff"]
            mean = lambda rows, k: sum(r[k] for r in rows) / len(rows)  # noqa: E731
            row = {"variant": variant, "subject": plan.subject, "type": plan.fitzpatrick, "iterations": res.info["iterations"],
                   "ff_psnr_masked": round(mean(ff, "psnr_masked"), 3), "psnr_masked": round(mean(ref, "psnr_masked"), 3),
                   "psnr": round(mean(ref, "psnr"), 3), "spike_frac": res.info["spike_frac"],
                   "aspect_p99": res.info["aspect_p99"], "aspect_max": res.info["aspect_max"],
                   "ff_spike_frac": res.info["ff_spike_frac"], "seconds": res.info["seconds"],
                   "clamped": res.info["strategies"].get("log-scale-clamp", {}).get("clamped")}  # fmt: skip
            if args.turned:  # the held-out cameras turned about the head: poses no camera of refinement saw
                r = turned_log_ratios(refined, views_of(frames, plan.heldout), size, args.turned)
                row["turned_spike_frac"] = float((r > 2.0 * base.aspect.tau).double().mean())
            table.setdefault(variant, []).append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{len(plans)} subject(s): {', '.join(p.subject + ' (' + str(p.fitzpatrick) + ')' for p in plans)}; "
          f"{base.iterations} iterations; tau {base.aspect.tau} (bound {2.718281828 ** (2 * base.aspect.tau):.2f})\n")
    turned = f" spike frac (%) turned ±{args.turned:g}° |" if args.turned else ""
    print(f"| variant | held-out PSNR (masked) | held-out PSNR | spike frac (%) | aspect p99 | aspect max | clamp hits |{turned}")
    print("|---|---|---|---|---|---|---|" + ("---|" if args.turned else ""))
    for variant, rows in table.items():
        m = lambda k: sum(r[k] for r in rows) / len(rows)  # noqa: E731
        hits = m("clamped") if rows[0]["clamped"] is not None else None
        print(f"| {variant} | {m('psnr_masked'):.2f} | {m('psnr'):.2f} | {100 * m('spike_frac'):.3f} | "
              f"{m('aspect_p99'):.2f} | {max(r['aspect_max'] for r in rows):.1f} | {'' if hits is None else round(hits)} |"
              + (f" {100 * m('turned_spike_frac'):.3f} |" if args.turned else ""))
    ff = table["full"]
    print(f"| FF init | {sum(r['ff_psnr_masked'] for r in ff) / len(ff):.2f} | | "
          f"{100 * sum(r['ff_spike_frac'] for r in ff) / len(ff):.3f} | | | |")


@torch.no_grad()
def turned_log_ratios(avatar: Avatar, views: Views, size: int, deg: float) -> torch.Tensor:  # -> [M]
    """log λmax/λmin of the drawn Gaussians in each view turned about the head by (±deg, ±deg): 4 turns per view,
    counted by stage refine's own ``log_ratios`` on the views with their cameras turned."""
    from fairsplat.refine.aspect import turn_about
    from fairsplat.refine.run import log_ratios

    means, _, _ = avatar.posed(views.expr, views.pose, views.transl)  # [T, G, 3]: each view's head centre
    yaw, pitch = torch.tensor([deg, -deg, deg, -deg]), torch.tensor([deg, deg, -deg, -deg])
    cams = torch.cat([turn_about(views.viewmat[i], means[i].mean(0), yaw, pitch) for i in range(len(views))])  # [4T, 4, 4]
    return log_ratios(avatar, replace(views.take([i for i in range(len(views)) for _ in range(4)]), viewmat=cams), size)


def spikes(args) -> None:
    from fairsplat.ff.data import load_frames
    from fairsplat.head.model import HeadModel
    from fairsplat.models.generator import GeneratorConfig, load_generator
    from fairsplat.refine.data import load_track_info, plan_subjects
    from fairsplat.refine.run import log_ratios, views_of
    from fairsplat.sections.refine import RefineParams

    root = Path(args.root)
    cfg = RefineParams.load(Path(ROOT) / "params.yaml").refine_config()
    head = HeadModel.load(root / "assets/head/head.npz")
    frames = load_frames(root / "data/curated", root / "data/tracks", list(cfg.splits))
    plans, _ = plan_subjects(frames, load_track_info(root / "data/tracks", cfg.max_track_nme), cfg)
    binding = AvatarBinding(head, GeneratorConfig.from_json(load_generator(root / "models/ff")[1]).binding)
    size, hi, lo = int(frames.images.shape[-1]), 2.0 * cfg.aspect.tau, 1.8 * cfg.aspect.tau
    pooled: dict[str, list[torch.Tensor]] = {"train": [], "heldout": []}
    for plan in plans:
        avatar = Avatar.load(root / "data/refined" / plan.subject, head, binding)
        row = {"subject": plan.subject, "type": plan.fitzpatrick}
        for name, rows in (("train", plan.train), ("heldout", plan.heldout)):
            r = log_ratios(avatar, views_of(frames, rows), size)  # [M] log λmax/λmin of drawn Gaussians
            pooled[name].append(r)
            row |= {f"{name}_spike_pct": round(100 * float((r > hi).double().mean()), 3),
                    f"{name}_edge_pct": round(100 * float(((r > lo) & (r <= hi)).double().mean()), 3)}  # fmt: skip
        print(json.dumps(row), flush=True)
    for name, rs in pooled.items():
        r = torch.cat(rs)
        print(f"{name}: {r.numel()} drawn (camera, Gaussian) pairs; above e^(2τ) {100 * float((r > hi).double().mean()):.3f} %; "
              f"in e^(1.8τ)..e^(2τ) {100 * float(((r > lo) & (r <= hi)).double().mean()):.2f} %")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    s.add_argument("--iters", type=int, default=40)
    s.add_argument("--lam", action="store_true", help="also LAM-20K points")
    s.add_argument("--device", default="cpu")
    s.add_argument("--backend", default="auto")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--jitter-views", type=int, default=2, help="refine.aspect.jitter-views (params.yaml: 2)")
    a = sub.add_parser("ablation")
    a.add_argument("--root", default=ROOT)
    a.add_argument("--per-type", type=int, default=1)
    a.add_argument("--types", nargs="*", default=None)
    a.add_argument("--subjects", nargs="*", default=None, help="subject ids (e.g. synth/synth_0230); overrides --per-type")
    a.add_argument("--iterations", type=int, default=None)
    a.add_argument("--phase", type=int, default=None, help="freeze/clamp/penalty start (default: params.yaml's)")
    a.add_argument("--clamp-min", type=float, default=None, help="log-scale-clamp.min (default: params.yaml's)")
    a.add_argument("--clamp-max", type=float, default=None, help="log-scale-clamp.max (default: params.yaml's)")
    a.add_argument("--turned", type=float, default=0.0, help="also count spikes with the held-out cameras turned ±DEG")
    a.add_argument("--threads", type=int, default=1)
    k = sub.add_parser("spikes")
    k.add_argument("--root", default=ROOT)
    k.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    {"speed": speed, "ablation": ablation, "spikes": spikes}[args.cmd](args)


if __name__ == "__main__":
    main()
