"""Stage ``report``'s work, shared with ``fairsplat report``: collect, build the page, write it atomically, measure it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fairsplat.report.collect import collect
from fairsplat.report.page import PageConfig, build_page
from fairsplat.report.viewer import load_bundle


@dataclass(frozen=True)
class ReportPaths:
    root: Path = Path(".")
    out: Path = Path("reports/index.html")
    viewer: Path = Path("viewer/dist/viewer.js")
    pipeline: Path = Path("dvc.yaml")
    params: Path = Path("params.yaml")
    metrics: Path = Path("metrics")
    plots: Path = Path("plots")
    avatars: Path = Path("data/eval/avatars")


def make_report(cfg: PageConfig, paths: ReportPaths, max_page_mb: float) -> dict:
    """Write the page; returns ``metrics/report.json``'s numbers (size against the budget, viewer, images)."""
    from fairsplat.io.atomic import write_text

    run = collect(paths.root, paths.pipeline, paths.params, paths.metrics, paths.plots, paths.avatars)
    bundle, reason = load_bundle(paths.viewer)
    page = build_page(run, paths.root, paths.plots, bundle, reason, cfg)
    write_text(paths.out, page.html)
    size = paths.out.stat().st_size
    budget = int(max_page_mb * 2**20)
    return {"page_bytes": size, "page_budget_bytes": budget, "page_within_budget": size <= budget,
            "viewer_bundle_bytes": len(bundle.encode()) if bundle else 0, **page.info,
            "stages_with_metrics": sum(s.metrics is not None for s in run.stages)}  # fmt: skip
