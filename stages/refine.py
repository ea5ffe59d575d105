"""Stage ``refine``: per held-out subject, refine the generator's avatar on its early frames (seed 003 §2.5).

    python -m stages.refine --head assets/head/head.npz --curated data/curated --tracks data/tracks \
        --generator models/ff --out data/refined
    dvc exp run -S refine.iterations=800 -S refine.adaptive-tto.cap=1200 -S refine.subjects-per-type=5
    dvc exp run -S 'refine.strategies=[log-scale-clamp,aspect]'      # an ablation: no scale freeze, no TTO

Outputs: ``<out>/<subject>/`` (avatar.safetensors + avatar.json, avatar.ply, heldout.png, side_by_side.mp4,
refine.json), ``<out>/manifest.parquet`` and ``rejects.parquet`` (fairsplat/refine/report.py), ``plots/refine/``
and ``metrics/refine.json``. A killed run resumes per subject from ``.checkpoints/refine`` (same params and inputs).
"""

from pathlib import Path

import typer

from fairsplat.sections.refine import RefineParams

app = typer.Typer(add_completion=False)


@app.command()
def main(
    head: Path = typer.Option(Path("assets/head/head.npz"), help="stage head's asset"),
    curated: Path = typer.Option(Path("data/curated"), help="stage curate's output"),
    tracks: Path = typer.Option(Path("data/tracks"), help="stage track's output"),
    generator: Path = typer.Option(Path("models/ff"), help="a trained generator (stage train_ff's output)"),
    out: Path = typer.Option(Path("data/refined"), help="refined avatars, one directory per subject"),
    plots: Path = typer.Option(Path("plots/refine"), help="per-type charts and held-out grids"),
    params: Path = typer.Option(Path("params.yaml")),
    metrics_dir: Path = typer.Option(Path("metrics")),
    checkpoints: Path = typer.Option(Path(".checkpoints/refine"), help="finished subjects of an interrupted run"),
    progress: bool = typer.Option(True, help="tqdm progress bar"),
) -> None:
    section = RefineParams.load(params)
    cfg = section.refine_config()
    for p in (head, curated / "manifest.parquet", tracks / "tracks.parquet", generator / "config.json"):
        if not p.exists():
            typer.echo(f"refine: {p} not found (run the stage that writes it first)", err=True)
            raise typer.Exit(2)
    import shutil
    import time

    import torch

    from fairsplat.head.model import HeadModel
    from fairsplat.io import atomic_dir
    from fairsplat.io.checkpoint import file_digest, fingerprint
    from fairsplat.io.metrics import write_metrics
    from fairsplat.io.tables import write_table
    from fairsplat.refine import report
    from fairsplat.refine.run import SPIKES, run_refine, subject_dir

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    fp = fingerprint(section.model_dump(), *(file_digest(p) for p in (head, curated / "manifest.parquet",
                     tracks / "tracks.parquet", generator / "model.safetensors")))  # fmt: skip
    t0 = time.perf_counter()
    run = run_refine(cfg, HeadModel.load(head), curated, tracks, generator, checkpoints, fp, progress)
    info = {"stage_seconds": round(time.perf_counter() - t0, 1), "threads": torch.get_num_threads()}
    m = report.metrics(run, cfg.aspect.tau, cfg.strategies, info)
    with atomic_dir(out) as tmp, atomic_dir(plots) as plot_tmp:
        for res in run.results:
            shutil.copytree(subject_dir(checkpoints, res.subject), subject_dir(tmp, res.subject),
                            ignore=shutil.ignore_patterns(SPIKES))  # fmt: skip
        write_table(report.manifest_rows(run), report.MANIFEST_SCHEMA, tmp / "manifest.parquet")
        write_table(run.rejects, report.REJECTS_SCHEMA, tmp / "rejects.parquet")
        report.write_plots(m, run, plot_tmp, checkpoints)
    write_metrics("refine", m, root=metrics_dir)
    shutil.rmtree(checkpoints, ignore_errors=True)  # the outputs are written: the run is complete
    typer.echo(f"refine: {m['subjects_refined']} subjects, held-out masked PSNR {m['ff_psnr_masked']} -> "
               f"{m['refined_psnr_masked']} (min per-type gain {m['gain_psnr_min_type']} dB), spikes "
               f"{m['spike_frac']}, {m['stage_seconds']} s -> {out}")  # fmt: skip


if __name__ == "__main__":
    app()
