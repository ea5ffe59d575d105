"""Stage ``degrade``: seed 001's region-driven degraded/clean pairs, K per curated crop.

    python -m stages.degrade --curated data/curated --parsed data/parsed --out data/pairs --plots plots/degrade
    dvc exp run -S degrade.k=4 -S degrade.strengths.mouth=0.95 -S degrade.steps.region-blur.prob=0.9

Outputs: ``<out>/{clean,masks,degraded}/*.png``, ``<out>/manifest.parquet`` (one row per
pair) and ``<out>/rejects.parquet`` (crops with no usable mask, with the reason;
schemas: fairsplat/degrade/run.py), ``plots/degrade/`` (clean | degraded | regions grid,
damage per region) and ``metrics/degrade.json``.
"""

from pathlib import Path

import typer

from fairsplat.sections.degrade import DegradeSection
from fairsplat.sections.workers import WorkersParams

app = typer.Typer(add_completion=False)


@app.command()
def main(
    curated: Path = typer.Option(Path("data/curated"), help="stage curate's output directory"),
    parsed: Path = typer.Option(Path("data/parsed"), help="stage parse's output directory"),
    out: Path = typer.Option(Path("data/pairs"), help="output directory"),
    plots: Path = typer.Option(Path("plots/degrade"), help="sample grid and damage table"),
    params: Path = typer.Option(Path("params.yaml")),
    metrics_dir: Path = typer.Option(Path("metrics")),
    progress: bool = typer.Option(True, help="tqdm progress bar"),
) -> None:
    cfg = DegradeSection.load(params)
    engine = WorkersParams.load(params).workers_config()  # where shards run; outputs do not depend on it
    from fairsplat.degrade.report import degrade_metrics, write_plots
    from fairsplat.degrade.run import MANIFEST_SCHEMA, REJECTS_SCHEMA, Settings, degrade_all, read_jobs, sample_jobs
    from fairsplat.io import atomic_dir
    from fairsplat.io.metrics import write_metrics
    from fairsplat.io.tables import write_table

    available = read_jobs(curated, parsed)
    jobs = sample_jobs(available, cfg.per_type, cfg.seed)
    with atomic_dir(out) as tmp, atomic_dir(plots) as plot_tmp:
        st = Settings(cfg.pipeline_params(), cfg.k, cfg.seed, tmp, cfg.measure_every)
        rows, rejects, seconds = degrade_all(jobs, st, cfg.workers, progress, engine)
        write_table(rows, MANIFEST_SCHEMA, tmp / "manifest.parquet", drop=("subject_id",))  # kept for the bootstrap
        write_table(rejects, REJECTS_SCHEMA, tmp / "rejects.parquet", drop=("subject_id",))
        write_plots(rows, tmp, plot_tmp)
    metrics = degrade_metrics(len(jobs), rows, rejects, seconds, cfg.k, cfg.workers, vars(st.params.strengths))
    metrics = {"images_available": len(available), **metrics}  # images_total: the per-type sample
    write_metrics("degrade", metrics, root=metrics_dir)
    typer.echo(f"degrade: {metrics['pairs']} pairs from {metrics['images_accepted']} crops "
               f"({metrics['images_rejected']} rejected); order ok: MAD {metrics['damage_order_ok_mad']}, "
               f"effective strength {metrics['effective_order_ok']} -> {out}")  # fmt: skip


if __name__ == "__main__":
    app()
