"""Stage ``enhance``: the trained enhancer on the generator's and the refinement's renders of held-out frames,
scored against ground truth.

    python -m stages.enhance --enhancer models/enhancer --ff models/ff --refined data/refined --out data/enhanced
    dvc exp run -S enhance.max-targets=4

Outputs: ``<out>/<source>/{render,enhanced}/<target_id>.png`` and ``<out>/scores.parquet`` (one row per
rendered target: raw and enhanced scores, fairsplat/enhancer/apply.py), ``plots/enhance/`` (ground truth |
render | enhanced grid, per-type bars with CIs) and ``metrics/enhance.json`` (fairsplat/enhancer/report.py).
"""

import time
from pathlib import Path

import typer

from fairsplat.sections.enhance import EnhanceParams

app = typer.Typer(add_completion=False)


@app.command()
def main(
    enhancer: Path = typer.Option(Path("models/enhancer"), help="stage train_enhancer's output"),
    ff: Path = typer.Option(Path("models/ff"), help="stage train_ff's output (source ff)"),
    refined: Path = typer.Option(Path("data/refined"), help="stage refine's output (source refined)"),
    head: Path = typer.Option(Path("assets/head/head.npz"), help="stage head's asset"),
    curated: Path = typer.Option(Path("data/curated"), help="stage curate's output (ground truth)"),
    tracks: Path = typer.Option(Path("data/tracks"), help="stage track's output (the targets' FLAME and camera)"),
    out: Path = typer.Option(Path("data/enhanced"), help="renders, enhanced renders, scores"),
    plots: Path = typer.Option(Path("plots/enhance"), help="grids and per-type bars"),
    params: Path = typer.Option(Path("params.yaml")),
    metrics_dir: Path = typer.Option(Path("metrics")),
) -> None:
    section = EnhanceParams.load(params)
    cfg = section.enhance_config()
    import torch

    from fairsplat.enhancer.apply import Inputs, run_enhance
    from fairsplat.enhancer.checkpoint import load_any
    from fairsplat.enhancer.enhance_report import GridCollector, enhance_metrics, write_enhance_plots
    from fairsplat.enhancer.tables import rows_schema
    from fairsplat.io import atomic_dir
    from fairsplat.io.images import save_png
    from fairsplat.io.metrics import write_metrics
    from fairsplat.io.tables import write_table

    if section.threads:
        torch.set_num_threads(section.threads)
    model, _ = load_any(enhancer)
    t0 = time.perf_counter()
    with atomic_dir(out) as tmp, atomic_dir(plots) as plot_tmp:
        grids = GridCollector(cfg.grid_subjects)

        def keep(rb, enhanced) -> None:
            grids(rb, enhanced)
            for kind, imgs in (("render", rb.render), ("enhanced", enhanced)):
                (tmp / rb.source / kind).mkdir(parents=True, exist_ok=True)
                u8 = (imgs.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()  # [T, S, S, 3]
                for tid, img in zip(rb.target_ids, u8):
                    save_png(tmp / rb.source / kind / f"{tid}.png", img, atomic=False)

        rows, absent = run_enhance(model, Inputs(head, curated, tracks, ff, refined), cfg, keep)
        if not rows:
            raise typer.BadParameter(f"enhance.sources {list(cfg.sources)}: nothing to enhance ({absent})")
        write_table(rows, rows_schema(rows), tmp / "scores.parquet")
        present = [s for s in cfg.sources if s not in absent]
        info = {"seconds": round(time.perf_counter() - t0, 1), "sources_absent": absent}
        m = enhance_metrics(rows, info, present)
        grids.save(plot_tmp)
        write_enhance_plots(m, present, plot_tmp)
    write_metrics("enhance", m, root=metrics_dir)
    for src, why in absent.items():
        typer.echo(f"enhance {src}: absent ({why})")
    for src in present:
        typer.echo(f"enhance {src}: masked PSNR {m[f'{src}_psnr_masked_input']} -> {m[f'{src}_psnr_masked']}, "
                   f"LPIPS {m[f'{src}_lpips_alex_input']} -> {m[f'{src}_lpips_alex']} ({m[f'{src}_targets']} renders)")
    typer.echo(f"enhance -> {out}")


if __name__ == "__main__":
    app()
