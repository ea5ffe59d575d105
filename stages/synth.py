"""Stage ``synth``: render SynthHeads, the embedded ground-truth dataset.

    python -m stages.synth --head assets/head/head.npz --out data/raw/synth
    dvc exp run -S synth.identities=60 -S synth.size=512     # a bigger set

Outputs: images, alpha, CelebAMask-HQ label maps, ``manifest.parquet`` (one
row per image: landmarks, FLAME params, camera, skin ground truth),
``identities.parquet``, ``ita_check.parquet``, sample grids in
``plots/synth/`` and ``metrics/synth.json``.
"""

import os
from pathlib import Path

import typer

from fairsplat.sections.synth import SynthParams
from fairsplat.sections.workers import WorkersParams

app = typer.Typer(add_completion=False)


@app.command()
def main(
    head: Path = typer.Option(Path("assets/head/head.npz"), help="head asset from stage head"),
    out: Path = typer.Option(Path("data/raw/synth"), help="output directory"),
    plots: Path = typer.Option(Path("plots/synth"), help="sample grids"),
    params: Path = typer.Option(Path("params.yaml")),
    metrics_dir: Path = typer.Option(Path("metrics")),
) -> None:
    cfg = SynthParams.load(params)
    engine = WorkersParams.load(params).workers_config()  # where shards run; outputs do not depend on it
    from fairsplat.head.model import HeadModel
    from fairsplat.io import atomic_dir
    from fairsplat.io.metrics import write_metrics
    from fairsplat.io.tables import write_table
    from fairsplat.synth.dataset import IDENTITIES_SCHEMA, ITA_CHECK_SCHEMA, build, manifest_schema
    from fairsplat.synth.report import ita_consistency, write_grids

    model = HeadModel.load(head)
    with atomic_dir(out) as tmp, atomic_dir(plots) as plot_tmp:
        manifest, identities, timing = build(model, cfg.synth_config(), tmp, engine)
        write_table(manifest, manifest_schema(cfg.synth_config()), tmp / "manifest.parquet")
        write_table(identities, IDENTITIES_SCHEMA, tmp / "identities.parquet")
        per_image, ita = ita_consistency(tmp, manifest)
        write_table(per_image, ITA_CHECK_SCHEMA, tmp / "ita_check.parquet")
        write_grids(tmp, manifest, plot_tmp)
    counts = {t: {"identities": 0, "images": 0} for t in ita["per_type"]}
    for r in identities.to_pylist():
        counts[r["fitzpatrick"]]["identities"] += 1
    for t in manifest.column("fitzpatrick").to_pylist():
        counts[t]["images"] += 1
    write_metrics("synth", {
        "images": manifest.num_rows, "identities": identities.num_rows, "size": cfg.size,
        "gaussians": timing["gaussians"], "render_ms_per_image": round(timing["render_ms_per_image"], 2),
        "ita_gt_consistency": ita["ita_gt_consistency"],
        "per_fitzpatrick": {t: {**counts[t], **ita["per_type"][t]} for t in counts},
    }, root=metrics_dir)
    typer.echo(f"synth: {manifest.num_rows} images of {identities.num_rows} identities -> {out}")


if __name__ == "__main__":
    app()
