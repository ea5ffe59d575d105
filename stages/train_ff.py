"""Stage ``train_ff``: train the one-shot generator (LAM-style) and the constant-avatar baseline, score held-out subjects.

    python -m stages.train_ff --head assets/head/head.npz --curated data/curated --tracks data/tracks --out models/ff
    dvc exp run -S train_ff.encoder=vgg16 -S train_ff.blocks=4
    accelerate launch --multi_gpu --num_processes 2 -m stages.train_ff     # DDP (CPU too): one result

Outputs: ``<out>/model.safetensors`` + ``config.json`` (fairsplat/models/generator.py) and the type-balanced
reference in ``<out>/reference_balanced/``; dvclive curves and ``grid_<type>.png`` in ``plots/train_ff/``;
``metrics/train_ff.json`` (fairsplat/ff/report.py). An interrupted run resumes from ``.checkpoints/train_ff``
when params and inputs match.
"""

from pathlib import Path

import typer

from fairsplat.sections.train_ff import TrainFFParams

app = typer.Typer(add_completion=False)


@app.command()
def main(
    head: Path = typer.Option(Path("assets/head/head.npz"), help="stage head's asset"),
    curated: Path = typer.Option(Path("data/curated"), help="stage curate's output"),
    tracks: Path = typer.Option(Path("data/tracks"), help="stage track's output"),
    out: Path = typer.Option(Path("models/ff"), help="generator checkpoint directory"),
    plots: Path = typer.Option(Path("plots/train_ff"), help="curves and per-type grids"),
    params: Path = typer.Option(Path("params.yaml")),
    metrics_dir: Path = typer.Option(Path("metrics")),
    checkpoints: Path = typer.Option(Path(".checkpoints/train_ff"), help="resumable training state"),
    progress: bool = typer.Option(True, help="tqdm progress bars"),
) -> None:
    section = TrainFFParams.load(params)
    cfg = section.ff_config()
    from fairsplat.train.accel import build_accelerator

    acc = build_accelerator(cfg.accel)  # fp16 without CUDA fails here, naming train_ff.mixed-precision
    import shutil

    import torch
    from dvclive import Live

    from fairsplat.ff.report import log_histories, metrics, write_grids
    from fairsplat.ff.run import BALANCED, run_train_ff
    from fairsplat.io import atomic_dir
    from fairsplat.io.checkpoint import file_digest, fingerprint, save_weights
    from fairsplat.io.metrics import write_metrics
    from fairsplat.train.jobs import torch_threads

    if section.threads:
        torch.set_num_threads(section.threads)
    fp = fingerprint(section.model_dump(), file_digest(head), file_digest(curated / "manifest.parquet"),
                     file_digest(tracks / "tracks.parquet"))  # fmt: skip
    res = run_train_ff(cfg, head, curated, tracks, acc, progress, checkpoints, fp)
    if acc.is_main_process:
        meta = {**cfg.model.to_json(), "size": cfg.size, "head": str(head), "type_mix": cfg.type_mix}
        with atomic_dir(out) as tmp, atomic_dir(plots) as plot_tmp:
            save_weights(tmp, res.models["ff"].state_dict(), meta)
            if "balanced" in res.models:  # the type-balanced reference (stage lora's deficits)
                save_weights(tmp / "reference_balanced", res.models["balanced"].state_dict(), {**meta, "type_mix": BALANCED})
            live = Live(dir=str(plot_tmp), dvcyaml=False, save_dvc_exp=False, report=None)
            log_histories(live, res.histories)
            with torch_threads(section.workers * max(1, section.threads) if acc.num_processes == 1 else 0):
                write_grids(res.models, res.baseline, res.frames, res.binding, res.rows, plot_tmp, cfg.size, cfg.backend)
        m = metrics(res.rows, cfg.eval_ks, res.info, res.frames, res.subjects, res.skipped_subjects)
        write_metrics("train_ff", m, root=metrics_dir)
        shutil.rmtree(checkpoints, ignore_errors=True)  # the outputs are written: the run is complete
        typer.echo(f"train_ff: held-out masked PSNR K=1 {m['ff_k1_psnr_masked']} vs baseline "
                   f"{m['baseline_k1_psnr_masked']} (gain {m['gain_k1_psnr_masked']}) -> {out}")  # fmt: skip
    acc.end_training()


if __name__ == "__main__":
    app()
