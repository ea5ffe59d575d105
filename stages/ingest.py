"""Stage ``ingest``: list one dataset's images in the shared manifest schema.

    python -m stages.ingest --out data/ingest                 # as dvc.yaml runs it
    dvc exp run -S ingest.source=folder -S ingest.path=/photos
    dvc exp run -S ingest.source=fairface -S ingest.path=/data/fairface-img-margin025-trainval

Sources and their layouts: ``fairsplat/sources/`` (synth, folder, fairface,
celebahq, celebvhq). Outputs: ``<out>/manifest.parquet`` (schema:
fairsplat/sources/manifest.py), ``<out>/missing.parquet`` (entries the dataset
lists but cannot deliver, with a reason), sampled frames / merged label maps
for CelebV-HQ / CelebA-HQ, and ``metrics/ingest.json``. An absent dataset
fails before any work, naming ``ingest.path`` and the expected layout.
"""

from pathlib import Path

import typer

from fairsplat.sections.ingest import IngestParams

app = typer.Typer(add_completion=False)


@app.command()
def main(
    out: Path = typer.Option(Path("data/ingest"), help="output directory"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    metrics_dir: Path = typer.Option(Path("metrics"), help="where metrics/<stage>.json goes"),
) -> None:
    cfg = IngestParams.load(params)
    from fairsplat.io import atomic_dir
    from fairsplat.io.metrics import write_metrics
    from fairsplat.sources import SOURCES, DatasetMissing
    from fairsplat.sources.ingest import run_ingest
    from fairsplat.sources.manifest import require

    try:
        require(cfg.path, "ingest.path", SOURCES[cfg.source].layout)
        with atomic_dir(out) as tmp:
            metrics = run_ingest(cfg.ingest_config(), tmp, final_dir=out)
    except DatasetMissing as err:
        typer.echo(f"ingest: source={cfg.source}: {err}", err=True)
        raise typer.Exit(2) from None
    write_metrics("ingest", metrics, root=metrics_dir)
    typer.echo(f"ingest: {metrics['accepted']} of {metrics['total']} items from {cfg.source} -> {out}")


if __name__ == "__main__":
    app()
