"""Stage ``lora``: seed 000's fairness LoRA on the generator's decoder, with a full fine-tune beside it.

    python -m stages.lora --model models/ff --head assets/head/head.npz --curated data/curated --tracks data/tracks --out models/lora
    dvc exp run -S lora.rank=8 && dvc metrics diff

Outputs: ``<out>/lora_weights.pt`` + ``config.json`` + ``training_config.yaml`` (the SoulSplats layout:
fairsplat/lora/soulsplats.py), ``plots/lora/`` (dvclive curves, per-type bars with CIs: base vs LoRA vs the
references) and ``metrics/lora.json`` (fairsplat/lora/report.py: per-type deficits against the generator
trained balanced from the start, the rare types' recovery).
"""

from pathlib import Path

import typer

from fairsplat.sections.lora import LoraParams

app = typer.Typer(add_completion=False)


@app.command()
def main(
    model: Path = typer.Option(Path("models/ff"), help="stage train_ff's generator (and its balanced reference)"),
    head: Path = typer.Option(Path("assets/head/head.npz")),
    curated: Path = typer.Option(Path("data/curated")),
    tracks: Path = typer.Option(Path("data/tracks")),
    out: Path = typer.Option(Path("models/lora"), help="adapter directory"),
    plots: Path = typer.Option(Path("plots/lora")),
    params: Path = typer.Option(Path("params.yaml")),
    metrics_dir: Path = typer.Option(Path("metrics")),
    checkpoints: Path = typer.Option(Path(".checkpoints/lora")),
) -> None:
    section = LoraParams.load(params)
    import shutil

    import torch
    from dvclive import Live

    from fairsplat.io import atomic_dir
    from fairsplat.io.checkpoint import file_digest, fingerprint, read_config
    from fairsplat.io.metrics import write_metrics
    from fairsplat.lora.adapters import matching_layers
    from fairsplat.lora.report import lora_metrics
    from fairsplat.lora.run import build_model, not_lam_reason, run_lora
    from fairsplat.lora.save import log_and_plot, save_adapter, write_absent
    from fairsplat.models.generator import GeneratorConfig

    meta = read_config(model)
    if reason := not_lam_reason(meta, model):  # a UV generator (train_ff.arch uv) has no decoder attention
        write_absent(out, plots, metrics_dir, reason)  # before any work; evaluate lists the variant absent
        typer.echo(f"lora: absent: {reason}")
        return
    cfg = section.run_config(GeneratorConfig.from_json(meta), int(meta["size"]))
    matching_layers(build_model("base", model, cfg.spec), cfg.spec)  # a bad target fails here, naming the key
    if section.threads:
        torch.set_num_threads(section.threads)
    fp = fingerprint(section.model_dump(), file_digest(model / "model.safetensors"),
                     file_digest(curated / "manifest.parquet"), file_digest(tracks / "tracks.parquet"))  # fmt: skip
    res = run_lora(cfg, model, head, curated, tracks, checkpoints, fp)
    with atomic_dir(out) as tmp, atomic_dir(plots) as plot_tmp:
        size = save_adapter(tmp, res["models"]["lora"], section, meta)
        info = {"train_seconds": res["train_seconds"], "steps": res["results"]["lora"]["steps"],
                "train_identities": res["results"]["lora"]["subjects"], "adapter_bytes": size,
                "trainable_parameters": res["results"]["lora"]["trainable"],
                "adapted_layers": len(matching_layers(build_model("base", model, cfg.spec), cfg.spec)),
                "heldout_subjects_unscored": len(res["unscored"]),
                "resumed_from": {n: r["resumed_from"] for n, r in res["results"].items()}}  # fmt: skip
        m = lora_metrics(res["rows"], res["type_mix"], info)
        log_and_plot(Live(dir=str(plot_tmp), dvcyaml=False, save_dvc_exp=False, report=None), res, m, plot_tmp)
    write_metrics("lora", m, root=metrics_dir)
    shutil.rmtree(checkpoints, ignore_errors=True)
    typer.echo(f"lora: rank {section.rank}, {info['trainable_parameters']} params; rare-type recovery "
               f"{m.get('recovery')}; mean PSNR {m.get('base_psnr_masked')} -> {m.get('lora_psnr_masked')} -> {out}")


if __name__ == "__main__":
    app()
