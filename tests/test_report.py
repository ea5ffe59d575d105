"""Stage report: one self-contained page (no external URL), every section, the budget; without the viewer bundle a
plain message where the viewer would be. The real-browser check is tests/test_report_browser.py."""

from __future__ import annotations

import re

import pytest

from fairsplat.report.page import PageConfig, build_page
from fairsplat.report.viewer import NO_VIEWER, inline_script

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:|//|ftp:)""", re.IGNORECASE)


def test_the_page_is_self_contained_and_whole(tiny_pipeline):
    page = (tiny_pipeline.repo / "reports" / "index.html").read_text()
    assert not EXTERNAL.search(page), EXTERNAL.search(page).group(0)
    assert "<link" not in page and "@import" not in page
    for anchor in ('id="run"', 'id="evaluation"', 'id="viewer"', 'id="stages"', 'id="plots"', 'id="params"'):
        assert anchor in page
    for stage in tiny_pipeline.stages:
        if stage != "report":
            assert f"<summary>{stage}" in page, stage
    assert "curate: ITA histogram" in page and "training curves" in page
    assert "type II" in page or "type I" in page  # image grids per type
    assert "[" in page and "worst" in page  # per-type tables with CIs
    m = tiny_pipeline.metrics("report")
    assert m["page_bytes"] == (tiny_pipeline.repo / "reports" / "index.html").stat().st_size
    assert m["page_within_budget"], m


def test_viewer_or_the_reason(tiny_pipeline):
    page = (tiny_pipeline.repo / "reports" / "index.html").read_text()
    m = tiny_pipeline.metrics("report")
    if m["viewer"]:
        assert 'id="fairsplat-avatars"' in page and m["splats"] > 0
    else:
        assert "node was not found" in page and m["viewer_reason"]


def test_without_node_the_page_says_so(tiny_pipeline, tmp_path):
    from fairsplat.report.collect import collect

    repo = tiny_pipeline.repo
    run = collect(repo, repo / "dvc.yaml", repo / "params.yaml", repo / "metrics", repo / "plots",
                  repo / "data" / "eval" / "avatars")  # fmt: skip
    reason = NO_VIEWER.format(path="viewer/dist/viewer.js")
    page = build_page(run, repo, repo / "plots", None, reason, PageConfig())
    assert "Install Node.js" in page.html and 'id="fairsplat-avatars"' not in page.html
    assert page.info["viewer"] is False and page.info["viewer_reason"] == reason


@pytest.mark.parametrize("js", ['var a="</script>";', "x='<!--';", "y='</SCRIPT >'"])
def test_inlined_script_cannot_end_its_element(js):
    out = inline_script(js)
    assert "</script" not in out.lower() and "<!--" not in out


def test_size_budget_caps_images(tiny_pipeline):
    from fairsplat.report.collect import collect

    repo = tiny_pipeline.repo
    run = collect(repo, repo / "dvc.yaml", repo / "params.yaml", repo / "metrics", repo / "plots", repo / "none")
    page = build_page(run, repo, repo / "plots", None, "no viewer", PageConfig(max_image_kb=1, max_images_mb=0.001))
    assert page.info["images_embedded_bytes"] == 0 and page.info["images_not_embedded"]
    assert "data:image/png" not in page.html
