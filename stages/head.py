"""Stage ``head``: write the FLAME-format head asset every later stage uses.

    python -m stages.head --out assets/head            # as dvc.yaml runs it
    dvc exp run -S head.n-shape=30                     # an experiment
    dvc exp run -S head.flame-path=/data/flame2023.pkl -S head.landmark-path=...

Outputs: ``<out>/head.npz`` (no pickles), ``plots/head/preview.png`` (the head as
bound Gaussians through the project's rasteriser) and ``metrics/head.json``.
"""

from pathlib import Path

import typer

from fairsplat.sections.head import HeadParams

app = typer.Typer(add_completion=False)


@app.command()
def main(
    out: Path = typer.Option(Path("assets/head"), help="output directory"),
    plots: Path = typer.Option(Path("plots/head"), help="preview render"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    metrics_dir: Path = typer.Option(Path("metrics"), help="where metrics/<stage>.json goes"),
) -> None:
    from fairsplat.head.asset import make_head
    from fairsplat.io import atomic_dir
    from fairsplat.io.metrics import write_metrics
    from fairsplat.splat.preview import head_metrics, save_preview

    cfg = HeadParams.load(params)
    head = make_head(cfg.head_config())
    with atomic_dir(out) as tmp, atomic_dir(plots) as plot_tmp:
        head.save(tmp / "head.npz")
        render_ms = save_preview(head, plot_tmp / "preview.png", size=cfg.preview_size, uv_resolution=cfg.uv_resolution)
    write_metrics("head", {**head_metrics(head, cfg.uv_resolution), "preview_render_ms": render_ms}, root=metrics_dir)
    typer.echo(f"head: {head.source}, {head.n_vertices} vertices -> {out}")


if __name__ == "__main__":
    app()
