"""Stage ``train_enhancer``: the pix2pix-turbo-style splat-render enhancer (seed 001) on degrade's pairs.

    python -m stages.train_enhancer --pairs data/pairs --curated data/curated --out models/enhancer
    dvc exp run -S train_enhancer.steps=600 -S train_enhancer.loss.net=vgg
    dvc exp run -S train_enhancer.sd-turbo-path=/models/sd-turbo $(fairsplat preset gpu)   # LoRA on SD-Turbo
    accelerate launch --multi_gpu --num_processes 2 -m stages.train_enhancer           # DDP (CPU too)

Outputs: ``<out>/model.safetensors`` + ``config.json`` (every weight; LoRA runs: the trained weights and the
SD-Turbo path), ``<out>/heldout.parquet`` (one row per held-out pair), ``plots/train_enhancer/`` (dvclive
curves, per-type bars, grid), ``metrics/train_enhancer.json`` (fairsplat/enhancer/report.py). An interrupted
run resumes from ``.checkpoints/train_enhancer`` when params and inputs match.
"""

from dataclasses import replace
from pathlib import Path

import typer

from fairsplat.sections.degrade import DegradeSection
from fairsplat.sections.train_enhancer import TrainEnhancerParams

app = typer.Typer(add_completion=False)


@app.command()
def main(
    pairs: Path = typer.Option(Path("data/pairs"), help="stage degrade's output"),
    curated: Path = typer.Option(Path("data/curated"), help="stage curate's output (subjects of the pairs)"),
    out: Path = typer.Option(Path("models/enhancer"), help="enhancer checkpoint directory"),
    plots: Path = typer.Option(Path("plots/train_enhancer"), help="curves, per-type bars, grid"),
    params: Path = typer.Option(Path("params.yaml")),
    metrics_dir: Path = typer.Option(Path("metrics")),
    checkpoints: Path = typer.Option(Path(".checkpoints/train_enhancer"), help="resumable training state"),
    progress: bool = typer.Option(True, help="tqdm progress bar"),
) -> None:
    section = TrainEnhancerParams.load(params)
    augs = DegradeSection.load(params).pipeline_params().augmentations  # seed 001's four, degrade's params
    from fairsplat.enhancer import sdturbo

    sdturbo.check_dir(section.sd_turbo_path)  # a wrong directory fails here, naming train_enhancer.sd-turbo-path
    cfg = replace(section.enhancer_config(), augmentations=augs)
    from fairsplat.train.accel import build_accelerator, on_main

    acc = build_accelerator(cfg.accel)  # fp16 without CUDA fails here, naming train_enhancer.mixed-precision
    import shutil

    import torch
    from dvclive import Live

    from fairsplat.enhancer.checkpoint import save_enhancer
    from fairsplat.enhancer.report import metrics, write_plots
    from fairsplat.enhancer.run import run_train_enhancer
    from fairsplat.enhancer.tables import rows_schema
    from fairsplat.io import atomic_dir
    from fairsplat.io.checkpoint import file_digest, fingerprint
    from fairsplat.io.metrics import write_metrics
    from fairsplat.io.tables import write_table

    if section.threads:
        torch.set_num_threads(section.threads)
    fp = fingerprint(section.model_dump(), repr(sorted(augs.items())), file_digest(pairs / "manifest.parquet"),
                     file_digest(curated / "manifest.parquet"))  # fmt: skip
    with on_main(acc, atomic_dir(out)) as tmp, on_main(acc, atomic_dir(plots)) as plot_tmp:
        live = Live(dir=str(plot_tmp), dvcyaml=False, save_dvc_exp=False, report=None) if plot_tmp else None
        res = run_train_enhancer(cfg, pairs, curated, acc, live, progress, checkpoints, fp)
        if acc.is_main_process:
            live.end()
            m = metrics(res.rows, res.info)
            save_enhancer(tmp, res.model, cfg, {"crop_size": res.info["crop_size"]})
            write_table(res.rows, rows_schema(res.rows), tmp / "heldout.parquet")
            write_plots(m, res.model, res.pairs, res.rows, plot_tmp)
    if acc.is_main_process:
        write_metrics("train_enhancer", m, root=metrics_dir)
        shutil.rmtree(checkpoints, ignore_errors=True)  # the outputs are written: the run is complete
        typer.echo(f"train_enhancer: held-out PSNR {m['psnr']} vs input {m['psnr_input']}, SSIM {m['ssim']} vs "
                   f"{m['ssim_input']}, LPIPS {m['lpips_alex']} vs {m['lpips_alex_input']} -> {out}")  # fmt: skip
    acc.end_training()


if __name__ == "__main__":
    app()
