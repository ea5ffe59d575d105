"""The report in a real browser: Debian's headless Chromium opens reports/index.html from file://, waits in real
time, and a screenshot of the viewer's canvas must show splats in every avatar's place; no network request; the
page under its size budget.

Needs Chromium (``chromium-headless-shell`` or ``chromium``; ``$FAIRSPLAT_CHROMIUM`` to point at another) and node
with ``viewer/node_modules`` (``make env``). Skips, naming what is missing, unless ``FAIRSPLAT_REQUIRE_BROWSER=1``
(set by ``.ci/run``, which installs both), where it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from fairsplat.testing.pipeline import ROOT

BACKGROUND = np.array([0x20, 0x24, 0x2A])  # viewer/src/main.js BACKGROUND
SPLAT_DIFF = 24  # a pixel is a splat pixel when a channel differs from the background by more than this (of 255)
MIN_SHARE = 0.01  # of each avatar's column of the canvas
LOCAL = {"file", "data", "blob", "about"}  # schemes that never leave the machine


def _need(what: str) -> None:
    if os.environ.get("FAIRSPLAT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser test required (FAIRSPLAT_REQUIRE_BROWSER=1) but {what}")
    pytest.skip(what)


def _browser() -> str:
    for name in (os.environ.get("FAIRSPLAT_CHROMIUM"), "chromium-headless-shell", "chromium", "chromium-browser"):
        if name and (path := shutil.which(name)):
            return path
    _need("no headless Chromium (apt-get install chromium-headless-shell)")


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        _need("no node (install Node.js 18+, then make env)")
    if not (ROOT / "viewer" / "node_modules" / "puppeteer-core").is_dir():
        _need("viewer/node_modules is not installed (make env)")
    return node


@pytest.mark.slow
def test_the_viewer_renders_splats_offline_within_budget(tiny_pipeline, tmp_path):
    browser, node = _browser(), _node()
    page = tiny_pipeline.repo / "reports" / "index.html"
    m = tiny_pipeline.metrics("report")
    if not m["viewer"]:
        _need(f"the report has no viewer: {m['viewer_reason']}")
    shot = tmp_path / "canvas.png"
    run = subprocess.run([node, "check.mjs", "--browser", browser, "--page", str(page), "--shot", str(shot)],
                         cwd=ROOT / "viewer", capture_output=True, text=True, timeout=240)  # fmt: skip
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out.get("error") is None and out["state"] == "ready", out
    assert not out["page_errors"], out["page_errors"]
    # no network: every request is local, and the only file it reads is the page itself
    remote = [r for r in out["requests"] if r["scheme"] not in LOCAL]
    assert not remote, remote
    files = {r["url"] for r in out["requests"] if r["scheme"] == "file"}
    assert files == {page.resolve().as_uri()}, files
    # splats: pixels unlike the background in every avatar's column of the canvas
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    splat = (np.abs(img - BACKGROUND).max(-1) > SPLAT_DIFF)
    cols = np.array_split(splat, m["avatars"], axis=1)
    shares = [float(c.mean()) for c in cols]
    assert min(shares) > MIN_SHARE, shares
    assert out["splats"] == m["splats"]
    # size budget (report.max-page-mb)
    assert page.stat().st_size <= m["page_budget_bytes"], (page.stat().st_size, m["page_budget_bytes"])
    print(f"browser: {browser}; splat pixels per avatar column {['%.3f' % s for s in shares]}; requests by scheme "
          f"{ {s: sum(r['scheme'] == s for r in out['requests']) for s in LOCAL} }; page {page.stat().st_size} bytes")
