"""Params of stage ``report``: the one-page HTML report of the run (``reports/index.html``) and its size budget."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from fairsplat.config import Section


class ReportParams(Section):
    section: ClassVar[str] = "report"

    title: str = "fairsplat run report"
    """The page's title."""
    max_page_mb: float = Field(10.0, gt=0.0)
    """Size budget of the page (MiB), checked in metrics/report.json and by the browser test: the viewer bundle is
    ~3 MB, six avatars of 2,048 Gaussians ~1.1 MB as base64 PLY, images up to max-images-mb."""
    max_image_kb: int = Field(400, ge=1)
    """A PNG larger than this is listed by path instead of embedded (a 1024 px grid is ~300 KB)."""
    max_images_mb: float = Field(3.0, gt=0.0)
    """Embedded images in total (MiB); later ones are listed by path."""
    viewer_max_splats: int | None = Field(20000, ge=1)
    """Gaussians per avatar in the viewer, the most opaque kept (seed 003's 20K-60K avatars at real scale:
    6 x 20,000 x 68 B x 4/3 = 11 MB); null = all."""

    def page_config(self):
        from fairsplat.report.page import PageConfig

        return PageConfig(self.title, self.max_image_kb, self.max_images_mb, self.viewer_max_splats)
