"""Stage ``track``: FLAME shape, expression, pose and camera for every image and video frame.

    python -m stages.track --head assets/head/head.npz --synth data/raw/synth --curated data/curated --out data/tracks
    dvc exp run -S track.landmarks=dlib                       # SynthHeads through the detector
    python -m stages.track --videos ../shared/data/videos_open --out /tmp/tracks   # your own clips

Reads the inputs listed in ``track.inputs`` (SynthHeads with ground truth,
curate's crops); ``--videos`` / ``--photos`` add folders (outside DVC).
Outputs: ``<out>/tracks.parquet`` (FLAME parameters per image or frame),
``<out>/rejects.parquet`` (every input not fitted, with a reason; schemas in
fairsplat/track/tables.py), ``plots/track/overlay_<input>.png`` and
``metrics/track.json`` (NME, SynthHeads parameter errors, per_fitzpatrick,
frames per second, video jitter).
"""

from pathlib import Path

import typer

from fairsplat.sections.track import TrackParams
from fairsplat.sections.workers import WorkersParams

app = typer.Typer(add_completion=False)


@app.command()
def main(
    head: Path = typer.Option(Path("assets/head/head.npz"), help="head asset from stage head"),
    synth: Path = typer.Option(Path("data/raw/synth"), help="SynthHeads (stage synth), if 'synth' in track.inputs"),
    curated: Path = typer.Option(Path("data/curated"), help="stage curate's output, if 'curated' in track.inputs"),
    videos: Path = typer.Option(None, help="also track every video under this folder"),
    photos: Path = typer.Option(None, help="also track every photo under this folder"),
    out: Path = typer.Option(Path("data/tracks"), help="output directory"),
    plots: Path = typer.Option(Path("plots/track"), help="landmark overlays"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    metrics_dir: Path = typer.Option(Path("metrics"), help="where metrics/<stage>.json goes"),
) -> None:
    cfg = TrackParams.load(params)
    engine = WorkersParams.load(params).workers_config()  # where fit batches run; outputs do not depend on it
    inputs = {name: {"synth": synth, "curated": curated}[name] for name in cfg.inputs}
    inputs |= {name: path for name, path in (("videos", videos), ("photos", photos)) if path is not None}
    if not inputs:
        typer.echo("track: nothing to track: track.inputs is [] and neither --videos nor --photos was given", err=True)
        raise typer.Exit(2)
    for name, path in inputs.items():
        if not path.exists():
            typer.echo(f"track: {name} input {path} not found (run its stage first, or drop it from track.inputs)", err=True)
            raise typer.Exit(2)
    from fairsplat.io import atomic_dir
    from fairsplat.io.metrics import write_metrics
    from fairsplat.track.pipeline import run_track

    with atomic_dir(out) as tmp, atomic_dir(plots) as plot_tmp:
        metrics = run_track(cfg.track_config(), head, inputs, tmp, plot_tmp, engine=engine)
    write_metrics("track", metrics, root=metrics_dir)
    nme = metrics.get("nme")
    typer.echo(f"track: {', '.join(inputs)}; synth NME {nme if nme is None else round(nme, 4)}; "
               f"{metrics['fit_fps'] or 0:.1f} frames/s on {metrics['threads']} thread(s) -> {out}")


if __name__ == "__main__":
    app()
