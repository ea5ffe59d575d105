"""Stage ``report``: one self-contained page of the run, ``reports/index.html``, with an in-browser splat viewer.

    python -m stages.report --out reports/index.html
    fairsplat report --open          # the same, then opens it in a browser

Reads what the stages left (metrics/*.json, plots/, data/eval/avatars/, params.yaml, dvc.yaml, dvc.lock) and the
viewer bundle ``viewer/dist/viewer.js`` (``make env`` builds it when node is present; without it the page says so
where the viewer would be). Writes the page and ``metrics/report.json`` (its size against report.max-page-mb).
"""

from pathlib import Path

import typer

from fairsplat.sections.report import ReportParams

app = typer.Typer(add_completion=False)


@app.command()
def main(
    out: Path = typer.Option(Path("reports/index.html"), help="the page"),
    viewer: Path = typer.Option(Path("viewer/dist/viewer.js"), help="the viewer bundle (absent: no viewer, say why)"),
    avatars: Path = typer.Option(Path("data/eval/avatars"), help="stage evaluate's avatars, one PLY per type"),
    plots: Path = typer.Option(Path("plots")),
    metrics_dir: Path = typer.Option(Path("metrics")),
    pipeline: Path = typer.Option(Path("dvc.yaml"), help="stage order of the page"),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    section = ReportParams.load(params)
    from fairsplat.io.metrics import write_metrics
    from fairsplat.report.run import ReportPaths, make_report

    paths = ReportPaths(Path("."), out, viewer, pipeline, params, metrics_dir, plots, avatars)
    m = make_report(section.page_config(), paths, section.max_page_mb)
    write_metrics("report", m, root=metrics_dir)
    budget = "within" if m["page_within_budget"] else "OVER"
    typer.echo(f"report: {m['page_bytes'] / 2**20:.2f} MiB ({budget} the {section.max_page_mb} MiB budget), viewer "
               f"{'with ' + str(m['splats']) + ' splats' if m['viewer'] else 'absent: ' + str(m['viewer_reason'])} -> {out}")


if __name__ == "__main__":
    app()
