"""Stage ``curate``: ITA-balanced, grey-composited face crops with subject-disjoint splits.

    python -m stages.curate --ingest data/ingest --out data/curated --plots plots/curate
    dvc exp run -S curate.size=512 -S curate.per-type=500       # seed 000's real scale

Reads the ingest manifest; writes ``<out>/crops/``, ``<out>/alpha/`` (the 8-bit
foreground mask each crop was composited with), ``<out>/labels/`` (cropped
label maps where the source has them), ``<out>/manifest.parquet`` and
``<out>/rejects.parquet`` (schemas: fairsplat/curate/tables.py; every input is
in exactly one of the two), ``plots/curate/`` (ITA histogram, sample grid per
type) and ``metrics/curate.json``.
"""

from pathlib import Path

import typer

from fairsplat.sections.curate import CurateParams
from fairsplat.sections.workers import WorkersParams

app = typer.Typer(add_completion=False)


@app.command()
def main(
    ingest: Path = typer.Option(Path("data/ingest"), help="stage ingest's output directory"),
    out: Path = typer.Option(Path("data/curated"), help="output directory"),
    plots: Path = typer.Option(Path("plots/curate"), help="histogram and sample grids"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    metrics_dir: Path = typer.Option(Path("metrics"), help="where metrics/<stage>.json goes"),
) -> None:
    cfg = CurateParams.load(params)
    engine = WorkersParams.load(params).workers_config()  # where shards run; outputs do not depend on it
    from fairsplat.curate import curate
    from fairsplat.curate.plots import write_plots
    from fairsplat.io import atomic_dir
    from fairsplat.io.metrics import write_metrics
    from fairsplat.sources import read_manifest

    manifest = ingest / "manifest.parquet"
    if not manifest.exists():
        typer.echo(f"curate: {manifest} not found; run stage ingest first (python -m stages.ingest)", err=True)
        raise typer.Exit(2)
    records = read_manifest(manifest)
    with atomic_dir(out) as tmp, atomic_dir(plots) as plot_tmp:
        result = curate(records, tmp, cfg.curate_config(), engine)
        eligible_ita = [a.ita for a in result.analyses if a.fitzpatrick is not None]
        write_plots(result.manifest, eligible_ita, tmp, plot_tmp, cfg.samples_per_type, cfg.seed)
    write_metrics("curate", result.metrics, root=metrics_dir)
    m = result.metrics
    typer.echo(f"curate: {m['accepted']} kept, {m['rejected']} rejected of {m['total']}; "
               f"shortfall {m['shortfall_total']}; ita_type_accuracy {m['ita_type_accuracy']} -> {out}")


if __name__ == "__main__":
    app()
