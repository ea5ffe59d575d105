"""The ``fairsplat`` command: small helpers around the DVC pipeline.

    fairsplat validate                       # check every params.yaml section, naming bad keys
    fairsplat preset gpu                     # print `-S section.key=value` flags of params/gpu.yaml
    dvc exp run $(fairsplat preset gpu)      # a real-scale experiment, params.yaml untouched
    fairsplat avatar me.jpg me2.jpg --out my_avatar   # 1-4 photos of one person -> avatar.ply and videos
    fairsplat reenact my_avatar --driver talking.mp4 --out me_talking.mp4   # drive it with another's motion
    fairsplat report --open                  # rebuild reports/index.html from the run's files and open it

Why presets print ``-S`` flags rather than rewrite params.yaml: an experiment
then records exactly which values differ from the default run, ``dvc exp show``
and ``dvc metrics diff`` compare the two, and the committed defaults stay the
small CPU run that CI and a fresh clone use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
import yaml

from fairsplat.config import ParamsError, parse_section, read_params

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n\n")[0])

PRESETS_DIR = Path("params")


@app.command()
def validate(params: Path = typer.Option(Path("params.yaml"), help="params file")) -> None:
    """Validate every section of the params file; exit 2 naming the bad key."""
    try:
        from fairsplat.sections.registry import validate_all

        sections = validate_all(params)
    except ParamsError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{params}: {len(sections)} sections valid ({', '.join(sections)})")


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _flags(prefix: str, value: Any) -> list[tuple[str, Any]]:
    """Nested mappings become dotted keys: DVC's (Hydra's) -S grammar merges them entry by entry."""
    if isinstance(value, dict) and value:
        return [kv for k, v in value.items() for kv in _flags(f"{prefix}.{k}", v)]
    return [(prefix, value)]


def preset_overrides(name: str, params: Path = Path("params.yaml"), presets_dir: Path = PRESETS_DIR) -> list[str]:
    """``section.key=value`` strings for preset ``name``, checked against the sections first.

    The preset is merged over ``params`` and every touched section is validated,
    so a preset that drifted from the code fails here, naming the key, instead
    of inside a long run.
    """
    from fairsplat.sections.registry import SECTIONS

    path = presets_dir / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in presets_dir.glob("*.yaml"))
        raise ParamsError(f"preset {name!r}: no {path} (known: {', '.join(known) or 'none'})")
    preset = yaml.safe_load(path.read_text()) or {}
    base = read_params(params)
    out: list[str] = []
    for section, over in preset.items():
        if section not in SECTIONS:
            raise ParamsError(f"{path}: unknown section {section!r}")
        if not isinstance(over, dict):
            raise ParamsError(f"{path}: section {section!r} must be a mapping")
        parse_section(section, _deep_merge(base.get(section) or {}, over), SECTIONS[section])
        for key, value in _flags(section, over):
            # Lists are replaced whole, in flow form without spaces.
            text = json.dumps(value, separators=(",", ":")) if isinstance(value, list) else yaml.safe_dump(value)
            text = text.strip().removesuffix("...").strip()
            if any(c.isspace() for c in text):  # $(fairsplat preset x) splits on whitespace
                raise ParamsError(f"{path}: {key}: value must not contain whitespace: {text!r}")
            out.append(f"{key}={text}")
    return out


@app.command()
def preset(
    name: str = typer.Argument(..., help="preset file params/<name>.yaml"),
    params: Path = typer.Option(Path("params.yaml"), help="the params it overrides"),
) -> None:
    """Print the preset as ``-S`` flags for ``dvc exp run``."""
    try:
        flags = preset_overrides(name, params)
    except ParamsError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from None
    typer.echo(" ".join(f"-S {f}" for f in flags))


@app.command()
def avatar(
    photos: list[Path] = typer.Argument(..., help="1-4 photos of one person"),
    out: Path = typer.Option(..., help="output directory"),
    model: Path = typer.Option(Path("models/ff"), help="a trained generator (stage train_ff's output)"),
    head: Path = typer.Option(Path("assets/head/head.npz"), help="the head the generator was trained on"),
) -> None:
    """Photos -> detect, crop, track, generate -> avatar.ply/.safetensors, turntable and expression strip."""
    from fairsplat.avatar import from_photos as fp
    from fairsplat.head.model import HeadModelError
    from fairsplat.io.checkpoint import CheckpointError

    if not 1 <= len(photos) <= 4:
        typer.echo(f"avatar: give 1 to 4 photos of one person (got {len(photos)})", err=True)
        raise typer.Exit(2)
    try:
        written = fp.photos_to_avatar(photos, out, model, head)
    except (fp.PhotoError, FileNotFoundError, CheckpointError, HeadModelError) as err:  # each names its file
        typer.echo(f"avatar: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"avatar: {', '.join(sorted(written))} -> {out}")


@app.command()
def reenact(
    avatar: Path = typer.Argument(..., help="an avatar directory (avatar.json + avatar.safetensors), or a file in one"),
    driver: Path = typer.Option(..., help="a tracks.parquet (or its directory), or a video to track first"),
    out: Path = typer.Option(Path("reenact.mp4"), help="MP4 to write; PNG frames go to <stem>_frames/"),
    subject: str = typer.Option(None, help="driver subject in the tracks (default: the first)"),
    sequence: str = typer.Option(None, help="driver sequence (clip) in the tracks, instead of --subject"),
    head: Path = typer.Option(Path("assets/head/head.npz"), help="the head the avatar was made on"),
    size: int = typer.Option(256, help="output side in px (even)"),
    fps: float = typer.Option(None, help="MP4 frame rate (default: track.video-fps for videos, else 5)"),
    params: Path = typer.Option(Path("params.yaml"), help="track settings for a video driver (defaults without it)"),
) -> None:
    """Drive an avatar with another person's tracked expression, jaw, pose and eyes (its own shape kept)."""
    import tempfile

    import numpy as np

    from fairsplat.evaluate import reenact as re
    from fairsplat.head.model import HeadModel

    if size < 16 or size % 2:
        typer.echo(f"reenact: --size must be an even number >= 16 (got {size})", err=True)
        raise typer.Exit(2)
    for p in (head, driver, avatar):
        if not p.exists():
            typer.echo(f"reenact: {p} not found", err=True)
            raise typer.Exit(2)
    try:
        model_head = HeadModel.load(head)
        av = re.load_avatar(avatar, model_head)
        if driver.is_file() and driver.suffix.lower() != ".parquet":
            from fairsplat.sections.track import TrackParams

            cfg = (TrackParams.load(params) if params.is_file() else TrackParams()).track_config()
            with tempfile.TemporaryDirectory() as work:
                drv = re.driver_from_video(driver, head, cfg, Path(work))
            rate = fps or cfg.video_fps
        else:
            drv, rate = re.driver_from_tracks(driver, subject, sequence), fps or 5.0
        frames = re.reenact(av, drv, size)
    except (re.ReenactError, ValueError) as err:
        typer.echo(f"reenact: {err}", err=True)
        raise typer.Exit(2) from None
    panels = re.driver_panels(drv, av, size)
    if panels is not None:
        frames = np.concatenate([panels, frames], axis=2)  # driver | avatar
    re.write_outputs(out, frames, rate)
    typer.echo(f"reenact: {len(frames)} frames of {drv.ids[0].rsplit('/', 1)[0]} -> {out}")


@app.command()
def report(
    out: Path = typer.Option(Path("reports/index.html"), help="the page"),
    open_page: bool = typer.Option(False, "--open", help="open it in the default browser"),
    params: Path = typer.Option(Path("params.yaml"), help="params (section report)"),
) -> None:
    """Rebuild the run's report page from the files on disk (stage report's code; metrics/report.json is left to the
    stage), optionally open it."""
    from fairsplat.report.run import ReportPaths, make_report
    from fairsplat.sections.report import ReportParams

    try:
        section = ReportParams.load(params)
    except ParamsError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from None
    m = make_report(section.page_config(), ReportPaths(out=out, params=params), section.max_page_mb)
    typer.echo(f"report: {m['page_bytes'] / 2**20:.2f} MiB ({'within' if m['page_within_budget'] else 'OVER'} budget) -> {out}" + ("" if m["viewer"] else f" (no viewer: {m['viewer_reason']})"))
    if open_page:
        import webbrowser

        webbrowser.open(out.resolve().as_uri())


if __name__ == "__main__":
    app()
