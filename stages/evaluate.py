"""Stage ``evaluate``: every avatar variant that exists, self- and cross-reenacted on held-out subjects, per type.

    python -m stages.evaluate --head assets/head/head.npz --curated data/curated --tracks data/tracks \
        --ff models/ff --lora models/lora --refined data/refined --enhancer models/enhancer --out data/eval
    dvc exp run -S evaluate.cross-frames=3 && dvc metrics diff && dvc plots diff

Variants (fairsplat/evaluate/variants.py): ff, lora, refined, each also through the enhancer; a missing input makes
its variant absent with the reason. Outputs: ``<out>/{scores,variants,unscored}.parquet`` and ``<out>/avatars/``
(fairsplat/evaluate/outputs.py), ``plots/evaluate/`` (DVC plot data and PNG figures), ``metrics/evaluate.json``
(fairsplat/evaluate/tables.py). Definitions and units of every metric: README "Evaluation".
"""

from pathlib import Path

import typer

from fairsplat.sections.evaluate import EvaluateParams
from fairsplat.sections.workers import WorkersParams

app = typer.Typer(add_completion=False)


@app.command()
def main(
    head: Path = typer.Option(Path("assets/head/head.npz"), help="stage head's asset"),
    curated: Path = typer.Option(Path("data/curated"), help="stage curate's output (crops, labels, splits)"),
    tracks: Path = typer.Option(Path("data/tracks"), help="stage track's output"),
    ff: Path = typer.Option(Path("models/ff"), help="stage train_ff's generator"),
    lora: Path = typer.Option(Path("models/lora"), help="stage lora's adapter (absent: variant lora absent)"),
    refined: Path = typer.Option(Path("data/refined"), help="stage refine's avatars (absent: variant refined absent)"),
    enhancer: Path = typer.Option(Path("models/enhancer"), help="stage train_enhancer's model (absent: +enhancer absent)"),
    out: Path = typer.Option(Path("data/eval"), help="tables and the viewer's avatars"),
    plots: Path = typer.Option(Path("plots/evaluate"), help="DVC plot data and figures"),
    params: Path = typer.Option(Path("params.yaml")),
    metrics_dir: Path = typer.Option(Path("metrics")),
) -> None:
    section = EvaluateParams.load(params)
    cfg = section.eval_config()
    engine = WorkersParams.load(params).workers_config()  # where the jobs run; outputs do not depend on it
    for p in (head, curated / "manifest.parquet", tracks / "tracks.parquet"):
        if not p.exists():
            typer.echo(f"evaluate: {p} not found (run the stage that writes it first)", err=True)
            raise typer.Exit(2)
    import time

    import torch

    from fairsplat.evaluate.config import Inputs
    from fairsplat.evaluate.outputs import write_plots, write_tables
    from fairsplat.evaluate.run import run_evaluate
    from fairsplat.evaluate.tables import evaluate_metrics
    from fairsplat.io import atomic_dir
    from fairsplat.io.metrics import write_metrics

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    with atomic_dir(out) as tmp, atomic_dir(plots) as plot_tmp:  # tmp also holds the jobs' result files meanwhile
        res = run_evaluate(cfg, Inputs(head, curated, tracks, ff, lora, refined, enhancer), engine, scratch=tmp)
        m = evaluate_metrics(res.rows, res.present, res.info, cfg.n_boot, cfg.seed)
        write_tables(res, tmp)
        write_plots(res, m, plot_tmp)
    m["stage_seconds"] = round(time.perf_counter() - t0, 1)
    write_metrics("evaluate", m, root=metrics_dir)
    absent = ", ".join(f"{k}" for k in res.reasons if k in m["variants"]) or "none"
    typer.echo(f"evaluate: {len(res.present)} variants ({', '.join(res.present)}; absent: {absent}), "
               f"{m['subjects']} subjects, {m['cross_pairs']} cross pairs, {m['stage_seconds']} s -> {out}")  # fmt: skip


if __name__ == "__main__":
    app()
