"""What the report shows, read from the run's files: params, revisions, every stage's metrics, plots, avatars.

Nothing here is computed anew except drawings of existing data (``figures``):
the numbers are the stages' own ``metrics/<stage>.json``.

- **revision**: the git commit (and whether the checkout had uncommitted
  changes) and a digest of ``dvc.lock`` without the report's own entry: the
  exact upstream outputs the page was made from, however the repo is checked
  out; ``dvc --version``'s number;
- **stages**: dvc.yaml's order; per stage its metrics file, its PNGs (top
  level of ``plots/<stage>/`` and ``plots/<stage>/figures/``) and its dvclive
  curves (``plots/<stage>/plots/metrics/**.tsv``);
- **avatars**: stage evaluate's ``data/eval/avatars/`` (one PLY per type).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class Stage:
    name: str
    metrics: dict[str, Any] | None
    images: list[Path] = field(default_factory=list)
    curves: list[Path] = field(default_factory=list)


@dataclass
class Run:
    params_text: str
    revision: dict[str, str | None]
    stages: list[Stage]
    avatars: list[dict]  # {"type", "subject", "variant", "path"}


def git_revision(root: Path) -> dict[str, str | None]:
    """``{"commit", "dirty"}`` of the checkout at ``root``; None where it is not a git checkout (or git is absent)."""

    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else ("yes" if status else "no")}


def lock_digest(lock: Path, exclude: str = "report") -> str | None:
    """sha256 (first 16 hex) of dvc.lock's stage entries except ``exclude``: which upstream outputs the page shows."""
    if not lock.is_file():
        return None
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    body = json.dumps({k: v for k, v in stages.items() if k != exclude}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def dvc_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("dvc")
    except Exception:  # noqa: BLE001  (no dvc installed: the page says unknown)
        return None


def stage_names(pipeline: Path) -> list[str]:
    """Stages in dvc.yaml order (the page's order)."""
    if not pipeline.is_file():
        return []
    return list((yaml.safe_load(pipeline.read_text()) or {}).get("stages", {}))


def collect(root: Path, pipeline: Path, params: Path, metrics_dir: Path, plots_dir: Path, avatars: Path,
            exclude: str = "report") -> Run:  # fmt: skip
    stages = []
    for name in stage_names(pipeline):
        if name == exclude:
            continue
        m = metrics_dir / f"{name}.json"
        d = plots_dir / name
        images = sorted(d.glob("*.png")) + sorted((d / "figures").glob("*.png")) if d.is_dir() else []
        curves = sorted((d / "plots" / "metrics").rglob("*.tsv")) if d.is_dir() else []
        stages.append(Stage(name, json.loads(m.read_text()) if m.is_file() else None, images, curves))
    shown = []
    listing = avatars / "avatars.json"
    if listing.is_file():
        for a in json.loads(listing.read_text()):
            if (avatars / a["file"]).is_file():
                shown.append({**a, "path": avatars / a["file"]})
    revision = git_revision(root) | {"dvc_lock": lock_digest(root / "dvc.lock", exclude), "dvc": dvc_version()}
    return Run(params.read_text() if params.is_file() else "", revision, stages, shown)
