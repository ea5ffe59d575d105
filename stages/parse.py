"""Stage ``parse``: a CelebAMask-HQ label map for every curated crop (or a recorded reason).

    python -m stages.parse --curated data/curated --model models/parser --out data/parsed --plots plots/parse
    dvc exp run -S parse.backend=ground_truth                  # SynthHeads labels as masks
    dvc exp run -S parse.backend=segformer -S parse.segformer-path=/models/face-parsing

Outputs: ``<out>/masks/*.png``, ``<out>/manifest.parquet``, ``<out>/rejects.parquet``
(schemas: fairsplat/parse/run.py; accepted + rejected = curated crops),
``plots/parse/masks.png`` and ``metrics/parse.json``.
"""

from pathlib import Path

import typer

from fairsplat.sections.parse import ParseParams
from fairsplat.sections.workers import WorkersParams

app = typer.Typer(add_completion=False)


@app.command()
def main(
    curated: Path = typer.Option(Path("data/curated"), help="stage curate's output directory"),
    model: Path = typer.Option(Path("models/parser"), help="stage train_parser's checkpoint (backend trained)"),
    out: Path = typer.Option(Path("data/parsed"), help="output directory"),
    plots: Path = typer.Option(Path("plots/parse"), help="crops beside their masks"),
    params: Path = typer.Option(Path("params.yaml")),
    metrics_dir: Path = typer.Option(Path("metrics")),
    progress: bool = typer.Option(True, help="tqdm progress bar"),
) -> None:
    cfg = ParseParams.load(params)
    engine = WorkersParams.load(params).workers_config()  # where shards run; outputs do not depend on it
    from fairsplat.io import atomic_dir
    from fairsplat.io.metrics import write_metrics
    from fairsplat.parse.backends import BACKENDS, Options
    from fairsplat.parse.data import read_items
    from fairsplat.io.tables import write_table
    from fairsplat.parse.run import MANIFEST_SCHEMA, REJECTS_SCHEMA, parse_all, write_plot
    from fairsplat.parse.base import resolve_device

    opts = Options(
        model_dir=model, segformer_path=Path(cfg.segformer_path) if cfg.segformer_path else None,
        label_map=cfg.segformer_label_map, batch_size=cfg.batch_size, device=str(resolve_device(cfg.device)),
    )  # fmt: skip
    backend = BACKENDS[cfg.backend](opts)
    items = read_items(curated)
    with atomic_dir(out) as tmp, atomic_dir(plots) as plot_tmp:
        rows, rejects, metrics = parse_all(items, backend, tmp, curated, cfg.min_foreground, cfg.batch_size, progress,
                                            cfg.workers, engine)  # fmt: skip
        write_table(rows, MANIFEST_SCHEMA, tmp / "manifest.parquet")
        write_table(rejects, REJECTS_SCHEMA, tmp / "rejects.parquet")
        write_plot(rows, tmp, curated, plot_tmp / "masks.png")
    write_metrics("parse", metrics, root=metrics_dir)
    typer.echo(f"parse[{cfg.backend}]: {metrics['accepted']} masks, {metrics['rejected']} rejected "
               f"of {metrics['total']}; mIoU vs labels {metrics['miou_vs_labels']} -> {out}")  # fmt: skip


if __name__ == "__main__":
    app()
